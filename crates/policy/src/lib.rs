//! Codex `.rules` files (Starlark `prefix_rule(...)`) in, an immutable
//! [`Policy`] out, and [`Policy::check`] of one command line. No IO: callers
//! read the files and pass their text.
//!
//! # The rules language
//!
//! A `.rules` file is a Starlark program (the `starlark` crate's extended
//! dialect, with f-strings) evaluated once at load. Each source is its own
//! module; they are evaluated in the order given. Builtins:
//!
//! - `prefix_rule(pattern, decision="allow", match=None, not_match=None,
//!   justification=None)` (positional order as Codex). `pattern` is a non-empty list; each element is a
//!   string token or a non-empty list of strings (alternatives at that
//!   position). `decision` is `"allow"`, `"prompt"` or `"forbidden"`.
//!   `match`/`not_match` are lists of examples, each a string (split like a
//!   shell does: white space, `'...'`, `"..."`, `\`) or a list of tokens;
//!   after the file is evaluated every `match` example must match the rule and
//!   no `not_match` example may, else loading fails at the rule's location.
//!   Examples see the `host_executable` declarations of the whole file (and of
//!   earlier files), as in Codex.
//! - `host_executable(name, paths)`: `name` is a bare program name, `paths`
//!   absolute paths whose basename is `name`. From then on a rule whose first
//!   token is `name` matches a program by basename only when the program's
//!   path is one of `paths`. A later declaration for the same name replaces
//!   the earlier one (later sources override earlier ones).
//! - `network_rule(host, protocol, decision, justification=None)`: accepted
//!   (and its arguments checked) so Codex files load, but ignored: this crate
//!   has no network policy.
//!
//! # Matching
//!
//! [`Policy::check`] gets the program's path as the wrapper reported it and
//! `argv[1..]`. Comparison is bytewise; a non-UTF-8 argument never equals a
//! pattern token but may follow the matched prefix.
//!
//! 1. Exact: rules whose first token equals the program as given (e.g. a
//!    rule written `["/usr/bin/git", "push"]`).
//! 2. Only when step 1 matched nothing, and not with
//!    [`MatchOptions::preserve_program_paths`]: if the program is an
//!    absolute path, rules whose first token equals its basename, unless a
//!    `host_executable` for that basename lists other paths only.
//!
//! The remaining pattern tokens must equal the leading arguments (prefix
//! match). Every matching rule is reported, in the order written; the
//! decision is the strictest one (`forbidden` > `prompt` > `allow`).
//!
//! # Dangerous commands
//!
//! [`dangerous_reason`] flags commands that matched no rule but should prompt
//! anyway; the list is in the [`dangerous`] module's documentation.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

pub mod dangerous;
mod load;
mod split;

pub use dangerous::{DANGEROUS_PROGRAMS, dangerous_reason};

/// A rule's decision. Ordered by strictness: `Allow < Prompt < Forbidden`;
/// the strictest matching decision wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Prompt,
    Forbidden,
}

impl Decision {
    /// The spelling used in `.rules` files.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Prompt => "prompt",
            Decision::Forbidden => "forbidden",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
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

impl Evaluation {
    fn from_matches(matched_rules: Vec<RuleMatch>) -> Evaluation {
        let decision = matched_rules.iter().map(|m| m.decision).max();
        Evaluation {
            decision,
            matched_rules,
        }
    }
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
    /// `location` is `file:line:col` (1-based), or just `file` when Starlark
    /// gave no position.
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
}

/// One `prefix_rule`, its first-token alternatives kept together.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Alternatives for the program token, deduplicated.
    pub(crate) heads: Vec<String>,
    /// Alternatives for each following token; none is empty.
    pub(crate) rest: Vec<Vec<String>>,
    pub(crate) decision: Decision,
    pub(crate) justification: Option<String>,
    pub(crate) location: Location,
}

/// `host_executable` declarations: bare name → allowed absolute paths.
pub(crate) type HostExecutables = HashMap<String, Vec<PathBuf>>;

