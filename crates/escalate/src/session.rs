//! One escalation session: the datagram socket Bash inherits, the thread
//! that accepts wrapper connections on it, one thread per connection that
//! needs one, and the registry of escalated programs still running.
//!
//! The common case, an exec the [`Decider`] lets run without asking anyone,
//! is answered by the accepting thread itself from the handshake datagram
//! (which carries the request inline): one wake-up, no hand-over. Everything
//! that may take time (a request sent on the stream, a human to ask, an
//! escalated program to supervise, a denial whose reason may not fit the
//! socket buffer) goes to a worker thread.
//!
//! Every connection is untrusted (see the `protocol` crate): each read has a
//! deadline, fds that arrive unasked are closed, a malformed frame ends only
//! that connection, and live connections are capped so a flood of
//! handshakes cannot exhaust the server.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::Pid;
use protocol::{Conn, Handshake, ServerMsg, WrapperMsg};

use crate::escalated::{self, Prepared};
use crate::{Decider, EscalationConfig, ExecRequest, Verdict, sys};

/// How long a wrapper may take to send a whole frame it owes us (however it
/// trickles it), or to make room for one we send.
const READ_DEADLINE: Duration = Duration::from_secs(10);
/// Connections handled at once per session; more are closed unanswered
/// (their wrappers fail closed).
const MAX_LIVE_CONNECTIONS: usize = 256;
/// The same across every session of the process, so that one flooding call
/// cannot exhaust the server's fds (the usual soft limit is 1024); while a
/// flood lasts, other calls' escalations fail closed rather than the server.
const MAX_LIVE_CONNECTIONS_TOTAL: usize = 512;
static LIVE_TOTAL: AtomicUsize = AtomicUsize::new(0);
/// Handshakes taken per wake-up before `stop` is looked at again.
const ACCEPT_BATCH: usize = 64;
/// Signals a wrapper may forward to its escalated program.
const FORWARDABLE: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// A running escalation session. Dropping it (or [`Session::close`]) kills
/// every escalated program still running and stops accepting.
pub struct Session {
    registry: Arc<Registry>,
    /// Dropping this wakes the acceptor, which then exits.
    stop: Option<UnixStream>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Escalated programs of one session, by process group, with the write
/// end of each one's lifeline when it runs under a launcher (see
/// `EscalationConfig::reaper`). An entry is removed before its leader is
/// reaped, so a signalled group id is never a recycled one.
#[derive(Default)]
struct Registry {
    inner: Mutex<RegistryState>,
    /// Notified when an entry is removed.
    removed: Condvar,
}

#[derive(Default)]
struct RegistryState {
    closed: bool,
    next_id: u64,
    groups: HashMap<u64, Escalated>,
}

struct Escalated {
    pgid: Pid,
    /// Under a launcher: dropped (set to `None`) to end the program and
    /// everything it started. A supervised program's launcher is never
    /// SIGKILLed while it ends them (but by [`Registry::drain`], last).
    lifeline: Option<OwnedFd>,
    supervised: bool,
}

/// How long [`Session::close`] waits for the launchers of escalated
/// programs to end them, before killing what is left.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns under the lock, so a concurrent [`Registry::kill_all`] either
    /// sees the new group or happens before the spawn is allowed.
    fn spawn(
        &self,
        f: impl FnOnce() -> std::io::Result<(Child, Option<OwnedFd>)>,
    ) -> std::io::Result<(u64, Child)> {
        let mut state = self.lock();
        if state.closed {
            return Err(std::io::Error::other("the shell call has ended"));
        }
        let (child, lifeline) = f()?;
        state.next_id += 1;
        let id = state.next_id;
        let pgid = Pid::from_raw(child.id() as i32);
        let supervised = lifeline.is_some();
        state.groups.insert(
            id,
            Escalated {
                pgid,
                lifeline,
                supervised,
            },
        );
        Ok((id, child))
    }

    fn remove(&self, id: u64) {
        self.lock().groups.remove(&id);
        self.removed.notify_all();
    }

    /// SIGKILL ends every program through its launcher (its lifeline is
    /// dropped: the launcher kills the program and everything it started,
    /// which a SIGKILL of the launcher's group would leave running); other
    /// signals go to each launcher's group, which passes them on.
    fn kill_all(&self, signal: Signal) {
        for escalated in self.lock().groups.values_mut() {
            if signal == Signal::SIGKILL && escalated.supervised {
                escalated.lifeline = None;
                continue;
            }
            let _ = killpg(escalated.pgid, signal);
        }
    }

