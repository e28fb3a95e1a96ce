//! `cargo xtask bash-suite`: Bash's own test suite (`tests/run-*` of the
//! very source tree we build) against the patched Bash, directly and through
//! the real server.
//!
//! Configurations ([`Mode`]), each in its own directory
//! `target/xtask/bash-suite/<line>/<mode>/` with a copy of `tests/` (plus the
//! helpers `make tests` builds) and of the Bash under test:
//! - `reference`: the same tree built without our patch, run directly;
//! - `plain`: the patched Bash, run directly, no `BASH_EXEC_WRAPPER`;
//! - `wrapper`: the patched Bash as the server's shell: one `shell` call to
//!   `codex-exec-mcp-server --sandbox danger-full-access` (no rules, an empty
//!   `CODEX_HOME`) runs the suite, so every program a Bash under test
//!   executes goes through the real `codex-execve-wrapper`. With no rules
//!   the wrappers still ask the server about the programs its
//!   dangerous-command heuristics inspect (`rm`, `chmod`, ...); the client
//!   approves every prompt (`rm -f` is one), so those run escalated, by the
//!   server, with the wrapper's descriptors: the Escalate path is exercised
//!   a few hundred times;
//! - `sandbox`: the same under the default `workspace-write` sandbox.
//!
//! Every configuration runs the same driver ([`DRIVER`]) the same way: the
//! Bash under test runs `bash -c '. suite.sh'` (directly, or as the server
//! does), in a new process group, stdin `/dev/null`, with the same small
//! environment; the driver runs each `run-*` script as `run-all` does, one
//! output file per test. Outputs are compared with the reference's after
//! replacing the configuration's directory and build tree by placeholders
//! (and the pid in one message). `plain` must match exactly. For `wrapper`
//! and `sandbox`, each differing line must be explained by an entry of
//! [`EXPECTED`] (test, lines, modes, a regex the differing lines match, the
//! reason); an entry that explains nothing in a full run fails too, so the
//! list stays short and true. The exception are entries marked `flaky`:
//! races inside a test (with the clock, or with a child's exit) that any
//! configuration, the reference included, loses now and then.
//!
//! The configurations run concurrently (`--sequential` to not), each in a
//! mount namespace of its own whose `/tmp` is private (several tests use
//! fixed names there); that needs root, and without it they run one after
//! another. CI (`bash-suite` step, [`ci_step`]) runs both lines in all four
//! configurations at once: about two and a half minutes, because the suite
//! mostly sleeps.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{
    bash::{self, Flavor, Release, Spec, Target},
    bench::client::{Launch, Server},
    util::{self, Args},
};

const USAGE: &str = "cargo xtask bash-suite [--version 5.3|5.2|all] [--modes reference,plain,wrapper,sandbox] \
                     [--tests run-a,run-b] [--sequential]";

/// The list of expected differences, relative to the project root.
pub(crate) const EXPECTED: &str = "patches/bash-suite-expected.toml";

/// How long one configuration's whole suite may take.
const SUITE_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long one `run-*` script may take (the driver's `timeout`).
const TEST_TIMEOUT_SECS: u32 = 300;

/// One configuration of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    Reference,
    Plain,
    Wrapper,
    Sandbox,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Reference, Mode::Plain, Mode::Wrapper, Mode::Sandbox];

    fn name(self) -> &'static str {
        match self {
            Mode::Reference => "reference",
            Mode::Plain => "plain",
            Mode::Wrapper => "wrapper",
            Mode::Sandbox => "sandbox",
        }
    }

    fn parse(name: &str) -> Result<Mode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .with_context(|| {
                format!("unknown mode {name:?} (known: reference, plain, wrapper, sandbox)")
            })
    }

    fn patched(self) -> bool {
        self != Mode::Reference
    }

    /// The server's `--sandbox`, for the modes that run under the server.
    fn sandbox(self) -> Option<&'static str> {
        match self {
            Mode::Wrapper => Some("danger-full-access"),
            Mode::Sandbox => Some("workspace-write"),
            Mode::Reference | Mode::Plain => None,
        }
    }
}

