//! The command line without MCP: `check`, start-up failures, `--help`.

use serde_json::Value;

use std::path::Path;

use crate::util::{describe, run_server, server_bin};

fn codex_home_with(rules: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for (name, text) in rules {
        std::fs::write(dir.path().join("rules").join(name), text).unwrap();
    }
    dir
}

#[test]
fn check_prints_the_decision_as_json() {
    let home = codex_home_with(&[(
        "git.rules",
        r#"prefix_rule(pattern = ["git", "push"], decision = "forbidden", justification = "pushing is for humans")"#,
    )]);
    let args = ["check", "--", "git", "push", "origin", "main"];
    let out = run_server(&args, home.path());
    assert!(out.status.success(), "{}", describe(&args, &out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "forbidden", "{v}");
    let rule = &v["matched_rules"][0];
    assert_eq!(
        rule["matched_prefix"],
        serde_json::json!(["git", "push"]),
        "{v}"
    );
    assert_eq!(rule["justification"], "pushing is for humans", "{v}");
    assert_eq!(rule["location"]["line"], 1, "{v}");

    let args = ["check", "--", "git", "status"];
    let out = run_server(&args, home.path());
    assert!(out.status.success(), "{}", describe(&args, &out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], Value::Null, "{v}");
    assert_eq!(v["matched_rules"], serde_json::json!([]), "{v}");
}

#[test]
fn check_takes_extra_rules_files() {
    let home = codex_home_with(&[]);
    let extra = home.path().join("extra.rules");
    std::fs::write(
        &extra,
        r#"prefix_rule(pattern = ["ls"], decision = "prompt")"#,
    )
    .unwrap();
    let extra = extra.display().to_string();
    let args = ["check", "--rules", &extra, "--", "ls", "-l"];
    let out = run_server(&args, home.path());
    assert!(out.status.success(), "{}", describe(&args, &out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "prompt", "{v}");
}

#[test]
fn check_preserve_program_paths_matches_full_paths_only() {
    let home = codex_home_with(&[(
        "t.rules",
        r#"prefix_rule(pattern = ["touch"], decision = "forbidden")"#,
    )]);
    for (args, expected) in [
        (vec!["check", "--", "/usr/bin/touch", "x"], "forbidden"),
        (
            vec![
                "check",
                "--preserve-program-paths",
                "--",
                "/usr/bin/touch",
                "x",
            ],
            "null",
        ),
    ] {
        let out = run_server(&args, home.path());
        assert!(out.status.success(), "{}", describe(&args, &out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["decision"].to_string().trim_matches('"'),
            expected,
            "{}",
            describe(&args, &out)
        );
    }
}

#[test]
fn broken_rules_stop_start_up_with_their_location() {
    let home = codex_home_with(&[(
        "bad.rules",
        "prefix_rule(pattern = [\"ls\"])\nprefix_rule(pattern = [], decision = \"allow\")\n",
    )]);
    let bad = home.path().join("rules/bad.rules").display().to_string();
    for args in [vec!["check", "--", "ls"], vec!["--bash", "/bin/false"]] {
        let out = run_server(&args, home.path());
        let text = describe(&args, &out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with(&format!("{bad}:2:")), "{text}");
        assert!(out.stdout.is_empty(), "{text}");
    }
}

#[test]
fn help_and_version() {
    let home = codex_home_with(&[]);
    let out = run_server(&["--help"], home.path());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--execve",
        "--bash",
        "--preserve-program-paths",
        "--rules",
        "--sandbox",
        "--writable-root",
        "--network",
        "--config",
        "--elicitation-timeout-secs",
        "--default-timeout-ms",
        "--output-head-bytes",
        "check",
    ] {
        assert!(help.contains(flag), "{flag} not in --help:\n{help}");
    }
    let out = run_server(&["--version"], home.path());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("codex-exec-mcp-server "));
}

#[test]
fn config_file_errors_name_the_file() {
    let home = codex_home_with(&[]);
    let config = home.path().join("server.toml");
    std::fs::write(&config, "sandbox = \"nope\"\n").unwrap();
    let config = config.display().to_string();
    let args = ["--config", &config, "check", "--", "ls"];
    let out = run_server(&args, home.path());
    assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&config),
        "{}",
        describe(&args, &out)
    );
}

#[test]
fn config_file_supplies_rules() {
    let home = codex_home_with(&[]);
    let rules = home.path().join("from-config.rules");
    std::fs::write(
        &rules,
        r#"prefix_rule(pattern = ["ls"], decision = "forbidden")"#,
    )
    .unwrap();
    let config = home.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "rules = [{:?}]\nsandbox = \"read-only\"\n",
            rules.display().to_string()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let args = ["--config", &config, "check", "--", "ls"];
    let out = run_server(&args, home.path());
    assert!(out.status.success(), "{}", describe(&args, &out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "forbidden", "{}", describe(&args, &out));
}

/// Both launchers: `codex-sandbox-exec` (beside the server, what it uses)
/// and the server's own `sandbox-exec` mode (its fallback).
#[test]
fn sandbox_launchers_confine_then_exec() {
    let small = crate::util::sandbox_exec();
    let server = server_bin();
    let launchers: [(&Path, &[&str], &str); 2] = [
        (&small, &[], "codex-sandbox-exec: usage:"),
        (
            &server,
            &["sandbox-exec"],
            "codex-exec-mcp-server sandbox-exec: usage:",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let spec =
        serde_json::json!({"writable_roots": [], "read_only_subpaths": [], "network": false})
            .to_string();
    let script = format!("touch {}/x; echo status=$?", dir.path().display());
    for (program, mode, usage) in launchers {
        let run = |args: &[&str]| {
            let out = std::process::Command::new(program)
                .args(mode)
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let text = format!(
                "{} {mode:?} {args:?}: {:?}\nstdout: {}\nstderr: {}",
                program.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out, text)
        };
        let (out, text) = run(&["--spec", &spec, "--", "/bin/sh", "-c", &script]);
        assert!(out.status.success(), "{text}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "status=1\n", "{text}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Read-only file system")
                || String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{text}"
        );
        assert!(!dir.path().join("x").exists(), "{text}");

        let (out, text) = run(&["--", "/bin/true"]);
        assert_eq!(out.status.code(), Some(126), "{text}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with(usage),
            "{text}"
        );

        let (out, text) = run(&["--spec", "{}", "--", "/bin/true"]);
        assert_eq!(out.status.code(), Some(126), "{text}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid --spec"),
            "{text}"
        );
    }
}
