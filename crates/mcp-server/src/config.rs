//! Command line and TOML configuration, merged into the [`Settings`] the
//! server runs with. The command line wins over the file; list settings
//! (rules, writable roots) from both are combined.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// Default `timeout_ms` of a `shell` call, as the reference.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The largest `timeout_ms` accepted: one day.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// How long an approval request waits for the user by default.
pub const DEFAULT_ELICITATION_WAIT_SECS: u64 = 300;
/// Calls running at once by default (each is a Bash and its programs).
pub const DEFAULT_MAX_CALLS: usize = 64;
/// Background processes (`exec_command`) one client may have at once by
/// default.
pub const DEFAULT_MAX_PROCESSES: usize = 16;
/// How long a background process may go unread before it is killed, by
/// default: half an hour.
pub const DEFAULT_PROCESS_IDLE_SECS: u64 = 30 * 60;
/// Bytes of output a background process keeps unread by default.
pub const DEFAULT_PROCESS_OUTPUT_BYTES: usize = 1024 * 1024;
/// Largest HTTP request body by default (rmcp's default too).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The environment variable holding the bearer token when no token file
/// is given.
pub const AUTH_TOKEN_ENV: &str = "CODEX_MCP_AUTH_TOKEN";

#[derive(Debug, Parser)]
#[command(
    name = "codex-exec-mcp-server",
    version,
    about = "MCP server exposing a `shell` tool whose every exec is checked against Codex .rules",
    long_about = "MCP server exposing a `shell` tool, on stdio, or on Streamable HTTP at /mcp \
                  with --listen. Commands run in a patched Bash inside a sandbox; every program the shell starts is checked against Codex \
                  .rules files (/etc/codex/rules/*.rules, then $CODEX_HOME/rules/*.rules, then \
                  --rules): `allow` runs it outside the sandbox, `prompt` asks the user through \
                  MCP elicitation, `forbidden` denies it. Logs go to stderr (RUST_LOG filters \
                  them); on stdio, stdout carries MCP only."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Executable to delegate execve(2) calls to in Bash [default: codex-execve-wrapper beside
    /// this binary]
    #[arg(long = "execve", value_name = "PATH")]
    pub execve: Option<PathBuf>,

    /// Path to Bash that has been patched to support execve() wrapping [default:
    /// $CODEX_BASH_PATH, else `bash` beside this binary]
    #[arg(long = "bash", value_name = "PATH")]
    pub bash: Option<PathBuf>,

    /// Match rules against the program's full path (e.g. /usr/bin/echo) instead of its
    /// basename
    #[arg(long, global = true)]
    pub preserve_program_paths: bool,

    /// A .rules file loaded after the discovered ones (repeatable)
    #[arg(long = "rules", value_name = "FILE", global = true)]
    pub rules: Vec<PathBuf>,

    /// TOML file with the same settings as these flags (flags win; lists are combined)
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Settings of the MCP server proper.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Sandbox used until the client sends its own policy (`codex/sandbox-state`) [default:
    /// workspace-write]
    #[arg(long, value_enum, value_name = "MODE", global = true)]
    pub sandbox: Option<SandboxMode>,

    /// Extra writable directory for workspace-write (repeatable); the server's working
    /// directory at start and the temp dirs are always writable
    #[arg(long = "writable-root", value_name = "DIR", global = true)]
    pub writable_roots: Vec<PathBuf>,

    /// Allow network access inside the default sandbox
    #[arg(long, global = true)]
    pub network: bool,

    /// Bytes of output kept from the start of a command's output [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub output_head_bytes: Option<usize>,

    /// Bytes of output kept from the end of a command's output [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub output_tail_bytes: Option<usize>,

    /// How long an approval request waits for the user before denying [default: 300]
    #[arg(long, value_name = "SECS")]
    pub elicitation_timeout_secs: Option<u64>,

    /// Timeout of a `shell` call that does not set `timeout_ms` [default: 10000]
    #[arg(long, value_name = "MS")]
    pub default_timeout_ms: Option<u64>,

    /// Calls running at once; one more is refused with a JSON-RPC error [default: 64]
    #[arg(long, value_name = "N")]
    pub max_calls: Option<usize>,

    /// Which execs the rules judge: `all` (every exec in the sandbox, from any process:
    /// seccomp user notification) or `bash-only` (only those the patched Bash makes)
    /// [default: all]
    #[arg(long, value_enum, value_name = "WHICH", global = true)]
    pub exec_check: Option<ExecCheckMode>,

    /// An environment variable escalated programs take from the command (repeatable); they
    /// start from the server's environment plus TERM, COLORTERM, COLUMNS, LINES, NO_COLOR,
    /// FORCE_COLOR, CLICOLOR(_FORCE), LANG, LANGUAGE, LC_* and TZ. Names that select code
    /// or configuration (PATH, HOME, XDG_*, GIT_*, LD_*, ...) are refused
    #[arg(long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,

    /// Background processes (`exec_command`) one client may have at once; one more is
    /// refused [default: 16]
    #[arg(long, value_name = "N")]
    pub max_processes: Option<usize>,

    /// A background process unread (no `write_stdin` on it) this long is killed with
    /// everything it started [default: 1800]
    #[arg(long, value_name = "SECS")]
    pub process_idle_secs: Option<u64>,

    /// Bytes of a background process's output kept until read; older ones are dropped
    /// and counted [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    pub process_output_bytes: Option<usize>,

    #[command(flatten)]
    pub http: HttpArgs,
}

/// The Streamable HTTP transport (stdio when `--listen` is absent).
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "HTTP transport")]
pub struct HttpArgs {
    /// Serve MCP over Streamable HTTP at http://ADDR:PORT/mcp instead of stdio (e.g.
    /// 127.0.0.1:8080; any address but loopback needs a token)
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// File holding the bearer token clients must send (one per line for several clients;
    /// `#` lines are comments) [default: $CODEX_MCP_AUTH_TOKEN]
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// A host name clients may use in Host and Origin besides loopback (repeatable)
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,

