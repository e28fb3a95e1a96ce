//! The context an escalated program reads: configuration that runs code,
//! which must not be anything a sandbox could have written (see
//! [`Exposure`]).
//!
//! An `allow` rule for `git status` means the user's git, with the user's
//! configuration, on the user's repository. git runs commands from its
//! configuration (`core.fsmonitor`, hooks, `core.pager`, aliases, filters,
//! `remote.*.receivepack`, …), so a repository the sandbox made (in
//! `/tmp`, nested in the workspace, named by a `gitdir:` file, or created
//! after the sandbox started) would turn that rule into arbitrary code
//! outside the sandbox. Before escalating, the program's check below looks
//! at where it will read such configuration and refuses the escalation
//! when any of it could have been written by a sandbox; the program then
//! runs inside the sandbox instead. A check may also pin what it checked
//! (environment variables added to the program's), so that what the
//! program reads is what was checked.
//!
//! Programs are recognised by the basename of the file that runs
//! (`/usr/bin/git-upload-pack -> git` is `git`). A program without an entry
//! reads whatever it reads: `allow` for programs that run the project's
//! code by design (make, npm, cargo, …) gives the sandbox a way out, and
//! the server warns about such rules (`policy::runners`).
//!
//! # git
//!
//! With the escalated program's environment (the server's, after
//! [`crate::EnvPolicy`]):
//!
//! - the system file (`$GIT_CONFIG_SYSTEM`, else `/etc/gitconfig`, unless
//!   `$GIT_CONFIG_NOSYSTEM`), the global ones (`$GIT_CONFIG_GLOBAL`, else
//!   `$XDG_CONFIG_HOME/git/config` or `~/.config/git/config`, and
//!   `~/.gitconfig`);
//! - the repository: `$GIT_DIR` or `--git-dir`, else discovered the way
//!   git does from the working directory (after `-C`): each directory up to
//!   `/` for a `.git` directory or a `.git` file (`gitdir: …`), or a bare
//!   repository (`HEAD`, `objects/`, `refs/`); its git directory and common
//!   directory (`commondir`, `$GIT_COMMON_DIR`) whole, with their config
//!   files, hooks (and every hook that is a symlink) and `info/`;
//! - every `include.path` and `includeIf.*.path` of those files (whatever
//!   the condition), and `core.hooksPath`;
//! - for `push` (and `git-receive-pack DIR`), a repository on this machine
//!   pushed to — the first operand, every `remote.*.url`/`pushurl` and
//!   `url.<base>.insteadOf` base of those files that is a local path or
//!   `file://` URL — as a repository: receive-pack runs its hooks, as a
//!   child of the escalated git;
//! - every submodule of the index whose `.git` is in the work tree, and
//!   the repository it names: git runs git in them (`status` asks each
//!   whether it is modified), with their configuration.
//!
//! Each must lie outside every writable root, or in a read-only subpath no
//! sandbox wrote (a missing file must be one no sandbox could create). The
//! git found is then pinned: the escalated git gets `GIT_DIR` (and
//! `GIT_WORK_TREE` for a repository with a work tree), so that a `.git` a
//! sandbox plants between the check and git's own discovery is not read.
//! When no repository is found, the directories git would look in must be
//! ones no sandbox can write (a repository could appear there meanwhile).
//! `git init` and `git clone` discover nothing; only their configuration
//! is checked. Not examined: commands that the user's own configuration
//! names by a path inside a writable root (`core.fsmonitor = ./x.sh`).
//!
//! The arguments are the sandbox's too: a rule allows `git log` followed
//! by anything, and some of git's options write a file or run a command
//! named right there (`git log --format=format:… --output=~/.bashrc`,
//! `git diff --output=…`, `git grep -O'sh -c …'`, `git ls-remote
//! --upload-pack=…`, `git -c core.pager=…`). An escalation whose
//! arguments hold one of them ([`git_arguments`]; a long option counts by
//! any prefix, as git's option parser takes abbreviations) is refused.

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::exposure::Exposure;

/// Most configuration files (includes) followed for one program.
const MAX_CONFIG_FILES: usize = 64;
/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The escalation being checked.
pub(crate) struct Program<'a> {
    /// The file that runs (canonical).
    pub file: &'a Path,
    pub argv: &'a [OsString],
    /// The program's whole environment.
    pub env: &'a [(OsString, OsString)],
    /// Its working directory (canonical).
    pub cwd: &'a Path,
}

impl Program<'_> {
    /// A variable of the program's environment, when set and not empty.
    fn var(&self, key: &str) -> Option<&OsStr> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_os_str())
            .filter(|v| !v.is_empty())
    }

    /// `path` made absolute against the working directory.
    fn absolute(&self, path: &OsStr) -> PathBuf {
        self.cwd.join(path)
    }
}

/// Variables a check adds to the program's environment.
pub(crate) type Pins = Vec<(OsString, OsString)>;

