//! The `check` subcommand: one command line against the rules, as JSON.

use std::ffi::OsString;

use policy::{Evaluation, MatchOptions, Policy};
use serde::Serialize;

/// What `check` prints.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// The command line evaluated (lossily decoded).
    pub command: Vec<String>,
    /// The rules' decision (`allow`, `prompt`, `forbidden`), `null` when no
    /// rule matched.
    pub decision: Option<policy::Decision>,
    pub matched_rules: Vec<policy::RuleMatch>,
    /// When no rule matched: why the dangerous-command heuristics would
    /// prompt anyway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dangerous_reason: Option<String>,
}

/// Evaluates `command` (program first) against `policy`.
pub fn check(policy: &Policy, command: &[OsString], options: MatchOptions) -> CheckReport {
    let (program, args) = command.split_first().expect("clap requires a command");
    let Evaluation {
        decision,
        matched_rules,
    } = policy.check(program, args, options);
    let dangerous_reason = if decision.is_none() {
        policy::dangerous_reason(program, args)
    } else {
        None
    };
    CheckReport {
        command: command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        decision,
        matched_rules,
        dangerous_reason,
    }
}
