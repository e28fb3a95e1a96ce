//! An independent review's attacks (red team 3): ways out that the other
//! files did not try.
//!
//! - An allowed git is given the arguments of the sandbox: `allow git log`
//!   (or the README's `git status|diff`) lets it write any file the user
//!   can (`--output`) and run any command (`grep -O`, `ls-remote
//!   --upload-pack`).
//! - In a repository with a submodule, `sub/.git` lies in the workspace:
//!   redirected to a repository the sandbox made, an allowed `git status`
//!   ran that repository's `core.fsmonitor`.
//! - The user's kernel keyrings (session, and a root server's `@u`) were
//!   readable and writable from inside: neither Landlock nor the
//!   namespaces separate them.
//! - The exec check resolved the exec's path by text in the server's own
//!   view: `/dev/fd/3` or `/proc/self/fd/3` was the server's fd, and a
//!   symlink in the sandbox's private `/dev/shm` did not exist; either way
//!   "nothing there" let the exec continue, and a forbidden `rm` ran.
//!
//! - Left open (ignored case): with `--network` and `--listen`, a sandboxed
//!   `curl` calls the server's own endpoint with a `disabled` permission
//!   profile, and its command runs outside.
//!
//! A marker in the `outside` directory (outside every writable root) can
//! only be written by a process outside the sandbox.

use std::path::Path;
use std::process::Command;

use crate::boundary::{NO_NAMESPACES, PYTHON};
use crate::harness::{self, As, Server, Setup};

/// git as the README shows it (`status`, `diff`), plus `log`, `grep` and
/// `ls-remote`, which read too.
const GIT_RULES: &str = r#"
prefix_rule(pattern = ["true"], decision = "allow")
prefix_rule(pattern = ["git", ["status", "diff", "log", "grep", "ls-remote"]], decision = "allow")
"#;

/// Runs git outside the sandbox, for a test's set-up.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git (apt install git)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// The workspace a repository with one commit (`README`: `hello`), made
/// before the server starts so that its `.git` is protected.
fn repository(work: &Path, _outside: &Path) {
    git(work, &["init", "-q"]);
    std::fs::write(work.join("README"), "hello\n").unwrap();
    git(work, &["add", "README"]);
    git(work, &["commit", "-q", "-m", "first"]);
}

/// Each attack: a git command line writing `{M}` (replaced by a marker's
/// path outside) from outside the sandbox, when escalated.
const GIT_ATTACKS: &[(&str, &str)] = &[
    (
        "log-output",
        "git log -1 --format=format:escaped --output={M}",
    ),
    ("diff-output", "git diff --output {M}"),
    (
        "grep-pager",
        "git grep --open-files-in-pager='sh -c \"echo escaped > {M}\" --' hello",
    ),
    (
        "ls-remote-upload-pack",
        "git ls-remote --upload-pack='sh -c \"echo escaped > {M}\" #' .",
    ),
];

/// `allow git log` (and friends) followed by the sandbox's arguments: each
/// attack works outside (the control), and through the `shell` tool it must
/// not escalate: it runs inside, with the notice, and writes nothing
/// outside. With the server as root and unprivileged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_git_does_not_escalate_arguments_that_write_or_run() {
    if harness::skip_without_read_only_subpaths(
        "an_allowed_git_does_not_escalate_arguments_that_write_or_run",
    ) {
        return;
    }
    for user in [As::Root, As::Unprivileged] {
        if let Some(why) = user.unavailable() {
            eprintln!("{user:?}: {why}");
            continue;
        }
        let s = Setup::new(GIT_RULES)
            .prepare(Box::new(repository))
            .user(user)
            .start()
            .await;
        let base = s.baseline().await;
        let mut escaped = Vec::new();
        let mut markers = Vec::new();
        for (name, attack) in GIT_ATTACKS {
            let marker = s.outside.join(format!("git-{name}"));
            let line = attack.replace("{M}", &marker.display().to_string());
            // Control: the same command outside, as the server's user,
            // writes the marker.
            let out = s
                .outside_command("sh")
                .args(["-c", &line])
                .current_dir(&s.work)
                .output()
                .unwrap();
            assert!(marker.exists(), "{user:?}: control {name}: {line}: {out:?}");
            std::fs::remove_file(&marker).unwrap();
            let r = s.shell(&format!("{line}; echo rc=$?")).await;
            if marker.exists() {
                escaped.push(format!("{user:?}: {name}: {line}: {}", r.output));
            } else {
                assert!(
                    r.output.contains("not escalated"),
                    "{user:?}: {name}: {r:?}"
                );
            }
            markers.push(marker);
        }
        assert!(escaped.is_empty(), "ran outside the sandbox: {escaped:#?}");
        // Plain reads still escalate.
        let r = s.shell("git log -1 --format=%s; echo rc=$?").await;
        assert_eq!(r.output, "first\nrc=0\n", "{user:?}: {r:?}");
        let markers: Vec<&Path> = markers.iter().map(|m| m.as_path()).collect();
        s.assert_contained(base, &markers).await;
    }
}

