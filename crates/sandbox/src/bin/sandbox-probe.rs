//! `sandbox-probe [--in-place | --quiet] [--no-namespaces] SPEC_JSON COMMAND [ARG...]`: runs
//! the command under [`sandbox::launch`] with a [`sandbox::SandboxSpec`]
//! given as JSON, as the server's launcher does, and prints the
//! [`sandbox::Applied`] report as one JSON line prefixed `applied: ` on
//! stderr before the command starts (`--quiet`: no report;
//! `--no-namespaces`: as on a kernel without them). `--in-place`
//! confines this process itself with [`sandbox::apply`] (no namespaces, no
//! supervisor) and execs the command (`--in-place --orphaned-exec-check`:
//! with the exec check's filter installed and its listener already closed).
//! A test and debugging tool: the
//! integration tests run every sandbox case through it, in a fresh process,
//! because a sandbox cannot be undone.
//!
//! Exit status 125 when the sandbox cannot be applied, 126 when the
//! launcher could not start the command, 127 when the command cannot be
//! executed in place; otherwise the command's.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    let in_place = args.next_if(|arg| arg == "--in-place").is_some();
    // With --in-place: the exec check's filter installed and its listener
    // closed at once, as when the server has gone away.
    let orphaned = args.next_if(|arg| arg == "--orphaned-exec-check").is_some();
    let quiet = args.next_if(|arg| arg == "--quiet").is_some();
    let no_namespaces = args.next_if(|arg| arg == "--no-namespaces").is_some();
    let usage =
        "usage: sandbox-probe [--in-place | --quiet] [--no-namespaces] SPEC_JSON COMMAND [ARG...]";
    let (Some(spec), argv) = (args.next(), args.collect::<Vec<OsString>>()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    if argv.is_empty() {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    let spec: sandbox::SandboxSpec = match serde_json::from_slice(spec.as_encoded_bytes()) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("sandbox-probe: invalid spec json: {e}");
            return ExitCode::from(2);
        }
    };
    if !in_place {
        let error = sandbox::launch(sandbox::Launch {
            spec: Some(spec),
            lifeline: None,
            argv,
            program: None,
            report: !quiet,
            report_fd: None,
            namespaces: !no_namespaces,
            exec_notify: None,
            tty: None,
            loopback: None,
        });
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
    if orphaned {
        match sandbox::install_exec_listener() {
            Ok(listener) => drop(listener),
            Err(e) => {
                eprintln!("sandbox-probe: cannot install the exec check: {e}");
                return ExitCode::from(125);
            }
        }
    }
    let error = sandbox::exec(None, &argv);
    eprintln!("sandbox-probe: {error}");
    ExitCode::from(127)
}
