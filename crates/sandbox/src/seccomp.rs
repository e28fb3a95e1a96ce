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

/// Installs the filter on the calling thread (inherited across fork and
/// exec). Requires `no_new_privs`. `deny_connect`: refuse `connect` too
/// (Landlock cannot restrict named UNIX sockets on this kernel).
pub(crate) fn deny_network_sockets(deny_connect: bool) -> Result<(), Error> {
    let program = build(deny_connect).map_err(|e| Error::Seccomp(e.to_string()))?;
    seccompiler::apply_filter(&program).map_err(|e| Error::Seccomp(e.to_string()))
}

fn build(deny_connect: bool) -> Result<BpfProgram, seccompiler::Error> {
    let arg = |index, op, value| SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value);
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
    let mut denied: Vec<(i64, Vec<SeccompRule>)> = vec![
        (libc::SYS_socket, socket_rules()?),
        (libc::SYS_socketpair, socket_rules()?),
        (libc::SYS_io_uring_setup, Vec::new()),
    ];
    if deny_connect {
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
        for deny_connect in [false, true] {
            let program = super::build(deny_connect).expect("filter builds");
            assert!(!program.is_empty());
        }
    }
}