const FORBID_RM: &str = r#"
prefix_rule(pattern = ["rm"], decision = "forbidden", justification = "keep the files")
"#;

/// Ways of naming `rm` by a path that means something else in the server's
/// view than in the sandbox's: the kernel follows `/proc/self` for the
/// process that execs, and the sandbox's `/dev` is its own.
const VIEW_WAYS: &[(&str, &str)] = &[
    ("dev-fd", "exec 3</usr/bin/rm; /dev/fd/3 \"$F\""),
    (
        "env-proc-self-fd",
        "exec 3</usr/bin/rm; env /proc/self/fd/3 \"$F\"",
    ),
    (
        "link-to-proc-self",
        "exec 3</usr/bin/rm; ln -s /proc/self/fd/3 ./via-self; env ./via-self \"$F\"",
    ),
    (
        "dev-shm-link",
        "ln -sf /usr/bin/rm /dev/shm/rt-x 2>/dev/null && env /dev/shm/rt-x \"$F\"",
    ),
];

/// A `forbidden` rule for `rm` holds when `rm` is named through
/// `/proc/self`, `/dev/fd` or the sandbox's private `/dev/shm`: with the
/// server as root and unprivileged, with namespaces and on a kernel faked
/// without them (as `boundary` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_holds_through_paths_only_the_sandbox_sees() {
    for user in [As::Root, As::Unprivileged] {
        if let Some(why) = user.unavailable() {
            eprintln!("{user:?}: {why}");
            continue;
        }
        for namespaces in [true, false] {
            let mut setup = Setup::new(FORBID_RM).user(user);
            if !namespaces {
                setup = setup.wrap(&[PYTHON, "-c", NO_NAMESPACES]);
            }
            let s = setup.start().await;
            view_ways(&s, &format!("{user:?}, namespaces: {namespaces}")).await;
        }
    }
}

async fn view_ways(s: &Server, variant: &str) {
    let base = s.baseline().await;
    let mut escaped = Vec::new();
    for (way, snippet) in VIEW_WAYS {
        let file = s.work.join(format!("keep-{way}"));
        std::fs::write(&file, "x").unwrap();
        let r = s
            .shell(&format!("F={}; {snippet}; echo rc=$?", file.display()))
            .await;
        if !file.exists() {
            escaped.push(format!("{way}: {}", r.output));
        } else if way != &"dev-shm-link" || r.output.contains("Execution denied") {
            // (Without a private /dev, /dev/shm is not writable: no link.)
            assert!(
                r.output.contains("Execution denied:") && r.output.contains("keep the files"),
                "{variant}: {way}: no denial reported: {}",
                r.output
            );
        }
    }
    assert!(escaped.is_empty(), "{variant}: rm ran: {escaped:#?}");
    s.assert_contained(base, &[]).await;
}

/// The server's own fds are not what `/proc/self/fd/N` names in the
/// sandbox: with an outside file at fd 50 of the server, an exec of
/// `/proc/self/fd/50` is judged as the file the sandbox's fd 50 is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proc_self_is_the_process_that_execs() {
    let s = harness::Setup::new(FORBID_RM)
        .inherit("server-fd")
        .start()
        .await;
    let file = s.work.join("keep-fd50");
    std::fs::write(&file, "x").unwrap();
    let r = s
        .shell(&format!(
            "exec 50</usr/bin/rm; env /proc/self/fd/50 {}; echo rc=$?",
            file.display()
        ))
        .await;
    assert!(file.exists(), "rm ran: {r:?}");
    assert!(r.output.contains("Execution denied:"), "{r:?}");
}

/// Python in the sandbox: search the user keyring (`@u`) for the user key
/// `secret`, print what it reads, then add the key `planted` there.
fn keyring_script(secret: &str, planted: &str) -> String {
    format!(
        r#"/usr/bin/python3 -c '
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
u = ctypes.c_long(-4)
k = libc.syscall(250, 10, u, b"user", b"{secret}", 0)
if k < 0:
    print("search=errno", ctypes.get_errno())
else:
    buf = ctypes.create_string_buffer(64)
    n = libc.syscall(250, 11, k, buf, 64)
    print("read=" + buf.raw[:max(n, 0)].decode())
r = libc.syscall(248, b"user", b"{planted}", b"planted", 7, u)
print("add=", r, ctypes.get_errno())
'; echo rc=$?"#
    )
}

