//! The servers under test: ours from `target/dist` (under two sandbox
//! policies) and the reference npm package, fetched with `npm pack` and
//! cached under `target/bench/reference/`.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use xshell::{Shell, cmd};

use super::client::{Launch, Server};

pub(crate) const REFERENCE_PACKAGE: &str = "@openai/codex-shell-tool-mcp";
pub(crate) const REFERENCE_VERSION: &str = "0.97.0";
const TRIPLE: &str = "x86_64-unknown-linux-musl";

/// Our server's sandbox policy (`--sandbox`), or the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    OursFull,
    OursWorkspace,
    Reference,
}

impl Kind {
    pub(crate) const ALL: [Kind; 3] = [Kind::OursFull, Kind::OursWorkspace, Kind::Reference];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::OursFull => "ours, danger-full-access",
            Kind::OursWorkspace => "ours, workspace-write",
            Kind::Reference => "reference, danger-full-access",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::OursFull => "ours-full",
            Kind::OursWorkspace => "ours-workspace",
            Kind::Reference => "reference",
        }
    }
}

/// Paths of one implementation's files.
#[derive(Clone, Debug)]
pub(crate) struct Install {
    pub(crate) server: PathBuf,
    pub(crate) wrapper: PathBuf,
    /// Ours only: the sandbox launcher the server finds beside itself.
    pub(crate) sandbox_exec: Option<PathBuf>,
    pub(crate) bash: PathBuf,
    /// The launcher script (the `bin`) of the unpacked npm package.
    pub(crate) launcher: PathBuf,
    pub(crate) npm_tarball: PathBuf,
}

/// Everything the measurements need to start servers.
pub(crate) struct Subjects {
    pub(crate) ours: Install,
    pub(crate) reference: Install,
    pub(crate) oci_tarball: Option<PathBuf>,
    /// `target/bench/`.
    pub(crate) dir: PathBuf,
    /// Working directory of the servers and of every call.
    pub(crate) work: PathBuf,
    /// Set when `--no-build` kept artifacts older than their sources: why.
    pub(crate) stale: Option<String>,
}

impl Subjects {
    /// How to start `kind` directly, with `codex_home` as `CODEX_HOME`.
    pub(crate) fn launch(&self, kind: Kind, codex_home: &Path) -> Launch {
        let argv: Vec<OsString> = match kind {
            Kind::OursFull | Kind::OursWorkspace => {
                let policy = if kind == Kind::OursFull {
                    "danger-full-access"
                } else {
                    "workspace-write"
                };
                vec![
                    self.ours.server.clone().into(),
                    "--execve".into(),
                    self.ours.wrapper.clone().into(),
                    "--bash".into(),
                    self.ours.bash.clone().into(),
                    "--sandbox".into(),
                    policy.into(),
                ]
            }
            Kind::Reference => vec![
                self.reference.server.clone().into(),
                "--execve".into(),
                self.reference.wrapper.clone().into(),
                "--bash".into(),
                self.reference.bash.clone().into(),
            ],
        };
        self.with_env(argv, kind.slug(), codex_home)
    }

    /// How to start an implementation through its npm launcher (`node bin/...`).
    pub(crate) fn launch_npm(&self, reference: bool, codex_home: &Path) -> Launch {
        let (install, slug) = if reference {
            (&self.reference, "reference-npm")
        } else {
            (&self.ours, "ours-npm")
        };
        let argv = vec!["node".into(), install.launcher.clone().into()];
        self.with_env(argv, slug, codex_home)
    }

    fn with_env(&self, argv: Vec<OsString>, slug: &str, codex_home: &Path) -> Launch {
        Launch {
            argv,
            // HOME too: a login shell (`login: true`) would otherwise run
            // this machine's ~/.profile, whose cost has nothing to do with
            // the servers (here it is 400 ms of pyenv set-up).
            env: vec![
                ("CODEX_HOME".to_owned(), codex_home.into()),
                ("HOME".to_owned(), codex_home.into()),
            ],
            cwd: self.work.clone(),
            stderr_log: self.dir.join(format!("logs/{slug}.stderr")),
        }
    }

