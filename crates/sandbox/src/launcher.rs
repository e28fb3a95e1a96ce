//! The launcher the server places before every command it starts:
//!
//! ```text
//! codex-sandbox-exec [--lifeline FD] [--exec-notify FD] [--program PATH] [--report] [--report-fd FD] [--tty FD [--tty-size ROWSxCOLS]] [--netns FD [--userns FD]] (--spec JSON | --unconfined) -- ARGV...
//! codex-sandbox-exec --make-netns FD
//! ```
//!
//! `--spec` confines the command to a sandbox spec (JSON, see
//! [`SandboxSpec`]); `--unconfined` runs it outside any sandbox (an
//! escalated program, a call without a sandbox). Either way the launcher
//! stays as the command's supervisor (see [`crate::launch`]): nothing the
//! command starts outlives it, and the launcher exits the way it did.
//! `--lifeline FD` is the read end of a pipe whose write end only the server
//! holds: when it closes, everything is killed. `--program PATH` is the file
//! to execute when it is not `ARGV[0]` (an escalated program run from the
//! very file the server checked, `/proc/self/fd/N`). `--report` prints what
//! the sandbox enforced on stderr (`applied: JSON`, see [`crate::Applied`])
//! before the command starts (the server's `doctor` and start-up check).
//! `--report-fd FD` (with `--spec`) writes the same report, as JSON alone,
//! to the write end of a pipe and closes it, from the process that
//! confines itself, right before the exec: the server learns which
//! read-only subpaths the call really protects (none when no mount
//! namespace could be had) from the only process that knows, before any
//! sandboxed code runs; the supervisors close their copies at once, so the
//! server sees the end of the pipe then (or when the launcher fails,
//! having written nothing).
//! `--tty FD` (a socket): the command gets a pseudo-terminal (a background
//! process's), made by the process that confines itself, from the
//! sandbox's private `devpts` when it has one (the host's otherwise), of
//! `--tty-size` (default 24x80): its slave becomes the command's stdin,
//! stdout, stderr and the controlling terminal of its new session (so
//! Ctrl-C interrupts its processes), and its master is sent on `FD` to the
//! server, before the exec.
//! `--exec-notify FD` (with `--spec`) is the socket on which the seccomp
//! listener that hands every exec to the server is sent (see
//! [`crate::Launch::exec_notify`]).
//! `--netns FD [--userns FD]` (with `--spec`, network off): the client's
//! shared loopback network (`/proc/PID/ns/net`, and the user namespace
//! owning it) to join instead of making a network namespace (see
//! [`crate::loopback`]). `--make-netns FD` makes such a network, sends its
//! namespaces on the socket `FD` and exits (0, or 126 with the reason on
//! stderr).
//!
//! Shared by the small `codex-sandbox-exec` binary and the server's hidden
//! `sandbox-exec` mode (its fallback).

use std::ffi::OsString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::{Launch, SandboxSpec};

/// Exit status when the program was not run, as a shell reports a command
/// it could not execute.
pub const EXIT_NOT_RUN: u8 = 126;

/// Starts the command; returns (an exit status, after printing why on
/// stderr prefixed with `name`) only on failure. `args` are the arguments
/// after the program name (or after `sandbox-exec`).
pub fn main(name: &str, args: Vec<OsString>) -> u8 {
    if args.first().is_some_and(|a| a == "--make-netns") {
        let made = match args.as_slice() {
            [_, fd] => fd
                .to_str()
                .and_then(|s| s.parse().ok())
                .filter(|&fd: &RawFd| fd > 2)
                .ok_or_else(|| format!("invalid --make-netns {fd:?}"))
                .and_then(|fd| take_fd("--make-netns", fd))
                .and_then(crate::loopback::make),
            _ => Err(format!("usage: {name} --make-netns FD")),
        };
        return match made {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("{name}: {message}");
                EXIT_NOT_RUN
            }
        };
    }
    let message = match parse(name, args) {
        Ok(launch) => crate::launch(launch).to_string(),
        Err(message) => message,
    };
    eprintln!("{name}: {message}");
    EXIT_NOT_RUN
}

