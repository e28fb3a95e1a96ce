//! Per-exec overhead of interception: `N` runs of `/bin/true` in one Bash,
//! with the wrapper (every exec decided "run") and without it.
//!
//! `cargo run --release -p escalate --example exec_overhead -- BASH WRAPPER [N] [--unasked | --asks NAME,NAME | --escalate] [--command CMD] [--launcher LAUNCHER --spec JSON [--exec-check]] [--show-output]`
//!
//! With `--unasked` the decider names no program (`asks_about` is empty),
//! so the wrappers run `/bin/true` without asking; by default they ask.
//! With `--escalate` every exec is escalated (started by this process, as
//! the server starts an allowed program). `--command CMD` runs `CMD`
//! instead of `/bin/true` in the loop (e.g. `git -C /repo status -s`, whose
//! escalation checks the repository first). `--asks` names the programs
//! the decider asks about (the server's list is its rule heads and the
//! heuristics' programs). `--launcher` runs Bash under the sandbox
//! launcher (`codex-sandbox-exec`) with the sandbox `--spec`;
//! `--exec-check` then judges every exec there (`exec_check`).
//! `--show-output` prints what the sandboxed command printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use escalate::{Control, Decider, EscalationConfig, Exec, ShellConfig, ShellRequest, Verdict};

struct RunAll {
    unasked: bool,
    asks: Option<Vec<String>>,
    escalate: bool,
}

impl Decider for RunAll {
    fn asks_about(&self) -> Option<Vec<&str>> {
        if let Some(asks) = &self.asks {
            return Some(asks.iter().map(String::as_str).collect());
        }
        self.unasked.then(Vec::new)
    }

    fn decide_now(&self, _: &Exec<'_>) -> Option<Verdict> {
        (!self.escalate).then_some(Verdict::Run)
    }

    fn decide(&self, _: &Exec<'_>) -> Verdict {
        if self.escalate {
            Verdict::Escalate
        } else {
            Verdict::Run
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bash, wrapper) = (args[1].clone(), args[2].clone());
    let n: u32 = args.get(3).map_or(500, |s| s.parse().unwrap());
    let unasked = args.iter().any(|a| a == "--unasked");
    let escalate = args.iter().any(|a| a == "--escalate");
    let body = args
        .iter()
        .position(|a| a == "--command")
        .map_or("/bin/true", |i| args[i + 1].as_str());
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    let asks = value("--asks").map(|list| list.split(',').map(str::to_owned).collect());
    let launcher: Vec<std::ffi::OsString> =
        value("--launcher").into_iter().map(Into::into).collect();
    let sandbox = value("--spec");
    let exec_check = args.iter().any(|a| a == "--exec-check");
    let command = format!("for ((i = 0; i < {n}; i++)); do {body}; done");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = ShellConfig {
        bash: bash.clone().into(),
        wrapper: wrapper.into(),
        launcher,
        sandbox,
        exec_check,
        loopback: None,
        escalation: EscalationConfig::default(),
        output_limits: Default::default(),
        kill_grace: Duration::from_millis(100),
    };
    let request = ShellRequest {
        command: command.clone(),
        workdir: "/".into(),
        login: false,
        timeout: Duration::from_secs(600),
        // This process's environment, as a server passes its own on.
        env: std::env::vars_os().collect(),
    };
    let cpu_before = cpu_time();
    let control = Control {
        cancel: Default::default(),
        timer: Default::default(),
        progress: None,
    };
    let wrapped = rt
        .block_on(escalate::run_shell(
            &config,
            request,
            Arc::new(RunAll {
                unasked,
                asks,
                escalate,
            }),
            control,
        ))
        .unwrap();
    let wrapped_cpu = cpu_time() - cpu_before;
    let started = Instant::now();
    let plain = std::process::Command::new(&bash)
        .args(["-c", &command])
        .status()
        .unwrap();
    let plain_time = started.elapsed();
    let plain_cpu = cpu_time() - cpu_before - wrapped_cpu;
    assert!(plain.success() && wrapped.exit_code == 0, "{wrapped:?}");
    if args.iter().any(|a| a == "--show-output") {
        print!("{}", wrapped.output);
    }
    let per = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    println!(
        "plain {:.3} ms/exec, wrapped {:.3} ms/exec, overhead {:.3} ms/exec",
        per(plain_time),
        per(wrapped.duration),
        per(wrapped.duration) - per(plain_time)
    );
    println!(
        "cpu: plain {:.3} ms/exec, wrapped {:.3} ms/exec, overhead {:.3} ms/exec (user+sys of every process)",
        plain_cpu * 1e3 / n as f64,
        wrapped_cpu * 1e3 / n as f64,
        (wrapped_cpu - plain_cpu) * 1e3 / n as f64
    );
}

/// User plus system time of this process and its reaped descendants, in seconds.
fn cpu_time() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let secs = |who| {
        let u = getrusage(who).unwrap();
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    };
    secs(UsageWho::RUSAGE_SELF) + secs(UsageWho::RUSAGE_CHILDREN)
}
