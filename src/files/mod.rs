//! The files a call names: each path checked against the roots, resolved, read whole or
//! skipped with its reason.
//!
//! Why a module of its own: tools embed files the client names, and reading files on a
//! client's behalf is where a daemon leaks what it should not. The rules live here once,
//! apart from the tools and prompts that use the result:
//! - absolute paths only; each resolved (links followed, `..` normalised) and under the
//!   roots (`EXAI_FILE_ROOTS`), checked before the file system is asked and again after
//!   links are followed; anything else is a `VALIDATION_ERROR` whose `details.field` names
//!   the entry (`files[2]`) and whose message says why;
//! - a folder expands to its text files in sorted order, leaving out hidden entries, vendor
//!   and build folders and binary files, bounded in depth and entries;
//! - a file too large, over the call's count or budget, binary or not UTF-8 is skipped and
//!   named with its reason, never cut; a file that changes or vanishes while it is read is
//!   an error naming it.
//!
//! Every read goes through the seam's [`FileSystem`], so the simulator decides what the
//! files hold and witnesses every read.
//!
//! Files: `found` (the result, plain data), `limits`, `roots` (lexical checks), `walk`, and
//! `image` (the images a call sends: the same roots, refused rather than skipped).

mod found;
pub mod image;
mod limits;
mod roots;
#[cfg(test)]
mod tests;
mod walk;

pub use found::{Embedded, Found, SkipReason, Skipped};
pub use limits::Limits;
pub use roots::normalise;

use crate::error::CallError;
use crate::rt::FileSystem;

/// Resolve `paths`, the entries of the argument `field` (`files`, `relevant_files`), under
/// `limits`. The first entry that breaks a rule ends it with its `VALIDATION_ERROR`.
pub async fn resolve(
    fs: &dyn FileSystem,
    field: &str,
    paths: &[String],
    limits: &Limits,
) -> Result<Found, CallError> {
    let mut walk = walk::Walk::new(fs, limits).await;
    for (index, raw) in paths.iter().enumerate() {
        walk.named(format!("{field}[{index}]"), raw).await?;
    }
    let found = walk.found;
    assert!(found.embedded.len() as u64 <= u64::from(limits.files_max));
    assert!(found.embedded_bytes() <= limits.budget_bytes);
    assert!(
        found
            .embedded
            .iter()
            .all(|e| e.bytes <= limits.file_bytes_max && e.bytes == e.content.len() as u64)
    );
    Ok(found)
}
