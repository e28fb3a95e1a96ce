//! No kernel keyring of the user is reached from the sandbox.
//!
//! **Invariant: a sandboxed process can neither read nor change a key.**
//! Keyrings are not files: Landlock does not see them, and neither the
//! mount nor the pid namespace separates them. The session keyring is
//! inherited from the server (often the login session's: Kerberos
//! tickets, `ecryptfs` and NFS/CIFS credentials, secrets stored with
//! `keyctl`), and a root server's sandbox shares the user keyring of every
//! root process (`@u`). A sandboxed `keyctl read` would take those
//! secrets, and `keyctl add`/`update` would plant or replace keys that
//! programs outside then use. So a seccomp filter fails `add_key`,
//! `request_key` and `keyctl` with `ENOSYS` (as if the kernel had no
//! keyrings, which programs handle; Docker's default profile refuses the
//! same three). Always installed, whatever the network setting; x32 and
//! other architectures' calls are refused as in `seccomp`, which joins
//! the filters.

use crate::Error;

/// The filter, for `seccomp::install`.
pub(crate) fn filter() -> Result<crate::bpf::Program, Error> {
    build().map_err(|e| Error::Seccomp(e.to_string()))
}

fn build() -> Result<crate::bpf::Program, seccompiler::Error> {
    crate::seccomp::refusing(
        [libc::SYS_add_key, libc::SYS_request_key, libc::SYS_keyctl]
            .map(|nr| (nr, Vec::new()))
            .to_vec(),
        libc::ENOSYS,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_compiles_for_this_architecture() {
        assert!(!super::build().expect("filter builds").is_empty());
    }
}