type Check = fn(&Program<'_>, &Exposure) -> Result<Pins, String>;

/// The programs whose context is checked, by basename of the file that
/// runs.
const PROGRAMS: &[(&str, Check)] = &[("git", git)];

/// Checks `program`'s context; the variables to pin, or why it must not be
/// escalated.
pub(crate) fn check(program: &Program<'_>, exposure: &Exposure) -> Result<Pins, String> {
    let name = program.file.file_name().unwrap_or_default();
    match PROGRAMS.iter().find(|(n, _)| OsStr::new(n) == name) {
        Some((_, check)) => check(program, exposure),
        None => Ok(Vec::new()),
    }
}

/// Where git looks, from its options before the subcommand.
struct GitOptions {
    dir: PathBuf,
    git_dir: Option<PathBuf>,
    work_tree: bool,
    subcommand: Option<OsString>,
    /// Started as `git-<subcommand>` (`git-receive-pack DIR`).
    dashed: bool,
    /// The subcommand's first argument that is not an option (for push,
    /// the repository; for a dashed `git-receive-pack`, its directory).
    first_operand: Option<OsString>,
}

fn git_options(p: &Program<'_>) -> GitOptions {
    let mut o = GitOptions {
        dir: p.cwd.to_path_buf(),
        git_dir: p.var("GIT_DIR").map(|d| p.absolute(d)),
        work_tree: p.var("GIT_WORK_TREE").is_some(),
        subcommand: None,
        dashed: false,
        first_operand: None,
    };
    let argv0 = p
        .argv
        .first()
        .map(|a| Path::new(a).file_name().unwrap_or_default());
    if let Some(sub) = argv0.and_then(|n| n.as_bytes().strip_prefix(b"git-")) {
        o.subcommand = Some(OsStr::from_bytes(sub).to_owned());
        o.dashed = true;
        o.first_operand = first_operand(p.argv.iter().skip(1));
        return o;
    }
    let mut rest = p.argv.iter().skip(1);
    let mut args = rest.by_ref().map(|a| a.as_bytes());
    while let Some(arg) = args.next() {
        let mut value = |prefix: &[u8]| -> Option<&[u8]> {
            match arg.strip_prefix(prefix) {
                Some(b"") => args.next(),
                Some(rest) => rest.strip_prefix(b"="),
                None => None,
            }
        };
        if arg == b"-C" {
            if let Some(dir) = args.next()
                && !dir.is_empty()
            {
                o.dir = o.dir.join(OsStr::from_bytes(dir));
            }
        } else if arg.starts_with(b"--git-dir") {
            if let Some(dir) = value(b"--git-dir") {
                o.git_dir = Some(o.dir.join(OsStr::from_bytes(dir)));
            }
        } else if arg.starts_with(b"--work-tree") {
            o.work_tree = true;
            let _ = value(b"--work-tree");
        } else if arg == b"-c" || arg == b"--config-env" || arg == b"--namespace" {
            let _ = args.next();
        } else if arg.starts_with(b"-") {
            // A flag (`--no-pager`, `-P`, `--bare`, `--exec-path=…`,
            // `--namespace=…`).
        } else {
            o.subcommand = Some(OsStr::from_bytes(arg).to_owned());
            break;
        }
    }
    o.first_operand = first_operand(rest);
    o
}

/// Long options (without `--`) that name a file git writes or a command it
/// runs, by subcommand (`None`: any).
const GIT_LONG: &[(Option<&str>, &[&str])] = &[
    (
        None,
        &[
            "output",
            "output-directory",
            "open-files-in-pager",
            "upload-pack",
            "receive-pack",
            "exec",
            "extcmd",
            "template",
            "separate-git-dir",
        ],
    ),
    (Some("clone"), &["config"]),
    (
        Some("send-email"),
        &[
            "sendmail-cmd",
            "smtp-server",
            "to-cmd",
            "cc-cmd",
            "header-cmd",
        ],
    ),
];

/// Short options that do the same, by subcommand (letters).
const GIT_SHORT: &[(&str, &str)] = &[
    ("grep", "O"),
    ("format-patch", "o"),
    ("archive", "o"),
    ("rebase", "x"),
    ("difftool", "x"),
    ("clone", "cu"),
    ("ls-remote", "u"),
];

/// Subcommands whose operand is a command to run.
const GIT_RUNS_OPERAND: &[(&str, &str)] = &[("bisect", "run"), ("submodule", "foreach")];

/// The first argument of `argv` (git's) that makes git write a file or run
/// a command it names: before the subcommand `-c`, `--config-env` and
/// `--exec-path=DIR`; after it the options of [`GIT_LONG`] (any prefix of
/// one: git takes abbreviations), [`GIT_SHORT`] (anywhere in a cluster)
/// and the operands of [`GIT_RUNS_OPERAND`]. Every argument after the
/// subcommand is looked at, values and paths included: a refusal only
/// runs git inside the sandbox.
fn git_arguments(argv: &[OsString]) -> Option<&OsString> {
    let dashed = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.as_bytes().strip_prefix(b"git-"))
        .map(<[u8]>::to_vec);
    let mut rest = argv.iter().skip(1);
    let subcommand = match dashed {
        Some(sub) => sub,
        None => loop {
            let arg = rest.next()?;
            let bytes = arg.as_bytes();
            if bytes == b"-c"
                || bytes.starts_with(b"--config-env")
                || bytes.starts_with(b"--exec-path=")
            {
                return Some(arg);
            }
            if matches!(
                bytes,
                b"-C" | b"--git-dir" | b"--work-tree" | b"--namespace"
            ) {
                rest.next();
            } else if !bytes.starts_with(b"-") {
                break bytes.to_vec();
            }
        },
    };
    let applies = |for_sub: Option<&str>| for_sub.is_none_or(|s| s.as_bytes() == subcommand);
    let long: Vec<&str> = GIT_LONG
        .iter()
        .filter(|(sub, _)| applies(*sub))
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
    let short: String = GIT_SHORT
        .iter()
        .filter(|(sub, _)| sub.as_bytes() == subcommand)
        .map(|(_, letters)| *letters)
        .collect();
    let operand = GIT_RUNS_OPERAND
        .iter()
        .find(|(sub, _)| sub.as_bytes() == subcommand)
        .map(|(_, op)| op.as_bytes());
    rest.find(|arg| {
        let bytes = arg.as_bytes();
        if let Some(name) = bytes.strip_prefix(b"--") {
            let name = name.split(|&b| b == b'=').next().unwrap_or_default();
            !name.is_empty() && long.iter().any(|l| l.as_bytes().starts_with(name))
        } else if let Some(letters) = bytes.strip_prefix(b"-") {
            letters.iter().any(|l| short.as_bytes().contains(l))
        } else {
            operand == Some(bytes)
        }
    })
}

