//! The launcher placed before Bash: `--spec <JSON> -- PROGRAM ARGS...`
//! confines the calling (single-threaded, runtime-free) process to the spec
//! and execs the program. Shared by the small `codex-sandbox-exec` binary
//! and the server's hidden `sandbox-exec` mode (its fallback).
//!
//! When [`REPORT_FD_ENV`] names an inherited fd, the launcher writes there
//! what it enforced ([`crate::Applied`] as JSON) once the sandbox is
//! applied, closes it, and removes the variable, all before the program
//! starts: the server learns which read-only subpaths this call really
//! protects (none when no mount namespace could be had) from the only
//! process that knows, before any sandboxed code runs. A launcher that
//! fails writes nothing.

use std::ffi::OsString;
use std::io::Write;

use crate::SandboxSpec;

/// Environment variable naming the fd the launcher reports on.
pub const REPORT_FD_ENV: &str = "CODEX_SANDBOX_REPORT_FD";

/// Exit status when the program was not run, as a shell reports a command
/// it could not execute.
pub const EXIT_NOT_RUN: u8 = 126;

/// Applies the spec and execs the program; returns (an exit status, after
/// printing why on stderr prefixed with `name`) only on failure. `args` are
/// the arguments after the program name (or after `sandbox-exec`).
pub fn main(name: &str, args: Vec<OsString>) -> u8 {
    let message = match parse(name, args) {
        Ok((spec, argv)) => run(&spec, &argv).to_string(),
        Err(message) => message,
    };
    eprintln!("{name}: {message}");
    EXIT_NOT_RUN
}

/// Applies `spec`, reports it when asked, execs `argv`; returns only on
/// failure.
fn run(spec: &SandboxSpec, argv: &[OsString]) -> crate::Error {
    let report = std::env::var(REPORT_FD_ENV)
        .ok()
        .and_then(|fd| fd.parse().ok())
        .and_then(crate::sys::take_inherited_fd);
    match crate::apply(spec) {
        Ok(applied) => {
            if let Some(mut report) = report {
                // The server reads to the end of the pipe: closed here.
                let _ = serde_json::to_writer(&mut report, &applied);
                let _ = report.flush();
            }
            crate::exec(argv)
        }
        Err(e) => e,
    }
}

fn parse(name: &str, args: Vec<OsString>) -> Result<(SandboxSpec, Vec<OsString>), String> {
    let usage = || format!("usage: {name} --spec <JSON> -- PROGRAM [ARGS...]");
    let mut it = args.into_iter();
    if it.next().as_deref() != Some("--spec".as_ref()) {
        return Err(usage());
    }
    let json = it.next().ok_or_else(usage)?;
    let json = json.to_str().ok_or("--spec is not UTF-8")?;
    let spec: SandboxSpec =
        serde_json::from_str(json).map_err(|e| format!("invalid --spec {json}: {e}"))?;
    if it.next().as_deref() != Some("--".as_ref()) {
        return Err(usage());
    }
    let argv: Vec<OsString> = it.collect();
    if argv.is_empty() {
        return Err(usage());
    }
    Ok((spec, argv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_spec_and_argv() {
        let (spec, argv) = parse(
            "x",
            os(&[
                "--spec",
                r#"{"writable_roots":["/tmp"],"read_only_subpaths":[],"network":false}"#,
                "--",
                "/bin/bash",
                "-c",
                "true",
            ]),
        )
        .unwrap();
        assert_eq!(spec.writable_roots, vec![std::path::PathBuf::from("/tmp")]);
        assert_eq!(argv, os(&["/bin/bash", "-c", "true"]));
    }

    #[test]
    fn rejects_malformed_invocations() {
        let usage = "usage: x --spec <JSON> -- PROGRAM [ARGS...]";
        assert!(
            parse("x", os(&["--spec", "{}", "--", "y"]))
                .unwrap_err()
                .contains("invalid --spec")
        );
        assert_eq!(parse("x", os(&["/bin/true"])).unwrap_err(), usage);
        assert_eq!(
            parse(
                "x",
                os(&[
                    "--spec",
                    r#"{"writable_roots":[],"read_only_subpaths":[],"network":true}"#,
                    "--"
                ])
            )
            .unwrap_err(),
            usage
        );
    }
}
