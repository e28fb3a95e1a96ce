//! `rogue`: a hostile program for the red-team suite. It is started by the
//! shell tool inside the sandbox (no rule allows it, so it runs there) and
//! speaks the escalation protocol itself on the inherited session socket,
//! choosing every field of its requests.
//!
//! Each subcommand prints one `key=value` line per observation on stdout;
//! the tests assert on those lines and, above all, on marker files outside
//! the writable roots that only a process outside the sandbox could write.
//!
//! - `exec [--file F] [--cwd C] [--env K=V].. [--fd-range A-B=PATH]
//!   [--push-after-run] -- ARGV..`: one forged request, answered as a
//!   wrapper would (stdio handed over on `Escalate`).
//! - `race DIR MARKER ROUNDS`: symlink and directory swaps racing requests.
//! - `garbage`: malformed handshakes and frames, then one valid request.
//! - `fds TOTAL`: more than TOTAL fds sent in handshakes and frames.
//! - `flood COUNT HOLD`: COUNT handshakes in a burst, HOLD of them kept open.
//! - `trickle SECS`: an exec request on the connection, one byte a second,
//!   never finished; reports how long the server listened and its answer.
//! - `spawn-and-kill SECS TRIGGER -- ARGV..`: starts an escalation in a
//!   child process and SIGKILLs the child once the file TRIGGER exists (the
//!   test creates it when it sees the escalated program run: from inside
//!   the sandbox's pid namespace, outside processes cannot be seen).
//! - `wait-file PATH SECS`: waits until PATH exists.
//! - `payload MARKER`: what a planted copy of this binary does when it runs:
//!   write MARKER (only possible outside the sandbox).

use std::ffi::OsString;
use std::fs::File;
use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use protocol::{Conn, ExecRequest, HANDSHAKE, Message, ServerMsg, WrapperMsg};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("rogue-error={e}");
            eprintln!("rogue: {e}");
            ExitCode::from(3)
        }
    }
}

fn run(args: &[OsString]) -> Result<()> {
    let sub = args.get(1).and_then(|s| s.to_str()).unwrap_or("");
    let rest = args.get(2..).unwrap_or_default();
    let text = |i: usize| -> Result<&str> {
        rest.get(i)
            .and_then(|s| s.to_str())
            .ok_or_else(|| format!("{sub}: missing argument {i}"))
    };
    let number = |i: usize| -> Result<usize> {
        text(i)?
            .parse()
            .map_err(|e| format!("{sub}: argument {i}: {e}"))
    };
    match sub {
        "payload" => payload(Path::new(&rest[0])),
        "exec" => exec_cmd(rest),
        "race" => race(Path::new(text(0)?), Path::new(text(1)?), number(2)?),
        "garbage" => garbage(),
        "fds" => many_fds(number(0)?),
        "flood" => flood(number(0)?, number(1)?),
        "trickle" => trickle(number(0)?),
        "spawn-and-kill" => spawn_and_kill(
            number(0)?,
            Path::new(text(1)?),
            rest.get(3..).unwrap_or_default(),
        ),
        "wait-file" => {
            let seen = wait_file(Path::new(text(0)?), Duration::from_secs(number(1)? as u64));
            println!("file-seen={seen}");
            Ok(())
        }
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

/// Writes the marker; succeeds only outside the sandbox.
fn payload(marker: &Path) -> Result<()> {
    std::fs::write(marker, b"escaped\n").map_err(|e| format!("{}: {e}", marker.display()))?;
    println!("payload-wrote={}", marker.display());
    Ok(())
}

// ---------------------------------------------------------------------------
// Talking to the server.

/// The inherited session socket.
fn session() -> Result<BorrowedFd<'static>> {
    let fd: RawFd = std::env::var(protocol::ENV_SOCKET)
        .map_err(|_| format!("{} not set", protocol::ENV_SOCKET))?
        .parse()
        .map_err(|e| format!("{}: {e}", protocol::ENV_SOCKET))?;
    sys::borrow(fd)
}

/// Opens a private connection to the server.
fn connect() -> Result<Conn> {
    let (conn, theirs) = Conn::pair().map_err(|e| e.to_string())?;
    protocol::send_handshake(session()?, theirs.as_fd(), None).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// The environment as `K=V` entries.
fn own_env() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect()
}

/// What to send once the server says `Escalate`.
struct Handover<'a> {
    targets: Vec<i32>,
    fds: Vec<BorrowedFd<'a>>,
}