/// The first argument that is not an option.
fn first_operand<'a>(mut args: impl Iterator<Item = &'a OsString>) -> Option<OsString> {
    args.find(|a| !a.as_bytes().starts_with(b"-")).cloned()
}

/// See the module docs.
fn git(p: &Program<'_>, exposure: &Exposure) -> Result<Pins, String> {
    if let Some(arg) = git_arguments(p.argv) {
        return Err(format!(
            "git would write a file or run a command named in its arguments ({})",
            arg.to_string_lossy()
        ));
    }
    let home = p.var("HOME").map(PathBuf::from);
    let mut configs: Vec<PathBuf> = Vec::new();
    if !p.var("GIT_CONFIG_NOSYSTEM").is_some_and(truthy) {
        configs.push(
            p.var("GIT_CONFIG_SYSTEM")
                .map_or_else(|| PathBuf::from("/etc/gitconfig"), |f| p.absolute(f)),
        );
    }
    match p.var("GIT_CONFIG_GLOBAL") {
        Some(global) => configs.push(p.absolute(global)),
        None => {
            let xdg = p
                .var("XDG_CONFIG_HOME")
                .map(|x| p.absolute(x))
                .or_else(|| home.as_ref().map(|h| h.join(".config")));
            configs.extend(xdg.map(|x| x.join("git/config")));
            configs.extend(home.as_ref().map(|h| h.join(".gitconfig")));
        }
    }
    for var in ["GIT_EXEC_PATH", "GIT_TEMPLATE_DIR"] {
        if let Some(dir) = p.var(var) {
            exposure
                .check_tree(&p.absolute(dir))
                .map_err(|why| git_reads(var, why))?;
        }
    }

    let options = git_options(p);
    let subcommand = options.subcommand.as_deref().and_then(OsStr::to_str);
    // `git-receive-pack DIR` and friends enter DIR: it is the repository.
    let enters = options.dashed
        && matches!(
            subcommand,
            Some("receive-pack" | "upload-pack" | "upload-archive")
        );
    let discovers = !enters && !matches!(subcommand, Some("init" | "clone"));
    let pushes = matches!(subcommand, Some("push" | "receive-pack"));
    let mut pins = Pins::new();
    let mut repo: Option<Repository> = None;
    let mut urls: Vec<Vec<u8>> = Vec::new();
    if enters || pushes {
        urls.extend(options.first_operand.iter().map(|u| u.as_bytes().to_vec()));
    }
    if let Some(git_dir) = &options.git_dir {
        repo = repository(git_dir, None, p, exposure)?;
    } else if discovers {
        match discover(&options.dir, p, exposure)? {
            Found::Repository { git_dir, top } => {
                repo = repository(&git_dir, top.as_deref(), p, exposure)?;
                if let Some(repo) = &repo {
                    pins.push(("GIT_DIR".into(), repo.git_dir.clone().into()));
                    if let Some(top) = &repo.top
                        && !options.work_tree
                    {
                        pins.push(("GIT_WORK_TREE".into(), top.clone().into()));
                    }
                }
            }
            Found::Nothing => {}
        }
    }
    if let Some(repo) = &repo {
        configs.push(repo.git_dir.join("config"));
        configs.push(repo.git_dir.join("config.worktree"));
        if repo.common_dir != repo.git_dir {
            configs.push(repo.common_dir.join("config"));
        }
        check_hooks(&repo.common_dir.join("hooks"), exposure)?;
        // Where git finds the work tree: discovered, else the working
        // directory (`--git-dir` alone); `--work-tree` names one we do not
        // follow.
        let top = match (&repo.top, options.work_tree) {
            (_, true) => None,
            (Some(top), false) => Some(top.clone()),
            (None, false) => options.git_dir.as_ref().map(|_| options.dir.clone()),
        };
        check_submodules(repo, top.as_deref(), p, exposure)?;
    }

    // Every configuration file, and the files and hooks they name.
    let mut done = 0;
    while let Some(file) = configs.pop() {
        done += 1;
        if done > MAX_CONFIG_FILES {
            return Err(format!(
                "git would read more than {MAX_CONFIG_FILES} configuration files"
            ));
        }
        let Some(resolved) = exposure
            .check_file(&file)
            .map_err(|why| git_reads("its configuration", why))?
        else {
            continue;
        };
        let text = match read_config(&resolved) {
            Ok(Some(text)) => text,
            Ok(None) => continue,
            Err(e) => {
                return Err(format!(
                    "cannot read git configuration {}: {e}",
                    file.display()
                ));
            }
        };
        let named = config_paths(&text)
            .map_err(|e| format!("cannot read git configuration {}: {e}", file.display()))?;
        let base = resolved.parent().unwrap_or(Path::new("/"));
        if pushes {
            urls.extend(named.urls);
        }
        for include in named.includes {
            configs.push(expand(&include, home.as_deref(), base)?);
        }
        for hooks in named.hooks_paths {
            let base = repo
                .as_ref()
                .map(|r| r.top.as_deref().unwrap_or(&r.git_dir))
                .unwrap_or(p.cwd);
            let dir = expand(&hooks, home.as_deref(), base)?;
            exposure
                .check_tree(&dir)
                .map_err(|why| git_reads("its hooks", why))?;
            check_hooks(&dir, exposure)?;
        }
    }
    // A push to a repository on this machine runs that repository's hooks
    // (receive-pack, as the escalated git's child): it is context too.
    for url in &urls {
        if let Some(path) = local_repository(url, &options.dir) {
            check_local_repository(&path, p, exposure)?;
        }
    }
    Ok(pins)
}

