//! The sandbox is the boundary (issue 13): a hostile command with only the
//! `shell` tool and the default workspace-write sandbox tries every way out
//! that is not a write: UNIX sockets, signals, `/proc`, terminals, metadata
//! writes, a root server's capabilities, processes that outlive their
//! call, rules files the sandbox could write, a start directory made
//! writable; and a few more found by reading the sandbox's code.
//!
//! Each case runs with the server as root and as an unprivileged user
//! ([`As`]; the root variant is skipped, saying so, when the tests do not
//! run as root), most also on a faked kernel without namespaces
//! ([`Kernel::NoNamespaces`]: a seccomp filter makes `unshare(2)` fail, as
//! with Ubuntu's AppArmor restriction or Docker's default profile). Each
//! attack is first run outside the sandbox as a control (it works there),
//! then from inside, and the effect is checked from outside: a listener
//! that received nothing, a process still alive, a file unchanged, no
//! process left, no escalation granted after a restart.

use std::future::Future;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::harness::{As, Base, Cwd, INHERITED_FD, Server, Setup, eventually, processes_with};

/// Rules of these cases: only `true` escalates (it writes nothing).
const RULES: &str = r#"prefix_rule(pattern = ["true"], decision = "allow")"#;

/// The rule a hostile command would like the server to load: `touch`
/// escalated, so it can write anywhere.
const EVIL_RULE: &str = r#"prefix_rule(pattern = ["touch"], decision = "allow")"#;

/// Installs a seccomp filter making `unshare(2)` (272 on x86_64) fail with
/// `EPERM`, as on a kernel or container without (unprivileged) user
/// namespaces, then execs `argv[1..]`.
pub(crate) const NO_NAMESPACES: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def insn(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
# ld [nr]; jeq 272 ? errno(EPERM) : allow
prog = insn(0x20, 0) + insn(0x15, 272, 0, 1) + insn(0x06, 0x00050000 | 1) + insn(0x06, 0x7FFF0000)
buf = ctypes.create_string_buffer(prog, len(prog))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(4, ctypes.addressof(buf))
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, ctypes.get_errno()
assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()
os.execvp(sys.argv[1], sys.argv[1:])
"#;

pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// The kernel the server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// This one: namespaces, Landlock ABI 7 here.
    Namespaces,
    /// No namespaces can be created (faked, see [`NO_NAMESPACES`]).
    NoNamespaces,
}

/// One `#[tokio::test]` per variant of a case `async fn case(As, Kernel)`.
macro_rules! variants {
    ($case:ident: $($variant:ident => ($user:expr, $kernel:expr)),+ $(,)?) => {
        mod $case {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $variant() {
                    run(stringify!($case), $user, $kernel, super::$case).await
                }
            )+
        }
    };
}

/// The four usual variants.
macro_rules! everywhere {
    ($($case:ident),+ $(,)?) => {
        $(variants!($case:
            as_root => (As::Root, Kernel::Namespaces),
            unprivileged => (As::Unprivileged, Kernel::Namespaces),
            as_root_without_namespaces => (As::Root, Kernel::NoNamespaces),
            unprivileged_without_namespaces => (As::Unprivileged, Kernel::NoNamespaces),
        );)+
    };
}

async fn run<F, Fut>(name: &str, user: As, kernel: Kernel, case: F)
where
    F: FnOnce(As, Kernel) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(why) = user.unavailable() {
        say(&format!("{name} ({user:?}, {kernel:?}): {why}"));
        return;
    }
    if kernel == Kernel::NoNamespaces && !Path::new(PYTHON).is_file() {
        panic!("{PYTHON} missing: run `cargo xtask setup` (installs python3)");
    }
    case(user, kernel).await
}

/// A line on stderr that the test harness does not capture: a skipped
/// case says so even when it passes.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn setup(rules: &str, user: As, kernel: Kernel) -> Setup {
    let setup = Setup::new(rules).user(user);
    match kernel {
        Kernel::Namespaces => setup,
        Kernel::NoNamespaces => setup.wrap(&[PYTHON, "-c", NO_NAMESPACES]),
    }
}

/// Starts `setup` and checks that the kernel is the one asked for: on the
/// faked kernel, `doctor` must see no namespaces.
async fn start(setup: Setup, kernel: Kernel) -> Server {
    let s = setup.start().await;
    if kernel == Kernel::NoNamespaces {
        let (_, doctor) = s.doctor();
        assert!(
            doctor.contains("cannot create namespaces")
                || doctor.contains("not refused: no namespaces here"),
            "the faked kernel still has namespaces:\n{doctor}"
        );
    }
    s
}

fn probe() -> String {
    env!("CARGO_BIN_EXE_probe").to_string()
}

/// Digits no other case (or variant) uses, all of one length, for names
/// and `sleep 1000.DIGITS` processes the test looks for (`7` first: the
/// other suites' sleeps are `1000.25`, `1000.5`).
fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "7{:05}{:03}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The command line of `sleep 1000.DIGITS`, as `/proc/PID/cmdline` has it.
fn sleep_pattern(digits: &str) -> String {
    format!("sleep\x001000.{digits}\x00")
}

