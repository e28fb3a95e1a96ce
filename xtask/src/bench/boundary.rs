//! The cost of the boundary: the sandbox alone against bubblewrap, the exec
//! check on Bash's execs and on a non-Bash program's, and an escalated
//! exec, each beside its peer in the same run.
//!
//! - Sandbox start-up: `codex-sandbox-exec --spec <workspace-write> --
//!   /bin/true` against `bwrap --ro-bind / / --bind W W --dev /dev --proc
//!   /proc --unshare-all --new-session --die-with-parent /bin/true` (the
//!   equivalent policy: read-only root, writable workspace, every namespace),
//!   spawn to exit, interleaved, p50 and p99; minus a plain `/bin/true`.
//!   Also as the server runs it: `--netns` joining a client's loopback
//!   network (made once, as the server makes one per client) instead of a
//!   network namespace of its own per call.
//! - Exec check: the exec loop of [`super::per_exec_in_call`] under
//!   workspace-write with `--exec-check bash-only` beside the default
//!   (`all`), and a Python loop of `posix_spawn("/bin/true")` (execs the
//!   wrapper never sees) through each server, minus the same loop run
//!   directly.
//! - Escalation: the exec loop with `allow` for `true`, every exec run by
//!   the server outside the sandbox, ours against the reference.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};

use super::client::Server;
use super::stats::{Summary, Unit, percentile, secs};
use super::subjects::{Kind, Subjects};
use super::{CALL_TIMEOUT_MS, EXECS, Plan, Row, per_exec_in_call, per_exec_plain};

/// Spawns per measurement of the sandbox start-up.
const STARTS: usize = 200;
const STARTS_QUICK: usize = 30;

/// Measurement 8: the sandbox alone, ours against bubblewrap.
pub(super) fn sandbox_start(s: &Subjects, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let Some(launcher) = s.ours.sandbox_exec.as_ref() else {
        bail!("no codex-sandbox-exec in the snapshot");
    };
    let Some(bwrap) = find_program("bwrap") else {
        println!(
            "bench: skipped the bubblewrap rows: no `bwrap` on PATH (cargo xtask setup installs it)"
        );
        return Ok(());
    };
    let work = s.work.display().to_string();
    let spec = serde_json::json!({
        "writable_roots": [work],
        "read_only_subpaths": [],
        "network": false,
    })
    .to_string();
    let ours: Vec<OsString> = vec![
        launcher.into(),
        "--spec".into(),
        spec.into(),
        "--".into(),
        "/bin/true".into(),
    ];
    let theirs: Vec<OsString> = [
        bwrap.to_str().unwrap_or("bwrap"),
        "--ro-bind",
        "/",
        "/",
        "--bind",
        &work,
        &work,
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-all",
        "--new-session",
        "--die-with-parent",
        "/bin/true",
    ]
    .map(OsString::from)
    .to_vec();
    let plain: Vec<OsString> = vec!["/bin/true".into()];
    // Both must work here before they are timed.
    for argv in [&ours, &theirs] {
        let (ok, stderr) = run_once(argv, &s.work, None)?;
        if !ok {
            bail!("{} failed: {stderr}", describe(argv));
        }
    }
    // As the server runs it: a client's calls join its loopback network.
    let loopback = if nix_root() {
        Loopback::make()
            .map_err(|e| println!("bench: skipped the shared-loopback rows: {e:#}"))
            .ok()
    } else {
        println!("bench: skipped the shared-loopback rows: they need root (unshare --net)");
        None
    };
    let mut joined = ours.clone();
    joined.splice(1..1, ["--netns".into(), "3".into()]);
    if let Some(l) = &loopback {
        let (ok, stderr) = run_once(&joined, &s.work, Some(&l.net))?;
        if !ok {
            bail!("{} failed: {stderr}", describe(&joined));
        }
    }
    let n = if plan.quick { STARTS_QUICK } else { STARTS };
    println!(
        "bench: sandbox start-up, {n} × (ours, ours in a shared loopback, bubblewrap, plain /bin/true)"
    );
    let (mut t_ours, mut t_theirs, mut t_plain) = (Vec::new(), Vec::new(), Vec::new());
    let mut t_joined = Vec::new();
    for _ in 0..n {
        t_ours.push(time(&ours, &s.work, None)?);
        if let Some(l) = &loopback {
            t_joined.push(time(&joined, &s.work, Some(&l.net))?);
        }
        t_theirs.push(time(&theirs, &s.work, None)?);
        t_plain.push(time(&plain, &s.work, None)?);
    }
    let plain_p50 = percentile(&t_plain, 50.0);
    rows.push(Row::new(
        "sandbox start-up, `/bin/true` under it, p50 (min–max); reference column: bubblewrap",
        Some(Summary::of(&t_ours, Unit::Seconds)),
        Some(Summary::of(&t_theirs, Unit::Seconds)),
        "< bubblewrap",
    ));
    rows.push(Row::new(
        "sandbox start-up, p99; reference column: bubblewrap",
        Some(Summary::one(percentile(&t_ours, 99.0), Unit::Seconds)),
        Some(Summary::one(percentile(&t_theirs, 99.0), Unit::Seconds)),
        "",
    ));
    rows.push(Row::new(
        "sandbox start-up minus a plain `/bin/true`, p50; reference column: bubblewrap",
        Some(Summary::one(
            percentile(&t_ours, 50.0) - plain_p50,
            Unit::Seconds,
        )),
        Some(Summary::one(
            percentile(&t_theirs, 50.0) - plain_p50,
            Unit::Seconds,
        )),
        "< 1 ms",
    ));
    if !t_joined.is_empty() {
        rows.push(Row::new(
            "sandbox start-up as the server runs it (network off, the client's loopback joined), p50 (min–max); reference column: bubblewrap (a network of its own)",
            Some(Summary::of(&t_joined, Unit::Seconds)),
            Some(Summary::of(&t_theirs, Unit::Seconds)),
            "< bubblewrap",
        ));
        rows.push(Row::new(
            "sandbox start-up as the server runs it, minus a plain `/bin/true`, p50",
            Some(Summary::one(
                percentile(&t_joined, 50.0) - plain_p50,
                Unit::Seconds,
            )),
            None,
            "< 1 ms",
        ));
    }
    Ok(())
}

