//! `probe`: the sandbox-boundary attacks of the red-team suite (issue 13),
//! one raw syscall each, so that a refusal shows its errno rather than some
//! tool's paraphrase. The shell tool starts it inside the sandbox; the
//! tests also run it outside, as the control that proves each attack works
//! where nothing stops it.
//!
//! Every subcommand prints `NAME=ok`, `NAME=ok:DETAIL` or `NAME=err:ERRNO`
//! lines on stdout (and exits 0: the lines are the result):
//!
//! - `connect PATH` / `connect-abstract NAME`: a stream connection to a
//!   named or abstract UNIX socket, sending `probe` when it connects.
//! - `sendto TYPE PATH`: a datagram to the named socket PATH from a new
//!   AF_UNIX socket of TYPE (`dgram`, `raw`: the kernel makes `SOCK_RAW`
//!   a datagram socket), by `sendto` and by `sendmsg`.
//! - `sendto-fd FD PATH`: the same through an inherited socket (the
//!   session socket `$CODEX_ESCALATE_SOCKET`), with PATH as the address.
//! - `self-socket PATH`: a stream socket bound at PATH here, and a
//!   connection to it (what Landlock ABI 9 allows and below it the seccomp
//!   filter refuses).
//! - `tcp PORT`: a TCP connection to 127.0.0.1:PORT, sending `probe`.
//! - `pair-connect PATH`: a connected `socketpair` (stream) whose peer is
//!   then closed, and a `connect` of the end left to the named socket
//!   PATH (the one kind of UNIX socket the shared loopback leaves below
//!   Landlock ABI 9).
//! - `swap A B STOP`: exchanges the names A and B (`renameat2`
//!   `RENAME_EXCHANGE`) again and again until the file STOP exists (at
//!   most a minute); `ok:N` exchanges.
//! - `kill PID SIG`: `kill(2)` (signal 0 checks reachability).
//! - `read PATH`: open read-only and read; `ok:N` bytes (and whether the
//!   text `RT_SECRET` was among them).
//! - `list DIR`: the number of entries.
//! - `links DIR`: how many of the symlinks in DIR (`/proc/PID/fd`) can be
//!   read, of how many: `ok:READ/ALL`.
//! - `tty PATH`: open a terminal read-write, write to it, inject input
//!   with `TIOCSTI`, read from it.
//! - `own-pty`: a pseudo-terminal pair made here, a round trip through it.
//! - `setxattr PATH`: `user.redteam` on PATH.
//! - `shm ID`: attach a System V shared memory segment, read, write.
//! - `mq NAME`: open a POSIX message queue and send to it.
//! - `setcap PATH`: in a new user namespace (root mapped to our uid), give
//!   PATH the file capability `cap_setuid+ep`.
//! - `caps`: the capability sets of `/proc/self/status`.
//! - `fds`: this process's open fds and what they are (`fd=N:TARGET`).

