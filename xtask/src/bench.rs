//! `cargo xtask bench [--quick] [--no-build]`: ours against the reference,
//! `@openai/codex-shell-tool-mcp` 0.97.0, in one run, as one table.
//!
//! Ours is `target/dist` (rebuilt by `cargo xtask dist` when older than the
//! sources, unless `--no-build`), run under `--sandbox danger-full-access` and
//! `--sandbox workspace-write`. The reference is fetched once with `npm pack`
//! into `target/bench/reference/` and given the `codex/sandbox-state/update`
//! (`danger-full-access`) it needs on Linux. Both get an empty `CODEX_HOME`
//! (or one holding the generated rules). Measurements:
//!
//! 1. per-exec overhead: one `shell` call running `/bin/true` 500 times,
//!    minus the same call with 0 iterations (fixed costs cancel), divided by
//!    500, minus the same difference for the same Bash run directly without
//!    `BASH_EXEC_WRAPPER`;
//! 2. latency of a `shell` call of `true`, p50 and p99, calls interleaved;
//! 3. throughput: 16 client threads with calls in flight on one connection;
//!    2 and 3 also for ours over Streamable HTTP (`--listen`, one session,
//!    a keep-alive connection per client thread; the reference has no HTTP);
//! 4. cold start: spawn to `initialize` response, directly and through the
//!    npm launcher (`node bin/...`);
//! 5. the server's peak RSS (`VmHWM`) after a call printing 1 GiB;
//! 6. rules: load time of a generated 5,000-rule file (`check` minus a
//!    1-rule `check`; and start-up with the rules in `CODEX_HOME`), and the
//!    per-exec decision time (the exec loop on a 5,000-rule server minus a
//!    1-rule server);
//! 7. artifact sizes;
//! 8. the sandbox alone against bubblewrap (`bwrap` under the equivalent
//!    policy), spawn to exit of `/bin/true`, p50 and p99;
//! 9. the exec check on Bash's execs (`all` against `bash-only`) and on a
//!    Python loop's direct execs, and an escalated exec (`allow`), ours
//!    against the reference (see `bench/boundary.rs`);
//! 10. the checks an escalation passes before its program starts
//!     (`escalate`'s `escalation_checks` example).
//!
//! Repeated measurements show `median (min–max)`. Speeds are never asserted
//! here: the results go to `bench/RESULTS.md` (`--quick`:
//! `target/bench/RESULTS-quick.md`), with the date, commit and machine.

mod boundary;
pub(crate) mod client;
mod http;
mod stats;
mod subjects;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use xshell::{Shell, cmd};

use crate::util::{self, Args};
use client::Server;
use stats::{Summary, Unit, percentile, secs};
use subjects::{Kind, REFERENCE_PACKAGE, REFERENCE_VERSION, Subjects};

const USAGE: &str = "cargo xtask bench [--quick] [--no-build]";

/// Execs per exec-loop call.
const EXECS: u32 = 500;
/// Rules in the generated policy.
const RULES: usize = 5000;
/// What the RSS measurement prints.
const BIG_OUTPUT: &str = "head -c 1073741824 /dev/zero | tr '\\0' a";
/// `login` of the `true` calls: the reference's default.
const LOGIN: bool = true;
const CALL_TIMEOUT_MS: u64 = 600_000;

/// How much of everything to do.
struct Plan {
    quick: bool,
    /// Repetitions of the exec-loop, cold-start and rules measurements.
    runs: usize,
    latency_calls: usize,
    clients: usize,
    calls_per_client: usize,
    throughput_runs: usize,
    rss_runs: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                runs: 2,
                latency_calls: 30,
                clients: 16,
                calls_per_client: 3,
                throughput_runs: 1,
                rss_runs: 1,
            }
        } else {
            Plan {
                quick,
                runs: 7,
                latency_calls: 200,
                clients: 16,
                calls_per_client: 50,
                throughput_runs: 3,
                rss_runs: 3,
            }
        }
    }
}

/// One line of the table.
struct Row {
    measurement: String,
    ours: Option<Summary>,
    reference: Option<Summary>,
    target: &'static str,
}