fn nix_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A Python loop of `n` direct execs of `/bin/true`, which Bash's wrapper
/// never sees (only the exec check does).
fn python_loop(n: u32) -> String {
    format!(
        "python3 -c 'import os\nfor _ in range({n}): os.waitpid(os.posix_spawn(\"/bin/true\", [\"true\"], {{}}), 0)'"
    )
}

/// Per-exec time of the Python loop in a call: (N − 0) / N.
fn python_in_call(server: &Server, work: &Path) -> Result<f64> {
    let t = Instant::now();
    server.shell(&python_loop(0), work, false, CALL_TIMEOUT_MS)?;
    let empty = secs(t.elapsed());
    let t = Instant::now();
    server.shell(&python_loop(EXECS), work, false, CALL_TIMEOUT_MS)?;
    let full = secs(t.elapsed());
    Ok((full - empty) / f64::from(EXECS))
}

/// The same loop run directly.
fn python_plain(work: &Path) -> Result<f64> {
    let time = |n: u32| -> Result<f64> {
        let t = Instant::now();
        let status = Command::new("/bin/sh")
            .args(["-c", &python_loop(n)])
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("cannot run python3")?;
        if !status.success() {
            bail!("the python exec loop failed: {status}");
        }
        Ok(secs(t.elapsed()))
    };
    let empty = time(0)?;
    let full = time(EXECS)?;
    Ok((full - empty) / f64::from(EXECS))
}

