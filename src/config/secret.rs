//! A secret string (the WebSocket token, provider API keys).

use std::fmt;

/// A secret string (the WebSocket token). Wrapped so that `Debug`, logs and error
/// messages cannot print it by accident; call [`Secret::expose`] where the raw value
/// is really needed (and compare it in constant time there).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The raw secret. Only for authentication and for writing the token file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in characters, which is safe to show (`<set, N chars>`).
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
