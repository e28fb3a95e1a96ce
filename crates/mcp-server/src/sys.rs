//! The server's one `unsafe` operation: taking a secret out of its own
//! environment.
//!
//! **Invariant:** called from `main` before any other thread exists (no
//! runtime, no tracing, nothing spawned), so nothing else reads or changes
//! the environment meanwhile.

use std::ffi::{CString, OsString};

/// Removes `name` from the environment and returns its value. The value's
/// bytes are overwritten with NULs first: at start they lie in the block the
/// kernel set up at exec, which `/proc/PID/environ` shows for as long as the
/// process lives (unsetting a variable only drops the pointer to it).
pub fn take_secret_env(name: &str) -> Option<OsString> {
    let value = std::env::var_os(name)?;
    let c_name = CString::new(name).ok()?;
    // SAFETY: single-threaded (module invariant): no other thread reads or
    // writes the environment during these calls. `getenv` returns null or
    // a pointer to the NUL-terminated value of a `NAME=value` string of
    // the environment, memory of this process that is writable (the stack
    // block of exec, or a string `setenv` allocated) and stays valid until
    // `remove_var`; `strlen` stops at its NUL, and exactly those bytes are
    // overwritten.
    unsafe {
        let at = libc::getenv(c_name.as_ptr());
        if !at.is_null() {
            std::ptr::write_bytes(at, 0, libc::strlen(at));
        }
        std::env::remove_var(name);
    }
    Some(value)
}
