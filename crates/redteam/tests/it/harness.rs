//! The harness: a real `codex-exec-mcp-server` (default workspace-write
//! sandbox, Landlock) driven by rmcp's client, with its workspace and an
//! `outside` directory under `target/redteam-tmp/` (not under `/tmp`, which
//! is a writable root of the sandbox), counters of the server's fds and
//! child processes, and, when a test fails, the server's command line and
//! log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

/// Rules every test server loads: `true` and `sleep` are allowed (they can
/// write nothing, so a marker file can only come from something else).
pub const RULES: &str = r#"
prefix_rule(pattern = ["true"], decision = "allow")
prefix_rule(pattern = ["sleep"], decision = "allow")
"#;

/// Soft fd limit of the server under test: the usual default of a login
/// session, so fd exhaustion shows up as it would for users.
const SERVER_NOFILE: u64 = 1024;

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/<profile>/`, found from this test executable
/// (`target/<profile>/deps/it-HASH`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable under target/<profile>/deps")
        .to_path_buf()
}

/// A binary of another crate of the workspace, built beside this test.
fn sibling(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

pub fn server_bin() -> PathBuf {
    sibling("codex-exec-mcp-server")
}

pub fn rogue() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rogue"))
}

pub fn bash() -> PathBuf {
    if let Some(path) = std::env::var_os("CODEX_TEST_BASH") {
        return PathBuf::from(path);
    }
    let path = project_root().join("target/dist/vendor/x86_64-unknown-linux-musl/bash");
    assert!(
        path.is_file(),
        "patched bash missing at {}: run `cargo xtask bash` first",
        path.display()
    );
    path
}

/// The server's fds and child processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub fds: usize,
    pub children: usize,
}

/// A running server, its client, and the directories of one test.
pub struct Server {
    pub service: RunningService<RoleClient, ()>,
    _dir: tempfile::TempDir,
    /// The server's working directory: a writable root of the sandbox.
    pub work: PathBuf,
    /// Not writable inside the sandbox: markers go here.
    pub outside: PathBuf,
    pub pid: u32,
    log: PathBuf,
    cmdline: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- server command: {}\n--- cwd: {}\n--- server stderr:\n{}",
                self.cmdline,
                self.work.display(),
                self.log_text()
            );
        }
    }
}

/// One `shell` result.
#[derive(Debug)]
pub struct Shell {
    pub exit_code: i64,
    pub output: String,
}

impl Shell {
    /// The value of the first `key=` line.
    pub fn value(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}=");
        self.output
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    /// Every value of `key=` lines.
    pub fn values(&self, key: &str) -> Vec<&str> {
        let prefix = format!("{key}=");
        self.output
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    }
}

pub async fn start(rules: &str) -> Server {
    start_from(rules, false, &[]).await
}

/// [`start`] with extra server arguments.
pub async fn start_with_args(rules: &str, extra: &[&str]) -> Server {
    start_from(rules, false, extra).await
}

/// A server whose binaries (server, wrapper, sandbox launcher) are copies
/// installed in `work/bin`, under a writable root of the sandbox.
pub async fn start_installed_in_work(rules: &str) -> Server {
    start_from(rules, true, &[]).await
}

async fn start_from(rules: &str, installed_in_work: bool, extra: &[&str]) -> Server {
    // `/tmp` is a writable root of the default sandbox: a checkout under it
    // (CI may clone there) must not put the "outside" directories under it.
    let base = project_root().join("target/redteam-tmp");
    let base = if base.starts_with("/tmp") {
        std::path::PathBuf::from("/var/tmp/codex-redteam-tmp")
    } else {
        base
    };
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("rt")
        .tempdir_in(&base)
        .unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let codex_home = dir_path.join("codex");
    let home = dir_path.join("home");
    let work = dir_path.join("work");
    let outside = dir_path.join("outside");
    for d in [&codex_home.join("rules"), &home, &work, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(codex_home.join("rules/redteam.rules"), rules).unwrap();
    let log = dir_path.join("server.log");
    let _ = sibling("codex-execve-wrapper");
    let server = if installed_in_work {
        let bin = work.join("bin");
        std::fs::create_dir(&bin).unwrap();
        for name in [
            "codex-exec-mcp-server",
            "codex-execve-wrapper",
            "codex-sandbox-exec",
        ] {
            std::fs::copy(sibling(name), bin.join(name)).unwrap();
        }
        bin.join("codex-exec-mcp-server")
    } else {
        server_bin()
    };
    let mut args = vec![
        "--bash".to_string(),
        bash().display().to_string(),
        "--sandbox".into(),
        "workspace-write".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut cmd = tokio::process::Command::new(&server);
    cmd.args(&args)
        .current_dir(&work)
        .env("CODEX_HOME", &codex_home)
        .env("HOME", &home)
        .env_remove("TMPDIR")
        .env("RUST_LOG", "info,rmcp=warn");
    // SAFETY: setrlimit is async-signal-safe and the closure allocates
    // nothing.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur = lim.rlim_max.min(SERVER_NOFILE);
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            Ok(())
        });
    }
    let cmdline = format!("{} {}", server.display(), args.join(" "));
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let pid = transport.id().expect("server pid");
    let service = match ().serve(transport).await {
        Ok(service) => service,
        Err(e) => panic!(
            "initialize failed: {e}\ncommand: {cmdline}\nstderr:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    };
    Server {
        service,
        _dir: dir,
        work,
        outside,
        pid,
        log,
        cmdline,
    }
}

impl Server {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `command` through the `shell` tool in `workdir`.
    pub async fn shell_in(&self, command: &str, workdir: &Path) -> Shell {
        let arguments = json!({"command": command, "workdir": workdir, "timeout_ms": 120_000});
        let params: CallToolRequestParams =
            serde_json::from_value(json!({"name": "shell", "arguments": arguments})).unwrap();
        let result = self
            .service
            .call_tool(params)
            .await
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        assert_eq!(result.is_error, Some(false), "{command}: {result:?}");
        let s: &Value = result.structured_content.as_ref().expect("structured");
        Shell {
            exit_code: s["exit_code"].as_i64().unwrap(),
            output: s["output"].as_str().unwrap().to_string(),
        }
    }

    pub async fn shell(&self, command: &str) -> Shell {
        self.shell_in(command, &self.work.clone()).await
    }

    /// Runs the rogue with `args` (already shell-quoted where needed).
    pub async fn rogue(&self, args: &str) -> Shell {
        let r = self.shell(&format!("{} {args}", rogue().display())).await;
        assert!(
            r.value("rogue-error").is_none(),
            "rogue {args} failed:\n{}",
            r.output
        );
        r
    }

    pub fn counts(&self) -> Counts {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count())
            .unwrap_or(0);
        let children = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .map(|tasks| {
                tasks
                    .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
                    .map(|c| c.split_whitespace().count())
                    .sum()
            })
            .unwrap_or(0);
        Counts { fds, children }
    }

    fn fd_listing(&self) -> String {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", self.pid)) else {
            return String::new();
        };
        let mut links: Vec<String> = dir
            .filter_map(|e| {
                let e = e.ok()?;
                Some(format!(
                    "{} -> {}",
                    e.file_name().to_string_lossy(),
                    std::fs::read_link(e.path()).ok()?.display()
                ))
            })
            .collect();
        links.sort();
        links.join("\n")
    }

    /// A warmed-up server's counts: after one normal call, once no child is
    /// left.
    pub async fn baseline(&self) -> Counts {
        let r = self.shell("echo warm").await;
        assert_eq!(r.output, "warm\n", "{r:?}");
        self.settle(Counts {
            fds: usize::MAX,
            children: 0,
        })
        .await
    }

    /// Waits (bounded) until the counts are back to `base` or below.
    pub async fn settle(&self, base: Counts) -> Counts {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.counts();
            if now.fds <= base.fds && now.children <= base.children {
                return now;
            }
            if Instant::now() > deadline {
                panic!(
                    "server {} did not settle: {now:?}, baseline {base:?}\nfds:\n{}",
                    self.pid,
                    self.fd_listing()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What every case ends with: no marker outside, a normal call works,
    /// and no fd or process was leaked.
    pub async fn assert_contained(&self, base: Counts, markers: &[&Path]) {
        for m in markers {
            assert!(
                !m.exists(),
                "{} exists: something ran outside the sandbox",
                m.display()
            );
        }
        let r = self.shell("echo still-serving").await;
        assert_eq!(
            (r.exit_code, r.output.as_str()),
            (0, "still-serving\n"),
            "{r:?}"
        );
        self.settle(base).await;
    }
}

/// Proves that `marker` is writable from outside the sandbox by creating
/// and removing it here.
pub fn assert_writable_outside(marker: &Path) {
    std::fs::write(marker, b"probe").unwrap();
    std::fs::remove_file(marker).unwrap();
}

/// Whether `output` shows a write refused by the sandbox: `EROFS` from the
/// read-only view of the filesystem, or `EACCES` from Landlock where there
/// is no mount namespace.
pub fn refused(output: &str) -> bool {
    output.contains("Read-only file system") || output.contains("Permission denied")
}

/// Pids (other than ours) whose NUL-separated command line starts with
/// `prefix`, seen from outside the sandbox.
pub fn processes_with(prefix: &[u8]) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(prefix))
        })
        .collect()
}

/// Polls `condition` every 20 ms until it holds or `secs` pass.
pub async fn eventually(secs: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
