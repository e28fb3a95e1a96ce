//! `cargo xtask bash`: GNU Bash 5.2.15 with `patches/bash-exec-wrapper.patch`,
//! linked fully static against musl, at
//! `target/dist/vendor/<triple>/bash`.
//!
//! The source is taken from, in order:
//! 1. `--bash-src <dir|tarball>` (any bash-5.2.15 tree or tarball);
//! 2. a source already downloaded to `target/xtask/downloads/` by 3 or 4;
//! 3. `apt-get source --download-only bash` (Debian 12 with a `deb-src`
//!    entry, which `cargo xtask setup` adds): Debian's
//!    `bash_5.2.15.orig.tar.gz`, the upstream tree with patches 1–15 applied.
//!    Debian's own changes (`debian/patches`) are deliberately not applied:
//!    we ship upstream Bash plus one patch;
//! 4. GNU's `bash-5.2.tar.gz` and the official patches `bash52-001`..`015`
//!    fetched with curl.
//!
//! Every downloaded file is pinned by sha256. The build lives in
//! `target/xtask/bash/<flavor>/` and is skipped when a stamp there records
//! the same key: a hash of the source identity, the patch bytes, the
//! configure flags and environment, and the target.
//!
//! The same code builds the glibc/debug flavor that `cargo xtask bash-check`
//! runs under valgrind.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::util::{self, Args};

/// The Bash release the patch is written for.
pub(crate) const BASH_VERSION: &str = "5.2.15";
/// Our patch, relative to the project root; applied with `patch -p1`.
pub(crate) const PATCH: &str = "patches/bash-exec-wrapper.patch";
/// The target `cargo xtask bash` builds for when given none.
pub(crate) const DEFAULT_TRIPLE: &str = "x86_64-unknown-linux-musl";

/// Bumped whenever the build recipe changes in a way the key does not see.
const RECIPE: &str = "bash-recipe-1";

/// Debian's upstream tarball of bash 5.2.15 (bookworm, source package
/// `bash` 5.2.15-2); sha256 computed from the file apt-get fetched.
const DEBIAN_ORIG: Pinned = Pinned {
    name: "bash_5.2.15.orig.tar.gz",
    sha256: "7a315bc0e9d90713159e4390ec1096a41e4f33cd8cc3d1a749a8e5ad56600f51",
};

const GNU_URL: &str = "https://ftp.gnu.org/gnu/bash";
/// `bash-5.2.tar.gz`: this sha256 is published by several package managers
/// (Homebrew, Spack). NOT verified here (no access to ftp.gnu.org).
const GNU_TARBALL: Pinned = Pinned {
    name: "bash-5.2.tar.gz",
    sha256: "a139c166df7ff4471c5e0733051642ee5556c1cc8a4a78f145583c5c81ab32fb",
};
/// Official patches 001..015 from `bash-5.2-patches/`, applied with
/// `patch -p0` in order. The sha256 values are those Homebrew's bash formula
/// pins; they were NOT verified by download here.
const GNU_PATCHES: [Pinned; 15] = [
    Pinned {
        name: "bash52-001",
        sha256: "f42f2fee923bc2209f406a1892772121c467f44533bedfe00a176139da5d310a",
    },
    Pinned {
        name: "bash52-002",
        sha256: "45cc5e1b876550eee96f95bffb36c41b6cb7c07d33f671db5634405cd00fd7b8",
    },
    Pinned {
        name: "bash52-003",
        sha256: "6a090cdbd334306fceacd0e4a1b9e0b0678efdbbdedbd1f5842035990c8abaff",
    },
    Pinned {
        name: "bash52-004",
        sha256: "38827724bba908cf5721bd8d4e595d80f02c05c35f3dd7dbc4cd3c5678a42512",
    },
    Pinned {
        name: "bash52-005",
        sha256: "ece0eb544368b3b4359fb8464caa9d89c7a6743c8ed070be1c7d599c3675d357",
    },
    Pinned {
        name: "bash52-006",
        sha256: "d1e0566a257d149a0d99d450ce2885123f9995e9c01d0a5ef6df7044a72a468c",
    },
    Pinned {
        name: "bash52-007",
        sha256: "2500a3fc21cb08133f06648a017cebfa27f30ea19c8cbe8dfefdf16227cfd490",
    },
    Pinned {
        name: "bash52-008",
        sha256: "6b4bd92fd0099d1bab436b941875e99e0cb3c320997587182d6267af1844b1e8",
    },
    Pinned {
        name: "bash52-009",
        sha256: "f95a817882eaeb0cb78bce82859a86bbb297a308ced730ebe449cd504211d3cd",
    },
    Pinned {
        name: "bash52-010",
        sha256: "c7705e029f752507310ecd7270aef437e8043a9959e4d0c6065a82517996c1cd",
    },
    Pinned {
        name: "bash52-011",
        sha256: "831b5f25bf3e88625f3ab315043be7498907c551f86041fa3b914123d79eb6f4",
    },
    Pinned {
        name: "bash52-012",
        sha256: "2fb107ce1fb8e93f36997c8b0b2743fc1ca98a454c7cc5a3fcabec533f67d42c",
    },
    Pinned {
        name: "bash52-013",
        sha256: "094b4fd81bc488a26febba5d799689b64d52a5505b63e8ee854f48d356bc7ce6",
    },
    Pinned {
        name: "bash52-014",
        sha256: "3ef9246f2906ef1e487a0a3f4c647ae1c289cbd8459caa7db5ce118ef136e624",
    },
    Pinned {
        name: "bash52-015",
        sha256: "ef73905169db67399a728e238a9413e0d689462cb9b72ab17a05dba51221358a",
    },
];

