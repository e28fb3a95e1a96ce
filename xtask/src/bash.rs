//! `cargo xtask bash`: GNU Bash with `patches/bash-exec-wrapper.patch`,
//! linked fully static against musl.
//!
//! Two release lines ([`RELEASES`]): 5.3 (patch level 15), the one we ship
//! ([`SHIPPED`], built into `target/dist/vendor/<triple>/bash`), and 5.2
//! (5.2.37, the last 5.2; `--version 5.2`, built into
//! `target/xtask/bash/<triple>-5.2/bash`). One patch fits both lines; each
//! [`Release`] names the patch it takes, so the day the lines need two
//! patches only that field changes.
//!
//! The source is taken from, in order:
//! 1. `--bash-src <dir|tarball>` (any tree of the selected line, any patch
//!    level);
//! 2. a source already downloaded to `target/xtask/downloads/` by 3 or 4;
//! 3. Debian's source package through `apt-get source --download-only`
//!    (a `deb-src` entry for the release's suite, which `cargo xtask setup`
//!    adds: forky for 5.3, trixie for 5.2.37). The upstream tarball
//!    (`bash_<v>.orig.tar.xz`) is used, plus, for 5.3, the official upstream
//!    patches `bash53-001`..`015` that Debian carries (re-based to `-p1`) in
//!    `debian/patches/`. Debian's own changes are deliberately not applied:
//!    we ship upstream Bash plus one patch. The Debian revision is not
//!    pinned (whatever revision of that upstream version the suite has);
//!    the files we use are;
//! 4. GNU's release tarball and official patches, fetched with curl.
//!
//! Every downloaded file is pinned by sha256. The build lives in
//! `target/xtask/bash/<flavor>-<line>[-unpatched]/` and is skipped when a
//! stamp there records the same key: a hash of the source identity, the
//! patch bytes, the configure flags and environment, and the target. The
//! build tree stays in `src/` there: `cargo xtask bash-suite` runs Bash's own
//! test suite from it.
//!
//! The same code builds the glibc/debug flavor that `cargo xtask bash-check`
//! runs under valgrind, and the unpatched builds the test suite compares
//! against.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::util::{self, Args};

/// Our patch, relative to the project root; applied with `patch -p1`.
pub(crate) const PATCH: &str = "patches/bash-exec-wrapper.patch";
/// The target `cargo xtask bash` builds for when given none.
pub(crate) const DEFAULT_TRIPLE: &str = "x86_64-unknown-linux-musl";

/// Bumped whenever the build recipe changes in a way the key does not see.
const RECIPE: &str = "bash-recipe-2";

/// A Bash release line we build, with its pinned sources.
#[derive(Debug)]
pub(crate) struct Release {
    /// `5.3`: what `--version` selects (and `nix/bash.nix` keys on).
    pub(crate) line: &'static str,
    /// The patch level the pinned sources give.
    pub(crate) patchlevel: u32,
    /// Our patch for this line, relative to the project root.
    pub(crate) patch: &'static str,
    pub(crate) debian: Debian,
    gnu: Gnu,
}

/// Debian's source package of a release.
#[derive(Debug)]
pub(crate) struct Debian {
    /// The Debian suite whose `deb-src` entry carries it (`cargo xtask setup`
    /// adds the entries).
    pub(crate) suite: &'static str,
    /// The upstream part of the Debian version (`5.3` of `5.3-4`).
    upstream: &'static str,
    /// `bash_<upstream>.orig.tar.xz`; sha256 computed from the file apt-get
    /// fetched.
    pub(crate) orig: Pinned,
    /// Official upstream patches from `debian/patches/`, applied in order
    /// with `-p1`; sha256 computed from the files in Debian's
    /// `bash_5.3-4.debian.tar.xz`.
    patches: &'static [Pinned],
}

/// GNU's release tarball and official patches (`-p0`). The sha256 values
/// are the ones other distributions pin; NONE was verified here, because
/// this project's CI has no access to ftp.gnu.org. It is the source of last
/// resort, for machines without Debian's source packages.
#[derive(Debug)]
struct Gnu {
    tarball: Pinned,
    /// The directory under [`GNU_URL`] holding `patches`.
    patch_dir: &'static str,
    patches: &'static [Pinned],
}