/// Runs `code` (Python, with `libc` and `U`, the user keyring) outside the
/// sandbox as the server's user, for the keyring case's set-up, checks
/// and clean-up; its stdout.
fn keyctl_outside(s: &Server, code: &str) -> String {
    let script = format!(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nU = ctypes.c_long(-4)\n{code}"
    );
    let out = s
        .outside_command(PYTHON)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{code}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The id of the user key `desc` in the server's user's keyring, if any.
fn find_user_key(s: &Server, desc: &str) -> Option<i64> {
    let id = keyctl_outside(
        s,
        &format!("print(libc.syscall(250, 10, U, b\"user\", b\"{desc}\", 0))"),
    );
    id.parse().ok().filter(|&id: &i64| id >= 0)
}

fn invalidate(s: &Server, id: i64) {
    keyctl_outside(s, &format!("libc.syscall(250, 21, {id})"));
}

/// The user's kernel keyring is not the sandbox's to read or write: a key
/// the server's user holds (a ticket, a credential) is not read from
/// inside, and a key added inside does not appear outside; as root and
/// unprivileged, with and without namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_keyrings_are_out_of_reach() {
    for user in [As::Root, As::Unprivileged] {
        if let Some(why) = user.unavailable() {
            eprintln!("{user:?}: {why}");
            continue;
        }
        for namespaces in [true, false] {
            let mut setup = Setup::new(harness::RULES).user(user);
            if !namespaces {
                setup = setup.wrap(&[PYTHON, "-c", NO_NAMESPACES]);
            }
            let s = setup.start().await;
            let tag = format!("{}-{user:?}-{namespaces}", std::process::id());
            let (secret, planted) = (format!("rt3-secret-{tag}"), format!("rt3-planted-{tag}"));
            // Control: the server's user holds the key, and reads it back.
            let added = keyctl_outside(
                &s,
                &format!("print(libc.syscall(248, b\"user\", b\"{secret}\", b\"hunter2\", 7, U))"),
            );
            let Some(secret_id) = added.parse().ok().filter(|&id: &i64| id >= 0) else {
                eprintln!("skipped: no kernel keyrings here (add_key gave {added})");
                return;
            };
            assert_eq!(
                find_user_key(&s, &secret),
                Some(secret_id),
                "{user:?}: control"
            );
            let base = s.baseline().await;
            let r = s.shell(&keyring_script(&secret, &planted)).await;
            invalidate(&s, secret_id);
            let planted_id = find_user_key(&s, &planted);
            if let Some(id) = planted_id {
                invalidate(&s, id);
            }
            assert!(
                !r.output.contains("hunter2"),
                "{user:?}, namespaces: {namespaces}: a key read inside: {r:?}"
            );
            assert!(
                planted_id.is_none(),
                "{user:?}, namespaces: {namespaces}: a key added inside is in the user's keyring: {r:?}"
            );
            s.assert_contained(base, &[]).await;
        }
    }
}

/// The workspace a repository with a submodule `sub` (cloned from
/// `outside/subsrc`), made before the server starts.
fn repository_with_a_submodule(work: &Path, outside: &Path) {
    let src = outside.join("subsrc");
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q"]);
    std::fs::write(src.join("s"), "s\n").unwrap();
    git(&src, &["add", "s"]);
    git(&src, &["commit", "-q", "-m", "s"]);
    repository(work, outside);
    let src = src.display().to_string();
    git(
        work,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &src,
            "sub",
        ],
    );
    git(work, &["commit", "-q", "-m", "sub"]);
}

