//! Files a call names (`files`, `relevant_files`), read in the call's own task and put into
//! what the model receives.
//!
//! Why here and in the call's task: reading is part of the call, so it happens under the
//! call's permit and deadline, through the runtime seam (`rt::FileSystem`), and only under
//! the configured roots (`files::resolve` enforces them). What does not fit is never cut
//! silently: each skipped file is named with its reason, in a note the model reads and in the
//! result's `metadata.files`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::conversation::{FileMark, Turn};
use crate::error::CallError;
use crate::files::{self, Found};
use crate::tools::context::ToolCtx;

/// Files a conversation already carries, by path: their digest when last embedded.
pub type Known = BTreeMap<PathBuf, String>;

/// What the turns the model is sent as context already carry.
pub fn known_in<'a>(turns: impl IntoIterator<Item = &'a Turn>) -> Known {
    turns
        .into_iter()
        .flat_map(|turn| &turn.files)
        .map(|mark| (mark.path.clone(), mark.digest.clone()))
        .collect()
}

/// A digest of a file's contents: the first 16 bytes of its SHA-256, in hex.
fn digest(content: &str) -> String {
    let hash = Sha256::digest(content.as_bytes());
    hash[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Files rendered for a prompt, and what the result says about them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embedding {
    /// The text that goes into the prompt: each file between begin and end markers carrying
    /// its path, then a note naming what was skipped. Empty when no file was named.
    pub block: String,
    /// `{embedded: [{path, bytes}], skipped: [{path, reason}]}`, or `None` when no file was
    /// named (the result then carries no `files` metadata).
    pub metadata: Option<Value>,
    /// The files whose contents `block` carries (not those it refers to), for the turn that
    /// records it.
    pub marks: Vec<FileMark>,
}

/// Whether lines are numbered: the workflow experts cite `file:line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// As the file has them.
    Plain,
    /// Each line prefixed with its number.
    Numbered,
}

/// Read `paths`, the entries of the argument `field`, for a call to `model`, and render them.
/// A file `known` already carries with the same contents is referred to, not sent again.
/// A path that breaks a rule (relative, outside the roots, missing, unreadable, changed while
/// read) ends the call with a `VALIDATION_ERROR` naming the entry (`files[2]`).
pub async fn embed(
    ctx: &ToolCtx,
    field: &str,
    paths: &[String],
    model: &str,
    lines: Lines,
    known: &Known,
) -> Result<Embedding, CallError> {
    if paths.is_empty() {
        return Ok(Embedding::default());
    }
    let limits = ctx.daemon().file_limits(model);
    let found = files::resolve(&*ctx.rt().fs(), field, paths, &limits).await?;
    assert!(found.embedded_bytes() <= limits.budget_bytes);
    let digests: Vec<String> = found.embedded.iter().map(|f| digest(&f.content)).collect();
    let unchanged: Vec<bool> = found
        .embedded
        .iter()
        .zip(&digests)
        .map(|(file, digest)| known.get(&file.path) == Some(digest))
        .collect();
    let marks = found
        .embedded
        .iter()
        .zip(&digests)
        .zip(&unchanged)
        .filter(|(_, unchanged)| !**unchanged)
        .map(|((file, digest), _)| FileMark {
            path: file.path.clone(),
            digest: digest.clone(),
        })
        .collect();
    Ok(Embedding {
        block: render(&found, lines, &unchanged),
        metadata: Some(metadata(&found, &unchanged)),
        marks,
    })
}

/// The prompt text of what was found; `unchanged[i]` marks an embedded file the conversation
/// already carries, which is referred to instead of sent.
pub fn render(found: &Found, lines: Lines, unchanged: &[bool]) -> String {
    assert_eq!(found.embedded.len(), unchanged.len());
    let mut block = String::new();
    if !found.embedded.is_empty() {
        let _ = writeln!(
            block,
            "The caller attached {} file(s). Each stands between a BEGIN and an END marker \
             naming its path{}.",
            found.embedded.len(),
            match lines {
                Lines::Numbered =>
                    "; the line numbers are for reference (cite file:line) and are not part of the file",
                Lines::Plain => "",
            }
        );
    }
    for (file, unchanged) in found.embedded.iter().zip(unchanged) {
        let path = file.path.display();
        if *unchanged {
            let _ = writeln!(
                block,
                "--- FILE: {path} ({} bytes): unchanged, its contents are in an earlier message of this conversation ---",
                file.bytes
            );
            continue;
        }
        let _ = writeln!(block, "--- BEGIN FILE: {path} ({} bytes) ---", file.bytes);
        match lines {
            Lines::Plain => {
                block.push_str(&file.content);
                if !file.content.ends_with('\n') {
                    block.push('\n');
                }
            }
            Lines::Numbered => {
                for (index, line) in file.content.lines().enumerate() {
                    let _ = writeln!(block, "{:>5} | {line}", index + 1);
                }
            }
        }
        let _ = writeln!(block, "--- END FILE: {path} ---");
    }
    if !found.skipped.is_empty() {
        let _ = writeln!(
            block,
            "Note: {} file(s) named by the caller were not attached:",
            found.skipped.len()
        );
        for skipped in &found.skipped {
            let _ = writeln!(block, "- {}: {}", skipped.path.display(), skipped.reason);
        }
    }
    block
}

/// What the result's `metadata.files` says.
fn metadata(found: &Found, unchanged: &[bool]) -> Value {
    let embedded: Vec<Value> = found
        .embedded
        .iter()
        .zip(unchanged)
        .map(|(f, unchanged)| {
            let mut entry = json!({"path": f.path.display().to_string(), "bytes": f.bytes});
            if *unchanged {
                entry["referred_to_earlier_turn"] = json!(true);
            }
            entry
        })
        .collect();
    let skipped: Vec<Value> = found
        .skipped
        .iter()
        .map(|s| json!({"path": s.path.display().to_string(), "reason": s.reason.to_string()}))
        .collect();
    json!({"embedded": embedded, "skipped": skipped})
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::files::{Embedded, SkipReason, Skipped};

    fn found() -> Found {
        Found {
            embedded: vec![Embedded {
                path: PathBuf::from("/home/u/src/a.rs"),
                bytes: 12,
                content: "fn a() {}\n//\n".to_string(),
            }],
            skipped: vec![Skipped {
                path: PathBuf::from("/home/u/big.bin"),
                reason: SkipReason::Binary,
            }],
        }
    }

    #[test]
    fn files_are_marked_numbered_and_skips_named() {
        let text = render(&found(), Lines::Numbered, &[false]);
        assert!(
            text.contains("--- BEGIN FILE: /home/u/src/a.rs (12 bytes) ---\n"),
            "{text}"
        );
        assert!(text.contains("    1 | fn a() {}\n    2 | //\n"), "{text}");
        assert!(
            text.contains("--- END FILE: /home/u/src/a.rs ---\n"),
            "{text}"
        );
        assert!(text.contains("- /home/u/big.bin: "), "{text}");
        let plain = render(&found(), Lines::Plain, &[false]);
        assert!(
            plain.contains("(12 bytes) ---\nfn a() {}\n//\n--- END"),
            "{plain}"
        );
        let referred = render(&found(), Lines::Plain, &[true]);
        assert!(
            referred.contains("unchanged, its contents are in an earlier message"),
            "{referred}"
        );
        assert!(!referred.contains("fn a()"), "{referred}");
        let meta = metadata(&found(), &[false]);
        assert_eq!(meta["embedded"][0]["bytes"], 12);
        assert!(metadata(&found(), &[true])["embedded"][0]["referred_to_earlier_turn"] == true);
        assert_eq!(meta["skipped"][0]["path"], "/home/u/big.bin");
    }
}