/// A directory under `/tmp` (a writable root) owned by the server's user.
fn tmp_dir(s: &Server) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("rt-tmp").tempdir().unwrap();
    let uid = s.user.uid();
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Runs `script` with Bash outside the sandbox, as the server's user: the
/// control that proves an attack works where nothing stops it.
fn control(s: &Server, script: &str) -> String {
    let out = s
        .outside_command("bash")
        .args(["-c", script])
        .current_dir(&s.outside)
        .env("SSH_AUTH_SOCK", s.outside.join("agent.sock"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Every value of `key` in `output` is a refusal (`err:...`), and there is
/// at least one.
fn all_refused(output: &str, key: &str) {
    let prefix = format!("{key}=");
    let values: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect();
    assert!(!values.is_empty(), "no {key}= line:\n{output}");
    for v in &values {
        assert!(
            v.starts_with("err:"),
            "{key}={v} was not refused:\n{output}"
        );
    }
}

// ---------------------------------------------------------------------------
// 1. UNIX sockets outside the sandbox

/// Stream and datagram sockets the test listens on, under `/tmp` (a
/// writable root) and outside every root, an abstract one, and the one
/// `SSH_AUTH_SOCK` names.
struct Listeners {
    streams: Vec<(String, UnixListener)>,
    datagrams: Vec<(String, UnixDatagram)>,
    _tmp: tempfile::TempDir,
    script: String,
}

impl Listeners {
    fn open(s: &Server) -> Listeners {
        use std::os::linux::net::SocketAddrExt;
        let tmp = tmp_dir(s);
        let open_to_all =
            |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut streams = Vec::new();
        for path in [
            s.outside.join("s.sock"),
            tmp.path().join("s.sock"),
            s.outside.join("agent.sock"),
        ] {
            let l = UnixListener::bind(&path).unwrap();
            l.set_nonblocking(true).unwrap();
            open_to_all(&path);
            streams.push((path.display().to_string(), l));
        }
        let abstract_name = format!("codex-redteam-{}", unique());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap();
        let l = UnixListener::bind_addr(&addr).unwrap();
        l.set_nonblocking(true).unwrap();
        streams.push((format!("@{abstract_name}"), l));
        let mut datagrams = Vec::new();
        for path in [s.outside.join("d.sock"), tmp.path().join("d.sock")] {
            let d = UnixDatagram::bind(&path).unwrap();
            d.set_nonblocking(true).unwrap();
            open_to_all(&path);
            datagrams.push((path.display().to_string(), d));
        }
        let p = probe();
        let script = format!(
            "{p} connect {s0}; {p} connect {s1}; {p} connect \"$SSH_AUTH_SOCK\"; \
             {p} connect-abstract {abstract_name}; \
             {p} sendto dgram {d0}; {p} sendto dgram {d1}\n",
            s0 = streams[0].0,
            s1 = streams[1].0,
            d0 = datagrams[0].0,
            d1 = datagrams[1].0,
        );
        Listeners {
            streams,
            datagrams,
            _tmp: tmp,
            script,
        }
    }

    /// What reached the listeners since the last call.
    fn received(&self) -> Vec<String> {
        let mut got = Vec::new();
        for (name, l) in &self.streams {
            while let Ok((mut conn, _)) = l.accept() {
                conn.set_nonblocking(false).unwrap();
                let mut text = String::new();
                let _ = conn.read_to_string(&mut text);
                got.push(format!("{name}: connection ({text})"));
            }
        }
        for (name, d) in &self.datagrams {
            let mut buf = [0u8; 512];
            while let Ok(n) = d.recv(&mut buf) {
                got.push(format!(
                    "{name}: datagram {}",
                    String::from_utf8_lossy(&buf[..n])
                ));
            }
        }
        got
    }
}

/// Landlock's ABI on this kernel.
fn landlock_abi() -> i64 {
    sys::landlock_abi()
}

async fn unix_sockets(user: As, kernel: Kernel) {
    let s = start(
        setup(RULES, user, kernel).env("SSH_AUTH_SOCK", "{dir}/outside/agent.sock"),
        kernel,
    )
    .await;
    let base = s.baseline().await;
    let l = Listeners::open(&s);
    let out = control(&s, &l.script);
    assert_eq!(l.received().len(), 4 + 4, "control:\n{out}");

    // Through the inherited session socket too: its peer is the server.
    let script = format!(
        "{}{p} sendto-fd \"$CODEX_ESCALATE_SOCKET\" {d0}\n",
        l.script,
        p = probe(),
        d0 = l.datagrams[0].0
    );
    let r = s.shell(&script).await;
    all_refused(&r.output, "connect");
    all_refused(&r.output, "connect-abstract");
    all_refused(&r.output, "socket-dgram");
    assert_eq!(l.received(), Vec::<String>::new(), "{}", r.output);

    // A socket made inside the sandbox: Landlock ABI 9 lets commands reach
    // it; below, the seccomp filter refuses every connect(2).
    let tmp = tmp_dir(&s);
    let own = tmp.path().join("own.sock");
    let r = s
        .shell(&format!("{} self-socket {}", probe(), own.display()))
        .await;
    if landlock_abi() >= 9 {
        assert_eq!(r.value("self-socket"), Some("ok"), "{}", r.output);
    } else {
        assert_eq!(r.value("self-socket"), Some("err:EACCES"), "{}", r.output);
        say(&format!(
            "unix_sockets: skipped: connecting to a socket made inside the sandbox needs \
             Landlock ABI 9 (this kernel: {}); today it is refused",
            landlock_abi()
        ));
    }
    s.assert_contained(base, &[]).await;
}

/// `socket(AF_UNIX, SOCK_RAW)` is a datagram socket too (the kernel turns
/// one into the other): it must be refused like `SOCK_DGRAM`, or it sends
/// to any named datagram socket outside (`/dev/log`, a service's socket).
async fn raw_unix_sockets_are_datagram_sockets(user: As, kernel: Kernel) {
    let s = start(setup(RULES, user, kernel), kernel).await;
    let base = s.baseline().await;
    let l = Listeners::open(&s);
    let p = probe();
    let script = format!(
        "{p} sendto raw {d0}; {p} sendto raw {d1}\n",
        d0 = l.datagrams[0].0,
        d1 = l.datagrams[1].0
    );
    let out = control(&s, &script);
    assert_eq!(l.received().len(), 4, "control:\n{out}");
    let r = s.shell(&script).await;
    assert_eq!(l.received(), Vec::<String>::new(), "{}", r.output);
    all_refused(&r.output, "socket-raw");
    s.assert_contained(base, &[]).await;
}

// ---------------------------------------------------------------------------
// 2. Signals

/// A process of the server's user, outside.
struct Victim {
    child: std::process::Child,
}

impl Victim {
    fn spawn(s: &Server) -> Victim {
        let child = s
            .outside_command("sleep")
            .arg(format!("1000.{}", unique()))
            .env("RT_SECRET_OF_THE_VICTIM", "hunter2")
            .spawn()
            .unwrap();
        Victim { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its state letter (`S` sleeping, `T` stopped, `Z` dead), if it runs.
    fn state(&mut self) -> Option<char> {
        if self.child.try_wait().unwrap().is_some() {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn signals(user: As, kernel: Kernel) {
    let s = start(setup(RULES, user, kernel), kernel).await;
    let base = s.baseline().await;
    let mut v = Victim::spawn(&s);
    let p = probe();
    let out = control(&s, &format!("{p} kill {} 0", v.pid()));
    assert!(out.contains("kill=ok"), "control: {out}");
    let r = s
        .shell(&format!(
            "for sig in 0 19 15 9; do {p} kill {v} $sig; done; {p} kill {server} 0; \
             {p} kill {server} 9; {p} kill $PPID 9",
            v = v.pid(),
            server = s.pid,
        ))
        .await;
    all_refused(&r.output, "kill");
    assert_eq!(v.state(), Some('S'), "{}", r.output);
    s.assert_contained(base, &[]).await;
    // Bash's own `kill -9 $PPID`.
    let r = s.shell("kill -9 $PPID; echo rc=$?").await;
    assert!(r.output.contains("rc="), "{r:?}");
    s.assert_contained(base, &[]).await;
}

// ---------------------------------------------------------------------------
// 3. /proc of outside processes

async fn proc_of_outside_processes(user: As, kernel: Kernel) {
    let s = start(
        setup(RULES, user, kernel).env("RT_SECRET_OF_THE_SERVER", "x"),
        kernel,
    )
    .await;
    let base = s.baseline().await;
    let v = Victim::spawn(&s);
    let p = probe();
    let reads = |pid: &str| {
        format!(
            "{p} read /proc/{pid}/environ; {p} read /proc/{pid}/maps; {p} links /proc/{pid}/fd; \
             {p} read /proc/{pid}/mem\n"
        )
    };
    let out = control(&s, &reads(&v.pid().to_string()));
    assert!(out.contains("read=ok:") && out.contains(":secret"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("links=ok:") && !l.starts_with("links=ok:0/")),
        "{out}"
    );
    // The victim, the server, and the supervisors above the command (the
    // pid namespace's init is pid 1; without one, the launcher is $PPID).
    let script = format!(
        "{}{}{}{}",
        reads(&v.pid().to_string()),
        reads(&s.pid.to_string()),
        reads("1"),
        reads("$PPID")
    );
    let r = s.shell(&script).await;
    assert!(!r.output.contains(":secret"), "{}", r.output);
    all_refused(&r.output, "read");
    // Without a private /proc the fd numbers of outside processes can be
    // listed, not what they are.
    for v in r.values("links") {
        assert!(
            v.starts_with("err:") || v.starts_with("ok:0/"),
            "links={v}: {}",
            r.output
        );
    }
    // (`read` of mem: EIO would mean the open succeeded.)
    assert!(!r.output.contains("read=err:EIO"), "{}", r.output);
    s.assert_contained(base, &[]).await;
}

// ---------------------------------------------------------------------------
// 4. Terminals

/// A pseudo-terminal the test holds: the "user's terminal".
struct Pty {
    master: std::fs::File,
    slave: std::fs::File,
    path: PathBuf,
}

impl Pty {
    fn open(s: &Server) -> Pty {
        let (master, path) = sys::open_pty();
        sys::set_nonblocking(&master);
        let uid = s.user.uid();
        std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        Pty {
            master,
            slave,
            path,
        }
    }

    /// What was written to the terminal (master side) or typed into it
    /// (slave side) since the last call.
    fn seen(&mut self) -> String {
        let mut out = String::new();
        for f in [&mut self.master, &mut self.slave] {
            let mut buf = [0u8; 1024];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        out
    }
}

async fn terminals(user: As, kernel: Kernel) {
    // The server's own controlling terminal, as when started from a shell.
    let setup = setup(RULES, user, kernel);
    let (mut ctty, ctty_path) = sys::open_pty();
    let s = start(setup.terminal(&ctty_path), kernel).await;
    let base = s.baseline().await;
    let mut other = Pty::open(&s);
    let p = probe();
    let out = control(&s, &format!("{p} tty {}", other.path.display()));
    assert!(out.contains("tty-write=ok"), "control: {out}");
    assert!(other.seen().contains("rt-written"), "control: {out}");

    let r = s
        .shell(&format!(
            "{p} tty {}; {p} tty /dev/tty; {p} own-pty",
            other.path.display()
        ))
        .await;
    all_refused(&r.output, "tty-open");
    assert_eq!(other.seen(), "", "{}", r.output);
    let mut buf = [0u8; 256];
    sys::set_nonblocking(&ctty);
    let n = ctty.read(&mut buf).unwrap_or(0);
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        "",
        "the server's terminal: {}",
        r.output
    );
    // Its own pseudo-terminal works with a private devpts; without one
    // (no mount namespace) the host's is out of reach, as doctor says.
    let own = r.value("own-pty").unwrap_or_default();
    match kernel {
        Kernel::Namespaces => assert!(own.ends_with(":pty-round-trip"), "{}", r.output),
        Kernel::NoNamespaces => {
            assert!(own.starts_with("err:"), "{}", r.output);
            let (_, doctor) = s.doctor();
            assert!(
                doctor.contains("pseudo-terminals cannot be made"),
                "{doctor}"
            );
        }
    }
    s.assert_contained(base, &[]).await;
}

// ---------------------------------------------------------------------------
// 5. Metadata writes outside the roots

async fn metadata_outside(user: As, kernel: Kernel) {
    let s = start(setup(RULES, user, kernel), kernel).await;
    let base = s.baseline().await;
    let file = s.outside.join("owned-by-the-user");
    std::fs::write(&file, "x").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&file, Some(s.user.uid()), Some(s.user.uid())).unwrap();
    let before = std::fs::metadata(&file).unwrap();
    let f = file.display();
    let chown = if s.user == As::Root {
        format!("chown 1:1 {f}; echo chown=$?;")
    } else {
        String::new()
    };
    let r = s
        .shell(&format!(
            "chmod 4755 {f}; echo chmod=$?; touch -m -d @0 {f}; echo touch=$?; \
             {p} setxattr {f}; {chown} chmod 777 {o}; echo chmod-dir=$?",
            p = probe(),
            o = s.outside.display()
        ))
        .await;
    match kernel {
        Kernel::Namespaces => {
            let after = std::fs::metadata(&file).unwrap();
            assert_eq!(after.mode(), before.mode(), "{}", r.output);
            assert_eq!(after.mtime(), before.mtime(), "{}", r.output);
            assert_eq!(
                (after.uid(), after.gid()),
                (before.uid(), before.gid()),
                "{}",
                r.output
            );
            assert_eq!(sys::getxattr(&file, "user.redteam"), None, "{}", r.output);
            assert_eq!(
                std::fs::metadata(&s.outside).unwrap().mode() & 0o777,
                0o755,
                "{}",
                r.output
            );
            assert!(r.output.contains("Read-only file system"), "{}", r.output);
            assert_eq!(r.value("setxattr"), Some("err:EROFS"), "{}", r.output);
        }
        Kernel::NoNamespaces => {
            // Landlock has no right for metadata: the gap is reported.
            let (_, doctor) = s.doctor();
            assert!(
                doctor.contains("GAP  metadata writes outside the roots"),
                "{doctor}"
            );
        }
    }
    s.assert_contained(base, &[]).await;
}

// ---------------------------------------------------------------------------
// 6. A root server's capabilities

/// `/dev/NAME` of the block device holding `/`, from its major:minor.
fn root_block_device() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dev = info
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))?
        .split_whitespace()
        .nth(2)?
        .to_string();
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{dev}/uevent")).ok()?;
    let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
    Some(PathBuf::from("/dev").join(name))
}

async fn capabilities(user: As, kernel: Kernel) {
    let s = start(setup(RULES, user, kernel), kernel).await;
    let base = s.baseline().await;
    let tmp = tmp_dir(&s);
    let node = tmp.path().join("disk");
    // A root-owned program outside, for the setuid bit.
    let program = s.outside.join("program");
    std::fs::copy("/bin/true", &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let disk = root_block_device();
    let read_disk = match &disk {
        Some(d) => format!("{} read {};", probe(), d.display()),
        None => {
            say("capabilities: skipped: no block device under / here: the disk read is not tried");
            String::new()
        }
    };
    let r = s
        .shell(&format!(
            "{p} caps; mknod {n} b 8 0; echo mknod=$?; {read_disk} \
             chmod u+s {prog}; echo setuid=$?",
            p = probe(),
            n = node.display(),
            prog = program.display()
        ))
        .await;
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(
            r.value(set),
            Some("0000000000000000"),
            "{set}: {}",
            r.output
        );
    }
    // The bounding set can only shrink with CAP_SETPCAP: an unprivileged
    // server without a user namespace keeps it (harmless: no_new_privs, a
    // non-root uid), but then must not say it is empty.
    if r.value("CapBnd") != Some("0000000000000000") {
        let (_, doctor) = s.doctor();
        let row = doctor
            .lines()
            .find(|l| l.contains("capabilities"))
            .unwrap_or_default();
        assert!(
            !row.contains("bounding set included"),
            "CapBnd={:?} but doctor says: {row}",
            r.value("CapBnd")
        );
    }
    assert!(!node.exists(), "{}", r.output);
    assert_ne!(r.value("mknod"), Some("0"), "{}", r.output);
    if disk.is_some() {
        all_refused(&r.output, "read");
    }
    if kernel == Kernel::Namespaces || user == As::Unprivileged {
        assert_eq!(
            std::fs::metadata(&program).unwrap().mode() & 0o7777,
            0o755,
            "{}",
            r.output
        );
    }
    s.assert_contained(base, &[]).await;
}

/// A sandbox must not leave a set-uid or set-gid program (or one with file
/// capabilities) where anyone can run it: its writable roots (`/tmp`) are
/// the host's, and a `chmod 4755` by the file's owner needs no capability
/// (a root server's makes a root shell for every local user).
async fn no_set_id_programs_in_writable_roots(user: As, kernel: Kernel) {
    let s = start(setup(RULES, user, kernel), kernel).await;
    let base = s.baseline().await;
    let tmp = tmp_dir(&s);
    let copy = tmp.path().join("id");
    let r = s
        .shell(&format!(
            "cp /usr/bin/id {c}; chmod 4755 {c}; echo chmod=$?; \
             install -m 6755 /usr/bin/id {c}2; echo install=$?; \
             cp /usr/bin/id {c}3; {p} setcap {c}3",
            c = copy.display(),
            p = probe()
        ))
        .await;
    // File capabilities, set from a user namespace mapping our root.
    assert_eq!(
        sys::getxattr(&tmp.path().join("id3"), "security.capability"),
        None,
        "{}",
        r.output
    );
    for path in [copy.clone(), tmp.path().join("id2")] {
        if let Ok(meta) = std::fs::metadata(&path) {
            assert!(
                meta.mode() & 0o6000 == 0,
                "{} is set-uid/set-gid (owner {}): any local user runs it as its owner\n{}",
                path.display(),
                meta.uid(),
                r.output
            );
        }
    }
    s.assert_contained(base, &[]).await;
}

// ---------------------------------------------------------------------------
// 7. Nothing outlives its call

fn gone(pattern: &str) -> impl FnMut() -> bool + '_ {
    move || processes_with(pattern.as_bytes()).is_empty()
}

async fn nothing_outlives_its_call(user: As, kernel: Kernel) {
    let rules = format!("{RULES}\nprefix_rule(pattern = [\"setsid\"], decision = \"allow\")\n");
    let s = start(setup(&rules, user, kernel), kernel).await;
    let base = s.baseline().await;

    // 40 setsid children (sandboxed: `setsid` is escalated but the `sleep`
    // of `sh -c` is not; Bash's `setsid` builtin does not exist, so `env`
    // starts the sandboxed one) under a 2 s timeout.
    let n = unique();
    let forty = sleep_pattern(&n);
    let command = format!("for i in $(seq 40); do env setsid sleep 1000.{n} & done; wait");
    let (r, seen) = tokio::join!(s.call(&command, &s.work, 2000), async {
        eventually(20, || processes_with(forty.as_bytes()).len() >= 40).await
    });
    let r = r.expect("the call returns");
    assert_eq!(r["timed_out"], true, "{r}");
    assert!(seen, "the 40 children never ran: {r}");
    assert!(
        eventually(15, gone(&forty)).await,
        "setsid children outlived the call: {:?}",
        processes_with(forty.as_bytes())
    );

    // A double-forking daemon, the call ending normally.
    let n = unique();
    let daemon = sleep_pattern(&n);
    let flag = s.work.join("daemon-started");
    let r = s
        .shell(&format!(
            "( ( env setsid sh -c 'touch {f}; exec sleep 1000.{n}' & ) & ); \
             while [ ! -e {f} ]; do :; done; echo started",
            f = flag.display(),
        ))
        .await;
    assert!(r.output.contains("started"), "{r:?}");
    assert!(
        eventually(15, gone(&daemon)).await,
        "a double-forked daemon outlived the call"
    );

    // A daemon started by an escalated program (`setsid -f` forks and the
    // escalated `setsid` exits at once).
    let n = unique();
    let escalated = sleep_pattern(&n);
    let r = s
        .shell(&format!("setsid -f sleep 1000.{n}; echo rc=$?"))
        .await;
    assert_eq!(r.value("rc"), Some("0"), "{r:?}");
    assert!(
        s.log_text().contains("decision=\"escalate\"")
            || s.log_text().contains("decision=escalate"),
        "setsid was not escalated"
    );
    assert!(
        eventually(15, gone(&escalated)).await,
        "a daemon of an escalated program outlived the call"
    );
    s.assert_contained(base, &[]).await;
}

/// The server SIGKILLed mid-call: what the call started, sandboxed or
/// escalated, dies with it.
async fn server_killed_mid_call(user: As, kernel: Kernel) {
    let escalated = unique();
    let rules = format!(
        "{RULES}\nprefix_rule(pattern = [\"sleep\", \"1000.{escalated}\"], decision = \"allow\")\n\
         prefix_rule(pattern = [\"setsid\"], decision = \"allow\")\n"
    );
    let s = start(setup(&rules, user, kernel), kernel).await;
    let sandboxed = unique();
    let daemon = unique();
    let escalated_daemon = unique();
    let command = format!(
        "env setsid sleep 1000.{sandboxed} & ( ( env setsid sleep 1000.{daemon} & ) & ); \
         setsid -w sh -c 'sleep 1000.{escalated_daemon} & wait' & \
         sleep 1000.{escalated}; wait"
    );
    let patterns: Vec<String> = [&sandboxed, &daemon, &escalated, &escalated_daemon]
        .iter()
        .map(|d| sleep_pattern(d))
        .collect();
    let all_seen = || {
        patterns
            .iter()
            .all(|p| !processes_with(p.as_bytes()).is_empty())
    };
    let (r, seen) = tokio::join!(s.call(&command, &s.work, 60_000), async {
        let seen = eventually(20, all_seen).await;
        s.kill();
        seen
    });
    assert!(
        r.is_err(),
        "the call ended before the server was killed: {r:?}"
    );
    assert!(
        seen,
        "not everything ran: {:?}",
        patterns
            .iter()
            .map(|p| processes_with(p.as_bytes()))
            .collect::<Vec<_>>()
    );
    for p in &patterns {
        assert!(
            eventually(15, gone(p)).await,
            "{p:?} outlived the killed server"
        );
    }
}

// ---------------------------------------------------------------------------
// 8. Rules the sandbox can write

/// Every way a command could plant [`EVIL_RULE`] where the server reads
/// rules at its next start: below `$CODEX_HOME/rules`, by writing, by
/// appending, by renaming `$CODEX_HOME` or its parent away and making a
/// new one, by replacing `rules` with a symlink.
fn plant_rules_script(codex_home: &Path, scratch: &Path) -> String {
    let c = codex_home.display();
    let x = scratch.display();
    let parent = codex_home.parent().unwrap().display();
    format!(
        "plant() {{ mkdir -p \"$1\" && echo '{EVIL_RULE}' > \"$1/evil.rules\" && echo \"planted=$1\"; }}\n\
         plant {c}/rules\n\
         echo '{EVIL_RULE}' >> {c}/rules/redteam.rules && echo appended=1\n\
         mv {c} {c}.away && plant {c}/rules\n\
         mv {parent} {parent}.away && plant {c}/rules\n\
         rm -rf {c}/rules && plant {c}/rules\n\
         echo '{EVIL_RULE}' > {x}/evil.rules && \
         mv {c}/rules {c}/rules.old && ln -s {x} {c}/rules && echo planted=symlink\n\
         true\n"
    )
}

/// Restarts the server and checks that `touch` (planted as escalated) is
/// not: the marker outside stays absent.
async fn assert_no_escalation_after_restart(s: Server, attack: &str) -> Server {
    let s = s.restart().await;
    let marker = s.outside.join("touched-by-a-planted-rule");
    let r = s
        .shell(&format!("touch {}; echo rc=$?", marker.display()))
        .await;
    assert!(
        !marker.exists(),
        "a rule planted by a command was granted after the restart: {r:?}\nattack:\n{attack}"
    );
    s
}

/// The positive control: the same rule written from outside is granted.
async fn assert_a_rule_written_outside_escalates(s: Server, rules_file: &Path) {
    std::fs::write(rules_file, EVIL_RULE).unwrap();
    if let Some((uid, gid)) = s.user.switch_to() {
        std::os::unix::fs::chown(rules_file, Some(uid), Some(gid)).unwrap();
    }
    let s = s.restart().await;
    let marker = s.outside.join("touched-by-a-real-rule");
    let r = s.shell(&format!("touch {}", marker.display())).await;
    assert!(marker.exists(), "control: the rule was not loaded: {r:?}");
}

/// `$CODEX_HOME` under a writable root: under `/tmp`, or under the
/// workspace with another name than `.codex`, existing at start or not.
async fn codex_home_under_a_writable_root(user: As, kernel: Kernel, where_: &str, exists: bool) {
    let tmp_home = tempfile::Builder::new()
        .prefix("rt-home")
        .tempdir()
        .unwrap();
    let codex_home = match where_ {
        "tmp" => tmp_home.path().join("codex"),
        _ => PathBuf::from(where_),
    };
    let setup = setup(RULES, user, kernel);
    let setup = match where_ {
        "tmp" => {
            if let Some((uid, gid)) = user.switch_to() {
                std::os::unix::fs::chown(tmp_home.path(), Some(uid), Some(gid)).unwrap();
            }
            setup.codex_home(Some(codex_home.to_str().unwrap()), exists)
        }
        rel => setup.codex_home(Some(rel), exists),
    };
    let s = start(setup, kernel).await;
    let codex_home = s.codex_home.clone().unwrap();
    assert!(
        codex_home.join("rules").is_dir(),
        "the server made no {}/rules",
        codex_home.display()
    );
    let scratch = tmp_dir(&s);
    let attack = plant_rules_script(&codex_home, scratch.path());
    let r = s.shell(&attack).await;
    if kernel == Kernel::NoNamespaces {
        // Without a mount namespace the rules cannot be kept read-only: the
        // call is refused, naming them.
        assert_eq!(r.exit_code, 126, "{r:?}");
        assert!(
            r.output
                .contains("must stay read-only but cannot be protected"),
            "{r:?}"
        );
    }
    assert_eq!(r.values("planted"), Vec::<&str>::new(), "{}", r.output);
    assert_eq!(r.value("appended"), None, "{}", r.output);
    let s = assert_no_escalation_after_restart(s, &attack).await;
    let rules_file = codex_home.join("rules/control.rules");
    if kernel == Kernel::Namespaces {
        assert_a_rule_written_outside_escalates(s, &rules_file).await;
    }
    drop(tmp_home);
}

async fn codex_home_under_tmp(user: As, kernel: Kernel) {
    codex_home_under_a_writable_root(user, kernel, "tmp", true).await
}

async fn codex_home_in_the_workspace(user: As, kernel: Kernel) {
    codex_home_under_a_writable_root(user, kernel, "work/agent-home", true).await
}

async fn codex_home_missing_at_start(user: As, kernel: Kernel) {
    codex_home_under_a_writable_root(user, kernel, "work/not-yet", false).await
}

/// A `--rules` file and a `--config` file in the workspace: overwritten,
/// or their directory renamed away and a new one made. The config could
/// turn the sandbox off (`danger-full-access`) at the next start.
async fn rules_and_config_files_in_the_workspace(user: As, kernel: Kernel) {
    let setup = setup(RULES, user, kernel)
        .file("work/cfg/extra.rules", RULES)
        .file("work/cfg/server.toml", "network = false\n")
        .arg("--rules")
        .arg("{dir}/work/cfg/extra.rules")
        .arg("--config")
        .arg("{dir}/work/cfg/server.toml");
    let s = start(setup, kernel).await;
    let cfg = s.work.join("cfg");
    let attack = forge_cfg_script(&cfg);
    let r = s.shell(&attack).await;
    assert_eq!(r.values("forged"), Vec::<&str>::new(), "{}", r.output);
    let s = assert_no_escalation_after_restart(s, &attack).await;
    if kernel == Kernel::Namespaces {
        assert_a_rule_written_outside_escalates(s, &cfg.join("extra.rules")).await;
    }
}

/// Overwrites `cfg/extra.rules` and `cfg/server.toml`, or renames `cfg`
/// away and makes new ones.
fn forge_cfg_script(cfg: &Path) -> String {
    let d = cfg.display();
    format!(
        "forge() {{ echo '{EVIL_RULE}' > \"$1/extra.rules\" && echo 'sandbox = \"danger-full-access\"' > \"$1/server.toml\" && echo \"forged=$1\"; }}\n\
         forge {d}\n\
         mv {d} {d}.away && mkdir {d} && forge {d}\n\
         true\n"
    )
}

/// The workspace is a writable root nested in another (under `/tmp`, as
/// a CI checkout may be), holding `$CODEX_HOME`, a `--rules` and a
/// `--config` file: the directory between the two roots is renamed away
/// and a forged workspace put in its place.
async fn protected_paths_in_a_workspace_nested_in_tmp(user: As, kernel: Kernel) {
    let setup = setup(RULES, user, kernel)
        .base(Base::Tmp)
        .work_at("proj/work")
        .codex_home(Some("proj/work/agent-home"), true)
        .file("proj/work/cfg/extra.rules", RULES)
        .file("proj/work/cfg/server.toml", "network = false\n")
        .arg("--rules")
        .arg("{dir}/proj/work/cfg/extra.rules")
        .arg("--config")
        .arg("{dir}/proj/work/cfg/server.toml");
    let s = start(setup, kernel).await;
    let proj = s.root.join("proj");
    let work = s.work.display();
    let attack = format!(
        "mv {p} {p}.away && mkdir -p {work}/agent-home/rules {work}/cfg && \
         echo '{EVIL_RULE}' > {work}/agent-home/rules/evil.rules && \
         echo '{EVIL_RULE}' > {work}/cfg/extra.rules && \
         echo 'sandbox = \"danger-full-access\"' > {work}/cfg/server.toml && echo forged=1\n\
         true\n",
        p = proj.display()
    );
    let r = s.shell(&attack).await;
    assert_eq!(r.value("forged"), None, "{}", r.output);
    let s = assert_no_escalation_after_restart(s, &attack).await;
    let rules_file = s.work.join("agent-home/rules/control.rules");
    assert_a_rule_written_outside_escalates(s, &rules_file).await;
}

/// A server installed under a writable root (`npm install` in the
/// project puts it in `node_modules`): replacing it, or the launcher
/// beside it, runs the command's code outside at the next start.
async fn the_installed_server_is_not_replaced(user: As, kernel: Kernel) {
    let s = start(setup(RULES, user, kernel).installed_in_work(), kernel).await;
    let marker = s.outside.join("ran-at-the-next-start");
    let bin = s.work.join("bin");
    let mut script = String::new();
    for name in ["codex-exec-mcp-server", "codex-sandbox-exec"] {
        let real = bin.join(format!("{name}.real"));
        script.push_str(&format!(
            "cp {b}/{name} {real} && rm {b}/{name} && \
             printf '#!/bin/sh\\necho escaped > {m}\\nexec {real} \"$@\"\\n' > {b}/{name} && \
             chmod +x {b}/{name}; echo {name}=$?\n",
            b = bin.display(),
            real = real.display(),
            m = marker.display()
        ));
    }
    let r = s.shell(&script).await;
    let s = s.restart().await;
    let r2 = s.shell("echo next-start").await;
    assert!(
        !marker.exists(),
        "the command's replacement ran outside the sandbox at the next start: {}\n{r2:?}",
        r.output
    );
}

// ---------------------------------------------------------------------------
// 9. The start directory

async fn start_directory(user: As, kernel: Kernel) {
    for cwd in [Cwd::Home, Cwd::Slash] {
        let s = start(setup(RULES, user, kernel).cwd(cwd.clone()), kernel).await;
        let dir = match cwd {
            Cwd::Home => s.home.clone(),
            _ => PathBuf::from("/"),
        };
        let file = dir.join(format!("rt-written-{}", unique()));
        let r = s
            .shell(&format!("touch {}; echo rc=$?", file.display()))
            .await;
        let exists = file.exists();
        let _ = std::fs::remove_file(&file);
        assert!(!exists, "{cwd:?}: {r:?}");
        assert_ne!(r.value("rc"), Some("0"), "{cwd:?}: {r:?}");
        let log = s.log_text();
        assert_eq!(
            log.matches("is not made writable by default").count(),
            1,
            "{cwd:?}: said once at start:\n{log}"
        );
    }
}

// ---------------------------------------------------------------------------
// Other ways out

/// A writable root nested in another (the workspace under `/tmp`): one
/// call renames the directory between them away and puts a symlink to
/// `outside` where the workspace was; the next call's writable root must
/// not follow it.
async fn a_nested_writable_root_swapped_for_a_symlink(user: As, kernel: Kernel) {
    let setup = setup(RULES, user, kernel)
        .base(Base::Tmp)
        .work_at("proj/work");
    let s = start(setup, kernel).await;
    let proj = s.root.join("proj");
    let marker = s.outside.join("written-through-the-symlink");
    let r = s
        .shell(&format!(
            "mv {p} {p}.away && mkdir {p} && ln -s {o} {w}; echo swapped=$?",
            p = proj.display(),
            o = s.outside.display(),
            w = s.work.display()
        ))
        .await;
    let r2 = s
        .shell(&format!(
            "echo escaped > {m}; echo rc=$?",
            m = marker.display()
        ))
        .await;
    assert!(
        !marker.exists(),
        "the next call wrote through the swapped root: {}\n{}",
        r.output,
        r2.output
    );
}

/// The same swap raced: one call exchanges the nested writable root with
/// a symlink to `outside` again and again, while other calls write to
/// `outside`. Between the server's check of the root (no symlink) and the
/// launcher's opening it for Landlock, the name may have changed.
async fn a_nested_writable_root_raced_with_a_symlink(user: As, kernel: Kernel) {
    let setup = setup(RULES, user, kernel)
        .base(Base::Tmp)
        .work_at("proj/work");
    let s = start(setup, kernel).await;
    let link = s.root.join("proj/link");
    std::os::unix::fs::symlink(&s.outside, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(s.user.uid()), Some(s.user.uid())).unwrap();
    let marker = s.outside.join("written-through-the-raced-root");
    let stop = s.outside.join("stop-swapping");
    let swap = format!(
        "{} swap {} {} {}",
        probe(),
        s.work.display(),
        link.display(),
        stop.display()
    );
    let write = format!("echo escaped > {}", marker.display());
    let root = Path::new("/");
    let (swapped, tries) = tokio::join!(s.call(&swap, root, 120_000), async {
        let mut tries = 0;
        while tries < 40 && !marker.exists() {
            let _ = s.call(&write, root, 10_000).await;
            tries += 1;
        }
        std::fs::write(&stop, "").unwrap();
        tries
    });
    let swapped = swapped.expect("the swapping call returns");
    assert!(
        !marker.exists(),
        "a call wrote through the raced root after {tries} tries ({swapped})"
    );
}

/// System V shared memory and POSIX message queues of processes outside:
/// an IPC namespace keeps them out of reach; without one, the gap must at
/// least be reported.
async fn system_v_and_posix_ipc_outside(user: As, kernel: Kernel) {
    let s = start(setup(RULES, user, kernel), kernel).await;
    let base = s.baseline().await;
    let shm = sys::Shm::create(s.user.uid(), b"secret-outside");
    let queue = format!("/codex-redteam-{}", unique());
    let mq = sys::Mq::create(&queue, s.user.uid());
    let p = probe();
    let script = format!("{p} shm {}; {p} mq {queue}", shm.id);
    let r = s.shell(&script).await;
    let reached = r.value("shm").is_some_and(|v| v.starts_with("ok"))
        || r.value("mq").is_some_and(|v| v.starts_with("ok"));
    match kernel {
        Kernel::Namespaces => {
            assert!(!reached, "{}", r.output);
            assert_eq!(shm.read(), b"secret-outside", "{}", r.output);
        }
        // Without an IPC namespace nothing keeps System V IPC apart
        // (Landlock has no right for it): the gap must be reported.
        Kernel::NoNamespaces if reached => {
            let (_, doctor) = s.doctor();
            let row = doctor
                .lines()
                .find(|l| l.to_lowercase().contains("ipc"))
                .unwrap_or_default();
            assert!(
                row.starts_with("GAP"),
                "the sandbox reached outside IPC ({}) and doctor does not say so:\n{doctor}",
                r.output
            );
        }
        Kernel::NoNamespaces => {}
    }
    drop(mq);
    s.assert_contained(base, &[]).await;
}

/// What fds a sandboxed command and an escalated program hold: their
/// stdio, the session socket for the sandboxed shell, the program's own
/// file for the escalated one; nothing the server inherited from its
/// client (here a file outside, open for writing) and nothing of the
/// server's or the launcher's (lifelines, signalfds, logs).
async fn inherited_fds(user: As, kernel: Kernel) {
    let rules =
        format!("{RULES}\nprefix_rule(pattern = [\"probe\", \"fds\"], decision = \"allow\")\n");
    let s = start(setup(&rules, user, kernel).inherit("stray"), kernel).await;
    let base = s.baseline().await;
    let stray = s.outside.join("stray");
    // Sandboxed: the probe under another name, which no rule matches.
    let tmp = tmp_dir(&s);
    let copy = tmp.path().join("probe-copy");
    std::fs::copy(probe(), &copy).unwrap();
    let r = s
        .shell(&format!(
            "echo escaped >&{INHERITED_FD}; echo rc=$?; {} fds; echo ---; {} fds",
            copy.display(),
            probe()
        ))
        .await;
    let (sandboxed, escalated) = r.output.split_once("---").expect("both ran");
    let fds = |text: &str| -> Vec<(i32, String)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("fd="))
            .filter_map(|l| {
                let (n, target) = l.split_once(':')?;
                Some((n.parse().ok()?, target.to_string()))
            })
            // The probe's own listing of /proc/self/fd.
            .filter(|(_, target)| !target.ends_with("/fd"))
            .collect()
    };
    let sandboxed = fds(sandboxed);
    let escalated = fds(escalated);
    let unexpected: Vec<_> = sandboxed
        .iter()
        .filter(|(n, target)| *n > 2 && !target.starts_with("socket:"))
        .collect();
    assert_eq!(
        unexpected,
        Vec::<&(i32, String)>::new(),
        "sandboxed: {sandboxed:?}"
    );
    assert!(
        sandboxed
            .iter()
            .filter(|(_, t)| t.starts_with("socket:"))
            .count()
            <= 1,
        "{sandboxed:?}"
    );
    assert!(!escalated.is_empty(), "{}", r.output);
    let unexpected: Vec<_> = escalated
        .iter()
        .filter(|(n, target)| *n > 2 && !target.ends_with("/probe"))
        .collect();
    assert_eq!(
        unexpected,
        Vec::<&(i32, String)>::new(),
        "escalated: {escalated:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&stray).unwrap(),
        "",
        "the sandbox wrote through the server's stray fd: {}",
        r.output
    );
    s.assert_contained(base, &[]).await;
}

/// A background process (`exec_command`) that ignores SIGTERM, HUP and
/// INT, starts a new session, double-forks, `nohup`s and has an escalated
/// program running dies whole when it is killed through its handle (the
/// control, under a plain Bash, is `redteam procs::…`); and its terminal is
/// one of the sandbox's own `devpts` where there is one.
async fn background_process_ends_whole_and_its_tty_is_the_sandboxs(user: As, kernel: Kernel) {
    let s = start(setup(RULES, user, kernel), kernel).await;
    let n = unique();
    let ours = |n: &str| {
        processes_with(b"sleep\0")
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(n))
            })
            .count()
    };
    let command = format!(
        "trap '' TERM HUP INT; setsid sleep 300.{n} & ( ( sleep 301.{n} & ) & ) ; \
         nohup sleep 302.{n} >/dev/null 2>&1 & sleep 304.{n} & echo started; wait"
    );
    let r = crate::procs::call(
        &s,
        "exec_command",
        json!({"cmd": command, "yield_time_ms": 1000}),
    )
    .await;
    let r = crate::procs::structured(&r);
    let handle = r["session_id"].as_str().unwrap().to_owned();
    assert!(eventually(20, || ours(&n) == 4).await, "{r}");
    let killed = crate::procs::call(&s, "kill_process", json!({"session_id": handle})).await;
    let killed = crate::procs::structured(&killed);
    assert!(killed["exit_code"].is_i64(), "{killed}");
    assert!(
        eventually(10, || ours(&n) == 0).await,
        "escaped its kill: {}",
        s.log_text()
    );

    let r = crate::procs::call(
        &s,
        "exec_command",
        json!({"cmd": "echo $(stat -Lc %d /proc/self/fd/0) $(stat -c %d /dev/pts)", "tty": true, "yield_time_ms": 10000}),
    )
    .await;
    let r = crate::procs::structured(&r);
    let output = r["output"].as_str().unwrap().trim().to_owned();
    let (terminal, devpts) = output.split_once(' ').unwrap_or_else(|| panic!("{r}"));
    let host = std::fs::metadata("/dev/pts").unwrap().dev().to_string();
    if devpts == host {
        say(&format!(
            "background tty ({user:?}, {kernel:?}): no private devpts here; the host's is used"
        ));
    } else {
        assert_eq!(terminal, devpts, "the terminal is not the sandbox's: {r}");
    }
}

