//! One escalation session: the socket pair Bash inherits, the thread that
//! accepts wrapper connections, and the escalated programs it started.

/// A running escalation session.
#[derive(Debug)]
pub struct Session {}
