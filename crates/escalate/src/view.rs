//! Where a path leads for a process of the sandbox, as the kernel resolves
//! it for that process (for the exec check).
//!
//! The server does not share the sandbox's view: the call has its own
//! `/dev` (and `/dev/shm`), its own `/proc`, and `/proc/self` names
//! whoever looks. Resolving the text of an exec's path in the server's
//! view (`canonicalize("/proc/PID/root/…")` follows `/proc/PID/root` by
//! its text, `/`) judged another file than the one that runs:
//! `/dev/fd/3` and `/proc/self/fd/3` were the server's own fd 3, and a
//! link in the sandbox's `/dev/shm` did not exist, so the exec went on
//! unjudged.
//!
//! **Invariant:** a path is walked one component at a time from the
//! process's own root, working directory or dirfd (opened through
//! `/proc/PID/root`, `cwd`, `fd/N`, which the kernel follows to the
//! process's files): an absolute symlink starts again at the process's
//! root, `..` stops there, `self` and `thread-self` of a procfs are the
//! process itself (in that procfs's numbering), and procfs's magic links
//! (`fd/N`, `cwd`, `root`, `exe`) are followed by the kernel. The answer
//! is the path of the file reached (its `/proc/self/fd` link), never the
//! text the process gave; `None` when nothing is there.
//!
//! Fast path: one `openat2` from the same start, `RESOLVE_IN_ROOT` (an
//! absolute path: `..` and absolute symlinks stop at the process's root) or
//! `RESOLVE_BENEATH` (a relative one: it fails on leaving the start
//! directory), with `RESOLVE_NO_MAGICLINKS` and `RESOLVE_NO_XDEV`. A walk
//! that stays on one mount, follows no magic link and ends off procfs
//! never met a procfs (the only place where the server's view of a name
//! differs from the process's: `self`, `thread-self`, the magic links), so
//! the kernel reaches the same file for the process. Anything else (a
//! mount crossed, `/proc`, `/dev`, a writable root, `..` out of the working
//! directory, no `openat2`, nothing there) takes the walk above.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, open, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::sys::statfs::{PROC_SUPER_MAGIC, fstatfs};

/// Symlinks followed at most (the kernel's own limit).
const MAX_LINKS: usize = 40;
/// The inode number of a procfs's root directory.
const PROC_ROOT_INO: u64 = 1;

/// Where a relative path starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start {
    /// The process's working directory (`AT_FDCWD`).
    Cwd,
    /// One of its fds (`execveat`'s dirfd).
    Fd(i32),
}

/// A file found for a process.
pub(crate) struct Found {
    /// Its path as the server names it (its `/proc/self/fd` link).
    pub path: PathBuf,
    /// The file itself (`O_PATH`).
    pub file: OwnedFd,
}

/// The file `path` leads to for thread `tid` (a number of the server's
/// pid namespace), starting at `start` when it is relative; with
/// `empty_path`, the file `start` is itself (`AT_EMPTY_PATH`).
#[cfg(test)]
pub(crate) fn resolve(tid: u32, start: Start, path: &Path, empty_path: bool) -> Option<PathBuf> {
    find(tid, start, path, empty_path).map(|found| found.path)
}

/// [`resolve`], with the file found.
pub(crate) fn find(tid: u32, start: Start, path: &Path, empty_path: bool) -> Option<Found> {
    let file = match fast(tid, start, path) {
        Some(file) => file,
        None => walk(tid, start, path, empty_path)?,
    };
    Some(Found {
        path: fd_path(&file)?,
        file,
    })
}

/// The fast path (see the module doc): `None` sends the path to [`walk`].
fn fast(tid: u32, start: Start, path: &Path) -> Option<OwnedFd> {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Set once `openat2` is missing (before Linux 5.6) or filtered.
    static NO_OPENAT2: AtomicBool = AtomicBool::new(false);
    if path.as_os_str().is_empty() || NO_OPENAT2.load(Ordering::Relaxed) {
        return None;
    }
    let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    let (what, scope) = if path.is_absolute() {
        ("root".to_owned(), ResolveFlag::RESOLVE_IN_ROOT)
    } else {
        let what = match start {
            Start::Cwd => "cwd".to_owned(),
            Start::Fd(fd) => format!("fd/{fd}"),
        };
        (what, ResolveFlag::RESOLVE_BENEATH)
    };
    let dir = open(format!("/proc/{tid}/{what}").as_str(), flags, Mode::empty()).ok()?;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(scope | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV);
    let file = match openat2(&dir, path, how) {
        Ok(file) => file,
        Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::EPERM) => {
            NO_OPENAT2.store(true, Ordering::Relaxed);
            return None;
        }
        Err(_) => return None,
    };
    // One mount from start to end: off procfs at the end, off it all along.
    if fstatfs(&file).is_ok_and(|s| s.filesystem_type() != PROC_SUPER_MAGIC) {
        Some(file)
    } else {
        None
    }
}

