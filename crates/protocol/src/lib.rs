//! The escalation protocol spoken between `codex-execve-wrapper` (inside the
//! sandbox) and the server (outside it).
//!
//! This crate is the only place that knows the wire format. It is a blocking
//! `std` API with no runtime so that the wrapper, which starts once per
//! program the shell runs, stays small and quick.
//!
//! # Transport
//!
//! The server creates an `AF_UNIX`/`SOCK_SEQPACKET` socket pair per shell
//! session and lets Bash inherit one end; its fd number is in
//! [`ENV_SOCKET`]. Every wrapper invocation opens a private `SOCK_STREAM`
//! connection by sending a *handshake* datagram ([`HANDSHAKE`] plus one end
//! of a fresh socket pair, via `SCM_RIGHTS`) on the session socket. Records
//! are atomic, so any number of wrappers (a pipeline, `&` jobs) can hand over
//! their connections concurrently through the one inherited socket.
//!
//! Sequenced packets, not datagrams: the kernel ignores a destination
//! address on a `SOCK_SEQPACKET` send, while a `SOCK_DGRAM` socket, even a
//! connected one, sends to any named socket given in `sendmsg` (`/dev/log`,
//! a service's datagram socket outside the sandbox). The sandbox refuses to
//! create datagram sockets when the network is off; the inherited session
//! socket must not be one either.
//!
//! The handshake datagram may carry the wrapper's first frame (its `Exec`)
//! right after the magic, when the frame is at most [`MAX_INLINE_FRAME`]
//! bytes: the server then decides from the one datagram and answers on the
//! private connection, which saves a message and a thread hand-over on every
//! exec. A larger request (a huge environment) follows on the connection
//! instead; the server accepts both.
//!
//! On the private connection each message is a frame: a little-endian `u32`
//! body length, then the body (one tag byte and the fields). Byte strings are
//! a `u32` length and raw bytes: argv, environment and paths are arbitrary
//! bytes, never required to be UTF-8.
//!
//! ```text
//!  wrapper                                  server
//!     | -- handshake datagram (fd) ----------> |  session socket
//!     |    + Exec{file, argv, env, cwd}        |  (inline, or next on the stream)
//!     | <------------- Run | Deny{reason} ---- |  private stream
//!     |    Run:  execve(file, argv) inside the sandbox
//!     |    Deny: "Execution denied: <reason>", exit 1
//!     | <------------------------- Escalate -- |
//!     | -- Fds{targets} + SCM_RIGHTS --------> |  spawns file outside the sandbox
//!     | -- Signal{n} (any number) -----------> |  forwarded to the program
//!     | <-------------- Exited{code} | Signaled{n}
//!     |    ends the same way
//! ```
//!
//! | frame | tag | direction | fields |
//! |---|---|---|---|
//! | `Exec` | `0x01` | wrapper → server | file, argv list, env list (`K=V`), cwd |
//! | `Fds` | `0x02` | wrapper → server | list of target fd numbers (`u32`); the fds themselves ride along as `SCM_RIGHTS`, same order |
//! | `Signal` | `0x03` | wrapper → server | signal number (`u32`) |
//! | `Run` | `0x11` | server → wrapper | — |
//! | `Escalate` | `0x12` | server → wrapper | — |
//! | `Deny` | `0x13` | server → wrapper | reason (UTF-8) |
//! | `Exited` | `0x14` | server → wrapper | exit code (`u32`, 0–255) |
//! | `Signaled` | `0x15` | server → wrapper | signal number (`u32`) |
//! | `Error` | `0x16` | server → wrapper | message (UTF-8); the wrapper fails closed |
//!
//! Everything received is bounded: [`MAX_FRAME_LEN`] bytes per frame,
//! [`MAX_FDS`] fds per frame, list lengths checked against the bytes that
//! remain. A malformed frame is an [`Error`] for that connection only.

mod io;

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

pub use io::{Conn, Handshake, recv_handshake, send_handshake};

