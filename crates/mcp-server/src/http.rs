//! MCP over Streamable HTTP (`--listen ADDR:PORT`): rmcp's server transport
//! (sessions for clients up to MCP 2025-11-25, stateless requests on
//! 2026-07-28) behind a small hyper front end that owns exposure.
//!
//! **Invariant:** no request reaches the MCP service unless its `Origin`
//! (when it has one) names this server or loopback, it carries a valid
//! bearer token (when tokens are configured; without one the server
//! listens on loopback only, and then its `Host` must be loopback or
//! allowed), its body is within the limit, and the session it names was
//! opened with the same token. `GET /healthz` is the only other answer
//! given, and it reveals nothing.
//!
//! ```text
//! GET  /healthz            200 "ok" (liveness; no auth)
//! POST|GET|DELETE /mcp     Origin → 403, Host (no token) → 403,
//!                          token → 401 + WWW-Authenticate: Bearer,
//!                          session of another token → 404,
//!                          body over --max-request-bytes → 413,
//!                          then rmcp's StreamableHttpService
//! anything else            404
//! ```
//!
//! # Who the client is
//!
//! Over stdio the client is the process at the other end. Over HTTP a
//! client is whoever holds a token: each line of the token file is one
//! client, and without a token every local process is the same client.
//! A session (`Mcp-Session-Id`) belongs to the token that opened it and is
//! its own MCP connection: the sandbox state it sets applies to it alone.
//! On 2026-07-28 there are no sessions: every request is a connection of
//! its own, `codex/sandbox-state/update` is refused (the state rides in
//! each call's `_meta`), and the `requestState` of a prompt is bound to the
//! token, so another token's client cannot answer it.
//!
//! # Disconnects and shutdown
//!
//! A call is stopped (its processes killed) when the response stream of
//! the request driving it closes before the result: rmcp does this for
//! stateless requests, the front end for session requests (by sending the
//! session a `notifications/cancelled`), so a client that goes away stops
//! its calls as on stdio. A session's calls also stop when the session
//! ends (`DELETE`, idle expiry). SIGTERM or SIGINT: the listener closes,
//! connections take no new requests, running calls are stopped as on
//! stdio and their results sent, then sessions end and the server exits 0.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, ORIGIN, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rmcp::RoleServer;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification,
    RequestId,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{
    SessionId, SessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::config::HttpSettings;
use crate::server::{ExecServer, Shared};

/// The MCP endpoint.
pub const MCP_PATH: &str = "/mcp";
/// The liveness endpoint.
pub const HEALTH_PATH: &str = "/healthz";
/// Shortest token accepted.
const MIN_TOKEN_LEN: usize = 16;
/// Connections served at once; the next waits in the listen backlog.
const MAX_CONNECTIONS: usize = 512;
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for responses and connections to finish after
/// the calls have ended.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// A session idle (no request, no message to it) this long ends.
const SESSION_IDLE: Duration = Duration::from_secs(300);
const SESSION_HEADER: &str = "mcp-session-id";
const REALM: &str = "codex-exec-mcp-server";

/// The bearer tokens clients may present, kept as SHA-256 digests.
#[derive(Clone)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.digests.len())
    }
}

impl Tokens {
    pub fn from_file(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the auth token file {}", path.display()))?;
        Tokens::parse(&text, &path.display().to_string())
    }

    /// One token per line; blank lines and `#` comments are skipped.
    /// `source` names the file or variable in errors.
    pub fn parse(text: &str, source: &str) -> anyhow::Result<Tokens> {
        let mut digests = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                bail!(
                    "token on line {} of {source} has a character that cannot be sent in an \
                     Authorization header (use printable ASCII without spaces)",
                    n + 1
                );
            }
            if token.len() < MIN_TOKEN_LEN {
                bail!(
                    "token on line {} of {source} is {} characters, fewer than {MIN_TOKEN_LEN}: \
                     make a longer one (e.g. `openssl rand -hex 32`)",
                    n + 1,
                    token.len()
                );
            }
            digests.push(Sha256::digest(token.as_bytes()).into());
        }
        if digests.is_empty() {
            bail!("{source} holds no token");
        }
        Ok(Tokens { digests })
    }

    /// The client holding `presented`, if it is one of the tokens. Every
    /// token is compared, in constant time, whatever matches.
    fn check(&self, presented: &str) -> Option<Client> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for known in &self.digests {
            if constant_time_eq::constant_time_eq_32(known, &digest) {
                found = Some(*known);
            }
        }
        found.map(|digest| {
            let mut principal = b"http-token:".to_vec();
            principal.extend_from_slice(&digest);
            Client {
                principal: principal.into(),
            }
        })
    }
}

