//! Background processes (issue 18): `exec_command`, `write_stdin`,
//! `kill_process`, `list_processes` through MCP, against the real server,
//! launcher, sandbox and patched Bash. Processes are found by a unique
//! marker in their command line (`sleep 300.<marker>`: GNU sleep takes a
//! fraction).

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{Value, json};

use crate::util::{Session, eventually, marker, pids_with, ps, setup, tool_error};

/// Calls tool `name` with `arguments`.
async fn call(s: &Session, name: &str, arguments: Value) -> CallToolResult {
    let params: CallToolRequestParams =
        serde_json::from_value(json!({"name": name, "arguments": arguments})).unwrap();
    s.service
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{name} {arguments}: {e}\n{}", s.log()))
}

/// A successful result's structured content (checked equal to its text).
fn ok(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    let text = &result.content[0].as_text().expect("text content").text;
    let structured = result
        .structured_content
        .clone()
        .expect("structuredContent");
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), structured);
    structured
}

async fn exec(s: &Session, arguments: Value) -> Value {
    ok(&call(s, "exec_command", arguments).await)
}

async fn write(s: &Session, id: &str, chars: &str, yield_ms: u64) -> Value {
    ok(&call(
        s,
        "write_stdin",
        json!({"session_id": id, "chars": chars, "yield_time_ms": yield_ms}),
    )
    .await)
}

fn id(v: &Value) -> String {
    v["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no session_id: {v}"))
        .to_owned()
}

/// Polls `id` (writing `chars` first) until its accumulated output
/// satisfies `done` or it ends; the output seen and the last result.
async fn read_until(
    s: &Session,
    id: &str,
    chars: &str,
    done: impl Fn(&str) -> bool,
) -> (String, Value) {
    let mut seen = String::new();
    let mut chars = chars;
    for _ in 0..100 {
        let r = write(s, id, chars, 500).await;
        chars = "";
        seen.push_str(r["output"].as_str().unwrap());
        if done(&seen) || r.get("exit_code").is_some() {
            return (seen, r);
        }
    }
    panic!("never done; output so far: {seen:?}\n{}", s.log());
}

