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
        "--pass-env",
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

/// `--report-fd`: the launcher writes what it enforced (JSON) on the pipe
/// and closes it before the command runs: the reader sees the end of the
/// pipe while the command still waits (here, for its stdin), so no
/// supervisor kept a copy. The fd is set up by `sh` (`3>&1`): the test's
/// pipe is fd 3 of the launcher, its stdout goes to stderr.
#[test]
fn the_launcher_reports_on_its_fd_and_closes_it_before_the_command_runs() {
    use std::io::{Read, Write};
    let small = crate::util::sandbox_exec();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join(".git")).unwrap();
    let spec = serde_json::json!({
        "writable_roots": [root],
        "read_only_subpaths": [root.join(".git")],
        "network": false
    })
    .to_string();
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"exec "$0" --report-fd 3 --spec "$1" -- /bin/sh -c 'read line; echo "got $line"' 3>&1 1>&2"#)
        .arg(&small)
        .arg(&spec)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Read on a thread: a launcher that kept the pipe open until the
    // command's end would block the read for good.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut report = String::new();
        let read = stdout.read_to_string(&mut report).map(|_| report);
        let _ = tx.send(read);
    });
    let report = rx.recv_timeout(std::time::Duration::from_secs(60));
    let still_running = child.try_wait().unwrap().is_none();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "report: {report:?}\nstatus: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report
        .expect("no end of the report pipe while the command ran")
        .unwrap();
    assert!(still_running, "{text}");
    let applied: serde_json::Value = serde_json::from_str(&report).expect(&text);
    assert!(applied["landlock_abi"].as_u64().is_some(), "{text}");
    // The read-only subpath is reported protected exactly when the
    // launcher got a mount namespace.
    let protected = applied["read_only_subpaths"] == serde_json::json!([root.join(".git")]);
    let unprotected =
        applied["unprotected_subpaths"][0]["path"] == serde_json::json!(root.join(".git"));
    assert!(protected != unprotected, "{text}");
    assert!(out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("got go"),
        "{text}"
    );
}

/// Every error the binary prints names its cause once (a chain whose cause
/// is already in its message is not printed twice).
#[test]
fn start_up_errors_name_each_cause_once() {
    let home = codex_home_with(&[]);
    let bad_rules = home.path().join("bad.rules");
    std::fs::write(
        &bad_rules,
        "prefix_rule(pattern = [\"x\"], decision = \"maybe\")\n",
    )
    .unwrap();
    let bad_config = home.path().join("bad.toml");
    std::fs::write(&bad_config, "bogus = 1\n").unwrap();
    let missing = home.path().join("missing.rules");
    let (bad_rules, bad_config, missing) = (
        bad_rules.display().to_string(),
        bad_config.display().to_string(),
        missing.display().to_string(),
    );
    for (args, cause) in [
        (
            vec!["--rules", missing.as_str(), "check", "--", "ls"],
            "No such file or directory",
        ),
        (
            vec!["--rules", bad_rules.as_str(), "check", "--", "ls"],
            "invalid decision \"maybe\"",
        ),
        (
            vec!["--config", bad_config.as_str(), "check", "--", "ls"],
            "unknown field `bogus`",
        ),
        (
            vec!["--default-timeout-ms", "0", "check", "--", "ls"],
            "out of range",
        ),
        (
            vec!["--sandbox", "nope", "check", "--", "ls"],
            "invalid value 'nope'",
        ),
    ] {
        let out = run_server(&args, home.path());
        let text = describe(&args, &out);
        assert_ne!(out.status.code(), Some(0), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.matches(cause).count(), 1, "{text}");
    }
}

/// `check` judges the name given and the file it resolves to, and says
/// when they disagree; `allow` rules for programs that run project code
/// are warned about.
#[test]
fn check_shows_both_names_and_warns_about_code_runners() {
    let home = codex_home_with(&[(
        "a.rules",
        "prefix_rule(pattern = [\"cat\"])\nprefix_rule(pattern = [\"make\"])\n\
         prefix_rule(pattern = [\"rm\"], decision = \"forbidden\")\n",
    )]);
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3");
    let rm = std::fs::canonicalize("/bin/rm").unwrap();
    let links = tempfile::tempdir().unwrap();
    let cat = links.path().join("cat");
    std::os::unix::fs::symlink(&python, &cat).unwrap();
    let x = links.path().join("x");
    std::os::unix::fs::symlink(&rm, &x).unwrap();

    let cat = cat.display().to_string();
    let args = ["check", "--", &cat, "-c", "print(1)"];
    let out = run_server(&args, home.path());
    assert!(out.status.success(), "{}", describe(&args, &out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], Value::Null, "{v}");
    assert_eq!(v["matched_rules"][0]["decision"], "allow", "{v}");
    assert_eq!(v["file"], python.display().to_string(), "{v}");
    assert_eq!(v["file_evaluation"]["decision"], Value::Null, "{v}");
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("allows both names")),
        "{v}"
    );

    let x = x.display().to_string();
    let args = ["check", "--", &x, "f"];
    let v: Value = serde_json::from_slice(&run_server(&args, home.path()).stdout).unwrap();
    assert_eq!(v["decision"], "forbidden", "{v}");
    assert_eq!(v["matched_rules"], serde_json::json!([]), "{v}");
    assert_eq!(v["file_evaluation"]["decision"], "forbidden", "{v}");

    let args = ["check", "--", "make", "all"];
    let v: Value = serde_json::from_slice(&run_server(&args, home.path()).stdout).unwrap();
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("a.rules:2:1") && warnings.contains("runs the project's build file"),
        "{v}"
    );
}

/// `--pass-env` refuses names that select code or configuration.
#[test]
fn pass_env_refuses_names_that_load_code() {
    let home = codex_home_with(&[]);
    for name in [
        "LD_PRELOAD",
        "HOME",
        "GIT_DIR",
        "XDG_CONFIG_HOME",
        "PATH",
        "not-a-name",
    ] {
        let args = ["--pass-env", name, "check", "--", "ls"];
        let out = run_server(&args, home.path());
        let text = describe(&args, &out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(name),
            "{text}"
        );
    }
    let args = ["--pass-env", "MY_TOOL_OPTS", "check", "--", "ls"];
    let out = run_server(&args, home.path());
    assert!(out.status.success(), "{}", describe(&args, &out));
}

/// `doctor` runs the real sandbox: here (root, namespaces, Landlock) every
/// protection holds, the exec check and the set-id filter included; with
/// `--exec-check bash-only` the exec check's row is the gap it is.
#[test]
fn doctor_shows_every_protection_and_the_exec_check() {
    let home = codex_home_with(&[]);
    let work = tempfile::tempdir().unwrap();
    let bash = crate::util::bash().display().to_string();
    let doctor = |extra: &[&str]| {
        let mut args = vec!["--bash", &bash];
        args.extend_from_slice(extra);
        args.push("doctor");
        let out = std::process::Command::new(server_bin())
            .args(&args)
            .current_dir(work.path())
            .env("CODEX_HOME", home.path())
            .env("RUST_LOG", "off")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            describe(&args, &out),
        )
    };
    let (table, what) = doctor(&[]);
    for protection in [
        "rules for execs from any process",
        "set-uid and set-gid files",
        "your kernel keyrings",
        "writes outside the writable roots",
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(protection)),
            "{protection}:\n{what}"
        );
    }
    let (table, what) = doctor(&["--exec-check", "bash-only"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("GAP ") && l.contains("--exec-check bash-only")),
        "{what}"
    );
}
