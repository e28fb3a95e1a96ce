//! Nothing outlives its call. The launcher stays, small and outside the
//! sandbox, as the supervisor of everything the command starts:
//!
//! ```text
//! server ─▶ launcher P ──────────────── pid namespace ──────────────┐
//!           (lifeline, signals)   init C (pid 1): mounts, reaps      │
//!                                   └─▶ B: setsid, confine, exec bash │
//!                                 └───────────────────────────────────┘
//! ```
//!
//! - With a pid namespace (see `namespaces`), its init `C` is ours: when
//!   the command `B` exits, `C` exits with `B`'s status and the kernel
//!   kills everything left in the namespace, whatever it did to its
//!   session or process group. `C` watches `P` through a pipe only `P`
//!   holds the write end of; if `P` dies, `C` kills the namespace.
//! - Without one, `P` is a child subreaper: every orphan of the command
//!   is reparented to `P`, which kills all its descendants when the command
//!   exits. The same serves escalated programs (`--unconfined`), which run
//!   outside the sandbox.
//! - `P` holds the read end of the call's *lifeline*, a pipe whose write
//!   end only the server holds: when the call ends (or the server dies,
//!   closing it), `P` kills everything and exits.
//! - `INT`, `TERM`, `HUP` and `QUIT` sent to `P` (the server's timeout, a
//!   wrapper's forwarded Ctrl-C) are passed on to the command's processes;
//!   `P` itself ends only through the command's end or the lifeline.
//! - `P` exits the way `B` did: the same code, or the same signal.
//!
//! **Invariant:** every process the command starts is a descendant of `P`
//! (or inside `C`'s namespace) until it is killed; `P` never exits while
//! one of them runs. Only SIGKILL of `P` itself (which only the server can
//! send: the sandbox can signal nothing outside its Landlock domain) breaks
//! that, and the server does so only after `P` failed to end.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpid};

use crate::sys::{self, Forked};

/// Signals passed on to the command.
const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// How the command ended, as the supervisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Code(i32),
    Signal(Signal),
}

impl End {
    fn from_wait(status: WaitStatus) -> Option<End> {
        match status {
            WaitStatus::Exited(_, code) => Some(End::Code(code)),
            WaitStatus::Signaled(_, signal, _) => Some(End::Signal(signal)),
            _ => None,
        }
    }

    /// Two bytes for the status pipe between init and the launcher.
    fn encode(self) -> [u8; 2] {
        match self {
            End::Code(code) => [0, code as u8],
            End::Signal(signal) => [1, signal as i32 as u8],
        }
    }

    fn decode(bytes: [u8; 2]) -> End {
        match bytes[0] {
            0 => End::Code(i32::from(bytes[1])),
            _ => Signal::try_from(i32::from(bytes[1]))
                .map(End::Signal)
                .unwrap_or(End::Code(128 + i32::from(bytes[1]))),
        }
    }

    /// Ends this process the same way: the same exit code, or death by the
    /// same signal (without a core dump).
    pub(crate) fn mirror(self) -> ! {
        if let End::Signal(signal) = self {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: setrlimit reads the struct we pass; failure only means
            // a core file may be written.
            unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
            let _ = sys::set_default_handler(signal);
            let mut set = SigSet::empty();
            set.add(signal);
            let _ = set.thread_unblock();
            let _ = kill(getpid(), signal);
        }
        let code = match self {
            End::Code(code) => code,
            End::Signal(signal) => 128 + signal as i32,
        };
        std::process::exit(code)
    }
}

/// The signals the supervisors read, blocked, from a signalfd.
fn supervised_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for signal in FORWARDED {
        set.add(signal);
    }
    set
}

/// Blocks the supervised signals and returns a signalfd for them. Call
/// before forking, so no signal is lost; children must call
/// [`restore_signals`] before they exec.
pub(crate) fn block_signals() -> io::Result<SignalFd> {
    let set = supervised_signals();
    set.thread_block().map_err(io::Error::from)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)
}

/// What a command's process must do before exec: an empty signal mask (the
/// mask survives `execve`).
pub(crate) fn restore_signals() -> io::Result<()> {
    SigSet::empty().thread_set_mask().map_err(io::Error::from)
}

/// Stdin, stdout and stderr to `/dev/null`, every other fd closed but
/// `keep`: a supervisor must not hold the command's pipes open.
fn release_fds(keep: &[RawFd]) {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto our own stdio numbers; nothing in this
            // single-threaded process uses the old ones afterwards.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    sys::close_fds_from(3, &keep);
}

