//! Runs one command in the patched Bash and supervises it.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use crate::output::Capture;
use crate::{Decider, EscalationConfig, OutputLimits, Session, sys};

/// Exit code reported when the timeout stopped the command (as `timeout(1)`).
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// After Bash has exited, how long output may keep arriving (from processes
/// that escaped the kill) before the capture is cut off.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);
/// After the lifeline is dropped, how long the launcher may take to kill
/// the call's processes and exit before it is killed itself.
const LAUNCHER_GRACE: Duration = Duration::from_secs(2);
/// Progress callbacks at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Fixed for the server's lifetime (or a policy change).
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// The patched Bash.
    pub bash: PathBuf,
    /// `codex-execve-wrapper`, put in `BASH_EXEC_WRAPPER`.
    pub wrapper: PathBuf,
    /// The launcher (`codex-sandbox-exec`, see `sandbox::launcher`):
    /// program and leading arguments. Bash runs under it, supervised, and
    /// so do escalated programs (`EscalationConfig::reaper`). Empty: Bash
    /// is started directly, unsupervised and unsandboxed (this crate's
    /// tests).
    pub launcher: Vec<OsString>,
    /// The sandbox, as the launcher's `--spec` JSON; `None`: Bash runs
    /// unconfined (still supervised when there is a launcher). With a
    /// launcher, the call is recorded in [`crate::Exposure`] (its writable
    /// roots, read from the spec) and the launcher reports what it
    /// protected (`--report-fd`, see `sandbox::launcher`).
    pub sandbox: Option<String>,
    /// Judge every exec in the sandbox (see `exec_check`), not only those
    /// Bash makes through the wrapper. Needs a launcher and a sandbox.
    pub exec_check: bool,
    /// The client's shared loopback network, for a sandbox with the
    /// network off (see [`crate::Loopback`]): its launchers join it.
    pub loopback: Option<crate::Loopback>,
    pub escalation: EscalationConfig,
    pub output_limits: OutputLimits,
    /// Between SIGTERM and SIGKILL when a call is stopped.
    pub kill_grace: Duration,
}

/// The writable roots of a sandbox spec (`ShellConfig::sandbox`).
fn spec_roots(spec: &str) -> std::io::Result<Vec<PathBuf>> {
    serde_json::from_str::<sandbox::SandboxSpec>(spec)
        .map(|spec| spec.writable_roots)
        .map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid sandbox spec {spec}: {e}"),
            )
        })
}

/// Largest launcher report read.
const MAX_REPORT: u64 = 1 << 20;

/// Reads the launcher's report (JSON of `sandbox::Applied`, then the end of
/// the pipe) and completes the call's entry. No report (the launcher failed,
/// or wrote something else): the call protected nothing.
fn read_report(pipe: OwnedFd, registration: crate::Registration) {
    use std::io::Read;
    let mut text = Vec::new();
    let read = std::fs::File::from(pipe)
        .take(MAX_REPORT)
        .read_to_end(&mut text);
    let protected = match read {
        Ok(_) if !text.is_empty() => match serde_json::from_slice::<sandbox::Applied>(&text) {
            Ok(applied) => Some(applied.read_only_subpaths),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable sandbox launcher report; the call protects nothing");
                None
            }
        },
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the sandbox launcher report; the call protects nothing");
            None
        }
    };
    registration.report(protected);
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
    /// Execs refused by the exec check, with the reason.
    pub denied: Vec<String>,
    pub timed_out: bool,
    pub duration: Duration,
}

/// Receives the latest output line while a command runs.
pub type ProgressFn = Box<dyn FnMut(&str) + Send>;

/// Ways the caller can steer a running call.
pub struct Control {
    /// Cancelled: every process of the call is stopped, like a timeout.
    pub cancel: CancellationToken,
    /// Shared with the decider so asking a human pauses the timeout.
    pub timer: TimerPause,
    /// Called at most a few times a second with the latest output line.
    pub progress: Option<ProgressFn>,
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
        PauseGuard {
            timer: self.clone(),
        }
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
        if s.depth == 0
            && let Some(t) = s.since.take()
        {
            s.total += t.elapsed();
        }
    }
}

