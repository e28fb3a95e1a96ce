//! How commands match rules: prefixes, alternatives, program paths,
//! `host_executable`, strictest decision, non-UTF-8 arguments.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use policy::{Decision, Location, MatchOptions, Policy, ProgramEvaluation};

use crate::{check, check_os, check_with, load, prefixes};

const ALLOW: Option<Decision> = Some(Decision::Allow);
const PROMPT: Option<Decision> = Some(Decision::Prompt);
const FORBIDDEN: Option<Decision> = Some(Decision::Forbidden);
const PRESERVE: MatchOptions = MatchOptions {
    preserve_program_paths: true,
};

#[test]
fn prefix_table() {
    let rules = r#"
prefix_rule(["git", ["status", "log"]])
prefix_rule(["cargo", "build", "--release"], decision = "prompt")
prefix_rule(["ls"])
"#;
    let cases: &[(&[&str], Option<Decision>)] = &[
        (&["/usr/bin/git", "status"], ALLOW),
        (&["/usr/bin/git", "log", "-p"], ALLOW),
        (&["/usr/bin/git", "push"], None),
        (&["/usr/bin/git"], None),
        (&["/usr/bin/git", "-C", "x", "status"], None),
        (&["/usr/bin/git", "Status"], None),
        (&["/usr/bin/cargo", "build", "--release", "-p", "x"], PROMPT),
        (&["/usr/bin/cargo", "build"], None),
        (&["/usr/bin/cargo", "build", "--release=1"], None),
        (&["/bin/ls"], ALLOW),
        (&["/bin/ls", "-la", "/"], ALLOW),
        (&["/bin/lsblk"], None),
        (&["/usr/bin/echo", "hi"], None),
    ];
    for (argv, expected) in cases {
        check(rules, argv, *expected);
    }
}

#[test]
fn alternatives_are_resolved_in_the_matched_prefix() {
    let rules =
        r#"prefix_rule([["python3", "python"], "-m", ["pip", "venv"]], decision = "prompt")"#;
    let evaluation = check(rules, &["/usr/bin/python", "-m", "venv", ".venv"], PROMPT);
    assert_eq!(prefixes(&evaluation), [["python", "-m", "venv"]]);
    let evaluation = check(rules, &["/usr/bin/python3", "-m", "pip", "install"], PROMPT);
    assert_eq!(prefixes(&evaluation), [["python3", "-m", "pip"]]);
    check(rules, &["/usr/bin/python3", "-m", "http.server"], None);
    check(rules, &["/usr/bin/python2", "-m", "pip"], None);
}

#[test]
fn default_decision_is_allow() {
    let evaluation = check(
        r#"prefix_rule(pattern = ["make"])"#,
        &["/usr/bin/make", "all"],
        ALLOW,
    );
    assert_eq!(evaluation.matched_rules[0].justification, None);
}

#[test]
fn strictest_decision_wins_and_every_match_is_reported() {
    let rules = r#"
prefix_rule(["git"])
prefix_rule(["git", "push"], decision = "prompt", justification = "pushes are visible to others")
prefix_rule(["git", "push", ["--force", "-f"]], decision = "forbidden", justification = "no force pushes")
prefix_rule(["git", "push"], decision = "allow")
"#;
    let evaluation = check(rules, &["/usr/bin/git", "push", "-f", "origin"], FORBIDDEN);
    assert_eq!(
        prefixes(&evaluation),
        [
            vec!["git"],
            vec!["git", "push"],
            vec!["git", "push", "-f"],
            vec!["git", "push"]
        ]
    );
    let decisions: Vec<Decision> = evaluation
        .matched_rules
        .iter()
        .map(|m| m.decision)
        .collect();
    assert_eq!(
        decisions,
        [
            Decision::Allow,
            Decision::Prompt,
            Decision::Forbidden,
            Decision::Allow
        ]
    );
    assert_eq!(
        evaluation.matched_rules[2].justification.as_deref(),
        Some("no force pushes")
    );
    assert_eq!(
        evaluation.matched_rules[2].location,
        Location {
            file: "test.rules".to_owned(),
            line: 4,
            column: 1
        }
    );
    check(rules, &["/usr/bin/git", "push"], PROMPT);
    check(rules, &["/usr/bin/git", "status"], ALLOW);
}

