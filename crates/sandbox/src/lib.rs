//! Confines the current process, and everything it later execs, to a
//! [`SandboxSpec`]: `no_new_privs`, Landlock for the filesystem (and TCP where
//! the ABI has it), seccomp for socket families, and a private mount
//! namespace for read-only subpaths. Linux only.
//!
//! [`SandboxPolicy`] (Codex 0.97-era) and [`PermissionProfile`] (Codex 0.171
//! and later) are the sandbox as the client describes it; their `resolve`
//! turns it into a [`SandboxSpec`] for one working directory (or an
//! [`Unenforceable`] error naming what this sandbox cannot do), and
//! [`apply`] (or [`exec_sandboxed`]) enforces that in a fresh,
//! single-threaded process right before `exec`.
//!
//! # What is protected
//!
//! - **Privileges**: `no_new_privs` is set, so setuid/setgid binaries and
//!   file capabilities grant nothing (`sudo` fails).
//! - **Files** (Landlock, required: [`apply`] fails if the kernel enforces no
//!   Landlock at all): everything may be read and executed; creating,
//!   writing, removing, renaming into, linking, truncating and making
//!   devices, fifos, sockets or symlinks is allowed only below the writable
//!   roots and on `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/tty`,
//!   `/dev/urandom`, `/dev/random`, `/dev/ptmx` and `/dev/pts`. Denials fail
//!   with `EACCES`. What the kernel's Landlock ABI adds:
//!   - ABI 1 (Linux 5.13): the base rights. Moving or linking a file to
//!     another directory always fails (`EXDEV`; `mv` falls back to copying),
//!     and `truncate(2)` by path is **not** restricted.
//!   - ABI 2 (5.19): cross-directory rename and link inside writable roots.
//!   - ABI 3 (6.2): `truncate(2)` restricted like writes.
//!   - ABI 4 (6.7): TCP `bind`/`connect` denied when the network is off.
//!   - ABI 5 (6.10): `ioctl` on device files opened in the sandbox only on
//!     the device files listed above.
//!   - ABI 10: UDP `bind`/`connect`/`sendto` denied when the network is off.
//!
//!   Not covered: descriptors opened before the sandbox (the inherited
//!   stdin, stdout, stderr and escalation socket) keep their rights; pipes
//!   and sockets reached through `/proc/self/fd` are not path-based; connecting
//!   to UNIX sockets (named or abstract) is allowed.
//! - **Read-only subpaths** (`.git`, `.codex`, `.agents` below a writable
//!   root, and those the client names): made
//!   read-only by a read-only bind mount in a private mount namespace
//!   (writes fail with `EROFS`), set up before Landlock. Needs either
//!   `CAP_SYS_ADMIN` or unprivileged user namespaces; when neither is
//!   available they stay writable and [`Applied::unprotected_subpaths`] says
//!   why. A subpath that does not exist when the sandbox starts is not
//!   protected if created later. Without `CAP_SYS_ADMIN` the namespace sits
//!   in a user namespace mapping only our uid and gid (so `id` and git's
//!   ownership checks see no change; files of other users show as
//!   `nobody`). The sandboxed program cannot undo the binds: Landlock denies
//!   every mount operation to a restricted process.
//! - **Network** (off unless [`SandboxSpec::network`]): a seccomp filter makes
//!   `socket` and `socketpair` fail with `EACCES` for every address family
//!   except `AF_UNIX`, and `io_uring_setup` fail with `EACCES`; Landlock
//!   additionally denies TCP (ABI 4+) and UDP (ABI 10+) on sockets created
//!   before the sandbox. With the network on there is no socket filter.
//!
//! Landlock scopes (abstract UNIX sockets, signals; ABI 6) are not used:
//! sandboxed processes may signal processes of the same user outside the
//! sandbox.

mod landlock_rules;
pub mod launcher;
mod mounts;
mod policy;
mod profile;
mod seccomp;
mod sys;

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

pub use mounts::UnprotectedSubpath;
pub use policy::{
    NetworkAccess, PROTECTED_SUBPATHS, ParsePolicyError, ReadAccess, Resolution, SandboxPolicy,
    Unenforceable,
};
pub use profile::{
    EntryAccess, EntryPath, FileSystemEntry, ManagedFileSystem, PermissionProfile, ProfileNetwork,
    SpecialPath, plain_path,
};

