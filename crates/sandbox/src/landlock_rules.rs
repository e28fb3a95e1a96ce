//! The Landlock ruleset: read and execute everywhere, every write-ish right
//! below the writable roots and on the device files a shell needs, and (when
//! the network is off) no TCP bind or connect.

use std::io;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus,
};

use crate::{Error, SandboxSpec};

/// The newest ABI whose filesystem rights we ask for. ABI 9 adds
/// `RESOLVE_UNIX` (connecting to named UNIX sockets) as a write-ish right;
/// AF_UNIX stays allowed in this sandbox, so it is deliberately not handled.
const FS_ABI: ABI = ABI::V8;
/// The newest ABI whose network rights we ask for (TCP since 4, UDP since 10).
const NET_ABI: ABI = ABI::V10;

/// Device files a shell (and most programs) open for writing or ioctl.
pub(crate) const DEVICE_FILES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/urandom",
    "/dev/random",
    "/dev/ptmx",
    "/dev/pts",
];

/// What [`restrict_self`] enforced.
pub(crate) struct Enforced {
    pub tcp: bool,
    pub missing_writable_roots: Vec<PathBuf>,
}

/// Builds the ruleset for `spec` and enforces it on the calling thread
/// (inherited across fork and exec). `abi` is the kernel's version, used
/// only to report what the best-effort ruleset covered.
pub(crate) fn restrict_self(spec: &SandboxSpec, abi: u32) -> Result<Enforced, Error> {
    let all = AccessFs::from_all(FS_ABI);
    let read = AccessFs::from_read(FS_ABI);
    let mut ruleset = Ruleset::default()
        .handle_access(all)
        .map_err(landlock_error("handle filesystem access"))?;
    let deny_tcp = !spec.network && abi >= 4;
    if !spec.network {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(NET_ABI))
            .map_err(landlock_error("handle network access"))?;
    }
    let mut created = ruleset.create().map_err(landlock_error("create ruleset"))?;

    created = add_rule(created, Path::new("/"), true, read)?;
    let mut missing_writable_roots = Vec::new();
    // One stat per path: it runs on every sandboxed call.
    for root in &spec.writable_roots {
        match std::fs::metadata(root) {
            Ok(meta) => created = add_rule(created, root, meta.is_dir(), all)?,
            // Fewer writable paths is safe: report it rather than fail.
            Err(_) => missing_writable_roots.push(root.clone()),
        }
    }
    for device in DEVICE_FILES.iter().map(Path::new) {
        if let Ok(meta) = std::fs::metadata(device) {
            created = add_rule(created, device, meta.is_dir(), all)?;
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
        missing_writable_roots,
    })
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
