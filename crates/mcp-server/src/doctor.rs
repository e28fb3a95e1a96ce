//! `codex-exec-mcp-server doctor`, and the same check at start: which
//! mechanism enforces each protection on this kernel, for this user, and
//! which are missing, with the fix or the flag for each gap.
//!
//! The answer comes from the real thing: the launcher starts the patched
//! Bash (`bash -c :`) under the default sandbox and reports what it
//! enforced (`--report`, see `sandbox::Applied`). When the default policy
//! cannot be enforced at all (no Landlock, or a rules file that must stay
//! read-only cannot be), the launcher refuses, and so does the server.

use std::process::Command;

use sandbox::{Applied, SandboxSpec};

use crate::config::Settings;
use crate::launcher::Launcher;

/// What the probe found.
#[derive(Debug)]
pub enum Probe {
    /// The default sandbox ran; what it enforced.
    Enforced(Box<Applied>),
    /// The default policy is danger-full-access: nothing to enforce.
    Unsandboxed,
    /// The default sandbox cannot run: why.
    Refused(String),
}

/// Starts Bash under `spec` through the launcher and reads its report.
pub fn probe(launcher: &Launcher, settings: &Settings, spec: Option<&SandboxSpec>) -> Probe {
    let Some(spec) = spec else {
        return Probe::Unsandboxed;
    };
    let json = match serde_json::to_string(spec) {
        Ok(json) => json,
        Err(e) => return Probe::Refused(format!("cannot encode the sandbox spec: {e}")),
    };
    let (program, leading) = launcher
        .argv()
        .split_first()
        .expect("the launcher has a program");
    let mut cmd = Command::new(program);
    cmd.args(leading);
    // A client's loopback network, as its first network-off call makes it.
    let mut loopback_missing = None;
    let loopback = match spec.network {
        true => None,
        false => escalate::Loopback::make(launcher.argv())
            .inspect_err(|e| loopback_missing = Some(e.to_string()))
            .ok(),
    };
    if let Some(loopback) = &loopback {
        loopback.pass(&mut cmd);
    }
    let output = cmd
        .args(["--report", "--spec", &json, "--"])
        .arg(&settings.bash)
        .args(["-c", ":"])
        .current_dir(&settings.cwd)
        .stdin(std::process::Stdio::null())
        .output();
    drop(loopback);
    let output = match output {
        Ok(output) => output,
        Err(e) => return Probe::Refused(format!("cannot start the sandbox launcher: {e}")),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let applied = stderr
        .lines()
        .find_map(|line| line.strip_prefix("applied: "))
        .and_then(|json| serde_json::from_str::<Applied>(json).ok());
    match applied {
        Some(mut applied) if output.status.success() => {
            if applied.loopback_missing.is_none() {
                applied.loopback_missing = loopback_missing;
            }
            Probe::Enforced(Box::new(applied))
        }
        _ => {
            let why = stderr
                .lines()
                .filter(|l| !l.starts_with("applied: "))
                .map(|l| l.trim_start_matches("codex-sandbox-exec: "))
                .collect::<Vec<_>>()
                .join("; ");
            Probe::Refused(if why.is_empty() {
                format!("the sandboxed shell failed ({})", output.status)
            } else {
                why
            })
        }
    }
}

/// One protection: what it is, whether it holds here, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub protection: &'static str,
    pub holds: bool,
    /// The mechanism when it holds; the gap and its fix when not.
    pub how: String,
}

