//! Integration tests of the `policy` crate: loading `.rules` text and
//! checking command lines, through one data-driven [`check`] helper.

mod dangerous;
mod errors;
mod matching;
mod scale;

use std::ffi::OsString;

use policy::{Decision, Evaluation, MatchOptions, Policy};

/// Loads `rules` as one file named `test.rules`, panicking with the error.
#[track_caller]
fn load(rules: &str) -> Policy {
    match Policy::from_sources(&[("test.rules".to_owned(), rules.to_owned())]) {
        Ok(policy) => policy,
        Err(error) => panic!("rules failed to load: {error}\n--- rules ---\n{rules}"),
    }
}

/// Checks `argv` (`argv[0]` is the program path) against `rules` with
/// default options and asserts the decision; returns the evaluation for
/// further assertions.
#[track_caller]
fn check(rules: &str, argv: &[&str], expected: Option<Decision>) -> Evaluation {
    check_with(rules, argv, MatchOptions::default(), expected)
}

#[track_caller]
fn check_with(
    rules: &str,
    argv: &[&str],
    opts: MatchOptions,
    expected: Option<Decision>,
) -> Evaluation {
    let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
    check_os(rules, &argv, opts, expected)
}

#[track_caller]
fn check_os(
    rules: &str,
    argv: &[OsString],
    opts: MatchOptions,
    expected: Option<Decision>,
) -> Evaluation {
    let evaluation = check_policy(&load(rules), argv, opts);
    assert_eq!(
        evaluation.decision, expected,
        "\n--- rules ---\n{rules}\n--- argv ---\n{argv:?}\n--- options ---\n{opts:?}\n--- evaluation ---\n{evaluation:#?}"
    );
    evaluation
}

/// Checks `argv` (`argv[0]` is the program) against a loaded policy.
fn check_policy<S: AsRef<std::ffi::OsStr>>(
    policy: &Policy,
    argv: &[S],
    opts: MatchOptions,
) -> Evaluation {
    let argv: Vec<OsString> = argv.iter().map(|arg| arg.as_ref().to_owned()).collect();
    let (program, args) = argv.split_first().expect("argv has a program");
    policy.check(program, args, opts)
}

/// The matched prefixes of an evaluation, for compact assertions.
fn prefixes(evaluation: &Evaluation) -> Vec<Vec<&str>> {
    evaluation
        .matched_rules
        .iter()
        .map(|m| m.matched_prefix.iter().map(String::as_str).collect())
        .collect()
}

/// Loads `rules` expecting failure; returns the error's display.
#[track_caller]
fn load_error(rules: &str) -> String {
    match Policy::from_sources(&[("test.rules".to_owned(), rules.to_owned())]) {
        Ok(policy) => panic!(
            "rules loaded ({} rules) but should fail:\n{rules}",
            policy.rule_count()
        ),
        Err(error) => error.to_string(),
    }
}
