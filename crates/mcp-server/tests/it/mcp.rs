//! The MCP surface: handshake, tool schema, results, input validation.

use serde_json::{Value, json};

use crate::util::{decode, setup, tool_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_advertises_tools_and_sandbox_state() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let info = s.service.peer_info().expect("server info");
    let info = serde_json::to_value(&*info).unwrap();
    assert_eq!(info["protocolVersion"], "2025-06-18");
    assert_eq!(info["serverInfo"]["name"], "codex-exec-mcp-server");
    for capability in ["codex/sandbox-state", "codex/sandbox-state-meta"] {
        assert_eq!(
            info["capabilities"]["experimental"][capability],
            json!({"version": "1.0.0"}),
            "{info}"
        );
    }
    assert!(info["capabilities"]["tools"].is_object(), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_schema_is_the_reference_one() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let tools = s.service.list_tools(None).await.unwrap().tools;
    // `shell` first, then the background-process tools (see `procs`).
    assert_eq!(tools.len(), 5);
    let tool = serde_json::to_value(&tools[0]).unwrap();
    assert_eq!(tool["name"], "shell");
    assert_eq!(
        tool["description"],
        "Runs a shell command and returns its output. You MUST provide the workdir as an absolute path."
    );
    // As `@openai/codex-shell-tool-mcp` 0.97.0 lists it.
    let reference: Value = serde_json::from_str(
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"ExecParams","type":"object","properties":{"command":{"description":"The bash string to execute.","type":"string"},"workdir":{"description":"The working directory to execute the command in. Must be an absolute path.","type":"string"},"timeout_ms":{"description":"The timeout for the command in milliseconds.","type":"integer","format":"uint64","minimum":0,"nullable":true},"login":{"description":"Launch Bash with -lc instead of -c: defaults to true.","type":"boolean","nullable":true}},"required":["command","workdir"]}"#,
    )
    .unwrap();
    assert_eq!(tool["inputSchema"], reference);
    let output = &tool["outputSchema"];
    assert_eq!(output["type"], "object");
    for field in [
        "exit_code",
        "output",
        "duration",
        "timed_out",
        "dropped_bytes",
    ] {
        assert!(
            output["properties"][field].is_object(),
            "{field} missing from {output}"
        );
    }
    assert_eq!(
        output["required"],
        json!(["exit_code", "output", "duration", "timed_out"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_commands_and_reports_output_and_status() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;

    let r = s.shell("echo hello").await;
    assert_eq!(
        (r.exit_code, r.output.as_str(), r.timed_out),
        (0, "hello\n", false),
        "{r:?}"
    );
    assert!(
        r.structured["duration"]["secs"].is_u64() && r.structured["duration"]["nanos"].is_u64(),
        "{r:?}"
    );
    assert_eq!(r.structured["dropped_bytes"], 0);

    let r = s
        .shell("echo one; echo two >&2; echo three; ls /nonexistent-dir-xyz; echo four >&2")
        .await;
    assert_eq!(
        r.output,
        "one\ntwo\nthree\nls: cannot access '/nonexistent-dir-xyz': No such file or directory\nfour\n",
        "{r:?}"
    );

    let r = s.shell("exit 3").await;
    assert_eq!(r.exit_code, 3, "{r:?}");

    let r = s.shell("pwd").await;
    assert_eq!(
        r.output.trim_end(),
        s.work.canonicalize().unwrap().to_str().unwrap(),
        "{r:?}"
    );

    // `login` false runs `bash -c`: no login shell.
    let r = s
        .shell_with(
            json!({"command": "shopt -q login_shell; echo $?", "workdir": s.work, "login": false}),
        )
        .await;
    assert_eq!(r.output, "1\n", "{r:?}");
    let r = s
        .shell_with(json!({"command": "shopt -q login_shell; echo $?", "workdir": s.work}))
        .await;
    assert_eq!(r.output, "0\n", "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn death_by_signal_is_128_plus_n() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    // The shell itself.
    let r = s.shell("kill -TERM $$").await;
    assert_eq!(r.exit_code, 128 + 15, "{r:?}");
    let r = s.shell("echo before; kill -9 $$; echo after").await;
    assert_eq!((r.exit_code, r.output.as_str()), (137, "before\n"), "{r:?}");
    assert!(!r.timed_out, "{r:?}");
    // A program the shell started.
    let r = s.shell("sh -c 'kill -KILL $$'").await;
    assert_eq!(r.exit_code, 128 + 9, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_a_result_with_exit_code_124() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let r = s
        .shell_with(
            json!({"command": "echo started; sleep 30", "workdir": s.work, "timeout_ms": 500}),
        )
        .await;
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.exit_code, 124, "{r:?}");
    assert!(r.output.starts_with("started\n"), "{r:?}");
    assert!(
        r.structured["duration"]["secs"].as_u64().unwrap() < 20,
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_and_the_server_keeps_serving() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;

    let err = s
        .call(json!({"workdir": s.work}), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing field `command`"), "{err}");

    let r = s
        .call(json!({"command": "true", "workdir": "relative/dir"}), None)
        .await
        .unwrap();
    assert_eq!(
        tool_error(&r),
        "workdir `relative/dir` is not an absolute path"
    );

    let missing = s.work.join("missing");
    let r = s
        .call(json!({"command": "true", "workdir": missing}), None)
        .await
        .unwrap();
    assert_eq!(
        tool_error(&r),
        format!("workdir `{}` does not exist", missing.display())
    );

    for timeout in [0u64, 10_000_000_000] {
        let r = s
            .call(
                json!({"command": "true", "workdir": s.work, "timeout_ms": timeout}),
                None,
            )
            .await
            .unwrap();
        assert!(
            tool_error(&r).contains(&format!("timeout_ms {timeout} is out of range")),
            "{r:?}"
        );
    }

    let err = s
        .call(json!({"command": 5, "workdir": s.work}), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed to deserialize parameters"), "{err}");

    let r = s
        .call(
            json!({"command": "echo still here", "workdir": s.work}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(decode(&r).output, "still here\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_limits_drop_the_middle() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .arg("--output-head-bytes")
        .arg("6")
        .arg("--output-tail-bytes")
        .arg("4")
        .start()
        .await;
    let r = s
        .shell("printf 'HEAD--'; head -c 1000 /dev/zero | tr '\\0' x; printf 'TAIL'")
        .await;
    assert!(r.output.starts_with("HEAD--"), "{r:?}");
    assert!(r.output.ends_with("TAIL"), "{r:?}");
    assert_eq!(r.structured["dropped_bytes"], 1000, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_token_gets_output_lines() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    // The latest line is reported, even when it came too soon after the
    // previous report and nothing follows it (it is sent once the rate
    // limit's interval has passed).
    let meta = json!({"progressToken": "p1"});
    let fifo = s.work.join("fifo");
    let command = format!(
        "mkfifo {f}; echo first-line; /bin/sleep 0.05; echo second-line; read x < {f}",
        f = fifo.display()
    );
    // If no progress ever comes, the command's timeout ends the call.
    let args = json!({"command": command, "workdir": s.work, "timeout_ms": 20_000});
    let call = s.call(args, Some(meta));
    tokio::pin!(call);
    // Wait for the progress notification, then let the command finish.
    let done = loop {
        tokio::select! {
            r = &mut call => break Some(r),
            () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {
                if s.progress().iter().any(|m| m.contains("second-line")) {
                    break None;
                }
            }
        }
    };
    assert!(done.is_none(), "call ended before any progress: {done:?}");
    std::fs::write(&fifo, "go\n").unwrap();
    let r = decode(&call.await.unwrap());
    assert_eq!(r.output, "first-line\nsecond-line\n", "{r:?}");
}
