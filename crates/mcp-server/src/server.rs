//! The MCP face: `initialize`, the `shell` tool, `codex/sandbox-state/update`,
//! and elicitation for `prompt` decisions. The only module that knows MCP
//! (with [`crate::mrtr`] and the HTTP transport, [`crate::http`]).
//!
//! [`Shared`] is the server: settings, rules, the launcher, the running
//! calls and their shutdown, the calls paused on a question. [`ExecServer`]
//! is the MCP service of one connection over it: on stdio the one client;
//! over HTTP one session, or one stateless request. What a connection sets
//! (the sandbox state of `codex/sandbox-state/update`) is its own.
//!
//! # Shutdown
//!
//! Every call runs under a token that is cancelled by the call's own
//! `notifications/cancelled` and by server shutdown. On stdio the server
//! shuts down when stdin reaches end-of-file (the client went away) or on
//! SIGTERM or SIGINT (over HTTP, see [`crate::http`]): running calls are
//! stopped as a timeout stops them (their process groups and escalated
//! programs are killed, SIGTERM then SIGKILL), their results are still sent
//! when the client listens, and the server waits for every call to end
//! before it exits, with status 0.
//!
//! At most `--max-calls` calls run at once, over every transport; one more
//! is refused with JSON-RPC error [`SERVER_BUSY`].

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use escalate::{
    Control, EnvPolicy, EscalationConfig, Exposure, Outcome, ProgressFn, ShellConfig, ShellRequest,
    TimerPause, display,
};
use policy::{MatchOptions, Policy};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest,
    CustomResult, ElicitRequestParams, ElicitationAction, ErrorCode, Implementation,
    InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ProtocolVersion, ServerCapabilities, Tool,
};
use rmcp::service::{ElicitationMode, RequestContext};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler, ServiceError, ServiceExt};
use sandbox::SandboxSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{MAX_TIMEOUT_MS, Settings};
use crate::decider::{Answer, Approver, RulesDecider};
use crate::launcher::Launcher;
use crate::mrtr::{self, Asker, Driving, Event, PausedCalls};
use crate::procs::{self, ProcTable};
use crate::sandbox_state::{self, SandboxState};

/// The sandbox one call runs under, and what its result must say about it.
struct CallSandbox {
    spec: Option<SandboxSpec>,
    warnings: Vec<String>,
}

/// The one tool.
pub const TOOL_NAME: &str = "shell";
const INSTRUCTIONS: &str =
    "This server provides a tool to execute shell commands and return their output.";
/// Between SIGTERM and SIGKILL when a call is stopped.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How much longer than the approval wait a `requestState` stays valid.
const STATE_TTL_MARGIN: Duration = Duration::from_secs(60);
/// JSON-RPC error code (implementation-defined server error range) of a
/// call refused because `--max-calls` calls are running.
pub const SERVER_BUSY: i32 = -32001;
/// How long shutdown waits for stopped calls to end (the kill grace, plus
/// the time `run_shell` gives output still in flight).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// The `shell` tool's arguments, as the reference names them.
#[derive(Debug, Deserialize)]
pub struct ExecParams {
    pub command: String,
    pub workdir: String,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub login: Option<bool>,
}

/// The `shell` tool's result: the reference's fields plus `dropped_bytes`.
#[derive(Debug, Serialize)]
pub struct ExecResult {
    pub exit_code: i32,
    pub output: String,
    pub duration: DurationJson,
    pub timed_out: bool,
    /// Bytes elided from the middle of `output`.
    pub dropped_bytes: u64,
    /// What the model should know about how the call ran (a sandbox state
    /// the server could not read, a writable root it refused).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Execs refused by the rules that did not go through the shell's
    /// wrapper (a program started by another program), with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<String>,
}

/// `std::time::Duration` as serde writes it, as the reference does.
#[derive(Debug, Serialize)]
pub struct DurationJson {
    pub secs: u64,
    pub nanos: u32,
}

impl From<Outcome> for ExecResult {
    fn from(o: Outcome) -> Self {
        ExecResult {
            exit_code: o.exit_code,
            output: o.output,
            duration: DurationJson {
                secs: o.duration.as_secs(),
                nanos: o.duration.subsec_nanos(),
            },
            timed_out: o.timed_out,
            dropped_bytes: o.dropped_bytes,
            warnings: Vec::new(),
            denied: o.denied,
        }
    }
}

/// The input schema, as the reference publishes it.
pub fn input_schema() -> JsonObject {
    let Value::Object(o) = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ExecParams",
        "type": "object",
        "properties": {
            "command": {"description": "The bash string to execute.", "type": "string"},
            "workdir": {
                "description": "The working directory to execute the command in. Must be an absolute path.",
                "type": "string"
            },
            "timeout_ms": {
                "description": "The timeout for the command in milliseconds.",
                "type": "integer", "format": "uint64", "minimum": 0, "nullable": true
            },
            "login": {
                "description": "Launch Bash with -lc instead of -c: defaults to true.",
                "type": "boolean", "nullable": true
            }
        },
        "required": ["command", "workdir"]
    }) else {
        unreachable!("a JSON object literal")
    };
    o
}