/// A file known by name and sha256.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pinned {
    pub(crate) name: &'static str,
    pub(crate) sha256: &'static str,
    /// A second accepted sha256, where one name has had two published
    /// contents.
    also: Option<&'static str>,
}

const fn pin(name: &'static str, sha256: &'static str) -> Pinned {
    Pinned {
        name,
        sha256,
        also: None,
    }
}

impl Pinned {
    fn accepts(&self, sha256: &str) -> bool {
        sha256 == self.sha256 || self.also == Some(sha256)
    }
}

const GNU_URL: &str = "https://ftp.gnu.org/gnu/bash";

pub(crate) const BASH_53: Release = Release {
    line: "5.3",
    patchlevel: 15,
    patch: PATCH,
    debian: Debian {
        suite: "forky",
        upstream: "5.3",
        orig: pin(
            "bash_5.3.orig.tar.xz",
            "a70de6bb41f5e192534a5a1836b1d7fad9a8d4818a6e1506d70f38441552c17a",
        ),
        patches: &[
            pin(
                "bash53-001.diff",
                "6b20f4c023bfcd1431ceb9fb52492e76f349b8a3a71ba35e689d7438e4a8f9d8",
            ),
            pin(
                "bash53-002.diff",
                "7e197bc371fdb2fb5e1de8b27ed09816de475b6492c8c19176a351ceca1d781a",
            ),
            pin(
                "bash53-003.diff",
                "b9acc49bb772adbd5d0d53743cd5039a676463ee5d5b567fde0dc56393a60b85",
            ),
            pin(
                "bash53-004.diff",
                "6f57b8a37c167cf07d84ec4ceb3b4f17ec022993934b6dae948f86c2269d70d3",
            ),
            pin(
                "bash53-005.diff",
                "21f43c88cfcb9bffd094bed40b1a7ea4d8b517ef19b0b4bcd7fb1d143f43839c",
            ),
            pin(
                "bash53-006.diff",
                "64d2ca8dda60564bd0505a851cac166b838fc574e92f7d2fe4f2ab448aff7bc5",
            ),
            pin(
                "bash53-007.diff",
                "89648f56406601a448ee977ff75c83f56a17055722b83bb9a28280306ab39453",
            ),
            pin(
                "bash53-008.diff",
                "a8d99464c359dffa3c6bb1a70452207c7a0928c62544b7f3d6af52d2180f8745",
            ),
            pin(
                "bash53-009.diff",
                "eafa8cd5f93e22a177cd34eba3faad05b207804eba0f72a5d9a01a045d45a3e9",
            ),
            pin(
                "bash53-010.diff",
                "41e41ffc10605cffda38fd84158c6a1aad0c674469c25ca1f6e13fb34e4a5871",
            ),
            pin(
                "bash53-011.diff",
                "c8b870aa2d48994740de4c2b5c61c776456de5d7b3bda3b71d2cc2f083b870a4",
            ),
            pin(
                "bash53-012.diff",
                "ae5249877fda494170be1c5a60f0838593dd9ce7438e215286217d8388f400f1",
            ),
            pin(
                "bash53-013.diff",
                "6d9b4f18c56b8cccc450c3ba4dac6c49c1828bae32ecd2249f10ea7a638840df",
            ),
            pin(
                "bash53-014.diff",
                "0b7ed23da251ba5a59cd9a00995630ce6594c890949f316abd7b972a48d255a1",
            ),
            pin(
                "bash53-015.diff",
                "345b3ba6f57acf9a976185809198d88e030a8c4bcbd90ee855e873bfd8d1423f",
            ),
        ],
    },
    gnu: Gnu {
        // Two contents of bash-5.3.tar.gz are pinned by distributions:
        // 0d5cd869… (FreeBSD ports, Arch's 5.3-2, later packages) and
        // 62dd49c4… (Homebrew, Termux, Yocto, Arch's 5.3-1). Neither could be
        // checked against ftp.gnu.org from here; both are accepted.
        tarball: Pinned {
            name: "bash-5.3.tar.gz",
            sha256: "0d5cd86965f869a26cf64f4b71be7b96f90a3ba8b3d74e27e8e9d9d5550f31ba",
            also: Some("62dd49c44c399ed1b3f7f731e87a782334d834f08e098a35f2c87547d5dbb269"),
        },
        patch_dir: "bash-5.3-patches",
        // As two independent build recipes pin them (not verified here).
        patches: &[
            pin(
                "bash53-001",
                "1f608434364af86b9b45c8b0ea3fb3b165fb830d27697e6cdfc7ac17dee3287f",
            ),
            pin(
                "bash53-002",
                "e385548a00130765ec7938a56fbdca52447ab41fabc95a25f19ade527e282001",
            ),
            pin(
                "bash53-003",
                "f245d9c7dc3f5a20d84b53d249334747940936f09dc97e1dcb89fc3ab37d60ed",
            ),
            pin(
                "bash53-004",
                "9591d245045529f32f0812f94180b9d9ce9023f5a765c039b852e5dfc99747d0",
            ),
            pin(
                "bash53-005",
                "cca1ef52dbbf433bc98e33269b64b2c814028efe2538be1e2c9a377da90bc99d",
            ),
            pin(
                "bash53-006",
                "29119addefed8eff91ae37fd51822c31780ee30d4a28376e96002706c995ff10",
            ),
            pin(
                "bash53-007",
                "c0976bbfffa1453c7cfdd62058f206a318568ff2d690f5d4fa048793fa3eb299",
            ),
            pin(
                "bash53-008",
                "097cd723cbfb8907674ac32214063a3fd85282657ec5b4e544d2c0f719653fb4",
            ),
            pin(
                "bash53-009",
                "eee30fe78a4b0cb2fe20e010e00308899cfc613e0774ebb3c8557a1552f24f8c",
            ),
            pin(
                "bash53-010",
                "cf76f1cce2ea300c18bff9f002d21f280cc931acd17c28518110b93fe6e72569",
            ),
            pin(
                "bash53-011",
                "0298df8f5ea2a31d3be43ed7d269c5b3c7c342dd5b570bea7f64d66dcbbe7531",
            ),
            pin(
                "bash53-012",
                "d71379b39bebaedaf123414414e77fb458a0a43b9ad3116594c6df7ca6754573",
            ),
            pin(
                "bash53-013",
                "042f9cda967e24bf4211944697441e93d06ff42b4b998629a98a1b249279f200",
            ),
            pin(
                "bash53-014",
                "bd4360b401d38507e358783dcad8536a99c6789f0d3a5bd0cfb8c4a34144696c",
            ),
            pin(
                "bash53-015",
                "55b79ceee2fc27f6767eed697e939a7eb2fe2a28c01556bd75f18d581014f46e",
            ),
        ],
    },
};

