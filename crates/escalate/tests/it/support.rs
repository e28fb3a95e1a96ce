//! Shared test plumbing: the real patched Bash and wrapper, and a decider
//! driven by program basenames that records every request it sees.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use escalate::{
    Control, Decider, EscalationConfig, Exec, ExecRequest, Outcome, ShellConfig, ShellRequest,
    Verdict,
};

/// The patched Bash built by `cargo xtask bash`.
pub fn bash() -> PathBuf {
    if let Some(path) = std::env::var_os("CODEX_TEST_BASH") {
        return path.into();
    }
    let path = target_dir().join("dist/vendor/x86_64-unknown-linux-musl/bash");
    assert!(
        path.is_file(),
        "patched Bash not found at {}: run `cargo xtask bash` first",
        path.display()
    );
    path
}

/// `codex-execve-wrapper` from this build (`cargo build --workspace`).
pub fn wrapper() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("codex-execve-wrapper");
    assert!(
        path.is_file(),
        "wrapper not found at {}: run `cargo build -p execve-wrapper` first",
        path.display()
    );
    path
}

fn target_dir() -> PathBuf {
    // target/<profile>/deps/it-<hash>
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Escalates programs whose basename is listed, denies others listed,
/// runs the rest; records every request.
#[derive(Default)]
pub struct TestDecider {
    pub escalate: Vec<&'static str>,
    pub deny: Vec<(&'static str, &'static str)>,
    pub seen: Mutex<Vec<ExecRequest>>,
    /// Basenames of the requests decided on a worker thread (`decide`)
    /// rather than at once (`decide_now`, from the inline request).
    pub deferred: Mutex<Vec<String>>,
    /// What `asks_about` returns: `None` asks about everything.
    pub ask: Option<Vec<&'static str>>,
}

impl TestDecider {
    pub fn escalating(names: &[&'static str]) -> Arc<TestDecider> {
        Arc::new(TestDecider {
            escalate: names.to_vec(),
            ..Default::default()
        })
    }

    pub fn requests_for(&self, name: &str) -> Vec<ExecRequest> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| basename(&r.file) == name.as_bytes())
            .cloned()
            .collect()
    }
}

fn basename(file: &OsString) -> &[u8] {
    Path::new(file)
        .file_name()
        .map(|n| n.as_bytes())
        .unwrap_or(b"")
}

impl Decider for TestDecider {
    fn asks_about(&self) -> Option<Vec<&str>> {
        self.ask.clone()
    }

    fn decide_now(&self, exec: &Exec<'_>) -> Option<Verdict> {
        Some(self.verdict(exec.request))
    }

    fn decide(&self, exec: &Exec<'_>) -> Verdict {
        let request = exec.request;
        let name = String::from_utf8_lossy(basename(&request.file)).into_owned();
        self.deferred.lock().unwrap().push(name);
        self.verdict(request)
    }
}

impl TestDecider {
    fn verdict(&self, request: &ExecRequest) -> Verdict {
        self.seen.lock().unwrap().push(request.clone());
        let name = basename(&request.file);
        if let Some((_, reason)) = self.deny.iter().find(|(n, _)| n.as_bytes() == name) {
            return Verdict::Deny(reason.to_string());
        }
        if self.escalate.iter().any(|n| n.as_bytes() == name) {
            return Verdict::Escalate;
        }
        Verdict::Run
    }
}

pub fn config() -> ShellConfig {
    ShellConfig {
        bash: bash(),
        wrapper: wrapper(),
        launcher: Vec::new(),
        sandbox: None,
        exec_check: false,
        loopback: None,
        escalation: EscalationConfig::default(),
        output_limits: Default::default(),
        kill_grace: Duration::from_millis(500),
    }
}

pub fn request(command: &str, workdir: &Path) -> ShellRequest {
    ShellRequest {
        command: command.into(),
        workdir: workdir.into(),
        login: false,
        timeout: Duration::from_secs(60),
        env: vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("LC_ALL".into(), "C".into()),
        ],
    }
}

pub fn control() -> Control {
    Control {
        cancel: Default::default(),
        timer: Default::default(),
        progress: None,
    }
}

/// Runs `command` in a fresh runtime and returns how it ended.
pub fn run(command: &str, workdir: &Path, decider: Arc<TestDecider>) -> Outcome {
    run_with(config(), request(command, workdir), decider, control())
}

pub fn run_with(
    config: ShellConfig,
    request: ShellRequest,
    decider: Arc<TestDecider>,
    control: Control,
) -> Outcome {
    runtime()
        .block_on(escalate::run_shell(&config, request, decider, control))
        .expect("run_shell failed")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Pids whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && cmdline
                .windows(marker.len())
                .any(|w| w == marker.as_bytes())
        {
            pids.push(pid);
        }
    }
    pids
}

/// Waits (bounded) until `cond` holds; panics with `what` otherwise.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unique marker for process-table searches.
pub fn marker() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}{:04}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