impl Row {
    fn new(
        measurement: impl Into<String>,
        ours: Option<Summary>,
        reference: Option<Summary>,
        target: &'static str,
    ) -> Row {
        Row {
            measurement: measurement.into(),
            ours,
            reference,
            target,
        }
    }
}

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let mut args = Args::new(args, USAGE);
    let plan = Plan::new(args.flag("--quick"));
    let build = !args.flag("--no-build");
    args.finish()?;
    let root = util::project_root();
    let subjects = subjects::prepare(sh, &root, build)?;
    let homes = Homes::create(&subjects.dir)?;
    let load_before = load_average();
    let started = Instant::now();

    let mut rows = Vec::new();
    exec_and_calls(&subjects, &homes, &plan, &mut rows)?;
    boundary::sandbox_start(&subjects, &plan, &mut rows)?;
    let allow_home = boundary::allow_true_home(&subjects.dir)?;
    boundary::exec_check_and_escalation(&subjects, &homes.empty, &allow_home, &plan, &mut rows)?;
    boundary::escalation_checks(&subjects.dir, &plan, &mut rows)?;
    cold_start(&subjects, &homes, &plan, &mut rows)?;
    peak_rss(&subjects, &homes, &plan, &mut rows)?;
    rules(&subjects, &homes, &plan, &mut rows)?;
    sizes(&subjects, &mut rows)?;

    let load_after = load_average();
    let table = render_table(&rows);
    println!("\n{table}");
    let bash = format!(
        "ours {}, reference {}",
        bash_version(&subjects.ours.bash),
        bash_version(&subjects.reference.bash)
    );
    let report = report(
        sh,
        &plan,
        &table,
        &load_before,
        &load_after,
        started.elapsed(),
        subjects.stale.as_deref(),
        &bash,
    )?;
    let out = if plan.quick {
        subjects.dir.join("RESULTS-quick.md")
    } else {
        root.join("bench/RESULTS.md")
    };
    fs::create_dir_all(out.parent().expect("has a parent"))?;
    fs::write(&out, report).with_context(|| format!("cannot write {}", out.display()))?;
    println!("bench: wrote {}", out.display());
    Ok(())
}

/// `CODEX_HOME` directories: empty, and with the generated rules.
struct Homes {
    empty: PathBuf,
    one_rule: PathBuf,
    many_rules: PathBuf,
}

impl Homes {
    fn create(dir: &Path) -> Result<Homes> {
        let homes = Homes {
            empty: dir.join("home-empty"),
            one_rule: dir.join("home-rules-1"),
            many_rules: dir.join(format!("home-rules-{RULES}")),
        };
        fs::create_dir_all(&homes.empty)?;
        for (home, n) in [(&homes.one_rule, 1), (&homes.many_rules, RULES)] {
            let rules = home.join("rules");
            fs::create_dir_all(&rules)
                .with_context(|| format!("cannot create {}", rules.display()))?;
            let path = rules.join("bench.rules");
            fs::write(&path, rules_file(n))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(homes)
    }

    fn rules_file(&self, many: bool) -> PathBuf {
        let home = if many {
            &self.many_rules
        } else {
            &self.one_rule
        };
        home.join("rules/bench.rules")
    }
}

/// `n` rules that all name `true` but need an argument, so `/bin/true`
/// (no arguments) is compared against every one of them and matches none:
/// the worst case for a decision, and the exec still runs as without rules.
fn rules_file(n: usize) -> String {
    let mut text = String::from("# generated by `cargo xtask bench`\n");
    for i in 0..n {
        let decision = ["allow", "prompt", "forbidden"][i % 3];
        writeln!(
            text,
            "prefix_rule(pattern = [\"true\", \"bench-{i}\", [\"a\", \"b\"]], decision = \"{decision}\")"
        )
        .expect("writing to a String");
    }
    text
}

fn exec_loop(n: u32) -> String {
    format!("for ((i = 0; i < {n}; i++)); do /bin/true; done")
}

/// Per-exec time of a call running the exec loop: (N execs − 0 execs) / N.
fn per_exec_in_call(server: &Server, work: &Path) -> Result<f64> {
    let t = Instant::now();
    server.shell(&exec_loop(0), work, false, CALL_TIMEOUT_MS)?;
    let empty = secs(t.elapsed());
    let t = Instant::now();
    server.shell(&exec_loop(EXECS), work, false, CALL_TIMEOUT_MS)?;
    let full = secs(t.elapsed());
    Ok((full - empty) / f64::from(EXECS))
}

/// The same for the Bash run directly, without the wrapper.
fn per_exec_plain(bash: &Path, work: &Path) -> Result<f64> {
    let time = |n: u32| -> Result<f64> {
        let t = Instant::now();
        let status = Command::new(bash)
            .args(["--norc", "--noprofile", "-c", &exec_loop(n)])
            .current_dir(work)
            .env_remove("BASH_EXEC_WRAPPER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", bash.display()))?;
        if !status.success() {
            bail!("{} -c <exec loop> failed: {status}", bash.display());
        }
        Ok(secs(t.elapsed()))
    };
    let empty = time(0)?;
    let full = time(EXECS)?;
    Ok((full - empty) / f64::from(EXECS))
}