/// The output schema matching [`ExecResult`]. Only formats that JSON
/// Schema validators know (not schemars' `uint64`): clients compile this
/// schema to check `structuredContent`, and a strict validator (Ajv with
/// `strict: true`) rejects a schema with an unknown format.
pub fn output_schema() -> JsonObject {
    let Value::Object(o) = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ExecResult",
        "type": "object",
        "properties": {
            "exit_code": {"description": "Exit code of the command; 128+N when killed by signal N, 124 on timeout.", "type": "integer", "format": "int32"},
            "output": {"description": "Standard output and standard error, interleaved as produced.", "type": "string"},
            "duration": {
                "type": "object",
                "properties": {
                    "secs": {"type": "integer", "minimum": 0},
                    "nanos": {"type": "integer", "minimum": 0, "maximum": 999_999_999}
                },
                "required": ["secs", "nanos"]
            },
            "timed_out": {"description": "Whether the command was stopped by its timeout.", "type": "boolean"},
            "dropped_bytes": {"description": "Bytes elided from the middle of the output.", "type": "integer", "minimum": 0},
            "warnings": {"description": "How the call ran differently from what was asked (a sandbox state the server could not read).", "type": "array", "items": {"type": "string"}},
            "denied": {"description": "Execs the rules refused that were not the shell's own (a program started by another program).", "type": "array", "items": {"type": "string"}}
        },
        "required": ["exit_code", "output", "duration", "timed_out"]
    }) else {
        unreachable!("a JSON object literal")
    };
    o
}

/// The `shell` tool definition.
pub fn shell_tool() -> Tool {
    Tool::new(
        TOOL_NAME,
        "Runs a shell command and returns its output. You MUST provide the workdir as an absolute path.",
        Arc::new(input_schema()),
    )
    .with_raw_output_schema(Arc::new(output_schema()))
}

/// What every connection of the server shares: configuration, rules, the
/// launcher, and the running calls with their shutdown. One per process.
pub struct Shared {
    settings: Settings,
    policy: Arc<Policy>,
    /// The programs wrappers must ask about (`decider::ask_list`), made once.
    ask: Option<Arc<[String]>>,
    /// Sandbox warnings already logged at warn level (each is logged once).
    warned: Mutex<std::collections::HashSet<String>>,
    /// The sandbox launcher (see [`crate::launcher`]).
    launcher: Launcher,
    /// How escalated programs start: their environment, and what sandboxed
    /// code could have written since start (shared by every call).
    escalation: EscalationConfig,
    /// Cancelled when the server shuts down: stops every running call.
    shutdown: CancellationToken,
    /// The running calls, so shutdown can wait for them to end.
    calls: TaskTracker,
    /// Calls waiting for a client's retry (MCP 2026-07-28 prompts).
    paused: Arc<PausedCalls>,
    /// One permit per running call (`--max-calls`), whatever the transport.
    slots: Arc<Semaphore>,
    /// The background processes of clients that have no connection of
    /// their own (MCP 2026-07-28 over HTTP: the bearer token's client).
    client_procs: Mutex<std::collections::HashMap<Vec<u8>, Arc<ProcTable>>>,
}

