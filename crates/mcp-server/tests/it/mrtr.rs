//! Prompts on MCP 2026-07-28 (multi round-trip requests), spoken as raw
//! JSON-RPC: the session opens with `server/discover` and every request
//! carries its protocol version and client capabilities in `_meta`. A
//! `prompt` decision makes the `tools/call` return an input-required result
//! with the elicitation and a `requestState`; the client's retry with
//! `inputResponses` resumes the same running command.
//!
//! The read-only sandbox makes escalation visible: only an escalated
//! `touch` can create a file in the workspace.

use serde_json::{Value, json};

use crate::raw::{PROMPT_TOUCH, Raw};
use crate::util::{eventually, marker, pids_with, ps};

const TOUCH: &str = "/usr/bin/touch";

/// A session on 2026-07-28 whose client declares `capabilities`.
async fn discover(extra: &[&str], capabilities: Value) -> Raw {
    let mut s = Raw::start_with(PROMPT_TOUCH, extra).await;
    s.request_meta = Some(json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "raw-mrtr", "version": "0"},
    }));
    let reply = s.call("server/discover", json!({})).await;
    let versions = &reply["result"]["supportedVersions"];
    assert!(
        versions
            .as_array()
            .is_some_and(|v| v.contains(&json!("2026-07-28"))),
        "{reply}"
    );
    s
}

fn call_params(command: &str, work: &std::path::Path) -> Value {
    json!({"name": "shell", "arguments": {"command": command, "workdir": work, "timeout_ms": 20_000}})
}

/// `params` retried with `action` as the answer and `state`.
fn retry(params: &Value, state: &Value, action: &str) -> Value {
    let mut params = params.clone();
    params["requestState"] = state.clone();
    params["inputResponses"] = json!({"approval": {"action": action, "content": {}}});
    params
}

/// The input-required result in `reply`: its message and state.
fn input_required(reply: &Value) -> (String, Value) {
    let result = &reply["result"];
    assert_eq!(result["resultType"], "input_required", "{reply}");
    let request = &result["inputRequests"]["approval"];
    assert_eq!(request["method"], "elicitation/create", "{reply}");
    assert_eq!(
        request["params"]["requestedSchema"]["type"], "object",
        "{reply}"
    );
    let state = result["requestState"].clone();
    assert!(state.is_string(), "{reply}");
    (
        request["params"]["message"].as_str().unwrap().to_owned(),
        state,
    )
}

