//! The event log of one run, and its hash: two runs of one seed must produce the same hash.

use std::hash::{DefaultHasher, Hash, Hasher};

/// An append-only log of what happened, each line stamped with virtual milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    /// The lines, in order.
    lines: Vec<String>,
}

impl Trace {
    /// Record one event at the current virtual time.
    pub fn record(&mut self, event: impl Into<String>) {
        let at_ms = madsim::time::TimeHandle::try_current()
            .map(|t| t.elapsed().as_millis())
            .unwrap_or(0);
        self.lines.push(format!("{at_ms:>8} {}", event.into()));
    }

    /// The lines.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// A stable hash of every line (SipHash with fixed keys).
    pub fn hash(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.lines.hash(&mut hasher);
        hasher.finish()
    }
}
