//! A command that outlives the request that started it: the same launcher,
//! sandbox, escalation session and exec check as a `shell` call
//! ([`crate::run_shell`]), but with stdin kept open (a pipe, or a
//! pseudo-terminal) and its output in a ring buffer read piece by piece.
//!
//! **Invariant:** a [`Process`] owns everything it started, as a call
//! does: when it exits, when [`Process::stop`] is called, when its cancel
//! token fires, or when the `Process` is dropped, [`Spawned::end`] kills
//! the launcher's whole tree and every escalated program; and if even that
//! task is dropped, the lifeline closes and the launcher kills it all. The
//! output it keeps is bounded by the ring's capacity, whatever it prints.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::shell::{ChildStdio, Spawned, Tty, exit_code};
use crate::{Decider, ShellConfig, ShellRequest, sys};

/// After the command has ended, how long output may keep arriving (from
/// processes that escaped the kill) before the capture is cut off.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);
/// Once output has arrived, a read returns after this long without more
/// (or at its deadline, whichever comes first).
const SETTLE: Duration = Duration::from_millis(50);

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Bash's exit code; 128+N for death by signal N.
    pub exit_code: i32,
    /// Execs refused by the exec check, with the reason.
    pub denied: Vec<String>,
}

/// The newest output of a process, at most `capacity` bytes, and where the
/// reader stands in it.
#[derive(Debug)]
pub struct Ring {
    state: Mutex<RingState>,
    changed: Notify,
}

#[derive(Debug)]
struct RingState {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// Bytes ever written.
    total: u64,
    /// Offset (in the whole stream) of the next byte to hand out.
    read: u64,
    /// No more output will come.
    closed: bool,
}