/// The path of a URL or path that names a repository on this machine
/// (`/path`, `rel/path`, `file:///path`; a bare name only when such a
/// directory exists), `None` for another machine's (`host:path`,
/// `ssh://…`, `https://…`).
fn local_repository(url: &[u8], base: &Path) -> Option<PathBuf> {
    if let Some(path) = url.strip_prefix(b"file://") {
        return Some(PathBuf::from(OsStr::from_bytes(path)));
    }
    if url.windows(3).any(|w| w == b"://") {
        return None;
    }
    let slash = url.iter().position(|&c| c == b'/');
    let colon = url.iter().position(|&c| c == b':');
    if colon.is_some_and(|c| slash.is_none_or(|s| c < s)) {
        return None;
    }
    let path = base.join(OsStr::from_bytes(url));
    (slash.is_some() || path.exists()).then_some(path)
}

/// Checks every form of `path` git's `enter_repo` may use (`path/.git`,
/// `path`, `path.git`) that exists.
fn check_local_repository(path: &Path, p: &Program<'_>, exposure: &Exposure) -> Result<(), String> {
    let mut dotted = path.as_os_str().to_owned();
    dotted.push(".git");
    for candidate in [path.join(".git"), path.to_path_buf(), PathBuf::from(dotted)] {
        if candidate.symlink_metadata().is_err() {
            continue;
        }
        if candidate.join(".git").symlink_metadata().is_ok() {
            // A work tree: its `.git` is checked as its own candidate.
            continue;
        }
        if let Some(repo) = repository(&candidate, None, p, exposure)
            .map_err(|why| format!("the repository pushed to: {why}"))?
        {
            check_hooks(&repo.common_dir.join("hooks"), exposure)?;
        }
    }
    Ok(())
}

fn git_reads(what: &str, why: String) -> String {
    format!("git would read {what} from a place the sandbox controls: {why}")
}

/// `1`, `true`, `yes`, `on` (git's booleans).
fn truthy(v: &OsStr) -> bool {
    matches!(
        v.to_ascii_lowercase().as_bytes(),
        b"1" | b"true" | b"yes" | b"on"
    )
}

/// A repository git would use.
struct Repository {
    git_dir: PathBuf,
    common_dir: PathBuf,
    /// The top of its work tree.
    top: Option<PathBuf>,
}

/// Checks the git directory `git_dir` (and its common directory); `None`
/// when it does not exist (git then fails).
fn repository(
    git_dir: &Path,
    top: Option<&Path>,
    p: &Program<'_>,
    exposure: &Exposure,
) -> Result<Option<Repository>, String> {
    let why = |why| git_reads("a repository", why);
    let Some(git_dir) = exposure.check_tree(git_dir).map_err(why)? else {
        return Ok(None);
    };
    let common_dir = match p.var("GIT_COMMON_DIR") {
        Some(dir) => Some(p.absolute(dir)),
        None => match std::fs::read(git_dir.join("commondir")) {
            Ok(text) => Some(git_dir.join(OsStr::from_bytes(trim(&text)))),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: {e}", git_dir.join("commondir").display())),
        },
    };
    let common_dir = match common_dir {
        Some(dir) => exposure
            .check_tree(&dir)
            .map_err(why)?
            .unwrap_or_else(|| git_dir.clone()),
        None => git_dir.clone(),
    };
    Ok(Some(Repository {
        git_dir,
        common_dir,
        top: top.map(Path::to_path_buf),
    }))
}

