//! A minimal MCP client over Streamable HTTP for the benchmark: one session
//! (MCP 2025-06-18) on a server started with `--listen 127.0.0.1:0` and a
//! bearer token, blocking HTTP/1.1 on std sockets, keep-alive connections
//! pooled so that many threads can have calls in flight (each on its own
//! connection, as HTTP clients do).

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use test_support::wire;

use super::client::{Launch, ShellOutcome, shell_arguments, shell_outcome};

const TOKEN: &str = "xtask-bench-token-0123456789abcdef";
const PROTOCOL_VERSION: &str = "2025-06-18";

/// A server listening on loopback, with an initialized session.
pub(crate) struct HttpServer {
    child: Child,
    addr: SocketAddr,
    session: String,
    idle: Mutex<Vec<BufReader<TcpStream>>>,
    next_id: AtomicU64,
    what: String,
}

impl HttpServer {
    /// Starts `launch` (a server of ours) listening on an ephemeral port,
    /// and opens a session.
    pub(crate) fn start(launch: &Launch) -> Result<HttpServer> {
        let dir = launch
            .stderr_log
            .parent()
            .context("the log has a directory")?;
        fs::create_dir_all(dir)?;
        let token_file = dir.join("http-bench.token");
        fs::write(&token_file, TOKEN)?;
        let log_path = launch.stderr_log.with_extension("http.stderr");
        let log = fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let (program, args) = launch.argv.split_first().context("empty server argv")?;
        let mut command = Command::new(program);
        command
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--auth-token-file"])
            .arg(&token_file)
            .current_dir(&launch.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .env("RUST_LOG", "info,rmcp=warn")
            .env_remove("CODEX_BASH_PATH")
            .env_remove("BASH_EXEC_WRAPPER");
        for (k, v) in &launch.env {
            command.env(k, v);
        }
        let what = format!("{} (HTTP)", launch.describe());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let addr = match wait_for_address(&log_path, &mut child) {
            Ok(addr) => addr,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.context(format!("{what} did not listen")));
            }
        };
        let mut server = HttpServer {
            child,
            addr,
            session: String::new(),
            idle: Mutex::default(),
            next_id: AtomicU64::new(1),
            what,
        };
        let init = wire::request(
            0,
            "initialize",
            wire::initialize_params(PROTOCOL_VERSION, json!({}), "xtask-bench"),
        );
        let response = server.post(&init)?;
        server.session = response
            .session
            .with_context(|| format!("{}: initialize opened no session", server.what))?;
        server.post(&wire::notification("notifications/initialized", json!({})))?;
        Ok(server)
    }

    /// One `shell` call; fails unless the command exited 0 and did not time out.
    pub(crate) fn shell(
        &self,
        command: &str,
        workdir: &Path,
        login: bool,
        timeout_ms: u64,
    ) -> Result<ShellOutcome> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = wire::tools_call(
            id,
            shell_arguments(command, workdir, login, timeout_ms),
            None,
        );
        let response = self.post(&request)?;
        let reply = response
            .messages
            .iter()
            .find(|m| m["id"] == json!(id) && m.get("method").is_none())
            .with_context(|| {
                format!(
                    "tools/call on {}: no response in {:?}",
                    self.what, response.messages
                )
            })?;
        if let Some(error) = reply.get("error") {
            bail!("tools/call on {}: error {error}", self.what);
        }
        shell_outcome(&reply["result"], command, &self.what)
    }

    /// Stops the server (SIGTERM) and waits for it.
    pub(crate) fn shutdown(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                self.child.wait()?;
                bail!("{} did not exit after SIGTERM", self.what);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// POSTs one JSON-RPC message on a pooled connection (a fresh one if a
    /// pooled one was closed meanwhile).
    fn post(&self, message: &Value) -> Result<Response> {
        let body = message.to_string();
        let mut head = format!(
            "POST /mcp HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
             content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
             content-length: {}\r\n",
            self.addr,
            body.len()
        );
        if !self.session.is_empty() {
            head.push_str(&format!(
                "mcp-session-id: {}\r\nmcp-protocol-version: {PROTOCOL_VERSION}\r\n",
                self.session
            ));
        }
        head.push_str("\r\n");
        let pooled = self.idle.lock().expect("pool lock").pop();
        if let Some(mut conn) = pooled
            && let Ok(response) = exchange(&mut conn, &head, &body)
        {
            self.idle.lock().expect("pool lock").push(conn);
            return Ok(response);
        }
        let stream = TcpStream::connect(self.addr)
            .with_context(|| format!("cannot connect to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let mut conn = BufReader::new(stream);
        let response =
            exchange(&mut conn, &head, &body).with_context(|| format!("POST to {}", self.what))?;
        self.idle.lock().expect("pool lock").push(conn);
        Ok(response)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An answer: its session header and its JSON-RPC messages.
struct Response {
    session: Option<String>,
    messages: Vec<Value>,
}

/// Writes one request and reads its whole answer (SSE or JSON).
fn exchange(conn: &mut BufReader<TcpStream>, head: &str, body: &str) -> Result<Response> {
    let stream = conn.get_mut();
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        bail!("connection closed");
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let (mut chunked, mut length, mut session) = (false, 0usize, None);
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-length" => length = value.parse().context("content-length")?,
            "mcp-session-id" => session = Some(value.to_owned()),
            _ => {}
        }
    }
    let mut data = Vec::new();
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            data.extend_from_slice(&chunk[..size]);
        }
    } else {
        data.resize(length, 0);
        conn.read_exact(&mut data)?;
    }
    let text = String::from_utf8_lossy(&data);
    if !(200..300).contains(&status) {
        bail!("HTTP {status}: {text}");
    }
    Ok(Response {
        session,
        messages: wire::body_messages(&text),
    })
}

/// The address of the server's "listening" log line.
fn wait_for_address(log: &Path, child: &mut Child) -> Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = wire::listening_addr(&text) {
            return Ok(addr);
        }
        if let Some(status) = child.try_wait()? {
            bail!("exited with {status}: {text}");
        }
        if Instant::now() > deadline {
            bail!("no listening line in 30 s: {text}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