/// Runs `request` to completion (or timeout, or cancellation).
///
/// Bash runs in its own process group, behind `config.launcher` (the
/// sandbox), with stdout and stderr on one pipe (so they interleave as
/// produced) and stdin on `/dev/null`. When Bash exits, or the call times
/// out or is cancelled, every process left in its group and every escalated
/// program of the call is killed: a call owns its processes.
pub async fn run_shell(
    config: &ShellConfig,
    request: ShellRequest,
    decider: Arc<dyn Decider>,
    control: Control,
) -> std::io::Result<Outcome> {
    let start = Instant::now();
    let (out_read, out_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    let stdio = ChildStdio {
        stdin: Stdio::null(),
        output: out_write,
        tty: Tty::None,
    };
    let spawned = Spawned::start(config, &request, decider, stdio)?;

    let (stop_tx, stop_rx) = UnixStream::pair()?;
    let limits = config.output_limits;
    let progress = control.progress;
    let reader =
        tokio::task::spawn_blocking(move || read_output(out_read, stop_rx, limits, progress));

    let end = wait_or_stop(
        &spawned.exited,
        request.timeout,
        &control.cancel,
        &control.timer,
    )
    .await;
    let stop = (end != End::Exited).then_some(Signal::SIGTERM);
    let (status, denied) = spawned.end(stop, config.kill_grace).await?;

    let capture = {
        let mut reader = reader;
        match tokio::time::timeout(DRAIN_DEADLINE, &mut reader).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::warn!(
                    "output still open after the call ended (an escaped process?); cutting it off"
                );
                drop(stop_tx);
                reader.await
            }
        }
    }
    .map_err(std::io::Error::other)?;
    let (output, dropped_bytes) = capture.finish();

    let exit_code = match end {
        End::TimedOut => TIMEOUT_EXIT_CODE,
        _ => exit_code(status),
    };
    Ok(Outcome {
        exit_code,
        output,
        dropped_bytes,
        denied,
        timed_out: end == End::TimedOut,
        duration: start.elapsed(),
    })
}

/// Bash's exit code; 128+N for death by signal N.
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Where a command's stdio goes.
pub(crate) struct ChildStdio {
    pub(crate) stdin: Stdio,
    /// Stdout and stderr, both.
    pub(crate) output: OwnedFd,
    pub(crate) tty: Tty,
}

/// Whether the command gets a terminal, and whose.
pub(crate) enum Tty {
    None,
    /// Stdin is a terminal we made, which Bash (started without a
    /// launcher) takes as its controlling terminal.
    Own,
    /// The launcher makes one (`--tty`) and sends its master on `channel`.
    Launcher {
        channel: OwnedFd,
        rows: u16,
        cols: u16,
    },
}

