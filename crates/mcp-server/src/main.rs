//! `codex-exec-mcp-server`: MCP server exposing the `shell` tool.
//!
//! Dispatch order matters: `sandbox-exec` runs first, before any thread or
//! async runtime exists, because the sandbox applies to the calling process
//! and must be applied single-threaded right before `exec`.

use std::ffi::OsStr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use mcp_server::config::{Cli, Command, Settings};
use mcp_server::{check, rules, sandbox_exec, server};
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
    let cli = Cli::parse();
    init_tracing();
    let settings = match Settings::resolve(&cli) {
        Ok(settings) => settings,
        Err(e) => return config_error(e),
    };
    let policy = match rules::rules_files(&settings.extra_rules).and_then(|files| {
        tracing::info!(?files, "loading rules");
        rules::load_policy(&files)
    }) {
        Ok(policy) => policy,
        Err(e) => return config_error(e.into()),
    };
    let options = MatchOptions {
        preserve_program_paths: settings.preserve_program_paths,
    };
    let outcome = match cli.command {
        Some(Command::Check { command }) => print_check(&policy, &command, options),
        None => serve(settings, policy),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codex-exec-mcp-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_error(e: anyhow::Error) -> ExitCode {
    eprintln!("{e:#}");
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

fn serve(settings: Settings, policy: policy::Policy) -> anyhow::Result<()> {
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
