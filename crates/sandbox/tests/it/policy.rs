//! `SandboxPolicy`: Codex's JSON, the CLI names, and resolution into a
//! `SandboxSpec` (roots canonicalised, deduplicated, missing ones dropped).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use sandbox::{NetworkAccess, ReadAccess, SandboxPolicy, SandboxSpec};

fn parse(json: &str) -> SandboxPolicy {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("cannot parse {json}: {e}"))
}

#[test]
fn parses_codex_policies() {
    assert_eq!(parse(r#"{"type":"read-only"}"#), SandboxPolicy::read_only());
    assert_eq!(
        parse(r#"{"type":"read-only","network_access":true,"access":{"type":"full-access"}}"#),
        SandboxPolicy::ReadOnly {
            access: ReadAccess::FullAccess,
            network_access: true
        }
    );
    assert_eq!(
        parse(r#"{"type":"danger-full-access"}"#),
        SandboxPolicy::DangerFullAccess
    );
    assert_eq!(
        parse(r#"{"type":"workspace-write"}"#),
        SandboxPolicy::workspace_write()
    );
    assert_eq!(
        parse(
            r#"{"type":"workspace-write","writable_roots":["/a","b"],"network_access":true,
                "exclude_tmpdir_env_var":true,"exclude_slash_tmp":true}"#
        ),
        SandboxPolicy::WorkspaceWrite {
            writable_roots: vec![PathBuf::from("/a"), PathBuf::from("b")],
            read_only_access: ReadAccess::FullAccess,
            network_access: true,
            exclude_tmpdir_env_var: true,
            exclude_slash_tmp: true,
        }
    );
    assert_eq!(
        parse(r#"{"type":"external-sandbox","network_access":"enabled"}"#),
        SandboxPolicy::ExternalSandbox {
            network_access: NetworkAccess::Enabled
        }
    );
    assert_eq!(
        parse(r#"{"type":"external-sandbox"}"#),
        SandboxPolicy::ExternalSandbox {
            network_access: NetworkAccess::Restricted
        }
    );
}

#[test]
fn ignores_unknown_fields() {
    assert_eq!(
        parse(r#"{"type":"read-only","access":{"type":"full-access"},"future":1}"#),
        SandboxPolicy::read_only()
    );
    assert_eq!(
        parse(
            r#"{"type":"workspace-write","network_access":true,"read_only_access":{"type":"fullAccess","x":[]}}"#
        ),
        SandboxPolicy::WorkspaceWrite {
            writable_roots: Vec::new(),
            read_only_access: ReadAccess::FullAccess,
            network_access: true,
            exclude_tmpdir_env_var: false,
            exclude_slash_tmp: false,
        }
    );
    assert_eq!(
        parse(r#"{"network_access":"restricted","type":"external-sandbox","x":null}"#),
        SandboxPolicy::ExternalSandbox {
            network_access: NetworkAccess::Restricted
        }
    );
}

#[test]
fn rejects_unknown_types() {
    for json in [
        r#"{"type":"sandboxed"}"#,
        r#"{"writable_roots":[]}"#,
        r#""read-only""#,
        r#"{"type":"workspace-write","read_only_access":{"x":[]}}"#,
    ] {
        assert!(
            serde_json::from_str::<SandboxPolicy>(json).is_err(),
            "{json} parsed"
        );
    }
}

#[test]
fn serialises_in_codex_form() {
    let json = serde_json::to_value(SandboxPolicy::workspace_write()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "workspace-write", "writable_roots": [],
            "read_only_access": {"type": "full-access"}, "network_access": false,
            "exclude_tmpdir_env_var": false, "exclude_slash_tmp": false})
    );
}

#[test]
fn parses_cli_names() {
    assert_eq!("read-only".parse(), Ok(SandboxPolicy::read_only()));
    assert_eq!(
        "workspace-write".parse(),
        Ok(SandboxPolicy::workspace_write())
    );
    assert_eq!(
        "danger-full-access".parse(),
        Ok(SandboxPolicy::DangerFullAccess)
    );
    let error = "full".parse::<SandboxPolicy>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown sandbox mode `full`, expected `read-only`, `workspace-write` or `danger-full-access`"
    );
}

#[test]
fn unsandboxed_policies_resolve_to_none() {
    let cwd = tempfile::tempdir().unwrap();
    assert_eq!(
        SandboxPolicy::DangerFullAccess
            .resolve(cwd.path(), None)
            .unwrap()
            .spec,
        None
    );
    for network_access in [NetworkAccess::Restricted, NetworkAccess::Enabled] {
        let policy = SandboxPolicy::ExternalSandbox { network_access };
        assert_eq!(policy.resolve(cwd.path(), None).unwrap().spec, None);
    }
}

#[test]
fn read_only_resolves_to_no_writable_roots() {
    let cwd = tempfile::tempdir().unwrap();
    assert_eq!(
        SandboxPolicy::read_only()
            .resolve(cwd.path(), None)
            .unwrap()
            .spec,
        Some(SandboxSpec {
            writable_roots: vec![],
            read_only_subpaths: vec![],
            network: false,
            must_protect: vec![],
            hidden: Vec::new(),
        })
    );
}

/// Codex's read restrictions cannot be enforced (this sandbox confines
/// writes): resolving them fails instead of silently reading everything.
#[test]
fn restricted_reads_are_unenforceable() {
    let cwd = tempfile::tempdir().unwrap();
    for json in [
        r#"{"type":"read-only","access":{"type":"restricted","readable_roots":["/a"]}}"#,
        r#"{"type":"workspace-write","read_only_access":{"type":"restricted"}}"#,
    ] {
        let err = parse(json).resolve(cwd.path(), None).unwrap_err();
        assert!(err.to_string().contains("not reads"), "{err}");
    }
}

/// A nested root swapped by the sandbox for a link elsewhere (here a
/// `$TMPDIR` inside the workspace, now pointing at a "home") is refused;
/// links outside every writable root are followed as before.
#[test]
fn roots_reached_through_a_link_in_a_writable_root_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let base = base.path().canonicalize().unwrap();
    let (cwd, home, real) = (base.join("ws"), base.join("home"), base.join("real"));
    for dir in [&cwd, &home, &real] {
        fs::create_dir(dir).unwrap();
    }
    symlink(&home, cwd.join("tmp")).unwrap();
    symlink(&real, base.join("real-link")).unwrap();
    let policy = SandboxPolicy::WorkspaceWrite {
        writable_roots: vec![base.join("real-link")],
        read_only_access: ReadAccess::FullAccess,
        network_access: false,
        exclude_tmpdir_env_var: false,
        exclude_slash_tmp: true,
    };
    let r = policy.resolve(&cwd, Some(&cwd.join("tmp"))).unwrap();
    let spec = r.spec.unwrap();
    assert_eq!(r.refused, vec![cwd.join("tmp")]);
    assert!(!spec.writable_roots.contains(&home), "{spec:?}");
    // `base` is no writable root here, so its link is followed.
    assert_eq!(spec.writable_roots, vec![real.clone(), cwd.clone()]);
    // The same link becomes suspect once its directory is writable.
    let policy = SandboxPolicy::WorkspaceWrite {
        writable_roots: vec![base.clone(), base.join("real-link")],
        read_only_access: ReadAccess::FullAccess,
        network_access: false,
        exclude_tmpdir_env_var: true,
        exclude_slash_tmp: true,
    };
    let r = policy.resolve(&cwd, None).unwrap();
    assert_eq!(r.refused, vec![base.join("real-link")]);
    assert_eq!(
        r.spec.unwrap().writable_roots,
        vec![base.clone(), cwd.clone()]
    );
}

#[test]
fn workspace_write_resolves_roots() {
    let base = tempfile::tempdir().unwrap();
    let base = base.path().canonicalize().unwrap();
    let cwd = base.join("project");
    let extra = base.join("extra");
    let tmpdir = base.join("tmpdir");
    for dir in [&cwd, &extra, &tmpdir] {
        fs::create_dir(dir).unwrap();
    }
    fs::create_dir(cwd.join(".git")).unwrap();
    fs::create_dir(extra.join(".codex")).unwrap();
    symlink(&extra, base.join("extra-link")).unwrap();

    let policy = SandboxPolicy::WorkspaceWrite {
        writable_roots: vec![
            base.join("extra-link"), // a link in a writable root (`/tmp`, where
            // tempdirs live, or none): refused, or canonicalised to `extra`
            PathBuf::from("../extra"), // relative to cwd
            base.join("missing"),      // dropped
        ],
        read_only_access: ReadAccess::FullAccess,
        network_access: true,
        exclude_tmpdir_env_var: false,
        exclude_slash_tmp: false,
    };
    let spec = policy.resolve(&cwd, Some(&tmpdir)).unwrap().spec.unwrap();
    let slash_tmp = PathBuf::from("/tmp").canonicalize().unwrap();
    assert_eq!(
        spec.writable_roots,
        vec![
            extra.clone(),
            cwd.clone(),
            slash_tmp.clone(),
            tmpdir.clone()
        ]
    );
    assert_eq!(
        spec.read_only_subpaths,
        vec![extra.join(".codex"), cwd.join(".git")]
    );
    assert!(spec.network);

    let excluded = SandboxPolicy::WorkspaceWrite {
        writable_roots: vec![],
        read_only_access: ReadAccess::FullAccess,
        network_access: false,
        exclude_tmpdir_env_var: true,
        exclude_slash_tmp: true,
    };
    let spec = excluded.resolve(&cwd, Some(&tmpdir)).unwrap().spec.unwrap();
    assert_eq!(spec.writable_roots, vec![cwd.clone()]);
    assert_eq!(spec.read_only_subpaths, vec![cwd.join(".git")]);
    assert!(!spec.network);

    // The cwd given twice (as a root and as cwd) appears once.
    let twice = SandboxPolicy::WorkspaceWrite {
        writable_roots: vec![cwd.clone()],
        read_only_access: ReadAccess::FullAccess,
        network_access: false,
        exclude_tmpdir_env_var: true,
        exclude_slash_tmp: true,
    };
    let spec = twice.resolve(&cwd, None).unwrap().spec.unwrap();
    assert_eq!(spec.writable_roots, vec![cwd]);
}