/// What a sandboxed process may do, already resolved to concrete paths.
/// Unknown fields are refused: a launcher older than its server must not
/// silently drop a restriction it does not know.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// Directories (and everything below) that may be written. Empty means
    /// read-only everywhere but the device files a shell needs.
    pub writable_roots: Vec<PathBuf>,
    /// Paths under writable roots that must stay read-only (`.git`, `.codex`),
    /// where the mechanism allows it.
    pub read_only_subpaths: Vec<PathBuf>,
    /// Allow network sockets (AF_INET, AF_INET6, ...). AF_UNIX is always allowed.
    pub network: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sandbox unavailable: {0}")]
    Unsupported(String),
    #[error("sandbox must be applied in a single-threaded process, this one has {threads} threads")]
    MultiThreaded { threads: usize },
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(#[source] io::Error),
    #[error("landlock failed to {step}: {source}")]
    Landlock {
        step: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot open {path} for a landlock rule: {source}")]
    Path {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot install the seccomp socket filter: {0}")]
    Seccomp(String),
    #[error("no command to run in the sandbox")]
    EmptyCommand,
    #[error("cannot exec {program:?}: {source}")]
    Exec {
        program: OsString,
        #[source]
        source: io::Error,
    },
}

/// What [`apply`] enforced, for the caller to log. The sandbox is never
/// weaker than documented in the crate docs; this says where it is exactly
/// as strong as asked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Applied {
    /// The kernel's Landlock ABI version (see the crate docs for what each
    /// adds).
    pub landlock_abi: u32,
    /// Landlock denies TCP bind and connect (network off and ABI 4+).
    pub landlock_denies_tcp: bool,
    /// The seccomp socket filter is installed (network off).
    pub socket_filter: bool,
    /// Read-only subpaths protected by a read-only bind mount.
    pub read_only_subpaths: Vec<PathBuf>,
    /// Read-only subpaths left writable, and why.
    pub unprotected_subpaths: Vec<UnprotectedSubpath>,
    /// Writable roots that did not exist and were left out.
    pub missing_writable_roots: Vec<PathBuf>,
}

impl Applied {
    /// One line per way the sandbox is weaker than the spec asked, for
    /// logging.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.landlock_abi < 2 {
            out.push(format!(
                "landlock abi {}: files cannot be moved or linked between directories",
                self.landlock_abi
            ));
        }
        if self.landlock_abi < 3 {
            out.push(format!(
                "landlock abi {}: truncate(2) by path is not restricted",
                self.landlock_abi
            ));
        }
        for sub in &self.unprotected_subpaths {
            out.push(format!(
                "{} stays writable: {}",
                sub.path.display(),
                sub.reason
            ));
        }
        for root in &self.missing_writable_roots {
            out.push(format!(
                "writable root {} does not exist and was left out",
                root.display()
            ));
        }
        out
    }
}

/// Applies `spec` to the calling process. Call it in a fresh,
/// single-threaded process right before `exec`: it cannot be undone.
///
/// Order: `no_new_privs`, read-only subpaths (mount namespace; degrades,
/// reported in [`Applied`]), Landlock (required), seccomp (network off).
/// Fails closed: on any error other than an unprotectable read-only subpath
/// the caller must not exec the command.
pub fn apply(spec: &SandboxSpec) -> Result<Applied, Error> {
    let abi = sys::landlock_abi_version().map_err(|e| {
        let what = match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => "landlock is built into this kernel but not enabled at boot (add `landlock` to the `lsm=` kernel parameter)",
            Some(libc::ENOSYS) => "this kernel has no landlock (linux 5.13 or newer with CONFIG_SECURITY_LANDLOCK is needed)",
            _ => "landlock is not usable",
        };
        Error::Unsupported(format!(
            "{what}: {e}; commands cannot be confined, choose `--sandbox danger-full-access` to run them without a sandbox knowingly"
        ))
    })?;
    let threads = thread_count();
    if threads > 1 {
        return Err(Error::MultiThreaded { threads });
    }
    sys::set_no_new_privs().map_err(Error::NoNewPrivs)?;
    let protection = mounts::protect(&spec.read_only_subpaths, &spec.writable_roots);
    let enforced = landlock_rules::restrict_self(spec, abi)?;
    if !spec.network {
        seccomp::deny_network_sockets()?;
    }
    Ok(Applied {
        landlock_abi: abi,
        landlock_denies_tcp: enforced.tcp,
        socket_filter: !spec.network,
        read_only_subpaths: protection.protected,
        unprotected_subpaths: protection.unprotected,
        missing_writable_roots: enforced.missing_writable_roots,
    })
}

/// Applies `spec`, then execs `argv` (searching `PATH` for `argv[0]`).
/// Returns only on failure.
pub fn exec_sandboxed(spec: &SandboxSpec, argv: &[OsString]) -> Error {
    if argv.is_empty() {
        return Error::EmptyCommand;
    }
    match apply(spec) {
        Ok(_) => exec(argv),
        Err(e) => e,
    }
}

/// Execs `argv` (searching `PATH` for `argv[0]`), for callers that
/// [`apply`] first to log the [`Applied`] report. Returns only on failure.
pub fn exec(argv: &[OsString]) -> Error {
    let Some((program, args)) = argv.split_first() else {
        return Error::EmptyCommand;
    };
    let source = std::process::Command::new(program)
        .args(args)
        .env_remove(launcher::REPORT_FD_ENV)
        .exec();
    Error::Exec {
        program: program.clone(),
        source,
    }
}

/// Threads of the calling process; 1 when `/proc` cannot tell.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| dir.count())
        .unwrap_or(1)
}
