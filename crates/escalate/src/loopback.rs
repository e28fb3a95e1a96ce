//! A client's shared loopback network as the server holds it (see
//! `sandbox::loopback`): made once by the launcher's `--make-netns` mode,
//! its namespaces' fds handed to every network-off launcher of the client
//! (`--netns FD [--userns FD]`, see [`crate::ShellConfig::loopback`]).
//!
//! **Invariant:** the fds are close-on-exec in the server and reach only
//! the launchers, which close them once joined; the namespace lives as
//! long as the client's [`Loopback`] or a process in it.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::sys;

/// The namespaces of one client's loopback network.
#[derive(Debug, Clone)]
pub struct Loopback {
    net: Arc<OwnedFd>,
    user: Option<Arc<OwnedFd>>,
}

impl Loopback {
    /// Makes one with `launcher` (program and leading arguments, as
    /// [`crate::ShellConfig::launcher`]). Blocks for one short process.
    pub fn make(launcher: &[OsString]) -> io::Result<Loopback> {
        let Some((program, args)) = launcher.split_first() else {
            return Err(io::Error::other("no launcher"));
        };
        let (ours, theirs) = sys::seqpacket_pair()?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .arg("--make-netns")
            .arg(theirs.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        sys::map_fds(&mut cmd, Vec::new(), vec![theirs.as_raw_fd()]);
        let mut child = cmd.spawn()?;
        drop(cmd);
        drop(theirs);
        let (mut net, mut user) = (None, None);
        // Until the launcher exits (its end closes): at most two messages.
        for _ in 0..3 {
            let mut tag = [0u8; 1];
            match sys::recv_one_fd(ours.as_fd(), &mut tag)? {
                Some(fd) if tag[0] == sandbox::loopback::TAG_NET => net = Some(fd),
                Some(fd) if tag[0] == sandbox::loopback::TAG_USER => user = Some(fd),
                Some(_) => {}
                None => break,
            }
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.by_ref().take(64 * 1024).read_to_string(&mut stderr);
        }
        let status = child.wait()?;
        let why = stderr
            .lines()
            .map(|l| l.trim_start_matches("codex-sandbox-exec: "))
            .collect::<Vec<_>>()
            .join("; ");
        if !status.success() {
            return Err(io::Error::other(if why.is_empty() {
                format!("the launcher failed ({status})")
            } else {
                why
            }));
        }
        let net = net
            .filter(|fd| is_namespace(fd, "net"))
            .ok_or_else(|| io::Error::other("the launcher sent no network namespace"))?;
        if user.as_ref().is_some_and(|fd| !is_namespace(fd, "user")) {
            return Err(io::Error::other("the launcher sent no user namespace"));
        }
        Ok(Loopback {
            net: Arc::new(net),
            user: user.map(Arc::new),
        })
    }

    /// Hands these namespaces to the launcher `cmd` starts (`--netns FD
    /// [--userns FD]`, the fds inherited), for a command that inherits no
    /// other fd (`doctor`'s probe; a call passes them with its others).
    pub fn pass(&self, cmd: &mut Command) {
        let flags = self.flags();
        for (flag, fd) in &flags {
            cmd.arg(flag).arg(fd.to_string());
        }
        sys::map_fds(cmd, Vec::new(), flags.iter().map(|(_, fd)| *fd).collect());
    }

    /// The launcher's flags naming these namespaces, with the fds it must
    /// inherit.
    pub(crate) fn flags(&self) -> Vec<(&'static str, std::os::fd::RawFd)> {
        let mut flags = vec![("--netns", self.net.as_raw_fd())];
        if let Some(user) = &self.user {
            flags.push(("--userns", user.as_raw_fd()));
        }
        flags
    }
}

/// Whether `fd` is a namespace of kind `kind` (`net:[4026...]`).
fn is_namespace(fd: &OwnedFd, kind: &str) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.to_string_lossy().starts_with(&format!("{kind}:[")))
}
