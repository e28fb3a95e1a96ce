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
//! would bypass the rules).
//!
//! This module also joins the sandbox's errno filters (this one, `setid`,
//! `keyring`, `prlimit`) into the one program the kernel runs
//! ([`install`]): each `seccomp(2)` filter costs its own verification and
//! JIT at start-up (about 30 µs each, plus its length) and its own run on
//! every syscall after. The joined program is their concatenation, each
//! "allow" of one a jump to the start of the next, so a syscall gets the
//! first refusal any of them gives, and is allowed only when all of them
//! allow it. It starts by refusing every x32 syscall (`ENOSYS`; on
//! x86_64, the same architecture to a filter, with numbers that no rule
//! names): no x32 program exists in practice, and the rules need not be
//! written twice.

use std::collections::BTreeMap;

use std::os::fd::OwnedFd;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::Error;
use crate::bpf::{self, Asm, Program};

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

/// The network filter (for [`install`]).
pub(crate) fn network_filter(sockets: Sockets) -> Result<Program, Error> {
    build(sockets).map_err(|e| Error::Seccomp(e.to_string()))
}

fn build(sockets: Sockets) -> Result<Program, seccompiler::Error> {
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
/// matches (an empty list: always), allowing everything else. The one
/// builder of the sandbox's errno filters (`seccomp`, `setid`, `keyring`,
/// `prlimit`); the x32 numbers are refused by [`install`]'s prefix.
pub(crate) fn refusing(
    denied: Vec<(i64, Vec<SeccompRule>)>,
    errno: libc::c_int,
) -> Result<Program, seccompiler::Error> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let rules: BTreeMap<i64, Vec<SeccompRule>> = denied.into_iter().collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )?;
    Ok(bpf::from_seccompiler(BpfProgram::try_from(filter)?))
}

/// x32 syscalls have this bit set in their number (x86_64 only).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Installs `filters` as one seccomp program on the calling thread
/// (inherited across fork and exec; requires `no_new_privs`).
pub(crate) fn install(filters: Vec<Program>) -> Result<(), Error> {
    crate::sys::seccomp_filter(&join(filters), false)
        .map(drop)
        .map_err(|e| Error::Seccomp(e.to_string()))
}

/// As [`install`], with a user-notification listener (the exec check's
/// filter among `filters`); returns the listener.
pub(crate) fn install_with_listener(filters: Vec<Program>) -> std::io::Result<OwnedFd> {
    crate::sys::seccomp_filter(&join(filters), true)?
        .ok_or_else(|| std::io::Error::other("the kernel returned no listener"))
}

/// The architecture check and the x32 prefix, then `filters` one after
/// another, each one's "allow" (but the last's) turned into a jump to the
/// start of the next. Every path through a filter ends in a return, and
/// jumps stay inside their filter (the lengths do not change), so control
/// leaves a filter only by a refusal or into the next one.
fn join(filters: Vec<Program>) -> Program {
    let mut asm = Asm::new();
    let (native, native_abi) = (asm.label(), asm.label());
    asm.load(bpf::ARCH);
    asm.jump_eq(bpf::AUDIT_ARCH, native);
    asm.ret(libc::SECCOMP_RET_KILL_PROCESS);
    asm.place(native);
    if cfg!(target_arch = "x86_64") {
        let x32 = asm.label();
        asm.load(bpf::NR);
        asm.jump_ge(X32_SYSCALL_BIT, x32);
        asm.jump(native_abi);
        asm.place(x32);
        asm.ret(bpf::errno(libc::ENOSYS));
    }
    asm.place(native_abi);
    let mut joined = asm.finish();
    let allow = (libc::BPF_RET | libc::BPF_K) as u16;
    let last = filters.len().saturating_sub(1);
    for (n, mut filter) in filters.into_iter().enumerate() {
        if n != last {
            let len = filter.len();
            for (i, insn) in filter.iter_mut().enumerate() {
                if insn.code == allow && insn.k == libc::SECCOMP_RET_ALLOW {
                    insn.code = (libc::BPF_JMP | libc::BPF_JA) as u16;
                    insn.k = (len - i - 1) as u32;
                }
            }
        }
        joined.extend(filter);
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Only the last filter allows; every other one's allows lead to the
    /// first instruction of the next, and no jump leaves the program.
    #[test]
    fn joined_filters_allow_only_at_the_end() {
        let a = build(Sockets {
            unix_by_landlock: false,
            loopback: false,
        })
        .unwrap();
        let b = crate::setid::filter().unwrap();
        let joined = join(vec![a.clone(), b.clone()]);
        let prefix = joined.len() - a.len() - b.len();
        crate::bpf::tests::assert_well_formed(&joined);
        let allow = |insn: &libc::sock_filter| {
            u32::from(insn.code) == libc::BPF_RET | libc::BPF_K && insn.k == libc::SECCOMP_RET_ALLOW
        };
        let second = prefix + a.len();
        for (i, insn) in joined.iter().enumerate() {
            let ja = u32::from(insn.code) == libc::BPF_JMP | libc::BPF_JA;
            if ja && (prefix..second).contains(&i) && allow(&a[i - prefix]) {
                assert_eq!(i + 1 + insn.k as usize, second, "{i}");
            }
            if allow(insn) {
                assert!(i >= second, "an allow at {i}, before the last filter");
            }
        }
    }
}
