//! `cargo xtask`: the project's build pipeline (see `cargo xtask help`).
//!
//! One module per task; every task takes the shell (rooted at the project
//! root) and its own arguments. `cargo xtask` with no arguments lists them.
//! Tasks call each other as functions, never through `cargo xtask`.

mod archive;
mod bash;
mod bash_check;
mod bash_suite;
mod bench;
mod ci;
mod cross;
mod dist;
mod nix;
mod npm;
mod oci;
mod run;
mod setup;
mod util;

use anyhow::{Result, bail};
use xshell::Shell;

/// A task: `cargo xtask <name> [args]`.
struct Task {
    name: &'static str,
    about: &'static str,
    run: fn(&Shell, &[String]) -> Result<()>,
}

const TASKS: &[Task] = &[
    Task {
        name: "run",
        about: "set up, build this machine's vendor tree, start the server on stdio (-- ARGS for it)",
        run: run::run,
    },
    Task {
        name: "ci",
        about: "the whole test suite, as CI runs it (--only/--skip STEP,..; --list)",
        run: ci::run,
    },
    Task {
        name: "setup",
        about: "install system packages, Debian deb-src entries and rustup targets the build needs",
        run: setup::run,
    },
    Task {
        name: "bash",
        about: "build the patched static Bash 5.3 (--version 5.2, --bash-src DIR|TARBALL, --target TRIPLE)",
        run: bash::run,
    },
    Task {
        name: "bash-check",
        about: "memcheck the exec-wrapper patch under valgrind, Bash 5.3 and 5.2 (--version)",
        run: bash_check::run,
    },
    Task {
        name: "bash-suite",
        about: "Bash's own test suite, unpatched vs patched, directly and through the server (--version, --modes)",
        run: bash_suite::run,
    },
    Task {
        name: "dist",
        about: "release binaries and Bash in target/dist/vendor/<triple>/",
        run: dist::run,
    },
    Task {
        name: "npm",
        about: "npm package tarball (--test: launcher tests)",
        run: npm::run,
    },
    Task {
        name: "oci",
        about: "container image tar (--arch, --docker-test)",
        run: oci::run,
    },
    Task {
        name: "bench",
        about: "ours vs the reference npm package, table in bench/RESULTS.md (--quick, --no-build)",
        run: bench::run,
    },
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sh = Shell::new()?;
    sh.change_dir(util::project_root());
    let Some(name) = args.first() else {
        print_tasks();
        return Ok(());
    };
    if matches!(name.as_str(), "help" | "--help" | "-h") {
        print_tasks();
        return Ok(());
    }
    let Some(task) = TASKS.iter().find(|t| t.name == name) else {
        print_tasks();
        bail!("unknown task {name:?}");
    };
    (task.run)(&sh, &args[1..])
}

fn print_tasks() {
    println!("usage: cargo xtask <task> [args]\n\ntasks:");
    for t in TASKS {
        println!("  {:<11} {}", t.name, t.about);
    }
}
