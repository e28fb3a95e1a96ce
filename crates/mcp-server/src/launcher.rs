//! The sandbox launcher: the program the server runs before Bash for every
//! sandboxed call. It runs unconfined (it applies the sandbox to itself), so
//! it must not be a file the sandboxed side can change: a launcher
//! installed under a writable root (a workspace's `node_modules`, say)
//! could be overwritten by one call and run unconfined by the next.
//!
//! So the server runs a write-sealed in-memory copy of `codex-sandbox-exec`
//! taken at start (a memfd, executed through `/proc/self/fd`), or, without
//! one, its own hidden `sandbox-exec` mode through `/proc/self/exe`: the
//! running binary itself, which cannot be written while it runs and which a
//! rename does not replace.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

/// The launcher binary shipped beside the server.
pub const SANDBOX_EXEC: &str = "codex-sandbox-exec";

/// The launcher's program and leading arguments, and what keeps them valid.
#[derive(Debug)]
pub struct Launcher {
    argv: Vec<OsString>,
    /// The sealed copy `argv[0]` names (`/proc/self/fd/N`); close-on-exec.
    copy: Option<Arc<OwnedFd>>,
}

impl Launcher {
    /// `codex-sandbox-exec` beside `exe` (the server), sealed in memory; or
    /// the server's own `sandbox-exec` mode (same interface, slower to
    /// start).
    pub fn find(exe: &Path) -> Launcher {
        let small = exe.with_file_name(SANDBOX_EXEC);
        if small.is_file() {
            match sealed_copy(&small) {
                Ok(fd) => {
                    return Launcher {
                        argv: vec![format!("/proc/self/fd/{}", fd.as_raw_fd()).into()],
                        copy: Some(Arc::new(fd)),
                    };
                }
                Err(e) => tracing::warn!(launcher = %small.display(), error = %e,
                    "cannot use the sandbox launcher; the server's own sandbox-exec mode is used instead"),
            }
        }
        Launcher {
            argv: vec!["/proc/self/exe".into(), "sandbox-exec".into()],
            copy: None,
        }
    }

    /// The same launcher for escalated programs: started from the sealed
    /// copy's fd, which the escalation moves above the wrapper's fd targets.
    pub fn reaper(&self) -> escalate::Reaper {
        match &self.copy {
            Some(copy) => escalate::Reaper {
                program: escalate::ReaperProgram::File(copy.clone()),
                leading: Vec::new(),
            },
            None => escalate::Reaper {
                program: escalate::ReaperProgram::Path("/proc/self/exe".into()),
                leading: vec!["sandbox-exec".into()],
            },
        }
    }

    /// The program and leading arguments, to which `--spec JSON -- bash ...`
    /// are appended.
    pub fn argv(&self) -> &[OsString] {
        &self.argv
    }
}

/// A memfd holding `path`'s bytes, sealed against any further change.
fn sealed_copy(path: &Path) -> io::Result<OwnedFd> {
    // With `vm.memfd_noexec = 2` the kernel refuses to execute any memfd.
    if std::fs::read_to_string("/proc/sys/vm/memfd_noexec").is_ok_and(|v| v.trim() == "2") {
        return Err(io::Error::other("vm.memfd_noexec forbids executing memfds"));
    }
    let fd = memfd_create(
        SANDBOX_EXEC,
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut copy = File::from(fd);
    io::copy(&mut File::open(path)?, &mut copy)?;
    fcntl(
        &copy,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_SEAL,
        ),
    )?;
    if !Path::new(&format!("/proc/self/fd/{}", copy.as_raw_fd())).exists() {
        return Err(io::Error::other("/proc is not mounted"));
    }
    Ok(copy.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_sealed_and_identical() {
        let exe = std::env::current_exe().unwrap();
        let fd = sealed_copy(&exe).unwrap();
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        assert_eq!(
            std::fs::read(&proc_path).unwrap(),
            std::fs::read(&exe).unwrap()
        );
        // No write through any path: the seal holds even for a new open.
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&proc_path)
            .and_then(|mut f| io::Write::write_all(&mut f, b"x"))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::EPERM), "{err}");
    }
}
