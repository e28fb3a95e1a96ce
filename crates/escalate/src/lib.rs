//! The server side of exec interception, with no knowledge of MCP.
//!
//! [`run_shell`] starts the patched Bash (optionally behind a launcher such
//! as the sandbox helper) with an escalation session socket, collects its
//! interleaved output, enforces the timeout and cancellation, and answers
//! every `codex-execve-wrapper` the shell starts by asking a [`Decider`].
//! Escalated programs run here, outside the sandbox, with the fds the
//! wrapper passed.

mod context;
pub mod display;
mod env;
mod escalated;
mod exec_check;
mod exposure;
mod loopback;
mod output;
mod process;
mod session;
mod shell;
mod sys;
mod view;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

pub use env::{EnvPolicy, NEVER_PASSED, PASSED, PassEnvError};
pub use escalated::{Exec, Refusal, resolve_program};
pub use exposure::{Exposure, Registration};
pub use loopback::Loopback;
pub use output::OutputLimits;
pub use process::{Chunk, Ended, InputError, Process, Ring, WindowSize, start_process};
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
    /// The server runs the program outside the sandbox, unless
    /// [`Exec::refusal`] says why it must not (it then runs inside, and
    /// the wrapper prints why).
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
    fn decide_now(&self, exec: &Exec<'_>) -> Option<Verdict> {
        let _ = exec;
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
    /// request); it may block, for instance to ask a human (who should be
    /// told [`Exec::refusal`], if any, before answering).
    fn decide(&self, exec: &Exec<'_>) -> Verdict;

    /// The verdict for an exec seen by the exec check (any process of the
    /// sandbox, not through the wrapper), which runs in the sandbox
    /// whatever the rules say: [`Verdict::Run`] or [`Verdict::Deny`] at
    /// once, or `None` when a human must be asked (then
    /// [`Decider::ask_sandboxed`], on a thread of its own). Must not block.
    /// The default lets everything run. `request.file` is the file that
    /// runs (symlinks resolved in the process's view).
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

/// How escalated programs are started; shared by every call of a server.
#[derive(Debug, Clone, Default)]
pub struct EscalationConfig {
    /// Their environment: the server's, plus allow-listed variables of the
    /// request.
    pub env: Arc<EnvPolicy>,
    /// What sandboxed code could have written: no program is escalated
    /// from there, nor in a context read from there.
    pub exposure: Arc<Exposure>,
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
