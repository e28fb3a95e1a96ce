//! Small helpers shared by the tasks: paths, hashing, argument parsing.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The workspace root (the parent of `xtask/`).
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// The cargo that runs us (so `cargo +toolchain xtask` stays on that toolchain).
pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Hash of a directory tree: every regular file's relative path, mode and
/// contents, and every symlink's target, in sorted order.
pub(crate) fn sha256_tree(dir: &Path) -> Result<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            let meta = fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                walk(&path, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for path in files {
        let rel = path.strip_prefix(dir).expect("walked under dir");
        let meta = fs::symlink_metadata(&path)?;
        hasher.update(rel.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        if meta.file_type().is_symlink() {
            hasher.update(b"link:");
            hasher.update(fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else {
            hasher.update(format!("{:o}:", meta.permissions().mode() & 0o111).as_bytes());
            hasher.update(sha256_file(&path)?.as_bytes());
        }
        hasher.update([0]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Minimal `--flag` / `--key value` parser: tasks take few options, and a
/// parser crate would cost more build time than it saves.
pub(crate) struct Args {
    rest: Vec<String>,
    usage: &'static str,
}

impl Args {
    pub(crate) fn new(args: &[String], usage: &'static str) -> Args {
        Args {
            rest: args.to_vec(),
            usage,
        }
    }

    /// Removes `--name` and reports whether it was present.
    pub(crate) fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|a| a != name);
        before != self.rest.len()
    }

    /// Removes `--name VALUE` (or `--name=VALUE`) and returns the value.
    pub(crate) fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        if let Some(i) = self.rest.iter().position(|a| a.starts_with(&prefix)) {
            let arg = self.rest.remove(i);
            return Ok(Some(arg[prefix.len()..].to_owned()));
        }
        let Some(i) = self.rest.iter().position(|a| a == name) else {
            return Ok(None);
        };
        if i + 1 >= self.rest.len() {
            bail!("{name} needs a value (usage: {})", self.usage);
        }
        self.rest.remove(i);
        Ok(Some(self.rest.remove(i)))
    }

    /// Fails on anything not consumed.
    pub(crate) fn finish(self) -> Result<()> {
        if let Some(arg) = self.rest.first() {
            bail!("unknown argument {arg:?} (usage: {})", self.usage);
        }
        Ok(())
    }
}

/// Whether we run as root (apt-get install works without sudo).
pub(crate) fn is_root() -> bool {
    // /proc/self/status "Uid:\treal\teffective..."; avoids a libc dependency.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether `program` is found on PATH as an executable file.
pub(crate) fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        fs::metadata(dir.join(program))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}
