//! A server on raw pipes, spoken to as newline-delimited JSON-RPC (not
//! through rmcp's client, which fixes its own version and shapes): for the
//! protocol-version and MRTR tests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use test_support::report::ServerLog;

use crate::util::{bash, server_bin, server_dirs, wrapper};

/// A `prompt` rule for `touch`; the read-only sandbox makes escalation
/// visible: only an escalated `touch` can create a file in the workspace.
pub const PROMPT_TOUCH: &str = r#"prefix_rule(pattern = ["touch"], decision = "prompt")"#;
/// How long any one message may take before the test fails (no test waits
/// this long unless the server hangs).
pub const MESSAGE_WAIT: Duration = Duration::from_secs(60);

/// A server on raw pipes.
pub struct Raw {
    child: Child,
    /// Taken (closed) by [`Raw::finish`].
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Printed if the test fails (before `_dir`, which holds it, goes).
    _log: ServerLog,
    /// Removed when the session ends.
    _dir: tempfile::TempDir,
    /// The canonical workspace: the server's cwd and every call's `workdir`.
    pub work: PathBuf,
    next_id: u64,
    /// Every server-to-client request seen so far.
    pub server_requests: Vec<Value>,
    /// Put into every request's `_meta` (a 2026-07-28 session's per-request
    /// protocol version, client info and capabilities).
    pub request_meta: Option<Value>,
}

impl Raw {
    /// The server with [`PROMPT_TOUCH`] under the read-only sandbox.
    pub async fn start() -> Raw {
        Raw::start_with(PROMPT_TOUCH, &[]).await
    }

    /// The server with `rules` under the read-only sandbox, plus `extra`
    /// arguments.
    pub async fn start_with(rules_text: &str, extra: &[&str]) -> Raw {
        let _ = wrapper();
        let dirs = server_dirs(&[]);
        let dir = dirs.dir.path();
        let work = dirs.work.canonicalize().unwrap();
        let rules = dir.join("prompt.rules");
        std::fs::write(&rules, rules_text).unwrap();
        let mut args = vec![
            "--bash".to_string(),
            bash().display().to_string(),
            "--rules".to_string(),
            rules.display().to_string(),
            "--sandbox".to_string(),
            "read-only".to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let server = server_bin().display().to_string();
        let log = ServerLog::new(
            format!("{server} {}", args.join(" ")),
            &work,
            &dir.join("server.log"),
        );
        let mut child = dirs
            .command(&server, &args, "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.stderr())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Raw {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            _log: log,
            _dir: dirs.dir,
            work,
            next_id: 0,
            server_requests: Vec::new(),
            request_meta: None,
        }
    }

    pub async fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(&test_support::wire::line(message))
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    pub async fn recv(&mut self) -> Value {
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
    pub async fn request(
        &mut self,
        method: &str,
        params: Value,
        answer: &mut dyn FnMut(&Value) -> Value,
    ) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut params = params;
        if let (Some(meta), Some(object)) = (&self.request_meta, params.as_object_mut()) {
            let merged = object.entry("_meta").or_insert_with(|| json!({}));
            for (k, v) in meta.as_object().into_iter().flatten() {
                merged[k] = v.clone();
            }
        }
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
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.request(method, params, &mut |r| {
            panic!("unexpected server request: {r}")
        })
        .await
    }

    /// Initializes with `version` and `capabilities`; returns the result.
    pub async fn initialize(&mut self, version: &str, capabilities: Value) -> Value {
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
    pub async fn shell(&mut self, command: &str, answer: &mut dyn FnMut(&Value) -> Value) -> Value {
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
    pub async fn finish(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(MESSAGE_WAIT, self.child.wait())
            .await
            .expect("the server did not exit after stdin closed")
            .unwrap();
        assert!(status.success(), "server exit status {status}");
    }
}
