//! `cargo xtask run [-- SERVER-ARGS...]`: the newcomer's one command. Installs
//! what the build needs (`setup`), builds this machine's vendor tree
//! (`dist`), then replaces itself with the server on stdio.
//!
//! The build's chatter goes to stderr, so an MCP client may launch this
//! command directly: stdout carries nothing but the server's MCP.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use crate::{bash, util};

pub(crate) fn run(_sh: &Shell, args: &[String]) -> Result<()> {
    let server_args = match args.split_first() {
        None => &[][..],
        Some((dashes, rest)) if dashes == "--" => rest,
        Some(_) => bail!("usage: cargo xtask run [-- SERVER-ARGS...]"),
    };
    let me = std::env::current_exe().context("cannot find the xtask binary")?;
    for task in [
        &["setup"][..],
        &[
            "dist",
            "--target",
            bash::DEFAULT_TRIPLE,
            "--only",
            "binaries,bash,smoke",
        ],
    ] {
        let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
        let status = Command::new(&me)
            .args(task)
            .current_dir(util::project_root())
            .stdout(Stdio::from(stderr))
            .status()
            .with_context(|| format!("cannot run xtask {}", task[0]))?;
        if !status.success() {
            bail!("cargo xtask {} failed ({status})", task.join(" "));
        }
    }
    let server = util::project_root()
        .join("target/dist/vendor")
        .join(bash::DEFAULT_TRIPLE)
        .join("codex-exec-mcp-server");
    eprintln!("xtask run: starting {} on stdio", server.display());
    let err = Command::new(&server).args(server_args).exec();
    Err(err).with_context(|| format!("cannot start {}", server.display()))
}
