//! Per-exec decisions: `.rules` allow/prompt/forbidden, elicitation answers,
//! and the fallbacks when nobody can be asked. A read-only sandbox makes
//! escalation visible: only an escalated `touch` can create a file.

use crate::util::{Reply, Session, setup};

const PROMPT_TOUCH: &str = r#"prefix_rule(pattern = ["touch"], decision = "prompt")"#;

async fn touch(s: &Session, name: &str) -> (crate::util::Shell, bool) {
    let path = s.work.join(name);
    let r = s
        .shell(&format!("touch {}; echo status=$?", path.display()))
        .await;
    (r, path.exists())
}

async fn which(s: &Session, program: &str) -> String {
    s.shell(&format!("command -v {program}"))
        .await
        .output
        .trim_end()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rule_runs_inside_the_sandbox() {
    let s = setup().arg("--sandbox").arg("read-only").start().await;
    let (r, created) = touch(&s, "f").await;
    assert!(!created, "{r:?}");
    assert!(
        crate::util::refused(&r.output) && r.output.ends_with("status=1\n"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_escalates_out_of_the_sandbox() {
    let s = setup()
        .rules(
            "a.rules",
            r#"prefix_rule(pattern = ["touch"], decision = "allow")"#,
        )
        .arg("--sandbox")
        .arg("read-only")
        .start()
        .await;
    let (r, created) = touch(&s, "f").await;
    assert!(created, "{r:?}");
    assert_eq!(r.output, "status=0\n");
    assert!(s.asked().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_denies_with_the_justification() {
    let s = setup()
        .rules(
            "a.rules",
            r#"prefix_rule(pattern = ["touch"], decision = "forbidden", justification = "use the editor instead")"#,
        )
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let (r, created) = touch(&s, "f").await;
    assert!(!created, "{r:?}");
    assert!(r.output.starts_with("Execution denied: "), "{r:?}");
    assert!(r.output.contains("use the editor instead"), "{r:?}");
    assert!(r.output.ends_with("status=1\n"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_accepted_escalates() {
    let s = setup()
        .rules("a.rules", PROMPT_TOUCH)
        .arg("--sandbox")
        .arg("read-only")
        .reply(Reply::Accept)
        .start()
        .await;
    // The question names the file that runs.
    let program = std::fs::canonicalize(which(&s, "touch").await)
        .unwrap()
        .display()
        .to_string();
    let (r, created) = touch(&s, "f").await;
    assert!(created, "{r:?}");
    let work = s.work.canonicalize().unwrap();
    assert_eq!(
        s.asked(),
        vec![format!(
            "Allow agent to run `{program} {}` in `{}`?",
            s.work.join("f").display(),
            work.display()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_declined_or_cancelled_denies() {
    for (reply, reason) in [
        (Reply::Decline, "User declined execution"),
        (Reply::Cancel, "User cancelled execution"),
    ] {
        let s = setup()
            .rules("a.rules", PROMPT_TOUCH)
            .arg("--sandbox")
            .arg("danger-full-access")
            .reply(reply)
            .start()
            .await;
        let (r, created) = touch(&s, "f").await;
        assert!(!created, "{r:?}");
        assert_eq!(r.output, format!("Execution denied: {reason}\nstatus=1\n"));
        assert_eq!(s.asked().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_without_elicitation_support_denies_saying_why() {
    let s = setup()
        .rules("a.rules", PROMPT_TOUCH)
        .arg("--sandbox")
        .arg("danger-full-access")
        .reply(Reply::Unsupported)
        .start()
        .await;
    let (r, created) = touch(&s, "f").await;
    assert!(!created, "{r:?}");
    assert!(r.output.contains("does not support elicitation"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_prompt_is_denied_after_the_wait_without_eating_the_timeout() {
    let s = setup()
        .rules("a.rules", PROMPT_TOUCH)
        .arg("--sandbox")
        .arg("danger-full-access")
        .arg("--elicitation-timeout-secs")
        .arg("1")
        .reply(Reply::Never)
        .start()
        .await;
    // The call's own timeout (800 ms) is shorter than the wait: it is paused
    // while the user is asked.
    let path = s.work.join("f");
    let r = s
        .shell_with(serde_json::json!({
            "command": format!("touch {}; echo status=$?", path.display()),
            "workdir": s.work,
            "timeout_ms": 800,
        }))
        .await;
    assert!(!path.exists());
    assert!(!r.timed_out, "{r:?}");
    assert!(r.output.contains("did not answer within 1 s"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_command_without_rule_prompts() {
    let s = setup()
        .arg("--sandbox")
        .arg("danger-full-access")
        .reply(Reply::Decline)
        .start()
        .await;
    let victim = s.work.join("victim");
    std::fs::create_dir(&victim).unwrap();
    let r = s
        .shell(&format!("rm -rf {}; echo status=$?", victim.display()))
        .await;
    assert!(victim.exists(), "{r:?}");
    assert_eq!(
        r.output,
        "Execution denied: User declined execution\nstatus=1\n"
    );
    assert_eq!(s.asked().len(), 1);
    assert!(s.asked()[0].contains(" -rf "), "{:?}", s.asked());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternatives_and_strictest_decision() {
    let s = setup()
        .rules(
            "a.rules",
            r#"
prefix_rule(pattern = ["ls", ["-a", "-l"]], decision = "forbidden", justification = "no listing")
prefix_rule(pattern = ["ls"], decision = "allow")
"#,
        )
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    for flag in ["-a", "-l"] {
        let r = s
            .shell(&format!("ls {flag} / >/dev/null; echo status=$?"))
            .await;
        assert!(
            r.output.contains("no listing") && r.output.ends_with("status=1\n"),
            "{flag}: {r:?}"
        );
    }
    let r = s.shell("ls -d /; echo status=$?").await;
    assert_eq!(r.output, "/\nstatus=0\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_executable_restricts_basename_matches() {
    let forbid = r#"prefix_rule(pattern = ["touch"], decision = "forbidden")"#;
    // Declared elsewhere only: the real touch is not the rule's `touch`.
    let s = setup()
        .rules(
            "a.rules",
            &format!(
                "host_executable(name = \"touch\", paths = [\"/opt/elsewhere/touch\"])\n{forbid}"
            ),
        )
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let (r, created) = touch(&s, "f").await;
    assert!(created, "{r:?}");
    let program = which(&s, "touch").await;
    drop(s);
    // Declared at its real path: the rule applies.
    let s = setup()
        .rules(
            "a.rules",
            &format!("host_executable(name = \"touch\", paths = [\"{program}\"])\n{forbid}"),
        )
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let (r, created) = touch(&s, "f").await;
    assert!(!created, "{r:?}");
    assert!(r.output.starts_with("Execution denied: "), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_flag_adds_to_discovered_rules() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.rules");
    std::fs::write(
        &extra,
        r#"prefix_rule(pattern = ["touch"], decision = "forbidden")"#,
    )
    .unwrap();
    let s = setup()
        .rules(
            "a.rules",
            r#"prefix_rule(pattern = ["ls"], decision = "forbidden")"#,
        )
        .arg("--rules")
        .arg(extra.display().to_string())
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let (r, _) = touch(&s, "f").await;
    assert!(r.output.starts_with("Execution denied: "), "{r:?}");
    let r = s.shell("ls /").await;
    assert!(r.output.starts_with("Execution denied: "), "{r:?}");
}

/// An escalated program gets the server's environment, plus the
/// allow-listed variables of the request (built-in ones and `--pass-env`
/// names); a question shows those that differ from the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalated_programs_get_the_servers_environment() {
    let s = setup()
        .rules(
            "a.rules",
            "prefix_rule(pattern = [\"printenv\"])\nprefix_rule(pattern = [\"env\"], decision = \"prompt\")\n",
        )
        .arg("--sandbox")
        .arg("read-only")
        .arg("--pass-env")
        .arg("MY_TOOL_OPTS")
        .env("LC_ALL", "C")
        .reply(Reply::Decline)
        .start()
        .await;
    let home = s.home().display().to_string();
    let r = s
        .shell("MY_TOOL_OPTS=-v OTHER=2 HOME=/tmp/h LC_ALL=C printenv MY_TOOL_OPTS HOME LC_ALL OTHER; echo status=$?")
        .await;
    assert_eq!(r.output, format!("-v\n{home}\nC\nstatus=1\n"), "{r:?}");
    // Asked: only what passes and differs (LC_ALL=C is the server's too).
    let r = s
        .shell("MY_TOOL_OPTS=-v HOME=/tmp/h LC_ALL=C TERM=dumb env")
        .await;
    assert!(r.output.contains("User declined execution"), "{r:?}");
    let asked = s.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].ends_with(" with `MY_TOOL_OPTS=-v TERM=dumb`?"),
        "{asked:?}"
    );
}

/// A script's own redirections to low fd numbers (Bash's test suite does
/// `exec 11</dev/null` and `exec 11<&-`) must not take the session socket
/// away: it sits at a number scripts do not name, so the programs after
/// still escalate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirections_to_low_fds_keep_the_session_socket() {
    let s = setup()
        .rules(
            "a.rules",
            r#"prefix_rule(pattern = ["touch"], decision = "allow")"#,
        )
        .arg("--sandbox")
        .arg("read-only")
        .start()
        .await;
    let path = s.work.join("f");
    let r = s
        .shell(&format!(
            "for ((fd = 3; fd <= 64; fd++)); do eval \"exec $fd</dev/null\"; eval \"exec $fd<&-\"; done; \
             touch {}; echo status=$?",
            path.display()
        ))
        .await;
    assert!(path.exists(), "{r:?}");
    assert_eq!(r.output, "status=0\n");
}