/// The table for a probe.
pub fn rows(probe: &Probe, settings: &Settings) -> Vec<Row> {
    let applied = match probe {
        Probe::Enforced(applied) => applied,
        Probe::Unsandboxed => {
            return vec![Row {
                protection: "sandbox",
                holds: false,
                how: "the default policy is danger-full-access: commands run unconfined (drop \
                      `--sandbox danger-full-access` to confine them)"
                    .into(),
            }];
        }
        Probe::Refused(why) => {
            return vec![Row {
                protection: "sandbox",
                holds: false,
                how: format!("the default sandbox cannot be applied: {why}"),
            }];
        }
    };
    let abi = applied.landlock_abi;
    let ns = |name: &str| applied.namespaces.iter().any(|n| n == name);
    let no_userns = "no namespaces here (unprivileged user namespaces disabled or restricted: \
                     sysctl kernel.unprivileged_userns_clone=1, Ubuntu's \
                     kernel.apparmor_restrict_unprivileged_userns=0, or run the server as root)";
    let mut rows = vec![
        Row {
            protection: "writes outside the writable roots",
            holds: true,
            how: format!("Landlock ABI {abi}"),
        },
        Row {
            protection: "metadata writes outside the roots (chmod, utimes, xattrs, chown)",
            holds: applied.view.read_only_root,
            how: if applied.view.read_only_root {
                "read-only mount of everything outside the roots (mount namespace)".into()
            } else {
                format!("not refused: {no_userns}")
            },
        },
        Row {
            protection: "network (TCP/UDP) when off",
            holds: applied.socket_filter,
            how: if applied.network == "loopback" {
                "the client's private network namespace, only lo (nothing outside reachable); \
                 seccomp refuses every family but IP and UNIX"
                    .into()
            } else if applied.socket_filter {
                format!(
                    "seccomp socket filter{}{}",
                    if applied.landlock_denies_tcp {
                        ", Landlock TCP rules"
                    } else {
                        ""
                    },
                    if ns("net") {
                        ", private network namespace"
                    } else {
                        ""
                    }
                )
            } else {
                "the default sandbox has the network on (--network)".into()
            },
        },
        Row {
            protection: "UNIX sockets outside the sandbox (Docker, tmux, ssh-agent, D-Bus)",
            holds: applied.unix_sockets != "none",
            how: match applied.unix_sockets.as_str() {
                "landlock" => "Landlock RESOLVE_UNIX (ABI 9): only sockets made inside".into(),
                "seccomp" if applied.network == "loopback" => {
                    "seccomp refuses socket(AF_UNIX) (only socketpairs, born connected) and \
                     datagram sockets (Landlock ABI 9 would allow sockets made inside the \
                     sandbox)"
                        .into()
                }
                "seccomp" => {
                    "seccomp refuses connect(2) and datagram sockets (Landlock ABI 9 would allow \
                     sockets made inside the sandbox)"
                        .into()
                }
                _ => "reachable: the network is on (--network)".into(),
            },
        },
        Row {
            protection: "network off: a client's calls share a private loopback",
            holds: applied.network == "loopback" || applied.network == "host",
            how: match (applied.network.as_str(), &applied.loopback_missing) {
                ("loopback", _) => "a network namespace with only lo, one per client: a server a \
                                    background process starts is reached by the client's later \
                                    calls (TCP/UDP allowed there)"
                    .into(),
                ("host", _) => "the network is on (--network)".into(),
                (_, Some(why)) => format!(
                    "not available: {why}; each call has a network of its own, so a later call \
                     cannot reach a background server"
                ),
                _ => "not available: each call has a network of its own, so a later call cannot \
                      reach a background server"
                    .into(),
            },
        },
        Row {
            protection: "signals and abstract sockets of processes outside",
            holds: applied.landlock_scopes || ns("pid"),
            how: match (applied.landlock_scopes, ns("pid")) {
                (true, true) => "Landlock scopes (ABI 6) and a pid namespace".into(),
                (true, false) => "Landlock scopes (ABI 6)".into(),
                (false, true) => {
                    "a pid namespace (Landlock ABI 6 would add scopes; abstract sockets need the \
                     network namespace)"
                        .into()
                }
                (false, false) => format!(
                    "not refused: Landlock ABI {abi} has no scopes (Linux 6.12) and {no_userns}"
                ),
            },
        },
        Row {
            protection: "/proc of processes outside",
            holds: applied.view.private_proc || abi >= 1,
            how: if applied.view.private_proc {
                "a private /proc of the call's pid namespace".into()
            } else {
                "Landlock denies ptrace-style access (environ, mem, fds); other processes stay \
                 listed"
                    .into()
            },
        },
        Row {
            protection: "terminals of the user",
            holds: true,
            how: if applied.view.private_dev {
                "new session without a controlling terminal, a private /dev and devpts (the \
                 command's own pseudo-terminals work)"
                    .into()
            } else {
                "new session without a controlling terminal; Landlock denies reading and writing \
                 /dev's terminals (pseudo-terminals cannot be made: no private devpts)"
                    .into()
            },
        },
        Row {
            protection: "capabilities",
            holds: applied.capabilities_dropped,
            how: if ns("user") || nix::unistd::geteuid().is_root() {
                "every set emptied, bounding set included".into()
            } else {
                "effective, permitted, inheritable and ambient sets emptied; the bounding set \
                 stays (shrinking it needs CAP_SETPCAP or a user namespace; harmless: a non-root \
                 uid under no_new_privs gains nothing at exec)"
                    .into()
            },
        },
        Row {
            protection: "set-uid and set-gid files left in the writable roots",
            holds: applied.set_id_files_refused,
            how: "seccomp refuses the bits in chmod and file creation (openat2 unavailable)".into(),
        },
        Row {
            protection: "your kernel keyrings (session and user keys: tickets, credentials)",
            holds: applied.keyrings_refused,
            how: "seccomp refuses add_key, request_key and keyctl (ENOSYS)".into(),
        },
        Row {
            protection: "System V IPC of processes outside (shared memory, semaphores, queues)",
            holds: ns("ipc"),
            how: if ns("ipc") {
                "a private IPC namespace".into()
            } else {
                format!(
                    "not isolated: the System V shared memory, semaphores and message queues of \
                     your processes can be attached (POSIX queues are refused by Landlock); \
                     {no_userns}"
                )
            },
        },
        Row {
            protection: "processes outliving the call",
            holds: true,
            how: if ns("pid") {
                "a pid namespace whose init is the launcher; escalated programs under a subreaper"
                    .into()
            } else {
                "the launcher as child subreaper (for the call and each escalated program)".into()
            },
        },
    ];
    let unprotected: Vec<String> = applied
        .unprotected_subpaths
        .iter()
        .map(|u| format!("{} ({})", u.path.display(), u.reason))
        .collect();
    rows.push(Row {
        protection: "read-only subpaths (.git, .codex, .agents, rules)",
        holds: unprotected.is_empty(),
        how: if unprotected.is_empty() {
            format!(
                "read-only bind mounts ({} here)",
                applied.read_only_subpaths.len()
            )
        } else {
            format!("left writable: {}", unprotected.join(", "))
        },
    });
    let too_wide = crate::sandbox_state::start_directory_too_wide(&settings.cwd);
    let unwritable = unwritable_start_directory(settings);
    rows.push(Row {
        protection: "the start directory",
        holds: unwritable.is_none(),
        how: match (too_wide, unwritable) {
            (true, _) => format!(
                "{} is / or your home directory: not writable by default (pass --writable-root \
                 to make it so)",
                settings.cwd.display()
            ),
            (false, Some(why)) => why,
            (false, None) => format!("{} is writable", settings.cwd.display()),
        },
    });
    rows
}

