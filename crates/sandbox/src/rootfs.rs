//! The filesystem a sandboxed call sees, in its own mount namespace (see
//! `namespaces`), the way bubblewrap builds one:
//!
//! 1. every mount made private (nothing propagates to or from the host);
//! 2. each writable root cloned as it is (`open_tree`);
//! 3. the whole tree made read-only (`mount_setattr`, recursive), so outside
//!    the writable roots even metadata writes fail (`chmod`, `chown`,
//!    `utimes`, `setxattr`: `EROFS`), which Landlock cannot refuse;
//! 4. a minimal `/dev` on a tmpfs: `null`, `zero`, `full`, `random`,
//!    `urandom` and `tty` bound from the host, a private `devpts` instance
//!    (the command's own pseudo-terminals work; the user's terminals are not
//!    there to be opened), a private `/dev/shm`;
//! 5. the writable roots attached back on top, writable;
//! 6. the read-only subpaths below them (`.git`, `.codex`, …) bound
//!    read-only (`EROFS`);
//! 7. the hidden files below them (the server's secrets) covered by a
//!    mount that cannot be read: `/dev/null` bound over a file on a
//!    `nodev` mount (opening it fails with `EACCES`), an empty read-only
//!    tmpfs with mode 000 over a directory; renaming or removing a mount
//!    point fails with `EBUSY`;
//! 8. a `/proc` of the call's own pid namespace.
//!
//! Each step that fails leaves the sandbox stricter or as strict as
//! Landlock alone makes it, and is reported in [`View`]; a writable root
//! that cannot be attached back is reported and stays read-only.
//!
//! **Invariant:** runs in the namespace's init before any sandboxed code;
//! the sandboxed program cannot undo it (Landlock forbids every mount
//! operation to a restricted process, and it keeps no capability).

use std::ffi::CStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::namespaces::Entered;
use crate::{SandboxSpec, UnprotectedSubpath, sys};

/// Device files bound into the minimal `/dev`.
pub(crate) const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// What the call's filesystem view is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct View {
    /// Everything outside the writable roots is a read-only mount.
    pub read_only_root: bool,
    /// `/dev` is the minimal one, with a private `devpts` and `/dev/shm`.
    pub private_dev: bool,
    /// `/proc` shows the call's own processes only.
    pub private_proc: bool,
    /// Read-only subpaths protected by a read-only bind mount.
    pub protected: Vec<PathBuf>,
    /// Read-only subpaths left writable, and why.
    pub unprotected: Vec<UnprotectedSubpath>,
    /// Hidden files below writable roots covered by an empty mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<PathBuf>,
    /// Why parts of the view could not be built.
    pub gaps: Vec<String>,
}

/// Builds the view for `spec` in the current (new) mount namespace, or
/// reports why there is none.
pub(crate) fn build(spec: &SandboxSpec, entered: &Entered) -> View {
    let mut wanted: Vec<PathBuf> = spec
        .read_only_subpaths
        .iter()
        .chain(&spec.must_protect)
        .filter(|path| {
            spec.writable_roots
                .iter()
                .any(|root| path.starts_with(root))
        })
        .filter(|path| path.symlink_metadata().is_ok())
        .cloned()
        .collect();
    let mut view = View::default();
    if !entered.private {
        let reason = entered
            .missing
            .clone()
            .unwrap_or_else(|| "no mount namespace".into());
        view.unprotected = unprotected(&wanted, &reason);
        view.gaps.push(reason);
        return view;
    }
    if let Err(e) = sys::make_mounts_private() {
        let reason = format!("cannot make mounts private: {e}");
        view.unprotected = unprotected(&wanted, &reason);
        view.gaps.push(reason);
        return view;
    }
    let everything_writable = spec.writable_roots.iter().any(|r| r == Path::new("/"));
    let mut roots: Vec<(&PathBuf, OwnedFd)> = Vec::new();
    let mut devices: Vec<(&str, OwnedFd)> = Vec::new();
    // Cloned before the tree is made read-only: writable as on the host.
    for name in DEVICES {
        if let Ok(tree) = sys::clone_tree(&Path::new("/dev").join(name)) {
            devices.push((name, tree));
        }
    }
    if !everything_writable {
        for root in &spec.writable_roots {
            match sys::clone_tree(root) {
                Ok(tree) => roots.push((root, tree)),
                Err(e) => view.gaps.push(format!(
                    "writable root {} stays read-only: {e}",
                    root.display()
                )),
            }
        }
        match sys::make_tree_read_only(Path::new("/")) {
            Ok(()) => view.read_only_root = true,
            Err(e) => view.gaps.push(format!(
                "cannot make the filesystem read-only (mount_setattr: {e}); metadata writes \
                 outside the writable roots are not refused"
            )),
        }
    }
    match private_dev(&devices) {
        Ok(()) => view.private_dev = true,
        Err(e) => view.gaps.push(format!(
            "no private /dev ({e}): the host's terminals stay visible (Landlock still refuses \
             writing them)"
        )),
    }
    // Shallow roots first, so a nested root lands on top of its parent.
    roots.sort_by_key(|(root, _)| root.components().count());
    for (root, tree) in &roots {
        if let Err(e) = sys::attach_tree(tree, root) {
            view.gaps.push(format!(
                "writable root {} stays read-only: {e}",
                root.display()
            ));
        }
    }
    let mut seen = Vec::new();
    wanted.retain(|p| {
        let first = !seen.contains(p);
        seen.push(p.clone());
        first
    });
    for path in wanted {
        // A directory between the root and the subpath could be renamed
        // away and replaced (with the subpath's content forged); as a mount
        // point it cannot be (`EBUSY`).
        if let Err(e) = pin_ancestors(&path, &spec.writable_roots) {
            view.unprotected.push(UnprotectedSubpath {
                path,
                reason: format!("cannot pin the directories above it: {e}"),
            });
            continue;
        }
        match sys::bind_read_only(&path) {
            Ok(()) => view.protected.push(path),
            Err(e) => view.unprotected.push(UnprotectedSubpath {
                path,
                reason: format!("read-only bind mount failed: {e}"),
            }),
        }
    }
    for path in spec
        .hidden
        .iter()
        .filter(|path| spec.under_writable_root(path))
    {
        let pinned = (spec.must_protect.contains(path) && view.protected.contains(path))
            || pin_ancestors(path, &spec.writable_roots).is_ok();
        if pinned && cover(path).is_ok() {
            view.hidden.push(path.clone());
        } else {
            view.gaps.push(format!("cannot hide {}", path.display()));
        }
    }
    // The working directory was entered before the mounts: it is still the
    // directory of the old (now read-only) mount. Enter it again by path.
    if let Ok(cwd) = std::env::current_dir()
        && let Err(e) = std::env::set_current_dir(&cwd)
    {
        view.gaps.push(format!(
            "cannot enter {} again in the new view: {e}",
            cwd.display()
        ));
    }
    let proc_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    match sys::mount(c"proc", Path::new("/proc"), Some(c"proc"), proc_flags, None) {
        Ok(()) => view.private_proc = true,
        Err(e) => view.gaps.push(format!(
            "no private /proc ({e}): other processes stay listed (Landlock still refuses \
             inspecting or signalling them)"
        )),
    }
    view
}

