//! The test harness: a server session with its own `CODEX_HOME`, `HOME` and
//! workspace, a scripted MCP client, and, when a test fails, the server's
//! command line and stderr.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientRequest, CustomRequest,
    ElicitRequestParams, ElicitResult, ElicitationAction, Implementation, InitializeRequestParams,
    ProgressNotificationParam, ProtocolVersion, ServerResult,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, NotificationContext, RequestContext, RunningService,
};
use rmcp::{ClientHandler, ErrorData as McpError, RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};

/// The server under test.
pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_codex-exec-mcp-server"))
}

/// The patched Bash.
pub fn bash() -> PathBuf {
    if let Some(path) = std::env::var_os("CODEX_TEST_BASH") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("target/dist/vendor/x86_64-unknown-linux-musl/bash");
    assert!(
        path.is_file(),
        "patched bash missing at {}: run `cargo xtask bash` first",
        path.display()
    );
    path
}

/// The wrapper the server finds beside itself by default.
pub fn wrapper() -> PathBuf {
    beside_server("codex-execve-wrapper")
}

/// `codex-sandbox-exec`, the sandbox launcher the server finds beside it.
pub fn sandbox_exec() -> PathBuf {
    beside_server("codex-sandbox-exec")
}

/// A binary of this workspace built beside the server.
fn beside_server(name: &str) -> PathBuf {
    let path = server_bin().with_file_name(name);
    assert!(
        path.is_file(),
        "{} missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// How the scripted client answers `elicitation/create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Accept,
    Decline,
    Cancel,
    /// Never answers.
    Never,
    /// The client does not declare the elicitation capability.
    Unsupported,
}

pub struct TestClient {
    reply: Reply,
    asked: Arc<Mutex<Vec<String>>>,
    progress: Arc<Mutex<Vec<String>>>,
}

/// Messages a [`TestClient`] received (elicitations or progress).
pub type Received = Arc<Mutex<Vec<String>>>;

impl TestClient {
    /// A client answering elicitations with `reply`, and where it records
    /// the elicitations and progress messages it gets.
    pub fn new(reply: Reply) -> (TestClient, Received, Received) {
        let asked = Received::default();
        let progress = Received::default();
        let client = TestClient {
            reply,
            asked: asked.clone(),
            progress: progress.clone(),
        };
        (client, asked, progress)
    }
}

impl ClientHandler for TestClient {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let ElicitRequestParams::FormElicitationParams { message, .. } = request else {
            return Err(McpError::invalid_params(
                "expected a form elicitation",
                None,
            ));
        };
        self.asked.lock().unwrap().push(message);
        let action = match self.reply {
            Reply::Accept => ElicitationAction::Accept,
            Reply::Decline => ElicitationAction::Decline,
            Reply::Cancel => ElicitationAction::Cancel,
            Reply::Never | Reply::Unsupported => std::future::pending().await,
        };
        Ok(ElicitResult::new(action))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap()
            .push(params.message.unwrap_or_default());
    }

    fn get_info(&self) -> InitializeRequestParams {
        let caps = if self.reply == Reply::Unsupported {
            json!({})
        } else {
            json!({"elicitation": {}})
        };
        let caps: ClientCapabilities = serde_json::from_value(caps).unwrap();
        let mut info = InitializeRequestParams::new(caps, Implementation::new("it", "0"));
        info.protocol_version = ProtocolVersion::V_2025_06_18;
        info
    }
}

/// Builder of a [`Session`].
pub struct Setup {
    rules: Vec<(String, String)>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    launcher: Vec<String>,
    reply: Reply,
    discover: bool,
}

pub fn setup() -> Setup {
    Setup {
        rules: Vec::new(),
        args: Vec::new(),
        env: Vec::new(),
        launcher: Vec::new(),
        reply: Reply::Accept,
        discover: false,
    }
}