const USAGE: &str = "cargo xtask bash [--bash-src DIR|TARBALL] [--target TRIPLE]";

#[derive(Debug, Clone, Copy)]
struct Pinned {
    name: &'static str,
    sha256: &'static str,
}

/// A target Bash is cross- or natively compiled for.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Rust-style triple; also the directory name under `target/dist/vendor/`.
    pub(crate) triple: String,
    /// C compiler producing static musl binaries for `triple`.
    pub(crate) cc: String,
}

impl Target {
    /// The compiler for `triple`: `$CC_<triple with underscores>` if set
    /// (cc-rs' convention), else the known default.
    pub(crate) fn from_triple(triple: &str) -> Result<Target> {
        let default_cc = match triple {
            "x86_64-unknown-linux-musl" => "musl-gcc",
            "aarch64-unknown-linux-musl" => "aarch64-linux-musl-gcc",
            other => bail!(
                "unsupported bash target {other:?} (known: x86_64-unknown-linux-musl, aarch64-unknown-linux-musl)"
            ),
        };
        let var = format!("CC_{}", triple.replace('-', "_"));
        let cc = std::env::var(&var).unwrap_or_else(|_| default_cc.to_owned());
        Ok(Target {
            triple: triple.to_owned(),
            cc,
        })
    }
}

/// What kind of Bash to build.
#[derive(Debug, Clone)]
pub(crate) enum Flavor {
    /// The shipped one: static, musl, stripped.
    Static(Target),
    /// glibc, dynamic, `-O1 -g`: for valgrind in `cargo xtask bash-check`.
    Check,
}

impl Flavor {
    fn dir_name(&self) -> String {
        match self {
            Flavor::Static(t) => t.triple.clone(),
            Flavor::Check => "check-glibc".to_owned(),
        }
    }

    /// (environment, configure arguments).
    fn configure(&self) -> (Vec<(&'static str, String)>, Vec<String>) {
        let mut args: Vec<String> = [
            "--without-bash-malloc", // the libc allocator: valgrind sees every block
            "--disable-nls",
            "--without-curses", // Bash's bundled termcap; no ncurses needed
            // Bash 5.2's configure adds its own strtoimax when the libc has
            // one (inverted test) and the link then sees two definitions.
            "bash_cv_func_strtoimax=no",
        ]
        .map(String::from)
        .to_vec();
        let env = match self {
            Flavor::Static(t) => {
                args.push("--enable-static-link".into());
                // With --host but no --build, configure probes whether it can
                // run test programs and only cross-compiles when it cannot.
                args.push(format!("--host={}", t.triple));
                vec![
                    ("CC", t.cc.clone()),
                    ("CFLAGS", "-Os".into()),
                    ("LDFLAGS", "-s".into()),
                ]
            }
            Flavor::Check => vec![
                ("CC", "gcc".into()),
                ("CFLAGS", "-O1 -g -fno-omit-frame-pointer".into()),
                ("LDFLAGS", String::new()),
            ],
        };
        (env, args)
    }
}

/// Where the source comes from, and its identity for the cache key.
#[derive(Debug)]
enum Source {
    Tarball(PathBuf),
    Dir(PathBuf),
    Gnu {
        tarball: PathBuf,
        patches: Vec<PathBuf>,
    },
}

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let mut args = Args::new(args, USAGE);
    let src = args.value("--bash-src")?.map(PathBuf::from);
    let triple = args
        .value("--target")?
        .unwrap_or_else(|| DEFAULT_TRIPLE.to_owned());
    args.finish()?;
    let target = Target::from_triple(&triple)?;
    let out = build(sh, &Flavor::Static(target), src.as_deref())?;
    println!("{}", out.display());
    Ok(())
}