/// Measurement 9: the exec check and the escalated path.
pub(super) fn exec_check_and_escalation(
    s: &Subjects,
    empty_home: &Path,
    allow_home: &Path,
    plan: &Plan,
    rows: &mut Vec<Row>,
) -> Result<()> {
    if find_program("python3").is_none() {
        bail!("python3 is needed for the exec-check rows");
    }
    let with_args = |kind: Kind, home: &Path, extra: &[&str]| -> Result<Server> {
        let mut launch = s.launch(kind, home);
        launch.argv.extend(extra.iter().map(OsString::from));
        let (server, _) = Server::start(&launch)?;
        if kind == Kind::Reference {
            server.sandbox_state(serde_json::json!({"type": "danger-full-access"}), &s.work)?;
        }
        Ok(server)
    };
    let checked = with_args(Kind::OursWorkspace, empty_home, &[])?;
    let bash_only = with_args(
        Kind::OursWorkspace,
        empty_home,
        &["--exec-check", "bash-only"],
    )?;
    let reference = with_args(Kind::Reference, empty_home, &[])?;
    let ours_allow = with_args(Kind::OursFull, allow_home, &[])?;
    let reference_allow = with_args(Kind::Reference, allow_home, &[])?;
    for server in [
        &checked,
        &bash_only,
        &reference,
        &ours_allow,
        &reference_allow,
    ] {
        server.shell("true", &s.work, false, CALL_TIMEOUT_MS)?; // warm-up
    }
    let mut bash_path: [Vec<f64>; 3] = Default::default();
    let mut python: [Vec<f64>; 3] = Default::default();
    let mut escalated: [Vec<f64>; 2] = Default::default();
    for run in 0..plan.runs {
        println!(
            "bench: exec check and escalation, run {}/{}",
            run + 1,
            plan.runs
        );
        let servers = [&checked, &bash_only, &reference];
        for (i, server) in servers.iter().enumerate() {
            let bash = if i == 2 {
                &s.reference.bash
            } else {
                &s.ours.bash
            };
            let plain = per_exec_plain(bash, &s.work)?;
            bash_path[i].push(per_exec_in_call(server, &s.work)? - plain);
            let plain = python_plain(&s.work)?;
            python[i].push(python_in_call(server, &s.work)? - plain);
        }
        for (i, (server, bash)) in [
            (&ours_allow, &s.ours.bash),
            (&reference_allow, &s.reference.bash),
        ]
        .into_iter()
        .enumerate()
        {
            let plain = per_exec_plain(bash, &s.work)?;
            escalated[i].push(per_exec_in_call(server, &s.work)? - plain);
        }
    }
    let reference_bash = Summary::of(&bash_path[2], Unit::Seconds);
    rows.push(Row::new(
        "per-exec overhead, Bash's execs, workspace-write, exec check on (`all`)",
        Some(Summary::of(&bash_path[0], Unit::Seconds)),
        Some(reference_bash.clone()),
        "≤ 0.2 ms",
    ));
    rows.push(Row::new(
        "per-exec overhead, Bash's execs, workspace-write, `--exec-check bash-only`",
        Some(Summary::of(&bash_path[1], Unit::Seconds)),
        Some(reference_bash),
        "",
    ));
    let reference_python = Summary::of(&python[2], Unit::Seconds);
    rows.push(Row::new(
        "per-exec overhead, a Python loop's direct execs (posix_spawn), workspace-write, exec check on",
        Some(Summary::of(&python[0], Unit::Seconds)),
        Some(reference_python.clone()),
        "≤ 0.1 ms",
    ));
    rows.push(Row::new(
        "per-exec overhead, a Python loop's direct execs, workspace-write, `--exec-check bash-only`",
        Some(Summary::of(&python[1], Unit::Seconds)),
        Some(reference_python),
        "",
    ));
    rows.push(Row::new(
        "per-exec overhead, escalated (`allow` for true: run by the server), danger-full-access",
        Some(Summary::of(&escalated[0], Unit::Seconds)),
        Some(Summary::of(&escalated[1], Unit::Seconds)),
        "",
    ));
    for server in [checked, bash_only, reference, ours_allow, reference_allow] {
        server.shutdown()?;
    }
    Ok(())
}

