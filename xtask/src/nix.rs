//! Checks of the Nix files (flake.nix, nix/*.nix) that run without network,
//! and of the toolchain the flake pins.
//!
//! Step `nix` ([`ci_check`]):
//! 1. every file parses (`nix-instantiate --parse`, from Debian's nix-bin);
//! 2. flake.lock is a version-7 lock whose inputs are all pinned, with
//!    nixpkgs at the revision whose Bash version this file knows
//!    ([`PINNED_NIXPKGS`]);
//! 3. `nix/bash.nix`, evaluated with a stand-in for `pkgs` (it uses only
//!    builtins), picks a patch for that Bash version and for a 5.3 one, and
//!    refuses a version it has no patch for with its message;
//! 4. every entry of `nix/bash-patches.nix` applies (`patch --dry-run
//!    --fuzz=0`) to the Debian source of its Bash line (5.2: the 5.2.37 tree
//!    the pinned nixpkgs builds; 5.3: what we ship), fetched as `cargo xtask
//!    bash` fetches it.
//!
//! Step `flake-toolchain` ([`toolchain_check`]): the Rust the flake builds
//! with (`rustVersion` in nix/packages.nix) must be the workspace's
//! `rust-version` and at least every `rust-version` in Cargo.lock, and must
//! build the three shipped binaries with `--locked` (installed with rustup,
//! built in `target/flake-toolchain/`).
//!
//! Evaluating or building the flake itself needs the pinned nixpkgs from
//! GitHub; `nix flake check` does that where GitHub is reachable.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{bash, util};

/// The nixpkgs revision flake.lock pins and the `version` of its `bash`
/// (pkgs/shells/bash/5.nix: 5.2 with 37 upstream patches). Updating the lock
/// means reading that nixpkgs' Bash version and updating this.
const PINNED_NIXPKGS: (&str, &str) = ("6b4955211758ba47fac850c040a27f23b9b4008f", "5.2p37");

/// A nixpkgs Bash version of the 5.3 line, for the choice check.
const NIXPKGS_BASH_53: &str = "5.3p3";

/// Where nix/packages.nix names the Rust version the flake builds with.
const PACKAGES_NIX: &str = "nix/packages.nix";

/// `cargo xtask ci` step `nix`.
pub(crate) fn ci_check(sh: &Shell) -> Result<()> {
    let root = util::project_root();
    if !util::on_path("nix-instantiate") {
        bail!("nix-instantiate not found: run `cargo xtask setup` (apt package nix-bin)");
    }
    // Debian's nix-bin runs without the nixbld group; say so once, quietly.
    sh.set_var("NIX_CONFIG", "build-users-group =");
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
        "nix: {} files parse, flake.lock pins every input, nixpkgs at {}",
        files.len(),
        PINNED_NIXPKGS.0
    );

    let pinned = chosen_patch(sh, &root, PINNED_NIXPKGS.1)?;
    let for_53 = chosen_patch(sh, &root, NIXPKGS_BASH_53)?;
    let unknown = "9.9p0";
    match chosen_patch(sh, &root, unknown) {
        Ok(p) => bail!("nix/bash.nix chose {p} for Bash {unknown}, which no patch is for"),
        Err(e) if format!("{e:#}").contains("no exec-wrapper patch for nixpkgs' Bash 9.9p0") => {}
        Err(e) => bail!("nix/bash.nix failed for Bash {unknown}, but not with its message: {e:#}"),
    }
    println!(
        "nix: nix/bash.nix takes {pinned} for the pinned nixpkgs' Bash {}, {for_53} for {NIXPKGS_BASH_53}, \
         and refuses {unknown}",
        PINNED_NIXPKGS.1
    );

    for (line, patch) in patch_table(sh, &root)? {
        let release = bash::release(&line)
            .with_context(|| format!("nix/bash-patches.nix has an entry for Bash {line}"))?;
        let what = bash::check_patch_applies(sh, release, &patch)?;
        println!("nix: {patch} (Bash {line}) applies to {what}");
    }
    Ok(())
}

