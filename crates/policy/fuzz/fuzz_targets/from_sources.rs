//! Fuzz target: arbitrary text as a `.rules` file must load or fail with a
//! located error, never panic; a loaded policy must check commands without
//! panicking. (Starlark can loop for a long time on inputs like
//! `[0 for _ in range(1 << 40)]`: libFuzzer reports those as timeouts.)

#![no_main]

use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;
use policy::{MatchOptions, Policy};

fuzz_target!(|text: &str| {
    let sources = [("fuzz.rules".to_owned(), text.to_owned())];
    match Policy::from_sources(&sources) {
        Ok(policy) => {
            // Use the input's own words as a command line.
            let words: Vec<OsString> = text
                .split_whitespace()
                .take(8)
                .map(OsString::from)
                .collect();
            if let Some((program, args)) = words.split_first() {
                for preserve_program_paths in [false, true] {
                    let evaluation = policy.check(
                        program,
                        args,
                        MatchOptions {
                            preserve_program_paths,
                        },
                    );
                    assert_eq!(
                        evaluation.decision.is_some(),
                        !evaluation.matched_rules.is_empty()
                    );
                }
                let _ = policy::dangerous_reason(program, args);
            }
        }
        Err(policy::Error::Invalid { location, .. }) => {
            assert!(location.starts_with("fuzz.rules"), "location {location:?}");
        }
    }
});