/// Issue 18 item 6: with the network off, a client's calls and background
/// processes share a private network with only loopback. A dev server in
/// the background is reached by a later call, and from that network the
/// host stays out of reach: its 127.0.0.1 (a listener on the very port the
/// dev server uses), its named and abstract UNIX sockets (below Landlock
/// ABI 9 `connect` is allowed there, so `socket(AF_UNIX)` is what is
/// refused), and a `socketpair` end whose peer is gone, connected anew.
/// Without namespaces the old refusals hold: no IP socket at all.
async fn shared_loopback(user: As, kernel: Kernel) {
    use std::io::Read as _;
    let s = start(
        setup(RULES, user, kernel).env("SSH_AUTH_SOCK", "{dir}/outside/agent.sock"),
        kernel,
    )
    .await;
    let base = s.baseline().await;
    let l = Listeners::open(&s);
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let port = host.local_addr().unwrap().port();
    let host_received = || {
        let mut got = Vec::new();
        while let Ok((mut conn, peer)) = host.accept() {
            conn.set_nonblocking(false).unwrap();
            let mut text = String::new();
            let _ = conn.read_to_string(&mut text);
            got.push(format!("127.0.0.1:{port}: connection from {peer} ({text})"));
        }
        got
    };
    let p = probe();
    let attack = format!(
        "{p} tcp {port}; {p} pair-connect {s0}; {p} pair-connect {s1}; {script}",
        s0 = l.streams[0].0,
        s1 = l.streams[1].0,
        script = l.script,
    );
    let out = control(&s, &attack);
    assert_eq!(l.received().len(), 4 + 4, "control:\n{out}");
    assert_eq!(host_received().len(), 1, "control:\n{out}");

    let server = crate::procs::call(
        &s,
        "exec_command",
        json!({"cmd": format!("exec {PYTHON} -u -m http.server {port} --bind 127.0.0.1"),
               "yield_time_ms": 0}),
    )
    .await;
    let handle = crate::procs::structured(&server)["session_id"]
        .as_str()
        .map(str::to_owned);
    let shared = !s.log_text().contains("no loopback network for this client");
    if kernel == Kernel::Namespaces && !shared {
        say(&format!(
            "shared_loopback ({user:?}): skipped the dev server: no network namespace here"
        ));
    }
    // `doctor` says which it is.
    let (_, doctor) = s.doctor();
    let row = doctor
        .lines()
        .find(|l| l.contains("network off: a client's calls share a private loopback"))
        .unwrap_or_else(|| panic!("no loopback row:\n{doctor}"));
    assert_eq!(row.starts_with("ok "), shared, "{row}");
    let mut served = String::new();
    if let (Some(handle), true) = (&handle, shared) {
        for _ in 0..100 {
            let r = crate::procs::call(
                &s,
                "write_stdin",
                json!({"session_id": handle, "chars": "", "yield_time_ms": 500}),
            )
            .await;
            let r = crate::procs::structured(&r);
            served.push_str(r["output"].as_str().unwrap_or_default());
            if served.contains("Serving HTTP") || r.get("exit_code").is_some() {
                break;
            }
        }
    }
    let r = s
        .shell(&format!(
            "{attack}curl -sS -m 10 -o /dev/null http://127.0.0.1:{port}/; echo curl=$?"
        ))
        .await;
    all_refused(&r.output, "connect");
    all_refused(&r.output, "connect-abstract");
    all_refused(&r.output, "socket-dgram");
    all_refused(&r.output, "pair-connect");
    assert_eq!(l.received(), Vec::<String>::new(), "{}", r.output);
    assert_eq!(host_received(), Vec::<String>::new(), "{}", r.output);
    if shared {
        assert!(
            served.contains("Serving HTTP"),
            "{served}\n{}",
            s.log_text()
        );
        assert_eq!(r.value("curl"), Some("0"), "{}", r.output);
        // The probe's connection reached the dev server, not the host.
        assert_eq!(r.value("tcp"), Some("ok"), "{}", r.output);
        // A socketpair is born connected: no filter needed for it.
        assert_eq!(
            r.values("pair-connect"),
            ["err:EISCONN", "err:EISCONN"],
            "{}",
            r.output
        );
    } else {
        assert_eq!(r.value("tcp"), Some("err:EACCES"), "{}", r.output);
        assert_ne!(r.value("curl"), Some("0"), "{}", r.output);
    }
    if let Some(handle) = handle {
        crate::procs::call(&s, "kill_process", json!({"session_id": handle})).await;
    }
    s.assert_contained(base, &[]).await;
}