impl Handover<'_> {
    fn stdio() -> Handover<'static> {
        Handover {
            targets: vec![0, 1, 2],
            fds: sys::stdio().to_vec(),
        }
    }
}

/// One request, answered as a wrapper would; returns a short verdict:
/// `run`, `deny:..`, `error:..`, `exited:N`, `signaled:N`, `closed`.
/// One request, sent as the real wrapper sends it: inline in the handshake
/// when it fits (answered at once by the server's accepting thread), on the
/// connection otherwise.
fn ask(request: ExecRequest, handover: &Handover<'_>, push_after_run: bool) -> Result<String> {
    let frame = protocol::encode_frame(&WrapperMsg::Exec(request));
    let (conn, theirs) = Conn::pair().map_err(|e| e.to_string())?;
    let inline = protocol::send_handshake(session()?, theirs.as_fd(), Some(&frame))
        .map_err(|e| e.to_string())?;
    drop(theirs);
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    if !inline && let Err(e) = conn.send_frame(&frame, &[]) {
        return Ok(format!("send-failed:{e}"));
    }
    answer(&conn, handover, push_after_run)
}

/// The server's answer to a request, played out as a wrapper would.
fn answer(conn: &Conn, handover: &Handover<'_>, push_after_run: bool) -> Result<String> {
    let answer = match conn.recv::<ServerMsg>() {
        Ok((answer, _)) => answer,
        Err(protocol::Error::Closed) => return Ok("closed".into()),
        Err(e) => return Ok(format!("recv-failed:{e}")),
    };
    Ok(match answer {
        ServerMsg::Run if push_after_run => {
            // Ignore the answer and hand fds over anyway.
            let sent = conn.send(
                &WrapperMsg::Fds {
                    targets: handover.targets.clone(),
                },
                &handover.fds,
            );
            let after = match conn.recv::<ServerMsg>() {
                Ok((msg, _)) => format!("{msg:?}"),
                Err(e) => format!("{e}"),
            };
            format!("run;pushed={};then={after}", sent.is_ok())
        }
        ServerMsg::Run => "run".into(),
        ServerMsg::Deny { reason } => format!("deny:{reason}"),
        ServerMsg::Error(m) => format!("error:{m}"),
        ServerMsg::Escalate => {
            if let Err(e) = conn.send(
                &WrapperMsg::Fds {
                    targets: handover.targets.clone(),
                },
                &handover.fds,
            ) {
                return Ok(format!("escalate;send-failed:{e}"));
            }
            conn.set_read_timeout(Some(Duration::from_secs(60)))
                .map_err(|e| e.to_string())?;
            match conn.recv::<ServerMsg>() {
                Ok((ServerMsg::Exited(c), _)) => format!("exited:{c}"),
                Ok((ServerMsg::Signaled(n), _)) => format!("signaled:{n}"),
                Ok((ServerMsg::Error(m), _)) => format!("escalate;error:{m}"),
                Ok((other, _)) => format!("escalate;unexpected:{other:?}"),
                Err(e) => format!("escalate;recv-failed:{e}"),
            }
        }
        other => format!("unexpected:{other:?}"),
    })
}

fn request(file: &str, cwd: &str, argv: &[&str], env: Vec<OsString>) -> ExecRequest {
    ExecRequest {
        file: file.into(),
        argv: argv.iter().map(OsString::from).collect(),
        env,
        cwd: cwd.into(),
    }
}

fn cwd() -> String {
    std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/".into())
}

// ---------------------------------------------------------------------------
// exec