/// Measurements 1–3 on one long-lived server per kind.
fn exec_and_calls(s: &Subjects, homes: &Homes, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let servers: Vec<(Kind, Server)> = Kind::ALL
        .iter()
        .map(|&k| Ok((k, s.start(k, &homes.empty)?)))
        .collect::<Result<_>>()?;
    for (_, server) in &servers {
        server.shell("true", &s.work, LOGIN, CALL_TIMEOUT_MS)?; // warm-up
    }
    // Ours over Streamable HTTP, danger-full-access: beside the stdio rows.
    let over_http = http::HttpServer::start(&s.launch(Kind::OursFull, &homes.empty))?;
    over_http.shell("true", &s.work, LOGIN, CALL_TIMEOUT_MS)?; // warm-up

    // 1. per-exec overhead
    let mut overhead: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let (mut plain_ours, mut plain_ref) = (Vec::new(), Vec::new());
    for run in 0..plan.runs {
        println!("bench: exec loop, run {}/{}", run + 1, plan.runs);
        // Each server's call right after its plain baseline, so that a change
        // in the machine's load hits both sides of the difference alike.
        for (i, (kind, server)) in servers.iter().enumerate() {
            let plain = if *kind == Kind::Reference {
                let p = per_exec_plain(&s.reference.bash, &s.work)?;
                plain_ref.push(p);
                p
            } else {
                let p = per_exec_plain(&s.ours.bash, &s.work)?;
                plain_ours.push(p);
                p
            };
            overhead[i].push(per_exec_in_call(server, &s.work)? - plain);
        }
    }
    rows.push(Row::new(
        format!("plain Bash, per exec ({EXECS} × /bin/true, no wrapper)"),
        Some(Summary::of(&plain_ours, Unit::Seconds)),
        Some(Summary::of(&plain_ref, Unit::Seconds)),
        "",
    ));
    let reference = Summary::of(&overhead[2], Unit::Seconds);
    for (i, kind) in [Kind::OursFull, Kind::OursWorkspace].iter().enumerate() {
        rows.push(Row::new(
            format!(
                "per-exec overhead, no rule names the program, {}",
                policy_of(*kind)
            ),
            Some(Summary::of(&overhead[i], Unit::Seconds)),
            Some(reference.clone()),
            "≤ 0.15 ms",
        ));
    }

    // 2. latency, calls interleaved across the servers
    println!(
        "bench: {} sequential `true` calls per server",
        plan.latency_calls
    );
    let mut latency: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut http_latency = Vec::new();
    for _ in 0..plan.latency_calls {
        for (i, (_, server)) in servers.iter().enumerate() {
            let t = Instant::now();
            server.shell("true", &s.work, LOGIN, CALL_TIMEOUT_MS)?;
            latency[i].push(secs(t.elapsed()));
        }
        let t = Instant::now();
        over_http.shell("true", &s.work, LOGIN, CALL_TIMEOUT_MS)?;
        http_latency.push(secs(t.elapsed()));
    }
    for (i, kind) in [Kind::OursFull, Kind::OursWorkspace].iter().enumerate() {
        let target = if *kind == Kind::OursWorkspace {
            "sandbox adds < 1 ms"
        } else {
            ""
        };
        rows.push(Row::new(
            format!("`shell` call p50 (min–max), {}", policy_of(*kind)),
            Some(Summary::of(&latency[i], Unit::Seconds)),
            Some(Summary::of(&latency[2], Unit::Seconds)),
            target,
        ));
        rows.push(Row::new(
            format!("`shell` call p99, {}", policy_of(*kind)),
            Some(Summary::one(percentile(&latency[i], 99.0), Unit::Seconds)),
            Some(Summary::one(percentile(&latency[2], 99.0), Unit::Seconds)),
            "",
        ));
    }
    // Background processes, on the sandboxed server, beside its calls.
    let (_, sandboxed) = &servers[1];
    background_latency(sandboxed, &s.work, plan, rows)?;
    rows.push(Row::new(
        "`shell` call p50 (min–max) over HTTP, danger-full-access",
        Some(Summary::of(&http_latency, Unit::Seconds)),
        None,
        "",
    ));
    rows.push(Row::new(
        "`shell` call p99 over HTTP, danger-full-access",
        Some(Summary::one(percentile(&http_latency, 99.0), Unit::Seconds)),
        None,
        "",
    ));

    // 3. throughput
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut http_rates = Vec::new();
    for run in 0..plan.throughput_runs {
        println!(
            "bench: throughput, {} clients × {} calls, run {}/{}",
            plan.clients,
            plan.calls_per_client,
            run + 1,
            plan.throughput_runs
        );
        for (i, (_, server)) in servers.iter().enumerate() {
            rates[i].push(calls_per_second(plan, || {
                server.shell("true", &s.work, LOGIN, CALL_TIMEOUT_MS)
            })?);
        }
        http_rates.push(calls_per_second(plan, || {
            over_http.shell("true", &s.work, LOGIN, CALL_TIMEOUT_MS)
        })?);
    }
    for (i, kind) in [Kind::OursFull, Kind::OursWorkspace].iter().enumerate() {
        rows.push(Row::new(
            format!(
                "throughput, {} clients × {} `true` calls, {}",
                plan.clients,
                plan.calls_per_client,
                policy_of(*kind)
            ),
            Some(Summary::of(&rates[i], Unit::Rate)),
            Some(Summary::of(&rates[2], Unit::Rate)),
            "",
        ));
    }
    rows.push(Row::new(
        format!(
            "throughput over HTTP, {} clients × {} `true` calls, danger-full-access",
            plan.clients, plan.calls_per_client
        ),
        Some(Summary::of(&http_rates, Unit::Rate)),
        None,
        "",
    ));
    for (_, server) in servers {
        server.shutdown()?;
    }
    over_http.shutdown()?;
    Ok(())
}