    /// Largest request body accepted; larger ones get 413 [default: 4194304]
    #[arg(long, value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,

    /// `$CODEX_MCP_AUTH_TOKEN`, which `main` takes out of the server's
    /// environment before anything starts (`sys::take_secret_env`): no
    /// command, sandboxed or escalated, inherits it.
    #[arg(skip)]
    pub token_from_env: Option<String>,
}

/// Which execs the rules judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecCheckMode {
    /// Every exec in the sandbox, whatever process makes it.
    All,
    /// Only the execs of the patched Bash (through the wrapper).
    BashOnly,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a command line against the rules and print the decision as JSON
    Check {
        /// The command line, e.g. `-- git push origin main`
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// Show which mechanism enforces each protection of the default sandbox on this
    /// kernel and for this user, and the fix for each gap; exits 1 when the default
    /// sandbox cannot be enforced
    Doctor,
}

/// The sandbox modes Codex names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
}

/// The TOML file: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub execve: Option<PathBuf>,
    pub bash: Option<PathBuf>,
    pub preserve_program_paths: Option<bool>,
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    pub sandbox: Option<SandboxMode>,
    #[serde(default)]
    pub writable_roots: Vec<PathBuf>,
    pub network: Option<bool>,
    pub output_head_bytes: Option<usize>,
    pub output_tail_bytes: Option<usize>,
    pub elicitation_timeout_secs: Option<u64>,
    pub default_timeout_ms: Option<u64>,
    pub max_calls: Option<usize>,
    pub max_processes: Option<usize>,
    pub process_idle_secs: Option<u64>,
    pub process_output_bytes: Option<usize>,
    pub listen: Option<String>,
    pub auth_token_file: Option<PathBuf>,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    pub max_request_bytes: Option<usize>,
    pub exec_check: Option<ExecCheckMode>,
    #[serde(default)]
    pub pass_env: Vec<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read config file {}", path.display()))?;
        let config = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        Ok(config)
    }
}