/// The patch (relative to the project root) nix/bash.nix picks for a
/// nixpkgs Bash whose `version` is `version`.
fn chosen_patch(sh: &Shell, root: &Path, version: &str) -> Result<String> {
    let bash_nix = root.join("nix/bash.nix");
    let expr = format!(
        "let b = import {} {{ pkgs = {{ bash = {{ version = \"{version}\"; \
         overrideAttrs = f: f {{ meta = {{ }}; }}; }}; }}; }}; \
         in toString b.passthru.execWrapperPatch",
        bash_nix.display()
    );
    let out = cmd!(
        sh,
        "nix-instantiate --eval --strict --json --readonly-mode -E {expr}"
    )
    .quiet()
    .ignore_status()
    .output()
    .context("cannot run nix-instantiate")?;
    if !out.status.success() {
        bail!(
            "evaluating nix/bash.nix for Bash {version}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let path: String = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("nix-instantiate printed {:?}", out.stdout))?;
    relative(root, &path)
}

/// nix/bash-patches.nix as (line, patch relative to the project root).
fn patch_table(sh: &Shell, root: &Path) -> Result<Vec<(String, String)>> {
    let table = root.join("nix/bash-patches.nix");
    let expr = format!(
        "builtins.mapAttrs (line: patch: toString patch) (import {})",
        table.display()
    );
    let json = cmd!(
        sh,
        "nix-instantiate --eval --strict --json --readonly-mode -E {expr}"
    )
    .quiet()
    .read()
    .with_context(|| format!("cannot evaluate {}", table.display()))?;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&json).with_context(|| format!("nix-instantiate printed {json:?}"))?;
    if map.is_empty() {
        bail!("{} has no entries", table.display());
    }
    map.into_iter()
        .map(|(line, path)| {
            let path = path
                .as_str()
                .with_context(|| format!("{}: {line} is not a path", table.display()))?;
            Ok((line, relative(root, path)?))
        })
        .collect()
}

fn relative(root: &Path, path: &str) -> Result<String> {
    Path::new(path)
        .strip_prefix(root)
        .map(|p| p.display().to_string())
        .with_context(|| format!("patch {path} is outside {}", root.display()))
}

fn check_lock(path: &Path) -> Result<()> {
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
    let nixpkgs = &lock["nodes"]["nixpkgs"]["locked"]["rev"];
    if nixpkgs != PINNED_NIXPKGS.0 {
        bail!(
            "{} pins nixpkgs {nixpkgs}, but xtask/src/nix.rs knows the Bash version of {} only: read \
             pkgs/shells/bash/5.nix at the new revision and update PINNED_NIXPKGS (nix/bash.nix must have a \
             patch for it)",
            path.display(),
            PINNED_NIXPKGS.0
        );
    }
    Ok(())
}

/// `rustVersion = "1.89.0";` in nix/packages.nix.
pub(crate) fn flake_rust_version(root: &Path) -> Result<String> {
    let path = root.join(PACKAGES_NIX);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let found: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rustVersion = \""))
        .filter_map(|rest| rest.strip_suffix("\";"))
        .collect();
    match found.as_slice() {
        [v] if v.split('.').count() == 3 && v.split('.').all(|p| p.parse::<u32>().is_ok()) => {
            Ok((*v).to_owned())
        }
        _ => bail!(
            "{PACKAGES_NIX} must set `rustVersion = \"X.Y.Z\";` once (found {found:?}): the flake pins \
             an exact Rust"
        ),
    }
}

/// `rust-version` of `[workspace.package]` in the root Cargo.toml.
fn workspace_rust_version(root: &Path) -> Result<String> {
    let path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: toml::Table =
        toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?;
    manifest["workspace"]["package"]
        .get("rust-version")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no workspace.package.rust-version", path.display()))
}

/// `1.89` → `[1, 89, 0]`.
fn version_parts(v: &str) -> Result<[u32; 3]> {
    let mut parts = [0; 3];
    let mut n = 0;
    for (i, p) in v.split('.').enumerate() {
        if i >= 3 {
            bail!("version {v:?} has more than three parts");
        }
        parts[i] = p
            .parse()
            .with_context(|| format!("version {v:?} is not numeric"))?;
        n += 1;
    }
    if n < 2 {
        bail!("version {v:?} has fewer than two parts");
    }
    Ok(parts)
}

/// `cargo xtask ci` step `flake-toolchain`.
pub(crate) fn toolchain_check(sh: &Shell) -> Result<()> {
    let root = util::project_root();
    let pinned = flake_rust_version(&root)?;
    let workspace = workspace_rust_version(&root)?;
    if version_parts(&pinned)? != version_parts(&workspace)? {
        bail!(
            "{PACKAGES_NIX} pins Rust {pinned} but Cargo.toml says rust-version = {workspace:?}: the flake \
             builds with the workspace's minimum Rust, so the two must be the same version"
        );
    }
    // What the lock declares: every package's rust-version.
    let cargo = util::cargo();
    let metadata = cmd!(sh, "{cargo} metadata --format-version 1 --locked")
        .quiet()
        .read()
        .context("cargo metadata --locked")?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).context("cargo metadata printed no JSON")?;
    let mut needed: Option<([u32; 3], String)> = None;
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let Some(v) = package["rust_version"].as_str() else {
            continue;
        };
        let parts = version_parts(v)?;
        if needed.as_ref().is_none_or(|(n, _)| parts > *n) {
            needed = Some((
                parts,
                format!(
                    "{} {} (rust-version {v})",
                    package["name"].as_str().unwrap_or("?"),
                    package["version"].as_str().unwrap_or("?")
                ),
            ));
        }
    }
    if let Some((need, who)) = &needed
        && version_parts(&workspace)? < *need
    {
        bail!(
            "Cargo.toml says rust-version = {workspace:?}, but Cargo.lock holds {who}: raise rust-version \
             and the flake's rustVersion ({PACKAGES_NIX})"
        );
    }
    if !util::on_path("rustup") {
        bail!("rustup not found: the check installs Rust {pinned} with it");
    }
    cmd!(
        sh,
        "rustup toolchain install {pinned} --profile minimal --no-self-update"
    )
    .run()
    .with_context(|| format!("cannot install Rust {pinned} with rustup"))?;
    let target_dir = root.join("target/flake-toolchain");
    let packages: Vec<String> = crate::dist::BINARIES
        .iter()
        .flat_map(|(p, _)| ["-p".to_owned(), (*p).to_owned()])
        .collect();
    // Through rustup, not the cargo that runs us (another toolchain).
    cmd!(
        sh,
        "rustup run {pinned} cargo build --locked {packages...} --bins --target-dir {target_dir}"
    )
    .env_remove("RUSTUP_TOOLCHAIN")
    .env_remove("CARGO")
    .env_remove("RUSTC")
    .run()
    .with_context(|| {
        format!("the flake's Rust {pinned} ({PACKAGES_NIX}) does not build the shipped binaries with --locked")
    })?;
    println!(
        "flake-toolchain: Rust {pinned} (flake) = rust-version {workspace}, which Cargo.lock's {} needs; \
         it builds {} with --locked",
        needed.map_or_else(|| "nothing declared".to_owned(), |(_, who)| who),
        crate::dist::BINARIES
            .iter()
            .map(|(_, b)| *b)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
