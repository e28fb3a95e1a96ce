//! `codex-exec-mcp-server` as a library: configuration, rules discovery, the
//! per-exec decider, the MCP server, and the `check` and `sandbox-exec`
//! subcommands. The binary (`main.rs`) only dispatches.

pub mod check;
pub mod config;
pub mod decider;
pub mod doctor;
pub mod errors;
pub mod http;
pub mod launcher;
pub mod mrtr;
pub mod procs;
pub mod rules;
pub mod sandbox_exec;
pub mod sandbox_state;
pub mod server;
pub mod sys;