fn exec_cmd(args: &[OsString]) -> Result<()> {
    let mut file: Option<OsString> = None;
    let mut cwd_arg: Option<OsString> = None;
    let mut env = own_env();
    let mut ranges: Vec<(i32, i32, PathBuf)> = Vec::new();
    let mut push_after_run = false;
    let mut it = args.iter();
    let mut argv: Vec<OsString> = Vec::new();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a:?} needs a value"));
        match a.to_str() {
            Some("--file") => file = Some(value()?),
            Some("--cwd") => cwd_arg = Some(value()?),
            Some("--env") => env.push(value()?),
            Some("--no-env") => env.clear(),
            Some("--push-after-run") => push_after_run = true,
            Some("--fd-range") => {
                let v = value()?.into_string().map_err(|v| format!("{v:?}"))?;
                let (range, path) = v.split_once('=').ok_or("--fd-range A-B=PATH")?;
                let (a, b) = range.split_once('-').ok_or("--fd-range A-B=PATH")?;
                ranges.push((
                    a.parse().map_err(|_| "bad range")?,
                    b.parse().map_err(|_| "bad range")?,
                    path.into(),
                ));
            }
            Some("--") => {
                argv = it.by_ref().cloned().collect();
                break;
            }
            _ => return Err(format!("exec: unexpected argument {a:?}")),
        }
    }
    let file = file
        .or_else(|| argv.first().cloned())
        .ok_or("exec: no file")?;
    let req = ExecRequest {
        file,
        argv,
        env,
        cwd: cwd_arg.unwrap_or_else(|| cwd().into()),
    };
    let opened: Vec<(i32, i32, File)> = ranges
        .into_iter()
        .map(|(a, b, p)| {
            File::open(&p)
                .map(|f| (a, b, f))
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect::<Result<_>>()?;
    let mut handover = Handover::stdio();
    for (a, b, f) in &opened {
        for t in *a..=*b {
            handover.targets.push(t);
            handover.fds.push(f.as_fd());
        }
    }
    let verdict = ask(req, &handover, push_after_run)?;
    println!("reply={verdict}");
    Ok(())
}

// ---------------------------------------------------------------------------
// race

/// Swaps, in a tight loop, names in DIR between a real program outside the
/// sandbox and planted ones (a copy of this binary, a shell script), while
/// requests name them. Prints how many were escalated and how many refused.
fn race(dir: &Path, marker: &Path, rounds: usize) -> Result<()> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let me = std::env::current_exe().map_err(|e| io("current_exe", e))?;
    let planted_dir = dir.join("d-planted");
    std::fs::create_dir_all(&planted_dir).map_err(|e| io("mkdir", e))?;
    let elf = planted_dir.join("true");
    std::fs::copy(&me, &elf).map_err(|e| io("copy", e))?;
    let script = dir.join("f-script");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho escaped > '{}'\n", marker.display()),
    )
    .map_err(|e| io("script", e))?;
    for f in [&elf, &script] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io("chmod", e))?;
    }
    // Pairs exchanged atomically (renameat2 RENAME_EXCHANGE):
    // a directory vs a symlink to /usr/bin; a planted ELF vs a symlink to
    // /usr/bin/true; a script vs a symlink to /usr/bin/true.
    let real = which_true();
    let real_dir = real.parent().unwrap_or(Path::new("/usr/bin")).to_path_buf();
    let elf_file = dir.join("f-elf");
    std::fs::copy(&me, &elf_file).map_err(|e| io("copy", e))?;
    std::fs::set_permissions(&elf_file, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| io("chmod", e))?;
    let link = |target: &Path, name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, &p).map_err(|e| io("symlink", e))?;
        Ok(p)
    };
    let pairs = vec![
        (planted_dir.clone(), link(&real_dir, "d-link")?),
        (elf_file.clone(), link(&real, "f-elf-link")?),
        (script.clone(), link(&real, "f-script-link")?),
    ];
    let requested = [
        planted_dir.join("true"),
        elf_file.clone(),
        script.clone(),
        dir.join("d-link/true"),
        dir.join("f-elf-link"),
        dir.join("f-script-link"),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (a, b) in &pairs {
                    if sys::exchange(a, b).is_ok() {
                        swaps += 1;
                    }
                }
            }
            swaps
        })
    };
    let (mut escalated, mut refused, mut other) = (0, 0, 0);
    let marker_s = marker.display().to_string();
    for i in 0..rounds {
        let file = &requested[i % requested.len()];
        let f = file.display().to_string();
        let req = request(&f, &cwd(), &["true", "payload", &marker_s], own_env());
        match ask(req, &Handover::stdio(), false)?.as_str() {
            "exited:0" => escalated += 1,
            "run" => refused += 1,
            v => {
                other += 1;
                println!("race-other={v}");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().map_err(|_| "swapper panicked")?;
    println!("race-escalated={escalated}");
    println!("race-refused={refused}");
    println!("race-other={other}");
    println!("race-swaps={swaps}");
    Ok(())
}

/// `name` looked up in `/usr/bin` and `/bin`.
fn resolve(name: &str) -> PathBuf {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The real `true` outside the sandbox.
fn which_true() -> PathBuf {
    ["/usr/bin/true", "/bin/true"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/true"))
}

// ---------------------------------------------------------------------------
// garbage

/// What a rogue wrapper does after `Escalate`; returns a note.
type Misbehave = Box<dyn Fn(&Conn) -> String>;

/// Malformed handshakes and frames. After each, the session must still work.
fn garbage() -> Result<()> {
    let session = session()?;
    let true_ = which_true().display().to_string();
    let report = |step: &str, v: String| println!("garbage {step}={v}");

    // Handshake datagrams.
    let (a, b) = UnixStream::pair().map_err(|e| e.to_string())?;
    // A socket that is not a stream (datagram sockets cannot be made in
    // the sandbox with the network off).
    let (da, _db) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    let (pr, _pw) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let dgram = |payload: &[u8], fds: &[RawFd]| -> String {
        let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
            vec![]
        } else {
            vec![ControlMessage::ScmRights(fds)]
        };
        match sendmsg::<()>(
            session.as_raw_fd(),
            &[IoSlice::new(payload)],
            &cmsgs,
            MsgFlags::empty(),
            None,
        ) {
            Ok(_) => "sent".into(),
            Err(e) => format!("send-failed:{e}"),
        }
    };
    report("hs-wrong-magic", dgram(b"XXXX", &[b.as_raw_fd()]));
    report("hs-no-fd", dgram(HANDSHAKE, &[]));
    report(
        "hs-two-fds",
        dgram(HANDSHAKE, &[b.as_raw_fd(), b.as_raw_fd()]),
    );
    report("hs-pipe-fd", dgram(HANDSHAKE, &[pr.as_raw_fd()]));
    report("hs-dgram-fd", dgram(HANDSHAKE, &[da.as_raw_fd()]));
    report("hs-oversized", dgram(&[b'C'; 4096], &[b.as_raw_fd()]));
    report("hs-empty", dgram(b"", &[]));
    drop((a, b));

    // Raw bytes on a connection: (name, bytes).
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = vec![0u8; 4096];
    for byte in random.iter_mut() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        *byte = rng as u8;
    }
    let mut four_gib = u32::MAX.to_le_bytes().to_vec();
    four_gib.extend_from_slice(&[1, 2, 3, 4]);
    let mut truncated = 100u32.to_le_bytes().to_vec();
    truncated.extend_from_slice(&[1; 10]);
    let mut unknown = 1u32.to_le_bytes().to_vec();
    unknown.push(0x7f);
    let fds_first = protocol::encode_frame(&WrapperMsg::Fds { targets: vec![] });
    let server_msg = protocol::encode_frame(&ServerMsg::Run);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random", random),
        ("len-4gib", four_gib),
        ("truncated", truncated),
        ("unknown-tag", unknown),
        ("fds-first", fds_first.clone()),
        ("server-msg", server_msg),
        ("nothing", Vec::new()),
    ];
    for (name, bytes) in cases {
        let conn = connect()?;
        let mut s = UnixStream::from(conn.into_fd());
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let _ = s.read_to_end(&mut reply);
        report(name, show_reply(&reply));
    }

    // The same kinds of junk inline in the handshake.
    let exec_true = protocol::encode_frame(&WrapperMsg::Exec(request(
        &true_,
        "/",
        &["true"],
        own_env(),
    )));
    let mut trailing = exec_true.clone();
    trailing.push(0);
    let mut unknown_inline = 1u32.to_le_bytes().to_vec();
    unknown_inline.push(0x7f);
    let inline_cases: Vec<(&str, Vec<u8>)> = vec![
        ("inline-fds-first", fds_first.clone()),
        ("inline-unknown-tag", unknown_inline),
        ("inline-trailing-byte", trailing),
        (
            "inline-truncated",
            exec_true[..exec_true.len() - 1].to_vec(),
        ),
    ];
    for (name, frame) in inline_cases {
        let (conn, theirs) = Conn::pair().map_err(|e| e.to_string())?;
        let sent = protocol::send_handshake(session, theirs.as_fd(), Some(&frame));
        drop(theirs);
        let mut s = UnixStream::from(conn.into_fd());
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        report(name, format!("{sent:?}:{}", show_reply(&reply)));
    }

    // A connection whose send buffer we filled before handing it over: the
    // server cannot write its answer, and must not wait for room (it would
    // stall every other exec of the shell).
    {
        let (ours, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
        theirs.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut junk = 0;
        while let Ok(n) = (&theirs).write(&[0u8; 4096]) {
            junk += n;
        }
        // The flag belongs to the open file, which the server shares.
        theirs.set_nonblocking(false).map_err(|e| e.to_string())?;
        // No rule matches echo: decided (Run) and answered on the spot.
        let run_echo = protocol::encode_frame(&WrapperMsg::Exec(request(
            "/bin/echo",
            "/",
            &["echo"],
            own_env(),
        )));
        let sent = protocol::send_handshake(session, theirs.as_fd(), Some(&run_echo));
        drop(theirs);
        // Another exec is answered while that one is stuck.
        let other = ask(
            request(&true_, "/", &["true"], own_env()),
            &Handover::stdio(),
            false,
        )?;
        let mut s = ours;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        report(
            "inline-stuffed",
            format!(
                "{sent:?}:other={other}:extra={}",
                reply.len() as i64 - junk as i64
            ),
        );
    }

    // A 16 MiB frame (the limit) of junk: allocated, rejected, freed.
    {
        let conn = connect()?;
        let mut s = UnixStream::from(conn.into_fd());
        let len = protocol::MAX_FRAME_LEN as u32;
        let mut frame = len.to_le_bytes().to_vec();
        frame.push(0x01);
        frame.resize(4 + len as usize, 0xff);
        let _ = s.write_all(&frame);
        let mut reply = Vec::new();
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = s.read_to_end(&mut reply);
        report("max-frame-junk", format!("{} reply bytes", reply.len()));
    }

    // Valid request for an allowed program, then misbehaviour after Escalate.
    let after_escalate: Vec<(&str, Misbehave)> = vec![
        (
            "escalate-then-garbage",
            Box::new(|c: &Conn| {
                let mut s = UnixStream::from(c.as_fd().try_clone_to_owned().expect("dup"));
                let _ = s.write_all(&[0xff; 64]);
                "written".into()
            }),
        ),
        (
            "escalate-duplicate-targets",
            Box::new(|c: &Conn| {
                let out = std::io::stdout();
                let r = c.send(
                    &WrapperMsg::Fds {
                        targets: vec![1, 1],
                    },
                    &[out.as_fd(), out.as_fd()],
                );
                format!("{r:?}")
            }),
        ),
        (
            "escalate-huge-target",
            Box::new(|c: &Conn| {
                let out = std::io::stdout();
                let r = c.send(
                    &WrapperMsg::Fds {
                        targets: vec![1_000_000],
                    },
                    &[out.as_fd()],
                );
                format!("{r:?}")
            }),
        ),
        (
            "escalate-count-mismatch",
            Box::new(|c: &Conn| {
                let out = std::io::stdout();
                let r = c.send(
                    &WrapperMsg::Fds {
                        targets: vec![1, 2, 3],
                    },
                    &[out.as_fd()],
                );
                format!("{r:?}")
            }),
        ),
        (
            "escalate-then-close",
            Box::new(|_c: &Conn| "closing".into()),
        ),
    ];
    for (name, act) in after_escalate {
        let conn = connect()?;
        let req = request(&true_, "/", &["true"], own_env());
        conn.send(&WrapperMsg::Exec(req), &[])
            .map_err(|e| e.to_string())?;
        let first = conn.recv::<ServerMsg>().map(|(m, _)| m);
        let did = act(&conn);
        let then = if name == "escalate-then-close" {
            drop(conn);
            "closed".to_string()
        } else {
            match conn.recv::<ServerMsg>() {
                Ok((m, _)) => format!("{m:?}"),
                Err(e) => format!("{e}"),
            }
        };
        report(name, format!("{first:?};{did};{then}"));
    }

    // Finally a normal escalation on the same session.
    let req = request(&true_, "/", &["true"], own_env());
    report("final", ask(req, &Handover::stdio(), false)?);
    Ok(())
}

// ---------------------------------------------------------------------------
// fds

/// Sends at least `total` fds: 253 (the kernel's per-message cap) per
/// handshake datagram and per frame, then one valid request.
fn many_fds(total: usize) -> Result<()> {
    sys::raise_nofile();
    let session = session()?;
    let null = File::open("/dev/null").map_err(|e| e.to_string())?;
    let batch: Vec<OwnedFd> = (0..253)
        .map(|_| null.as_fd().try_clone_to_owned())
        .collect::<std::io::Result<_>>()
        .map_err(|e| format!("dup: {e}"))?;
    let raw: Vec<RawFd> = batch.iter().map(|f| f.as_raw_fd()).collect();
    let borrowed: Vec<BorrowedFd<'_>> = batch.iter().map(|f| f.as_fd()).collect();
    let true_ = which_true().display().to_string();
    let mut sent = 0;
    let mut round = 0;
    while sent < total {
        round += 1;
        // A handshake carrying 253 fds.
        let r = sendmsg::<()>(
            session.as_raw_fd(),
            &[IoSlice::new(HANDSHAKE)],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::empty(),
            None,
        );
        println!("fds round{round} handshake={r:?}");
        sent += raw.len();
        // An exec frame carrying 253 fds (raw send: Conn::send caps at 64).
        let conn = connect()?;
        let frame = protocol::encode_frame(&WrapperMsg::Exec(request(
            &true_,
            "/",
            &["true"],
            own_env(),
        )));
        let r = sendmsg::<()>(
            conn.as_fd().as_raw_fd(),
            &[IoSlice::new(&frame)],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
        let reply = conn.recv::<ServerMsg>().map(|(m, _)| m);
        println!("fds round{round} exec-with-fds={r:?} reply={reply:?}");
        sent += raw.len();
        // An escalation whose Fds frame carries 253 fds for 3 targets.
        let conn = connect()?;
        conn.send(
            &WrapperMsg::Exec(request(&true_, "/", &["true"], own_env())),
            &[],
        )
        .map_err(|e| e.to_string())?;
        let first = conn.recv::<ServerMsg>().map(|(m, _)| m);
        let frame = protocol::encode_frame(&WrapperMsg::Fds {
            targets: vec![0, 1, 2],
        });
        let r = sendmsg::<()>(
            conn.as_fd().as_raw_fd(),
            &[IoSlice::new(&frame)],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
        let reply = conn.recv::<ServerMsg>().map(|(m, _)| m);
        println!("fds round{round} escalate={first:?} fds-frame={r:?} reply={reply:?}");
        sent += raw.len();
        // A legitimate escalation with 64 fds (the protocol's cap).
        let mut handover = Handover::stdio();
        for (i, fd) in borrowed.iter().take(protocol::MAX_FDS - 3).enumerate() {
            handover.targets.push(3 + i as i32);
            handover.fds.push(*fd);
        }
        let v = ask(request(&true_, "/", &["true"], own_env()), &handover, false)?;
        println!("fds round{round} sixty-four={v}");
        sent += handover.fds.len();
    }
    println!("fds sent={sent}");
    let req = request(&true_, "/", &["true"], own_env());
    println!("fds final={}", ask(req, &Handover::stdio(), false)?);
    Ok(())
}

/// A reply read to the end of the connection, for the report.
fn show_reply(reply: &[u8]) -> String {
    match reply.get(4..) {
        Some(body) => match ServerMsg::decode_body(body) {
            Ok(m) => format!("{m:?}"),
            Err(e) => format!("undecodable:{e}"),
        },
        None => format!("{} bytes", reply.len()),
    }
}

// ---------------------------------------------------------------------------
// trickle

/// Sends an `Exec` frame one byte per second (waiting for the server's
/// answer in between), stopping one byte short, for at most `secs`.
fn trickle(secs: usize) -> Result<()> {
    let conn = connect()?;
    let frame = protocol::encode_frame(&WrapperMsg::Exec(request(
        &which_true().display().to_string(),
        "/",
        &["true"],
        own_env(),
    )));
    let mut s = UnixStream::from(conn.into_fd());
    let started = Instant::now();
    let mut sent = 0;
    let answer = loop {
        if started.elapsed() > Duration::from_secs(secs as u64) {
            break "none".to_owned();
        }
        if sent + 1 < frame.len() {
            if s.write_all(&frame[sent..sent + 1]).is_err() {
                break "closed".to_owned();
            }
            sent += 1;
        }
        // The pace of the trickle: the next byte after a second without an
        // answer.
        let mut polled = [nix::poll::PollFd::new(
            s.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut polled, nix::poll::PollTimeout::from(1000u16)).unwrap_or(0) > 0 {
            let mut reply = Vec::new();
            let _ = s.read_to_end(&mut reply);
            break show_reply(&reply);
        }
    };
    println!(
        "trickle secs={} sent={sent} answer={answer}",
        started.elapsed().as_secs()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// flood

/// `count` handshakes as fast as the socket takes them; the first `hold`
/// connections are kept open (idle) until the burst is over.
fn flood(count: usize, hold: usize) -> Result<()> {
    sys::raise_nofile();
    let session = session()?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(hold);
    let mut failed = 0;
    for i in 0..count {
        let (ours, theirs) = Conn::pair().map_err(|e| e.to_string())?;
        if protocol::send_handshake(session, theirs.as_fd(), None).is_err() {
            failed += 1;
        }
        if i < hold {
            held.push(ours);
        }
    }
    println!(
        "flood sent={} failed={failed} secs={:.2}",
        count - failed,
        started.elapsed().as_secs_f64()
    );
    let true_ = which_true().display().to_string();
    let req = request(&true_, "/", &["true"], own_env());
    println!(
        "flood while-held={}",
        ask(req.clone(), &Handover::stdio(), false)?
    );
    drop(held);
    // Once the held connections are gone the server answers again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = ask(req.clone(), &Handover::stdio(), false)?;
        if v == "exited:0" || Instant::now() > deadline {
            println!("flood final={v}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// spawn-and-kill

/// A child process acts as the wrapper of an escalation of ARGV; once
/// `trigger` exists, the child is SIGKILLed.
fn spawn_and_kill(secs: usize, trigger: &Path, argv: &[OsString]) -> Result<()> {
    let argv: Vec<&str> = argv
        .iter()
        .map(|a| a.to_str().ok_or_else(|| "argv must be UTF-8".to_string()))
        .collect::<Result<_>>()?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(me)
        .arg("exec")
        .arg("--file")
        .arg(resolve(argv.first().copied().unwrap_or_default()))
        .arg("--")
        .args(&argv)
        .spawn()
        .map_err(|e| e.to_string())?;
    let seen = wait_file(trigger, Duration::from_secs(secs as u64));
    println!("trigger-seen={seen}");
    child.kill().map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    println!("wrapper-status={status}");
    Ok(())
}

/// Polls for `path` (a condition the test sets) until `within` passes.
fn wait_file(path: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    path.exists()
}

/// The few raw operations: the only place with `unsafe`.
mod sys {
    use std::ffi::CString;
    use std::os::fd::{BorrowedFd, RawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// Borrows the inherited session socket for the life of the process.
    pub fn borrow(fd: RawFd) -> super::Result<BorrowedFd<'static>> {
        // SAFETY: F_GETFD on any integer is harmless; it fails with EBADF
        // when the fd is not open.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(format!("fd {fd} is not open"));
        }
        // SAFETY: the fd is inherited, open (checked above) and never
        // closed by this process.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Stdin, stdout and stderr, borrowed for the life of the process.
    pub fn stdio() -> [BorrowedFd<'static>; 3] {
        // SAFETY: the process never closes its stdio, so the borrows
        // cannot outlive the fds.
        unsafe {
            [
                BorrowedFd::borrow_raw(0),
                BorrowedFd::borrow_raw(1),
                BorrowedFd::borrow_raw(2),
            ]
        }
    }

    /// Atomically exchanges two names (renameat2 RENAME_EXCHANGE).
    pub fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
        let a = CString::new(a.as_os_str().as_bytes())?;
        let b = CString::new(b.as_os_str().as_bytes())?;
        // SAFETY: both paths are valid NUL-terminated strings that outlive
        // the call.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Soft RLIMIT_NOFILE up to the hard limit, to hold many fds.
    pub fn raise_nofile() {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