impl Setup {
    /// A `.rules` file in `$CODEX_HOME/rules`.
    pub fn rules(mut self, name: &str, text: &str) -> Self {
        self.rules.push((name.into(), text.into()));
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// An environment variable for the server (`TMPDIR` is unset unless
    /// given here).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A program (and arguments) that starts the server: it gets the
    /// server's path and arguments appended.
    pub fn launcher(mut self, argv: &[&str]) -> Self {
        self.launcher = argv.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Opens with `server/discover` on MCP 2026-07-28 (per-request
    /// metadata; prompts come back as input-required results, which rmcp's
    /// `call_tool` fulfils through the handler and retries).
    pub fn discover(mut self) -> Self {
        self.discover = true;
        self
    }

    pub async fn start(self) -> Session {
        // Not under /tmp: that is a writable root of the default sandbox, and
        // the tests need directories outside every writable root.
        let dir = tempfile::tempdir_in(scratch_base()).unwrap();
        let codex_home = dir.path().join("codex");
        let home = dir.path().join("home");
        let work = dir.path().join("work");
        for d in [&codex_home.join("rules"), &home, &work] {
            std::fs::create_dir_all(d).unwrap();
        }
        for (name, text) in &self.rules {
            std::fs::write(codex_home.join("rules").join(name), text).unwrap();
        }
        let log = dir.path().join("server.log");
        let _ = wrapper();
        let mut args = self.launcher;
        args.push(server_bin().display().to_string());
        args.extend(["--bash".to_string(), bash().display().to_string()]);
        args.extend(self.args);
        let mut cmd = tokio::process::Command::new(&args[0]);
        cmd.args(&args[1..])
            .current_dir(&work)
            .env("CODEX_HOME", &codex_home)
            .env("HOME", &home)
            .env_remove("TMPDIR")
            .env("RUST_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .kill_on_drop(true);
        let cmdline = args.join(" ");
        let mut child = cmd.spawn().unwrap();
        // Our own pipes rather than rmcp's child-process transport, so a
        // test can close the server's stdin and watch the server exit.
        let transport = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
        let (client, asked, progress) = TestClient::new(self.reply);
        let served = if self.discover {
            client
                .serve_with_lifecycle(
                    transport,
                    ClientLifecycleMode::Discover {
                        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                    },
                )
                .await
        } else {
            client.serve(transport).await
        };
        let service = match served {
            Ok(service) => service,
            Err(e) => panic!(
                "initialize failed: {e}\ncommand: {cmdline}\nstderr:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        Session {
            service,
            child,
            _dir: dir,
            work,
            log,
            cmdline,
            asked,
            progress,
        }
    }
}

/// A running server and its client.
pub struct Session {
    pub service: RunningService<RoleClient, TestClient>,
    /// The server process (killed when the session is dropped).
    pub child: tokio::process::Child,
    pub _dir: tempfile::TempDir,
    /// The server's working directory and the default `workdir`.
    pub work: PathBuf,
    log: PathBuf,
    cmdline: String,
    asked: Arc<Mutex<Vec<String>>>,
    progress: Arc<Mutex<Vec<String>>>,
}

/// When a test is failing, prints how its server was started and what it
/// logged.
pub fn report_server_on_panic(cmdline: &str, work: &Path, log: &Path) {
    if std::thread::panicking() {
        eprintln!(
            "--- server command: {cmdline}\n--- cwd: {}\n--- server stderr:\n{}",
            work.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        report_server_on_panic(&self.cmdline, &self.work, &self.log);
    }
}

/// The `shell` tool's result, decoded.
#[derive(Debug)]
pub struct Shell {
    pub exit_code: i64,
    pub output: String,
    pub timed_out: bool,
    pub structured: Value,
}

impl Session {
    /// A fresh directory outside every writable root (beside the workspace,
    /// which is not under `/tmp`).
    pub fn outside(&self) -> PathBuf {
        let dir = self._dir.path().join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The server's `HOME`.
    pub fn home(&self) -> PathBuf {
        self._dir.path().join("home")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server has not been reaped")
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Messages of the elicitations received so far.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// Messages of the progress notifications received so far.
    pub fn progress(&self) -> Vec<String> {
        self.progress.lock().unwrap().clone()
    }

    /// Calls `shell` with raw arguments and `_meta`.
    pub async fn call(
        &self,
        arguments: Value,
        meta: Option<Value>,
    ) -> Result<CallToolResult, ServiceError> {
        let mut params = json!({"name": "shell", "arguments": arguments});
        if let Some(meta) = meta {
            params["_meta"] = meta;
        }
        let params: CallToolRequestParams = serde_json::from_value(params).unwrap();
        self.service.call_tool(params).await
    }

    /// Runs `command` in the workspace and decodes the result.
    pub async fn shell(&self, command: &str) -> Shell {
        self.shell_with(json!({"command": command, "workdir": self.work}))
            .await
    }

    /// Starts a `shell` call on its own task.
    pub fn spawn_shell(&self, arguments: Value) -> tokio::task::JoinHandle<Shell> {
        let peer = self.service.peer().clone();
        tokio::spawn(async move {
            let params = json!({"name": "shell", "arguments": arguments});
            let params: CallToolRequestParams = serde_json::from_value(params).unwrap();
            let result = peer
                .call_tool(params)
                .await
                .unwrap_or_else(|e| panic!("{arguments}: {e}"));
            decode(&result)
        })
    }

    pub async fn shell_with(&self, arguments: Value) -> Shell {
        let result = self
            .call(arguments.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("{arguments}: {e}"));
        decode(&result)
    }

    /// Sends a custom request.
    pub async fn custom(
        &self,
        method: &str,
        params: Option<Value>,
    ) -> Result<ServerResult, ServiceError> {
        self.service
            .send_request(ClientRequest::CustomRequest(CustomRequest::new(
                method, params,
            )))
            .await
    }
}

/// Checks the result's shape (one text content equal to the structured
/// content) and decodes it.
pub fn decode(result: &CallToolResult) -> Shell {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(result.content.len(), 1, "{result:?}");
    let text = &result.content[0].as_text().expect("text content").text;
    let from_text: Value = serde_json::from_str(text).unwrap();
    let structured = result
        .structured_content
        .clone()
        .expect("structuredContent");
    assert_eq!(from_text, structured);
    Shell {
        exit_code: structured["exit_code"].as_i64().unwrap(),
        output: structured["output"].as_str().unwrap().to_string(),
        timed_out: structured["timed_out"].as_bool().unwrap(),
        structured,
    }
}

/// The text of an `isError` tool result.
pub fn tool_error(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone()
}

/// Runs the server binary to completion (no MCP) with its own `CODEX_HOME`.
pub fn run_server(args: &[&str], codex_home: &Path) -> std::process::Output {
    std::process::Command::new(server_bin())
        .args(args)
        .env("CODEX_HOME", codex_home)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Formats a process result for assertion messages.
pub fn describe(args: &[&str], output: &std::process::Output) -> String {
    format!(
        "command: {} {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        server_bin().display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Writes `requests` as JSON lines to a fresh server, closes its stdin, and
/// returns every JSON line it wrote back.
pub fn raw_exchange(requests: &[Value]) -> Vec<Value> {
    use std::io::Write;
    let _ = wrapper();
    let home = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(server_bin())
        .args(["--bash", &bash().display().to_string()])
        .env("CODEX_HOME", home.path())
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for request in requests {
        writeln!(stdin, "{request}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "{e}: {line}\nstderr: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })
        })
        .collect()
}

/// A string no other process on the machine has in its command line.
pub fn marker() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}{:09}{:03}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live (not zombie) processes whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline);
        if text.contains(marker) && !gone(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `pid` has exited (a zombie waiting for its reaper counts).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Polls `condition` every 20 ms until it holds or `secs` pass.
pub async fn eventually(secs: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    condition()
}

/// Describes the processes in `pids`, for assertion messages.
pub fn ps(pids: &[u32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            format!(
                "{pid}: {} [{}]\n",
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
                stat.trim_end()
            )
        })
        .collect()
}

/// Where tests make their directories: the target's scratch directory,
/// unless the checkout is under `/tmp` (CI may clone there), which is a
/// writable root of the default sandbox; then `/var/tmp`.
pub fn scratch_base() -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let base = if base.starts_with("/tmp") {
        PathBuf::from("/var/tmp/codex-exec-mcp-scratch")
    } else {
        base.to_path_buf()
    };
    std::fs::create_dir_all(&base).unwrap();
    base
}

/// Whether `output` shows a write refused by the sandbox: `EROFS` from the
/// read-only view of the filesystem, or `EACCES` from Landlock where there
/// is no mount namespace.
pub fn refused(output: &str) -> bool {
    output.contains("Read-only file system") || output.contains("Permission denied")
}
