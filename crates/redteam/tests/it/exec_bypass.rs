//! Issue 15: every exec is judged, not only the patched Bash's. A
//! `forbidden` rule for `rm` must hold however the sandbox starts it: each
//! way here deleted the file on the code before the exec check (the wrapper
//! saw only Bash's own execs), and must now leave it in place, say
//! `Execution denied`, and list the denial in the call's result.

use crate::harness::{self, Server};

const FORBID_RM: &str = r#"
prefix_rule(pattern = ["rm"], decision = "forbidden", justification = "keep the files")
"#;

/// The ways, each a shell snippet deleting `$F` with `rm` (`$F` is set by
/// the caller). The file must survive every one.
const WAYS: &[(&str, &str)] = &[
    ("env", "env rm \"$F\""),
    ("nohup", "nohup rm \"$F\""),
    ("timeout", "timeout 5 rm \"$F\""),
    ("nice", "nice rm \"$F\""),
    ("xargs", "echo \"$F\" | xargs rm"),
    ("find-exec", "find \"$F\" -exec rm {} \\;"),
    (
        "python-execv",
        "python3 -c 'import os, sys; os.execv(\"/bin/rm\", [\"rm\", sys.argv[1]])' \"$F\"",
    ),
    ("dash", "sh -c 'rm \"$1\"' sh \"$F\""),
    ("system-bash", "/bin/bash -c 'rm \"$1\"' bash \"$F\""),
    (
        "sh-script",
        "printf '#!/bin/sh\\nrm \"$1\"\\n' > ./del.sh && chmod +x ./del.sh && ./del.sh \"$F\"",
    ),
    (
        "rm-shebang",
        "printf '#!/bin/rm\\n' > \"$F.x\" && chmod +x \"$F.x\" && \"$F.x\" \"$F\"",
    ),
    ("unset-wrapper", "unset BASH_EXEC_WRAPPER; rm \"$F\""),
    ("empty-wrapper", "BASH_EXEC_WRAPPER= rm \"$F\""),
    ("space-wrapper", "BASH_EXEC_WRAPPER=' x' rm \"$F\""),
    ("ask-list", "CODEX_ESCALATE_ASK=nothing rm \"$F\""),
];

async fn attempt(s: &Server, way: &str, snippet: &str) -> (bool, harness::Shell) {
    let file = s.work.join(format!("keep-{way}"));
    std::fs::write(&file, "x").unwrap();
    let r = s
        .shell(&format!("F={}; {snippet}; echo rc=$?", file.display()))
        .await;
    (file.exists(), r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_holds_for_every_way_of_starting_rm() {
    let s = harness::start(FORBID_RM).await;
    let base = s.baseline().await;
    let mut escaped = Vec::new();
    for (way, snippet) in WAYS {
        let (kept, r) = attempt(&s, way, snippet).await;
        if !kept {
            escaped.push(format!("{way}: {}", r.output));
        } else {
            assert!(
                r.output.contains("Execution denied:") && r.output.contains("keep the files"),
                "{way}: no denial reported: {}",
                r.output
            );
        }
    }
    assert!(escaped.is_empty(), "rm ran: {escaped:#?}");
    s.assert_contained(base, &[]).await;
}

/// With `--exec-check bash-only`, the old behaviour: the ways around Bash's
/// wrapper run `rm`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_only_judges_the_shell_alone() {
    let s = harness::start_with_args(FORBID_RM, &["--exec-check", "bash-only"]).await;
    let (kept, r) = attempt(&s, "env", "env rm \"$F\"").await;
    assert!(!kept, "env rm was stopped under bash-only: {}", r.output);
    let (kept, r) = attempt(&s, "plain", "rm \"$F\"").await;
    assert!(kept, "the wrapper's own check is gone: {}", r.output);
}

/// An executable FIFO, exec'd (by Python: Bash itself blocks reading a
/// file whose exec failed): the kernel refuses it (`EACCES`), and the
/// exec check must not stall on it. The check read the first line of every
/// program to find a `#!` interpreter by opening it, which for a FIFO
/// blocks until a writer comes: every later exec of the call waited with
/// it, and the call never ended. Now only a regular file is read, opened
/// again from the file found, without blocking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executable_fifo_does_not_stall_the_exec_check() {
    let s = harness::start(FORBID_RM).await;
    let call = s.shell(
        "mkfifo ./run.fifo && chmod +x ./run.fifo; \
         python3 -c 'import os\ntry: os.execv(\"./run.fifo\", [\"x\"])\nexcept OSError as e: print(\"errno\", e.errno)'; \
         /bin/true && echo after",
    );
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), call)
        .await
        .expect("the call stalled on the fifo's exec");
    assert!(
        r.output.contains(&format!("errno {}", libc::EACCES)),
        "{}",
        r.output
    );
    assert!(r.output.contains("after"), "{}", r.output);
    // The check still judges what follows.
    let file = s.work.join("keep-after-fifo");
    std::fs::write(&file, "x").unwrap();
    let r = s
        .shell(&format!("env rm {}; echo rc=$?", file.display()))
        .await;
    assert!(file.exists(), "rm ran: {}", r.output);
}
