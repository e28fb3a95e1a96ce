//! Read-only subpaths (`.git`, `.codex`) inside a writable root. They are
//! protected by a read-only bind mount in a private mount namespace when the
//! kernel and privileges allow one; the tests assert what the `Applied`
//! report says happened, and that it is true.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use sandbox::{ReadAccess, SandboxPolicy, SandboxSpec};

use crate::util::{PROBE, Run, op, ops, probe};

fn workspace(root: &Path) -> SandboxSpec {
    SandboxPolicy::WorkspaceWrite {
        writable_roots: Vec::new(),
        read_only_access: ReadAccess::FullAccess,
        network_access: false,
        exclude_tmpdir_env_var: true,
        exclude_slash_tmp: true,
    }
    .resolve(root, None)
    .unwrap()
    .spec
    .unwrap()
}

fn euid() -> u32 {
    fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn git_and_codex_under_a_root_are_read_only_when_the_mount_namespace_works() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::write(root.join(".git/config"), "[core]\n").unwrap();
    fs::create_dir(root.join(".codex")).unwrap();
    let spec = workspace(&root);
    assert_eq!(
        spec.read_only_subpaths,
        vec![root.join(".git"), root.join(".codex")]
    );

    let run = ops(
        &spec,
        &[
            op("write", &root.join(".git/config")),
            op("write", &root.join(".git/new")),
            op("unlink", &root.join(".git/config")),
            op("mkdir", &root.join(".codex/rules")),
            op("write", &root.join("src.rs")),
        ],
    );
    let applied = run.applied();
    if applied.read_only_subpaths == spec.read_only_subpaths {
        run.assert_stdout(&["EROFS", "EROFS", "EROFS", "EROFS", "ok"]);
        assert_eq!(
            fs::read_to_string(root.join(".git/config")).unwrap(),
            "[core]\n"
        );
        assert!(!root.join(".git/new").exists());
    } else {
        // No mount namespace here: the report must say why, and Landlock
        // alone leaves the subpaths writable.
        let unprotected: Vec<_> = applied
            .unprotected_subpaths
            .iter()
            .map(|u| &u.path)
            .collect();
        if unprotected != spec.read_only_subpaths.iter().collect::<Vec<_>>() {
            run.fail("subpaths neither protected nor reported as unprotected");
        }
        run.assert_stdout(&["ok", "ok", "ok", "ok", "ok"]);
    }
}

#[test]
fn the_mount_namespace_keeps_our_uid() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    fs::create_dir(root.join(".git")).unwrap();
    probe(&workspace(&root), &["id", "-u"])
        .success()
        .assert_stdout(&[&euid().to_string()]);
}

/// As a user without `CAP_SYS_ADMIN` the mount namespace needs a user
/// namespace; when the tests run as root, `setpriv` drops to `nobody` to
/// exercise that path.
#[test]
fn read_only_subpaths_for_an_unprivileged_user() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    fs::create_dir(root.join(".git")).unwrap();
    fs::write(root.join(".git/config"), "[core]\n").unwrap();
    let spec = workspace(&root);
    let script = format!(
        "id -u; echo x > {root}/.git/config; echo x > {root}/file && echo wrote-file",
        root = root.display()
    );
    let spec_json = serde_json::to_string(&spec).unwrap();
    let (run, uid) = if euid() == 0 {
        for path in [&root, &root.join(".git"), &root.join(".git/config")] {
            let mode = if path.is_dir() { 0o777 } else { 0o666 };
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        }
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args([PROBE, &spec_json, "sh", "-c", &script]);
        (Run::new(command), 65534)
    } else {
        (probe(&spec, &["sh", "-c", &script]), euid())
    };
    run.success();
    if run.applied().read_only_subpaths == spec.read_only_subpaths {
        run.assert_stdout(&[&uid.to_string(), "wrote-file"])
            .assert_stderr_contains("Read-only file system");
        assert_eq!(
            fs::read_to_string(root.join(".git/config")).unwrap(),
            "[core]\n"
        );
    } else {
        // FIXME: no user namespaces here; `.git` stays writable.
        assert!(!run.applied().unprotected_subpaths.is_empty());
        run.assert_stdout(&[&uid.to_string(), "wrote-file"]);
    }
}

#[test]
fn the_sandboxed_program_cannot_remount_subpaths_writable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    fs::create_dir(root.join(".git")).unwrap();
    let spec = workspace(&root);
    let script = format!(
        "mount -o remount,rw {git}; umount {git}; umount -l {git}; echo x > {git}/f && echo wrote",
        git = root.join(".git").display()
    );
    let run = probe(&spec, &["sh", "-c", &script]);
    if run.applied().read_only_subpaths == spec.read_only_subpaths {
        if run.status.success() {
            run.fail("a sandboxed program made .git writable again");
        }
        run.assert_stderr_contains("Read-only file system")
            .assert_stdout(&[]);
        assert!(!root.join(".git/f").exists());
    } else {
        // FIXME: no mount namespace here; `.git` was writable all along.
        run.assert_stdout(&["wrote"]);
    }
}
