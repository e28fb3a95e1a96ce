//! Bounded capture of a command's output: the first and last parts are kept,
//! the middle is counted and dropped, so memory stays bounded whatever the
//! command prints.

use std::collections::VecDeque;

/// How much output to keep.
#[derive(Debug, Clone, Copy)]
pub struct OutputLimits {
    /// Bytes kept from the start.
    pub head: usize,
    /// Bytes kept from the end.
    pub tail: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            head: 64 * 1024,
            tail: 64 * 1024,
        }
    }
}

/// The kept head and tail of a stream of bytes.
#[derive(Debug)]
pub(crate) struct Capture {
    limits: OutputLimits,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capture {
    pub(crate) fn new(limits: OutputLimits) -> Capture {
        Capture {
            limits,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.limits.head.saturating_sub(self.head.len());
        let n = room.min(data.len());
        self.head.extend_from_slice(&data[..n]);
        data = &data[n..];
        if self.limits.tail == 0 {
            return;
        }
        if data.len() >= self.limits.tail {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.limits.tail..]);
        } else {
            let overflow = (self.tail.len() + data.len()).saturating_sub(self.limits.tail);
            self.tail.drain(..overflow);
            self.tail.extend(data);
        }
    }

    /// Bytes dropped from the middle so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.total - self.head.len() as u64 - self.tail.len() as u64
    }

    /// The text (invalid UTF-8 replaced) and the dropped byte count.
    pub(crate) fn finish(self) -> (String, u64) {
        let dropped = self.dropped();
        let (head, tail) = (self.head, Vec::from(self.tail));
        if dropped == 0 {
            let mut all = head;
            all.extend_from_slice(&tail);
            return (String::from_utf8_lossy(&all).into_owned(), 0);
        }
        let text = format!(
            "{}\n[... {dropped} bytes of output omitted ...]\n{}",
            String::from_utf8_lossy(&head),
            String::from_utf8_lossy(&tail)
        );
        (text, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(limits: (usize, usize), chunks: &[&[u8]]) -> (String, u64) {
        let mut c = Capture::new(OutputLimits {
            head: limits.0,
            tail: limits.1,
        });
        for chunk in chunks {
            c.push(chunk);
        }
        c.finish()
    }

    #[test]
    fn small_output_is_kept_whole() {
        assert_eq!(capture((4, 4), &[b"abc", b"def"]), ("abcdef".into(), 0));
    }

    #[test]
    fn middle_is_dropped_and_counted() {
        let (text, dropped) = capture((3, 3), &[b"012345", b"6789"]);
        assert_eq!(dropped, 4);
        assert!(
            text.starts_with("012\n") && text.ends_with("\n789"),
            "{text}"
        );
        let (text, dropped) = capture((2, 2), &[b"a", b"b", b"c", b"d", b"e"]);
        assert_eq!((dropped, text.ends_with("\nde")), (1, true), "{text}");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(capture((8, 8), &[b"a\xffb"]).0, "a\u{fffd}b");
    }
}
