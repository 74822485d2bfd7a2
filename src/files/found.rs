//! What resolving a call's paths found: the files to embed and the files left out, each with
//! its reason. Plain data: this module knows nothing of tools, prompts or metadata frames.

use std::fmt;
use std::path::PathBuf;

use crate::config::key;

/// One file whose whole content will be embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    /// The path as the caller named it (or the named folder joined with the entry's name),
    /// so the model and the client see the names they know, not resolved link targets.
    pub path: PathBuf,
    /// Size in bytes (of `content`, which is the whole file).
    pub bytes: u64,
    /// The file's text, whole: a file is embedded entirely or skipped, never cut.
    pub content: String,
}

/// One file left out, and why: the rule is that nothing is dropped silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The path as named (or found in a named folder).
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// Why a file was left out of a call. Shown to clients (`metadata.files.skipped`) and to the
/// model (a note in the prompt) through [`fmt::Display`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Larger than the per-file cap.
    TooLarge {
        /// The file's size when looked at.
        bytes: u64,
        /// The cap (`EXAI_FILE_BYTES_MAX`).
        bytes_max: u64,
    },
    /// Holds a NUL byte near its start: not text.
    Binary,
    /// Not valid UTF-8, so it cannot be embedded as text without changing it.
    NotUtf8,
    /// The call already names as many files as it may (`EXAI_FILES_PER_CALL_MAX`).
    FilesMax {
        /// The per-call cap.
        files_max: u32,
    },
    /// Embedding it would exceed what the call may embed in all.
    Budget {
        /// The call's budget in bytes.
        budget_bytes: u64,
    },
    /// A folder nested deeper than expansion goes.
    TooDeep {
        /// How many folders deep expansion goes below a named folder.
        depth_max: u32,
    },
    /// A folder with more entries than expansion looks at; the rest of it is left out.
    EntriesMax {
        /// Entries one call's expansion looks at.
        entries_max: u32,
    },
    /// Found in a named folder, but a link in it leads outside the roots.
    OutsideRoots,
    /// The same file (after links) is already embedded.
    Duplicate,
    /// Found in a named folder but could not be looked at or read (the reason from the OS).
    Unreadable(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::TooLarge { bytes, bytes_max } => write!(
                f,
                "{bytes} bytes, over the limit of {bytes_max} bytes per file ({})",
                key::EXAI_FILE_BYTES_MAX
            ),
            SkipReason::Binary => f.write_str("binary file"),
            SkipReason::NotUtf8 => f.write_str("not UTF-8 text"),
            SkipReason::FilesMax { files_max } => write!(
                f,
                "over the limit of {files_max} files per call ({})",
                key::EXAI_FILES_PER_CALL_MAX
            ),
            SkipReason::Budget { budget_bytes } => {
                write!(f, "over the call's budget of {budget_bytes} bytes")
            }
            SkipReason::TooDeep { depth_max } => {
                write!(f, "more than {depth_max} folders deep")
            }
            SkipReason::EntriesMax { entries_max } => write!(
                f,
                "the rest of this folder: over the limit of {entries_max} entries looked at per call"
            ),
            SkipReason::OutsideRoots => f.write_str("a link leading outside the allowed roots"),
            SkipReason::Duplicate => f.write_str("already included"),
            SkipReason::Unreadable(why) => write!(f, "cannot be read: {why}"),
        }
    }
}

/// Everything a call's paths resolved to, in the order they were named (a folder's files in
/// sorted order at the folder's place).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The files to embed.
    pub embedded: Vec<Embedded>,
    /// The files left out, with their reasons.
    pub skipped: Vec<Skipped>,
}

impl Found {
    /// Bytes embedded so far (checked against the call's budget).
    pub fn embedded_bytes(&self) -> u64 {
        self.embedded.iter().map(|e| e.bytes).sum()
    }
}