/// Everything the server needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub wrapper: PathBuf,
    pub bash: PathBuf,
    pub preserve_program_paths: bool,
    /// Rules given explicitly (added to the discovered ones).
    pub extra_rules: Vec<PathBuf>,
    pub sandbox: SandboxMode,
    /// Extra writable roots for the default workspace-write sandbox.
    pub writable_roots: Vec<PathBuf>,
    pub network: bool,
    pub output_limits: escalate::OutputLimits,
    pub elicitation_wait: Duration,
    pub default_timeout: Duration,
    /// Variables escalated programs take from requests, beyond
    /// `escalate::PASSED` (file and flags combined).
    pub pass_env: Vec<String>,
    /// The server's working directory at start.
    pub cwd: PathBuf,
    /// Calls running at once.
    pub max_calls: usize,
    /// Background processes: the cap per client, the idle limit, the
    /// output kept.
    pub processes: ProcessSettings,
    /// Streamable HTTP instead of stdio.
    pub http: Option<HttpSettings>,
    /// Which execs in the sandbox the rules judge.
    pub exec_check: ExecCheckMode,
    /// What a command must never write, for it is read at the next start:
    /// the rules (system directory, `$CODEX_HOME`, every `--rules` file),
    /// the config file (see `rules::protected_paths`), and the server's own
    /// executable and the launcher beside it.
    pub protected_paths: Vec<PathBuf>,
    /// What a command must never read: the HTTP bearer token file.
    pub hidden_paths: Vec<PathBuf>,
}

/// What bounds the background processes of one client.
#[derive(Debug, Clone, Copy)]
pub struct ProcessSettings {
    pub max: usize,
    pub idle: Duration,
    pub output_bytes: usize,
}

/// The Streamable HTTP transport's settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Where the tokens were read from (absolute), if from a file: a
    /// secret no command may read or replace (see `Settings::hidden_paths`).
    pub token_file: Option<PathBuf>,
    /// No token: loopback only, and every local process is one client.
    pub tokens: Option<crate::http::Tokens>,
    /// Host names accepted in `Host` and `Origin` besides loopback.
    pub allowed_hosts: Vec<String>,
    pub max_request_bytes: usize,
}

