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
        crate::util::refused(&r.output) && r.output.ends_with("status=1\n"),
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
    assert!(!f.exists() && crate::util::refused(&r.output), "{r:?}");

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
    assert!(!f.exists() && crate::util::refused(&r.output), "{r:?}");
    // The next call without `_meta` uses the server's policy again.
    let r = crate::util::decode(&s.call(args.clone(), None).await.unwrap());
    assert!(f.exists(), "{r:?}");

    // A state the server cannot read: the call still runs, under the
    // server's own policy, and its result says why.
    let bad = json!({"codex/sandbox-state-meta": {"sandboxPolicy": {"type": "bogus"}}});
    std::fs::remove_file(&f).unwrap();
    let r = crate::util::decode(&s.call(args, Some(bad)).await.unwrap());
    assert!(f.exists(), "{r:?}");
    let warnings = r.structured["warnings"].to_string();
    assert!(
        warnings.contains("sandboxPolicy") && warnings.contains("server's default"),
        "{r:?}"
    );
    assert!(
        s.log().contains("cannot read `sandboxPolicy`"),
        "{}",
        s.log()
    );
    let r = s
        .call(json!({"command": "true", "workdir": "x"}), None)
        .await
        .unwrap();
    assert!(tool_error(&r).contains("not an absolute path"));
}

/// Codex 0.171's per-call state: `permissionProfile` under both `_meta`
/// keys, `sandboxCwd` as a `file://` URI (the recorded payload's shape).
fn profile_meta(work: &std::path::Path, profile: serde_json::Value) -> serde_json::Value {
    let state = json!({
        "permissionProfile": profile,
        "codexLinuxSandboxExe": "/opt/codex/codex",
        "sandboxCwd": format!("file://{}", work.display()),
        "useLegacyLandlock": false,
        "useMxc": false,
    });
    json!({
        "codex/sandbox-state-meta": state,
        "codex/sandbox-state": state,
        "codex/sandbox-launcher": {"codexExecutable": "/opt/codex/codex"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_permission_profiles_apply_per_call() {
    let s = setup().arg("--sandbox").arg("read-only").start().await;
    std::fs::create_dir(s.work.join(".agents")).unwrap();
    let inside = s.work.join("inside");
    let agents = s.work.join(".agents/planted");
    let outside = s.outside().join("outside");
    let command = format!(
        "for f in {} {} {}; do touch $f 2>/dev/null; echo $?; done",
        inside.display(),
        agents.display(),
        outside.display()
    );
    let args = json!({"command": command, "workdir": s.work});
    let entry = |path: &std::path::Path, access: &str| json!({"path": {"type": "path", "path": path}, "access": access, "missing_path_behavior": "skip"});
    let special = |kind: &str, access: &str| json!({"path": {"type": "special", "value": {"kind": kind}}, "access": access});
    let workspace_write = json!({"type": "managed", "network": "restricted", "file_system": {"type": "restricted",
        "entries": [special("root", "read"), entry(&s.work, "write"), special("slash_tmp", "write"),
                    entry(&s.work.join(".git"), "read"), entry(&s.work.join(".agents"), "read")]}});
    let r = crate::util::decode(
        &s.call(args.clone(), Some(profile_meta(&s.work, workspace_write)))
            .await
            .unwrap(),
    );
    assert_eq!(
        r.output,
        "0
1
1
",
        "{r:?}"
    );
    assert!(inside.exists() && !agents.exists() && !outside.exists());

    let disabled = json!({"type": "disabled"});
    let r = crate::util::decode(
        &s.call(args.clone(), Some(profile_meta(&s.work, disabled)))
            .await
            .unwrap(),
    );
    assert_eq!(
        r.output,
        "0
0
0
",
        "{r:?}"
    );
    assert!(outside.exists());

    // Reads restricted to the workspace cannot be enforced: refused, not
    // run with more than the client allowed.
    let restricted_reads = json!({"type": "managed", "network": "restricted", "file_system": {"type": "restricted",
        "entries": [entry(&s.work, "write")]}});
    let r = s
        .call(args, Some(profile_meta(&s.work, restricted_reads)))
        .await
        .unwrap();
    assert!(tool_error(&r).contains("not reads"), "{r:?}");
}