/// A `CODEX_HOME` whose rules allow `true`: every exec of it escalates.
pub(super) fn allow_true_home(dir: &Path) -> Result<PathBuf> {
    let home = dir.join("home-allow-true");
    let rules = home.join("rules");
    fs::create_dir_all(&rules).with_context(|| format!("cannot create {}", rules.display()))?;
    fs::write(
        rules.join("bench.rules"),
        "prefix_rule(pattern = [\"true\"], decision = \"allow\")\n",
    )?;
    Ok(home)
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn describe(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_once(argv: &[OsString], cwd: &Path, fd3: Option<&fs::File>) -> Result<(bool, String)> {
    let out = command(argv, fd3)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", describe(argv)))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `argv` as a command, spawned the same way for every subject (a
/// `pre_exec` hook: std then forks rather than `posix_spawn`s), with
/// `fd3` at fd 3 when given (the client's loopback network).
fn command(argv: &[OsString], fd3: Option<&fs::File>) -> Command {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let fd = fd3.map(|f| f.as_raw_fd());
    // SAFETY: dup2 is async-signal-safe and takes integers; `fd` is open
    // (borrowed from a file alive across the spawn).
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec.
            let placed = match fd {
                None => 0,
                Some(3) => libc::fcntl(3, libc::F_SETFD, 0),
                Some(fd) => libc::dup2(fd, 3),
            };
            if placed < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// A network namespace with only `lo`, up, held by a `sleep` (the way the
/// server keeps a client's loopback network): the process, and its
/// `ns/net` opened. Root only (`unshare --net`, `ip`).
struct Loopback {
    holder: std::process::Child,
    net: fs::File,
}

impl Loopback {
    fn make() -> Result<Loopback> {
        use std::io::BufRead;
        let mut holder = Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                "ip link set lo up && echo ready && exec sleep 100000",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run unshare --net")?;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().expect("piped")).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = holder.kill();
            let _ = holder.wait();
            bail!("unshare --net with `ip link set lo up` failed");
        }
        let net = fs::File::open(format!("/proc/{}/ns/net", holder.id()))?;
        Ok(Loopback { holder, net })
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Spawn to exit.
fn time(argv: &[OsString], cwd: &Path, fd3: Option<&fs::File>) -> Result<f64> {
    let t = Instant::now();
    let status = command(argv, fd3)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", describe(argv)))?;
    let elapsed = secs(t.elapsed());
    if !status.success() {
        bail!("{} failed: {status}", describe(argv));
    }
    Ok(elapsed)
}

/// Measurement 10, what the checks before an escalation cost (issue 14's
/// target): the `escalation_checks` example of `escalate`, over a fresh
/// repository whose `.git` a recorded sandbox protected. Ours only: the reference checks
/// nothing before it escalates.
pub(super) fn escalation_checks(dir: &Path, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let repo = dir.join("checks-repo");
    if !repo.join(".git").is_dir() {
        fs::create_dir_all(&repo)?;
        let status = Command::new("git")
            .args(["init", "-q"])
            .current_dir(&repo)
            .status()
            .context("cannot run git init")?;
        if !status.success() {
            bail!("git init in {} failed: {status}", repo.display());
        }
    }
    let n = if plan.quick { "2000" } else { "20000" };
    println!("bench: escalation checks ({n} each)");
    let out = Command::new(crate::util::cargo())
        .args([
            "run",
            "-q",
            "--release",
            "-p",
            "escalate",
            "--example",
            "escalation_checks",
            "--",
        ])
        .arg(&repo)
        .arg(n)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the escalation_checks example")?;
    if !out.status.success() {
        bail!("the escalation_checks example failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        // "NAME: X µs per escalation check, of which Y µs resolving the program"
        let Some((name, rest)) = line.split_once(": ") else {
            continue;
        };
        let Some(micros) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        rows.push(Row::new(
            format!("checks before an escalation, `{name}` (resolve, file, workdir, environment, context)"),
            Some(Summary::one(micros * 1e-6, Unit::Seconds)),
            None,
            "< 0.1 ms",
        ));
    }
    Ok(())
}
