//! The namespaces a sandboxed call runs in: mount (a read-only view of the
//! filesystem, see `rootfs`), pid (nothing outside is visible or
//! signallable, and everything dies with its init), IPC (no System V IPC or
//! POSIX message queues shared with outside processes), and network when
//! the network is off (only a loopback device, no abstract UNIX socket of
//! the host).
//!
//! With `CAP_SYS_ADMIN` (a root server) they are created directly. Without
//! it, inside a new user namespace that maps only our own uid and gid (so
//! `id`, file ownership and git's ownership checks see no change; files of
//! other users show as `nobody`). When neither works (user namespaces
//! disabled, Ubuntu's AppArmor restriction, Docker's default seccomp
//! profile) the call runs without any of them and [`Entered::missing`]
//! says why: the rest of the sandbox (Landlock, seccomp, capabilities, the
//! subreaper) still applies.
//!
//! **Invariant:** called once, by the single-threaded launcher, before it
//! forks the namespace's init; everything it enters is inherited by the
//! sandboxed program and cannot be left by it (it has no capabilities in
//! any namespace after exec).

use std::fs;
use std::io;
use std::path::Path;

use nix::sched::{CloneFlags, unshare};

use crate::sys;

/// The namespaces entered (all or none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entered {
    /// A user namespace mapping our own ids (unprivileged server).
    pub user: bool,
    /// Mount, pid and IPC namespaces (and network when asked).
    pub private: bool,
    pub net: bool,
    /// Why no namespace could be had, when `private` is false.
    pub missing: Option<String>,
}

/// `CAP_SYS_ADMIN`'s number.
const CAP_SYS_ADMIN: u32 = 21;

/// Enters new mount, pid and IPC namespaces (and network when
/// `private_network`), inside a user namespace unless the process has
/// `CAP_SYS_ADMIN`. The pid namespace applies to children only: the caller
/// must fork its init next.
pub(crate) fn enter(private_network: bool) -> Entered {
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC;
    if private_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let privileged =
        sys::effective_capabilities().is_ok_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0);
    let entered = |user| Entered {
        user,
        private: true,
        net: private_network,
        missing: None,
    };
    // A root refused by a seccomp profile tries as an unprivileged user would.
    if privileged && unshare(flags).is_ok() {
        return entered(false);
    }
    let (uid, gid) = sys::effective_ids();
    match unshare(flags | CloneFlags::CLONE_NEWUSER) {
        Ok(()) => match map_own_ids(uid, gid) {
            Ok(()) => entered(true),
            Err(e) => Entered {
                missing: Some(format!(
                    "cannot map uid {uid} and gid {gid} in a new user namespace: {e}"
                )),
                ..Entered::default()
            },
        },
        Err(e) => Entered {
            missing: Some(format!(
                "cannot create namespaces (unshare: {e}); unprivileged user namespaces are disabled \
                 or restricted here (sysctl kernel.unprivileged_userns_clone, Ubuntu's \
                 kernel.apparmor_restrict_unprivileged_userns, or a container's seccomp profile)"
            )),
            ..Entered::default()
        },
    }
}

/// Maps our uid and gid to themselves.
fn map_own_ids(uid: u32, gid: u32) -> io::Result<()> {
    fs::write(Path::new("/proc/self/uid_map"), format!("{uid} {uid} 1\n"))?;
    fs::write(Path::new("/proc/self/setgroups"), "deny\n")?;
    fs::write(Path::new("/proc/self/gid_map"), format!("{gid} {gid} 1\n"))
}