everywhere!(
    unix_sockets,
    shared_loopback,
    raw_unix_sockets_are_datagram_sockets,
    signals,
    proc_of_outside_processes,
    terminals,
    metadata_outside,
    capabilities,
    nothing_outlives_its_call,
    server_killed_mid_call,
    codex_home_in_the_workspace,
    a_nested_writable_root_swapped_for_a_symlink,
    a_nested_writable_root_raced_with_a_symlink,
    system_v_and_posix_ipc_outside,
    no_set_id_programs_in_writable_roots,
    background_process_ends_whole_and_its_tty_is_the_sandboxs,
);

variants!(codex_home_under_tmp:
    as_root => (As::Root, Kernel::Namespaces),
    unprivileged => (As::Unprivileged, Kernel::Namespaces),
);

variants!(codex_home_missing_at_start:
    as_root => (As::Root, Kernel::Namespaces),
    unprivileged => (As::Unprivileged, Kernel::Namespaces),
);

variants!(rules_and_config_files_in_the_workspace:
    as_root => (As::Root, Kernel::Namespaces),
    unprivileged => (As::Unprivileged, Kernel::Namespaces),
);

variants!(protected_paths_in_a_workspace_nested_in_tmp:
    as_root => (As::Root, Kernel::Namespaces),
    unprivileged => (As::Unprivileged, Kernel::Namespaces),
);

