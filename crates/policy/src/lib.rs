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
//! # Both names of a program
//!
//! The path Bash used may be a symlink to another program (`cat ->
//! /usr/bin/python3`). [`Policy::check_program`] evaluates the path as
//! used and the file it resolves to (which the caller finds: this crate
//! does no IO), and combines them so that a link borrows no rule: the
//! stricter decision wins, and for this purpose *no rule* is stricter than
//! `allow` (a program escalates only when both names are allowed), while
//! `prompt` and `forbidden` of either name apply. `host_executable` is
//! checked against the resolved file; a name whose `host_executable`
//! declaration lists the resolved file (once the caller added resolved
//! forms with [`Policy::resolve_host_executables`]) is bound to it, and the
//! file's own name then needs no rule of its own (`host_executable(name =
//! "python3", paths = ["/usr/bin/python3"])` with Debian's `python3 ->
//! python3.11`).
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
pub mod runners;
mod split;

pub use dangerous::{DANGEROUS_PROGRAMS, dangerous_reason};
pub use runners::{CODE_RUNNERS, code_runner};

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

/// The result of [`Policy::check_program`]: the program judged by the
/// name Bash used and by the file it resolves to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProgramEvaluation {
    /// By the path as used (`host_executable` checked against the file).
    pub by_name: Evaluation,
    /// By the resolved file, when it is another path than the one used;
    /// `None` when they are the same or the path does not resolve.
    pub by_file: Option<Evaluation>,
    /// The name is bound to the file by its `host_executable` declaration:
    /// the file's own name needs no rule.
    pub bound: bool,
    /// The combined decision (see the crate docs): `None` means the program
    /// runs in the sandbox.
    pub decision: Option<Decision>,
}

impl ProgramEvaluation {
    /// Every matching rule of both evaluations, by name first.
    pub fn matched_rules(&self) -> impl Iterator<Item = &RuleMatch> {
        let by_file = self.by_file.iter().flat_map(|e| &e.matched_rules);
        self.by_name.matched_rules.iter().chain(by_file)
    }
}

/// The decision for a program known by two names: the stricter one, where
/// no rule counts as stricter than `allow` unless the name is bound to the
/// file.
fn combine(by_name: &Evaluation, by_file: Option<&Evaluation>, bound: bool) -> Option<Decision> {
    let Some(by_file) = by_file else {
        return by_name.decision;
    };
    // `None < Some(_)`: the strictest decision either name has.
    match by_name.decision.max(by_file.decision) {
        Some(Decision::Allow)
            if !bound && (by_name.decision.is_none() || by_file.decision.is_none()) =>
        {
            None
        }
        strictest => strictest,
    }
}

/// One rule as loaded, for reports (`check`, start-up warnings).
#[derive(Debug, Clone, Copy)]
pub struct RuleSummary<'a> {
    /// The alternatives for the program token.
    pub heads: &'a [String],
    pub decision: Decision,
    pub location: &'a Location,
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

    /// Every rule, in the order loaded.
    pub fn rules(&self) -> impl Iterator<Item = RuleSummary<'_>> {
        self.rules.iter().map(|rule| RuleSummary {
            heads: &rule.heads,
            decision: rule.decision,
            location: &rule.location,
        })
    }

    /// Adds, to every `host_executable` declaration, what its paths resolve
    /// to (`resolve` returns `None` for a path that does not, or resolves to
    /// itself), so that a symlink declared by the user (Debian's
    /// `/usr/bin/python3 -> python3.11`) matches the file it names. The
    /// caller resolves; this crate does no IO.
    pub fn resolve_host_executables(&mut self, resolve: impl Fn(&Path) -> Option<PathBuf>) {
        for paths in self.host_executables.values_mut() {
            let resolved: Vec<PathBuf> = paths
                .iter()
                .filter_map(|p| resolve(p))
                .filter(|r| !paths.contains(r))
                .collect();
            for r in resolved {
                if !paths.contains(&r) {
                    paths.push(r);
                }
            }
        }
    }

    /// Evaluates `program` (the absolute path the wrapper reported) with its
    /// arguments (`argv[1..]`). Costs one hash lookup (two for the basename
    /// fallback) plus a prefix comparison per rule for that program.
    pub fn check(&self, program: &OsString, args: &[OsString], opts: MatchOptions) -> Evaluation {
        Evaluation::from_matches(
            self.index()
                .matches(program, args, opts, Path::new(program)),
        )
    }

    /// Evaluates a program by the path Bash used (`used`, as the wrapper
    /// reported it) and by the file it resolves to (`resolved`, absolute,
    /// every symlink followed; `None` when it does not resolve), and
    /// combines the two (see the crate docs).
    pub fn check_program(
        &self,
        used: &OsStr,
        resolved: Option<&Path>,
        args: &[OsString],
        opts: MatchOptions,
    ) -> ProgramEvaluation {
        let index = self.index();
        let file = resolved.unwrap_or(Path::new(used));
        let by_name = Evaluation::from_matches(index.matches(used, args, opts, file));
        let by_file = resolved
            .filter(|r| r.as_os_str() != used)
            .map(|r| Evaluation::from_matches(index.matches(r.as_os_str(), args, opts, r)));
        let bound = by_file.is_some()
            && !opts.preserve_program_paths
            && Path::new(used)
                .file_name()
                .and_then(OsStr::to_str)
                .and_then(|name| self.host_executables.get(name))
                .is_some_and(|paths| paths.iter().any(|p| p == file));
        let decision = combine(&by_name, by_file.as_ref(), bound);
        ProgramEvaluation {
            by_name,
            by_file,
            bound,
            decision,
        }
    }

    fn index(&self) -> Index<'_> {
        Index {
            rules: &self.rules,
            by_program: &self.by_program,
            host_executables: &self.host_executables,
        }
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
    /// Rules matching `program` (the path as given) and `args`;
    /// `host_executable` declarations are checked against `file`, the file
    /// that runs (the program itself, or what it resolves to).
    pub(crate) fn matches(
        &self,
        program: &OsStr,
        args: &[OsString],
        opts: MatchOptions,
        file: &Path,
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
            && !paths.iter().any(|allowed| allowed == file)
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
