//! The hidden `sandbox-exec --spec <JSON> -- PROGRAM ARGS...` subcommand:
//! the launcher placed before Bash when `codex-sandbox-exec` is not beside
//! this binary (see [`sandbox::launcher`]).

use std::ffi::OsString;
use std::process::ExitCode;

/// Never returns on success. `args` are the arguments after `sandbox-exec`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    ExitCode::from(sandbox::launcher::main(
        "codex-exec-mcp-server sandbox-exec",
        args,
    ))
}
