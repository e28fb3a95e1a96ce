//! Checks of the Nix files (flake.nix, nix/*.nix) that run without network:
//! every file must parse (`nix-instantiate --parse`, from Debian's nix-bin),
//! and flake.lock must be a version-7 lock whose inputs are all pinned.
//!
//! Evaluating or building the flake needs the pinned nixpkgs from GitHub;
//! `nix flake check` does that where GitHub is reachable.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::util;

/// `cargo xtask ci` step `nix`.
pub(crate) fn ci_check(sh: &Shell) -> Result<()> {
    let root = util::project_root();
    if !util::on_path("nix-instantiate") {
        bail!("nix-instantiate not found: run `cargo xtask setup` (apt package nix-bin)");
    }
    let mut files = vec![root.join("flake.nix")];
    let nix_dir = root.join("nix");
    let mut more: Vec<PathBuf> = std::fs::read_dir(&nix_dir)
        .with_context(|| format!("cannot list {}", nix_dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    more.retain(|p| p.extension().is_some_and(|e| e == "nix"));
    more.sort();
    files.extend(more);
    for file in &files {
        cmd!(sh, "nix-instantiate --parse {file}")
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| format!("{} does not parse", file.display()))?;
    }
    check_lock(&root.join("flake.lock"))?;
    println!(
        "nix: {} files parse, flake.lock pins every input",
        files.len()
    );
    Ok(())
}

fn check_lock(path: &std::path::Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lock: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if lock["version"] != 7 {
        bail!(
            "{} has version {}, expected 7",
            path.display(),
            lock["version"]
        );
    }
    let nodes = lock["nodes"]
        .as_object()
        .with_context(|| format!("{} has no nodes", path.display()))?;
    for (name, node) in nodes {
        if name == "root" {
            continue;
        }
        let locked = &node["locked"];
        for key in ["rev", "narHash", "lastModified"] {
            if locked[key].is_null() {
                bail!("{}: input {name} has no locked.{key}", path.display());
            }
        }
    }
    Ok(())
}