/// Bind-mounts each directory strictly between the outermost writable
/// root holding `path` and `path` onto itself (writable as before), so none
/// of them can be renamed. The outermost: with a root nested in another
/// (a workspace under `/tmp`), a directory between the two could be
/// renamed away and a forged copy of everything below it put in its
/// place. The nested roots on the way are mount points already.
fn pin_ancestors(path: &Path, roots: &[PathBuf]) -> std::io::Result<()> {
    let Some(root) = roots
        .iter()
        .filter(|root| path.starts_with(root))
        .min_by_key(|root| root.components().count())
    else {
        return Ok(());
    };
    let mut between: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .take_while(|a| *a != root.as_path())
        .filter(|a| !roots.iter().any(|r| r == a))
        .collect();
    between.reverse();
    for dir in between {
        sys::bind_self(dir)?;
    }
    Ok(())
}

/// Covers `path` with a mount that cannot be read: the (private)
/// `/dev/null` over a file, read-only and `nodev` (so it cannot even be
/// opened), an empty read-only tmpfs over a directory.
fn cover(path: &Path) -> std::io::Result<()> {
    if path.symlink_metadata()?.is_dir() {
        sys::mount(
            c"tmpfs",
            path,
            Some(c"tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
            Some(c"mode=0000,size=4k"),
        )
    } else {
        let null = sys::clone_tree(Path::new("/dev/null"))?;
        sys::attach_tree(&null, path)?;
        sys::remount_read_only_with(path, libc::MS_NODEV | libc::MS_NOSUID | libc::MS_NOEXEC)
    }
}

fn unprotected(paths: &[PathBuf], reason: &str) -> Vec<UnprotectedSubpath> {
    paths
        .iter()
        .map(|path| UnprotectedSubpath {
            path: path.clone(),
            reason: reason.to_owned(),
        })
        .collect()
}

/// A tmpfs on `/dev` with the cloned device files, a fresh `devpts` and a
/// fresh `/dev/shm`.
fn private_dev(devices: &[(&str, OwnedFd)]) -> std::io::Result<()> {
    let dev = Path::new("/dev");
    let nosuid_noexec = libc::MS_NOSUID | libc::MS_NOEXEC;
    sys::mount(
        c"tmpfs",
        dev,
        Some(c"tmpfs"),
        nosuid_noexec,
        Some(c"mode=0755,size=1m"),
    )?;
    for (name, tree) in devices {
        let path = dev.join(name);
        fs::File::create(&path)?;
        sys::attach_tree(tree, &path)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))?;
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts)?;
    let devpts: &CStr = c"newinstance,ptmxmode=0666,mode=0620";
    sys::mount(
        c"devpts",
        &pts,
        Some(c"devpts"),
        nosuid_noexec,
        Some(devpts),
    )?;
    let shm = dev.join("shm");
    fs::create_dir(&shm)?;
    sys::mount(
        c"tmpfs",
        &shm,
        Some(c"tmpfs"),
        nosuid_noexec | libc::MS_NODEV,
        Some(c"mode=1777"),
    )?;
    // The tmpfs itself holds nothing to write: read-only, like the host's
    // tree (the binds and mounts on it keep their own flags).
    sys::remount_read_only(dev)
}
