//! Escalation integrity (issue 14): what runs outside the sandbox is exactly
//! what the user allowed, in a context the sandbox did not prepare. The
//! rules are the README's kind (`allow cat`, `allow git status`), and each
//! attack tries to turn them into arbitrary code outside: a symlink that
//! borrows an allowed name, git configuration the sandbox wrote (a
//! repository in `/tmp`, a nested one, a gitdir file, one created after the
//! sandbox started), environment variables that select such configuration,
//! and approvals that hide what runs.
//!
//! A marker in the `outside` directory (outside every writable root) can
//! only be written by a process outside the sandbox.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, Options, Reply, Server, start_with};

/// `allow cat`, `allow git status|log`, `prompt git push`, `prompt touch`,
/// `forbidden rm`.
const RULES: &str = r#"
prefix_rule(pattern = ["true"], decision = "allow")
prefix_rule(pattern = ["cat"], decision = "allow")
prefix_rule(pattern = ["git", ["status", "log"]], decision = "allow")
prefix_rule(pattern = ["git", "push"], decision = "prompt")
prefix_rule(pattern = ["touch"], decision = "prompt")
prefix_rule(pattern = ["rm"], decision = "forbidden", justification = "no deleting")
"#;

/// Runs git outside the sandbox, for a test's set-up.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git (apt install git)");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {out:?}",
        dir.display()
    );
}

/// The workspace made a repository with one commit before the server
/// starts (so its `.git` is protected from the first call on), and a bare
/// repository `outside/bare.git` as its `origin`.
fn repository(work: &Path, outside: &Path) {
    git(outside, &["init", "-q", "--bare", "bare.git"]);
    git(work, &["init", "-q"]);
    std::fs::write(work.join("README"), "hello\n").unwrap();
    git(work, &["add", "README"]);
    git(work, &["commit", "-q", "-m", "first"]);
    let bare = outside.join("bare.git");
    git(
        work,
        &["remote", "add", "origin", &bare.display().to_string()],
    );
}

async fn server(
    reply: Reply,
    prepare: impl FnOnce(&Path, &Path) + Send + 'static,
) -> (Server, harness::Counts) {
    let s = start_with(
        RULES,
        Options {
            reply,
            prepare: Box::new(prepare),
            ..Options::default()
        },
    )
    .await;
    let base = s.baseline().await;
    (s, base)
}

/// A directory under `/tmp` (a writable root of the sandbox), removed at
/// the end of the test.
fn tmp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rt-integrity")
        .tempdir_in("/tmp")
        .unwrap()
}

/// Shell text that sets `core.fsmonitor` (run by `git status`) in the
/// repository of the working directory to a command writing `marker`.
fn fsmonitor_config(marker: &Path) -> String {
    format!(
        "git config core.fsmonitor 'echo escaped > {}; false'",
        marker.display()
    )
}

/// Proves the planted configuration works: the same `git status` outside
/// the sandbox writes the marker.
fn control_git_status(dir: &Path, env: &[(&str, &Path)], marker: &Path) {
    let _ = Command::new("git")
        .arg("status")
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        marker.exists(),
        "control: git status in {} did not write {}",
        dir.display(),
        marker.display()
    );
    std::fs::remove_file(marker).unwrap();
}

fn python3() -> PathBuf {
    let p = PathBuf::from("/usr/bin/python3");
    assert!(p.exists(), "python3 missing (apt install python3)");
    p
}

/// A symlink named `cat`, first on `PATH`, pointing at python or sh: the
/// rule for `cat` must not escalate them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_named_cat_does_not_escalate_its_target() {
    let (s, base) = server(Reply::Unsupported, |_, _| {}).await;
    let marker = s.outside.join("by-python");
    harness::assert_writable_outside(&marker);
    let lbin = s.work.join("lbin");
    std::fs::create_dir(&lbin).unwrap();
    std::os::unix::fs::symlink(python3(), lbin.join("cat")).unwrap();
    let r = s
        .shell(&format!(
            "PATH={}:$PATH; cat -c \"open('{}', 'w').write('escaped')\"; echo rc=$?",
            lbin.display(),
            marker.display()
        ))
        .await;
    assert!(!marker.exists(), "python escalated as cat: {r:?}");
    assert!(harness::refused(&r.output), "{r:?}");

    let sh_dir = s.work.join("shbin");
    std::fs::create_dir(&sh_dir).unwrap();
    std::os::unix::fs::symlink("/bin/sh", sh_dir.join("cat")).unwrap();
    let sh_marker = s.outside.join("by-sh");
    let r = s
        .shell(&format!(
            "PATH={}:$PATH; cat -c 'echo escaped > {}'; echo rc=$?",
            sh_dir.display(),
            sh_marker.display()
        ))
        .await;
    assert!(!sh_marker.exists(), "sh escalated as cat: {r:?}");

    // The real cat is still escalated.
    let outside_file = s.outside.join("readable");
    std::fs::write(&outside_file, "real cat\n").unwrap();
    let r = s.shell(&format!("cat {}", outside_file.display())).await;
    assert_eq!(r.output, "real cat\n", "{r:?}");
    assert!(
        s.log_text().contains("decision=\"escalate\""),
        "cat was not escalated"
    );
    s.assert_contained(base, &[&marker, &sh_marker]).await;
}

