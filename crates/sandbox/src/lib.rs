//! Confines the current process, and everything it later execs, to a
//! [`SandboxSpec`]: `no_new_privs`, Landlock for the filesystem (and TCP where
//! the ABI has it), seccomp for socket families. Linux only.
//!
//! API contract; the implementation is in progress.

use std::path::PathBuf;

/// What a sandboxed process may do, already resolved to concrete paths.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    /// Directories (and everything below) that may be written. Empty means
    /// read-only everywhere but the device files a shell needs.
    pub writable_roots: Vec<PathBuf>,
    /// Paths under writable roots that must stay read-only (`.git`, `.codex`),
    /// where the mechanism allows it.
    pub read_only_subpaths: Vec<PathBuf>,
    /// Allow network sockets (AF_INET, AF_INET6, ...). AF_UNIX is always allowed.
    pub network: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sandbox unavailable: {0}")]
    Unsupported(String),
}

/// Applies `spec` to the calling thread's process. Call it in a fresh,
/// single-threaded process right before `exec`. Fails closed: if the
/// kernel cannot enforce the spec, nothing is half-applied silently.
pub fn apply(_spec: &SandboxSpec) -> Result<(), Error> {
    Err(Error::Unsupported("not implemented yet".into()))
}
