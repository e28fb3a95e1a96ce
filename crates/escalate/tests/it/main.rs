//! End-to-end tests of exec interception: the real patched Bash, the real
//! `codex-execve-wrapper`, real sockets and fd passing.

mod support;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;
use std::time::Duration;

use escalate::Verdict;
use support::{TestDecider, marker, pids_with, run, wait_until};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn run_escalate_and_deny() {
    let dir = tmp();
    let decider = Arc::new(TestDecider {
        escalate: vec!["env"],
        deny: vec![("rm", "rm is not allowed here")],
        ..Default::default()
    });
    let out = run(
        "/bin/echo plain; env sh -c 'echo ppid=$PPID'; rm -f nothing; echo rm=$?",
        dir.path(),
        decider.clone(),
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    let me = std::process::id();
    assert_eq!(
        out.output,
        format!("plain\nppid={me}\nExecution denied: rm is not allowed here\nrm=1\n")
    );
    // A program that was only run stays a child of Bash.
    // (`; true`: Bash would exec a lone last command in place of itself.)
    let out = run("sh -c 'echo ppid=$PPID'; true", dir.path(), decider);
    assert!(!out.output.contains(&format!("ppid={me}")), "{out:?}");
}

#[test]
fn pipelines_mix_escalated_and_plain_stages() {
    let dir = tmp();
    let decider = TestDecider::escalating(&["cat", "tee"]);
    let out = run(
        "printf 'b\\na\\nc\\n' | cat | sort | tee sorted > copy; cat sorted copy",
        dir.path(),
        decider.clone(),
    );
    assert_eq!(out.output, "a\nb\nc\na\nb\nc\n", "{out:?}");
    assert_eq!(decider.requests_for("tee").len(), 1);
    assert_eq!(decider.requests_for("sort").len(), 1);
}

#[test]
fn redirections_reach_escalated_programs() {
    let dir = tmp();
    std::fs::write(dir.path().join("in"), "from a file\n").unwrap();
    let decider = TestDecider::escalating(&["env", "cat"]);
    let out = run(
        "cat < in; cat missing-file 2>&1; env sh -c 'echo three >&3' 3>fd3; cat fd3; cat missing 2>/dev/null; echo $?",
        dir.path(),
        decider,
    );
    assert_eq!(
        out.output, "from a file\ncat: missing-file: No such file or directory\nthree\n1\n",
        "{out:?}"
    );
}

#[test]
fn exit_codes_and_signals_come_back_as_bash_sees_them() {
    let dir = tmp();
    let decider = TestDecider::escalating(&["env"]);
    let out = run(
        "env true; echo $?; env false; echo $?; env sh -c 'exit 42'; echo $?; env sh -c 'kill -9 $$'; echo $?",
        dir.path(),
        decider,
    );
    // Bash reports the death itself ("... Killed ..."), then the status.
    assert!(out.output.starts_with("0\n1\n42\n"), "{out:?}");
    assert!(
        out.output.contains("Killed") && out.output.ends_with("\n137\n"),
        "{out:?}"
    );
    let out = run(
        "env sh -c 'exit 42'",
        dir.path(),
        TestDecider::escalating(&["env"]),
    );
    assert_eq!(out.exit_code, 42);
    let out = run("kill -9 $$", dir.path(), TestDecider::escalating(&[]));
    assert_eq!(out.exit_code, 137);
}

#[test]
fn two_hundred_background_execs() {
    let dir = tmp();
    let decider = TestDecider::escalating(&["env"]);
    let out = run(
        "for i in $(seq 200); do env true & done; wait; echo done",
        dir.path(),
        decider.clone(),
    );
    assert_eq!(out.output, "done\n", "{out:?}");
    assert_eq!(decider.requests_for("env").len(), 200);
}

#[test]
fn script_without_shebang_runs_as_in_plain_bash() {
    let dir = tmp();
    let script = dir.path().join("noshebang");
    std::fs::write(&script, "echo \"script got $1\"\n/bin/echo inner exec\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let decider = TestDecider::escalating(&[]);
    let out = run("./noshebang arg1; echo $?", dir.path(), decider.clone());
    assert_eq!(out.output, "script got arg1\ninner exec\n0\n", "{out:?}");
    // Execs inside the script still go through the wrapper.
    assert_eq!(decider.requests_for("echo").len(), 1);
}

#[test]
fn argv_bytes_arrive_identical() {
    let dir = tmp();
    let decider = TestDecider::escalating(&["env"]);
    let out = run(
        "env sh -c 'for a; do printf \"[%s]\" \"$a\"; done > args' zero 'a b' $'x\\ny' '' $'\\xff\\xfe'; echo $?",
        dir.path(),
        decider.clone(),
    );
    assert_eq!(out.output, "0\n", "{out:?}");
    let expected: Vec<OsString> = [
        &b"env"[..],
        b"sh",
        b"-c",
        b"for a; do printf \"[%s]\" \"$a\"; done > args",
        b"zero",
        b"a b",
        b"x\ny",
        b"",
        b"\xff\xfe",
    ]
    .iter()
    .map(|b| OsString::from_vec(b.to_vec()))
    .collect();
    let requests = decider.requests_for("env");
    assert_eq!(requests[0].argv, expected);
    assert_eq!(
        std::fs::read(dir.path().join("args")).unwrap(),
        b"[a b][x\ny][][\xff\xfe]"
    );
}

#[test]
fn environment_of_run_is_preserved_and_escalation_takes_only_the_allow_list() {
    let dir = tmp();
    let out = run(
        "FOO='bar baz' LD_PRELOAD=/nonexistent.so /usr/bin/env",
        dir.path(),
        TestDecider::escalating(&[]),
    );
    assert!(
        out.output.contains("FOO=bar baz\n") && out.output.contains("LD_PRELOAD=/nonexistent.so\n"),
        "{out:?}"
    );
    // Escalated: the server's environment (this test's), plus allow-listed
    // variables of the request (TERM, LC_*); nothing else of the request.
    let out = run(
        "FOO='bar baz' LD_PRELOAD=/nonexistent.so BASH_ENV=/x HOME=/tmp/h TERM=test-term env",
        dir.path(),
        TestDecider::escalating(&["env"]),
    );
    assert!(out.output.contains("TERM=test-term\n"), "{out:?}");
    assert!(out.output.contains("LC_ALL=C\n"), "{out:?}");
    assert!(
        !out.output.contains("FOO=")
            && !out.output.contains("LD_PRELOAD=/nonexistent.so")
            && !out.output.contains("BASH_ENV=")
            && !out.output.contains("HOME=/tmp/h"),
        "{out:?}"
    );
    let pwd = format!("PWD={}\n", dir.path().canonicalize().unwrap().display());
    assert!(out.output.contains(&pwd), "{out:?}");
    assert!(
        !out.output.contains("CODEX_ESCALATE_SOCKET") && !out.output.contains("BASH_EXEC_WRAPPER"),
        "{out:?}"
    );
}

#[test]
fn requests_too_big_for_the_handshake_follow_on_the_stream() {
    let dir = tmp();
    let decider = TestDecider::escalating(&["env"]);
    // 100 kB of environment: over the inline limit (64 KiB), under ARG_MAX.
    let out = run(
        "/usr/bin/printenv PATH >/dev/null; export BIG=$(printf '%0100000d' 0); \
         /usr/bin/printenv BIG | /usr/bin/wc -c; env printenv BIG | /usr/bin/wc -c",
        dir.path(),
        decider.clone(),
    );
    // (The escalated printenv does not get BIG: not on the allow-list.)
    assert_eq!(out.output, "100001\n0\n", "{out:?}");
    // The small request was answered from the handshake; the big ones,
    // run and escalated alike, were read from the stream and decided later.
    let deferred = decider.deferred.lock().unwrap().clone();
    let count = |name: &str| deferred.iter().filter(|d| *d == name).count();
    assert_eq!(
        (count("printenv"), count("wc"), count("env")),
        (1, 2, 1),
        "{deferred:?}"
    );
    let printenv = decider.requests_for("printenv");
    assert_eq!(printenv.len(), 2, "{printenv:?}");
    let big = |r: &escalate::ExecRequest| {
        r.env
            .iter()
            .any(|kv| kv.len() == 100_004 && kv.as_encoded_bytes().starts_with(b"BIG=0"))
    };
    assert!(!big(&printenv[0]) && big(&printenv[1]));
}

#[test]
fn programs_the_decider_never_names_run_without_asking() {
    let dir = tmp();
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho from-script\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let decider = Arc::new(TestDecider {
        escalate: vec!["env"],
        deny: vec![("rm", "rm is not allowed here")],
        ask: Some(vec!["env", "rm", "/usr/bin/printenv"]),
        ..Default::default()
    });
    let out = run(
        "/bin/echo unlisted; /usr/bin/printenv HOME >/dev/null; env sh -c 'echo ppid=$PPID'; \
         rm -f nothing; echo rm=$?; ./script.sh",
        dir.path(),
        decider.clone(),
    );
    let me = std::process::id();
    assert_eq!(
        out.output,
        format!(
            "unlisted\nppid={me}\nExecution denied: rm is not allowed here\nrm=1\nfrom-script\n"
        ),
        "{out:?}"
    );
    // Listed names and paths were asked about, and so was the relative
    // path; echo ran without a request.
    for name in ["printenv", "env", "rm", "script.sh"] {
        assert_eq!(decider.requests_for(name).len(), 1, "{name}");
    }
    assert!(decider.requests_for("echo").is_empty());

    // Without a list, everything is asked about.
    let decider = TestDecider::escalating(&[]);
    run("/bin/echo asked", dir.path(), decider.clone());
    assert_eq!(decider.requests_for("echo").len(), 1);
}

#[test]
fn killing_the_wrapper_kills_the_escalated_program() {
    let dir = tmp();
    let mark = format!("1{}", marker());
    let command = format!("env sleep {mark}; echo wrapper-status=$?");
    let decider = TestDecider::escalating(&["env"]);
    let handle = run_in_background(command, dir.path(), decider);
    // The marker is in Bash's, the wrapper's and the escalated sleep's
    // command lines; the escalated one is a child of this process.
    wait_until("the escalated sleep", || {
        pids_with(&mark).into_iter().any(is_ours)
    });
    signal_wrapper(&mark, nix::sys::signal::Signal::SIGKILL);
    let out = handle.join().unwrap();
    assert!(
        out.output.contains("Killed") && out.output.ends_with("\nwrapper-status=137\n"),
        "{out:?}"
    );
    assert!(
        pids_with(&mark).is_empty(),
        "escalated program survived its wrapper"
    );
}

#[test]
fn sigint_to_the_wrapper_reaches_the_escalated_program() {
    let dir = tmp();
    let mark = format!("1{}", marker());
    let command = format!(
        "env sh -c 'trap \"echo got INT; exit 7\" INT; : > ready; while :; do sleep 0.05; done' {mark}; echo status=$?"
    );
    let handle = run_in_background(command, dir.path(), TestDecider::escalating(&["env"]));
    let ready = dir.path().join("ready");
    wait_until("the escalated program to be ready", || ready.exists());
    signal_wrapper(&mark, nix::sys::signal::Signal::SIGINT);
    let out = handle.join().unwrap();
    assert_eq!(out.output, "got INT\nstatus=7\n", "{out:?}");
}

#[test]
fn timeout_kills_bash_and_escalated_programs() {
    let dir = tmp();
    let mark = format!("1{}", marker());
    let mut request = support::request(
        &format!("echo started; env sleep {mark} & sleep {mark}"),
        dir.path(),
    );
    request.timeout = Duration::from_millis(500);
    let out = support::run_with(
        support::config(),
        request,
        TestDecider::escalating(&["env"]),
        support::control(),
    );
    assert!(out.timed_out, "{out:?}");
    assert_eq!((out.exit_code, out.output.as_str()), (124, "started\n"));
    assert!(
        pids_with(&mark).is_empty(),
        "processes of the call survived: {:?}",
        pids_with(&mark)
    );
}

#[test]
fn background_jobs_end_with_the_call() {
    let dir = tmp();
    let mark = format!("1{}", marker());
    let out = run(
        &format!("env sleep {mark} & sleep {mark} & echo bye"),
        dir.path(),
        TestDecider::escalating(&["env"]),
    );
    assert_eq!(
        (out.exit_code, out.output.as_str(), out.timed_out),
        (0, "bye\n", false)
    );
    assert!(
        pids_with(&mark).is_empty(),
        "background jobs survived: {:?}",
        pids_with(&mark)
    );
}

#[test]
fn large_output_keeps_head_and_tail() {
    let dir = tmp();
    let out = run("seq 1 2000000", dir.path(), TestDecider::escalating(&[]));
    assert!(out.output.starts_with("1\n2\n3\n"), "{}", &out.output[..20]);
    assert!(out.output.ends_with("1999999\n2000000\n"));
    assert!(
        out.dropped_bytes > 0
            && out
                .output
                .contains(&format!("{} bytes of output omitted", out.dropped_bytes))
    );
}

#[test]
fn wrapper_without_socket_fails_closed() {
    let out = std::process::Command::new(support::wrapper())
        .args(["/bin/echo", "echo", "should not run"])
        .env_remove("CODEX_ESCALATE_SOCKET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("CODEX_ESCALATE_SOCKET"), "{stderr}");
    assert!(out.stdout.is_empty());
    let out = std::process::Command::new(support::wrapper())
        .args(["/bin/echo", "echo", "should not run"])
        .env("CODEX_ESCALATE_SOCKET", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
    assert!(out.stdout.is_empty());
}

#[test]
fn verdicts_reach_the_decider_with_absolute_paths() {
    let dir = tmp();
    let decider = TestDecider::escalating(&[]);
    run(
        "true_path=$(command -v true); \"$true_path\"; ls >/dev/null",
        dir.path(),
        decider.clone(),
    );
    let ls = decider.requests_for("ls");
    assert_eq!(ls.len(), 1);
    assert!(
        std::path::Path::new(&ls[0].file).is_absolute(),
        "{:?}",
        ls[0].file
    );
    assert_eq!(ls[0].cwd, dir.path().as_os_str());
    let _ = Verdict::Run;
}

fn run_in_background(
    command: String,
    dir: &std::path::Path,
    decider: Arc<TestDecider>,
) -> std::thread::JoinHandle<escalate::Outcome> {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || run(&command, &dir, decider))
}

/// Sends `signal` to the wrapper whose command line carries `mark`.
fn signal_wrapper(mark: &str, signal: nix::sys::signal::Signal) {
    let wrapper = pids_with(mark)
        .into_iter()
        .find(|pid| is_wrapper(*pid))
        .expect("wrapper process");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(wrapper as i32), signal).unwrap();
}

fn is_ours(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned))
        })
        .flatten()
        .is_some_and(|ppid| ppid == std::process::id().to_string())
}

fn is_wrapper(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.file_name().is_some_and(|n| n == "codex-execve-wrapper"))
        .unwrap_or(false)
}

#[test]
fn programs_run_in_place_keep_the_default_sigpipe() {
    // Rust ignores SIGPIPE at start-up; the wrapper must not pass that on,
    // or `yes | head` would never see `yes` die of SIGPIPE.
    let dir = tmp();
    let out = run(
        "yes | head -n 1; echo ${PIPESTATUS[0]}",
        dir.path(),
        TestDecider::escalating(&[]),
    );
    assert_eq!(out.output, "y\n141\n", "{out:?}");
    let out = run(
        "yes | head -n 1; echo ${PIPESTATUS[0]}",
        dir.path(),
        TestDecider::escalating(&["yes"]),
    );
    assert_eq!(out.output, "y\n141\n", "{out:?}");
}
