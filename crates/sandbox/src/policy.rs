//! [`SandboxPolicy`]: the sandbox policy as Codex sends it
//! (`codex/sandbox-state/update`) and as the `--sandbox` flag names it, and
//! its resolution into a concrete [`SandboxSpec`] for one working directory.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::SandboxSpec;

/// Codex's sandbox policy, tagged by `type` in kebab-case, fields in
/// snake_case, every field optional. Unknown fields are ignored (newer Codex
/// versions add some).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SandboxPolicy {
    /// Read everything, write nothing but the shell's device files, no network.
    ReadOnly,
    /// No sandbox at all.
    DangerFullAccess,
    /// Read everything, write below the workspace and the temp directories.
    WorkspaceWrite {
        /// Writable in addition to the working directory and temp dirs.
        /// Relative paths are taken relative to the working directory.
        #[serde(default)]
        writable_roots: Vec<PathBuf>,
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

/// Network setting of [`SandboxPolicy::ExternalSandbox`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkAccess {
    #[default]
    Restricted,
    Enabled,
}

impl Default for SandboxPolicy {
    /// Workspace-write, network off: the default when the client says nothing.
    fn default() -> Self {
        SandboxPolicy::workspace_write()
    }
}

impl SandboxPolicy {
    /// Workspace-write with every option at its default (network off,
    /// `/tmp` and `$TMPDIR` writable).
    pub fn workspace_write() -> Self {
        SandboxPolicy::WorkspaceWrite {
            writable_roots: Vec::new(),
            network_access: false,
            exclude_tmpdir_env_var: false,
            exclude_slash_tmp: false,
        }
    }

    /// Resolves the policy for a command running in `cwd`, with `tmpdir_env`
    /// the value of `$TMPDIR` (if set). `None` means: run unsandboxed
    /// (`danger-full-access`, `external-sandbox`).
    ///
    /// For workspace-write the writable roots are the given roots, `cwd`,
    /// `/tmp` (unless `exclude_slash_tmp`) and `$TMPDIR` (unless
    /// `exclude_tmpdir_env_var`), canonicalised, without duplicates; roots
    /// that do not exist are dropped. `.git` and `.codex` directly under each
    /// root, when present, become read-only subpaths.
    ///
    /// A root reached through a symlink that sits inside a writable root is
    /// refused (see [`SandboxPolicy::resolve_refusing`]).
    pub fn resolve(&self, cwd: &Path, tmpdir_env: Option<&Path>) -> Option<SandboxSpec> {
        self.resolve_refusing(cwd, tmpdir_env).0
    }

    /// [`SandboxPolicy::resolve`], and the roots it refused, for the caller
    /// to report: each reached through a symlink inside a writable root.
    /// The sandboxed side can create such a link, for instance by swapping a
    /// nested root (a `$TMPDIR` below `/tmp`, a workspace below another
    /// root) for a link to the home directory; followed, it would make the
    /// link's target writable in every later call.
    pub fn resolve_refusing(
        &self,
        cwd: &Path,
        tmpdir_env: Option<&Path>,
    ) -> (Option<SandboxSpec>, Vec<PathBuf>) {
        let spec = match self {
            SandboxPolicy::DangerFullAccess | SandboxPolicy::ExternalSandbox { .. } => None,
            SandboxPolicy::ReadOnly => Some(SandboxSpec {
                writable_roots: Vec::new(),
                read_only_subpaths: Vec::new(),
                network: false,
            }),
            SandboxPolicy::WorkspaceWrite {
                writable_roots,
                network_access,
                exclude_tmpdir_env_var,
                exclude_slash_tmp,
            } => {
                let mut candidates: Vec<PathBuf> =
                    writable_roots.iter().map(|root| cwd.join(root)).collect();
                candidates.push(cwd.to_path_buf());
                if !exclude_slash_tmp {
                    candidates.push(PathBuf::from("/tmp"));
                }
                if let Some(tmpdir) = tmpdir_env.filter(|_| !exclude_tmpdir_env_var) {
                    candidates.push(cwd.join(tmpdir));
                }
                let everything = canonical_unique(candidates.iter().cloned());
                let (planted, trusted): (Vec<PathBuf>, Vec<PathBuf>) = candidates
                    .into_iter()
                    .partition(|c| through_writable_symlink(c, &everything));
                let roots = canonical_unique(trusted);
                let protected = roots
                    .iter()
                    .flat_map(|root| [root.join(".git"), root.join(".codex")])
                    .filter(|path| path.symlink_metadata().is_ok());
                return (
                    Some(SandboxSpec {
                        read_only_subpaths: canonical_unique(protected),
                        writable_roots: roots,
                        network: *network_access,
                    }),
                    planted,
                );
            }
        };
        (spec, Vec::new())
    }

    /// Whether a command under this policy may use the network.
    pub fn has_network(&self) -> bool {
        match self {
            SandboxPolicy::ReadOnly => false,
            SandboxPolicy::DangerFullAccess => true,
            SandboxPolicy::WorkspaceWrite { network_access, .. } => *network_access,
            SandboxPolicy::ExternalSandbox { network_access } => {
                *network_access == NetworkAccess::Enabled
            }
        }
    }
}

/// Whether resolving `path` follows a symlink located below one of `roots`
/// (or one whose location cannot be told), walking it component by
/// component as the kernel does.
fn through_writable_symlink(path: &Path, roots: &[PathBuf]) -> bool {
    let mut prefix = PathBuf::new();
    for component in path.components() {
        prefix.push(component);
        if !prefix
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            continue;
        }
        match prefix.parent().map(Path::canonicalize) {
            Some(Ok(dir)) if !roots.iter().any(|root| dir.starts_with(root)) => {}
            _ => return true,
        }
    }
    false
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
            "read-only" => Ok(SandboxPolicy::ReadOnly),
            "workspace-write" => Ok(SandboxPolicy::workspace_write()),
            "danger-full-access" => Ok(SandboxPolicy::DangerFullAccess),
            other => Err(ParsePolicyError(other.to_owned())),
        }
    }
}