impl Shared {
    pub fn new(settings: Settings, policy: Policy) -> anyhow::Result<Arc<Shared>> {
        let exe = std::env::current_exe().context("failed to locate the server executable")?;
        let launcher = Launcher::find(&exe);
        tracing::debug!(?launcher, "sandbox launcher");
        let env = EnvPolicy::new(std::env::vars_os(), &settings.pass_env)?;
        tracing::debug!(passed = ?env.passed(), "variables escalated programs take from requests");
        let escalation = EscalationConfig {
            env: Arc::new(env),
            exposure: Exposure::new(),
            reaper: Some(launcher.reaper()),
        };
        Ok(Arc::new(Shared {
            escalation,
            ask: crate::decider::ask_list(&policy),
            policy: Arc::new(policy),
            warned: Mutex::default(),
            launcher,
            shutdown: CancellationToken::new(),
            calls: TaskTracker::new(),
            paused: Arc::new(
                PausedCalls::new(settings.elicitation_wait + STATE_TTL_MARGIN)
                    .context("cannot make the request-state key")?,
            ),
            slots: Arc::new(Semaphore::new(settings.max_calls)),
            client_procs: Mutex::default(),
            settings,
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stops every running call (as a timeout stops them) and waits, at
    /// most [`SHUTDOWN_WAIT`], for them to end; stopped calls still answer
    /// their requests while the transport lives.
    pub async fn stop_calls(&self) {
        self.shutdown.cancel();
        // Background processes are tasks of `calls` too, ended by the
        // shutdown token; these tables only hold their handles.
        self.client_procs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.calls.close();
        if tokio::time::timeout(SHUTDOWN_WAIT, self.calls.wait())
            .await
            .is_err()
        {
            tracing::error!(running = self.calls.len(), "calls still running at exit");
        }
    }

    /// Calls running now.
    pub fn running(&self) -> usize {
        self.calls.len()
    }
}

/// The MCP service of one connection: one stdio client, one HTTP session,
/// or one stateless HTTP request (see [`crate::http`]).
pub struct ExecServer {
    shared: Arc<Shared>,
    /// Set by `codex/sandbox-state/update`; this connection's alone.
    state: Mutex<Option<SandboxState>>,
    /// Who the client is, for binding `requestState`s to it.
    principal: Vec<u8>,
    /// This connection's background processes: killed when it goes.
    procs: Arc<ProcTable>,
}

impl ExecServer {
    /// The service of one connection, whose client is `principal`.
    pub fn new(shared: Arc<Shared>, principal: Vec<u8>) -> ExecServer {
        ExecServer {
            procs: ProcTable::new(shared.settings.processes),
            shared,
            state: Mutex::new(None),
            principal,
        }
    }

    /// Serves MCP on stdin/stdout until stdin ends or SIGTERM or SIGINT
    /// arrives, then stops every running call and waits for them to end
    /// (see the module docs).
    pub async fn serve_stdio(self) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        let mut sigterm = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
        let mut sigint = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
        let (stdin, stdout) = rmcp::transport::stdio();
        let stdin = CancelOnEof {
            inner: stdin,
            on_eof: shared.shutdown.clone(),
        };
        let running = tokio::select! {
            running = self.serve((stdin, stdout)) => running.context("MCP initialization failed")?,
            _ = sigterm.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        };
        let service = running.cancellation_token();
        let waiting = running.waiting();
        tokio::pin!(waiting);
        let signalled = tokio::select! {
            reason = &mut waiting => {
                tracing::info!(?reason, "MCP session ended");
                None
            }
            _ = sigterm.recv() => Some("SIGTERM"),
            _ = sigint.recv() => Some("SIGINT"),
        };
        if let Some(signal) = signalled {
            tracing::info!(
                signal,
                running = shared.running(),
                "shutting down: stopping every running call"
            );
        }
        // Stopped calls still answer while the session lives.
        shared.stop_calls().await;
        if signalled.is_some() {
            service.cancel();
            let reason = waiting.await.context("MCP service failed")?;
            tracing::info!(?reason, "MCP session ended");
        }
        Ok(())
    }

    /// Who sent this request, for binding `requestState`s: the client of
    /// this connection, except on a stateless HTTP request (MCP 2026-07-28
    /// over HTTP, a fresh service per request), whose client is the
    /// holder of the bearer token it presented (see [`crate::http`]).
    fn principal<'a>(&'a self, context: &'a RequestContext<RoleServer>) -> &'a [u8] {
        match crate::http::client(context) {
            Some(client) if mrtr_session(context) => client.principal(),
            _ => &self.principal,
        }
    }

    /// The sandbox for a call: the state in its `_meta` if readable, else
    /// the one set by the update request, else the server's default. A
    /// state that asks for what cannot be enforced is an error (the tool
    /// error's message).
    fn call_sandbox(&self, meta: &rmcp::model::RequestMetaObject) -> Result<CallSandbox, String> {
        let mut warnings = Vec::new();
        let from_meta = meta
            .get(sandbox_state::META_KEY)
            .or_else(|| meta.get(sandbox_state::META_KEY_ALIAS))
            .and_then(|value| match SandboxState::parse(value) {
                Ok(state) => Some(state),
                Err(e) => {
                    warnings.push(format!(
                        "{e}; the {} sandbox applies instead",
                        self.fallback_name()
                    ));
                    None
                }
            });
        let stored = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let spec = match from_meta.or(stored) {
            Some(state) => {
                let resolution = state
                    .resolve(
                        &self.shared.settings.cwd,
                        &self.shared.settings.protected_paths,
                        &self.shared.settings.hidden_paths,
                    )
                    .map_err(|e| format!("cannot run under the client's sandbox: {e}"))?;
                warnings.extend(sandbox_state::resolution_warnings(&resolution));
                resolution.spec
            }
            None => sandbox_state::default_spec(&self.shared.settings)
                .map_err(|e| format!("cannot run under the server's sandbox: {e}"))?,
        };
        for warning in &warnings {
            let first = self
                .shared
                .warned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(warning.clone());
            if first {
                tracing::warn!(%warning, "sandbox state");
            } else {
                tracing::debug!(%warning, "sandbox state");
            }
        }
        if let Some(http) = &self.shared.settings.http
            && http.tokens.is_none()
            && spec.as_ref().is_some_and(|spec| spec.network)
        {
            return Err(format!(
                "cannot run with the network on in the sandbox: this server listens on {} without \
                 a token, so a command could connect to it and run what it likes outside the \
                 sandbox (start the server with --auth-token-file FILE)",
                http.listen
            ));
        }
        Ok(CallSandbox { spec, warnings })
    }

    fn fallback_name(&self) -> &'static str {
        if self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            "last state the client set"
        } else {
            "server's default"
        }
    }

    /// The configuration of a call or background process of the client
    /// whose processes are `table` (its loopback network is the table's).
    async fn shell_config(
        &self,
        spec: Option<&SandboxSpec>,
        table: &ProcTable,
    ) -> Result<ShellConfig, McpError> {
        let loopback = match spec {
            Some(spec) if !spec.network => table.loopback(self.shared.launcher.argv()).await.ok(),
            _ => None,
        };
        let sandbox = match spec {
            Some(spec) => Some(serde_json::to_string(spec).map_err(|e| {
                McpError::internal_error(format!("failed to encode sandbox spec: {e}"), None)
            })?),
            None => None,
        };
        let launcher = self.shared.launcher.argv().to_vec();
        Ok(ShellConfig {
            bash: self.shared.settings.bash.clone(),
            wrapper: self.shared.settings.wrapper.clone(),
            launcher,
            sandbox,
            escalation: self.shared.escalation.clone(),
            output_limits: self.shared.settings.output_limits,
            kill_grace: KILL_GRACE,
            exec_check: self.shared.settings.exec_check == crate::config::ExecCheckMode::All,
            loopback,
        })
    }

    /// A `tools/call` of `shell`: a new call, or (with `requestState`) the
    /// retry that resumes a call paused on a question (see [`crate::mrtr`]).
    async fn shell(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let binding = mrtr::binding(
            self.principal(&context),
            &request.name,
            request.arguments.as_ref(),
        );
        if let Some(state) = &request.request_state {
            return self
                .resume(state, binding, request.input_responses.as_ref(), &context)
                .await;
        }
        if request.input_responses.is_some() {
            return Err(McpError::invalid_params(
                "inputResponses without requestState: nothing to resume",
                None,
            ));
        }
        let params: ExecParams = serde_json::from_value(Value::Object(
            request.arguments.unwrap_or_default(),
        ))
        .map_err(|e| {
            McpError::invalid_params(format!("failed to deserialize parameters: {e}"), None)
        })?;
        if self.shared.shutdown.is_cancelled() {
            return Ok(tool_error("the server is shutting down".into()).into());
        }
        // Held by the call's task until the call ends (paused calls too).
        let Ok(slot) = self.shared.slots.clone().try_acquire_owned() else {
            let limit = self.shared.settings.max_calls;
            tracing::warn!(limit, "call refused: too many calls running");
            return Err(McpError::new(
                ErrorCode(SERVER_BUSY),
                format!(
                    "too many calls running: the server runs at most {limit} at once (--max-calls); retry when one has ended"
                ),
                Some(json!({"max_calls": limit})),
            ));
        };
        let workdir = PathBuf::from(&params.workdir);
        if let Err(message) = check_workdir(&workdir) {
            return Ok(tool_error(message).into());
        }
        let timeout_ms = params
            .timeout_ms
            .unwrap_or(self.shared.settings.default_timeout.as_millis() as u64);
        if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Ok(tool_error(format!(
                "timeout_ms {timeout_ms} is out of range 1..={MAX_TIMEOUT_MS}"
            ))
            .into());
        }
        let CallSandbox { spec, warnings } = match self.call_sandbox(&context.meta) {
            Ok(sandbox) => sandbox,
            Err(message) => return Ok(tool_error(message).into()),
        };
        let config = self
            .shell_config(spec.as_ref(), &self.procs(&context))
            .await?;
        let shell_request = ShellRequest {
            command: params.command,
            workdir,
            login: params.login.unwrap_or(true),
            timeout: Duration::from_millis(timeout_ms),
            env: std::env::vars_os().collect(),
        };
        // Stopped by the client's `notifications/cancelled` (of whichever
        // request drives it), by shutdown, or when nobody answers a question.
        let cancel = self.shared.shutdown.child_token();
        let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let approver: Box<dyn Approver> = if mrtr_session(&context) {
            let can_elicit = context
                .client_capabilities()
                .is_some_and(|c| c.elicitation.is_some());
            Box::new(Asker::new(
                events.clone(),
                self.shared.settings.elicitation_wait,
                cancel.clone(),
                can_elicit,
            ))
        } else {
            Box::new(McpApprover {
                handle: tokio::runtime::Handle::current(),
                peer: context.peer.clone(),
                wait: self.shared.settings.elicitation_wait,
                cancel: cancel.clone(),
            })
        };
        let timer = TimerPause::default();
        let decider = Arc::new(RulesDecider {
            policy: self.shared.policy.clone(),
            options: MatchOptions {
                preserve_program_paths: self.shared.settings.preserve_program_paths,
            },
            approver,
            timer: timer.clone(),
            ask: self.shared.ask.clone(),
        });
        let progress = ProgressSink::default();
        let control = Control {
            cancel: cancel.clone(),
            timer,
            progress: Some(progress.reporter()),
        };
        tracing::info!(command = %display::cut(&shell_request.command, display::LOG_LIMIT),
            workdir = %display::cut(&shell_request.workdir.display().to_string(), display::LOG_LIMIT),
            sandboxed = spec.is_some(), "shell call");
        let call = self.shared.paused.call_id();
        let paused = self.shared.paused.clone();
        let ended = cancel.clone();
        self.shared.calls.spawn(async move {
            let outcome = escalate::run_shell(&config, shell_request, decider, control).await;
            // Nothing of the call runs any more: a question still open is moot.
            ended.cancel();
            let result = match outcome {
                Ok(outcome) => {
                    let mut r = ExecResult::from(outcome);
                    r.warnings = warnings;
                    result(r)
                }
                Err(e) => {
                    tracing::error!(error = %e, "shell call failed");
                    tool_error(format!("failed to run the command: {e}"))
                }
            };
            let _ = events.send(Event::Done(Ok(result)));
            paused.forget(call);
            drop(slot);
        });
        let driving = Driving {
            events: events_rx,
            cancel,
            progress,
        };
        self.drive(call, driving, binding, &context).await
    }