impl Settings {
    /// Merges the command line over the config file (if any) over defaults.
    pub fn resolve(cli: &Cli) -> anyhow::Result<Settings> {
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        let exe_dir = std::env::current_exe()
            .context("failed to locate the server executable")?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let wrapper = cli
            .execve
            .clone()
            .or(file.execve)
            .unwrap_or_else(|| exe_dir.join("codex-execve-wrapper"));
        let bash = cli
            .bash
            .clone()
            .or(file.bash)
            .or_else(|| {
                std::env::var_os("CODEX_BASH_PATH")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| exe_dir.join("bash"));
        let defaults = escalate::OutputLimits::default();
        let s = &cli.serve;
        let default_timeout_ms = s
            .default_timeout_ms
            .or(file.default_timeout_ms)
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        if default_timeout_ms == 0 || default_timeout_ms > MAX_TIMEOUT_MS {
            bail!("default timeout {default_timeout_ms} ms is out of range 1..={MAX_TIMEOUT_MS}");
        }
        let max_calls = s.max_calls.or(file.max_calls).unwrap_or(DEFAULT_MAX_CALLS);
        if max_calls == 0 {
            bail!("--max-calls 0 would refuse every call");
        }
        let processes = ProcessSettings {
            max: s
                .max_processes
                .or(file.max_processes)
                .unwrap_or(DEFAULT_MAX_PROCESSES),
            idle: Duration::from_secs(
                s.process_idle_secs
                    .or(file.process_idle_secs)
                    .unwrap_or(DEFAULT_PROCESS_IDLE_SECS),
            ),
            output_bytes: s
                .process_output_bytes
                .or(file.process_output_bytes)
                .unwrap_or(DEFAULT_PROCESS_OUTPUT_BYTES),
        };
        if processes.idle.is_zero() {
            bail!("--process-idle-secs 0 would kill every background process at once");
        }
        if processes.output_bytes == 0 {
            bail!("--process-output-bytes 0 would keep no output");
        }
        let h = &s.http;
        let http = match h.listen.clone().or(file.listen) {
            Some(listen) => {
                let listen = parse_listen(&listen)?;
                let token_file = h
                    .auth_token_file
                    .clone()
                    .or(file.auth_token_file)
                    .map(|p| absolutize(&cwd, &p));
                let tokens = match &token_file {
                    Some(path) => Some(crate::http::Tokens::from_file(path)?),
                    None => match &h.token_from_env {
                        Some(token) if !token.is_empty() => {
                            Some(crate::http::Tokens::parse(token, AUTH_TOKEN_ENV)?)
                        }
                        _ => None,
                    },
                };
                if tokens.is_none() && !listen.ip().is_loopback() {
                    bail!(
                        "refusing to listen on {listen} without a token: whoever reaches that \
                         address could run commands; pass --auth-token-file FILE (or set \
                         {AUTH_TOKEN_ENV}), or listen on 127.0.0.1"
                    );
                }
                let mut allowed_hosts = file.allowed_hosts;
                allowed_hosts.extend(h.allowed_hosts.iter().cloned());
                let max_request_bytes = h
                    .max_request_bytes
                    .or(file.max_request_bytes)
                    .unwrap_or(DEFAULT_MAX_REQUEST_BYTES);
                if tokens.is_none() && (s.network || file.network.unwrap_or(false)) {
                    bail!(
                        "refusing to listen on {listen} without a token while --network gives \
                         sandboxed commands the network: a command could connect to the server \
                         itself and run what it likes outside the sandbox; pass \
                         --auth-token-file FILE (or set {AUTH_TOKEN_ENV})"
                    );
                }
                Some(HttpSettings {
                    listen,
                    token_file,
                    tokens,
                    allowed_hosts,
                    max_request_bytes,
                })
            }
            None => {
                if h.auth_token_file.is_some() || file.auth_token_file.is_some() {
                    bail!("an auth token file is for the HTTP transport: add --listen ADDR:PORT");
                }
                None
            }
        };
        let mut rules = file.rules;
        rules.extend(cli.rules.iter().cloned());
        let rules: Vec<PathBuf> = rules.iter().map(|p| absolutize(&cwd, p)).collect();
        let config_file = cli.config.as_ref().map(|p| absolutize(&cwd, p));
        let mut protected_paths = crate::rules::protected_paths(&rules, config_file.as_deref());
        // The server and its launcher run unconfined at the next start: a
        // command must not replace them either (an install in the project,
        // `node_modules`, lies under the workspace).
        if let Ok(exe) = std::env::current_exe() {
            let launcher = exe.with_file_name(crate::launcher::SANDBOX_EXEC);
            protected_paths.push(exe);
            if launcher.exists() {
                protected_paths.push(launcher);
            }
        }
        // The token file: unreadable to commands, and (in a writable root)
        // not replaceable by a token a command chose for the next start.
        let hidden_paths: Vec<PathBuf> = http.iter().filter_map(|h| h.token_file.clone()).collect();
        protected_paths.extend(hidden_paths.iter().cloned());
        let mut writable_roots: Vec<PathBuf> = file.writable_roots;
        writable_roots.extend(s.writable_roots.iter().cloned());
        let writable_roots = writable_roots
            .into_iter()
            .map(|p| absolutize(&cwd, &p))
            .collect();
        let mut pass_env = file.pass_env;
        pass_env.extend(s.pass_env.iter().cloned());
        escalate::EnvPolicy::new(std::iter::empty(), &pass_env).context("invalid --pass-env")?;
        Ok(Settings {
            wrapper: absolutize(&cwd, &wrapper),
            bash: absolutize(&cwd, &bash),
            preserve_program_paths: cli.preserve_program_paths
                || file.preserve_program_paths.unwrap_or(false),
            extra_rules: rules,
            sandbox: s
                .sandbox
                .or(file.sandbox)
                .unwrap_or(SandboxMode::WorkspaceWrite),
            writable_roots,
            network: s.network || file.network.unwrap_or(false),
            output_limits: escalate::OutputLimits {
                head: s
                    .output_head_bytes
                    .or(file.output_head_bytes)
                    .unwrap_or(defaults.head),
                tail: s
                    .output_tail_bytes
                    .or(file.output_tail_bytes)
                    .unwrap_or(defaults.tail),
            },
            elicitation_wait: Duration::from_secs(
                s.elicitation_timeout_secs
                    .or(file.elicitation_timeout_secs)
                    .unwrap_or(DEFAULT_ELICITATION_WAIT_SECS),
            ),
            default_timeout: Duration::from_millis(default_timeout_ms),
            pass_env,
            cwd,
            max_calls,
            processes,
            http,
            protected_paths,
            hidden_paths,
            exec_check: s
                .exec_check
                .or(file.exec_check)
                .unwrap_or(ExecCheckMode::All),
        })
    }
}

/// `ADDR:PORT` with an IP address (`[::1]:8080` for IPv6), or
/// `localhost:PORT`.
fn parse_listen(text: &str) -> anyhow::Result<SocketAddr> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port = port
            .parse()
            .with_context(|| format!("invalid port in listen address `{text}`"))?;
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    text.parse().with_context(|| {
        format!(
            "invalid listen address `{text}`: expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"
        )
    })
}