/// `exec_command` from start to its first output, and a `write_stdin`
/// round trip through `cat`, on `server` (workspace-write). One output
/// token (4 bytes) is all a call waits for, so it returns as soon as the
/// output is there instead of waiting for it to pause. `bash -c`, not
/// `-lc`: a login shell's profile may print before the command does.
fn background_latency(
    server: &Server,
    work: &Path,
    plan: &Plan,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let tool = |name: &str, arguments: Value| -> Result<Value> {
        let result = server.request("tools/call", json!({"name": name, "arguments": arguments}))?;
        if result["isError"] == true {
            bail!("{name} {arguments}: {result}");
        }
        Ok(result["structuredContent"].clone())
    };
    println!(
        "bench: {} background starts and write_stdin round trips",
        plan.latency_calls
    );
    let mut starts = Vec::new();
    for _ in 0..plan.latency_calls {
        let t = Instant::now();
        let r = tool(
            "exec_command",
            json!({"cmd": "echo ready; exec sleep 600", "workdir": work, "login": false,
                   "yield_time_ms": 30_000, "max_output_tokens": 1}),
        )?;
        starts.push(secs(t.elapsed()));
        if !r["output"].as_str().is_some_and(|o| o.starts_with("read")) {
            bail!("exec_command returned no first output: {r}");
        }
        tool(
            "kill_process",
            json!({"session_id": r["session_id"], "signal": "SIGKILL"}),
        )?;
    }
    let r = tool(
        "exec_command",
        json!({"cmd": "exec cat", "workdir": work, "login": false, "yield_time_ms": 0}),
    )?;
    let id = r["session_id"].clone();
    let mut trips = Vec::new();
    for _ in 0..plan.latency_calls {
        let t = Instant::now();
        let r = tool(
            "write_stdin",
            json!({"session_id": id, "chars": "ping\n", "yield_time_ms": 30_000, "max_output_tokens": 1}),
        )?;
        trips.push(secs(t.elapsed()));
        // The rest of the echo, so the next trip starts clean.
        let mut got = r["output"].as_str().unwrap_or_default().to_owned();
        while got.len() < 5 {
            let r = tool(
                "write_stdin",
                json!({"session_id": id, "yield_time_ms": 30_000}),
            )?;
            got.push_str(r["output"].as_str().unwrap_or_default());
        }
        if got != "ping\n" {
            bail!("cat echoed {got:?}");
        }
    }
    tool(
        "kill_process",
        json!({"session_id": id, "signal": "SIGKILL"}),
    )?;
    rows.push(Row::new(
        "`exec_command` start to first output p50 (min–max), `bash -c`, workspace-write",
        Some(Summary::of(&starts, Unit::Seconds)),
        None,
        "",
    ));
    rows.push(Row::new(
        "`write_stdin` round trip through `cat` p50 (min–max), workspace-write",
        Some(Summary::of(&trips, Unit::Seconds)),
        None,
        "",
    ));
    Ok(())
}