/// The authenticated client of an HTTP request, put in its extensions for
/// the MCP service (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    principal: Arc<[u8]>,
}

impl Client {
    fn anonymous() -> Client {
        Client {
            principal: Arc::from(&b"http-anonymous"[..]),
        }
    }

    pub fn principal(&self) -> &[u8] {
        &self.principal
    }
}

/// The HTTP client of an MCP request, when it came over HTTP.
pub fn client(context: &RequestContext<RoleServer>) -> Option<&Client> {
    context
        .extensions
        .get::<http::request::Parts>()?
        .extensions
        .get::<Client>()
}

type HttpBody = BoxBody<Bytes, Infallible>;
type Mcp = StreamableHttpService<ExecServer, LocalSessionManager>;

/// The front end: exposure checks, then rmcp.
struct Front {
    mcp: Mcp,
    sessions: Arc<LocalSessionManager>,
    tokens: Option<Tokens>,
    /// Host names accepted besides loopback.
    allowed_hosts: Vec<String>,
    max_request_bytes: usize,
    /// The client each session was opened by.
    owners: Mutex<HashMap<SessionId, Client>>,
    /// POST responses still streaming, which shutdown lets finish.
    responses: TaskTracker,
    inflight: Arc<Inflight>,
}

/// Serves MCP over Streamable HTTP until SIGTERM or SIGINT (see the module
/// docs), then stops every call and exits.
pub async fn serve(shared: Arc<Shared>, http: HttpSettings) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let listener = TcpListener::bind(http.listen)
        .await
        .with_context(|| format!("failed to listen on {}", http.listen))?;
    let local = listener
        .local_addr()
        .context("failed to read the listening address")?;
    let mcp_ct = CancellationToken::new();
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(SESSION_IDLE);
    let sessions = Arc::new(sessions);
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(mcp_ct.clone())
        .with_max_request_body_bytes(http.max_request_bytes)
        // The front end checks Host and Origin itself, token in hand.
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let factory_shared = shared.clone();
    let next_session = AtomicU64::new(0);
    let mcp = StreamableHttpService::new(
        move || {
            // One per session (or stateless request): its own sandbox
            // state and principal.
            let n = next_session.fetch_add(1, Ordering::Relaxed);
            Ok(ExecServer::new(
                factory_shared.clone(),
                format!("http-session:{n}").into_bytes(),
            ))
        },
        sessions.clone(),
        config,
    );
    let front = Arc::new(Front {
        mcp,
        sessions,
        tokens: http.tokens,
        allowed_hosts: http
            .allowed_hosts
            .iter()
            .map(|h| normalize_host(h))
            .collect(),
        max_request_bytes: http.max_request_bytes,
        owners: Mutex::default(),
        responses: TaskTracker::new(),
        inflight: Arc::default(),
    });
    tracing::info!(
        address = %local,
        auth = if front.tokens.is_some() { "bearer token" } else { "none (loopback only)" },
        "listening: MCP over Streamable HTTP at http://{local}{MCP_PATH}"
    );

    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let signal = loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.context("connection limit closed")?,
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of fds and the like: the next accept may work.
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
        };
        // An SSE response is written in small pieces (headers, each event):
        // with Nagle's algorithm on, each waits for the client's delayed ACK
        // (40 ms a call).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let front = front.clone();
        let closing = closing.clone();
        connections.spawn(async move {
            serve_connection(front, stream, closing).await;
            tracing::debug!(%peer, "connection closed");
            drop(slot);
        });
    };
    drop(listener);
    tracing::info!(
        signal,
        running = shared.running(),
        "shutting down: no new connections, stopping every running call"
    );
    closing.cancel();
    shared.stop_calls().await;
    // The results of the stopped calls are on their way; then end the
    // sessions (and their event streams, which would never end).
    front.responses.close();
    if tokio::time::timeout(DRAIN_WAIT, front.responses.wait())
        .await
        .is_err()
    {
        tracing::warn!("responses still streaming at exit");
    }
    mcp_ct.cancel();
    connections.close();
    if tokio::time::timeout(DRAIN_WAIT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(open = connections.len(), "connections still open at exit");
    }
    Ok(())
}

