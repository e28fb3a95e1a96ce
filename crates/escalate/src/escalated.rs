//! Turning an untrusted [`ExecRequest`] into a program started outside the
//! sandbox, or refusing to.
//!
//! Every field of the request was chosen by code inside the sandbox, so:
//! - **Program identity**: the path is resolved (relative to the request's
//!   working directory, symlinks followed) once, by the session, and that
//!   resolved file is what the decider judges (by both names, see
//!   `policy::Policy::check_program`) and what runs. It must be a regular
//!   executable file that no sandbox can have planted or changed, nor any
//!   directory or link on its way (see [`Exposure`]). An ELF program is
//!   opened once and the opened file is what runs (`/proc/self/fd/N`), so
//!   nothing can be swapped between the check and the exec. `N` is above
//!   every fd number the wrapper asked for, so its fds, moved into place in
//!   the child, cannot replace it. A script (`#!`) runs by its resolved
//!   path, which is safe for the same reason: no sandboxed writer can change
//!   that path.
//! - **Environment**: the server's own, plus the request's allow-listed
//!   variables ([`EnvPolicy`]); `PWD` is the real working directory.
//! - **Working directory**: resolved, must be an existing directory.
//! - **Context**: the configuration the program reads that runs code (for
//!   git: its repository and configuration files) must be nothing a sandbox
//!   could have written (see the `context` module).
//!
//! A request that fails any check is not escalated: it runs inside the
//! sandbox instead, where it can do no more than any sandboxed code, and
//! the wrapper prints why ([`Refusal::notice`]).
//!
//! [`Exposure`]: crate::Exposure
//! [`EnvPolicy`]: crate::EnvPolicy

use std::cell::OnceCell;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::context::{self, Program};
use crate::{EscalationConfig, ExecRequest, Reaper, ReaperProgram, display, sys};

/// Why a request is not escalated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The program or working directory does not exist (or is not what an
    /// exec needs): the exec fails inside the sandbox the usual way, and no
    /// notice is printed.
    #[error("{0}")]
    Missing(String),
    /// Escalating would run something sandboxed code could have prepared.
    #[error("{0}")]
    Unsafe(String),
}

impl Refusal {
    /// The line the wrapper prints before running the program inside the
    /// sandbox; `None` for [`Refusal::Missing`].
    pub fn notice(&self) -> Option<String> {
        match self {
            Refusal::Missing(_) => None,
            Refusal::Unsafe(why) => Some(format!(
                "codex-execve-wrapper: not escalated, running inside the sandbox: {}",
                display::one_line(&display::cut(why, 2 * display::LOG_LIMIT))
            )),
        }
    }
}

/// One exec as a [`crate::Decider`] sees it: the request, the file its
/// program resolves to, and (on demand) whether an escalation would be
/// refused.
pub struct Exec<'a> {
    /// What the wrapper sent: every field chosen inside the sandbox.
    pub request: &'a ExecRequest,
    /// The file the program path resolves to (relative to the request's
    /// working directory, every symlink followed): what would run. `None`
    /// when it does not resolve.
    pub program: Option<&'a Path>,
    config: &'a EscalationConfig,
    prepared: OnceCell<Result<Prepared, Refusal>>,
}

impl std::fmt::Debug for Exec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("file", &self.request.file)
            .field("program", &self.program)
            .finish_non_exhaustive()
    }
}

