//! Filesystem confinement through Landlock, checked against the real
//! kernel: writes inside writable roots succeed, everything else fails with
//! `EACCES` and leaves no trace, for the command and its descendants.

use std::fs;
use std::path::Path;

use sandbox::{ReadAccess, SandboxPolicy};

use crate::util::{MODES, op, ops, ops_in, probe, probe_in, spec};

#[test]
fn writing_inside_a_writable_root_succeeds() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("new");
    let dir = root.path().join("dir");
    let existing = root.path().join("existing");
    fs::write(&existing, "old").unwrap();

    ops(
        &spec(&[root.path()], &[], false),
        &[
            op("write", &file),
            op("mkdir", &dir),
            op("truncate", &existing),
            format!("rename:{}:{}", file.display(), dir.join("moved").display()),
            op("unlink", &existing),
        ],
    )
    .assert_stdout(&["ok", "ok", "ok", "ok", "ok"]);

    assert_eq!(fs::read_to_string(dir.join("moved")).unwrap(), "x");
    assert!(!existing.exists());
}

/// Outside the writable roots every write fails: `EROFS` under the
/// read-only view, Landlock's `EACCES` without namespaces; a rename out of
/// the view crosses mounts (`EXDEV`).
#[test]
fn writing_outside_the_writable_roots_fails() {
    for mode in MODES {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let new = outside.path().join("new");
        let existing = outside.path().join("existing");
        fs::write(&existing, "keep").unwrap();

        let run = ops_in(
            mode,
            &spec(&[root.path()], &[], false),
            &[
                op("write", &new),
                op("append", &existing),
                op("mkdir", &outside.path().join("dir")),
                op("unlink", &existing),
                format!("symlink:/etc:{}", outside.path().join("link").display()),
                format!(
                    "rename:{}:{}",
                    existing.display(),
                    root.path().join("stolen").display()
                ),
                op("read", &existing),
            ],
        );
        let denied = run.outside();
        let rename = if denied == "EROFS" { "EXDEV" } else { "EACCES" };
        run.assert_stdout(&[denied, denied, denied, denied, denied, rename, "ok"]);
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
        assert_eq!(fs::read_to_string(&existing).unwrap(), "keep");

        // truncate(2) by path is restricted from Landlock ABI 3 on.
        let run = ops_in(
            mode,
            &spec(&[root.path()], &[], false),
            &[op("truncate", &existing)],
        );
        if run.applied().view.read_only_root {
            run.assert_stdout(&["EROFS"]);
        } else if run.applied().landlock_abi >= 3 {
            run.assert_stdout(&["EACCES"]);
            assert_eq!(fs::read_to_string(&existing).unwrap(), "keep");
        } else {
            // FIXME: Landlock before ABI 3 cannot restrict truncate(2).
            run.assert_stdout(&["ok"]);
        }
    }
}

#[test]
fn shell_redirection_outside_the_roots_is_refused() {
    for mode in MODES {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("f");
        let script = format!("echo x > '{}'", target.display());
        let run = probe_in(
            mode,
            &spec(&[root.path()], &[], false),
            &["sh", "-c", &script],
        );
        if run.status.success() {
            run.fail("the write outside the roots succeeded");
        }
        run.assert_stderr_contains(if run.outside() == "EROFS" {
            "Read-only file system"
        } else {
            "Permission denied"
        });
        assert!(!target.exists());
    }
}

#[test]
fn grandchildren_and_subshells_are_confined() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let by_python = outside.path().join("python");
    let by_subshell = outside.path().join("subshell");
    let inside = root.path().join("inside");
    let script = format!(
        "python3 -c 'open(\"{py}\", \"w\")' 2>/dev/null && echo python-wrote || echo python-denied
         (sh -c 'echo x > {sub}') 2>/dev/null && echo subshell-wrote || echo subshell-denied
         (sh -c 'echo x > {inside}') && echo inside-wrote",
        py = by_python.display(),
        sub = by_subshell.display(),
        inside = inside.display(),
    );
    probe(&spec(&[root.path()], &[], false), &["sh", "-c", &script])
        .success()
        .assert_stdout(&["python-denied", "subshell-denied", "inside-wrote"]);
    assert!(!by_python.exists());
    assert!(!by_subshell.exists());
    assert!(inside.exists());
}

#[test]
fn read_only_writes_nothing_but_device_files() {
    let dir = tempfile::tempdir().unwrap();
    let read_only = SandboxPolicy::read_only()
        .resolve(dir.path(), None)
        .unwrap()
        .spec
        .expect("read-only is sandboxed");
    assert!(read_only.writable_roots.is_empty());
    for mode in MODES {
        let run = ops_in(
            mode,
            &read_only,
            &[
                op("write", &dir.path().join("f")),
                op("write", Path::new("/dev/null")),
                op("read", Path::new("/dev/zero")),
                op("read", Path::new("/dev/urandom")),
                // Opening succeeds; the device itself refuses the write.
                op("write", Path::new("/dev/full")),
            ],
        );
        run.assert_stdout(&[run.outside(), "ok", "ok", "ok", "ENOSPC"]);
        assert!(!dir.path().join("f").exists());
    }
}

