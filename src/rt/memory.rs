//! An in-memory [`FileSystem`]: files, folders and symlinks held in a map, changed at will
//! between two calls.
//!
//! Why in the seam: the core's unit tests and the simulator (`exaid-sim` wraps it with a
//! witness of every read) need a file system whose content they decide, that never touches
//! the machine's disk, and that answers the same way on every run of a seed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::BoxFuture;
use super::fs::{FileMeta, FileRead, FileSystem};

/// Symlinks followed while resolving one path before it counts as a loop (Linux's limit).
const SYMLINK_HOPS_MAX: u32 = 40;

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A regular file and its bytes.
    File(Arc<Vec<u8>>),
    /// A folder (its entries are the paths directly below it).
    Dir,
    /// A symlink and its target (absolute, or relative to the link's folder).
    Link(PathBuf),
    /// An entry that exists but may not be read (permission denied).
    Locked,
}

/// The in-memory file system. Cloning shares the tree, so a test keeps a handle to change
/// files while the core reads them.
#[derive(Debug, Clone, Default)]
pub struct MemoryFs {
    /// Absolute, normalised path -> entry. Parents of every entry exist as folders.
    nodes: Arc<Mutex<BTreeMap<PathBuf, Node>>>,
}

impl MemoryFs {
    /// An empty file system (only `/`).
    pub fn new() -> MemoryFs {
        let fs = MemoryFs::default();
        fs.put(Path::new("/"), Node::Dir);
        fs
    }

    /// Create or replace the file at `path` (absolute), creating its folders.
    pub fn write(&self, path: impl AsRef<Path>, bytes: impl Into<Vec<u8>>) {
        self.put(path.as_ref(), Node::File(Arc::new(bytes.into())));
    }

    /// Create the folder at `path` and its parents.
    pub fn mkdir(&self, path: impl AsRef<Path>) {
        self.put(path.as_ref(), Node::Dir);
    }

    /// Create a symlink at `path` pointing to `target`.
    pub fn symlink(&self, path: impl AsRef<Path>, target: impl AsRef<Path>) {
        self.put(path.as_ref(), Node::Link(target.as_ref().to_path_buf()));
    }

    /// Create an entry at `path` that exists but cannot be read.
    pub fn lock(&self, path: impl AsRef<Path>) {
        self.put(path.as_ref(), Node::Locked);
    }

    /// Remove `path` and everything below it.
    pub fn remove(&self, path: impl AsRef<Path>) {
        let path = path.as_ref().to_path_buf();
        let mut nodes = self.nodes.lock().expect("memory fs lock");
        nodes.retain(|p, _| !p.starts_with(&path));
    }

    /// Insert an entry and the folders above it.
    fn put(&self, path: &Path, node: Node) {
        assert!(path.is_absolute(), "MemoryFs paths are absolute: {path:?}");
        let mut nodes = self.nodes.lock().expect("memory fs lock");
        for parent in path.ancestors().skip(1) {
            nodes.insert(parent.to_path_buf(), Node::Dir);
        }
        nodes.insert(path.to_path_buf(), node);
    }

    /// The entry at a path already free of links, if any.
    fn node(&self, path: &Path) -> Option<Node> {
        self.nodes
            .lock()
            .expect("memory fs lock")
            .get(path)
            .cloned()
    }

    /// The path with every link followed, component by component.
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        if !path.is_absolute() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "relative path"));
        }
        let mut hops = 0;
        let mut pending: Vec<PathBuf> = vec![path.to_path_buf()];
        let mut done = PathBuf::from("/");
        while let Some(next) = pending.pop() {
            let mut parts = next.components();
            let Some(part) = parts.next() else { continue };
            let rest: PathBuf = parts.collect();
            if !rest.as_os_str().is_empty() {
                pending.push(rest);
            }
            match part {
                Component::RootDir => done = PathBuf::from("/"),
                Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    done.pop();
                }
                Component::Normal(name) => {
                    let candidate = done.join(name);
                    match self.node(&candidate) {
                        None => return Err(io::ErrorKind::NotFound.into()),
                        Some(Node::Link(target)) => {
                            hops += 1;
                            if hops > SYMLINK_HOPS_MAX {
                                return Err(io::Error::other("too many levels of symbolic links"));
                            }
                            pending.push(target);
                        }
                        Some(_) => done = candidate,
                    }
                }
            }
        }
        Ok(done)
    }
}