/// A symlink to `rm` with another name (absolute on `PATH`, so the
/// wrapper's ask list does not name it) is still `forbidden` by the rule
/// for `rm`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_to_rm_under_another_name_is_still_forbidden() {
    let (s, base) = server(Reply::Unsupported, |_, _| {}).await;
    let lbin = s.work.join("lbin");
    std::fs::create_dir(&lbin).unwrap();
    let rm = std::fs::canonicalize("/bin/rm").unwrap();
    std::os::unix::fs::symlink(&rm, lbin.join("x")).unwrap();
    // A chain of two links.
    std::os::unix::fs::symlink(lbin.join("x"), lbin.join("y")).unwrap();
    for name in ["x", "y"] {
        let victim = s.work.join(format!("victim-{name}"));
        std::fs::write(&victim, "keep").unwrap();
        let r = s
            .shell(&format!(
                "PATH={}:$PATH; {name} {}; echo rc=$?",
                lbin.display(),
                victim.display()
            ))
            .await;
        assert!(victim.exists(), "{name} -> rm ran: {r:?}");
        assert!(r.output.contains("Execution denied: "), "{r:?}");
        assert!(r.output.contains("no deleting"), "{r:?}");
    }
    s.assert_contained(base, &[]).await;
}

/// A repository the sandbox made in `/tmp`, with `core.fsmonitor` set:
/// `git status` there must not be escalated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_planted_in_tmp_is_not_a_context_for_escalation() {
    let (s, base) = server(Reply::Unsupported, |_, _| {}).await;
    let marker = s.outside.join("fsmonitor-tmp");
    let tmp = tmp_dir();
    let repo = tmp.path().join("r");
    let r = s
        .shell(&format!(
            "mkdir {repo} && cd {repo} && git init -q && {config} && git status; echo rc=$?",
            repo = repo.display(),
            config = fsmonitor_config(&marker)
        ))
        .await;
    assert!(
        !marker.exists(),
        "git status escalated in a planted repository: {r:?}"
    );
    assert!(
        r.output.contains("not escalated"),
        "the refusal is shown: {r:?}"
    );
    control_git_status(&repo, &[], &marker);
    s.assert_contained(base, &[&marker]).await;
}

/// `frontend/.git` inside a workspace whose top-level `.git` is protected:
/// the nested repository is the sandbox's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_repository_is_not_a_context_for_escalation() {
    let (s, base) = server(Reply::Unsupported, repository).await;
    let marker = s.outside.join("fsmonitor-nested");
    let r = s
        .shell(&format!(
            "mkdir frontend && cd frontend && git init -q && {} && git status; echo rc=$?",
            fsmonitor_config(&marker)
        ))
        .await;
    assert!(
        !marker.exists(),
        "git status escalated in a nested repository: {r:?}"
    );
    assert!(r.output.contains("not escalated"), "{r:?}");
    control_git_status(&s.work.join("frontend"), &[], &marker);
    s.assert_contained(base, &[&marker]).await;
}

/// A `.git` file (`gitdir: ...`) pointing at a repository the sandbox owns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitdir_file_to_a_sandbox_repository_is_not_a_context_for_escalation() {
    let (s, base) = server(Reply::Unsupported, repository).await;
    let marker = s.outside.join("fsmonitor-gitdir");
    let tmp = tmp_dir();
    let gitdir = tmp.path().join("evil.git");
    let r = s
        .shell(&format!(
            "git init -q --separate-git-dir={gitdir} sub && cd sub && {config} && cat .git && git status; echo rc=$?",
            gitdir = gitdir.display(),
            config = fsmonitor_config(&marker)
        ))
        .await;
    assert!(r.output.contains("gitdir: "), "{r:?}");
    assert!(
        !marker.exists(),
        "git status escalated through a gitdir file: {r:?}"
    );
    assert!(r.output.contains("not escalated"), "{r:?}");
    control_git_status(&s.work.join("sub"), &[], &marker);
    s.assert_contained(base, &[&marker]).await;
}

