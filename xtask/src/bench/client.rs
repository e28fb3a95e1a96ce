//! A minimal MCP client over a child's stdio: newline-delimited JSON-RPC,
//! `initialize`, `notifications/initialized`, `tools/call`.
//!
//! One reader thread per server routes responses to their requests by id, so
//! many threads can have calls in flight on one connection (the throughput
//! measurement). Server-to-client requests (elicitation, ping) are answered
//! with "method not found": the benchmark's commands never need approval.
//! [`Server::start_approving`] (for `cargo xtask bash-suite`) instead
//! declares elicitation support and accepts every request.

use std::{
    collections::HashMap,
    ffi::OsString,
    fs::File,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use test_support::wire;

/// How long one request may take before the bench gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);

/// The protocol version the bench client asks for (both servers speak it).
const PROTOCOL_VERSION: &str = "2025-06-18";

/// How to start a server.
#[derive(Clone, Debug)]
pub(crate) struct Launch {
    /// Program and arguments.
    pub(crate) argv: Vec<OsString>,
    pub(crate) env: Vec<(String, OsString)>,
    pub(crate) cwd: PathBuf,
    /// The server's stderr goes here (appended).
    pub(crate) stderr_log: PathBuf,
}

impl Launch {
    pub(crate) fn describe(&self) -> String {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

type Reply = std::result::Result<Value, String>;
type Pending = Arc<Mutex<HashMap<u64, mpsc::Sender<Reply>>>>;

/// A running server with an initialized MCP session.
pub(crate) struct Server {
    child: Child,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    pending: Pending,
    next_id: AtomicU64,
    reader: Option<JoinHandle<()>>,
    what: String,
    /// Elicitation requests accepted (only with [`Server::start_approving`]).
    approvals: Arc<AtomicU64>,
}

/// What a `shell` call returned.
pub(crate) struct ShellOutcome {
    /// Length of the `output` field.
    pub(crate) output_len: usize,
}

impl Server {
    /// Spawns the server; returns it before `initialize` (see [`Server::initialize`]).
    pub(crate) fn spawn(launch: &Launch) -> Result<Server> {
        Server::spawn_with(launch, false)
    }

    /// Spawns and initializes a server whose every approval request
    /// (`elicitation/create`) this client accepts.
    pub(crate) fn start_approving(launch: &Launch) -> Result<Server> {
        let server = Server::spawn_with(launch, true)?;
        server.request(
            "initialize",
            wire::initialize_params(
                PROTOCOL_VERSION,
                json!({"elicitation": {}}),
                "xtask-bash-suite",
            ),
        )?;
        server.notify("notifications/initialized", json!({}))?;
        Ok(server)
    }

    /// How many approval requests were accepted so far.
    pub(crate) fn approvals(&self) -> u64 {
        self.approvals.load(Ordering::Relaxed)
    }

    fn spawn_with(launch: &Launch, approve: bool) -> Result<Server> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&launch.stderr_log)
            .with_context(|| format!("cannot open {}", launch.stderr_log.display()))?;
        let (program, args) = launch.argv.split_first().context("empty server argv")?;
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&launch.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .env_remove("RUST_LOG")
            .env_remove("CODEX_BASH_PATH")
            .env_remove("BASH_EXEC_WRAPPER");
        for (k, v) in &launch.env {
            command.env(k, v);
        }
        let what = launch.describe();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let stdin = Arc::new(Mutex::new(Some(stdin)));
        let pending: Pending = Arc::default();
        let approvals = Arc::new(AtomicU64::new(0));
        let reader = {
            let (stdin, pending) = (Arc::clone(&stdin), Arc::clone(&pending));
            let approvals = approve.then(|| Arc::clone(&approvals));
            std::thread::spawn(move || {
                read_loop(
                    BufReader::new(stdout),
                    &stdin,
                    &pending,
                    approvals.as_deref(),
                )
            })
        };
        Ok(Server {
            child,
            stdin,
            pending,
            next_id: AtomicU64::new(1),
            reader: Some(reader),
            what,
            approvals,
        })
    }

    /// Spawns and initializes; also returns the time from spawn to the
    /// `initialize` response.
    pub(crate) fn start(launch: &Launch) -> Result<(Server, Duration)> {
        let t = Instant::now();
        let server = Server::spawn(launch)?;
        server.initialize()?;
        let elapsed = t.elapsed();
        server.notify("notifications/initialized", json!({}))?;
        Ok((server, elapsed))
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn initialize(&self) -> Result<Value> {
        self.request(
            "initialize",
            wire::initialize_params(PROTOCOL_VERSION, json!({}), "xtask-bench"),
        )
    }

    /// Sets the sandbox policy as Codex does (the reference needs this on
    /// Linux before it runs anything).
    pub(crate) fn sandbox_state(&self, policy: Value, cwd: &Path) -> Result<()> {
        self.request(
            "codex/sandbox-state/update",
            json!({"sandboxPolicy": policy, "sandboxCwd": cwd}),
        )?;
        Ok(())
    }

    /// One `shell` call; fails unless the command exited 0 and did not time out.
    pub(crate) fn shell(
        &self,
        command: &str,
        workdir: &Path,
        login: bool,
        timeout_ms: u64,
    ) -> Result<ShellOutcome> {
        let result = self.request(
            "tools/call",
            wire::shell_params(shell_arguments(command, workdir, login, timeout_ms), None),
        )?;
        shell_outcome(&result, command, &self.what)
    }

    pub(crate) fn request(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        self.send(&wire::request(id, method, params))?;
        match rx.recv_timeout(REQUEST_TIMEOUT) {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => bail!("{method} on {}: error {error}", self.what),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!(
                    "{method} on {}: no answer in {REQUEST_TIMEOUT:?}",
                    self.what
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("{method} on {}: server closed its stdout", self.what)
            }
        }
    }

    pub(crate) fn notify(&self, method: &str, params: Value) -> Result<()> {
        self.send(&wire::notification(method, params))
    }

    fn send(&self, message: &Value) -> Result<()> {
        write_line(&self.stdin, message).with_context(|| format!("cannot write to {}", self.what))
    }

    /// Closes stdin and waits for the server to exit (killing it after 10 s).
    pub(crate) fn shutdown(mut self) -> Result<()> {
        self.close()
    }

    fn close(&mut self) -> Result<()> {
        drop(self.stdin.lock().expect("stdin lock").take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                self.child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.close();
        }
    }
}

fn write_line(stdin: &Mutex<Option<ChildStdin>>, message: &Value) -> std::io::Result<()> {
    let line = wire::line(message);
    let mut guard = stdin.lock().expect("stdin lock");
    let stdin = guard
        .as_mut()
        .ok_or_else(|| std::io::Error::other("stdin already closed"))?;
    stdin.write_all(&line)?;
    stdin.flush()
}

fn read_loop(
    mut stdout: BufReader<std::process::ChildStdout>,
    stdin: &Mutex<Option<ChildStdin>>,
    pending: &Pending,
    approvals: Option<&AtomicU64>,
) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdout.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Ok(message) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        let id = &message["id"];
        if message.get("method").is_some() {
            if let Some(approvals) = approvals
                && message["method"] == "elicitation/create"
                && !id.is_null()
            {
                approvals.fetch_add(1, Ordering::Relaxed);
                let reply = json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "result": {"action": "accept", "content": {}},
                });
                let _ = write_line(stdin, &reply);
                continue;
            }
            if !id.is_null() {
                let reply = json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "error": {"code": -32601, "message": "not supported by the bench client"},
                });
                let _ = write_line(stdin, &reply);
            }
            continue;
        }
        let Some(id) = id.as_u64() else { continue };
        let Some(tx) = pending.lock().expect("pending lock").remove(&id) else {
            continue;
        };
        let reply = match (message.get("result"), message.get("error")) {
            (_, Some(error)) => Err(error.to_string()),
            (Some(result), None) => Ok(result.clone()),
            (None, None) => Err(format!("response without result: {message}")),
        };
        let _ = tx.send(reply);
    }
    // Dropping the senders tells every waiting request the server is gone.
    pending.lock().expect("pending lock").clear();
}

/// The arguments of a bench `shell` call.
pub(crate) fn shell_arguments(
    command: &str,
    workdir: &Path,
    login: bool,
    timeout_ms: u64,
) -> Value {
    json!({"command": command, "workdir": workdir, "login": login, "timeout_ms": timeout_ms})
}

/// A `shell` result, checked: fails unless the command exited 0 and did
/// not time out.
pub(crate) fn shell_outcome(result: &Value, command: &str, what: &str) -> Result<ShellOutcome> {
    let text = result["content"][0]["text"]
        .as_str()
        .with_context(|| format!("shell call {command:?}: no text content in {result}"))?;
    let body: Value = serde_json::from_str(text).with_context(|| {
        format!(
            "shell call {command:?}: text is not JSON: {}",
            truncate(text, 500)
        )
    })?;
    let exit_code = body["exit_code"].as_i64().unwrap_or(-1);
    let output = body["output"].as_str().unwrap_or_default();
    if result["isError"] == json!(true) || exit_code != 0 || body["timed_out"] == json!(true) {
        bail!(
            "shell call {command:?} on {what} failed: exit {exit_code}, output {:?}",
            truncate(output, 500)
        );
    }
    Ok(ShellOutcome {
        output_len: output.len(),
    })
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
