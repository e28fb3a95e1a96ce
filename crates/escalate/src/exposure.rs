//! What sandboxed code could have written since the server started: the
//! writable roots of every sandboxed call, and the read-only subpaths
//! (`.git`, `.codex`, …) that every one of those calls kept read-only.
//!
//! An escalated program must not come from, nor read code or configuration
//! from, anything sandboxed code could have written — in this call or any
//! other, earlier or concurrent: a `.git` created by `git init` in one call
//! is protected by the next call's sandbox (it existed when that sandbox
//! started), but its content is the sandbox's. So a path counts as written
//! by no sandbox when it is outside every writable root seen so far, or lies
//! in a read-only subpath that
//!
//! - every sandboxed call whose roots contain it protected: its launcher
//!   reported a read-only bind mount there (a launcher that could not create
//!   a mount namespace protects nothing, and says so), so it existed when
//!   each of those sandboxes started, and no earlier call could write it;
//! - sits directly in a writable root that lies in no other writable root
//!   of that call, so no sandbox can rename a directory above it and put
//!   another in its place (a bind mount moves with its directory).
//!
//! The launcher reports what it protected before it runs the command (see
//! `sandbox::launcher`); a call whose report has not been read yet counts
//! as protecting nothing until it is, and checks wait (briefly) for it.
//! Calls without a sandbox are not recorded: their commands could write
//! anything anyway. The record starts empty at server start: a repository
//! written by a command of an earlier server run is not told apart.
//!
//! Paths are checked the way the kernel resolves them: a symlink on the way
//! that lies where a sandbox can write could be changed after the check, so
//! it fails the check too.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a check waits for launchers that have not reported yet.
const PENDING_WAIT: Duration = Duration::from_secs(5);
/// Symlinks followed while resolving one path (as the kernel's `ELOOP`).
const MAX_LINKS: usize = 40;

/// The server-wide record; one per server, shared by every call.
#[derive(Debug, Default)]
pub struct Exposure {
    state: Mutex<State>,
    reported: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Writable roots of every reported sandboxed call (canonical).
    roots: Vec<PathBuf>,
    /// Read-only subpaths ever reported, and whether they are still
    /// written by no sandbox (see the module docs).
    subpaths: HashMap<PathBuf, bool>,
    /// Calls whose launcher has not reported yet, by id: their roots.
    pending: HashMap<u64, Vec<PathBuf>>,
    next_id: u64,
}

/// A sandboxed call's entry, until its launcher's report is in. Dropped
/// without [`Registration::report`]: the call protected nothing.
#[derive(Debug)]
pub struct Registration {
    exposure: Arc<Exposure>,
    id: u64,
    done: bool,
}

impl Registration {
    /// What the call's launcher protected (`None`: no report; nothing).
    pub fn report(mut self, protected: Option<Vec<PathBuf>>) {
        self.finish(protected.unwrap_or_default());
    }

    fn finish(&mut self, protected: Vec<PathBuf>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let mut state = self.exposure.lock();
        if let Some(roots) = state.pending.remove(&self.id) {
            state.fold(roots, &protected);
        }
        drop(state);
        self.exposure.reported.notify_all();
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.finish(Vec::new());
    }
}

impl State {
    /// Adds one call's sandbox to the record.
    fn fold(&mut self, roots: Vec<PathBuf>, protected: &[PathBuf]) {
        let keeps = |s: &Path| {
            protected.iter().any(|p| p == s)
                && s.parent().is_some_and(|parent| {
                    roots.iter().any(|r| r == parent)
                        && !roots.iter().any(|r| r != parent && parent.starts_with(r))
                })
        };
        for (sub, clean) in self.subpaths.iter_mut() {
            if *clean && roots.iter().any(|r| sub.starts_with(r)) && !keeps(sub) {
                *clean = false;
            }
        }
        for sub in protected {
            if !self.subpaths.contains_key(sub) {
                let written_before = self.roots.iter().any(|r| sub.starts_with(r));
                self.subpaths
                    .insert(sub.clone(), keeps(sub) && !written_before);
            }
        }
        for root in roots {
            if !self.roots.contains(&root) {
                self.roots.push(root);
            }
        }
    }

    /// The writable root `path` (canonical, existing or not) lies under,
    /// unless a read-only subpath no sandbox wrote holds it.
    fn writer(&self, path: &Path) -> Option<&Path> {
        let root = self
            .roots
            .iter()
            .chain(self.pending.values().flatten())
            .find(|r| path.starts_with(r))?;
        let kept = self
            .subpaths
            .iter()
            .any(|(sub, clean)| *clean && path.starts_with(sub));
        (!kept).then_some(root.as_path())
    }

