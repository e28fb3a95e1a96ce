//! Tests only: the plumbing every integration-test harness of the
//! workspace shares to drive the built binaries, once.
//!
//! - [`paths`]: the patched Bash, the built binaries, scratch directories
//!   outside every writable root of the default sandbox;
//! - [`report`]: what a failing test prints (the command, its cwd, status,
//!   stdout and stderr, as ripgrep's `TestCommand` does);
//! - [`wire`]: raw JSON-RPC messages and the bodies of Streamable HTTP
//!   answers (std and `serde_json` only, for `xtask`'s bench clients too);
//! - [`procs`]: the processes a test looks for from outside the sandbox;
//! - with the `client` feature, [`client`] (rmcp's client with scripted
//!   elicitation answers), [`mcp`] (a server spawned on stdio, `shell`
//!   calls and their results) and [`http`] (raw HTTP to `/mcp`).
//!
//! The harnesses (`crates/mcp-server/tests/it/util.rs`,
//! `crates/redteam/tests/it/harness.rs`) keep their own builders and
//! re-export what their cases use from here.

pub mod paths;
pub mod procs;
pub mod report;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod http;
#[cfg(feature = "client")]
pub mod mcp;