/// A workspace with no `.git` when the server started: `git init` in one
/// call, `git status` in the next (whose sandbox protects the new `.git`,
/// but its content is the sandbox's), and both in one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_created_after_the_sandbox_started_is_not_a_context_for_escalation() {
    let (s, base) = server(Reply::Unsupported, |_, _| {}).await;
    let marker = s.outside.join("fsmonitor-late");
    let r = s
        .shell(&format!(
            "git init -q && {}; echo rc=$?",
            fsmonitor_config(&marker)
        ))
        .await;
    assert_eq!(r.output, "rc=0\n", "{r:?}");
    let r = s.shell("git status; echo rc=$?").await;
    assert!(
        !marker.exists(),
        "git status escalated in the next call: {r:?}"
    );
    assert!(r.output.contains("not escalated"), "{r:?}");
    // The same within one call, in another directory.
    let late = s.work.join("late");
    std::fs::create_dir(&late).unwrap();
    let r = s
        .shell_in(
            &format!(
                "git init -q && {} && git status; echo rc=$?",
                fsmonitor_config(&marker)
            ),
            &late,
        )
        .await;
    assert!(
        !marker.exists(),
        "git status escalated in the same call: {r:?}"
    );
    control_git_status(&s.work, &[], &marker);
    s.assert_contained(base, &[&marker]).await;
}

/// `HOME`, `XDG_CONFIG_HOME`, `GIT_COMMON_DIR` and `GIT_TRACE` set by the
/// command select configuration (or an output file) the sandbox chose; the
/// escalated git gets the server's instead. The workspace's own `.git` is
/// protected, so `git status` itself is escalated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_variables_from_the_request_do_not_reach_the_escalated_git() {
    if harness::skip_without_read_only_subpaths(
        "git_variables_from_the_request_do_not_reach_the_escalated_git",
    ) {
        return;
    }
    let (s, base) = server(Reply::Unsupported, repository).await;
    let tmp = tmp_dir();
    let home = tmp.path().join("h");
    let xdg = tmp.path().join("x");
    let common = tmp.path().join("common.git");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(xdg.join("git")).unwrap();
    let m_home = s.outside.join("by-home");
    let m_xdg = s.outside.join("by-xdg");
    let m_common = s.outside.join("by-common-dir");
    let m_trace = s.outside.join("by-trace");
    let fsmonitor = |m: &Path| {
        format!(
            "[core]\n\tfsmonitor = \"echo escaped > {}; false\"\n",
            m.display()
        )
    };
    std::fs::write(home.join(".gitconfig"), fsmonitor(&m_home)).unwrap();
    std::fs::write(xdg.join("git/config"), fsmonitor(&m_xdg)).unwrap();
    git(tmp.path(), &["init", "-q", "--bare", "common.git"]);
    std::fs::write(
        common.join("config"),
        format!(
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n{}",
            fsmonitor(&m_common)
        ),
    )
    .unwrap();
    control_git_status(&s.work, &[("HOME", &home)], &m_home);
    control_git_status(&s.work, &[("XDG_CONFIG_HOME", &xdg)], &m_xdg);
    control_git_status(&s.work, &[("GIT_COMMON_DIR", &common)], &m_common);
    control_git_status(&s.work, &[("GIT_TRACE", &m_trace)], &m_trace);
    for (var, value, marker) in [
        ("HOME", &home, &m_home),
        ("XDG_CONFIG_HOME", &xdg, &m_xdg),
        ("GIT_COMMON_DIR", &common, &m_common),
        ("GIT_TRACE", &m_trace, &m_trace),
    ] {
        let r = s
            .shell(&format!("{var}={} git status; echo rc=$?", value.display()))
            .await;
        assert!(!marker.exists(), "{var} reached the escalated git: {r:?}");
        assert!(r.output.ends_with("rc=0\n"), "{var}: {r:?}");
        assert!(!r.output.contains("not escalated"), "{var}: {r:?}");
    }
    s.assert_contained(base, &[&m_home, &m_xdg, &m_common, &m_trace])
        .await;
}