variants!(the_installed_server_is_not_replaced:
    as_root => (As::Root, Kernel::Namespaces),
    unprivileged => (As::Unprivileged, Kernel::Namespaces),
);

variants!(start_directory:
    as_root => (As::Root, Kernel::Namespaces),
    unprivileged => (As::Unprivileged, Kernel::Namespaces),
);

variants!(inherited_fds:
    as_root => (As::Root, Kernel::Namespaces),
    unprivileged => (As::Unprivileged, Kernel::Namespaces),
    as_root_without_namespaces => (As::Root, Kernel::NoNamespaces),
);

/// The raw calls of the test side; the only `unsafe` of this file.
mod sys {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    pub fn landlock_abi() -> i64 {
        // SAFETY: with the VERSION flag (1) the kernel reads no pointer and
        // returns the ABI version or an error.
        unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                1u32,
            )
        }
    }

    /// A new pseudo-terminal: the master, and the slave's path.
    pub fn open_pty() -> (std::fs::File, PathBuf) {
        // SAFETY: posix_openpt takes flags and returns a new fd or -1.
        let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        // SAFETY: a new fd, owned by nobody else.
        let master = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: grantpt and unlockpt take the master fd.
        assert_eq!(unsafe { libc::grantpt(master.as_raw_fd()) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::unlockpt(master.as_raw_fd()) }, 0);
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: ptsname_r writes at most `name.len()` bytes, nul included.
        let r = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
        assert_eq!(r, 0, "ptsname_r");
        // SAFETY: ptsname_r succeeded: `name` is nul-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
        let path = PathBuf::from(name.to_string_lossy().into_owned());
        (std::fs::File::from(master), path)
    }

    pub fn set_nonblocking(f: &std::fs::File) {
        // SAFETY: fcntl on our own open fd with integer arguments.
        unsafe {
            let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }

    pub fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let path = CString::new(path.as_os_str().as_bytes()).unwrap();
        let name = CString::new(name).unwrap();
        let mut buf = [0u8; 256];
        // SAFETY: nul-terminated strings and a buffer of the size passed,
        // all alive for the call.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        (n >= 0).then(|| buf[..n as usize].to_vec())
    }

    /// A System V shared memory segment (mode 0600) owned by `uid`, holding
    /// `text`; removed on drop.
    pub struct Shm {
        pub id: i32,
        addr: *mut libc::c_void,
    }

    impl Shm {
        pub fn create(uid: u32, text: &[u8]) -> Shm {
            // SAFETY: shmget with integer arguments; IPC_PRIVATE makes a new
            // segment.
            let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
            assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
            // SAFETY: IPC_STAT fills the struct we pass; IPC_SET reads it.
            unsafe {
                let mut ds: libc::shmid_ds = std::mem::zeroed();
                assert_eq!(libc::shmctl(id, libc::IPC_STAT, &mut ds), 0);
                ds.shm_perm.uid = uid;
                ds.shm_perm.gid = uid;
                assert_eq!(libc::shmctl(id, libc::IPC_SET, &mut ds), 0);
            }
            // SAFETY: attaches the segment anywhere; checked below.
            let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
            assert_ne!(addr as isize, -1, "shmat");
            // SAFETY: the segment is 4096 bytes; `text` is shorter.
            unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), addr.cast(), text.len()) };
            Shm { id, addr }
        }

        pub fn read(&self) -> Vec<u8> {
            let mut buf = vec![0u8; 14];
            // SAFETY: 14 bytes of the attached 4096-byte segment.
            unsafe { std::ptr::copy_nonoverlapping(self.addr.cast(), buf.as_mut_ptr(), 14) };
            buf
        }
    }

    impl Drop for Shm {
        fn drop(&mut self) {
            // SAFETY: detach our mapping and remove the segment we made.
            unsafe {
                libc::shmdt(self.addr);
                libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }

    /// A POSIX message queue (mode 0600, owned by `uid`); unlinked on drop.
    pub struct Mq {
        name: CString,
    }

    impl Mq {
        pub fn create(name: &str, uid: u32) -> Mq {
            let name = CString::new(name).unwrap();
            // SAFETY: a nul-terminated name, O_CREAT with a mode and null
            // attributes (the defaults).
            let q = unsafe {
                libc::mq_open(
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_RDWR,
                    0o600 as libc::mode_t,
                    std::ptr::null_mut::<libc::mq_attr>(),
                )
            };
            assert!(q >= 0, "mq_open: {}", std::io::Error::last_os_error());
            // SAFETY: fchown on the queue's descriptor (a file on the mqueue
            // filesystem), then close it.
            unsafe {
                libc::fchown(q, uid, uid);
                libc::mq_close(q);
            }
            Mq { name }
        }
    }

    impl Drop for Mq {
        fn drop(&mut self) {
            // SAFETY: removes the queue we made, by its name.
            unsafe { libc::mq_unlink(self.name.as_ptr()) };
        }
    }
}

mod http_token;
