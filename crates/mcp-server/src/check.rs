//! The `check` subcommand: one command line against the rules, as JSON.
//!
//! The program is judged as the server judges an exec: by the name given
//! and by the file it resolves to (found on this process's `PATH` when it
//! is a bare name, symlinks followed), combined so that a link borrows no
//! rule (see `policy::Policy::check_program`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use policy::{Evaluation, MatchOptions, Policy, RuleMatch};
use serde::Serialize;

/// What `check` prints.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// The command line evaluated (lossily decoded).
    pub command: Vec<String>,
    /// The decision (`allow`, `prompt`, `forbidden`) for both names of the
    /// program together; `null` when it runs in the sandbox.
    pub decision: Option<policy::Decision>,
    /// The rules matching the program by the name given.
    pub matched_rules: Vec<RuleMatch>,
    /// The file the program resolves to, when it does.
    pub file: Option<String>,
    /// The evaluation by that file, when it is another path than the name
    /// given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_evaluation: Option<Evaluation>,
    /// The name is bound to the file by its `host_executable` declaration.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bound_by_host_executable: bool,
    /// When no rule matched: why the dangerous-command heuristics would
    /// prompt anyway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dangerous_reason: Option<String>,
    /// What the user should know about the rules that matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Evaluates `command` (program first) against `policy`.
pub fn check(policy: &Policy, command: &[OsString], options: MatchOptions) -> CheckReport {
    let (program, args) = command.split_first().expect("clap requires a command");
    let file = resolve(Path::new(program));
    let evaluation = policy.check_program(program, file.as_deref(), args, options);
    let dangerous_reason = if evaluation.decision.is_none() {
        policy::dangerous_reason(program, args).or_else(|| {
            let file = file.as_ref()?.clone().into_os_string();
            policy::dangerous_reason(&file, args)
        })
    } else {
        None
    };
    let mut warnings: Vec<String> = allow_warnings(evaluation.matched_rules());
    if let Some(by_file) = &evaluation.by_file
        && evaluation.decision.is_none()
        && (evaluation.by_name.decision.is_some() || by_file.decision.is_some())
    {
        warnings.push(format!(
            "{} resolves to {}: a program escalates only when a rule allows both names",
            program.to_string_lossy(),
            file.as_deref().unwrap_or(Path::new("")).display()
        ));
    }
    CheckReport {
        command: command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        decision: evaluation.decision,
        matched_rules: evaluation.by_name.matched_rules,
        file: file.map(|f| f.display().to_string()),
        file_evaluation: evaluation.by_file,
        bound_by_host_executable: evaluation.bound,
        dangerous_reason,
        warnings,
    }
}

/// One warning per `allow` rule among `matches` whose program runs code
/// the sandbox can write ([`policy::code_runner`]).
pub fn allow_warnings<'a>(matches: impl Iterator<Item = &'a RuleMatch>) -> Vec<String> {
    let mut out = Vec::new();
    for m in matches {
        if m.decision != policy::Decision::Allow {
            continue;
        }
        let head = m.matched_prefix.first().map(String::as_str).unwrap_or("");
        if let Some(why) = policy::code_runner(head) {
            let warning = runner_warning(head, &m.location, why);
            if !out.contains(&warning) {
                out.push(warning);
            }
        }
    }
    out
}

/// The warning for an `allow` rule of `head` at `location`.
pub fn runner_warning(head: &str, location: &policy::Location, why: &str) -> String {
    format!(
        "the rule at {location} allows `{head}` outside the sandbox, and {why}: \
         sandboxed commands can use it to run their own code outside the sandbox"
    )
}

/// The file `program` names: a path resolved (relative to the current
/// directory), a bare name looked up on `PATH` as Bash would.
fn resolve(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return std::fs::canonicalize(program).ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .and_then(|p| std::fs::canonicalize(p).ok())
}