fn parse(name: &str, args: Vec<OsString>) -> Result<Launch, String> {
    let usage = || {
        format!(
            "usage: {name} [--lifeline FD] [--exec-notify FD] [--program PATH] [--report] [--report-fd FD] [--tty FD [--tty-size ROWSxCOLS]] [--netns FD [--userns FD]] (--spec <JSON> | --unconfined) -- ARGV... | --make-netns FD"
        )
    };
    let mut it = args.into_iter();
    let mut lifeline = None;
    let mut exec_notify = None;
    let mut program = None;
    let mut spec = None;
    let mut unconfined = false;
    let mut report = false;
    let mut report_fd = None;
    let mut tty_fd = None;
    let mut tty_size = (24u16, 80u16);
    let mut netns = None;
    let mut userns = None;
    loop {
        let Some(arg) = it.next() else {
            return Err(usage());
        };
        match arg.to_str() {
            Some(
                flag @ ("--lifeline" | "--exec-notify" | "--report-fd" | "--tty" | "--netns"
                | "--userns"),
            ) => {
                let fd = it.next().ok_or_else(usage)?;
                let fd: RawFd = fd
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .filter(|&fd| fd > 2)
                    .ok_or_else(|| format!("invalid {flag} {fd:?}"))?;
                let fd = Some(take_fd(flag, fd)?);
                match flag {
                    "--lifeline" => lifeline = fd,
                    "--exec-notify" => exec_notify = fd,
                    "--tty" => tty_fd = fd,
                    "--netns" => netns = fd,
                    "--userns" => userns = fd,
                    _ => report_fd = fd,
                }
            }
            Some("--program") => program = Some(it.next().ok_or_else(usage)?),
            Some("--spec") => {
                let json = it.next().ok_or_else(usage)?;
                let json = json.to_str().ok_or("--spec is not UTF-8")?;
                let parsed: SandboxSpec = serde_json::from_str(json)
                    .map_err(|e| format!("invalid --spec {json}: {e}"))?;
                spec = Some(parsed);
            }
            Some("--unconfined") => unconfined = true,
            Some("--report") => report = true,
            Some("--tty-size") => {
                let size = it.next().ok_or_else(usage)?;
                tty_size = size
                    .to_str()
                    .and_then(|s| s.split_once('x'))
                    .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)))
                    .filter(|&(r, c): &(u16, u16)| r > 0 && c > 0)
                    .ok_or_else(|| {
                        format!("invalid --tty-size {size:?} (ROWSxCOLS, e.g. 24x80)")
                    })?;
            }
            Some("--") => break,
            _ => return Err(usage()),
        }
    }
    if spec.is_some() == unconfined
        || (unconfined && (exec_notify.is_some() || report_fd.is_some() || netns.is_some()))
        || (userns.is_some() && netns.is_none())
    {
        return Err(usage());
    }
    let argv: Vec<OsString> = it.collect();
    if argv.is_empty() {
        return Err(usage());
    }
    Ok(Launch {
        spec,
        lifeline,
        argv,
        program,
        report,
        report_fd,
        namespaces: true,
        exec_notify,
        tty: tty_fd.map(|channel| crate::Terminal {
            channel,
            rows: tty_size.0,
            cols: tty_size.1,
        }),
        loopback: netns.map(|net| crate::loopback::Held { net, user: userns }),
    })
}

