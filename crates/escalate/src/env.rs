//! The environment of escalated programs: the server's own (the user's),
//! plus a short allow-list of harmless variables taken from the request.
//!
//! The request's environment was written by sandboxed code, and no
//! denylist of it can be complete: `HOME`, `XDG_CONFIG_HOME` and `GIT_DIR`
//! choose which configuration a program loads, `GIT_TRACE` makes git write
//! to any file, `LD_PRELOAD` loads code, and every program has variables of
//! its own. So an escalated program starts from the server's environment
//! and takes from the request only [`PASSED`] (terminal, locale, time
//! zone, colours) and the names the user adds (`--pass-env`). A name that
//! selects code or configuration ([`NEVER_PASSED`]) cannot be added.
//! (The reference layered the request's whole environment on the
//! server's.)

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Variables taken from the request, when their value is harmless (see
/// [`harmless`]). Each only describes the terminal or the user's language:
///
/// - `TERM`, `COLORTERM`, `COLUMNS`, `LINES`: the terminal's type, colours
///   and size, so output fits the terminal the command writes to;
/// - `NO_COLOR`, `FORCE_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`: colours on or
///   off (a command piping output sets them);
/// - `LANG`, `LANGUAGE`, `LC_*`: messages and formats (`LC_ALL=C` for
///   parseable output);
/// - `TZ`: the time zone of dates shown.
///
/// Entries ending in `*` are prefixes.
pub const PASSED: &[&str] = &[
    "TERM",
    "COLORTERM",
    "COLUMNS",
    "LINES",
    "NO_COLOR",
    "FORCE_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
];

/// Names that are never taken from the request, even when the user names
/// them: each loads code or configuration into the program, chooses where
/// it reads or writes, or steers our own plumbing. `--pass-env` with one
/// of them is a configuration error. Entries ending in `*` are prefixes.
pub const NEVER_PASSED: &[&str] = &[
    // Where programs find programs, configuration and their working directory.
    "PATH",
    "HOME",
    "PWD",
    "OLDPWD",
    "XDG_*",
    "TMPDIR",
    "SHELL",
    // Dynamic loaders and libc.
    "LD_*",
    "DYLD_*",
    "GCONV_PATH",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "MALLOC_*",
    "GLIBC_TUNABLES",
    "NLSPATH",
    "LOCPATH",
    "TERMINFO",
    "TERMINFO_DIRS",
    "TERMCAP",
    // Shells.
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_*",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    // Interpreters and their package managers.
    "PYTHON*",
    "PIP_*",
    "VIRTUAL_ENV",
    "NODE_*",
    "NPM_*",
    "PERL*",
    "RUBY*",
    "GEM_*",
    "BUNDLE_*",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "LUA_*",
    "CARGO_*",
    "RUSTC*",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "GO*",
    // Git, ssh, gpg and the programs they run.
    "GIT_*",
    "SSH_*",
    "GNUPGHOME",
    "GPG_*",
    "PAGER",
    "LESS*",
    "EDITOR",
    "VISUAL",
    "BROWSER",
    // Our own plumbing: the escalated program is not wrapped.
    "BASH_EXEC_WRAPPER",
    "CODEX_*",
];

/// Variables of the server's environment not given to escalated programs:
/// the plumbing of the shell call that started the server, if any.
const SERVER_PLUMBING: &[&str] = &["BASH_EXEC_WRAPPER", "CODEX_ESCALATE_*"];

/// The longest value taken from the request.
const MAX_VALUE: usize = 256;

/// A name given to `--pass-env` that cannot be passed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassEnvError {
    #[error(
        "environment variable name {0:?} is not a plain name (letters, digits and `_`, not starting with a digit)"
    )]
    Invalid(String),
    #[error(
        "environment variable {0} cannot be passed to escalated programs: it selects code or configuration they load (it always comes from the server's environment)"
    )]
    Never(String),
}

/// Where escalated programs get their environment from.
#[derive(Debug, Clone)]
pub struct EnvPolicy {
    /// The server's environment, without [`SERVER_PLUMBING`].
    base: Vec<(OsString, OsString)>,
    /// [`PASSED`] plus the user's names.
    passed: Vec<String>,
}

