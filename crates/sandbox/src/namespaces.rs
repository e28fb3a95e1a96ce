//! The namespaces a sandboxed call runs in: mount (a read-only view of the
//! filesystem, see `rootfs`), pid (nothing outside is visible or
//! signallable, and everything dies with its init), IPC (no System V IPC or
//! POSIX message queues shared with outside processes), and network when
//! the network is off (only a loopback device, no abstract UNIX socket of
//! the host): the client's shared one when the launcher is handed it (see
//! `loopback`), else one of the call's own, whose loopback stays down.
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
    /// The network namespace is the client's shared loopback (see
    /// `loopback`): joined, not made.
    pub loopback: bool,
    /// Why no namespace could be had, when `private` is false.
    pub missing: Option<String>,
    /// Why the shared loopback handed to the launcher was not joined.
    pub loopback_missing: Option<String>,
}

/// The network namespace a call gets.
#[derive(Debug)]
pub(crate) enum Network {
    /// The host's (network on).
    Host,
    /// One of its own, with nothing in it.
    Private,
    /// The client's (see `loopback`), or one of its own if it cannot be
    /// joined.
    Shared(crate::loopback::Held),
}

/// `CAP_SYS_ADMIN`'s number.
const CAP_SYS_ADMIN: u32 = 21;

/// Enters new mount, pid and IPC namespaces (and the network one asked
/// for), inside a user namespace unless the process has `CAP_SYS_ADMIN`
/// (or the shared loopback's user namespace, joined first). The pid
/// namespace applies to children only: the caller must fork its init next.
pub(crate) fn enter(network: Network) -> Entered {
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC;
    let mut loopback_missing = None;
    match network {
        Network::Host => {}
        Network::Private => flags |= CloneFlags::CLONE_NEWNET,
        Network::Shared(held) => match crate::loopback::join(held) {
            Ok(user) => {
                return match unshare(flags) {
                    Ok(()) => Entered {
                        user,
                        private: true,
                        net: true,
                        loopback: true,
                        ..Entered::default()
                    },
                    // In the client's network but without the rest: a
                    // command there still gets the loosened socket filter,
                    // which the namespace makes safe on its own.
                    Err(e) => Entered {
                        user,
                        net: true,
                        loopback: true,
                        missing: Some(format!(
                            "cannot create mount, pid and ipc namespaces in the client's \
                             network (unshare: {e})"
                        )),
                        ..Entered::default()
                    },
                };
            }
            Err(not) => {
                loopback_missing = Some(format!(
                    "cannot join the client's loopback network (setns: {}); this call has a \
                     network of its own, with nothing in it",
                    not.error
                ));
                flags |= CloneFlags::CLONE_NEWNET;
                if not.user {
                    // Its capabilities are ours: make the rest in it.
                    let mut entered = match unshare(flags) {
                        Ok(()) => Entered {
                            user: true,
                            private: true,
                            net: true,
                            ..Entered::default()
                        },
                        Err(e) => Entered {
                            user: true,
                            missing: Some(format!("cannot create namespaces (unshare: {e})")),
                            ..Entered::default()
                        },
                    };
                    entered.loopback_missing = loopback_missing;
                    return entered;
                }
            }
        },
    }
    let private_network = flags.contains(CloneFlags::CLONE_NEWNET);
    let privileged =
        sys::effective_capabilities().is_ok_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0);
    let entered = |user| Entered {
        user,
        private: true,
        net: private_network,
        loopback: false,
        missing: None,
        loopback_missing: loopback_missing.clone(),
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
                loopback_missing,
                ..Entered::default()
            },
        },
        Err(e) => Entered {
            missing: Some(format!(
                "cannot create namespaces (unshare: {e}); unprivileged user namespaces are disabled \
                 or restricted here (sysctl kernel.unprivileged_userns_clone, Ubuntu's \
                 kernel.apparmor_restrict_unprivileged_userns, or a container's seccomp profile)"
            )),
            loopback_missing,
            ..Entered::default()
        },
    }
}

/// Maps our uid and gid to themselves.
pub(crate) fn map_own_ids(uid: u32, gid: u32) -> io::Result<()> {
    fs::write(Path::new("/proc/self/uid_map"), format!("{uid} {uid} 1\n"))?;
    fs::write(Path::new("/proc/self/setgroups"), "deny\n")?;
    fs::write(Path::new("/proc/self/gid_map"), format!("{gid} {gid} 1\n"))
}
