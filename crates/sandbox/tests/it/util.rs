//! Drives `sandbox-probe`: every case runs in a fresh process, because a
//! sandbox cannot be undone. On failure the command, status, stdout and
//! stderr are printed.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, ExitStatus};

use sandbox::{Applied, SandboxSpec};

pub const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-probe");
const OPS_PY: &str = include_str!("ops.py");

/// A finished command and everything it printed.
pub struct Run {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(mut command: Command) -> Run {
        // The ops script is long and always the same: show its name.
        let shown = format!("{command:?}").replace(&format!("{OPS_PY:?}"), "<ops.py>");
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
        Run {
            command: shown,
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with `message` and everything known about the run.
    #[track_caller]
    pub fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\ncommand: {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn success(&self) -> &Run {
        if !self.status.success() {
            self.fail("command failed");
        }
        self
    }

    #[track_caller]
    pub fn assert_stdout(&self, expected: &[&str]) -> &Run {
        let lines: Vec<&str> = self.stdout.lines().collect();
        if lines != expected {
            self.fail(&format!(
                "expected stdout lines {expected:?}, got {lines:?}"
            ));
        }
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Run {
        if !self.stderr.contains(needle) {
            self.fail(&format!("expected stderr to contain {needle:?}"));
        }
        self
    }

    /// The errno a write outside the writable roots fails with: `EROFS`
    /// under the read-only view, Landlock's `EACCES` without one.
    #[track_caller]
    pub fn outside(&self) -> &'static str {
        if self.applied().view.read_only_root {
            "EROFS"
        } else {
            "EACCES"
        }
    }

    /// The report `sandbox-probe` printed after applying the sandbox.
    #[track_caller]
    pub fn applied(&self) -> Applied {
        let Some(json) = self
            .stderr
            .lines()
            .find_map(|line| line.strip_prefix("applied: "))
        else {
            self.fail("sandbox-probe printed no `applied:` report");
        };
        serde_json::from_str(json).unwrap_or_else(|e| self.fail(&format!("bad report: {e}")))
    }
}

pub fn spec(writable_roots: &[&Path], read_only_subpaths: &[&Path], network: bool) -> SandboxSpec {
    SandboxSpec {
        writable_roots: writable_roots.iter().map(|p| p.to_path_buf()).collect(),
        read_only_subpaths: read_only_subpaths.iter().map(|p| p.to_path_buf()).collect(),
        network,
        must_protect: Vec::new(),
        hidden: Vec::new(),
    }
}

/// How the probe runs the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Namespaces where the kernel allows, as the server runs calls.
    Full,
    /// No namespaces: Landlock, seccomp and the subreaper only, as on a
    /// kernel without user namespaces.
    Bare,
}

/// Both modes, for tests that must hold in each.
pub const MODES: [Mode; 2] = [Mode::Full, Mode::Bare];

/// `sandbox-probe SPEC ARGV...` as a command, for callers that adjust it.
pub fn probe_command<S: AsRef<OsStr>>(spec: &SandboxSpec, argv: &[S]) -> Command {
    probe_command_in(Mode::Full, spec, argv)
}

pub fn probe_command_in<S: AsRef<OsStr>>(mode: Mode, spec: &SandboxSpec, argv: &[S]) -> Command {
    let mut command = Command::new(PROBE);
    if mode == Mode::Bare {
        command.arg("--no-namespaces");
    }
    command.arg(serde_json::to_string(spec).expect("spec serialises"));
    command.args(argv);
    command
}

/// Runs `argv` inside `spec`.
pub fn probe<S: AsRef<OsStr>>(spec: &SandboxSpec, argv: &[S]) -> Run {
    Run::new(probe_command(spec, argv))
}

/// Runs `argv` inside `spec` in `mode`.
pub fn probe_in<S: AsRef<OsStr>>(mode: Mode, spec: &SandboxSpec, argv: &[S]) -> Run {
    Run::new(probe_command_in(mode, spec, argv))
}

/// `python3 -c OPS_PY OPS...`: see `ops.py`; prints `ok` or an errno name
/// per operation.
pub fn ops_argv(ops: &[String]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["python3".into(), "-c".into(), OPS_PY.into()];
    argv.extend(ops.iter().map(OsString::from));
    argv
}

/// Runs the operations inside `spec`; the probe must succeed.
pub fn ops(spec: &SandboxSpec, ops: &[String]) -> Run {
    ops_in(Mode::Full, spec, ops)
}

/// [`ops`] in `mode`.
pub fn ops_in(mode: Mode, spec: &SandboxSpec, ops: &[String]) -> Run {
    let run = probe_in(mode, spec, &ops_argv(ops));
    run.success();
    run
}

/// `write:PATH` and friends.
pub fn op(kind: &str, path: &Path) -> String {
    format!("{kind}:{}", path.display())
}
