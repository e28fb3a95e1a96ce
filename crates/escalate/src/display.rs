//! Untrusted bytes shown to people: approval questions, denials, notices
//! and log lines. Every argument is quoted so that its boundaries and every
//! control or invisible character are visible, the way Bash would read it
//! back: bare when it is only safe characters, `'...'` when it is only
//! visible ones, `$'...'` with escapes (`\n`, `\x1b`, `\xff` for a byte that
//! is not UTF-8, `\u202e` for an invisible character) otherwise. A newline
//! or an escape sequence in argv can thus neither draw a line of its own in
//! a question nor hide what follows.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

/// Most bytes of a command line in one log line; the rest is counted, not
/// shown.
pub const LOG_LIMIT: usize = 1024;

/// `arg`, quoted (see the module docs).
pub fn quote(arg: &OsStr) -> String {
    let bytes = arg.as_bytes();
    let mut out = String::new();
    quote_into(bytes, &mut out);
    out
}

fn quote_into(bytes: &[u8], out: &mut String) {
    if bytes.is_empty() {
        out.push_str("''");
        return;
    }
    if bytes.iter().all(|&b| is_safe(b)) {
        // Only ASCII: valid UTF-8.
        out.push_str(std::str::from_utf8(bytes).unwrap_or_default());
        return;
    }
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.chars().all(visible)
    {
        out.push('\'');
        out.push_str(&text.replace('\'', r"'\''"));
        out.push('\'');
        return;
    }
    out.push_str("$'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str(r"\\"),
                '\'' => out.push_str(r"\'"),
                '\n' => out.push_str(r"\n"),
                '\t' => out.push_str(r"\t"),
                '\r' => out.push_str(r"\r"),
                c if (c as u32) < 0x80 && !visible(c) => {
                    let _ = write!(out, r"\x{:02x}", c as u32);
                }
                c if visible(c) => out.push(c),
                c if (c as u32) <= 0xffff => {
                    let _ = write!(out, r"\u{:04x}", c as u32);
                }
                c => {
                    let _ = write!(out, r"\U{:08x}", c as u32);
                }
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, r"\x{b:02x}");
        }
    }
    out.push('\'');
}

/// Characters Bash leaves alone unquoted (and that no terminal treats
/// specially).
fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b)
}

/// Whether `c` shows as itself: printable ASCII, letters and digits of any
/// script, and the common punctuation and symbol blocks; not controls,
/// separators other than the space, format characters (bidirectional
/// overrides, zero-width ones), combining marks, variation selectors or
/// private use.
fn visible(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_alphanumeric() {
        // Letters include a few invisible fillers.
        return !matches!(u, 0x115f | 0x1160 | 0x3164 | 0xffa0);
    }
    matches!(u,
        0xa1..=0xac | 0xae..=0xbf      // Latin-1 punctuation and symbols
        | 0xd7 | 0xf7
        | 0x2010..=0x2027              // dashes, quotes, bullets, ellipsis
        | 0x2030..=0x205e              // per mille, primes, other punctuation
        | 0x20a0..=0x20c0              // currency
        | 0x2100..=0x214f              // letterlike symbols
        | 0x2190..=0x23ff              // arrows, mathematical, technical
        | 0x2460..=0x27bf              // enclosed, box drawing, shapes, dingbats
        | 0x2900..=0x2bff              // more arrows and mathematical symbols
        | 0x3001..=0x3003 | 0x300c..=0x300f
        | 0x1f300..=0x1faff            // pictographs and emoji
    )
}

/// `program arg1 arg2 …`, every word quoted, whole.
pub fn command_line<'a>(program: &'a OsStr, args: impl IntoIterator<Item = &'a OsStr>) -> String {
    let (line, _) = command_line_within(program, args, usize::MAX);
    line
}

