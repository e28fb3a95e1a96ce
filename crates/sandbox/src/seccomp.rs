//! The seccomp filter used when the network is off: `socket` and
//! `socketpair` fail with `EACCES` for every address family but `AF_UNIX`
//! (the escalation channel and many local tools need it), and
//! `io_uring_setup` fails too (io_uring can open and connect sockets without
//! the `socket` syscall). Everything else is allowed.
//!
//! The filter kills the process on a syscall from another architecture
//! (e.g. 32-bit `int 0x80`, where `socketcall` would bypass the rules), and
//! also covers the x32 numbers of the filtered syscalls on x86_64.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::Error;

/// Installs the filter on the calling thread (inherited across fork and
/// exec). Requires `no_new_privs`.
pub(crate) fn deny_network_sockets() -> Result<(), Error> {
    let program = build().map_err(|e| Error::Seccomp(e.to_string()))?;
    seccompiler::apply_filter(&program).map_err(|e| Error::Seccomp(e.to_string()))
}

fn build() -> Result<BpfProgram, seccompiler::Error> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let not_unix = || -> Result<Vec<SeccompRule>, seccompiler::Error> {
        Ok(vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        )?])?])
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, conditional) in [
        (libc::SYS_socket, true),
        (libc::SYS_socketpair, true),
        (libc::SYS_io_uring_setup, false),
    ] {
        let chain = if conditional { not_unix()? } else { Vec::new() };
        if cfg!(target_arch = "x86_64") {
            const X32_SYSCALL_BIT: i64 = 0x4000_0000;
            rules.insert(nr | X32_SYSCALL_BIT, chain.clone());
        }
        rules.insert(nr, chain);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )?;
    Ok(BpfProgram::try_from(filter)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_compiles_for_this_architecture() {
        let program = super::build().expect("filter builds");
        assert!(!program.is_empty());
    }
}
