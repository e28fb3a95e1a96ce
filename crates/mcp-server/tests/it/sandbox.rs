//! The built-in sandbox seen through MCP (issue 4), against the real kernel:
//! Landlock confines writes of Bash and everything it starts, seccomp (and
//! Landlock) keep the network off, escalated programs run outside, and the
//! policy follows `codex/sandbox-state/update`.
//!
//! The workspace is not under `/tmp` (see `util`), so `Session::outside` is
//! outside every writable root. Python is `/usr/bin/python3` (installed by
//! `cargo xtask setup`), not whatever shim `PATH` finds first.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;

use serde_json::json;

use crate::util::{Session, marker, setup};

const PYTHON: &str = "/usr/bin/python3";

fn python() -> &'static str {
    assert!(
        Path::new(PYTHON).is_file(),
        "{PYTHON} missing: run `cargo xtask setup` (installs python3)"
    );
    PYTHON
}

/// The `name=status` lines of the output, in order.
fn statuses(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| {
            l.split_once('=')
                .is_some_and(|(k, v)| !k.contains(' ') && v.parse::<i32>().is_ok())
        })
        .collect()
}

async fn update(s: &Session, policy: serde_json::Value) {
    s.custom(
        "codex/sandbox-state/update",
        Some(json!({"sandboxPolicy": policy, "sandboxCwd": s.work})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_write_confines_bash_children_and_grandchildren() {
    let s = setup().start().await;
    let (work, out) = (s.work.display().to_string(), s.outside());
    let out = out.display();
    let py = python();
    let write = "import sys; open(sys.argv[1], 'w').write('x')";
    let spawn_touch = "import subprocess, sys; sys.exit(subprocess.call(['touch', sys.argv[1]]))";
    let nested = r#"sh -c "echo x > \"\$1\"" inner "$1""#;
    let command = format!(
        "touch {work}/a; echo a=$?\n\
         touch {out}/b; echo b=$?\n\
         {py} -c \"{write}\" {work}/c; echo c=$?\n\
         {py} -c \"{write}\" {out}/d 2>&1 | tail -1; echo d=${{PIPESTATUS[0]}}\n\
         sh -c '{nested}' outer {work}/e; echo e=$?\n\
         sh -c '{nested}' outer {out}/f; echo f=$?\n\
         {py} -c \"{spawn_touch}\" {work}/g; echo g=$?\n\
         {py} -c \"{spawn_touch}\" {out}/h; echo h=$?\n"
    );
    let r = s.shell(&command).await;
    assert_eq!(
        statuses(&r.output),
        ["a=0", "b=1", "c=0", "d=1", "e=0", "f=2", "g=0", "h=1"],
        "{r:?}"
    );
    // Outside the roots the filesystem is a read-only mount (EROFS);
    // without a mount namespace Landlock refuses (EACCES).
    let refusal = if r.output.contains("Read-only file system") {
        [
            "Read-only file system",
            "OSError: [Errno 30] Read-only file system",
        ]
    } else {
        [
            "Permission denied",
            "PermissionError: [Errno 13] Permission denied",
        ]
    };
    assert!(
        r.output
            .contains(&format!("touch: cannot touch '{out}/b': {}", refusal[0])),
        "{r:?}"
    );
    assert!(r.output.contains(refusal[1]), "{r:?}");
    assert!(
        r.output
            .contains(&format!("cannot create {out}/f: {}", refusal[0])),
        "{r:?}"
    );
    for name in ["a", "c", "e", "g"] {
        assert!(s.work.join(name).exists(), "{name} missing: {r:?}");
    }
    let left: Vec<_> = std::fs::read_dir(s.outside()).unwrap().collect();
    assert!(left.is_empty(), "created outside: {left:?}\n{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_dirs_follow_the_exclude_flags() {
    let tmpdir = tempfile::tempdir_in(crate::util::scratch_base()).unwrap();
    let s = setup()
        .env("TMPDIR", tmpdir.path().display().to_string())
        .start()
        .await;
    let in_slash_tmp = Path::new("/tmp").join(format!("codex-exec-mcp-server-it-{}", marker()));
    let in_tmpdir = tmpdir.path().join("f");
    let command = format!(
        "touch {}; echo tmp=$?; touch {}; echo tmpdir=$?",
        in_slash_tmp.display(),
        in_tmpdir.display()
    );
    for (exclude_slash_tmp, exclude_tmpdir_env_var) in
        [(true, false), (false, true), (true, true), (false, false)]
    {
        update(
            &s,
            json!({"type": "workspace-write", "exclude_slash_tmp": exclude_slash_tmp,
                   "exclude_tmpdir_env_var": exclude_tmpdir_env_var}),
        )
        .await;
        let r = s.shell(&command).await;
        let expected = [
            format!("tmp={}", u8::from(exclude_slash_tmp)),
            format!("tmpdir={}", u8::from(exclude_tmpdir_env_var)),
        ];
        let flags = format!(
            "exclude_slash_tmp {exclude_slash_tmp}, exclude_tmpdir_env_var {exclude_tmpdir_env_var}"
        );
        assert_eq!(statuses(&r.output), expected, "{flags}: {r:?}");
        assert_eq!(in_slash_tmp.exists(), !exclude_slash_tmp, "{flags}: {r:?}");
        assert_eq!(
            in_tmpdir.exists(),
            !exclude_tmpdir_env_var,
            "{flags}: {r:?}"
        );
        let _ = std::fs::remove_file(&in_slash_tmp);
        let _ = std::fs::remove_file(&in_tmpdir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_writes_nothing_but_device_files() {
    let s = setup().arg("--sandbox").arg("read-only").start().await;
    let in_slash_tmp = Path::new("/tmp").join(format!("codex-exec-mcp-server-it-{}", marker()));
    let targets = [
        s.work.join("f"),
        s.home().join("f"),
        s.outside().join("f"),
        in_slash_tmp.clone(),
    ];
    let mut command = String::new();
    for (i, t) in targets.iter().enumerate() {
        command.push_str(&format!("(echo x > {}); echo w{i}=$?\n", t.display()));
    }
    command.push_str(&format!(
        "mkdir {}/d; echo mkdir=$?\n\
         echo x > /dev/null; echo null=$?\n\
         echo x > /dev/zero; echo zero=$?\n\
         head -c 4 /dev/urandom > /dev/null; echo urandom=$?\n",
        s.work.display()
    ));
    let r = s.shell(&command).await;
    assert_eq!(
        statuses(&r.output),
        [
            "w0=1",
            "w1=1",
            "w2=1",
            "w3=1",
            "mkdir=1",
            "null=0",
            "zero=0",
            "urandom=0"
        ],
        "{r:?}"
    );
    assert_eq!(
        r.output.matches("Permission denied").count()
            + r.output.matches("Read-only file system").count(),
        5,
        "{r:?}"
    );
    for t in &targets {
        assert!(!t.exists(), "{} was created: {r:?}", t.display());
    }
    assert!(!s.work.join("d").exists());
}

/// A TCP listener on 127.0.0.1 and a UNIX listener outside every writable
/// root, both non-blocking so the test can see whether anyone connected.
struct Listeners {
    tcp: TcpListener,
    unix: UnixListener,
    port: u16,
    unix_path: std::path::PathBuf,
}

impl Listeners {
    fn open(s: &Session) -> Listeners {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let port = tcp.local_addr().unwrap().port();
        let unix_path = s.outside().join("sock");
        let unix = UnixListener::bind(&unix_path).unwrap();
        unix.set_nonblocking(true).unwrap();
        Listeners {
            tcp,
            unix,
            port,
            unix_path,
        }
    }

    /// Bash itself (`/dev/tcp`), Python over TCP, Python over AF_UNIX.
    fn probe(&self) -> String {
        let py = python();
        let (port, sock) = (self.port, self.unix_path.display());
        let tcp = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1]))); print('py-tcp-ok')";
        let unix = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'hi'); print('unix-ok')";
        format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port}; echo bash=$?; exec 3>&-\n\
             {py} -c \"{tcp}\" {port} 2>&1 | tail -1; echo py=${{PIPESTATUS[0]}}\n\
             {py} -c \"{unix}\" {sock}; echo unix=$?\n"
        )
    }

    /// TCP connections that arrived.
    fn tcp_accepted(&self) -> usize {
        std::iter::from_fn(|| self.tcp.accept().ok()).count()
    }

    /// What the UNIX client sent, if it connected.
    fn unix_received(&self) -> Option<String> {
        let (mut conn, _) = self.unix.accept().ok()?;
        conn.set_nonblocking(false).unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        Some(text)
    }
}

