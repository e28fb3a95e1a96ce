//! No set-user-ID or set-group-ID file is made inside the sandbox.
//!
//! **Invariant: no syscall of a sandboxed process gives a file the
//! `S_ISUID` or `S_ISGID` bit.** The writable roots are the host's own
//! directories (`/tmp`, the workspace): a program a root server's sandbox
//! made set-user-ID there is a root shell for every local user, outside the
//! sandbox, and an unprivileged server's is one for its user. Neither the
//! dropped capabilities (the owner of a file needs none to set its set-uid
//! bit) nor a `nosuid` mount of the sandbox's own view (the file is run from
//! the host's) stop that, so a seccomp filter does, as systemd's
//! `RestrictSUIDSGID=` does:
//!
//! - `chmod`, `fchmod`, `fchmodat`, `fchmodat2` with either bit in the mode
//!   fail with `EPERM`;
//! - `open`, `openat` with `O_CREAT` or `O_TMPFILE`, `creat`, `mknod`,
//!   `mknodat` with either bit in the mode fail with `EPERM`;
//! - `openat2` fails with `ENOSYS`: its mode is in a structure a filter
//!   cannot read, and every libc falls back to `openat`.
//!
//! A copy that keeps modes (`cp -p`, `install -m 4755`, `tar -p`) fails
//! that one step; no other program notices. `setxattr` of
//! `security.capability` (file capabilities) needs `CAP_SETFCAP`, which the
//! sandbox does not have (see `caps`). Always installed, whatever the
//! network setting; x32 calls are refused and other architectures' calls
//! kill the process (as in `seccomp`, which joins the filters).

use seccompiler::{BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use crate::Error;

const SET_ID_BITS: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];
/// `__O_TMPFILE`: the bit of `O_TMPFILE` that is not `O_DIRECTORY`.
const O_TMPFILE_BIT: u64 = (libc::O_TMPFILE & !libc::O_DIRECTORY) as u64;

/// The filters, for `seccomp::install`.
pub(crate) fn filters() -> Result<Vec<BpfProgram>, Error> {
    build().map_err(|e| Error::Seccomp(e.to_string()))
}

/// The two filters: modes (`EPERM`), and `openat2` (`ENOSYS`).
fn build() -> Result<Vec<BpfProgram>, seccompiler::Error> {
    let arg = |index, op, value| SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value);
    let bit_set = |index: u8, bit: u64| arg(index, SeccompCmpOp::MaskedEq(bit), bit);
    // A rule per set-id bit: the mode argument has it.
    let mode_has = |mode: u8| -> Result<Vec<SeccompRule>, seccompiler::Error> {
        SET_ID_BITS
            .iter()
            .map(|&bit| Ok(SeccompRule::new(vec![bit_set(mode, bit)?])?))
            .collect()
    };
    // A rule per creating flag and set-id bit: the file is made, with it.
    let creates_with = |flags: u8, mode: u8| -> Result<Vec<SeccompRule>, seccompiler::Error> {
        let mut rules = Vec::new();
        for flag in [libc::O_CREAT as u64, O_TMPFILE_BIT] {
            for &bit in &SET_ID_BITS {
                rules.push(SeccompRule::new(vec![
                    bit_set(flags, flag)?,
                    bit_set(mode, bit)?,
                ])?);
            }
        }
        Ok(rules)
    };
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut modes: Vec<(i64, Vec<SeccompRule>)> = vec![
        (libc::SYS_fchmod, mode_has(1)?),
        (libc::SYS_fchmodat, mode_has(2)?),
        (SYS_FCHMODAT2, mode_has(2)?),
        (libc::SYS_openat, creates_with(2, 3)?),
        (libc::SYS_mknodat, mode_has(2)?),
    ];
    #[cfg(target_arch = "x86_64")]
    modes.extend([
        (libc::SYS_chmod, mode_has(1)?),
        (libc::SYS_open, creates_with(1, 2)?),
        (libc::SYS_creat, mode_has(1)?),
        (libc::SYS_mknod, mode_has(1)?),
    ]);
    Ok(vec![
        crate::seccomp::refusing(modes, libc::EPERM)?,
        crate::seccomp::refusing(vec![(libc::SYS_openat2, Vec::new())], libc::ENOSYS)?,
    ])
}

/// `fchmodat2(2)` (Linux 6.6): 452 in the generic table every architecture
/// shares since 4.20, x86_64's included; the libc crate names it on x86_64
/// only.
const SYS_FCHMODAT2: i64 = 452;

#[cfg(test)]
mod tests {
    #[test]
    fn filters_compile_for_this_architecture() {
        let programs = super::build().expect("filters build");
        assert_eq!(programs.len(), 2);
        assert!(programs.iter().all(|p| !p.is_empty()));
    }
}