use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, connect, sendmsg, sendto, socket,
};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let arg = |i: usize| -> String {
        args.get(i)
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match arg(0).as_str() {
        "connect" => report("connect", connect_to(&UnixAddr::new(arg(1).as_str()))),
        "connect-abstract" => report(
            "connect-abstract",
            connect_to(&UnixAddr::new_abstract(arg(1).as_bytes())),
        ),
        "sendto" => datagrams(&arg(1), &arg(2)),
        "self-socket" => report("self-socket", self_socket(&arg(1))),
        "sendto-fd" => match arg(1).parse() {
            Ok(fd) => match sys::borrow(fd) {
                Some(fd) => send_both("sendto-fd", fd, &arg(2)),
                None => report("sendto-fd", Err(Errno::EBADF)),
            },
            Err(_) => report("sendto-fd", Err(Errno::EINVAL)),
        },
        "tcp" => report("tcp", tcp(&arg(1))),
        "pair-connect" => report("pair-connect", pair_connect(&arg(1))),
        "swap" => report("swap", swap(&arg(1), &arg(2), &arg(3))),
        "kill" => {
            let pid = arg(1).parse().unwrap_or(0);
            let signal = arg(2).parse().unwrap_or(0);
            report("kill", sys::kill(pid, signal).map(|()| String::new()));
        }
        "read" => report("read", read(&arg(1))),
        "list" => report(
            "list",
            std::fs::read_dir(arg(1))
                .map(|d| d.count().to_string())
                .map_err(errno),
        ),
        "links" => report("links", links(&arg(1))),
        "tty" => tty(&arg(1)),
        "own-pty" => report("own-pty", own_pty()),
        "setxattr" => report("setxattr", sys::setxattr(&arg(1), "user.redteam", b"1")),
        "shm" => report("shm", sys::shm(arg(1).parse().unwrap_or(-1))),
        "mq" => report("mq", sys::mq(&arg(1))),
        "setcap" => report("setcap", setcap(&arg(1))),
        "caps" => caps(),
        "fds" => fds(),
        other => {
            eprintln!("probe: unknown subcommand {other:?}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn report(name: &str, result: Result<String, Errno>) {
    match result {
        Ok(detail) if detail.is_empty() => println!("{name}=ok"),
        Ok(detail) => println!("{name}=ok:{detail}"),
        Err(e) => println!("{name}=err:{e:?}"),
    }
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

fn connect_to(addr: &nix::Result<UnixAddr>) -> Result<String, Errno> {
    let addr = addr.as_ref().map_err(|e| *e)?;
    let s = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(s.as_raw_fd(), addr)?;
    nix::unistd::write(&s, b"probe")?;
    Ok(String::new())
}

fn tcp(port: &str) -> Result<String, Errno> {
    use std::io::Write;
    let port: u16 = port.parse().map_err(|_| Errno::EINVAL)?;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(errno)?;
    s.write_all(b"probe").map_err(errno)?;
    Ok(String::new())
}

fn pair_connect(path: &str) -> Result<String, Errno> {
    let (a, b) = nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    drop(b);
    connect(a.as_raw_fd(), &UnixAddr::new(path)?)?;
    nix::unistd::write(&a, b"probe")?;
    Ok(String::new())
}

fn self_socket(path: &str) -> Result<String, Errno> {
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(errno)?;
    let r = connect_to(&UnixAddr::new(path));
    drop(listener);
    let _ = std::fs::remove_file(path);
    r
}

/// A datagram socket of `kind` (`dgram` or `raw`), then `sendto` and
/// `sendmsg` to `path`.
fn datagrams(kind: &str, path: &str) {
    let ty = match kind {
        "raw" => SockType::Raw,
        _ => SockType::Datagram,
    };
    let name = format!("socket-{kind}");
    match socket(AddressFamily::Unix, ty, SockFlag::SOCK_CLOEXEC, None) {
        Ok(s) => {
            report(&name, Ok(String::new()));
            send_both(&format!("sendto-{kind}"), s.as_fd(), path);
        }
        Err(e) => report(&name, Err(e)),
    }
}

fn send_both(name: &str, fd: BorrowedFd<'_>, path: &str) {
    let addr = match UnixAddr::new(path) {
        Ok(addr) => addr,
        Err(e) => return report(name, Err(e)),
    };
    let msg = format!("{name} via sendto");
    report(
        name,
        sendto(fd.as_raw_fd(), msg.as_bytes(), &addr, MsgFlags::empty()).map(|n| n.to_string()),
    );
    let msg = format!("{name} via sendmsg");
    let iov = [std::io::IoSlice::new(msg.as_bytes())];
    report(
        &format!("{name}-msg"),
        sendmsg(fd.as_raw_fd(), &iov, &[], MsgFlags::empty(), Some(&addr)).map(|n| n.to_string()),
    );
}

fn read(path: &str) -> Result<String, Errno> {
    let mut f = std::fs::File::open(path).map_err(errno)?;
    let mut buf = vec![0u8; 1 << 16];
    let n = f.read(&mut buf).map_err(errno)?;
    let secret = buf[..n].windows(9).any(|w| w == b"RT_SECRET");
    Ok(format!("{n}{}", if secret { ":secret" } else { "" }))
}

fn swap(a: &str, b: &str, stop: &str) -> Result<String, Errno> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut n = 0u64;
    while !std::path::Path::new(stop).exists() && std::time::Instant::now() < deadline {
        sys::exchange(a, b)?;
        n += 1;
    }
    // Back as they were.
    if n % 2 == 1 {
        sys::exchange(a, b)?;
    }
    Ok(n.to_string())
}

fn links(dir: &str) -> Result<String, Errno> {
    let entries: Vec<_> = std::fs::read_dir(dir).map_err(errno)?.flatten().collect();
    let read = entries
        .iter()
        .filter(|e| std::fs::read_link(e.path()).is_ok())
        .count();
    Ok(format!("{read}/{}", entries.len()))
}

fn tty(path: &str) {
    let flags = nix::fcntl::OFlag::O_RDWR
        | nix::fcntl::OFlag::O_NOCTTY
        | nix::fcntl::OFlag::O_NONBLOCK
        | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = match nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => return report("tty-open", Err(e)),
    };
    report("tty-open", Ok(String::new()));
    report(
        "tty-write",
        nix::unistd::write(&fd, b"rt-written\n").map(|n| n.to_string()),
    );
    report("tty-tiocsti", sys::tiocsti(fd.as_fd(), b"rt-injected\n"));
    let mut buf = [0u8; 256];
    report(
        "tty-read",
        nix::unistd::read(&fd, &mut buf).map(|n| n.to_string()),
    );
}

/// A pty pair of our own: what the slave writes, the master reads.
fn own_pty() -> Result<String, Errno> {
    let (master, slave_name) = sys::open_pty()?;
    let slave = nix::fcntl::open(
        slave_name.as_str(),
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )?;
    nix::unistd::write(&slave, b"pty-round-trip")?;
    // Bounded: a pty that never delivers must not hang the call.
    let mut polled = [nix::poll::PollFd::new(
        master.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    if nix::poll::poll(&mut polled, nix::poll::PollTimeout::from(5000u16))? == 0 {
        return Err(Errno::ETIMEDOUT);
    }
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(&master, &mut buf)?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    Ok(format!("{slave_name}:{}", text.trim()))
}

fn setcap(path: &str) -> Result<String, Errno> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    sys::unshare_user()?;
    let write = |file: &str, text: String| std::fs::write(file, text).map_err(errno);
    write("/proc/self/uid_map", format!("0 {uid} 1\n"))?;
    write("/proc/self/setgroups", "deny\n".into())?;
    write("/proc/self/gid_map", format!("0 {gid} 1\n"))?;
    // VFS_CAP_REVISION_2, CAP_SETUID (7) permitted, effective flag.
    let mut value = Vec::new();
    value.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes());
    value.extend_from_slice(&(1u32 << 7).to_le_bytes());
    value.extend_from_slice(&0u32.to_le_bytes());
    value.extend_from_slice(&0u32.to_le_bytes());
    value.extend_from_slice(&0u32.to_le_bytes());
    sys::setxattr(path, "security.capability", &value)
}

fn caps() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status.lines().filter(|l| l.starts_with("Cap")) {
        if let Some((k, v)) = line.split_once(':') {
            println!("{k}={}", v.trim());
        }
    }
}

fn fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return report("fds", Err(Errno::ENOENT));
    };
    let mut fds: Vec<(i32, String)> = dir
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    fds.sort();
    for (fd, target) in fds {
        println!("fd={fd}:{target}");
    }
}