pub(crate) const BASH_52: Release = Release {
    line: "5.2",
    patchlevel: 37,
    patch: PATCH,
    debian: Debian {
        suite: "trixie",
        upstream: "5.2.37",
        orig: pin(
            "bash_5.2.37.orig.tar.xz",
            "370704c9c859f4060b7df19055e43bb9b5fa09d887699cf6ba87885c5485d36a",
        ),
        // The orig tarball already has patches 1–37.
        patches: &[],
    },
    gnu: Gnu {
        // GNU's tarball with patches 1–37 applied, as two independent build
        // recipes pin it (not verified here).
        tarball: pin(
            "bash-5.2.37.tar.gz",
            "9599b22ecd1d5787ad7d3b7bf0c59f312b3396d1e281175dd1f8a4014da621ff",
        ),
        patch_dir: "bash-5.2-patches",
        patches: &[],
    },
};

/// Every line we build, newest first.
pub(crate) const RELEASES: &[&Release] = &[&BASH_53, &BASH_52];
/// The one in `target/dist`, the npm package, the OCI image.
pub(crate) const SHIPPED: &Release = &BASH_53;

impl Release {
    /// `5.3.15`.
    pub(crate) fn version(&self) -> String {
        format!("{}.{}", self.line, self.patchlevel)
    }
}

/// The release whose line is `line` (`5.3`, `5.2`; `5.2.37` also works).
pub(crate) fn release(line: &str) -> Result<&'static Release> {
    RELEASES
        .iter()
        .copied()
        .find(|r| line == r.line || line == r.version())
        .with_context(|| {
            let known: Vec<String> = RELEASES.iter().map(|r| r.version()).collect();
            format!("no bash release {line:?} (known: {})", known.join(", "))
        })
}