#[test]
fn slash_tmp_is_writable_unless_excluded() {
    let cwd = tempfile::tempdir_in("/tmp").unwrap();
    let elsewhere = tempfile::tempdir_in("/tmp").unwrap();
    let target = elsewhere.path().join("f");
    let policy = |exclude_slash_tmp| SandboxPolicy::WorkspaceWrite {
        writable_roots: Vec::new(),
        read_only_access: ReadAccess::FullAccess,
        network_access: false,
        exclude_tmpdir_env_var: true,
        exclude_slash_tmp,
    };

    let excluded = policy(true)
        .resolve(cwd.path(), None)
        .unwrap()
        .spec
        .unwrap();
    let run = ops(&excluded, &[op("write", &target)]);
    run.assert_stdout(&[run.outside()]);
    assert!(!target.exists());

    let included = policy(false)
        .resolve(cwd.path(), None)
        .unwrap()
        .spec
        .unwrap();
    ops(&included, &[op("write", &target)]).assert_stdout(&["ok"]);
    assert!(target.exists());
}

#[test]
fn no_new_privs_is_set() {
    let root = tempfile::tempdir().unwrap();
    probe(
        &spec(&[root.path()], &[], true),
        &["sh", "-c", "grep '^NoNewPrivs:' /proc/self/status"],
    )
    .success()
    .assert_stdout(&["NoNewPrivs:\t1"]);
}

#[test]
fn a_missing_command_is_an_exec_error() {
    let root = tempfile::tempdir().unwrap();
    let run = probe(&spec(&[root.path()], &[], false), &["/nonexistent/program"]);
    if run.status.code() != Some(127) {
        run.fail("expected exit status 127");
    }
    run.assert_stderr_contains("cannot exec \"/nonexistent/program\"");
}

#[test]
fn a_missing_writable_root_is_reported_not_fatal() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("missing");
    let run = probe(&spec(&[&missing], &[], false), &["true"]);
    run.success();
    assert_eq!(run.applied().missing_writable_roots, vec![missing]);
}

#[test]
fn the_quiet_launch_confines_the_command() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let mut argv = vec![std::ffi::OsString::from("--quiet")];
    argv.push(
        serde_json::to_string(&spec(&[root.path()], &[], false))
            .unwrap()
            .into(),
    );
    argv.extend(crate::util::ops_argv(&[
        op("write", &root.path().join("in")),
        op("write", &outside.path().join("out")),
    ]));
    let mut command = std::process::Command::new(crate::util::PROBE);
    command.args(argv);
    let run = crate::util::Run::new(command);
    run.success();
    let out = run.stdout.lines().nth(1).unwrap_or_default().to_owned();
    if run.stdout.lines().next() != Some("ok") || !["EROFS", "EACCES"].contains(&out.as_str()) {
        run.fail("expected ok, then EROFS or EACCES");
    }
}

#[test]
fn apply_refuses_a_multi_threaded_process() {
    // This test process has other threads (the harness, and this one
    // for certain), so apply must refuse before changing anything.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || rx.recv());
    let root = tempfile::tempdir().unwrap();
    let error = sandbox::apply(&spec(&[root.path()], &[], false)).unwrap_err();
    assert!(
        matches!(error, sandbox::Error::MultiThreaded { threads } if threads >= 2),
        "{error}"
    );
    drop(tx);
    let _ = other.join();
    // Not sandboxed: writing outside the root still works.
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("f"), "x").unwrap();
}

/// When the server holding the exec check's listener goes away, the kernel
/// fails every exec the filter sees: nothing runs unjudged.
#[test]
fn execs_fail_once_the_exec_check_listener_is_gone() {
    let root = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(crate::util::PROBE);
    command
        .args(["--in-place", "--orphaned-exec-check"])
        .arg(serde_json::to_string(&spec(&[root.path()], &[], false)).unwrap())
        .arg("/bin/true");
    let run = crate::util::Run::new(command);
    if run.status.code() != Some(127) {
        run.fail("expected the exec to fail (127)");
    }
    run.assert_stderr_contains("Function not implemented");
}

/// A file in a writable root (the host's own directory) never gets the
/// set-user-ID or set-group-ID bit: a root sandbox's `chmod 4755` would be a
/// root shell for every local user. Other modes are set as asked.
#[test]
fn no_set_id_bits_in_a_writable_root() {
    use std::os::unix::fs::PermissionsExt;
    for mode in MODES {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("prog");
        fs::write(&file, "#!/bin/sh\n").unwrap();
        let at = |name: &str| root.path().join(name).display().to_string();
        let f = file.display();
        ops_in(
            mode,
            &spec(&[root.path()], &[], false),
            &[
                format!("chmod:4755:{f}"),
                format!("chmod:2755:{f}"),
                format!("fchmod:6755:{f}"),
                format!("create:4755:{}", at("created")),
                format!("create:2755:{}", at("created-gid")),
                format!("tmpfile:4755:{}", root.path().display()),
                format!("mknod:4755:{}", at("node")),
                format!("openat2:{f}"),
                format!("chmod:755:{f}"),
                format!("create:644:{}", at("plain")),
            ],
        )
        .assert_stdout(&[
            "EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "ENOSYS", "ok", "ok",
        ]);
        let mode_of = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode_of(&file), 0o755);
        assert_eq!(mode_of(&root.path().join("plain")) & 0o6000, 0);
        for name in ["created", "created-gid", "node"] {
            assert!(!root.path().join(name).exists(), "{name} was made");
        }
    }
}