impl FileSystem for MemoryFs {
    fn canonicalize<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<PathBuf>> {
        Box::pin(async move { self.resolve(path) })
    }

    fn metadata<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<FileMeta>> {
        Box::pin(async move {
            let real = self.resolve(path)?;
            match self.node(&real) {
                Some(Node::File(bytes)) => Ok(FileMeta {
                    is_dir: false,
                    len: bytes.len() as u64,
                }),
                Some(Node::Dir) => Ok(FileMeta {
                    is_dir: true,
                    len: 0,
                }),
                Some(Node::Locked) => Ok(FileMeta {
                    is_dir: false,
                    len: 0,
                }),
                Some(Node::Link(_)) | None => Err(io::ErrorKind::NotFound.into()),
            }
        })
    }

    fn read_dir<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<Vec<OsString>>> {
        Box::pin(async move {
            let real = self.resolve(path)?;
            let nodes = self.nodes.lock().expect("memory fs lock");
            match nodes.get(&real) {
                Some(Node::Dir) => {}
                Some(Node::Locked) => return Err(io::ErrorKind::PermissionDenied.into()),
                Some(_) => return Err(io::Error::other("not a directory")),
                None => return Err(io::ErrorKind::NotFound.into()),
            }
            let names = nodes
                .keys()
                .filter(|p| p.parent() == Some(real.as_path()) && **p != real)
                .filter_map(|p| p.file_name().map(OsString::from))
                .collect();
            Ok(names)
        })
    }

    fn read<'a>(&'a self, path: &'a Path, bytes_max: u64) -> BoxFuture<'a, io::Result<FileRead>> {
        Box::pin(async move {
            let real = self.resolve(path)?;
            match self.node(&real) {
                Some(Node::File(bytes)) => {
                    let cap = usize::try_from(bytes_max).unwrap_or(usize::MAX);
                    let taken = bytes.len().min(cap);
                    Ok(FileRead {
                        bytes: bytes[..taken].to_vec(),
                        complete: taken == bytes.len(),
                    })
                }
                Some(Node::Dir) => Err(io::Error::other("is a directory")),
                Some(Node::Locked) => Err(io::ErrorKind::PermissionDenied.into()),
                Some(Node::Link(_)) | None => Err(io::ErrorKind::NotFound.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<T>(future: BoxFuture<'_, T>) -> T {
        futures_util::FutureExt::now_or_never(future).expect("memory fs never waits")
    }

    #[test]
    fn files_folders_and_links_resolve() {
        let fs = MemoryFs::new();
        fs.write("/home/u/a.txt", "hello");
        fs.symlink("/home/u/link", "a.txt");
        fs.symlink("/home/u/up", "../../etc");
        fs.write("/etc/passwd", "root");
        let canon = |p: &str| block(fs.canonicalize(Path::new(p)));
        assert_eq!(canon("/home/u/link").unwrap(), Path::new("/home/u/a.txt"));
        assert_eq!(
            canon("/home/u/up/passwd").unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            canon("/home/u/../u/./a.txt").unwrap(),
            Path::new("/home/u/a.txt")
        );
        assert_eq!(
            canon("/home/u/missing").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let meta = block(fs.metadata(Path::new("/home/u"))).unwrap();
        assert!(meta.is_dir);
        let mut names = block(fs.read_dir(Path::new("/home/u"))).unwrap();
        names.sort();
        assert_eq!(names, ["a.txt", "link", "up"]);
    }

    #[test]
    fn a_link_loop_is_an_error_not_a_hang() {
        let fs = MemoryFs::new();
        fs.symlink("/a", "/b");
        fs.symlink("/b", "/a");
        assert!(block(fs.canonicalize(Path::new("/a"))).is_err());
    }

    #[test]
    fn reads_are_bounded_and_see_changes() {
        let fs = MemoryFs::new();
        fs.write("/f", "0123456789");
        let read = block(fs.read(Path::new("/f"), 4)).unwrap();
        assert_eq!(
            (read.bytes.as_slice(), read.complete),
            (&b"0123"[..], false)
        );
        let read = block(fs.read(Path::new("/f"), 10)).unwrap();
        assert!(read.complete);
        fs.write("/f", "new");
        assert_eq!(block(fs.read(Path::new("/f"), 10)).unwrap().bytes, b"new");
        fs.remove("/f");
        assert_eq!(
            block(fs.read(Path::new("/f"), 10)).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        fs.lock("/secret");
        assert_eq!(
            block(fs.read(Path::new("/secret"), 10)).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
    }
}
