//! Integration tests: the real server binary, driven over stdio (and
//! Streamable HTTP) by rmcp's client, running the real patched Bash and `codex-execve-wrapper`.
//!
//! Needs `target/dist/vendor/x86_64-unknown-linux-musl/bash` (`cargo xtask
//! bash`, or `CODEX_TEST_BASH`) and `codex-execve-wrapper` beside the server
//! binary (`cargo build --workspace`).

mod cli;
mod decisions;
mod exec_check;
mod http;
mod lifecycle;
mod mcp;
mod mrtr;
mod procs;
mod raw;
mod sandbox;
mod sandbox_state;
mod util;
mod versions;