/// Environment variable holding the fd number of the inherited session socket.
pub const ENV_SOCKET: &str = "CODEX_ESCALATE_SOCKET";
/// Environment variable naming the wrapper for the patched Bash.
pub const ENV_WRAPPER: &str = "BASH_EXEC_WRAPPER";
/// Environment variable with the programs the wrapper must ask about (see
/// [`needs_asking`]). Unset: the wrapper asks about every exec.
pub const ENV_ASK: &str = "CODEX_ESCALATE_ASK";
/// Longest [`ENV_ASK`] value the server sets; a longer list (thousands of
/// rules) is not passed, and every exec is asked about.
pub const MAX_ASK_LIST: usize = 16 << 10;

/// The [`ENV_ASK`] value for `names`: one entry per line, each a program
/// name (compared with the basename of the program Bash resolved), a name
/// prefix ending in `*`, or a path (any entry with a `/`, compared with the
/// whole path). `None` when a name cannot be written so (empty, or containing a
/// newline or NUL) or the list exceeds [`MAX_ASK_LIST`]: the server must
/// then be asked about everything.
pub fn encode_ask_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut out = String::new();
    for name in names {
        if name.is_empty() || name.contains(['\n', '\0']) {
            return None;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(name);
        if out.len() > MAX_ASK_LIST {
            return None;
        }
    }
    Some(out)
}

/// Whether the wrapper must ask the server about `file` (the path Bash
/// resolved) given an [`ENV_ASK`] list ([`encode_ask_list`]). The list
/// holds every program the server could decide anything but Run for, so a
/// program it does not name runs in the sandbox without the round trip.
/// A relative path, or one without a file name, is always asked about.
///
/// Anything in the sandbox can change the variable; that only changes which
/// programs it runs in the sandbox without asking, which it could do anyway
/// by calling `execve` itself. Escalation always asks.
pub fn needs_asking(file: &[u8], ask: &[u8]) -> bool {
    if !file.starts_with(b"/") {
        return true;
    }
    // As the server names the program: `Path::file_name` (which skips a
    // trailing `.` component), compared bytewise.
    let Some(base) = std::path::Path::new(std::ffi::OsStr::from_bytes(file)).file_name() else {
        return true;
    };
    let base = base.as_bytes();
    ask.split(|&b| b == b'\n').any(|entry| {
        if entry.contains(&b'/') {
            // A path, compared whole (a rule head may end in a literal `*`).
            entry == file
        } else if let Some(prefix) = entry.strip_suffix(b"*") {
            base.starts_with(prefix)
        } else {
            entry == base
        }
    })
}

/// Payload of the handshake datagram: magic and protocol version.
pub const HANDSHAKE: &[u8; 4] = b"CXE1";
/// Largest frame body accepted. Linux caps argv plus environment at a quarter
/// of the stack limit (2 MiB by default, 6 MiB at most).
pub const MAX_FRAME_LEN: usize = 16 << 20;
/// Largest frame carried inline in a handshake datagram. An `Exec` is
/// mostly the environment, a few kilobytes; a bigger one is sent on the
/// connection after the handshake.
pub const MAX_INLINE_FRAME: usize = 64 << 10;
/// Size of the buffer [`recv_handshake`] needs for the largest handshake.
pub const HANDSHAKE_BUF_LEN: usize = HANDSHAKE.len() + MAX_INLINE_FRAME;
/// Most fds accepted in one frame: stdio plus the redirections a command may
/// carry. The kernel's own cap (`SCM_MAX_FD`) is 253.
pub const MAX_FDS: usize = 64;

/// What the wrapper asks: may `file` run with this argv, env and cwd?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The path Bash resolved (as Bash passed it; may be relative).
    pub file: OsString,
    /// The original argv, including argv[0].
    pub argv: Vec<OsString>,
    /// The environment, as raw `KEY=VALUE` entries.
    pub env: Vec<OsString>,
    /// The wrapper's working directory.
    pub cwd: OsString,
}

/// Messages the wrapper sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrapperMsg {
    Exec(ExecRequest),
    /// The fds attached to this frame are to appear in the escalated program
    /// at these numbers, in order.
    Fds {
        targets: Vec<i32>,
    },
    /// The wrapper received this signal; deliver it to the escalated program.
    Signal(i32),
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    Run,
    Escalate,
    Deny { reason: String },
    Exited(i32),
    Signaled(i32),
    Error(String),
}