#[test]
fn program_basename_versus_preserved_paths() {
    let rules = r#"
prefix_rule(["echo"])
prefix_rule(["/usr/local/bin/custom", "--flag"], decision = "prompt")
"#;
    // By default the basename of an absolute path matches.
    check(rules, &["/usr/bin/echo", "hi"], ALLOW);
    check(rules, &["/bin/echo"], ALLOW);
    // A bare name matches as given; a relative path has no basename fallback.
    check(rules, &["echo", "hi"], ALLOW);
    check(rules, &["./echo", "hi"], None);
    check(rules, &["bin/echo", "hi"], None);
    // Rules written with a full path match that path exactly, either way.
    check(rules, &["/usr/local/bin/custom", "--flag", "v"], PROMPT);
    check_with(
        rules,
        &["/usr/local/bin/custom", "--flag", "v"],
        PRESERVE,
        PROMPT,
    );
    check(rules, &["/opt/custom", "--flag"], None);
    // Preserving paths compares the full path only.
    check_with(rules, &["/usr/bin/echo", "hi"], PRESERVE, None);
    check_with(rules, &["echo", "hi"], PRESERVE, ALLOW);
}

#[test]
fn exact_path_rules_take_precedence_over_basename_rules() {
    // As in Codex: basename rules are consulted only when no rule matched
    // the program as given.
    let rules = r#"
prefix_rule(["/opt/git/bin/git", "push"], decision = "forbidden")
prefix_rule(["git"], decision = "prompt")
"#;
    let evaluation = check(rules, &["/opt/git/bin/git", "push"], FORBIDDEN);
    assert_eq!(prefixes(&evaluation), [["/opt/git/bin/git", "push"]]);
    let evaluation = check(rules, &["/opt/git/bin/git", "status"], PROMPT);
    assert_eq!(prefixes(&evaluation), [["git"]]);
    check(rules, &["/usr/bin/git", "push"], PROMPT);
}

#[test]
fn host_executable_restricts_basename_matches() {
    let rules = r#"
prefix_rule(["git", "status"])
prefix_rule(["rg"])
host_executable(name = "git", paths = ["/usr/bin/git", "/opt/homebrew/bin/git"])
"#;
    check(rules, &["/usr/bin/git", "status"], ALLOW);
    check(rules, &["/opt/homebrew/bin/git", "status"], ALLOW);
    check(rules, &["/usr//bin/git", "status"], ALLOW);
    check(rules, &["/tmp/evil/git", "status"], None);
    check(rules, &["/usr/local/bin/git", "status"], None);
    // Other programs are unaffected.
    check(rules, &["/anywhere/rg", "x"], ALLOW);
    // A bare name or a preserved path is compared exactly, without
    // host_executable involvement (Codex does the same).
    check(rules, &["git", "status"], ALLOW);
    check_with(rules, &["/usr/bin/git", "status"], PRESERVE, None);
}

#[test]
fn host_executable_can_deny_every_path() {
    let rules = r#"
host_executable("git", [])
prefix_rule(["git"], decision = "forbidden")
"#;
    check(rules, &["/usr/bin/git", "status"], None);
}

#[test]
fn later_host_executable_replaces_earlier_one() {
    let sources = [
        (
            "system.rules".to_owned(),
            r#"host_executable("git", ["/usr/bin/git"])"#.to_owned(),
        ),
        (
            "user.rules".to_owned(),
            r#"
host_executable("git", ["/home/me/bin/git"])
prefix_rule(["git"], justification = "mine")
"#
            .to_owned(),
        ),
    ];
    let policy = Policy::from_sources(&sources).unwrap();
    let git = |path: &str| {
        policy
            .check(
                &OsString::from(path),
                &[OsString::from("log")],
                MatchOptions::default(),
            )
            .decision
    };
    assert_eq!(git("/home/me/bin/git"), ALLOW);
    assert_eq!(git("/usr/bin/git"), None);
    let evaluation = policy.check(
        &OsString::from("/home/me/bin/git"),
        &[],
        MatchOptions::default(),
    );
    assert_eq!(
        evaluation.matched_rules[0].location.to_string(),
        "user.rules:3:1"
    );
}

