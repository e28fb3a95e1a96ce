//! `cargo xtask setup`: installs what the build and tests need, idempotently.
//!
//! - Debian packages ([`APT_PACKAGES`]); `apt-get update` runs once, and
//!   only when something is to be installed or a source was added;
//! - on Debian, `deb-src` entries for the suites whose source packages carry
//!   the Bash releases we build (for `apt-get source bash`, see `bash.rs`:
//!   forky for 5.3, trixie for 5.2.37), in [`DEB_SRC_FILE`], for the suites
//!   no other apt source lists as `deb-src`. Only source indices are added:
//!   what `apt-get install` picks does not change;
//! - rustup components and targets ([`RUSTUP_COMPONENTS`], [`RUST_TARGETS`]).
//!
//! Installing needs root (CI runs as root). Otherwise the missing pieces are
//! listed and the task fails.

use std::{fs, path::Path};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{
    bash,
    util::{self, Args},
};

/// Debian packages: compilers for the patched Bash (static musl and the
/// glibc check build), valgrind for `bash-check`, python3-venv for the
/// end-to-end tests. Add a package here rather than installing it elsewhere.
pub(crate) const APT_PACKAGES: &[&str] = &[
    "gcc",
    "make",
    "patch",
    "curl",
    "ca-certificates",
    "xz-utils", // Debian's Bash tarballs are .tar.xz
    // bash-suite: a private /tmp per configuration (unshare, mount --bind)
    // and the per-test `timeout`; all three are in a standard Debian system.
    "util-linux",
    "mount",
    "coreutils",
    "musl-tools",
    "valgrind",
    "python3",
    "python3-venv",
    // Packaging (npm, oci, cross, nix steps): launcher tests, docker load and
    // run of the image, aarch64 binaries under qemu, Nix parse checks.
    "nodejs",
    "docker.io",
    "qemu-user-static",
    "nix-bin",
    // clients-e2e: `unshare --net` (util-linux, above) and `ip link set lo up`.
    "iproute2",
    // bench: the sandbox Codex uses on Linux, the peer of ours.
    "bubblewrap",
];
pub(crate) const RUSTUP_COMPONENTS: &[&str] = &["rustfmt", "clippy"];
pub(crate) const RUST_TARGETS: &[&str] =
    &["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];

/// The apt source this task writes on Debian (and rewrites or removes when
/// the suites it must list change).
const DEB_SRC_FILE: &str = "/etc/apt/sources.list.d/codex-deb-src.sources";

/// The [`DEB_SRC_FILE`] text listing `suites`.
fn deb_src_text(suites: &[&str]) -> String {
    format!(
        "# Added by `cargo xtask setup`: `apt-get source bash` for the patched Bash\n\
         # (see xtask/src/bash.rs). Source indices only.\n\
         Types: deb-src\n\
         URIs: http://deb.debian.org/debian\n\
         Suites: {}\n\
         Components: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        suites.join(" ")
    )
}

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    Args::new(args, "cargo xtask setup").finish()?;
    ensure(sh)
}

/// Everything in the module doc; cheap when all is in place.
pub(crate) fn ensure(sh: &Shell) -> Result<()> {
    let root = util::is_root();
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(sh, p))
        .collect();
    let deb_src = deb_src_change()?;
    // Entries in place but never fetched (an interrupted run, or an entry
    // added by hand): the indices need an update too.
    let stale_indices = is_debian()
        && util::on_path("apt-cache")
        && bash::RELEASES.iter().any(|r| !bash::apt_offers(sh, r));
    if !missing.is_empty() || deb_src.is_some() || stale_indices {
        if !root {
            bail!(
                "missing: {}{}; run `cargo xtask setup` as root or install them yourself",
                if missing.is_empty() {
                    "(no packages)".to_owned()
                } else {
                    format!("apt packages {}", missing.join(" "))
                },
                if deb_src.is_some() {
                    format!(", deb-src entries ({DEB_SRC_FILE})")
                } else if stale_indices {
                    ", apt-get update (source indices lack a bash release)".to_owned()
                } else {
                    String::new()
                },
            );
        }
        match &deb_src {
            Some(Some(text)) => {
                println!("setup: writing {DEB_SRC_FILE}");
                fs::write(DEB_SRC_FILE, text)
                    .with_context(|| format!("cannot write {DEB_SRC_FILE}"))?;
            }
            Some(None) => {
                println!("setup: removing {DEB_SRC_FILE} (other sources list its suites)");
                fs::remove_file(DEB_SRC_FILE)
                    .with_context(|| format!("cannot remove {DEB_SRC_FILE}"))?;
            }
            None => {}
        }
        cmd!(sh, "apt-get update -q")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("apt-get update")?;
        if !missing.is_empty() {
            cmd!(
                sh,
                "apt-get install -y -q --no-install-recommends {missing...}"
            )
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("apt-get install")?;
        }
    }
    ensure_rustup(sh)?;
    println!("setup: system dependencies in place");
    Ok(())
}

