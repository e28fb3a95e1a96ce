//! [`SandboxPolicy`]: the sandbox policy as Codex 0.97-era clients send it
//! (`codex/sandbox-state/update`, `sandboxPolicy`) and as the `--sandbox`
//! flag names it, and its resolution into a concrete [`SandboxSpec`] for one
//! working directory. Newer Codex sends a permission profile instead
//! ([`crate::PermissionProfile`]); both resolve through [`Grants`].

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::SandboxSpec;

/// Codex's sandbox policy, tagged by `type` in kebab-case, fields in
/// snake_case, every field optional. Unknown fields are ignored (newer Codex
/// versions add some).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SandboxPolicy {
    /// Read everything, write nothing but the shell's device files.
    ReadOnly {
        /// What may be read: only `full-access` can be enforced here.
        #[serde(default)]
        access: ReadAccess,
        #[serde(default)]
        network_access: bool,
    },
    /// No sandbox at all.
    DangerFullAccess,
    /// Read everything, write below the workspace and the temp directories.
    WorkspaceWrite {
        /// Writable in addition to the working directory and temp dirs.
        /// Relative paths are taken relative to the working directory.
        #[serde(default)]
        writable_roots: Vec<PathBuf>,
        /// What may be read: only `full-access` can be enforced here.
        #[serde(default)]
        read_only_access: ReadAccess,
        #[serde(default)]
        network_access: bool,
        /// Do not add `$TMPDIR` as a writable root.
        #[serde(default)]
        exclude_tmpdir_env_var: bool,
        /// Do not add `/tmp` as a writable root.
        #[serde(default)]
        exclude_slash_tmp: bool,
    },
    /// The client sandboxes us already: run unsandboxed.
    ExternalSandbox {
        #[serde(default)]
        network_access: NetworkAccess,
    },
}

/// Codex's `ReadOnlyAccess`: everything, or only some roots (which this
/// sandbox cannot enforce: it confines writes, not reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ReadAccess {
    #[default]
    #[serde(alias = "fullAccess")]
    FullAccess,
    Restricted {
        #[serde(default)]
        readable_roots: Vec<PathBuf>,
    },
}

/// Network setting of [`SandboxPolicy::ExternalSandbox`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkAccess {
    #[default]
    Restricted,
    Enabled,
}

/// A policy resolved for one working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// What to enforce; `None`: run unsandboxed.
    pub spec: Option<SandboxSpec>,
    /// Writable roots refused: each is reached through a symlink inside a
    /// writable root, which the sandboxed side could have planted (for
    /// instance by swapping a nested root, a `$TMPDIR` below `/tmp`, for a
    /// link to the home directory; followed, it would make the link's
    /// target writable in every later call).
    pub refused: Vec<PathBuf>,
    /// Parts of the request that were left out (an entry naming a path
    /// this server cannot resolve), for the caller to report.
    pub ignored: Vec<String>,
}

/// A request this sandbox cannot enforce as asked: enforcing less would
/// weaken it, so the caller must not run the command under it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unenforceable(pub String);

impl Default for SandboxPolicy {
    /// Workspace-write, network off: the default when the client says nothing.
    fn default() -> Self {
        SandboxPolicy::workspace_write()
    }
}

impl SandboxPolicy {
    /// Read-only, reading everything, network off.
    pub fn read_only() -> Self {
        SandboxPolicy::ReadOnly {
            access: ReadAccess::FullAccess,
            network_access: false,
        }
    }

    /// Workspace-write with every option at its default (network off,
    /// `/tmp` and `$TMPDIR` writable).
    pub fn workspace_write() -> Self {
        SandboxPolicy::WorkspaceWrite {
            writable_roots: Vec::new(),
            read_only_access: ReadAccess::FullAccess,
            network_access: false,
            exclude_tmpdir_env_var: false,
            exclude_slash_tmp: false,
        }
    }

