//! `cargo xtask ci`: the whole test suite, what `.ci/run` runs.
//!
//! A list of named steps ([`STEPS`]) run in order, each timed; the first
//! failure stops the run. To add a step (python end-to-end tests, npm tests,
//! docker), add one entry. `--only a,b` / `--skip a,b` select steps, `--list`
//! prints them.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{
    bash::{self, Flavor, Target},
    bash_check, setup,
    util::{self, Args},
};

const USAGE: &str = "cargo xtask ci [--only STEP,..] [--skip STEP,..] [--list]";

pub(crate) struct Step {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) run: fn(&Shell) -> Result<()>,
}

pub(crate) const STEPS: &[Step] = &[
    Step {
        name: "setup",
        about: "apt packages, deb-src entry, rustup targets (cargo xtask setup)",
        run: setup::ensure,
    },
    Step {
        name: "fmt",
        about: "cargo fmt --check",
        run: fmt,
    },
    Step {
        name: "clippy",
        about: "cargo clippy --workspace --all-targets -D warnings",
        run: clippy,
    },
    Step {
        name: "bash",
        about: "patched static Bash (cargo xtask bash)",
        run: build_bash,
    },
    Step {
        name: "bash-check",
        about: "the patch under valgrind (cargo xtask bash-check)",
        run: check_bash,
    },
    Step {
        name: "bash-suite",
        about: "Bash's own test suite, 5.3 and 5.2, unpatched vs patched, direct and through the server (cargo xtask bash-suite)",
        run: crate::bash_suite::ci_step,
    },
    Step {
        name: "build",
        about: "cargo build --workspace",
        run: build,
    },
    Step {
        name: "test",
        about: "cargo test --workspace",
        run: test,
    },
    Step {
        name: "redteam",
        about: "escalation red-team suite against the freshly built server (crates/redteam)",
        run: redteam,
    },
    Step {
        name: "python-e2e",
        about: "MCP Python SDK end-to-end tests over stdio and HTTP (crates/mcp-server/tests/python)",
        run: python_e2e,
    },
    Step {
        name: "node-e2e",
        about: "MCP TypeScript SDK end-to-end tests over stdio and HTTP (crates/mcp-server/tests/node)",
        run: node_e2e,
    },
    Step {
        name: "clients-e2e",
        about: "real Codex CLI and Claude Code with a scripted model, no network but loopback (crates/mcp-server/tests/clients)",
        run: clients_e2e,
    },
    Step {
        name: "dist",
        about: "release binaries, Bash, smoke run, OCI image, npm tarball (cargo xtask dist)",
        run: |sh| crate::dist::run(sh, &[]),
    },
    Step {
        name: "reproducible",
        about: "npm tarball and OCI image rebuild byte-identical",
        run: crate::oci::ci_reproducible,
    },
    Step {
        name: "npm",
        about: "launcher tests and a real run from the tarball (cargo xtask npm --test)",
        run: |sh| crate::npm::run_tests(sh, &util::project_root()),
    },
    Step {
        name: "docker",
        about: "docker load the image; stdio and HTTP-sidecar smoke tests, the busybox tools image (cargo xtask oci --docker-test)",
        run: |sh| crate::oci::run(sh, &["--docker-test".to_owned()]),
    },
    Step {
        name: "kubernetes",
        about: "deploy/kubernetes manifests against the schemas kubernetes-validate ships (offline), plus check_pod.py",
        run: kubernetes,
    },
    Step {
        name: "aarch64",
        about: "aarch64 musl binaries and Bash via zig, qemu smoke, arm64 image (cargo xtask dist --target ..)",
        run: |sh| {
            crate::dist::run(
                sh,
                &["--target".to_owned(), crate::cross::AARCH64.to_owned()],
            )
        },
    },
    Step {
        name: "nix",
        about: "nix-instantiate --parse of the flake, flake.lock pinned, nix/bash.nix's patch applies to its Bash",
        run: crate::nix::ci_check,
    },
    Step {
        name: "flake-toolchain",
        about: "the flake's pinned Rust = rust-version >= Cargo.lock's needs, builds the shipped binaries --locked",
        run: crate::nix::toolchain_check,
    },
];

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let mut args = Args::new(args, USAGE);
    let list = args.flag("--list");
    let only = names(args.value("--only")?)?;
    let skip = names(args.value("--skip")?)?;
    args.finish()?;
    if list {
        for s in STEPS {
            println!("{:<11} {}", s.name, s.about);
        }
        return Ok(());
    }
    let selected: Vec<&Step> = STEPS
        .iter()
        .filter(|s| only.as_ref().is_none_or(|o| o.contains(&s.name)))
        .filter(|s| skip.as_ref().is_none_or(|k| !k.contains(&s.name)))
        .collect();
    if selected.is_empty() {
        bail!("no steps selected (usage: {USAGE})");
    }

    let started = Instant::now();
    let mut done: Vec<(&str, f64)> = Vec::new();
    for (i, step) in selected.iter().enumerate() {
        println!(
            "\n==> ci [{}/{}] {}: {}",
            i + 1,
            selected.len(),
            step.name,
            step.about
        );
        let t = Instant::now();
        let result = (step.run)(sh);
        let secs = t.elapsed().as_secs_f64();
        if let Err(e) = result {
            summary(&done);
            println!("ci: step {} FAILED after {secs:.1}s", step.name);
            return Err(e.context(format!("ci step {:?} failed", step.name)));
        }
        println!("<== ci {}: ok in {secs:.1}s", step.name);
        done.push((step.name, secs));
    }
    summary(&done);
    println!(
        "ci: all {} steps ok in {:.1}s",
        done.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Parses `a,b` into step names, rejecting unknown ones.
fn names(value: Option<String>) -> Result<Option<Vec<&'static str>>> {
    let Some(value) = value else { return Ok(None) };
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|n| {
            STEPS
                .iter()
                .find(|s| s.name == n)
                .map(|s| s.name)
                .with_context(|| {
                    let known: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
                    format!("unknown ci step {n:?} (known: {})", known.join(", "))
                })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn summary(done: &[(&str, f64)]) {
    println!("\nci timings:");
    for (name, secs) in done {
        println!("  {name:<11} {secs:>7.1}s");
    }
}

fn fmt(sh: &Shell) -> Result<()> {
    let cargo = util::cargo();
    cmd!(sh, "{cargo} fmt --all -- --check").run()?;
    Ok(())
}

fn clippy(sh: &Shell) -> Result<()> {
    let cargo = util::cargo();
    cmd!(
        sh,
        "{cargo} clippy --workspace --all-targets -- -D warnings"
    )
    .run()?;
    Ok(())
}

fn build_bash(sh: &Shell) -> Result<()> {
    bash::build(
        sh,
        &Flavor::Static(Target::from_triple(bash::DEFAULT_TRIPLE)?),
        None,
    )
    .map(drop)
}

fn check_bash(sh: &Shell) -> Result<()> {
    bash_check::run(sh, &[])
}

fn build(sh: &Shell) -> Result<()> {
    let cargo = util::cargo();
    cmd!(sh, "{cargo} build --workspace").run()?;
    Ok(())
}

fn test(sh: &Shell) -> Result<()> {
    let cargo = util::cargo();
    cmd!(sh, "{cargo} test --workspace").run()?;
    Ok(())
}

/// The red-team suite drives the server binary beside its test executable,
/// so build the workspace first (it may run alone: `--only redteam`).
fn redteam(sh: &Shell) -> Result<()> {
    let cargo = util::cargo();
    cmd!(sh, "{cargo} build --workspace").run()?;
    cmd!(sh, "{cargo} test -p redteam").run()?;
    Ok(())
}

/// The MCP Python SDK, pinned, in a venv under target/ (kept between runs).
const PYTHON_MCP: &str = "mcp==2.3.0";

/// A venv under `target/` (kept between runs) with `package` installed:
/// its directory and its python.
fn venv_with(sh: &Shell, name: &str, package: &str) -> Result<(PathBuf, PathBuf)> {
    let venv = util::project_root().join("target").join(name);
    let python = venv.join("bin/python");
    if !python.exists() {
        cmd!(sh, "python3 -m venv {venv}")
            .run()
            .context("python3 -m venv failed (cargo xtask setup installs python3-venv)")?;
    }
    let pip_quiet = ["--quiet", "--disable-pip-version-check"];
    cmd!(sh, "{python} -m pip install {pip_quiet...} {package}").run()?;
    Ok((venv, python))
}

fn python_e2e(sh: &Shell) -> Result<()> {
    let (_, python) = venv_with(sh, "mcp-e2e-venv", PYTHON_MCP)?;
    let server = "target/debug/codex-exec-mcp-server";
    let bash = format!("target/dist/vendor/{}/bash", bash::DEFAULT_TRIPLE);
    for test in ["test_e2e.py", "test_http.py"] {
        let test = format!("crates/mcp-server/tests/python/{test}");
        cmd!(sh, "{python} {test} {server} {bash}").run()?;
    }
    Ok(())
}

/// kubernetes-validate, pinned, with the Kubernetes schemas it ships: no
/// cluster and no download of schemas.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

fn kubernetes(sh: &Shell) -> Result<()> {
    let (venv, python) = venv_with(sh, "k8s-validate-venv", KUBERNETES_VALIDATE)?;
    let validate = venv.join("bin/kubernetes-validate");
    let manifests: Vec<String> = std::fs::read_dir(util::project_root().join("deploy/kubernetes"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    if manifests.is_empty() {
        bail!("no manifests in deploy/kubernetes");
    }
    cmd!(sh, "{validate} --strict {manifests...}").run()?;
    cmd!(
        sh,
        "{python} deploy/kubernetes/check_pod.py deploy/kubernetes/deployment.yaml"
    )
    .run()?;
    Ok(())
}

/// The TypeScript SDK as package-lock.json pins it, freshly installed by
/// `npm ci` into node_modules under the test directory (gitignored).
fn node_e2e(sh: &Shell) -> Result<()> {
    ensure_npm(sh)?;
    let cargo = util::cargo();
    cmd!(sh, "{cargo} build --workspace").run()?;
    let _dir = sh.push_dir("crates/mcp-server/tests/node");
    cmd!(sh, "npm ci --no-audit --no-fund --loglevel=error").run()?;
    cmd!(sh, "node --test e2e.test.mjs http.test.mjs").run()?;
    Ok(())
}

/// The real clients as package-lock.json pins them (`npm ci`, about 1.2 GB
/// unpacked), run by `node --test` in a network namespace with only
/// loopback up, so that they reach nothing but the scripted model on
/// 127.0.0.1. Needs root for `unshare --net`.
fn clients_e2e(sh: &Shell) -> Result<()> {
    if !util::is_root() {
        bail!("clients-e2e runs the clients under `unshare --net`, which needs root");
    }
    setup::ensure(sh)?; // util-linux (unshare), iproute2 (ip)
    ensure_npm(sh)?;
    let cargo = util::cargo();
    cmd!(sh, "{cargo} build --workspace").run()?;
    let _dir = sh.push_dir("crates/mcp-server/tests/clients");
    cmd!(sh, "npm ci --no-audit --no-fund --loglevel=error").run()?;
    let script = "ip link set lo up && exec node --test codex.test.mjs claude.test.mjs";
    cmd!(sh, "unshare --net -- sh -c {script}").run()?;
    Ok(())
}

/// Installs npm if missing (root only).
fn ensure_npm(sh: &Shell) -> Result<()> {
    if cmd!(sh, "npm --version").quiet().read().is_err() {
        // Debian's nodejs (setup installs it) comes without npm; NodeSource's
        // bundles it and conflicts with Debian's npm package.
        if !util::is_root() {
            bail!("npm not found: install it (apt-get install npm) or run as root");
        }
        cmd!(sh, "apt-get update -q").run()?;
        cmd!(sh, "apt-get install -y -q --no-install-recommends npm")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()?;
    }
    Ok(())
}
