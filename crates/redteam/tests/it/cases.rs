//! The cases, one server each. Rules allow only `true` and `sleep`
//! ([`harness::RULES`]), which cannot write a marker: a marker can only come
//! from a planted program, a preloaded library, or some other code that
//! should never have left the sandbox.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, RULES, Server, assert_writable_outside, refused, rogue, start};

/// Whether the rogue's request ran inside the sandbox: `Run`, or
/// `RunSandboxed` (an escalation the server refused, with its notice).
fn ran_inside(r: &harness::Shell) -> bool {
    r.value("reply")
        .is_some_and(|v| v == "run" || v.starts_with("run-sandboxed:"))
}

/// `/usr/bin/true` or `/bin/true`, as the server resolves it.
fn real_true() -> PathBuf {
    ["/usr/bin/true", "/bin/true"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("coreutils true")
}

/// A script planted at `path` that writes `marker` when run.
fn plant_script(path: &Path, marker: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        format!("#!/bin/sh\necho escaped > '{}'\n", marker.display()),
    )
    .unwrap();
    chmod_x(path);
}

/// A copy of the rogue (an ELF) planted at `path`; run as
/// `NAME payload MARKER` it writes the marker.
fn plant_elf(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(rogue(), path).unwrap();
    chmod_x(path);
}

fn chmod_x(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs a planted program directly (outside any sandbox) to prove it does
/// write `marker`, then removes the marker.
fn control_run(program: &Path, args: &[&str], env: &[(&str, &Path)], marker: &Path) {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        marker.exists(),
        "control: {} {args:?} did not write {}: {out:?}",
        program.display(),
        marker.display()
    );
    std::fs::remove_file(marker).unwrap();
}

/// A server whose rules also escalate `mkdir`, which can write outside.
async fn start_allowing_mkdir() -> Server {
    start(&format!(
        "{RULES}\nprefix_rule(pattern = [\"mkdir\"], decision = \"allow\")\n"
    ))
    .await
}

