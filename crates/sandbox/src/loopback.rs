//! A client's private network: a network namespace with only a loopback
//! device, up, shared by every network-off call and background process of
//! one client, so that `curl 127.0.0.1:PORT` in a later call reaches the
//! dev server an earlier one started, and nothing else is reachable.
//!
//! The server makes it once per client with the launcher's `--make-netns
//! FD` mode ([`make`]): a fresh single-threaded process unshares a network
//! namespace (directly with `CAP_SYS_ADMIN`, else inside a new user
//! namespace mapping only our uid and gid, as `namespaces` does), brings
//! `lo` up, sends the namespaces' fds (`/proc/self/ns/user` when it made
//! one, then `/proc/self/ns/net`) on `FD` and exits. The server keeps them
//! for as long as the client lives and hands them to each launcher
//! (`--userns FD --netns FD`), which joins them ([`join`]) instead of
//! unsharing a network namespace of its own.
//!
//! **Invariant:** the socket filter and Landlock let TCP and UDP through
//! only for a launcher that did join the namespace it was handed (decided
//! in the launcher, after `setns` succeeded: [`crate::namespaces::Entered::loopback`]);
//! a launcher that could not join falls back to a network namespace of its
//! own with nothing in it and every non-UNIX socket refused. In the shared
//! namespace the host's UNIX sockets stay out of reach (see `seccomp`):
//! with Landlock ABI 9 by `RESOLVE_UNIX` and its abstract-socket scope,
//! below it by refusing `socket(AF_UNIX, ...)` altogether.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socket,
};

use crate::{namespaces, sys};

/// The namespaces a launcher is handed (`--netns`, `--userns`).
#[derive(Debug)]
pub struct Held {
    /// `/proc/PID/ns/net` of the client's network.
    pub net: OwnedFd,
    /// `/proc/PID/ns/user` of the user namespace that owns it, when it was
    /// made unprivileged.
    pub user: Option<OwnedFd>,
}

/// Tags of the two messages [`make`] sends.
pub const TAG_USER: u8 = b'U';
pub const TAG_NET: u8 = b'N';

/// The `--make-netns FD` mode: makes the client's network (see the module
/// docs) and sends its namespaces on `channel`. Call it in a fresh
/// single-threaded process, which must exit afterwards.
pub fn make(channel: OwnedFd) -> Result<(), String> {
    let privileged = sys::effective_capabilities().is_ok_and(|caps| caps & (1 << 21) != 0);
    // A root refused by a seccomp profile tries as an unprivileged user would.
    let user = if privileged && unshare(CloneFlags::CLONE_NEWNET).is_ok() {
        false
    } else {
        let (uid, gid) = sys::effective_ids();
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(|e| {
            format!(
                "cannot create a network namespace (unshare: {e}); unprivileged user namespaces \
                 are disabled or restricted here"
            )
        })?;
        namespaces::map_own_ids(uid, gid).map_err(|e| {
            format!("cannot map uid {uid} and gid {gid} in a new user namespace: {e}")
        })?;
        true
    };
    let probe = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("cannot make a socket in the new network namespace: {e}"))?;
    sys::interface_up(&probe, c"lo").map_err(|e| format!("cannot bring lo up: {e}"))?;
    drop(probe);
    if user {
        send(&channel, TAG_USER, open_ns("user")?)?;
    }
    send(&channel, TAG_NET, open_ns("net")?)
}

fn open_ns(name: &str) -> Result<OwnedFd, String> {
    std::fs::File::open(format!("/proc/self/ns/{name}"))
        .map(OwnedFd::from)
        .map_err(|e| format!("cannot open /proc/self/ns/{name}: {e}"))
}

fn send(channel: &OwnedFd, tag: u8, fd: OwnedFd) -> Result<(), String> {
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        channel.as_raw_fd(),
        &[IoSlice::new(&[tag])],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(drop)
    .map_err(|e| format!("cannot send the namespace: {e}"))
}

/// How far [`join`] got when it failed.
pub(crate) struct NotJoined {
    /// The user namespace was joined (its capabilities are ours), the
    /// network one not.
    pub user: bool,
    pub error: io::Error,
}

/// Joins `held`: its user namespace first (our euid owns it, so we get
/// its capabilities; the launcher is single-threaded), then its network
/// namespace. `Ok(user)`: both joined, `user` when a user namespace was.
/// The fds are closed here: the command never sees them.
pub(crate) fn join(held: Held) -> Result<bool, NotJoined> {
    let user = match &held.user {
        Some(fd) => {
            setns(fd, CloneFlags::CLONE_NEWUSER).map_err(|e| NotJoined {
                user: false,
                error: e.into(),
            })?;
            true
        }
        None => false,
    };
    setns(&held.net, CloneFlags::CLONE_NEWNET).map_err(|e| NotJoined {
        user,
        error: e.into(),
    })?;
    Ok(user)
}

/// The namespaces [`make`] sent on `channel`, read until its end (the
/// `--make-netns` process exited): a network namespace, and the user
/// namespace owning it when one was made.
pub fn receive(channel: &OwnedFd) -> Result<Held, String> {
    let (mut net, mut user) = (None, None);
    for _ in 0..3 {
        match sys::recv_tagged_fd(channel) {
            Ok(Some((TAG_NET, fd))) => net = Some(fd),
            Ok(Some((TAG_USER, fd))) => user = Some(fd),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Err(format!("cannot receive the namespaces: {e}")),
        }
    }
    Ok(Held {
        net: net.ok_or("no network namespace was sent")?,
        user,
    })
}
