//! No resource limit of another process is changed from the sandbox.
//!
//! **Invariant: a sandboxed process sets only its own limits.**
//! `prlimit(2)` changes the limits of any process of the same user, and
//! Landlock scopes signals and ptrace, not this. Without a pid namespace
//! the server and every other process of the user are visible, and
//! `prlimit --pid SERVER --nofile=5:5` starves the server (and a user's
//! shell) of file descriptors. A seccomp filter fails `prlimit64` with
//! `EPERM` unless its pid argument is 0 (the caller: how `setrlimit` and
//! `getrlimit` are made by every libc). Always installed; the x32 number
//! on x86_64 too.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::Error;

/// Installs the filter on the calling thread (inherited across fork and
/// exec). Requires `no_new_privs`.
pub(crate) fn deny_other_processes_limits() -> Result<(), Error> {
    let program = build().map_err(|e| Error::Seccomp(e.to_string()))?;
    seccompiler::apply_filter(&program).map_err(|e| Error::Seccomp(e.to_string()))
}

fn build() -> Result<BpfProgram, seccompiler::Error> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let other_pid = || -> Result<Vec<SeccompRule>, seccompiler::Error> {
        Ok(vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            0,
        )?])?])
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    if cfg!(target_arch = "x86_64") {
        const X32_SYSCALL_BIT: i64 = 0x4000_0000;
        rules.insert(libc::SYS_prlimit64 | X32_SYSCALL_BIT, other_pid()?);
    }
    rules.insert(libc::SYS_prlimit64, other_pid()?);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    Ok(BpfProgram::try_from(filter)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_compiles_for_this_architecture() {
        assert!(!super::build().expect("filter builds").is_empty());
    }
}
