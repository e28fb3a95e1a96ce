//! No resource limit of another process is changed from the sandbox.
//!
//! **Invariant: a sandboxed process sets only its own limits.**
//! `prlimit(2)` changes the limits of any process of the same user, and
//! Landlock scopes signals and ptrace, not this. Without a pid namespace
//! the server and every other process of the user are visible, and
//! `prlimit --pid SERVER --nofile=5:5` starves the server (and a user's
//! shell) of file descriptors. A seccomp filter fails `prlimit64` with
//! `EPERM` unless its pid argument is 0 (the caller: how `setrlimit` and
//! `getrlimit` are made by every libc). Always installed; x32 calls are
//! refused as in `seccomp`, which joins the filters.

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use crate::Error;

/// The filter, for `seccomp::install`.
pub(crate) fn filter() -> Result<crate::bpf::Program, Error> {
    build().map_err(|e| Error::Seccomp(e.to_string()))
}

fn build() -> Result<crate::bpf::Program, seccompiler::Error> {
    let other_pid = || -> Result<Vec<SeccompRule>, seccompiler::Error> {
        Ok(vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            0,
        )?])?])
    };
    crate::seccomp::refusing(vec![(libc::SYS_prlimit64, other_pid()?)], libc::EPERM)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_compiles_for_this_architecture() {
        assert!(!super::build().expect("filter builds").is_empty());
    }
}
