//! Command line and TOML configuration, merged into the [`Settings`] the
//! server runs with. The command line wins over the file; list settings
//! (rules, writable roots) from both are combined.

use std::ffi::OsString;
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

#[derive(Debug, Parser)]
#[command(
    name = "codex-exec-mcp-server",
    version,
    about = "MCP server exposing a `shell` tool whose every exec is checked against Codex .rules",
    long_about = "MCP server (stdio) exposing a `shell` tool. Commands run in a patched Bash \
                  inside a sandbox; every program the shell starts is checked against Codex \
                  .rules files (/etc/codex/rules/*.rules, then $CODEX_HOME/rules/*.rules, then \
                  --rules): `allow` runs it outside the sandbox, `prompt` asks the user through \
                  MCP elicitation, `forbidden` denies it. Logs go to stderr (RUST_LOG filters \
                  them); stdout carries MCP only."
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
    /// The server's working directory at start.
    pub cwd: PathBuf,
    /// What a command must never write, for it is read at the next start:
    /// the rules (system directory, `$CODEX_HOME`, every `--rules` file),
    /// the config file (see `rules::protected_paths`), and the server's own
    /// executable and the launcher beside it.
    pub protected_paths: Vec<PathBuf>,
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
        let mut writable_roots: Vec<PathBuf> = file.writable_roots;
        writable_roots.extend(s.writable_roots.iter().cloned());
        let writable_roots = writable_roots
            .into_iter()
            .map(|p| absolutize(&cwd, &p))
            .collect();
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
            cwd,
            protected_paths,
        })
    }
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
            "#,
        )
        .unwrap();
        assert_eq!(c.sandbox, Some(SandboxMode::DangerFullAccess));
        assert_eq!(c.rules, vec![PathBuf::from("a.rules")]);
        assert_eq!(c.default_timeout_ms, Some(1000));
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
