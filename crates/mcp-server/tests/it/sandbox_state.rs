//! `codex/sandbox-state/update` and `_meta["codex/sandbox-state-meta"]`.

use serde_json::json;

use crate::util::{setup, tool_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_sandbox_is_workspace_write() {
    let s = setup().start().await;
    let inside = s.work.join("inside");
    let r = s
        .shell(&format!("touch {}; echo status=$?", inside.display()))
        .await;
    assert_eq!(r.output, "status=0\n", "{r:?}");
    // Outside the workspace and temp dirs: denied.
    let outside = s.outside().join("denied");
    let r = s
        .shell(&format!("touch {}; echo status=$?", outside.display()))
        .await;
    assert!(
        r.output.contains("Permission denied") && r.output.ends_with("status=1\n"),
        "{r:?}"
    );
    assert!(!outside.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_request_sets_the_policy_for_later_calls() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let f = s.work.join("f");
    let touch = format!("touch {}; echo status=$?", f.display());
    s.custom(
        "codex/sandbox-state/update",
        Some(json!({"sandboxPolicy": {"type": "read-only"}, "sandboxCwd": s.work, "codexLinuxSandboxExe": null})),
    )
    .await
    .unwrap();
    let r = s.shell(&touch).await;
    assert!(
        !f.exists() && r.output.contains("Permission denied"),
        "{r:?}"
    );

    s.custom(
        "codex/sandbox-state/update",
        Some(json!({"sandboxPolicy": {"type": "workspace-write", "network_access": false, "future_field": 1}, "sandboxCwd": s.work})),
    )
    .await
    .unwrap();
    let r = s.shell(&touch).await;
    assert!(f.exists(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_request_errors_as_the_reference() {
    let s = setup().start().await;
    let err = s
        .custom(
            "codex/sandbox-state/update",
            Some(json!({"sandboxPolicy": {"type": "bogus"}})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed to deserialize sandbox state"), "{err}");
    let r = s.shell("echo ok").await;
    assert_eq!(r.output, "ok\n");
}

/// rmcp's client always sends `params`; this speaks raw JSON-RPC instead.
#[test]
fn update_request_without_params() {
    let replies = crate::util::raw_exchange(&[
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "codex/sandbox-state/update"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "codex/sandbox-state/update",
               "params": {"sandboxPolicy": {"type": "danger-full-access"}, "sandboxCwd": "/", "codexLinuxSandboxExe": null}}),
    ]);
    let reply = |id: u64| {
        replies
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no reply {id}: {replies:?}"))
    };
    assert_eq!(reply(2)["error"]["code"], -32602, "{replies:?}");
    assert_eq!(
        reply(2)["error"]["message"],
        "missing params for sandbox state request",
        "{replies:?}"
    );
    assert_eq!(reply(3)["result"], json!({}), "{replies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_state_applies_to_one_call() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let f = s.work.join("f");
    let args =
        json!({"command": format!("touch {}; echo status=$?", f.display()), "workdir": s.work});
    let meta = json!({"codex/sandbox-state-meta": {"sandboxPolicy": {"type": "read-only"}, "sandboxCwd": s.work}});
    let r = crate::util::decode(&s.call(args.clone(), Some(meta)).await.unwrap());
    assert!(
        !f.exists() && r.output.contains("Permission denied"),
        "{r:?}"
    );
    // The next call without `_meta` uses the server's policy again.
    let r = crate::util::decode(&s.call(args, None).await.unwrap());
    assert!(f.exists(), "{r:?}");

    let bad = json!({"codex/sandbox-state-meta": {"sandboxPolicy": {"type": "bogus"}}});
    let err = s
        .call(json!({"command": "true", "workdir": s.work}), Some(bad))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed to deserialize sandbox state"), "{err}");
    let r = s
        .call(json!({"command": "true", "workdir": "x"}), None)
        .await
        .unwrap();
    assert!(tool_error(&r).contains("not an absolute path"));
}
