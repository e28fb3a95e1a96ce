//! `PermissionProfile`: the sandbox as Codex 0.171 sends it per call, from
//! payloads shaped as Codex records them, and its resolution.

use std::fs;
use std::path::{Path, PathBuf};

use sandbox::{PermissionProfile, Resolution, Unenforceable};
use serde_json::{Value, json};

fn resolve(profile: Value, cwd: &Path, tmpdir: Option<&Path>) -> Result<Resolution, Unenforceable> {
    let profile: PermissionProfile = serde_json::from_value(profile.clone())
        .unwrap_or_else(|e| panic!("cannot parse {profile}: {e}"));
    profile.resolve(cwd, tmpdir)
}

fn special(kind: &str, access: &str) -> Value {
    json!({"path": {"type": "special", "value": {"kind": kind}}, "access": access})
}

fn path(p: &Path, access: &str) -> Value {
    json!({"path": {"type": "path", "path": p}, "access": access, "missing_path_behavior": "skip"})
}

/// A project with a repository, agent and Codex configuration, and cloud
/// credentials, as `codex exec --sandbox workspace-write` sees it.
struct Project {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
}

fn project() -> Project {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("project");
    for sub in [".git", ".agents", ".codex", ".aws"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    Project {
        _dir: dir,
        base,
        root,
    }
}

/// What Codex 0.171 sends for `--sandbox workspace-write` (the recorded
/// payload of the issue, paths replaced).
fn workspace_write(root: &Path, network: &str) -> Value {
    json!({"type": "managed", "network": network, "file_system": {"type": "restricted", "entries": [
        special("root", "read"),
        path(root, "write"),
        special("slash_tmp", "write"),
        special("tmpdir", "write"),
        path(&root.join(".git"), "read"),
        path(&root.join(".agents"), "read"),
        path(&root.join(".codex"), "read"),
        path(&root.join(".aws"), "read"),
    ]}})
}

#[test]
fn disabled_and_external_run_unsandboxed() {
    let p = project();
    for profile in [
        json!({"type": "disabled"}),
        json!({"type": "external", "network": "restricted"}),
        json!({"type": "external"}),
        json!({"type": "managed", "network": "enabled", "file_system": {"type": "unrestricted"}}),
    ] {
        assert_eq!(resolve(profile, &p.root, None).unwrap().spec, None);
    }
}

#[test]
fn workspace_write_protects_every_read_entry() {
    let p = project();
    let tmpdir = p.base.join("tmpdir");
    fs::create_dir(&tmpdir).unwrap();
    let r = resolve(
        workspace_write(&p.root, "restricted"),
        &p.root,
        Some(&tmpdir),
    )
    .unwrap();
    let spec = r.spec.clone().unwrap();
    let slash_tmp = Path::new("/tmp").canonicalize().unwrap();
    assert_eq!(spec.writable_roots, vec![p.root.clone(), slash_tmp, tmpdir]);
    let mut subpaths = spec.read_only_subpaths.clone();
    subpaths.sort();
    let mut expected: Vec<PathBuf> = [".agents", ".aws", ".codex", ".git"]
        .iter()
        .map(|s| p.root.join(s))
        .collect();
    expected.sort();
    assert_eq!(subpaths, expected);
    assert!(!spec.network);
    assert!(r.ignored.is_empty() && r.refused.is_empty(), "{r:?}");
}

#[test]
fn network_enabled_and_extra_writable_roots() {
    let p = project();
    let extra = p.base.join("extra");
    fs::create_dir(&extra).unwrap();
    let mut profile = workspace_write(&p.root, "enabled");
    let entries = profile["file_system"]["entries"].as_array_mut().unwrap();
    entries.push(json!({"path": {"type": "path", "path": format!("file://{}", extra.display())}, "access": "write"}));
    let spec = resolve(profile, &p.root, None).unwrap().spec.unwrap();
    assert!(spec.network);
    assert!(spec.writable_roots.contains(&extra), "{spec:?}");
    // No $TMPDIR: nothing to grant, and nothing to say (as Codex).
    let r = resolve(workspace_write(&p.root, "restricted"), &p.root, None).unwrap();
    assert!(r.ignored.is_empty(), "{r:?}");
    // A relative $TMPDIR is left out, and said so.
    let r = resolve(
        workspace_write(&p.root, "restricted"),
        &p.root,
        Some(Path::new("rel")),
    )
    .unwrap();
    assert_eq!(r.ignored.len(), 1, "{r:?}");
    assert!(r.ignored[0].contains("tmpdir"), "{r:?}");
}

#[test]
fn read_only_writes_nowhere() {
    let p = project();
    let profile = json!({"type": "managed", "network": "restricted",
        "file_system": {"type": "restricted", "entries": [special("root", "read")]}});
    let spec = resolve(profile, &p.root, None).unwrap().spec.unwrap();
    assert!(spec.writable_roots.is_empty() && spec.read_only_subpaths.is_empty());
    assert!(!spec.network);
}

#[test]
fn unrestricted_file_system_with_restricted_network_keeps_the_network_off() {
    let p = project();
    let profile = json!({"type": "managed", "network": "restricted", "file_system": {"type": "unrestricted"}});
    let spec = resolve(profile, &p.root, None).unwrap().spec.unwrap();
    assert_eq!(spec.writable_roots, vec![PathBuf::from("/")]);
    assert!(!spec.network);
}

#[test]
fn special_kinds_resolve_as_codex_does() {
    let p = project();
    fs::create_dir(p.root.join("sub")).unwrap();
    let profile = json!({"type": "managed", "network": "restricted", "file_system": {"type": "restricted", "entries": [
        special("root", "read"),
        special("minimal", "read"),
        special("current_working_directory", "write"),
        {"path": {"type": "special", "value": {"kind": "project_roots", "subpath": "sub"}}, "access": "write"},
        {"path": {"type": "special", "value": {"kind": "project_roots", "subpath": "../escape"}}, "access": "write"},
        {"path": {"type": "special", "value": {"kind": "future_kind", "new_field": 1}}, "access": "write"},
        {"path": {"type": "special", "value": {"kind": "future_kind"}}, "access": "read"},
        {"path": {"type": "path", "path": "relative/dir"}, "access": "write"},
    ]}, "future_field": true});
    let r = resolve(profile, &p.root, None).unwrap();
    let spec = r.spec.clone().unwrap();
    assert_eq!(
        spec.writable_roots,
        vec![p.root.clone(), p.root.join("sub")]
    );
    // Each entry that could not be resolved is named, none silently.
    assert_eq!(r.ignored.len(), 4, "{:?}", r.ignored);
    for (i, needle) in ["../escape", "future_kind", "future_kind", "relative/dir"]
        .iter()
        .enumerate()
    {
        assert!(r.ignored[i].contains(needle), "{:?}", r.ignored);
    }
}

#[test]
fn what_cannot_be_enforced_fails() {
    let p = project();
    let cases = [
        // Reads restricted to the project.
        json!([path(&p.root, "write")]),
        json!([special("minimal", "read"), path(&p.root, "write")]),
        // A path that must not be read at all.
        json!([special("root", "read"), path(&p.root.join(".aws"), "deny")]),
        json!([special("root", "read"), path(&p.root.join(".aws"), "none")]),
        // Access by pattern.
        json!([special("root", "read"), {"path": {"type": "glob_pattern", "pattern": "**/*.env"}, "access": "deny"}]),
    ];
    for entries in cases {
        let profile = json!({"type": "managed", "network": "restricted",
            "file_system": {"type": "restricted", "entries": entries}});
        let err = resolve(profile.clone(), &p.root, None).unwrap_err();
        assert!(!err.to_string().is_empty(), "{profile}");
    }
}

#[test]
fn malformed_profiles_do_not_parse() {
    for profile in [
        json!({"type": "sandboxed"}),
        json!({"type": "managed"}),
        json!({"type": "managed", "file_system": {"type": "restricted", "entries": [{"path": {"type": "path", "path": "/x"}, "access": "execute"}]}}),
        json!({"type": "managed", "network": "maybe", "file_system": {"type": "unrestricted"}}),
        json!("disabled"),
    ] {
        assert!(
            serde_json::from_value::<PermissionProfile>(profile.clone()).is_err(),
            "{profile} parsed"
        );
    }
}