    /// Follows a running call on behalf of one request: its result, or the
    /// input-required result of its next question (the call is then parked
    /// until the client's retry).
    async fn drive(
        &self,
        call: u64,
        mut driving: Driving,
        binding: [u8; 32],
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let _progress = driving.progress.attach(context);
        let mut forwarded = false;
        loop {
            tokio::select! {
                event = driving.events.recv() => match event {
                    Some(Event::Done(result)) => return result.map(CallToolResponse::from),
                    // The call ended while its question was in flight.
                    Some(Event::Question(question)) if driving.cancel.is_cancelled() => drop(question),
                    Some(Event::Question(question)) => {
                        return self
                            .shared
                            .paused
                            .pause(call, question, driving, binding)
                            .map(CallToolResponse::from);
                    }
                    None => {
                        return Err(McpError::internal_error("the call ended without a result", None));
                    }
                },
                () = context.ct.cancelled(), if !forwarded => {
                    forwarded = true;
                    driving.cancel.cancel();
                }
            }
        }
    }

    /// A retry with `requestState`: answers the paused call's question and
    /// drives the call on.
    async fn resume(
        &self,
        state: &str,
        binding: [u8; 32],
        responses: Option<&rmcp::model::InputResponses>,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let (call, paused) = self
            .shared
            .paused
            .resume(state, &binding)
            .map_err(|e| McpError::invalid_params(e.to_string(), None))?;
        if let Err(e) = paused.answer(responses) {
            self.shared.paused.put_back(call, paused);
            return Err(e);
        }
        self.drive(call, paused.into_driving(), binding, context)
            .await
    }
}

