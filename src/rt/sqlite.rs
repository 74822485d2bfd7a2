//! Production's store: one SQLite file (rusqlite, with SQLite built in), in WAL mode, synced
//! at every commit.
//!
//! Why SQLite: one file, no server, transactions that survive `kill -9` and power loss, and a
//! library every platform has. Commits run on a thread of the store's own (SQLite blocks),
//! one after another, so the async runtime never waits on the disk.
//!
//! The file is the user's alone (0600, in a 0700 folder). Its schema is versioned with
//! `PRAGMA user_version` and migrated forward step by step; a file written by a newer exaid is
//! refused rather than rewritten. A file that is not a database, or fails SQLite's check, is
//! moved aside (`state.db.corrupt-<unix ms>`) and a fresh one started, loudly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, params};

use super::BoxFuture;
use super::store::{Change, Record, RecordKind, Store, StoreError};

/// The schema version this build writes. Each step of [`MIGRATIONS`] takes a file one
/// version up.
pub const SCHEMA_VERSION: u32 = 1;

/// The migrations, in order: `MIGRATIONS[n]` takes version `n` to `n + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: every record in one table, filed by kind and key.
    "CREATE TABLE records (
         kind TEXT NOT NULL,
         key TEXT NOT NULL,
         body TEXT NOT NULL,
         written_unix_ms INTEGER NOT NULL,
         PRIMARY KEY (kind, key)
     ) WITHOUT ROWID;",
];

/// A commit for the store's thread, and where its result goes.
type Job = (
    Arc<[Change]>,
    tokio::sync::oneshot::Sender<Result<(), StoreError>>,
);

/// The store.
pub struct SqliteStore {
    /// The file.
    path: PathBuf,
    /// The connection (loads at start-up; the thread's commits).
    connection: Arc<Mutex<Connection>>,
    /// Where commits go to the store's thread.
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// When a commit is on the disk (`EXAI_STATE_SYNC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// A commit is written to the WAL before it returns, synced at checkpoints: it survives
    /// the daemon dying any way it can (`kill -9`, a crash, the OOM killer), and a power cut
    /// or kernel crash may take the last commits back. SQLite's `synchronous=NORMAL`.
    Normal,
    /// A commit is synced before it returns: it survives a power cut too, at the cost of one
    /// sync (milliseconds on a real disk) per group commit. SQLite's `synchronous=FULL`.
    Full,
}

impl SyncMode {
    /// The mode named `name` (`normal`, `full`), as configuration validated it.
    pub fn named(name: &str) -> SyncMode {
        match name {
            "full" => SyncMode::Full,
            _ => SyncMode::Normal,
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            SyncMode::Normal => "NORMAL",
            SyncMode::Full => "FULL",
        }
    }
}

/// What opening found, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The file was there and sound, at this schema version before migrating.
    Existing { version: u32 },
    /// A new file.
    Created,
    /// The file was unreadable as a store and moved aside to this path; a new one started.
    MovedAside { to: PathBuf, why: String },
}

impl SqliteStore {
    /// Open (or create) the store at `path`, committing with `sync`. `now_unix_ms` names a
    /// corrupt file moved aside.
    pub fn open(
        path: &Path,
        now_unix_ms: u64,
        sync: SyncMode,
    ) -> Result<(SqliteStore, Opened), StoreError> {
        prepare_folder(path)?;
        let existed = path.exists();
        let (connection, opened) = match open_checked(path, sync) {
            Ok(connection) => {
                let version = user_version(&connection)?;
                let opened = match existed {
                    true => Opened::Existing { version },
                    false => Opened::Created,
                };
                (connection, opened)
            }
            Err(why) if existed => {
                let to = move_aside(path, now_unix_ms)?;
                let connection = open_checked(path, sync).map_err(StoreError)?;
                (connection, Opened::MovedAside { to, why })
            }
            Err(why) => return Err(StoreError(why)),
        };
        migrate(&connection)?;
        owner_only(path)?;
        let connection = Arc::new(Mutex::new(connection));
        let (jobs, queue) = mpsc::channel::<Job>();
        let worker = connection.clone();
        std::thread::Builder::new()
            .name("exaid-store".into())
            .spawn(move || commit_loop(&worker, &queue))
            .map_err(|e| StoreError(format!("cannot start the store's thread: {e}")))?;
        let store = SqliteStore {
            path: path.to_path_buf(),
            connection,
            jobs: Mutex::new(jobs),
        };
        Ok((store, opened))
    }
}