impl Default for EnvPolicy {
    /// The server's own environment, [`PASSED`] only.
    fn default() -> Self {
        EnvPolicy::new(std::env::vars_os(), &[]).unwrap_or_else(|_| unreachable!("no extra names"))
    }
}

fn matches(pattern: &str, key: &[u8]) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix.as_bytes()),
        None => key == pattern.as_bytes(),
    }
}

impl EnvPolicy {
    /// `server_env` (the server's environment) as the base, [`PASSED`] and
    /// `extra` (exact names) taken from requests.
    pub fn new(
        server_env: impl IntoIterator<Item = (OsString, OsString)>,
        extra: &[String],
    ) -> Result<EnvPolicy, PassEnvError> {
        let mut passed: Vec<String> = PASSED.iter().map(|s| s.to_string()).collect();
        for name in extra {
            let plain = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !plain {
                return Err(PassEnvError::Invalid(name.clone()));
            }
            if NEVER_PASSED.iter().any(|p| matches(p, name.as_bytes())) {
                return Err(PassEnvError::Never(name.clone()));
            }
            if !passed.contains(name) {
                passed.push(name.clone());
            }
        }
        let base = server_env
            .into_iter()
            .filter(|(k, _)| !SERVER_PLUMBING.iter().any(|p| matches(p, k.as_bytes())))
            .collect();
        Ok(EnvPolicy { base, passed })
    }

    /// The names taken from requests (prefixes end in `*`).
    pub fn passed(&self) -> &[String] {
        &self.passed
    }

    /// The request's variables an escalated program gets, as `(key,
    /// value)`: allow-listed names with harmless values. The first entry
    /// of a name counts, as `getenv` finds it.
    pub fn from_request<'a>(&self, env: &'a [OsString]) -> Vec<(&'a OsStr, &'a OsStr)> {
        let mut out: Vec<(&OsStr, &OsStr)> = Vec::new();
        for kv in env {
            let bytes = kv.as_bytes();
            let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (key, value) = (&bytes[..eq], &bytes[eq + 1..]);
            if key.is_empty()
                || !self.passed.iter().any(|p| matches(p, key))
                || out.iter().any(|(k, _)| k.as_bytes() == key)
                || !harmless(key, value)
            {
                continue;
            }
            out.push((OsStr::from_bytes(key), OsStr::from_bytes(value)));
        }
        out
    }

    /// The variables of the request an escalated program would get with a
    /// value other than the server's (for approval questions).
    pub fn changes<'a>(&self, env: &'a [OsString]) -> Vec<(&'a OsStr, &'a OsStr)> {
        self.from_request(env)
            .into_iter()
            .filter(|(k, v)| !self.base.iter().any(|(bk, bv)| bk == k && bv == v))
            .collect()
    }

    /// The whole environment of an escalated program started in `cwd`: the
    /// server's, the request's allow-listed variables over it, and `PWD`.
    pub fn environment(&self, request_env: &[OsString], cwd: &Path) -> Vec<(OsString, OsString)> {
        let mut env: HashMap<&OsStr, &OsStr> = self
            .base
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
            .collect();
        for (k, v) in self.from_request(request_env) {
            env.insert(k, v);
        }
        env.insert(OsStr::new("PWD"), cwd.as_os_str());
        let mut out: Vec<(OsString, OsString)> = env
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        out.sort();
        out
    }
}

