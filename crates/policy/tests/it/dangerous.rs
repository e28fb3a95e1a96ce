//! The dangerous-command heuristics, as one table of positive and negative
//! cases.

use std::ffi::OsString;

use policy::dangerous_reason;

/// `(argv, expected)`: `Some(fragment)` when the command is flagged and the
/// reason contains `fragment`, `None` when it is not flagged.
const CASES: &[(&[&str], Option<&str>)] = &[
    // rm
    (&["/bin/rm", "-rf", "build"], Some("rm with `-rf`")),
    (&["/bin/rm", "-fr", "build"], Some("`-fr`")),
    (&["/bin/rm", "build", "-r"], Some("`-r`")),
    (&["/bin/rm", "-R", "build"], Some("`-R`")),
    (&["/bin/rm", "-f", "x"], Some("`-f`")),
    (&["/bin/rm", "-vif", "x"], Some("`-vif`")),
    (&["/bin/rm", "--force", "x"], Some("`--force`")),
    (&["/bin/rm", "--recursive", "x"], Some("`--recursive`")),
    (&["rm", "-rf", "/"], Some("deletes files")),
    (&["/bin/rm", "x"], None),
    (&["/bin/rm", "-i", "x"], None),
    (&["/bin/rm", "-v", "x"], None),
    (&["/bin/rm", "--", "-rf"], None),
    (&["/bin/rm"], None),
    (&["/bin/rmdir", "-r"], None),
    // git reset
    (
        &["/usr/bin/git", "reset", "--hard"],
        Some("git reset --hard discards uncommitted changes"),
    ),
    (
        &["/usr/bin/git", "reset", "--hard", "HEAD~1"],
        Some("--hard"),
    ),
    (&["/usr/bin/git", "reset", "--merge"], Some("--merge")),
    (
        &["/usr/bin/git", "-C", "repo", "reset", "--hard"],
        Some("--hard"),
    ),
    (
        &[
            "/usr/bin/git",
            "-c",
            "core.pager=cat",
            "--no-pager",
            "reset",
            "--hard",
        ],
        Some("--hard"),
    ),
    (
        &[
            "/usr/bin/git",
            "--git-dir=.git",
            "--work-tree",
            "/w",
            "reset",
            "--hard",
        ],
        Some("--hard"),
    ),
    (&["/usr/bin/git", "reset"], Some("git reset moves HEAD")),
    (
        &["/usr/bin/git", "reset", "--soft", "HEAD~1"],
        Some("git reset moves HEAD"),
    ),
    (
        &["/usr/bin/git", "reset", "--", "--hard"],
        Some("git reset moves HEAD"),
    ),
    (&["/usr/bin/git", "-C", "reset", "status"], None),
    // git clean
    (
        &["/usr/bin/git", "clean", "-f"],
        Some("git clean -f deletes untracked files"),
    ),
    (&["/usr/bin/git", "clean", "-fdx"], Some("-fdx")),
    (&["/usr/bin/git", "clean", "-xdf"], Some("-xdf")),
    (&["/usr/bin/git", "clean", "--force"], Some("--force")),
    (
        &["/usr/bin/git", "-C", "/repo", "clean", "-d", "-f"],
        Some("-f"),
    ),
    (&["/usr/bin/git", "clean", "-n"], None),
    (&["/usr/bin/git", "clean", "-dn"], None),
    // git rm
    (&["/usr/bin/git", "rm", "-f", "x"], Some("git rm -f")),
    (
        &["/usr/bin/git", "rm", "--cached", "x"],
        Some("git rm deletes tracked files"),
    ),
    // git push
    (
        &["/usr/bin/git", "push", "--force"],
        Some("git push --force can overwrite remote history"),
    ),
    (
        &["/usr/bin/git", "push", "-f", "origin", "main"],
        Some("-f"),
    ),
    (
        &["/usr/bin/git", "push", "-uf", "origin", "main"],
        Some("-uf"),
    ),
    (
        &["/usr/bin/git", "push", "--force-with-lease"],
        Some("--force-with-lease"),
    ),
    (
        &["/usr/bin/git", "push", "--force-with-lease=main:abc"],
        Some("--force-with-lease=main"),
    ),
    (
        &["/usr/bin/git", "push", "origin", "+main"],
        Some("+main force-updates"),
    ),
    (
        &["/usr/bin/git", "push", "origin", "+HEAD:refs/heads/main"],
        Some("+HEAD"),
    ),
    (&["/usr/bin/git", "push", "--mirror"], Some("--mirror")),
    (
        &["/usr/bin/git", "push", "origin", "--delete", "old"],
        Some("deletes remote"),
    ),
    (
        &["/usr/bin/git", "push", "origin", ":old"],
        Some(":old deletes a remote ref"),
    ),
    (&["/usr/bin/git", "-C", "x", "push", "-f"], Some("-f")),
    (&["/usr/bin/git", "push"], None),
    (&["/usr/bin/git", "push", "-u", "origin", "main"], None),
    (&["/usr/bin/git", "push", "origin", "main:main"], None),
    (&["/usr/bin/git", "push", "--tags"], None),
    // other git subcommands
    (&["/usr/bin/git", "status"], None),
    (&["/usr/bin/git", "commit", "-f"], None),
    (&["/usr/bin/git", "checkout", "main"], None),
    (&["/usr/bin/git"], None),
    (&["/usr/bin/git", "-C", "x"], None),
    // dd
    (
        &["/bin/dd", "if=/dev/zero", "of=/dev/sda", "bs=1M"],
        Some("dd with `of=/dev/sda`"),
    ),
    (&["/bin/dd", "of=out.img"], Some("of=out.img")),
    (&["/bin/dd", "if=/dev/zero", "count=1"], None),
    // mkfs
    (
        &["/sbin/mkfs", "-t", "ext4", "/dev/sdb1"],
        Some("mkfs formats a device"),
    ),
    (&["/sbin/mkfs.ext4", "/dev/sdb1"], Some("mkfs.ext4 formats")),
    (&["/sbin/mkfs.vfat"], Some("mkfs.vfat")),
    (&["/sbin/mke2fs", "/dev/sdb1"], Some("mke2fs")),
    (&["/sbin/mkswap", "/dev/sdb2"], Some("mkswap formats")),
    (&["/usr/bin/mkfsx"], None),
    // chmod / chown / chgrp
    (&["/bin/chmod", "-R", "777", "/"], Some("chmod -R on `/`")),
    (&["/bin/chmod", "-R", "u+w", "~"], Some("`~`")),
    (
        &["/bin/chmod", "--recursive", "700", "$HOME"],
        Some("`$HOME`"),
    ),
    (&["/bin/chmod", "-R", "700", "${HOME}/"], Some("${HOME}")),
    (
        &["/bin/chmod", "-vR", "700", "/home/alice"],
        Some("/home/alice"),
    ),
    (
        &["/bin/chmod", "-R", "700", "/home/alice/"],
        Some("/home/alice"),
    ),
    (
        &["/bin/chmod", "-R", "700", "/Users/alice"],
        Some("/Users/alice"),
    ),
    (&["/bin/chmod", "-R", "700", "/root"], Some("/root")),
    (&["/bin/chmod", "-R", "755", "/usr"], Some("/usr")),
    (&["/bin/chown", "-R", "me:me", "/"], Some("chown -R on `/`")),
    (&["/bin/chown", "-R", "me", "~alice"], Some("~alice")),
    (&["/bin/chgrp", "-R", "staff", "//"], Some("chgrp -R")),
    (&["/bin/chmod", "-R", "755", "/home/alice/project"], None),
    (&["/bin/chmod", "-R", "755", "./build"], None),
    (&["/bin/chmod", "-R", "755", "~/project"], None),
    (&["/bin/chmod", "755", "/"], None),
    (&["/bin/chmod", "-r", "/"], None),
    (&["/bin/chown", "me", "/home/alice"], None),
    // sudo
    (
        &["/usr/bin/sudo", "apt-get", "install", "x"],
        Some("sudo runs `apt-get install x` as root"),
    ),
    (
        &["/usr/bin/sudo", "-u", "postgres", "psql"],
        Some("sudo runs `psql` as root"),
    ),
    (
        &["/usr/bin/sudo", "-E", "--", "make", "install"],
        Some("`make install`"),
    ),
    (
        &["/usr/bin/sudo", "rm", "-rf", "/var/x"],
        Some("sudo runs `rm -rf /var/x` as root: rm with `-rf`"),
    ),
    (
        &["/usr/bin/sudo", "/usr/bin/git", "push", "-f"],
        Some("as root: git push -f"),
    ),
    (&["/usr/bin/sudo", "-v"], Some("sudo runs commands as root")),
    (&["/usr/bin/sudo"], Some("sudo")),
    // unrelated programs
    (&["/usr/bin/ls", "-rf"], None),
    (&["/usr/bin/cargo", "build"], None),
    (&["/usr/bin/echo", "rm", "-rf", "/"], None),
];