async fn server() -> (Server, harness::Counts) {
    let s = start(RULES).await;
    let base = s.baseline().await;
    (s, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_is_writable_outside_only() {
    let s = start_allowing_mkdir().await;
    let base = s.baseline().await;
    let marker = s.outside.join("m");
    assert_writable_outside(&marker);
    let r = s
        .shell(&format!("echo x > {}; echo rc=$?", marker.display()))
        .await;
    assert!(!marker.exists(), "{r:?}");
    assert!(refused(&r.output), "{r:?}");
    // An allowed program escalates and can write there.
    let dir = s.outside.join("made-by-escalated-mkdir");
    let r = s.shell(&format!("mkdir {}", dir.display())).await;
    assert!(dir.is_dir(), "{r:?}");
    std::fs::remove_dir(&dir).unwrap();
    s.assert_contained(base, &[&marker]).await;
}

/// A server installed under a writable root: one call tries to overwrite
/// the sandbox launcher beside it with a script that would run Bash
/// unconfined (refused), the test does it from outside; the next call
/// still runs confined (the server runs the copy it sealed in memory at
/// start, not the file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwriting_the_installed_launcher_does_not_unconfine_the_next_call() {
    let s = harness::start_installed_in_work(RULES).await;
    let base = s.baseline().await;
    let launcher = s.work.join("bin/codex-sandbox-exec");
    let marker = s.outside.join("escaped");
    assert_writable_outside(&marker);
    // The launcher gets `--spec JSON -- bash ...`.
    let script = format!(
        "#!/bin/sh\necho escaped > {}\nshift 3\nexec \"$@\"\n",
        marker.display()
    );
    let r = s
        .shell(&format!(
            "printf '%s' '{script}' > {launcher}; echo rc=$?",
            launcher = launcher.display()
        ))
        .await;
    // The launcher beside the server is kept read-only (issue 13: it runs
    // unconfined at the next start); replaced from outside after the
    // start, it is not used either.
    assert!(refused(&r.output), "{r:?}");
    std::fs::write(&launcher, &script).unwrap();
    assert!(
        std::fs::read_to_string(&launcher)
            .unwrap()
            .contains("escaped")
    );
    let r = s.shell("echo next-call").await;
    assert_eq!(r.output, "next-call\n", "{r:?}");
    s.assert_contained(base, &[&marker]).await;
}

/// `CODEX_ESCALATE_ASK` is the sandbox's to change: a program it leaves out
/// runs in the sandbox unasked, so tampering can only lose escalations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_ask_list_never_escalates_what_it_skips() {
    let s = start_allowing_mkdir().await;
    let base = s.baseline().await;
    let dir = s.outside.join("made-by-mkdir");
    let r = s
        .shell(&format!("CODEX_ESCALATE_ASK= mkdir {}", dir.display()))
        .await;
    assert!(!dir.exists(), "{r:?}");
    assert!(refused(&r.output), "{r:?}");
    // Unset, or asking about everything: the rule escalates it again.
    for tamper in [
        "unset CODEX_ESCALATE_ASK;",
        "export CODEX_ESCALATE_ASK='*';",
    ] {
        let r = s.shell(&format!("{tamper} mkdir {}", dir.display())).await;
        assert!(dir.is_dir(), "{tamper} {r:?}");
        std::fs::remove_dir(&dir).unwrap();
    }
    s.assert_contained(base, &[&dir]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_no_rule_allows_is_not_escalated() {
    let (s, base) = server().await;
    let marker = s.outside.join("touched");
    assert_writable_outside(&marker);
    for extra in ["", "--push-after-run"] {
        let r = s
            .rogue(&format!(
                "exec {extra} --file /usr/bin/touch -- touch {}",
                marker.display()
            ))
            .await;
        let reply = r.value("reply").unwrap_or_default();
        assert!(reply.starts_with("run"), "{r:?}");
    }
    // A positive control: an allowed program is escalated.
    let r = s
        .rogue(&format!("exec --file {} -- true", real_true().display()))
        .await;
    assert_eq!(r.value("reply"), Some("exited:0"), "{r:?}");
    s.assert_contained(base, &[&marker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ld_preload_does_not_reach_escalated_programs() {
    let (s, base) = server().await;
    let marker = s.outside.join("preloaded");
    let src = s.work.join("evil.c");
    let so = s.work.join("evil.so");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void evil(void) {{\n\
             FILE *f = fopen(\"{}\", \"w\"); if (f) {{ fputs(\"escaped\\n\", f); fclose(f); }} }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .output()
        .expect("gcc (apt install gcc)");
    assert!(out.status.success(), "gcc: {out:?}");
    control_run(&real_true(), &[], &[("LD_PRELOAD", &so)], &marker);

    // Through the real wrapper: Bash passes LD_PRELOAD along.
    let r = s
        .shell(&format!(
            "LD_PRELOAD={so} {t}; echo rc=$?; LD_AUDIT={so} LD_LIBRARY_PATH={w} {t}; echo rc=$?",
            so = so.display(),
            t = real_true().display(),
            w = s.work.display()
        ))
        .await;
    // (The loader may complain about LD_AUDIT when the wrapper starts
    // inside the sandbox; the escalated program ran clean.)
    assert_eq!(r.output.matches("rc=0\n").count(), 2, "{r:?}");
    // Forged requests with loader variables.
    for var in ["LD_PRELOAD", "LD_AUDIT"] {
        let r = s
            .rogue(&format!(
                "exec --env {var}={} --file {} -- true",
                so.display(),
                real_true().display()
            ))
            .await;
        assert_eq!(r.value("reply"), Some("exited:0"), "{r:?}");
    }
    s.assert_contained(base, &[&marker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_program_with_an_allowed_basename_is_not_escalated() {
    let (s, base) = server().await;
    let marker = s.outside.join("planted");
    let script = s.work.join("bin/true");
    plant_script(&script, &marker);
    control_run(&script, &[], &[], &marker);
    let elf = s.work.join("elf/true");
    plant_elf(&elf);
    control_run(
        &elf,
        &["payload", &marker.display().to_string()],
        &[],
        &marker,
    );
    // In /tmp too (a writable root).
    let tmp = tempfile::tempdir().unwrap();
    let tmp_script = tmp.path().join("true");
    plant_script(&tmp_script, &marker);

    // The real wrapper: `./bin/true` runs inside the sandbox, so the
    // script's write fails.
    let r = s.shell("./bin/true; echo rc=$?").await;
    assert!(refused(&r.output), "{r:?}");
    for file in [&script, &tmp_script] {
        let r = s
            .rogue(&format!("exec --file {} -- true", file.display()))
            .await;
        assert!(ran_inside(&r), "{r:?}");
    }
    let r = s
        .rogue(&format!(
            "exec --file {} -- true payload {}",
            elf.display(),
            marker.display()
        ))
        .await;
    assert!(ran_inside(&r), "{r:?}");
    let log = s.log_text();
    assert!(
        log.contains("which sandboxed commands can write") && log.contains("not escalated"),
        "the refusal is logged:\n{log}"
    );
    s.assert_contained(base, &[&marker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_from_an_allowed_name_to_a_planted_file() {
    let (s, base) = server().await;
    let marker = s.outside.join("symlinked");
    let evil = s.work.join("evil.sh");
    plant_script(&evil, &marker);
    let link_dir = s.work.join("ln");
    std::fs::create_dir_all(&link_dir).unwrap();
    std::os::unix::fs::symlink(&evil, link_dir.join("true")).unwrap();
    // A directory symlink too: work/dl -> work/ln.
    std::os::unix::fs::symlink(&link_dir, s.work.join("dl")).unwrap();

    // Bash finds `true` on PATH once the builtin is disabled.
    let r = s
        .shell(&format!(
            "enable -n true; PATH={}:$PATH; true; echo rc=$?",
            link_dir.display()
        ))
        .await;
    assert!(refused(&r.output), "{r:?}");
    for file in [link_dir.join("true"), s.work.join("dl/true")] {
        let r = s
            .rogue(&format!("exec --file {} -- true", file.display()))
            .await;
        assert!(ran_inside(&r), "{r:?}");
    }
    s.assert_contained(base, &[&marker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_race_between_check_and_exec() {
    let (s, base) = server().await;
    let marker = s.outside.join("raced");
    let dir = s.work.join("race");
    std::fs::create_dir_all(&dir).unwrap();
    let r = s
        .rogue(&format!("race {} {} 600", dir.display(), marker.display()))
        .await;
    let n = |k: &str| -> usize { r.value(k).unwrap_or("0").parse().unwrap() };
    assert!(!marker.exists(), "{}", r.output);
    // Both sides of the race were hit: the real program was escalated
    // sometimes, the planted ones were refused.
    assert!(
        n("race-escalated") > 0 && n("race-refused") > 0,
        "{}",
        r.output
    );
    s.assert_contained(base, &[&marker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fd_targets_cannot_replace_the_checked_program() {
    // The server opens the checked program and execs it by fd number; a
    // forged fd list mapping a planted ELF onto every fd number must not
    // change what runs.
    let (s, base) = server().await;
    let marker = s.outside.join("fd-swapped");
    let elf = s.work.join("elf/payload");
    plant_elf(&elf);
    let mut replies = Vec::new();
    let mut start = 3;
    while start <= 1023 {
        let end = (start + 60).min(1023);
        let r = s
            .rogue(&format!(
                "exec --fd-range {start}-{end}={} --file {} -- true payload {}",
                elf.display(),
                real_true().display(),
                marker.display()
            ))
            .await;
        assert!(!marker.exists(), "fds {start}-{end}: {r:?}");
        replies.push(r.value("reply").unwrap_or_default().to_string());
        start = end + 1;
    }
    // Escalations with extra fds work; near fd 1023 the server (soft fd
    // limit 1024) cannot place the fds and fails closed instead.
    assert!(
        replies
            .iter()
            .all(|r| r == "exited:0" || r.starts_with("escalate;error:")),
        "escalations with fds 3..1023: {replies:?}"
    );
    assert!(
        replies[..10].iter().all(|r| r == "exited:0"),
        "escalations with fds 3..613: {replies:?}"
    );
    s.assert_contained(base, &[&marker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_program_paths() {
    let (s, base) = server().await;
    let marker = s.outside.join("relative");
    let plant = s.work.join("p");
    plant_script(&plant.join("true"), &marker);
    for (file, cwd) in [
        ("true", plant.display().to_string()),
        ("./true", plant.display().to_string()),
        ("p/true", s.work.display().to_string()),
        // A relative working directory.
        ("true", "p".to_string()),
        ("./p/../p/true", s.work.display().to_string()),
    ] {
        let r = s
            .rogue(&format!("exec --file {file} --cwd {cwd} -- true"))
            .await;
        assert!(ran_inside(&r), "{file} in {cwd}: {r:?}");
    }
    // A relative path that resolves outside the writable roots is the real
    // program and escalates.
    let up = "../".repeat(s.work.components().count());
    let r = s
        .rogue(&format!(
            "exec --file {up}{} -- true",
            real_true().display().to_string().trim_start_matches('/')
        ))
        .await;
    assert_eq!(r.value("reply"), Some("exited:0"), "{r:?}");
    s.assert_contained(base, &[&marker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_directory_symlink_to_root() {
    let (s, base) = server().await;
    let marker = s.outside.join("cwd-link");
    let link = s.work.join("root");
    std::os::unix::fs::symlink("/", &link).unwrap();
    plant_script(&s.work.join("true"), &marker);
    // Relative to the link: `usr/bin/true` is the real one.
    let rel_true = real_true().display().to_string();
    let rel_true = rel_true.trim_start_matches('/');
    let r = s
        .rogue(&format!(
            "exec --file {rel_true} --cwd {} -- true",
            link.display()
        ))
        .await;
    assert_eq!(r.value("reply"), Some("exited:0"), "{r:?}");
    // `../true` from inside the link is `/true` (absent), not the planted one.
    let r = s
        .rogue(&format!(
            "exec --file ../true --cwd {} -- true",
            link.display()
        ))
        .await;
    assert!(ran_inside(&r), "{r:?}");
    // A planted program reached through the link is still planted.
    let via_link = format!("{}{}", link.display(), s.work.join("true").display());
    let r = s
        .rogue(&format!(
            "exec --file {via_link} --cwd {} -- true",
            link.display()
        ))
        .await;
    assert!(ran_inside(&r), "{r:?}");
    // The MCP workdir itself a symlink to /.
    let r = s
        .shell_in(&format!("{}; echo rc=$?", real_true().display()), &link)
        .await;
    assert_eq!(r.output, "rc=0\n", "{r:?}");
    s.assert_contained(base, &[&marker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_and_a_4_gib_length_prefix() {
    let (s, base) = server().await;
    let r = s.rogue("garbage").await;
    let v = |k: &str| r.value(&format!("garbage {k}")).unwrap_or_default();
    assert!(v("len-4gib").contains("exceeds the limit"), "{}", r.output);
    assert!(v("random").starts_with("Error("), "{}", r.output);
    assert!(
        v("unknown-tag").contains("unknown frame tag"),
        "{}",
        r.output
    );
    assert!(
        v("fds-first").contains("expected an exec request"),
        "{}",
        r.output
    );
    assert!(
        v("escalate-duplicate-targets").contains("duplicate fd target"),
        "{}",
        r.output
    );
    assert!(
        v("escalate-count-mismatch").contains("fds received"),
        "{}",
        r.output
    );
    // Inline in the handshake, the same junk gets the same answers.
    assert_eq!(
        v("inline-fds-first"),
        "Ok(true):Error(\"expected an exec request, got fds\")",
        "{}",
        r.output
    );
    assert!(
        v("inline-unknown-tag").contains("unknown frame tag"),
        "{}",
        r.output
    );
    for k in ["inline-trailing-byte", "inline-truncated"] {
        assert!(v(k).starts_with("Ok(true):Error("), "{k}: {}", r.output);
    }
    // A connection the rogue stuffed is dropped unanswered (no bytes beyond
    // the rogue's own), and other execs are served meanwhile.
    assert_eq!(
        v("inline-stuffed"),
        "Ok(true):other=exited:0:extra=0",
        "{}",
        r.output
    );
    assert_eq!(v("final"), "exited:0", "{}", r.output);
    s.assert_contained(base, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_fds() {
    let (s, base) = server().await;
    let r = s.rogue("fds 1000").await;
    let sent: usize = r.value("fds sent").unwrap_or("0").parse().unwrap();
    assert!(sent >= 1000, "{}", r.output);
    assert_eq!(r.value("fds final"), Some("exited:0"), "{}", r.output);
    for v in r.values("fds round1 sixty-four") {
        assert_eq!(v, "exited:0", "{}", r.output);
    }
    s.assert_contained(base, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_handshakes_in_a_burst() {
    let (s, base) = server().await;
    // 200 held: under the per-session cap (256), so escalations still work.
    let r = s.rogue("flood 10000 200").await;
    assert!(
        r.value("flood sent")
            .is_some_and(|v| v.starts_with("10000 ")),
        "{}",
        r.output
    );
    assert_eq!(
        r.value("flood while-held"),
        Some("exited:0"),
        "{}",
        r.output
    );
    assert_eq!(r.value("flood final"), Some("exited:0"), "{}", r.output);
    s.assert_contained(base, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_idle_connections_than_the_server_may_hold() {
    // 1,100 idle connections: more than the per-session cap and than the
    // server's soft fd limit (1024). The server must survive, other calls
    // must keep working once the flood ends, and nothing may leak.
    let (s, base) = server().await;
    let r = s.rogue("flood 3000 1100").await;
    assert_eq!(r.value("flood final"), Some("exited:0"), "{}", r.output);
    s.assert_contained(base, &[]).await;
}

/// A request trickled a byte at a time is cut off when the whole frame is
/// overdue (10 s), not kept alive by every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_request_is_cut_off() {
    let (s, base) = server().await;
    let r = s.rogue("trickle 40").await;
    let line = r.value("trickle secs").unwrap_or_default();
    let secs: u64 = line
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    assert!((9..=20).contains(&secs), "{}", r.output);
    assert!(
        line.contains("answer=Error(") && line.contains("timed out"),
        "{}",
        r.output
    );
    s.assert_contained(base, &[]).await;
}

/// A wrapper killed while its escalated program runs takes the program
/// with it. The test watches from outside: inside the sandbox's pid
/// namespace the escalated program cannot be seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_wrapper_mid_escalation() {
    let (s, base) = server().await;
    // The rogue as the wrapper.
    let trigger = s.work.join("kill-rogue-now");
    let pattern = b"sleep\x001000.25";
    let args = format!("spawn-and-kill 20 {} -- sleep 1000.25", trigger.display());
    let (r, seen) = tokio::join!(s.rogue(&args), async {
        let seen = harness::eventually(20, || !harness::processes_with(pattern).is_empty()).await;
        std::fs::write(&trigger, "").unwrap();
        seen
    });
    assert!(seen, "the escalated sleep never ran: {}", r.output);
    assert_eq!(r.value("trigger-seen"), Some("true"), "{}", r.output);
    assert!(
        harness::eventually(20, || harness::processes_with(pattern).is_empty()).await,
        "the escalated sleep outlived its wrapper: {}",
        r.output
    );
    // The real wrapper, killed by Bash.
    let trigger = s.work.join("kill-wrapper-now");
    let pattern = b"sleep\x001000.5";
    let command = format!(
        "sleep 1000.5 & w=$!; {rogue} wait-file {trigger} 20; kill -9 $w",
        rogue = rogue().display(),
        trigger = trigger.display()
    );
    let (r, seen) = tokio::join!(s.shell(&command), async {
        let seen = harness::eventually(20, || !harness::processes_with(pattern).is_empty()).await;
        std::fs::write(&trigger, "").unwrap();
        seen
    });
    assert!(seen, "the escalated sleep never ran: {}", r.output);
    assert_eq!(r.value("file-seen"), Some("true"), "{}", r.output);
    assert!(
        harness::eventually(20, || harness::processes_with(pattern).is_empty()).await,
        "the escalated sleep outlived its wrapper: {}",
        r.output
    );
    s.assert_contained(base, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_records_escalations() {
    let (s, base) = server().await;
    let r = s
        .shell(&format!("{} audit-arg; echo rc=$?", real_true().display()))
        .await;
    assert_eq!(r.output, "rc=0\n", "{r:?}");
    let log = s.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("decision=\"escalate\"") || l.contains("decision=escalate"))
        .unwrap_or_else(|| panic!("no escalate decision logged:\n{log}"));
    for field in ["program=", "argv=", "cwd=", "audit-arg"] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    let decided = log
        .lines()
        .find(|l| l.contains("exec decided") && l.contains("audit-arg"))
        .unwrap_or_else(|| panic!("no decision logged:\n{log}"));
    assert!(
        decided.contains("rule=") && decided.contains("redteam.rules:2"),
        "matched rule missing from {decided}"
    );
    s.assert_contained(base, &[]).await;
}