/// `plan.clients` threads each making `plan.calls_per_client` calls at
/// once: calls per second.
fn calls_per_second<T>(plan: &Plan, call: impl Fn() -> Result<T> + Sync) -> Result<f64> {
    let t = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..plan.clients)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    for _ in 0..plan.calls_per_client {
                        call()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("client thread panicked")?;
        }
        Ok(())
    })?;
    Ok((plan.clients * plan.calls_per_client) as f64 / secs(t.elapsed()))
}

fn policy_of(kind: Kind) -> &'static str {
    match kind {
        Kind::OursFull | Kind::Reference => "danger-full-access",
        Kind::OursWorkspace => "workspace-write",
    }
}

/// 4. Spawn to `initialize` response.
fn cold_start(s: &Subjects, homes: &Homes, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let runs = plan.runs * 2;
    println!("bench: cold start, {runs} runs");
    let launches = [
        s.launch(Kind::OursFull, &homes.empty),
        s.launch(Kind::Reference, &homes.empty),
        s.launch_npm(false, &homes.empty),
        s.launch_npm(true, &homes.empty),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); launches.len()];
    for _ in 0..runs {
        for (i, launch) in launches.iter().enumerate() {
            let (server, elapsed) = Server::start(launch)?;
            times[i].push(secs(elapsed));
            server.shutdown()?;
        }
    }
    rows.push(Row::new(
        "cold start to `initialize` response, binary",
        Some(Summary::of(&times[0], Unit::Seconds)),
        Some(Summary::of(&times[1], Unit::Seconds)),
        "",
    ));
    rows.push(Row::new(
        "cold start to `initialize` response, npm launcher (node)",
        Some(Summary::of(&times[2], Unit::Seconds)),
        Some(Summary::of(&times[3], Unit::Seconds)),
        "",
    ));
    Ok(())
}