    /// Ends one program and everything it started: through its launcher's
    /// lifeline, or by SIGKILL of its group when it has no launcher.
    fn end(&self, id: u64) {
        if let Some(escalated) = self.lock().groups.get_mut(&id) {
            if escalated.supervised {
                escalated.lifeline = None;
            } else {
                let _ = killpg(escalated.pgid, Signal::SIGKILL);
            }
        }
    }

    /// Waits up to `wait` for every program to end (their launchers were
    /// told to end them), then SIGKILLs what is left.
    fn drain(&self, wait: Duration) {
        let state = self.lock();
        let (state, _) = self
            .removed
            .wait_timeout_while(state, wait, |s| !s.groups.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        for escalated in state.groups.values() {
            tracing::warn!(pgid = %escalated.pgid, "an escalated program's launcher did not end it in time; killing it");
            let _ = killpg(escalated.pgid, Signal::SIGKILL);
        }
    }

    fn len(&self) -> usize {
        self.lock().groups.len()
    }
}

impl Session {
    /// Creates the socket pair (sequenced packets: see the `protocol`
    /// crate) and starts accepting. Returns the session
    /// and the end Bash must inherit (close-on-exec; the spawner clears the
    /// flag in the child only).
    pub fn start(
        decider: Arc<dyn Decider>,
        config: EscalationConfig,
        expected: Option<Arc<crate::exec_check::Expected>>,
    ) -> std::io::Result<(Session, OwnedFd)> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        let (stop_tx, stop_rx) = UnixStream::pair()?;
        let registry = Arc::new(Registry::default());
        let shared = Arc::new(Shared {
            decider,
            config,
            expected,
            registry: registry.clone(),
            live: AtomicUsize::new(0),
            workers: Workers::default(),
        });
        let acceptor = std::thread::Builder::new()
            .name("escalate-accept".into())
            .spawn(move || {
                accept_loop(ours, stop_rx, &shared);
                shared.workers.close();
            })?;
        Ok((
            Session {
                registry,
                stop: Some(stop_tx),
                acceptor: Some(acceptor),
            },
            theirs,
        ))
    }

    /// Sends `signal` to every escalated program still running.
    pub fn kill_all(&self, signal: Signal) {
        self.registry.kill_all(signal);
    }

    /// Escalated programs still running.
    pub fn running(&self) -> usize {
        self.registry.len()
    }

