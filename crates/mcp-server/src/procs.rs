//! Background processes: the tools `exec_command`, `write_stdin`,
//! `kill_process` and `list_processes` (shaped after Codex's unified exec),
//! and the table of one client's processes behind them.
//!
//! A process is started like a `shell` call (same launcher, sandbox,
//! per-call `_meta` sandbox state, rules, wrapper and exec check: see
//! [`escalate::start_process`]) but is not ended by the request: it gets a
//! handle, a random 128-bit number in hex, valid only in the table of the
//! client that started it (the stdio connection, the HTTP session, or on
//! MCP 2026-07-28 over HTTP the bearer token's client).
//!
//! **Invariant:** a background process, with everything it started
//! (escalated programs included), lives until it exits, is killed through
//! its handle, stays unread longer than the idle limit, or its client goes
//! away (its table is dropped) or the server shuts down; then all of it is
//! killed by the machinery that ends a call. A client has at most
//! `--max-processes` handles; one more start fails with an error naming
//! the limit and never ends another process. A handle is looked up only
//! in its own client's table, so another client's handle, a guessed one
//! and an ended one all get the same "unknown handle" error.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use escalate::{Process, WindowSize};
use nix::sys::signal::Signal;
use rmcp::model::{ContentBlock, JsonObject, Tool};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use rmcp::ErrorData as McpError;
use rmcp::model::InputRequiredResult;

use crate::config::ProcessSettings;
use crate::mrtr::{Driving, Event, PausedCalls};

pub const EXEC_COMMAND: &str = "exec_command";
pub const WRITE_STDIN: &str = "write_stdin";
pub const KILL_PROCESS: &str = "kill_process";
pub const LIST_PROCESSES: &str = "list_processes";

/// `exec_command`'s wait for output when the call does not say.
pub const DEFAULT_EXEC_YIELD_MS: u64 = 10_000;
/// `write_stdin`'s wait for output when the call does not say.
pub const DEFAULT_WRITE_YIELD_MS: u64 = 250;
/// The longest wait a call may ask for.
pub const MAX_YIELD_MS: u64 = 30_000;
/// Output returned per call when the call does not say, in tokens (of
/// about [`BYTES_PER_TOKEN`] bytes).
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 10_000;
pub const BYTES_PER_TOKEN: u64 = 4;
/// A terminal's size when the call does not say.
pub const DEFAULT_SIZE: WindowSize = WindowSize { rows: 24, cols: 80 };

/// `exec_command`'s arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCommandParams {
    pub cmd: String,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub login: Option<bool>,
    #[serde(default)]
    pub tty: Option<bool>,
    #[serde(default)]
    pub yield_time_ms: Option<u64>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub rows: Option<u16>,
    #[serde(default)]
    pub cols: Option<u16>,
}

/// `write_stdin`'s arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteStdinParams {
    pub session_id: String,
    #[serde(default)]
    pub chars: String,
    #[serde(default)]
    pub yield_time_ms: Option<u64>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub rows: Option<u16>,
    #[serde(default)]
    pub cols: Option<u16>,
}

/// `kill_process`'s arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillParams {
    pub session_id: String,
    #[serde(default)]
    pub signal: Option<String>,
}

/// What `exec_command`, `write_stdin` and `kill_process` return.
#[derive(Debug, Serialize)]
pub struct ProcessResult {
    /// The handle, while the process runs or has output left to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Once it has ended: its exit code, 128+N for death by signal N.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// New output since the last call (stdout and stderr interleaved).
    pub output: String,
    /// Bytes the ring buffer dropped, unread, before this output.
    pub dropped_bytes: u64,
    /// Bytes still waiting to be read after this output.
    pub unread_bytes: u64,
    pub wall_time_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<String>,
}

/// One row of `list_processes`.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub session_id: String,
    pub command: String,
    pub workdir: String,
    pub tty: bool,
    /// The supervising launcher's pid.
    pub pid: u32,
    pub running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub unread_bytes: u64,
    pub age_secs: u64,
    pub idle_secs: u64,
}

