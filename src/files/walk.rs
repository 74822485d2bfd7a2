//! The walk over one call's paths: each named path checked, resolved and read, each named
//! folder expanded, every file either embedded whole or skipped with its reason.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::found::{Embedded, Found, SkipReason, Skipped};
use super::limits::Limits;
use super::roots::{Roots, normalise};
use crate::config::key;
use crate::error::{CallError, ErrorCode};
use crate::rt::{BoxFuture, FileMeta, FileSystem};

/// Folders expansion never enters: version control, dependencies, build output, caches.
const SKIPPED_FOLDERS: &[&str] = &[
    ".git",
    "node_modules",
    "target",
    "vendor",
    "dist",
    "build",
    "__pycache__",
    ".venv",
];

/// How much of a file's start is searched for a NUL byte to call it binary (as git does).
const BINARY_PROBE_BYTES: usize = 8 * 1024;

/// The state of one call's walk.
pub(super) struct Walk<'a> {
    /// Where the files are.
    fs: &'a dyn FileSystem,
    /// The call's bounds.
    limits: &'a Limits,
    /// The roots, resolved once for the walk.
    roots: Roots,
    /// What was found so far.
    pub(super) found: Found,
    /// Resolved paths of the files already embedded or skipped as a whole.
    seen_files: BTreeSet<PathBuf>,
    /// Resolved folders already expanded: a link back to an ancestor is entered once.
    seen_dirs: BTreeSet<PathBuf>,
    /// Folder entries looked at so far (bounded by `limits.entries_max`).
    entries: u32,
    /// The argument entry being resolved (`files[2]`), named by every error.
    field: String,
}

/// Whether a read error is for a named path (an error of the call) or a found one (skipped).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The caller named this path.
    Named,
    /// Found by expanding a named folder.
    Found,
}

