//! The daemon token: taken from the config, or generated once and kept in a file only the
//! user can read.
//!
//! Why a file: local clients (the MCP bridge, editor plugins) need the token without anyone
//! pasting it into a config file that might be committed (DESIGN.md section 9.10: the original
//! shipped a secret in its template). The token is never logged; only the file's path is.

use std::fs; // dst-ok: the token file is read and written by main, before any runtime
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::rt::Rng;

/// Shortest token accepted from a file.
pub const TOKEN_CHARS_MIN: usize = 16;
/// Random bytes in a generated token (hex-encoded: twice as many characters).
const TOKEN_BYTES: usize = 32;

/// Where the token came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOrigin {
    /// `EXAI_WS_TOKEN` (from whichever config layer).
    Config,
    /// Read from an existing token file.
    File(PathBuf),
    /// Generated now and written to this file.
    Generated(PathBuf),
}

/// The default token file: `$XDG_STATE_HOME/exaid/token`, else `$HOME/.local/state/exaid/token`.
pub fn default_token_file(xdg_state_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    default_state_dir(xdg_state_home, home).map(|dir| dir.join("token"))
}

/// exaid's state folder: `$XDG_STATE_HOME/exaid`, else `$HOME/.local/state/exaid` (the token
/// file and the state file `state.db` live there).
pub fn default_state_dir(xdg_state_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    if let Some(state) = xdg_state_home.filter(|s| !s.is_empty()) {
        return Some(Path::new(state).join("exaid"));
    }
    home.filter(|h| !h.is_empty())
        .map(|h| Path::new(h).join(".local").join("state").join("exaid"))
}

/// Read the token from an existing file, never creating one: what clients of the daemon (the
/// MCP bridge) do, since only the daemon may decide the token.
pub fn read(path: &Path) -> Result<String, String> {
    match fs::read_to_string(path) {
        Ok(text) => checked(path, &text),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(format!(
            "no token file at {}: the daemon writes it on its first start (or set EXAI_WS_TOKEN)",
            path.display()
        )),
        Err(err) => Err(describe(path, &err)),
    }
}

/// Read the token from `path`, or create the file with a fresh token from `rng`.
pub fn load_or_create(path: &Path, rng: &mut Rng) -> Result<(String, TokenOrigin), String> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let token = checked(path, &text)?;
            Ok((token, TokenOrigin::File(path.to_path_buf())))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let token = rng.hex(TOKEN_BYTES);
            write_new(path, &token).map_err(|e| describe(path, &e))?;
            Ok((token, TokenOrigin::Generated(path.to_path_buf())))
        }
        Err(err) => Err(describe(path, &err)),
    }
}

/// The token in a file's `text`, if the file is owner-only and holds one plausible token.
fn checked(path: &Path, text: &str) -> Result<String, String> {
    let mode = fs::metadata(path)
        .map_err(|e| describe(path, &e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "token file {} can be read by other users (mode {:o}); run `chmod 600 {}` or delete it to generate a new one",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    let token = text.trim().to_string();
    if token.chars().count() < TOKEN_CHARS_MIN || token.chars().any(char::is_whitespace) {
        return Err(format!(
            "token file {} must hold one token of at least {TOKEN_CHARS_MIN} characters without spaces; delete it to generate a new one",
            path.display()
        ));
    }
    Ok(token)
}

fn write_new(path: &Path, token: &str) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    // create_new: never overwrite a token another process just wrote.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn describe(path: &Path, err: &io::Error) -> String {
    format!("token file {}: {err}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_owner_only_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("token");
        let mut rng = Rng::from_seed([1; 32]);
        let (token, origin) = load_or_create(&path, &mut rng).unwrap();
        assert_eq!(origin, TokenOrigin::Generated(path.clone()));
        assert_eq!(token.len(), TOKEN_BYTES * 2);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, origin) = load_or_create(&path, &mut rng).unwrap();
        assert_eq!(again, token);
        assert_eq!(origin, TokenOrigin::File(path.clone()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path, &mut rng).unwrap_err();
        assert!(err.contains("other users"), "{err}");
    }

    #[test]
    fn default_path_prefers_xdg_state() {
        assert_eq!(
            default_token_file(Some("/s"), Some("/h")),
            Some(PathBuf::from("/s/exaid/token"))
        );
        assert_eq!(
            default_token_file(None, Some("/h")),
            Some(PathBuf::from("/h/.local/state/exaid/token"))
        );
        assert_eq!(default_token_file(None, None), None);
    }
}
