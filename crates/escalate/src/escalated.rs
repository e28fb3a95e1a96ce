//! Turning an untrusted [`ExecRequest`] into a program started outside the
//! sandbox, or refusing to.
//!
//! Every field of the request was chosen by code inside the sandbox, so:
//! - **Program identity**: the path is resolved (relative to the request's
//!   working directory, symlinks followed) and must be a regular executable
//!   file that is not under any writable root of the sandbox, so sandboxed
//!   code cannot have planted or changed it, nor renamed anything along its
//!   resolved path. An ELF program is opened once and the opened file is
//!   what runs (`/proc/self/fd/N`), so nothing can be swapped between the
//!   check and the exec. `N` is above every fd number the wrapper asked
//!   for, so its fds, moved into place in the child, cannot replace it. A script (`#!`) runs by its resolved path, which is
//!   safe for the same reason: no sandboxed writer can change that path.
//! - **Environment**: the request's variables minus [`ENV_DENYLIST`] (and
//!   the configured extras); `PATH` comes from the server.
//! - **Working directory**: resolved, must be an existing directory.
//!
//! A request that fails any check is not escalated: the caller lets it run
//! inside the sandbox instead, where it can do no more than any sandboxed
//! code.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{EscalationConfig, ExecRequest, Reaper, ReaperProgram, sys};

/// Variables removed from every escalated program's environment: each
/// loads code or configuration into the new process, or steers the shell
/// machinery. Entries ending in `*` are prefixes.
pub const ENV_DENYLIST: &[&str] = &[
    // Dynamic loaders (glibc, musl, macOS).
    "LD_*",
    "DYLD_*",
    "GCONV_PATH",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "MALLOC_*",
    "GLIBC_TUNABLES",
    // Shells.
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_*",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "CDPATH",
    // Interpreters.
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONUSERBASE",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "LUA_INIT*",
    "LUA_PATH*",
    "LUA_CPATH*",
    // Git.
    "GIT_CONFIG*",
    "GIT_EXEC_PATH",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "GIT_EDITOR",
    "GIT_PAGER",
    "GIT_PROXY_COMMAND",
    "GIT_EXTERNAL_DIFF",
    "GIT_TEMPLATE_DIR",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "SSH_ASKPASS",
    // Pagers and editors that may be run on the program's behalf.
    "PAGER",
    "LESSOPEN",
    "LESSCLOSE",
    "EDITOR",
    "VISUAL",
    // Our own plumbing: the escalated program is not wrapped.
    "BASH_EXEC_WRAPPER",
    "CODEX_ESCALATE_*",
    // Replaced by the server's.
    "PATH",
];

/// Why a request is not escalated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

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

/// Checks `request` against the rules above.
pub fn prepare(request: &ExecRequest, config: &EscalationConfig) -> Result<Prepared, Refusal> {
    let cwd = Path::new(&request.cwd);
    if !cwd.is_absolute() {
        return Err(Refusal(format!(
            "working directory {} is not absolute",
            cwd.display()
        )));
    }
    let cwd = std::fs::canonicalize(cwd)
        .map_err(|e| Refusal(format!("working directory {}: {e}", cwd.display())))?;
    if !cwd.is_dir() {
        return Err(Refusal(format!(
            "working directory {} is not a directory",
            cwd.display()
        )));
    }

    let file = Path::new(&request.file);
    if file.as_os_str().is_empty() {
        return Err(Refusal("empty program path".into()));
    }
    let joined = cwd.join(file);
    let program = std::fs::canonicalize(&joined)
        .map_err(|e| Refusal(format!("program {}: {e}", joined.display())))?;
    for root in &config.writable_roots {
        if program.starts_with(root) {
            return Err(Refusal(format!(
                "program {} is under the writable root {}: sandboxed code could have planted it",
                program.display(),
                root.display()
            )));
        }
    }
    let mut opened =
        File::open(&program).map_err(|e| Refusal(format!("program {}: {e}", program.display())))?;
    let meta = opened
        .metadata()
        .map_err(|e| Refusal(format!("program {}: {e}", program.display())))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Refusal(format!(
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
    Ok(Prepared {
        program,
        file,
        argv,
        env: with_pwd(filter_env(&request.env, config), &cwd),
        cwd,
    })
}

/// `PWD` set to the directory the program really starts in, not whatever the
/// request claimed.
fn with_pwd(mut env: Vec<(OsString, OsString)>, cwd: &Path) -> Vec<(OsString, OsString)> {
    env.retain(|(k, _)| k != "PWD");
    env.push(("PWD".into(), cwd.as_os_str().to_owned()));
    env
}

/// The request's environment minus the denylist, with the server's `PATH`.
pub fn filter_env(env: &[OsString], config: &EscalationConfig) -> Vec<(OsString, OsString)> {
    let denied = |key: &[u8]| {
        ENV_DENYLIST
            .iter()
            .copied()
            .chain(config.extra_env_denylist.iter().map(String::as_str))
            .any(|pat| match pat.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix.as_bytes()),
                None => key == pat.as_bytes(),
            })
    };
    let mut out: Vec<(OsString, OsString)> = env
        .iter()
        .filter_map(|kv| {
            let bytes = kv.as_bytes();
            let eq = bytes.iter().position(|&b| b == b'=')?;
            let (key, value) = (&bytes[..eq], &bytes[eq + 1..]);
            (!key.is_empty() && !denied(key)).then(|| {
                (
                    OsStr::from_bytes(key).into(),
                    OsStr::from_bytes(value).into(),
                )
            })
        })
        .collect();
    out.push(("PATH".into(), config.path.clone()));
    out
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

/// The file a request's program resolves to (relative to its working
/// directory, symlinks followed), or the path as given when it cannot be
/// resolved.
pub fn canonical_program(request: &ExecRequest) -> PathBuf {
    let joined = Path::new(&request.cwd).join(Path::new(&request.file));
    std::fs::canonicalize(&joined).unwrap_or(joined)
}
