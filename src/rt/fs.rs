//! The file-system half of the seam: what the core may ask of files (resolve a path, look at
//! it, list a folder, read a bounded prefix), and nothing else.
//!
//! Why a trait: tools embed files the client names, and the simulator must decide what those
//! files hold, change them between two reads and witness every path read. So the core never
//! names `std::fs` or `tokio::fs`; it asks [`FileSystem`] through [`super::Rt::fs`].
//! Production's side is in `rt/tokio.rs`, an in-memory one in `rt/memory.rs`.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::BoxFuture;

/// What the core needs to know about a path before reading it (symlinks followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// A folder (to expand) rather than a file (to read).
    pub is_dir: bool,
    /// Size in bytes when the metadata was taken (a file may change afterwards).
    pub len: u64,
}

/// A bounded read: at most the cap's bytes, and whether the file had more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    /// The file's first bytes, never more than the cap asked for.
    pub bytes: Vec<u8>,
    /// True when the end of the file was reached within the cap: nothing was left unread.
    pub complete: bool,
}

/// The file system as the core sees it. Object-safe: the runtime hands out an
/// `Arc<dyn FileSystem>`. Every method follows symlinks.
pub trait FileSystem: Send + Sync + 'static {
    /// The absolute path with every symlink followed and `.`/`..` resolved; an error if the
    /// path (or a link on the way) does not exist.
    fn canonicalize<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<PathBuf>>;

    /// Whether `path` is a folder, and its size.
    fn metadata<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<FileMeta>>;

    /// The names of a folder's entries, in no particular order (callers sort).
    fn read_dir<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<Vec<OsString>>>;

    /// At most `bytes_max` bytes from the start of the file: a file that grows while it is
    /// read cannot make the daemon allocate more than the cap (plus one probe byte).
    fn read<'a>(&'a self, path: &'a Path, bytes_max: u64) -> BoxFuture<'a, io::Result<FileRead>>;
}
