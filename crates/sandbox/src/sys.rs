//! The only module with `unsafe`: thin, checked wrappers over the raw
//! syscalls the sandbox needs and std does not offer (`prctl`,
//! `landlock_create_ruleset` for the ABI version, `unshare`, `mount`,
//! `statvfs`, `geteuid`/`getegid`).
//!
//! Every wrapper turns `-1` into [`io::Error::last_os_error`] and never
//! keeps a pointer beyond the call.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a nul byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: execve can no longer grant privileges
/// (setuid bits, file capabilities). Required before an unprivileged
/// seccomp filter, and irreversible.
pub(crate) fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only; the unused
    // ones must be zero, as passed.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
}

/// The Landlock ABI version the running kernel supports, or the errno
/// (`ENOSYS`: not built in, `EOPNOTSUPP`: built in but disabled at boot).
pub(crate) fn landlock_abi_version() -> io::Result<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag the kernel reads neither the (null)
    // attribute pointer nor the (zero) size and creates no descriptor; it
    // only returns the version number or an error.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(u32::try_from(ret).unwrap_or(u32::MAX))
    }
}

/// `unshare(flags)` for the calling process.
pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare only changes kernel-side namespace membership of the
    // calling process; it touches no memory of ours.
    check(unsafe { libc::unshare(flags) })
}

/// Effective user and group ids of the calling process.
pub(crate) fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail and take no arguments.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// `mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)`: stop mount events
/// from propagating between our (new) mount namespace and the original one.
pub(crate) fn make_mounts_private() -> io::Result<()> {
    let root = c"/";
    // SAFETY: `root` is a valid nul-terminated string for the duration of
    // the call; source, type and data may be null for a propagation change.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
}

/// Bind-mounts `path` onto itself and remounts that bind read-only,
/// keeping the per-mount flags (nosuid, nodev, noexec, atime) the original
/// mount has: inside a user namespace those flags are locked, and a remount
/// that drops them fails with `EPERM`.
pub(crate) fn bind_read_only(path: &Path) -> io::Result<()> {
    let c_path = cstring(path)?;
    // SAFETY: source and target are the same valid nul-terminated string,
    // fstype and data may be null for a bind mount.
    check(unsafe {
        libc::mount(
            c_path.as_ptr(),
            c_path.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    })?;
    let kept = mount_flags(&c_path)?;
    // SAFETY: as above; for MS_REMOUNT the source is ignored and may be null.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c_path.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | kept,
            std::ptr::null(),
        )
    })
}

/// `ST_RELATIME` from Linux's `statfs.h`; the libc crate defines it for glibc
/// only, not for musl, whose kernel ABI is the same.
const ST_RELATIME: libc::c_ulong = 0x1000;

/// The locked-in-a-user-namespace mount flags of the mount holding `path`.
fn mount_flags(path: &CString) -> io::Result<libc::c_ulong> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid nul-terminated string and `st` points to
    // writable memory of the right size, which statvfs fills on success.
    check(unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(pairs
        .iter()
        .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
        .fold(0, |acc, (_, ms_flag)| acc | ms_flag))
}

/// Takes ownership of the inherited fd `fd` named by our parent (the
/// launcher report pipe), made close-on-exec at once; `None` when it is
/// not open.
pub(crate) fn take_inherited_fd(fd: libc::c_int) -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    // Only the standard streams below 3: never take those.
    if fd < 3 {
        return None;
    }
    // SAFETY: F_SETFD on an integer fd touches nothing but that fd's flags,
    // and fails with EBADF when it is not open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return None;
    }
    // SAFETY: the fd is open (checked above), was handed to this process by
    // its parent for this one purpose, and nothing else in the process owns
    // or closes it.
    Some(unsafe { std::fs::File::from_raw_fd(fd) })
}
