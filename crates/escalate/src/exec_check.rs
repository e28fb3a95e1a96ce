//! The exec check: the server side of `sandbox`'s seccomp exec filter.
//! Every `execve`/`execveat` of a sandboxed call, from any process in it,
//! waits here for an answer: the rules' verdict for the program that would
//! run, judged like the wrapper's requests (`Decider::check_sandboxed`).
//!
//! **Invariant: never answer in a way that lets something run outside the
//! sandbox.** The only answers are "continue" (the exec proceeds, in the
//! sandboxed process, under its Landlock domain and filters) and `EACCES`.
//! No fd is injected, no syscall is performed on the process's behalf: an
//! `allow` rule on this path runs the program inside the sandbox, and only
//! the wrapper's path escalates.
//!
//! Each notification is a small state machine: receive it, read the path
//! (and when needed argv) from the process's memory, check that the
//! notification is still valid (`SECCOMP_IOCTL_NOTIF_ID_VALID`: the process
//! is the one that made the call, not a recycled pid), decide, answer.
//!
//! What the kernel says of "continue" answers (seccomp_unotify(2)): *"the
//! supervisor ... must not use `SECCOMP_USER_NOTIF_FLAG_CONTINUE` to
//! implement a security policy ... since the target's memory can be changed
//! by another thread of the target ... between the time the supervisor
//! inspects the system call arguments and the time the kernel re-reads
//! them."* So a `forbidden` rule is a guard that every ordinary way of
//! starting a program respects, not a boundary against a process that races
//! its own memory from another thread; the sandbox stays the boundary.
//!
//! Fast path: an exec whose file (by the name used or the file it resolves
//! to) no rule or heuristic names continues without its argv being read,
//! and so does the exec of the wrapper; a prompt goes to a thread of its own
//! so the other execs of the call go on. What such an exec costs, in
//! syscalls: the path read (`process_vm_readv`), the file found
//! (`view::find`: one `openat2` from the process's root or cwd when the
//! path stays on one mount off procfs, as `/usr/bin/*` does, else the
//! component walk), its name (`/proc/self/fd` link), its first line for a
//! `#!` (`fstat`, then read through the fd found: an ELF is read too, its
//! first bytes are what tell), and the answer. A bare "continue" is sent
//! without `SECCOMP_IOCTL_NOTIF_ID_VALID` first: the kernel accepts it
//! only while the notification's process is still in its exec.
//!
//! Not asked for: synchronous wake-ups (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`,
//! Linux 6.6). They halve an exec that fails at once (the round trip alone,
//! 40 → 15–25 µs here), but make a real one slower (a `posix_spawn` of
//! `/bin/true` +150 µs, Bash's loop +300 µs per exec): presumably the woken program
//! starts on this thread's CPU and the two queue behind each other while
//! the other CPU idles.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;

use crate::{Decider, ExecRequest, Verdict, sys, view};

/// Longest path read (PATH_MAX).
const MAX_PATH: usize = 4096;
/// Longest argument and total argv read (Linux's own limits).
const MAX_ARG: usize = 128 << 10;
const MAX_ARGV_BYTES: usize = 2 << 20;
const MAX_ARGS: usize = 1 << 18;

/// What one call's exec check needs to know.
pub(crate) struct Checker {
    pub decider: Arc<dyn Decider>,
    /// The wrappers' ask list (`protocol::encode_ask_list`); `None`: judge
    /// every exec.
    pub ask_list: Option<String>,
    /// `codex-execve-wrapper`, canonical: its execs continue at once (it
    /// asks the server itself).
    pub wrapper: PathBuf,
    /// The patched Bash, canonical: the launcher's own exec of it is the
    /// first notification.
    pub bash: PathBuf,
    /// Denials, for the call's result.
    pub denied: Arc<Mutex<Vec<String>>>,
    /// Execs a human already approved on the wrapper's path.
    pub expected: Arc<Expected>,
    /// What a human answered here, by process, program and argv: `execvp`
    /// retries a refused exec with the next `PATH` entry, which resolves to
    /// the same file; the human is not asked twice.
    pub answered: Mutex<Vec<(ExecKey, Verdict)>>,
}

