//! Confines the current process, and everything it later execs, to a
//! [`SandboxSpec`]: `no_new_privs`, Landlock for the filesystem (and TCP where
//! the ABI has it), seccomp for socket families, and a private mount
//! namespace for read-only subpaths. Linux only.
//!
//! [`SandboxPolicy`] (Codex 0.97-era) and [`PermissionProfile`] (Codex 0.171
//! and later) are the sandbox as the client describes it; their `resolve`
//! turns it into a [`SandboxSpec`] for one working directory (or an
//! [`Unenforceable`] error naming what this sandbox cannot do), and
//! [`launch`] runs a command under it (or [`apply`] confines in place) in a fresh,
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
//!   with `EACCES`. A writable root is granted only while its path still
//!   names it (the fd opened for the rule is checked): a directory above
//!   it renamed and replaced by a symlink leaves it out. What the kernel's
//!   Landlock ABI adds:
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
//! - **Hidden files** ([`SandboxSpec::hidden`], the server's token file):
//!   not readable at all. Outside the writable roots Landlock's read rights
//!   are granted entry by entry around them; below a writable root a mount
//!   that cannot be opened covers them, and without a mount namespace the
//!   command does not run ([`Error::Exposed`]).
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
//!   In the client's shared loopback network ([`Launch::loopback`], see
//!   [`loopback`]: a namespace with only `lo`, joined) `AF_INET` and
//!   `AF_INET6` sockets are allowed and Landlock leaves TCP and UDP alone;
//!   below ABI 9 `socket(AF_UNIX)` is refused there instead of `connect`.
//!
//! - **IPC** (Landlock scopes, ABI 6): no signal to, and no connection to
//!   an abstract UNIX socket of, a process outside the sandbox. Named UNIX
//!   sockets: with the network off, Landlock's `RESOLVE_UNIX` (ABI 9) lets
//!   commands connect only to sockets made inside the sandbox; below ABI 9
//!   a seccomp filter refuses `connect(2)` and the creation of datagram
//!   sockets altogether (`SOCK_DGRAM`, and `SOCK_RAW`, which `AF_UNIX`
//!   makes a datagram socket; `EACCES`), or in the client's loopback every
//!   `socket(AF_UNIX)` (`socketpair`s are born connected).
//! - **Namespaces** (see `namespaces`, `rootfs`): a read-only view of
//!   everything outside the writable roots (metadata writes fail too), a
//!   minimal `/dev` with a private `devpts`, a private `/proc`, pid, IPC
//!   and (network off) network namespaces, where the kernel allows.
//! - **Capabilities** (see `caps`): none, in any set, whatever the user.
//! - **Set-id files** (see `setid`): no file gets the set-uid or set-gid
//!   bit (a seccomp filter on `chmod` and file creation), whatever the
//!   network setting: a writable root is the host's own directory.
//! - **Keyrings** (see `keyring`): no key of the user's session or user
//!   keyring can be read or changed (`add_key`, `request_key`, `keyctl`
//!   fail with `ENOSYS`), whatever the network setting.
//! - **Resource limits** (see `prlimit`): `prlimit(2)` only on the
//!   caller itself, never on the server or another process of the user.
//! - **Exec check** (see `exec_notify`, with `--exec-notify`): every
//!   `execve`/`execveat` waits for the server's verdict.
//! - **Terminals**: the command runs in a new session without a
//!   controlling terminal; with [`Launch::tty`] its controlling terminal is
//!   a fresh pseudo-terminal of its own, made from the sandbox's private
//!   `devpts` when it has one.
//! - **Lifetime** (see `supervise`): nothing the command starts outlives
//!   it; the launcher stays as its supervisor and kills what is left.

mod bpf;
mod caps;
mod exec_notify;
mod keyring;
mod landlock_rules;
pub mod launcher;
pub mod loopback;
mod namespaces;
mod policy;
mod prlimit;
mod profile;
mod rootfs;
mod seccomp;
mod setid;
mod supervise;
mod sys;

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