const USAGE: &str =
    "cargo xtask bash [--version 5.3|5.2] [--bash-src DIR|TARBALL] [--target TRIPLE]";

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

/// One build: which release, which flavor, with or without our patch.
#[derive(Debug, Clone)]
pub(crate) struct Spec<'a> {
    pub(crate) release: &'static Release,
    pub(crate) flavor: Flavor,
    /// Without it, the same tree unpatched (the test suite's reference).
    pub(crate) patched: bool,
    /// `--bash-src`.
    pub(crate) src: Option<&'a Path>,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    /// The Bash binary.
    pub(crate) bash: PathBuf,
    /// The configured and built source tree (Bash's `tests/` are in it).
    pub(crate) tree: PathBuf,
}

/// Where the source comes from, and its identity for the cache key.
#[derive(Debug)]
enum Source {
    Tarball(PathBuf),
    Dir(PathBuf),
    /// A release tarball and patches applied in order with `patch -p<strip>`.
    Patched {
        tarball: PathBuf,
        patches: Vec<PathBuf>,
        strip: u8,
    },
}

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let mut args = Args::new(args, USAGE);
    let release = match args.value("--version")? {
        Some(v) => release(&v)?,
        None => SHIPPED,
    };
    let src = args.value("--bash-src")?.map(PathBuf::from);
    let triple = args
        .value("--target")?
        .unwrap_or_else(|| DEFAULT_TRIPLE.to_owned());
    args.finish()?;
    let target = Target::from_triple(&triple)?;
    let built = build_spec(
        sh,
        &Spec {
            release,
            flavor: Flavor::Static(target),
            patched: true,
            src: src.as_deref(),
        },
    )?;
    println!("{}", built.bash.display());
    Ok(())
}

/// Where the shipped Bash for `triple` ends up.
pub(crate) fn dist_path(triple: &str) -> PathBuf {
    util::project_root()
        .join("target/dist/vendor")
        .join(triple)
        .join("bash")
}

/// Builds the shipped release, patched, as `flavor` (see [`build_spec`]);
/// returns the path of the Bash binary.
pub(crate) fn build(sh: &Shell, flavor: &Flavor, src: Option<&Path>) -> Result<PathBuf> {
    build_spec(
        sh,
        &Spec {
            release: SHIPPED,
            flavor: flavor.clone(),
            patched: true,
            src,
        },
    )
    .map(|b| b.bash)
}

/// Builds `spec` unless the stamp says the output is current. The shipped
/// release's patched static build goes to [`dist_path`], every other one
/// stays in its work directory.
pub(crate) fn build_spec(sh: &Shell, spec: &Spec) -> Result<Built> {
    let root = util::project_root();
    let release = spec.release;
    let flavor = &spec.flavor;
    let name = format!(
        "{}-{}{}",
        flavor.dir_name(),
        release.line,
        if spec.patched { "" } else { "-unpatched" }
    );
    let work = root.join("target/xtask/bash").join(&name);
    let tree = work.join("src");
    let out = match flavor {
        Flavor::Static(t) if spec.patched && release.line == SHIPPED.line => dist_path(&t.triple),
        _ => work.join("bash"),
    };
    let source = resolve_source(sh, release, spec.src)?;
    let identity = identity(&source)?;
    let patch = if spec.patched {
        let bytes = fs::read(root.join(release.patch))
            .with_context(|| format!("cannot read {}", release.patch))?;
        util::sha256_bytes(&bytes)
    } else {
        "none".to_owned()
    };
    let (env, configure_args) = flavor.configure();
    let key = util::sha256_bytes(
        format!("{RECIPE}\n{identity}\npatch:{patch}\n{env:?}\n{configure_args:?}\n{name}\n")
            .as_bytes(),
    );
    let stamp = work.join("stamp");
    if out.is_file()
        && tree.join("Makefile").is_file()
        && fs::read_to_string(&stamp).is_ok_and(|s| s.lines().next() == Some(key.as_str()))
    {
        println!(
            "bash: {name} up to date ({}, {})",
            out.display(),
            describe(&source)
        );
        return Ok(Built { bash: out, tree });
    }

    let started = Instant::now();
    println!("bash: building {name} from {}", describe(&source));
    if tree.exists() {
        fs::remove_dir_all(&tree).with_context(|| format!("cannot remove {}", tree.display()))?;
    }
    let _ = fs::remove_file(&stamp);
    fs::create_dir_all(&tree).with_context(|| format!("cannot create {}", tree.display()))?;
    unpack(sh, &source, &tree)?;
    check_version(release, &source, &tree)?;
    if spec.patched {
        let patch_path = root.join(release.patch);
        cmd!(
            sh,
            "patch -p1 --forward --batch --quiet --fuzz=0 -d {tree} -i {patch_path}"
        )
        .run()
        .with_context(|| {
            format!(
                "{} does not apply to {} (already patched?)",
                release.patch,
                describe(&source)
            )
        })?;
    }
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
    Ok(Built { bash: out, tree })
}