/// The arguments of a tool call, or the invalid-params error naming the
/// problem.
fn arguments<T: serde::de::DeserializeOwned>(
    request: CallToolRequestParams,
) -> Result<T, McpError> {
    if request.request_state.is_some() || request.input_responses.is_some() {
        return Err(McpError::invalid_params(
            format!(
                "{} does not take requestState or inputResponses",
                request.name
            ),
            None,
        ));
    }
    serde_json::from_value(Value::Object(request.arguments.unwrap_or_default())).map_err(|e| {
        McpError::invalid_params(format!("failed to deserialize parameters: {e}"), None)
    })
}

/// A process tool's answer: its result (with `warnings`), or the
/// input-required result of a question of the process.
fn reply_response(reply: procs::Reply, warnings: Vec<String>) -> CallToolResponse {
    match reply {
        procs::Reply::Result(mut result) => {
            result.warnings = warnings;
            procs::result(&result).into()
        }
        procs::Reply::InputRequired(input) => input.into(),
    }
}

impl ExecServer {
    /// The background processes of the client behind `context`: this
    /// connection's, or on a stateless HTTP request its token's.
    fn procs(&self, context: &RequestContext<RoleServer>) -> Arc<ProcTable> {
        match crate::http::client(context) {
            Some(client) if mrtr_session(context) => self
                .shared
                .client_procs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(client.principal().to_vec())
                .or_insert_with(|| ProcTable::new(self.shared.settings.processes))
                .clone(),
            _ => self.procs.clone(),
        }
    }

    /// `exec_command`: starts a background process (see [`crate::procs`]).
    async fn exec_command(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = std::time::Instant::now();
        if request.request_state.is_some() {
            return self.resume_process(request, context, started).await;
        }
        let binding = mrtr::binding(
            self.principal(&context),
            &request.name,
            request.arguments.as_ref(),
        );
        let params: procs::ExecCommandParams = arguments(request)?;
        if self.shared.shutdown.is_cancelled() {
            return Ok(tool_error("the server is shutting down".into()).into());
        }
        let table = self.procs(&context);
        let settings = table.settings();
        let checked = (|| {
            let yield_time = procs::yield_time(params.yield_time_ms, procs::DEFAULT_EXEC_YIELD_MS)?;
            let max_bytes = procs::max_bytes(params.max_output_tokens, &settings)?;
            let size = procs::window_size(params.rows, params.cols)?;
            table.has_room().map_err(|e| e.to_string())?;
            let workdir = match &params.workdir {
                Some(dir) => PathBuf::from(dir),
                None => self.shared.settings.cwd.clone(),
            };
            check_workdir(&workdir)?;
            Ok::<_, String>((yield_time, max_bytes, size, workdir))
        })();
        let (yield_time, max_bytes, size, workdir) = match checked {
            Ok(checked) => checked,
            Err(message) => return Ok(tool_error(message).into()),
        };
        let CallSandbox { spec, warnings } = match self.call_sandbox(&context.meta) {
            Ok(sandbox) => sandbox,
            Err(message) => return Ok(tool_error(message).into()),
        };
        let config = self.shell_config(spec.as_ref(), &table).await?;
        let cancel = self.shared.shutdown.child_token();
        let mut driving = None;
        let approver: Box<dyn Approver> = if mrtr_session(&context) {
            // Questions go to the next call on the handle; one nobody
            // answers is denied, the process lives on.
            let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
            let asked = cancel.child_token();
            let can_elicit = context
                .client_capabilities()
                .is_some_and(|c| c.elicitation.is_some());
            driving = Some(Driving {
                events: events_rx,
                cancel: asked.clone(),
                progress: ProgressSink::default(),
            });
            Box::new(Asker::new(
                events,
                self.shared.settings.elicitation_wait,
                asked,
                can_elicit,
            ))
        } else {
            Box::new(McpApprover {
                handle: tokio::runtime::Handle::current(),
                peer: context.peer.clone(),
                wait: self.shared.settings.elicitation_wait,
                cancel: cancel.clone(),
            })
        };
        let decider = Arc::new(RulesDecider {
            policy: self.shared.policy.clone(),
            options: MatchOptions {
                preserve_program_paths: self.shared.settings.preserve_program_paths,
            },
            approver,
            timer: TimerPause::default(),
            ask: self.shared.ask.clone(),
        });
        let tty = params.tty.unwrap_or(false);
        let shell_request = ShellRequest {
            command: params.cmd.clone(),
            workdir: workdir.clone(),
            login: params.login.unwrap_or(true),
            timeout: Duration::MAX,
            env: std::env::vars_os().collect(),
        };
        tracing::info!(command = %display::cut(&shell_request.command, display::LOG_LIMIT),
            workdir = %display::cut(&workdir.display().to_string(), display::LOG_LIMIT),
            sandboxed = spec.is_some(), tty, "background process");
        let size = tty.then(|| size.unwrap_or(procs::DEFAULT_SIZE));
        let (process, supervise) = match escalate::start_process(
            &config,
            shell_request,
            size,
            decider,
            cancel,
            settings.output_bytes,
        ) {
            Ok(started) => started,
            Err(e) => {
                tracing::error!(error = %e, "background process failed to start");
                return Ok(tool_error(format!("failed to run the command: {e}")).into());
            }
        };
        self.shared.calls.spawn(supervise);
        let call = self.shared.paused.call_id();
        let (handle, entry) = match table.insert(process, params.cmd, workdir, call, driving) {
            Ok(inserted) => inserted,
            Err(e) => return Ok(tool_error(e.to_string()).into()),
        };
        let deadline = started + yield_time;
        let ask = procs::Ask {
            paused: &self.shared.paused,
            binding,
        };
        let reply = table
            .read(&handle, &entry, deadline, max_bytes, started, Some(ask))
            .await?;
        Ok(reply_response(reply, warnings))
    }

