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

use crate::Error;
use crate::bpf::{self, Asm, Program};

/// `S_ISUID | S_ISGID`.
const SET_ID_BITS: u32 = libc::S_ISUID | libc::S_ISGID;
/// `O_CREAT`, and the bit of `O_TMPFILE` that is not `O_DIRECTORY`.
const CREATING: u32 = (libc::O_CREAT | (libc::O_TMPFILE & !libc::O_DIRECTORY)) as u32;

/// The filter, for `seccomp::install`.
pub(crate) fn filter() -> Result<Program, Error> {
    Ok(build())
}

/// Where a syscall's mode is, and whether it also needs a creating flag.
enum Mode {
    /// The mode argument.
    At(u32),
    /// The mode argument, when the flags argument creates a file.
    Creating { flags: u32, mode: u32 },
}

/// Written by hand (see `bpf`): seccompiler has no "any of these bits"
/// test, and its program (a rule per bit and flag) was seven times longer,
/// which the kernel verifies and compiles at every call's start.
fn build() -> Program {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut modes: Vec<(i64, Mode)> = vec![
        (libc::SYS_fchmod, Mode::At(1)),
        (libc::SYS_fchmodat, Mode::At(2)),
        (SYS_FCHMODAT2, Mode::At(2)),
        (libc::SYS_mknodat, Mode::At(2)),
        (libc::SYS_openat, Mode::Creating { flags: 2, mode: 3 }),
    ];
    #[cfg(target_arch = "x86_64")]
    modes.extend([
        (libc::SYS_chmod, Mode::At(1)),
        (libc::SYS_creat, Mode::At(1)),
        (libc::SYS_mknod, Mode::At(1)),
        (libc::SYS_open, Mode::Creating { flags: 1, mode: 2 }),
    ]);
    let mut asm = Asm::new();
    let (native, allow, deny, enosys) = (asm.label(), asm.label(), asm.label(), asm.label());
    asm.load(bpf::ARCH);
    asm.jump_eq(bpf::AUDIT_ARCH, native);
    asm.ret(libc::SECCOMP_RET_KILL_PROCESS);
    asm.place(native);
    asm.load(bpf::NR);
    let blocks: Vec<_> = modes.iter().map(|_| asm.label()).collect();
    for ((nr, _), &block) in modes.iter().zip(&blocks) {
        asm.jump_eq(*nr as u32, block);
    }
    asm.jump_eq(libc::SYS_openat2 as u32, enosys);
    asm.jump(allow);
    for ((_, mode), &block) in modes.iter().zip(&blocks) {
        asm.place(block);
        let mode_at = match *mode {
            Mode::At(arg) => arg,
            Mode::Creating { flags, mode } => {
                let creates = asm.label();
                asm.load(bpf::arg(flags));
                asm.jump_any(CREATING, creates);
                asm.jump(allow);
                asm.place(creates);
                mode
            }
        };
        asm.load(bpf::arg(mode_at));
        asm.jump_any(SET_ID_BITS, deny);
        asm.jump(allow);
    }
    asm.place(deny);
    asm.ret(bpf::errno(libc::EPERM));
    asm.place(enosys);
    asm.ret(bpf::errno(libc::ENOSYS));
    asm.place(allow);
    asm.ret(libc::SECCOMP_RET_ALLOW);
    asm.finish()
}

/// `fchmodat2(2)` (Linux 6.6): 452 in the generic table every architecture
/// shares since 4.20, x86_64's included; the libc crate names it on x86_64
/// only.
const SYS_FCHMODAT2: i64 = 452;

#[cfg(test)]
mod tests {
    #[test]
    fn filter_is_well_formed() {
        let program = super::build();
        crate::bpf::tests::assert_well_formed(&program);
        assert!(program.len() < 80, "{} instructions", program.len());
    }
}