async fn list(s: &Session) -> Vec<Value> {
    let r = ok(&call(s, "list_processes", json!({})).await);
    r["processes"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_are_listed_with_output_schemas() {
    let s = setup().start().await;
    let tools = s.service.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "shell",
            "exec_command",
            "write_stdin",
            "kill_process",
            "list_processes"
        ]
    );
    assert!(tools.iter().all(|t| t.output_schema.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_command_returns_its_output_and_exit_code_without_a_handle() {
    let s = setup().start().await;
    let r = exec(
        &s,
        json!({"cmd": "echo hi; test -t 0 && echo tty || echo pipes; exit 3", "workdir": s.work}),
    )
    .await;
    assert_eq!(r["output"], "hi\npipes\n", "{r}");
    assert_eq!(r["exit_code"], 3, "{r}");
    assert!(r.get("session_id").is_none(), "{r}");
    assert!(list(&s).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_reaches_a_process_over_pipes() {
    let s = setup().start().await;
    let r = exec(
        &s,
        json!({"cmd": "read line; echo got:$line", "yield_time_ms": 100}),
    )
    .await;
    let handle = id(&r);
    let (seen, last) = read_until(&s, &handle, "hello\n", |o| o.contains("got:")).await;
    assert!(seen.contains("got:hello"), "{seen:?}");
    let last = match last.get("exit_code") {
        Some(_) => last,
        None => read_until(&s, &handle, "", |_| false).await.1,
    };
    assert_eq!(last["exit_code"], 0, "{last}");
    assert!(last.get("session_id").is_none(), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tty_has_the_size_asked_for() {
    let s = setup().start().await;
    let r = exec(
        &s,
        json!({"cmd": "test -t 0 && echo tty; stty size", "tty": true, "rows": 33, "cols": 101}),
    )
    .await;
    assert_eq!(r["exit_code"], 0, "{r}");
    let output = r["output"].as_str().unwrap();
    assert!(output.contains("tty\r\n33 101\r\n"), "{r}");
}

/// Where the sandbox has a `devpts` of its own, the terminal is one of its.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tty_comes_from_the_sandboxs_private_devpts() {
    use std::os::unix::fs::MetadataExt;
    let s = setup().start().await;
    let r = exec(
        &s,
        json!({"cmd": "echo $(stat -Lc %d /proc/self/fd/0) $(stat -c %d /dev/pts)", "tty": true}),
    )
    .await;
    let output = r["output"].as_str().unwrap().trim().to_owned();
    let (terminal, devpts) = output.split_once(' ').unwrap_or_else(|| panic!("{r}"));
    let host: u64 = std::fs::metadata("/dev/pts").unwrap().dev();
    if devpts == host.to_string() {
        eprintln!("skipped: the sandbox has no private devpts here (no mount namespace)");
        return;
    }
    assert_eq!(
        terminal, devpts,
        "the terminal is not from the sandbox's devpts: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_repl_with_a_tty_adds_is_interrupted_and_exits() {
    if which("python3").is_none() {
        eprintln!("skipped: no python3 on PATH");
        return;
    }
    let s = setup().start().await;
    let r = exec(
        &s,
        json!({"cmd": "PYTHON_BASIC_REPL=1 exec python3 -q", "tty": true, "yield_time_ms": 2000}),
    )
    .await;
    let handle = id(&r);
    let mut seen = r["output"].as_str().unwrap().to_owned();
    if !seen.contains(">>> ") {
        seen.push_str(&read_until(&s, &handle, "", |o| o.contains(">>> ")).await.0);
    }
    let (out, _) = read_until(&s, &handle, "1+1\n", |o| o.contains("2\r\n>>> ")).await;
    assert!(out.contains("1+1\r\n2\r\n>>> "), "{out:?}");
    // A loop that would run for ever, stopped by Ctrl-C on the terminal.
    let (out, _) = read_until(&s, &handle, "while True: pass\n\n", |o| o.contains("... ")).await;
    assert!(out.contains("while True"), "{out:?}");
    let (out, r) = read_until(&s, &handle, "\u{3}", |o| o.contains("KeyboardInterrupt")).await;
    assert!(out.contains("KeyboardInterrupt"), "{out:?} {r}");
    assert!(r.get("exit_code").is_none(), "Ctrl-C ended the REPL: {r}");
    let (out, r) = read_until(&s, &handle, "exit()\n", |_| false).await;
    assert_eq!(r["exit_code"], 0, "{out:?} {r}");
    assert!(r.get("session_id").is_none(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_sleep_is_listed_and_killed_by_its_handle() {
    let m = marker();
    let s = setup().start().await;
    let r = exec(
        &s,
        json!({"cmd": format!("echo started; sleep 300.{m}"), "yield_time_ms": 200}),
    )
    .await;
    let handle = id(&r);
    assert_eq!(handle.len(), 32, "{r}");
    assert!(r.get("exit_code").is_none(), "{r}");
    assert!(eventually(10, || !pids_with(&m).is_empty()).await);
    let listed = list(&s).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["session_id"], handle.as_str());
    assert_eq!(listed[0]["running"], true);
    assert!(listed[0]["command"].as_str().unwrap().contains(&m));

    let killed = ok(&call(&s, "kill_process", json!({"session_id": handle})).await);
    assert_eq!(killed["exit_code"], 128 + 15, "{killed}");
    assert!(killed.get("session_id").is_none(), "{killed}");
    let left = pids_with(&m);
    assert!(left.is_empty(), "left behind: {}", ps(&left));
    assert!(list(&s).await.is_empty());
    let e = tool_error(&call(&s, "write_stdin", json!({"session_id": handle})).await);
    assert!(e.contains("unknown process handle"), "{e}");
    assert!(e.contains(&handle), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_are_read_in_chunks_and_the_drops_counted() {
    const LINES: u32 = 1_500_000;
    const RING: usize = 65_536;
    let expected: String = (1..=LINES).map(|i| format!("{i}\n")).collect();
    assert!(expected.len() > 10_000_000);
    let s = setup()
        .arg("--process-output-bytes")
        .arg(RING.to_string())
        .start()
        .await;
    let r = exec(
        &s,
        json!({"cmd": format!("seq 1 {LINES}"), "yield_time_ms": 0, "max_output_tokens": 4096}),
    )
    .await;
    let (mut offset, mut dropped_total) = (0usize, 0usize);
    // Each chunk is the stream's bytes right after what was dropped.
    let mut check = |r: &Value, offset: &mut usize| {
        let dropped = r["dropped_bytes"].as_u64().unwrap() as usize;
        let output = r["output"].as_str().unwrap();
        assert!(output.len() <= 4096 * 4, "{}", output.len());
        *offset += dropped;
        dropped_total += dropped;
        assert_eq!(
            output,
            &expected[*offset..*offset + output.len()],
            "at {offset}"
        );
        *offset += output.len();
    };
    check(&r, &mut offset);
    let Some(handle) = r
        .get("session_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        panic!("seq ended and was read whole in one call: {r}");
    };
    // Once it has ended, the ring holds the newest bytes only.
    let mut ended = false;
    for _ in 0..1000 {
        if list(&s)
            .await
            .first()
            .is_some_and(|p| p["running"] == false)
        {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ended, "seq never ended\n{}", s.log());
    let mut chunks = 0;
    loop {
        let r = ok(&call(
            &s,
            "write_stdin",
            json!({"session_id": handle, "yield_time_ms": 0, "max_output_tokens": 4096}),
        )
        .await);
        if chunks == 0 {
            // Everything but the ring's content was dropped, in one count.
            assert_eq!(
                r["dropped_bytes"].as_u64().unwrap() as usize,
                expected.len() - RING - offset,
                "{}",
                r["unread_bytes"]
            );
        } else {
            assert_eq!(r["dropped_bytes"], 0);
        }
        check(&r, &mut offset);
        chunks += 1;
        if r.get("session_id").is_none() {
            assert_eq!(r["exit_code"], 0);
            break;
        }
    }
    assert_eq!(offset, expected.len());
    assert_eq!(chunks, RING.div_ceil(4096 * 4));
    assert_eq!(dropped_total, expected.len() - RING);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_judge_a_background_shell_forbidden_denied_prompt_asked() {
    let m = marker();
    let s = setup()
        .rules(
            "a.rules",
            &format!(
                r#"prefix_rule(pattern = ["cat", "{m}"], decision = "forbidden", justification = "not this file")
prefix_rule(pattern = ["ls", "{m}"], decision = "prompt")"#
            ),
        )
        .start()
        .await;
    let r = exec(
        &s,
        json!({"cmd": format!("cat {m}; echo rc=$?; ls {m} 2>/dev/null; echo done"), "yield_time_ms": 5000}),
    )
    .await;
    let mut output = r["output"].as_str().unwrap().to_owned();
    if r.get("exit_code").is_none() {
        // It returned while the user was being asked.
        output.push_str(
            &read_until(&s, &id(&r), "", |o| o.ends_with("done\n"))
                .await
                .0,
        );
    }
    assert!(output.starts_with("Execution denied: "), "{r}");
    assert!(output.contains("not this file\nrc=1\n"), "{r}");
    assert!(output.ends_with("done\n"), "{r}");
    let asked = s.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].contains(&m), "{asked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_process_is_killed_after_the_idle_limit() {
    let m = marker();
    let s = setup().arg("--process-idle-secs").arg("1").start().await;
    let r = exec(
        &s,
        json!({"cmd": format!("sleep 300.{m}"), "yield_time_ms": 100}),
    )
    .await;
    let handle = id(&r);
    assert!(eventually(10, || !pids_with(&m).is_empty()).await);
    assert!(
        eventually(10, || pids_with(&m).is_empty()).await,
        "still running: {}",
        ps(&pids_with(&m))
    );
    assert!(list(&s).await.is_empty());
    let e = tool_error(&call(&s, "write_stdin", json!({"session_id": handle})).await);
    assert!(e.contains("unknown process handle"), "{e}");
    assert!(s.log().contains("idle limit"), "{}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_refuses_one_more_and_ends_no_other() {
    let m = marker();
    let s = setup().arg("--max-processes").arg("2").start().await;
    let mut handles = Vec::new();
    for n in 0..2 {
        let r = exec(
            &s,
            json!({"cmd": format!("sleep 300.{m}{n}"), "yield_time_ms": 0}),
        )
        .await;
        handles.push(id(&r));
    }
    let e = tool_error(
        &call(
            &s,
            "exec_command",
            json!({"cmd": format!("sleep 300.{m}9")}),
        )
        .await,
    );
    assert!(e.contains("too many background processes"), "{e}");
    assert!(e.contains("--max-processes 2"), "{e}");
    assert!(eventually(10, || sleeps(&m).len() == 2).await);
    let listed = list(&s).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|p| p["running"] == true), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_of_one_server_is_refused_by_another() {
    let m = marker();
    let a = setup().start().await;
    let b = setup().start().await;
    let r = exec(
        &a,
        json!({"cmd": format!("sleep 300.{m}"), "yield_time_ms": 0}),
    )
    .await;
    let handle = id(&r);
    for (tool, args) in [
        ("write_stdin", json!({"session_id": handle, "chars": "x"})),
        ("kill_process", json!({"session_id": handle})),
    ] {
        let e = tool_error(&call(&b, tool, args).await);
        assert!(e.contains("unknown process handle"), "{tool}: {e}");
    }
    assert!(list(&b).await.is_empty());
    assert!(eventually(10, || sleeps(&m).len() == 1).await);
    assert_eq!(list(&a).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_exit_with_ten_live_handles_leaves_no_process() {
    let m = marker();
    // One of them escalated (outside the sandbox, under its own launcher).
    let mut s = setup()
        .rules(
            "a.rules",
            &format!(r#"prefix_rule(pattern = ["sleep", "301.{m}"], decision = "allow")"#),
        )
        .start()
        .await;
    for n in 0..10 {
        let sleep = if n == 0 { "301" } else { "300" };
        let r = exec(
            &s,
            json!({"cmd": format!("sleep {sleep}.{m} & wait"), "yield_time_ms": 0}),
        )
        .await;
        id(&r);
    }
    assert!(
        eventually(20, || sleeps(&m).len() == 10).await,
        "{}",
        ps(&pids_with(&m))
    );
    assert_eq!(list(&s).await.len(), 10);
    s.service.cancellation_token().cancel();
    let status = tokio::time::timeout(Duration::from_secs(15), s.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the server did not exit:\n{}", s.log()))
        .unwrap();
    assert!(status.success(), "{status}\n{}", s.log());
    let left = pids_with(&m);
    assert!(left.is_empty(), "left behind: {}", ps(&left));
}

/// Live `sleep` processes carrying `marker` (not the launchers and Bash
/// whose command lines name it too).
fn sleeps(marker: &str) -> Vec<u32> {
    pids_with(marker)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
        })
        .collect()
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Calls tool `name` over HTTP.
async fn http_call(c: &crate::http::HttpClient, name: &str, arguments: Value) -> CallToolResult {
    let params: CallToolRequestParams =
        serde_json::from_value(json!({"name": name, "arguments": arguments})).unwrap();
    c.service
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{name} {arguments}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_handle_belongs_to_its_session_or_on_2026_07_28_its_token() {
    use crate::http::{OTHER, TOKEN, http};
    use crate::util::Reply;
    let m = marker();
    let s = http().tokens(&[TOKEN, OTHER]).start().await;
    // Sessions (2025-06-18): another session of the same token is another
    // client.
    let a = s.client(Some(TOKEN), Reply::Accept).await;
    let b = s.client(Some(TOKEN), Reply::Accept).await;
    let r = ok(&http_call(
        &a,
        "exec_command",
        json!({"cmd": format!("sleep 300.{m}1"), "yield_time_ms": 0}),
    )
    .await);
    let handle = id(&r);
    let e = tool_error(&http_call(&b, "kill_process", json!({"session_id": handle})).await);
    assert!(e.contains("unknown process handle"), "{e}");
    let r = ok(&http_call(
        &a,
        "write_stdin",
        json!({"session_id": handle, "yield_time_ms": 0}),
    )
    .await);
    assert_eq!(r["session_id"], handle.as_str(), "{r}");

    // Stateless requests (2026-07-28): the token is the client.
    let first = s.discover_client(Some(TOKEN), Reply::Accept).await;
    let r = ok(&http_call(
        &first,
        "exec_command",
        json!({"cmd": format!("sleep 300.{m}2"), "yield_time_ms": 0}),
    )
    .await);
    let stateless = id(&r);
    let again = s.discover_client(Some(TOKEN), Reply::Accept).await;
    let r = ok(&http_call(
        &again,
        "write_stdin",
        json!({"session_id": stateless, "yield_time_ms": 0}),
    )
    .await);
    assert_eq!(r["session_id"], stateless.as_str(), "{r}");
    let other = s.discover_client(Some(OTHER), Reply::Accept).await;
    let e = tool_error(&http_call(&other, "kill_process", json!({"session_id": stateless})).await);
    assert!(e.contains("unknown process handle"), "{e}");
    // Neither the sessions' nor the token's table holds the other's.
    let e = tool_error(&http_call(&again, "kill_process", json!({"session_id": handle})).await);
    assert!(e.contains("unknown process handle"), "{e}");
    assert!(
        eventually(10, || sleeps(&m).len() == 2).await,
        "{}",
        ps(&pids_with(&m))
    );
    let r = ok(&http_call(&again, "kill_process", json!({"session_id": stateless})).await);
    assert_eq!(r["exit_code"], 128 + 15, "{r}");
    assert!(eventually(10, || sleeps(&m).len() == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_session_that_ends_takes_its_processes_with_it() {
    use crate::http::{TOKEN, http};
    use crate::util::Reply;
    let m = marker();
    let s = http().start().await;
    let a = s.client(Some(TOKEN), Reply::Accept).await;
    let r = ok(&http_call(
        &a,
        "exec_command",
        json!({"cmd": format!("sleep 300.{m}"), "yield_time_ms": 0}),
    )
    .await);
    id(&r);
    assert!(eventually(10, || sleeps(&m).len() == 1).await);
    // The client closes its session (DELETE).
    a.service.cancel().await.unwrap();
    assert!(
        eventually(15, || pids_with(&m).is_empty()).await,
        "the session's process outlived it: {}\n{}",
        ps(&pids_with(&m)),
        s.log()
    );
}

/// On MCP 2026-07-28 a `prompt` in a background process comes back as an
/// input-required result of the call on its handle (rmcp's client asks
/// its handler and retries with the answer); a decline is a denial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_2026_07_28_a_prompt_in_a_background_process_rides_on_its_next_call() {
    use crate::util::Reply;
    for (reply, expected) in [(Reply::Accept, "rc=0"), (Reply::Decline, "rc=1")] {
        let m = marker();
        let s = setup()
            .discover()
            .reply(reply)
            .rules(
                "a.rules",
                &format!(r#"prefix_rule(pattern = ["sleep", "0.{m}"], decision = "prompt")"#),
            )
            .start()
            .await;
        // `read` holds the prompt back until write_stdin sends a line: the
        // question comes up while that call waits for output.
        let r = exec(
            &s,
            json!({"cmd": format!("read go; sleep 0.{m}; echo rc=$?"), "yield_time_ms": 100}),
        )
        .await;
        let handle = id(&r);
        let (out, _) = read_until(&s, &handle, "\n", |o| o.contains("rc=")).await;
        assert!(out.contains(expected), "{reply:?}: {out:?}");
        let asked = s.asked();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert!(asked[0].contains(&m), "{asked:?}");
    }
}

/// `kill_process` with SIGINT passes it on and leaves the process running;
/// SIGKILL then ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_is_passed_on_and_sigkill_ends() {
    let s = setup().start().await;
    let r = exec(
        &s,
        json!({"cmd": "trap 'echo got-int' INT; echo ready; while :; do read -t 0.05 x; done", "login": false, "yield_time_ms": 2000}),
    )
    .await;
    let handle = id(&r);
    assert_eq!(r["output"], "ready\n", "{r}");
    let r = ok(&call(
        &s,
        "kill_process",
        json!({"session_id": handle, "signal": "SIGINT"}),
    )
    .await);
    assert_eq!(r["session_id"], handle.as_str(), "{r}");
    let (out, r) = read_until(&s, &handle, "", |o| o.contains("got-int")).await;
    assert!(out.contains("got-int"), "{out:?} {r}");
    assert!(r.get("exit_code").is_none(), "{r}");
    let r = ok(&call(
        &s,
        "kill_process",
        json!({"session_id": handle, "signal": "SIGKILL"}),
    )
    .await);
    assert_eq!(r["exit_code"], 128 + 9, "{r}");
    assert!(list(&s).await.is_empty());
}

/// Issue 18 item 6: with the network off, a client's calls and background
/// processes share one private loopback network. A dev server started in
/// the background is reached by a later call; the host's 127.0.0.1 (a
/// listener on the very same port) and another client are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_http_server_is_reached_by_a_later_call_and_no_one_else() {
    use std::io::Read;
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let port = host.local_addr().unwrap().port();
    let a = setup().start().await;
    let r = exec(
        &a,
        json!({"cmd": format!("exec /usr/bin/python3 -u -m http.server {port} --bind 127.0.0.1"),
               "yield_time_ms": 0}),
    )
    .await;
    let server = id(&r);
    if let Some(line) = a
        .log()
        .lines()
        .find(|l| l.contains("no loopback network for this client"))
    {
        eprintln!("skipped: no network namespace can be had here: {line}");
        return;
    }
    let (seen, _) = read_until(&a, &server, "", |out| out.contains("Serving HTTP")).await;
    assert!(seen.contains(&format!("port {port}")), "{seen}");
    let fetch = format!("curl -sS -m 10 http://127.0.0.1:{port}/; echo rc=$?");
    let r = a.shell(&fetch).await;
    assert!(
        r.output.contains("Directory listing for /"),
        "{}\n{}",
        r.output,
        a.log()
    );
    assert_eq!(r.value("rc"), Some("0"), "{}", r.output);
    // Another client has a network of its own: nobody listens there.
    let b = setup().start().await;
    let r = b.shell(&fetch).await;
    assert!(!r.output.contains("Directory listing"), "{}", r.output);
    assert_eq!(r.value("rc"), Some("7"), "connection refused: {}", r.output);
    // Nothing reached the host's listener on that port.
    match host.accept() {
        Ok((mut conn, peer)) => {
            let mut got = String::new();
            let _ = conn.read_to_string(&mut got);
            panic!("the host's 127.0.0.1:{port} was reached from {peer}: {got}");
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
    }
    // The dev server saw the first client's request.
    let (seen, _) = read_until(&a, &server, "", |out| out.contains("\"GET / HTTP")).await;
    assert!(seen.contains("\"GET / HTTP/1.1\" 200"), "{seen}");
}

/// Two HTTP sessions of one server (the same token) are two clients: each
/// has a loopback network of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_each_session_has_a_loopback_of_its_own() {
    use crate::http::{TOKEN, http};
    use crate::util::Reply;
    let s = http().start().await;
    let a = s.client(Some(TOKEN), Reply::Accept).await;
    let b = s.client(Some(TOKEN), Reply::Accept).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = ok(&http_call(
        &a,
        "exec_command",
        json!({"cmd": format!("exec /usr/bin/python3 -u -m http.server {port} --bind 127.0.0.1"),
               "yield_time_ms": 0}),
    )
    .await);
    let server = id(&r);
    if let Some(line) = s
        .log()
        .lines()
        .find(|l| l.contains("no loopback network for this client"))
    {
        eprintln!("skipped: no network namespace can be had here: {line}");
        return;
    }
    let mut seen = String::new();
    for _ in 0..100 {
        let r = ok(&http_call(
            &a,
            "write_stdin",
            json!({"session_id": server, "yield_time_ms": 500}),
        )
        .await);
        seen.push_str(r["output"].as_str().unwrap());
        if seen.contains("Serving HTTP") || r.get("exit_code").is_some() {
            break;
        }
    }
    assert!(seen.contains("Serving HTTP"), "{seen}\n{}", s.log());
    let fetch = json!({
        "command": format!("curl -sS -m 10 -o /dev/null http://127.0.0.1:{port}/; echo rc=$?"),
        "workdir": s.work,
    });
    let output = |r: &CallToolResult| ok(r)["output"].as_str().unwrap().to_owned();
    let mine = output(&http_call(&a, "shell", fetch.clone()).await);
    assert!(mine.contains("rc=0"), "{mine}\n{}", s.log());
    let theirs = output(&http_call(&b, "shell", fetch).await);
    assert!(theirs.contains("rc=7"), "connection refused: {theirs}");
}
