//! MCP over Streamable HTTP (issue 16): the real server listening on a
//! loopback port, driven by rmcp's Streamable HTTP client (sessions on
//! 2025-06-18, stateless requests on 2026-07-28) and by raw HTTP where the
//! test is about the wire: tokens, Origin and Host, body limits, session
//! ownership, connections dropped mid-call.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{ClientLifecycleMode, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use test_support::mcp;
use test_support::report::ServerLog;
use test_support::wire::tools_call;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{
    Received, Reply, ServerDirs, Shell, TestClient, bash, decode, eventually, marker, pids_with,
    ps, server_bin, server_dirs, wrapper,
};

pub const TOKEN: &str = "test-token-0123456789abcdef";
pub const OTHER: &str = "other-token-0123456789abcdef";

/// Builder of an [`Http`] server.
pub struct HttpSetup {
    rules: Vec<(String, String)>,
    args: Vec<String>,
    /// Lines of the token file; none: no token at all.
    tokens: Vec<String>,
}

pub fn http() -> HttpSetup {
    HttpSetup {
        rules: Vec::new(),
        args: Vec::new(),
        tokens: vec![TOKEN.into()],
    }
}

impl HttpSetup {
    pub fn rules(mut self, name: &str, text: &str) -> Self {
        self.rules.push((name.into(), text.into()));
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn tokens(mut self, tokens: &[&str]) -> Self {
        self.tokens = tokens.iter().map(|t| t.to_string()).collect();
        self
    }

    pub async fn start(self) -> Http {
        let dirs = server_dirs(&self.rules);
        let ServerDirs { dir, work, .. } = &dirs;
        let _ = wrapper();
        let mut args = vec![
            "--bash".to_string(),
            bash().display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        if !self.tokens.is_empty() {
            let file = dir.path().join("tokens");
            std::fs::write(&file, self.tokens.join("\n")).unwrap();
            args.extend(["--auth-token-file".into(), file.display().to_string()]);
        }
        args.extend(self.args);
        let server = server_bin().display().to_string();
        let log = ServerLog::new(
            format!("{server} {}", args.join(" ")),
            work,
            &dir.path().join("server.log"),
        );
        let child = dirs
            .command(&server, &args, "info")
            .env_remove("CODEX_MCP_AUTH_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.stderr())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut server = Http {
            child,
            log,
            dir: dirs.dir,
            work: dirs.work,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let listening = eventually(20, || server.listening().is_some()).await;
        assert!(listening, "the server never listened:\n{}", server.log());
        server.addr = server.listening().unwrap();
        server
    }
}

/// A server listening on a loopback port.
pub struct Http {
    pub child: tokio::process::Child,
    /// Printed if the test fails (before `dir`, which holds it, goes).
    log: ServerLog,
    dir: tempfile::TempDir,
    /// The server's working directory.
    pub work: PathBuf,
    pub addr: SocketAddr,
}

/// An rmcp client connected over HTTP.
pub struct HttpClient {
    pub service: RunningService<RoleClient, TestClient>,
    pub asked: Received,
    pub progress: Received,
}

impl Http {
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server has not been reaped")
    }

    pub fn log(&self) -> String {
        self.log.text()
    }

    /// A directory outside every writable root of the default sandbox.
    pub fn outside(&self) -> PathBuf {
        let dir = self.dir.path().join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The address in the "listening" log line.
    fn listening(&self) -> Option<SocketAddr> {
        test_support::wire::listening_addr(&self.log())
    }

    /// A client in a session (MCP 2025-06-18, elicitation per `reply`).
    pub async fn client(&self, token: Option<&str>, reply: Reply) -> HttpClient {
        self.connect(token, reply, None).await
    }

    /// A client on MCP 2026-07-28: `server/discover`, then stateless
    /// requests; prompts come back as input-required results, which rmcp
    /// fulfils through the handler and retries.
    pub async fn discover_client(&self, token: Option<&str>, reply: Reply) -> HttpClient {
        self.connect(token, reply, Some(mcp::discover())).await
    }

    async fn connect(
        &self,
        token: Option<&str>,
        reply: Reply,
        lifecycle: Option<ClientLifecycleMode>,
    ) -> HttpClient {
        let (client, asked, progress) = TestClient::new(reply);
        let service = mcp::connect_http(&self.url(), token, client, lifecycle)
            .await
            .unwrap_or_else(|e| panic!("connecting failed: {e}\n{}", self.log()));
        HttpClient {
            service,
            asked,
            progress,
        }
    }

    /// A raw POST to `/mcp` of `body`; the status, headers and the JSON-RPC
    /// messages of the answer (an SSE stream or one JSON body).
    pub async fn post(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, reqwest::header::HeaderMap, Vec<Value>) {
        test_support::http::post(&self.url(), token, headers, body).await
    }

    /// A session opened by raw HTTP: its id.
    pub async fn raw_session(&self, token: &str) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw-http", "version": "0"}}});
        let (status, headers, messages) = self.post(Some(token), &[], &init).await;
        assert_eq!(status, 200, "{messages:?}");
        let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let (status, _, _) = self
            .post(Some(token), &[("mcp-session-id", &session)], &initialized)
            .await;
        assert_eq!(status, 202);
        session
    }
}

impl HttpClient {
    pub async fn call(
        &self,
        arguments: Value,
        meta: Option<Value>,
    ) -> Result<CallToolResult, ServiceError> {
        mcp::call_shell(&self.service, arguments, meta).await
    }

    pub async fn shell(&self, command: &str, workdir: &std::path::Path) -> Shell {
        let args = json!({"command": command, "workdir": workdir});
        mcp::shell(&self.service, args).await
    }
}

/// Per-request metadata of a stateless 2026-07-28 request.
fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-http", "version": "0"},
    })
}