fn dpkg_installed(sh: &Shell, package: &str) -> bool {
    let format = "-f=${db:Status-Abbrev}";
    cmd!(sh, "dpkg-query -W {format} {package}")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|s| s.starts_with("ii"))
}

fn is_debian() -> bool {
    fs::read_to_string("/etc/os-release").is_ok_and(|s| s.lines().any(|l| l == "ID=debian"))
}

/// What [`DEB_SRC_FILE`] must become: `None` if it is right, `Some(None)` to
/// remove it, `Some(Some(text))` to write it. Not on Debian: `None`.
fn deb_src_change() -> Result<Option<Option<String>>> {
    if !is_debian() {
        return Ok(None);
    }
    let elsewhere = deb_src_suites(Some(Path::new(DEB_SRC_FILE)))?;
    let needed: Vec<&str> = bash::RELEASES
        .iter()
        .map(|r| r.debian.suite)
        .filter(|s| !elsewhere.iter().any(|e| e == s))
        .collect();
    let want = (!needed.is_empty()).then(|| deb_src_text(&needed));
    let have = fs::read_to_string(DEB_SRC_FILE).ok();
    Ok((have != want).then_some(want))
}

/// The suites apt sources list as `deb-src` (one-line `deb-src [opts] URI
/// SUITE ...` or deb822 stanzas with `Types: deb-src`), ignoring `skip`.
fn deb_src_suites(skip: Option<&Path>) -> Result<Vec<String>> {
    let mut files = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir {
            let path = entry?.path();
            if path
                .extension()
                .is_some_and(|e| e == "list" || e == "sources")
            {
                files.push(path);
            }
        }
    }
    let mut suites = Vec::new();
    for file in files.iter().filter(|f| Some(f.as_path()) != skip) {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        if file.extension().is_some_and(|e| e == "sources") {
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_owned())
                    })
                };
                let types = field("Types").unwrap_or_default();
                let enabled = field("Enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
                if enabled && types.split_whitespace().any(|t| t == "deb-src") {
                    let listed = field("Suites").unwrap_or_default();
                    suites.extend(listed.split_whitespace().map(str::to_owned));
                }
            }
        } else {
            for line in text.lines().map(str::trim) {
                let Some(rest) = line.strip_prefix("deb-src ") else {
                    continue;
                };
                let mut words = rest.split_whitespace().peekable();
                // Options: `[arch=amd64 signed-by=...]`, possibly several words.
                if words.peek().is_some_and(|w| w.starts_with('[')) {
                    for w in words.by_ref() {
                        if w.ends_with(']') {
                            break;
                        }
                    }
                }
                let _uri = words.next();
                if let Some(suite) = words.next() {
                    suites.push(suite.to_owned());
                }
            }
        }
    }
    Ok(suites)
}

fn ensure_rustup(sh: &Shell) -> Result<()> {
    if !util::on_path("rustup") {
        println!(
            "setup: no rustup; assuming the toolchain has {RUSTUP_COMPONENTS:?} and {RUST_TARGETS:?}"
        );
        return Ok(());
    }
    let components = cmd!(sh, "rustup component list --installed")
        .quiet()
        .read()?;
    let missing: Vec<&str> = RUSTUP_COMPONENTS
        .iter()
        .copied()
        .filter(|c| !components.lines().any(|l| l.starts_with(&format!("{c}-"))))
        .collect();
    if !missing.is_empty() {
        cmd!(sh, "rustup component add {missing...}").run()?;
    }
    let targets = cmd!(sh, "rustup target list --installed").quiet().read()?;
    let missing: Vec<&str> = RUST_TARGETS
        .iter()
        .copied()
        .filter(|t| !targets.lines().any(|l| l == *t))
        .collect();
    if !missing.is_empty() {
        cmd!(sh, "rustup target add {missing...}").run()?;
    }
    Ok(())
}