enum Found {
    Repository {
        git_dir: PathBuf,
        top: Option<PathBuf>,
    },
    Nothing,
}

/// Every submodule the index records (a gitlink) whose `.git` is in the
/// work tree `top` is a repository git runs git in: `status` and `diff`
/// ask each whether it is modified, `fetch` and `grep` recurse, each with
/// that repository's configuration (`core.fsmonitor`, hooks). A
/// submodule's `.git` (a `gitdir:` file or a directory) in a writable
/// root is the sandbox's to redirect, so it must be a place no sandbox
/// wrote, and so must the repository it names. The index itself is in the
/// (checked) git directory. Submodules with no `.git` are not entered.
fn check_submodules(
    repo: &Repository,
    top: Option<&Path>,
    p: &Program<'_>,
    exposure: &Exposure,
) -> Result<(), String> {
    let index = p
        .var("GIT_INDEX_FILE")
        .map(|f| p.absolute(f))
        .unwrap_or_else(|| repo.git_dir.join("index"));
    let bytes = match std::fs::read(&index) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", index.display())),
    };
    let sha256 = std::fs::read(repo.common_dir.join("config"))
        .is_ok_and(|c| c.to_ascii_lowercase().windows(6).any(|w| w == b"sha256"));
    let links = gitlinks(&bytes, if sha256 { 32 } else { 20 })
        .map_err(|e| format!("cannot read git's index {}: {e}", index.display()))?;
    if links.is_empty() {
        return Ok(());
    }
    let Some(top) = top else {
        return Err(format!(
            "git would enter the submodules of {} in a work tree that is not checked",
            repo.git_dir.display()
        ));
    };
    for link in links {
        let dir = top.join(OsStr::from_bytes(&link));
        let dot_git = dir.join(".git");
        if dot_git.symlink_metadata().is_err() {
            continue;
        }
        let why = |why| git_reads("a submodule", why);
        let resolved = exposure
            .check_file(&dot_git)
            .map_err(why)?
            .unwrap_or(dot_git);
        let git_dir = if resolved.is_file() {
            let text =
                std::fs::read(&resolved).map_err(|e| format!("{}: {e}", resolved.display()))?;
            let Some(target) = trim(&text).strip_prefix(b"gitdir:") else {
                return Err(format!("{} is not a gitdir file", resolved.display()));
            };
            dir.join(OsStr::from_bytes(trim(target)))
        } else {
            resolved
        };
        if let Some(sub) = repository(&git_dir, Some(&dir), p, exposure)? {
            check_hooks(&sub.common_dir.join("hooks"), exposure)?;
        }
    }
    Ok(())
}

/// The paths of the gitlinks (mode 160000) of a git index (versions 2 to
/// 4, hashes of `hash_len` bytes); an error for anything else, a split
/// index included (its entries are in another file).
fn gitlinks(index: &[u8], hash_len: usize) -> Result<Vec<Vec<u8>>, String> {
    let word = |at: usize| -> Result<u32, String> {
        index
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "truncated".to_owned())
    };
    if index.get(..4) != Some(b"DIRC") {
        return Err("not an index".into());
    }
    let version = word(4)?;
    if !(2..=4).contains(&version) {
        return Err(format!("index version {version}"));
    }
    let count = word(8)? as usize;
    let (mut at, mut links, mut previous) = (12usize, Vec::new(), Vec::new());
    let truncated = || "truncated".to_owned();
    for _ in 0..count {
        let start = at;
        let mode = word(at + 24)?;
        let flags_at = at + 40 + hash_len;
        let flags = index
            .get(flags_at..flags_at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(truncated)?;
        at = flags_at + 2;
        if version >= 3 && flags & 0x4000 != 0 {
            at += 2;
        }
        let name = if version == 4 {
            // git's varint: the number of bytes of the previous name to drop.
            let mut strip: usize = 0;
            loop {
                let c = *index.get(at).ok_or_else(truncated)?;
                at += 1;
                strip = (strip << 7) | usize::from(c & 127);
                if c & 128 == 0 {
                    break;
                }
                strip += 1;
            }
            let rest = index.get(at..).ok_or_else(truncated)?;
            let end = rest.iter().position(|&b| b == 0).ok_or_else(truncated)?;
            let keep = previous
                .len()
                .checked_sub(strip)
                .ok_or("a bad name prefix")?;
            let mut name = previous[..keep].to_vec();
            name.extend_from_slice(&rest[..end]);
            at += end + 1;
            name
        } else {
            let rest = index.get(at..).ok_or_else(truncated)?;
            let end = rest.iter().position(|&b| b == 0).ok_or_else(truncated)?;
            let name = rest[..end].to_vec();
            // Padded with 1 to 8 NULs to a multiple of 8 bytes.
            at = start + ((at + end - start + 8) & !7);
            name
        };
        if mode & 0o170000 == 0o160000 {
            links.push(name.clone());
        }
        previous = name;
    }
    // Extensions (signature, size, data) up to the final hash.
    while at + 8 + hash_len <= index.len() {
        if &index[at..at + 4] == b"link" {
            return Err("a split index".into());
        }
        at += 8 + word(at + 4)? as usize;
    }
    Ok(links)
}