    /// Resolves the policy for a command running in `cwd`, with `tmpdir_env`
    /// the value of `$TMPDIR` (if set). A spec of `None` means: run
    /// unsandboxed (`danger-full-access`, `external-sandbox`).
    ///
    /// For workspace-write the writable roots are the given roots, `cwd`,
    /// `/tmp` (unless `exclude_slash_tmp`) and `$TMPDIR` (unless
    /// `exclude_tmpdir_env_var`), resolved by [`Grants::resolve`].
    pub fn resolve(
        &self,
        cwd: &Path,
        tmpdir_env: Option<&Path>,
    ) -> Result<Resolution, Unenforceable> {
        match self {
            SandboxPolicy::DangerFullAccess | SandboxPolicy::ExternalSandbox { .. } => {
                Ok(Resolution {
                    spec: None,
                    refused: Vec::new(),
                    ignored: Vec::new(),
                })
            }
            SandboxPolicy::ReadOnly {
                access,
                network_access,
            } => {
                access.check()?;
                Ok(Grants {
                    network: *network_access,
                    ..Grants::default()
                }
                .resolve())
            }
            SandboxPolicy::WorkspaceWrite {
                writable_roots,
                read_only_access,
                network_access,
                exclude_tmpdir_env_var,
                exclude_slash_tmp,
            } => {
                read_only_access.check()?;
                let mut writable: Vec<PathBuf> =
                    writable_roots.iter().map(|root| cwd.join(root)).collect();
                writable.push(cwd.to_path_buf());
                if !exclude_slash_tmp {
                    writable.push(PathBuf::from("/tmp"));
                }
                if let Some(tmpdir) = tmpdir_env.filter(|_| !exclude_tmpdir_env_var) {
                    writable.push(cwd.join(tmpdir));
                }
                Ok(Grants {
                    writable,
                    read_only: Vec::new(),
                    network: *network_access,
                    ignored: Vec::new(),
                }
                .resolve())
            }
        }
    }

    /// Whether a command under this policy may use the network.
    pub fn has_network(&self) -> bool {
        match self {
            SandboxPolicy::ReadOnly { network_access, .. }
            | SandboxPolicy::WorkspaceWrite { network_access, .. } => *network_access,
            SandboxPolicy::DangerFullAccess => true,
            SandboxPolicy::ExternalSandbox { network_access } => {
                *network_access == NetworkAccess::Enabled
            }
        }
    }
}

impl ReadAccess {
    fn check(&self) -> Result<(), Unenforceable> {
        match self {
            ReadAccess::FullAccess => Ok(()),
            ReadAccess::Restricted { .. } => Err(Unenforceable(
                "the client restricts what commands may read (`restricted` read access), but this \
                 sandbox confines writes and the network, not reads"
                    .into(),
            )),
        }
    }
}

/// Subpaths of every writable root kept read-only when they exist: a
/// repository's metadata (hooks and config run code outside the sandbox
/// when an escalated git reads them), Codex's and agents' configuration.
pub const PROTECTED_SUBPATHS: &[&str] = &[".git", ".codex", ".agents"];

/// What a request grants before resolution: absolute paths, not yet
/// canonicalised.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Writable roots; missing ones are dropped.
    pub writable: Vec<PathBuf>,
    /// Paths to keep read-only when they lie below a writable root (in
    /// addition to [`PROTECTED_SUBPATHS`]); missing ones are dropped.
    pub read_only: Vec<PathBuf>,
    pub network: bool,
    /// Carried into [`Resolution::ignored`].
    pub ignored: Vec<String>,
}

