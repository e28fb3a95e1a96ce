//! `codex-exec-mcp-server`: MCP server exposing the `shell` tool.
//!
//! Dispatch order matters: `sandbox-exec` runs first, before any thread or
//! async runtime exists, because the sandbox applies to the calling process
//! and must be applied single-threaded right before `exec`.

use std::ffi::OsStr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use mcp_server::config::{AUTH_TOKEN_ENV, Cli, Command, Settings};
use mcp_server::launcher::Launcher;
use mcp_server::{check, doctor, rules, sandbox_exec, sandbox_state, server};
use policy::MatchOptions;

/// musl's allocator maps and unmaps pages for small allocations; the server
/// allocates a lot at start (Starlark, rmcp, tokio) and per call.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for configuration errors, including invalid rules.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new("sandbox-exec")) {
        return sandbox_exec::main(std::env::args_os().skip(2).collect());
    }
    // First, while the process has one thread: the token leaves the
    // environment every command would inherit (and `/proc/PID/environ`).
    let token_from_env = mcp_server::sys::take_secret_env(AUTH_TOKEN_ENV);
    let mut cli = Cli::parse();
    cli.serve.http.token_from_env = match token_from_env.map(std::ffi::OsString::into_string) {
        Some(Ok(token)) => Some(token),
        Some(Err(_)) => {
            return config_error(anyhow::anyhow!(
                "{AUTH_TOKEN_ENV} is not valid UTF-8: use printable ASCII without spaces"
            ));
        }
        None => None,
    };
    init_tracing();
    let settings = match Settings::resolve(&cli) {
        Ok(settings) => settings,
        Err(e) => return config_error(e),
    };
    let mut policy = match rules::rules_files(&settings.extra_rules).and_then(|files| {
        tracing::info!(?files, "loading rules");
        rules::load_policy(&files)
    }) {
        Ok(policy) => policy,
        Err(e) => return config_error(e.into()),
    };
    // A declared path that is a symlink (Debian's /usr/bin/python3) names
    // the file it resolves to: the one an exec runs.
    policy.resolve_host_executables(|path| {
        std::fs::canonicalize(path)
            .ok()
            .filter(|resolved| resolved != path)
    });
    let options = MatchOptions {
        preserve_program_paths: settings.preserve_program_paths,
    };
    let outcome = match cli.command {
        Some(Command::Check { command }) => print_check(&policy, &command, options),
        Some(Command::Doctor) => return doctor(&settings),
        None => serve(settings, policy),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codex-exec-mcp-server: {}", mcp_server::errors::chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn config_error(e: anyhow::Error) -> ExitCode {
    eprintln!("{}", mcp_server::errors::chain(&e));
    ExitCode::from(EXIT_CONFIG)
}

fn print_check(
    policy: &policy::Policy,
    command: &[std::ffi::OsString],
    options: MatchOptions,
) -> anyhow::Result<()> {
    let report = check::check(policy, command, options);
    println!(
        "{}",
        serde_json::to_string_pretty(&report).context("failed to encode the report")?
    );
    Ok(())
}

/// `doctor`: the table on stdout; exit 1 when the default sandbox cannot be
/// enforced.
fn doctor(settings: &Settings) -> ExitCode {
    if let Err(e) = rules::ensure_codex_home() {
        println!("GAP  $CODEX_HOME: cannot create it ({e}); a command could create it first");
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let launcher = Launcher::find(&exe);
    let (probe, spec) = match sandbox_state::default_spec(settings) {
        Ok(spec) => (doctor::probe(&launcher, settings, spec.as_ref()), spec),
        Err(e) => (doctor::Probe::Refused(e.to_string()), None),
    };
    let mut rows = doctor::rows(&probe, settings);
    if let (doctor::Probe::Enforced(_), Some(spec)) = (&probe, &spec) {
        rows.push(doctor::exec_check_row(&launcher, settings, spec));
    }
    print!("{}", doctor::render(&rows));
    if doctor::enforceable(&probe) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What the server checks before it serves: the default sandbox can be
/// enforced as configured (refusing to start otherwise, naming the
/// cause), and what it enforces, once in the log.
fn check_sandbox(settings: &Settings) -> anyhow::Result<()> {
    match rules::ensure_codex_home() {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot create $CODEX_HOME/rules; a command under a writable root could create it first")
        }
    }
    if sandbox_state::start_directory_too_wide(&settings.cwd) {
        tracing::warn!(cwd = %settings.cwd.display(),
            "the working directory is / or your home directory: it is not made writable by default (pass --writable-root to make it so)");
    } else if let Some(why) = doctor::unwritable_start_directory(settings) {
        tracing::warn!("{why}");
    }
    let probe = match sandbox_state::default_spec(settings) {
        Ok(spec) => {
            let exe = std::env::current_exe().context("failed to locate the server executable")?;
            doctor::probe(&Launcher::find(&exe), settings, spec.as_ref())
        }
        Err(e) => doctor::Probe::Refused(e.to_string()),
    };
    if let doctor::Probe::Refused(why) = &probe {
        tracing::error!(%why, "the default sandbox cannot be enforced here: calls under it will fail (`codex-exec-mcp-server doctor` shows what is missing)");
        return Ok(());
    }
    let rows = doctor::rows(&probe, settings);
    let gaps: Vec<String> = rows
        .iter()
        .filter(|r| !r.holds)
        .map(|r| format!("{}: {}", r.protection, r.how))
        .collect();
    if gaps.is_empty() {
        tracing::info!("sandbox: every protection holds here (`doctor` lists how)");
    } else {
        tracing::warn!(
            ?gaps,
            "sandbox: protections missing here (`doctor` lists them with fixes)"
        );
    }
    Ok(())
}

fn serve(settings: Settings, policy: policy::Policy) -> anyhow::Result<()> {
    for rule in policy.rules() {
        if rule.decision != policy::Decision::Allow {
            continue;
        }
        for head in rule.heads {
            if let Some(why) = policy::code_runner(head) {
                let warning = check::runner_warning(head, rule.location, why);
                tracing::warn!(%warning, "rules");
            }
        }
    }
    for (what, path) in [
        ("patched bash", &settings.bash),
        ("execve wrapper", &settings.wrapper),
    ] {
        if !path.is_file() {
            bail!(
                "{what} not found at {}: pass --bash/--execve (or set CODEX_BASH_PATH)",
                path.display()
            );
        }
    }
    check_sandbox(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let http = settings.http.clone();
    let shared = server::Shared::new(settings, policy)?;
    let served = match http {
        Some(http) => runtime.block_on(mcp_server::http::serve(shared, http)),
        None => runtime.block_on(server::ExecServer::new(shared, b"stdio".to_vec()).serve_stdio()),
    };
    // Every call has ended; what may remain is the blocking read of stdin
    // (after SIGTERM), which dropping the runtime would wait for forever.
    runtime.shutdown_background();
    served
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
