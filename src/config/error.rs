//! Why start-up must stop: the error type and its messages.

use std::fmt;

use super::declare::KeyDef;
use super::source::Source;

/// Why start-up must stop: names the key, the raw value (redacted for secrets) and
/// the layer it came from, so the operator knows exactly what to fix and where.
/// Boxed so `Result<_, ConfigError>` stays small on the happy path.
#[derive(Debug)]
pub struct ConfigError(Box<ErrorDetail>);

/// The contents of a [`ConfigError`].
#[derive(Debug)]
pub(super) struct ErrorDetail {
    /// Which message shape to use.
    pub(super) kind: ErrorKind,
    /// The key at fault (for file-level errors: EXAI_CONFIG or EXAI_ENV_FILE).
    pub(super) key: String,
    /// The value as it should be shown: quoted raw text, or `<redacted, N chars>`.
    pub(super) value: Option<String>,
    /// The layer the value came from.
    pub(super) source: Source,
    /// What was expected / what went wrong. Never contains a secret.
    pub(super) reason: String,
    /// For relation errors: the other keys involved (key, shown value, source).
    pub(super) related: Vec<(String, String, Source)>,
}

/// The shape of the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorKind {
    /// A value failed its key's rule.
    Invalid,
    /// A key nobody knows, where that is fatal (flags).
    Unknown,
    /// A config or dotenv file could not be read or parsed.
    File,
    /// Values are fine one by one but contradict each other.
    Relation,
}

impl ConfigError {
    /// The key at fault.
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// The layer the offending value came from.
    pub fn source(&self) -> &Source {
        &self.0.source
    }

    /// What was expected.
    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    /// A value that failed its key's rule.
    pub(super) fn invalid(def: &KeyDef, raw: &str, source: Source, reason: String) -> ConfigError {
        ConfigError(Box::new(ErrorDetail {
            kind: ErrorKind::Invalid,
            key: def.name.to_string(),
            value: Some(show_raw(def, raw)),
            source,
            reason,
            related: Vec::new(),
        }))
    }

    /// A file that could not be read or parsed.
    pub(super) fn file(key: &str, source: Source, reason: String) -> ConfigError {
        ConfigError(Box::new(ErrorDetail {
            kind: ErrorKind::File,
            key: key.to_string(),
            value: None,
            source,
            reason,
            related: Vec::new(),
        }))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &*self.0;
        match d.kind {
            ErrorKind::Invalid => match &d.value {
                Some(v) => write!(
                    f,
                    "invalid {} = {} (from {}): {}",
                    d.key, v, d.source, d.reason
                ),
                None => write!(f, "invalid {} (from {}): {}", d.key, d.source, d.reason),
            },
            ErrorKind::Unknown => {
                write!(f, "unknown key {} (from {}): {}", d.key, d.source, d.reason)
            }
            ErrorKind::File => write!(f, "cannot load {}: {}", d.source, d.reason),
            ErrorKind::Relation => {
                write!(f, "inconsistent settings: {} = ", d.key)?;
                write!(
                    f,
                    "{} (from {})",
                    d.value.as_deref().unwrap_or(""),
                    d.source
                )?;
                for (k, v, s) in &d.related {
                    write!(f, ", {k} = {v} (from {s})")?;
                }
                write!(f, ": {}", d.reason)
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ErrorDetail> for ConfigError {
    fn from(d: ErrorDetail) -> ConfigError {
        ConfigError(Box::new(d))
    }
}

/// How a raw input value may appear in an error: quoted, or redacted for secrets.
fn show_raw(def: &KeyDef, raw: &str) -> String {
    if def.kind.is_secret() {
        format!("<redacted, {} chars>", raw.chars().count())
    } else {
        format!("{raw:?}")
    }
}