/// One process of a table.
pub struct Entry {
    pub process: Process,
    pub command: String,
    pub workdir: PathBuf,
    last_read: Mutex<Instant>,
    /// Its id among the server's paused calls (see [`crate::mrtr`]).
    pub call: u64,
    /// On MCP 2026-07-28, where its questions arrive: the next call on
    /// its handle returns them as input-required results. `None` while a
    /// question is parked in the paused calls, and on older sessions
    /// (questions go out as elicitations there).
    driving: tokio::sync::Mutex<Option<Driving>>,
}

/// What a call on a process answers with.
pub enum Reply {
    Result(ProcessResult),
    /// A question of the process (MCP 2026-07-28): the client's retry,
    /// with the same arguments, answers it and gets the output.
    InputRequired(InputRequiredResult),
}

/// Where a question of a process is parked (MCP 2026-07-28): the server's
/// paused calls, and the binding of the request that meets it.
pub struct Ask<'a> {
    pub paused: &'a PausedCalls,
    pub binding: [u8; 32],
}

impl Entry {
    fn touch(&self) {
        *self.last_read.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last_read(&self) -> Instant {
        *self.last_read.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a process could not be added.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(
        "too many background processes: this client has {max} (--max-processes {max}); end one with \
         kill_process, or read one to its end with write_stdin"
    )]
    Full { max: usize },
    #[error("cannot make a process handle: {0}")]
    Random(std::io::Error),
}

/// The background processes of one client (see the module docs).
pub struct ProcTable {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    settings: ProcessSettings,
    /// The client's loopback network (see [`escalate::Loopback`]), made
    /// on its first network-off call or process, or why it could not be;
    /// gone with the table (its processes are killed with it).
    loopback: tokio::sync::OnceCell<Result<escalate::Loopback, String>>,
}

impl ProcTable {
    pub fn new(settings: ProcessSettings) -> Arc<ProcTable> {
        Arc::new(ProcTable {
            entries: Mutex::default(),
            settings,
            loopback: tokio::sync::OnceCell::new(),
        })
    }

    /// The client's loopback network, made with `launcher` the first time;
    /// `Err`: why there is none (each network-off call then has a network
    /// of its own, with nothing in it).
    pub async fn loopback(
        &self,
        launcher: &[std::ffi::OsString],
    ) -> Result<escalate::Loopback, String> {
        self.loopback
            .get_or_init(|| async {
                let launcher = launcher.to_vec();
                let made = tokio::task::spawn_blocking(move || escalate::Loopback::make(&launcher))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|made| made.map_err(|e| e.to_string()));
                match &made {
                    Ok(_) => tracing::debug!("client loopback network made"),
                    Err(e) => tracing::warn!(error = %e,
                        "no loopback network for this client: each network-off call has a network of its own"),
                }
                made
            })
            .await
            .clone()
    }