/// The component walk (see the module doc).
fn walk(tid: u32, start: Start, path: &Path, empty_path: bool) -> Option<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    let proc_open = |what: &str| open(format!("/proc/{tid}/{what}").as_str(), flags, Mode::empty());
    let root = proc_open("root").ok()?;
    let root_id = id(&fstat(&root).ok()?);
    let mut cur = if path.is_absolute() {
        root.try_clone().ok()?
    } else {
        match start {
            Start::Cwd => proc_open("cwd").ok()?,
            Start::Fd(fd) => proc_open(&format!("fd/{fd}")).ok()?,
        }
    };
    if empty_path && path.as_os_str().is_empty() {
        return Some(cur);
    }
    let mut rest = components(path.as_os_str());
    let mut links = 0;
    while let Some(name) = rest.pop_front() {
        if name == ".." {
            if id(&fstat(&cur).ok()?) != root_id {
                cur = openat(&cur, "..", flags | OFlag::O_DIRECTORY, Mode::empty()).ok()?;
            }
            continue;
        }
        let on_proc = fstatfs(&cur).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC);
        if on_proc
            && (name == "self" || name == "thread-self")
            && fstat(&cur).is_ok_and(|s| s.st_ino == PROC_ROOT_INO)
        {
            let own = own_entry(&cur, tid, name == "thread-self")?;
            for c in components(own.as_os_str()).into_iter().rev() {
                rest.push_front(c);
            }
            continue;
        }
        let st = fstatat(&cur, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
            cur = openat(
                &cur,
                name.as_os_str(),
                flags | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )
            .ok()?;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return None;
        }
        let text = readlinkat(&cur, name.as_os_str()).ok()?;
        if on_proc && text.as_bytes().starts_with(b"/") {
            // A magic link (`fd/N`, `cwd`, `root`, `exe`): its text is
            // only a name; the kernel follows it to the file itself.
            cur = openat(&cur, name.as_os_str(), flags, Mode::empty()).ok()?;
            continue;
        }
        if text.as_bytes().starts_with(b"/") {
            cur = root.try_clone().ok()?;
        }
        for c in components(&text).into_iter().rev() {
            rest.push_front(c);
        }
    }
    Some(cur)
}