/// Runs every `run-*` script (as `tests/run-all` does, without its banner)
/// with its output in `$SUITE_OUT/<name>.out` and `name status seconds`
/// lines in `$SUITE_OUT/status`. `$SUITE_TESTS` limits it to a
/// space-separated list.
const DRIVER: &str = r#"# Sourced by the Bash under test; written by `cargo xtask bash-suite`
# (xtask/src/bash_suite.rs): Bash's tests/run-all, one output file per test.
cd "$SUITE_ROOT/tests" || exit 2
PATH=$SUITE_ROOT/tests:$PATH
export PATH THIS_SH BUILD_DIR TMPDIR
BASH_TSTOUT=$TMPDIR/bashtst
export BASH_TSTOUT
: > "$SUITE_OUT/status"
for x in run-*
do
	case $x in
	run-all|run-minimal|run-gprof|*.orig|*~) continue ;;
	esac
	if [ -n "$SUITE_TESTS" ]; then
		case " $SUITE_TESTS " in
		*" $x "*) ;;
		*) continue ;;
		esac
	fi
	start=$SECONDS
	timeout -k 10 "$SUITE_TEST_TIMEOUT" sh "$x" > "$SUITE_OUT/$x.out" 2>&1 < /dev/null
	status=$?
	echo "$x $status $(( SECONDS - start ))" >> "$SUITE_OUT/status"
	rm -f "$BASH_TSTOUT"
done
echo "suite done"
"#;

/// One configuration's result: per test, (status, seconds).
struct ModeRun {
    mode: Mode,
    root: PathBuf,
    tests: BTreeMap<String, (i32, u64)>,
    elapsed: Duration,
    /// Dangerous commands approved (and so run escalated, by the server).
    approvals: u64,
}

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let mut args = Args::new(args, USAGE);
    let releases = match args.value("--version")?.as_deref() {
        Some("all") => bash::RELEASES.to_vec(),
        Some(v) => vec![bash::release(v)?],
        None => vec![bash::SHIPPED],
    };
    let modes = match args.value("--modes")? {
        Some(list) => list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(Mode::parse)
            .collect::<Result<Vec<_>>>()?,
        None => Mode::ALL.to_vec(),
    };
    let tests: Vec<String> = args
        .value("--tests")?
        .map(|l| l.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let sequential = args.flag("--sequential");
    args.finish()?;
    let plan: Vec<_> = releases.into_iter().map(|r| (r, modes.clone())).collect();
    suite(sh, &plan, &tests, !sequential)
}

/// `cargo xtask ci` step `bash-suite`: 5.3 and 5.2.37, each in every
/// configuration, all eight runs at once.
///
/// One configuration takes about two minutes, nearly all of it waiting
/// (`sleep`s in the job-control, trap and read tests; about 10 s of CPU), so
/// the eight run concurrently (each with its own `/tmp`) in little more than
/// one's time, and the whole step, builds included, takes a few minutes.
pub(crate) fn ci_step(sh: &Shell) -> Result<()> {
    let plan: Vec<_> = bash::RELEASES
        .iter()
        .map(|r| (*r, Mode::ALL.to_vec()))
        .collect();
    suite(sh, &plan, &[], true)
}