impl<'a> Walk<'a> {
    /// A walk under `limits`, its roots resolved now.
    pub(super) async fn new(fs: &'a dyn FileSystem, limits: &'a Limits) -> Walk<'a> {
        Walk {
            fs,
            limits,
            roots: Roots::resolve(fs, &limits.roots).await,
            found: Found::default(),
            seen_files: BTreeSet::new(),
            seen_dirs: BTreeSet::new(),
            entries: 0,
            field: String::new(),
        }
    }

    /// One named path, `field` naming it in errors: refused, or its file(s) found.
    pub(super) async fn named(&mut self, field: String, raw: &str) -> Result<(), CallError> {
        self.field = field;
        let path = Path::new(raw);
        if !path.is_absolute() {
            return Err(self.refuse(path, "is not an absolute path"));
        }
        let shown = normalise(path);
        if !self.roots.admits_named(&shown) {
            return Err(self.outside(&shown));
        }
        let real = match self.fs.canonicalize(path).await {
            Ok(real) => real,
            Err(err) => return Err(self.io_refusal(&shown, &err)),
        };
        if !self.roots.admits_resolved(&real) {
            return Err(self.outside(&shown));
        }
        let meta = match self.fs.metadata(&real).await {
            Ok(meta) => meta,
            Err(err) => return Err(self.io_refusal(&shown, &err)),
        };
        if meta.is_dir {
            self.seen_dirs.insert(real.clone());
            self.expand(shown, real, 0).await
        } else {
            self.file(shown, real, meta, Origin::Named).await
        }
    }

    /// A folder's entries in sorted order, hidden and vendor entries left out.
    fn expand(
        &mut self,
        shown: PathBuf,
        real: PathBuf,
        depth: u32,
    ) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async move {
            let mut names = match self.fs.read_dir(&real).await {
                Ok(names) => names,
                Err(err) if depth == 0 => return Err(self.io_refusal(&shown, &err)),
                Err(err) => {
                    self.skip(shown, SkipReason::Unreadable(err.to_string()));
                    return Ok(());
                }
            };
            names.sort();
            for name in names {
                if is_hidden(&name) {
                    continue;
                }
                self.entries += 1;
                if self.entries > self.limits.entries_max {
                    let entries_max = self.limits.entries_max;
                    self.skip(shown, SkipReason::EntriesMax { entries_max });
                    return Ok(());
                }
                if self.at_files_max() {
                    let files_max = self.limits.files_max;
                    self.skip(shown, SkipReason::FilesMax { files_max });
                    return Ok(());
                }
                self.entry(shown.join(&name), real.join(&name), &name, depth)
                    .await?;
            }
            Ok(())
        })
    }

    /// One entry of a folder being expanded.
    async fn entry(
        &mut self,
        shown: PathBuf,
        path: PathBuf,
        name: &OsStr,
        depth: u32,
    ) -> Result<(), CallError> {
        let real = match self.fs.canonicalize(&path).await {
            Ok(real) => real,
            Err(err) => return self.skipped(shown, SkipReason::Unreadable(err.to_string())),
        };
        if !self.roots.admits_resolved(&real) {
            return self.skipped(shown, SkipReason::OutsideRoots);
        }
        let meta = match self.fs.metadata(&real).await {
            Ok(meta) => meta,
            Err(err) => return self.skipped(shown, SkipReason::Unreadable(err.to_string())),
        };
        if !meta.is_dir {
            return self.file(shown, real, meta, Origin::Found).await;
        }
        let vendor = name.to_str().is_some_and(|n| SKIPPED_FOLDERS.contains(&n));
        if vendor || !self.seen_dirs.insert(real.clone()) {
            return Ok(());
        }
        if depth >= self.limits.depth_max {
            let depth_max = self.limits.depth_max;
            return self.skipped(shown, SkipReason::TooDeep { depth_max });
        }
        self.expand(shown, real, depth + 1).await
    }

    /// One file: embedded whole, or skipped with its reason. A file that vanishes or changes
    /// between the look and the read is an error naming it.
    async fn file(
        &mut self,
        shown: PathBuf,
        real: PathBuf,
        meta: FileMeta,
        origin: Origin,
    ) -> Result<(), CallError> {
        if let Some(reason) = self.skip_before_read(&real, meta) {
            return self.skipped(shown, reason);
        }
        assert!(
            self.roots.admits_resolved(&real),
            "never read outside the roots"
        );
        self.seen_files.insert(real.clone());
        let read = match self.fs.read(&real, self.limits.file_bytes_max).await {
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(self.refuse(&shown, "disappeared while it was read"));
            }
            Err(err) if origin == Origin::Named => return Err(self.io_refusal(&shown, &err)),
            Err(err) => return self.skipped(shown, SkipReason::Unreadable(err.to_string())),
        };
        if !read.complete || read.bytes.len() as u64 != meta.len {
            return Err(self.refuse(&shown, "changed while it was read"));
        }
        let probe = &read.bytes[..read.bytes.len().min(BINARY_PROBE_BYTES)];
        if probe.contains(&0) {
            return self.skipped(shown, SkipReason::Binary);
        }
        let bytes = read.bytes.len() as u64;
        let Ok(content) = String::from_utf8(read.bytes) else {
            return self.skipped(shown, SkipReason::NotUtf8);
        };
        self.found.embedded.push(Embedded {
            path: shown,
            bytes,
            content,
        });
        Ok(())
    }

    /// The reason to leave a file out without reading it, if any.
    fn skip_before_read(&self, real: &Path, meta: FileMeta) -> Option<SkipReason> {
        let limits = self.limits;
        if self.seen_files.contains(real) {
            return Some(SkipReason::Duplicate);
        }
        if self.at_files_max() {
            let files_max = limits.files_max;
            return Some(SkipReason::FilesMax { files_max });
        }
        if meta.len > limits.file_bytes_max {
            let (bytes, bytes_max) = (meta.len, limits.file_bytes_max);
            return Some(SkipReason::TooLarge { bytes, bytes_max });
        }
        let total = self.found.embedded_bytes().saturating_add(meta.len);
        if total > limits.budget_bytes {
            let budget_bytes = limits.budget_bytes;
            return Some(SkipReason::Budget { budget_bytes });
        }
        None
    }

    /// Whether the call already embeds as many files as it may.
    fn at_files_max(&self) -> bool {
        self.found.embedded.len() as u64 >= u64::from(self.limits.files_max)
    }

    /// Record a file left out, and go on.
    fn skipped(&mut self, path: PathBuf, reason: SkipReason) -> Result<(), CallError> {
        self.skip(path, reason);
        Ok(())
    }

    /// Record a file left out.
    fn skip(&mut self, path: PathBuf, reason: SkipReason) {
        self.found.skipped.push(Skipped { path, reason });
    }

    /// The error for a path outside the roots.
    fn outside(&self, shown: &Path) -> CallError {
        let why = format!("is outside the allowed roots ({})", key::EXAI_FILE_ROOTS);
        self.refuse(shown, &why)
    }

    /// The error for a file system answer about a named path.
    fn io_refusal(&self, shown: &Path, err: &io::Error) -> CallError {
        match err.kind() {
            io::ErrorKind::NotFound => self.refuse(shown, "does not exist"),
            _ => self.refuse(shown, &format!("cannot be read: {err}")),
        }
    }

    /// A `VALIDATION_ERROR` naming the entry being resolved and the path, saying why.
    fn refuse(&self, path: &Path, why: &str) -> CallError {
        let message = format!("{}: \"{}\" {why}", self.field, path.display());
        CallError::new(ErrorCode::ValidationError, message)
            .with_details(json!({ "field": self.field }))
    }
}

/// Hidden entries (a leading dot) are never expanded into a call.
fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}
