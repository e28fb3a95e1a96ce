//! The Landlock ruleset: read and execute everywhere (but the host's
//! terminals when `/dev` is the host's, and the hidden files outside the
//! writable roots: one rule per entry of each directory above them, none
//! on them), every write-ish right below the
//! writable roots except making device nodes, the device files a shell
//! needs, and (when the network is off, outside the client's shared
//! loopback) no TCP or UDP. Scopes (ABI 6): no
//! signal to, and no abstract UNIX socket of, a process outside the
//! sandbox. Named UNIX sockets (ABI 9): `RESOLVE_UNIX` is handled and
//! granted nowhere, so only sockets made inside the sandbox can be reached.

use std::io;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::{Error, SandboxSpec};

/// The newest ABI whose filesystem rights we ask for (9 adds
/// `RESOLVE_UNIX`).
const FS_ABI: ABI = ABI::V9;
/// The newest ABI whose network rights we ask for (TCP since 4, UDP since 10).
const NET_ABI: ABI = ABI::V10;
/// The newest ABI whose scopes we ask for (signals, abstract sockets: 6).
const SCOPE_ABI: ABI = ABI::V10;

/// Which `/dev` the command sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Devices {
    /// The private, minimal one (`rootfs`): everything in it is the call's
    /// own, so it may be read, and its pseudo-terminals and `shm` written.
    Private,
    /// The host's: its terminals must be neither written nor read (a tty's
    /// input is its user's keystrokes), so `/dev` is readable only for a
    /// few harmless entries.
    Host,
}

/// Written in either `/dev`.
const WRITABLE_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/urandom",
    "/dev/random",
];
/// Written in the private `/dev` only.
const PRIVATE_DEVICES: &[&str] = &["/dev/tty", "/dev/ptmx", "/dev/pts", "/dev/shm"];
/// Read in the host's `/dev` (symlinks such as `/dev/fd` lead to `/proc`,
/// which is readable).
const READABLE_HOST_DEVICES: &[&str] = &["null", "zero", "full", "urandom", "random", "shm"];

/// What [`restrict_self`] enforced.
pub(crate) struct Enforced {
    pub tcp: bool,
    pub scopes: bool,
    pub missing_writable_roots: Vec<PathBuf>,
}

/// Builds the ruleset for `spec` and enforces it on the calling thread
/// (inherited across fork and exec). `abi` is the kernel's version, used
/// only to report what the best-effort ruleset covered. `loopback`: the
/// call is in the client's shared loopback network (see `loopback`), so
/// TCP and UDP are not restricted (the namespace has nothing but `lo`).
pub(crate) fn restrict_self(
    spec: &SandboxSpec,
    abi: u32,
    devices: Devices,
    loopback: bool,
) -> Result<Enforced, Error> {
    let all = AccessFs::from_all(FS_ABI);
    let read = AccessFs::from_read(FS_ABI);
    // Device nodes made in a writable root (`/tmp`) would open the disk or
    // memory behind the sandbox's back; sockets there are reachable only
    // from inside (RESOLVE_UNIX is never granted).
    let writable = all & !(AccessFs::MakeChar | AccessFs::MakeBlock | AccessFs::ResolveUnix);
    let mut ruleset = Ruleset::default()
        .handle_access(all)
        .map_err(landlock_error("handle filesystem access"))?;
    let restrict_net = !spec.network && !loopback;
    let deny_tcp = restrict_net && abi >= 4;
    if restrict_net {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(NET_ABI))
            .map_err(landlock_error("handle network access"))?;
    }
    let scopes = abi >= 6;
    if scopes {
        ruleset = ruleset
            .scope(Scope::from_all(SCOPE_ABI))
            .map_err(landlock_error("scope signals and abstract sockets"))?;
    }
    let mut created = ruleset.create().map_err(landlock_error("create ruleset"))?;

    // Below a writable root the root's own rule would grant the read
    // anyway: there the mount hides a file (`rootfs`).
    let mut unread: Vec<&Path> = spec
        .hidden
        .iter()
        .filter(|path| !spec.under_writable_root(path))
        .map(PathBuf::as_path)
        .collect();
    if devices == Devices::Host {
        unread.push(Path::new("/dev"));
    }
    created = add_read_rules(created, read, &unread)?;
    if devices == Devices::Host {
        for name in READABLE_HOST_DEVICES {
            let path = Path::new("/dev").join(name);
            if let Ok(meta) = std::fs::metadata(&path) {
                created = add_rule(created, &path, meta.is_dir(), read)?;
            }
        }
    }
    let mut missing_writable_roots = Vec::new();
    // One stat per path: it runs on every sandboxed call.
    for root in &spec.writable_roots {
        match open_root(root) {
            Some((fd, is_dir)) => created = add_rule_fd(created, fd, is_dir, writable)?,
            // Fewer writable paths is safe: report it rather than fail.
            None => missing_writable_roots.push(root.clone()),
        }
    }
    let private = match devices {
        Devices::Private => PRIVATE_DEVICES,
        Devices::Host => &[],
    };
    for device in WRITABLE_DEVICES.iter().chain(private).map(Path::new) {
        if let Ok(meta) = std::fs::metadata(device) {
            created = add_rule(created, device, meta.is_dir(), writable)?;
        }
    }

    let status = created
        .restrict_self()
        .map_err(landlock_error("restrict self"))?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(Error::Unsupported(format!(
            "landlock accepted no rule on this kernel (landlock abi {abi})"
        )));
    }
    Ok(Enforced {
        tcp: deny_tcp,
        scopes,
        missing_writable_roots,
    })
}

