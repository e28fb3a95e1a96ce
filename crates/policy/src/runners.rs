//! Programs that run code the sandbox can write, by design: build tools and
//! package managers run the project's build files and scripts from their
//! working directory, interpreters and shells run the script or command
//! they are given, and a few utilities run any program named in their
//! arguments. An `allow` rule for one of them gives sandboxed code a way
//! out of the sandbox: it writes a `Makefile`, a `package.json` script, a
//! `build.rs`, a Python file, and then runs the allowed program on it.
//! The server warns about such rules at start, and `check` for the rules a
//! command matches. (`prompt` asks a human each time and is not flagged.)
//!
//! | programs | why |
//! |---|---|
//! | `make`, `gmake`, `cmake`, `ninja`, `meson`, `just`, `task` | run the project's build file |
//! | `npm`, `npx`, `yarn`, `pnpm`, `bun`, `deno` | run `package.json` scripts and packages from the project |
//! | `cargo` | runs `build.rs` and the project's code, and `.cargo/config.toml` from the working directory |
//! | `go` | runs `go generate` commands and the project's code, with `go.mod`/`go.work` from the working directory |
//! | `gradle`, `gradlew`, `mvn`, `mvnw`, `ant`, `sbt` | run the project's build scripts |
//! | `pip`, `pip3`, `uv`, `poetry`, `pipenv`, `tox`, `nox`, `pytest` | run `setup.py`, build back-ends or test code from the project |
//! | `bundle`, `rake`, `gem`, `composer`, `php`, `java` | run the project's code or build files |
//! | `python`, `python3`, `python3.*`, `node`, `perl`, `ruby`, `lua`, `Rscript` | interpreters: run the script they are given (or read from the working directory) |
//! | `sh`, `bash`, `zsh`, `dash`, `ksh`, `fish`, `csh`, `tcsh` | shells: run any command |
//! | `env`, `xargs`, `nice`, `nohup`, `timeout`, `stdbuf`, `setsid`, `watch`, `find` | run the program named in their arguments (`find -exec`) |

/// Program names (basenames; an entry ending in `*` is a prefix) that run
/// code from their working directory or arguments by design, each with the
/// reason shown in warnings.
pub const CODE_RUNNERS: &[(&str, &str)] = &[
    ("make", BUILD_FILE),
    ("gmake", BUILD_FILE),
    ("cmake", BUILD_FILE),
    ("ninja", BUILD_FILE),
    ("meson", BUILD_FILE),
    ("just", BUILD_FILE),
    ("task", BUILD_FILE),
    ("npm", PACKAGE_SCRIPTS),
    ("npx", PACKAGE_SCRIPTS),
    ("yarn", PACKAGE_SCRIPTS),
    ("pnpm", PACKAGE_SCRIPTS),
    ("bun", PACKAGE_SCRIPTS),
    ("deno", PACKAGE_SCRIPTS),
    (
        "cargo",
        "it runs build.rs and the project's code, and reads .cargo/config.toml from the working directory",
    ),
    (
        "go",
        "it runs `go generate` commands and the project's code, with go.mod from the working directory",
    ),
    ("gradle", BUILD_FILE),
    ("gradlew", BUILD_FILE),
    ("mvn", BUILD_FILE),
    ("mvnw", BUILD_FILE),
    ("ant", BUILD_FILE),
    ("sbt", BUILD_FILE),
    ("pip", PROJECT_CODE),
    ("pip3", PROJECT_CODE),
    ("uv", PROJECT_CODE),
    ("poetry", PROJECT_CODE),
    ("pipenv", PROJECT_CODE),
    ("tox", PROJECT_CODE),
    ("nox", PROJECT_CODE),
    ("pytest", PROJECT_CODE),
    ("bundle", PROJECT_CODE),
    ("rake", PROJECT_CODE),
    ("gem", PROJECT_CODE),
    ("composer", PROJECT_CODE),
    ("php", INTERPRETER),
    ("java", PROJECT_CODE),
    ("python", INTERPRETER),
    ("python3", INTERPRETER),
    ("python3.*", INTERPRETER),
    ("node", INTERPRETER),
    ("perl", INTERPRETER),
    ("ruby", INTERPRETER),
    ("lua", INTERPRETER),
    ("Rscript", INTERPRETER),
    ("sh", SHELL),
    ("bash", SHELL),
    ("zsh", SHELL),
    ("dash", SHELL),
    ("ksh", SHELL),
    ("fish", SHELL),
    ("csh", SHELL),
    ("tcsh", SHELL),
    ("env", RUNS_ARGUMENT),
    ("xargs", RUNS_ARGUMENT),
    ("nice", RUNS_ARGUMENT),
    ("nohup", RUNS_ARGUMENT),
    ("timeout", RUNS_ARGUMENT),
    ("stdbuf", RUNS_ARGUMENT),
    ("setsid", RUNS_ARGUMENT),
    ("watch", RUNS_ARGUMENT),
    ("find", "it runs the program named by -exec or -ok"),
];

const BUILD_FILE: &str = "it runs the project's build file from the working directory";
const PACKAGE_SCRIPTS: &str = "it runs package.json scripts and packages from the project";
const PROJECT_CODE: &str = "it runs the project's code or build files";
const INTERPRETER: &str = "it runs the script it is given, which sandboxed code can write";
const SHELL: &str = "a shell runs any command";
const RUNS_ARGUMENT: &str = "it runs the program named in its arguments";

/// Why `name` (a program's basename, or a path whose basename is used)
/// gives sandboxed code a way out when allowed; `None` when it is not in
/// [`CODE_RUNNERS`].
pub fn code_runner(name: &str) -> Option<&'static str> {
    let name = name.rsplit('/').next().unwrap_or(name);
    CODE_RUNNERS
        .iter()
        .find(|(entry, _)| match entry.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix) && name.len() > prefix.len(),
            None => *entry == name,
        })
        .map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_prefixes() {
        assert_eq!(code_runner("make"), Some(BUILD_FILE));
        assert_eq!(code_runner("/usr/bin/python3.11"), Some(INTERPRETER));
        assert_eq!(code_runner("python3."), None);
        assert_eq!(code_runner("git"), None);
        assert_eq!(code_runner("cat"), None);
    }
}