/// `program arg1 arg2 …`, quoted, cut once it is longer than `limit` bytes;
/// returns the text and how many bytes of argv it leaves out (0 when whole).
/// Arguments past the limit are counted, not quoted: a megabyte of argv
/// costs no megabyte of text.
pub fn command_line_within<'a>(
    program: &'a OsStr,
    args: impl IntoIterator<Item = &'a OsStr>,
    limit: usize,
) -> (String, usize) {
    let mut line = String::new();
    let mut omitted = 0usize;
    for (i, word) in std::iter::once(program).chain(args).enumerate() {
        let bytes = word.as_bytes();
        if omitted > 0 {
            omitted += 1 + bytes.len();
            continue;
        }
        if i > 0 {
            line.push(' ');
        }
        // Quote a little past the limit (the rest is cut below), never a
        // whole megabyte.
        let room = limit.saturating_sub(line.len()).saturating_add(1);
        let shown = bytes.len().min(room);
        quote_into(&bytes[..shown], &mut line);
        omitted += bytes.len() - shown;
        if line.len() > limit {
            let mut cut = limit;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            omitted += line.len() - cut;
            line.truncate(cut);
        }
    }
    (line, omitted)
}

/// `text` cut at `limit` bytes with `… (N more bytes)` when longer.
pub fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

/// A command line for a log line: quoted, at most [`LOG_LIMIT`] bytes, and
/// `… (N more bytes)` when cut.
pub fn for_log<'a>(program: &'a OsStr, args: impl IntoIterator<Item = &'a OsStr>) -> String {
    let (mut line, omitted) = command_line_within(program, args, LOG_LIMIT);
    if omitted > 0 {
        let _ = write!(line, "… ({omitted} more bytes)");
    }
    line
}

/// One line of text (a notice, a reason) with control and invisible
/// characters escaped, for a place that shows it raw (stderr).
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if !visible(c) => {
                let _ = write!(out, r"\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn q(s: &str) -> String {
        quote(OsStr::new(s))
    }

    #[test]
    fn quoting_shows_boundaries_and_escapes() {
        assert_eq!(q("plain/path-1.txt"), "plain/path-1.txt");
        assert_eq!(q(""), "''");
        assert_eq!(q("two words"), "'two words'");
        assert_eq!(q("it's"), r"'it'\''s'");
        assert_eq!(q("café ünï"), "'café ünï'");
        assert_eq!(q("a\nb"), r"$'a\nb'");
        assert_eq!(q("\x1b[2K\rok"), r"$'\x1b[2K\rok'");
        assert_eq!(q("back\\slash\n'"), r"$'back\\slash\n\''");
        assert_eq!(q("rtl\u{202e}txt"), r"$'rtl\u202etxt'");
        assert_eq!(q("zero\u{200b}width"), r"$'zero\u200bwidth'");
        assert_eq!(q("tag\u{e0041}"), r"$'tag\U000e0041'");
        assert_eq!(q("it’s — “ok” …"), "'it’s — “ok” …'");
        let bytes = OsString::from_vec(b"\xff\xfeok".to_vec());
        assert_eq!(quote(&bytes), r"$'\xff\xfeok'");
    }

    #[test]
    fn command_lines_are_whole_or_counted() {
        let args: Vec<OsString> = vec!["-rf".into(), "/x y".into()];
        let args = || args.iter().map(OsString::as_os_str);
        assert_eq!(
            command_line(OsStr::new("/usr/bin/rm"), args()),
            "/usr/bin/rm -rf '/x y'"
        );
        let (line, omitted) = command_line_within(OsStr::new("/usr/bin/rm"), args(), 1000);
        assert_eq!((line.as_str(), omitted), ("/usr/bin/rm -rf '/x y'", 0));
        // 1.8 MB of argv: a bounded line, every byte counted.
        let big: Vec<OsString> = (0..10).map(|_| "a".repeat(180_000).into()).collect();
        let line = for_log(OsStr::new("true"), big.iter().map(OsString::as_os_str));
        assert!(line.len() < LOG_LIMIT + 40, "{}", line.len());
        let total = "true".len() + 10 * 180_001;
        assert!(
            line.ends_with(&format!("… ({} more bytes)", total - LOG_LIMIT)),
            "{line}"
        );
    }

    #[test]
    fn cut_and_one_line() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééé", 3), "é… (4 more bytes)");
        assert_eq!(one_line("a\nb\x1b"), r"a\nb\u{1b}");
    }
}