    /// Refuses further escalations, kills the running ones (waiting, at
    /// most a couple of seconds, for their launchers to end everything they
    /// started) and stops the acceptor.
    pub fn close(&mut self) {
        self.registry.lock().closed = true;
        self.registry.kill_all(Signal::SIGKILL);
        if self.registry.len() > 0 {
            self.registry.drain(CLOSE_WAIT);
        }
        self.stop.take();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

struct Shared {
    decider: Arc<dyn Decider>,
    config: EscalationConfig,
    /// Where execs decided after a human was asked are announced to the
    /// exec check, so it does not ask again (when the call has one).
    expected: Option<Arc<crate::exec_check::Expected>>,
    registry: Arc<Registry>,
    live: AtomicUsize,
    workers: Workers,
}

/// The threads that serve connections. A connection may block for long (a
/// human is asked, an escalated program runs), so each one has a thread of
/// its own while it lasts; finished threads wait a little for the next
/// connection instead of exiting, which saves a thread start per exec.
#[derive(Default)]
struct Workers {
    state: Mutex<WorkersState>,
    wake: Condvar,
}

#[derive(Default)]
struct WorkersState {
    queue: VecDeque<Pending>,
    idle: usize,
    closed: bool,
}

/// How long an idle worker waits for another connection before it exits.
const WORKER_IDLE: Duration = Duration::from_secs(2);

impl Workers {
    fn lock(&self) -> std::sync::MutexGuard<'_, WorkersState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `conn`; returns true when no idle worker will take it, so the
    /// caller must start one.
    fn push(&self, conn: Pending) -> bool {
        let mut state = self.lock();
        state.queue.push_back(conn);
        let need_thread = state.queue.len() > state.idle;
        drop(state);
        self.wake.notify_one();
        need_thread
    }

    /// The next connection, or `None` when the worker should exit.
    fn next(&self) -> Option<Pending> {
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.queue.pop_front() {
                return Some(conn);
            }
            if state.closed {
                return None;
            }
            state.idle += 1;
            let (next, timeout) = self
                .wake
                .wait_timeout(state, WORKER_IDLE)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() {
                return None;
            }
        }
    }

    /// Idle workers exit; busy ones finish their connection first.
    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

/// A connection handed to a worker, with its request and verdict when the
/// accepting thread already has them.
struct Pending {
    conn: Conn,
    request: Option<(ExecRequest, Option<Verdict>)>,
}

fn worker_loop(shared: &Shared) {
    while let Some(pending) = shared.workers.next() {
        let Pending { conn, request } = pending;
        serve(&conn, request, shared);
        drop(conn);
        shared.live.fetch_sub(1, Ordering::AcqRel);
        LIVE_TOTAL.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(session: OwnedFd, stop: UnixStream, shared: &Arc<Shared>) {
    let mut buf = vec![0u8; protocol::HANDSHAKE_BUF_LEN];
    loop {
        let mut fds = [
            PollFd::new(session.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "escalation session poll failed");
                return;
            }
        }
        if fds[1].any().unwrap_or(true) {
            return;
        }
        // Every copy of Bash's end is closed (the call's processes are
        // gone): once the queue is drained, nothing can arrive any more.
        let hung_up = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP));
        // A bounded batch, then back to `poll`: a peer that floods the
        // socket must not keep this thread from seeing `stop`.
        for _ in 0..ACCEPT_BATCH {
            match protocol::recv_handshake(session.as_fd(), &mut buf) {
                Ok(Some(handshake)) => accept(handshake, shared),
                Ok(None) => break,
                Err(_) if hung_up => return,
                // End-of-file reads as an empty record: the last holder of
                // Bash's end closed it after our poll.
                Err(protocol::Error::BadHandshake("empty datagram")) if peers_gone(&session) => {
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "rejected an escalation handshake"),
            }
        }
    }
}

/// Whether every copy of Bash's end of the session socket is closed.
fn peers_gone(session: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(session.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
}

/// Answers a handshake at once when its inline request needs no more than
/// a quick decision; queues it for a worker otherwise. Never blocks: this
/// thread serves every wrapper of the session.
fn accept(handshake: Handshake, shared: &Arc<Shared>) {
    let Handshake { conn, first } = handshake;
    let reply_now = |msg: ServerMsg| {
        if let Err(e) = conn.send_now(&msg) {
            tracing::debug!(error = %e, "wrapper did not take its answer");
        }
    };
    let pending = match first {
        None => Pending {
            conn,
            request: None,
        },
        Some(Ok(WrapperMsg::Exec(request))) => match shared.decider.decide_now(&request) {
            Some(Verdict::Run) => {
                reply_now(ServerMsg::Run);
                let audit = Audit(&request);
                tracing::debug!(program = %audit.file(), argv = ?audit.argv(), cwd = %audit.cwd(), decision = "run", "exec");
                return;
            }
            verdict => Pending {
                conn,
                request: Some((request, verdict)),
            },
        },
        Some(Ok(other)) => {
            return reply_now(ServerMsg::Error(format!(
                "expected an exec request, got {}",
                kind(&other)
            )));
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "bad inline exec request");
            return reply_now(ServerMsg::Error(e.to_string()));
        }
    };
    queue(pending, shared);
}

fn queue(pending: Pending, shared: &Arc<Shared>) {
    let total = LIVE_TOTAL.fetch_add(1, Ordering::AcqRel);
    if shared.live.fetch_add(1, Ordering::AcqRel) >= MAX_LIVE_CONNECTIONS
        || total >= MAX_LIVE_CONNECTIONS_TOTAL
    {
        shared.live.fetch_sub(1, Ordering::AcqRel);
        LIVE_TOTAL.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!("too many escalation connections at once; closing one unanswered");
        return;
    }
    if !shared.workers.push(pending) {
        return;
    }
    let worker = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("escalate-conn".into())
        .stack_size(256 * 1024)
        .spawn(move || worker_loop(&worker));
    if let Err(e) = spawned {
        // The queued connection waits for a busy worker to finish; if none
        // is running, it is closed unanswered and its wrapper fails closed.
        tracing::error!(error = %e, "cannot start an escalation thread");
        let mut state = shared.workers.lock();
        if state.idle == 0 && state.queue.len() == shared.live.load(Ordering::Acquire) {
            for _ in state.queue.drain(..) {
                shared.live.fetch_sub(1, Ordering::AcqRel);
                LIVE_TOTAL.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Serves one wrapper connection from its `Exec` (read here unless it came
/// inline) to its end.
fn serve(conn: &Conn, request: Option<(ExecRequest, Option<Verdict>)>, shared: &Shared) {
    let reply = |msg: ServerMsg| {
        if let Err(e) = conn.send_within(&msg, READ_DEADLINE) {
            tracing::debug!(error = %e, "wrapper went away before the answer");
        }
    };
    // A peer that neither writes nor reads holds this thread no longer than
    // the deadline.
    if let Err(e) = conn
        .set_read_timeout(Some(READ_DEADLINE))
        .and_then(|()| conn.set_write_timeout(Some(READ_DEADLINE)))
    {
        tracing::warn!(error = %e, "escalation connection unusable");
        return;
    }
    let (request, verdict) = match request {
        Some(decided) => decided,
        None => match read_request(conn) {
            Ok(request) => (request, None),
            Err(Some(message)) => return reply(ServerMsg::Error(message)),
            Err(None) => return,
        },
    };
    let asked = verdict.is_none();
    let verdict = verdict.unwrap_or_else(|| shared.decider.decide(&request));
    let audit = Audit(&request);
    match verdict {
        Verdict::Run if asked => {
            // The wrapper runs it itself next: the exec check must not
            // ask about it again.
            if let Some(expected) = &shared.expected
                && let Ok(creds) =
                    nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials)
            {
                let file = crate::escalated::canonical_program(&request);
                expected.expect(creds.pid() as u32, file, request.argv.clone());
            }
            tracing::debug!(program = %audit.file(), argv = ?audit.argv(), cwd = %audit.cwd(), decision = "run", "exec");
            reply(ServerMsg::Run)
        }
        Verdict::Run => {
            tracing::debug!(program = %audit.file(), argv = ?audit.argv(), cwd = %audit.cwd(), decision = "run", "exec");
            reply(ServerMsg::Run)
        }
        Verdict::Deny(reason) => {
            tracing::debug!(program = %audit.file(), argv = ?audit.argv(), cwd = %audit.cwd(), decision = "deny", %reason, "exec");
            reply(ServerMsg::Deny { reason })
        }
        Verdict::Escalate => match escalated::prepare(&request, &shared.config) {
            Err(refusal) => {
                tracing::warn!(program = %audit.file(), argv = ?audit.argv(), cwd = %audit.cwd(), decision = "run",
                    %refusal, "not escalated; running inside the sandbox instead");
                reply(ServerMsg::Run)
            }
            Ok(prepared) => {
                tracing::info!(program = %prepared.program.display(), argv = ?audit.argv(), cwd = %audit.cwd(),
                    decision = "escalate", "exec");
                escalate(
                    conn,
                    &prepared,
                    &shared.registry,
                    shared.config.reaper.as_ref(),
                )
            }
        },
    }
}

/// The `Exec` frame a wrapper sends after a plain handshake. `Err(None)`:
/// the wrapper went away; `Err(Some(message))`: answer with this error.
fn read_request(conn: &Conn) -> Result<ExecRequest, Option<String>> {
    match conn.recv_within::<WrapperMsg>(READ_DEADLINE) {
        Ok((WrapperMsg::Exec(request), _unexpected_fds)) => Ok(request),
        Ok((other, _)) => Err(Some(format!(
            "expected an exec request, got {}",
            kind(&other)
        ))),
        Err(protocol::Error::Closed) => Err(None),
        Err(e) => {
            tracing::warn!(error = %e, "bad exec request");
            Err(Some(e.to_string()))
        }
    }
}

fn kind(msg: &WrapperMsg) -> &'static str {
    match msg {
        WrapperMsg::Exec(_) => "exec",
        WrapperMsg::Fds { .. } => "fds",
        WrapperMsg::Signal(_) => "signal",
    }
}

/// Runs `prepared` with the wrapper's fds and reports how it ended.
fn escalate(conn: &Conn, prepared: &Prepared, registry: &Registry, reaper: Option<&crate::Reaper>) {
    let fail = |message: String| {
        tracing::warn!(program = %prepared.program.display(), %message, "escalation failed");
        let _ = conn.send_within(&ServerMsg::Error(message), READ_DEADLINE);
    };
    if conn
        .send_within(&ServerMsg::Escalate, READ_DEADLINE)
        .is_err()
    {
        return;
    }
    let (targets, fds) = match conn.recv_within::<WrapperMsg>(READ_DEADLINE) {
        Ok((WrapperMsg::Fds { targets }, fds)) => (targets, fds),
        Ok((other, _)) => return fail(format!("expected fds, got {}", kind(&other))),
        Err(e) => return fail(e.to_string()),
    };
    if let Err(message) = check_targets(&targets, fds.len()) {
        return fail(message);
    }
    let (id, mut child) = match registry.spawn(|| prepared.spawn(&targets, fds, reaper)) {
        Ok(spawned) => spawned,
        Err(e) => return fail(format!("cannot start {}: {e}", prepared.program.display())),
    };
    let pgid = Pid::from_raw(child.id() as i32);
    let pidfd = match sys::pidfd_open(child.id()) {
        Ok(fd) => fd,
        Err(e) => {
            // Cannot watch it: do not leave it running unsupervised.
            registry.end(id);
            registry.remove(id);
            let _ = child.wait();
            return fail(format!("pidfd_open: {e}"));
        }
    };
    let _ = conn.set_read_timeout(None);
    let mut wrapper_alive = true;
    loop {
        let mut fds = [
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(conn.as_fd(), PollFlags::POLLIN),
        ];
        let watched = if wrapper_alive {
            &mut fds[..]
        } else {
            &mut fds[..1]
        };
        match poll(watched, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "poll on an escalated program failed");
                registry.end(id);
            }
        }
        if fds[0].any().unwrap_or(false) {
            break;
        }
        if wrapper_alive && fds[1].any().unwrap_or(false) {
            // Readable: a whole frame is due now, not a byte at a time.
            match conn.recv_within::<WrapperMsg>(READ_DEADLINE) {
                Ok((WrapperMsg::Signal(signo), _)) => match Signal::try_from(signo) {
                    Ok(sig) if FORWARDABLE.contains(&sig) => {
                        let _ = killpg(pgid, sig);
                    }
                    _ => tracing::warn!(
                        signo,
                        "wrapper asked to forward a signal that is not forwardable"
                    ),
                },
                Ok((other, _)) => {
                    tracing::warn!(frame = kind(&other), "unexpected frame during escalation")
                }
                Err(e) => {
                    // The wrapper died (or spoke garbage): its program must not
                    // outlive it.
                    tracing::info!(program = %prepared.program.display(), error = %e,
                        "wrapper gone mid-escalation; killing the escalated program");
                    wrapper_alive = false;
                    registry.end(id);
                }
            }
        }
    }
    // The leader is a zombie: its group id cannot be recycled until we reap.
    registry.remove(id);
    let status = child.wait();
    let msg = match status {
        Ok(status) => match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => ServerMsg::Exited(code),
            (None, Some(signo)) => ServerMsg::Signaled(signo),
            (None, None) => ServerMsg::Error("escalated program ended in an unknown way".into()),
        },
        Err(e) => ServerMsg::Error(format!("wait: {e}")),
    };
    if wrapper_alive {
        let _ = conn.send_within(&msg, READ_DEADLINE);
    }
}

/// Targets must be distinct, non-negative and as many as the fds received.
fn check_targets(targets: &[i32], received: usize) -> Result<(), String> {
    if targets.len() != received {
        return Err(format!(
            "{} fd targets but {received} fds received",
            targets.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for &t in targets {
        if !(0..=1023).contains(&t) || !seen.insert(t) {
            return Err(format!("invalid or duplicate fd target {t}"));
        }
    }
    Ok(())
}

/// Lossy views of a request for logs.
struct Audit<'a>(&'a ExecRequest);

impl Audit<'_> {
    fn file(&self) -> String {
        self.0.file.to_string_lossy().into_owned()
    }
    fn cwd(&self) -> String {
        self.0.cwd.to_string_lossy().into_owned()
    }
    fn argv(&self) -> Vec<String> {
        self.0
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}