/// Where the shipped Bash for `triple` ends up.
pub(crate) fn dist_path(triple: &str) -> PathBuf {
    util::project_root()
        .join("target/dist/vendor")
        .join(triple)
        .join("bash")
}

/// Builds `flavor` unless the stamp says the output is current; returns the
/// path of the Bash binary.
pub(crate) fn build(sh: &Shell, flavor: &Flavor, src: Option<&Path>) -> Result<PathBuf> {
    let root = util::project_root();
    let work = root.join("target/xtask/bash").join(flavor.dir_name());
    let out = match flavor {
        Flavor::Static(t) => dist_path(&t.triple),
        Flavor::Check => work.join("bash"),
    };
    let source = resolve_source(sh, src)?;
    let identity = identity(&source)?;
    let patch = fs::read(root.join(PATCH)).with_context(|| format!("cannot read {PATCH}"))?;
    let (env, configure_args) = flavor.configure();
    let key = util::sha256_bytes(
        format!(
            "{RECIPE}\n{identity}\npatch:{}\n{env:?}\n{configure_args:?}\n{}\n",
            util::sha256_bytes(&patch),
            flavor.dir_name()
        )
        .as_bytes(),
    );
    let stamp = work.join("stamp");
    if out.is_file()
        && fs::read_to_string(&stamp).is_ok_and(|s| s.lines().next() == Some(key.as_str()))
    {
        println!(
            "bash: up to date ({}, {})",
            out.display(),
            describe(&source)
        );
        return Ok(out);
    }

    let started = Instant::now();
    println!(
        "bash: building {} from {}",
        flavor.dir_name(),
        describe(&source)
    );
    let tree = work.join("src");
    if tree.exists() {
        fs::remove_dir_all(&tree).with_context(|| format!("cannot remove {}", tree.display()))?;
    }
    let _ = fs::remove_file(&stamp);
    fs::create_dir_all(&tree).with_context(|| format!("cannot create {}", tree.display()))?;
    unpack(sh, &source, &tree)?;
    let patch_path = root.join(PATCH);
    cmd!(
        sh,
        "patch -p1 --forward --batch --quiet -d {tree} -i {patch_path}"
    )
    .run()
    .with_context(|| {
        format!(
            "{PATCH} does not apply to {} (already patched?)",
            describe(&source)
        )
    })?;
    normalize_mtimes(sh, &tree)?;

    let log = work.join("build.log");
    let _ = fs::remove_file(&log);
    let mut configure = Command::new("./configure");
    configure
        .current_dir(&tree)
        .args(&configure_args)
        .envs(env.iter().map(|(k, v)| (k, v)));
    run_logged(configure, &log, "bash configure")?;
    let jobs = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .to_string();
    let mut make = Command::new("make");
    make.current_dir(&tree).arg(format!("-j{jobs}"));
    run_logged(make, &log, "bash make")?;

    let built = tree.join("bash");
    if let Flavor::Static(_) = flavor {
        check_static(&built)?;
    }
    let dir = out.parent().expect("output has a parent");
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = out.with_extension("tmp");
    fs::copy(&built, &tmp)
        .with_context(|| format!("cannot copy {} to {}", built.display(), tmp.display()))?;
    fs::rename(&tmp, &out)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    fs::write(&stamp, format!("{key}\n{identity}\n"))
        .with_context(|| format!("cannot write {}", stamp.display()))?;
    println!(
        "bash: built {} in {:.1}s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

fn downloads() -> PathBuf {
    util::project_root().join("target/xtask/downloads")
}

/// Path of `pinned` in the download cache if present with the right hash.
fn cached(pinned: &Pinned) -> Result<Option<PathBuf>> {
    let path = downloads().join(pinned.name);
    if !path.is_file() {
        return Ok(None);
    }
    let actual = util::sha256_file(&path)?;
    if actual != pinned.sha256 {
        eprintln!(
            "bash: ignoring {} (sha256 {actual}, expected {})",
            path.display(),
            pinned.sha256
        );
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        return Ok(None);
    }
    Ok(Some(path))
}

fn resolve_source(sh: &Shell, explicit: Option<&Path>) -> Result<Source> {
    if let Some(src) = explicit {
        let src = fs::canonicalize(src)
            .with_context(|| format!("--bash-src {} does not exist", src.display()))?;
        return Ok(if src.is_dir() {
            Source::Dir(src)
        } else {
            Source::Tarball(src)
        });
    }
    if let Some(orig) = cached(&DEBIAN_ORIG)? {
        return Ok(Source::Tarball(orig));
    }
    if let Some(gnu) = cached_gnu()? {
        return Ok(gnu);
    }
    let apt_error = match apt_source(sh) {
        Ok(orig) => return Ok(Source::Tarball(orig)),
        Err(e) => e,
    };
    eprintln!("bash: apt-get source failed ({apt_error:#}); trying {GNU_URL}");
    match gnu_download(sh) {
        Ok(gnu) => Ok(gnu),
        Err(gnu_error) => bail!(
            "no bash {BASH_VERSION} source: apt-get source failed ({apt_error:#}) and the GNU download \
             failed ({gnu_error:#}); run `cargo xtask setup` (adds a deb-src entry on Debian) or pass \
             --bash-src DIR|TARBALL"
        ),
    }
}

fn cached_gnu() -> Result<Option<Source>> {
    let Some(tarball) = cached(&GNU_TARBALL)? else {
        return Ok(None);
    };
    let mut patches = Vec::new();
    for p in &GNU_PATCHES {
        let Some(path) = cached(p)? else {
            return Ok(None);
        };
        patches.push(path);
    }
    Ok(Some(Source::Gnu { tarball, patches }))
}

/// `apt-get source --download-only bash`, keeping only the upstream tarball.
fn apt_source(sh: &Shell) -> Result<PathBuf> {
    if !util::on_path("apt-get") {
        bail!("apt-get not found");
    }
    let tmp = downloads().join("apt-tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let guard = sh.push_dir(&tmp);
    // Only the upstream tarball is used, so nothing is unpacked (and
    // dpkg-dev is not needed).
    cmd!(sh, "apt-get source --download-only -q bash")
        .run()
        .context("apt-get source bash")?;
    drop(guard);
    let got = tmp.join(DEBIAN_ORIG.name);
    if !got.is_file() {
        bail!(
            "apt-get source bash gave no {} (another bash version?)",
            DEBIAN_ORIG.name
        );
    }
    let sha = util::sha256_file(&got)?;
    if sha != DEBIAN_ORIG.sha256 {
        bail!(
            "{} from apt has sha256 {sha}, expected {}",
            DEBIAN_ORIG.name,
            DEBIAN_ORIG.sha256
        );
    }
    let dest = downloads().join(DEBIAN_ORIG.name);
    fs::rename(&got, &dest)
        .with_context(|| format!("cannot move {} to {}", got.display(), dest.display()))?;
    fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    Ok(dest)
}

/// GNU's release tarball and official patches, each checked against its pin.
fn gnu_download(sh: &Shell) -> Result<Source> {
    if !util::on_path("curl") {
        bail!("curl not found");
    }
    let fetch = |url: String, pinned: &Pinned| -> Result<PathBuf> {
        if let Some(path) = cached(pinned)? {
            return Ok(path);
        }
        let dest = downloads().join(pinned.name);
        let part = dest.with_extension("part");
        cmd!(
            sh,
            "curl -fsSL --retry 3 --connect-timeout 20 -o {part} {url}"
        )
        .run()
        .with_context(|| format!("cannot download {url}"))?;
        let sha = util::sha256_file(&part)?;
        if sha != pinned.sha256 {
            let _ = fs::remove_file(&part);
            bail!("{url} has sha256 {sha}, expected {}", pinned.sha256);
        }
        fs::rename(&part, &dest).with_context(|| format!("cannot rename {}", part.display()))?;
        Ok(dest)
    };
    fs::create_dir_all(downloads()).context("cannot create target/xtask/downloads")?;
    let tarball = fetch(format!("{GNU_URL}/{}", GNU_TARBALL.name), &GNU_TARBALL)?;
    let patches = GNU_PATCHES
        .iter()
        .map(|p| fetch(format!("{GNU_URL}/bash-5.2-patches/{}", p.name), p))
        .collect::<Result<Vec<_>>>()?;
    Ok(Source::Gnu { tarball, patches })
}

fn identity(source: &Source) -> Result<String> {
    Ok(match source {
        Source::Tarball(p) => format!("tarball:{}", util::sha256_file(p)?),
        Source::Dir(p) => format!("dir:{}", util::sha256_tree(p)?),
        Source::Gnu { tarball, patches } => {
            let mut id = format!("gnu:{}", util::sha256_file(tarball)?);
            for p in patches {
                id.push('+');
                id.push_str(&util::sha256_file(p)?);
            }
            id
        }
    })
}

fn describe(source: &Source) -> String {
    match source {
        Source::Tarball(p) | Source::Dir(p) => p.display().to_string(),
        Source::Gnu { tarball, patches } => {
            format!("{} + {} GNU patches", tarball.display(), patches.len())
        }
    }
}

fn unpack(sh: &Shell, source: &Source, tree: &Path) -> Result<()> {
    match source {
        Source::Tarball(t) => cmd!(sh, "tar -xf {t} -C {tree} --strip-components=1")
            .run()
            .with_context(|| format!("cannot unpack {}", t.display()))?,
        Source::Dir(d) => {
            let from = d.join(".");
            cmd!(sh, "cp -a {from} {tree}")
                .run()
                .with_context(|| format!("cannot copy {}", d.display()))?
        }
        Source::Gnu { tarball, patches } => {
            cmd!(sh, "tar -xf {tarball} -C {tree} --strip-components=1")
                .run()
                .with_context(|| format!("cannot unpack {}", tarball.display()))?;
            for p in patches {
                cmd!(sh, "patch -p0 --forward --batch --quiet -d {tree} -i {p}")
                    .run()
                    .with_context(|| format!("{} does not apply", p.display()))?;
            }
        }
    }
    if !tree.join("execute_cmd.c").is_file() || !tree.join("configure").is_file() {
        bail!(
            "{} is not a bash source tree (no execute_cmd.c or configure)",
            describe(source)
        );
    }
    let patchlevel =
        fs::read_to_string(tree.join("patchlevel.h")).context("cannot read patchlevel.h")?;
    let want = format!(
        "#define PATCHLEVEL {}",
        BASH_VERSION.rsplit('.').next().expect("version has a dot")
    );
    if !patchlevel.contains(&want) {
        bail!(
            "{} is not bash {BASH_VERSION} (patchlevel.h lacks {want:?})",
            describe(source)
        );
    }
    Ok(())
}

/// Gives every file one mtime. Patching (ours, GNU's) makes sources such as
/// parse.y or configure.ac newer than their generated outputs, and make would
/// then want bison or autoconf; equal mtimes mean "up to date".
fn normalize_mtimes(sh: &Shell, tree: &Path) -> Result<()> {
    let placeholder = "{}";
    cmd!(
        sh,
        "find {tree} -exec touch -h -d @1700000000 {placeholder} +"
    )
    .run()
    .context("cannot reset mtimes")?;
    Ok(())
}

/// Runs `cmd` with stdout and stderr appended to `log`; on failure shows the
/// log's tail.
fn run_logged(mut cmd: Command, log: &Path, what: &str) -> Result<()> {
    let file = fs::OpenOptions::new().create(true).append(true).open(log)?;
    cmd.stdout(file.try_clone()?).stderr(file);
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what} ({cmd:?})"))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{what} failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    Ok(())
}

/// Fails unless `path` is an ELF without an interpreter (statically linked).
pub(crate) fn check_static(path: &Path) -> Result<()> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let elf_is_static = || -> Option<bool> {
        if bytes.get(..4)? != b"\x7fELF" || *bytes.get(4)? != 2 || *bytes.get(5)? != 1 {
            return None; // not a little-endian ELF64
        }
        let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
        let phoff = u64::from_le_bytes(bytes.get(0x20..0x28)?.try_into().ok()?) as usize;
        let (phentsize, phnum) = (u16_at(0x36)? as usize, u16_at(0x38)? as usize);
        let has_interp = (0..phnum).any(|i| {
            let o = phoff + i * phentsize;
            bytes
                .get(o..o + 4)
                .map(|t| u32::from_le_bytes(t.try_into().unwrap()))
                == Some(3) // PT_INTERP
        });
        Some(!has_interp)
    };
    match elf_is_static() {
        Some(true) => Ok(()),
        Some(false) => bail!("{} is dynamically linked (has PT_INTERP)", path.display()),
        None => bail!("{} is not a little-endian 64-bit ELF file", path.display()),
    }
}