    /// The retry of an `exec_command` or `write_stdin` that met a question
    /// of its process (MCP 2026-07-28): answers it, then reads as the call
    /// asked (a `write_stdin`'s chars were written the first time).
    async fn resume_process(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
        started: std::time::Instant,
    ) -> Result<CallToolResponse, McpError> {
        let binding = mrtr::binding(
            self.principal(&context),
            &request.name,
            request.arguments.as_ref(),
        );
        let state = request.request_state.as_deref().unwrap_or_default();
        let (call, paused) = self
            .shared
            .paused
            .resume(state, &binding)
            .map_err(|e| McpError::invalid_params(e.to_string(), None))?;
        if let Err(e) = paused.answer(request.input_responses.as_ref()) {
            self.shared.paused.put_back(call, paused);
            return Err(e);
        }
        let table = self.procs(&context);
        let Some((handle, entry)) = table.by_call(call) else {
            return Ok(tool_error("the process has ended".into()).into());
        };
        table.resume(&entry, paused.into_driving()).await;
        let args = Value::Object(request.arguments.unwrap_or_default());
        let (yield_ms, tokens) = (
            args.get("yield_time_ms").and_then(Value::as_u64),
            args.get("max_output_tokens").and_then(Value::as_u64),
        );
        let default = match &*request.name {
            procs::EXEC_COMMAND => procs::DEFAULT_EXEC_YIELD_MS,
            _ => procs::DEFAULT_WRITE_YIELD_MS,
        };
        let checked = procs::yield_time(yield_ms, default)
            .and_then(|y| Ok((y, procs::max_bytes(tokens, &table.settings())?)));
        let (yield_time, max_bytes) = match checked {
            Ok(checked) => checked,
            Err(message) => return Ok(tool_error(message).into()),
        };
        let ask = procs::Ask {
            paused: &self.shared.paused,
            binding,
        };
        let reply = table
            .read(
                &handle,
                &entry,
                started + yield_time,
                max_bytes,
                started,
                Some(ask),
            )
            .await?;
        Ok(reply_response(reply, Vec::new()))
    }

    /// `write_stdin`: input to a background process, and its new output.
    async fn write_stdin(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = std::time::Instant::now();
        if request.request_state.is_some() {
            return self.resume_process(request, context, started).await;
        }
        let binding = mrtr::binding(
            self.principal(&context),
            &request.name,
            request.arguments.as_ref(),
        );
        let params: procs::WriteStdinParams = arguments(request)?;
        let table = self.procs(&context);
        let checked = (|| {
            let yield_time =
                procs::yield_time(params.yield_time_ms, procs::DEFAULT_WRITE_YIELD_MS)?;
            let max_bytes = procs::max_bytes(params.max_output_tokens, &table.settings())?;
            let size = procs::window_size(params.rows, params.cols)?;
            let entry = table.get(&params.session_id)?;
            Ok::<_, String>((yield_time, max_bytes, size, entry))
        })();
        let (yield_time, max_bytes, size, entry) = match checked {
            Ok(checked) => checked,
            Err(message) => return Ok(tool_error(message).into()),
        };
        let deadline = started + yield_time;
        let mut warnings = Vec::new();
        if let Some(size) = size {
            if !entry.process.tty() {
                warnings.push("rows and cols are for a process started with tty".to_owned());
            } else if let Err(e) = entry.process.resize(size) {
                warnings.push(format!("cannot resize the terminal: {e}"));
            }
        }
        if !params.chars.is_empty()
            && let Err(e) = entry.process.write(params.chars.as_bytes(), deadline).await
        {
            warnings.push(e.to_string());
        }
        let ask = procs::Ask {
            paused: &self.shared.paused,
            binding,
        };
        let reply = table
            .read(
                &params.session_id,
                &entry,
                deadline,
                max_bytes,
                started,
                Some(ask),
            )
            .await?;
        Ok(reply_response(reply, warnings))
    }