/// Builds what `plan` needs, runs every configuration of every release
/// (concurrently when `concurrent` and root), then compares each release's
/// configurations with its reference.
fn suite(
    sh: &Shell,
    plan: &[(&'static Release, Vec<Mode>)],
    tests: &[String],
    concurrent: bool,
) -> Result<()> {
    let started = Instant::now();
    let root = util::project_root();
    let expected = Expected::load(&root.join(EXPECTED))?;
    // Concurrent configurations need a /tmp each: a mount namespace, which
    // needs root.
    let concurrent = concurrent && util::is_root();
    let target = Target::from_triple(bash::DEFAULT_TRIPLE)?;
    let server = if plan
        .iter()
        .any(|(_, modes)| modes.iter().any(|m| m.sandbox().is_some()))
    {
        Some(server_binaries(sh)?)
    } else {
        None
    };

    // (release index, job)
    let mut jobs: Vec<(usize, Job)> = Vec::new();
    for (index, (release, modes)) in plan.iter().enumerate() {
        let mut modes = modes.clone();
        modes.push(Mode::Reference);
        modes.sort();
        modes.dedup();
        let mut trees = BTreeMap::new();
        for patched in [false, true] {
            if !modes.iter().any(|m| m.patched() == patched) {
                continue;
            }
            let built = bash::build_spec(
                sh,
                &Spec {
                    release,
                    flavor: Flavor::Static(target.clone()),
                    patched,
                    src: None,
                },
            )?;
            support_programs(&built.tree)?;
            trees.insert(patched, built);
        }
        let base = root.join("target/xtask/bash-suite").join(release.line);
        for &mode in &modes {
            let built = &trees[&mode.patched()];
            let dir = base.join(mode.name());
            prepare(&dir, &built.tree, &built.bash)?;
            jobs.push((
                index,
                Job {
                    mode,
                    dir,
                    build_dir: built.tree.clone(),
                    server: server.clone(),
                    tests: tests.join(" "),
                    private_tmp: concurrent,
                },
            ));
        }
        println!(
            "bash-suite: bash {}: {} in {}",
            release.version(),
            modes
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", "),
            base.display(),
        );
    }
    println!(
        "bash-suite: running {} configurations {}",
        jobs.len(),
        if concurrent {
            "concurrently"
        } else {
            "one after another (concurrent runs need root for a private /tmp each)"
        }
    );
    let suites_started = Instant::now();
    let results: Vec<Result<ModeRun>> = if concurrent {
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs.iter().map(|(_, j)| s.spawn(|| j.run())).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("suite thread panicked"))
                .collect()
        })
    } else {
        jobs.iter().map(|(_, j)| j.run()).collect()
    };
    let runs = results.into_iter().collect::<Result<Vec<_>>>()?;
    if let Some(missing) = tests
        .iter()
        .find(|t| !runs.iter().any(|r| r.tests.contains_key(t.as_str())))
    {
        bail!("--tests: no test {missing:?} ran (names look like run-alias)");
    }
    for (r, (index, _)) in runs.iter().zip(&jobs) {
        println!(
            "bash-suite: bash {} {}: {} tests in {:.0}s{}",
            plan[*index].0.version(),
            r.mode.name(),
            r.tests.len(),
            r.elapsed.as_secs_f64(),
            if r.mode.sandbox().is_some() {
                format!(
                    ", {} dangerous commands approved (run escalated)",
                    r.approvals
                )
            } else {
                String::new()
            }
        );
    }
    println!(
        "bash-suite: suites ran in {:.0}s",
        suites_started.elapsed().as_secs_f64()
    );
    let mut failures = Vec::new();
    for (index, (release, _)) in plan.iter().enumerate() {
        let (mine, my_jobs): (Vec<&ModeRun>, Vec<&Job>) = runs
            .iter()
            .zip(&jobs)
            .filter(|(_, (i, _))| *i == index)
            .map(|(r, (_, j))| (r, j))
            .unzip();
        if let Err(e) = compare(release, &mine, &my_jobs, &expected, tests.is_empty()) {
            failures.push(format!("{e:#}"));
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    println!("bash-suite: ok in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `recho`, `zecho`, `printenv`, `xcase`: the helpers `make tests` builds
/// and copies into `tests/`.
const SUPPORT: [&str; 4] = ["recho", "zecho", "printenv", "xcase"];

fn support_programs(tree: &Path) -> Result<()> {
    let mut make = Command::new("make");
    make.current_dir(tree).args(SUPPORT);
    bash::run_logged(
        make,
        &tree.join("support-programs.log"),
        "make recho zecho ...",
    )
}

/// Paths of the server and what it finds beside itself: `cargo build` of the
/// three shipped binaries (debug; a no-op after CI's `build` step).
fn server_binaries(sh: &Shell) -> Result<PathBuf> {
    let cargo = util::cargo();
    let packages: Vec<String> = crate::dist::BINARIES
        .iter()
        .flat_map(|(p, _)| ["-p".to_owned(), (*p).to_owned()])
        .collect();
    cmd!(sh, "{cargo} build -q {packages...} --bins")
        .run()
        .context("cannot build the server binaries")?;
    Ok(util::project_root().join("target/debug/codex-exec-mcp-server"))
}

/// A fresh configuration directory: `tests/` (with the support programs),
/// `bash`, `tmp/`, `out/`, `home/`, `codex-home/`, `suite.sh`.
fn prepare(dir: &Path, tree: &Path, bash: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(tree.join("tests"))
        .arg(dir.join("tests"))
        .status()
        .context("cannot run cp")?;
    if !status.success() {
        bail!("cannot copy {}/tests to {}", tree.display(), dir.display());
    }
    for program in SUPPORT {
        let from = tree.join(program);
        fs::copy(&from, dir.join("tests").join(program))
            .with_context(|| format!("cannot copy {}", from.display()))?;
    }
    fs::copy(bash, dir.join("bash")).with_context(|| format!("cannot copy {}", bash.display()))?;
    for sub in ["tmp", "out", "home", "codex-home", "slash-tmp"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let driver = dir.join("suite.sh");
    fs::write(&driver, DRIVER).with_context(|| format!("cannot write {}", driver.display()))?;
    Ok(())
}

struct Job {
    mode: Mode,
    dir: PathBuf,
    build_dir: PathBuf,
    /// The server binary, for the modes that use it.
    server: Option<PathBuf>,
    tests: String,
    /// Run in a mount namespace of its own whose `/tmp` is `<dir>/slash-tmp`
    /// (several tests use fixed names in `/tmp`; configurations running at
    /// the same time would see each other's files).
    private_tmp: bool,
}

impl Job {
    /// The environment every configuration starts from.
    fn env(&self) -> Vec<(String, OsString)> {
        let d = &self.dir;
        vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), d.join("home").into()),
            ("TMPDIR".into(), d.join("tmp").into()),
            ("THIS_SH".into(), d.join("bash").into()),
            ("BUILD_DIR".into(), self.build_dir.clone().into()),
            ("SUITE_ROOT".into(), d.clone().into()),
            ("SUITE_OUT".into(), d.join("out").into()),
            ("SUITE_TESTS".into(), self.tests.clone().into()),
            (
                "SUITE_TEST_TIMEOUT".into(),
                TEST_TIMEOUT_SECS.to_string().into(),
            ),
        ]
    }

    /// The Bash under test sources the driver: everything it starts (the
    /// `run-*` scripts' `sh`, `timeout`, `date`) is an exec of that Bash.
    fn command(&self) -> String {
        format!(". {}/suite.sh", self.dir.display())
    }

    /// `argv`, in a mount namespace with a private `/tmp` if asked.
    fn isolated(&self, argv: Vec<OsString>) -> Vec<OsString> {
        if !self.private_tmp {
            return argv;
        }
        // A checkout under /tmp (CI may clone there) would vanish under the
        // private /tmp: its top directory there is bound back in, from an
        // fd opened before (the bind goes to the directory, not a loop).
        let root = util::project_root();
        let top = match root.strip_prefix("/tmp") {
            Ok(rel) => rel
                .components()
                .next()
                .map(|c| Path::new("/tmp").join(c))
                .unwrap_or_default(),
            Err(_) => PathBuf::new(),
        };
        let mut v: Vec<OsString> = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            r#"top=$1; shift
if [ -n "$top" ]; then exec 9<"$top" || exit 1; fi
mount --bind "$0" /tmp || exit 1
if [ -n "$top" ]; then
    mkdir -p "$top" && mount --no-canonicalize --bind /proc/self/fd/9 "$top" || exit 1
    exec 9<&-
fi
exec "$@""#,
        ]
        .map(OsString::from)
        .to_vec();
        v.push(self.dir.join("slash-tmp").into());
        v.push(top.into());
        v.extend(argv);
        v
    }

    fn run(&self) -> Result<ModeRun> {
        let started = Instant::now();
        let approvals = match self.mode.sandbox() {
            None => {
                self.run_direct()?;
                0
            }
            Some(sandbox) => self.run_server(sandbox)?,
        };
        let status_file = self.dir.join("out/status");
        let log = if self.mode.sandbox().is_some() {
            "server.log"
        } else {
            "driver.log"
        };
        let Ok(text) = fs::read_to_string(&status_file) else {
            bail!(
                "{}: the suite driver never started (no {}); see {}",
                self.mode.name(),
                status_file.display(),
                self.dir.join(log).display()
            );
        };
        let mut tests = BTreeMap::new();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            let (Some(name), Some(status), Some(secs)) = (w.next(), w.next(), w.next()) else {
                bail!("{}: bad line {line:?}", status_file.display());
            };
            tests.insert(
                name.to_owned(),
                (status.parse().unwrap_or(-1), secs.parse().unwrap_or(0)),
            );
        }
        Ok(ModeRun {
            mode: self.mode,
            root: self.dir.clone(),
            tests,
            elapsed: started.elapsed(),
            approvals,
        })
    }

    /// `bash -c COMMAND` as the server starts it: own process group, stdin
    /// `/dev/null`, stdout and stderr to one file.
    fn run_direct(&self) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let log = fs::File::create(self.dir.join("driver.log"))?;
        let argv = self.isolated(vec![
            self.dir.join("bash").into(),
            "-c".into(),
            self.command().into(),
        ]);
        let mut command = Command::new(&argv[0]);
        // Only stdin, stdout and stderr, as the server gives its Bash: fds
        // inherited from whoever ran xtask would shift the numbers `exec
        // {v}>` picks (run-vredir, run-nameref) in these runs only.
        // SAFETY: close_range is async-signal-safe and takes integers.
        unsafe {
            command.pre_exec(|| {
                if libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                ) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .args(&argv[1..])
            .env_clear()
            .envs(self.env())
            .current_dir(&self.dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}/bash", self.dir.display()))?;
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut child = child;
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(SUITE_TIMEOUT) {
            Ok(status) => status.context("cannot wait for the suite")?,
            Err(_) => {
                // The whole group, as the server does when a call times out.
                let group = format!("-{pid}");
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                bail!(
                    "{}: the suite took more than {SUITE_TIMEOUT:?}",
                    self.mode.name()
                );
            }
        };
        if !status.success() {
            bail!(
                "{}: the suite driver failed ({status}); see {}/driver.log",
                self.mode.name(),
                self.dir.display()
            );
        }
        Ok(())
    }

    /// One `shell` call on a server started with `env -i` and this
    /// configuration's environment.
    /// Returns how many approvals (dangerous commands, which then ran
    /// escalated) the client gave.
    fn run_server(&self, sandbox: &str) -> Result<u64> {
        let server = self.server.as_ref().expect("server modes have a server");
        let mut argv: Vec<OsString> = vec!["/usr/bin/env".into(), "-i".into()];
        let mut env = self.env();
        env.push(("CODEX_HOME".into(), self.dir.join("codex-home").into()));
        for (k, v) in &env {
            let mut kv = OsString::from(k);
            kv.push("=");
            kv.push(v);
            argv.push(kv);
        }
        argv.extend([
            server.clone().into(),
            "--bash".into(),
            self.dir.join("bash").into(),
            "--sandbox".into(),
            sandbox.into(),
        ]);
        let launch = Launch {
            argv: self.isolated(argv),
            env: Vec::new(),
            cwd: self.dir.clone(),
            stderr_log: self.dir.join("server.log"),
        };
        let server = Server::start_approving(&launch)?;
        let timeout_ms = SUITE_TIMEOUT.as_millis() as u64;
        let outcome = server.shell(&self.command(), &self.dir, false, timeout_ms);
        let approvals = server.approvals();
        let shutdown = server.shutdown();
        outcome.with_context(|| {
            format!(
                "{}: the shell call failed; server log {}/server.log",
                self.mode.name(),
                self.dir.display()
            )
        })?;
        shutdown?;
        Ok(approvals)
    }
}

