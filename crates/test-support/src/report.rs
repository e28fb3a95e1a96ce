//! What a failing test prints: how the process under test was started
//! (command line, working directory) and what it said (status, stdout,
//! stderr), in the manner of ripgrep's `TestCommand`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// A server process's command line, working directory and the file its
/// stderr goes to; printed when the test holding it panics (on drop).
#[derive(Debug)]
pub struct ServerLog {
    cmdline: String,
    cwd: PathBuf,
    path: PathBuf,
}

impl ServerLog {
    /// `path` is where the server's stderr goes (see [`ServerLog::stderr`]).
    pub fn new(cmdline: impl Into<String>, cwd: &Path, path: &Path) -> ServerLog {
        ServerLog {
            cmdline: cmdline.into(),
            cwd: cwd.to_path_buf(),
            path: path.to_path_buf(),
        }
    }

    /// A new (emptied) log file, for the server's stderr.
    pub fn stderr(&self) -> Stdio {
        let file = std::fs::File::create(&self.path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.path.display()));
        Stdio::from(file)
    }

    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The server's stderr so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// The size of the server's stderr so far.
    pub fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The command, its cwd and its stderr so far.
    pub fn describe(&self) -> String {
        describe_server(&self.cmdline, &self.cwd, &self.path)
    }
}

impl Drop for ServerLog {
    fn drop(&mut self) {
        report_on_panic(&self.cmdline, &self.cwd, &self.path);
    }
}

fn describe_server(cmdline: &str, cwd: &Path, log: &Path) -> String {
    format!(
        "--- server command: {cmdline}\n--- cwd: {}\n--- server stderr:\n{}",
        cwd.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

/// When the current test is failing, prints how its server was started
/// and what it logged to `log`.
pub fn report_on_panic(cmdline: &str, cwd: &Path, log: &Path) {
    if std::thread::panicking() {
        eprintln!("{}", describe_server(cmdline, cwd, log));
    }
}

/// A finished process for assertion messages: its command, cwd (when not
/// the test's own), status, stdout and stderr.
pub fn describe_output(cmdline: &str, cwd: Option<&Path>, output: &Output) -> String {
    let cwd = cwd.map_or_else(String::new, |c| format!("cwd: {}\n", c.display()));
    format!(
        "command: {cmdline}\n{cwd}status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
