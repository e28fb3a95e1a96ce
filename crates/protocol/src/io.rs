//! Blocking socket I/O with `SCM_RIGHTS`: the only module of this crate with
//! `unsafe`, needed to take ownership of the fds the kernel installs.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::{Error, HANDSHAKE, MAX_FDS, MAX_FRAME_LEN, Message, encode_frame};

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

    pub fn into_fd(self) -> OwnedFd {
        self.sock.into()
    }

    /// Sends one frame, with `fds` attached to its first byte.
    pub fn send<M: Message>(&self, msg: &M, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        if fds.len() > MAX_FDS {
            return Err(Error::TooManyFds);
        }
        let frame = encode_frame(msg);
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let mut sent = 0;
        while sent < frame.len() {
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
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => sent += n,
                Err(Errno::EINTR) => continue,
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
        let mut fds = Vec::new();
        let mut header = [0u8; 4];
        self.read_exact(&mut header, &mut fds, true)?;
        let len = u32::from_le_bytes(header) as usize;
        if len > MAX_FRAME_LEN {
            return Err(Error::FrameTooLarge { len });
        }
        let mut body = vec![0u8; len];
        self.read_exact(&mut body, &mut fds, false)?;
        let msg = M::decode_body(&body)?;
        Ok((msg, fds))
    }

    fn read_exact(
        &self,
        buf: &mut [u8],
        fds: &mut Vec<OwnedFd>,
        frame_start: bool,
    ) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buf.len() {
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

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// One `recvmsg`: fills part of `buf`, appends received fds to `fds`.
fn recv_some(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize, Error> {
    let mut cmsg = cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
                for c in msg.cmsgs().map_err(|e| Error::Io {
                    op: "recvmsg",
                    source: e.into(),
                })? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel has just installed these fds in our
                        // table for this message; nothing else refers to them, so
                        // we are their sole owner.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                if truncated || fds.len() > MAX_FDS {
                    return Err(Error::TooManyFds);
                }
                return Ok(msg.bytes);
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

/// Sends the handshake datagram carrying `conn` on the session socket.
pub fn send_handshake(session: BorrowedFd<'_>, conn: BorrowedFd<'_>) -> Result<(), Error> {
    let raw = [conn.as_raw_fd()];
    loop {
        match sendmsg::<()>(
            session.as_raw_fd(),
            &[IoSlice::new(HANDSHAKE)],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
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

/// Receives one handshake datagram and returns the connection it carries.
/// Anything else (wrong payload, no fd, several fds) is an error, and every
/// fd that came with it is closed. `Ok(None)` means the socket would block
/// (when it is non-blocking) or was interrupted.
pub fn recv_handshake(session: BorrowedFd<'_>) -> Result<Option<Conn>, Error> {
    let mut cmsg = cmsg_space!([RawFd; MAX_FDS]);
    let mut buf = [0u8; 16];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = match recvmsg::<()>(
        session.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(msg) => msg,
        Err(Errno::EINTR | Errno::EAGAIN) => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                op: "recvmsg",
                source: e.into(),
            });
        }
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| Error::Io {
        op: "recvmsg",
        source: e.into(),
    })? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: as in `recv_some`: fresh fds installed for us alone.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let bytes = msg.bytes;
    if msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
    {
        return Err(Error::BadHandshake("oversized datagram"));
    }
    if bytes == 0 && fds.is_empty() {
        // A zero-length datagram is what a closed peer looks like on some
        // kernels; treat it as noise.
        return Err(Error::BadHandshake("empty datagram"));
    }
    if &buf[..bytes] != HANDSHAKE {
        return Err(Error::BadHandshake("wrong magic or version"));
    }
    if fds.len() != 1 {
        return Err(Error::BadHandshake("expected exactly one fd"));
    }
    let fd = fds.pop().expect("checked length");
    let ty = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::SockType)
        .map_err(|_| Error::BadHandshake("fd is not a socket"))?;
    if ty != nix::sys::socket::SockType::Stream {
        return Err(Error::BadHandshake("fd is not a stream socket"));
    }
    Ok(Some(Conn::new(fd)))
}
