//! The bounds on what one call may embed.

use std::path::PathBuf;

use crate::config::FileAccessSettings;

/// How far resolving a call's paths may go. Every bound has a unit; none is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Absolute folders every file must lie under, after links are followed
    /// (`EXAI_FILE_ROOTS`); empty refuses every path.
    pub roots: Vec<PathBuf>,
    /// Largest file embedded whole (`EXAI_FILE_BYTES_MAX`); a larger one is skipped.
    pub file_bytes_max: u64,
    /// Files one call may embed (`EXAI_FILES_PER_CALL_MAX`); the rest are skipped.
    pub files_max: u32,
    /// Bytes one call may embed in all (derived from the model's context window by the
    /// caller); a file that would go over is skipped.
    pub budget_bytes: u64,
    /// Folders below a named folder that expansion enters.
    pub depth_max: u32,
    /// Entries one folder expansion looks at, skipped ones included: bounds the work a
    /// folder of a million files can cause.
    pub entries_max: u32,
    /// Images one call may send (`EXAI_IMAGES_PER_CALL_MAX`); more is refused.
    pub images_max: u32,
    /// Largest image a call may send, decoded (`EXAI_IMAGE_BYTES_MAX`); larger is refused.
    pub image_bytes_max: u64,
}

impl Limits {
    /// Folders below a named one that expansion enters unless told otherwise.
    pub const DEPTH_MAX: u32 = 16;

    /// Entries looked at per call, by default: 64 times the default files per call.
    pub const ENTRIES_MAX: u32 = 4096;

    /// The configured bounds, with the call's budget (derived by the caller from the model's
    /// context window) and the default depth and entries.
    pub fn from_config(config: &FileAccessSettings, budget_bytes: u64) -> Limits {
        Limits {
            roots: config.roots.clone(),
            file_bytes_max: config.file_bytes_max,
            files_max: config.files_per_call_max,
            budget_bytes,
            depth_max: Limits::DEPTH_MAX,
            entries_max: Limits::ENTRIES_MAX,
            images_max: config.images_per_call_max,
            image_bytes_max: config.image_bytes_max,
        }
    }
}
