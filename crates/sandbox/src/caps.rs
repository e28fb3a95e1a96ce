//! No capabilities: sandboxed commands run with empty effective, permitted,
//! inheritable, ambient and bounding sets, whatever the server's user. A
//! root server otherwise hands the sandbox `CAP_MKNOD` (a block device in
//! `/tmp`, then the disk through it), `CAP_FOWNER`, `CAP_DAC_OVERRIDE`,
//! `CAP_SYS_ADMIN` and the rest; inside a user namespace the sandbox would
//! hold every capability of that namespace.
//!
//! The bounding set is what matters for a uid 0 process: at `execve` root
//! regains the bounding set unless it is empty. The securebits
//! (`SECBIT_NOROOT` and friends, locked) make that doubly so where the
//! process may set them.
//!
//! **Invariant:** applied in the process that execs the command, after
//! every step that needs a capability (mounts) and before Landlock and
//! seccomp; a failure to drop a capability the process has is an error.

use std::io;

use crate::sys;

/// `SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
/// SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
/// SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED`.
const SECURE_BITS: libc::c_ulong = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;

/// Drops every capability of the calling process, for good.
pub(crate) fn drop_all() -> io::Result<()> {
    let had_any = sys::effective_capabilities()? != 0;
    if had_any {
        // Needs CAP_SETPCAP, which a process with capabilities has unless
        // it was given a partial set; then the bounding set below still does
        // the job.
        let _ = sys::prctl(libc::PR_SET_SECUREBITS, SECURE_BITS);
    }
    // Up to the kernel's last capability, which the first `EINVAL` tells
    // (cheaper than reading `/proc/sys/kernel/cap_last_cap` at every call).
    for cap in 0..=MAX_CAP {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap) {
            Ok(()) => {}
            // Out of range for this kernel: past the last one.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            // Without CAP_SETPCAP the bounding set cannot shrink. A process
            // holding no capability gains none at exec (no_new_privs stops
            // setuid and file capabilities; a non-root uid gets nothing),
            // so that is fine for it, and an error for anyone else.
            Err(e)
                if e.raw_os_error() == Some(libc::EPERM)
                    && !had_any
                    && sys::effective_ids().0 != 0 =>
            {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    sys::clear_ambient_capabilities().or_else(|e| {
        // Kernels before 4.3 have no ambient set.
        if e.raw_os_error() == Some(libc::EINVAL) {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    sys::clear_capabilities()
}

/// The highest capability number the capability sets can hold (two 32-bit
/// words); every kernel's last one is below it.
const MAX_CAP: libc::c_ulong = 63;