/// Why commands cannot write the start directory (the default writable
/// root) although the sandbox would let them: the server's own user cannot.
pub fn unwritable_start_directory(settings: &Settings) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if settings.sandbox != crate::config::SandboxMode::WorkspaceWrite {
        return None;
    }
    let writable = nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        &settings.cwd,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    );
    if writable.is_ok() {
        return None;
    }
    let meta = std::fs::metadata(&settings.cwd).ok()?;
    Some(format!(
        "the working directory {} is not writable by uid {} (mode {:04o}, owner {}): commands \
         cannot write there; in the image, run it with `--user \"$(id -u):$(id -g)\"`",
        settings.cwd.display(),
        nix::unistd::geteuid(),
        meta.mode() & 0o7777,
        meta.uid()
    ))
}

/// Whether the default policy can be enforced.
pub fn enforceable(probe: &Probe) -> bool {
    !matches!(probe, Probe::Refused(_))
}

/// The table as text.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        out.push_str(&format!(
            "{} {}: {}\n",
            if row.holds { "ok  " } else { "GAP " },
            row.protection,
            row.how
        ));
    }
    out
}

/// The exec check's row: a real call of the default sandbox with the
/// check on (Bash execs itself without the wrapper, under the launcher,
/// the listener served by `escalate::exec_check`), which holds when that
/// exec was judged and ran. It fails where the kernel has no user notification, or
/// where the server cannot read a sandboxed process's memory (neither
/// `process_vm_readv` nor `/proc/<pid>/mem`): every exec is then refused,
/// and the row says why.
pub fn exec_check_row(launcher: &Launcher, settings: &Settings, spec: &SandboxSpec) -> Row {
    const PROTECTION: &str = "rules for execs from any process (the exec check)";
    if settings.exec_check == crate::config::ExecCheckMode::BashOnly {
        return Row {
            protection: PROTECTION,
            holds: false,
            how: "off (--exec-check bash-only): only the programs Bash executes are judged".into(),
        };
    }
    match exec_check_probe(launcher, settings, spec) {
        Ok(()) => Row {
            protection: PROTECTION,
            holds: true,
            how: "a seccomp user-notification filter on execve/execveat, answered by the server"
                .into(),
        },
        Err(why) => Row {
            protection: PROTECTION,
            holds: false,
            how: format!("every exec in the sandbox fails: {why}"),
        },
    }
}