/// Read everywhere but `unread` (and what lies below): a single rule on
/// `/` when nothing is left out, else listing everywhere and one rule per
/// entry of each directory above a path left out (symlinks are skipped:
/// they lead to entries covered anyway, or left out).
fn add_read_rules(
    created: RulesetCreated,
    read: BitFlags<AccessFs>,
    unread: &[&Path],
) -> Result<RulesetCreated, Error> {
    if unread.is_empty() {
        return add_rule(created, Path::new("/"), true, read);
    }
    // Listing any directory (names only; `/dev/pts` included) is harmless.
    let created = add_rule(created, Path::new("/"), true, AccessFs::ReadDir.into())?;
    add_read_rules_beside(created, Path::new("/"), read, unread)
}

fn add_read_rules_beside(
    mut created: RulesetCreated,
    dir: &Path,
    read: BitFlags<AccessFs>,
    unread: &[&Path],
) -> Result<RulesetCreated, Error> {
    // A directory the server cannot list grants nothing: stricter.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(created);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if unread.contains(&path.as_path()) {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            continue;
        }
        if kind.is_dir() && unread.iter().any(|u| u.starts_with(&path)) {
            created = add_read_rules_beside(created, &path, read, unread)?;
        } else {
            created = add_rule(created, &path, kind.is_dir(), read)?;
        }
    }
    Ok(created)
}

fn landlock_error<E>(step: &'static str) -> impl FnOnce(E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |source| Error::Landlock {
        step,
        source: Box::new(source),
    }
}

/// Opens a writable root for its rule, if it still is what the server
/// resolved: the path names the same directory, reached without a
/// symlink. The server refuses roots reached through a symlink, but
/// between its check and this open a command of another call could have
/// renamed a directory above the root and put a symlink (to anywhere) in
/// its place; the fd's own path (`/proc/self/fd/N`) tells. `None`: the
/// root is left out (and reported).
fn open_root(root: &Path) -> Option<(std::fs::File, bool)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(root)
        .ok()?;
    let at = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    if at != root {
        return None;
    }
    let is_dir = fd.metadata().ok()?.is_dir();
    Some((fd, is_dir))
}

/// [`add_rule`] for an fd already open on the path.
fn add_rule_fd(
    created: RulesetCreated,
    fd: std::fs::File,
    is_dir: bool,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, Error> {
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(FS_ABI)
    };
    created
        .add_rule(PathBeneath::new(fd, access))
        .map_err(landlock_error("add rule"))
}

/// Allows `access` beneath `path`, narrowed to the rights that apply to
/// non-directories when `path` is not a directory (Landlock rejects the
/// others).
fn add_rule(
    created: RulesetCreated,
    path: &Path,
    is_dir: bool,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, Error> {
    let fd = PathFd::new(path).map_err(|source| Error::Path {
        path: path.to_path_buf(),
        source: io::Error::other(source),
    })?;
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(FS_ABI)
    };
    created
        .add_rule(PathBeneath::new(fd, access))
        .map_err(landlock_error("add rule"))
}