/// 5. Peak RSS of the server process while one call prints 1 GiB.
fn peak_rss(s: &Subjects, homes: &Homes, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); Kind::ALL.len()];
    let mut durations: Vec<Vec<f64>> = vec![Vec::new(); Kind::ALL.len()];
    for run in 0..plan.rss_runs {
        for (i, kind) in Kind::ALL.iter().enumerate() {
            println!(
                "bench: 1 GiB of output, {}, run {}/{}",
                kind.label(),
                run + 1,
                plan.rss_runs
            );
            let server = s.start(*kind, &homes.empty)?;
            let t = Instant::now();
            let outcome = server.shell(BIG_OUTPUT, &s.work, false, CALL_TIMEOUT_MS)?;
            if outcome.output_len == 0 {
                bail!("{}: the 1 GiB call returned no output", kind.label());
            }
            durations[i].push(secs(t.elapsed()));
            rss[i].push(vm_hwm(server.pid())?);
            server.shutdown()?;
        }
    }
    for (i, kind) in [Kind::OursFull, Kind::OursWorkspace].iter().enumerate() {
        rows.push(Row::new(
            format!(
                "server peak RSS, a call printing 1 GiB, {}",
                policy_of(*kind)
            ),
            Some(Summary::of(&rss[i], Unit::Bytes)),
            Some(Summary::of(&rss[2], Unit::Bytes)),
            "≤ 32 MiB",
        ));
    }
    rows.push(Row::new(
        "duration of the 1 GiB call, danger-full-access",
        Some(Summary::of(&durations[0], Unit::Seconds)),
        Some(Summary::of(&durations[2], Unit::Seconds)),
        "",
    ));
    Ok(())
}

/// `VmHWM` of a live process, in bytes.
fn vm_hwm(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmHWM in {path}"))?;
    Ok(kib * 1024.0)
}