/// The pid namespace case: forks init `C`, which runs `setup` (mounts, in
/// the new namespace), then forks the command with `command` (which must
/// exec or exit) and reaps until it ends. This process (`P`) supervises
/// `C`. Never returns.
pub(crate) fn in_pid_namespace<T>(
    signals: SignalFd,
    lifeline: Option<OwnedFd>,
    setup: impl FnOnce() -> T,
    command: impl FnOnce(T) -> i32,
) -> ! {
    let (alive_rx, alive_tx) = pipe();
    let (status_rx, status_tx) = pipe();
    match sys::fork() {
        Err(e) => fail(&format!("cannot fork the namespace's init: {e}")),
        Ok(Forked::Child) => {
            drop(alive_tx);
            drop(status_rx);
            drop(lifeline);
            init(signals, alive_rx, status_tx, setup, command)
        }
        Ok(Forked::Parent(init)) => {
            drop(alive_rx);
            drop(status_tx);
            let keep = [
                signals.as_fd().as_raw_fd(),
                alive_tx.as_raw_fd(),
                status_rx.as_raw_fd(),
            ];
            let mut keep = keep.to_vec();
            keep.extend(lifeline.iter().map(|l| l.as_raw_fd()));
            release_fds(&keep);
            outer(signals, lifeline, init, status_rx)
        }
    }
}

/// `P` of the pid-namespace case: passes signals to init, kills it when
/// the lifeline breaks, and exits the way the command did.
fn outer(signals: SignalFd, lifeline: Option<OwnedFd>, init: Pid, status: OwnedFd) -> ! {
    loop {
        match wait_event(&signals, lifeline.as_ref()) {
            Event::LifelineGone => {
                let _ = kill(init, Signal::SIGKILL);
                let _ = waitpid(init, None);
                End::Signal(Signal::SIGKILL).mirror();
            }
            Event::Signal(Signal::SIGCHLD) => {
                if let Ok(waited) = waitpid(init, Some(WaitPidFlag::WNOHANG))
                    && let Some(end) = End::from_wait(waited)
                {
                    // Init reports the command's end before it exits; a
                    // killed init reports its own.
                    let mut bytes = [0u8; 2];
                    let reported = nix::unistd::read(&status, &mut bytes) == Ok(2);
                    if reported {
                        End::decode(bytes).mirror();
                    }
                    end.mirror();
                }
            }
            Event::Signal(signal) => {
                let _ = kill(init, signal);
            }
            Event::Nothing => {}
        }
    }
}

/// `C`, pid 1 of the namespace.
fn init<T>(
    signals: SignalFd,
    alive: OwnedFd,
    status: OwnedFd,
    setup: impl FnOnce() -> T,
    command: impl FnOnce(T) -> i32,
) -> ! {
    // Init only receives the signals it handles.
    for signal in FORWARDED {
        let _ = sys::set_noop_handler(signal);
    }
    let prepared = setup();
    let child = match sys::fork() {
        Err(e) => fail(&format!("cannot fork the command: {e}")),
        Ok(Forked::Child) => {
            drop(signals);
            drop(alive);
            drop(status);
            // The handlers init needs are not the command's.
            for signal in FORWARDED {
                let _ = sys::set_default_handler(signal);
            }
            std::process::exit(command(prepared))
        }
        Ok(Forked::Parent(child)) => child,
    };
    release_fds(&[
        signals.as_fd().as_raw_fd(),
        alive.as_raw_fd(),
        status.as_raw_fd(),
    ]);
    loop {
        match wait_event(&signals, Some(&alive)) {
            Event::LifelineGone => {
                let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                std::process::exit(137);
            }
            Event::Signal(Signal::SIGCHLD) => {
                while let Ok(reaped) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    if reaped == WaitStatus::StillAlive {
                        break;
                    }
                    if reaped.pid() == Some(child)
                        && let Some(end) = End::from_wait(reaped)
                    {
                        let _ = nix::unistd::write(&status, &end.encode());
                        // Init's exit kills the rest of the namespace.
                        std::process::exit(0);
                    }
                }
            }
            Event::Signal(signal) => {
                // Everyone in the namespace but init.
                let _ = kill(Pid::from_raw(-1), signal);
            }
            Event::Nothing => {}
        }
    }
}