/// A test's output with the configuration's own paths replaced.
fn normalized(run: &ModeRun, job: &Job, test: &str) -> Result<String> {
    let path = run.root.join("out").join(format!("{test}.out"));
    let text = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let text = text
        .replace(&job.build_dir.display().to_string(), "@BUILD_DIR@")
        .replace(&run.root.display().to_string(), "@ROOT@");
    Ok(mask_pids(&text))
}

/// Process ids differ from run to run: the number in Bash's "cannot set
/// terminal process group (N)" becomes `N`.
fn mask_pids(text: &str) -> String {
    const MARK: &str = "cannot set terminal process group (";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        let (head, tail) = rest.split_at(i + MARK.len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push('N');
        } else {
            out.push_str(&tail[..digits]);
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

fn compare(
    release: &Release,
    runs: &[&ModeRun],
    jobs: &[&Job],
    expected: &Expected,
    full: bool,
) -> Result<()> {
    let reference = runs
        .iter()
        .position(|r| r.mode == Mode::Reference)
        .expect("the reference always runs");
    let (ref_run, ref_job) = (runs[reference], jobs[reference]);
    let mut problems = Vec::new();
    let mut used = vec![false; expected.difference.len()];
    for (run, job) in runs.iter().zip(jobs) {
        if run.mode == Mode::Reference {
            continue;
        }
        for (test, (ref_status, _)) in &ref_run.tests {
            let Some((status, _)) = run.tests.get(test) else {
                problems.push(format!("[{}] {test}: did not run", run.mode.name()));
                continue;
            };
            let want = normalized(ref_run, ref_job, test)?;
            let got = normalized(run, job, test)?;
            let paths = format!(
                "{} vs {}",
                ref_run
                    .root
                    .join("out")
                    .join(format!("{test}.out"))
                    .display(),
                run.root.join("out").join(format!("{test}.out")).display()
            );
            let mode = run.mode.name();
            if got == want {
                if status != ref_status {
                    problems.push(format!(
                        "[{mode}] {test}: exit status {status}, reference {ref_status} ({paths})"
                    ));
                }
                continue;
            }
            let (removed, added) = line_diff(&want, &got);
            if removed.is_empty() && added.is_empty() {
                problems.push(format!(
                    "[{mode}] {test}: the same lines as the reference in another order ({paths})"
                ));
                continue;
            }
            let unexplained: Vec<String> = removed
                .iter()
                .map(|l| format!("-{l}"))
                .chain(added.iter().map(|l| format!("+{l}")))
                .filter(
                    |l| match expected.explain(release.line, run.mode, test, &l[1..]) {
                        Some(i) => {
                            used[i] = true;
                            false
                        }
                        None => true,
                    },
                )
                .collect();
            // An explained difference may change the test's status (its
            // `diff` against the .right file); an unexplained one is
            // reported with its lines.
            if !unexplained.is_empty() {
                let shown: Vec<&str> = unexplained.iter().take(40).map(String::as_str).collect();
                problems.push(format!(
                    "[{mode}] {test}: {} line(s) differ from the reference (status {status}, reference \
                     {ref_status}) and {EXPECTED} explains none of them ({paths}):\n    {}",
                    unexplained.len(),
                    shown.join("\n    ")
                ));
            }
        }
    }
    // Only a full run (every test, every mode the entry names) can show that
    // an entry is stale.
    if full {
        let ran: Vec<Mode> = runs.iter().map(|r| r.mode).collect();
        for (i, e) in expected.difference.iter().enumerate() {
            if !used[i]
                && !e.flaky
                && (!e.as_root || util::is_root())
                && e.bash.iter().any(|b| b == release.line)
                && e.parsed_modes.iter().all(|m| ran.contains(m))
            {
                problems.push(format!(
                    "{EXPECTED}: the difference for {} ({:?}) occurs no more in bash {}: remove it",
                    e.test, e.lines, release.line
                ));
            }
        }
    }
    if problems.is_empty() {
        let explained: Vec<String> = expected
            .difference
            .iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(e, _)| {
                format!(
                    "{}{}",
                    e.test,
                    if e.flaky { " (flaky, this time)" } else { "" }
                )
            })
            .collect();
        println!(
            "bash-suite: bash {}: every configuration matches the reference{}",
            release.version(),
            if explained.is_empty() {
                String::new()
            } else {
                format!(
                    "; {EXPECTED} explained the differences in {}",
                    explained.join(", ")
                )
            }
        );
        return Ok(());
    }
    bail!(
        "bash-suite: bash {}: {} problem(s):\n{}",
        release.version(),
        problems.len(),
        problems.join("\n")
    )
}

/// Lines only in `a` and lines only in `b` (multiset difference: order
/// changes alone do not count, which keeps interleaved stdout/stderr from
/// concurrent processes from showing up as differences).
fn line_diff<'a>(a: &'a str, b: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for l in a.lines() {
        *counts.entry(l).or_default() += 1;
    }
    for l in b.lines() {
        *counts.entry(l).or_default() -= 1;
    }
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for (l, n) in counts {
        for _ in 0..n.max(0) {
            removed.push(l);
        }
        for _ in 0..(-n).max(0) {
            added.push(l);
        }
    }
    (removed, added)
}

