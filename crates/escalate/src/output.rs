//! Bounded capture of a command's output: the first and last parts are kept,
//! the middle is counted and dropped, so memory stays bounded whatever the
//! command prints.

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
        OutputLimits { head: 64 * 1024, tail: 64 * 1024 }
    }
}