/// Without a pid namespace: this process becomes a child subreaper, forks
/// the command with `command` (which must exec or exit), and supervises it
/// and every descendant. Never returns.
pub(crate) fn as_subreaper(
    signals: SignalFd,
    lifeline: Option<OwnedFd>,
    command: impl FnOnce() -> i32,
) -> ! {
    if let Err(e) = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) {
        fail(&format!("cannot become a child subreaper: {e}"));
    }
    let child = match sys::fork() {
        Err(e) => fail(&format!("cannot fork the command: {e}")),
        Ok(Forked::Child) => {
            drop(signals);
            drop(lifeline);
            std::process::exit(command())
        }
        Ok(Forked::Parent(child)) => child,
    };
    let mut keep = vec![signals.as_fd().as_raw_fd()];
    keep.extend(lifeline.iter().map(|l| l.as_raw_fd()));
    release_fds(&keep);
    let mut end = None;
    loop {
        match wait_event(&signals, lifeline.as_ref()) {
            Event::LifelineGone => {
                kill_descendants();
                end.unwrap_or(End::Signal(Signal::SIGKILL)).mirror();
            }
            Event::Signal(Signal::SIGCHLD) => {
                while let Ok(reaped) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    if reaped == WaitStatus::StillAlive {
                        break;
                    }
                    if reaped.pid() == Some(child) {
                        end = End::from_wait(reaped);
                    }
                }
                if let Some(end) = end {
                    kill_descendants();
                    end.mirror();
                }
            }
            Event::Signal(signal) => {
                // The command leads its own process group.
                let _ = kill(Pid::from_raw(-child.as_raw()), signal);
            }
            Event::Nothing => {}
        }
    }
}

/// SIGKILLs every descendant (children first; the orphans that makes are
/// reparented to us, a subreaper, and killed in the next round) and reaps
/// them, until none is left.
fn kill_descendants() {
    loop {
        let children = children();
        if children.is_empty() {
            // Reap whatever died since.
            while waitpid(None, Some(WaitPidFlag::WNOHANG))
                .is_ok_and(|s| s != WaitStatus::StillAlive)
            {}
            if self::children().is_empty() {
                return;
            }
            continue;
        }
        for pid in &children {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        for pid in children {
            let _ = waitpid(pid, None);
        }
    }
}

/// Our children, from `/proc/self/task/<tid>/children`, or by scanning
/// `/proc` when the kernel has no such file.
fn children() -> Vec<Pid> {
    let me = getpid();
    let listed = std::fs::read_to_string(format!("/proc/self/task/{me}/children"));
    let text = match listed {
        Ok(text) => text,
        Err(_) => return children_by_scan(me),
    };
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(Pid::from_raw)
        .collect()
}

fn children_by_scan(me: Pid) -> Vec<Pid> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid ...`; comm may hold spaces and
                // parentheses, so split after the last `)`.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(me.as_raw())
            })
        })
        .map(Pid::from_raw)
        .collect()
}

enum Event {
    Signal(Signal),
    LifelineGone,
    Nothing,
}

/// Waits for a supervised signal or for the lifeline's writer to go away.
fn wait_event(signals: &SignalFd, lifeline: Option<&OwnedFd>) -> Event {
    let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
    if let Some(lifeline) = lifeline {
        fds.push(PollFd::new(lifeline.as_fd(), PollFlags::POLLIN));
    }
    match poll(&mut fds, PollTimeout::NONE) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(_) => return Event::Nothing,
    }
    // Signals first: the command's end outranks a lifeline that broke at
    // the same time (the status is then still mirrored).
    if fds[0].any().unwrap_or(false)
        && let Ok(Some(info)) = signals.read_signal()
        && let Ok(signal) = Signal::try_from(info.ssi_signo as i32)
    {
        return Event::Signal(signal);
    }
    if fds.len() > 1 && fds[1].any().unwrap_or(false) {
        // Only the server writes there, and it never does: readable means
        // end-of-file, its write end is gone.
        return Event::LifelineGone;
    }
    Event::Nothing
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .unwrap_or_else(|e| fail(&format!("cannot make a pipe: {e}")))
}

/// A supervisor cannot go on: say why on stderr, exit 126 (as a shell
/// reports a command it could not run).
fn fail(message: &str) -> ! {
    eprintln!("codex-sandbox-exec: {message}");
    std::process::exit(i32::from(crate::launcher::EXIT_NOT_RUN))
}
