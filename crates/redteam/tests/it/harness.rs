//! The harness: a real `codex-exec-mcp-server` (default workspace-write
//! sandbox, Landlock) driven by rmcp's client, with its workspace and an
//! `outside` directory under `target/redteam-tmp/` (not under `/tmp`, which
//! is a writable root of the sandbox), counters of the server's fds and
//! child processes, and, when a test fails, the server's command line and
//! log. The plumbing (spawning, the client, `shell` calls, the failure
//! report) is `test-support`'s, shared with the server's own tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::service::RunningService;
use serde_json::{Value, json};
use test_support::mcp;
use test_support::paths::built as sibling;
use test_support::report::ServerLog;

pub use test_support::client::{Received, Reply};
pub use test_support::mcp::{Shell, eventually};
pub use test_support::paths::bash;
pub use test_support::procs::{processes_with, refused};

/// Rules every test server loads: `true` and `sleep` are allowed (they can
/// write nothing, so a marker file can only come from something else).
pub const RULES: &str = r#"
prefix_rule(pattern = ["true"], decision = "allow")
prefix_rule(pattern = ["sleep"], decision = "allow")
"#;

/// Soft fd limit of the server under test: the usual default of a login
/// session, so fd exhaustion shows up as it would for users.
const SERVER_NOFILE: u64 = 1024;

pub fn server_bin() -> PathBuf {
    sibling("codex-exec-mcp-server")
}

pub fn rogue() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rogue"))
}

/// The server's fds and child processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub fds: usize,
    pub children: usize,
}

/// The MCP client: records every approval question and answers it per its
/// [`Reply`] (`Unsupported`, the default here: it does not declare
/// elicitation, so prompts are denied).
pub type Client = test_support::client::Client;

/// Run before the server starts, with the workspace and the outside
/// directory (e.g. to make the workspace a git repository).
pub type Prepare = Box<dyn FnOnce(&Path, &Path) + Send>;

/// What a test server starts with beyond its rules.
pub struct Options {
    pub reply: Reply,
    pub prepare: Prepare,
    /// Extra server arguments.
    pub args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reply: Reply::Unsupported,
            prepare: Box::new(|_, _| {}),
            args: Vec::new(),
        }
    }
}

/// A running server, its client, and the directories of one test.
pub struct Server {
    pub service: RunningService<RoleClient, Client>,
    /// Printed if the test fails (before `_dir`, which holds it, goes).
    log: ServerLog,
    asked: Received,
    /// The test's directory, kept across [`Server::restart`].
    _dir: tempfile::TempDir,
    _outside_dir: Option<tempfile::TempDir>,
    /// The test's directory (canonical): `work`, `outside`, `home`, … below it.
    pub root: PathBuf,
    /// The server's working directory: a writable root of the sandbox
    /// (unless it is `/` or `$HOME`, see [`Cwd`]).
    pub work: PathBuf,
    /// Not writable inside the sandbox: markers go here.
    pub outside: PathBuf,
    /// The server's `$HOME`.
    pub home: PathBuf,
    /// The server's `$CODEX_HOME` (`None`: unset, `$HOME/.codex`).
    pub codex_home: Option<PathBuf>,
    /// Who the server runs as.
    pub user: As,
    pub pid: u32,
    /// A pidfd of the server process, to kill it without racing pid reuse.
    pidfd: Option<std::os::fd::OwnedFd>,
    /// The server process (also killed when dropped).
    _child: tokio::process::Child,
    setup: Setup,
    /// The HTTP server's address ([`Setup::http`]).
    http: Option<std::net::SocketAddr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // A server started with a controlling terminal or under a wrapper
        // must not outlive the test.
        self.kill();
    }
}

pub async fn start(rules: &str) -> Server {
    Setup::new(rules).start().await
}

/// A server with `options`.
pub async fn start_with(rules: &str, options: Options) -> Server {
    let mut setup = Setup::new(rules)
        .reply(options.reply)
        .prepare(options.prepare);
    for arg in &options.args {
        setup = setup.arg(arg);
    }
    setup.start().await
}