#[test]
fn heuristics_table() {
    let mut failures = Vec::new();
    for (argv, expected) in CASES {
        let program = OsString::from(argv[0]);
        let args: Vec<OsString> = argv[1..].iter().map(OsString::from).collect();
        let reason = dangerous_reason(&program, &args);
        let ok = match (expected, &reason) {
            (None, None) => true,
            (Some(fragment), Some(reason)) => reason.contains(fragment),
            _ => false,
        };
        if !ok {
            failures.push(format!("{argv:?}: expected {expected:?}, got {reason:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// The server tells the wrapper to ask only about `DANGEROUS_PROGRAMS`
/// (and rule heads): every flagged case must be a listed program, and each
/// listed program must be flaggable.
#[test]
fn every_flagged_program_is_listed() {
    let listed = |name: &str| policy::dangerous::is_inspected(name);
    for (argv, expected) in CASES {
        let name = std::path::Path::new(argv[0])
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        if expected.is_some() {
            assert!(listed(name), "{argv:?} is flagged but {name} is not listed");
        }
    }
    for entry in policy::DANGEROUS_PROGRAMS {
        let name = entry.replace('*', "ext4");
        let flagged = CASES.iter().any(|(argv, expected)| {
            expected.is_some() && argv[0].rsplit('/').next() == Some(name.as_str())
        });
        assert!(flagged, "{entry} is listed but no case flags it");
    }
    assert!(listed("mkfs") && listed("mkfs.xfs"));
    assert!(!listed("rmdir") && !listed("mkfsx") && !listed("true"));
}

#[test]
fn reasons_are_short_sentences() {
    for (argv, _) in CASES {
        let program = OsString::from(argv[0]);
        let args: Vec<OsString> = argv[1..].iter().map(OsString::from).collect();
        if let Some(reason) = dangerous_reason(&program, &args) {
            assert!(
                !reason.ends_with('.') && !reason.contains('\n'),
                "{argv:?}: {reason:?}"
            );
        }
    }
}

#[test]
fn non_utf8_arguments_do_not_hide_flags() {
    use std::os::unix::ffi::OsStringExt;
    let reason = dangerous_reason(
        &OsString::from("/bin/rm"),
        &[
            OsString::from_vec(b"caf\xe9".to_vec()),
            OsString::from("-rf"),
        ],
    );
    assert!(reason.is_some_and(|r| r.contains("-rf")));
}
