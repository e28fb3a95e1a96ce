//! Read-only subpaths inside writable roots (`.git`, `.codex`). Landlock
//! only grants, it cannot carve a read-only hole into a writable tree, so
//! these are made read-only with a private mount namespace: each subpath is
//! bind-mounted onto itself and the bind remounted read-only. Writes there
//! fail with `EROFS`.
//!
//! Needs `CAP_SYS_ADMIN` for the new mount namespace; without it (any
//! non-root user) a user namespace mapping only our own uid and gid is
//! created first. When neither works (user namespaces disabled, a seccomp
//! profile forbidding `unshare`, a multi-threaded caller) the subpaths stay
//! writable and the caller is told why; the rest of the sandbox still
//! applies.
//!
//! The sandboxed program cannot undo the binds: Landlock forbids every mount
//! change to a restricted process, and in the user-namespace case the
//! program has no capabilities left after exec anyway.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::sys;

/// A read-only subpath that could not be protected, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnprotectedSubpath {
    pub path: PathBuf,
    pub reason: String,
}

/// Outcome of [`protect`].
#[derive(Default)]
pub(crate) struct Protection {
    pub protected: Vec<PathBuf>,
    pub unprotected: Vec<UnprotectedSubpath>,
}

/// Makes each existing subpath that lies below a writable root read-only.
/// Subpaths outside every writable root are read-only through Landlock
/// already; missing ones are skipped.
pub(crate) fn protect(subpaths: &[PathBuf], writable_roots: &[PathBuf]) -> Protection {
    let wanted: Vec<&PathBuf> = subpaths
        .iter()
        .filter(|path| writable_roots.iter().any(|root| path.starts_with(root)))
        .filter(|path| path.symlink_metadata().is_ok())
        .collect();
    let mut outcome = Protection::default();
    if wanted.is_empty() {
        return outcome;
    }
    if let Err(reason) = enter_private_mount_namespace() {
        outcome.unprotected = wanted
            .into_iter()
            .map(|path| UnprotectedSubpath {
                path: path.clone(),
                reason: reason.clone(),
            })
            .collect();
        return outcome;
    }
    for path in wanted {
        match sys::bind_read_only(path) {
            Ok(()) => outcome.protected.push(path.clone()),
            Err(e) => outcome.unprotected.push(UnprotectedSubpath {
                path: path.clone(),
                reason: format!("read-only bind mount failed: {e}"),
            }),
        }
    }
    outcome
}

/// Moves the process into a new mount namespace (inside a new user
/// namespace when it lacks the privilege) whose mounts do not propagate.
fn enter_private_mount_namespace() -> Result<(), String> {
    let (uid, gid) = sys::effective_ids();
    match sys::unshare(libc::CLONE_NEWNS) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).map_err(|e| {
                format!("cannot create a user and mount namespace (unshare: {e}); are unprivileged user namespaces disabled?")
            })?;
            map_own_ids(uid, gid).map_err(|e| {
                format!("cannot map uid {uid} and gid {gid} in the new user namespace: {e}")
            })?;
        }
        Err(e) => return Err(format!("cannot create a mount namespace (unshare: {e})")),
    }
    sys::make_mounts_private().map_err(|e| format!("cannot make mounts private: {e}"))
}

/// Maps our uid and gid to themselves, so ownership checks (git's
/// `safe.directory`, ssh) see the same ids inside the user namespace.
fn map_own_ids(uid: u32, gid: u32) -> io::Result<()> {
    fs::write(Path::new("/proc/self/uid_map"), format!("{uid} {uid} 1\n"))?;
    fs::write(Path::new("/proc/self/setgroups"), "deny\n")?;
    fs::write(Path::new("/proc/self/gid_map"), format!("{gid} {gid} 1\n"))
}