/// [`start`] with extra server arguments.
pub async fn start_with_args(rules: &str, extra: &[&str]) -> Server {
    let mut setup = Setup::new(rules);
    for arg in extra {
        setup = setup.arg(arg);
    }
    setup.start().await
}

/// A server whose binaries (server, wrapper, sandbox launcher) are copies
/// installed in `work/bin`, under a writable root of the sandbox.
pub async fn start_installed_in_work(rules: &str) -> Server {
    Setup::new(rules).installed_in_work().start().await
}

/// `$CODEX_HOME` unless a case says otherwise: beside `home`.
const DEFAULT_CODEX_HOME: &str = "codex";

/// Who the server runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    /// uid 0 (the tests must run as root).
    Root,
    /// uid 65534 when the tests run as root (`setpriv`, with the test's
    /// directories given to it), else the tests' own unprivileged user.
    Unprivileged,
}

impl As {
    /// Why this variant cannot run here (printed by the caller, who then
    /// skips the case), if it cannot.
    pub fn unavailable(self) -> Option<String> {
        let root = nix::unistd::geteuid().is_root();
        match self {
            As::Root if !root => Some(
                "skipped: the root variant needs the tests to run as root (they run as uid {})"
                    .replace("{}", &nix::unistd::geteuid().to_string()),
            ),
            _ => None,
        }
    }

    /// The uid and gid the server gets, when they differ from ours.
    pub fn switch_to(self) -> Option<(u32, u32)> {
        match self {
            As::Unprivileged if nix::unistd::geteuid().is_root() => Some((65534, 65534)),
            _ => None,
        }
    }

    pub fn uid(self) -> u32 {
        self.switch_to()
            .map_or_else(|| nix::unistd::geteuid().as_raw(), |(uid, _)| uid)
    }
}

/// Where the test's directory lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// `target/redteam-tmp/` (outside every writable root).
    Target,
    /// Under `/tmp`, itself a writable root: the workspace is a writable
    /// root nested in another.
    Tmp,
}

/// The server's working directory at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cwd {
    Work,
    Home,
    Slash,
}

/// How a server is started; [`Setup::start`] makes the directories
/// (`work`, `outside`, `home`, `codex/rules/redteam.rules`) and starts it.
#[derive(Debug, Clone)]
pub struct Setup {
    rules: String,
    installed_in_work: bool,
    user: As,
    base: Base,
    /// `work`'s path below the test's directory.
    work: String,
    /// `$CODEX_HOME` below the test's directory; `None`: unset.
    codex_home: Option<String>,
    /// Whether `$CODEX_HOME` is made before the server starts.
    codex_home_exists: bool,
    cwd: Cwd,
    args: Vec<String>,
    env: Vec<(String, String)>,
    files: Vec<(String, String)>,
    wrap: Vec<String>,
    terminal: Option<PathBuf>,
    /// A file in `outside` the server inherits open for writing at
    /// [`INHERITED_FD`].
    inherit: Option<String>,
    /// How the client answers approval requests.
    reply: Reply,
    /// Serve MCP over Streamable HTTP on a loopback port instead of stdio;
    /// the client sends this bearer token (`Some("")`: none).
    http: Option<String>,
    /// Run once, at the first start, with `work` and `outside`.
    prepare: PrepareOnce,
}

/// A [`Prepare`] shared by the clones of a [`Setup`], run once.
#[derive(Clone, Default)]
struct PrepareOnce(Arc<Mutex<Option<Prepare>>>);

impl std::fmt::Debug for PrepareOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrepareOnce")
    }
}

/// Where [`Setup::inherit`] puts its fd in the server.
pub const INHERITED_FD: i32 = 50;

impl Setup {
    pub fn new(rules: &str) -> Setup {
        Setup {
            rules: rules.to_owned(),
            installed_in_work: false,
            user: As::Root,
            base: Base::Target,
            work: "work".into(),
            codex_home: Some(DEFAULT_CODEX_HOME.into()),
            codex_home_exists: true,
            cwd: Cwd::Work,
            args: Vec::new(),
            env: Vec::new(),
            files: Vec::new(),
            wrap: Vec::new(),
            terminal: None,
            inherit: None,
            reply: Reply::Unsupported,
            prepare: PrepareOnce::default(),
            http: None,
        }
    }

