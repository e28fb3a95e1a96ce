//! Printing an error with its causes, each once. Errors that say what
//! failed and why (`failed to read rules file X: No such file or
//! directory`) often also carry that cause as their source; printed as a
//! chain, it would appear twice.

/// `error: cause: cause…`, leaving out every cause whose text the message
/// so far already holds.
pub fn chain(error: &anyhow::Error) -> String {
    let mut out = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to read rules file /x.rules: {0}")]
    struct Read(#[source] std::io::Error);

    #[test]
    fn each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let e = anyhow::Error::new(Read(io)).context("loading rules");
        let printed = chain(&e);
        assert_eq!(printed.matches(&text).count(), 1, "{printed}");
        assert!(
            printed.starts_with("loading rules: failed to read"),
            "{printed}"
        );
        let plain = anyhow::anyhow!("top").context("outer");
        assert_eq!(chain(&plain), "outer: top");
    }
}
