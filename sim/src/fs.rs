//! The simulator's file system: an in-memory tree ([`exaid::rt::memory::MemoryFs`]) that a
//! scenario fills, changes and empties between (or during) calls, plus the witness of every
//! path the daemon read.
//!
//! Why a witness: the invariant "no file outside the roots is ever read" is checked from
//! outside the daemon, on what it actually asked for, not on what it says it did.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use exaid::rt::memory::MemoryFs;
use exaid::rt::{BoxFuture, FileMeta, FileRead, FileSystem};

/// What the daemon asked of a path, in the order it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsOp {
    /// `canonicalize`: resolving a path reveals only whether it exists.
    Canonicalize,
    /// `metadata`: its kind and size.
    Metadata,
    /// `read_dir`: a folder's names.
    ReadDir,
    /// `read`: a file's bytes.
    Read,
}

/// A change the simulated disk makes to one file just before its next read: how a scenario
/// makes a file change or vanish between the daemon's look and its read.
#[derive(Debug, Clone)]
pub enum OnRead {
    /// The file gets these bytes.
    Replace(Vec<u8>),
    /// The file disappears.
    Remove,
}

/// The folder the simulated clients' files live in, and the daemon's only file root in a
/// scenario: nothing outside it may ever be read.
pub const PROJECT_ROOT: &str = "/project";

/// A project a scenario lays out on the simulated disk, and how it changes during the run.
#[derive(Debug, Clone, Default)]
pub struct DiskPlan {
    /// Files written before the run: path and size in bytes.
    pub files: Vec<(String, usize)>,
    /// Links made before the run: path and target (which may lie outside the root).
    pub links: Vec<(String, String)>,
    /// Changes during the run: at virtual ms, to a path.
    pub changes: Vec<(u64, String, DiskChange)>,
}

impl DiskPlan {
    /// Whether the plan lays out `path` itself or something below it (a folder).
    pub fn holds(&self, path: &str) -> bool {
        let path = Path::new(path);
        self.files
            .iter()
            .any(|(p, _)| Path::new(p).starts_with(path))
            || self.links.iter().any(|(p, _)| Path::new(p) == path)
    }
}

/// One change to one file of a [`DiskPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskChange {
    /// The file gets new contents of this size (created if it was gone).
    Rewrite(usize),
    /// The file is gone.
    Remove,
    /// The file gets new contents of this size between the daemon's look and its read.
    RewriteOnNextRead(usize),
    /// The file vanishes between the daemon's look and its read.
    RemoveOnNextRead,
}

/// `bytes` bytes of text naming `path` on every line: what a simulated source file holds.
pub fn contents(path: &str, bytes: usize) -> Vec<u8> {
    let line = format!("// {path}: simulated source line\n");
    line.bytes().cycle().take(bytes).collect()
}

/// The simulated file system. Cloning shares the tree, the witness and the pending changes.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    /// The files, folders and links.
    tree: MemoryFs,
    /// Every (operation, path as asked) the daemon made, in order.
    log: Arc<Mutex<Vec<(FsOp, PathBuf)>>>,
    /// Changes applied to a path right before its next read, then forgotten.
    on_read: Arc<Mutex<Vec<(PathBuf, OnRead)>>>,
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> SimFs {
        SimFs {
            tree: MemoryFs::new(),
            ..SimFs::default()
        }
    }

    /// A file system holding the plan's project (`disk`), then every other file the
    /// clients' calls name (`relevant_files`, `files`), each with a line that names it, under
    /// [`PROJECT_ROOT`].
    pub fn for_clients(clients: &[crate::client::ClientSpec], disk: &DiskPlan) -> SimFs {
        let fs = SimFs::new();
        fs.tree.mkdir(PROJECT_ROOT);
        for (path, bytes) in &disk.files {
            fs.tree.write(path, contents(path, *bytes));
        }
        for (path, target) in &disk.links {
            fs.tree.symlink(path, target);
        }
        let named = clients
            .iter()
            .flat_map(|client| &client.calls)
            .flat_map(|call| ["relevant_files", "files"].map(|key| &call.arguments[key]))
            .filter_map(|list| list.as_array())
            .flatten()
            .filter_map(|path| path.as_str());
        for path in named {
            if disk.holds(path) {
                continue;
            }
            if let Some(folder) = std::path::Path::new(path).parent() {
                fs.tree.mkdir(folder);
            }
            fs.tree.write(path, format!("// the file {path}\n"));
        }
        fs
    }

    /// Make one planned change, now.
    pub fn change(&self, path: &str, change: &DiskChange) {
        match change {
            DiskChange::Rewrite(bytes) => self.tree.write(path, contents(path, *bytes)),
            DiskChange::Remove => self.tree.remove(path),
            DiskChange::RewriteOnNextRead(bytes) => {
                self.on_next_read(path, OnRead::Replace(contents(path, *bytes)));
            }
            DiskChange::RemoveOnNextRead => self.on_next_read(path, OnRead::Remove),
        }
    }

    /// The tree, to create, change and remove entries.
    pub fn tree(&self) -> &MemoryFs {
        &self.tree
    }

    /// Apply `change` to `path` just before the daemon next reads it.
    pub fn on_next_read(&self, path: impl Into<PathBuf>, change: OnRead) {
        self.on_read
            .lock()
            .expect("sim fs lock")
            .push((path.into(), change));
    }

    /// Every operation the daemon made so far.
    pub fn log(&self) -> Vec<(FsOp, PathBuf)> {
        self.log.lock().expect("sim fs lock").clone()
    }

    /// The paths whose bytes the daemon read.
    pub fn reads(&self) -> Vec<PathBuf> {
        self.log()
            .into_iter()
            .filter(|(op, _)| *op == FsOp::Read)
            .map(|(_, path)| path)
            .collect()
    }

    /// Record one operation.
    fn note(&self, op: FsOp, path: &Path) {
        let mut log = self.log.lock().expect("sim fs lock");
        log.push((op, path.to_path_buf()));
    }

    /// Apply and forget the pending change of `path`, if any.
    fn before_read(&self, path: &Path) {
        let change = {
            let mut pending = self.on_read.lock().expect("sim fs lock");
            let at = pending.iter().position(|(p, _)| p == path);
            at.map(|i| pending.remove(i).1)
        };
        match change {
            Some(OnRead::Replace(bytes)) => self.tree.write(path, bytes),
            Some(OnRead::Remove) => self.tree.remove(path),
            None => {}
        }
    }
}