fn absolutize(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_config_rejects_unknown_keys() {
        let err = toml::from_str::<FileConfig>("sandbox = \"read-only\"\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn file_config_parses_every_key() {
        let c: FileConfig = toml::from_str(
            r#"
            execve = "/w"
            bash = "/b"
            preserve_program_paths = true
            rules = ["a.rules"]
            sandbox = "danger-full-access"
            writable_roots = ["/data"]
            network = true
            output_head_bytes = 10
            output_tail_bytes = 20
            elicitation_timeout_secs = 5
            default_timeout_ms = 1000
            pass_env = ["MY_VAR"]
            max_calls = 8
            listen = "127.0.0.1:8080"
            auth_token_file = "/run/secrets/token"
            allowed_hosts = ["shell-tool"]
            max_request_bytes = 65536
            "#,
        )
        .unwrap();
        assert_eq!(c.sandbox, Some(SandboxMode::DangerFullAccess));
        assert_eq!(c.rules, vec![PathBuf::from("a.rules")]);
        assert_eq!(c.default_timeout_ms, Some(1000));
        assert_eq!(c.pass_env, ["MY_VAR"]);
        assert_eq!(c.listen.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(c.allowed_hosts, ["shell-tool"]);
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            parse_listen("localhost:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        let err = parse_listen("example.com:80").unwrap_err().to_string();
        assert!(err.contains("`example.com:80`"), "{err}");
    }

    #[test]
    fn cli_parses_check_with_rules_after_subcommand() {
        let cli = Cli::try_parse_from([
            "codex-exec-mcp-server",
            "check",
            "--rules",
            "x.rules",
            "--",
            "git",
            "push",
        ])
        .unwrap();
        assert_eq!(cli.rules, vec![PathBuf::from("x.rules")]);
        match cli.command {
            Some(Command::Check { command }) => {
                assert_eq!(command, vec![OsString::from("git"), "push".into()])
            }
            other => panic!("not check: {other:?}"),
        }
    }
}
