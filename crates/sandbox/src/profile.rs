//! [`PermissionProfile`]: the sandbox as Codex (0.171 and later) describes
//! it per call, in `_meta` under `permissionProfile`, and its resolution
//! into a [`SandboxSpec`](crate::SandboxSpec).
//!
//! The shape follows Codex's protocol types (`PermissionProfile`,
//! `ManagedFileSystemPermissions`, `FileSystemSandboxEntry`): tagged by
//! `type` in snake_case, unknown fields ignored. What this sandbox does with
//! each part:
//!
//! - `disabled`, `external`: no sandbox of ours (the second: the client
//!   sandboxes us already).
//! - `managed`, `unrestricted` file system: every path writable, the
//!   network as asked (unsandboxed when the network is enabled too).
//! - `managed`, `restricted`: `write` entries become writable roots, `read`
//!   entries below a writable root become read-only subpaths (so `.git`,
//!   `.agents`, `.codex`, `.aws` stay read-only). Special paths are
//!   resolved as Codex resolves them: `root` is `/`, `current_working_directory`
//!   and `project_roots` (with an optional relative `subpath`) the call's
//!   working directory, `slash_tmp` `/tmp`, `tmpdir` `$TMPDIR`. A `write`
//!   entry this server cannot resolve (an unknown special kind, a relative
//!   path) is left out and reported: fewer writable paths only make the
//!   sandbox stricter. A `read` entry it cannot resolve is reported too
//!   (as Codex itself ignores special kinds it does not know).
//! - What cannot be enforced fails resolution with [`Unenforceable`]:
//!   reads restricted to some roots (no `root` read entry), `deny` entries
//!   and glob patterns. This sandbox confines writes and the network; it
//!   lets commands read everything, so running under such a profile would
//!   quietly give the command more than the client allowed.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::policy::{Grants, Resolution, Unenforceable};

/// Codex's permission profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PermissionProfile {
    /// No sandbox.
    Disabled,
    /// The caller enforces filesystem isolation.
    External {
        #[serde(default)]
        network: ProfileNetwork,
    },
    /// The server builds the sandbox from these permissions.
    Managed {
        file_system: ManagedFileSystem,
        #[serde(default)]
        network: ProfileNetwork,
    },
}

/// Codex's `NetworkSandboxPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileNetwork {
    #[default]
    Restricted,
    Enabled,
}

/// Codex's `ManagedFileSystemPermissions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ManagedFileSystem {
    Restricted {
        #[serde(default)]
        entries: Vec<FileSystemEntry>,
    },
    Unrestricted,
}

/// Codex's `FileSystemSandboxEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileSystemEntry {
    pub path: EntryPath,
    pub access: EntryAccess,
}

/// Codex's `FileSystemPath`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryPath {
    /// An absolute path, or a `file://` URI.
    Path {
        path: String,
    },
    Special {
        value: SpecialPath,
    },
    GlobPattern {
        pattern: String,
    },
}

/// Codex's `FileSystemSpecialPath`: a `kind` and, for some kinds, a
/// `subpath`. Kinds this server does not know are kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SpecialPath {
    pub kind: String,
    #[serde(default)]
    pub subpath: Option<PathBuf>,
}

/// Codex's `FileSystemAccessMode` (`none` is its older name for `deny`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryAccess {
    Read,
    Write,
    #[serde(alias = "none")]
    Deny,
}

impl PermissionProfile {
    /// Resolves the profile for a command running in `cwd`, with
    /// `tmpdir_env` the value of `$TMPDIR` (see the module docs).
    pub fn resolve(
        &self,
        cwd: &Path,
        tmpdir_env: Option<&Path>,
    ) -> Result<Resolution, Unenforceable> {
        let unsandboxed = || Resolution {
            spec: None,
            refused: Vec::new(),
            ignored: Vec::new(),
        };
        match self {
            PermissionProfile::Disabled | PermissionProfile::External { .. } => Ok(unsandboxed()),
            PermissionProfile::Managed {
                file_system: ManagedFileSystem::Unrestricted,
                network: ProfileNetwork::Enabled,
            } => Ok(unsandboxed()),
            PermissionProfile::Managed {
                file_system: ManagedFileSystem::Unrestricted,
                network: ProfileNetwork::Restricted,
            } => Ok(Grants {
                writable: vec![PathBuf::from("/")],
                ..Grants::default()
            }
            .resolve()),
            PermissionProfile::Managed {
                file_system: ManagedFileSystem::Restricted { entries },
                network,
            } => {
                let mut grants = restricted_grants(entries, cwd, tmpdir_env)?;
                grants.network = *network == ProfileNetwork::Enabled;
                Ok(grants.resolve())
            }
        }
    }
}

