//! Raw syscalls the supervisor needs and `std` does not wrap: pidfds, the
//! fd shuffling done between `fork` and `exec`, and the lifeline pipes of
//! the launchers. The only module of this crate with `unsafe`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;

use std::os::unix::process::CommandExt;

/// A pidfd for `pid`: readable once the process has exited (before it is
/// reaped), so its pid and process group stay reserved while we look.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Arranges for the child to see `src` at `dst` for each pair (targets must
/// be 3 or above: std places stdio itself), and to leave the fds in
/// `keep_open` inherited (their close-on-exec flag cleared in the child
/// only; they must lie above every target).
///
/// Sources are first parked above every target (`F_DUPFD_CLOEXEC` with a
/// minimum of the largest target plus one, which never replaces an open
/// fd), so no source is clobbered by an earlier `dup2`. Parking just above
/// the targets, rather than at a fixed high number, keeps this working
/// under the usual soft `RLIMIT_NOFILE` of 1024 (`F_DUPFD` fails with
/// `EINVAL` at or above the limit).
///
/// Nothing else is inherited: every other fd from 3 up is made
/// close-on-exec first (`close_range(CLOSE_RANGE_CLOEXEC)`, Linux 5.11),
/// so a stray fd the server inherited from its client (open on a file, a
/// socket or a terminal outside the sandbox) never reaches a sandboxed
/// command or an escalated program.
pub fn map_fds(cmd: &mut Command, pairs: Vec<(RawFd, RawFd)>, keep_open: Vec<RawFd>) {
    let park_at = pairs.iter().map(|&(_, dst)| dst + 1).max().unwrap_or(3);
    let mut parked = vec![-1; pairs.len()];
    // SAFETY: the closure runs between fork and exec in the child. It only
    // calls close_range, fcntl and dup2, which are async-signal-safe, and writes into
    // `parked`, allocated before the fork: nothing allocates or locks.
    unsafe {
        cmd.pre_exec(move || {
            // Older kernels (EINVAL, ENOSYS) keep the stray fds: std opens
            // everything close-on-exec, so only inherited ones can be.
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
            );
            for &fd in &keep_open {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (slot, (src, _)) in parked.iter_mut().zip(&pairs) {
                *slot = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, park_at);
                if *slot < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (slot, (_, dst)) in parked.iter().zip(&pairs) {
                // dup2 clears close-on-exec on the target.
                if libc::dup2(*slot, *dst) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Duplicates `fd` (close-on-exec) to the lowest free number at or above
/// `min`.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a borrowed (hence open) fd returns a new fd
    // or -1; nothing else is touched.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Registers a pidfd with tokio's reactor: it becomes readable when the
/// process exits.
pub fn async_pidfd(pidfd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is open for as long as it lives and always
    // reports the same fd number, which is what `register` requires.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)
}

/// A lifeline (see `sandbox::launch`): the read end for a launcher, the
/// write end for us. Both close-on-exec; the read end is handed to one
/// child through `map_fds`'s `keep_open`, at or above `min`.
pub fn lifeline(min: RawFd) -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let read = if read.as_raw_fd() < min {
        dup_at_least(read.as_fd(), min)?
    } else {
        read
    };
    Ok((read, write))
}

/// Receives one byte and at most one fd on `socket`. Every other fd that
/// came along is closed.
pub fn recv_one_fd(socket: BorrowedFd<'_>, byte: &mut [u8; 1]) -> io::Result<Option<OwnedFd>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut iov = [io::IoSliceMut::new(byte)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received: Vec<OwnedFd> = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel installed these fds for us just now;
                // nobody else owns them.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let mut received = received.into_iter();
    let first = received.next();
    drop(received);
    Ok(first)
}

/// Whether `fd` is a seccomp listener (as the launcher must have sent).
pub fn is_seccomp_listener(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:seccomp notify")
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: the next notification.
pub fn notif_recv(listener: BorrowedFd<'_>) -> Result<libc::seccomp_notif, nix::errno::Errno> {
    // SAFETY: seccomp_notif is plain old data; all zeroes is valid (and the
    // kernel requires the buffer zeroed).
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one `struct seccomp_notif` into `notif`,
    // which is ours and of the right size.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut notif as *mut libc::seccomp_notif,
        )
    };
    if ret < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(notif)
    }
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether notification `id` is still
/// pending (its process alive and still in that syscall).
pub fn notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64, ours.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
            &id as *const u64,
        )
    };
    ret == 0
}

fn notif_send(listener: BorrowedFd<'_>, resp: libc::seccomp_notif_resp) -> io::Result<()> {
    // SAFETY: the ioctl reads one `struct seccomp_notif_resp`, ours.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            &resp as *const libc::seccomp_notif_resp,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Lets the syscall of notification `id` proceed as the process made it.
pub fn notif_continue(listener: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    notif_send(
        listener,
        libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        },
    )
}

/// Fails the syscall of notification `id` with `errno`.
pub fn notif_refuse(listener: BorrowedFd<'_>, id: u64, errno: i32) -> io::Result<()> {
    notif_send(
        listener,
        libc::seccomp_notif_resp {
            id,
            val: 0,
            error: -errno,
            flags: 0,
        },
    )
}

/// `pidfd_getfd(2)`: a duplicate of `fd` of the process behind `pidfd`.
pub fn pidfd_getfd(pidfd: &OwnedFd, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: three integer arguments; the kernel returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// A close-on-exec `AF_UNIX`/`SOCK_SEQPACKET` pair.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Makes the child (Bash started without a launcher) lead a new session
/// whose controlling terminal is its stdin.
pub fn controlling_terminal(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec in the child and only
    // calls setsid and ioctl, which are async-signal-safe; nothing
    // allocates or locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A pseudo-terminal of `rows` × `cols`: (master, slave), both
/// close-on-exec; the slave does not become our controlling terminal.
pub fn openpty(rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds into the ints we pass and reads the
    // winsize; the name and termios pointers may be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openpty just returned these fds to us; nobody else owns them.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
    }
    Ok((master, slave))
}

/// Sets the window size of the terminal whose master is `master` (the
/// foreground process group gets SIGWINCH).
pub fn set_winsize(master: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer we pass; the fd
    // is borrowed, hence open.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Registers `fd` (non-blocking) with tokio's reactor for writing.
pub fn async_writable(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: as in `async_pidfd`: an `OwnedFd` stays open, with the same
    // number, for as long as it lives.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::WRITABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Whether `fd` is the master of a pseudo-terminal (it has a slave
/// number: `TIOCGPTN` works on masters only).
pub fn is_pty_master(fd: &OwnedFd) -> bool {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to the pointer we pass; the
    // fd is ours and open.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut n) == 0 }
}