impl FileSystem for SimFs {
    fn canonicalize<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<PathBuf>> {
        self.note(FsOp::Canonicalize, path);
        self.tree.canonicalize(path)
    }

    fn metadata<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<FileMeta>> {
        self.note(FsOp::Metadata, path);
        self.tree.metadata(path)
    }

    fn read_dir<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<Vec<OsString>>> {
        self.note(FsOp::ReadDir, path);
        self.tree.read_dir(path)
    }

    fn read<'a>(&'a self, path: &'a Path, bytes_max: u64) -> BoxFuture<'a, io::Result<FileRead>> {
        self.note(FsOp::Read, path);
        self.before_read(path);
        self.tree.read(path, bytes_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn reads_are_witnessed_and_changes_land_before_the_read() {
        let fs = SimFs::new();
        fs.tree().write("/r/a", "one");
        fs.on_next_read("/r/a", OnRead::Replace(b"two".to_vec()));
        let meta = fs
            .metadata(Path::new("/r/a"))
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(meta.len, 3);
        let read = fs
            .read(Path::new("/r/a"), 64)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(read.bytes, b"two");
        fs.on_next_read("/r/a", OnRead::Remove);
        assert!(
            fs.read(Path::new("/r/a"), 64)
                .now_or_never()
                .unwrap()
                .is_err()
        );
        assert_eq!(fs.reads(), [PathBuf::from("/r/a"), PathBuf::from("/r/a")]);
        assert_eq!(fs.log()[0].0, FsOp::Metadata);
    }

    #[test]
    fn the_witness_sees_no_read_outside_the_roots() {
        let fs = SimFs::new();
        fs.tree().write("/home/u/p/a.rs", "a");
        fs.tree().write("/etc/shadow", "secret");
        fs.tree().symlink("/home/u/p/escape", "/etc/shadow");
        let limits = exaid::files::Limits {
            roots: vec![PathBuf::from("/home/u")],
            file_bytes_max: 1024,
            files_max: 8,
            budget_bytes: 1 << 20,
            depth_max: exaid::files::Limits::DEPTH_MAX,
            entries_max: exaid::files::Limits::ENTRIES_MAX,
            images_max: 4,
            image_bytes_max: 1024,
        };
        let paths = ["/home/u/p".to_string()];
        let found = exaid::files::resolve(&fs, "files", &paths, &limits)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(found.embedded.len(), 1);
        assert_eq!(found.skipped.len(), 1);
        assert!(!fs.reads().is_empty());
        assert!(fs.reads().iter().all(|p| p.starts_with("/home/u")));
        let refused = ["/etc/shadow".to_string()];
        let before = fs.log().len();
        assert!(
            exaid::files::resolve(&fs, "files", &refused, &limits)
                .now_or_never()
                .unwrap()
                .is_err()
        );
        let asked: Vec<_> = fs.log()[before..].iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(
            asked,
            [PathBuf::from("/home/u")],
            "only the root is resolved"
        );
    }
}