/// An exec by the process that makes it, the file and the argv.
type ExecKey = (u32, PathBuf, Vec<OsString>);

impl Checker {
    fn answer_for(&self, key: &ExecKey) -> Option<Verdict> {
        let answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        answered
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn remember(&self, key: ExecKey, verdict: Verdict) {
        let mut answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        if answered.len() >= 64 {
            answered.remove(0);
        }
        answered.push((key, verdict));
    }
}

/// Execs the wrapper path already decided after asking a human, expected
/// next from that wrapper's process: they are not asked about twice.
#[derive(Debug, Default)]
pub struct Expected {
    inner: Mutex<Vec<(u32, PathBuf, Vec<OsString>)>>,
}

impl Expected {
    /// `pid` was told to run `file` with `argv` itself.
    pub(crate) fn expect(&self, pid: u32, file: PathBuf, argv: Vec<OsString>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a wrapper that never execs leaves one entry.
        if inner.len() >= 256 {
            inner.remove(0);
        }
        inner.push((pid, file, argv));
    }

    /// Takes the expectation for exactly this exec, if any.
    fn take(&self, pid: u32, file: &Path, argv: &[OsString]) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner
            .iter()
            .position(|(p, f, a)| *p == pid && f == file && a == argv)
        {
            Some(i) => {
                inner.remove(i);
                true
            }
            None => false,
        }
    }
}

/// A running exec check.
pub(crate) struct ExecCheck {
    stop: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
}

