//! `cargo xtask bash-check`: checks `patches/bash-exec-wrapper.patch` on a
//! running Bash, for every release line we build (5.3 and 5.2; `--version`
//! picks one).
//!
//! Builds a glibc, `-O1 -g` Bash with the patch (see `bash::Flavor::Check`)
//! and runs a set of scripts with `BASH_EXEC_WRAPPER` pointing at a tiny C
//! wrapper that logs its argv and execs `argv[1]` with `argv[2..]`. Each
//! script runs under valgrind memcheck — any report (invalid read or write,
//! uninitialised use, bad free) fails — and again, without valgrind, with
//! the static musl Bash of the same release. Each case asserts stdout, exit
//! status and the exact argv every wrapper invocation received:
//! `[wrapper, resolved_path, argv0, argv1, ...]`.
//!
//! Bash's own test suite through the wrapper is `cargo xtask bash-suite`.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{
    bash::{self, Flavor, Release, Spec, Target},
    util::{self, Args},
};

const USAGE: &str = "cargo xtask bash-check [--version 5.3|5.2] [--bash-src DIR|TARBALL]";

/// Logs argv (tab-separated, one line per call) to $WRAPPER_LOG, then runs
/// argv[1] with argv[2..] (argv[2] is the program's argv[0]).
const WRAPPER_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *log = getenv("WRAPPER_LOG");
  if (log) {
    FILE *f = fopen(log, "a");
    if (!f) { perror(log); return 125; }
    for (int i = 0; i < argc; i++) fprintf(f, "%s%s", i ? "\t" : "", argv[i]);
    fputc('\n', f);
    fclose(f);
  }
  if (argc < 3) { fprintf(stderr, "wrapper: usage: wrapper FILE ARGV0 [ARG...]\n"); return 126; }
  execv(argv[1], argv + 2);
  perror(argv[1]);
  return 127;
}
"#;

/// Paths a case's expectations refer to.
struct Ctx {
    wrapper: String,
    bash: String,
    /// The cases' working directory.
    work: String,
    /// The release's version: keeps each release's logs apart.
    version: String,
}

struct Case {
    name: &'static str,
    /// Put BASH_EXEC_WRAPPER in Bash's environment (else only `$W` is set).
    wrapped: bool,
    script: &'static str,
    stdout: &'static str,
    status: i32,
    /// A substring stderr must contain (stderr is otherwise not checked).
    stderr_has: Option<&'static str>,
    /// Every wrapper call's argv, in any order.
    calls: fn(&Ctx) -> Vec<Vec<String>>,
}

fn v(ctx: &Ctx, items: &[&str]) -> Vec<String> {
    items
        .iter()
        .map(|s| match *s {
            "$W" => ctx.wrapper.clone(),
            "$BASH" => ctx.bash.clone(),
            s => s.replace("$WORK", &ctx.work),
        })
        .collect()
}

const MANY: usize = 5000;