pub(crate) fn downloads() -> PathBuf {
    util::project_root().join("target/xtask/downloads")
}

/// Path of `pinned` in the download cache if present with the right hash.
fn cached(pinned: &Pinned) -> Result<Option<PathBuf>> {
    let path = downloads().join(pinned.name);
    if !path.is_file() {
        return Ok(None);
    }
    let actual = util::sha256_file(&path)?;
    if !pinned.accepts(&actual) {
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

/// All of `pins` from the cache, or `None` if one is missing.
fn cached_all(pins: &[Pinned]) -> Result<Option<Vec<PathBuf>>> {
    let mut paths = Vec::new();
    for p in pins {
        let Some(path) = cached(p)? else {
            return Ok(None);
        };
        paths.push(path);
    }
    Ok(Some(paths))
}

fn resolve_source(sh: &Shell, release: &Release, explicit: Option<&Path>) -> Result<Source> {
    if let Some(src) = explicit {
        let src = fs::canonicalize(src)
            .with_context(|| format!("--bash-src {} does not exist", src.display()))?;
        return Ok(if src.is_dir() {
            Source::Dir(src)
        } else {
            Source::Tarball(src)
        });
    }
    let deb = &release.debian;
    if let (Some(orig), Some(patches)) = (cached(&deb.orig)?, cached_all(deb.patches)?) {
        return Ok(Source::Patched {
            tarball: orig,
            patches,
            strip: 1,
        });
    }
    let gnu = &release.gnu;
    if let (Some(tarball), Some(patches)) = (cached(&gnu.tarball)?, cached_all(gnu.patches)?) {
        return Ok(Source::Patched {
            tarball,
            patches,
            strip: 0,
        });
    }
    let apt_error = match apt_source(sh, deb) {
        Ok(source) => return Ok(source),
        Err(e) => e,
    };
    eprintln!("bash: apt-get source failed ({apt_error:#}); trying {GNU_URL}");
    match gnu_download(sh, gnu) {
        Ok(source) => Ok(source),
        Err(gnu_error) => bail!(
            "no bash {} source: apt-get source failed ({apt_error:#}) and the GNU download \
             failed ({gnu_error:#}); run `cargo xtask setup` (adds deb-src entries on Debian) or \
             pass --bash-src DIR|TARBALL",
            release.version()
        ),
    }
}

/// The upstream part of a Debian version: `5.3` of `5.3-4`, `5.2.37` of
/// `1:5.2.37-2+deb13u1`.
fn debian_upstream(version: &str) -> &str {
    let no_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    no_epoch.rsplit_once('-').map_or(no_epoch, |(v, _)| v)
}

/// The newest version of source package `bash` apt knows whose upstream
/// part is `deb.upstream`, and every version it knows.
fn apt_versions(sh: &Shell, deb: &Debian) -> (Option<String>, Vec<String>) {
    let showsrc = cmd!(sh, "apt-cache showsrc bash")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    let versions: Vec<String> = showsrc
        .lines()
        .filter_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().to_owned())
        .collect();
    // Any Debian revision will do: the files taken from it are pinned.
    let found = versions
        .iter()
        .find(|v| debian_upstream(v) == deb.upstream)
        .cloned();
    (found, versions)
}

/// Whether apt's source indices offer `release` (`cargo xtask setup` runs
/// `apt-get update` when they do not).
pub(crate) fn apt_offers(sh: &Shell, release: &Release) -> bool {
    apt_versions(sh, &release.debian).0.is_some()
}

/// `apt-get source --download-only bash=<version>` for the newest version
/// apt knows whose upstream part is `deb.upstream`; keeps the orig tarball
/// and the pinned patches from `debian/patches/`.
fn apt_source(sh: &Shell, deb: &Debian) -> Result<Source> {
    if !util::on_path("apt-get") {
        bail!("apt-get not found");
    }
    let (version, versions) = apt_versions(sh, deb);
    let Some(version) = version else {
        bail!(
            "no deb-src entry offers bash {} (apt knows {}); `cargo xtask setup` adds one for {}",
            deb.upstream,
            if versions.is_empty() {
                "none".to_owned()
            } else {
                versions.join(", ")
            },
            deb.suite
        );
    };
    let version = version.as_str();
    let tmp = downloads().join("apt-tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let guard = sh.push_dir(&tmp);
    // Only the upstream tarball and single files of the Debian tarball are
    // used, so nothing is unpacked by apt (and dpkg-dev is not needed).
    let wanted = format!("bash={version}");
    cmd!(sh, "apt-get source --download-only -q {wanted}")
        .run()
        .with_context(|| format!("apt-get source {wanted}"))?;
    drop(guard);
    let check = |path: &Path, pinned: &Pinned| -> Result<()> {
        if !path.is_file() {
            bail!("apt-get source {wanted} gave no {}", pinned.name);
        }
        let sha = util::sha256_file(path)?;
        if !pinned.accepts(&sha) {
            bail!(
                "{} from apt ({wanted}) has sha256 {sha}, expected {}",
                pinned.name,
                pinned.sha256
            );
        }
        Ok(())
    };
    let orig = tmp.join(deb.orig.name);
    check(&orig, &deb.orig)?;
    let mut found = vec![(orig, deb.orig.name)];
    if !deb.patches.is_empty() {
        let no_epoch = version.split_once(':').map_or(version, |(_, v)| v);
        let debian_tar = tmp.join(format!("bash_{no_epoch}.debian.tar.xz"));
        let members: Vec<String> = deb
            .patches
            .iter()
            .map(|p| format!("debian/patches/{}", p.name))
            .collect();
        cmd!(sh, "tar -xf {debian_tar} -C {tmp} {members...}")
            .run()
            .with_context(|| {
                format!(
                    "{} lacks the upstream patches {}..{}",
                    debian_tar.display(),
                    deb.patches[0].name,
                    deb.patches[deb.patches.len() - 1].name
                )
            })?;
        for p in deb.patches {
            let path = tmp.join("debian/patches").join(p.name);
            check(&path, p)?;
            found.push((path, p.name));
        }
    }
    let mut patches = Vec::new();
    let mut tarball = PathBuf::new();
    for (i, (path, name)) in found.into_iter().enumerate() {
        let dest = downloads().join(name);
        fs::rename(&path, &dest)
            .with_context(|| format!("cannot move {} to {}", path.display(), dest.display()))?;
        if i == 0 {
            tarball = dest;
        } else {
            patches.push(dest);
        }
    }
    fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    Ok(Source::Patched {
        tarball,
        patches,
        strip: 1,
    })
}

/// GNU's release tarball and official patches, each checked against its pin.
fn gnu_download(sh: &Shell, gnu: &Gnu) -> Result<Source> {
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
        if !pinned.accepts(&sha) {
            let _ = fs::remove_file(&part);
            bail!("{url} has sha256 {sha}, expected {}", pinned.sha256);
        }
        fs::rename(&part, &dest).with_context(|| format!("cannot rename {}", part.display()))?;
        Ok(dest)
    };
    fs::create_dir_all(downloads()).context("cannot create target/xtask/downloads")?;
    let tarball = fetch(format!("{GNU_URL}/{}", gnu.tarball.name), &gnu.tarball)?;
    let patches = gnu
        .patches
        .iter()
        .map(|p| fetch(format!("{GNU_URL}/{}/{}", gnu.patch_dir, p.name), p))
        .collect::<Result<Vec<_>>>()?;
    Ok(Source::Patched {
        tarball,
        patches,
        strip: 0,
    })
}

fn identity(source: &Source) -> Result<String> {
    Ok(match source {
        Source::Tarball(p) => format!("tarball:{}", util::sha256_file(p)?),
        Source::Dir(p) => format!("dir:{}", util::sha256_tree(p)?),
        Source::Patched {
            tarball,
            patches,
            strip,
        } => {
            let mut id = format!("patched-p{strip}:{}", util::sha256_file(tarball)?);
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
        Source::Patched {
            tarball, patches, ..
        } if patches.is_empty() => tarball.display().to_string(),
        Source::Patched {
            tarball, patches, ..
        } => format!("{} + {} upstream patches", tarball.display(), patches.len()),
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
        Source::Patched {
            tarball,
            patches,
            strip,
        } => {
            cmd!(sh, "tar -xf {tarball} -C {tree} --strip-components=1")
                .run()
                .with_context(|| format!("cannot unpack {}", tarball.display()))?;
            let strip = format!("-p{strip}");
            for p in patches {
                cmd!(
                    sh,
                    "patch {strip} --forward --batch --quiet -d {tree} -i {p}"
                )
                .quiet()
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
    Ok(())
}

/// Applies `patch` (relative to the project root) with `--dry-run
/// --fuzz=0` to the pinned source of `release`, unpacked into a scratch
/// directory; returns what the source was, for messages.
pub(crate) fn check_patch_applies(sh: &Shell, release: &Release, patch: &str) -> Result<String> {
    let source = resolve_source(sh, release, None)?;
    let scratch = util::project_root()
        .join("target/xtask/bash/patch-check")
        .join(release.line);
    if scratch.exists() {
        fs::remove_dir_all(&scratch)
            .with_context(|| format!("cannot remove {}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    unpack(sh, &source, &scratch)?;
    check_version(release, &source, &scratch)?;
    let patch_path = util::project_root().join(patch);
    cmd!(
        sh,
        "patch -p1 --dry-run --forward --batch --fuzz=0 -d {scratch} -i {patch_path}"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .with_context(|| format!("{patch} does not apply to {}", describe(&source)))?;
    fs::remove_dir_all(&scratch).with_context(|| format!("cannot remove {}", scratch.display()))?;
    Ok(format!(
        "bash {} ({})",
        release.version(),
        describe(&source)
    ))
}

/// The (line, patch level) of the Bash tree at `tree`: `PACKAGE_VERSION` in
/// `configure` (`5.3-release`) and `PATCHLEVEL` in `patchlevel.h`.
pub(crate) fn tree_version(tree: &Path) -> Result<(String, u32)> {
    let configure = fs::read_to_string(tree.join("configure"))
        .with_context(|| format!("cannot read {}/configure", tree.display()))?;
    let line = configure
        .lines()
        .find_map(|l| l.strip_prefix("PACKAGE_VERSION='"))
        .and_then(|v| v.split(['-', '\'']).next())
        .with_context(|| format!("{}/configure has no PACKAGE_VERSION", tree.display()))?;
    let patchlevel_h = fs::read_to_string(tree.join("patchlevel.h"))
        .with_context(|| format!("cannot read {}/patchlevel.h", tree.display()))?;
    let patchlevel = patchlevel_h
        .lines()
        .find_map(|l| l.strip_prefix("#define PATCHLEVEL "))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("{}/patchlevel.h has no PATCHLEVEL", tree.display()))?;
    Ok((line.to_owned(), patchlevel))
}

/// A pinned source must be exactly the release; `--bash-src` any patch
/// level of its line.
fn check_version(release: &Release, source: &Source, tree: &Path) -> Result<()> {
    let (line, patchlevel) = tree_version(tree)?;
    let exact = matches!(source, Source::Patched { .. });
    if line != release.line || (exact && patchlevel != release.patchlevel) {
        let want = if exact {
            release.version()
        } else {
            format!("{}.x", release.line)
        };
        bail!(
            "{} is bash {line}.{patchlevel}, expected {want}{}",
            describe(source),
            if line != release.line {
                format!(" (for another line pass --version {line})")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Gives every file one mtime. Patching (ours, upstream's) makes sources such
/// as parse.y or configure.ac newer than their generated outputs, and make
/// would then want bison or autoconf; equal mtimes mean "up to date".
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
pub(crate) fn run_logged(mut cmd: Command, log: &Path, what: &str) -> Result<()> {
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