    /// Starts `kind` with an initialized session, ready for `shell` calls:
    /// the reference gets the sandbox state it needs on Linux.
    pub(crate) fn start(&self, kind: Kind, codex_home: &Path) -> Result<Server> {
        let (server, _) = Server::start(&self.launch(kind, codex_home))?;
        if kind == Kind::Reference {
            server.sandbox_state(json!({"type": "danger-full-access"}), &self.work)?;
        }
        Ok(server)
    }
}

/// Finds (and if needed builds) ours and fetches the reference.
pub(crate) fn prepare(sh: &Shell, root: &Path, build: bool) -> Result<Subjects> {
    let dir = root.join("target/bench");
    let work = dir.join("work");
    for d in [&dir, &work, &dir.join("logs")] {
        fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let vendor = root.join("target/dist/vendor").join(TRIPLE);
    let npm_tarball = crate::npm::tarball_path(root)?;
    // Everything the server looks for beside itself: a snapshot without the
    // sandbox launcher would measure the server's slower fallback.
    let needed = [
        vendor.join("codex-exec-mcp-server"),
        vendor.join("codex-execve-wrapper"),
        vendor.join("codex-sandbox-exec"),
        vendor.join("bash"),
        npm_tarball.clone(),
    ];
    let stale = match (stale_reason(root, &needed)?, build) {
        (None, _) => None,
        (Some(why), true) => {
            println!("bench: {why}; running `cargo xtask dist`");
            crate::dist::run(sh, &[])?;
            None
        }
        (Some(why), false) => {
            println!("bench: warning: {why} (--no-build given, using it as is)");
            Some(why)
        }
    };
    for path in &needed {
        if !path.is_file() {
            bail!("{} is missing: run `cargo xtask dist`", path.display());
        }
    }
    // A snapshot, so that a concurrent `cargo xtask dist` cannot swap or
    // remove files under a running measurement.
    let snapshot = dir.join("ours");
    fs::create_dir_all(&snapshot)
        .with_context(|| format!("cannot create {}", snapshot.display()))?;
    let oci = root.join("target/dist/codex-shell-tool-mcp-oci-amd64.tar");
    let mut copied = Vec::new();
    for path in needed.iter().chain(oci.is_file().then_some(&oci)) {
        let dest = snapshot.join(path.file_name().expect("a file name"));
        fs::copy(path, &dest)
            .with_context(|| format!("cannot copy {} to {}", path.display(), dest.display()))?;
        copied.push(dest);
    }
    let ours_tarball = copied[4].clone();
    let ours_pkg = unpack(sh, &ours_tarball, &dir.join("ours-npm"), true)?;
    let ours = Install {
        server: copied[0].clone(),
        wrapper: copied[1].clone(),
        sandbox_exec: Some(copied[2].clone()),
        bash: copied[3].clone(),
        launcher: launcher(&ours_pkg)?,
        npm_tarball: ours_tarball,
    };
    let reference = fetch_reference(sh, &dir.join("reference"))?;
    Ok(Subjects {
        ours,
        reference,
        oci_tarball: copied.get(5).cloned(),
        dir,
        work,
        stale,
    })
}

/// Why the dist artifacts need rebuilding: missing, or older than what they
/// are built from (the binaries and the npm tarball: the crates' sources,
/// manifests and the npm launcher; Bash: the patch). Tests, examples and fuzz
/// corpora do not count.
fn stale_reason(root: &Path, artifacts: &[PathBuf]) -> Result<Option<String>> {
    for a in artifacts {
        let Ok(meta) = fs::metadata(a) else {
            return Ok(Some(format!("{} is missing", a.display())));
        };
        let built = meta.modified()?;
        let is_bash = a.file_name().is_some_and(|n| n == "bash");
        let sources: &[&str] = if is_bash {
            &["patches"]
        } else {
            &["crates", "npm", "Cargo.lock", "Cargo.toml"]
        };
        let mut newest: Option<(SystemTime, PathBuf)> = None;
        for top in sources {
            newest_file(&root.join(top), &mut newest)?;
        }
        if let Some((t, src)) = newest
            && t > built
        {
            return Ok(Some(format!(
                "{} is older than {}",
                a.display(),
                src.display()
            )));
        }
    }
    Ok(None)
}

fn newest_file(path: &Path, newest: &mut Option<(SystemTime, PathBuf)>) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            [
                "target",
                "node_modules",
                "tests",
                "test",
                "fuzz",
                "examples",
                "benches",
            ]
            .contains(&n)
        }) {
            return Ok(());
        }
        for entry in
            fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            newest_file(&entry?.path(), newest)?;
        }
    } else if meta.is_file() {
        let m = meta.modified()?;
        if newest.as_ref().is_none_or(|(t, _)| m > *t) {
            *newest = Some((m, path.to_path_buf()));
        }
    }
    Ok(())
}