/// Immutable, evaluated rules.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    /// First token → indices into `rules`, ascending (the order written).
    by_program: HashMap<String, Vec<usize>>,
    host_executables: HostExecutables,
}

impl Policy {
    /// Parses and evaluates `.rules` sources, in order: `(name, text)` where
    /// `name` (usually the path) is used in error locations.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Policy, Error> {
        let loaded = load::load(sources)?;
        let mut by_program: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, rule) in loaded.rules.iter().enumerate() {
            for head in &rule.heads {
                by_program.entry(head.clone()).or_default().push(index);
            }
        }
        Ok(Policy {
            rules: loaded.rules,
            by_program,
            host_executables: loaded.host_executables,
        })
    }

    /// The number of `prefix_rule` calls loaded (a rule with alternatives
    /// for its first token counts once).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Every first token of every rule: the program names (or paths) a rule
    /// can match. A program whose path and basename are both absent matches
    /// no rule.
    pub fn program_tokens(&self) -> impl ExactSizeIterator<Item = &str> {
        self.by_program.keys().map(String::as_str)
    }

    /// Whether no rule was loaded.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Evaluates `program` (the absolute path the wrapper reported) with its
    /// arguments (`argv[1..]`). Costs one hash lookup (two for the basename
    /// fallback) plus a prefix comparison per rule for that program.
    pub fn check(&self, program: &OsString, args: &[OsString], opts: MatchOptions) -> Evaluation {
        let index = Index {
            rules: &self.rules,
            by_program: &self.by_program,
            host_executables: &self.host_executables,
        };
        Evaluation::from_matches(index.matches(program, args, opts))
    }
}

/// Borrowed view of rules used by [`Policy::check`] and by example validation
/// at load (which checks each rule alone, with the file's host executables).
pub(crate) struct Index<'a> {
    pub(crate) rules: &'a [Rule],
    pub(crate) by_program: &'a HashMap<String, Vec<usize>>,
    pub(crate) host_executables: &'a HostExecutables,
}

impl Index<'_> {
    pub(crate) fn matches(
        &self,
        program: &OsStr,
        args: &[OsString],
        opts: MatchOptions,
    ) -> Vec<RuleMatch> {
        // Rule tokens are UTF-8: a non-UTF-8 program equals none of them.
        let exact = program
            .to_str()
            .map(|p| self.matches_for(p, args))
            .unwrap_or_default();
        if !exact.is_empty() || opts.preserve_program_paths {
            return exact;
        }
        let path = Path::new(program);
        if !path.is_absolute() {
            return Vec::new();
        }
        let Some(basename) = path.file_name().and_then(OsStr::to_str) else {
            return Vec::new();
        };
        if let Some(paths) = self.host_executables.get(basename)
            && !paths.iter().any(|allowed| allowed == path)
        {
            return Vec::new();
        }
        self.matches_for(basename, args)
    }

    fn matches_for(&self, head: &str, args: &[OsString]) -> Vec<RuleMatch> {
        let Some(indices) = self.by_program.get(head) else {
            return Vec::new();
        };
        indices
            .iter()
            .filter_map(|&index| {
                let rule = &self.rules[index];
                let prefix = match_prefix(&rule.rest, args)?;
                let matched_prefix = std::iter::once(head.to_owned()).chain(prefix).collect();
                Some(RuleMatch {
                    matched_prefix,
                    decision: rule.decision,
                    justification: rule.justification.clone(),
                    location: rule.location.clone(),
                })
            })
            .collect()
    }
}

/// The alternatives chosen when `args` starts with `pattern`.
fn match_prefix(pattern: &[Vec<String>], args: &[OsString]) -> Option<Vec<String>> {
    if args.len() < pattern.len() {
        return None;
    }
    pattern
        .iter()
        .zip(args)
        .map(|(alternatives, arg)| {
            let arg = arg.as_encoded_bytes();
            alternatives
                .iter()
                .find(|alt| alt.as_bytes() == arg)
                .cloned()
        })
        .collect()
}