/// [`EXPECTED`]: the differences the wrapper is known to make, each with
/// its reason.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    #[serde(default)]
    difference: Vec<Entry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// The `run-*` script.
    test: String,
    /// Release lines (`5.3`, `5.2`) it occurs on.
    bash: Vec<String>,
    /// Configurations it occurs in (`wrapper`, `sandbox`; `plain` may have
    /// none).
    modes: Vec<String>,
    /// A regex every differing line (removed or added) matches.
    lines: String,
    reason: String,
    /// A race in the test itself, which any configuration (the reference
    /// too) may lose: it need not occur, and `plain` may show it.
    #[serde(default)]
    flaky: bool,
    /// Only when the suite runs as root (a sandbox without capabilities
    /// makes root an ordinary user): ignored otherwise.
    #[serde(default)]
    as_root: bool,
    #[serde(skip)]
    regex: Option<regex::Regex>,
    #[serde(skip)]
    parsed_modes: Vec<Mode>,
}

impl Entry {
    fn applies(&self, line: &str, mode: Mode, test: &str) -> bool {
        self.test == test
            && self.bash.iter().any(|b| b == line)
            && self.parsed_modes.contains(&mode)
            && (!self.as_root || util::is_root())
    }
}

impl Expected {
    fn load(path: &Path) -> Result<Expected> {
        let text =
            fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut expected: Expected =
            toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?;
        for e in &mut expected.difference {
            let context = || format!("{}: difference for {}", path.display(), e.test);
            e.regex = Some(
                regex::Regex::new(&e.lines)
                    .with_context(|| format!("{}: bad regex {:?}", context(), e.lines))?,
            );
            e.parsed_modes = e
                .modes
                .iter()
                .map(|m| Mode::parse(m))
                .collect::<Result<_>>()
                .with_context(context)?;
            if e.parsed_modes.contains(&Mode::Reference)
                || (e.parsed_modes.contains(&Mode::Plain) && !e.flaky)
            {
                bail!(
                    "{}: only wrapper and sandbox may differ (plain too if flaky)",
                    context()
                );
            }
            if let Some(b) = e.bash.iter().find(|b| bash::release(b).is_err()) {
                bail!("{}: unknown bash line {b:?}", context());
            }
            if e.reason.trim().is_empty() {
                bail!("{}: no reason", context());
            }
        }
        Ok(expected)
    }

    /// The entry explaining that `text` differs in `test`, if any.
    fn explain(&self, line: &str, mode: Mode, test: &str, text: &str) -> Option<usize> {
        self.difference.iter().position(|e| {
            e.applies(line, mode, test) && e.regex.as_ref().is_some_and(|r| r.is_match(text))
        })
    }
}