const CASES: &[Case] = &[
    Case {
        name: "path lookup",
        wrapped: true,
        script: "ls -d /",
        stdout: "/\n",
        status: 0,
        stderr_has: None,
        calls: |c| vec![v(c, &["$W", "/usr/bin/ls", "ls", "-d", "/"])],
    },
    Case {
        name: "exec -a keeps argv0",
        wrapped: true,
        script: "(exec -a renamed /usr/bin/env true); echo rc=$?",
        stdout: "rc=0\n",
        status: 0,
        stderr_has: None,
        calls: |c| vec![v(c, &["$W", "/usr/bin/env", "renamed", "true"])],
    },
    Case {
        name: "exec builtin",
        wrapped: true,
        script: "exec /usr/bin/echo via-exec",
        stdout: "via-exec\n",
        status: 0,
        stderr_has: None,
        calls: |c| vec![v(c, &["$W", "/usr/bin/echo", "/usr/bin/echo", "via-exec"])],
    },
    Case {
        name: "many arguments",
        wrapped: true,
        script: "/usr/bin/true a{1..5000}",
        stdout: "",
        status: 0,
        stderr_has: None,
        calls: |c| {
            let mut call = v(c, &["$W", "/usr/bin/true", "/usr/bin/true"]);
            call.extend((1..=MANY).map(|i| format!("a{i}")));
            vec![call]
        },
    },
    Case {
        name: "pipeline in command substitution",
        wrapped: true,
        script: "x=$(/usr/bin/echo sub | /usr/bin/tr a-z A-Z); echo $x",
        stdout: "SUB\n",
        status: 0,
        stderr_has: None,
        calls: |c| {
            vec![
                v(c, &["$W", "/usr/bin/echo", "/usr/bin/echo", "sub"]),
                v(c, &["$W", "/usr/bin/tr", "/usr/bin/tr", "a-z", "A-Z"]),
            ]
        },
    },
    Case {
        name: "prefix assignment enables the wrapper",
        wrapped: false,
        script: "BASH_EXEC_WRAPPER=$W /usr/bin/true prefixed; /usr/bin/true plain",
        stdout: "",
        status: 0,
        stderr_has: None,
        calls: |c| vec![v(c, &["$W", "/usr/bin/true", "/usr/bin/true", "prefixed"])],
    },
    Case {
        name: "unexported variable does not",
        wrapped: false,
        script: "BASH_EXEC_WRAPPER=$W; /usr/bin/true unexported; export BASH_EXEC_WRAPPER; /usr/bin/true exported",
        stdout: "",
        status: 0,
        stderr_has: None,
        calls: |c| vec![v(c, &["$W", "/usr/bin/true", "/usr/bin/true", "exported"])],
    },
    Case {
        name: "empty or white-space value disables",
        wrapped: true,
        script: "BASH_EXEC_WRAPPER=\" $W\" /usr/bin/true space; BASH_EXEC_WRAPPER= /usr/bin/true empty; /usr/bin/true on",
        stdout: "",
        status: 0,
        stderr_has: None,
        calls: |c| vec![v(c, &["$W", "/usr/bin/true", "/usr/bin/true", "on"])],
    },
    Case {
        name: "shebang-less script runs in bash, its commands wrapped",
        wrapped: true,
        script: "./noshebang.sh arg; echo rc=$?",
        stdout: "ran:./noshebang.sh:arg\nrc=3\n",
        status: 0,
        stderr_has: None,
        calls: |c| vec![v(c, &["$W", "/usr/bin/true", "/usr/bin/true", "inner"])],
    },
    Case {
        name: "shebang script goes through the wrapper",
        wrapped: true,
        script: "./shebang.sh x",
        stdout: "sb:x\n",
        status: 0,
        stderr_has: None,
        calls: |c| vec![v(c, &["$W", "./shebang.sh", "./shebang.sh", "x"])],
    },
    Case {
        name: "missing file reported by bash",
        wrapped: true,
        script: "./missing; echo rc=$?",
        stdout: "rc=127\n",
        status: 0,
        stderr_has: Some("./missing: No such file or directory"),
        calls: |_| vec![],
    },
    Case {
        name: "directory reported by bash",
        wrapped: true,
        script: "/usr; echo rc=$?",
        stdout: "rc=126\n",
        status: 0,
        stderr_has: Some("/usr: Is a directory"),
        calls: |_| vec![],
    },
    Case {
        name: "nested patched bash keeps wrapping",
        wrapped: true,
        script: "\"$BASH\" --norc -c '/usr/bin/true nested'",
        stdout: "",
        status: 0,
        stderr_has: None,
        calls: |c| {
            vec![
                v(
                    c,
                    &[
                        "$W",
                        "$BASH",
                        "$BASH",
                        "--norc",
                        "-c",
                        "/usr/bin/true nested",
                    ],
                ),
                v(c, &["$W", "/usr/bin/true", "/usr/bin/true", "nested"]),
            ]
        },
    },
    Case {
        name: "an ask list: a program it does not name is executed directly",
        wrapped: true,
        script: "export CODEX_ESCALATE_ASK=$'ls\\nfol*'; /usr/bin/true direct; /usr/bin/ls -d /; \
                 /usr/bin/fold --version >/dev/null; CODEX_ESCALATE_ASK= /usr/bin/ls -d /",
        stdout: "/\n/\n",
        status: 0,
        stderr_has: None,
        calls: |c| {
            vec![
                v(c, &["$W", "/usr/bin/ls", "/usr/bin/ls", "-d", "/"]),
                v(c, &["$W", "/usr/bin/fold", "/usr/bin/fold", "--version"]),
            ]
        },
    },
    Case {
        name: "an ask list: relative paths, symlinks and lists with a path go through the wrapper",
        wrapped: true,
        script: "export CODEX_ESCALATE_ASK=ls; ./shebang.sh x; \"$PWD/link-to-true\" link; \
                 CODEX_ESCALATE_ASK=/usr/bin/ls /usr/bin/true listed-path",
        stdout: "sb:x\n",
        status: 0,
        stderr_has: None,
        calls: |c| {
            vec![
                v(c, &["$W", "./shebang.sh", "./shebang.sh", "x"]),
                v(
                    c,
                    &["$W", "$WORK/link-to-true", "$WORK/link-to-true", "link"],
                ),
                v(c, &["$W", "/usr/bin/true", "/usr/bin/true", "listed-path"]),
            ]
        },
    },
    Case {
        name: "missing wrapper is an error naming it",
        wrapped: true,
        script: "BASH_EXEC_WRAPPER=/nonexistent/wrapper /usr/bin/true; echo rc=$?",
        stdout: "rc=127\n",
        status: 0,
        stderr_has: Some("/nonexistent/wrapper"),
        calls: |_| vec![],
    },
];

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let mut args = Args::new(args, USAGE);
    let version = args.value("--version")?;
    let src = args.value("--bash-src")?.map(PathBuf::from);
    args.finish()?;
    let releases: Vec<&'static Release> = match (&version, &src) {
        (Some(v), _) => vec![bash::release(v)?],
        // A source tree is one release: the shipped line unless told.
        (None, Some(_)) => vec![bash::SHIPPED],
        (None, None) => bash::RELEASES.to_vec(),
    };
    if !util::on_path("valgrind") {
        bail!("valgrind not found: run `cargo xtask setup` (or apt-get install valgrind)");
    }
    let started = Instant::now();
    let dir = util::project_root().join("target/xtask/bash-check");
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    let work = dir.join("work");
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let wrapper = dir.join("wrapper");
    let wrapper_c = dir.join("wrapper.c");
    fs::write(&wrapper_c, WRAPPER_C)?;
    cmd!(sh, "gcc -O1 -Wall -Wextra -Werror -o {wrapper} {wrapper_c}")
        .run()
        .context("cannot compile the test wrapper")?;
    write_script(
        &work.join("noshebang.sh"),
        "echo ran:$0:$1\n/usr/bin/true inner\nexit 3\n",
    )?;
    write_script(&work.join("shebang.sh"), "#!/bin/sh\necho sb:$1\n")?;
    std::os::unix::fs::symlink("/usr/bin/true", work.join("link-to-true"))?;
    control(sh, &dir)?;

    let mut failures = Vec::new();
    for release in &releases {
        let build = |flavor: Flavor| {
            bash::build_spec(
                sh,
                &Spec {
                    release,
                    flavor,
                    patched: true,
                    src: src.as_deref(),
                },
            )
            .map(|b| b.bash)
        };
        let check_bash = build(Flavor::Check)?;
        let static_bash = build(Flavor::Static(Target::from_triple(bash::DEFAULT_TRIPLE)?))?;
        let version = release.version();
        for (mode, bash) in [(Mode::Valgrind, &check_bash), (Mode::Plain, &static_bash)] {
            for (i, case) in CASES.iter().enumerate() {
                let ctx = Ctx {
                    wrapper: path_str(&wrapper)?,
                    bash: path_str(bash)?,
                    work: path_str(&work)?,
                    version: version.clone(),
                };
                let tag = format!("{version} {}", mode.name());
                match run_case(sh, mode, bash, &dir, &work, i, case, &ctx) {
                    Ok(()) => println!("bash-check: ok   [{tag}] {}", case.name),
                    Err(e) => {
                        println!("bash-check: FAIL [{tag}] {}\n{e:#}", case.name);
                        failures.push(format!("[{tag}] {}", case.name));
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "bash-check: {} case(s) failed: {}",
            failures.len(),
            failures.join(", ")
        );
    }
    let versions: Vec<String> = releases.iter().map(|r| r.version()).collect();
    println!(
        "bash-check: {} cases ok under valgrind and static bash {} in {:.1}s",
        CASES.len(),
        versions.join(" and "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Mode {
    Valgrind,
    Plain,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Valgrind => "valgrind/glibc",
            Mode::Plain => "static/musl",
        }
    }
}

fn write_script(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_owned)
        .with_context(|| format!("path {} is not UTF-8", p.display()))
}

#[allow(clippy::too_many_arguments)]
fn run_case(
    sh: &Shell,
    mode: Mode,
    bash: &Path,
    dir: &Path,
    work: &Path,
    index: usize,
    case: &Case,
    ctx: &Ctx,
) -> Result<()> {
    let tag = format!(
        "{}-{}-{index}",
        ctx.version,
        match mode {
            Mode::Valgrind => "vg",
            Mode::Plain => "static",
        }
    );
    let calls_log = dir.join(format!("{tag}.calls"));
    let vg_prefix = format!("{tag}.valgrind.");
    let vg_log = dir.join(format!("{vg_prefix}%p"));
    let script = case.script;
    let mut command = match mode {
        Mode::Valgrind => cmd!(
            sh,
            "valgrind -q --error-exitcode=99 --trace-children=no --log-file={vg_log} {bash} --norc --noprofile -c {script}"
        ),
        Mode::Plain => cmd!(sh, "{bash} --norc --noprofile -c {script}"),
    };
    command = command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", work)
        .env("LC_ALL", "C")
        .env("W", &ctx.wrapper)
        .env("WRAPPER_LOG", &calls_log)
        .ignore_status()
        .quiet();
    if case.wrapped {
        command = command.env("BASH_EXEC_WRAPPER", &ctx.wrapper);
    }
    let _cwd = sh.push_dir(work);
    let shown = format!("{command}");
    let out = command
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let calls_text = fs::read_to_string(&calls_log).unwrap_or_default();
    let mut calls: Vec<Vec<String>> = calls_text
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    let mut want = (case.calls)(ctx);
    calls.sort();
    want.sort();

    let mut problems = Vec::new();
    let vg_reports = valgrind_reports(dir, &vg_prefix)?;
    if !vg_reports.is_empty() {
        problems.push(format!("valgrind reported errors:\n{vg_reports}"));
    }
    if out.status.code() != Some(case.status) {
        problems.push(format!(
            "exit status {:?}, expected {}",
            out.status.code(),
            case.status
        ));
    }
    if stdout != case.stdout {
        problems.push(format!("stdout {stdout:?}, expected {:?}", case.stdout));
    }
    if let Some(needle) = case.stderr_has
        && !stderr.contains(needle)
    {
        problems.push(format!("stderr lacks {needle:?}"));
    }
    if calls != want {
        let show = |c: &[Vec<String>]| {
            c.iter()
                .map(|call| format!("  {:?}", abbreviate(call)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        problems.push(format!(
            "wrapper calls:\n{}\nexpected:\n{}",
            show(&calls),
            show(&want)
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "command: {shown}\ncwd: {}\nwrapped: {}\nstatus: {}\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        work.display(),
        case.wrapped,
        out.status,
        problems.join("\n")
    )
}

/// The non-empty valgrind logs in `dir` whose names start with `prefix`
/// (one per process; `-q` leaves them empty unless something is reported).
fn valgrind_reports(dir: &Path, prefix: &str) -> Result<String> {
    let mut reports = String::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix))
        {
            let text = fs::read_to_string(&path)?;
            if !text.trim().is_empty() {
                reports.push_str(&format!("--- {}\n{text}", path.display()));
            }
        }
    }
    Ok(reports)
}

/// Negative control: the same valgrind invocation and log scan must report
/// a program that writes one slot past an argv-sized block, the bug a
/// naive in-place shift of Bash's argv has.
fn control(sh: &Shell, dir: &Path) -> Result<()> {
    let src = dir.join("overflow.c");
    let bin = dir.join("overflow");
    let code = "#include <stdlib.h>\nint main(void) {\n  char **v = malloc(3 * sizeof *v);\n  \
                v[3] = 0;\n  free(v);\n  return 0;\n}\n";
    fs::write(&src, code)?;
    cmd!(sh, "gcc -O0 -o {bin} {src}")
        .run()
        .context("cannot compile the valgrind control")?;
    let log = dir.join("control.valgrind.%p");
    cmd!(sh, "valgrind -q --trace-children=no --log-file={log} {bin}")
        .quiet()
        .ignore_status()
        .output()?;
    let reports = valgrind_reports(dir, "control.valgrind.")?;
    if !reports.contains("Invalid write") {
        bail!("valgrind did not report the control's invalid write (reports: {reports:?})");
    }
    println!("bash-check: ok   valgrind reports an out-of-bounds write (control)");
    Ok(())
}

/// Long argv (the many-arguments case) shown as head … tail.
fn abbreviate(call: &[String]) -> Vec<String> {
    if call.len() <= 12 {
        return call.to_vec();
    }
    let mut short = call[..6].to_vec();
    short.push(format!("… {} more …", call.len() - 9));
    short.extend_from_slice(&call[call.len() - 3..]);
    short
}