/// A started command with everything that supervises it: the launcher
/// (or Bash) as a child in a process group of its own, its escalation
/// session, lifeline and exec check. [`Spawned::end`] ends all of it.
pub(crate) struct Spawned {
    child: std::process::Child,
    pgid: Pid,
    pub(crate) exited: AsyncFd<OwnedFd>,
    session: Session,
    lifeline: Option<OwnedFd>,
    exec_check: Option<crate::exec_check::ExecCheck>,
    denied: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Spawned {
    /// Starts `request` behind `config.launcher` with `stdio`.
    pub(crate) fn start(
        config: &ShellConfig,
        request: &ShellRequest,
        decider: Arc<dyn Decider>,
        stdio: ChildStdio,
    ) -> std::io::Result<Spawned> {
        // Only the decider knows which programs it may decide anything but Run
        // for; the wrappers ask about those alone.
        let ask_list = decider.asks_about().and_then(protocol::encode_ask_list);
        let expected = Arc::new(crate::exec_check::Expected::default());
        let checked = !config.launcher.is_empty() && config.sandbox.is_some() && config.exec_check;
        let (session, bash_end) = Session::start(
            decider.clone(),
            config.escalation.clone(),
            checked.then(|| expected.clone()),
        )?;
        let bash_end = above_script_fds(bash_end)?;
        // The launcher sends the exec check's listener on this pair.
        let exec_channel = match checked {
            true => Some(sys::seqpacket_pair()?),
            false => None,
        };
        let denied = Arc::new(std::sync::Mutex::new(Vec::new()));

        // The launcher's lifeline: when we drop the write end (or die), the
        // launcher kills everything the call started.
        let lifeline = match config.launcher.is_empty() {
            true => None,
            false => Some(sys::lifeline(3)?),
        };
        // A sandboxed call is recorded before anything of it runs; its launcher
        // reports on a pipe what it protected, before it starts Bash.
        let report = match (&config.sandbox, config.launcher.is_empty()) {
            (Some(spec), false) => {
                let roots = spec_roots(spec)?;
                let (read, write) =
                    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
                let registration = config.escalation.exposure.begin(roots);
                Some((read, write, registration))
            }
            _ => None,
        };
        let mut keep_open = vec![bash_end.as_raw_fd()];
        let mut cmd = match config.launcher.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args);
                if let Some((read, _)) = &lifeline {
                    cmd.arg("--lifeline").arg(read.as_raw_fd().to_string());
                    keep_open.push(read.as_raw_fd());
                }
                if let Some((_, theirs)) = &exec_channel {
                    cmd.arg("--exec-notify").arg(theirs.as_raw_fd().to_string());
                    keep_open.push(theirs.as_raw_fd());
                }
                if let Some((_, write, _)) = &report {
                    cmd.arg("--report-fd").arg(write.as_raw_fd().to_string());
                    keep_open.push(write.as_raw_fd());
                }
                if let Tty::Launcher {
                    channel,
                    rows,
                    cols,
                } = &stdio.tty
                {
                    cmd.arg("--tty")
                        .arg(channel.as_raw_fd().to_string())
                        .arg("--tty-size")
                        .arg(format!("{rows}x{cols}"));
                    keep_open.push(channel.as_raw_fd());
                }
                if let (Some(_), Some(loopback)) = (&config.sandbox, &config.loopback) {
                    for (flag, fd) in loopback.flags() {
                        cmd.arg(flag).arg(fd.to_string());
                        keep_open.push(fd);
                    }
                }
                match &config.sandbox {
                    Some(spec) => cmd.arg("--spec").arg(spec),
                    None => cmd.arg("--unconfined"),
                };
                cmd.arg("--").arg(&config.bash);
                cmd
            }
            None => Command::new(&config.bash),
        };
        cmd.arg(if request.login { "-lc" } else { "-c" })
            .arg(&request.command)
            .env_clear()
            .envs(request.env.iter().map(|(k, v)| (k, v)))
            .env(protocol::ENV_WRAPPER, &config.wrapper)
            .env(protocol::ENV_SOCKET, bash_end.as_raw_fd().to_string())
            .current_dir(&request.workdir)
            .stdin(stdio.stdin)
            .stdout(Stdio::from(stdio.output.try_clone()?))
            .stderr(Stdio::from(stdio.output));
        if matches!(stdio.tty, Tty::Own) {
            // Bash itself leads a new session, the terminal its own.
            sys::controlling_terminal(&mut cmd);
        } else {
            cmd.process_group(0);
        }
        // Never one inherited from the server's own environment: without a
        // list of ours, every exec is asked about.
        match &ask_list {
            Some(list) => cmd.env(protocol::ENV_ASK, list.as_str()),
            None => cmd.env_remove(protocol::ENV_ASK),
        };
        sys::map_fds(&mut cmd, Vec::new(), keep_open);
        let spawned = cmd.spawn();
        // The parent's copies of Bash's ends must close now, or the output pipe
        // never reaches end-of-file.
        drop(cmd);
        drop(bash_end);
        drop(stdio.tty);
        let lifeline = lifeline.map(|(read, write)| {
            drop(read);
            write
        });
        if let Some((read, write, registration)) = report {
            drop(write);
            tokio::task::spawn_blocking(move || read_report(read, registration));
        }
        let exec_check = match exec_channel {
            Some((ours, theirs)) => {
                drop(theirs);
                let checker = crate::exec_check::Checker {
                    decider: decider.clone(),
                    ask_list: ask_list.clone(),
                    wrapper: config
                        .wrapper
                        .canonicalize()
                        .unwrap_or_else(|_| config.wrapper.clone()),
                    bash: config
                        .bash
                        .canonicalize()
                        .unwrap_or_else(|_| config.bash.clone()),
                    denied: denied.clone(),
                    expected: expected.clone(),
                    answered: Default::default(),
                };
                Some(crate::exec_check::ExecCheck::start(ours, checker)?)
            }
            None => None,
        };
        let child = spawned.map_err(|e| spawn_error(config, &request.workdir, e))?;
        let pgid = Pid::from_raw(child.id() as i32);
        let exited = sys::async_pidfd(sys::pidfd_open(child.id())?)?;
        Ok(Spawned {
            child,
            pgid,
            exited,
            session,
            lifeline,
            exec_check,
            denied,
        })
    }

    /// The launcher's (or Bash's) pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Passes `signal` on to the command's processes and its escalated
    /// programs, leaving it running (the launcher forwards INT, TERM, HUP
    /// and QUIT; see `sandbox::supervise`).
    pub(crate) fn signal(&self, signal: Signal) {
        let _ = killpg(self.pgid, signal);
        self.session.kill_all(signal);
    }

    /// Ends the command and everything it started, and returns how the
    /// launcher (or Bash) ended with the execs the exec check refused.
    /// `stop`: it still runs, so it gets this signal first (SIGKILL skips
    /// the grace), and after `kill_grace` the launcher kills everything;
    /// `None`: it has exited (or is about to).
    pub(crate) async fn end(
        mut self,
        stop: Option<Signal>,
        kill_grace: Duration,
    ) -> std::io::Result<(std::process::ExitStatus, Vec<String>)> {
        let exited = &self.exited;
        if let Some(signal) = stop {
            // The launcher passes SIGTERM on to Bash and its processes.
            let graceful = signal != Signal::SIGKILL;
            if graceful {
                let _ = killpg(self.pgid, signal);
                self.session.kill_all(signal);
            } else {
                self.session.kill_all(Signal::SIGKILL);
            }
            let ended_in_grace = graceful
                && tokio::time::timeout(kill_grace, exited.readable())
                    .await
                    .is_ok();
            if !ended_in_grace {
                if self.lifeline.take().is_some() {
                    // The launcher kills everything, then exits; SIGKILL only
                    // if it does not (it would leave the call's processes).
                    if tokio::time::timeout(LAUNCHER_GRACE, exited.readable())
                        .await
                        .is_err()
                    {
                        tracing::warn!("the launcher did not end its call in time; killing it");
                        let _ = killpg(self.pgid, Signal::SIGKILL);
                    }
                } else {
                    let _ = killpg(self.pgid, Signal::SIGKILL);
                }
                let _ = exited.readable().await;
            }
        }
        // The launcher (or Bash) is a zombie: its group id is still ours.
        // Whatever is left (unsupervised background jobs) and every escalated
        // program ends with the call.
        drop(self.lifeline.take());
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let mut session = self.session;
        let session = if session.running() > 0 {
            // Escalated programs end through their own launchers: wait for
            // that off the async threads.
            tokio::task::spawn_blocking(move || {
                session.close();
                session
            })
            .await
            .map_err(std::io::Error::other)?
        } else {
            session.close();
            session
        };
        drop(session);
        if let Some(check) = self.exec_check.as_mut() {
            check.stop();
        }
        let status = self.child.wait()?;
        let denied = std::mem::take(&mut *self.denied.lock().unwrap_or_else(|e| e.into_inner()));
        Ok((status, denied))
    }
}