/// The raw calls nix does not wrap; the only place with `unsafe`.
mod sys {
    use super::*;

    pub fn borrow(fd: i32) -> Option<BorrowedFd<'static>> {
        // SAFETY: F_GETFD on any integer is harmless (EBADF when closed).
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return None;
        }
        // SAFETY: the fd is inherited, open (checked above) and never
        // closed by this short-lived process.
        Some(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    pub fn exchange(a: &str, b: &str) -> Result<(), Errno> {
        let a = CString::new(a).map_err(|_| Errno::EINVAL)?;
        let b = CString::new(b).map_err(|_| Errno::EINVAL)?;
        // SAFETY: both paths are nul-terminated and alive for the call.
        Errno::result(unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        })
        .map(drop)
    }

    pub fn unshare_user() -> Result<(), Errno> {
        // SAFETY: unshare takes flags only.
        Errno::result(unsafe { libc::unshare(libc::CLONE_NEWUSER) }).map(drop)
    }

    pub fn kill(pid: i32, signal: i32) -> Result<(), Errno> {
        // SAFETY: kill takes integers only.
        Errno::result(unsafe { libc::kill(pid, signal) }).map(drop)
    }

    pub fn tiocsti(fd: BorrowedFd<'_>, text: &[u8]) -> Result<String, Errno> {
        for byte in text {
            // SAFETY: TIOCSTI reads one byte through the pointer, which
            // points into `text` for the call.
            Errno::result(unsafe {
                libc::ioctl(fd.as_raw_fd(), libc::TIOCSTI, byte as *const u8)
            })?;
        }
        Ok(text.len().to_string())
    }

    pub fn open_pty() -> Result<(OwnedFd, String), Errno> {
        // SAFETY: posix_openpt takes flags and returns a new fd or -1.
        let fd = Errno::result(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) })?;
        // SAFETY: the fd was just returned to us and is owned by nobody else.
        let master = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: grantpt and unlockpt take the master fd.
        Errno::result(unsafe { libc::grantpt(master.as_raw_fd()) })?;
        // SAFETY: as above.
        Errno::result(unsafe { libc::unlockpt(master.as_raw_fd()) })?;
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: ptsname_r writes at most `name.len()` bytes, nul included.
        let r = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
        if r != 0 {
            return Err(Errno::from_raw(r));
        }
        // SAFETY: ptsname_r succeeded, so `name` holds a nul-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
        Ok((master, name.to_string_lossy().into_owned()))
    }

    pub fn setxattr(path: &str, name: &str, value: &[u8]) -> Result<String, Errno> {
        let path =
            CString::new(std::ffi::OsStr::new(path).as_bytes()).map_err(|_| Errno::EINVAL)?;
        let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
        // SAFETY: both strings are nul-terminated and `value` is valid for
        // its length, all alive for the call.
        Errno::result(unsafe {
            libc::setxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        })
        .map(|_| String::new())
    }

    pub fn shm(id: i32) -> Result<String, Errno> {
        // SAFETY: shmat maps the segment anywhere (null address) or fails
        // with (void *)-1.
        let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if p as isize == -1 {
            return Err(Errno::last());
        }
        let mut seen = [0u8; 16];
        // SAFETY: a segment is at least one page; 16 bytes are readable and
        // writable at `p`.
        unsafe {
            std::ptr::copy_nonoverlapping(p.cast::<u8>(), seen.as_mut_ptr(), seen.len());
            std::ptr::copy_nonoverlapping(b"probe-was-here".as_ptr(), p.cast::<u8>(), 14);
            libc::shmdt(p);
        }
        let text = String::from_utf8_lossy(&seen);
        Ok(text.trim_end_matches('\0').to_string())
    }

    pub fn mq(name: &str) -> Result<String, Errno> {
        let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
        // SAFETY: a nul-terminated name; without O_CREAT no further
        // argument is read.
        let q = Errno::result(unsafe { libc::mq_open(name.as_ptr(), libc::O_WRONLY) })?;
        let msg = b"probe-message";
        // SAFETY: `msg` is valid for its length; `q` is the queue just
        // opened, closed right after.
        let sent = Errno::result(unsafe { libc::mq_send(q, msg.as_ptr().cast(), msg.len(), 0) });
        // SAFETY: as above.
        unsafe { libc::mq_close(q) };
        sent.map(|_| String::new())
    }
}