/// The decoded `shell` result in `reply`.
fn completed(reply: &Value) -> Value {
    let result = &reply["result"];
    assert_eq!(result["isError"], false, "{reply}");
    result["structuredContent"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_on_retry_the_escalated_program_runs() {
    let mut s = discover(&[], json!({"elicitation": {}})).await;
    let target = s.work.join("f");
    let params = call_params(
        &format!("echo before; {TOUCH} {}; echo status=$?", target.display()),
        &s.work,
    );
    let reply = s.call("tools/call", params.clone()).await;
    let (message, state) = input_required(&reply);
    assert_eq!(
        message,
        format!(
            "Allow agent to run `{TOUCH} {}` in `{}`?",
            target.display(),
            s.work.display()
        )
    );
    assert!(!target.exists(), "ran before the answer");
    let reply = s.call("tools/call", retry(&params, &state, "accept")).await;
    let r = completed(&reply);
    assert_eq!(r["output"], "before\nstatus=0\n", "{reply}");
    assert!(target.exists(), "{reply}");

    // The same state again: its question is answered; nothing runs.
    std::fs::remove_file(&target).unwrap();
    let reply = s.call("tools/call", retry(&params, &state, "accept")).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stale requestState"),
        "{reply}"
    );
    assert!(!target.exists());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_or_cancelled_on_retry_is_denied() {
    let mut s = discover(&[], json!({"elicitation": {"form": {}}})).await;
    let target = s.work.join("f");
    let params = call_params(
        &format!(
            "{TOUCH} {t}; echo status=$?; {TOUCH} {t}; echo status=$?",
            t = target.display()
        ),
        &s.work,
    );
    let reply = s.call("tools/call", params.clone()).await;
    let (_, state) = input_required(&reply);
    // The second exec asks again: a second round.
    let reply = s
        .call("tools/call", retry(&params, &state, "decline"))
        .await;
    let (_, second) = input_required(&reply);
    assert_ne!(second, state);
    let reply = s
        .call("tools/call", retry(&params, &second, "cancel"))
        .await;
    let r = completed(&reply);
    assert_eq!(
        r["output"],
        "Execution denied: User declined execution\nstatus=1\n\
         Execution denied: User cancelled execution\nstatus=1\n",
        "{reply}"
    );
    assert!(!target.exists());
    s.finish().await;
}

/// A client that never retries: after the approval wait the exec is
/// denied, the whole call is stopped and its processes are gone; the late
/// state is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_denies_after_the_wait_and_kills_the_call() {
    let mut s = discover(
        &["--elicitation-timeout-secs", "1"],
        json!({"elicitation": {}}),
    )
    .await;
    let m = marker();
    let target = s.work.join("f");
    let params = call_params(
        &format!("sleep 30.{m} & {TOUCH} {}; wait", target.display()),
        &s.work,
    );
    let reply = s.call("tools/call", params.clone()).await;
    let (_, state) = input_required(&reply);
    assert!(
        eventually(10, || !pids_with(&m).is_empty()).await,
        "the call's sleep never started"
    );
    assert!(
        eventually(15, || pids_with(&m).is_empty()).await,
        "processes left after the approval wait: {}",
        ps(&pids_with(&m))
    );
    let reply = s.call("tools/call", retry(&params, &state, "accept")).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert!(!target.exists());
    s.finish().await;
}

/// States that were not issued for this call approve nothing: forged,
/// tampered with, or presented with other arguments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_rebound_states_approve_nothing() {
    let mut s = discover(&[], json!({"elicitation": {}})).await;
    let target = s.work.join("f");
    let params = call_params(&format!("{TOUCH} {}", target.display()), &s.work);
    let reply = s.call("tools/call", params.clone()).await;
    let (_, state) = input_required(&reply);
    let other = call_params(&format!("{TOUCH} {}.other", target.display()), &s.work);
    let tampered = json!(format!("{}x", state.as_str().unwrap()));
    for (params, state) in [
        (&params, &json!("forged")),
        (&params, &tampered),
        (&other, &state),
    ] {
        let reply = s.call("tools/call", retry(params, state, "accept")).await;
        assert_eq!(reply["error"]["code"], -32602, "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("invalid requestState"),
            "{reply}"
        );
    }
    // Responses without a state, and a state without the answer.
    let mut bare = params.clone();
    bare["inputResponses"] = json!({"approval": {"action": "accept"}});
    let reply = s.call("tools/call", bare).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    let mut unanswered = params.clone();
    unanswered["requestState"] = state.clone();
    let reply = s.call("tools/call", unanswered).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert!(!target.exists());
    // The genuine state still works after all that.
    let reply = s
        .call("tools/call", retry(&params, &state, "decline"))
        .await;
    assert!(
        completed(&reply)["output"]
            .as_str()
            .unwrap()
            .contains("User declined execution")
    );
    assert!(!target.exists());
    s.finish().await;
}

/// A 2026-07-28 client that does not declare elicitation is denied with the
/// reason, not asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_elicitation_is_denied_with_the_reason() {
    let mut s = discover(&[], json!({})).await;
    let target = s.work.join("f");
    let params = call_params(&format!("{TOUCH} {}", target.display()), &s.work);
    let reply = s.call("tools/call", params).await;
    let r = completed(&reply);
    assert!(
        r["output"].as_str().unwrap().starts_with(
            "Execution denied: approval was needed, but the MCP client does not support elicitation"
        ),
        "{reply}"
    );
    assert!(!target.exists());
    s.finish().await;
}

/// rmcp's own client on 2026-07-28 (`server/discover`): its `call_tool`
/// fulfils the input request through the client's elicitation handler and
/// retries, as MRTR clients do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_discover_client_is_asked_and_its_answer_holds() {
    use crate::util::{Reply, setup};
    for (reply, created, output) in [
        (Reply::Accept, true, "status=0\n"),
        (
            Reply::Decline,
            false,
            "Execution denied: User declined execution\nstatus=1\n",
        ),
    ] {
        let s = setup()
            .rules("p.rules", PROMPT_TOUCH)
            .arg("--sandbox")
            .arg("read-only")
            .reply(reply)
            .discover()
            .start()
            .await;
        let info = s.service.peer_info().expect("server info");
        assert_eq!(
            info.protocol_version,
            rmcp::model::ProtocolVersion::V_2026_07_28
        );
        let target = s.work.join("f");
        let r = s
            .shell(&format!("{TOUCH} {}; echo status=$?", target.display()))
            .await;
        assert_eq!(r.output, output, "{reply:?}: {r:?}");
        assert_eq!(target.exists(), created, "{reply:?}");
        assert_eq!(s.asked().len(), 1, "{:?}", s.asked());
        assert!(
            s.log().contains("asking the user (input required)"),
            "{}",
            s.log()
        );
    }
}