/// The spawn error, attributed to what failed: the working directory, the
/// launcher, the wrapper or Bash (std cannot tell a `chdir` from an `exec`
/// failure), with the uid when permissions are the cause.
fn spawn_error(config: &ShellConfig, workdir: &Path, e: std::io::Error) -> std::io::Error {
    use nix::unistd::AccessFlags;
    let uid = nix::unistd::geteuid();
    let denied = |path: &Path, what: &str, mode: AccessFlags| -> Option<String> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => return Some(format!("{what} {} cannot be used: {e}", path.display())),
        };
        nix::unistd::faccessat(
            nix::fcntl::AT_FDCWD,
            path,
            mode,
            nix::fcntl::AtFlags::AT_EACCESS,
        )
        .err()
        .map(|_| {
            use std::os::unix::fs::MetadataExt;
            format!(
                "{what} {} is not accessible to uid {uid} (mode {:04o}, owner {})",
                path.display(),
                meta.mode() & 0o7777,
                meta.uid()
            )
        })
    };
    let exec = AccessFlags::X_OK;
    let cause = denied(workdir, "workdir", AccessFlags::X_OK)
        .or_else(|| {
            config
                .launcher
                .first()
                .and_then(|l| denied(Path::new(l), "the sandbox launcher", exec))
        })
        .or_else(|| denied(&config.bash, "the patched bash", exec))
        .or_else(|| denied(&config.wrapper, "the exec wrapper", exec));
    let message = match cause {
        Some(cause) => cause,
        None => format!("cannot start {}: {e}", config.bash.display()),
    };
    std::io::Error::new(e.kind(), message)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Exited,
    TimedOut,
    Cancelled,
}