/// Whether `value` of the allow-listed `key` is harmless: short, and not a
/// path where the program would read one. glibc reads a locale from a path
/// in `LANG`/`LC_*`, gettext a message catalogue (whose format strings it
/// trusts) from one in `LANGUAGE`, ncurses a terminal description from one
/// in `TERM`, and the time zone code a file from `TZ=/path` or
/// `TZ=:/path` (a zone name such as `Europe/Paris` is fine, `..` is not).
fn harmless(key: &[u8], value: &[u8]) -> bool {
    if value.len() > MAX_VALUE || value.contains(&0) {
        return false;
    }
    if key == b"TZ" {
        let name = value.strip_prefix(b":").unwrap_or(value);
        return !name.starts_with(b"/") && !value.windows(2).any(|w| w == b"..");
    }
    if matches!(key, b"TERM" | b"LANG" | b"LANGUAGE") || key.starts_with(b"LC_") {
        return !value.contains(&b'/');
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &[&str]) -> EnvPolicy {
        let server = [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/user"),
            ("TERM", "xterm"),
            ("CODEX_ESCALATE_SOCKET", "5"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        EnvPolicy::new(server, &extra).unwrap()
    }

    fn request(vars: &[&str]) -> Vec<OsString> {
        vars.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_server_environment_wins_except_for_the_allow_list() {
        let p = policy(&["MY_TOOL_OPTS"]);
        let req = request(&[
            "HOME=/tmp/h",
            "PATH=/tmp/bin",
            "XDG_CONFIG_HOME=/tmp/x",
            "GIT_TRACE=/etc/passwd",
            "GIT_COMMON_DIR=/tmp/c",
            "LD_PRELOAD=/tmp/x.so",
            "TERM=dumb",
            "TERM=second",
            "LC_ALL=C",
            "NO_COLOR=1",
            "MY_TOOL_OPTS=-v",
            "OTHER=1",
            "PWD=/fake",
        ]);
        let env = p.environment(&req, Path::new("/work"));
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.to_str().unwrap())
        };
        assert_eq!(get("HOME"), Some("/home/user"));
        assert_eq!(get("PATH"), Some("/usr/bin:/bin"));
        for absent in [
            "XDG_CONFIG_HOME",
            "GIT_TRACE",
            "GIT_COMMON_DIR",
            "LD_PRELOAD",
            "OTHER",
            "CODEX_ESCALATE_SOCKET",
        ] {
            assert_eq!(get(absent), None, "{absent}");
        }
        assert_eq!(get("TERM"), Some("dumb"));
        assert_eq!(get("LC_ALL"), Some("C"));
        assert_eq!(get("NO_COLOR"), Some("1"));
        assert_eq!(get("MY_TOOL_OPTS"), Some("-v"));
        assert_eq!(get("PWD"), Some("/work"));
        // What an approval shows: allow-listed and different from the server's.
        let changes: Vec<String> = p
            .changes(&request(&["TERM=xterm", "LC_ALL=C", "HOME=/tmp/h"]))
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_str().unwrap(), v.to_str().unwrap()))
            .collect();
        assert_eq!(changes, ["LC_ALL=C"]);
    }

    #[test]
    fn values_that_name_files_are_not_passed() {
        let p = policy(&[]);
        let passed = |kv: &str| !p.from_request(&request(&[kv])).is_empty();
        for ok in [
            "TZ=Europe/Paris",
            "TZ=:Europe/Paris",
            "TZ=UTC",
            "LANG=fr_FR.UTF-8",
            "TERM=xterm-256color",
            "COLUMNS=80",
        ] {
            assert!(passed(ok), "{ok}");
        }
        for bad in [
            "TZ=/tmp/zone",
            "TZ=:/tmp/zone",
            "TZ=../../tmp/z",
            "LANG=/tmp/locale",
            "LC_ALL=../x/y",
            "LANGUAGE=/tmp",
            "TERM=/tmp/t",
        ] {
            assert!(!passed(bad), "{bad}");
        }
        assert!(!passed(&format!("TERM={}", "x".repeat(300))));
    }

    #[test]
    fn names_that_load_code_cannot_be_added() {
        let new = |name: &str| EnvPolicy::new(std::iter::empty(), &[name.to_string()]);
        for never in [
            "LD_PRELOAD",
            "PATH",
            "HOME",
            "XDG_CONFIG_HOME",
            "GIT_DIR",
            "PYTHONPATH",
            "CODEX_HOME",
            "BASH_FUNC_x%%",
        ] {
            assert!(new(never).is_err(), "{never}");
        }
        assert!(matches!(new("LD_PRELOAD"), Err(PassEnvError::Never(_))));
        assert!(matches!(new("A-B"), Err(PassEnvError::Invalid(_))));
        assert!(matches!(new("1A"), Err(PassEnvError::Invalid(_))));
        assert!(new("MY_VAR").is_ok());
    }
}