/// What one read took from a [`Ring`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The bytes, invalid UTF-8 replaced.
    pub text: String,
    /// Bytes the ring overwrote before they were read, since the last read.
    pub dropped: u64,
    /// Bytes still unread after this one.
    pub unread: u64,
    /// Bytes handed out (the length of the raw chunk).
    pub bytes: u64,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring {
            state: Mutex::new(RingState {
                bytes: VecDeque::new(),
                capacity: capacity.max(1),
                total: 0,
                read: 0,
                closed: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `data`, dropping the oldest bytes beyond the capacity.
    pub fn push(&self, mut data: &[u8]) {
        {
            let mut s = self.lock();
            s.total += data.len() as u64;
            if data.len() >= s.capacity {
                data = &data[data.len() - s.capacity..];
                s.bytes.clear();
            }
            let overflow = (s.bytes.len() + data.len()).saturating_sub(s.capacity);
            s.bytes.drain(..overflow);
            s.bytes.extend(data);
        }
        self.changed.notify_waiters();
    }

    /// No more output will come.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    /// Bytes written and not handed out yet (overwritten ones included).
    pub fn pending(&self) -> u64 {
        let s = self.lock();
        s.total - s.read
    }

    /// Takes the oldest unread bytes, at most `max`: a cut never splits a
    /// UTF-8 sequence unless the output has ended (its remaining bytes are
    /// then replaced).
    pub fn take(&self, max: usize) -> Chunk {
        let mut s = self.lock();
        let start = s.total - s.bytes.len() as u64;
        let dropped = start.saturating_sub(s.read);
        s.read = s.read.max(start);
        let offset = (s.read - start) as usize;
        let available = s.bytes.len() - offset;
        let mut n = available.min(max);
        if n < available || !s.closed {
            n = utf8_boundary(s.bytes.range(offset..offset + n), n);
        }
        let raw: Vec<u8> = s.bytes.range(offset..offset + n).copied().collect();
        s.read += n as u64;
        Chunk {
            text: String::from_utf8_lossy(&raw).into_owned(),
            dropped,
            unread: s.total - s.read,
            bytes: n as u64,
        }
    }

    /// Waits until `deadline`, or until the output has ended, or until
    /// unread output has come and then paused for a moment (or `enough`
    /// bytes of it are waiting).
    pub async fn wait(&self, deadline: Instant, enough: u64) {
        let mut settle_from: Option<(Instant, u64)> = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (pending, closed) = {
                let s = self.lock();
                (s.total - s.read, s.closed)
            };
            let now = Instant::now();
            if closed || pending >= enough || now >= deadline {
                return;
            }
            if pending > 0 {
                match settle_from {
                    Some((since, seen)) if seen == pending => {
                        if now >= since + SETTLE {
                            return;
                        }
                    }
                    _ => settle_from = Some((now, pending)),
                }
            }
            let until = match settle_from {
                Some((since, _)) => (since + SETTLE).min(deadline),
                None => deadline,
            };
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }
}

/// The largest `n' <= n` such that the first `n'` bytes of `bytes` do not
/// end inside a UTF-8 sequence (one cut short by at most 3 bytes).
fn utf8_boundary<'a>(bytes: impl DoubleEndedIterator<Item = &'a u8>, n: usize) -> usize {
    let tail: Vec<u8> = bytes.rev().take(4).copied().collect();
    // `tail` is reversed: tail[0] is the last byte.
    for (back, &b) in tail.iter().enumerate() {
        if b & 0xC0 == 0x80 {
            continue;
        }
        let len = match b {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return n,
        };
        return if len > back + 1 { n - (back + 1) } else { n };
    }
    n
}

/// A background command (see the module docs).
pub struct Process {
    output: Arc<Ring>,
    /// Our end of its stdin (the pipe's write end, or the terminal's
    /// master), non-blocking.
    input: tokio::sync::Mutex<Input>,
    tty: bool,
    /// The terminal's master once we have it, for its window size.
    master: Arc<OnceLock<OwnedFd>>,
    stop: mpsc::UnboundedSender<Signal>,
    ended: watch::Receiver<Option<Ended>>,
    pid: u32,
    started: Instant,
    _kill_on_drop: DropGuard,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

/// Starts `request` as a background process; `request.timeout` is not
/// used. Returns the process and the task that supervises it (spawn it;
/// the process ends when it ends). `cancel` (or dropping the process) ends
/// it with everything it started.
pub fn start_process(
    config: &ShellConfig,
    request: ShellRequest,
    tty: Option<WindowSize>,
    decider: Arc<dyn Decider>,
    cancel: CancellationToken,
    ring_capacity: usize,
) -> std::io::Result<(Process, impl Future<Output = ()> + Send + 'static)> {
    let started = Instant::now();
    let master = Arc::new(OnceLock::new());
    let (stdio, input, output, terminal) = match tty {
        // The launcher makes the terminal in the sandbox (its private
        // `devpts`) and sends us its master; until then its own errors
        // come on the output pipe.
        Some(size) if !config.launcher.is_empty() => {
            let (ours, theirs) = sys::seqpacket_pair()?;
            let (out_read, out_write) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
            let stdio = ChildStdio {
                stdin: Stdio::null(),
                output: out_write,
                tty: Tty::Launcher {
                    channel: theirs,
                    rows: size.rows,
                    cols: size.cols,
                },
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            (stdio, Input::Pending(rx), out_read, Some((ours, tx)))
        }
        Some(size) => {
            let (ours, slave) = sys::openpty(size.rows, size.cols)?;
            let stdio = ChildStdio {
                stdin: Stdio::from(slave.try_clone()?),
                output: slave,
                tty: Tty::Own,
            };
            let input = ours.try_clone()?;
            set_nonblocking(&input)?;
            let output = ours.try_clone()?;
            let _ = master.set(ours);
            (
                stdio,
                Input::Ready(sys::async_writable(input)?),
                output,
                None,
            )
        }
        None => {
            let (in_read, in_write) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
            let (out_read, out_write) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
            let stdio = ChildStdio {
                stdin: Stdio::from(in_read),
                output: out_write,
                tty: Tty::None,
            };
            set_nonblocking(&in_write)?;
            (
                stdio,
                Input::Ready(sys::async_writable(in_write)?),
                out_read,
                None,
            )
        }
    };
    let spawned = Spawned::start(config, &request, decider, stdio)?;
    let pid = spawned.pid();
    let ring = Arc::new(Ring::new(ring_capacity));
    let (stop_tx, stop_rx) = UnixStream::pair()?;
    let reader_ring = ring.clone();
    let reader_master = master.clone();
    let (finished_tx, finished) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("process-output".into())
        .spawn(move || {
            read_into(&output, &stop_rx, &reader_ring);
            if let Some((channel, input)) = terminal
                && let Some(master) = receive_master(&channel)
            {
                drop(channel);
                if let Ok(copy) = master.try_clone() {
                    let _ = input.send(copy);
                }
                if let Ok(copy) = master.try_clone() {
                    let _ = reader_master.set(copy);
                }
                read_into(&master, &stop_rx, &reader_ring);
            }
            drop(finished_tx);
        })?;
    let (stop, mut stops) = mpsc::unbounded_channel::<Signal>();
    let (ended_tx, ended) = watch::channel(None);
    let kill_grace = config.kill_grace;
    let cancel_child = cancel.child_token();
    let done = cancel_child.clone();
    let end_ring = ring.clone();
    let supervise = async move {
        let stop = loop {
            tokio::select! {
                _ = spawned.exited.readable() => break None,
                () = done.cancelled() => break Some(Signal::SIGKILL),
                signal = stops.recv() => match signal {
                    // Stopping: the signal first, then everything.
                    Some(signal @ (Signal::SIGTERM | Signal::SIGKILL)) => break Some(signal),
                    Some(signal) => spawned.signal(signal),
                    None => break Some(Signal::SIGKILL),
                },
            }
        };
        let ended = match spawned.end(stop, kill_grace).await {
            Ok((status, denied)) => Ended {
                exit_code: exit_code(status),
                denied,
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot end a background process");
                Ended {
                    exit_code: 128 + Signal::SIGKILL as i32,
                    denied: Vec::new(),
                }
            }
        };
        // The output's end, unless something escaped the kill and holds it.
        let drained = tokio::task::spawn_blocking(move || {
            if finished.recv_timeout(DRAIN_DEADLINE)
                == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            {
                tracing::warn!(
                    "output still open after a background process ended (an escaped process?); cutting it off"
                );
                drop(stop_tx);
                let _ = finished.recv();
            }
        });
        let _ = drained.await;
        end_ring.close();
        let _ = ended_tx.send(Some(ended));
    };
    let process = Process {
        output: ring,
        input: tokio::sync::Mutex::new(input),
        tty: tty.is_some(),
        master,
        stop,
        ended,
        pid,
        started,
        _kill_on_drop: cancel_child.drop_guard(),
    };
    Ok((process, supervise))
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Our end of a process's stdin.
enum Input {
    Ready(AsyncFd<OwnedFd>),
    /// The terminal's master, once the launcher has sent it.
    Pending(tokio::sync::oneshot::Receiver<OwnedFd>),
    Closed,
}

/// The terminal master the launcher sends on `channel` (nothing if it
/// fails first, closing its end): refused unless it is one.
fn receive_master(channel: &OwnedFd) -> Option<OwnedFd> {
    let mut tag = [0u8; 1];
    let fd = match sys::recv_one_fd(channel.as_fd(), &mut tag) {
        Ok(Some(fd)) => fd,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "no terminal from the launcher");
            return None;
        }
    };
    if tag != *b"T" || !sys::is_pty_master(&fd) {
        tracing::warn!("the launcher sent something other than a terminal master; ignored");
        return None;
    }
    Some(fd)
}

/// Reads `pipe` (or a terminal's master: `EIO` once every slave is
/// closed) into `ring` until its end or until `stop` is closed.
fn read_into(pipe: &OwnedFd, stop: &UnixStream, ring: &Ring) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [
            PollFd::new(pipe.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
        if fds[1].any().unwrap_or(false) && !fds[0].any().unwrap_or(false) {
            break;
        }
        match nix::unistd::read(pipe, &mut buf) {
            Ok(0) => break,
            Ok(n) => ring.push(&buf[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(_) => break,
        }
    }
}

/// Why input could not be written.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the process has closed its input")]
    Closed,
    #[error("the process did not read its input: {written} of {len} bytes written")]
    Stalled { written: usize, len: usize },
    #[error("cannot write to the process: {0}")]
    Io(#[from] std::io::Error),
}

impl Process {
    /// The launcher's pid (the top of the process's tree, outside any
    /// pid namespace).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn tty(&self) -> bool {
        self.tty
    }

    /// How it ended, once it has and its output is complete.
    pub fn ended(&self) -> Option<Ended> {
        self.ended.borrow().clone()
    }

    pub fn output(&self) -> &Ring {
        &self.output
    }

    /// Waits (at most until `deadline`) for it to end.
    pub async fn wait_ended(&self, deadline: Instant) -> Option<Ended> {
        let mut ended = self.ended.clone();
        let _ = tokio::time::timeout_at(deadline.into(), ended.wait_for(Option::is_some)).await;
        self.ended()
    }

    /// Writes `data` to its stdin, waiting at most until `deadline` for it
    /// to make room.
    pub async fn write(&self, data: &[u8], deadline: Instant) -> Result<(), InputError> {
        let mut input = self.input.lock().await;
        if let Input::Pending(rx) = &mut *input {
            *input = match tokio::time::timeout_at(deadline.into(), rx).await {
                Err(_) => {
                    return Err(InputError::Stalled {
                        written: 0,
                        len: data.len(),
                    });
                }
                Ok(Err(_)) => Input::Closed,
                Ok(Ok(fd)) => {
                    set_nonblocking(&fd)?;
                    Input::Ready(sys::async_writable(fd)?)
                }
            };
        }
        let Input::Ready(fd) = &*input else {
            return Err(InputError::Closed);
        };
        let mut written = 0;
        while written < data.len() {
            let ready = tokio::time::timeout_at(deadline.into(), fd.writable()).await;
            let Ok(ready) = ready else {
                return Err(InputError::Stalled {
                    written,
                    len: data.len(),
                });
            };
            let mut guard = ready?;
            match guard.try_io(|fd| {
                nix::unistd::write(fd.get_ref(), &data[written..]).map_err(std::io::Error::from)
            }) {
                Ok(Ok(n)) => written += n,
                Ok(Err(e)) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::EIO)) => {
                    *input = Input::Closed;
                    return Err(InputError::Closed);
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Sets the terminal's window size (no terminal: nothing to do).
    pub fn resize(&self, size: WindowSize) -> std::io::Result<()> {
        match self.master.get() {
            Some(master) => sys::set_winsize(master.as_fd(), size.rows, size.cols),
            None => Ok(()),
        }
    }

    /// Sends `signal`: SIGTERM and SIGKILL end it with everything it
    /// started (SIGTERM first gives it the kill grace); INT, HUP and QUIT
    /// are passed on to its processes, which may go on.
    pub fn signal(&self, signal: Signal) {
        let _ = self.stop.send(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_bytes_and_counts_the_rest() {
        let ring = Ring::new(4);
        ring.push(b"abc");
        assert_eq!(ring.take(2).text, "ab");
        ring.push(b"defgh");
        let chunk = ring.take(100);
        // "c" and "d" were overwritten before being read.
        assert_eq!((chunk.text.as_str(), chunk.dropped), ("efgh", 2));
        assert_eq!(ring.take(100).bytes, 0);
        ring.push(b"0123456789");
        let chunk = ring.take(3);
        assert_eq!(
            (chunk.text.as_str(), chunk.dropped, chunk.unread),
            ("678", 6, 1)
        );
    }

    #[test]
    fn a_cut_does_not_split_a_character_until_the_end() {
        let ring = Ring::new(64);
        ring.push("aé".as_bytes());
        ring.push(&"€".as_bytes()[..2]);
        assert_eq!(ring.take(2).text, "a");
        assert_eq!(ring.take(100).text, "é");
        ring.close();
        assert_eq!(ring.take(100).text, "\u{fffd}");
    }
}
