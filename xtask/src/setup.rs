//! `cargo xtask setup`: installs what the build and tests need, idempotently.
//!
//! - Debian packages ([`APT_PACKAGES`]); `apt-get update` runs once, and
//!   only when something is to be installed or a source was added;
//! - on Debian 12, a `deb-src` entry for bookworm (for `apt-get source bash`,
//!   see `bash.rs`) unless one exists;
//! - rustup components and targets ([`RUSTUP_COMPONENTS`], [`RUST_TARGETS`]).
//!
//! Installing needs root (CI runs as root). Otherwise the missing pieces are
//! listed and the task fails.

use std::{fs, path::Path};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::util::{self, Args};

/// Debian packages: compilers for the patched Bash (static musl and the
/// glibc check build), valgrind for `bash-check`, python3-venv for the
/// end-to-end tests. Add a package here rather than installing it elsewhere.
pub(crate) const APT_PACKAGES: &[&str] = &[
    "gcc",
    "make",
    "patch",
    "curl",
    "ca-certificates",
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
    // clients-e2e: `unshare --net` and `ip link set lo up`.
    "util-linux",
    "iproute2",
];
pub(crate) const RUSTUP_COMPONENTS: &[&str] = &["rustfmt", "clippy"];
pub(crate) const RUST_TARGETS: &[&str] =
    &["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];

/// The apt source this task adds on Debian 12 when none lists `deb-src`.
const DEB_SRC_FILE: &str = "/etc/apt/sources.list.d/codex-deb-src.sources";
const DEB_SRC: &str = "\
# Added by `cargo xtask setup`: `apt-get source bash` for the patched Bash.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

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
    let add_deb_src = is_bookworm() && !has_deb_src()?;
    if !missing.is_empty() || add_deb_src {
        if !root {
            bail!(
                "missing: {}{}; run `cargo xtask setup` as root or install them yourself",
                if missing.is_empty() {
                    "(no packages)".to_owned()
                } else {
                    format!("apt packages {}", missing.join(" "))
                },
                if add_deb_src {
                    format!(", a deb-src entry ({DEB_SRC_FILE})")
                } else {
                    String::new()
                },
            );
        }
        if add_deb_src {
            println!("setup: adding {DEB_SRC_FILE}");
            fs::write(DEB_SRC_FILE, DEB_SRC)
                .with_context(|| format!("cannot write {DEB_SRC_FILE}"))?;
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

fn is_bookworm() -> bool {
    fs::read_to_string("/etc/os-release")
        .is_ok_and(|s| s.lines().any(|l| l == "VERSION_CODENAME=bookworm"))
}

/// Whether some apt source already has an uncommented `deb-src` line or
/// deb822 `Types:` containing `deb-src`.
fn has_deb_src() -> Result<bool> {
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
    Ok(files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .any(|text| {
            text.lines().map(str::trim).any(|l| {
                l.starts_with("deb-src ")
                    || (l.starts_with("Types:") && l.split_whitespace().any(|w| w == "deb-src"))
            })
        }))
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