/// A protocol failure on one connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} on the escalation socket failed: {source}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("peer closed the escalation connection")]
    Closed,
    #[error("timed out waiting for the peer")]
    TimedOut,
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    FrameTooLarge { len: usize },
    #[error("more than {MAX_FDS} fds in one frame, or the kernel truncated them")]
    TooManyFds,
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("unknown frame tag {0:#04x}")]
    UnknownTag(u8),
    #[error("bad handshake: {0}")]
    BadHandshake(&'static str),
}

/// A message that can be framed.
pub trait Message: Sized {
    /// Appends the body (tag and fields, no length prefix) to `out`.
    fn encode_body(&self, out: &mut Vec<u8>);
    /// Parses a body; the whole of `body` must be consumed.
    fn decode_body(body: &[u8]) -> Result<Self, Error>;
    /// The body's size, or a guess: [`encode_frame`] allocates once.
    fn body_len_hint(&self) -> usize {
        64
    }
}

impl Message for WrapperMsg {
    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            WrapperMsg::Exec(req) => put_exec(
                out,
                req.file.as_bytes(),
                req.argv.iter().map(|a| a.as_bytes()),
                req.env.iter().map(|e| e.as_bytes()),
                req.cwd.as_bytes(),
            ),
            WrapperMsg::Fds { targets } => {
                out.push(0x02);
                put_u32(out, targets.len() as u32);
                for &t in targets {
                    put_u32(out, t as u32);
                }
            }
            WrapperMsg::Signal(signo) => {
                out.push(0x03);
                put_u32(out, *signo as u32);
            }
        }
    }

    fn decode_body(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader { buf: body };
        let msg = match r.u8()? {
            0x01 => WrapperMsg::Exec(ExecRequest {
                file: r.os_string()?,
                argv: r.os_list()?,
                env: r.os_list()?,
                cwd: r.os_string()?,
            }),
            0x02 => {
                let n = r.count(4)?;
                if n > MAX_FDS {
                    return Err(Error::TooManyFds);
                }
                let mut targets = Vec::with_capacity(n);
                for _ in 0..n {
                    targets.push(r.small_int()?);
                }
                WrapperMsg::Fds { targets }
            }
            0x03 => WrapperMsg::Signal(r.small_int()?),
            tag => return Err(Error::UnknownTag(tag)),
        };
        r.finish()?;
        Ok(msg)
    }

    fn body_len_hint(&self) -> usize {
        match self {
            WrapperMsg::Exec(req) => exec_body_len(
                req.file.len(),
                req.argv.iter().map(|a| a.len()),
                req.env.iter().map(|e| e.len()),
                req.cwd.len(),
            ),
            WrapperMsg::Fds { targets } => 1 + 4 + 4 * targets.len(),
            WrapperMsg::Signal(_) => 5,
        }
    }
}