    /// `kill_process`: ends a background process (or passes a signal on).
    async fn kill_process(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = std::time::Instant::now();
        let params: procs::KillParams = arguments(request)?;
        let table = self.procs(&context);
        let signal = match procs::parse_signal(params.signal.as_deref()) {
            Ok(signal) => signal,
            Err(message) => return Ok(tool_error(message).into()),
        };
        let max_bytes = table.settings().output_bytes;
        match table
            .kill(&params.session_id, signal, max_bytes, started)
            .await
        {
            Ok(result) => Ok(procs::result(&result).into()),
            Err(message) => Ok(tool_error(message).into()),
        }
    }

    /// `list_processes`.
    fn list_processes(&self, context: &RequestContext<RoleServer>) -> CallToolResult {
        let table = self.procs(context);
        procs::structured(json!({
            "processes": table.list(),
            "max_processes": table.settings().max,
        }))
    }
}

/// Whether the request's protocol version is 2026-07-28 or newer, where the
/// server cannot send requests to the client.
fn mrtr_session(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

impl ServerHandler for ExecServer {
    fn get_info(&self) -> InitializeResult {
        let mut experimental = std::collections::BTreeMap::new();
        let Value::Object(version) = json!({"version": "1.0.0"}) else {
            unreachable!("a JSON object literal")
        };
        for capability in sandbox_state::CAPABILITIES {
            experimental.insert(capability.to_string(), version.clone());
        }
        let capabilities = ServerCapabilities::builder()
            .enable_experimental_with(experimental)
            .enable_tools()
            .build();
        let mut info = InitializeResult::new(capabilities);
        info.server_info = Implementation::new("codex-exec-mcp-server", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(INSTRUCTIONS.into());
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = vec![shell_tool()];
        tools.extend(procs::tools());
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        match &*request.name {
            TOOL_NAME => self.shell(request, context).await,
            procs::EXEC_COMMAND => self.exec_command(request, context).await,
            procs::WRITE_STDIN => self.write_stdin(request, context).await,
            procs::KILL_PROCESS => self.kill_process(request, context).await,
            procs::LIST_PROCESSES => Ok(self.list_processes(&context).into()),
            _ => Err(McpError::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            )),
        }
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        if request.method != sandbox_state::UPDATE_METHOD {
            return Err(McpError::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                request.method,
                None,
            ));
        }
        if crate::http::client(&context).is_some() && mrtr_session(&context) {
            return Err(McpError::invalid_params(
                format!(
                    "{} needs a session, and MCP 2026-07-28 over HTTP has none (every request stands \
                     alone): send the state with each call in _meta[\"{}\"]",
                    sandbox_state::UPDATE_METHOD,
                    sandbox_state::META_KEY
                ),
                None,
            ));
        }
        let Some(params) = request.params else {
            return Err(McpError::invalid_params(
                "missing params for sandbox state request",
                None,
            ));
        };
        let state = SandboxState::parse(&params).map_err(|e| {
            tracing::warn!(error = %e, "bad sandbox state");
            McpError::invalid_params("failed to deserialize sandbox state", Some(params.clone()))
        })?;
        if let Err(e) = state.resolve(
            &self.shared.settings.cwd,
            &self.shared.settings.protected_paths,
            &self.shared.settings.hidden_paths,
        ) {
            return Err(McpError::invalid_params(
                format!("cannot run under this sandbox state: {e}"),
                Some(params),
            ));
        }
        tracing::info!(?state, "sandbox state updated");
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
        Ok(CustomResult::new(json!({})))
    }
}

fn check_workdir(workdir: &Path) -> Result<(), String> {
    if !workdir.is_absolute() {
        return Err(format!(
            "workdir `{}` is not an absolute path",
            workdir.display()
        ));
    }
    match std::fs::metadata(workdir) {
        Ok(m) if m.is_dir() => {
            use std::os::unix::fs::MetadataExt;
            let access = nix::unistd::faccessat(
                nix::fcntl::AT_FDCWD,
                workdir,
                nix::unistd::AccessFlags::X_OK,
                nix::fcntl::AtFlags::AT_EACCESS,
            );
            match access {
                Ok(()) => Ok(()),
                Err(_) => Err(format!(
                    "workdir `{}` is not accessible to uid {} (mode {:04o}, owner {})",
                    workdir.display(),
                    nix::unistd::geteuid(),
                    m.mode() & 0o7777,
                    m.uid()
                )),
            }
        }
        Ok(_) => Err(format!(
            "workdir `{}` is not a directory",
            workdir.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("workdir `{}` does not exist", workdir.display()))
        }
        Err(e) => Err(format!(
            "workdir `{}` is not accessible: {e}",
            workdir.display()
        )),
    }
}

fn result(r: ExecResult) -> CallToolResult {
    let text = serde_json::to_string(&r).unwrap_or_default();
    let mut result = CallToolResult::structured(serde_json::to_value(&r).unwrap_or_default());
    result.content = vec![ContentBlock::text(text)];
    result
}

