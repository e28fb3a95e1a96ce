//! Codex's sandbox state and its resolution to the [`SandboxSpec`] a call
//! runs under.
//!
//! Two shapes reach the server:
//! - Codex 0.97-era: `{"sandboxPolicy": {...}, "sandboxCwd": "/abs", ...}`,
//!   in the `codex/sandbox-state/update` request (stored for later calls) or
//!   per call in `_meta`;
//! - Codex 0.171 and later: `{"permissionProfile": {...}, "sandboxCwd":
//!   "file:///abs", "useLegacyLandlock": ..., ...}` per call in `_meta`
//!   under both [`META_KEY`] and [`META_KEY_ALIAS`].
//!
//! A state that cannot be read never fails the call and never weakens the
//! sandbox: the last state the client set correctly (by the update
//! request) or else the server's default applies, with a warning in the
//! log and in the call's result. A state read correctly that asks for what
//! this sandbox cannot enforce (restricted reads, `deny` entries) fails the
//! call with a message saying so: running it anyway would give the command
//! more than the client allowed.

use std::path::{Path, PathBuf};

use sandbox::{Grants, PermissionProfile, Resolution, SandboxPolicy, SandboxSpec, Unenforceable};
use serde_json::Value;

use crate::config::{SandboxMode, Settings};

/// The custom request that sets the sandbox for later calls.
pub const UPDATE_METHOD: &str = "codex/sandbox-state/update";
/// The `_meta` key carrying the state for one call.
pub const META_KEY: &str = "codex/sandbox-state-meta";
/// The second `_meta` key newer Codex puts the same object under.
pub const META_KEY_ALIAS: &str = "codex/sandbox-state";
/// The experimental capabilities advertising the request and the `_meta`
/// state.
pub const CAPABILITIES: [&str; 2] = ["codex/sandbox-state", "codex/sandbox-state-meta"];

/// What the client asked for, in either shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    Policy(SandboxPolicy),
    Profile(PermissionProfile),
}

/// A sandbox state read from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxState {
    pub requested: Requested,
    /// Required by Codex; the server's working directory when absent.
    pub sandbox_cwd: Option<PathBuf>,
}

/// A state that could not be read, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read `{field}` of the client's sandbox state: {reason}")]
pub struct BadState {
    pub field: &'static str,
    pub reason: String,
}

impl SandboxState {
    /// Reads either shape; `permissionProfile` wins when both are present
    /// (newer Codex treats the profile as the canonical form). Unknown
    /// fields are ignored.
    pub fn parse(value: &Value) -> Result<SandboxState, BadState> {
        let bad = |field, reason: String| BadState { field, reason };
        let Value::Object(object) = value else {
            return Err(bad("(state)", format!("expected an object, got {value}")));
        };
        let requested = match (object.get("permissionProfile"), object.get("sandboxPolicy")) {
            (Some(profile), _) if !profile.is_null() => Requested::Profile(
                serde_json::from_value(profile.clone())
                    .map_err(|e| bad("permissionProfile", e.to_string()))?,
            ),
            (_, Some(policy)) if !policy.is_null() => Requested::Policy(
                serde_json::from_value(policy.clone())
                    .map_err(|e| bad("sandboxPolicy", e.to_string()))?,
            ),
            _ => {
                return Err(bad(
                    "permissionProfile",
                    "neither `permissionProfile` nor `sandboxPolicy` is present".into(),
                ));
            }
        };
        let sandbox_cwd = match object.get("sandboxCwd") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                Some(sandbox::plain_path(text).map_err(|e| bad("sandboxCwd", e))?)
            }
            Some(other) => {
                return Err(bad("sandboxCwd", format!("expected a string, got {other}")));
            }
        };
        Ok(SandboxState {
            requested,
            sandbox_cwd,
        })
    }

    /// The sandbox for commands run under this state, with `protected`
    /// (see `rules::protected_paths`) kept read-only where it is writable.
    pub fn resolve(
        &self,
        server_cwd: &Path,
        protected: &[PathBuf],
        hidden: &[PathBuf],
    ) -> Result<Resolution, Unenforceable> {
        let cwd = self.sandbox_cwd.as_deref().unwrap_or(server_cwd);
        let tmpdir = tmpdir();
        let mut resolution = match &self.requested {
            Requested::Policy(policy) => policy.resolve(cwd, tmpdir.as_deref()),
            Requested::Profile(profile) => profile.resolve(cwd, tmpdir.as_deref()),
        }?;
        if let Some(spec) = resolution.spec.as_mut() {
            spec.protect(protected)?;
            spec.hide(hidden);
        }
        Ok(resolution)
    }
}