fn restricted_grants(
    entries: &[FileSystemEntry],
    cwd: &Path,
    tmpdir_env: Option<&Path>,
) -> Result<Grants, Unenforceable> {
    let mut grants = Grants::default();
    let mut reads_everything = false;
    for entry in entries {
        let path = match &entry.path {
            EntryPath::GlobPattern { pattern } => {
                return Err(Unenforceable(format!(
                    "the client's permission profile has a glob pattern entry `{pattern}` ({}), but \
                     this sandbox cannot apply access by pattern",
                    entry.access.name()
                )));
            }
            EntryPath::Special { value } if value.kind == "root" => {
                reads_everything = true;
                Ok(PathBuf::from("/"))
            }
            // As Codex: no `$TMPDIR`, nothing to grant (and nothing to say).
            EntryPath::Special { value } if value.kind == "tmpdir" && tmpdir_env.is_none() => {
                continue;
            }
            EntryPath::Special { value } => special_path(value, cwd, tmpdir_env),
            EntryPath::Path { path } => plain_path(path),
        };
        match entry.access {
            EntryAccess::Deny => {
                return Err(Unenforceable(format!(
                    "the client's permission profile denies all access to {}, but this sandbox lets \
                     commands read every file",
                    describe(&entry.path)
                )));
            }
            EntryAccess::Write => match path {
                Ok(path) => grants.writable.push(path),
                Err(why) => grants.ignored.push(format!(
                    "writable entry {} left out: {why}",
                    describe(&entry.path)
                )),
            },
            // A read entry outside every writable root changes nothing:
            // everything is readable. Below one, it is a read-only subpath.
            EntryAccess::Read => match path {
                Ok(path) => grants.read_only.push(path),
                Err(_) if is_minimal(&entry.path) => {}
                Err(why) => grants.ignored.push(format!(
                    "read-only entry {} not applied: {why}",
                    describe(&entry.path)
                )),
            },
        }
    }
    if !reads_everything {
        return Err(Unenforceable(
            "the client's permission profile restricts what commands may read (no read entry for \
             the root), but this sandbox confines writes and the network, not reads"
                .into(),
        ));
    }
    Ok(grants)
}

fn is_minimal(path: &EntryPath) -> bool {
    matches!(path, EntryPath::Special { value } if value.kind == "minimal")
}

impl EntryAccess {
    fn name(self) -> &'static str {
        match self {
            EntryAccess::Read => "read",
            EntryAccess::Write => "write",
            EntryAccess::Deny => "deny",
        }
    }
}

fn describe(path: &EntryPath) -> String {
    match path {
        EntryPath::Path { path } => format!("`{path}`"),
        EntryPath::Special { value } => match &value.subpath {
            Some(sub) => format!(
                "special path `{}` (subpath `{}`)",
                value.kind,
                sub.display()
            ),
            None => format!("special path `{}`", value.kind),
        },
        EntryPath::GlobPattern { pattern } => format!("pattern `{pattern}`"),
    }
}

/// A special path as Codex resolves it, or why it cannot be.
fn special_path(
    value: &SpecialPath,
    cwd: &Path,
    tmpdir_env: Option<&Path>,
) -> Result<PathBuf, String> {
    match value.kind.as_str() {
        "current_working_directory" => Ok(cwd.to_path_buf()),
        "project_roots" => match &value.subpath {
            None => Ok(cwd.to_path_buf()),
            Some(sub) if is_plain_relative(sub) => Ok(cwd.join(sub)),
            Some(sub) => Err(format!(
                "subpath `{}` is not a plain relative path",
                sub.display()
            )),
        },
        "slash_tmp" => Ok(PathBuf::from("/tmp")),
        "tmpdir" => match tmpdir_env {
            Some(dir) if dir.is_absolute() => Ok(dir.to_path_buf()),
            Some(dir) => Err(format!("$TMPDIR `{}` is not absolute", dir.display())),
            None => Err("$TMPDIR is not set".into()),
        },
        "minimal" => Err("the platform's minimal read set names no single path".into()),
        other => Err(format!("unknown special path kind `{other}`")),
    }
}

/// Relative, with no `..`, root or prefix component.
fn is_plain_relative(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// An absolute path, or a `file://` URI (percent-decoded).
pub fn plain_path(text: &str) -> Result<PathBuf, String> {
    let path = match text.strip_prefix("file://") {
        Some(rest) => {
            // `file:///abs` or `file://localhost/abs`.
            let rest = rest.strip_prefix("localhost").unwrap_or(rest);
            if !rest.starts_with('/') {
                return Err(format!("`{text}` is not a local file URI"));
            }
            percent_decode(rest).ok_or_else(|| format!("`{text}` has a bad percent escape"))?
        }
        None => PathBuf::from(text),
    };
    if !path.is_absolute() {
        return Err(format!("`{text}` is not an absolute path"));
    }
    Ok(path)
}

fn percent_decode(text: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // A NUL cannot be part of a path.
    (!out.contains(&0)).then(|| PathBuf::from(std::ffi::OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_decode() {
        assert_eq!(
            plain_path("file:///a%20b/c").unwrap(),
            PathBuf::from("/a b/c")
        );
        assert_eq!(
            plain_path("file://localhost/x").unwrap(),
            PathBuf::from("/x")
        );
        assert_eq!(plain_path("/plain").unwrap(), PathBuf::from("/plain"));
        assert!(plain_path("file://host/x").is_err());
        assert!(plain_path("file:///a%2").is_err());
        assert!(plain_path("file:///a%00b").is_err());
        assert!(plain_path("relative").is_err());
    }

    #[test]
    fn plain_relative_subpaths_only() {
        assert!(is_plain_relative(Path::new("a/b")));
        assert!(!is_plain_relative(Path::new("../a")));
        assert!(!is_plain_relative(Path::new("/a")));
    }
}