impl<'a> Exec<'a> {
    /// An exec whose program resolves to `program` ([`resolve_program`]);
    /// the session makes these, tests and benchmarks may too.
    pub fn new(
        request: &'a ExecRequest,
        program: Option<&'a Path>,
        config: &'a EscalationConfig,
    ) -> Exec<'a> {
        Exec {
            request,
            program,
            config,
            prepared: OnceCell::new(),
        }
    }

    /// Why the program would run inside the sandbox if the verdict were
    /// Escalate, `None` when it would be escalated. Checks the program, its
    /// working directory and its context (file system IO: not for
    /// [`crate::Decider::decide_now`]); the result is kept for the
    /// escalation itself.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.prepared().as_ref().err()
    }

    /// The request's variables an escalated program would get with another
    /// value than the server's: what an approval question must show.
    pub fn env_changes(&self) -> Vec<(&'a OsStr, &'a OsStr)> {
        self.config.env.changes(&self.request.env)
    }

    /// The directory the program would start in: resolved when it exists.
    pub fn cwd(&self) -> PathBuf {
        match self.prepared() {
            Ok(prepared) => prepared.cwd.clone(),
            Err(_) => std::fs::canonicalize(&self.request.cwd)
                .unwrap_or_else(|_| PathBuf::from(&self.request.cwd)),
        }
    }

    fn prepared(&self) -> &Result<Prepared, Refusal> {
        self.prepared
            .get_or_init(|| prepare(self.request, self.program, self.config))
    }

    /// The checked program, ready to spawn, or why not.
    pub(crate) fn into_prepared(self) -> Result<Prepared, Refusal> {
        self.prepared();
        self.prepared
            .into_inner()
            .unwrap_or_else(|| unreachable!("initialised just above"))
    }
}

/// The file `request.file` resolves to, relative to its working directory.
pub fn resolve_program(request: &ExecRequest) -> Option<PathBuf> {
    let file = Path::new(&request.file);
    if file.as_os_str().is_empty() {
        return None;
    }
    std::fs::canonicalize(Path::new(&request.cwd).join(file)).ok()
}

/// A request that passed every check, ready to spawn.
#[derive(Debug)]
pub struct Prepared {
    /// The resolved program path (for logs and scripts).
    pub program: PathBuf,
    /// The opened ELF program, exec'd through `/proc/self/fd/N`; `None`
    /// for a script, exec'd by `program`.
    file: Option<File>,
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
}

/// Checks `request`, whose program the session resolved to `program`,
/// against the rules above.
fn prepare(
    request: &ExecRequest,
    program: Option<&Path>,
    config: &EscalationConfig,
) -> Result<Prepared, Refusal> {
    let cwd = Path::new(&request.cwd);
    if !cwd.is_absolute() {
        return Err(Refusal::Unsafe(format!(
            "working directory {} is not absolute",
            cwd.display()
        )));
    }
    let cwd = std::fs::canonicalize(cwd)
        .map_err(|e| Refusal::Missing(format!("working directory {}: {e}", cwd.display())))?;
    if !cwd.is_dir() {
        return Err(Refusal::Missing(format!(
            "working directory {} is not a directory",
            cwd.display()
        )));
    }

    let Some(program) = program else {
        return Err(Refusal::Missing(format!(
            "program {} does not exist",
            Path::new(&request.file).display()
        )));
    };
    config.exposure.check_file(program).map_err(|why| {
        Refusal::Unsafe(format!(
            "program {}: {why}: sandboxed code could have planted it",
            program.display()
        ))
    })?;
    let mut opened = File::open(program)
        .map_err(|e| Refusal::Missing(format!("program {}: {e}", program.display())))?;
    let meta = opened
        .metadata()
        .map_err(|e| Refusal::Missing(format!("program {}: {e}", program.display())))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Refusal::Missing(format!(
            "program {} is not an executable file",
            program.display()
        )));
    }
    let mut magic = [0u8; 4];
    let is_elf = opened.read_exact(&mut magic).is_ok() && &magic == b"\x7fELF";
    let file = is_elf.then_some(opened);

    let mut argv = request.argv.clone();
    if argv.is_empty() {
        argv.push(request.file.clone());
    }
    let mut env = config.env.environment(&request.env, &cwd);
    let pins = context::check(
        &Program {
            file: program,
            argv: &argv,
            env: &env,
            cwd: &cwd,
        },
        &config.exposure,
    )
    .map_err(Refusal::Unsafe)?;
    for (key, value) in pins {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    Ok(Prepared {
        program: program.to_path_buf(),
        file,
        argv,
        env,
        cwd,
    })
}