/// 6. Rules: load time and per-exec decision time.
fn rules(s: &Subjects, homes: &Homes, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    println!("bench: {RULES}-rule policy, {} runs", plan.runs);
    // Load through `check` (ours only: the reference has no such command).
    let check = |many: bool| -> Result<f64> {
        let rules = homes.rules_file(many);
        let t = Instant::now();
        let out = Command::new(&s.ours.server)
            .arg("check")
            .arg("--rules")
            .arg(&rules)
            .args(["--", "true"])
            .env("CODEX_HOME", &homes.empty)
            .current_dir(&s.work)
            .stdin(Stdio::null())
            .output()
            .context("cannot run check")?;
        let elapsed = secs(t.elapsed());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if !out.status.success() || !report["decision"].is_null() {
            bail!(
                "check --rules {} -- true: {}, stdout {}, stderr {}",
                rules.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(elapsed)
    };
    let mut check_load = Vec::new();
    let mut startup_load: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    let mut decision: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    let mut asked: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    let kinds = [Kind::OursFull, Kind::Reference];
    for _ in 0..plan.runs {
        let one = check(false)?;
        let many = check(true)?;
        check_load.push(many - one);
        for (i, kind) in kinds.iter().enumerate() {
            let (one_server, one_start) = start_timed(s, *kind, &homes.one_rule)?;
            let (many_server, many_start) = start_timed(s, *kind, &homes.many_rules)?;
            startup_load[i].push(many_start - one_start);
            for server in [&one_server, &many_server] {
                server.shell("true", &s.work, false, CALL_TIMEOUT_MS)?; // warm-up
            }
            let bash = if *kind == Kind::Reference {
                &s.reference.bash
            } else {
                &s.ours.bash
            };
            let plain = per_exec_plain(bash, &s.work)?;
            let one_exec = per_exec_in_call(&one_server, &s.work)?;
            let many_exec = per_exec_in_call(&many_server, &s.work)?;
            asked[i].push(one_exec - plain);
            decision[i].push(many_exec - one_exec);
            one_server.shutdown()?;
            many_server.shutdown()?;
        }
    }
    rows.push(Row::new(
        format!("rules load, {RULES} rules (`check` minus 1-rule `check`)"),
        Some(Summary::of(&check_load, Unit::Seconds)),
        None,
        "",
    ));
    rows.push(Row::new(
        format!("rules load, {RULES} rules (start-up minus 1-rule start-up)"),
        Some(Summary::of(&startup_load[0], Unit::Seconds)),
        Some(Summary::of(&startup_load[1], Unit::Seconds)),
        "",
    ));
    rows.push(Row::new(
        "per-exec overhead, a rule names the program (asked), danger-full-access",
        Some(Summary::of(&asked[0], Unit::Seconds)),
        Some(Summary::of(&asked[1], Unit::Seconds)),
        "",
    ));
    rows.push(Row::new(
        format!("per-exec decision, {RULES} rules (exec loop minus 1-rule server)"),
        Some(Summary::of(&decision[0], Unit::Seconds)),
        Some(Summary::of(&decision[1], Unit::Seconds)),
        "",
    ));
    Ok(())
}

/// A started, initialized server and its spawn-to-`initialize` time.
fn start_timed(s: &Subjects, kind: Kind, home: &Path) -> Result<(Server, f64)> {
    let (server, elapsed) = Server::start(&s.launch(kind, home))?;
    if kind == Kind::Reference {
        server.sandbox_state(serde_json::json!({"type": "danger-full-access"}), &s.work)?;
    }
    Ok((server, secs(elapsed)))
}

/// 7. Artifact sizes.
fn sizes(s: &Subjects, rows: &mut Vec<Row>) -> Result<()> {
    let size = |p: &Path| -> Result<Summary> {
        let len = fs::metadata(p)
            .with_context(|| format!("cannot stat {}", p.display()))?
            .len();
        Ok(Summary::one(len as f64, Unit::FileSize))
    };
    rows.push(Row::new(
        "npm tarball",
        Some(size(&s.ours.npm_tarball)?),
        Some(size(&s.reference.npm_tarball)?),
        "≤ 8 MB",
    ));
    rows.push(Row::new(
        "OCI image tarball (uncompressed)",
        s.oci_tarball.as_deref().map(size).transpose()?,
        None,
        "≤ 10 MB",
    ));
    let (o, r) = (&s.ours, &s.reference);
    for (name, ours, reference) in [
        (
            "binary codex-exec-mcp-server (x86_64)",
            &o.server,
            &r.server,
        ),
        (
            "binary codex-execve-wrapper (x86_64)",
            &o.wrapper,
            &r.wrapper,
        ),
        ("binary bash (x86_64)", &o.bash, &r.bash),
    ] {
        rows.push(Row::new(
            name,
            Some(size(ours)?),
            Some(size(reference)?),
            "",
        ));
    }
    rows.push(Row::new(
        "binary codex-sandbox-exec (x86_64; the reference has none)",
        o.sandbox_exec.as_deref().map(size).transpose()?,
        None,
        "",
    ));
    Ok(())
}

fn render_table(rows: &[Row]) -> String {
    let mut lines = vec![
        format!(
            "| measurement | ours | reference {REFERENCE_VERSION} | ours ÷ reference | target |"
        ),
        "|---|---:|---:|---:|---|".to_owned(),
    ];
    for row in rows {
        let cell = |s: &Option<Summary>| s.as_ref().map_or("–".to_owned(), Summary::display);
        let ratio = match (&row.ours, &row.reference) {
            // A difference whose runs fall on both sides of zero is below
            // the noise; a ratio of it would mean nothing.
            (Some(o), Some(r)) if o.spans_zero() || r.spans_zero() => "noise".to_owned(),
            (Some(o), Some(r)) if r.median > 0.0 => format!("{:.2}×", o.median / r.median),
            _ => "–".to_owned(),
        };
        lines.push(format!(
            "| {} | {} | {} | {} | {} |",
            row.measurement,
            cell(&row.ours),
            cell(&row.reference),
            ratio,
            row.target
        ));
    }
    lines.join("\n")
}

/// `5.3.15(1)-release` from `bash --version`, or why not.
fn bash_version(bash: &Path) -> String {
    Command::new(bash)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let line = text.lines().next()?.to_owned();
            line.split("version ")
                .nth(1)
                .map(|v| v.split_whitespace().next().unwrap_or(v).to_owned())
        })
        .unwrap_or_else(|| format!("unknown ({} --version failed)", bash.display()))
}