fn exec_check_probe(
    launcher: &Launcher,
    settings: &Settings,
    spec: &SandboxSpec,
) -> Result<(), String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Lets everything run, counting the execs the check judged.
    #[derive(Default)]
    struct Counting(AtomicUsize);
    impl escalate::Decider for Counting {
        fn decide(&self, _: &escalate::Exec<'_>) -> escalate::Verdict {
            escalate::Verdict::Run
        }
        fn check_sandboxed(&self, _: &escalate::ExecRequest) -> Option<escalate::Verdict> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Some(escalate::Verdict::Run)
        }
    }

    let config = escalate::ShellConfig {
        bash: settings.bash.clone(),
        wrapper: settings.wrapper.clone(),
        launcher: launcher.argv().to_vec(),
        sandbox: Some(serde_json::to_string(spec).map_err(|e| e.to_string())?),
        exec_check: true,
        loopback: None,
        escalation: escalate::EscalationConfig {
            reaper: Some(launcher.reaper()),
            ..Default::default()
        },
        output_limits: settings.output_limits,
        kill_grace: std::time::Duration::from_secs(1),
    };
    let request = escalate::ShellRequest {
        // An exec the wrapper does not make (Bash's own first exec
        // continues unasked).
        command: "unset BASH_EXEC_WRAPPER; exec \"$BASH\" -c 'exit 0'".into(),
        workdir: settings.cwd.clone(),
        login: false,
        timeout: std::time::Duration::from_secs(20),
        env: std::env::var_os("PATH")
            .map(|path| vec![("PATH".into(), path)])
            .unwrap_or_default(),
    };
    let decider = Arc::new(Counting::default());
    let control = escalate::Control {
        cancel: Default::default(),
        timer: Default::default(),
        progress: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let outcome = runtime
        .block_on(escalate::run_shell(
            &config,
            request,
            decider.clone(),
            control,
        ))
        .map_err(|e| crate::errors::chain(&anyhow::Error::from(e)))?;
    let judged = decider.0.load(Ordering::Relaxed);
    match (outcome.exit_code, judged) {
        (0, 1..) => Ok(()),
        (0, 0) => Err("no exec reached the server (the filter was not installed)".into()),
        (code, _) => Err(format!(
            "a sandboxed `exec bash -c 'exit 0'` exited {code}: {}",
            outcome.output.trim()
        )),
    }
}
