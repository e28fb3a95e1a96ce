//! Cross builds for `aarch64-unknown-linux-musl` on an x86_64 machine, and
//! smoke tests of the built artifacts (under qemu-user for foreign ones).
//!
//! The C toolchain is Zig (`pip install ziglang` into a venv under
//! `target/cross/`): `zig cc -target aarch64-linux-musl` compiles Bash and
//! links the Rust binaries. A small wrapper script
//! (`target/cross/aarch64-linux-musl-cc`) fixes the target so it can stand in
//! for `CC` and for cargo's `linker`. Rust is told not to add its own
//! self-contained musl start files (`-C link-self-contained=no`): Zig brings
//! musl's, and both sets would define `_start`.
//!
//! Nothing here runs for the native target, and an explicit
//! `CC_aarch64_unknown_linux_musl` (cc-rs' convention, read by
//! `cargo xtask bash`) or an `aarch64-linux-musl-gcc` on PATH wins over Zig.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{bash::Target, util};

pub(crate) const AARCH64: &str = "aarch64-unknown-linux-musl";

/// The [`Target`] for `triple`, with a cross toolchain set up first when it
/// needs one. Sets cargo's linker and rustflags for the triple on `sh`.
pub(crate) fn target(sh: &Shell, triple: &str) -> Result<Target> {
    let mut target = Target::from_triple(triple)?;
    if triple != AARCH64 || std::env::var_os("CC_aarch64_unknown_linux_musl").is_some() {
        return Ok(target);
    }
    cmd!(sh, "rustup target add {triple}")
        .run()
        .context("rustup target add")?;
    let cc = if util::on_path("aarch64-linux-musl-gcc") {
        target.cc.clone()
    } else {
        zig_cc(sh)?
    };
    sh.set_var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", &cc);
    if !util::on_path("aarch64-linux-musl-gcc") {
        sh.set_var(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
            "-C link-self-contained=no",
        );
    }
    // For any C code built by cc-rs in a build script.
    sh.set_var("CC_aarch64_unknown_linux_musl", &cc);
    target.cc = cc;
    Ok(target)
}

/// Bash 5.2's bundled termcap and readline are pre-C99 code (implicit
/// declarations); GCC 12 warns about it, Zig's clang refuses by default.
const OLD_C: &str = "-Wno-error=implicit-function-declaration -Wno-error=implicit-int -Wno-error=int-conversion \
                     -Wno-error=incompatible-function-pointer-types";

/// Installs Zig into `target/cross/venv` (once) and writes the cc wrapper.
fn zig_cc(sh: &Shell) -> Result<String> {
    let dir = util::project_root().join("target/cross");
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if cmd!(sh, "{python} -m ziglang version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        cmd!(sh, "python3 -m venv {venv}")
            .run()
            .context("creating a venv for ziglang (apt-get install python3-venv)")?;
        let pip = venv.join("bin/pip");
        cmd!(sh, "{pip} install --quiet ziglang")
            .run()
            .context("pip install ziglang")?;
    }
    let zig = find_zig(&venv)?;
    let wrapper = dir.join("aarch64-linux-musl-cc");
    let script = format!(
        "#!/bin/sh\n# Written by cargo xtask (cross.rs).\n\
         # cc-rs adds --target=<rust triple>, which Zig does not parse: drop it.\n\
         for a do shift; case \"$a\" in --target=*) ;; *) set -- \"$@\" \"$a\" ;; esac; done\n\
         exec '{}' cc -target aarch64-linux-musl {OLD_C} \"$@\"\n",
        zig.display()
    );
    write_executable(&wrapper, &script)?;
    Ok(wrapper.to_string_lossy().into_owned())
}

/// The `zig` binary inside the ziglang wheel.
fn find_zig(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for entry in
        std::fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))?
    {
        let zig = entry?.path().join("site-packages/ziglang/zig");
        if zig.is_file() {
            return Ok(zig);
        }
    }
    bail!("no ziglang/zig under {}", lib.display())
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

/// Runs the vendored Bash and server once each: `bash -c 'echo ok'` and
/// `codex-exec-mcp-server --version`, under qemu-user for aarch64 on x86_64.
pub(crate) fn smoke(sh: &Shell, triple: &str, vendor: &Path) -> Result<()> {
    let qemu = if triple == AARCH64 && std::env::consts::ARCH != "aarch64" {
        if !util::on_path("qemu-aarch64-static") && !util::on_path("qemu-aarch64") {
            cmd!(sh, "apt-get install -y -q qemu-user-static")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .run()
                .context("installing qemu-user-static")?;
        }
        Some(if util::on_path("qemu-aarch64-static") {
            "qemu-aarch64-static"
        } else {
            "qemu-aarch64"
        })
    } else {
        None
    };
    let run = |exe: &Path, args: &[&str]| -> Result<String> {
        let cmd = match qemu {
            Some(qemu) => cmd!(sh, "{qemu} {exe} {args...}"),
            None => cmd!(sh, "{exe} {args...}"),
        };
        cmd.read()
            .with_context(|| format!("running {}", exe.display()))
    };
    let bash = vendor.join("bash");
    let out = run(&bash, &["-c", "echo ok"])?;
    if out.trim() != "ok" {
        bail!("{} -c 'echo ok' printed {out:?}", bash.display());
    }
    let server = vendor.join("codex-exec-mcp-server");
    let out = run(&server, &["--version"])?;
    if !out.contains(env!("CARGO_PKG_VERSION")) {
        bail!(
            "{} --version printed {out:?}, expected version {}",
            server.display(),
            env!("CARGO_PKG_VERSION")
        );
    }
    println!("smoke {triple}: bash ok, {}", out.trim());
    Ok(())
}

/// `cargo xtask dist` step: [`smoke`] of the vendor dir just assembled.
pub(crate) fn dist_smoke(sh: &Shell, dist: &crate::dist::Dist) -> Result<()> {
    smoke(sh, &dist.target.triple, &dist.vendor)
}
