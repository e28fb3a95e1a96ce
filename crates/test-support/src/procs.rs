//! The processes a test looks for from outside the sandbox, through
//! `/proc`.

/// A string no other process on the machine has in its command line (put
/// it in a command, e.g. `sleep 30.MARKER`, to find that command's
/// processes).
pub fn marker() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}{:09}{:03}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every pid in `/proc` but ours.
fn other_pids() -> impl Iterator<Item = u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(move |&pid| pid != me)
}

/// Live (not zombie) processes whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    other_pids()
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .filter(|&pid| !gone(pid))
        .collect()
}

/// Processes whose NUL-separated command line starts with `prefix`.
pub fn processes_with(prefix: &[u8]) -> Vec<u32> {
    other_pids()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(prefix))
        })
        .collect()
}

/// Whether `pid` has exited (a zombie waiting for its reaper counts).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Describes the processes in `pids`, for assertion messages.
pub fn ps(pids: &[u32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            format!(
                "{pid}: {} [{}]\n",
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
                stat.trim_end()
            )
        })
        .collect()
}

/// Whether `output` shows a write refused by the sandbox: `EROFS` from the
/// read-only view of the filesystem, or `EACCES` from Landlock where there
/// is no mount namespace.
pub fn refused(output: &str) -> bool {
    output.contains("Read-only file system") || output.contains("Permission denied")
}