/// One line per part of a resolution a user should know about: refused
/// writable roots and entries left out.
pub fn resolution_warnings(resolution: &Resolution) -> Vec<String> {
    let refused = resolution.refused.iter().map(|root| {
        format!(
            "writable root {} refused: it is reached through a symlink inside a writable root, \
             which the sandbox could have planted",
            root.display()
        )
    });
    refused.chain(resolution.ignored.iter().cloned()).collect()
}

fn tmpdir() -> Option<PathBuf> {
    std::env::var_os("TMPDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The sandbox used when the client has said nothing: `--sandbox`,
/// `--writable-root`, `--network`. Workspace-write makes the server's
/// working directory writable, but not when that is `/` or the user's home
/// directory (everything, or every dotfile the user's tools read: only an
/// explicit `--writable-root` or the client's state makes those writable).
pub fn default_spec(settings: &Settings) -> Result<Option<SandboxSpec>, Unenforceable> {
    let resolution = match settings.sandbox {
        SandboxMode::DangerFullAccess => return Ok(None),
        SandboxMode::ReadOnly => Grants::default().resolve(),
        SandboxMode::WorkspaceWrite => {
            let mut writable = settings.writable_roots.clone();
            if !start_directory_too_wide(&settings.cwd) {
                writable.push(settings.cwd.clone());
            }
            writable.push(PathBuf::from("/tmp"));
            writable.extend(tmpdir());
            Grants {
                writable,
                network: settings.network,
                ..Grants::default()
            }
            .resolve()
        }
    };
    for warning in resolution_warnings(&resolution) {
        tracing::warn!(%warning, "default sandbox");
    }
    let Some(mut spec) = resolution.spec else {
        return Ok(None);
    };
    spec.protect(&settings.protected_paths)?;
    spec.hide(&settings.hidden_paths);
    Ok(Some(spec))
}

/// Whether `cwd` is `/` or the user's home directory, which the default
/// sandbox does not make writable.
pub fn start_directory_too_wide(cwd: &Path) -> bool {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let cwd = canonical(cwd);
    cwd == Path::new("/")
        || std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .is_some_and(|home| canonical(Path::new(&home)) == cwd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(v: Value, cwd: &Path) -> Result<Resolution, Unenforceable> {
        SandboxState::parse(&v).unwrap().resolve(cwd, &[], &[])
    }

    #[test]
    fn parses_legacy_policies() {
        let s =
            SandboxState::parse(&json!({"sandboxPolicy": {"type": "danger-full-access"}})).unwrap();
        assert_eq!(
            s.requested,
            Requested::Policy(SandboxPolicy::DangerFullAccess)
        );
        assert_eq!(s.sandbox_cwd, None);
        let r = resolve(
            json!({
                "sandboxPolicy": {"type": "workspace-write", "writable_roots": ["/proc"], "network_access": true,
                                  "exclude_slash_tmp": true, "newer_field": 1},
                "sandboxCwd": "/usr", "codexLinuxSandboxExe": null, "extra": true
            }),
            Path::new("/elsewhere"),
        )
        .unwrap();
        let spec = r.spec.unwrap();
        assert!(spec.network);
        assert!(
            spec.writable_roots
                .starts_with(&[PathBuf::from("/proc"), PathBuf::from("/usr")])
        );
        assert!(!spec.writable_roots.contains(&PathBuf::from("/tmp")));
        let r = resolve(
            json!({"sandboxPolicy": {"type": "external-sandbox", "network_access": "enabled"}}),
            Path::new("/"),
        );
        assert_eq!(r.unwrap().spec, None);
        let r = resolve(
            json!({"sandboxPolicy": {"type": "read-only", "newer_field": 1}}),
            Path::new("/"),
        );
        assert_eq!(
            r.unwrap().spec.unwrap().writable_roots,
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn bad_states_name_the_field() {
        let field = |v: Value| SandboxState::parse(&v).unwrap_err().field;
        assert_eq!(
            field(json!({"sandboxPolicy": {"type": "bogus"}})),
            "sandboxPolicy"
        );
        assert_eq!(field(json!({"sandboxCwd": "/"})), "permissionProfile");
        assert_eq!(
            field(json!({"permissionProfile": {"type": "sandboxed"}})),
            "permissionProfile"
        );
        assert_eq!(
            field(json!({"permissionProfile": {"type": "disabled"}, "sandboxCwd": "rel"})),
            "sandboxCwd"
        );
        assert_eq!(
            field(json!({"permissionProfile": {"type": "disabled"}, "sandboxCwd": 3})),
            "sandboxCwd"
        );
        assert_eq!(field(json!("read-only")), "(state)");
    }

    #[test]
    fn sandbox_cwd_may_be_a_file_uri() {
        let s = SandboxState::parse(
            &json!({"permissionProfile": {"type": "disabled"}, "sandboxCwd": "file:///a%20b"}),
        )
        .unwrap();
        assert_eq!(s.sandbox_cwd, Some(PathBuf::from("/a b")));
    }
}