#[test]
fn non_utf8_arguments_and_paths() {
    let rules = r#"
prefix_rule(["cat"])
prefix_rule(["grep", "-r"], decision = "prompt")
"#;
    let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
    let opts = MatchOptions::default();
    // After the matched prefix anything goes.
    check_os(
        rules,
        &[bytes(b"/bin/cat"), bytes(b"\xff\xfe")],
        opts,
        ALLOW,
    );
    check_os(
        rules,
        &[bytes(b"/bin/grep"), bytes(b"-r"), bytes(b"caf\xe9")],
        opts,
        PROMPT,
    );
    // A non-UTF-8 token equals no pattern token.
    check_os(rules, &[bytes(b"/bin/grep"), bytes(b"-r\xff")], opts, None);
    // The basename is what counts, even under a non-UTF-8 directory.
    check_os(rules, &[bytes(b"/tmp/\xff/cat"), bytes(b"x")], opts, ALLOW);
    check_os(rules, &[bytes(b"/bin/ca\xff")], opts, None);
    check_os(rules, &[bytes(b"/tmp/\xff/cat")], PRESERVE, None);
}

#[test]
fn empty_policy_matches_nothing() {
    check("", &["/bin/rm", "-rf", "/"], None);
    let policy = Policy::default();
    assert!(policy.is_empty());
    let evaluation = policy.check(&OsString::from("/bin/true"), &[], MatchOptions::default());
    assert_eq!(evaluation.decision, None);
    assert!(evaluation.matched_rules.is_empty());
}

#[test]
fn starlark_code_can_generate_rules() {
    let rules = r#"
READ_ONLY = ["status", "log", "diff", "show"]

def allow_all(tool, subcommands):
    for sub in subcommands:
        prefix_rule([tool, sub], justification = f"{tool} {sub} only reads")

allow_all("git", READ_ONLY)
[prefix_rule([t, "build"], decision = "prompt") for t in ("cargo", "go")]
"#;
    assert_eq!(load(rules).rule_count(), 6);
    let evaluation = check(rules, &["/usr/bin/git", "diff", "HEAD"], ALLOW);
    assert_eq!(
        evaluation.matched_rules[0].justification.as_deref(),
        Some("git diff only reads")
    );
    // The location is the prefix_rule call inside the function.
    assert_eq!(
        evaluation.matched_rules[0].location.to_string(),
        "test.rules:6:9"
    );
    check(rules, &["/usr/bin/go", "build", "./..."], PROMPT);
}

#[test]
fn examples_that_hold_load_fine() {
    let rules = r#"
host_executable("git", ["/usr/bin/git"])
prefix_rule(
    ["git", ["push", "fetch"]],
    decision = "prompt",
    match = ["git push", "git fetch origin 'main branch'", ["git", "push", "--tags"], "/usr/bin/git push"],
    not_match = ["git status", "git", "/tmp/git push", ["gitk", "push"]],
)
prefix_rule(["tuple"], match = ("tuple x",), not_match = None)
"#;
    assert_eq!(load(rules).rule_count(), 2);
}

#[test]
fn positional_arguments_follow_codex_order() {
    let rules =
        r#"prefix_rule(["git", "push"], "prompt", ["git push"], ["git pull"], "shared history")"#;
    let evaluation = check(rules, &["/usr/bin/git", "push"], PROMPT);
    assert_eq!(
        evaluation.matched_rules[0].justification.as_deref(),
        Some("shared history")
    );
}

#[test]
fn evaluation_serializes_as_json() {
    let rules = r#"prefix_rule(["rm"], decision = "forbidden", justification = "use trash")"#;
    let evaluation = check(rules, &["/bin/rm", "x"], FORBIDDEN);
    let json = serde_json::to_value(&evaluation).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "decision": "forbidden",
            "matched_rules": [{
                "matched_prefix": ["rm"],
                "decision": "forbidden",
                "justification": "use trash",
                "location": {"file": "test.rules", "line": 1, "column": 1},
            }],
        })
    );
    let none = check("", &["/bin/rm"], None);
    assert_eq!(
        serde_json::to_value(&none).unwrap(),
        serde_json::json!({"decision": null, "matched_rules": []})
    );
}

#[test]
fn policy_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<policy::Evaluation>();
}