#[allow(clippy::too_many_arguments)]
fn report(
    sh: &Shell,
    plan: &Plan,
    table: &str,
    load_before: &str,
    load_after: &str,
    elapsed: Duration,
    stale: Option<&str>,
    bash: &str,
) -> Result<String> {
    let artifacts = match stale {
        None => "`target/dist`, up to date with the sources".to_owned(),
        Some(why) => format!("`target/dist` kept by `--no-build` although stale: {why}"),
    };
    let date = cmd!(sh, "date -u +%Y-%m-%dT%H:%MZ").read()?;
    let commit = cmd!(sh, "git rev-parse --short=12 HEAD")
        .read()
        .unwrap_or_else(|_| "unknown".to_owned());
    let dirty = cmd!(
        sh,
        "git status --porcelain -- crates npm patches Cargo.toml Cargo.lock"
    )
    .read()
    .map(|s| !s.trim().is_empty())
    .unwrap_or(false);
    let commit = if dirty {
        format!("{commit} (with uncommitted changes)")
    } else {
        commit
    };
    let mode = if plan.quick {
        "`--quick` (fewer repetitions: a check that the bench works, not a result)"
    } else {
        "full"
    };
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok(format!(
        "# Benchmark results\n\n\
         Written by `cargo xtask bench` (see `xtask/src/bench.rs` for the method); \
         every run rewrites this file.\n\n\
         - date: {date}\n\
         - commit: {commit}\n\
         - mode: {mode}; took {:.0} s\n\
         - ours: {artifacts}\n\
         - reference: `{REFERENCE_PACKAGE}@{REFERENCE_VERSION}` (npm), its x86_64 musl binaries, \
           Bash for this distribution\n\
         - Bash: {bash}\n\
         - machine: {nproc} CPUs, {cpu}, Linux {kernel}, {mem} RAM\n\
         - load average (1, 5, 15 min) before: {load_before}; after: {load_after}\n\n\
         {table}\n\n\
         ## How to read it\n\n\
         - `median (min–max)` over the runs; one value where there is one sample. \
         The ratio column is ours ÷ reference of the medians (for throughput, higher is better); \
         \"noise\" where a difference's runs fall on both sides of zero.\n\
         - Per-exec overhead: one `shell` call (`login: false`) running `/bin/true` {EXECS} times \
         minus the same call with 0 iterations, divided by {EXECS}, minus the same for that \
         implementation's Bash run directly without `BASH_EXEC_WRAPPER` (the first row). \
         With no rules, no rule names `true`: our patched Bash, which reads the ask list \
         (`CODEX_ESCALATE_ASK`) itself, executes it directly, without the wrapper (with the exec \
         check on, the server still judges that exec); the \"a rule names the program\" row is the same loop on the \
         1-rule server, where every exec is a round trip to the server.\n\
         - Latency: `true` calls with `login: true` (the reference's default) over one \
         connection per server, interleaved across servers. The servers get `HOME` = \
         `CODEX_HOME` = an empty directory, so a login shell reads `/etc/profile` only. Throughput: client threads sharing \
         one connection, each with one call in flight.\n\
         - Cold start: spawn to the `initialize` response; \"npm launcher\" is `node` running the \
         package's `bin` script, which spawns the binary.\n\
         - Peak RSS: `VmHWM` of the server process (not its children) after \
         `{BIG_OUTPUT}`.\n\
         - Rules: a generated file of {RULES} `prefix_rule`s, all for `true` with further \
         arguments, so that `/bin/true` is compared with every rule and matches none; the \
         1-rule file is its first rule. Loaded through `CODEX_HOME/rules/` for start-up and \
         exec-loop rows, `--rules` for `check`.\n\
         - The reference gets `codex/sandbox-state/update` with `danger-full-access` (it runs \
         nothing on Linux without it); ours runs under `--sandbox`.\n\
         - The machine is shared with other jobs; a high load average above means noisy numbers.\n",
        elapsed.as_secs_f64()
    ))
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}
