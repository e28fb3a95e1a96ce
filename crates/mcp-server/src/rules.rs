//! Finding and loading `.rules` files: `/etc/codex/rules/*.rules`, then
//! `$CODEX_HOME/rules/*.rules` (`~/.codex` by default), then the files given
//! with `--rules`, in that order.

use std::path::{Path, PathBuf};

/// The system layer, as Codex loads it.
pub const SYSTEM_RULES_DIR: &str = "/etc/codex/rules";

/// Why the rules could not be loaded. Displayed as is on stderr.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("failed to list rules directory {}: {source}", dir.display())]
    ListDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read rules file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Already carries `file:line:col: reason`.
    #[error("{0}")]
    Invalid(#[from] policy::Error),
}

/// `$CODEX_HOME`, else `~/.codex`; `None` when neither can be determined.
pub fn codex_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(home));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".codex"))
}

/// What a sandboxed command must never write, because the server reads it
/// at its next start: a command that could would grant itself escalation.
/// The system rules directory, `$CODEX_HOME` (all of it: its `rules/`, and
/// whatever Codex keeps there), every rules file given explicitly, and the
/// config file. Each one lying under a writable root of a call's sandbox
/// becomes a read-only subpath there (`SandboxSpec::protect`).
pub fn protected_paths(extra_rules: &[PathBuf], config: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(SYSTEM_RULES_DIR)];
    paths.extend(codex_home());
    paths.extend(extra_rules.iter().cloned());
    paths.extend(config.map(Path::to_path_buf));
    paths
}

/// Creates `$CODEX_HOME/rules` (and `$CODEX_HOME`, private) when missing,
/// so that no command can create it first: a directory that does not exist
/// cannot be kept read-only.
pub fn ensure_codex_home() -> std::io::Result<Option<PathBuf>> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(home) = codex_home() else {
        return Ok(None);
    };
    if !home.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&home)?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(home.join("rules"))?;
    Ok(Some(home))
}

/// The discovered rules files followed by `extra`.
pub fn rules_files(extra: &[PathBuf]) -> Result<Vec<PathBuf>, RulesError> {
    let mut files = rules_in_dir(Path::new(SYSTEM_RULES_DIR))?;
    if let Some(home) = codex_home() {
        files.extend(rules_in_dir(&home.join("rules"))?);
    }
    files.extend(extra.iter().cloned());
    Ok(files)
}

/// Regular files (or symlinks to them) named `*.rules` in `dir`, sorted by
/// name. A missing directory holds no rules.
pub fn rules_in_dir(dir: &Path) -> Result<Vec<PathBuf>, RulesError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RulesError::ListDir {
                dir: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RulesError::ListDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "rules") {
            continue;
        }
        // `metadata` follows symlinks: a dangling link or a directory is skipped.
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and evaluates `files` in order.
pub fn load_policy(files: &[PathBuf]) -> Result<policy::Policy, RulesError> {
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| RulesError::Read {
            file: file.clone(),
            source,
        })?;
        sources.push((file.display().to_string(), text));
    }
    Ok(policy::Policy::from_sources(&sources)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_rules_files_sorted_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("b.rules"), "").unwrap();
        std::fs::write(d.join("a.rules"), "").unwrap();
        std::fs::write(d.join("notes.txt"), "").unwrap();
        std::fs::create_dir(d.join("dir.rules")).unwrap();
        std::fs::write(d.join("target"), "").unwrap();
        std::os::unix::fs::symlink(d.join("target"), d.join("c.rules")).unwrap();
        std::os::unix::fs::symlink(d.join("missing"), d.join("dangling.rules")).unwrap();
        let files = rules_in_dir(d).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.rules", "b.rules", "c.rules"]);
    }

    #[test]
    fn missing_directory_has_no_rules() {
        let dir = tempfile::tempdir().unwrap();
        assert!(rules_in_dir(&dir.path().join("nope")).unwrap().is_empty());
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.rules");
        let err = load_policy(std::slice::from_ref(&missing)).unwrap_err();
        assert!(err.to_string().contains("gone.rules"), "{err}");
    }
}