fn tool_error(message: String) -> CallToolResult {
    tracing::warn!(%message, "shell call rejected");
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// Stdin that cancels a token when it reaches end-of-file (or fails): the
/// client is gone, so its running calls must stop.
struct CancelOnEof<R> {
    inner: R,
    on_eof: CancellationToken,
}

impl<R: AsyncRead + Unpin> AsyncRead for CancelOnEof<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let ended = match &poll {
            Poll::Ready(Ok(())) => buf.filled().len() == before && buf.remaining() > 0,
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        };
        if ended {
            tracing::info!("stdin closed: stopping every running call");
            self.on_eof.cancel();
        }
        poll
    }
}

/// Where a call's progress goes: the progress token and peer of the
/// request driving it now (a call on a 2026-07-28 session is driven by
/// several requests in turn), or nowhere.
#[derive(Clone, Default)]
pub struct ProgressSink {
    current: Arc<Mutex<Option<ProgressTarget>>>,
}

/// A request's progress token and the peer to notify.
type ProgressTarget = (ProgressToken, Peer<RoleServer>);

/// Detaches the request from its call's progress when dropped.
pub struct Attached {
    sink: ProgressSink,
}

impl Drop for Attached {
    fn drop(&mut self) {
        *self.sink.lock() = None;
    }
}

impl ProgressSink {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ProgressTarget>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends progress to `context`'s token (if it carries one) until the
    /// guard is dropped.
    pub fn attach(&self, context: &RequestContext<RoleServer>) -> Attached {
        *self.lock() = context
            .meta
            .get_progress_token()
            .map(|token| (token, context.peer.clone()));
        Attached { sink: self.clone() }
    }

    /// The callback `run_shell` calls with the latest output line.
    fn reporter(&self) -> ProgressFn {
        let sink = self.clone();
        let handle = tokio::runtime::Handle::current();
        let mut step = 0u64;
        Box::new(move |line: &str| {
            let Some((token, peer)) = sink.lock().clone() else {
                return;
            };
            step += 1;
            let params = ProgressNotificationParam::new(token, step as f64).with_message(line);
            handle.spawn(async move {
                if let Err(e) = peer.notify_progress(params).await {
                    tracing::debug!(error = %e, "progress notification not sent");
                }
            });
        })
    }
}

/// Asks the MCP client's user through `elicitation/create`.
struct McpApprover {
    handle: tokio::runtime::Handle,
    peer: Peer<RoleServer>,
    wait: Duration,
    cancel: CancellationToken,
}

impl Approver for McpApprover {
    fn ask(&self, message: &str) -> Answer {
        if !self
            .peer
            .supported_elicitation_modes()
            .contains(&ElicitationMode::Form)
        {
            return Answer::Unavailable(
                "approval was needed, but the MCP client does not support elicitation, so the user cannot \
                 be asked"
                    .into(),
            );
        }
        let params = ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message.to_string(),
            requested_schema: mrtr::approval_schema(),
        };
        tracing::info!(message = %display::cut(message, 2 * display::LOG_LIMIT), "asking the user");
        let wait = self.wait;
        self.handle.block_on(async {
            tokio::select! {
                r = self.peer.create_elicitation_with_timeout(params, Some(wait)) => match r {
                    Ok(result) => match result.action {
                        ElicitationAction::Accept => Answer::Accept,
                        ElicitationAction::Decline => Answer::Decline,
                        ElicitationAction::Cancel => Answer::Cancel,
                        other => Answer::Unavailable(format!("approval was needed, but the client answered {other:?}")),
                    },
                    Err(ServiceError::Timeout { .. }) => Answer::Unavailable(format!(
                        "approval was needed, but the user did not answer within {} s", wait.as_secs()
                    )),
                    Err(e) => Answer::Unavailable(format!("approval was needed, but asking the user failed: {e}")),
                },
                () = self.cancel.cancelled() => Answer::Cancel,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_keeps_reference_field_order() {
        let r = ExecResult {
            exit_code: 3,
            output: "hi\n".into(),
            duration: DurationJson { secs: 1, nanos: 2 },
            timed_out: false,
            dropped_bytes: 0,
            warnings: Vec::new(),
            denied: Vec::new(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"exit_code":3,"output":"hi\n","duration":{"secs":1,"nanos":2},"timed_out":false,"dropped_bytes":0}"#
        );
    }

    #[test]
    fn workdir_checks_name_the_path() {
        assert!(
            check_workdir(Path::new("rel"))
                .unwrap_err()
                .contains("`rel`")
        );
        assert!(
            check_workdir(Path::new("/no/such/dir"))
                .unwrap_err()
                .contains("/no/such/dir")
        );
        assert!(check_workdir(Path::new("/")).is_ok());
    }

    /// Clients compile the output schema (the TypeScript SDK with Ajv):
    /// only formats Ajv's `ajv-formats` knows.
    #[test]
    fn output_schema_uses_only_known_formats() {
        fn formats(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(f)) = o.get("format") {
                        out.push(f.clone());
                    }
                    o.values().for_each(|v| formats(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| formats(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        formats(&Value::Object(output_schema()), &mut found);
        assert_eq!(found, ["int32"]);
    }

    #[test]
    fn elicitation_schema_matches_the_reference() {
        let v = serde_json::to_value(mrtr::approval_schema()).unwrap();
        assert_eq!(v["title"], "Execution Permission Request");
        assert_eq!(v["properties"]["reason"]["type"], "string");
    }
}