/// The folder exists and is the user's alone.
fn prepare_folder(path: &Path) -> Result<(), StoreError> {
    let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if !folder.exists() {
        std::fs::create_dir_all(folder)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", folder.display())))?;
        set_mode(folder, 0o700)?;
    }
    Ok(())
}

fn owner_only(path: &Path) -> Result<(), StoreError> {
    set_mode(path, 0o600)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
        StoreError(format!(
            "cannot restrict {} to its owner: {e}",
            path.display()
        ))
    })
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), StoreError> {
    Ok(())
}

/// Open the file and check it: WAL, the sync mode, and SQLite's own quick check. The error is
/// why the file cannot serve as the store.
fn open_checked(path: &Path, sync: SyncMode) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // Another exaid on the same file (a second daemon, a test) waits for the lock instead of
    // failing at once.
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| format!("cannot set a busy timeout on {}: {e}", path.display()))?;
    let check: String = connection
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| format!("{} is not a readable database: {e}", path.display()))?;
    if check != "ok" {
        return Err(format!("{} failed SQLite's check: {check}", path.display()));
    }
    let mode: String = connection
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(|e| format!("cannot use WAL on {}: {e}", path.display()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("{} refused WAL mode (got {mode})", path.display()));
    }
    let pragma = sync.pragma();
    connection
        .execute_batch(&format!("PRAGMA synchronous={pragma};"))
        .map_err(|e| format!("cannot set synchronous={pragma} on {}: {e}", path.display()))?;
    Ok(connection)
}

/// Move a corrupt file (and its WAL and shared-memory files) out of the way.
fn move_aside(path: &Path, now_unix_ms: u64) -> Result<PathBuf, StoreError> {
    let mut to = path.as_os_str().to_owned();
    to.push(format!(".corrupt-{now_unix_ms}"));
    let to = PathBuf::from(to);
    std::fs::rename(path, &to)
        .map_err(|e| StoreError(format!("cannot move {} aside: {e}", path.display())))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    Ok(to)
}

fn user_version(connection: &Connection) -> Result<u32, StoreError> {
    connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| StoreError(format!("cannot read the schema version: {e}")))
}

/// Take the file up to [`SCHEMA_VERSION`], one step per transaction.
fn migrate(connection: &Connection) -> Result<(), StoreError> {
    let version = user_version(connection)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError(format!(
            "the state file has schema version {version}, newer than this exaid's \
             {SCHEMA_VERSION}: run the newer exaid, or point EXAI_STATE_DB elsewhere"
        )));
    }
    for (from, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let to = from + 1;
        let sql = format!("BEGIN; {step} PRAGMA user_version = {to}; COMMIT;");
        connection.execute_batch(&sql).map_err(|e| {
            StoreError(format!(
                "cannot migrate the state file to version {to}: {e}"
            ))
        })?;
        tracing::info!(from, to, "state file migrated");
    }
    Ok(())
}

/// The store's thread: one commit after another until the store is dropped.
fn commit_loop(connection: &Mutex<Connection>, jobs: &mpsc::Receiver<Job>) {
    while let Ok((batch, done)) = jobs.recv() {
        let mut connection = connection.lock().expect("store connection lock");
        let _ = done.send(commit(&mut connection, &batch));
    }
}