/// The names of `path`, `..` kept (it is resolved against the file
/// system, not the text).
fn components(path: &OsStr) -> VecDeque<OsString> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn id(st: &FileStat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

/// The path of the file `fd` is open on, as the server names it.
fn fd_path(fd: &OwnedFd) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

/// What `self` (or `thread-self`) of the procfs whose root is `proc` is
/// for thread `tid`: `PID` (or `PID/task/TID`) in that procfs's pid
/// namespace. Each of the thread's numbers (`NStgid`, one per nested pid
/// namespace) is tried; the entry that is this process has its start
/// time and pid namespace.
fn own_entry(proc: &OwnedFd, tid: u32, thread: bool) -> Option<PathBuf> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let numbers = |key: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let (tgids, tids) = (numbers("NStgid:"), numbers("NSpid:"));
    let start = start_time(&std::fs::read(format!("/proc/{tid}/stat")).ok()?)?;
    let ns = std::fs::metadata(format!("/proc/{tid}/ns/pid")).ok()?;
    use std::os::unix::fs::MetadataExt;
    for (i, tgid) in tgids.iter().enumerate() {
        let entry = match (thread, tids.get(i)) {
            (true, Some(t)) => format!("{tgid}/task/{t}"),
            (true, None) => continue,
            (false, _) => tgid.clone(),
        };
        let same_ns = fstatat(proc, format!("{entry}/ns/pid").as_str(), AtFlags::empty())
            .is_ok_and(|s| s.st_ino == ns.ino() && s.st_dev == ns.dev());
        let same_start = openat(
            proc,
            format!("{entry}/stat").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .and_then(|fd| {
            use std::io::Read;
            let mut text = Vec::new();
            std::fs::File::from(fd).read_to_end(&mut text).ok()?;
            start_time(&text)
        }) == Some(start);
        if same_ns && same_start {
            return Some(PathBuf::from(entry));
        }
    }
    None
}

/// The start time (field 22) of a `/proc/PID/stat` text.
fn start_time(stat: &[u8]) -> Option<u64> {
    // The command name (field 2) may hold spaces and `)`: fields after the
    // last `)`.
    let after = stat.iter().rposition(|&b| b == b')')?;
    let fields = std::str::from_utf8(&stat[after + 1..]).ok()?;
    fields.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// This process resolves as the kernel does for it: `/proc/self/fd/N`
    /// is its own fd, `..` stops at `/`, links are followed.
    #[test]
    fn paths_resolve_as_for_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let file = file.canonicalize().unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("rel")).unwrap();
        let opened = std::fs::File::open(&file).unwrap();
        let me = std::process::id();
        let fd = opened.as_fd().as_raw_fd();
        let resolve = |p: &str| resolve(me, Start::Cwd, Path::new(p), false);
        assert_eq!(resolve(&format!("/proc/self/fd/{fd}")), Some(file.clone()));
        assert_eq!(resolve(&format!("/dev/fd/{fd}")), Some(file.clone()));
        assert_eq!(
            resolve(&format!("/proc/thread-self/fd/{fd}")),
            Some(file.clone())
        );
        let abs = dir.path().join("abs").display().to_string();
        assert_eq!(resolve(&abs), Some(file.clone()));
        let rel = format!("/../../{}", dir.path().join("rel").display());
        assert_eq!(resolve(&rel), Some(file.clone()));
        assert_eq!(
            resolve(&dir.path().join("missing").display().to_string()),
            None
        );
        let dirfd = std::fs::File::open(dir.path()).unwrap();
        let at = Start::Fd(dirfd.as_fd().as_raw_fd());
        assert_eq!(resolve_at(me, at, "rel"), Some(file.clone()));
        let at = Start::Fd(fd);
        assert_eq!(super::resolve(me, at, Path::new(""), true), Some(file));
    }

    /// Where the fast path answers, it finds the file the walk finds; it
    /// leaves to the walk every path through procfs or another mount.
    #[test]
    fn the_fast_path_agrees_with_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("rel")).unwrap();
        std::os::unix::fs::symlink("/proc/self/exe", dir.path().join("exe")).unwrap();
        let opened = std::fs::File::open(&file).unwrap();
        let fd = opened.as_fd().as_raw_fd();
        let me = std::process::id();
        let d = dir.path().display();
        let paths = [
            "/bin/true".to_owned(),
            "/usr/bin/env".to_owned(),
            format!("{d}/abs"),
            format!("{d}/rel"),
            format!("/../../{d}/rel"),
            format!("{d}/exe"),
            format!("/proc/self/fd/{fd}"),
            format!("/dev/fd/{fd}"),
            "/proc/self/exe".to_owned(),
            format!("{d}/missing"),
        ];
        for p in &paths {
            let p = Path::new(p);
            let walked = walk(me, Start::Cwd, p, false).and_then(|f| fd_path(&f));
            if let Some(fast) = fast(me, Start::Cwd, p) {
                assert_eq!(fd_path(&fast), walked, "{}", p.display());
            }
        }
        for p in [
            format!("/proc/self/fd/{fd}"),
            format!("/dev/fd/{fd}"),
            format!("{d}/exe"),
        ] {
            assert!(fast(me, Start::Cwd, Path::new(&p)).is_none(), "{p}");
        }
    }

    fn resolve_at(tid: u32, start: Start, p: &str) -> Option<PathBuf> {
        resolve(tid, start, Path::new(p), false)
    }

    #[test]
    fn start_time_skips_the_command_name() {
        let stat = b"12 (a) b) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 99";
        assert_eq!(start_time(stat), Some(424242));
    }
}
