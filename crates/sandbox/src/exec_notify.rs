//! Every exec reaches the server: a seccomp filter that answers `execve`
//! and `execveat` with `SECCOMP_RET_USER_NOTIF`, whatever process of the
//! sandbox makes them (Bash, `env`, `xargs`, Python's `os.execv`, a shell
//! without the exec patch). Its listener fd goes to the server over a
//! socket of its own (one byte and `SCM_RIGHTS`); the server then decides
//! each exec (see `escalate::exec_check`).
//!
//! The filter is installed last, right before the command's own exec,
//! which is therefore the first exec the server sees. A syscall of another
//! architecture is refused with `ENOSYS` (x32 included: its `execve` would
//! not match the native number); when the listener closes (the server went
//! away) the kernel fails every exec the filter sees.

use std::io;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use crate::sys;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
/// x32 syscalls have this bit set in their number (x86_64 only).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `offsetof(struct seccomp_data, nr)` and `arch`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The filter program (classic BPF); `seccomp::install_with_listener`
/// joins it, last, with the errno filters.
pub(crate) fn program() -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let enosys = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32);
    vec![
        // 0: another architecture: refused.
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET | BPF_K, enosys),
        // 3: the x32 ABI (x86_64): refused.
        stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
        jump(
            BPF_JMP | BPF_JGE | BPF_K,
            if cfg!(target_arch = "x86_64") {
                X32_SYSCALL_BIT
            } else {
                u32::MAX
            },
            0,
            1,
        ),
        stmt(BPF_RET | BPF_K, enosys),
        // 6: execve and execveat: to the server.
        jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_execve as u32, 2, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_execveat as u32, 1, 0),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_USER_NOTIF),
    ]
}

/// Installs the filter on the calling thread (inherited across fork and
/// exec; requires `no_new_privs`) and returns its listener.
pub(crate) fn install() -> io::Result<OwnedFd> {
    sys::seccomp_filter(&program(), true)?
        .ok_or_else(|| io::Error::other("the kernel returned no listener"))
}

/// Sends `listener` to the server on `channel` and closes both here.
pub(crate) fn hand_over(listener: OwnedFd, channel: OwnedFd) -> io::Result<()> {
    send_fd(listener, channel, b"L")
}

/// Sends `fd` with the one byte `tag` on `channel`, and closes both.
pub(crate) fn send_fd(fd: OwnedFd, channel: OwnedFd, tag: &[u8; 1]) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        channel.as_raw_fd(),
        &[IoSlice::new(tag)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn jumps_stay_inside_the_program() {
        let program = super::program();
        for (i, insn) in program.iter().enumerate() {
            if insn.code as u32 & 0x07 == libc::BPF_JMP {
                assert!(i + 1 + (insn.jt as usize) < program.len(), "{i}");
                assert!(i + 1 + (insn.jf as usize) < program.len(), "{i}");
            }
        }
    }
}
