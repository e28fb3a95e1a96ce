//! Fuzzes the framing on a real `AF_UNIX` stream socket pair: the input is
//! written to one end (the first byte also chooses how many fds, 0-7, ride
//! along with it via `SCM_RIGHTS`), the other end reads frames with
//! `Conn::recv` until an error. Never a panic or a hang, and every fd
//! received is closed again (the process's fd count does not grow).

#![no_main]

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use protocol::{Conn, WrapperMsg};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let before = open_fds();
    {
        let (server, wrapper) = Conn::pair().expect("socketpair");
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let count = data.first().map_or(0, |b| (b & 7) as usize);
        let raw: Vec<RawFd> = (0..count).map(|_| null.as_raw_fd()).collect();
        let cmsgs: Vec<ControlMessage<'_>> = if raw.is_empty() || data.is_empty() {
            Vec::new()
        } else {
            vec![ControlMessage::ScmRights(&raw)]
        };
        // Inputs are small (libFuzzer's -max_len), well under the socket
        // buffer, so one send takes them whole.
        if !data.is_empty() {
            sendmsg::<()>(
                wrapper.as_fd().as_raw_fd(),
                &[IoSlice::new(data)],
                &cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .expect("sendmsg");
        }
        drop(wrapper);
        while let Ok((msg, fds)) = server.recv::<WrapperMsg>() {
            assert!(fds.len() <= protocol::MAX_FDS);
            drop((msg, fds));
        }
    }
    assert_eq!(open_fds(), before, "fds leaked");
});
