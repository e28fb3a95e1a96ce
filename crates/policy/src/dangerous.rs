//! Dangerous-command heuristics: commands that matched no rule but should
//! prompt instead of running silently in the sandbox.
//!
//! The program is recognised by its basename (`/usr/bin/rm` is `rm`); flags
//! are recognised in any position before `--`, alone or combined (`-rf`,
//! `-fR`, `-fdx`). Flagged:
//!
//! | command | when |
//! | --- | --- |
//! | `rm` | `-r`, `-R`, `-f`, `--recursive` or `--force` |
//! | `git reset` | always (as the reference); `--hard`/`--merge` named in the reason |
//! | `git clean` | `-f` or `--force` (deletes untracked files) |
//! | `git rm` | always (as the reference); `-f`/`--force` named in the reason |
//! | `git push` | `-f`, `--force`, `--force-with-lease[=…]`, `--mirror`, `-d`, `--delete`, or a refspec starting with `+` or `:` |
//! | `dd` | an `of=` operand (writes to a file or device) |
//! | `mkfs`, `mkfs.*`, `mke2fs`, `mkswap` | always |
//! | `chmod`, `chown`, `chgrp` | recursive (`-R`, `--recursive`) on `/`, a top-level directory (`/etc`, `/usr`, …), a home directory (`/root`, `/home/<user>`, `/Users/<user>`), `~`, `~user` or `$HOME` |
//! | `sudo` | always; the reason names the wrapped command and adds its own reason when it is flagged too |
//!
//! `git` global options before the subcommand are skipped (`-C <dir>`,
//! `-c <name=value>`, `--git-dir[=]<dir>`, `--work-tree[=]<dir>`,
//! `--namespace[=]<name>`, `--exec-path[=<dir>]` and flag-only options such as
//! `--no-pager`, `-P`, `--bare`).

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// Every program (by basename) the heuristics can flag; an entry ending in
/// `*` is a prefix. [`dangerous_reason`] is `None` for any other program,
/// which lets the server tell the wrapper it need not ask about those.
pub const DANGEROUS_PROGRAMS: &[&str] = &[
    "rm", "git", "dd", "mkfs", "mkfs.*", "mke2fs", "mkswap", "chmod", "chown", "chgrp", "sudo",
];

/// Whether `name` (a basename) is in [`DANGEROUS_PROGRAMS`].
pub fn is_inspected(name: &str) -> bool {
    DANGEROUS_PROGRAMS
        .iter()
        .any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => *entry == name,
        })
}

/// The dangerous-command heuristics: `Some(reason)` when a command that
/// matched no rule should prompt anyway. `program` is the program's path (or
/// bare name), `args` is `argv[1..]`.
pub fn dangerous_reason(program: &OsString, args: &[OsString]) -> Option<String> {
    let name = Path::new(program)
        .file_name()
        .unwrap_or(program.as_os_str());
    let name = name.to_string_lossy();
    let args: Vec<String> = args
        .iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    reason(&name, &args)
}

fn reason(name: &str, args: &[String]) -> Option<String> {
    // The list is authoritative: nothing outside it is ever flagged.
    if !is_inspected(name) {
        return None;
    }
    match name {
        "rm" => rm(args),
        "git" => git(args),
        "dd" => args
            .iter()
            .find(|arg| arg.starts_with("of="))
            .map(|of| format!("dd with `{of}` overwrites the output file or device")),
        "mkfs" | "mke2fs" | "mkswap" => {
            Some(format!("{name} formats a device, erasing its contents"))
        }
        _ if name.starts_with("mkfs.") => {
            Some(format!("{name} formats a device, erasing its contents"))
        }
        "chmod" | "chown" | "chgrp" => recursive_on_system_tree(name, args),
        "sudo" => Some(sudo(args)),
        _ => None,
    }
}

/// The arguments before `--` (after it everything is an operand).
fn options(args: &[String]) -> &[String] {
    let end = args
        .iter()
        .position(|arg| arg == "--")
        .unwrap_or(args.len());
    &args[..end]
}

/// Whether `arg` is a cluster of short options (`-rf`) containing `flag`.
fn has_short(arg: &str, flag: char) -> bool {
    arg.len() > 1 && arg.starts_with('-') && !arg.starts_with("--") && arg[1..].contains(flag)
}

fn rm(args: &[String]) -> Option<String> {
    let flag = options(args).iter().find(|arg| {
        *arg == "--force"
            || *arg == "--recursive"
            || has_short(arg, 'r')
            || has_short(arg, 'R')
            || has_short(arg, 'f')
    })?;
    Some(format!(
        "rm with `{flag}` deletes files recursively or without confirmation"
    ))
}

