//! Runs one command in the patched Bash and supervises it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Decider, EscalationConfig, OutputLimits};

/// Fixed for the server's lifetime (or a policy change).
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// The patched Bash.
    pub bash: PathBuf,
    /// `codex-execve-wrapper`, put in `BASH_EXEC_WRAPPER`.
    pub wrapper: PathBuf,
    /// Program and arguments placed before Bash's own argv, for instance the
    /// sandbox launcher (`[server, "sandbox-exec", "--spec", JSON, "--"]`).
    /// Empty: Bash is started directly, unsandboxed.
    pub launcher: Vec<OsString>,
    pub escalation: EscalationConfig,
    pub output_limits: OutputLimits,
    /// Between SIGTERM and SIGKILL when a call is stopped.
    pub kill_grace: Duration,
}

/// One `shell` call.
#[derive(Debug, Clone)]
pub struct ShellRequest {
    pub command: String,
    /// Absolute and existing; the caller checks.
    pub workdir: PathBuf,
    /// `bash -lc` when true, else `bash -c`.
    pub login: bool,
    pub timeout: Duration,
    /// Bash's environment (the escalation variables are added on top).
    pub env: Vec<(OsString, OsString)>,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bash's exit code; 128+N for death by signal N; 124 on timeout.
    pub exit_code: i32,
    /// Interleaved stdout and stderr, lossily decoded, middle elided.
    pub output: String,
    /// Bytes dropped from the middle of the output.
    pub dropped_bytes: u64,
    pub timed_out: bool,
    pub duration: Duration,
}

/// Ways the caller can steer a running call.
pub struct Control {
    /// Cancelled: every process of the call is stopped, like a timeout.
    pub cancel: CancellationToken,
    /// Shared with the decider so asking a human pauses the timeout.
    pub timer: TimerPause,
    /// Called at most a few times a second with the latest output line.
    pub progress: Option<Box<dyn FnMut(&str) + Send>>,
}

/// Pauses a call's timeout while at least one [`PauseGuard`] lives.
#[derive(Debug, Clone, Default)]
pub struct TimerPause {
    inner: Arc<std::sync::Mutex<PauseState>>,
}

#[derive(Debug, Default)]
struct PauseState {
    depth: usize,
    since: Option<std::time::Instant>,
    total: Duration,
}

/// Resumes the timer when dropped.
#[derive(Debug)]
pub struct PauseGuard {
    timer: TimerPause,
}

impl TimerPause {
    pub fn pause(&self) -> PauseGuard {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if s.depth == 0 {
            s.since = Some(std::time::Instant::now());
        }
        s.depth += 1;
        PauseGuard { timer: self.clone() }
    }

    /// Time spent paused so far, and whether a pause is in progress.
    pub fn paused(&self) -> (Duration, bool) {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let running = s.since.map(|t| t.elapsed()).unwrap_or_default();
        (s.total + running, s.depth > 0)
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        let mut s = self.timer.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.depth -= 1;
        if s.depth == 0 {
            if let Some(t) = s.since.take() {
                s.total += t.elapsed();
            }
        }
    }
}

/// Runs `request` to completion (or timeout, or cancellation).
pub async fn run_shell(
    config: &ShellConfig,
    request: ShellRequest,
    decider: Arc<dyn Decider>,
    control: Control,
) -> std::io::Result<Outcome> {
    let _ = (config, request, decider, control);
    Err(std::io::Error::other("run_shell: not implemented yet"))
}