/// An approved `git push` with a planted `HOME` whose configuration names
/// the `receivepack` to run: the human approved `git push`, not that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_push_does_not_run_a_planted_receivepack() {
    let (s, base) = server(Reply::Accept, |work, outside| {
        repository(work, outside);
        git(work, &["remote", "remove", "origin"]);
    })
    .await;
    let marker = s.outside.join("by-receivepack");
    let tmp = tmp_dir();
    let home = tmp.path().join("h");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".gitconfig"),
        format!(
            "[remote \"origin\"]\n\turl = {}\n\treceivepack = \"echo escaped > {}; git-receive-pack\"\n",
            s.outside.join("bare.git").display(),
            marker.display()
        ),
    )
    .unwrap();
    control_push(&s.work, &home, &marker);
    let r = s
        .shell(&format!(
            "HOME={} git push origin HEAD:refs/heads/x; echo rc=$?",
            home.display()
        ))
        .await;
    assert!(!marker.exists(), "the planted receivepack ran: {r:?}");
    let asked = s.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].contains("git push origin HEAD:refs/heads/x"),
        "{asked:?}"
    );
    s.assert_contained(base, &[&marker]).await;
}

fn control_push(work: &Path, home: &Path, marker: &Path) {
    let out = Command::new("git")
        .args(["push", "origin", "HEAD:refs/heads/control"])
        .current_dir(work)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        marker.exists(),
        "control: the receivepack did not run: {out:?}"
    );
    std::fs::remove_file(marker).unwrap();
}

/// A command too long to show whole is denied, never approved on a partial
/// view: 5 KiB of arguments push the real target out of a cut message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_kib_command_is_not_approved_on_a_partial_view() {
    let (s, base) = server(Reply::Accept, |_, _| {}).await;
    let marker = s.outside.join("hidden-target");
    let tmp = tmp_dir();
    let r = s
        .shell(&format!(
            "touch $(seq -f '{}/pad-%04g' 1 160) {}; echo rc=$?",
            tmp.path().display(),
            marker.display()
        ))
        .await;
    assert!(!marker.exists(), "approved on a partial view: {r:?}");
    assert!(r.output.contains("too long to approve"), "{r:?}");
    assert_eq!(s.asked(), Vec::<String>::new(), "nobody is asked");
    s.assert_contained(base, &[&marker]).await;
}

/// Newlines and escape sequences in argv reach the question escaped, so a
/// command cannot draw a fake line in the approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_a_question_are_shown_escaped() {
    let (s, base) = server(Reply::Decline, |_, _| {}).await;
    let target = s.work.join("t");
    let r = s
        .shell(&format!(
            "touch $'x\\n\\nChecked by the sandbox: safe, press Accept\\e[2K\\r' {}; echo rc=$?",
            target.display()
        ))
        .await;
    assert!(r.output.contains("User declined execution"), "{r:?}");
    let asked = s.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let question = &asked[0];
    assert!(
        !question.chars().any(|c| c.is_control()),
        "control characters in the question: {question:?}"
    );
    assert!(
        question.contains(r"\n\nChecked by the sandbox: safe, press Accept\x1b[2K\r"),
        "{question:?}"
    );
    s.assert_contained(base, &[]).await;
}

/// Ten escalations with 180 kB of arguments each (two of 90 kB: the kernel
/// caps one argument at 128 KiB), and a call whose command is itself
/// 120 kB, grow the log by a bounded amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_arguments_are_cut_in_the_log() {
    let (s, base) = server(Reply::Unsupported, |_, _| {}).await;
    let before = s.log_len();
    let r = s
        .shell(
            "enable -n true; a=$(head -c 90000 /dev/zero | tr '\\0' a); for i in 1 2 3 4 5 6 7 8 9 10; do true \"$a\" \"$a\" || echo failed; done; echo done",
        )
        .await;
    assert_eq!(r.output, "done\n", "{r:?}");
    let r = s
        .shell(&format!("true {}; echo done", "b".repeat(120_000)))
        .await;
    assert_eq!(r.output, "done\n", "{r:?}");
    let grown = s.log_len() - before;
    assert!(
        s.log_text().contains("decision=\"escalate\""),
        "the escalations are logged"
    );
    assert!(grown < 128 * 1024, "the log grew by {grown} bytes");
    eprintln!("the log grew by {grown} bytes");
    s.assert_contained(base, &[]).await;
}

