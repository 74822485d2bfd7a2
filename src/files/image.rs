//! The images a call sends (`images`): each a file under the roots or a `data:` URL, checked
//! to be a PNG, JPEG, GIF or WebP image within the caps, and carried on as a `data:` URL.
//!
//! Why refused rather than skipped (files are skipped): an image is the question itself ("what
//! is wrong in this screenshot"), so a call without it would answer something else. Why the
//! bytes are sniffed: an extension or a declared type can lie, and a provider that receives a
//! text file as `image/png` fails the call after the permit and the deadline were spent.
//! Reads go through the seam's [`FileSystem`], under the same roots as every file.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::limits::Limits;
use super::roots::{Roots, normalise};
use crate::config::key;
use crate::error::{CallError, ErrorCode};
use crate::rt::FileSystem;

/// The image types every vision model exaid lists takes, by media type.
const MEDIA_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// One image ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// What the caller named: the path, or `data:` with its media type (never the payload).
    pub source: String,
    /// Its media type, from its bytes.
    pub media_type: &'static str,
    /// Its size, decoded.
    pub bytes: u64,
    /// The `data:` URL the provider receives.
    pub url: String,
}

impl Image {
    /// How the result's `metadata.images` names it.
    pub fn metadata(&self) -> Value {
        json!({"source": self.source, "media_type": self.media_type, "bytes": self.bytes})
    }
}

/// The media type `bytes` start like, if they are an image a vision model takes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Read and check `entries`, the argument `field` (`images`), under `limits`. The first entry
/// that breaks a rule ends the call with a `VALIDATION_ERROR` naming it (`images[1]`).
pub async fn read_images(
    fs: &dyn FileSystem,
    field: &str,
    entries: &[String],
    limits: &Limits,
) -> Result<Vec<Image>, CallError> {
    if entries.len() as u64 > u64::from(limits.images_max) {
        let message = format!(
            "{field}: {} images named, at most {} may be sent in one call ({})",
            entries.len(),
            limits.images_max,
            key::EXAI_IMAGES_PER_CALL_MAX
        );
        return Err(invalid(field, message));
    }
    let roots = Roots::resolve(fs, &limits.roots).await;
    let mut images = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let entry_field = format!("{field}[{index}]");
        let image = if let Some(rest) = entry.strip_prefix("data:") {
            from_data_url(&entry_field, rest, limits)?
        } else {
            from_file(fs, &roots, &entry_field, entry, limits).await?
        };
        assert!(image.bytes <= limits.image_bytes_max);
        images.push(image);
    }
    assert!(images.len() as u64 <= u64::from(limits.images_max));
    Ok(images)
}

/// An image given inline: `data:<media type>;base64,<payload>`.
fn from_data_url(field: &str, rest: &str, limits: &Limits) -> Result<Image, CallError> {
    let refuse = |why: &str| invalid(field, format!("{field}: the data: URL {why}"));
    let Some((header, payload)) = rest.split_once(',') else {
        return Err(refuse("has no ',' before its data"));
    };
    let Some(declared) = header.strip_suffix(";base64") else {
        return Err(refuse("is not base64 (expected data:image/png;base64,...)"));
    };
    let declared = declared.to_ascii_lowercase();
    let Some(media_type) = MEDIA_TYPES.iter().copied().find(|t| *t == declared) else {
        return Err(refuse(&format!(
            "declares {declared:?}; images must be PNG, JPEG, GIF or WebP"
        )));
    };
    // Refuse an oversized payload before decoding it: base64 carries 3 bytes in 4 characters.
    let estimate_bytes = (payload.len() as u64 / 4) * 3;
    if estimate_bytes > limits.image_bytes_max + 3 {
        return Err(too_large(field, "the data: URL", estimate_bytes, limits));
    }
    let Ok(bytes) = BASE64.decode(payload.trim()) else {
        return Err(refuse("does not hold valid base64"));
    };
    if bytes.len() as u64 > limits.image_bytes_max {
        return Err(too_large(
            field,
            "the data: URL",
            bytes.len() as u64,
            limits,
        ));
    }
    if sniff(&bytes) != Some(media_type) {
        return Err(refuse(&format!(
            "declares {media_type} but does not hold one"
        )));
    }
    Ok(Image {
        source: format!("data:{media_type}"),
        media_type,
        bytes: bytes.len() as u64,
        url: format!("data:{media_type};base64,{}", BASE64.encode(&bytes)),
    })
}

/// An image in a file: absolute, under the roots once links are followed, within the cap.
async fn from_file(
    fs: &dyn FileSystem,
    roots: &Roots,
    field: &str,
    raw: &str,
    limits: &Limits,
) -> Result<Image, CallError> {
    let path = Path::new(raw);
    let refuse =
        |shown: &Path, why: &str| invalid(field, format!("{field}: \"{}\" {why}", shown.display()));
    if !path.is_absolute() {
        return Err(refuse(path, "is neither an absolute path nor a data: URL"));
    }
    let shown = normalise(path);
    let outside = format!("is outside the allowed roots ({})", key::EXAI_FILE_ROOTS);
    if !roots.admits_named(&shown) {
        return Err(refuse(&shown, &outside));
    }
    let real: PathBuf = match fs.canonicalize(path).await {
        Ok(real) => real,
        Err(err) => return Err(refuse(&shown, &io_why(&err))),
    };
    if !roots.admits_resolved(&real) {
        return Err(refuse(&shown, &outside));
    }
    let meta = match fs.metadata(&real).await {
        Ok(meta) => meta,
        Err(err) => return Err(refuse(&shown, &io_why(&err))),
    };
    if meta.is_dir {
        return Err(refuse(&shown, "is a folder; name each image file"));
    }
    if meta.len > limits.image_bytes_max {
        let what = format!("\"{}\"", shown.display());
        return Err(too_large(field, &what, meta.len, limits));
    }
    let read = match fs.read(&real, limits.image_bytes_max).await {
        Ok(read) => read,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(&shown, "disappeared while it was read"));
        }
        Err(err) => return Err(refuse(&shown, &io_why(&err))),
    };
    if !read.complete || read.bytes.len() as u64 != meta.len {
        return Err(refuse(&shown, "changed while it was read"));
    }
    let Some(media_type) = sniff(&read.bytes) else {
        return Err(refuse(&shown, "is not a PNG, JPEG, GIF or WebP image"));
    };
    Ok(Image {
        source: shown.display().to_string(),
        media_type,
        bytes: meta.len,
        url: format!("data:{media_type};base64,{}", BASE64.encode(&read.bytes)),
    })
}

/// Why a file system answer refuses a named path.
fn io_why(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        _ => format!("cannot be read: {err}"),
    }
}

/// The error for an image over the byte cap.
fn too_large(field: &str, what: &str, bytes: u64, limits: &Limits) -> CallError {
    let message = format!(
        "{field}: {what} is {bytes} bytes, over the {} bytes an image may have ({})",
        limits.image_bytes_max,
        key::EXAI_IMAGE_BYTES_MAX
    );
    invalid(field, message)
}

/// A `VALIDATION_ERROR` whose `details.field` names the entry.
fn invalid(field: &str, message: String) -> CallError {
    CallError::new(ErrorCode::ValidationError, message).with_details(json!({ "field": field }))
}
