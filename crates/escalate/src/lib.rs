//! The server side of exec interception, with no knowledge of MCP.
//!
//! [`run_shell`] starts the patched Bash (optionally behind a launcher such
//! as the sandbox helper) with an escalation session socket, collects its
//! interleaved output, enforces the timeout and cancellation, and answers
//! every `codex-execve-wrapper` the shell starts by asking a [`Decider`].
//! Escalated programs run here, outside the sandbox, with the fds the
//! wrapper passed.

mod escalated;
mod exec_check;
mod output;
mod session;
mod shell;
mod sys;

use std::ffi::OsString;
use std::path::PathBuf;

pub use escalated::{ENV_DENYLIST, filter_env};
pub use output::OutputLimits;
pub use protocol::ExecRequest;
pub use session::Session;
pub use shell::{
    Control, Outcome, PauseGuard, ProgressFn, ShellConfig, ShellRequest, TIMEOUT_EXIT_CODE,
    TimerPause, run_shell,
};

/// What to do with one exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The wrapper execs the program itself, inside the sandbox.
    Run,
    /// The server runs the program outside the sandbox.
    Escalate,
    /// The wrapper prints `Execution denied: <reason>` and exits 1.
    Deny(String),
}

/// Decides each exec of a shell session.
pub trait Decider: Send + Sync + 'static {
    /// The verdict, if it can be given at once: from rules, not from a
    /// human. Called first, on the thread that accepts every exec of the
    /// session, so it must not block; `None` (the default) defers the
    /// request to [`Decider::decide`] on a thread of its own.
    fn decide_now(&self, request: &ExecRequest) -> Option<Verdict> {
        let _ = request;
        None
    }

    /// Every program this decider could decide anything but [`Verdict::Run`]
    /// for, without looking at arguments: names matched against the
    /// program's basename, absolute paths matched against its path, and
    /// name prefixes ending in `*` (see `protocol::needs_asking`). The
    /// wrappers of the shell run every other program in the sandbox without
    /// asking, saving the round trip. `None` (the default): they ask about
    /// every exec. A list too long for the environment is not passed.
    /// Called once per shell call: have the list ready.
    fn asks_about(&self) -> Option<Vec<&str>> {
        None
    }

    /// Called on a plain thread (never a tokio worker), once per exec that
    /// [`Decider::decide_now`] left open (or that arrived without an inline
    /// request); it may block, for instance to ask a human.
    fn decide(&self, request: &ExecRequest) -> Verdict;

    /// The verdict for an exec seen by the exec check (any process of the
    /// sandbox, not through the wrapper), which runs in the sandbox
    /// whatever the rules say: [`Verdict::Run`] or [`Verdict::Deny`] at
    /// once, or `None` when a human must be asked (then
    /// [`Decider::ask_sandboxed`], on a thread of its own). Must not block.
    /// The default lets everything run.
    fn check_sandboxed(&self, request: &ExecRequest) -> Option<Verdict> {
        let _ = request;
        Some(Verdict::Run)
    }

    /// Asks a human about an exec [`Decider::check_sandboxed`] left open:
    /// [`Verdict::Run`] (inside the sandbox) or [`Verdict::Deny`]. May block.
    fn ask_sandboxed(&self, request: &ExecRequest) -> Verdict {
        let _ = request;
        Verdict::Deny("nobody can be asked".into())
    }
}

/// How escalated programs are started.
#[derive(Debug, Clone)]
pub struct EscalationConfig {
    /// `PATH` given to escalated programs (the request's is not trusted).
    pub path: OsString,
    /// Extra environment variable names (exact, or prefixes ending in `*`)
    /// removed from escalated programs, on top of the built-in list.
    pub extra_env_denylist: Vec<String>,
    /// Directories the sandboxed side can write: a program under one of
    /// them is never escalated (it could have been planted).
    pub writable_roots: Vec<PathBuf>,
    /// The launcher escalated programs run under (see
    /// `ShellConfig::launcher`), so that nothing they start outlives them or
    /// the call. `None`: they are started directly.
    pub reaper: Option<Reaper>,
}

/// The launcher that supervises escalated programs.
#[derive(Debug, Clone)]
pub struct Reaper {
    pub program: ReaperProgram,
    /// Arguments before the launcher's own (`sandbox-exec` for the server's
    /// fallback mode).
    pub leading: Vec<OsString>,
}

/// Where the launcher is. An open file is exec'd through
/// `/proc/self/fd/N`, with `N` placed above every fd target of the
/// wrapper's, so a forged target cannot swap it for a file the sandbox
/// wrote.
#[derive(Debug, Clone)]
pub enum ReaperProgram {
    File(std::sync::Arc<std::os::fd::OwnedFd>),
    Path(PathBuf),
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            path: std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            extra_env_denylist: Vec::new(),
            writable_roots: Vec::new(),
            reaper: None,
        }
    }
}