impl ExecCheck {
    /// Starts waiting for the listener on `channel` (the launcher sends it
    /// before the command's first exec), then serves it.
    pub(crate) fn start(channel: OwnedFd, checker: Checker) -> io::Result<ExecCheck> {
        let (stop_tx, stop_rx) = UnixStream::pair()?;
        let thread = std::thread::Builder::new()
            .name("exec-check".into())
            .spawn(move || {
                let Some(listener) = receive_listener(&channel, &stop_rx) else {
                    return;
                };
                drop(channel);
                serve(Arc::new(listener), &stop_rx, Arc::new(checker));
            })?;
        Ok(ExecCheck {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops serving (the call's processes are gone).
    pub(crate) fn stop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ExecCheck {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The listener the launcher sends, or `None` when it sends none (it
/// failed before, and said so) or the call ends first.
fn receive_listener(channel: &OwnedFd, stop: &UnixStream) -> Option<OwnedFd> {
    loop {
        let mut fds = [
            PollFd::new(channel.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return None,
        }
        if fds[1].any().unwrap_or(true) {
            return None;
        }
        if fds[0].any().unwrap_or(false) {
            let mut byte = [0u8; 1];
            return match sys::recv_one_fd(channel.as_fd(), &mut byte) {
                Ok(Some(fd)) if sys::is_seccomp_listener(&fd) => Some(fd),
                Ok(_) | Err(_) => {
                    tracing::warn!("the launcher sent no seccomp listener; execs are not checked");
                    None
                }
            };
        }
    }
}

fn serve(listener: Arc<OwnedFd>, stop: &UnixStream, checker: Arc<Checker>) {
    let mut first = true;
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "exec check poll failed");
                return;
            }
        }
        if fds[1].any().unwrap_or(true) {
            return;
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if revents.contains(PollFlags::POLLIN) {
            match sys::notif_recv(listener.as_fd()) {
                Ok(notif) => handle(&listener, &checker, notif, &mut first),
                // The process died between poll and receive.
                Err(Errno::ENOENT | Errno::EINTR) => {}
                Err(e) => {
                    tracing::error!(error = %e, "exec check receive failed");
                    return;
                }
            }
        } else if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            // No process is left under the filter.
            return;
        }
    }
}

/// An exec as the process made it.
struct Exec {
    pid: u32,
    /// The path as given (absolute once resolved against cwd or dirfd).
    path: PathBuf,
    /// The file that path resolves to, when it can be told.
    canonical: Option<PathBuf>,
    /// That file (`O_PATH`).
    file: Option<OwnedFd>,
    argv_ptr: u64,
}

fn handle(
    listener: &Arc<OwnedFd>,
    checker: &Arc<Checker>,
    notif: libc::seccomp_notif,
    first: &mut bool,
) {
    let id = notif.id;
    let exec = match read_exec(&notif) {
        Ok(exec) => exec,
        Err(why) => {
            if sys::notif_id_valid(listener.as_fd(), id) {
                tracing::warn!(pid = notif.pid, %why, "exec refused: cannot read it");
                record(
                    checker,
                    format!("an exec was refused: cannot read it ({why})"),
                );
                let _ = sys::notif_refuse(listener.as_fd(), id, libc::EACCES);
            }
            return;
        }
    };
    // What was read may belong to a process that reused the pid of one
    // that died meanwhile. A "continue" needs no check first: the kernel
    // accepts an answer only while the notification's process is still in
    // its syscall (so it was the one read), and drops it otherwise. Every
    // answer with another effect (a denial printed and recorded, a human
    // asked, an expectation used) checks `SECCOMP_IOCTL_NOTIF_ID_VALID`
    // after the last read.
    let program = exec.canonical.as_deref().unwrap_or(&exec.path);
    let is_first = std::mem::take(first);
    if (is_first && program == checker.bash) || program == checker.wrapper {
        let _ = sys::notif_continue(listener.as_fd(), id);
        return;
    }
    // Nothing there: the kernel fails the exec itself (`execvp` tries each
    // `PATH` entry; a rule must not turn each miss into a denial).
    if exec.canonical.is_none() {
        let _ = sys::notif_continue(listener.as_fd(), id);
        return;
    }
    let named = |path: &Path| match &checker.ask_list {
        Some(list) => protocol::needs_asking(path.as_os_str().as_bytes(), list.as_bytes()),
        None => true,
    };
    // A script's interpreter runs without an exec of its own (the kernel
    // loads it): `#!/bin/rm` is an exec of rm.
    let interpreters = match &exec.file {
        Some(file) => interpreters(exec.pid, file),
        None => Vec::new(),
    };
    if !named(&exec.path)
        && exec.canonical.as_deref().is_none_or(|c| !named(c))
        && interpreters.iter().all(|(i, _)| !named(i))
    {
        tracing::debug!(pid = exec.pid, path = %exec.path.display(), "exec continues (no rule names it)");
        let _ = sys::notif_continue(listener.as_fd(), id);
        return;
    }
    let request = match full_request(&exec) {
        Ok(request) => request,
        Err(why) => {
            if sys::notif_id_valid(listener.as_fd(), id) {
                record(
                    checker,
                    format!("an exec of {} was refused: {why}", exec.path.display()),
                );
                let _ = sys::notif_refuse(listener.as_fd(), id, libc::EACCES);
            }
            return;
        }
    };
    if !sys::notif_id_valid(listener.as_fd(), id) {
        return;
    }
    if checker.expected.take(exec.pid, program, &request.argv) {
        let _ = sys::notif_continue(listener.as_fd(), id);
        return;
    }
    // The interpreters are judged as the programs they are, each with the
    // argv the kernel gives it: `interpreter [arg] script args...`.
    let mut requests = vec![request];
    for (interpreter, arg) in &interpreters {
        let script = &requests[0];
        let mut argv = vec![interpreter.clone().into_os_string()];
        argv.extend(arg.clone());
        argv.push(script.file.clone());
        argv.extend(script.argv.iter().skip(1).cloned());
        requests.push(ExecRequest {
            file: interpreter.clone().into_os_string(),
            argv,
            env: Vec::new(),
            cwd: script.cwd.clone(),
        });
    }
    let mut verdicts = requests.iter().map(|r| checker.decider.check_sandboxed(r));
    let denied = verdicts.find(|v| matches!(v, Some(Verdict::Deny(_))));
    let request = requests.swap_remove(0);
    if let Some(Some(verdict)) = denied {
        return answer(listener, checker, id, exec.pid, verdict);
    }
    match checker.decider.check_sandboxed(&request) {
        Some(verdict) => answer(listener, checker, id, exec.pid, verdict),
        None => {
            let key = (exec.pid, program.to_path_buf(), request.argv.clone());
            if let Some(verdict) = checker.answer_for(&key) {
                return answer(listener, checker, id, exec.pid, verdict);
            }
            // A human is asked: not on this thread, which serves every
            // other exec of the call meanwhile.
            let (listener, checker) = (listener.clone(), checker.clone());
            let asked = std::thread::Builder::new()
                .name("exec-check-ask".into())
                .spawn(move || {
                    let verdict = checker.decider.ask_sandboxed(&request);
                    checker.remember(key, verdict.clone());
                    if sys::notif_id_valid(listener.as_fd(), id) {
                        answer(&listener, &checker, id, exec.pid, verdict);
                    }
                });
            if asked.is_err() {
                tracing::error!("cannot start a thread to ask about an exec; refusing it");
            }
        }
    }
}

/// The interpreter chain of a `#!` script (the kernel follows up to four),
/// each with its optional argument, read through the process's view;
/// `file` is the script (`O_PATH`, as [`view::find`] found it).
fn interpreters(pid: u32, file: &OwnedFd) -> Vec<(PathBuf, Option<OsString>)> {
    let mut out = Vec::new();
    let mut head = [0u8; 256];
    let mut n = read_head(file, &mut head);
    for _ in 0..4 {
        let Some(line) = head[..n].strip_prefix(b"#!") else {
            break;
        };
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.trim_ascii();
        let (interpreter, arg) = match line.iter().position(|b| b.is_ascii_whitespace()) {
            Some(i) => (&line[..i], Some(line[i..].trim_ascii())),
            None => (line, None),
        };
        if interpreter.is_empty() {
            break;
        }
        let interpreter = PathBuf::from(OsString::from_vec(interpreter.to_vec()));
        let arg = arg
            .filter(|a| !a.is_empty())
            .map(|a| OsString::from_vec(a.to_vec()));
        let Some(found) = view::find(pid, view::Start::Cwd, &interpreter, false) else {
            // Nothing there: the exec fails in the kernel.
            out.push((interpreter, arg));
            break;
        };
        out.push((found.path, arg));
        n = read_head(&found.file, &mut head);
    }
    out
}

/// The first bytes of `file` when it is a regular file (the kernel runs no
/// other kind); 0 when it cannot be read. Opened again from the `O_PATH`
/// fd, non-blocking: nothing the process named is opened by its name again.
fn read_head(file: &OwnedFd, head: &mut [u8]) -> usize {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let regular = nix::sys::stat::fstat(file).is_ok_and(|st| {
        nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
            == nix::sys::stat::SFlag::S_IFREG
    });
    if !regular {
        return 0;
    }
    let flags = nix::fcntl::OFlag::O_RDONLY
        | nix::fcntl::OFlag::O_NONBLOCK
        | nix::fcntl::OFlag::O_NOCTTY
        | nix::fcntl::OFlag::O_CLOEXEC;
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    match nix::fcntl::open(path.as_str(), flags, nix::sys::stat::Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd).read(head).unwrap_or(0),
        Err(_) => 0,
    }
}

fn answer(listener: &OwnedFd, checker: &Checker, id: u64, pid: u32, verdict: Verdict) {
    match verdict {
        Verdict::Run | Verdict::Escalate => {
            let _ = sys::notif_continue(listener.as_fd(), id);
        }
        Verdict::Deny(reason) => {
            tell_stderr(pid, &reason);
            record(checker, reason);
            let _ = sys::notif_refuse(listener.as_fd(), id, libc::EACCES);
        }
    }
}

fn record(checker: &Checker, reason: String) {
    let mut denied = checker.denied.lock().unwrap_or_else(|e| e.into_inner());
    if denied.len() < 100 && !denied.contains(&reason) {
        denied.push(reason);
    }
}

/// `Execution denied: <reason>` on the process's stderr, as the wrapper
/// prints it (best effort: its fd 2 taken with `pidfd_getfd`).
fn tell_stderr(pid: u32, reason: &str) {
    if let Ok(stderr) = sys::pidfd_open(pid).and_then(|pidfd| sys::pidfd_getfd(&pidfd, 2)) {
        let line = format!("Execution denied: {reason}\n");
        let _ = nix::unistd::write(&stderr, line.as_bytes());
    }
}

/// Reads the path of the exec (and resolves it); argv only later, when
/// needed.
fn read_exec(notif: &libc::seccomp_notif) -> Result<Exec, String> {
    let pid = notif.pid;
    let args = notif.data.args;
    let (dirfd, path_ptr, argv_ptr, flags) = if notif.data.nr == libc::SYS_execve as i32 {
        (libc::AT_FDCWD, args[0], args[1], 0)
    } else {
        (args[0] as i32, args[1], args[2], args[4] as i32)
    };
    let raw_bytes = Memory::of(pid).cstr(path_ptr, MAX_PATH)?;
    let raw = PathBuf::from(OsString::from_vec(raw_bytes.clone()));
    let base = if raw.is_absolute() {
        None
    } else if dirfd == libc::AT_FDCWD {
        Some(read_link(pid, "cwd")?)
    } else {
        Some(read_link(pid, &format!("fd/{dirfd}"))?)
    };
    let path = match base {
        None => raw,
        Some(base) if raw.as_os_str().is_empty() && flags & libc::AT_EMPTY_PATH != 0 => base,
        Some(base) => base.join(raw),
    };
    // The file that runs, found as the kernel finds it for this process
    // (its root, cwd or dirfd, its `/proc/self`, its `/dev`), never by
    // the text in our own view.
    let start = if dirfd == libc::AT_FDCWD {
        view::Start::Cwd
    } else {
        view::Start::Fd(dirfd)
    };
    let found = view::find(
        pid,
        start,
        &PathBuf::from(OsString::from_vec(raw_bytes)),
        flags & libc::AT_EMPTY_PATH != 0,
    );
    let (canonical, file) = match found {
        Some(found) => (Some(found.path), Some(found.file)),
        None => (None, None),
    };
    Ok(Exec {
        pid,
        path,
        canonical,
        file,
        argv_ptr,
    })
}

/// The exec as an [`ExecRequest`]: argv and cwd read from the process.
fn full_request(exec: &Exec) -> Result<ExecRequest, String> {
    let argv = Memory::of(exec.pid).argv(exec.argv_ptr)?;
    let cwd = read_link(exec.pid, "cwd")?;
    Ok(ExecRequest {
        file: exec
            .canonical
            .clone()
            .unwrap_or_else(|| exec.path.clone())
            .into_os_string(),
        argv,
        env: Vec::new(),
        cwd: cwd.into_os_string(),
    })
}

fn read_link(pid: u32, what: &str) -> Result<PathBuf, String> {
    std::fs::read_link(format!("/proc/{pid}/{what}"))
        .map_err(|e| format!("/proc/{pid}/{what}: {e}"))
}

/// Set once `process_vm_readv` is refused (a container's seccomp profile
/// allows it only with `CAP_SYS_PTRACE`, Docker's default among them): from
/// then on memory is read through `/proc/<pid>/mem`, which the kernel grants
/// on the same ptrace access check, outside that filter.
static VM_READV_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One process's memory, read for one notification.
struct Memory {
    pid: u32,
    /// `/proc/<pid>/mem`, opened at the first read that needs it.
    file: Option<std::fs::File>,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        Memory { pid, file: None }
    }

    /// Reads up to `buf.len()` bytes at `addr`, never across a 4 KiB
    /// boundary in one go (a string may end right before an unmapped page).
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, String> {
        use std::sync::atomic::Ordering;
        let pid = self.pid;
        let room = 4096 - (addr % 4096) as usize;
        let len = buf.len().min(room);
        let buf = &mut buf[..len];
        let read = if VM_READV_REFUSED.load(Ordering::Relaxed) {
            None
        } else {
            let mut local = [std::io::IoSliceMut::new(&mut *buf)];
            let remote = [nix::sys::uio::RemoteIoVec {
                base: addr as usize,
                len,
            }];
            match nix::sys::uio::process_vm_readv(Pid::from_raw(pid as i32), &mut local, &remote) {
                Err(Errno::EPERM | Errno::ENOSYS) => {
                    VM_READV_REFUSED.store(true, Ordering::Relaxed);
                    None
                }
                other => Some(other.map_err(io::Error::from)),
            }
        };
        let read = match read {
            Some(read) => read,
            None => self.proc_mem().and_then(|mem| {
                use std::os::unix::fs::FileExt;
                mem.read_at(buf, addr)
            }),
        };
        match read {
            Ok(0) => Err("nothing readable there".into()),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("reading the memory of process {pid}: {e}")),
        }
    }

    fn proc_mem(&mut self) -> io::Result<&std::fs::File> {
        if self.file.is_none() {
            self.file = Some(std::fs::File::open(format!("/proc/{}/mem", self.pid))?);
        }
        Ok(self.file.as_ref().expect("just opened"))
    }

    fn cstr(&mut self, mut addr: u64, max: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() <= max {
            let n = self.read(addr, &mut buf)?;
            if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            addr += n as u64;
        }
        Err(format!("a string longer than {max} bytes"))
    }

    fn argv(&mut self, mut addr: u64) -> Result<Vec<OsString>, String> {
        let mut argv = Vec::new();
        let mut total = 0;
        if addr == 0 {
            return Ok(argv);
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = self.read(addr, &mut buf)?;
            let whole = n - n % 8;
            if whole == 0 {
                return Err("argv is not aligned".into());
            }
            for chunk in buf[..whole].chunks_exact(8) {
                let ptr = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
                if ptr == 0 {
                    return Ok(argv);
                }
                let arg = self.cstr(ptr, MAX_ARG)?;
                total += arg.len() + 1;
                if total > MAX_ARGV_BYTES || argv.len() >= MAX_ARGS {
                    return Err("argv larger than the kernel allows".into());
                }
                argv.push(OsString::from_vec(arg));
            }
            addr += whole as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of reading a process's memory give the same bytes: the
    /// `/proc/<pid>/mem` one is what runs where `process_vm_readv` is
    /// filtered (Docker's default profile; the docker ci step runs it).
    #[test]
    fn proc_mem_reads_what_process_vm_readv_reads() {
        let text = std::ffi::CString::new("a string on the heap, read back").unwrap();
        let addr = text.as_ptr() as u64;
        let pid = std::process::id();
        let mut buf = [0u8; 64];
        let mut mem = Memory::of(pid);
        let n = mem.proc_mem().unwrap().read_at(&mut buf, addr);
        use std::os::unix::fs::FileExt;
        let by_file = buf[..n.unwrap()].to_vec();
        assert!(by_file.starts_with(text.as_bytes()));
        assert_eq!(
            Memory::of(pid).cstr(addr, MAX_PATH).unwrap(),
            text.as_bytes()
        );
    }
}