/// `git status` in a repository with a submodule asks the submodule
/// whether it is modified: a git in `sub`, with the configuration of the
/// repository `sub/.git` names. `sub/.git` is in the workspace: the
/// sandbox points it at a repository of its own, whose `core.fsmonitor`
/// the allowed `git status` would run outside. With the server as root
/// and unprivileged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submodule_redirected_by_the_sandbox_is_not_a_context_for_escalation() {
    if harness::skip_without_read_only_subpaths(
        "a_submodule_redirected_by_the_sandbox_is_not_a_context_for_escalation",
    ) {
        return;
    }
    for user in [As::Root, As::Unprivileged] {
        if let Some(why) = user.unavailable() {
            eprintln!("{user:?}: {why}");
            continue;
        }
        let s = Setup::new(GIT_RULES)
            .prepare(Box::new(repository_with_a_submodule))
            .user(user)
            .start()
            .await;
        let base = s.baseline().await;
        let marker = s.outside.join("submodule-fsmonitor");
        let tmp = tempfile::Builder::new()
            .prefix("rt-review")
            .tempdir_in("/tmp")
            .unwrap();
        let uid = user.uid();
        std::os::unix::fs::chown(tmp.path(), Some(uid), None).unwrap();
        let evil = tmp.path().join("evil");
        let r = s
            .shell(&format!(
                "git init -q {evil} && git -C {evil} config core.fsmonitor 'echo escaped > {m}; false' \
                 && echo 'gitdir: {evil}/.git' > sub/.git && git status --short; echo rc=$?",
                evil = evil.display(),
                m = marker.display()
            ))
            .await;
        assert!(
            !marker.exists(),
            "{user:?}: git status ran the fsmonitor of the sandbox's repository: {r:?}"
        );
        assert!(r.output.contains("not escalated"), "{user:?}: {r:?}");
        // Control: the same `git status` outside, as the server's user,
        // runs it.
        let _ = s
            .outside_command("git")
            .arg("status")
            .current_dir(&s.work)
            .output()
            .unwrap();
        assert!(
            marker.exists(),
            "{user:?}: control: git status did not run it"
        );
        std::fs::remove_file(&marker).unwrap();
        s.assert_contained(base, &[&marker]).await;
    }
}

/// With `--network` and `--listen` (loopback, no token), a sandboxed
/// command could reach the server's own endpoint and call `shell` with a
/// `disabled` permission profile, running its command outside the sandbox
/// (seen on main before the tokenless check). Such a server now refuses to
/// start, naming the token flag; with a token, the token is out of every
/// command's reach (`boundary::http_token::*`).
#[test]
fn network_on_reaches_the_servers_own_http_endpoint() {
    let dir = tempfile::tempdir_in(harness::outside_base()).unwrap();
    let (work, codex) = (dir.path().join("work"), dir.path().join("codex"));
    for d in [&work, &codex.join("rules")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let out = Command::new(harness::server_bin())
        .args([
            "--bash",
            &harness::bash().display().to_string(),
            "--network",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("CODEX_HOME", &codex)
        .env_remove("CODEX_MCP_AUTH_TOKEN")
        .current_dir(&work)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--auth-token-file"),
        "a tokenless server gave sandboxes the network and its own endpoint: {}\n{stderr}",
        out.status
    );
}

/// A `sleep` outside the sandbox (the test's child, as the server's user),
/// killed on drop.
struct Victim(std::process::Child);

impl Victim {
    fn spawn(s: &Server) -> Victim {
        Victim(s.outside_command("sleep").arg("600").spawn().unwrap())
    }

    fn open_files_limit(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/limits", self.0.id()))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_owned()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `prlimit(2)` on a process outside (without a pid namespace the server
/// and every process of the user are visible): the control, as the
/// server's user, starves one `sleep` of that user of fds from outside;
/// from inside, another keeps its limit. As root and unprivileged, with
/// and without namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_of_processes_outside_are_not_changed() {
    for user in [As::Root, As::Unprivileged] {
        if let Some(why) = user.unavailable() {
            eprintln!("{user:?}: {why}");
            continue;
        }
        for namespaces in [true, false] {
            let mut setup = Setup::new(harness::RULES).user(user);
            if !namespaces {
                setup = setup.wrap(&[PYTHON, "-c", NO_NAMESPACES]);
            }
            let s = setup.start().await;
            let control = Victim::spawn(&s);
            let out = s
                .outside_command("prlimit")
                .args(["--pid", &control.0.id().to_string(), "--nofile=5:5"])
                .output()
                .expect("prlimit (util-linux)");
            assert!(
                out.status.success() && control.open_files_limit().contains(" 5 "),
                "{user:?}: control: {out:?}"
            );
            let base = s.baseline().await;
            let victim = Victim::spawn(&s);
            let before = victim.open_files_limit();
            let r = s
                .shell(&format!(
                    "prlimit --pid {} --nofile=5:5; echo rc=$?",
                    victim.0.id()
                ))
                .await;
            assert_eq!(
                victim.open_files_limit(),
                before,
                "{user:?}, namespaces: {namespaces}: the limit of a process outside changed: {r:?}"
            );
            // The sandbox's own limits still work (`ulimit` is prlimit(0, …)).
            let r = s.shell("ulimit -n 64 && ulimit -n").await;
            assert_eq!(r.output, "64\n", "{r:?}");
            s.assert_contained(base, &[]).await;
        }
    }
}