/// Unpacks an npm tarball into `dest` (which gets `package/`); returns
/// `dest/package`. `fresh` removes an earlier unpacking first.
fn unpack(sh: &Shell, tarball: &Path, dest: &Path, fresh: bool) -> Result<PathBuf> {
    let package = dest.join("package");
    if fresh && dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("cannot remove {}", dest.display()))?;
    }
    if !package.join("package.json").is_file() {
        fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
        cmd!(sh, "tar -xzf {tarball} -C {dest}").run()?;
    }
    Ok(package)
}

/// The package's `bin` script.
fn launcher(package: &Path) -> Result<PathBuf> {
    let path = package.join("package.json");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let bin = match &manifest["bin"] {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .values()
            .next()
            .and_then(Value::as_str)
            .context("empty bin map")?
            .to_owned(),
        other => bail!("{}: unexpected bin {other}", path.display()),
    };
    Ok(package.join(bin))
}

fn fetch_reference(sh: &Shell, dir: &Path) -> Result<Install> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tarball = dir.join(format!(
        "openai-codex-shell-tool-mcp-{REFERENCE_VERSION}.tgz"
    ));
    if !tarball.is_file() {
        println!("bench: fetching {REFERENCE_PACKAGE}@{REFERENCE_VERSION} with npm pack");
        let spec = format!("{REFERENCE_PACKAGE}@{REFERENCE_VERSION}");
        cmd!(sh, "npm pack {spec} --pack-destination {dir}")
            .run()
            .context(
                "npm pack of the reference failed (is npm installed and the registry reachable?)",
            )?;
    }
    let package = unpack(sh, &tarball, dir, false)?;
    let vendor = package.join("vendor").join(TRIPLE);
    let bash = vendor.join("bash").join(bash_variant(&vendor.join("bash")));
    let install = Install {
        server: vendor.join("codex-exec-mcp-server"),
        wrapper: vendor.join("codex-execve-wrapper"),
        sandbox_exec: None,
        bash: bash.join("bash"),
        launcher: launcher(&package)?,
        npm_tarball: tarball,
    };
    for p in [
        &install.server,
        &install.wrapper,
        &install.bash,
        &install.launcher,
    ] {
        if !p.is_file() {
            bail!("reference file {} is missing", p.display());
        }
    }
    Ok(install)
}

/// The reference ships one Bash per distribution; pick this machine's the way
/// its launcher does (`/etc/os-release` ID and VERSION_ID), else the first.
fn bash_variant(bash_root: &Path) -> String {
    let os = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    let (id, version) = (field("ID="), field("VERSION_ID="));
    let major = version.split('.').next().unwrap_or_default();
    for candidate in [format!("{id}-{version}"), format!("{id}-{major}")] {
        if bash_root.join(&candidate).join("bash").is_file() {
            return candidate;
        }
    }
    "ubuntu-24.04".to_owned()
}