/// One TCP connection: HTTP/1.1, keep-alive, until the client closes it or
/// shutdown lets its last response finish.
async fn serve_connection(
    front: Arc<Front>,
    stream: tokio::net::TcpStream,
    closing: CancellationToken,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let front = front.clone();
        async move { Ok::<_, Infallible>(front.handle(request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        () = closing.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

impl Front {
    async fn handle(&self, request: Request<Incoming>) -> Response<HttpBody> {
        let path = request.uri().path();
        if path == HEALTH_PATH && matches!(*request.method(), Method::GET | Method::HEAD) {
            return text(StatusCode::OK, "ok\n");
        }
        if path != MCP_PATH {
            return text(StatusCode::NOT_FOUND, "Not Found\n");
        }
        let client = match self.admit(request.headers()) {
            Ok(client) => client,
            Err(refusal) => return refusal.response(),
        };
        let session = match request.headers().get(SESSION_HEADER) {
            None => None,
            Some(value) => {
                let id = value.to_str().ok().map(SessionId::from);
                let owned = id.as_ref().is_some_and(|id| {
                    self.owners
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(id)
                        .is_some_and(|owner| *owner == client)
                });
                if !owned {
                    // Unknown, ended, or another client's: all look the same.
                    return text(StatusCode::NOT_FOUND, "Not Found: Session not found\n");
                }
                id
            }
        };
        let method = request.method().clone();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(client.clone());
        if method != Method::POST {
            if method == Method::DELETE
                && let Some(id) = &session
            {
                // Its calls stop now, not after rmcp's drain time.
                let requests: Vec<RequestId> = self
                    .inflight
                    .lock()
                    .get(id)
                    .map(|r| r.values().cloned().collect())
                    .unwrap_or_default();
                for request in requests {
                    cancel(&self.sessions, id, request, "the session ended").await;
                }
            }
            let request = Request::from_parts(parts, Full::new(Bytes::new()));
            let mut response = self.mcp.handle(request).await;
            if method == Method::DELETE
                && response.status().is_success()
                && let Some(id) = session
            {
                self.owners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                // rmcp says 202; clients (the Python SDK) expect 200 or 204.
                *response.status_mut() = StatusCode::NO_CONTENT;
            }
            return response;
        }
        let body = match self.read_body(&parts.headers, body).await {
            Ok(body) => body,
            Err(refusal) => return refusal.response(),
        };
        // A request in a session is cancelled when its response stream
        // closes early (rmcp does the same for stateless requests).
        let tracked = session.clone().and_then(|session| {
            request_id(&body).map(|request| {
                SessionRequest::new(
                    self.sessions.clone(),
                    self.inflight.clone(),
                    session,
                    request,
                )
            })
        });
        let response = self
            .mcp
            .handle(Request::from_parts(parts, Full::new(body)))
            .await;
        if session.is_none()
            && let Some(id) = response.headers().get(SESSION_HEADER)
            && let Ok(id) = id.to_str()
        {
            self.opened(SessionId::from(id), client).await;
        }
        let (parts, body) = response.into_parts();
        let body = Tracked {
            inner: body,
            _response: self.responses.token(),
            request: tracked,
        };
        Response::from_parts(parts, body.boxed())
    }

    /// Origin, Host and token: the client, or the refusal to send.
    fn admit(&self, headers: &HeaderMap) -> Result<Client, Refusal> {
        for origin in headers.get_all(ORIGIN) {
            let allowed = origin
                .to_str()
                .ok()
                .and_then(origin_host)
                .is_some_and(|host| self.host_allowed(&host));
            if !allowed {
                tracing::warn!(?origin, "refused a request from another origin");
                return Err(Refusal::Forbidden(
                    "Forbidden: Origin is not allowed (add it with --allowed-host)\n",
                ));
            }
        }
        let Some(tokens) = &self.tokens else {
            // Loopback only and no token: the Host check is what stops DNS
            // rebinding.
            let allowed = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .is_some_and(|a| self.host_allowed(&normalize_host(a.host())));
            if !allowed {
                tracing::warn!(host = ?headers.get(HOST), "refused a request for another host");
                return Err(Refusal::Forbidden(
                    "Forbidden: Host is not allowed (add it with --allowed-host)\n",
                ));
            }
            return Ok(Client::anonymous());
        };
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let presented = match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok().and_then(bearer),
            _ => None,
        };
        let Some(presented) = presented else {
            return Err(Refusal::Unauthorized { invalid: false });
        };
        tokens.check(presented).ok_or_else(|| {
            tracing::warn!("refused a request with a wrong bearer token");
            Refusal::Unauthorized { invalid: true }
        })
    }

    fn host_allowed(&self, host: &str) -> bool {
        let ip = host.parse::<IpAddr>().ok();
        host == "localhost"
            || ip.is_some_and(|ip| ip.is_loopback())
            || self.allowed_hosts.iter().any(|allowed| allowed == host)
    }

    /// The whole body, within the limit.
    async fn read_body(&self, headers: &HeaderMap, body: Incoming) -> Result<Bytes, Refusal> {
        let limit = self.max_request_bytes;
        let too_large = || Refusal::TooLarge(limit);
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Err(e) => {
                tracing::debug!(error = %e, "failed to read a request body");
                Err(Refusal::BadBody)
            }
        }
    }

    /// Records who opened a session, forgetting sessions that have ended.
    async fn opened(&self, session: SessionId, client: Client) {
        let stale = {
            let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            owners.insert(session, client);
            owners.len() >= 64 && owners.len().is_power_of_two()
        };
        if stale {
            let live: std::collections::HashSet<SessionId> = self
                .sessions
                .sessions
                .read()
                .await
                .keys()
                .cloned()
                .collect();
            self.owners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|id, _| live.contains(id));
        }
    }
}

/// The id of a JSON-RPC request (not of a notification or response).
fn request_id(body: &[u8]) -> Option<RequestId> {
    #[derive(serde::Deserialize)]
    struct Probe {
        id: Option<RequestId>,
        method: Option<String>,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    probe.method.and(probe.id)
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The host of an `Origin` value (`scheme://host[:port]`, http or https).
fn origin_host(origin: &str) -> Option<String> {
    let uri: http::Uri = origin.parse().ok()?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return None;
    }
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return None;
    }
    Some(normalize_host(uri.authority()?.host()))
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn text(status: StatusCode, body: &str) -> Response<HttpBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Why a request does not reach the MCP service.
enum Refusal {
    Forbidden(&'static str),
    /// No token, or (`invalid`) a wrong one.
    Unauthorized {
        invalid: bool,
    },
    /// Over the body limit (bytes).
    TooLarge(usize),
    BadBody,
}

impl Refusal {
    fn response(self) -> Response<HttpBody> {
        match self {
            Refusal::Forbidden(message) => text(StatusCode::FORBIDDEN, message),
            Refusal::Unauthorized { invalid } => {
                // The challenge RFC 6750 asks for.
                let (message, challenge) = if invalid {
                    (
                        "Unauthorized: invalid bearer token\n",
                        format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
                    )
                } else {
                    (
                        "Unauthorized: send Authorization: Bearer <token>\n",
                        format!("Bearer realm=\"{REALM}\""),
                    )
                };
                let mut response = text(StatusCode::UNAUTHORIZED, message);
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    http::HeaderValue::from_str(&challenge).expect("a valid header value"),
                );
                response
            }
            Refusal::TooLarge(limit) => text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "Payload Too Large: the request body is over {limit} bytes (--max-request-bytes)\n"
                ),
            ),
            Refusal::BadBody => text(StatusCode::BAD_REQUEST, "Bad Request: unreadable body\n"),
        }
    }
}

