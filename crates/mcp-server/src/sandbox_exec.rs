//! The hidden `sandbox-exec --spec <JSON> -- PROGRAM ARGS...` subcommand:
//! the launcher placed before Bash. It confines this (single-threaded,
//! runtime-free) process to the spec and execs the program.

use std::ffi::OsString;
use std::process::ExitCode;

use sandbox::SandboxSpec;

const USAGE: &str = "usage: codex-exec-mcp-server sandbox-exec --spec <JSON> -- PROGRAM [ARGS...]";

/// Never returns on success. `args` are the arguments after `sandbox-exec`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    match run(args) {
        Ok(never) => match never {},
        Err(message) => {
            eprintln!("codex-exec-mcp-server sandbox-exec: {message}");
            // As a shell reports a command it could not execute.
            ExitCode::from(126)
        }
    }
}

enum Never {}

fn run(args: Vec<OsString>) -> Result<Never, String> {
    let (spec, argv) = parse(args)?;
    Err(sandbox::exec_sandboxed(&spec, &argv).to_string())
}

fn parse(args: Vec<OsString>) -> Result<(SandboxSpec, Vec<OsString>), String> {
    let mut it = args.into_iter();
    if it.next().as_deref() != Some("--spec".as_ref()) {
        return Err(USAGE.into());
    }
    let json = it.next().ok_or(USAGE)?;
    let json = json.to_str().ok_or("--spec is not UTF-8")?;
    let spec: SandboxSpec =
        serde_json::from_str(json).map_err(|e| format!("invalid --spec {json}: {e}"))?;
    if it.next().as_deref() != Some("--".as_ref()) {
        return Err(USAGE.into());
    }
    let argv: Vec<OsString> = it.collect();
    if argv.is_empty() {
        return Err(USAGE.into());
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
        let (spec, argv) = parse(os(&[
            "--spec",
            r#"{"writable_roots":["/tmp"],"read_only_subpaths":[],"network":false}"#,
            "--",
            "/bin/bash",
            "-c",
            "true",
        ]))
        .unwrap();
        assert_eq!(spec.writable_roots, vec![std::path::PathBuf::from("/tmp")]);
        assert_eq!(argv, os(&["/bin/bash", "-c", "true"]));
    }

    #[test]
    fn rejects_malformed_invocations() {
        assert!(
            parse(os(&["--spec", "{}", "--", "x"]))
                .unwrap_err()
                .contains("invalid --spec")
        );
        assert_eq!(parse(os(&["/bin/true"])).unwrap_err(), USAGE);
        assert_eq!(
            parse(os(&[
                "--spec",
                r#"{"writable_roots":[],"read_only_subpaths":[],"network":true}"#,
                "--"
            ]))
            .unwrap_err(),
            USAGE
        );
    }
}