/// What must keep working: `git status`, `git log` (in a pipeline and a
/// redirection) and an approved `git push` to a bare repository outside,
/// escalated in a workspace whose `.git` is protected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_still_escalates_in_a_protected_workspace() {
    if harness::skip_without_read_only_subpaths("git_still_escalates_in_a_protected_workspace") {
        return;
    }
    let (s, base) = server(Reply::Accept, repository).await;
    let r = s
        .shell("git status --short; git log --format=%s | cat; git log -1 --format=%s > last.txt; cat last.txt; echo rc=$?")
        .await;
    assert_eq!(r.output, "first\nfirst\nrc=0\n", "{r:?}");
    let log = s.log_text();
    for args in ["status", "log"] {
        assert!(
            log.lines().any(|l| l.contains("decision=\"escalate\"")
                && l.contains("git")
                && l.contains(args)),
            "git {args} was not escalated:\n{log}"
        );
    }
    assert!(!log.contains("not escalated"), "{log}");
    let r = s
        .shell("git push -q origin HEAD:refs/heads/main; echo rc=$?")
        .await;
    assert_eq!(r.output, "rc=0\n", "{r:?}");
    assert_eq!(s.asked().len(), 1);
    let out = Command::new("git")
        .args([
            "--git-dir",
            &s.outside.join("bare.git").display().to_string(),
            "log",
            "-1",
            "--format=%s",
            "main",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "first\n", "{out:?}");
    s.assert_contained(base, &[]).await;
}

/// A `prompt` rule whose escalation would be refused (a nested repository)
/// still asks, and the question says the command will run inside the
/// sandbox and why; accepted, it runs there, with the notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_says_when_the_command_will_run_sandboxed() {
    let (s, base) = server(Reply::Accept, repository).await;
    let marker = s.outside.join("fsmonitor-asked");
    let r = s
        .shell(&format!(
            "mkdir frontend && cd frontend && git init -q && {} && git push -q {} HEAD; echo rc=$?",
            fsmonitor_config(&marker),
            s.outside.join("bare.git").display()
        ))
        .await;
    let asked = s.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].contains("It cannot run outside the sandbox (")
            && asked[0].contains("frontend/.git")
            && asked[0].ends_with("if you accept, it runs inside the sandbox."),
        "{asked:?}"
    );
    assert!(r.output.contains("not escalated"), "{r:?}");
    assert!(!marker.exists(), "{r:?}");
    s.assert_contained(base, &[&marker]).await;
}

/// An approved push to a repository on this machine that the sandbox made
/// (in `/tmp`, with a `pre-receive` hook): receive-pack runs that hook as
/// the escalated git's child, so the repository pushed to is context too
/// (named by path or `file://` URL here; a remote's URL from the checked
/// configuration is looked at the same way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_a_repository_the_sandbox_made_is_not_escalated() {
    let (s, base) = server(Reply::Accept, repository).await;
    let marker = s.outside.join("by-pre-receive");
    let tmp = tmp_dir();
    let evil = tmp.path().join("evil.git");
    let hook = format!("#!/bin/sh\necho escaped > {}\n", marker.display());
    let r = s
        .shell(&format!(
            "git init -q --bare {evil} && printf '%s' '{hook}' > {evil}/hooks/pre-receive && chmod +x {evil}/hooks/pre-receive; echo rc=$?",
            evil = evil.display(),
        ))
        .await;
    assert_eq!(r.output, "rc=0\n", "{r:?}");
    for url in [
        evil.display().to_string(),
        format!("file://{}", evil.display()),
    ] {
        let r = s
            .shell(&format!("git push -q {url} HEAD:refs/heads/x; echo rc=$?"))
            .await;
        assert!(
            !marker.exists(),
            "the pushed-to repository's hook ran outside: {r:?}"
        );
        assert!(r.output.contains("not escalated"), "{r:?}");
    }
    // Control: the same push outside the sandbox runs the hook.
    let out = Command::new("git")
        .args([
            "push",
            "-q",
            &evil.display().to_string(),
            "HEAD:refs/heads/control",
        ])
        .current_dir(&s.work)
        .output()
        .unwrap();
    assert!(marker.exists(), "control: {out:?}");
    std::fs::remove_file(&marker).unwrap();
    s.assert_contained(base, &[&marker]).await;
}
