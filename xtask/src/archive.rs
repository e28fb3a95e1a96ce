//! Deterministic tar archives for the npm tarball and the OCI image.
//!
//! Every entry gets the same mtime (`SOURCE_DATE_EPOCH`), explicit numeric
//! owners and no user/group names, and entries are written sorted by path, so
//! the same inputs give byte-identical archives on any machine. Gzip output
//! carries no timestamp or file name (flate2 writes mtime 0 by default).

use std::{collections::BTreeMap, io::Write, path::Path};

use anyhow::{Context, Result, bail};

/// What an entry is; the payload lives in the entry itself.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
}

/// An in-memory tree of entries keyed by their path inside the archive
/// (no leading `/`, no trailing `/`). The `BTreeMap` gives the sorted order.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    pub(crate) fn dir(&mut self, path: &str, mode: u32, owner: u64) {
        self.insert(path, Kind::Dir, mode, owner);
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, owner: u64, data: Vec<u8>) {
        self.insert(path, Kind::File(data), mode, owner);
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        self.insert(path, Kind::Symlink(target.to_owned()), 0o777, 0);
    }

    /// Adds a file read from disk.
    pub(crate) fn copy(&mut self, path: &str, mode: u32, src: &Path) -> Result<()> {
        let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        self.file(path, mode, 0, data);
        Ok(())
    }

    fn insert(&mut self, path: &str, kind: Kind, mode: u32, owner: u64) {
        let path = path.trim_matches('/').to_owned();
        assert!(!path.is_empty(), "archive entry with an empty path");
        self.entries.insert(
            path,
            Entry {
                kind,
                mode,
                uid: owner,
                gid: owner,
            },
        );
    }

    /// Sum of file sizes: what the unpacked tree weighs.
    pub(crate) fn payload_size(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match &e.kind {
                Kind::File(data) => data.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Serialises the tree as an uncompressed tar with every mtime `epoch`.
    pub(crate) fn to_tar(&self, epoch: u64) -> Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(epoch);
            header.set_uid(entry.uid);
            header.set_gid(entry.gid);
            header.set_mode(entry.mode);
            let (name, data): (String, &[u8]) = match &entry.kind {
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    (format!("{path}/"), &[])
                }
                Kind::File(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    (path.clone(), data)
                }
                Kind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    header
                        .set_link_name(target)
                        .with_context(|| format!("symlink target {target} of {path}"))?;
                    (path.clone(), &[])
                }
            };
            header
                .set_path(&name)
                .with_context(|| format!("archive path {name}"))?;
            header.set_cksum();
            builder
                .append(&header, data)
                .with_context(|| format!("appending {name}"))?;
        }
        builder.into_inner().context("finishing tar")
    }
}

/// Gzips `data` with no timestamp and no file name in the header.
pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).context("gzip")?;
    encoder.finish().context("gzip")
}

/// Lower-case hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    crate::util::sha256_bytes(data)
}

/// The archive timestamp: `SOURCE_DATE_EPOCH`, else the commit time of HEAD
/// (the last change to the sources), so rebuilding a commit reproduces it.
pub(crate) fn source_date_epoch(sh: &xshell::Shell) -> Result<u64> {
    if let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") {
        return value
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds"));
    }
    let out = xshell::cmd!(sh, "git log -1 --format=%ct")
        .read()
        .context("reading the HEAD commit time (or set SOURCE_DATE_EPOCH)")?;
    out.trim()
        .parse()
        .with_context(|| format!("git commit time {out:?} is not a number"))
}

/// The workspace version from the root Cargo.toml (`[workspace.package]`).
pub(crate) fn workspace_version(root: &Path) -> Result<String> {
    let manifest_path = root.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let mut in_section = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if in_section && let Some(rest) = line.strip_prefix("version") {
            let value = rest.trim_start().trim_start_matches('=').trim();
            return Ok(value.trim_matches('"').to_owned());
        }
    }
    bail!(
        "no version in [workspace.package] of {}",
        manifest_path.display()
    )
}

/// Writes `data` to `path` (creating parents) and prints size and digest.
pub(crate) fn write_artifact(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {} ({} bytes, sha256 {})",
        path.display(),
        data.len(),
        sha256_hex(data)
    );
    Ok(())
}

/// The executables every `target/dist/vendor/<triple>/` holds.
pub(crate) const VENDOR_BINARIES: [&str; 4] = [
    "codex-exec-mcp-server",
    "codex-execve-wrapper",
    "codex-sandbox-exec",
    "bash",
];

pub(crate) use crate::util::project_root;

/// Checks that `dir` holds all of [`VENDOR_BINARIES`].
pub(crate) fn check_vendor_dir(dir: &Path) -> Result<()> {
    for name in VENDOR_BINARIES {
        let path = dir.join(name);
        if !path.is_file() {
            bail!(
                "missing {}: run `cargo xtask dist` (and `cargo xtask bash`) first",
                path.display()
            );
        }
    }
    Ok(())
}
