//! The test harness: a server session with its own `CODEX_HOME`, `HOME` and
//! workspace, a scripted MCP client, and, when a test fails, the server's
//! command line and stderr. The plumbing is `test-support`'s, shared with
//! the red-team harness; this module keeps the names the cases use.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use rmcp::model::{CallToolResult, ClientRequest, CustomRequest, ServerResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceError};
use serde_json::{Value, json};
use test_support::mcp;
use test_support::report::ServerLog;

pub use test_support::client::{Received, Reply};
pub use test_support::mcp::{Shell, decode, eventually, tool_error};
pub use test_support::paths::bash;
pub use test_support::procs::{marker, pids_with, ps, refused};
// Part of this harness before `test-support`: kept for cases that call it.
#[allow(unused_imports)]
pub use test_support::procs::gone;

/// The scripted client: answers elicitations per its [`Reply`], records
/// them and the progress messages it gets.
pub type TestClient = test_support::client::Client;

/// The server under test.
pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_codex-exec-mcp-server"))
}

/// The wrapper the server finds beside itself by default.
pub fn wrapper() -> PathBuf {
    test_support::paths::beside(&server_bin(), "codex-execve-wrapper")
}

/// `codex-sandbox-exec`, the sandbox launcher the server finds beside it.
pub fn sandbox_exec() -> PathBuf {
    test_support::paths::beside(&server_bin(), "codex-sandbox-exec")
}

/// A server's directories: `codex` (`$CODEX_HOME`, with `rules/`), `home`
/// and `work` in a fresh directory outside every writable root.
pub(crate) struct ServerDirs {
    pub dir: tempfile::TempDir,
    pub codex_home: PathBuf,
    pub home: PathBuf,
    pub work: PathBuf,
}

impl ServerDirs {
    /// `program` with `args` as a server of this layout: in `work`, with
    /// its `CODEX_HOME` and `HOME`, `TMPDIR` unset, logging at `rust_log`.
    pub fn command(
        &self,
        program: &str,
        args: &[String],
        rust_log: &str,
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&self.work)
            .env("CODEX_HOME", &self.codex_home)
            .env("HOME", &self.home)
            .env_remove("TMPDIR")
            .env("RUST_LOG", rust_log);
        cmd
    }
}

/// [`ServerDirs`] with `rules` (name, text) in `$CODEX_HOME/rules`.
pub(crate) fn server_dirs(rules: &[(String, String)]) -> ServerDirs {
    // Not under /tmp: that is a writable root of the default sandbox, and
    // the tests need directories outside every writable root.
    let dir = tempfile::tempdir_in(scratch_base()).unwrap();
    let codex_home = dir.path().join("codex");
    let home = dir.path().join("home");
    let work = dir.path().join("work");
    for d in [&codex_home.join("rules"), &home, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    for (name, text) in rules {
        std::fs::write(codex_home.join("rules").join(name), text).unwrap();
    }
    ServerDirs {
        dir,
        codex_home,
        home,
        work,
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
        let dirs = server_dirs(&self.rules);
        let _ = wrapper();
        let mut args = self.launcher;
        args.push(server_bin().display().to_string());
        args.extend(["--bash".to_string(), bash().display().to_string()]);
        args.extend(self.args);
        let mut cmd = dirs.command(&args[0], &args[1..], "debug");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = ServerLog::new(
            args.join(" "),
            &dirs.work,
            &dirs.dir.path().join("server.log"),
        );
        let (client, asked, progress) = TestClient::new(self.reply);
        let lifecycle = self.discover.then(mcp::discover);
        let (service, child) = mcp::spawn_stdio(cmd, &log, client, lifecycle).await;
        Session {
            service,
            child,
            log,
            _dir: dirs.dir,
            work: dirs.work,
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
    /// Printed if the test fails (before `_dir`, which holds it, goes).
    log: ServerLog,
    pub _dir: tempfile::TempDir,
    /// The server's working directory and the default `workdir`.
    pub work: PathBuf,
    asked: Received,
    progress: Received,
}

/// When a test is failing, prints how its server was started and what it
/// logged (the sessions here print through their `ServerLog`; kept for
/// cases with servers of their own).
#[allow(dead_code)]
pub fn report_server_on_panic(cmdline: &str, work: &Path, log: &Path) {
    test_support::report::report_on_panic(cmdline, work, log);
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
        self.log.text()
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
        mcp::call_shell(&self.service, arguments, meta).await
    }

    /// Runs `command` in the workspace and decodes the result.
    pub async fn shell(&self, command: &str) -> Shell {
        self.shell_with(json!({"command": command, "workdir": self.work}))
            .await
    }

    /// Starts a `shell` call on its own task.
    pub fn spawn_shell(&self, arguments: Value) -> tokio::task::JoinHandle<Shell> {
        let peer = self.service.peer().clone();
        tokio::spawn(async move { mcp::peer_shell(&peer, arguments).await })
    }

    pub async fn shell_with(&self, arguments: Value) -> Shell {
        mcp::shell(&self.service, arguments).await
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
    let cmdline = format!("{} {}", server_bin().display(), args.join(" "));
    test_support::report::describe_output(&cmdline, None, output)
}

/// Writes `requests` as JSON lines to a fresh server, closes its stdin, and
/// returns every JSON line it wrote back.
pub fn raw_exchange(requests: &[Value]) -> Vec<Value> {
    use std::io::Write;
    let _ = wrapper();
    let home = tempfile::tempdir().unwrap();
    let args = ["--bash".to_string(), bash().display().to_string()];
    let mut child = std::process::Command::new(server_bin())
        .args(&args)
        .env("CODEX_HOME", home.path())
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for request in requests {
        stdin.write_all(&test_support::wire::line(request)).unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let cmdline = format!("{} {}", server_bin().display(), args.join(" "));
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "{e}: {line}\n{}",
                    test_support::report::describe_output(&cmdline, None, &output)
                )
            })
        })
        .collect()
}

/// Where tests make their directories: the target's scratch directory,
/// unless the checkout is under `/tmp` (CI may clone there), which is a
/// writable root of the default sandbox; then `/var/tmp`.
pub fn scratch_base() -> PathBuf {
    test_support::paths::outside_tmp(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "codex-exec-mcp-scratch",
    )
}
