//! A server under test as an MCP peer: spawned on stdio (or reached over
//! Streamable HTTP), initialized by the scripted [`Client`], and its
//! `shell` tool called and its results decoded.

use std::process::Stdio;

use rmcp::model::{CallToolRequestParams, CallToolResult, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, Peer, RunningService};
use rmcp::transport::IntoTransport;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::Value;

use crate::client::Client;
use crate::report::ServerLog;

/// A connected client.
pub type Service = RunningService<RoleClient, Client>;

/// MCP 2026-07-28: `server/discover`, then requests carrying their own
/// metadata (prompts come back as input-required results, which rmcp's
/// `call_tool` fulfils through the handler and retries).
pub fn discover() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

/// Connects `client` over `transport`: the `initialize` handshake, or
/// `lifecycle` when given.
pub async fn connect<T, E, A>(
    client: Client,
    transport: T,
    lifecycle: Option<ClientLifecycleMode>,
) -> Result<Service, String>
where
    T: IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    match lifecycle {
        Some(lifecycle) => client.serve_with_lifecycle(transport, lifecycle).await,
        None => client.serve(transport).await,
    }
    .map_err(|e| e.to_string())
}

/// Spawns `cmd` with its stdin and stdout as the MCP transport, its stderr
/// into `log` and killed when the returned child is dropped, and connects
/// `client`. Panics, printing the command and its stderr, if the handshake
/// fails.
///
/// Our own pipes rather than rmcp's child-process transport: a test can
/// close the server's stdin or wait for the child and watch the server
/// exit.
pub async fn spawn_stdio(
    mut cmd: tokio::process::Command,
    log: &ServerLog,
    client: Client,
    lifecycle: Option<ClientLifecycleMode>,
) -> (Service, tokio::process::Child) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log.stderr())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", log.cmdline()));
    let transport = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    match connect(client, transport, lifecycle).await {
        Ok(service) => (service, child),
        Err(e) => panic!("initialize failed: {e}\n{}", log.describe()),
    }
}

/// Connects `client` to the Streamable HTTP endpoint `url` (with a bearer
/// `token`).
pub async fn connect_http(
    url: &str,
    token: Option<&str>,
    client: Client,
    lifecycle: Option<ClientLifecycleMode>,
) -> Result<Service, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    connect(
        client,
        StreamableHttpClientTransport::from_config(config),
        lifecycle,
    )
    .await
}

/// The params of a `tools/call` of `shell` with `arguments` (and `_meta`).
pub fn shell_params(arguments: Value, meta: Option<Value>) -> CallToolRequestParams {
    serde_json::from_value(crate::wire::shell_params(arguments, meta))
        .expect("shell params are valid tools/call params")
}

/// Calls `shell` with raw arguments and `_meta`. Through the running
/// service, not its [`Peer`]: an input-required result (MCP 2026-07-28) is
/// fulfilled through the client's handler and the call retried.
pub async fn call_shell(
    service: &Service,
    arguments: Value,
    meta: Option<Value>,
) -> Result<CallToolResult, ServiceError> {
    service.call_tool(shell_params(arguments, meta)).await
}

/// Calls `shell` and decodes its result; panics naming the arguments if
/// the call fails.
pub async fn shell(service: &Service, arguments: Value) -> Shell {
    let result = call_shell(service, arguments.clone(), None)
        .await
        .unwrap_or_else(|e| panic!("{arguments}: {e}"));
    decode(&result)
}

/// [`shell`] through a [`Peer`] (e.g. a clone moved to a task): one
/// request, no input-required rounds.
pub async fn peer_shell(peer: &Peer<RoleClient>, arguments: Value) -> Shell {
    let result = peer
        .call_tool(shell_params(arguments.clone(), None))
        .await
        .unwrap_or_else(|e| panic!("{arguments}: {e}"));
    decode(&result)
}

/// The `shell` tool's result, decoded.
#[derive(Debug)]
pub struct Shell {
    pub exit_code: i64,
    pub output: String,
    pub timed_out: bool,
    pub structured: Value,
}

impl Shell {
    /// The value of the first `key=` line of the output.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values(key).into_iter().next()
    }

    /// Every value of `key=` lines of the output.
    pub fn values(&self, key: &str) -> Vec<&str> {
        let prefix = format!("{key}=");
        self.output
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    }
}

/// Checks the result's shape (not an error, one text content equal to the
/// structured content) and decodes it.
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