impl Prepared {
    /// Starts the program with the wrapper's fds: `fds[i]` appears at
    /// `targets[i]`; stdio not passed is `/dev/null`. Under `reaper` (the
    /// launcher's program and leading arguments, see `sandbox::launcher`)
    /// when given: the launcher leads its own process group, the program
    /// runs as its child in another, and everything the program starts ends
    /// when it does or when the returned lifeline is dropped. Without one,
    /// the program leads its own process group.
    pub fn spawn(
        &self,
        targets: &[i32],
        fds: Vec<OwnedFd>,
        reaper: Option<&Reaper>,
    ) -> std::io::Result<(Child, Option<OwnedFd>)> {
        // The checked file must still be at its fd number when the child
        // execs it, after the wrapper's fds were moved to their targets: a
        // forged target equal to that number would otherwise make the
        // child exec whatever the wrapper sent (a file the sandbox wrote),
        // outside the sandbox. So exec a duplicate placed above every
        // target; `map_fds` only writes to target numbers.
        let above_targets = targets.iter().map(|&t| t + 1).max().unwrap_or(3).max(3);
        let exec_fd = match &self.file {
            Some(file) => Some(sys::dup_at_least(file.as_fd(), above_targets)?),
            None => None,
        };
        let exec_path = match &exec_fd {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => self.program.clone(),
        };
        let mut keep_open = Vec::new();
        // Above every target too: a forged target must not replace it.
        let launcher_fd = match reaper.map(|r| &r.program) {
            Some(ReaperProgram::File(file)) => {
                Some(sys::dup_at_least(file.as_fd(), above_targets)?)
            }
            _ => None,
        };
        let (mut cmd, lifeline) = match reaper {
            Some(reaper) => {
                let launcher = match (&reaper.program, &launcher_fd) {
                    (_, Some(fd)) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
                    (ReaperProgram::Path(path), None) => path.clone(),
                    (ReaperProgram::File(_), None) => unreachable!("duplicated above"),
                };
                let (read, write) = sys::lifeline(above_targets)?;
                let mut cmd = Command::new(launcher);
                cmd.args(&reaper.leading)
                    .arg("--lifeline")
                    .arg(read.as_raw_fd().to_string())
                    .arg("--program")
                    .arg(&exec_path)
                    .arg("--unconfined")
                    .arg("--")
                    .args(&self.argv);
                keep_open.push(read.as_raw_fd());
                // The launcher execs the checked file by its fd number.
                keep_open.extend(exec_fd.as_ref().map(|fd| fd.as_raw_fd()));
                (cmd, Some((read, write)))
            }
            None => {
                let mut cmd = Command::new(&exec_path);
                cmd.arg0(&self.argv[0]).args(&self.argv[1..]);
                (cmd, None)
            }
        };
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .process_group(0);
        let mut stdio: [Option<OwnedFd>; 3] = [None, None, None];
        let mut extra: Vec<(RawFd, RawFd)> = Vec::new();
        let mut keep = Vec::new();
        for (&target, fd) in targets.iter().zip(fds) {
            match usize::try_from(target) {
                Ok(i @ 0..=2) => stdio[i] = Some(fd),
                _ => {
                    extra.push((fd.as_raw_fd(), target));
                    keep.push(fd);
                }
            }
        }
        let [stdin, stdout, stderr] = stdio;
        let to_stdio = |fd: Option<OwnedFd>| fd.map(Stdio::from).unwrap_or_else(Stdio::null);
        cmd.stdin(to_stdio(stdin))
            .stdout(to_stdio(stdout))
            .stderr(to_stdio(stderr));
        if !extra.is_empty() || !keep_open.is_empty() {
            sys::map_fds(&mut cmd, extra, keep_open);
        }
        let child = cmd.spawn();
        drop(keep);
        drop(exec_fd);
        drop(launcher_fd);
        let lifeline = lifeline.map(|(read, write)| {
            drop(read);
            write
        });
        child.map(|child| (child, lifeline))
    }
}
