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