/// Takes ownership of an inherited fd: it must be open and not reached by
/// the command (close-on-exec is set).
fn take_fd(flag: &str, fd: RawFd) -> Result<OwnedFd, String> {
    let flags = nix::fcntl::fcntl(borrow(fd), nix::fcntl::FcntlArg::F_GETFD)
        .map_err(|e| format!("{flag} {fd} is not an open fd: {e}"))?;
    let flags = nix::fcntl::FdFlag::from_bits_truncate(flags) | nix::fcntl::FdFlag::FD_CLOEXEC;
    nix::fcntl::fcntl(borrow(fd), nix::fcntl::FcntlArg::F_SETFD(flags))
        .map_err(|e| format!("{flag} {fd}: {e}"))?;
    // SAFETY: the fd was handed to this process for it alone (the server
    // passes it on the command line), it is open (checked above), and
    // nothing else in this process refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for fcntl on an fd number, which is harmless on a
    // closed fd (EBADF); see `take_fd`.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_spec_and_argv() {
        let launch = parse(
            "x",
            os(&[
                "--spec",
                r#"{"writable_roots":["/tmp"],"read_only_subpaths":[],"network":false}"#,
                "--",
                "/bin/bash",
                "-c",
                "true",
            ]),
        )
        .unwrap();
        let spec = launch.spec.unwrap();
        assert_eq!(spec.writable_roots, vec![std::path::PathBuf::from("/tmp")]);
        assert_eq!(launch.argv, os(&["/bin/bash", "-c", "true"]));
        let launch = parse(
            "x",
            os(&[
                "--program",
                "/proc/self/fd/9",
                "--unconfined",
                "--",
                "git",
                "status",
            ]),
        )
        .unwrap();
        assert!(launch.spec.is_none());
        assert_eq!(launch.program, Some(OsString::from("/proc/self/fd/9")));
    }

    #[test]
    fn rejects_malformed_invocations() {
        let usage = "usage: x [--lifeline FD] [--exec-notify FD] [--program PATH] [--report] [--report-fd FD] [--tty FD [--tty-size ROWSxCOLS]] [--netns FD [--userns FD]] (--spec <JSON> | --unconfined) -- ARGV... | --make-netns FD";
        assert!(
            parse("x", os(&["--spec", "{}", "--", "y"]))
                .unwrap_err()
                .contains("invalid --spec")
        );
        assert_eq!(parse("x", os(&["/bin/true"])).unwrap_err(), usage);
        assert_eq!(parse("x", os(&["--", "/bin/true"])).unwrap_err(), usage);
        let both = os(&[
            "--unconfined",
            "--spec",
            r#"{"writable_roots":[],"read_only_subpaths":[],"network":true}"#,
            "--",
            "y",
        ]);
        assert_eq!(parse("x", both).unwrap_err(), usage);
        assert_eq!(parse("x", os(&["--unconfined", "--"])).unwrap_err(), usage);
        assert!(
            parse("x", os(&["--lifeline", "1", "--unconfined", "--", "y"]))
                .unwrap_err()
                .contains("invalid --lifeline")
        );
        assert!(
            parse("x", os(&["--report-fd", "2", "--unconfined", "--", "y"]))
                .unwrap_err()
                .contains("invalid --report-fd")
        );
        // A network to join is for a sandbox, and a user namespace comes
        // with a network namespace.
        // (Each parse takes the fd it is given: one each.)
        let open = || {
            let null = std::fs::File::open("/dev/null").unwrap();
            std::os::fd::IntoRawFd::into_raw_fd(null).to_string()
        };
        assert_eq!(
            parse("x", os(&["--netns", &open(), "--unconfined", "--", "y"])).unwrap_err(),
            usage
        );
        let spec = r#"{"writable_roots":[],"read_only_subpaths":[],"network":false}"#;
        assert_eq!(
            parse("x", os(&["--userns", &open(), "--spec", spec, "--", "y"])).unwrap_err(),
            usage
        );
        assert!(
            parse("x", os(&["--netns", "2", "--spec", spec, "--", "y"]))
                .unwrap_err()
                .contains("invalid --netns")
        );
    }

    #[test]
    fn make_netns_takes_one_fd() {
        assert_eq!(main("x", os(&["--make-netns"])), EXIT_NOT_RUN);
        assert_eq!(main("x", os(&["--make-netns", "1"])), EXIT_NOT_RUN);
        assert_eq!(main("x", os(&["--make-netns", "9", "extra"])), EXIT_NOT_RUN);
    }
}
