//! Codex `.rules` files (Starlark `prefix_rule(...)`) in, an immutable
//! [`Policy`] out, and [`Policy::check`] of one command line. No IO: callers
//! read the files and pass their text.
//!
//! API contract (used by `escalate`'s callers and the server's `check`
//! subcommand); the implementation is in progress.

use std::ffi::OsString;

/// A rule's decision. Ordered by strictness: `Allow < Prompt < Forbidden`;
/// the strictest matching decision wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Prompt,
    Forbidden,
}

/// Where a rule was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// One rule that matched a command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleMatch {
    /// The tokens of the pattern that matched (alternatives resolved).
    pub matched_prefix: Vec<String>,
    pub decision: Decision,
    pub justification: Option<String>,
    pub location: Location,
}

/// The result of [`Policy::check`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evaluation {
    /// Strictest decision among the matches; `None` when no rule matched.
    pub decision: Option<Decision>,
    pub matched_rules: Vec<RuleMatch>,
}

/// How the program token is compared with a rule's first token.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatchOptions {
    /// Match the program's full path instead of its basename.
    pub preserve_program_paths: bool,
}

/// A load failure, located in the source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
}

/// Immutable, evaluated rules.
#[derive(Debug, Default, Clone)]
pub struct Policy {}

impl Policy {
    /// Parses and evaluates `.rules` sources, in order: `(name, text)` where
    /// `name` (usually the path) is used in error locations.
    pub fn from_sources(_sources: &[(String, String)]) -> Result<Policy, Error> {
        Ok(Policy {})
    }

    /// Evaluates `program` (the absolute path the wrapper reported) with its
    /// arguments (`argv[1..]`).
    pub fn check(&self, _program: &OsString, _args: &[OsString], _opts: MatchOptions) -> Evaluation {
        Evaluation { decision: None, matched_rules: Vec::new() }
    }
}

/// The dangerous-command heuristics: `Some(reason)` when a command that
/// matched no rule should prompt anyway.
pub fn dangerous_reason(_program: &OsString, _args: &[OsString]) -> Option<String> {
    None
}
