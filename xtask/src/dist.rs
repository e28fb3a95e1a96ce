//! `cargo xtask dist`: release artifacts in `target/dist/`.
//!
//! Builds the static musl binaries `codex-exec-mcp-server`,
//! `codex-execve-wrapper` and `codex-sandbox-exec` (release profile: LTO,
//! stripped) and the patched Bash, and assembles
//! `target/dist/vendor/<triple>/{codex-exec-mcp-server,codex-execve-wrapper,
//! codex-sandbox-exec,bash}`. Packaging steps (npm tarball, OCI image) are
//! further entries in [`STEPS`]; each gets the same [`Dist`].

use std::{fs, path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use crate::{
    bash::{self, Flavor, Target},
    util::{self, Args},
};

const USAGE: &str = "cargo xtask dist [--target TRIPLE] [--bash-src DIR|TARBALL] [--only STEP,..]";

/// Binaries shipped beside Bash: (cargo package, binary name).
pub(crate) const BINARIES: &[(&str, &str)] = &[
    ("mcp-server", "codex-exec-mcp-server"),
    ("execve-wrapper", "codex-execve-wrapper"),
    ("sandbox-exec", "codex-sandbox-exec"),
];

/// What the steps share.
pub(crate) struct Dist {
    pub(crate) target: Target,
    /// `target/dist/vendor/<triple>/`.
    pub(crate) vendor: PathBuf,
    pub(crate) bash_src: Option<PathBuf>,
}

pub(crate) struct Step {
    pub(crate) name: &'static str,
    pub(crate) run: fn(&Shell, &Dist) -> Result<()>,
}

/// In order. Packaging steps (npm, oci) go after `bash`.
pub(crate) const STEPS: &[Step] = &[
    Step {
        name: "binaries",
        run: binaries,
    },
    Step {
        name: "bash",
        run: build_bash,
    },
    Step {
        name: "smoke",
        run: crate::cross::dist_smoke,
    },
    Step {
        name: "oci",
        run: crate::oci::dist_step,
    },
    Step {
        name: "npm",
        run: crate::npm::dist_step,
    },
];

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let mut args = Args::new(args, USAGE);
    let triple = args
        .value("--target")?
        .unwrap_or_else(|| bash::DEFAULT_TRIPLE.to_owned());
    let bash_src = args.value("--bash-src")?.map(PathBuf::from);
    let only: Option<Vec<String>> = args
        .value("--only")?
        .map(|list| list.split(',').map(str::to_owned).collect());
    args.finish()?;
    if let Some(unknown) = only
        .iter()
        .flatten()
        .find(|name| !STEPS.iter().any(|s| s.name == name.as_str()))
    {
        anyhow::bail!("unknown dist step {unknown:?}; steps: {}", step_names());
    }
    // Sets up a cross toolchain (Zig) for aarch64 on x86_64.
    let target = crate::cross::target(sh, &triple)?;
    let vendor = util::project_root()
        .join("target/dist/vendor")
        .join(&target.triple);
    let dist = Dist {
        target,
        vendor,
        bash_src,
    };
    for step in STEPS {
        if only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|n| n == step.name))
        {
            continue;
        }
        let t = Instant::now();
        (step.run)(sh, &dist).with_context(|| format!("dist step {:?} failed", step.name))?;
        println!(
            "dist: {} ok in {:.1}s",
            step.name,
            t.elapsed().as_secs_f64()
        );
    }
    println!("dist: {}", dist.vendor.display());
    Ok(())
}

fn step_names() -> String {
    STEPS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// `cargo build --release --target <triple>` of the shipped binaries, copied
/// into the vendor directory after checking they are static.
fn binaries(sh: &Shell, dist: &Dist) -> Result<()> {
    let cargo = util::cargo();
    let triple = &dist.target.triple;
    let packages: Vec<String> = BINARIES
        .iter()
        .flat_map(|(p, _)| ["-p".to_owned(), (*p).to_owned()])
        .collect();
    cmd!(
        sh,
        "{cargo} build --release --target {triple} {packages...} --bins"
    )
    .run()?;
    fs::create_dir_all(&dist.vendor)
        .with_context(|| format!("cannot create {}", dist.vendor.display()))?;
    let release = util::project_root()
        .join("target")
        .join(triple)
        .join("release");
    for (_, bin) in BINARIES {
        let built = release.join(bin);
        bash::check_static(&built)?;
        let dest = dist.vendor.join(bin);
        let tmp = dest.with_extension("tmp");
        fs::copy(&built, &tmp)
            .with_context(|| format!("cannot copy {} to {}", built.display(), tmp.display()))?;
        fs::rename(&tmp, &dest)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))?;
    }
    Ok(())
}

fn build_bash(sh: &Shell, dist: &Dist) -> Result<()> {
    let out = bash::build(
        sh,
        &Flavor::Static(dist.target.clone()),
        dist.bash_src.as_deref(),
    )?;
    debug_assert_eq!(out, dist.vendor.join("bash"));
    Ok(())
}