/// With the network off, neither TCP nor a UNIX socket a process outside
/// the sandbox listens on (here the test's own) can be reached; with it on,
/// both can. Off, in the client's loopback network (where there is one)
/// TCP sockets can be made but nobody outside listens there; without one
/// no TCP socket can be made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_off_blocks_tcp_and_outside_unix_sockets_and_on_allows_them() {
    let s = setup().start().await;
    let l = Listeners::open(&s);
    let r = s.shell(&l.probe()).await;
    assert_eq!(statuses(&r.output), ["bash=1", "py=1", "unix=1"], "{r:?}");
    let denied = |r: &test_support::mcp::Shell| {
        r.output
            .matches("PermissionError: [Errno 13] Permission denied")
            .count()
    };
    if s.log().contains("client loopback network made") {
        assert!(r.output.contains("connect: Connection refused"), "{r:?}");
        assert!(r.output.contains("ConnectionRefusedError"), "{r:?}");
        assert_eq!(denied(&r), 1, "{r:?}");
    } else {
        assert!(r.output.contains("socket: Permission denied"), "{r:?}");
        assert_eq!(denied(&r), 2, "{r:?}");
    }
    assert_eq!(l.tcp_accepted(), 0, "{r:?}");
    assert_eq!(l.unix_received(), None, "{r:?}");

    // Switched on between two calls: the next call has the network.
    update(
        &s,
        json!({"type": "workspace-write", "network_access": true}),
    )
    .await;
    let r = s.shell(&l.probe()).await;
    assert_eq!(statuses(&r.output), ["bash=0", "py=0", "unix=0"], "{r:?}");
    assert!(r.output.contains("py-tcp-ok"), "{r:?}");
    assert_eq!(l.tcp_accepted(), 2, "{r:?}");
    assert_eq!(l.unix_received().as_deref(), Some("hi"), "{r:?}");

    // And off again.
    update(&s, json!({"type": "workspace-write"})).await;
    let r = s.shell(&l.probe()).await;
    assert_eq!(statuses(&r.output), ["bash=1", "py=1", "unix=1"], "{r:?}");
    assert_eq!(l.tcp_accepted(), 0, "{r:?}");
    assert_eq!(l.unix_received(), None, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalated_programs_write_outside_and_reach_the_network() {
    let s = setup()
        .rules(
            "a.rules",
            &format!(
                r#"
prefix_rule(pattern = ["touch"], decision = "allow")
# Debian's python3 is a link to python3.11: the declaration binds the name
# to the file it resolves to, which then needs no rule of its own.
host_executable(name = "python3", paths = ["{}"])
prefix_rule(pattern = ["python3"], decision = "allow")
"#,
                python()
            ),
        )
        .start()
        .await;
    let l = Listeners::open(&s);
    let out = s.outside();
    let out = out.display();
    // `sh` has no rule: it runs sandboxed, and so does the `touch` it
    // starts itself (dash does not go through the exec wrapper).
    let command = format!(
        "touch {out}/escalated; echo touch=$?\n\
         sh -c 'touch {out}/sandboxed'; echo sh=$?\n{}",
        l.probe()
    );
    let r = s.shell(&command).await;
    // Bash's own `/dev/tcp` stays sandboxed; the escalated Python is not.
    assert_eq!(
        statuses(&r.output),
        ["touch=0", "sh=1", "bash=1", "py=0", "unix=0"],
        "{r:?}"
    );
    assert!(s.outside().join("escalated").exists(), "{r:?}");
    assert!(!s.outside().join("sandboxed").exists(), "{r:?}");
    assert!(r.output.contains("py-tcp-ok"), "{r:?}");
    assert_eq!(l.tcp_accepted(), 1, "{r:?}");
    assert_eq!(l.unix_received().as_deref(), Some("hi"), "{r:?}");
}

/// Installs a seccomp filter making `landlock_create_ruleset` (syscall 444
/// on every architecture) fail with `ENOSYS`, as on a kernel built without
/// Landlock, then execs `argv[1..]`.
const NO_LANDLOCK: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def insn(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
# ld [nr]; jeq 444 ? errno(ENOSYS) : allow
prog = insn(0x20, 0) + insn(0x15, 444, 0, 1) + insn(0x06, 0x00050000 | 38) + insn(0x06, 0x7FFF0000)
buf = ctypes.create_string_buffer(prog, len(prog))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(4, ctypes.addressof(buf))
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, ctypes.get_errno()
assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()
os.execv(sys.argv[1], sys.argv[1:])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_landlock_a_sandboxed_call_fails_closed_naming_what_is_missing() {
    let s = setup()
        .launcher(&[python(), "-c", NO_LANDLOCK])
        .start()
        .await;
    let r = s.shell("echo ran-unsandboxed").await;
    assert_eq!(r.exit_code, 126, "{r:?}");
    assert!(!r.output.contains("ran-unsandboxed"), "{r:?}");
    // Said by the small launcher beside the server, the one it uses.
    assert!(
        r.output
            .contains("codex-sandbox-exec: sandbox unavailable: this kernel has no landlock"),
        "{r:?}"
    );
    assert!(r.output.contains("--sandbox danger-full-access"), "{r:?}");

    // Choosing no sandbox knowingly still works on such a kernel.
    let s = setup()
        .launcher(&[python(), "-c", NO_LANDLOCK])
        .arg("--sandbox")
        .arg("danger-full-access")
        .start()
        .await;
    let r = s.shell("echo ran-unsandboxed").await;
    assert_eq!(r.output, "ran-unsandboxed\n", "{r:?}");
}
