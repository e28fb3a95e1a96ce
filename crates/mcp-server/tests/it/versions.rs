//! Protocol-version negotiation, spoken as raw newline-delimited JSON-RPC
//! (not through rmcp's client, which fixes its own version and shapes): a
//! client on each revision with an `initialize` handshake gets that revision
//! back, lists the tool, runs `echo`, and meets a `prompt` rule — answered
//! through `elicitation/create` when it declared the capability, denied with
//! the reason when it did not (2024-11-05 and 2025-03-26 predate elicitation).
//! A version the server does not know, or one without `initialize`
//! (2026-07-28 opens with `server/discover`), is answered with the newest
//! revision that has the handshake, as the spec asks ("the server MUST
//! respond with another protocol version it supports"; "this SHOULD be the
//! latest"). rmcp does the negotiation (`negotiate_protocol_version`); the
//! server keeps its default set of versions.
//!
//! Every revision gets the same tool list and results, `outputSchema` and
//! `structuredContent` included (added in 2025-06-18; older clients ignore
//! unknown fields), and every elicitation carries `"mode": "form"` (added in
//! 2025-11-25).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::util::{bash, server_bin, wrapper};

/// A `prompt` rule for `touch`; the read-only sandbox makes escalation
/// visible: only an escalated `touch` can create a file in the workspace.
const PROMPT_TOUCH: &str = r#"prefix_rule(pattern = ["touch"], decision = "prompt")"#;
/// How long any one message may take before the test fails (no test waits
/// this long unless the server hangs).
const MESSAGE_WAIT: Duration = Duration::from_secs(60);

/// A server on raw pipes.
struct Raw {
    child: Child,
    /// Taken (closed) by [`Raw::finish`].
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Removed when the session ends.
    _dir: tempfile::TempDir,
    /// The canonical workspace: the server's cwd and every call's `workdir`.
    work: PathBuf,
    log: PathBuf,
    cmdline: String,
    next_id: u64,
    /// Every server-to-client request seen so far.
    server_requests: Vec<Value>,
}

impl Raw {
    async fn start() -> Raw {
        let _ = wrapper();
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        for d in ["codex/rules", "home", "work"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let work = dir.path().join("work").canonicalize().unwrap();
        let rules = dir.path().join("prompt.rules");
        std::fs::write(&rules, PROMPT_TOUCH).unwrap();
        let log = dir.path().join("server.log");
        let args = [
            "--bash".to_string(),
            bash().display().to_string(),
            "--rules".to_string(),
            rules.display().to_string(),
            "--sandbox".to_string(),
            "read-only".to_string(),
        ];
        let mut child = tokio::process::Command::new(server_bin())
            .args(&args)
            .current_dir(&work)
            .env("CODEX_HOME", dir.path().join("codex"))
            .env("HOME", dir.path().join("home"))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let cmdline = format!("{} {}", server_bin().display(), args.join(" "));
        Raw {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            _dir: dir,
            work,
            log,
            cmdline,
            next_id: 0,
            server_requests: Vec::new(),
        }
    }

    async fn send(&mut self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let line = match tokio::time::timeout(MESSAGE_WAIT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("the server closed stdout"),
            Ok(Err(e)) => panic!("reading the server's stdout failed: {e}"),
            Err(_) => panic!("no message from the server within {MESSAGE_WAIT:?}"),
        };
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Sends a request and returns its response (`result` or `error`),
    /// answering the server's own requests with `answer` meanwhile.
    async fn request(
        &mut self,
        method: &str,
        params: Value,
        answer: &mut dyn FnMut(&Value) -> Value,
    ) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let message = self.recv().await;
            assert_eq!(message["jsonrpc"], "2.0", "{message}");
            match (message.get("id"), message.get("method")) {
                (Some(server_id), Some(_)) => {
                    let reply =
                        json!({"jsonrpc": "2.0", "id": server_id, "result": answer(&message)});
                    self.server_requests.push(message);
                    self.send(&reply).await;
                }
                (None, Some(_)) => {} // a notification (progress, logging)
                (Some(reply_id), None) if *reply_id == json!(id) => return message,
                _ => panic!("unexpected message while waiting for reply {id}: {message}"),
            }
        }
    }

    /// `request` for a server that must not ask anything back.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.request(method, params, &mut |r| {
            panic!("unexpected server request: {r}")
        })
        .await
    }

    /// Initializes with `version` and `capabilities`; returns the result.
    async fn initialize(&mut self, version: &str, capabilities: Value) -> Value {
        let reply = self
            .call(
                "initialize",
                json!({"protocolVersion": version, "capabilities": capabilities,
                       "clientInfo": {"name": "raw-versions", "version": "0"}}),
            )
            .await;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        reply
            .get("result")
            .unwrap_or_else(|| panic!("initialize failed: {reply}"))
            .clone()
    }

    /// Calls `shell` and returns the decoded result, checking its shape:
    /// one text content holding the same object as `structuredContent`.
    async fn shell(&mut self, command: &str, answer: &mut dyn FnMut(&Value) -> Value) -> Value {
        let params =
            json!({"name": "shell", "arguments": {"command": command, "workdir": self.work}});
        let reply = self.request("tools/call", params, answer).await;
        let result = &reply["result"];
        assert_eq!(result["isError"], false, "{reply}");
        let content = result["content"].as_array().expect("content");
        assert_eq!(content.len(), 1, "{reply}");
        assert_eq!(content[0]["type"], "text", "{reply}");
        let text: Value = serde_json::from_str(content[0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, result["structuredContent"], "{reply}");
        text
    }

    /// Closes stdin and checks the server exits 0.
    async fn finish(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(MESSAGE_WAIT, self.child.wait())
            .await
            .expect("the server did not exit after stdin closed")
            .unwrap();
        assert!(status.success(), "server exit status {status}");
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        crate::util::report_server_on_panic(&self.cmdline, &self.work, &self.log);
    }
}

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
    assert_eq!(tools.len(), 1, "{list}");
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

/// A version from the future, and 2026-07-28 (which has no `initialize`),
/// are answered with 2025-11-25, the newest revision with the handshake;
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
