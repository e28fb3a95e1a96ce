//! Protocol-version negotiation, spoken as raw newline-delimited JSON-RPC
//! (not through rmcp's client, which fixes its own version and shapes): a
//! client on each revision with an `initialize` handshake gets that revision
//! back, lists the tool, runs `echo`, and meets a `prompt` rule — answered
//! through `elicitation/create` when it declared the capability, denied with
//! the reason when it did not (2024-11-05 and 2025-03-26 predate elicitation).
//! A version the server does not know, or 2026-07-28 asked for through
//! `initialize` (that revision has no handshake), is answered with the
//! newest revision that has one, as the spec asks ("the server MUST
//! respond with another protocol version it supports"; "this SHOULD be the
//! latest"). rmcp does the negotiation (`negotiate_protocol_version`); the
//! server keeps its default set of versions. A client that opens with
//! `server/discover` gets 2026-07-28 itself: see `mrtr.rs`.
//!
//! Every revision gets the same tool list and results, `outputSchema` and
//! `structuredContent` included (added in 2025-06-18; older clients ignore
//! unknown fields), and every elicitation carries `"mode": "form"` (added in
//! 2025-11-25).

use std::path::Path;

use serde_json::{Value, json};

use crate::raw::Raw;

/// The file name Bash resolves `touch` to is what the message shows; an
/// absolute path in the command keeps it fixed.
const TOUCH: &str = "/usr/bin/touch";

/// One client session on `version`: negotiation, tool list, echo, prompt.
async fn exercise(version: &str, capabilities: Value, elicits: bool) {
    assert!(Path::new(TOUCH).is_file(), "{TOUCH} missing");
    let mut s = Raw::start().await;
    let init = s.initialize(version, capabilities).await;
    assert_eq!(init["protocolVersion"], version, "{init}");
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    assert_eq!(
        init["capabilities"]["experimental"]["codex/sandbox-state"]["version"], "1.0.0",
        "{init}"
    );
    assert_eq!(
        init["serverInfo"]["name"], "codex-exec-mcp-server",
        "{init}"
    );

    let list = s.call("tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().expect("tools");
    assert_eq!(tools.len(), 5, "{list}");
    assert_eq!(tools[0]["name"], "shell", "{list}");
    assert_eq!(
        tools[0]["inputSchema"]["required"],
        json!(["command", "workdir"]),
        "{list}"
    );
    assert_eq!(tools[0]["outputSchema"]["type"], "object", "{list}");

    let r = s
        .shell("echo ok", &mut |r| panic!("unexpected server request: {r}"))
        .await;
    assert_eq!(r["output"], "ok\n", "{r}");
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(r["timed_out"], false, "{r}");

    let target = s.work.join("f");
    let command = format!("{TOUCH} {}; echo status=$?", target.display());
    let r = s
        .shell(
            &command,
            &mut |_| json!({"action": "accept", "content": {}}),
        )
        .await;
    let asked: Vec<&Value> = s.server_requests.iter().collect();
    if elicits {
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(asked[0]["method"], "elicitation/create", "{asked:?}");
        let params = &asked[0]["params"];
        assert_eq!(
            params["message"],
            format!(
                "Allow agent to run `{TOUCH} {}` in `{}`?",
                target.display(),
                s.work.display()
            ),
            "{params}"
        );
        assert_eq!(params["requestedSchema"]["type"], "object", "{params}");
        // rmcp tags every elicitation with the 2025-11-25 `mode`; an older
        // client ignores the extra field.
        assert!(params.get("mode").is_none_or(|m| m == "form"), "{params}");
        assert_eq!(r["output"], "status=0\n", "{r}");
        assert!(target.exists(), "{r}");
    } else {
        assert!(
            asked.is_empty(),
            "a client without elicitation was asked: {asked:?}"
        );
        assert!(!target.exists(), "{r}");
        let output = r["output"].as_str().unwrap();
        assert!(
            output.starts_with("Execution denied: approval was needed, but the MCP client does not support elicitation"),
            "{r}"
        );
        assert!(output.ends_with("status=1\n"), "{r}");
    }
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2024_11_05() {
    exercise("2024-11-05", json!({}), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2025_03_26() {
    exercise("2025-03-26", json!({"roots": {"listChanged": true}}), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2025_06_18_elicitation() {
    exercise("2025-06-18", json!({"elicitation": {}}), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2025_11_25_form_elicitation() {
    exercise("2025-11-25", json!({"elicitation": {"form": {}}}), true).await;
}

/// 2025-11-25 lets a client declare URL-mode elicitation only: the server
/// cannot ask for a form, so it denies and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2025_11_25_url_only_elicitation() {
    exercise("2025-11-25", json!({"elicitation": {"url": {}}}), false).await;
}

/// A version from the future, and 2026-07-28 asked through `initialize`
/// (that revision has none), are answered with 2025-11-25, the newest revision with the handshake;
/// the session then works on that revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_version_gets_a_supported_one() {
    for asked in ["2099-01-01", "2026-07-28"] {
        let mut s = Raw::start().await;
        let init = s.initialize(asked, json!({"elicitation": {}})).await;
        assert_eq!(init["protocolVersion"], "2025-11-25", "{asked}: {init}");
        let r = s
            .shell("echo ok", &mut |r| panic!("unexpected server request: {r}"))
            .await;
        assert_eq!(r["output"], "ok\n", "{asked}: {r}");
        s.finish().await;
    }
}

/// An old version the server never supported is answered likewise (the
/// client then disconnects if it cannot speak it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ancient_version_gets_a_supported_one() {
    let mut s = Raw::start().await;
    let init = s.initialize("2000-01-01", json!({})).await;
    assert_eq!(init["protocolVersion"], "2025-11-25", "{init}");
    s.finish().await;
}

/// Some clients pipeline requests right after `initialize` without waiting
/// for their own `notifications/initialized` to be sent first (the spec says
/// SHOULD NOT, not MUST NOT): they are served, and so is `ping`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_initialized_are_served() {
    let mut s = Raw::start().await;
    let init = s
        .call(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw-versions", "version": "0"}}),
        )
        .await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    let list = s.call("tools/list", json!({})).await;
    assert_eq!(list["result"]["tools"][0]["name"], "shell", "{list}");
    let ping = s.call("ping", json!({})).await;
    assert_eq!(ping["result"], json!({}), "{ping}");
    s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    let r = s
        .shell("echo ok", &mut |r| panic!("unexpected server request: {r}"))
        .await;
    assert_eq!(r["output"], "ok\n", "{r}");
    s.finish().await;
}
