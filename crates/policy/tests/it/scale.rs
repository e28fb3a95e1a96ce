//! A large generated rules file (5,000 literal `prefix_rule` calls) loads
//! and checks correctly. Correctness only; timing lives in `cargo xtask bench`.

use std::fmt::Write;

use policy::Decision;

use policy::MatchOptions;

use crate::{check_policy, load, prefixes};

/// 5,000 rules over 100 programs (`tool0`..`tool99`), 50 rules each:
/// rule `i` is `["tool{i % 100}", "sub{i}"]`, forbidden when `i % 7 == 0`,
/// else prompt when `i % 3 == 0`, else allow; every 10th has an example.
pub(crate) fn generated_rules(count: usize) -> String {
    let mut text = String::from("# generated\n");
    for i in 0..count {
        let decision = match i {
            _ if i % 7 == 0 => "forbidden",
            _ if i % 3 == 0 => "prompt",
            _ => "allow",
        };
        let tool = i % 100;
        write!(
            text,
            r#"prefix_rule(["tool{tool}", "sub{i}", ["a", "b"]], decision = "{decision}""#
        )
        .unwrap();
        if i % 10 == 0 {
            write!(
                text,
                r#", match = ["tool{tool} sub{i} b x"], not_match = ["tool{tool} sub{i} c"]"#
            )
            .unwrap();
        }
        text.push_str(")\n");
    }
    text
}

#[test]
fn five_thousand_rules() {
    let rules = generated_rules(5_000);
    let policy = load(&rules);
    assert_eq!(policy.rule_count(), 5_000);

    let cases: &[(&[&str], Option<Decision>)] = &[
        (&["/usr/bin/tool0", "sub0", "a"], Some(Decision::Forbidden)),
        (
            &["/usr/bin/tool1", "sub1", "b", "more"],
            Some(Decision::Allow),
        ),
        (&["/usr/bin/tool3", "sub3", "a"], Some(Decision::Prompt)),
        (&["/usr/bin/tool99", "sub4999", "a"], Some(Decision::Allow)),
        (&["/usr/bin/tool99", "sub4998", "a"], None),
        (&["/usr/bin/tool1", "sub1", "c"], None),
        (&["/usr/bin/tool100", "sub100", "a"], None),
        (&["/usr/bin/tool7", "sub7"], None),
    ];
    for (argv, expected) in cases {
        let evaluation = check_policy(&policy, argv, MatchOptions::default());
        assert_eq!(evaluation.decision, *expected, "{argv:?}: {evaluation:#?}");
    }
    let evaluation = check_policy(
        &policy,
        &["/usr/bin/tool41", "sub4241", "b"],
        MatchOptions::default(),
    );
    assert_eq!(evaluation.decision, Some(Decision::Allow));
    assert_eq!(prefixes(&evaluation), [["tool41", "sub4241", "b"]]);
    assert_eq!(evaluation.matched_rules[0].location.line, 4_243);
}
