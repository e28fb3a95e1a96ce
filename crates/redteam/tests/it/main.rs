//! Red-team suite for escalation (issue 6): everything inside the sandbox is
//! hostile and holds the escalation socket. Each case runs the real
//! `codex-exec-mcp-server` with its default workspace-write sandbox
//! (Landlock), starts the `rogue` binary through the `shell` tool (so it
//! runs inside the sandbox and speaks the protocol itself), and then checks
//! that
//! - nothing ran outside the sandbox that the rules did not allow: a marker
//!   file in a directory outside every writable root, which only a process
//!   outside the sandbox could create, does not exist;
//! - the server keeps serving: a following normal `shell` call works;
//! - nothing leaked: the server's fd count and child processes return to
//!   their baseline (a bounded wait, polled).
//!
//! Needs `cargo build --workspace` (the server and wrapper beside this test
//! executable) and the patched Bash (`cargo xtask bash`).

mod boundary;
mod cases;
mod exec_bypass;
mod harness;
mod integrity;
mod procs;
mod review;