fn commit(connection: &mut Connection, batch: &[Change]) -> Result<(), StoreError> {
    let failed = |e: rusqlite::Error| StoreError(format!("commit failed: {e}"));
    let transaction = connection.transaction().map_err(failed)?;
    {
        let mut put = transaction
            .prepare(
                "INSERT OR REPLACE INTO records (kind, key, body, written_unix_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(failed)?;
        let mut delete = transaction
            .prepare("DELETE FROM records WHERE kind = ?1 AND key = ?2")
            .map_err(failed)?;
        for change in batch {
            match change {
                Change::Put { kind, key, record } => {
                    let written = i64::try_from(record.written_unix_ms).unwrap_or(i64::MAX);
                    put.execute(params![kind.name(), key, record.body, written])
                        .map_err(failed)?;
                }
                Change::Delete { kind, key } => {
                    delete.execute(params![kind.name(), key]).map_err(failed)?;
                }
            }
        }
    }
    transaction.commit().map_err(failed)
}

impl Store for SqliteStore {
    fn load(&self, kind: RecordKind) -> Result<BTreeMap<String, Record>, StoreError> {
        let connection = self.connection.lock().expect("store connection lock");
        let failed = |e: rusqlite::Error| StoreError(format!("cannot read the state file: {e}"));
        let mut rows = connection
            .prepare("SELECT key, body, written_unix_ms FROM records WHERE kind = ?1")
            .map_err(failed)?;
        let records = rows
            .query_map(params![kind.name()], |row| {
                let written: i64 = row.get(2)?;
                let record = Record {
                    body: row.get(1)?,
                    written_unix_ms: u64::try_from(written).unwrap_or(0),
                };
                Ok((row.get::<_, String>(0)?, record))
            })
            .map_err(failed)?
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map_err(failed)?;
        Ok(records)
    }

    fn commit(&self, batch: Arc<[Change]>) -> BoxFuture<'_, Result<(), StoreError>> {
        let (done, result) = tokio::sync::oneshot::channel();
        let sent = self
            .jobs
            .lock()
            .expect("store jobs lock")
            .send((batch, done));
        Box::pin(async move {
            if sent.is_err() {
                return Err(StoreError("the store's thread has stopped".into()));
            }
            result
                .await
                .unwrap_or_else(|_| Err(StoreError("the store's thread has stopped".into())))
        })
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, body: &str) -> Change {
        Change::put(RecordKind::Conversation, key, body, 42)
    }

    fn block<T>(future: BoxFuture<'_, T>) -> T {
        ::tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn records_survive_reopening_and_the_file_is_the_owner_s() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("state/state.db");
        let (store, opened) = SqliteStore::open(&path, 1, SyncMode::Full).unwrap();
        assert_eq!(opened, Opened::Created);
        block(store.commit(vec![put("a", "1"), put("b", "2")].into())).unwrap();
        let delete_b = Change::Delete {
            kind: RecordKind::Conversation,
            key: "b".into(),
        };
        block(store.commit(vec![put("a", "3"), delete_b].into())).unwrap();
        drop(store);
        let (store, opened) = SqliteStore::open(&path, 2, SyncMode::Full).unwrap();
        assert_eq!(opened, Opened::Existing { version: 1 });
        let loaded = store.load(RecordKind::Conversation).unwrap();
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(loaded["a"].body, "3");
        assert_eq!(loaded["a"].written_unix_ms, 42);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_a_newer_schema_refused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("state.db");
        std::fs::write(&path, b"this is not a database, it is a note to myself").unwrap();
        let (store, opened) = SqliteStore::open(&path, 77, SyncMode::Full).unwrap();
        let Opened::MovedAside { to, why } = opened else {
            panic!("moved aside: {opened:?}");
        };
        assert!(
            to.to_string_lossy().ends_with("state.db.corrupt-77"),
            "{to:?}"
        );
        assert!(why.contains("not a readable database"), "{why}");
        assert!(std::fs::read(&to).unwrap().starts_with(b"this is not"));
        assert!(store.load(RecordKind::Conversation).unwrap().is_empty());
        drop(store);

        let newer = Connection::open(&path).unwrap();
        newer.execute_batch("PRAGMA user_version = 99;").unwrap();
        drop(newer);
        let Err(refused) = SqliteStore::open(&path, 78, SyncMode::Full) else {
            panic!("a newer schema is refused");
        };
        assert!(refused.0.contains("schema version 99"), "{refused}");
    }
}
