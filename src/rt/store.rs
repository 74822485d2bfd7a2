//! The seam of durable state: what outlives the process (DESIGN.md section 10).
//!
//! Why a trait on the seam: a disk is as nondeterministic as a clock (a write may be slow,
//! fail, or be lost in a crash), so the core never opens a file to keep its state. It hands
//! batches of [`Change`]s to a [`Store`], which makes each batch durable at once or not at
//! all. Production's store is SQLite (`rt::sqlite`); `:memory:` and the tests use
//! [`MemoryStore`]; the simulator can model a disk that loses what was not committed.
//!
//! The store knows records by kind and key, and holds their bodies as opaque JSON text: what
//! a record means is the core's business (`durable`, `conversation`), and a new kind of record
//! needs no new store method.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::BoxFuture;

/// What a record is: each kind is a table of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// A conversation (`continuation_id`): its turns, as the conversation store serializes them.
    Conversation,
    /// A WebSocket session: a hash of its resume token, and since when nobody is attached.
    Session,
    /// One call of a session, by `<session id>/<request id>`: accepted (in flight), then
    /// finished (its terminal frame, until acked and out of the result cache).
    Call,
}

impl RecordKind {
    /// Every kind, in the order they are loaded.
    pub const ALL: [RecordKind; 3] = [
        RecordKind::Conversation,
        RecordKind::Session,
        RecordKind::Call,
    ];

    /// Its name, as the store files it.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Conversation => "conversation",
            RecordKind::Session => "session",
            RecordKind::Call => "call",
        }
    }
}

/// One kept record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its body, JSON text.
    pub body: String,
    /// When it was last written (ms since the Unix epoch, the seam's wall clock): records
    /// older than their TTL are not loaded back.
    pub written_unix_ms: u64,
}

/// One change to the kept state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Keep `record` under (`kind`, `key`), replacing what was there.
    Put {
        /// Its kind.
        kind: RecordKind,
        /// Its key (a conversation id, ...).
        key: String,
        /// What to keep.
        record: Record,
    },
    /// Forget (`kind`, `key`).
    Delete {
        /// Its kind.
        kind: RecordKind,
        /// Its key.
        key: String,
    },
}

impl Change {
    /// Keep `body` under (`kind`, `key`), written at `written_unix_ms`.
    pub fn put(
        kind: RecordKind,
        key: impl Into<String>,
        body: impl Into<String>,
        written_unix_ms: u64,
    ) -> Change {
        let record = Record {
            body: body.into(),
            written_unix_ms,
        };
        Change::Put {
            kind,
            key: key.into(),
            record,
        }
    }

    /// The record the change is about.
    pub fn target(&self) -> (RecordKind, &str) {
        match self {
            Change::Put { kind, key, .. } | Change::Delete { kind, key } => (*kind, key),
        }
    }
}

/// Why a store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Durable state behind the seam.
pub trait Store: Send + Sync + 'static {
    /// Every record of `kind`, by key. Read at start-up, before anything is served.
    fn load(&self, kind: RecordKind) -> Result<BTreeMap<String, Record>, StoreError>;

    /// Make `batch` durable, all of it or none: one transaction, one sync. When the future
    /// says `Ok`, a crash no longer loses it. Shared, not owned: the writer keeps the batch
    /// to queue it again if the commit fails, without copying it for every commit.
    fn commit(&self, batch: Arc<[Change]>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// What the store is, for logs and `/status` (`sqlite <path>`, `memory`).
    fn describe(&self) -> String;

    /// Whether what it keeps outlives the process. A store that does not (memory) is not
    /// worth keeping sessions in: their records would cost a write per call and save nothing.
    fn outlives_process(&self) -> bool {
        true
    }
}

/// A store in memory: the state lives as long as the process. What `EXAI_STATE_DB=:memory:`
/// gives, and what tests use.
#[derive(Default)]
pub struct MemoryStore {
    /// The records, by kind and key.
    records: Mutex<BTreeMap<(RecordKind, String), Record>>,
    /// True when it stands for a disk (a test that restarts a daemon in process on the same
    /// store): then it is worth keeping sessions in.
    as_disk: bool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty store that stands for a disk: daemons built on it one after another (a
    /// restart in one process) find what the earlier ones kept, sessions included.
    pub fn as_disk() -> MemoryStore {
        MemoryStore {
            as_disk: true,
            ..MemoryStore::default()
        }
    }

    /// Apply one batch to `records`, in order (what every store does inside its transaction).
    pub fn apply(
        records: &mut BTreeMap<(RecordKind, String), Record>,
        batch: impl IntoIterator<Item = Change>,
    ) {
        for change in batch {
            match change {
                Change::Put { kind, key, record } => {
                    records.insert((kind, key), record);
                }
                Change::Delete { kind, key } => {
                    records.remove(&(kind, key));
                }
            }
        }
    }
}

impl Store for MemoryStore {
    fn load(&self, kind: RecordKind) -> Result<BTreeMap<String, Record>, StoreError> {
        let records = self.records.lock().expect("memory store lock");
        Ok(records
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, key), record)| (key.clone(), record.clone()))
            .collect())
    }

    fn commit(&self, batch: Arc<[Change]>) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut records = self.records.lock().expect("memory store lock");
        MemoryStore::apply(&mut records, batch.iter().cloned());
        Box::pin(std::future::ready(Ok(())))
    }

    fn describe(&self) -> String {
        "memory (not kept past the process)".to_string()
    }

    fn outlives_process(&self) -> bool {
        self.as_disk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, body: &str) -> Change {
        Change::put(RecordKind::Conversation, key, body, 7)
    }

    #[test]
    fn a_batch_applies_in_order_and_loads_back_by_kind() {
        let store = MemoryStore::new();
        let batch = vec![
            put("a", "1"),
            put("b", "2"),
            put("a", "3"),
            Change::Delete {
                kind: RecordKind::Conversation,
                key: "b".into(),
            },
        ];
        futures_util::FutureExt::now_or_never(store.commit(batch.into()))
            .expect("a memory commit is ready at once")
            .unwrap();
        let loaded = store.load(RecordKind::Conversation).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded["a"].body, "3");
    }
}