/// git's discovery from `start`, checking every `.git` met on the way. As
/// git, it stops below a `$GIT_CEILING_DIRECTORIES` entry and at a file
/// system boundary (unless `$GIT_DISCOVERY_ACROSS_FILESYSTEM`).
fn discover(start: &Path, p: &Program<'_>, exposure: &Exposure) -> Result<Found, String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(mut dir) = start.canonicalize() else {
        // git cannot change there either.
        return Ok(Found::Nothing);
    };
    let ceilings: Vec<PathBuf> = p
        .var("GIT_CEILING_DIRECTORIES")
        .map(|v| {
            std::env::split_paths(v)
                .filter(|c| c.is_absolute())
                .filter_map(|c| c.canonicalize().ok())
                .collect()
        })
        .unwrap_or_default();
    let across = p.var("GIT_DISCOVERY_ACROSS_FILESYSTEM").is_some_and(truthy);
    let mut device = dir.metadata().map(|m| m.dev()).ok();
    let mut looked: Vec<PathBuf> = Vec::new();
    loop {
        let dot_git = dir.join(".git");
        match dot_git.symlink_metadata() {
            Ok(_) => {
                let resolved = exposure
                    .check_file(&dot_git)
                    .map_err(|why| git_reads("a repository", why))?
                    .unwrap_or(dot_git);
                if resolved.is_file() {
                    let text = std::fs::read(&resolved)
                        .map_err(|e| format!("{}: {e}", resolved.display()))?;
                    let Some(target) = trim(&text).strip_prefix(b"gitdir:") else {
                        return Err(format!("{} is not a gitdir file", resolved.display()));
                    };
                    let target = dir.join(OsStr::from_bytes(trim(target)));
                    return Ok(Found::Repository {
                        git_dir: target,
                        top: Some(dir),
                    });
                }
                return Ok(Found::Repository {
                    git_dir: resolved,
                    top: Some(dir),
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", dot_git.display())),
        }
        if dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir() {
            return Ok(Found::Repository {
                git_dir: dir,
                top: None,
            });
        }
        looked.push(dir.clone());
        if !dir.pop() || ceilings.contains(&dir) {
            break;
        }
        let parent_device = dir.metadata().map(|m| m.dev()).ok();
        if !across && parent_device != device {
            break;
        }
        device = parent_device;
    }
    // No repository: one could appear in any of these meanwhile.
    exposure
        .check_all(looked.iter().map(PathBuf::as_path))
        .map_err(|why| git_reads("a repository", why))?;
    Ok(Found::Nothing)
}

/// Every hook in `dir` that is a symlink leads somewhere no sandbox wrote
/// (the directory itself was checked whole).
fn check_hooks(dir: &Path, exposure: &Exposure) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(());
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            exposure
                .check_file(&entry.path())
                .map_err(|why| git_reads("a hook", why))?;
        }
    }
    Ok(())
}

/// A path from a configuration file: `~/` is `home`, a relative path is
/// relative to `base`.
fn expand(path: &[u8], home: Option<&Path>, base: &Path) -> Result<PathBuf, String> {
    let shown = || String::from_utf8_lossy(path).into_owned();
    if let Some(rest) = path.strip_prefix(b"~/") {
        let home = home.ok_or_else(|| format!("{} names ~ but HOME is not set", shown()))?;
        return Ok(home.join(OsStr::from_bytes(rest)));
    }
    if path.starts_with(b"~") || path.starts_with(b"%(") {
        return Err(format!(
            "cannot tell where git configuration path {} is",
            shown()
        ));
    }
    Ok(base.join(OsStr::from_bytes(path)))
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// A configuration file's text; `None` when it vanished.
fn read_config(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if file.metadata()?.is_dir() {
        return Ok(None);
    }
    let mut text = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::other("larger than 1 MiB"));
    }
    Ok(Some(text))
}

/// The paths a git configuration file names that git follows.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConfigPaths {
    /// `include.path`, `includeIf.*.path`.
    includes: Vec<Vec<u8>>,
    /// `core.hooksPath`.
    hooks_paths: Vec<Vec<u8>>,
    /// URLs a push may go to: `remote.*.url`, `remote.*.pushurl`, and the
    /// bases of `url.<base>.insteadOf`/`pushInsteadOf`.
    urls: Vec<Vec<u8>>,
}