    /// Serves MCP over Streamable HTTP on `127.0.0.1:0` (`--listen`); the
    /// client connects with `token` as its bearer token (`""`: none). How
    /// the server gets its token (`--auth-token-file`, the environment) is
    /// the case's to set.
    pub fn http(mut self, token: &str) -> Self {
        self.http = Some(token.into());
        self
    }

    /// How the client answers approval requests (default: it does not
    /// declare elicitation).
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Run before the server starts with `work` and `outside` (e.g. to
    /// make the workspace a git repository).
    pub fn prepare(mut self, prepare: Prepare) -> Self {
        self.prepare = PrepareOnce(Arc::new(Mutex::new(Some(prepare))));
        self
    }

    /// Starts the server with `outside/NAME` open for writing at fd
    /// [`INHERITED_FD`], not close-on-exec: a stray fd from its client.
    pub fn inherit(mut self, name: &str) -> Self {
        self.inherit = Some(name.into());
        self
    }

    pub fn installed_in_work(mut self) -> Self {
        self.installed_in_work = true;
        self
    }

    /// The server's user. With [`As::Unprivileged`] under root, the test's
    /// directory is handed to uid 65534.
    pub fn user(mut self, user: As) -> Self {
        self.user = user;
        self
    }

    pub fn base(mut self, base: Base) -> Self {
        self.base = base;
        self
    }

    /// `work` at `rel` below the test's directory (e.g. `proj/work`).
    pub fn work_at(mut self, rel: &str) -> Self {
        self.work = rel.into();
        self
    }

    /// `$CODEX_HOME` at `rel` below the test's directory (made, with the
    /// rules, when `exists`); `None`: unset (`$HOME/.codex`, not made).
    pub fn codex_home(mut self, rel: Option<&str>, exists: bool) -> Self {
        self.codex_home = rel.map(String::from);
        self.codex_home_exists = exists;
        self
    }

    pub fn cwd(mut self, cwd: Cwd) -> Self {
        self.cwd = cwd;
        self
    }

    /// A server argument; `{dir}` stands for the test's directory.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// A server environment variable; `{dir}` as in [`Setup::arg`].
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A file written before the server starts, at `rel` below the test's
    /// directory.
    pub fn file(mut self, rel: &str, text: &str) -> Self {
        self.files.push((rel.into(), text.into()));
        self
    }

    /// A program (and arguments) the server is started under, e.g. a
    /// seccomp filter faking a kernel without user namespaces.
    pub fn wrap(mut self, argv: &[&str]) -> Self {
        self.wrap = argv.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Starts the server in a new session whose controlling terminal is
    /// the pseudo-terminal `slave`.
    pub fn terminal(mut self, slave: &Path) -> Self {
        self.terminal = Some(slave.to_path_buf());
        self
    }

    pub async fn start(self) -> Server {
        // `/tmp` is a writable root of the default sandbox: a checkout under it
        // (CI may clone there) must not put the "outside" directories under it.
        let outside_base = outside_base();
        let base = match self.base {
            Base::Target => outside_base.clone(),
            Base::Tmp => PathBuf::from("/tmp"),
        };
        let dir = tempfile::Builder::new()
            .prefix("rt")
            .tempdir_in(&base)
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let work = root.join(&self.work);
        // Under /tmp, "outside" would be writable: it goes elsewhere, with
        // the home directories.
        let outside_dir = match self.base {
            Base::Target => None,
            Base::Tmp => Some(
                tempfile::Builder::new()
                    .prefix("rt-outside")
                    .tempdir_in(&outside_base)
                    .unwrap(),
            ),
        };
        let elsewhere = match &outside_dir {
            Some(d) => d.path().canonicalize().unwrap(),
            None => root.clone(),
        };
        let outside = elsewhere.join("outside");
        let home = elsewhere.join("home");
        for d in [&home, &work, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        let codex_home = self.codex_home.as_ref().map(|rel| match rel.as_str() {
            DEFAULT_CODEX_HOME => elsewhere.join(rel),
            _ => root.join(rel),
        });
        if let Some(codex_home) = codex_home.as_ref().filter(|_| self.codex_home_exists) {
            std::fs::create_dir_all(codex_home.join("rules")).unwrap();
            std::fs::write(codex_home.join("rules/redteam.rules"), &self.rules).unwrap();
        }
        for (rel, text) in &self.files {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text.replace("{dir}", &root.display().to_string())).unwrap();
        }
        if let Some(prepare) = self.prepare.0.lock().unwrap().take() {
            prepare(&work, &outside);
        }
        if self.installed_in_work {
            let bin = work.join("bin");
            std::fs::create_dir(&bin).unwrap();
            for name in [
                "codex-exec-mcp-server",
                "codex-execve-wrapper",
                "codex-sandbox-exec",
            ] {
                std::fs::copy(sibling(name), bin.join(name)).unwrap();
            }
        }
        if let Some((uid, gid)) = self.user.switch_to() {
            chown_tree(&root, uid, gid);
            chown_tree(&elsewhere, uid, gid);
            if let Some(codex_home) = codex_home
                .as_ref()
                .filter(|c| !c.starts_with(&root) && c.exists())
            {
                chown_tree(codex_home, uid, gid);
            }
        }
        let spawned = self
            .spawn(&Dirs {
                root: &root,
                outside: &outside,
                work: &work,
                home: &home,
                codex_home: codex_home.as_deref(),
            })
            .await;
        Server {
            service: spawned.service,
            log: spawned.log,
            asked: spawned.asked,
            _dir: dir,
            _outside_dir: outside_dir,
            root,
            work,
            outside,
            home,
            codex_home,
            user: self.user,
            pid: spawned.pid,
            pidfd: spawned.pidfd,
            _child: spawned.child,
            setup: self,
            http: spawned.http,
        }
    }

    /// The server's command: `subcommand` (e.g. `doctor`) after the
    /// settings; the command line as text for the failure report.
    fn command(&self, dirs: &Dirs<'_>, subcommand: &[&str]) -> (std::process::Command, String) {
        let root = dirs.root;
        let subst = |s: &str| s.replace("{dir}", &root.display().to_string());
        let _ = sibling("codex-execve-wrapper");
        let server = if self.installed_in_work {
            dirs.work.join("bin/codex-exec-mcp-server")
        } else {
            server_bin()
        };
        let mut argv: Vec<String> = self.wrap.clone();
        if let Some((uid, gid)) = self.user.switch_to() {
            argv.extend([
                "setpriv".to_string(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
            ]);
        }
        argv.push(server.display().to_string());
        argv.extend([
            "--bash".to_string(),
            bash().display().to_string(),
            "--sandbox".into(),
            "workspace-write".into(),
        ]);
        argv.extend(self.args.iter().map(|a| subst(a)));
        if self.http.is_some() {
            argv.extend(["--listen".to_string(), "127.0.0.1:0".into()]);
        }
        argv.extend(subcommand.iter().map(|a| a.to_string()));
        let cwd = match self.cwd {
            Cwd::Work => dirs.work.to_path_buf(),
            Cwd::Home => dirs.home.to_path_buf(),
            Cwd::Slash => PathBuf::from("/"),
        };
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&cwd)
            .env("HOME", dirs.home)
            .env_remove("TMPDIR")
            .env("RUST_LOG", "info,rmcp=warn");
        match dirs.codex_home {
            Some(codex_home) => cmd.env("CODEX_HOME", codex_home),
            None => cmd.env_remove("CODEX_HOME"),
        };
        for (k, v) in &self.env {
            cmd.env(k, subst(v));
        }
        let cmdline = format!("(cd {}; {})", cwd.display(), argv.join(" "));
        (cmd, cmdline)
    }

    /// Starts the process and its client.
    async fn spawn(&self, dirs: &Dirs<'_>) -> Spawned {
        let log = dirs.root.join(format!(
            "server-{}.log",
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let (cmd, cmdline) = self.command(dirs, &[]);
        let mut cmd = tokio::process::Command::from(cmd);
        let inherited = self.inherit.as_ref().map(|name| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(dirs.outside.join(name))
                .unwrap()
        });
        let inherited_fd = inherited.as_ref().map(|f| {
            use std::os::fd::AsRawFd;
            f.as_raw_fd()
        });
        let terminal = self
            .terminal
            .as_ref()
            .map(|slave| std::ffi::CString::new(slave.as_os_str().as_encoded_bytes()).unwrap());
        // SAFETY: setrlimit, setsid and open are async-signal-safe and the
        // closure allocates nothing (the terminal's path was made before).
        unsafe {
            cmd.pre_exec(move || {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                    lim.rlim_cur = lim.rlim_max.min(SERVER_NOFILE);
                    libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                }
                if let Some(fd) = inherited_fd
                    && libc::dup2(fd, INHERITED_FD) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(slave) = &terminal {
                    // A session leader without a terminal acquires the
                    // first one it opens; the fd itself closes at exec.
                    if libc::setsid() < 0
                        || libc::open(slave.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) < 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let cwd = cmd
            .as_std()
            .get_current_dir()
            .map_or_else(|| dirs.work.to_path_buf(), Path::to_path_buf);
        let log = ServerLog::new(cmdline, &cwd, &log);
        let (client, asked, _) = Client::named("redteam", self.reply);
        if let Some(token) = &self.http {
            return spawn_http(cmd, client, asked, token, log).await;
        }
        let (service, child) = mcp::spawn_stdio(cmd, &log, client, None).await;
        let pid = child.id().expect("server pid");
        Spawned {
            service,
            asked,
            // Opened while the child cannot have been reaped: we hold it.
            pidfd: pidfd_open(pid),
            pid,
            child,
            log,
            http: None,
        }
    }
}

/// The directories a server command names.
struct Dirs<'a> {
    root: &'a Path,
    outside: &'a Path,
    work: &'a Path,
    home: &'a Path,
    codex_home: Option<&'a Path>,
}

struct Spawned {
    service: RunningService<RoleClient, Client>,
    asked: Received,
    pid: u32,
    pidfd: Option<std::os::fd::OwnedFd>,
    child: tokio::process::Child,
    log: ServerLog,
    http: Option<std::net::SocketAddr>,
}

/// Starts `cmd` as an HTTP server, waits for its "listening" log line and
/// connects `client` with `token`.
async fn spawn_http(
    mut cmd: tokio::process::Command,
    client: Client,
    asked: Received,
    token: &str,
    log: ServerLog,
) -> Spawned {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.stderr())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", log.cmdline()));
    let pid = child.id().expect("server pid");
    let listening = || test_support::wire::listening_addr(&log.text());
    if !eventually(30, || listening().is_some()).await {
        panic!("the server never listened\n{}", log.describe());
    }
    let addr = listening().unwrap();
    let token = (!token.is_empty()).then_some(token);
    match mcp::connect_http(&format!("http://{addr}/mcp"), token, client, None).await {
        Ok(service) => Spawned {
            service,
            asked,
            // Opened while the child cannot have been reaped: we hold it.
            pidfd: pidfd_open(pid),
            pid,
            child,
            log,
            http: Some(addr),
        },
        Err(e) => panic!("initialize failed: {e}\n{}", log.describe()),
    }
}

/// Numbers the server logs of one test directory (one per start).
static SERIAL: AtomicUsize = AtomicUsize::new(0);

/// Where test directories outside every writable root go:
/// `target/redteam-tmp/`, or `/var/tmp/codex-redteam-tmp` for a checkout
/// under `/tmp` (a writable root of the default sandbox: CI may clone
/// there).
pub fn outside_base() -> PathBuf {
    test_support::paths::outside_tmp(
        &test_support::paths::project_root().join("target/redteam-tmp"),
        "codex-redteam-tmp",
    )
}

/// A pidfd for our child `pid` (opened while the child cannot have been
/// reaped: its transport is alive).
fn pidfd_open(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    // SAFETY: a new fd, owned by nobody else.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Hands `dir` and everything below it to `uid`:`gid`.
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).unwrap();
    if dir.is_dir() && !dir.is_symlink() {
        for entry in std::fs::read_dir(dir).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

impl Server {
    /// Stops this server (SIGKILL: what it read at start is all that
    /// matters) and starts it again with the same directories, settings
    /// and environment.
    pub async fn restart(mut self) -> Server {
        self.kill();
        let spawned = self.setup.spawn(&self.dirs()).await;
        drop(std::mem::replace(&mut self.service, spawned.service));
        self.asked = spawned.asked;
        self.pid = spawned.pid;
        self.pidfd = spawned.pidfd;
        self._child = spawned.child;
        self.log = spawned.log;
        self.http = spawned.http;
        self
    }

    /// The HTTP server's address ([`Setup::http`]).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.http.expect("an HTTP server")
    }

    fn dirs(&self) -> Dirs<'_> {
        Dirs {
            root: &self.root,
            outside: &self.outside,
            work: &self.work,
            home: &self.home,
            codex_home: self.codex_home.as_deref(),
        }
    }

    /// `codex-exec-mcp-server doctor` with this server's settings, user,
    /// environment and working directory: its exit status and stdout.
    pub fn doctor(&self) -> (i32, String) {
        let (mut cmd, cmdline) = self.setup.command(&self.dirs(), &["doctor"]);
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmdline}: {e}"));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// SIGKILLs the server process (through its pidfd: never another
    /// process that got its pid).
    pub fn kill(&self) {
        if let Some(fd) = &self.pidfd {
            use std::os::fd::AsRawFd;
            // SAFETY: pidfd_send_signal takes our pidfd, a signal number and
            // null info; it reads nothing else.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
    }

    /// A command run outside the sandbox as the server's user (for victims
    /// and controls).
    pub fn outside_command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        if let Some((uid, gid)) = self.user.switch_to() {
            use std::os::unix::process::CommandExt;
            // std drops the supplementary groups when root changes its uid.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Raw `shell` call: the structured result, or the protocol error.
    pub async fn call(
        &self,
        command: &str,
        workdir: &Path,
        timeout_ms: u64,
    ) -> Result<Value, String> {
        let arguments = json!({"command": command, "workdir": workdir, "timeout_ms": timeout_ms});
        let result = mcp::call_shell(&self.service, arguments, None)
            .await
            .map_err(|e| e.to_string())?;
        match (result.is_error, result.structured_content) {
            (Some(false), Some(s)) => Ok(s),
            (_, s) => Err(format!("{:?} {s:?} {:?}", result.is_error, result.content)),
        }
    }

    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// The size of the server's log so far.
    pub fn log_len(&self) -> u64 {
        self.log.len()
    }

    /// Messages of the approval questions asked so far.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// Runs `command` through the `shell` tool in `workdir`.
    pub async fn shell_in(&self, command: &str, workdir: &Path) -> Shell {
        let arguments = json!({"command": command, "workdir": workdir, "timeout_ms": 120_000});
        mcp::shell(&self.service, arguments).await
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

/// Whether the sandbox can keep read-only subpaths (`.git`) read-only on
/// this machine: it needs a mount namespace (root, or unprivileged user
/// namespaces). Found by running the real launcher on a probe directory.
pub fn protects_read_only_subpaths() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let ro = root.join("ro");
    std::fs::create_dir(&ro).unwrap();
    let spec = json!({"writable_roots": [root], "read_only_subpaths": [ro], "network": false});
    let probe = ro.join("probe");
    let _ = std::process::Command::new(sibling("codex-sandbox-exec"))
        .args(["--spec", &spec.to_string(), "--", "/bin/sh", "-c"])
        .arg(format!(": > '{}'", probe.display()))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    !probe.exists()
}

/// Prints why a case is skipped and returns true when the machine cannot
/// keep read-only subpaths read-only.
pub fn skip_without_read_only_subpaths(case: &str) -> bool {
    if protects_read_only_subpaths() {
        return false;
    }
    eprintln!(
        "skipped {case}: no mount namespace here (not root, unprivileged user namespaces disabled), \
         so the sandbox cannot keep .git read-only and git is never escalated in a workspace"
    );
    true
}