/// The headers a stateless 2026-07-28 `tools/call` of `shell` needs.
const MODERN_CALL_HEADERS: [(&str, &str); 3] = [
    ("mcp-protocol-version", "2026-07-28"),
    ("mcp-method", "tools/call"),
    ("mcp-name", "shell"),
];

/// After a call has ended, nothing with its marker may survive (SIGKILL
/// is asynchronous: a dying process gets a moment).
async fn assert_nothing_left(marker: &str, log: impl Fn() -> String) {
    let clean = eventually(5, || pids_with(marker).is_empty()).await;
    assert!(
        clean,
        "processes of the call survived:\n{}\nserver log:\n{}",
        ps(&pids_with(marker)),
        log()
    );
}

async fn wait_for_sleep(marker: &str, log: impl Fn() -> String) {
    wait_for_program("sleep", marker, log).await
}

/// Waits for `program` itself to run with `marker` in its command line:
/// Bash's command line holds the marker before the commands ahead of it
/// (`echo started; sleep 30.M`) have run.
async fn wait_for_program(program: &str, marker: &str, log: impl Fn() -> String) {
    let sleeping = || {
        pids_with(marker).into_iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let argv0 = c.split(|&b| b == 0).next().unwrap_or_default();
                argv0.rsplit(|&b| b == b'/').next() == Some(program.as_bytes())
            })
        })
    };
    let started = eventually(20, sleeping).await;
    assert!(started, "{program} never started:\n{}", log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_client_runs_calls_with_progress_prompts_and_rules() {
    let s = http()
        .rules(
            "a.rules",
            "prefix_rule(pattern = [\"touch\"], decision = \"prompt\")\n\
             prefix_rule(pattern = [\"rm\"], decision = \"forbidden\", justification = \"keep it\")\n",
        )
        .arg("--sandbox")
        .arg("read-only")
        .start()
        .await;
    let c = s.client(Some(TOKEN), Reply::Accept).await;
    let info = c.service.peer_info().expect("initialize result");
    assert_eq!(
        info.server_info.as_ref().unwrap().name,
        "codex-exec-mcp-server"
    );
    assert!(
        info.capabilities
            .experimental
            .as_ref()
            .is_some_and(|e| e.contains_key("codex/sandbox-state")),
        "{info:?}"
    );
    let tools = c.service.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 5);
    assert_eq!(tools[0].name, "shell");

    let r = c.shell("echo ok; echo err >&2", &s.work).await;
    assert_eq!((r.exit_code, r.output.as_str()), (0, "ok\nerr\n"), "{r:?}");

    // Timeout: a result, not an error, and the sleep is gone.
    let m = marker();
    let args = json!({"command": format!("echo started; sleep 30.{m}"), "workdir": s.work, "timeout_ms": 500});
    let r = decode(&c.call(args, None).await.unwrap());
    assert!(r.timed_out, "{r:?}");
    assert_eq!(
        (r.exit_code, r.output.as_str()),
        (124, "started\n"),
        "{r:?}"
    );
    assert_nothing_left(&m, || s.log()).await;

    // Progress: the output lines reach the client while the command waits.
    let fifo = s.outside().join("fifo");
    let command = format!(
        "echo first-line; echo second-line; read x < {f}",
        f = fifo.display()
    );
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let call = c.call(
        json!({"command": command, "workdir": s.work, "timeout_ms": 20_000}),
        Some(json!({"progressToken": "p1"})),
    );
    tokio::pin!(call);
    let early = loop {
        tokio::select! {
            r = &mut call => break Some(r),
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                if c.progress.lock().unwrap().iter().any(|m| m.contains("second-line")) {
                    break None;
                }
            }
        }
    };
    assert!(early.is_none(), "call ended before any progress: {early:?}");
    std::fs::write(&fifo, "go\n").unwrap();
    let r = decode(&call.await.unwrap());
    assert_eq!(r.output, "first-line\nsecond-line\n", "{r:?}");

    // forbidden, with the rule's justification.
    let r = c.shell("rm -f nothing; echo status=$?", &s.work).await;
    assert!(r.output.starts_with("Execution denied: "), "{r:?}");
    assert!(r.output.contains("keep it"), "{r:?}");
    assert!(r.output.ends_with("status=1\n"), "{r:?}");

    // prompt → accepted (elicitation over the session) → escalated out of
    // the read-only sandbox.
    let target = s.work.join("accepted");
    let r = c
        .shell(
            &format!("touch {}; echo status=$?", target.display()),
            &s.work,
        )
        .await;
    assert_eq!(r.output, "status=0\n", "{r:?}");
    assert!(target.exists());
    assert_eq!(c.asked.lock().unwrap().len(), 1);

    // prompt → declined.
    let d = s.client(Some(TOKEN), Reply::Decline).await;
    let target = s.work.join("declined");
    let r = d
        .shell(
            &format!("touch {}; echo status=$?", target.display()),
            &s.work,
        )
        .await;
    assert_eq!(
        r.output, "Execution denied: User declined execution\nstatus=1\n",
        "{r:?}"
    );
    assert!(!target.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_gets_prompts_as_input_required_results() {
    let s = http()
        .rules(
            "a.rules",
            "prefix_rule(pattern = [\"touch\"], decision = \"prompt\")\n",
        )
        .arg("--sandbox")
        .arg("read-only")
        .start()
        .await;
    for (reply, name, status) in [
        (Reply::Accept, "accepted", 0),
        (Reply::Decline, "declined", 1),
    ] {
        let c = s.discover_client(Some(TOKEN), reply).await;
        let r = c.shell("echo ok", &s.work).await;
        assert_eq!(r.output, "ok\n", "{r:?}");
        let target = s.work.join(name);
        let r = c
            .shell(
                &format!("echo before; touch {}; echo status=$?", target.display()),
                &s.work,
            )
            .await;
        assert!(r.output.starts_with("before\n"), "{r:?}");
        assert!(r.output.ends_with(&format!("status={status}\n")), "{r:?}");
        assert_eq!(target.exists(), status == 0, "{r:?}");
        assert_eq!(c.asked.lock().unwrap().len(), 1, "{r:?}");
    }
    assert!(s.log().contains("input required"), "{}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_nothing_runs() {
    let s = http().start().await;
    let target = s.work.join("ran");
    let call = tools_call(
        1,
        json!({"command": format!("touch {}", target.display()), "workdir": s.work}),
        Some(modern_meta()),
    );
    for (token, challenge) in [
        (None, r#"Bearer realm="codex-exec-mcp-server""#),
        (
            Some("wrong-token-0123456789abcdef"),
            r#"Bearer realm="codex-exec-mcp-server", error="invalid_token""#,
        ),
        (Some(""), r#"Bearer realm="codex-exec-mcp-server""#),
    ] {
        let (status, headers, _) = s.post(token, &MODERN_CALL_HEADERS, &call).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(headers["www-authenticate"], challenge, "{token:?}");
    }
    // Another scheme is no bearer token.
    let (status, _, _) = s
        .post(None, &[("authorization", &format!("Basic {TOKEN}"))], &call)
        .await;
    assert_eq!(status, 401);
    assert!(!target.exists(), "a call ran without the token");
    // The rmcp client is refused too.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(s.url()).auth_header("nope-0123456789abcdef"),
    );
    let (client, _, _) = TestClient::new(Reply::Accept);
    assert!(client.serve(transport).await.is_err());
    // With it, the same call runs.
    let (status, _, messages) = s.post(Some(TOKEN), &MODERN_CALL_HEADERS, &call).await;
    assert_eq!(status, 200, "{messages:?}");
    assert!(target.exists(), "{messages:?}\n{}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_host_paths_and_body_size_are_checked() {
    let s = http().arg("--max-request-bytes").arg("4096").start().await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}});
    let list_headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h = list_headers.to_vec();
        h.extend_from_slice(extra);
        h
    };
    let (status, _, messages) = s.post(Some(TOKEN), &list_headers, &list).await;
    assert_eq!(status, 200, "{messages:?}");
    assert_eq!(
        messages[0]["result"]["tools"][0]["name"], "shell",
        "{messages:?}"
    );
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1",
        "https://[::1]:8443",
    ] {
        let (status, _, _) = s
            .post(Some(TOKEN), &with(&[("origin", origin)]), &list)
            .await;
        assert_eq!(status, 200, "{origin}");
    }
    // DNS rebinding or a cross-site page: refused even with the token.
    for origin in [
        "http://evil.example",
        "http://evil.example:8080",
        "null",
        "file://",
    ] {
        let (status, _, _) = s
            .post(Some(TOKEN), &with(&[("origin", origin)]), &list)
            .await;
        assert_eq!(status, 403, "{origin}");
    }
    // A body over the limit.
    let big = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "shell", "arguments": {"command": "x".repeat(5000), "workdir": s.work}, "_meta": modern_meta()}});
    let (status, _, _) = s.post(Some(TOKEN), &MODERN_CALL_HEADERS, &big).await;
    assert_eq!(status, 413);
    // Liveness needs nothing and says nothing.
    let health = reqwest::get(format!("http://{}/healthz", s.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let other = reqwest::get(format!("http://{}/", s.addr)).await.unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_server_is_loopback_only() {
    // Refused at start, naming the address and the fix.
    let home = tempfile::tempdir().unwrap();
    for address in ["0.0.0.0:0", "[::]:0"] {
        let output = std::process::Command::new(server_bin())
            .args(["--bash", &bash().display().to_string(), "--listen", address])
            .env("CODEX_HOME", home.path())
            .env_remove("CODEX_MCP_AUTH_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("refusing to listen on {address}")),
            "{stderr}"
        );
        assert!(stderr.contains("--auth-token-file"), "{stderr}");
    }
    // With the token in the environment it starts.
    let mut child = std::process::Command::new(server_bin())
        .args([
            "--bash",
            &bash().display().to_string(),
            "--listen",
            "0.0.0.0:0",
        ])
        .env("CODEX_HOME", home.path())
        .env("CODEX_MCP_AUTH_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    use std::io::Read;
    while !seen.contains("listening: MCP over") {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "the server exited: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("auth=\"bearer token\""), "{seen}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());

    // Loopback without a token: any local client, but only for a loopback
    // Host (DNS rebinding would bring another name).
    let s = http().tokens(&[]).start().await;
    let c = s.client(None, Reply::Accept).await;
    assert_eq!(c.shell("echo open", &s.work).await.output, "open\n");
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let (status, _, _) = s.post(None, &headers, &list).await;
    assert_eq!(status, 200);
    let mut rebound = headers.to_vec();
    rebound.push(("host", "evil.example"));
    let (status, _, _) = s.post(None, &rebound, &list).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_request_states_belong_to_their_token() {
    let s = http()
        .tokens(&[TOKEN, OTHER])
        .rules(
            "a.rules",
            "prefix_rule(pattern = [\"touch\"], decision = \"prompt\")\n",
        )
        .arg("--sandbox")
        .arg("read-only")
        .start()
        .await;
    // A session opened with one token is unknown to the other.
    let session = s.raw_session(TOKEN).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let (status, _, messages) = s
        .post(Some(TOKEN), &[("mcp-session-id", &session)], &list)
        .await;
    assert_eq!(status, 200, "{messages:?}");
    let (status, _, _) = s
        .post(Some(OTHER), &[("mcp-session-id", &session)], &list)
        .await;
    assert_eq!(status, 404);

    // A prompt's requestState, presented with the other token, approves
    // nothing; with its own token it does.
    let target = s.work.join("f");
    let call = tools_call(
        1,
        json!({"command": format!("touch {}; echo status=$?", target.display()), "workdir": s.work, "timeout_ms": 20_000}),
        Some(modern_meta()),
    );
    let (status, _, messages) = s.post(Some(TOKEN), &MODERN_CALL_HEADERS, &call).await;
    assert_eq!(status, 200, "{messages:?}");
    let result = &messages.last().unwrap()["result"];
    assert_eq!(result["resultType"], "input_required", "{messages:?}");
    let mut retry = call.clone();
    retry["params"]["requestState"] = result["requestState"].clone();
    retry["params"]["inputResponses"] = json!({"approval": {"action": "accept", "content": {}}});
    let (_, _, messages) = s.post(Some(OTHER), &MODERN_CALL_HEADERS, &retry).await;
    let error = messages.last().unwrap()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("invalid requestState"), "{messages:?}");
    assert!(!target.exists());
    let (_, _, messages) = s.post(Some(TOKEN), &MODERN_CALL_HEADERS, &retry).await;
    let r = &messages.last().unwrap()["result"]["structuredContent"];
    assert_eq!(r["output"], "status=0\n", "{messages:?}");
    assert!(target.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_state_of_a_session_is_its_own() {
    let s = http().start().await;
    let a = s.client(Some(TOKEN), Reply::Accept).await;
    let b = s.client(Some(TOKEN), Reply::Accept).await;
    let update = rmcp::model::ClientRequest::CustomRequest(rmcp::model::CustomRequest::new(
        "codex/sandbox-state/update",
        Some(json!({"sandboxPolicy": {"type": "read-only"}, "sandboxCwd": s.work})),
    ));
    a.service.send_request(update).await.unwrap();
    let r = a.shell("echo x > a; echo status=$?", &s.work).await;
    assert!(r.output.ends_with("status=1\n"), "read-only for a: {r:?}");
    let r = b.shell("echo x > b; echo status=$?", &s.work).await;
    assert_eq!(r.output, "status=0\n", "b keeps the default: {r:?}");
    assert!(s.work.join("b").exists() && !s.work.join("a").exists());

    // On 2026-07-28 there is no session to set it for: refused, saying
    // where the state goes instead.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "codex/sandbox-state/update", "params": {
        "sandboxPolicy": {"type": "read-only"}, "_meta": modern_meta()}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "codex/sandbox-state/update"),
    ];
    let (_, _, messages) = s.post(Some(TOKEN), &headers, &body).await;
    let error = messages.last().unwrap()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("_meta[\"codex/sandbox-state-meta\"]"),
        "{messages:?}"
    );
}

/// Writes one HTTP/1.1 POST of `body` on a fresh connection and returns
/// the connection (its answer unread).
async fn raw_post(s: &Http, headers: &[(&str, &str)], body: &Value) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let body = body.to_string();
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: {}\r\n",
        s.addr,
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_or_going_away_stops_the_call() {
    let s = http().start().await;
    let sleep = |m: &str| json!({"command": format!("sleep 30.{m}"), "workdir": s.work, "timeout_ms": 60_000});

    // notifications/cancelled from the SDK client.
    let c = s.client(Some(TOKEN), Reply::Accept).await;
    let m = marker();
    let params: CallToolRequestParams =
        serde_json::from_value(json!({"name": "shell", "arguments": sleep(&m)})).unwrap();
    let handle = c
        .service
        .send_cancellable_request(
            rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(params)),
            rmcp::service::PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    wait_for_sleep(&m, || s.log()).await;
    handle.cancel(Some("test".into())).await.unwrap();
    assert_nothing_left(&m, || s.log()).await;

    // A stateless request whose connection closes.
    let m = marker();
    let stream = raw_post(
        &s,
        &MODERN_CALL_HEADERS,
        &tools_call(1, sleep(&m), Some(modern_meta())),
    )
    .await;
    wait_for_sleep(&m, || s.log()).await;
    drop(stream);
    assert_nothing_left(&m, || s.log()).await;

    // A session request whose connection closes.
    let session = s.raw_session(TOKEN).await;
    let m = marker();
    let stream = raw_post(
        &s,
        &[("mcp-session-id", &session)],
        &tools_call(1, sleep(&m), None),
    )
    .await;
    wait_for_sleep(&m, || s.log()).await;
    drop(stream);
    assert_nothing_left(&m, || s.log()).await;

    // A session that ends (DELETE) while its call runs.
    let m = marker();
    let mut stream = raw_post(
        &s,
        &[("mcp-session-id", &session)],
        &tools_call(2, sleep(&m), None),
    )
    .await;
    wait_for_sleep(&m, || s.log()).await;
    let deleted = reqwest::Client::new()
        .delete(s.url())
        .bearer_auth(TOKEN)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{deleted:?}");
    assert_nothing_left(&m, || s.log()).await;
    // Its response ends (the last chunk of a chunked body; the connection
    // itself is kept alive).
    let mut seen = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !seen.ends_with(b"\r\n0\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the response of the ended session stays open: {}",
        String::from_utf8_lossy(&seen)
    );
    // The server still serves.
    assert_eq!(c.shell("echo after", &s.work).await.output, "after\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_running_calls_answers_them_and_exits_zero() {
    let mut s = http().start().await;
    let c = s.client(Some(TOKEN), Reply::Accept).await;
    let m = marker();
    let peer = c.service.peer().clone();
    let params: CallToolRequestParams = serde_json::from_value(json!({"name": "shell", "arguments":
        {"command": format!("echo started; sleep 30.{m}"), "workdir": s.work, "timeout_ms": 60_000}}))
    .unwrap();
    let call = tokio::spawn(async move { peer.call_tool(params).await });
    wait_for_sleep(&m, || s.log()).await;
    let start = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| panic!("the call never ended:\n{}", s.log()))
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let r = decode(&r);
    assert_eq!(r.exit_code, 128 + 15, "{r:?}");
    assert!(r.output.starts_with("started\n"), "{r:?}");
    let status = tokio::time::timeout(Duration::from_secs(15), s.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the server did not exit:\n{}", s.log()))
        .unwrap();
    assert!(status.success(), "{status}\n{}", s.log());
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "took {:?}",
        start.elapsed()
    );
    assert_nothing_left(&m, || s.log()).await;
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(s.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_limit_are_refused() {
    let s = http().arg("--max-calls").arg("1").start().await;
    let c = s.client(Some(TOKEN), Reply::Accept).await;
    // The first call waits on a fifo whose name carries the marker.
    let m = marker();
    let fifo = s.outside().join(format!("fifo-{m}"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let first = c.call(
        json!({"command": format!("cat {} >/dev/null; echo done", fifo.display()), "workdir": s.work, "timeout_ms": 20_000}),
        None,
    );
    tokio::pin!(first);
    let running = async {
        wait_for_program("cat", &m, || s.log()).await;
        c.call(json!({"command": "echo second", "workdir": s.work}), None)
            .await
    };
    let busy = tokio::select! {
        r = &mut first => panic!("the first call ended early: {r:?}"),
        r = running => match r {
            Err(ServiceError::McpError(e)) => e,
            other => panic!("the second call was not refused: {other:?}"),
        },
    };
    assert_eq!(busy.code.0, -32001, "{busy:?}");
    assert!(busy.message.contains("--max-calls"), "{busy:?}");
    std::fs::write(&fifo, "go\n").unwrap();
    let r = decode(&first.await.unwrap());
    assert_eq!(r.output, "done\n");
    assert_eq!(c.shell("echo third", &s.work).await.output, "third\n");
}

/// Open fds and live children of `pid`.
fn fds_and_children(pid: u32) -> (usize, Vec<u32>) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            children.push(child);
        }
    }
    (fds, children)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_fifty_calls_each_leave_nothing_behind() {
    const CLIENTS: usize = 16;
    const CALLS: usize = 50;
    let s = http()
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let args = json!({"command": "true", "workdir": s.work, "login": false});
    // Warm up: the first call makes what the server keeps (runtime
    // threads' fds, the launcher copy); the client then goes away.
    {
        let c = s.client(Some(TOKEN), Reply::Accept).await;
        let r = decode(&c.call(args.clone(), None).await.unwrap());
        assert_eq!(r.exit_code, 0, "{r:?}");
        c.service.cancel().await.unwrap();
    }
    let mut first = fds_and_children(s.pid());
    // The warm-up client's connections close asynchronously.
    eventually(5, || {
        first = fds_and_children(s.pid());
        first.1.is_empty()
    })
    .await;
    let started = Instant::now();
    let url = s.url();
    let clients = (0..CLIENTS).map(|i| {
        let args = args.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let transport = StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(url).auth_header(TOKEN),
            );
            let (client, _, _) = TestClient::new(Reply::Accept);
            let service = client
                .serve(transport)
                .await
                .unwrap_or_else(|e| panic!("client {i}: {e}"));
            for n in 0..CALLS {
                let params: CallToolRequestParams =
                    serde_json::from_value(json!({"name": "shell", "arguments": args})).unwrap();
                let r = service
                    .call_tool(params)
                    .await
                    .unwrap_or_else(|e| panic!("client {i} call {n}: {e}"));
                assert_eq!(decode(&r).exit_code, 0);
            }
            service.cancel().await.unwrap();
        })
    });
    for client in clients.collect::<Vec<_>>() {
        client.await.unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{} calls over HTTP from {CLIENTS} clients in {elapsed:?}",
        CLIENTS * CALLS
    );
    let mut last = fds_and_children(s.pid());
    let settled = eventually(10, || {
        last = fds_and_children(s.pid());
        last.0 <= first.0 && last.1.is_empty()
    })
    .await;
    assert!(
        settled,
        "(fds, children) after {} calls: {last:?}, after the first: {first:?}\n{}",
        CLIENTS * CALLS,
        ps(&last.1)
    );
}
