//! The only module with `unsafe`: thin, checked wrappers over the raw
//! syscalls the sandbox needs and std does not offer (`prctl`,
//! `landlock_create_ruleset` for the ABI version, `unshare`, `mount`, the
//! new mount API (`open_tree`, `move_mount`, `mount_setattr`), `capset`,
//! `fork`, signal handlers, `statvfs`, `geteuid`/`getegid`).
//!
//! Every wrapper turns `-1` into [`io::Error::last_os_error`] and never
//! keeps a pointer beyond the call.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
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
    remount_read_only(path)
}

/// Bind-mounts `path` onto itself (writable, as it was), making it a mount
/// point.
pub(crate) fn bind_self(path: &Path) -> io::Result<()> {
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
    })
}

/// Remounts the mount at `path` read-only, keeping its other per-mount
/// flags (see [`bind_read_only`]).
pub(crate) fn remount_read_only(path: &Path) -> io::Result<()> {
    remount_read_only_with(path, 0)
}

/// [`remount_read_only`], adding the per-mount flags `extra` (flags can be
/// added in a user namespace, never cleared).
pub(crate) fn remount_read_only_with(path: &Path, extra: libc::c_ulong) -> io::Result<()> {
    let c_path = cstring(path)?;
    let kept = mount_flags(&c_path)?;
    // SAFETY: `c_path` is a valid nul-terminated string; for MS_REMOUNT the
    // source is ignored and may be null, fstype and data too.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c_path.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | kept | extra,
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

/// `MOUNT_ATTR_RDONLY` from `linux/mount.h`.
const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `AT_RECURSIVE` from `linux/fcntl.h`.
const AT_RECURSIVE: libc::c_uint = 0x8000;
/// `OPEN_TREE_CLONE` from `linux/mount.h`.
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `MOVE_MOUNT_F_EMPTY_PATH` from `linux/mount.h`.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `struct mount_attr` from `linux/mount.h`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes the mount at `path` and every mount below it read-only
/// (`mount_setattr(2)` with `AT_RECURSIVE`, Linux 5.12).
pub(crate) fn make_tree_read_only(path: &Path) -> io::Result<()> {
    let c_path = cstring(path)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `c_path` is a valid nul-terminated string and `attr` a valid
    // `struct mount_attr` of the size passed, both alive for the call; the
    // kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A detached copy of the mount tree at `path` (`open_tree(2)` with
/// `OPEN_TREE_CLONE | AT_RECURSIVE`, Linux 5.2), to be attached elsewhere
/// with [`attach_tree`].
pub(crate) fn clone_tree(path: &Path) -> io::Result<OwnedFd> {
    let c_path = cstring(path)?;
    // SAFETY: `c_path` is a valid nul-terminated string alive for the call;
    // the kernel returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches a tree from [`clone_tree`] at `path` (`move_mount(2)`).
pub(crate) fn attach_tree(tree: &OwnedFd, path: &Path) -> io::Result<()> {
    let c_path = cstring(path)?;
    let empty = c"";
    // SAFETY: `tree` is an open detached-mount fd, both strings are valid
    // and nul-terminated for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c_path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `mount(source, target, fstype, flags, data)` for fresh filesystems
/// (`devpts`, `proc`, `tmpfs`) and binds.
pub(crate) fn mount(
    source: &std::ffi::CStr,
    target: &Path,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) -> io::Result<()> {
    let c_target = cstring(target)?;
    // SAFETY: every pointer is a valid nul-terminated string (or null where
    // the kernel allows it) alive for the duration of the call.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            c_target.as_ptr(),
            fstype.map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            data.map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    })
}

/// `_LINUX_CAPABILITY_VERSION_3` and its two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Empties the effective, permitted and inheritable capability sets of the
/// calling thread (`capset(2)`).
pub(crate) fn clear_capabilities() -> io::Result<()> {
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: `header` and `data` are valid for the version-3 layout (one
    // header, two data structs), alive for the call; the kernel reads them.
    let ret =
        unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The effective capability set of the calling thread (bit N: capability N).
pub(crate) fn effective_capabilities() -> io::Result<u64> {
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: as in `clear_capabilities`; the kernel writes the two data
    // structs, which are ours and large enough.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &header as *const CapHeader,
            data.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// `prctl(option, arg2)` with the other arguments zero.
pub(crate) fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the prctl options used here take integer arguments only; the
    // unused ones must be zero, as passed.
    check(unsafe { libc::prctl(option, arg2, 0, 0, 0) })
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
pub(crate) fn clear_ambient_capabilities() -> io::Result<()> {
    // SAFETY: integer arguments only, the unused ones zero.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
}

/// Closes every fd from `first` up, but those in `keep` (sorted).
pub(crate) fn close_fds_from(first: RawFd, keep: &[RawFd]) {
    let mut from = first;
    for &k in keep.iter().filter(|&&k| k >= first) {
        if k > from {
            close_range(from, k - 1);
        }
        from = k + 1;
    }
    close_range(from, RawFd::MAX);
}

fn close_range(first: RawFd, last: RawFd) {
    // SAFETY: close_range takes integers and only closes fds of this
    // process, none of which is borrowed by live Rust objects that would use
    // it afterwards (callers keep what they need in `keep`).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0,
        )
    };
    if ret < 0 {
        // Kernels before 5.9: close one by one up to a sane bound.
        for fd in first..last.min(4096) {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// Which side of a [`fork`] this is.
pub(crate) enum Forked {
    Child,
    Parent(nix::unistd::Pid),
}

/// `fork(2)`. Callers are the single-threaded launcher (its `apply`
/// refuses a multi-threaded process), so the child may allocate and do
/// anything the parent could.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: the calling process is single-threaded (see above), so no lock
    // or allocator state can be left inconsistent in the child.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
    }
}

extern "C" fn noop_handler(_: libc::c_int) {}

/// Gives `signal` a handler that does nothing. A pid namespace's init only
/// receives signals it handles, so the init that reads them from a
/// signalfd (with the signals blocked) must still have a handler.
pub(crate) fn set_noop_handler(signal: nix::sys::signal::Signal) -> io::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(noop_handler),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler is async-signal-safe (it does nothing).
    unsafe { sigaction(signal, &action) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Restores the default disposition of `signal`.
pub(crate) fn set_default_handler(signal: nix::sys::signal::Signal) -> io::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing the default disposition involves no handler code.
    unsafe { sigaction(signal, &action) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Installs the classic-BPF `program` as a seccomp filter of the calling
/// thread (inherited across fork and exec; requires `no_new_privs`), with
/// a user-notification listener when `listener`, which it returns.
pub(crate) fn seccomp_filter(
    program: &[libc::sock_filter],
    listener: bool,
) -> io::Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| io::Error::other("filter too long"))?,
        filter: program.as_ptr().cast_mut(),
    };
    let flags = if listener {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    // SAFETY: `prog` points at `program`, alive for the call; the kernel
    // copies the filter and returns 0, a new fd (with the listener flag)
    // or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    if !listener {
        return Ok(None);
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
}

/// Makes stdin, a terminal, the controlling terminal of the calling
/// process, which must just have become a session leader.
pub(crate) fn set_controlling_terminal() -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal the
    // terminal from another session) and touches no memory of ours.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pseudo-terminal from `/dev/ptmx` (in a mount namespace with a private
/// `devpts`, its instance): (master, slave), close-on-exec, of the size
/// given, the slave not made our controlling terminal.
pub(crate) fn open_pty(rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    let master = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/ptmx")?;
    let master = OwnedFd::from(master);
    let unlock: libc::c_int = 0;
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSPTLCK reads one int and TIOCSWINSZ one winsize from the
    // pointers we pass; the fd is ours and open.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) < 0
            || libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: TIOCGPTPEER (Linux 4.13) takes open flags and returns a new
    // fd for the slave of this very master (no path lookup to race).
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    Ok((master, slave))
}

/// Puts `fd` on stdin, stdout and stderr.
pub(crate) fn stdio_to(fd: &OwnedFd) -> io::Result<()> {
    for target in 0..3 {
        // SAFETY: dup2 onto our own stdio numbers, in the single-threaded
        // process about to exec; the old ones are not used afterwards.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Brings the network interface `name` up in the calling process's network
/// namespace (`SIOCGIFFLAGS`, then `SIOCSIFFLAGS` with `IFF_UP`), through
/// `socket` (any socket made in that namespace).
pub(crate) fn interface_up(socket: &OwnedFd, name: &std::ffi::CStr) -> io::Result<()> {
    let bytes = name.to_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: `ifreq` is plain data (a name array and a union of plain
    // fields); all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, &b) in req.ifr_name.iter_mut().zip(bytes) {
        *slot = b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into
    // `req`, ours and of the size the kernel expects, alive for the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds the flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`, as above.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one message of one byte and at most one fd on `socket`
/// (close-on-exec); `None` at the end. Every other fd that came along is
/// closed.
pub(crate) fn recv_tagged_fd(socket: &OwnedFd) -> io::Result<Option<(u8, OwnedFd)>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
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
    let bytes = msg.bytes;
    let first = received.into_iter().next();
    Ok(match (bytes, first) {
        (1, Some(fd)) => Some((byte[0], fd)),
        _ => None,
    })
}
