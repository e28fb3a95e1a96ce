//! Repository hygiene: every Rust file opens with a `//!` doc, and no debug
//! leftovers (`dbg!`) are checked in.

use std::{
    fs,
    path::{Path, PathBuf},
};

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file outside build output, vendored or generated trees.
fn rust_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in
            fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if !matches!(name, "target" | "node_modules" | ".git") && !name.starts_with('.') {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let root = project_root();
    let mut files = Vec::new();
    for top in ["crates", "xtask", "fuzz"] {
        let dir = root.join(top);
        if dir.is_dir() {
            walk(&dir, &mut files);
        }
    }
    files.sort();
    assert!(
        files.len() > 10,
        "found only {} .rs files under {}",
        files.len(),
        root.display()
    );
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(project_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let offenders: Vec<String> = rust_files()
        .into_iter()
        .filter(|p| !fs::read_to_string(p).unwrap_or_default().starts_with("//!"))
        .map(|p| relative(&p))
        .collect();
    assert!(
        offenders.is_empty(),
        "files not starting with a `//!` doc comment:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn no_dbg_macro() {
    // Built from pieces so this file does not match itself.
    let needle = concat!("dbg", "!(");
    let mut offenders = Vec::new();
    for path in rust_files() {
        let text = fs::read_to_string(&path).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if line.contains(needle) {
                offenders.push(format!("{}:{}: {}", relative(&path), i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "debug macros left in:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn ci_script_runs_xtask_ci() {
    let run = project_root().join(".ci/run");
    let text = fs::read_to_string(&run).expect("read .ci/run");
    assert!(
        text.contains("exec cargo xtask ci"),
        ".ci/run must run `cargo xtask ci`:\n{text}"
    );
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(&run)
            .expect("stat .ci/run")
            .permissions()
            .mode()
    };
    assert!(
        mode & 0o111 != 0,
        ".ci/run is not executable (mode {mode:o})"
    );
}