pub use policy::{
    Grants, NetworkAccess, PROTECTED_SUBPATHS, ParsePolicyError, ReadAccess, Resolution,
    SandboxPolicy, Unenforceable,
};
pub use profile::{
    EntryAccess, EntryPath, FileSystemEntry, ManagedFileSystem, PermissionProfile, ProfileNetwork,
    SpecialPath, plain_path,
};
pub use rootfs::View;

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
    /// Paths under writable roots that must end up read-only, or the
    /// command does not run: the rules and configuration the server reads
    /// at its next start (see [`SandboxSpec::protect`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_protect: Vec<PathBuf>,
    /// Files that must not be read, or the command does not run: the
    /// server's secrets (its HTTP bearer token file). Outside the writable
    /// roots Landlock grants no read right on them; below a writable root
    /// (where Landlock cannot take a right away) a mount that cannot be opened
    /// covers them, in the mount namespace (see [`SandboxSpec::hide`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<PathBuf>,
}

impl SandboxSpec {
    /// Marks each of `paths` that lies below a writable root as one that
    /// must stay read-only ([`SandboxSpec::must_protect`]). A path there
    /// that does not exist cannot be protected (the command could create
    /// it): that is an error naming it.
    pub fn protect(&mut self, paths: &[PathBuf]) -> Result<(), Unenforceable> {
        for path in paths {
            let canonical = path.canonicalize();
            let resolved = canonical.as_deref().unwrap_or(path);
            let Some(root) = self
                .writable_roots
                .iter()
                .find(|root| resolved.starts_with(root))
            else {
                continue;
            };
            if canonical.is_err() {
                return Err(Unenforceable(format!(
                    "{} does not exist and lies under the writable root {}: a command could create \
                     it (create it, or do not make {} writable)",
                    path.display(),
                    root.display(),
                    root.display()
                )));
            }
            if !self.must_protect.iter().any(|p| p == resolved) {
                self.must_protect.push(resolved.to_path_buf());
            }
        }
        Ok(())
    }
}

impl SandboxSpec {
    /// Makes each of `paths` unreadable to the command ([`SandboxSpec::hidden`]),
    /// by the file it resolves to (symlinks followed: a Kubernetes secret
    /// is a link into a `..data` directory). A path that does not exist
    /// has nothing to hide and is skipped; one below a writable root
    /// should be in [`SandboxSpec::must_protect`] too, so that a command
    /// can neither replace it nor create it.
    pub fn hide(&mut self, paths: &[PathBuf]) {
        for path in paths {
            let Ok(resolved) = path.canonicalize() else {
                continue;
            };
            if !self.hidden.contains(&resolved) {
                self.hidden.push(resolved);
            }
        }
    }

    /// Whether `path` lies below a writable root (where Landlock cannot
    /// refuse reading it).
    pub(crate) fn under_writable_root(&self, path: &std::path::Path) -> bool {
        self.writable_roots
            .iter()
            .any(|root| path.starts_with(root))
    }
}

