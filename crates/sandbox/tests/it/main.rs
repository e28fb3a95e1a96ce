//! Integration tests of the sandbox against the real kernel. Every sandbox
//! case runs in a fresh `sandbox-probe` process (see `util`); policy parsing
//! and resolution run in-process.

mod fs;
mod network;
mod policy;
mod profile;
mod subpaths;
mod util;
