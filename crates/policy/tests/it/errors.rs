//! Load failures: each names `file:line:col` and the offending value.

use policy::{Error, Policy};

use crate::load_error;

/// `(rules, expected error display)`: the whole display must match.
#[test]
fn error_table() {
    let cases: &[(&str, &str)] = &[
        (
            r#"prefix_rule(["git"], decision = "maybe")"#,
            r#"test.rules:1:1: invalid decision "maybe": expected "allow", "prompt" or "forbidden""#,
        ),
        (
            "\nif True:\n    prefix_rule([\"git\", \"push\"], match = [\"git status\"])",
            r#"test.rules:3:5: match example ["git", "status"] does not match rule ["git", "push"]"#,
        ),
        (
            "x = 1\nprefix_rule(\n    [\"git\", [\"push\", \"pull\"]],\n    not_match = [\"git\", \"git pull --rebase\"],\n)",
            r#"test.rules:2:1: not_match example ["git", "pull", "--rebase"] matches rule ["git", ["push", "pull"]]"#,
        ),
        (
            r#"prefix_rule([])"#,
            "test.rules:1:1: pattern cannot be empty",
        ),
        (
            r#"prefix_rule("git")"#,
            "test.rules:1:1: pattern must be a list (got string)",
        ),
        (
            r#"prefix_rule(["git", []])"#,
            "test.rules:1:1: pattern element 1 has no alternatives",
        ),
        (
            r#"prefix_rule(["git", 1])"#,
            "test.rules:1:1: pattern element 1 must be a string or a list of strings (got int)",
        ),
        (
            r#"prefix_rule([["a", None]])"#,
            "test.rules:1:1: pattern element 0: alternatives must be strings (got NoneType)",
        ),
        (
            r#"prefix_rule(["git"], justification = "  ")"#,
            "test.rules:1:1: justification cannot be empty",
        ),
        (
            r#"prefix_rule(["git"], decision = 1)"#,
            "test.rules:1:1: decision must be a string (got int)",
        ),
        (
            r#"prefix_rule(["git"], match = [""])"#,
            "test.rules:1:1: match example cannot be empty",
        ),
        (
            r#"prefix_rule(["git"], match = [[]])"#,
            "test.rules:1:1: match example cannot be empty",
        ),
        (
            r#"prefix_rule(["git"], match = ["git 'oops"])"#,
            r#"test.rules:1:1: match example: unterminated single quote in "git 'oops""#,
        ),
        (
            r#"prefix_rule(["git"], not_match = "git")"#,
            "test.rules:1:1: not_match must be a list of examples (got string)",
        ),
        (
            r#"host_executable("git", ["usr/bin/git"])"#,
            r#"test.rules:1:1: host_executable path "usr/bin/git" is not absolute"#,
        ),
        (
            r#"host_executable("git", ["/usr/bin/gitk"])"#,
            r#"test.rules:1:1: host_executable path "/usr/bin/gitk" must have basename "git""#,
        ),
        (
            r#"host_executable("bin/git", ["/usr/bin/git"])"#,
            r#"test.rules:1:1: host_executable name must be a bare program name (got "bin/git")"#,
        ),
        (
            r#"network_rule("example.com", "ftp", "allow")"#,
            r#"test.rules:1:1: invalid network_rule protocol "ftp": expected http, https, socks5_tcp or socks5_udp"#,
        ),
    ];
    for (rules, expected) in cases {
        assert_eq!(load_error(rules), *expected, "\n--- rules ---\n{rules}");
    }
}

/// Errors that come from Starlark itself: checked for location and gist,
/// since the wording is the `starlark` crate's.
#[test]
fn starlark_errors_are_located() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "prefix_rule([\"git\"]\nprefix_rule([\"ls\"])",
            "test.rules:2:1: ",
            "Parse error",
        ),
        (
            "\n  prefix_rule([\"git\"])",
            "test.rules:2:1: ",
            "indentation",
        ),
        (
            "x = 1; y = 2; prefix_rule([\"git\"], decision = \"no\")",
            "test.rules:1:15: ",
            "\"no\"",
        ),
        (
            "x = 1\nprefix_rul([\"git\"])",
            "test.rules:2:1: ",
            "prefix_rul",
        ),
        ("prefix_rule()", "test.rules:1:1: ", "pattern"),
        (
            "prefix_rule([\"git\"], bogus = 1)",
            "test.rules:1:1: ",
            "bogus",
        ),
        ("fail(\"boom\")", "test.rules:1:1: ", "boom"),
        (
            "load(\"other.rules\", \"x\")",
            "test.rules:1:1: ",
            "other.rules",
        ),
    ];
    for (rules, location, gist) in cases {
        let error = load_error(rules);
        assert!(
            error.starts_with(location) && error.contains(gist),
            "expected `{location}...{gist}...`, got `{error}`\n--- rules ---\n{rules}"
        );
    }
}

#[test]
fn match_examples_see_host_executables_declared_later_in_the_file() {
    let rules = r#"
prefix_rule(["git"], match = ["/opt/bin/git status"])
host_executable("git", ["/usr/bin/git"])
"#;
    assert_eq!(
        load_error(rules),
        r#"test.rules:2:1: match example ["/opt/bin/git", "status"] does not match rule ["git"]"#
    );
}

#[test]
fn error_names_the_failing_source_and_has_structure() {
    let sources = [
        (
            "/etc/codex/rules/a.rules".to_owned(),
            r#"prefix_rule(["ls"])"#.to_owned(),
        ),
        (
            "/home/me/.codex/rules/b.rules".to_owned(),
            "\nprefix_rule([\"ls\"], decision = \"deny\")".to_owned(),
        ),
    ];
    let Err(Error::Invalid { location, message }) = Policy::from_sources(&sources) else {
        panic!("the second source should fail to load");
    };
    assert_eq!(location, "/home/me/.codex/rules/b.rules:2:1");
    assert!(
        message.starts_with(r#"invalid decision "deny""#),
        "{message}"
    );
}

#[test]
fn a_broken_file_is_never_skipped() {
    // One good file and one broken one: the whole load fails.
    let sources = [
        ("good.rules".to_owned(), r#"prefix_rule(["ls"])"#.to_owned()),
        ("bad.rules".to_owned(), "prefix_rule(".to_owned()),
    ];
    let error = Policy::from_sources(&sources).unwrap_err().to_string();
    assert!(error.starts_with("bad.rules:"), "{error}");
}

#[test]
fn recursion_is_an_error_not_a_crash() {
    let error = load_error("def f():\n    return f()\nf()");
    assert!(error.starts_with("test.rules:2:12: "), "{error}");
}