/// A read-only subpath that could not be protected, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnprotectedSubpath {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sandbox unavailable: {0}")]
    Unsupported(String),
    #[error("sandbox must be applied in a single-threaded process, this one has {threads} threads")]
    MultiThreaded { threads: usize },
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(#[source] io::Error),
    #[error("cannot drop capabilities: {0}")]
    Capabilities(#[source] io::Error),
    #[error("cannot start a new session: {0}")]
    Session(#[source] io::Error),
    #[error("cannot make the terminal: {0}")]
    Terminal(#[source] io::Error),
    #[error("cannot set up the supervisor: {0}")]
    Supervisor(#[source] io::Error),
    #[error("{} must stay read-only but cannot be protected here: {reason}", path.display())]
    Unprotected { path: PathBuf, reason: String },
    #[error("{} must stay unreadable but cannot be hidden here (it lies in a writable root): {reason}; move it out of the writable roots", path.display())]
    Exposed { path: PathBuf, reason: String },
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
    #[error(
        "cannot hand execs to the server (seccomp user notification, Linux 5.0): {0}; run the server with `--exec-check bash-only` to judge only the shell's execs"
    )]
    ExecCheck(#[source] io::Error),
    #[error("no command to run in the sandbox")]
    EmptyCommand,
    #[error("cannot exec {program:?}: {source}")]
    Exec {
        program: OsString,
        #[source]
        source: io::Error,
    },
}

/// What the sandbox enforced, for the caller to log. The sandbox is never
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
    /// Landlock scopes signals and abstract UNIX sockets (ABI 6+).
    pub landlock_scopes: bool,
    /// How connections to named UNIX sockets are restricted (network off):
    /// `landlock` (ABI 9+: sockets made inside the sandbox only),
    /// `seccomp` (no `connect` at all; in the client's loopback, see
    /// [`Applied::network`], no `socket(AF_UNIX)` instead), or `none`
    /// (network on).
    pub unix_sockets: String,
    /// The seccomp socket filter is installed (network off).
    pub socket_filter: bool,
    /// Every capability dropped.
    pub capabilities_dropped: bool,
    /// No file can be given the set-uid or set-gid bit (see `setid`).
    #[serde(default)]
    pub set_id_files_refused: bool,
    /// No key of the user's keyrings can be read or changed (see
    /// `keyring`).
    #[serde(default)]
    pub keyrings_refused: bool,
    /// Every exec is handed to the server (seccomp user notification).
    #[serde(default)]
    pub exec_check: bool,
    /// The network the command sees: `host` (network on), `loopback` (the
    /// client's private network, only `lo`, shared by its calls: TCP and
    /// UDP on it allowed, see `loopback`), `isolated` (a network namespace
    /// of its own, nothing in it), `refused` (no network namespace: every
    /// non-UNIX socket refused).
    #[serde(default)]
    pub network: String,
    /// Why the client's loopback handed to the launcher was not joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopback_missing: Option<String>,
    /// The namespaces the call runs in (`user`, `mount`, `pid`, `ipc`,
    /// `net`); empty without any.
    pub namespaces: Vec<String>,
    /// The filesystem view (see `rootfs`).
    pub view: View,
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
        if !self.landlock_scopes {
            out.push(format!(
                "landlock abi {}: no signal or abstract-socket scoping (needs abi 6, linux 6.12)",
                self.landlock_abi
            ));
        }
        out.extend(self.view.gaps.iter().cloned());
        out.extend(self.loopback_missing.iter().cloned());
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

/// One command to start under the launcher.
#[derive(Debug)]
pub struct Launch {
    /// The sandbox; `None`: the command runs unconfined (an escalated
    /// program, or a call without a sandbox) but still supervised.
    pub spec: Option<SandboxSpec>,
    /// The read end of the call's lifeline (see `supervise`).
    pub lifeline: Option<OwnedFd>,
    /// The program and its arguments; `argv[0]` is also the program run
    /// (searched in `PATH`) unless `program` is set.
    pub argv: Vec<OsString>,
    /// The file to execute, when it differs from `argv[0]`.
    pub program: Option<OsString>,
    /// Print the [`Applied`] report on stderr (`applied: JSON`) before the
    /// exec (for tests and debugging).
    pub report: bool,
    /// Write the [`Applied`] report (JSON) here, then close it, before the
    /// exec: the write end of a pipe the server reads to its end (see
    /// [`launcher`]). Only with a spec. Nothing is written when the sandbox
    /// cannot be applied.
    pub report_fd: Option<OwnedFd>,
    /// Enter namespaces where the kernel allows (see `namespaces`); `false`
    /// runs with Landlock, seccomp and the subreaper only, as on a kernel
    /// without user namespaces.
    pub namespaces: bool,
    /// Hand every exec of the sandbox to the server (see `exec_notify`):
    /// the socket to send the seccomp listener on. Only with a spec.
    pub exec_notify: Option<OwnedFd>,
    /// Give the command a pseudo-terminal (see [`Terminal`]).
    pub tty: Option<Terminal>,
    /// With the network off: the client's shared loopback network to join
    /// instead of making one (see [`loopback`]). Only with a spec.
    pub loopback: Option<loopback::Held>,
}

/// A pseudo-terminal for the command, made right before it is confined:
/// from the sandbox's private `devpts` when it has one, the host's
/// otherwise. Its slave becomes the command's stdin, stdout and stderr and
/// the controlling terminal of the command's new session; its master is
/// sent on `channel` (one byte and the fd, `SCM_RIGHTS`).
#[derive(Debug)]
pub struct Terminal {
    pub channel: OwnedFd,
    pub rows: u16,
    pub cols: u16,
}

/// Starts `launch.argv` under the launcher's supervision, confined to
/// `launch.spec` (see the crate docs), and exits the way the command does.
/// Call it in a fresh single-threaded process. Returns only when nothing
/// could be started.
pub fn launch(launch: Launch) -> Error {
    if launch.argv.is_empty() {
        return Error::EmptyCommand;
    }
    let threads = thread_count();
    if threads > 1 {
        return Error::MultiThreaded { threads };
    }
    let signals = match supervise::block_signals() {
        Ok(signals) => signals,
        Err(e) => return Error::Supervisor(e),
    };
    let Some(spec) = launch.spec else {
        let Launch {
            argv,
            program,
            lifeline,
            tty,
            ..
        } = launch;
        supervise::as_subreaper(signals, lifeline, move || {
            if let Some(tty) = tty {
                // A session of its own (and so a process group, which the
                // supervisor signals), the terminal its controlling one.
                if let Err(e) = nix::unistd::setsid()
                    .map_err(|e| Error::Session(e.into()))
                    .and_then(|_| take_terminal(tty))
                {
                    return report_failure(&e);
                }
            } else {
                // Its own process group, which the supervisor signals.
                let _ = nix::unistd::setpgid(
                    nix::unistd::Pid::from_raw(0),
                    nix::unistd::Pid::from_raw(0),
                );
            }
            if let Err(e) = supervise::restore_signals() {
                return report_failure(&Error::Supervisor(e));
            }
            report_failure(&exec(program.as_deref(), &argv))
        });
    };
    let abi = match landlock_abi() {
        Ok(abi) => abi,
        Err(e) => return e,
    };
    let entered = if launch.namespaces {
        namespaces::enter(match (spec.network, launch.loopback) {
            (true, _) => namespaces::Network::Host,
            (false, Some(held)) => namespaces::Network::Shared(held),
            (false, None) => namespaces::Network::Private,
        })
    } else {
        namespaces::Entered {
            missing: Some("namespaces turned off".into()),
            ..namespaces::Entered::default()
        }
    };
    let Launch {
        argv,
        program,
        lifeline,
        report,
        report_fd,
        exec_notify,
        tty,
        ..
    } = launch;
    let (setup_spec, setup_entered) = (spec.clone(), entered.clone());
    let private = entered.private;
    let run = move |view: View| {
        let applied = match confine(&spec, abi, &entered, view, exec_notify, tty) {
            Ok(applied) => applied,
            Err(e) => return report_failure(&e),
        };
        if report {
            match serde_json::to_string(&applied) {
                Ok(json) => eprintln!("applied: {json}"),
                Err(e) => eprintln!("cannot encode the report: {e}"),
            }
        }
        if let Some(fd) = report_fd {
            // Closed here, before the command runs: the server reads to
            // the end of the pipe (the supervisors closed their copies).
            // One write (a `File` is unbuffered: `to_writer` made one
            // system call per JSON token, and as many reads and wake-ups
            // in the server, before Bash could start).
            if let Ok(json) = serde_json::to_vec(&applied) {
                use std::io::Write;
                let _ = std::fs::File::from(fd).write_all(&json);
            }
        }
        report_failure(&exec(program.as_deref(), &argv))
    };
    if private {
        supervise::in_pid_namespace(
            signals,
            lifeline,
            move || rootfs::build(&setup_spec, &setup_entered),
            run,
        )
    } else {
        let view = rootfs::build(&setup_spec, &setup_entered);
        supervise::as_subreaper(signals, lifeline, move || run(view))
    }
}

/// Makes a pseudo-terminal (`/dev/ptmx`: the private `devpts` inside a
/// mount namespace), puts its slave on stdin, stdout and stderr as the
/// controlling terminal of the calling session leader, and sends its
/// master on `tty.channel`.
fn take_terminal(tty: Terminal) -> Result<(), Error> {
    let (master, slave) = sys::open_pty(tty.rows, tty.cols).map_err(Error::Terminal)?;
    sys::stdio_to(&slave).map_err(Error::Terminal)?;
    drop(slave);
    sys::set_controlling_terminal().map_err(Error::Terminal)?;
    exec_notify::send_fd(master, tty.channel, b"T").map_err(Error::Terminal)
}

/// Prints why the command could not start; the exit status to use: 127
/// for a program that does not exist, 126 otherwise (as a shell reports
/// them).
fn report_failure(error: &Error) -> i32 {
    eprintln!("codex-sandbox-exec: {error}");
    match error {
        Error::Exec { source, .. } if source.kind() == io::ErrorKind::NotFound => 127,
        _ => i32::from(launcher::EXIT_NOT_RUN),
    }
}

/// The kernel's Landlock ABI, or why there is none (fail closed).
fn landlock_abi() -> Result<u32, Error> {
    sys::landlock_abi_version().map_err(|e| {
        let what = match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => "landlock is built into this kernel but not enabled at boot (add `landlock` to the `lsm=` kernel parameter)",
            Some(libc::ENOSYS) => "this kernel has no landlock (linux 5.13 or newer with CONFIG_SECURITY_LANDLOCK is needed)",
            _ => "landlock is not usable",
        };
        Error::Unsupported(format!(
            "{what}: {e}; commands cannot be confined, choose `--sandbox danger-full-access` to run them without a sandbox knowingly"
        ))
    })
}

/// Confines the calling process (the command, right before its exec): a
/// new session without a controlling terminal, `no_new_privs`, no
/// capabilities, Landlock, then seccomp (network off).
fn confine(
    spec: &SandboxSpec,
    abi: u32,
    entered: &namespaces::Entered,
    view: View,
    exec_notify: Option<OwnedFd>,
    tty: Option<Terminal>,
) -> Result<Applied, Error> {
    // Below a writable root only the mount hides a secret.
    if let Some(exposed) = spec
        .hidden
        .iter()
        .find(|path| spec.under_writable_root(path) && !view.hidden.contains(path))
    {
        let reason = view
            .gaps
            .first()
            .cloned()
            .unwrap_or_else(|| "no mount namespace".into());
        return Err(Error::Exposed {
            path: exposed.clone(),
            reason,
        });
    }
    if let Some(missed) = view
        .unprotected
        .iter()
        .find(|u| spec.must_protect.contains(&u.path))
    {
        return Err(Error::Unprotected {
            path: missed.path.clone(),
            reason: missed.reason.clone(),
        });
    }
    nix::unistd::setsid().map_err(|e| Error::Session(e.into()))?;
    if let Some(tty) = tty {
        take_terminal(tty)?;
    }
    supervise::restore_signals().map_err(Error::Supervisor)?;
    sys::set_no_new_privs().map_err(Error::NoNewPrivs)?;
    caps::drop_all().map_err(Error::Capabilities)?;
    let devices = if view.private_dev {
        landlock_rules::Devices::Private
    } else {
        landlock_rules::Devices::Host
    };
    let loopback = !spec.network && entered.loopback;
    let enforced = landlock_rules::restrict_self(spec, abi, devices, loopback)?;
    let unix_by_landlock = abi >= 9;
    let mut filters = errno_filters(
        spec,
        seccomp::Sockets {
            unix_by_landlock,
            loopback,
        },
    )?;
    // Last: from here on every exec, the command's own first, waits for the
    // server's answer. One program with the errno filters (see `seccomp`).
    let exec_check = exec_notify.is_some();
    match exec_notify {
        Some(channel) => {
            filters.push(exec_notify::program());
            let listener = seccomp::install_with_listener(filters).map_err(Error::ExecCheck)?;
            exec_notify::hand_over(listener, channel).map_err(Error::ExecCheck)?;
        }
        None => seccomp::install(filters)?,
    }
    let mut namespaces = Vec::new();
    if entered.user {
        namespaces.push("user".to_owned());
    }
    if entered.private {
        namespaces.extend(["mount", "pid", "ipc"].map(String::from));
    }
    if entered.net {
        namespaces.push("net".to_owned());
    }
    Ok(Applied {
        landlock_abi: abi,
        landlock_denies_tcp: enforced.tcp,
        landlock_scopes: enforced.scopes,
        unix_sockets: match (spec.network, unix_by_landlock) {
            (true, _) => "none",
            (false, true) => "landlock",
            (false, false) => "seccomp",
        }
        .to_owned(),
        socket_filter: !spec.network,
        capabilities_dropped: true,
        set_id_files_refused: true,
        keyrings_refused: true,
        exec_check,
        network: match (spec.network, loopback, entered.net) {
            (true, _, _) => "host",
            (false, true, _) => "loopback",
            (false, false, true) => "isolated",
            (false, false, false) => "refused",
        }
        .to_owned(),
        loopback_missing: entered.loopback_missing.clone(),
        namespaces,
        read_only_subpaths: view.protected.clone(),
        unprotected_subpaths: view.unprotected.clone(),
        view,
        missing_writable_roots: enforced.missing_writable_roots,
    })
}

/// The seccomp filters that refuse with an errno (the network's when it is
/// off, leaving `sockets`; set-id files; keyrings;
/// other processes' limits), to be installed as one program (see
/// `seccomp`).
fn errno_filters(
    spec: &SandboxSpec,
    sockets: seccomp::Sockets,
) -> Result<Vec<bpf::Program>, Error> {
    let mut filters = Vec::new();
    if !spec.network {
        filters.push(seccomp::network_filter(sockets)?);
    }
    filters.push(setid::filter()?);
    filters.push(keyring::filter()?);
    filters.push(prlimit::filter()?);
    Ok(filters)
}

/// Confines the calling process to `spec` in place, without namespaces or
/// supervision: `no_new_privs`, no capabilities, Landlock, seccomp. For a
/// process that cannot fork a supervisor; [`launch`] is the whole sandbox.
/// Call it in a single-threaded process right before `exec`: it cannot be
/// undone.
pub fn apply(spec: &SandboxSpec) -> Result<Applied, Error> {
    let abi = landlock_abi()?;
    let threads = thread_count();
    if threads > 1 {
        return Err(Error::MultiThreaded { threads });
    }
    sys::set_no_new_privs().map_err(Error::NoNewPrivs)?;
    caps::drop_all().map_err(Error::Capabilities)?;
    let entered = namespaces::Entered {
        missing: Some("confined in place, without namespaces".into()),
        ..namespaces::Entered::default()
    };
    let view = rootfs::build(spec, &entered);
    let enforced = landlock_rules::restrict_self(spec, abi, landlock_rules::Devices::Host, false)?;
    seccomp::install(errno_filters(
        spec,
        seccomp::Sockets {
            unix_by_landlock: abi >= 9,
            loopback: false,
        },
    )?)?;
    Ok(Applied {
        landlock_abi: abi,
        landlock_denies_tcp: enforced.tcp,
        landlock_scopes: enforced.scopes,
        unix_sockets: if spec.network {
            "none"
        } else if abi >= 9 {
            "landlock"
        } else {
            "seccomp"
        }
        .to_owned(),
        socket_filter: !spec.network,
        capabilities_dropped: true,
        set_id_files_refused: true,
        keyrings_refused: true,
        exec_check: false,
        network: if spec.network { "host" } else { "refused" }.to_owned(),
        loopback_missing: None,
        namespaces: Vec::new(),
        read_only_subpaths: Vec::new(),
        unprotected_subpaths: view.unprotected.clone(),
        view,
        missing_writable_roots: enforced.missing_writable_roots,
    })
}

/// Installs the exec check's filter on the calling process (see
/// `exec_notify`; needs `no_new_privs`, which [`apply`] sets) and returns
/// its listener, for a process that serves it itself. With the listener
/// closed, every exec fails (`ENOSYS`): the sandbox fails closed when the
/// server goes away.
pub fn install_exec_listener() -> io::Result<OwnedFd> {
    exec_notify::install()
}

/// Execs `argv` (`program`, or `argv[0]` searched in `PATH`). Returns only
/// on failure.
pub fn exec(program: Option<&std::ffi::OsStr>, argv: &[OsString]) -> Error {
    let Some((argv0, args)) = argv.split_first() else {
        return Error::EmptyCommand;
    };
    let program = program.unwrap_or(argv0);
    let source = std::process::Command::new(program)
        .arg0(argv0)
        .args(args)
        .exec();
    Error::Exec {
        program: program.to_owned(),
        source,
    }
}

/// Threads of the calling process; 1 when `/proc` cannot tell.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| dir.count())
        .unwrap_or(1)
}