/// Waits for Bash to exit, the timeout (not counting paused time) to pass,
/// or the call to be cancelled.
async fn wait_or_stop(
    exited: &AsyncFd<OwnedFd>,
    timeout: Duration,
    cancel: &CancellationToken,
    timer: &TimerPause,
) -> End {
    let started = Instant::now();
    loop {
        let (paused, pausing) = timer.paused();
        let used = started.elapsed().saturating_sub(paused);
        if !pausing && used >= timeout {
            return End::TimedOut;
        }
        // While a human is being asked, look again shortly; otherwise sleep
        // until the deadline as it stands (a pause can only push it later).
        let nap = if pausing {
            Duration::from_millis(100)
        } else {
            timeout - used
        };
        tokio::select! {
            _ = exited.readable() => return End::Exited,
            _ = cancel.cancelled() => return End::Cancelled,
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// Reads the output pipe until end-of-file or until `stop` is closed.
fn read_output(
    pipe: OwnedFd,
    stop: UnixStream,
    limits: OutputLimits,
    mut progress: Option<ProgressFn>,
) -> Capture {
    let mut capture = Capture::new(limits);
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_progress: Option<Instant> = None;
    let mut last_line: Vec<u8> = Vec::new();
    // A line seen but not yet reported (it came too soon after the last
    // report); it is sent when the interval has passed, output or not.
    let mut pending = false;
    loop {
        let wait = match last_progress {
            Some(t) if pending => {
                let left = PROGRESS_INTERVAL.saturating_sub(t.elapsed()).as_millis();
                PollTimeout::from(u16::try_from(left).unwrap_or(u16::MAX))
            }
            _ => PollTimeout::NONE,
        };
        let mut fds = [
            PollFd::new(pipe.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        let ready = match poll(&mut fds, wait) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        };
        if ready == 0 {
            if let Some(report) = progress.as_mut() {
                last_progress = Some(Instant::now());
                report(String::from_utf8_lossy(&last_line).trim_end());
            }
            pending = false;
            continue;
        }
        if fds[1].any().unwrap_or(false) && !fds[0].any().unwrap_or(false) {
            break;
        }
        let n = match nix::unistd::read(&pipe, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(_) => break,
        };
        capture.push(&buf[..n]);
        if let Some(report) = progress.as_mut() {
            remember_last_line(&mut last_line, &buf[..n]);
            if last_progress.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL) {
                last_progress = Some(Instant::now());
                report(String::from_utf8_lossy(&last_line).trim_end());
                pending = false;
            } else {
                pending = true;
            }
        }
    }
    capture
}

/// Keeps the last non-empty line seen (bounded to 200 bytes).
fn remember_last_line(line: &mut Vec<u8>, chunk: &[u8]) {
    let trimmed = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    let start = trimmed
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let piece = &trimmed[start..];
    if start > 0 {
        line.clear();
    }
    line.extend_from_slice(piece);
    if line.len() > 200 {
        line.drain(..line.len() - 200);
    }
}

/// The lowest fd number Bash's end of the session socket may have. Scripts
/// name low numbers in their redirections (`exec 11</dev/null`, then
/// `exec 11<&-`, in Bash's own test suite) and `exec {var}>` allocates
/// upwards from 10, skipping fds in use; Bash keeps its own fds from 255
/// downwards, also skipping fds in use. A socket at whatever number the
/// server's `socketpair` returned (11 in one CI run) was closed by such a
/// script, and every later exec was refused unasked.
const SESSION_FD_MIN: RawFd = 100;

/// Moves `fd` to [`SESSION_FD_MIN`] or above; under a soft `RLIMIT_NOFILE`
/// at or below it (`F_DUPFD` fails with `EINVAL`) it stays where it is.
fn above_script_fds(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() >= SESSION_FD_MIN {
        return Ok(fd);
    }
    match sys::dup_at_least(fd.as_fd(), SESSION_FD_MIN) {
        Ok(moved) => Ok(moved),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(fd),
        Err(e) => Err(e),
    }
}
