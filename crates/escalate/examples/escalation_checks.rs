//! Cost of the checks an escalation passes before its program starts:
//! resolving the program, checking it and its working directory, building
//! its environment, and its context (for git: configuration files and the
//! repository). Times `Exec::refusal` (what the session runs before it
//! spawns an escalated program) for `/bin/true` and for `git status` in a
//! repository whose `.git` a (recorded) sandbox protected, and resolving
//! the program alone (what every exec the server is asked about pays).
//!
//! `cargo run --release -p escalate --example escalation_checks -- REPO [N]`
//!
//! `REPO` is a directory holding a `.git` (e.g. a fresh `git init`); it is
//! recorded as a sandbox's writable root with `REPO/.git` protected, and
//! `/tmp` as another writable root, so every check walks the real paths.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use escalate::{EscalationConfig, Exec, ExecRequest, resolve_program};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repo = PathBuf::from(&args[1]).canonicalize().expect("REPO");
    let n: u32 = args.get(2).map_or(20_000, |s| s.parse().unwrap());
    let config = EscalationConfig::default();
    config
        .exposure
        .begin(vec![repo.clone(), PathBuf::from("/tmp")])
        .report(Some(vec![repo.join(".git")]));
    let env: Vec<OsString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    let git = which("git");
    for (name, file, argv) in [
        ("/bin/true", PathBuf::from("/bin/true"), vec!["true"]),
        ("git status", git, vec!["git", "status"]),
    ] {
        let request = ExecRequest {
            file: file.into(),
            argv: argv.iter().map(OsString::from).collect(),
            env: env.clone(),
            cwd: repo.clone().into(),
        };
        // Warm up, and check it would escalate.
        let program = resolve_program(&request);
        let exec = Exec::new(&request, program.as_deref(), &config);
        assert!(exec.refusal().is_none(), "{name}: {:?}", exec.refusal());
        let started = Instant::now();
        for _ in 0..n {
            let program = resolve_program(&request);
            let exec = Exec::new(&request, program.as_deref(), &config);
            assert!(exec.refusal().is_none());
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        // What every asked exec pays now, escalated or not: resolving the
        // program once.
        let started = Instant::now();
        for _ in 0..n {
            assert!(resolve_program(&request).is_some());
        }
        let resolve = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!(
            "{name}: {per:.1} µs per escalation check, of which {resolve:.1} µs resolving the program"
        );
    }
}

fn which(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| Path::new(p).is_file())
        .expect("on PATH")
}