/// Parses git's configuration syntax (sections, quoted subsections, the
/// old `[section.sub]` form, `key = value` with quotes, escapes, comments
/// and continuation lines, and a key on the line of its section) strictly:
/// what git would not read, or reads differently, is an error.
fn config_paths(text: &[u8]) -> Result<ConfigPaths, String> {
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    let mut out = ConfigPaths::default();
    let mut section = Vec::new();
    let mut subsection: Option<Vec<u8>> = None;
    let mut p = Parser {
        text,
        at: 0,
        line: 1,
    };
    loop {
        p.skip_blank();
        let Some(c) = p.peek() else { break };
        match c {
            b'\n' => {
                p.bump();
            }
            b'#' | b';' => p.skip_line(),
            b'[' => {
                p.bump();
                (section, subsection) = p.section()?;
            }
            c if c.is_ascii_alphabetic() => {
                let key = p.key();
                let value = p.value()?;
                let name = (section.as_slice(), subsection.is_some(), key.as_slice());
                let wanted = match name {
                    (b"include", false, b"path") | (b"includeif", true, b"path") => {
                        Some(&mut out.includes)
                    }
                    (b"core", false, b"hookspath") => Some(&mut out.hooks_paths),
                    (b"remote", true, b"url" | b"pushurl") => Some(&mut out.urls),
                    (b"url", true, b"insteadof" | b"pushinsteadof") => {
                        out.urls.extend(subsection.clone());
                        None
                    }
                    _ => None,
                };
                if let (Some(list), Some(value)) = (wanted, value)
                    && !value.is_empty()
                {
                    list.push(value);
                }
            }
            _ => return Err(p.error("unexpected character")),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn error(&self, what: &str) -> String {
        format!("line {}: {what}", self.line)
    }

    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.bump();
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == b'\n' {
                break;
            }
        }
    }

    /// After `[`: the section name (lowercase) and its subsection, if any.
    fn section(&mut self) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
        let mut name = Vec::new();
        loop {
            match self.bump() {
                Some(b']') => {
                    if name.is_empty() {
                        return Err(self.error("empty section name"));
                    }
                    // `[section.sub]`: the old form of a subsection.
                    return Ok(match name.iter().position(|&c| c == b'.') {
                        Some(dot) => (name[..dot].to_vec(), Some(name[dot + 1..].to_vec())),
                        None => (name, None),
                    });
                }
                Some(c) if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' => {
                    name.push(c.to_ascii_lowercase())
                }
                Some(b' ' | b'\t') => break,
                _ => return Err(self.error("bad section header")),
            }
        }
        self.skip_blank();
        if self.bump() != Some(b'"') {
            return Err(self.error("bad section header"));
        }
        let mut sub = Vec::new();
        loop {
            match self.bump() {
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    None | Some(b'\n') => return Err(self.error("bad subsection")),
                    Some(c) => sub.push(c),
                },
                Some(b'\n') | None => return Err(self.error("bad subsection")),
                Some(c) => sub.push(c),
            }
        }
        if self.bump() != Some(b']') {
            return Err(self.error("bad section header"));
        }
        if name.contains(&b'.') {
            return Err(self.error("bad section header"));
        }
        Ok((name, Some(sub)))
    }

    /// A key name, lowercased.
    fn key(&mut self) -> Vec<u8> {
        let mut key = Vec::new();
        while let Some(c) = self.peek() {
            if !(c.is_ascii_alphanumeric() || c == b'-') {
                break;
            }
            key.push(c.to_ascii_lowercase());
            self.bump();
        }
        key
    }

    /// After a key: `= value`, or nothing (a boolean, `None`), to the end
    /// of the line.
    fn value(&mut self) -> Result<Option<Vec<u8>>, String> {
        self.skip_blank();
        match self.peek() {
            None | Some(b'\n') => {
                self.bump();
                return Ok(None);
            }
            Some(b'#' | b';') => {
                self.skip_line();
                return Ok(None);
            }
            Some(b'=') => {
                self.bump();
            }
            Some(_) => return Err(self.error("expected `=` after a key")),
        }
        self.skip_blank();
        let mut value = Vec::new();
        let mut quoted = false;
        // Length of `value` up to its last character that is not trailing
        // white space outside quotes.
        let mut keep = 0;
        loop {
            let Some(c) = self.bump() else {
                if quoted {
                    return Err(self.error("unterminated quote"));
                }
                break;
            };
            match c {
                b'\n' if quoted => return Err(self.error("unterminated quote")),
                b'\n' => break,
                b'\r' if self.peek() == Some(b'\n') => {}
                b'"' => {
                    quoted = !quoted;
                    keep = value.len();
                }
                b'#' | b';' if !quoted => {
                    self.skip_line();
                    break;
                }
                b'\\' => {
                    match self.bump() {
                        Some(b'\n') => continue,
                        Some(b'\r') if self.peek() == Some(b'\n') => {
                            self.bump();
                            continue;
                        }
                        Some(b'n') => value.push(b'\n'),
                        Some(b't') => value.push(b'\t'),
                        Some(b'b') => {
                            value.pop();
                        }
                        Some(c @ (b'"' | b'\\')) => value.push(c),
                        _ => return Err(self.error("bad escape")),
                    }
                    keep = value.len();
                }
                b' ' | b'\t' if !quoted => value.push(c),
                c => {
                    value.push(c);
                    keep = value.len();
                }
            }
        }
        value.truncate(keep);
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> ConfigPaths {
        config_paths(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn configuration_paths_are_found_in_every_spelling() {
        let c = paths(
            "\u{feff}# comment\n[core]\n\tbare = false\n\thooksPath = \"/opt/hooks\" ; why\n\
             [Include]\n  PATH = ~/extra.inc\n\
             [includeIf \"gitdir:~/w/\"]\n\tpath = rel/x.inc\n\
             [include] path = same-line.inc\n\
             [core.sub]\n\thookspath = not-core\n\
             [alias]\n\tst = \"!echo \\\"hi\\\" # not a comment\"\n\
             [user]\n\tname = a \\\n  b\n\tflag\n",
        );
        assert_eq!(
            c.includes,
            vec![
                b"~/extra.inc".to_vec(),
                b"rel/x.inc".to_vec(),
                b"same-line.inc".to_vec()
            ]
        );
        assert_eq!(c.hooks_paths, vec![b"/opt/hooks".to_vec()]);
    }

    #[test]
    fn malformed_configuration_is_an_error() {
        for bad in [
            "[core\n",
            "[core \"x]\n",
            "[]\n",
            "[core]\nkey = \"open\n",
            "[core]\n=value\n",
            "[core]\nkey value\n",
            "[core]\nkey = bad\\q\n",
        ] {
            assert!(config_paths(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn local_and_remote_urls() {
        let base = Path::new("/w");
        let local = |u: &str| local_repository(u.as_bytes(), base);
        assert_eq!(local("/srv/r.git"), Some(PathBuf::from("/srv/r.git")));
        assert_eq!(local("file:///srv/r"), Some(PathBuf::from("/srv/r")));
        assert_eq!(local("../r"), Some(PathBuf::from("/w/../r")));
        for remote in [
            "host:r.git",
            "git@host:r",
            "ssh://host/r",
            "https://h/r",
            "HEAD:refs/heads/x",
        ] {
            assert_eq!(local(remote), None, "{remote}");
        }
        // A bare name is a remote's name unless such a directory exists.
        assert_eq!(local("origin"), None);
    }

    /// The gitlinks of a real index, in each version git writes.
    #[test]
    fn gitlinks_of_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("git");
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        git(&["init", "-q"]);
        std::fs::create_dir_all(dir.path().join("a/deeper")).unwrap();
        std::fs::write(dir.path().join("a/file"), "x").unwrap();
        std::fs::write(dir.path().join("a/deeper/other"), "y").unwrap();
        git(&["add", "a"]);
        let oid = "1234567890123456789012345678901234567890";
        for path in ["a/sub", "z-sub"] {
            git(&[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{oid},{path}"),
            ]);
        }
        for version in ["2", "3", "4"] {
            git(&["update-index", "--index-version", version]);
            let index = std::fs::read(dir.path().join(".git/index")).unwrap();
            assert_eq!(
                gitlinks(&index, 20).unwrap(),
                vec![b"a/sub".to_vec(), b"z-sub".to_vec()],
                "version {version}"
            );
        }
        assert!(gitlinks(b"DIRC\0\0\0\x09", 20).is_err());
    }

    #[test]
    fn arguments_that_write_files_or_run_commands() {
        let refused = |args: &str| {
            let argv: Vec<OsString> = args.split(' ').map(OsString::from).collect();
            git_arguments(&argv).map(|a| a.to_string_lossy().into_owned())
        };
        for (args, arg) in [
            (
                "git log --format=format:x --output=/h/.bashrc",
                "--output=/h/.bashrc",
            ),
            ("git log -p --output /h/x", "--output"),
            ("git diff --no-index --out=/h/x a b", "--out=/h/x"),
            ("git grep -nOsh pattern", "-nOsh"),
            ("git grep --open=sh pattern", "--open=sh"),
            ("git ls-remote --upload-pack=sh .", "--upload-pack=sh"),
            ("git ls-remote -u sh .", "-u"),
            ("git fetch --upload-p=sh .", "--upload-p=sh"),
            ("git push --receive-pack=sh .", "--receive-pack=sh"),
            ("git clone -c core.hooksPath=/tmp/h a b", "-c"),
            ("git clone --template=/tmp/t a b", "--template=/tmp/t"),
            ("git format-patch -o /h -1", "-o"),
            ("git rebase -x sh main", "-x"),
            ("git bisect run sh", "run"),
            ("git submodule foreach sh", "foreach"),
            ("git -c core.pager=sh log", "-c"),
            ("git --exec-path=/tmp/x status", "--exec-path=/tmp/x"),
            (
                "git --config-env=core.pager=V log",
                "--config-env=core.pager=V",
            ),
        ] {
            assert_eq!(refused(args).as_deref(), Some(arg), "{args}");
        }
        for args in [
            "git status --short",
            "git log --oneline --format=%s --output-indicator-new=+ -1",
            "git diff --stat --exit-code --ext-diff --text --cc",
            "git grep -n -o -e x",
            "git -C sub --git-dir=g --no-pager log -1",
            "git --exec-path",
            "git fetch -u origin",
            "git show -o",
        ] {
            assert_eq!(refused(args), None, "{args}");
        }
    }

    #[test]
    fn options_before_the_subcommand() {
        let argv: Vec<OsString> = [
            "git",
            "-C",
            "sub",
            "-c",
            "a.b=c",
            "--no-pager",
            "--git-dir=g",
            "status",
            "-C",
            "x",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let p = Program {
            file: Path::new("/usr/bin/git"),
            argv: &argv,
            env: &[],
            cwd: Path::new("/w"),
        };
        let o = git_options(&p);
        assert_eq!(o.dir, Path::new("/w/sub"));
        assert_eq!(o.git_dir.as_deref(), Some(Path::new("/w/sub/g")));
        assert_eq!(o.subcommand.as_deref(), Some(OsStr::new("status")));
    }
}