impl Grants {
    /// Canonicalises the writable roots (dropping missing ones and
    /// duplicates, refusing those reached through a symlink inside a
    /// writable root), and collects the read-only subpaths below them: the
    /// [`PROTECTED_SUBPATHS`] of each root, then the requested ones.
    pub fn resolve(self) -> Resolution {
        let everything = canonical_unique(self.writable.iter().cloned());
        // One walk per root decides both where it leads and whether it
        // went through a symlink the sandbox could have made: checking
        // first and canonicalising after would let a command of another
        // call swap a directory for a symlink in between.
        let mut refused = Vec::new();
        let mut roots: Vec<PathBuf> = Vec::new();
        for path in self.writable {
            match resolve_root(&path, &everything) {
                Walked::Resolved(root) if !roots.contains(&root) => roots.push(root),
                Walked::Resolved(_) | Walked::Missing => {}
                Walked::ThroughWritableSymlink => refused.push(path),
            }
        }
        let defaults = roots
            .iter()
            .flat_map(|root| PROTECTED_SUBPATHS.iter().map(|sub| root.join(sub)))
            .filter(|path| path.symlink_metadata().is_ok());
        let requested = canonical_unique(self.read_only).into_iter().filter(|path| {
            roots
                .iter()
                .any(|root| path.starts_with(root) && path != root)
        });
        let read_only_subpaths = canonical_unique(defaults.chain(requested));
        Resolution {
            spec: Some(SandboxSpec {
                writable_roots: roots,
                read_only_subpaths,
                network: self.network,
                must_protect: Vec::new(),
                hidden: Vec::new(),
            }),
            refused,
            ignored: self.ignored,
        }
    }
}

/// Where [`resolve_root`] got.
enum Walked {
    /// The path, with every symlink resolved (what `canonicalize` gives).
    Resolved(PathBuf),
    /// Some component does not exist (or cannot be read).
    Missing,
    /// A symlink on the way lies below one of the roots.
    ThroughWritableSymlink,
}

/// Resolves `path` one component at a time, as the kernel does, following
/// symlinks only where they lie outside every one of `roots`; the
/// decision and the result come from the same look at each component.
fn resolve_root(path: &Path, roots: &[PathBuf]) -> Walked {
    use std::ffi::OsString;
    use std::path::Component;
    let absolute = match std::env::current_dir() {
        Ok(cwd) => cwd.join(path),
        Err(_) if path.is_absolute() => path.to_path_buf(),
        Err(_) => return Walked::Missing,
    };
    // Components still to walk, the next one last.
    let push = |pending: &mut Vec<OsString>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(name) => pending.push(name.to_owned()),
                Component::ParentDir => pending.push("..".into()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
    };
    let mut pending = Vec::new();
    push(&mut pending, &absolute);
    let mut at = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&name);
        let Ok(meta) = next.symlink_metadata() else {
            return Walked::Missing;
        };
        if !meta.file_type().is_symlink() {
            at = next;
            continue;
        }
        // `at` has no symlink in it: it is where the link lies.
        links += 1;
        if links > 40 || roots.iter().any(|root| at.starts_with(root)) {
            return Walked::ThroughWritableSymlink;
        }
        let Ok(target) = std::fs::read_link(&next) else {
            return Walked::Missing;
        };
        if target.is_absolute() {
            at = PathBuf::from("/");
        }
        push(&mut pending, &target);
    }
    Walked::Resolved(at)
}

/// Canonicalises each path (dropping those that do not exist), keeping the
/// first occurrence of each.
fn canonical_unique(paths: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for path in paths {
        if let Ok(path) = path.canonicalize()
            && !out.contains(&path)
        {
            out.push(path);
        }
    }
    out
}

/// A `--sandbox` value that is not one of Codex's mode names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown sandbox mode `{0}`, expected `read-only`, `workspace-write` or `danger-full-access`"
)]
pub struct ParsePolicyError(pub String);

impl FromStr for SandboxPolicy {
    type Err = ParsePolicyError;

    /// Parses the CLI mode names Codex uses; workspace-write gets its
    /// defaults.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read-only" => Ok(SandboxPolicy::read_only()),
            "workspace-write" => Ok(SandboxPolicy::workspace_write()),
            "danger-full-access" => Ok(SandboxPolicy::DangerFullAccess),
            other => Err(ParsePolicyError(other.to_owned())),
        }
    }
}
