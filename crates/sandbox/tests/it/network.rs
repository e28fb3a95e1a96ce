//! Network confinement: with the network off, no socket but AF_UNIX can be
//! created (seccomp) and TCP connect is denied by Landlock on sockets made
//! before the sandbox (ABI 4+); with it on, TCP works. Each case proves the
//! denial with the errno and with the test's own listener seeing nothing.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::process::Command;

use crate::util::{PROBE, Run, ops, ops_argv, spec};

fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Whether a connection is waiting. The sandboxed process has exited, and
/// the kernel completes the handshake before `accept`, so no waiting is
/// needed.
fn connection_arrived(listener: &TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept failed: {e}"),
    }
}

#[test]
fn network_off_denies_tcp_but_allows_unix_sockets() {
    let root = tempfile::tempdir().unwrap();
    let (listener, port) = listener();
    let run = ops(
        &spec(&[root.path()], &[], false),
        &[
            format!("connect:{port}"),
            "socket:inet:dgram".into(),
            "socket:inet6".into(),
            "socket:netlink:dgram".into(),
            "socket:packet:dgram".into(),
            "socket:unix".into(),
            "socketpair".into(),
        ],
    );
    run.assert_stdout(&["EACCES", "EACCES", "EACCES", "EACCES", "EACCES", "ok", "ok"]);
    if connection_arrived(&listener) {
        run.fail("the listener saw a connection from the sandbox");
    }
    assert!(run.applied().socket_filter);
}

#[test]
fn network_off_denies_io_uring() {
    let root = tempfile::tempdir().unwrap();
    ops(
        &spec(&[root.path()], &[], false),
        &["io_uring_setup".into()],
    )
    .assert_stdout(&["EACCES"]);
}

#[test]
fn network_off_denies_connect_on_a_socket_made_before_the_sandbox() {
    // An unsandboxed Python creates a TCP socket, leaves it open across exec
    // and execs the probe, which sandboxes and runs the connecting Python.
    let root = tempfile::tempdir().unwrap();
    let (listener, port) = listener();
    let spec_json = serde_json::to_string(&spec(&[root.path()], &[], false)).unwrap();
    let inner: Vec<String> = ops_argv(&[format!("connect-fd:10:{port}")])
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    let launcher = "import os, socket, sys\n\
        s = socket.socket()\n\
        os.dup2(s.fileno(), 10)\n\
        os.execv(sys.argv[1], sys.argv[1:])\n";
    let mut command = Command::new("python3");
    command
        .args(["-c", launcher, PROBE, &spec_json])
        .args(&inner);
    let run = Run::new(command);
    run.success();
    if run.applied().landlock_denies_tcp {
        run.assert_stdout(&["EACCES"]);
        if connection_arrived(&listener) {
            run.fail("the listener saw a connection from the sandbox");
        }
    } else {
        // FIXME: before Landlock ABI 4 only the socket filter guards the
        // network, and it cannot see sockets created before the sandbox.
        run.assert_stdout(&["ok"]);
    }
}

#[test]
fn network_on_allows_tcp() {
    let root = tempfile::tempdir().unwrap();
    let (listener, port) = listener();
    let run = ops(
        &spec(&[root.path()], &[], true),
        &[format!("connect:{port}"), "socket:inet:dgram".into()],
    );
    run.assert_stdout(&["ok", "ok"]);
    if !connection_arrived(&listener) {
        run.fail("the listener saw no connection");
    }
    let applied = run.applied();
    assert!(!applied.socket_filter);
    assert!(!applied.landlock_denies_tcp);
}

/// `sandbox-probe FLAG SPEC python3 -c OPS...`.
fn ops_with(flag: &str, spec: &sandbox::SandboxSpec, ops: &[String]) -> Run {
    let mut command = Command::new(PROBE);
    command
        .arg(flag)
        .arg(serde_json::to_string(spec).unwrap())
        .args(ops_argv(ops));
    let run = Run::new(command);
    run.success();
    run
}

/// Issue 18 item 6: in a client's loopback network (joined, see
/// `sandbox::loopback`) IP sockets can be made but reach only that
/// network (the host's listener sees nothing); every other family but
/// UNIX stays refused, and below Landlock ABI 9 UNIX sockets too
/// (`socketpair` aside).
#[test]
fn in_the_clients_loopback_ip_reaches_only_that_network() {
    let root = tempfile::tempdir().unwrap();
    let (listener, port) = listener();
    let run = ops_with(
        "--loopback",
        &spec(&[root.path()], &[], false),
        &[
            format!("connect:{port}"),
            "socket:inet:dgram".into(),
            "socket:inet6".into(),
            "socket:netlink:dgram".into(),
            "socket:packet:dgram".into(),
            "socket:unix".into(),
            "socketpair".into(),
        ],
    );
    let applied = run.applied();
    if applied.network != "loopback" {
        eprintln!(
            "skipped: no loopback network here ({:?})",
            applied.loopback_missing
        );
        return;
    }
    let unix = if applied.landlock_abi >= 9 {
        "ok"
    } else {
        "EACCES"
    };
    run.assert_stdout(&["ECONNREFUSED", "ok", "ok", "EACCES", "EACCES", unix, "ok"]);
    if connection_arrived(&listener) {
        run.fail("the listener saw a connection from the sandbox");
    }
    assert!(run.applied().socket_filter);
    assert!(!run.applied().landlock_denies_tcp);
}

/// A launcher handed a network it cannot join (here an fd of `/dev/null`)
/// fails closed: a network of its own, nothing in it, no IP socket, and
/// the report says why.
#[test]
fn a_loopback_that_cannot_be_joined_leaves_the_call_isolated() {
    let root = tempfile::tempdir().unwrap();
    let run = ops_with(
        "--unjoinable-loopback",
        &spec(&[root.path()], &[], false),
        &["socket:inet".into(), "socket:inet6".into()],
    );
    run.assert_stdout(&["EACCES", "EACCES"]);
    let applied = run.applied();
    assert_ne!(applied.network, "loopback", "{applied:?}");
    assert!(
        applied
            .loopback_missing
            .as_deref()
            .is_some_and(|why| why.contains("cannot join the client's loopback network")),
        "{applied:?}"
    );
}
