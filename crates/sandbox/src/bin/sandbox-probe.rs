//! `sandbox-probe [--in-place | --quiet] [--no-namespaces] [--loopback | --unjoinable-loopback] SPEC_JSON COMMAND [ARG...]`: runs
//! the command under [`sandbox::launch`] with a [`sandbox::SandboxSpec`]
//! given as JSON, as the server's launcher does, and prints the
//! [`sandbox::Applied`] report as one JSON line prefixed `applied: ` on
//! stderr before the command starts (`--quiet`: no report;
//! `--no-namespaces`: as on a kernel without them). `--in-place`
//! confines this process itself with [`sandbox::apply`] (no namespaces, no
//! supervisor) and execs the command (`--in-place --orphaned-exec-check`:
//! with the exec check's filter installed and its listener already closed).
//! `--loopback`: the launch joins a client's loopback network, made first
//! by this binary's `--make-netns FD` (as the server's launcher makes it);
//! `--unjoinable-loopback`: it is handed one that cannot be joined (an fd
//! of `/dev/null`), and must fall back to a network of its own.
//! A test and debugging tool: the
//! integration tests run every sandbox case through it, in a fresh process,
//! because a sandbox cannot be undone.
//!
//! Exit status 125 when the sandbox cannot be applied, 126 when the
//! launcher could not start the command, 127 when the command cannot be
//! executed in place; otherwise the command's.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "--make-netns")
    {
        let args = std::env::args_os().skip(1).collect();
        return ExitCode::from(sandbox::launcher::main("sandbox-probe", args));
    }
    let mut args = std::env::args_os().skip(1).peekable();
    let in_place = args.next_if(|arg| arg == "--in-place").is_some();
    // With --in-place: the exec check's filter installed and its listener
    // closed at once, as when the server has gone away.
    let orphaned = args.next_if(|arg| arg == "--orphaned-exec-check").is_some();
    let quiet = args.next_if(|arg| arg == "--quiet").is_some();
    let no_namespaces = args.next_if(|arg| arg == "--no-namespaces").is_some();
    let loopback = match args.next_if(|arg| arg == "--loopback" || arg == "--unjoinable-loopback") {
        None => None,
        Some(arg) if arg == "--loopback" => match make_loopback() {
            Ok(held) => Some(held),
            Err(e) => {
                eprintln!("sandbox-probe: no loopback network: {e}");
                return ExitCode::from(125);
            }
        },
        Some(_) => match std::fs::File::open("/dev/null") {
            Ok(null) => Some(sandbox::loopback::Held {
                net: null.into(),
                user: None,
            }),
            Err(e) => {
                eprintln!("sandbox-probe: /dev/null: {e}");
                return ExitCode::from(125);
            }
        },
    };
    let usage = "usage: sandbox-probe [--in-place | --quiet] [--no-namespaces] [--loopback | --unjoinable-loopback] SPEC_JSON COMMAND [ARG...]";
    let (Some(spec), argv) = (args.next(), args.collect::<Vec<OsString>>()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    if argv.is_empty() {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    let spec: sandbox::SandboxSpec = match serde_json::from_slice(spec.as_encoded_bytes()) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("sandbox-probe: invalid spec json: {e}");
            return ExitCode::from(2);
        }
    };
    if !in_place {
        let error = sandbox::launch(sandbox::Launch {
            spec: Some(spec),
            lifeline: None,
            argv,
            program: None,
            report: !quiet,
            report_fd: None,
            namespaces: !no_namespaces,
            exec_notify: None,
            tty: None,
            loopback,
        });
        eprintln!("sandbox-probe: {error}");
        return ExitCode::from(125);
    }
    match sandbox::apply(&spec) {
        Ok(applied) => match serde_json::to_string(&applied) {
            Ok(json) => eprintln!("applied: {json}"),
            Err(e) => {
                eprintln!("sandbox-probe: cannot serialise the report: {e}");
                return ExitCode::from(125);
            }
        },
        Err(e) => {
            eprintln!("sandbox-probe: {e}");
            return ExitCode::from(125);
        }
    }
    if orphaned {
        match sandbox::install_exec_listener() {
            Ok(listener) => drop(listener),
            Err(e) => {
                eprintln!("sandbox-probe: cannot install the exec check: {e}");
                return ExitCode::from(125);
            }
        }
    }
    let error = sandbox::exec(None, &argv);
    eprintln!("sandbox-probe: {error}");
    ExitCode::from(127)
}

/// A client's loopback network, made by this binary's `--make-netns`.
fn make_loopback() -> Result<sandbox::loopback::Held, String> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::os::fd::AsRawFd;
    // This process is single-threaded: nothing else can inherit `theirs`.
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::empty(),
    )
    .map_err(|e| e.to_string())?;
    nix::fcntl::fcntl(
        &ours,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe)
        .arg("--make-netns")
        .arg(theirs.as_raw_fd().to_string())
        .spawn()
        .map_err(|e| e.to_string())?;
    drop(theirs);
    let held = sandbox::loopback::receive(&ours);
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("--make-netns failed ({status})"));
    }
    held
}