impl Message for ServerMsg {
    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            ServerMsg::Run => out.push(0x11),
            ServerMsg::Escalate => out.push(0x12),
            ServerMsg::Deny { reason } => {
                out.push(0x13);
                put_bytes(out, reason.as_bytes());
            }
            ServerMsg::Exited(code) => {
                out.push(0x14);
                put_u32(out, *code as u32);
            }
            ServerMsg::Signaled(signo) => {
                out.push(0x15);
                put_u32(out, *signo as u32);
            }
            ServerMsg::Error(message) => {
                out.push(0x16);
                put_bytes(out, message.as_bytes());
            }
        }
    }

    fn decode_body(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader { buf: body };
        let msg = match r.u8()? {
            0x11 => ServerMsg::Run,
            0x12 => ServerMsg::Escalate,
            0x13 => ServerMsg::Deny {
                reason: r.string()?,
            },
            0x14 => ServerMsg::Exited(r.small_int()?),
            0x15 => ServerMsg::Signaled(r.small_int()?),
            0x16 => ServerMsg::Error(r.string()?),
            tag => return Err(Error::UnknownTag(tag)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Encodes a whole frame: length prefix and body.
pub fn encode_frame<M: Message>(msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + msg.body_len_hint());
    out.extend_from_slice(&[0; 4]);
    msg.encode_body(&mut out);
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// Decodes one whole frame (length prefix and body, nothing after).
pub fn decode_frame<M: Message>(frame: &[u8]) -> Result<M, Error> {
    let Some((header, body)) = frame.split_first_chunk::<4>() else {
        return Err(Error::Malformed("frame shorter than its length prefix"));
    };
    if u32::from_le_bytes(*header) as usize != body.len() {
        return Err(Error::Malformed("frame length does not match its prefix"));
    }
    M::decode_body(body)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// Encodes a whole `Exec` frame from borrowed bytes, exactly as
/// [`encode_frame`] encodes [`WrapperMsg::Exec`]: for the wrapper, which
/// has its argv and environment as C strings and need not copy them.
pub fn encode_exec_frame<'a, A, E>(file: &[u8], argv: A, env: E, cwd: &[u8]) -> Vec<u8>
where
    A: ExactSizeIterator<Item = &'a [u8]> + Clone,
    E: ExactSizeIterator<Item = &'a [u8]> + Clone,
{
    let len = exec_body_len(
        file.len(),
        argv.clone().map(<[u8]>::len),
        env.clone().map(<[u8]>::len),
        cwd.len(),
    );
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    put_exec(&mut out, file, argv, env, cwd);
    debug_assert_eq!(out.len(), 4 + len);
    out
}

fn exec_body_len(
    file: usize,
    argv: impl Iterator<Item = usize>,
    env: impl Iterator<Item = usize>,
    cwd: usize,
) -> usize {
    let list = |items: &mut dyn Iterator<Item = usize>| 4 + items.map(|n| 4 + n).sum::<usize>();
    1 + 4 + file + list(&mut { argv }) + list(&mut { env }) + 4 + cwd
}

fn put_exec<'a>(
    out: &mut Vec<u8>,
    file: &[u8],
    argv: impl ExactSizeIterator<Item = &'a [u8]>,
    env: impl ExactSizeIterator<Item = &'a [u8]>,
    cwd: &[u8],
) {
    out.push(0x01);
    put_bytes(out, file);
    put_list(out, argv);
    put_list(out, env);
    put_bytes(out, cwd);
}

fn put_list<'a>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a [u8]>) {
    put_u32(out, items.len() as u32);
    for item in items {
        put_bytes(out, item);
    }
}

/// A bounds-checked cursor over a frame body.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.buf.len() {
            return Err(Error::Malformed("field runs past the end of the frame"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A non-negative `i32` (exit codes, signal and fd numbers).
    fn small_int(&mut self) -> Result<i32, Error> {
        i32::try_from(self.u32()?).map_err(|_| Error::Malformed("integer out of range"))
    }

    /// A list length, checked against the bytes left: each item takes at
    /// least `min_item` bytes, so a forged count cannot force a huge
    /// allocation.
    fn count(&mut self, min_item: usize) -> Result<usize, Error> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(Error::Malformed("list longer than the frame"));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn os_string(&mut self) -> Result<OsString, Error> {
        Ok(OsString::from_vec(self.bytes()?.to_vec()))
    }

    fn string(&mut self) -> Result<String, Error> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }

    fn os_list(&mut self) -> Result<Vec<OsString>, Error> {
        let n = self.count(4)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.os_string()?);
        }
        Ok(items)
    }

    fn finish(&self) -> Result<(), Error> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::Malformed("trailing bytes after the last field"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<M: Message + PartialEq + std::fmt::Debug>(msg: M) {
        let frame = encode_frame(&msg);
        let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(M::decode_body(&frame[4..]).unwrap(), msg);
    }

    #[test]
    fn messages_roundtrip_with_arbitrary_bytes() {
        roundtrip(WrapperMsg::Exec(ExecRequest {
            file: OsString::from_vec(b"/bin/\xffcat".to_vec()),
            argv: vec![
                "cat".into(),
                "".into(),
                "a b\nc".into(),
                OsString::from_vec(vec![0x80, 0xfe]),
            ],
            env: vec!["A=1".into(), "NOEQUALS".into()],
            cwd: "/tmp".into(),
        }));
        roundtrip(WrapperMsg::Fds {
            targets: vec![0, 1, 2, 7],
        });
        roundtrip(WrapperMsg::Signal(2));
        roundtrip(ServerMsg::Run);
        roundtrip(ServerMsg::Escalate);
        roundtrip(ServerMsg::Deny {
            reason: "no".into(),
        });
        roundtrip(ServerMsg::Exited(42));
        roundtrip(ServerMsg::Signaled(9));
        roundtrip(ServerMsg::Error("bad".into()));
    }

    #[test]
    fn the_ask_list_names_programs_by_basename_path_or_prefix() {
        let list = encode_ask_list(["rm", "git", "/opt/tool", "mkfs.*"]).unwrap();
        assert_eq!(list, "rm\ngit\n/opt/tool\nmkfs.*");
        let ask = |file: &str| needs_asking(file.as_bytes(), list.as_bytes());
        for asked in [
            "/usr/bin/rm",
            "/bin/git",
            "/usr/bin/./git",
            "/usr/bin/git/.",
            "/opt/tool",
            "/sbin/mkfs.ext4",
            // Relative paths: the server resolves them against the cwd.
            "rm",
            "./cat",
            "bin/true",
            // No file name.
            "/",
            "/usr/bin/..",
        ] {
            assert!(ask(asked), "{asked}");
        }
        // A path entry is exact, even when it ends in `*`.
        let star = encode_ask_list(["/opt/x*"]).unwrap();
        assert!(needs_asking(b"/opt/x*", star.as_bytes()));
        assert!(!needs_asking(b"/opt/xy", star.as_bytes()));
        for not_asked in [
            "/bin/true",
            "/usr/bin/rmdir",
            "/usr/bin/xgit",
            "/other/tool",
            "/sbin/mkfs",
        ] {
            assert!(!ask(not_asked), "{not_asked}");
        }
        assert!(!needs_asking(b"/usr/bin/\xff", list.as_bytes()));
        // An empty list asks about relative paths only.
        assert!(!needs_asking(b"/usr/bin/rm", b""));
        assert!(needs_asking(b"./rm", b""));
    }

    #[test]
    fn unwritable_or_oversized_ask_lists_are_refused() {
        assert_eq!(encode_ask_list([]).as_deref(), Some(""));
        assert_eq!(encode_ask_list(["a", ""]), None);
        assert_eq!(encode_ask_list(["a\nb"]), None);
        assert_eq!(encode_ask_list(["a\0b"]), None);
        let many: Vec<String> = (0..3000).map(|i| format!("program{i}")).collect();
        assert_eq!(encode_ask_list(many.iter().map(String::as_str)), None);
    }

    #[test]
    fn borrowed_exec_encoding_matches_the_owned_one() {
        let req = ExecRequest {
            file: OsString::from_vec(b"/bin/\xffcat".to_vec()),
            argv: vec!["cat".into(), "".into(), OsString::from_vec(vec![0x80])],
            env: vec!["A=1".into(), "B=".into()],
            cwd: "/tmp".into(),
        };
        fn bytes(v: &[OsString]) -> Vec<&[u8]> {
            v.iter().map(|a| a.as_bytes()).collect()
        }
        let (argv, env) = (bytes(&req.argv), bytes(&req.env));
        let borrowed = encode_exec_frame(
            req.file.as_bytes(),
            argv.iter().copied(),
            env.iter().copied(),
            req.cwd.as_bytes(),
        );
        let owned = encode_frame(&WrapperMsg::Exec(req));
        assert_eq!(borrowed, owned);
        assert_eq!(owned.capacity(), owned.len(), "one exact allocation");
        let empty = encode_exec_frame(b"", [].into_iter(), [].into_iter(), b"");
        assert_eq!(
            decode_frame::<WrapperMsg>(&empty).unwrap(),
            WrapperMsg::Exec(ExecRequest {
                file: "".into(),
                argv: vec![],
                env: vec![],
                cwd: "".into(),
            })
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let frame = encode_frame(&WrapperMsg::Exec(ExecRequest {
            file: "/bin/true".into(),
            argv: vec!["true".into(), "x".into()],
            env: vec!["A=1".into()],
            cwd: "/".into(),
        }));
        let body = &frame[4..];
        for cut in 0..body.len() {
            assert!(
                WrapperMsg::decode_body(&body[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn forged_counts_do_not_allocate() {
        // Tag Exec, then a file, then an argv count of u32::MAX.
        let mut body = vec![0x01];
        put_bytes(&mut body, b"/bin/true");
        put_u32(&mut body, u32::MAX);
        assert!(matches!(
            WrapperMsg::decode_body(&body),
            Err(Error::Malformed(_))
        ));
    }

    /// Deterministic xorshift, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn seeds() -> Vec<Vec<u8>> {
        let exec = WrapperMsg::Exec(ExecRequest {
            file: "/bin/true".into(),
            argv: vec!["true".into(), "x".into()],
            env: vec!["A=1".into(), "PATH=/bin".into()],
            cwd: "/".into(),
        });
        let msgs: Vec<Vec<u8>> = vec![
            encode_frame(&exec),
            encode_frame(&WrapperMsg::Fds {
                targets: vec![0, 1, 2, 9],
            }),
            encode_frame(&WrapperMsg::Signal(15)),
            encode_frame(&ServerMsg::Deny {
                reason: "no".into(),
            }),
            encode_frame(&ServerMsg::Exited(3)),
        ];
        msgs
    }

    /// A libFuzzer-free smoke version of fuzz/fuzz_targets/decode_body.rs.
    #[test]
    fn mutated_frames_never_panic() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let seeds = seeds();
        for _ in 0..50_000 {
            let mut body = seeds[rng.below(seeds.len())][4..].to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(body.len() + 1);
                match rng.below(4) {
                    0 if i < body.len() => body[i] = rng.next() as u8,
                    1 => body.insert(i, rng.next() as u8),
                    2 => body.truncate(i),
                    _ if i + 4 <= body.len() => {
                        let v = [0, 1, 0xff, 0x7fff_ffff, u32::MAX][rng.below(5)];
                        body[i..i + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    _ => {}
                }
            }
            if let Ok(msg) = WrapperMsg::decode_body(&body) {
                let mut again = Vec::new();
                msg.encode_body(&mut again);
                assert_eq!(WrapperMsg::decode_body(&again).unwrap(), msg);
            }
            if let Ok(msg) = ServerMsg::decode_body(&body) {
                let mut again = Vec::new();
                msg.encode_body(&mut again);
                assert_eq!(ServerMsg::decode_body(&again).unwrap(), msg);
            }
        }
    }

    /// A libFuzzer-free smoke version of fuzz/fuzz_targets/framing.rs:
    /// valid frames, mutated ones and random bytes on a real socket pair.
    #[test]
    fn framing_survives_random_streams() {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let seeds = seeds();
        for _ in 0..300 {
            let (server, wrapper) = Conn::pair().unwrap();
            server
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut stream = Vec::new();
            for _ in 0..rng.below(5) {
                let mut frame = seeds[rng.below(seeds.len())].clone();
                if rng.below(3) == 0 {
                    let i = rng.below(frame.len());
                    frame[i] = rng.next() as u8;
                }
                stream.extend_from_slice(&frame);
            }
            for _ in 0..rng.below(64) {
                stream.push(rng.next() as u8);
            }
            let mut w = UnixStream::from(wrapper.into_fd());
            w.write_all(&stream).unwrap();
            drop(w);
            let mut frames = 0;
            while server.recv::<WrapperMsg>().is_ok() {
                frames += 1;
                assert!(frames <= stream.len());
            }
        }
    }

    #[test]
    fn unknown_tags_and_trailing_bytes_are_rejected() {
        assert!(matches!(
            WrapperMsg::decode_body(&[0x7f]),
            Err(Error::UnknownTag(0x7f))
        ));
        assert!(matches!(
            ServerMsg::decode_body(&[0x11, 0]),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            ServerMsg::decode_body(&[]),
            Err(Error::Malformed(_))
        ));
    }
}