/// The requests of each session whose response is still streaming, so
/// that a `DELETE` can stop them at once (rmcp would let them run on for
/// its drain time).
#[derive(Default)]
struct Inflight {
    next: AtomicU64,
    by_session: Mutex<HashMap<SessionId, HashMap<u64, RequestId>>>,
}

impl Inflight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, HashMap<u64, RequestId>>> {
        self.by_session.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, session: &SessionId, key: u64) {
        let mut map = self.lock();
        if let Some(requests) = map.get_mut(session) {
            requests.remove(&key);
            if requests.is_empty() {
                map.remove(session);
            }
        }
    }
}

/// A request of a session, from its POST until its response ends; when
/// the response stream is dropped before that (the client went away), the
/// request is cancelled.
struct SessionRequest {
    sessions: Arc<LocalSessionManager>,
    inflight: Arc<Inflight>,
    session: SessionId,
    request: RequestId,
    key: u64,
    ended: bool,
}

impl SessionRequest {
    fn new(
        sessions: Arc<LocalSessionManager>,
        inflight: Arc<Inflight>,
        session: SessionId,
        request: RequestId,
    ) -> SessionRequest {
        let key = inflight.next.fetch_add(1, Ordering::Relaxed);
        inflight
            .lock()
            .entry(session.clone())
            .or_default()
            .insert(key, request.clone());
        SessionRequest {
            sessions,
            inflight,
            session,
            request,
            key,
            ended: false,
        }
    }
}