/// `git` global options that take a separate value.
const GIT_OPTIONS_WITH_VALUE: &[&str] = &[
    "-C",
    "-c",
    "--git-dir",
    "--work-tree",
    "--namespace",
    "--config-env",
    "--super-prefix",
];

fn git(args: &[String]) -> Option<String> {
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        if GIT_OPTIONS_WITH_VALUE.contains(&first.as_str()) {
            rest = tail.get(1..).unwrap_or_default();
        } else if first.starts_with('-') {
            rest = tail;
        } else {
            break;
        }
    }
    let (subcommand, sub_args) = rest.split_first()?;
    let opts = options(sub_args);
    match subcommand.as_str() {
        // Every `git reset` and `git rm` prompts, as in the reference; the
        // destructive forms say why.
        "reset" => Some(
            opts.iter()
                .find(|arg| *arg == "--hard" || *arg == "--merge")
                .map(|flag| format!("git reset {flag} discards uncommitted changes"))
                .unwrap_or_else(|| "git reset moves HEAD and can discard changes".into()),
        ),
        "clean" => opts
            .iter()
            .find(|arg| *arg == "--force" || has_short(arg, 'f'))
            .map(|flag| format!("git clean {flag} deletes untracked files")),
        "rm" => Some(
            opts.iter()
                .find(|arg| *arg == "--force" || has_short(arg, 'f'))
                .map(|flag| format!("git rm {flag} deletes files even with uncommitted changes"))
                .unwrap_or_else(|| "git rm deletes tracked files".into()),
        ),
        "push" => git_push(sub_args),
        _ => None,
    }
}

fn git_push(args: &[String]) -> Option<String> {
    let opts = options(args);
    if let Some(flag) = opts.iter().find(|arg| {
        *arg == "--force"
            || *arg == "--mirror"
            || arg.starts_with("--force-with-lease")
            || has_short(arg, 'f')
    }) {
        return Some(format!("git push {flag} can overwrite remote history"));
    }
    if let Some(flag) = opts
        .iter()
        .find(|arg| *arg == "--delete" || has_short(arg, 'd'))
    {
        return Some(format!("git push {flag} deletes remote branches or tags"));
    }
    let refspec = args
        .iter()
        .filter(|arg| !arg.starts_with('-'))
        .find(|arg| arg.starts_with('+'));
    if let Some(refspec) = refspec {
        return Some(format!("git push {refspec} force-updates a remote ref"));
    }
    let refspec = args
        .iter()
        .filter(|arg| !arg.starts_with('-'))
        .find(|arg| arg.starts_with(':'));
    refspec.map(|refspec| format!("git push {refspec} deletes a remote ref"))
}

fn recursive_on_system_tree(name: &str, args: &[String]) -> Option<String> {
    let opts = options(args);
    let recursive = opts
        .iter()
        .any(|arg| arg == "--recursive" || has_short(arg, 'R'));
    if !recursive {
        return None;
    }
    let target = args
        .iter()
        .filter(|arg| !arg.starts_with('-'))
        .find(|arg| is_system_tree(arg))?;
    Some(format!(
        "{name} -R on `{target}` changes a whole system or home directory tree"
    ))
}

/// `/`, a top-level directory, a home directory, or a spelling of `$HOME`.
fn is_system_tree(target: &str) -> bool {
    let target = target.trim_end_matches('/');
    if target.is_empty() {
        // `/`, `//`, …
        return true;
    }
    if target == "~"
        || (target.starts_with('~') && !target.contains('/'))
        || target == "$HOME"
        || target == "${HOME}"
    {
        return true;
    }
    if !target.starts_with('/') {
        return false;
    }
    let components: Vec<&str> = target
        .split('/')
        .filter(|component| !component.is_empty() && *component != ".")
        .collect();
    matches!(components.as_slice(), [] | [_] | ["home" | "Users", _])
}

fn sudo(args: &[String]) -> String {
    // Options that take a value as the next argument.
    const WITH_VALUE: &[&str] = &[
        "-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U", "--user", "--group", "--chdir",
    ];
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        if first == "--" {
            rest = tail;
            break;
        } else if WITH_VALUE.contains(&first.as_str()) {
            rest = tail.get(1..).unwrap_or_default();
        } else if first.starts_with('-') {
            rest = tail;
        } else {
            break;
        }
    }
    let Some((program, wrapped_args)) = rest.split_first() else {
        return "sudo runs commands as root".to_owned();
    };
    let command = rest.join(" ");
    let program = Path::new(OsStr::new(program))
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.clone());
    match reason(&program, wrapped_args) {
        Some(inner) => format!("sudo runs `{command}` as root: {inner}"),
        None => format!("sudo runs `{command}` as root"),
    }
}
