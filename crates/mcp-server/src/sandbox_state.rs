//! Codex's sandbox state (`codex/sandbox-state/update` params, or the same
//! object per call in `_meta["codex/sandbox-state-meta"]`) and its
//! resolution to the concrete [`SandboxSpec`] the launcher applies.

use std::path::{Path, PathBuf};

use sandbox::{SandboxPolicy, SandboxSpec};
use serde::Deserialize;

use crate::config::{SandboxMode, Settings};

/// The custom request that sets the sandbox for later calls.
pub const UPDATE_METHOD: &str = "codex/sandbox-state/update";
/// The `_meta` key carrying the same state for one call.
pub const META_KEY: &str = "codex/sandbox-state-meta";
/// The experimental capability advertising both.
pub const CAPABILITY: &str = "codex/sandbox-state";

/// What Codex sends. Unknown fields are ignored (newer Codex adds some).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxState {
    pub sandbox_policy: SandboxPolicy,
    /// Required by Codex; the server's working directory when absent.
    #[serde(default)]
    pub sandbox_cwd: Option<PathBuf>,
    /// Codex's own Linux sandbox helper; unused, the server has its own.
    #[serde(default)]
    pub codex_linux_sandbox_exe: Option<PathBuf>,
}

impl SandboxState {
    /// The spec for commands run under this state; `None`: unsandboxed.
    pub fn resolve(&self, server_cwd: &Path) -> Option<SandboxSpec> {
        let cwd = self.sandbox_cwd.as_deref().unwrap_or(server_cwd);
        resolve_warning(&self.sandbox_policy, cwd)
    }
}

/// Resolves `policy`, logging each writable root it refused.
fn resolve_warning(policy: &SandboxPolicy, cwd: &Path) -> Option<SandboxSpec> {
    let (spec, refused) = policy.resolve_refusing(cwd, tmpdir().as_deref());
    for root in refused {
        tracing::warn!(root = %root.display(),
            "writable root refused: it is reached through a symlink inside a writable root, which the sandbox could have planted");
    }
    spec
}

fn tmpdir() -> Option<PathBuf> {
    std::env::var_os("TMPDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The sandbox used when the client has said nothing: `--sandbox`,
/// `--writable-root`, `--network`.
pub fn default_spec(settings: &Settings) -> Option<SandboxSpec> {
    let policy = match settings.sandbox {
        SandboxMode::DangerFullAccess => SandboxPolicy::DangerFullAccess,
        SandboxMode::ReadOnly => SandboxPolicy::ReadOnly,
        SandboxMode::WorkspaceWrite => SandboxPolicy::WorkspaceWrite {
            writable_roots: settings.writable_roots.clone(),
            network_access: settings.network,
            exclude_tmpdir_env_var: false,
            exclude_slash_tmp: false,
        },
    };
    let mut spec = resolve_warning(&policy, &settings.cwd)?;
    spec.network = settings.network;
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<SandboxState, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn parses_codex_policies() {
        let s = parse(json!({"sandboxPolicy": {"type": "danger-full-access"}})).unwrap();
        assert_eq!(s.sandbox_policy, SandboxPolicy::DangerFullAccess);
        assert_eq!(s.sandbox_cwd, None);
        let s = parse(json!({
            "sandboxPolicy": {"type": "workspace-write", "writable_roots": ["/proc"], "network_access": true,
                              "exclude_slash_tmp": true, "newer_field": 1},
            "sandboxCwd": "/usr", "codexLinuxSandboxExe": null, "extra": true
        }))
        .unwrap();
        let spec = s.resolve(Path::new("/elsewhere")).unwrap();
        assert!(spec.network);
        assert!(
            spec.writable_roots
                .starts_with(&[PathBuf::from("/proc"), PathBuf::from("/usr")])
        );
        assert!(!spec.writable_roots.contains(&PathBuf::from("/tmp")));
        let s = parse(
            json!({"sandboxPolicy": {"type": "external-sandbox", "network_access": "enabled"}}),
        )
        .unwrap();
        assert_eq!(s.resolve(Path::new("/")), None);
        let s = parse(json!({"sandboxPolicy": {"type": "read-only", "newer_field": 1}})).unwrap();
        assert_eq!(
            s.resolve(Path::new("/")).unwrap().writable_roots,
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn rejects_unknown_type() {
        assert!(parse(json!({"sandboxPolicy": {"type": "bogus"}})).is_err());
        assert!(parse(json!({"sandboxCwd": "/"})).is_err());
    }
}
