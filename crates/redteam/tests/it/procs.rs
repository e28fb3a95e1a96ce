//! Background processes (issue 18) under attack: handles guessed or taken
//! from another client, a background process that tries to outlive its
//! kill, and output that tries to flood the server's memory.

use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{Value, json};

use crate::harness::{RULES, Server, start, start_with_args};

pub(crate) async fn call(s: &Server, name: &str, arguments: Value) -> CallToolResult {
    let params: CallToolRequestParams =
        serde_json::from_value(json!({"name": name, "arguments": arguments})).unwrap();
    s.service
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{name} {arguments}: {e}"))
}

pub(crate) fn structured(r: &CallToolResult) -> Value {
    assert_eq!(r.is_error, Some(false), "{r:?}");
    r.structured_content.clone().expect("structuredContent")
}

fn error_text(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "{r:?}");
    r.content[0].as_text().expect("text").text.clone()
}

/// A unique token for command lines.
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{nanos:09}", std::process::id())
}

/// Live (not zombie) processes whose command line contains `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if pid != std::process::id()
            && !zombie
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            pids.push(pid);
        }
    }
    pids
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

async fn wait_for(secs: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Another client's handle, the handle with one digit changed, and a few
/// thousand guesses (sequential, random, malformed) all get the same
/// "unknown handle" error and touch nothing; the owner's handle still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_and_foreign_handles_reach_nothing() {
    let m = marker();
    let owner = start(RULES).await;
    let thief = start(RULES).await;
    let r = structured(
        &call(
            &owner,
            "exec_command",
            json!({"cmd": format!("sleep 300.{m}"), "yield_time_ms": 0}),
        )
        .await,
    );
    let handle = r["session_id"].as_str().unwrap().to_owned();
    assert!(wait_for(10, || sleeps(&m).len() == 1).await);

    let mut near = handle.clone().into_bytes();
    near[31] = if near[31] == b'0' { b'1' } else { b'0' };
    let mut guesses = vec![
        handle.clone(),
        String::from_utf8(near).unwrap(),
        String::new(),
        "0".repeat(32),
        format!("{handle} "),
        handle.to_uppercase(),
        "../".repeat(20),
    ];
    for n in 0..2000u64 {
        guesses.push(format!("{n:032x}"));
    }
    for guess in &guesses {
        let clients = match *guess == handle {
            true => vec![(&thief, "thief")],
            false => vec![(&thief, "thief"), (&owner, "owner")],
        };
        for (client, name) in clients {
            let e = error_text(
                &call(
                    client,
                    "kill_process",
                    json!({"session_id": guess, "signal": "SIGKILL"}),
                )
                .await,
            );
            assert!(
                e.contains("unknown process handle"),
                "{name} {guess:?}: {e}"
            );
        }
    }
    // Nothing was killed, and only the owner sees it.
    assert_eq!(sleeps(&m).len(), 1);
    let listed = structured(&call(&thief, "list_processes", json!({})).await);
    assert_eq!(listed["processes"], json!([]));
    let r = structured(
        &call(
            &owner,
            "write_stdin",
            json!({"session_id": handle, "yield_time_ms": 0}),
        )
        .await,
    );
    assert_eq!(r["session_id"], handle.as_str(), "{r}");
}

/// A background process that ignores SIGTERM, starts a new session,
/// double-forks and has an escalated program running still dies whole
/// when it is killed through its handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_process_does_not_escape_its_kill() {
    let escape = |m: &str| {
        format!(
            "trap '' TERM HUP INT; \
             setsid sleep 300.{m} & \
             ( ( sleep 301.{m} & ) & ) ; \
             nohup sleep 302.{m} >/dev/null 2>&1 & \
             sleep 304.{m} & \
             echo started; wait"
        )
    };
    // Control: under a plain Bash killed with SIGKILL, the sleeps survive.
    let c = format!("{}0", marker());
    let mut bash = std::process::Command::new("bash")
        .arg("-c")
        .arg(escape(&c))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(20, || sleeps(&c).len() == 4).await,
        "control: {:?}",
        sleeps(&c)
    );
    bash.kill().unwrap();
    bash.wait().unwrap();
    let survivors = sleeps(&c);
    for pid in &survivors {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        survivors.len() >= 3,
        "control: the attack no longer escapes a plain kill: {survivors:?}"
    );

    let m = marker();
    let s = start(RULES).await;
    // `sleep` is allowed by RULES: `sleep 304.<m>` runs escalated, outside
    // the sandbox, under its own launcher.
    let cmd = escape(&m);
    let r = structured(
        &call(
            &s,
            "exec_command",
            json!({"cmd": cmd, "yield_time_ms": 1000}),
        )
        .await,
    );
    let handle = r["session_id"].as_str().unwrap().to_owned();
    assert!(
        wait_for(20, || sleeps(&m).len() == 4).await,
        "{:?}",
        sleeps(&m)
    );
    let killed = structured(&call(&s, "kill_process", json!({"session_id": handle})).await);
    assert!(killed["exit_code"].is_i64(), "{killed}");
    let left = pids_with(&m);
    assert!(
        left.is_empty(),
        "escaped the kill: {left:?}\n{}",
        s.log_text()
    );
}

/// A process printing gigabytes that nobody reads costs the server its
/// ring buffer, not the output's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_output_does_not_flood_the_server() {
    let s = start_with_args(RULES, &["--process-output-bytes", "1048576"]).await;
    // Warm up: the first process's threads and buffers.
    let warm = structured(
        &call(
            &s,
            "exec_command",
            json!({"cmd": "echo warm", "yield_time_ms": 5000}),
        )
        .await,
    );
    assert_eq!(warm["output"], "warm\n");
    let before = rss_kib(s.pid);
    let r = structured(
        &call(
            &s,
            "exec_command",
            json!({"cmd": "cat /dev/zero", "yield_time_ms": 0, "max_output_tokens": 1}),
        )
        .await,
    );
    let handle = r["session_id"].as_str().unwrap().to_owned();
    let mut dropped = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while dropped < 1 << 30 && Instant::now() < deadline {
        let r = structured(
            &call(
                &s,
                "write_stdin",
                json!({"session_id": handle, "yield_time_ms": 200, "max_output_tokens": 1}),
            )
            .await,
        );
        dropped += r["dropped_bytes"].as_u64().unwrap();
        assert!(r["output"].as_str().unwrap().len() <= 4);
        assert!(r["unread_bytes"].as_u64().unwrap() <= 1 << 20, "{r}");
    }
    assert!(dropped >= 1 << 30, "only {dropped} bytes went by");
    let after = rss_kib(s.pid);
    assert!(
        after < before + 32 * 1024,
        "the server grew from {before} KiB to {after} KiB over {dropped} bytes of output"
    );
    structured(
        &call(
            &s,
            "kill_process",
            json!({"session_id": handle, "signal": "SIGKILL"}),
        )
        .await,
    );
}
