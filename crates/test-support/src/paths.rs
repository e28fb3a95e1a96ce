//! Where the binaries under test and the tests' directories are.

use std::path::{Path, PathBuf};

/// The root of the workspace.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The patched Bash: `$CODEX_TEST_BASH`, else the one `cargo xtask bash`
/// puts under `target/dist/vendor`.
pub fn bash() -> PathBuf {
    if let Some(path) = std::env::var_os("CODEX_TEST_BASH") {
        return PathBuf::from(path);
    }
    let path = project_root().join("target/dist/vendor/x86_64-unknown-linux-musl/bash");
    assert!(
        path.is_file(),
        "patched bash missing at {}: run `cargo xtask bash` first",
        path.display()
    );
    path
}

/// `target/<profile>/`, found from the running test executable
/// (`target/<profile>/deps/it-HASH`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable under target/<profile>/deps")
        .to_path_buf()
}

/// A binary of the workspace built in this profile (`cargo build
/// --workspace`), e.g. `codex-exec-mcp-server`.
pub fn built(name: &str) -> PathBuf {
    beside(&profile_dir().join(name), name)
}

/// The binary `name` in the directory of `binary`, which must exist.
pub fn beside(binary: &Path, name: &str) -> PathBuf {
    let path = binary.with_file_name(name);
    assert!(
        path.is_file(),
        "{} missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// `preferred` (made if missing), unless it lies under `/tmp`, a writable
/// root of the default sandbox (CI may clone the checkout there): then
/// `/var/tmp/<fallback>`. Tests put the directories that must be outside
/// every writable root below it.
pub fn outside_tmp(preferred: &Path, fallback: &str) -> PathBuf {
    let base = if preferred.starts_with("/tmp") {
        Path::new("/var/tmp").join(fallback)
    } else {
        preferred.to_path_buf()
    };
    std::fs::create_dir_all(&base)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", base.display()));
    base
}