/// `check_program` with the path Bash used and the file it resolves to.
#[track_caller]
fn check_both(
    policy: &Policy,
    used: &str,
    resolved: Option<&str>,
    args: &[&str],
    expected: Option<Decision>,
) -> ProgramEvaluation {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let e = policy.check_program(
        used.as_ref(),
        resolved.map(Path::new),
        &args,
        MatchOptions::default(),
    );
    assert_eq!(
        e.decision, expected,
        "{used} -> {resolved:?} {args:?}: {e:#?}"
    );
    e
}

#[test]
fn a_link_borrows_no_rule_for_escalation() {
    let policy = load(
        r#"
prefix_rule(["cat"])
prefix_rule(["python3"], decision = "prompt")
prefix_rule(["rm"], decision = "forbidden")
prefix_rule(["ls"])
"#,
    );
    // `cat -> python3.11`: allowed by name, no rule for the file.
    check_both(
        &policy,
        "/w/bin/cat",
        Some("/usr/bin/python3.11"),
        &["-c", "x"],
        None,
    );
    // Any name for rm is still forbidden; prompt of either name applies.
    check_both(&policy, "/w/bin/x", Some("/usr/bin/rm"), &["f"], FORBIDDEN);
    check_both(
        &policy,
        "/w/bin/cat",
        Some("/usr/bin/rm"),
        &["f"],
        FORBIDDEN,
    );
    check_both(&policy, "/w/bin/x", Some("/usr/bin/python3"), &[], PROMPT);
    // `ls -> cat`: both names allowed.
    let e = check_both(&policy, "/w/bin/ls", Some("/usr/bin/cat"), &[], ALLOW);
    assert_eq!(e.by_name.decision, ALLOW);
    assert_eq!(e.by_file.as_ref().unwrap().decision, ALLOW);
    assert_eq!(e.matched_rules().count(), 2);
    // The same path: one evaluation.
    let e = check_both(&policy, "/usr/bin/cat", Some("/usr/bin/cat"), &[], ALLOW);
    assert!(e.by_file.is_none());
    // Unresolvable: judged by name.
    check_both(&policy, "/nowhere/cat", None, &[], ALLOW);
    // A directory symlink (`/bin -> usr/bin`) keeps the name.
    check_both(&policy, "/bin/cat", Some("/usr/bin/cat"), &[], ALLOW);
}

#[test]
fn host_executable_is_checked_against_the_resolved_file() {
    let rules = r#"
host_executable(name = "cat", paths = ["/usr/bin/cat"])
prefix_rule(["cat"])
host_executable(name = "python3", paths = ["/usr/bin/python3"])
prefix_rule(["python3"])
"#;
    let mut policy = load(rules);
    // A link named cat in a writable directory, to the real cat: the file
    // is the declared one.
    check_both(&policy, "/w/bin/cat", Some("/usr/bin/cat"), &[], ALLOW);
    // The declared path itself, resolving elsewhere: not the declared file
    // until resolved forms are added; then the name is bound to the file.
    check_both(
        &policy,
        "/usr/bin/python3",
        Some("/usr/bin/python3.11"),
        &[],
        None,
    );
    policy.resolve_host_executables(|p| {
        (p == Path::new("/usr/bin/python3")).then(|| PathBuf::from("/usr/bin/python3.11"))
    });
    let e = check_both(
        &policy,
        "/usr/bin/python3",
        Some("/usr/bin/python3.11"),
        &[],
        ALLOW,
    );
    assert!(e.bound);
    // Another link to python3.11 named python3 is bound too (the file is
    // what was declared); one named cat is not.
    check_both(
        &policy,
        "/w/bin/python3",
        Some("/usr/bin/python3.11"),
        &[],
        ALLOW,
    );
    check_both(
        &policy,
        "/w/bin/cat",
        Some("/usr/bin/python3.11"),
        &[],
        None,
    );
}

#[test]
fn rules_are_listed_with_their_heads() {
    let policy = load(
        "prefix_rule([[\"make\", \"gmake\"], \"all\"])\nprefix_rule([\"rm\"], decision = \"forbidden\")\n",
    );
    let rules: Vec<_> = policy
        .rules()
        .map(|r| (r.heads.to_vec(), r.decision, r.location.line))
        .collect();
    assert_eq!(
        rules,
        vec![
            (
                vec!["make".to_string(), "gmake".to_string()],
                Decision::Allow,
                1
            ),
            (vec!["rm".to_string()], Decision::Forbidden, 2),
        ]
    );
    assert!(policy::code_runner("make").is_some());
}
