//! `sandbox-probe [--exec-sandboxed] SPEC_JSON COMMAND [ARG...]`: applies a
//! [`sandbox::SandboxSpec`] given as JSON, prints the [`sandbox::Applied`]
//! report as one JSON line prefixed `applied: ` on stderr, and execs the
//! command. With `--exec-sandboxed` it calls [`sandbox::exec_sandboxed`]
//! instead, which prints no report. A test and
//! debugging tool: the integration tests run every sandbox case through it,
//! in a fresh process, because a sandbox cannot be undone.
//!
//! Exit status 125 when the sandbox cannot be applied, 127 when the command
//! cannot be executed.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    let via_exec_sandboxed = args.next_if(|arg| arg == "--exec-sandboxed").is_some();
    let (Some(spec), argv) = (args.next(), args.collect::<Vec<OsString>>()) else {
        eprintln!("usage: sandbox-probe [--exec-sandboxed] SPEC_JSON COMMAND [ARG...]");
        return ExitCode::from(2);
    };
    if argv.is_empty() {
        eprintln!("usage: sandbox-probe [--exec-sandboxed] SPEC_JSON COMMAND [ARG...]");
        return ExitCode::from(2);
    }
    let spec: sandbox::SandboxSpec = match serde_json::from_slice(spec.as_encoded_bytes()) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("sandbox-probe: invalid spec json: {e}");
            return ExitCode::from(2);
        }
    };
    if via_exec_sandboxed {
        let error = sandbox::exec_sandboxed(&spec, &argv);
        eprintln!("sandbox-probe: {error}");
        return ExitCode::from(125);
    }
    match sandbox::apply(&spec) {
        Ok(applied) => match serde_json::to_string(&applied) {
            Ok(json) => eprintln!("applied: {json}"),
            Err(e) => {
                eprintln!("sandbox-probe: cannot serialise the report: {e}");
                return ExitCode::from(125);
            }
        },
        Err(e) => {
            eprintln!("sandbox-probe: {e}");
            return ExitCode::from(125);
        }
    }
    let error = sandbox::exec(&argv);
    eprintln!("sandbox-probe: {error}");
    ExitCode::from(127)
}
