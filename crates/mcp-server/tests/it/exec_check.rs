//! Issue 15 through MCP: a `prompt` rule asks the human for an exec that
//! does not go through the shell's wrapper, and the answer holds (the
//! program then runs inside the sandbox); the result lists what was denied.

use crate::util::{Reply, setup};

const PROMPT_RM: &str = r#"prefix_rule(pattern = ["rm"], decision = "prompt")"#;
const FORBID_RM: &str =
    r#"prefix_rule(pattern = ["rm"], decision = "forbidden", justification = "keep it")"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_rule_asks_for_execs_of_other_programs() {
    for (reply, removed) in [(Reply::Accept, true), (Reply::Decline, false)] {
        let s = setup()
            .rules("p.rules", PROMPT_RM)
            .reply(reply)
            .start()
            .await;
        let f = s.work.join("f");
        std::fs::write(&f, "x").unwrap();
        let r = s
            .shell(&format!("env rm {}; echo rc=$?", f.display()))
            .await;
        assert_eq!(!f.exists(), removed, "{reply:?}: {r:?}");
        let asked = s.asked();
        assert_eq!(asked.len(), 1, "{reply:?}: {asked:?}");
        assert!(
            asked[0].contains(&format!("rm {}", f.display()))
                && asked[0].ends_with("(inside the sandbox)?"),
            "{asked:?}"
        );
        if !removed {
            assert!(
                r.output
                    .contains("Execution denied: User declined execution"),
                "{r:?}"
            );
            assert_eq!(
                r.structured["denied"],
                serde_json::json!(["User declined execution"]),
                "{r:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_off_the_wrapper_are_listed_in_the_result() {
    let s = setup().rules("f.rules", FORBID_RM).start().await;
    let f = s.work.join("f");
    std::fs::write(&f, "x").unwrap();
    let r = s
        .shell(&format!(
            "python3 -c 'import os, sys; os.execv(\"/bin/rm\", [\"rm\", sys.argv[1]])' {}",
            f.display()
        ))
        .await;
    assert!(f.exists(), "{r:?}");
    let denied = r.structured["denied"].to_string();
    assert!(
        denied.contains(&format!("rm {}", f.display())) && denied.contains("keep it"),
        "{r:?}"
    );
    // The plain shell path reports as before, without the list.
    let r = s.shell(&format!("rm {}", f.display())).await;
    assert!(f.exists(), "{r:?}");
    assert!(r.output.starts_with("Execution denied:"), "{r:?}");
}

/// Execs no rule names run, from any program, and fast-path: many at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_programs_run_from_any_process_concurrently() {
    let s = setup().rules("f.rules", FORBID_RM).start().await;
    let r = s
        .shell("seq 400 | xargs -P 16 -n 1 /bin/echo | wc -l; env true && echo env-ok")
        .await;
    assert_eq!(r.output, "400\nenv-ok\n", "{r:?}");
    assert!(r.structured.get("denied").is_none(), "{r:?}");
}
