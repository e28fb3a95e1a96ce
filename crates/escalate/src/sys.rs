//! Raw syscalls the supervisor needs and `std` does not wrap: pidfds and the
//! fd shuffling done between `fork` and `exec`. The only module of this
//! crate with `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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
/// be 3 or above: std places stdio itself), and to leave `keep_open`
/// inherited (its close-on-exec flag cleared in the child only).
///
/// Sources are first parked above every target (`F_DUPFD_CLOEXEC` with a
/// minimum of the largest target plus one, which never replaces an open
/// fd), so no source is clobbered by an earlier `dup2`. Parking just above
/// the targets, rather than at a fixed high number, keeps this working
/// under the usual soft `RLIMIT_NOFILE` of 1024 (`F_DUPFD` fails with
/// `EINVAL` at or above the limit). Every fd of the parent above the
/// largest target survives untouched.
pub fn map_fds(cmd: &mut Command, pairs: Vec<(RawFd, RawFd)>, keep_open: Option<RawFd>) {
    let park_at = pairs.iter().map(|&(_, dst)| dst + 1).max().unwrap_or(3);
    let mut parked = vec![-1; pairs.len()];
    // SAFETY: the closure runs between fork and exec in the child. It only
    // calls fcntl and dup2, which are async-signal-safe, and writes into
    // `parked`, allocated before the fork: nothing allocates or locks.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = keep_open
                && libc::fcntl(fd, libc::F_SETFD, 0) < 0
            {
                return Err(io::Error::last_os_error());
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

/// Leaves `fd` inherited by the child (its close-on-exec flag cleared in
/// the child only), in addition to what [`map_fds`] arranges.
pub fn keep_open(cmd: &mut Command, fd: RawFd) {
    // SAFETY: the closure runs between fork and exec in the child and only
    // calls fcntl, which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
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
