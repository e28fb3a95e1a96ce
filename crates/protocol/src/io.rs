//! Blocking socket I/O with `SCM_RIGHTS`: the only module of this crate with
//! `unsafe`, needed to take ownership of the fds the kernel installs.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use crate::{
    Error, HANDSHAKE, MAX_FDS, MAX_FRAME_LEN, MAX_INLINE_FRAME, Message, WrapperMsg, decode_frame,
    encode_frame,
};

/// One private escalation connection (a `SOCK_STREAM` Unix socket).
#[derive(Debug)]
pub struct Conn {
    sock: UnixStream,
}

impl Conn {
    pub fn new(fd: OwnedFd) -> Conn {
        Conn {
            sock: UnixStream::from(fd),
        }
    }

    /// A connected pair, both ends close-on-exec.
    pub fn pair() -> Result<(Conn, Conn), Error> {
        let (a, b) = UnixStream::pair().map_err(|source| Error::Io {
            op: "socketpair",
            source,
        })?;
        Ok((Conn { sock: a }, Conn { sock: b }))
    }

    /// Bounds every later read; a read that waits longer fails with
    /// [`Error::TimedOut`].
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), Error> {
        self.sock
            .set_read_timeout(timeout)
            .map_err(|source| Error::Io {
                op: "setsockopt",
                source,
            })
    }

    /// Bounds every later blocking send; one that waits longer (a peer
    /// that does not read) fails with [`Error::TimedOut`].
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<(), Error> {
        self.sock
            .set_write_timeout(timeout)
            .map_err(|source| Error::Io {
                op: "setsockopt",
                source,
            })
    }

    pub fn into_fd(self) -> OwnedFd {
        self.sock.into()
    }

    /// Sends one frame, with `fds` attached to its first byte.
    pub fn send<M: Message>(&self, msg: &M, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        self.send_frame(&encode_frame(msg), fds)
    }

    /// Sends one frame without waiting: fails with [`Error::TimedOut`] if
    /// the socket's buffer cannot take it whole right now. For a thread
    /// that serves many peers and must not be held up by one of them.
    /// (A frame only partly taken leaves the stream mid-frame; the caller
    /// must drop the connection, as on any error.)
    pub fn send_now<M: Message>(&self, msg: &M) -> Result<(), Error> {
        self.send_frame_by(&encode_frame(msg), &[], Wait::Never)
    }

    /// Sends an already encoded frame ([`encode_frame`]), with `fds`
    /// attached to its first byte.
    pub fn send_frame(&self, frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        self.send_frame_by(frame, fds, Wait::AsConfigured)
    }

    /// [`Conn::send`], but the whole frame must be taken within `limit`: a
    /// peer that reads a little at a time cannot hold the sender longer.
    /// Replaces the write timeout ([`Conn::set_write_timeout`]).
    pub fn send_within<M: Message>(&self, msg: &M, limit: Duration) -> Result<(), Error> {
        self.send_frame_by(&encode_frame(msg), &[], Wait::Until(Instant::now() + limit))
    }

    fn send_frame_by(&self, frame: &[u8], fds: &[BorrowedFd<'_>], wait: Wait) -> Result<(), Error> {
        if fds.len() > MAX_FDS {
            return Err(Error::TooManyFds);
        }
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let mut sent = 0;
        let flags = match wait {
            Wait::Never => MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            Wait::AsConfigured | Wait::Until(_) => MsgFlags::MSG_NOSIGNAL,
        };
        while sent < frame.len() {
            if let Wait::Until(deadline) = wait {
                self.set_write_timeout(Some(time_left(deadline)?))?;
            }
            // Rights travel with the first chunk only. MSG_NOSIGNAL: a peer
            // that went away is an error here, not a SIGPIPE.
            let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !raw.is_empty() {
                &[ControlMessage::ScmRights(&raw)]
            } else {
                &[]
            };
            match sendmsg::<()>(
                self.sock.as_raw_fd(),
                &[IoSlice::new(&frame[sent..])],
                cmsgs,
                flags,
                None,
            ) {
                Ok(n) => sent += n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Err(Error::TimedOut),
                Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(Error::Closed),
                Err(e) => {
                    return Err(Error::Io {
                        op: "sendmsg",
                        source: e.into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Receives one frame and the fds that came with it. Fds beyond what the
    /// caller expects are the caller's to drop (dropping closes them).
    pub fn recv<M: Message>(&self) -> Result<(M, Vec<OwnedFd>), Error> {
        self.recv_frame(None)
    }

    /// [`Conn::recv`], but the whole frame must arrive within `limit`: a
    /// peer that trickles a byte at a time cannot hold the reader longer.
    /// Replaces the read timeout ([`Conn::set_read_timeout`]).
    pub fn recv_within<M: Message>(&self, limit: Duration) -> Result<(M, Vec<OwnedFd>), Error> {
        self.recv_frame(Some(Instant::now() + limit))
    }

    fn recv_frame<M: Message>(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(M, Vec<OwnedFd>), Error> {
        let mut fds = Vec::new();
        let mut header = [0u8; 4];
        self.read_exact(&mut header, &mut fds, true, deadline)?;
        let len = u32::from_le_bytes(header) as usize;
        if len > MAX_FRAME_LEN {
            return Err(Error::FrameTooLarge { len });
        }
        let mut body = vec![0u8; len];
        self.read_exact(&mut body, &mut fds, false, deadline)?;
        let msg = M::decode_body(&body)?;
        Ok((msg, fds))
    }

    fn read_exact(
        &self,
        buf: &mut [u8],
        fds: &mut Vec<OwnedFd>,
        frame_start: bool,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buf.len() {
            if let Some(deadline) = deadline {
                self.set_read_timeout(Some(time_left(deadline)?))?;
            }
            let n = recv_some(self.sock.as_fd(), &mut buf[filled..], fds)?;
            if n == 0 {
                return Err(if frame_start && filled == 0 {
                    Error::Closed
                } else {
                    Error::Malformed("connection closed inside a frame")
                });
            }
            filled += n;
        }
        Ok(())
    }
}

/// How long a send may wait for room in the socket buffer.
#[derive(Clone, Copy)]
enum Wait {
    /// As long as the write timeout allows ([`Conn::set_write_timeout`]).
    AsConfigured,
    /// Not at all (`MSG_DONTWAIT`).
    Never,
    /// Until the deadline, for the whole frame.
    Until(Instant),
}

/// What is left until `deadline`; an error once it has passed.
fn time_left(deadline: Instant) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(Error::TimedOut)
    } else {
        Ok(left)
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// One `recvmsg`: fills part of `buf`, appends received fds to `fds`.
fn recv_some(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize, Error> {
    loop {
        match recv_with_fds(sock, buf, 0, fds) {
            Ok((bytes, truncated)) => {
                if truncated || fds.len() > MAX_FDS {
                    return Err(Error::TooManyFds);
                }
                return Ok(bytes);
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Err(Error::TimedOut),
            Err(Errno::ECONNRESET) => return Ok(0),
            Err(e) => {
                return Err(Error::Io {
                    op: "recvmsg",
                    source: e.into(),
                });
            }
        }
    }
}

/// The kernel's cap on fds per message (`SCM_MAX_FD`): a control buffer of
/// this size is never truncated by a peer sending too many.
const SCM_MAX_FD: usize = 253;
/// `CMSG_SPACE(SCM_MAX_FD * 4)` in 8-byte words (aligned as `cmsghdr`):
/// a 16-byte header plus 1012 bytes of fds, rounded up.
const CONTROL_WORDS: usize = (16 + SCM_MAX_FD * 4).div_ceil(8);

/// `recvmsg(2)` with `MSG_CMSG_CLOEXEC | extra_flags`, taking ownership of
/// every fd the kernel installed, even when the control data was truncated
/// (`MSG_CTRUNC`: the receiver ran out of fds, or an unexpected control
/// message). nix refuses to parse truncated control data, which would
/// leave the fds that did arrive open and unowned: a hostile peer could
/// leak the server's fds with every message. Returns the byte count and
/// whether anything was truncated (`MSG_TRUNC` or `MSG_CTRUNC`).
fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    extra_flags: nix::libc::c_int,
    fds: &mut Vec<OwnedFd>,
) -> Result<(usize, bool), Errno> {
    use nix::libc;
    // On the stack: this runs for every frame, and the wrapper's allocator
    // (musl) would map and unmap a page for a heap buffer each time.
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `hdr` points at `iov` (our live `buf`) and `control`, both
    // valid for the lengths given, for the duration of the call.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut hdr,
            libc::MSG_CMSG_CLOEXEC | extra_flags,
        )
    };
    if n < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel filled `control` up to `msg_controllen` with
    // well-formed control messages; CMSG_FIRSTHDR/CMSG_NXTHDR stay within
    // it. SCM_RIGHTS data is an array of fds the kernel has just installed
    // in our table for this message alone, so we are their sole owner.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = c.cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
        }
    }
    let truncated = hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0;
    Ok((n as usize, truncated))
}

/// Sends the handshake datagram carrying `conn` on the session socket,
/// with `first` (an encoded frame, normally the `Exec`) inline when it is at
/// most [`MAX_INLINE_FRAME`] bytes and the socket takes it. Returns whether
/// it went inline; if not, the caller sends it on `conn`.
pub fn send_handshake(
    session: BorrowedFd<'_>,
    conn: BorrowedFd<'_>,
    first: Option<&[u8]>,
) -> Result<bool, Error> {
    let raw = [conn.as_raw_fd()];
    let mut inline = first.filter(|frame| frame.len() <= MAX_INLINE_FRAME);
    loop {
        let payload = [
            IoSlice::new(HANDSHAKE),
            IoSlice::new(inline.unwrap_or_default()),
        ];
        match sendmsg::<()>(
            session.as_raw_fd(),
            &payload,
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(inline.is_some()),
            Err(Errno::EINTR) => continue,
            // A send buffer smaller than the datagram (a low
            // `net.core.wmem_default`): fall back to the stream.
            Err(Errno::EMSGSIZE | Errno::ENOBUFS) if inline.is_some() => inline = None,
            Err(Errno::ECONNREFUSED | Errno::EPIPE | Errno::ECONNRESET) => {
                return Err(Error::Closed);
            }
            Err(e) => {
                return Err(Error::Io {
                    op: "sendmsg",
                    source: e.into(),
                });
            }
        }
    }
}

/// What one handshake datagram brought.
#[derive(Debug)]
pub struct Handshake {
    /// The private connection.
    pub conn: Conn,
    /// The first frame, when it came inline; an error if it was malformed
    /// (answer it on `conn`).
    pub first: Option<Result<WrapperMsg, Error>>,
}

/// Receives one handshake datagram into `buf` (at least
/// [`HANDSHAKE_BUF_LEN`](crate::HANDSHAKE_BUF_LEN) bytes, or larger
/// handshakes are rejected) and returns the connection it carries, with the
/// inline frame if any. A handshake without exactly one stream socket, with
/// the wrong magic or oversized is an error, and every fd that came with it
/// is closed. `Ok(None)` means the socket would block (when it is
/// non-blocking) or was interrupted.
pub fn recv_handshake(session: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<Handshake>, Error> {
    let mut fds = Vec::new();
    let (bytes, truncated) = match recv_with_fds(session, buf, nix::libc::MSG_DONTWAIT, &mut fds) {
        Ok(received) => received,
        Err(Errno::EINTR | Errno::EAGAIN) => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                op: "recvmsg",
                source: e.into(),
            });
        }
    };
    if truncated {
        return Err(Error::BadHandshake("oversized datagram"));
    }
    if bytes == 0 && fds.is_empty() {
        // A zero-length datagram is what a closed peer looks like on some
        // kernels; treat it as noise.
        return Err(Error::BadHandshake("empty datagram"));
    }
    let Some(rest) = buf[..bytes].strip_prefix(HANDSHAKE) else {
        return Err(Error::BadHandshake("wrong magic or version"));
    };
    if fds.len() != 1 {
        return Err(Error::BadHandshake("expected exactly one fd"));
    }
    let fd = fds.pop().expect("checked length");
    let ty = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::SockType)
        .map_err(|_| Error::BadHandshake("fd is not a socket"))?;
    if ty != nix::sys::socket::SockType::Stream {
        return Err(Error::BadHandshake("fd is not a stream socket"));
    }
    Ok(Some(Handshake {
        conn: Conn::new(fd),
        first: (!rest.is_empty()).then(|| decode_frame(rest)),
    }))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::net::UnixDatagram;

    use super::*;
    use crate::{ExecRequest, HANDSHAKE_BUF_LEN};

    fn exec(env_bytes: usize) -> WrapperMsg {
        WrapperMsg::Exec(ExecRequest {
            file: "/bin/true".into(),
            argv: vec!["true".into(), OsString::from_vec(b"\xff".to_vec())],
            env: vec![format!("BIG={}", "x".repeat(env_bytes)).into()],
            cwd: "/".into(),
        })
    }

    /// Our end of the connection, whether the frame went inline, and what
    /// the server side received.
    fn handshake(first: Option<&[u8]>) -> (Conn, bool, Result<Option<Handshake>, Error>) {
        let (wrapper, server) = UnixDatagram::pair().unwrap();
        let (conn, theirs) = Conn::pair().unwrap();
        let inline = send_handshake(wrapper.as_fd(), theirs.as_fd(), first).unwrap();
        let mut buf = vec![0; HANDSHAKE_BUF_LEN];
        (conn, inline, recv_handshake(server.as_fd(), &mut buf))
    }

    #[test]
    fn a_small_request_rides_in_the_handshake() {
        let msg = exec(10);
        let (conn, inline, got) = handshake(Some(&encode_frame(&msg)));
        assert!(inline);
        let got = got.unwrap().unwrap();
        assert_eq!(got.first.unwrap().unwrap(), msg);
        // The connection it carried works.
        got.conn.send_now(&crate::ServerMsg::Run).unwrap();
        assert_eq!(
            conn.recv::<crate::ServerMsg>().unwrap().0,
            crate::ServerMsg::Run
        );
    }

    #[test]
    fn a_large_request_is_left_for_the_stream() {
        let frame = encode_frame(&exec(MAX_INLINE_FRAME));
        assert!(frame.len() > MAX_INLINE_FRAME);
        let (_conn, inline, got) = handshake(Some(&frame));
        assert!(!inline);
        assert!(got.unwrap().unwrap().first.is_none());
        let (_conn, inline, got) = handshake(None);
        assert!(!inline);
        assert!(got.unwrap().unwrap().first.is_none());
    }

    #[test]
    fn a_malformed_inline_frame_is_an_error_for_that_connection_only() {
        let mut frame = encode_frame(&exec(10));
        frame.push(0);
        let (_conn, _, got) = handshake(Some(&frame));
        let got = got.unwrap().unwrap();
        assert!(
            matches!(got.first, Some(Err(Error::Malformed(_)))),
            "{:?}",
            got.first
        );
        let (_conn, _, got) = handshake(Some(&[1, 0, 0, 0, 0x7f]));
        assert!(matches!(
            got.unwrap().unwrap().first,
            Some(Err(Error::UnknownTag(0x7f)))
        ));
    }

    #[test]
    fn a_handshake_larger_than_the_buffer_is_refused() {
        let (wrapper, server) = UnixDatagram::pair().unwrap();
        let (_conn, theirs) = Conn::pair().unwrap();
        let frame = encode_frame(&exec(100));
        assert!(send_handshake(wrapper.as_fd(), theirs.as_fd(), Some(&frame)).unwrap());
        let mut small = [0u8; 16];
        assert!(matches!(
            recv_handshake(server.as_fd(), &mut small),
            Err(Error::BadHandshake("oversized datagram"))
        ));
    }

    #[test]
    fn control_buffer_holds_the_kernel_maximum_of_fds() {
        // SAFETY: CMSG_SPACE is pure arithmetic.
        let space = unsafe { nix::libc::CMSG_SPACE((super::SCM_MAX_FD * 4) as u32) } as usize;
        assert!(super::CONTROL_WORDS * 8 >= space, "{space}");
    }
}