    pub fn settings(&self) -> ProcessSettings {
        self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles in the table.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fails when the table is full (checked again by [`ProcTable::insert`]).
    pub fn has_room(&self) -> Result<(), TableError> {
        match self.len() < self.settings.max {
            true => Ok(()),
            false => Err(TableError::Full {
                max: self.settings.max,
            }),
        }
    }

    /// Adds a started process under a new handle, and watches its idle
    /// time. Full: the process is dropped (and so killed).
    pub fn insert(
        self: &Arc<Self>,
        process: Process,
        command: String,
        workdir: PathBuf,
        call: u64,
        driving: Option<Driving>,
    ) -> Result<(String, Arc<Entry>), TableError> {
        let handle = new_handle().map_err(TableError::Random)?;
        let entry = Arc::new(Entry {
            process,
            command,
            workdir,
            last_read: Mutex::new(Instant::now()),
            call,
            driving: tokio::sync::Mutex::new(driving),
        });
        {
            let mut entries = self.lock();
            if entries.len() >= self.settings.max {
                return Err(TableError::Full {
                    max: self.settings.max,
                });
            }
            entries.insert(handle.clone(), entry.clone());
        }
        tokio::spawn(watch_idle(
            Arc::downgrade(self),
            handle.clone(),
            Arc::downgrade(&entry),
        ));
        Ok((handle, entry))
    }

    /// The process of `handle`, if it is this client's.
    pub fn get(&self, handle: &str) -> Result<Arc<Entry>, String> {
        self.lock()
            .get(handle)
            .cloned()
            .ok_or_else(|| unknown_handle(handle))
    }

    /// The process whose paused-call id is `call`, if it is this client's.
    pub fn by_call(&self, call: u64) -> Option<(String, Arc<Entry>)> {
        self.lock()
            .iter()
            .find(|(_, e)| e.call == call)
            .map(|(h, e)| (h.clone(), e.clone()))
    }

    fn remove(&self, handle: &str) -> Option<Arc<Entry>> {
        self.lock().remove(handle)
    }

    /// Every process, for `list_processes`.
    pub fn list(&self) -> Vec<Listed> {
        let now = Instant::now();
        let mut rows: Vec<Listed> = self
            .lock()
            .iter()
            .map(|(handle, entry)| {
                let ended = entry.process.ended();
                Listed {
                    session_id: handle.clone(),
                    command: entry.command.clone(),
                    workdir: entry.workdir.display().to_string(),
                    tty: entry.process.tty(),
                    pid: entry.process.pid(),
                    running: ended.is_none(),
                    exit_code: ended.map(|e| e.exit_code),
                    unread_bytes: entry.process.output().pending(),
                    age_secs: now.duration_since(entry.process.started()).as_secs(),
                    idle_secs: now.duration_since(entry.last_read()).as_secs(),
                }
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.age_secs));
        rows
    }

    /// Waits until `deadline` (or the process's end, or enough output),
    /// then takes its new output. Once it has ended and everything is
    /// read, the handle is removed: the result carries the exit code and
    /// no handle.
    pub async fn read(
        &self,
        handle: &str,
        entry: &Entry,
        deadline: Instant,
        max_bytes: usize,
        started: Instant,
        ask: Option<Ask<'_>>,
    ) -> Result<Reply, McpError> {
        entry.touch();
        let wait = entry.process.output().wait(deadline, max_bytes as u64);
        tokio::pin!(wait);
        let mut driving = entry.driving.lock().await;
        let mut question = None;
        match (driving.as_mut(), &ask) {
            (Some(d), Some(_)) => loop {
                tokio::select! {
                    () = &mut wait => break,
                    event = d.events.recv() => match event {
                        Some(Event::Question(q)) => {
                            question = Some(q);
                            break;
                        }
                        Some(Event::Done(_)) => {}
                        // Nobody can ask any more: just wait.
                        None => {
                            (&mut wait).await;
                            break;
                        }
                    },
                }
            },
            _ => (&mut wait).await,
        }
        if let (Some(question), Some(ask)) = (question, ask)
            && let Some(d) = driving.take()
        {
            entry.touch();
            return ask
                .paused
                .pause(entry.call, question, d, ask.binding)
                .map(Reply::InputRequired);
        }
        drop(driving);
        Ok(Reply::Result(self.take(handle, entry, max_bytes, started)))
    }

    /// Puts back where a process's questions arrive, after the retry that
    /// answered the last one.
    pub async fn resume(&self, entry: &Entry, driving: Driving) {
        *entry.driving.lock().await = Some(driving);
    }

    /// Takes the new output (see [`ProcTable::read`]).
    fn take(
        &self,
        handle: &str,
        entry: &Entry,
        max_bytes: usize,
        started: Instant,
    ) -> ProcessResult {
        let ended = entry.process.ended();
        let chunk = entry.process.output().take(max_bytes);
        entry.touch();
        let finished = ended.is_some() && chunk.unread == 0;
        if finished {
            self.remove(handle);
        }
        ProcessResult {
            session_id: (!finished).then(|| handle.to_owned()),
            exit_code: ended.as_ref().map(|e| e.exit_code),
            output: chunk.text,
            dropped_bytes: chunk.dropped,
            unread_bytes: chunk.unread,
            wall_time_ms: started.elapsed().as_millis() as u64,
            warnings: Vec::new(),
            denied: ended.map(|e| e.denied).unwrap_or_default(),
        }
    }

    /// Ends `handle`'s process (`signal` first; see [`parse_signal`]) or
    /// passes an INT, HUP or QUIT on; after an end, the rest of its output
    /// and its exit code, and the handle is gone.
    pub async fn kill(
        &self,
        handle: &str,
        signal: Signal,
        max_bytes: usize,
        started: Instant,
    ) -> Result<ProcessResult, String> {
        let entry = self.get(handle)?;
        entry.process.signal(signal);
        let ends = matches!(signal, Signal::SIGTERM | Signal::SIGKILL);
        if !ends {
            entry.touch();
            let chunk = entry.process.output().take(max_bytes);
            return Ok(ProcessResult {
                session_id: Some(handle.to_owned()),
                exit_code: entry.process.ended().map(|e| e.exit_code),
                output: chunk.text,
                dropped_bytes: chunk.dropped,
                unread_bytes: chunk.unread,
                wall_time_ms: started.elapsed().as_millis() as u64,
                warnings: Vec::new(),
                denied: Vec::new(),
            });
        }
        // Bounded by the kill grace, the launcher's and the output drain.
        let ended = entry
            .process
            .wait_ended(Instant::now() + Duration::from_secs(30))
            .await;
        self.remove(handle);
        let chunk = entry.process.output().take(max_bytes);
        Ok(ProcessResult {
            session_id: None,
            exit_code: ended.as_ref().map(|e| e.exit_code),
            output: chunk.text,
            dropped_bytes: chunk.dropped,
            unread_bytes: 0,
            wall_time_ms: started.elapsed().as_millis() as u64,
            warnings: Vec::new(),
            denied: ended.map(|e| e.denied).unwrap_or_default(),
        })
    }

    /// Kills every process (the client is going away).
    pub fn kill_all(&self) {
        let entries: Vec<_> = self.lock().drain().collect();
        for (_, entry) in entries {
            entry.process.signal(Signal::SIGKILL);
        }
    }
}

impl Drop for ProcTable {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Kills `handle`'s process once it has gone unread for the idle limit.
async fn watch_idle(table: Weak<ProcTable>, handle: String, entry: Weak<Entry>) {
    loop {
        let (due, idle) = {
            let (Some(table), Some(entry)) = (table.upgrade(), entry.upgrade()) else {
                return;
            };
            let idle = table.settings.idle;
            (entry.last_read() + idle, idle)
        };
        tokio::time::sleep_until(due.into()).await;
        let (Some(table), Some(entry)) = (table.upgrade(), entry.upgrade()) else {
            return;
        };
        if entry.last_read() + idle > Instant::now() {
            continue;
        }
        let owned = table
            .lock()
            .get(&handle)
            .is_some_and(|e| Arc::ptr_eq(e, &entry));
        if !owned {
            return;
        }
        tracing::info!(command = %escalate::display::cut(&entry.command, escalate::display::LOG_LIMIT),
            idle_secs = idle.as_secs(), "background process unread for the idle limit: killing it");
        table.remove(&handle);
        entry.process.signal(Signal::SIGKILL);
        return;
    }
}

/// A fresh handle: 128 bits from the kernel's random source, in hex.
fn new_handle() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn unknown_handle(handle: &str) -> String {
    let shown: String = handle.chars().take(64).collect();
    format!(
        "unknown process handle `{}`: not a process of this client (it may have ended and been \
         reported, or been killed); list_processes shows the live ones",
        shown.escape_debug()
    )
}

/// The signal `kill_process` sends: `SIGTERM` (the default) or `SIGKILL`
/// end the process and everything it started; `SIGINT`, `SIGHUP` and
/// `SIGQUIT` are passed on to its processes.
pub fn parse_signal(name: Option<&str>) -> Result<Signal, String> {
    let Some(name) = name else {
        return Ok(Signal::SIGTERM);
    };
    let upper = name.to_ascii_uppercase();
    match upper.strip_prefix("SIG").unwrap_or(&upper) {
        "TERM" | "15" => Ok(Signal::SIGTERM),
        "KILL" | "9" => Ok(Signal::SIGKILL),
        "INT" | "2" => Ok(Signal::SIGINT),
        "HUP" | "1" => Ok(Signal::SIGHUP),
        "QUIT" | "3" => Ok(Signal::SIGQUIT),
        _ => Err(format!(
            "signal `{}` is not one of SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGQUIT",
            name.chars().take(32).collect::<String>().escape_debug()
        )),
    }
}

/// The wait a call asked for, in range.
pub fn yield_time(asked: Option<u64>, default: u64) -> Result<Duration, String> {
    let ms = asked.unwrap_or(default);
    if ms > MAX_YIELD_MS {
        return Err(format!(
            "yield_time_ms {ms} is out of range 0..={MAX_YIELD_MS}"
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// The output a call may return, in bytes, at most what a process keeps.
pub fn max_bytes(asked: Option<u64>, settings: &ProcessSettings) -> Result<usize, String> {
    let tokens = asked.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS);
    if tokens == 0 {
        return Err("max_output_tokens 0 would return no output".into());
    }
    let bytes = tokens.saturating_mul(BYTES_PER_TOKEN);
    Ok(usize::try_from(bytes)
        .unwrap_or(usize::MAX)
        .min(settings.output_bytes))
}

/// A window size from the call's `rows` and `cols`.
pub fn window_size(rows: Option<u16>, cols: Option<u16>) -> Result<Option<WindowSize>, String> {
    match (rows, cols) {
        (None, None) => Ok(None),
        (Some(0), _) | (_, Some(0)) => Err(format!(
            "window size {}x{} has a zero side",
            rows.unwrap_or(DEFAULT_SIZE.rows),
            cols.unwrap_or(DEFAULT_SIZE.cols)
        )),
        _ => Ok(Some(WindowSize {
            rows: rows.unwrap_or(DEFAULT_SIZE.rows),
            cols: cols.unwrap_or(DEFAULT_SIZE.cols),
        })),
    }
}

pub fn result(r: &ProcessResult) -> rmcp::model::CallToolResult {
    structured(serde_json::to_value(r).unwrap_or_default())
}

pub fn structured(value: Value) -> rmcp::model::CallToolResult {
    let text = serde_json::to_string(&value).unwrap_or_default();
    let mut result = rmcp::model::CallToolResult::structured(value);
    result.content = vec![ContentBlock::text(text)];
    result
}

fn object(v: Value) -> Arc<JsonObject> {
    let Value::Object(o) = v else {
        unreachable!("a JSON object literal")
    };
    Arc::new(o)
}

fn result_schema(title: &str) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": {
            "session_id": {"description": "The process's handle, for write_stdin and kill_process: present while it runs or has output left to read.", "type": "string"},
            "exit_code": {"description": "Present once the process has ended: its exit code, 128+N when killed by signal N.", "type": "integer", "format": "int32"},
            "output": {"description": "New output since the last call: standard output and standard error, interleaved as produced.", "type": "string"},
            "dropped_bytes": {"description": "Bytes of output dropped unread before this output (only the newest output is kept).", "type": "integer", "minimum": 0},
            "unread_bytes": {"description": "Bytes of output still waiting after this output.", "type": "integer", "minimum": 0},
            "wall_time_ms": {"description": "How long this call took.", "type": "integer", "minimum": 0},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "denied": {"description": "Execs the rules refused that were not the shell's own.", "type": "array", "items": {"type": "string"}}
        },
        "required": ["output", "dropped_bytes", "unread_bytes", "wall_time_ms"]
    })
}

/// The four tools.
pub fn tools() -> Vec<Tool> {
    let exec = Tool::new(
        EXEC_COMMAND,
        "Starts a command in the background (in the same sandbox, under the same rules, as `shell`) \
         and returns its output so far; if it is still running, a session_id to pass to write_stdin \
         (more output, input) and kill_process. Use it for dev servers, watchers, REPLs and long builds.",
        object(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ExecCommandParams",
            "type": "object",
            "properties": {
                "cmd": {"description": "The shell command to execute.", "type": "string"},
                "workdir": {"description": "The working directory, an absolute path; defaults to the server's.", "type": "string"},
                "login": {"description": "Run Bash with -lc instead of -c; defaults to true.", "type": "boolean"},
                "tty": {"description": "Whether to allocate a TTY for the command. Defaults to false (plain pipes); set to true to open a PTY (REPLs, prompts, Ctrl-C as \\u0003).", "type": "boolean"},
                "yield_time_ms": {"description": "How long to wait (in milliseconds) for output before yielding; at most 30000, default 10000. Returns early when the command ends, or when output came and then paused.", "type": "integer", "minimum": 0},
                "max_output_tokens": {"description": "Maximum number of tokens (about 4 bytes each) of output to return; the rest waits for the next write_stdin. Default 10000.", "type": "integer", "minimum": 1},
                "rows": {"description": "Terminal rows (with tty); default 24.", "type": "integer", "minimum": 1, "maximum": 65535},
                "cols": {"description": "Terminal columns (with tty); default 80.", "type": "integer", "minimum": 1, "maximum": 65535}
            },
            "required": ["cmd"]
        })),
    )
    .with_raw_output_schema(object(result_schema("ExecCommandResult")));
    let write = Tool::new(
        WRITE_STDIN,
        "Writes characters to a background process's stdin (empty chars just polls) and returns its \
         new output, and its exit code once it has ended. With a TTY, \\u0003 is Ctrl-C and \\u0004 Ctrl-D.",
        object(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "WriteStdinParams",
            "type": "object",
            "properties": {
                "session_id": {"description": "The handle exec_command returned.", "type": "string"},
                "chars": {"description": "Bytes to write to stdin; may be empty to only read output.", "type": "string"},
                "yield_time_ms": {"description": "How long to wait (in milliseconds) for output before yielding; at most 30000, default 250.", "type": "integer", "minimum": 0},
                "max_output_tokens": {"description": "Maximum number of tokens of output to return. Default 10000.", "type": "integer", "minimum": 1},
                "rows": {"description": "New terminal rows (with tty).", "type": "integer", "minimum": 1, "maximum": 65535},
                "cols": {"description": "New terminal columns (with tty).", "type": "integer", "minimum": 1, "maximum": 65535}
            },
            "required": ["session_id"]
        })),
    )
    .with_raw_output_schema(object(result_schema("WriteStdinResult")));
    let kill = Tool::new(
        KILL_PROCESS,
        "Ends a background process and everything it started (SIGTERM, the default, gives it two \
         seconds; SIGKILL does not), returning the rest of its output and its exit code; SIGINT, \
         SIGHUP and SIGQUIT are only passed on to it.",
        object(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "KillProcessParams",
            "type": "object",
            "properties": {
                "session_id": {"description": "The handle exec_command returned.", "type": "string"},
                "signal": {"description": "SIGTERM (default), SIGKILL, SIGINT, SIGHUP or SIGQUIT.", "type": "string"}
            },
            "required": ["session_id"]
        })),
    )
    .with_raw_output_schema(object(result_schema("KillProcessResult")));
    let list = Tool::new(
        LIST_PROCESSES,
        "Lists this client's background processes.",
        object(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ListProcessesParams",
            "type": "object",
            "properties": {}
        })),
    )
    .with_raw_output_schema(object(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ListProcessesResult",
        "type": "object",
        "properties": {
            "processes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "session_id": {"type": "string"},
                        "command": {"type": "string"},
                        "workdir": {"type": "string"},
                        "tty": {"type": "boolean"},
                        "pid": {"type": "integer", "minimum": 0},
                        "running": {"type": "boolean"},
                        "exit_code": {"type": "integer", "format": "int32"},
                        "unread_bytes": {"type": "integer", "minimum": 0},
                        "age_secs": {"type": "integer", "minimum": 0},
                        "idle_secs": {"type": "integer", "minimum": 0}
                    },
                    "required": ["session_id", "command", "workdir", "tty", "pid", "running", "unread_bytes", "age_secs", "idle_secs"]
                }
            },
            "max_processes": {"type": "integer", "minimum": 0}
        },
        "required": ["processes", "max_processes"]
    })));
    vec![exec, write, kill, list]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_128_bit_hex_and_differ() {
        let a = new_handle().unwrap();
        let b = new_handle().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn bad_arguments_name_the_value() {
        assert!(parse_signal(Some("USR1")).unwrap_err().contains("`USR1`"));
        assert_eq!(parse_signal(Some("sigint")).unwrap(), Signal::SIGINT);
        assert!(yield_time(Some(30_001), 0).unwrap_err().contains("30001"));
        assert!(window_size(Some(0), None).unwrap_err().contains("0x80"));
        assert!(unknown_handle("abc").contains("`abc`"));
    }

    #[test]
    fn output_schemas_use_only_known_formats() {
        let text = serde_json::to_string(&tools()).unwrap();
        assert!(!text.contains("uint"), "{text}");
    }
}
