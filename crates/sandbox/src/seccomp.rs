//! The seccomp filter used when the network is off. Calls fail with
//! `EACCES`:
//! - `socket` and `socketpair` for every address family but `AF_UNIX` (the
//!   escalation channel and many local tools need it);
//! - `socket` and `socketpair` of `AF_UNIX` datagram sockets: a datagram
//!   socket sends to any named socket given in `sendmsg` (`/dev/log`, a
//!   service's socket outside the sandbox), which no filter can see. That
//!   includes `SOCK_RAW`, which the kernel turns into `SOCK_DGRAM` for
//!   `AF_UNIX`;
//! - below Landlock ABI 9 (no `RESOLVE_UNIX`), `connect` on any socket: it
//!   is the only way to reach a UNIX socket a process outside the sandbox
//!   listens on (a Docker daemon, tmux, ssh-agent, D-Bus), wherever it lies;
//! - `io_uring_setup` (io_uring can open and connect sockets without the
//!   `socket` syscall).
//!
//! In the client's shared loopback network (see `loopback`; only a
//! launcher that joined it asks for [`Sockets::loopback`]) `AF_INET` and
//! `AF_INET6` sockets are allowed too, and `connect` always (TCP needs
//! it): the namespace has nothing but `lo`. Below Landlock ABI 9 the host's
//! named UNIX sockets are then kept out of reach by refusing
//! `socket(AF_UNIX, ...)` altogether: the only UNIX sockets left are
//! `socketpair`s (stream or seqpacket, the execve-wrapper's handshake),
//! which are born connected and cannot connect elsewhere (`EISCONN`, even
//! once the peer is gone), and the inherited ones, all connected (the
//! escalation socket; the server passes no other socket). An escalated
//! program could send the sandbox an unconnected socket over one of them
//! (`SCM_RIGHTS`), but it runs outside the sandbox with the user's rights
//! anyway: the rules granted it.
//!
//! Everything else is allowed. The filter kills the process on a syscall
//! from another architecture (e.g. 32-bit `int 0x80`, where `socketcall`
//! would bypass the rules), and also covers the x32 numbers of the filtered
//! syscalls on x86_64.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::Error;

/// `SOCK_TYPE_MASK`: the type bits of `socket(2)`'s second argument
/// (`SOCK_CLOEXEC` and `SOCK_NONBLOCK` are flags above them).
const SOCK_TYPE_MASK: u64 = 0xf;

/// What the filter leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sockets {
    /// Landlock restricts named UNIX sockets (ABI 9, `RESOLVE_UNIX`).
    pub unix_by_landlock: bool,
    /// The call joined the client's shared loopback network.
    pub loopback: bool,
}

/// Installs the filter on the calling thread (inherited across fork and
/// exec). Requires `no_new_privs`.
pub(crate) fn deny_network_sockets(sockets: Sockets) -> Result<(), Error> {
    let program = build(sockets).map_err(|e| Error::Seccomp(e.to_string()))?;
    seccompiler::apply_filter(&program).map_err(|e| Error::Seccomp(e.to_string()))
}

fn build(sockets: Sockets) -> Result<BpfProgram, seccompiler::Error> {
    let arg = |index, op, value| SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value);
    let family = |op, family: libc::c_int| arg(0, op, family as u64);
    // Not AF_UNIX, or an AF_UNIX datagram socket (`SOCK_RAW` is one too:
    // `unix_create` makes it `SOCK_DGRAM`).
    let socket_rules = || -> Result<Vec<SeccompRule>, seccompiler::Error> {
        let unix_of_type = |ty: libc::c_int| -> Result<SeccompRule, seccompiler::Error> {
            Ok(SeccompRule::new(vec![
                arg(0, SeccompCmpOp::Eq, libc::AF_UNIX as u64)?,
                arg(1, SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK), ty as u64)?,
            ])?)
        };
        Ok(vec![
            SeccompRule::new(vec![arg(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64)?])?,
            unix_of_type(libc::SOCK_DGRAM)?,
            unix_of_type(libc::SOCK_RAW)?,
        ])
    };
    let socket = match (sockets.loopback, sockets.unix_by_landlock) {
        (false, _) => socket_rules()?,
        // Neither UNIX, nor IP; or a UNIX datagram socket.
        (true, true) => {
            let mut rules = socket_rules()?;
            rules[0] = SeccompRule::new(vec![
                family(SeccompCmpOp::Ne, libc::AF_UNIX)?,
                family(SeccompCmpOp::Ne, libc::AF_INET)?,
                family(SeccompCmpOp::Ne, libc::AF_INET6)?,
            ])?;
            rules
        }
        // Not IP: no UNIX socket at all that could connect.
        (true, false) => vec![SeccompRule::new(vec![
            family(SeccompCmpOp::Ne, libc::AF_INET)?,
            family(SeccompCmpOp::Ne, libc::AF_INET6)?,
        ])?],
    };
    let mut denied: Vec<(i64, Vec<SeccompRule>)> = vec![
        (libc::SYS_socket, socket),
        (libc::SYS_socketpair, socket_rules()?),
        (libc::SYS_io_uring_setup, Vec::new()),
    ];
    if !sockets.unix_by_landlock && !sockets.loopback {
        denied.push((libc::SYS_connect, Vec::new()));
    }
    refusing(denied, libc::EACCES)
}

/// A filter failing each listed syscall with `errno` when one of its rules
/// matches (an empty list: always), allowing everything else; on x86_64 the
/// x32 numbers too (the same architecture to the filter). The one builder
/// of the sandbox's errno filters (`seccomp`, `setid`, `keyring`,
/// `prlimit`).
pub(crate) fn refusing(
    denied: Vec<(i64, Vec<SeccompRule>)>,
    errno: libc::c_int,
) -> Result<BpfProgram, seccompiler::Error> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, chain) in denied {
        if cfg!(target_arch = "x86_64") {
            const X32_SYSCALL_BIT: i64 = 0x4000_0000;
            rules.insert(nr | X32_SYSCALL_BIT, chain.clone());
        }
        rules.insert(nr, chain);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )?;
    Ok(BpfProgram::try_from(filter)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_compiles_for_this_architecture() {
        for unix_by_landlock in [false, true] {
            for loopback in [false, true] {
                let sockets = super::Sockets {
                    unix_by_landlock,
                    loopback,
                };
                let program = super::build(sockets).expect("filter builds");
                assert!(!program.is_empty());
            }
        }
    }
}