    /// A writable root strictly inside `dir`.
    fn root_inside(&self, dir: &Path) -> Option<&Path> {
        self.roots
            .iter()
            .chain(self.pending.values().flatten())
            .find(|r| r.as_path() != dir && r.starts_with(dir))
            .map(PathBuf::as_path)
    }
}

/// Why a path fails a check.
pub type Why = String;

impl Exposure {
    pub fn new() -> Arc<Exposure> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a sandboxed call about to start with these (canonical)
    /// writable roots; its launcher's report completes the entry.
    pub fn begin(self: &Arc<Self>, roots: Vec<PathBuf>) -> Registration {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.pending.insert(id, roots);
        Registration {
            exposure: self.clone(),
            id,
            done: false,
        }
    }

    /// The state once every launcher has reported, or [`PENDING_WAIT`] has
    /// passed (calls still pending then count as protecting nothing).
    fn settled(&self) -> MutexGuard<'_, State> {
        let deadline = Instant::now() + PENDING_WAIT;
        let mut state = self.lock();
        while !state.pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .reported
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state
    }

    /// Whether nothing was ever writable by a sandbox (no sandboxed call,
    /// or only read-only ones): every check passes at once.
    fn nothing_exposed(state: &State) -> bool {
        state.roots.is_empty() && state.pending.values().all(Vec::is_empty)
    }

    /// `Ok` when no sandbox can have written or changed the file (or
    /// directory entry) at `path` (absolute), nor any symlink leading to it;
    /// for a path that does not exist, when no sandbox could have created
    /// it. Returns the resolved path.
    pub fn check_file(&self, path: &Path) -> Result<Option<PathBuf>, Why> {
        let state = self.settled();
        if Self::nothing_exposed(&state) {
            return Ok(Some(path.to_path_buf()));
        }
        check_file(&state, path)
    }

    /// As [`Exposure::check_file`] for a directory and everything below it
    /// (no writable root lies inside it). Symlinks inside it are not
    /// followed: check the files that matter with [`Exposure::check_file`].
    pub fn check_tree(&self, dir: &Path) -> Result<Option<PathBuf>, Why> {
        let state = self.settled();
        if Self::nothing_exposed(&state) {
            return Ok(Some(dir.to_path_buf()));
        }
        let resolved = check_file(&state, dir)?;
        if let Some(dir) = &resolved
            && let Some(root) = state.root_inside(dir)
        {
            return Err(format!(
                "{} holds {}, which sandboxed commands can write",
                dir.display(),
                root.display()
            ));
        }
        Ok(resolved)
    }

    /// Like [`Exposure::check_file`] for many paths under one lock.
    pub fn check_all<'a>(&self, files: impl IntoIterator<Item = &'a Path>) -> Result<(), Why> {
        let state = self.settled();
        if Self::nothing_exposed(&state) {
            return Ok(());
        }
        for file in files {
            check_file(&state, file)?;
        }
        Ok(())
    }
}

/// See [`Exposure::check_file`]: `Ok(None)` for a path that does not exist
/// (and could not have been created by a sandbox).
fn check_file(state: &State, path: &Path) -> Result<Option<PathBuf>, Why> {
    let written = |what: &Path, root: &Path, how: &str| {
        let tainted = state
            .subpaths
            .iter()
            .any(|(sub, clean)| !*clean && what.starts_with(sub));
        let when = if tainted {
            " (it is read-only now, but an earlier or concurrent sandboxed call could write it)"
        } else {
            ""
        };
        Err(format!(
            "{} {how} under {}, which sandboxed commands can write{when}",
            what.display(),
            root.display()
        ))
    };
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    let mut resolved = PathBuf::from("/");
    let mut missing = false;
    // Components still to walk, in reverse (a stack).
    let mut todo: Vec<std::ffi::OsString> = components(path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        match name.to_str() {
            Some("/") => resolved = PathBuf::from("/"),
            Some(".") => {}
            Some("..") => {
                resolved.pop();
            }
            _ => {
                let next = resolved.join(&name);
                match next.symlink_metadata() {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        // The link is an entry of `resolved`.
                        if let Some(root) = state.writer(&resolved) {
                            return written(&next, root, "is a symlink");
                        }
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(format!("{}: too many symlinks", path.display()));
                        }
                        let target = std::fs::read_link(&next)
                            .map_err(|e| format!("{}: {e}", next.display()))?;
                        todo.extend(components(&target));
                    }
                    Ok(_) => resolved = next,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
                    {
                        missing = true;
                        break;
                    }
                    Err(e) => return Err(format!("{}: {e}", next.display())),
                }
            }
        }
    }
    if missing {
        // Missing: whoever can write its deepest existing directory could
        // create it.
        if let Some(root) = state.writer(&resolved) {
            return written(path, root, "does not exist but could be created");
        }
        return Ok(None);
    }
    if let Some(root) = state.writer(&resolved) {
        let how = if resolved == path {
            "is"
        } else {
            "resolves to a file"
        };
        return written(path, root, how);
    }
    Ok(Some(resolved))
}