impl Drop for SessionRequest {
    fn drop(&mut self) {
        self.inflight.remove(&self.session, self.key);
        if self.ended {
            return;
        }
        tracing::info!(session = %self.session, request = %self.request, "response stream closed early: cancelling the request");
        let sessions = self.sessions.clone();
        let session = self.session.clone();
        let request = self.request.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                cancel(&sessions, &session, request, "the client disconnected").await;
            });
        }
    }
}

/// Sends `session` a `notifications/cancelled` for `request`.
async fn cancel(
    sessions: &LocalSessionManager,
    session: &SessionId,
    request: RequestId,
    reason: &str,
) {
    let notification = ClientJsonRpcMessage::notification(
        ClientNotification::CancelledNotification(CancelledNotification::new(
            CancelledNotificationParam::new(Some(request), Some(reason.into())),
        )),
    );
    // The session may have ended already: then there is nothing to cancel.
    let _ = sessions.accept_message(session, notification).await;
}

/// A response body that counts as in flight until it ends or is dropped,
/// and (for a session request) cancels its request when dropped early.
struct Tracked {
    inner: HttpBody,
    _response: TaskTrackerToken,
    request: Option<SessionRequest>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = matches!(poll, Poll::Ready(None)) || self.inner.is_end_stream();
        if ended && let Some(request) = &mut self.request {
            request.ended = true;
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lines_and_must_be_long() {
        let tokens = Tokens::parse(
            "# clients\n0123456789abcdef\n\n  fedcba9876543210fedcba  \n",
            "f",
        )
        .unwrap();
        assert_eq!(tokens.digests.len(), 2);
        let a = tokens.check("0123456789abcdef").unwrap();
        let b = tokens.check("fedcba9876543210fedcba").unwrap();
        assert_ne!(a, b, "each token is a client of its own");
        assert!(tokens.check("0123456789abcdeg").is_none());
        assert!(tokens.check("").is_none());
        let err = Tokens::parse("short\n", "FILE").unwrap_err().to_string();
        assert!(err.contains("line 1 of FILE"), "{err}");
        let err = Tokens::parse("# nothing\n", "FILE")
            .unwrap_err()
            .to_string();
        assert!(err.contains("FILE holds no token"), "{err}");
        let err = Tokens::parse("0123456789\u{e9}abcdef", "V")
            .unwrap_err()
            .to_string();
        assert!(err.contains("printable ASCII"), "{err}");
    }

    #[test]
    fn tokens_do_not_print() {
        let tokens = Tokens::parse("0123456789abcdef", "f").unwrap();
        assert_eq!(format!("{tokens:?}"), "Tokens(1 configured)");
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn origin_hosts() {
        assert_eq!(
            origin_host("http://localhost:3000").as_deref(),
            Some("localhost")
        );
        assert_eq!(origin_host("https://[::1]").as_deref(), Some("::1"));
        assert_eq!(
            origin_host("http://Evil.Example").as_deref(),
            Some("evil.example")
        );
        assert_eq!(origin_host("null"), None);
        assert_eq!(origin_host("file://"), None);
        assert_eq!(origin_host("chrome-extension://abc"), None);
        assert_eq!(origin_host("http://localhost/path"), None);
    }

    #[test]
    fn request_ids_of_requests_only() {
        assert_eq!(
            request_id(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}"#),
            Some(RequestId::Number(7))
        );
        assert_eq!(
            request_id(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            None
        );
        assert_eq!(
            request_id(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            None
        );
        assert_eq!(request_id(b"[]"), None);
    }
}
