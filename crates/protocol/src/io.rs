//! Blocking socket I/O with `SCM_RIGHTS`: the only module of this crate with
//! `unsafe`, needed to take ownership of the fds the kernel installs.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

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
    let mut buf = [0u8; 16];
    let mut fds = Vec::new();
    let (bytes, truncated) =
        match recv_with_fds(session, &mut buf, nix::libc::MSG_DONTWAIT, &mut fds) {
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

#[cfg(test)]
mod tests {
    #[test]
    fn control_buffer_holds_the_kernel_maximum_of_fds() {
        // SAFETY: CMSG_SPACE is pure arithmetic.
        let space = unsafe { nix::libc::CMSG_SPACE((super::SCM_MAX_FD * 4) as u32) } as usize;
        assert!(super::CONTROL_WORDS * 8 >= space, "{space}");
    }
}