/// `path`'s components as a stack (last first), `/` for the root.
fn components(path: &Path) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = path
        .components()
        .map(|c| match c {
            Component::RootDir => "/".into(),
            Component::CurDir => ".".into(),
            Component::ParentDir => "..".into(),
            Component::Normal(n) => n.to_owned(),
            Component::Prefix(p) => p.as_os_str().to_owned(),
        })
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(paths: &[&Path]) -> Vec<PathBuf> {
        paths.iter().map(|p| p.to_path_buf()).collect()
    }

    #[test]
    fn a_subpath_counts_only_when_every_call_kept_it() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let work = base.join("work");
        let git = work.join(".git");
        std::fs::create_dir_all(git.join("hooks")).unwrap();
        std::fs::write(git.join("config"), "").unwrap();
        let outside = base.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("f"), "").unwrap();

        let exposure = Exposure::new();
        // Nothing sandboxed yet: everything is clean.
        assert!(exposure.check_file(&work.join("x")).is_ok());
        // A call protecting .git.
        exposure
            .begin(roots(&[&work]))
            .report(Some(vec![git.clone()]));
        assert!(exposure.check_file(&git.join("config")).is_ok());
        assert!(exposure.check_tree(&git).is_ok());
        assert!(exposure.check_file(&outside.join("f")).is_ok());
        let err = exposure.check_file(&work.join("x")).unwrap_err();
        assert!(err.contains("could be created"), "{err}");
        // A call that could not protect it taints it for good.
        exposure.begin(roots(&[&work])).report(None);
        assert!(exposure.check_file(&git.join("config")).is_err());
        exposure
            .begin(roots(&[&work]))
            .report(Some(vec![git.clone()]));
        assert!(exposure.check_file(&git.join("config")).is_err());
    }

    #[test]
    fn a_subpath_that_appeared_after_a_call_is_not_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().canonicalize().unwrap();
        let git = work.join(".git");
        let exposure = Exposure::new();
        // The first call: no .git yet, so none protected.
        exposure.begin(roots(&[&work])).report(Some(vec![]));
        std::fs::create_dir(&git).unwrap();
        // The next call protects it, but the first could have written it.
        exposure
            .begin(roots(&[&work]))
            .report(Some(vec![git.clone()]));
        assert!(exposure.check_tree(&git).is_err());
    }

    #[test]
    fn nested_roots_and_pending_calls() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().canonicalize().unwrap();
        let sub = work.join("sub");
        let git = sub.join(".git");
        std::fs::create_dir_all(&git).unwrap();
        let exposure = Exposure::new();
        // sub/.git sits in a root that lies in another root: sub can be
        // renamed by the sandbox.
        exposure
            .begin(roots(&[&work, &sub]))
            .report(Some(vec![git.clone()]));
        assert!(exposure.check_tree(&git).is_err());
        // A tree holding a writable root fails.
        let err = Exposure::new();
        err.begin(roots(&[&sub])).report(Some(vec![]));
        assert!(err.check_tree(&work).unwrap_err().contains("holds"));
        // A registration dropped unreported protects nothing.
        let e = Exposure::new();
        let pending = e.begin(roots(&[&work]));
        drop(pending);
        assert!(e.check_file(&work.join("f")).is_err());
    }

    #[test]
    fn symlinks_in_writable_places_fail() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let work = base.join("work");
        let outside = base.join("outside");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("real"), "").unwrap();
        // outside/link -> work/target (writable), work/hop -> outside/real.
        std::os::unix::fs::symlink(work.join("hop"), outside.join("via")).unwrap();
        std::os::unix::fs::symlink(outside.join("real"), work.join("hop")).unwrap();
        std::os::unix::fs::symlink(outside.join("real"), outside.join("direct")).unwrap();
        let e = Exposure::new();
        e.begin(roots(&[&work])).report(Some(vec![]));
        assert_eq!(
            e.check_file(&outside.join("direct")).unwrap(),
            Some(outside.join("real"))
        );
        let err = e.check_file(&outside.join("via")).unwrap_err();
        assert!(err.contains("is a symlink"), "{err}");
        assert_eq!(e.check_file(&outside.join("missing")).unwrap(), None);
    }
}
