//! `codex-sandbox-exec --spec <JSON> -- PROGRAM ARGS...`: the launcher the
//! server places before Bash for every sandboxed call. It confines itself
//! to the spec (see the `sandbox` crate) and execs the program, so Bash and
//! everything it starts run confined.
//!
//! A binary of its own, small and without a runtime, because it starts once
//! per call: re-executing the server (its fallback, `codex-exec-mcp-server
//! sandbox-exec`) costs about half a millisecond more per call.

#![no_main]

/// Its allocations (the spec, the rules, the filters) come from `.bss`
/// instead of musl's `mmap`ed groups: about thirty system calls fewer
/// before the command's exec (see the `arena` crate).
#[global_allocator]
static ALLOCATOR: arena::Arena<{ 1 << 20 }> = arena::Arena::new();

use std::ffi::{CStr, OsStr, OsString, c_char, c_int};
use std::os::unix::ffi::OsStrExt;

// `no_main`: the C runtime calls `main` directly, skipping Rust's runtime
// set-up (an alternate signal stack, a poll of the stdio fds, SIGPIPE set to
// "ignore"), none of which this process needs before it execs.
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let args = (1..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: the C runtime passes `argc` valid NUL-terminated
            // strings in `argv`, and i < argc.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsStr::from_bytes(arg.to_bytes()).to_owned()
        })
        .collect::<Vec<OsString>>();
    c_int::from(sandbox::launcher::main("codex-sandbox-exec", args))
}
