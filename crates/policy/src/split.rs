//! Shell-like splitting of `match`/`not_match` example strings: words
//! separated by white space, `'single'` quotes taken literally, `"double"`
//! quotes where `\` escapes `"`, `\`, `$`, `` ` `` and newline, and `\`
//! outside quotes escaping the next character. No expansion of any kind.

/// Splits `text` into words; `Err` names what is malformed.
pub(crate) fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    // `None` between words; `Some` once a word has started (even `''`).
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err(format!("unterminated single quote in {text:?}")),
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => current.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                current.push('\\');
                                current.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {text:?}")),
                        },
                        Some(c) => current.push(c),
                        None => return Err(format!("unterminated double quote in {text:?}")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("trailing backslash in {text:?}")),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn words_and_quotes() {
        let cases: &[(&str, &[&str])] = &[
            ("git status", &["git", "status"]),
            ("  git\t status \n", &["git", "status"]),
            ("echo 'a b' \"c d\"", &["echo", "a b", "c d"]),
            ("echo a'b'\"c\"", &["echo", "abc"]),
            ("echo '' \"\"", &["echo", "", ""]),
            (
                r#"echo "a\"b" 'x\y' a\ b"#,
                &["echo", "a\"b", "x\\y", "a b"],
            ),
            (r#"echo "\n""#, &["echo", "\\n"]),
            ("", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(split(text).unwrap(), *expected, "splitting {text:?}");
        }
    }

    #[test]
    fn malformed() {
        for text in ["echo 'a", "echo \"a", "echo a\\"] {
            assert!(split(text).is_err(), "{text:?} should not split");
        }
    }
}
