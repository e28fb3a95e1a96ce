//! `cargo xtask npm`: the npm package `codex-shell-tool-mcp` as a tarball.
//!
//! Assembles npm/ (launcher, README, package.json with the workspace version)
//! plus every `target/dist/vendor/<triple>/` into
//! `target/dist/codex-shell-tool-mcp-npm-<version>.tgz`. The tarball is written
//! here rather than by `npm pack` so it is byte-for-byte reproducible: sorted
//! entries, mtime `SOURCE_DATE_EPOCH`, uid/gid 0, gzip without a timestamp.
//!
//! `cargo xtask npm --test` runs the launcher tests (`node --test`); the last
//! of them unpacks the tarball and runs the real server through the launcher.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::archive::{self, Tree};

/// The placeholder in npm/package.json that the workspace version replaces.
const VERSION_PLACEHOLDER: &str = r#""version": "0.0.0-dev""#;
/// Triples the launcher knows; a tarball must contain at least the first.
pub(crate) const TRIPLES: [&str; 2] = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let root = archive::project_root();
    let mut args = crate::util::Args::new(args, "cargo xtask npm [--vendor DIR] [--test]");
    let test = args.flag("--test");
    let vendor = args
        .value("--vendor")?
        .map_or_else(|| root.join("target/dist/vendor"), PathBuf::from);
    args.finish()?;
    if test {
        return run_tests(sh, &root);
    }
    build(sh, &root, &vendor).map(drop)
}

/// `cargo xtask dist` step: the tarball with every vendor dir built so far.
pub(crate) fn dist_step(sh: &Shell, dist: &crate::dist::Dist) -> Result<()> {
    let vendor = dist.vendor.parent().context("vendor dir has a parent")?;
    build(sh, &archive::project_root(), vendor).map(drop)
}

/// The tarball path for this workspace version.
pub(crate) fn tarball_path(root: &Path) -> Result<PathBuf> {
    let version = archive::workspace_version(root)?;
    Ok(root.join(format!(
        "target/dist/codex-shell-tool-mcp-npm-{version}.tgz"
    )))
}

/// Builds the tarball from `vendor` (holding `<triple>/` dirs); returns its path.
pub(crate) fn build(sh: &Shell, root: &Path, vendor: &Path) -> Result<PathBuf> {
    let version = archive::workspace_version(root)?;
    let epoch = archive::source_date_epoch(sh)?;
    let npm = root.join("npm");

    let mut tree = Tree::default();
    let manifest_path = npm.join("package.json");
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    tree.file(
        "package/package.json",
        0o644,
        0,
        templated(&manifest, &version)?.into_bytes(),
    );
    tree.copy("package/README.md", 0o644, &npm.join("README.md"))?;
    tree.copy(
        "package/bin/codex-shell-tool-mcp.js",
        0o755,
        &npm.join("bin/codex-shell-tool-mcp.js"),
    )?;

    let mut included = Vec::new();
    for triple in TRIPLES {
        let dir = vendor.join(triple);
        if !dir.exists() {
            if triple == TRIPLES[0] {
                bail!("missing {}: run `cargo xtask dist` first", dir.display());
            }
            eprintln!(
                "note: no {}, the package will not support {triple}",
                dir.display()
            );
            continue;
        }
        archive::check_vendor_dir(&dir)?;
        for name in archive::VENDOR_BINARIES {
            tree.copy(
                &format!("package/vendor/{triple}/{name}"),
                0o755,
                &dir.join(name),
            )?;
        }
        included.push(triple);
    }

    let tgz = archive::gzip(&tree.to_tar(epoch)?)?;
    let out = tarball_path(root)?;
    archive::write_artifact(&out, &tgz)?;
    eprintln!("npm package {version} for {}", included.join(", "));
    Ok(out)
}

/// package.json with the workspace version; fails loudly if the placeholder drifted.
fn templated(manifest: &str, version: &str) -> Result<String> {
    match manifest.matches(VERSION_PLACEHOLDER).count() {
        1 => Ok(manifest.replace(VERSION_PLACEHOLDER, &format!(r#""version": "{version}""#))),
        n => bail!(
            "npm/package.json must contain {VERSION_PLACEHOLDER} exactly once, found {n} times"
        ),
    }
}

/// Runs npm/test/*.test.js with `node --test`. The package test needs the tarball.
pub(crate) fn run_tests(sh: &Shell, root: &Path) -> Result<()> {
    let tests_dir = root.join("npm/test");
    let mut tests: Vec<PathBuf> = std::fs::read_dir(&tests_dir)
        .with_context(|| format!("reading {}", tests_dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", tests_dir.display()))?;
    tests.retain(|p| p.to_string_lossy().ends_with(".test.js"));
    tests.sort();
    let tgz = tarball_path(root)?;
    let _env = sh.push_env("CODEX_TEST_NPM_TGZ", &tgz);
    cmd!(sh, "node --test {tests...}")
        .run()
        .context("npm launcher tests failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_replaces_the_placeholder_once() {
        let out = templated("{\n  \"version\": \"0.0.0-dev\",\n}", "1.2.3").unwrap();
        assert_eq!(out, "{\n  \"version\": \"1.2.3\",\n}");
        assert!(templated("{\"version\": \"1.0.0\"}", "1.2.3").is_err());
    }

    #[test]
    fn package_json_has_the_placeholder() {
        let manifest =
            std::fs::read_to_string(archive::project_root().join("npm/package.json")).unwrap();
        templated(&manifest, "0.1.0").unwrap();
    }
}
