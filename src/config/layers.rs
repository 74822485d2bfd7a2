//! The layers, lowest to highest precedence: built-in defaults < TOML config file <
//! `.env` file < process environment < command-line flags.
//!
//! Every value is validated at the layer that supplied it (a bad value stops start-up even
//! if a higher layer overrides it) and remembers where it came from. This file reads only
//! the two files named in [`Layers`]; `main.rs` gathers the environment and flags.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::declare::KeyDef;
use super::error::{ConfigError, ErrorDetail, ErrorKind};
use super::keys::{KEYS, find_key, find_key_loose, key};
use super::source::Source;
use super::value::{Merged, Value, parse_value};

/// What to read. Built by `main.rs` from the real process; tests build it by hand,
/// which keeps `Config::load` free of hidden global inputs.
#[derive(Clone, Default)]
pub struct Layers {
    /// TOML config file.
    pub file: Option<PathBuf>,
    /// Error if `file` is missing (it was named explicitly by `--config` or
    /// `EXAI_CONFIG`); otherwise a missing file is skipped silently.
    pub file_required: bool,
    /// dotenv file.
    pub dotenv: Option<PathBuf>,
    /// Same rule as `file_required`, for `dotenv`.
    pub dotenv_required: bool,
    /// Process environment pairs (main passes `std::env::vars()`).
    pub env: Vec<(String, String)>,
    /// Flags as KEY=VALUE pairs (main turns `--port 9000` into
    /// `("EXAI_WS_PORT", "9000")`, and `--set KEY=VALUE` into a pair).
    pub flags: Vec<(String, String)>,
}

/// Hand-written so that printing `Layers` never dumps the process environment
/// (which holds provider API keys): only key names are shown.
impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_keys: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        let flag_keys: Vec<&str> = self.flags.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Layers")
            .field("file", &self.file)
            .field("file_required", &self.file_required)
            .field("dotenv", &self.dotenv)
            .field("dotenv_required", &self.dotenv_required)
            .field("env_keys", &env_keys)
            .field("flag_keys", &flag_keys)
            .finish()
    }
}

/// The merged values, key -> (value, source), before they become a `Config`.
pub(super) struct Values {
    /// Every key's effective value so far.
    pub(super) map: Merged,
}

impl Values {
    /// Every key at its default. A default that fails to parse is a bug caught by
    /// the `table_defaults_are_valid` test; here it is skipped so this never panics.
    pub(super) fn defaults() -> Values {
        let map = KEYS
            .iter()
            .filter_map(|d| {
                parse_value(d.kind, d.default)
                    .ok()
                    .map(|v| (d.name, (v, Source::Default)))
            })
            .collect();
        Values { map }
    }

    /// `EXAI_FILE_ROOTS` defaults to the user's home directory, which only the process
    /// environment knows (`HOME`); a home that is not absolute is no default.
    fn default_roots(&mut self, env: &[(String, String)]) {
        let home = env.iter().rev().find(|(name, _)| name == "HOME");
        let Some((_, home)) = home else { return };
        if !Path::new(home).is_absolute() {
            return;
        }
        let roots = Value::List(vec![home.clone()]);
        self.map
            .insert(key::EXAI_FILE_ROOTS, (roots, Source::Default));
    }

    /// Validates `raw` for `def` and makes it the effective value.
    fn set(&mut self, def: &'static KeyDef, raw: &str, source: Source) -> Result<(), ConfigError> {
        match parse_value(def.kind, raw) {
            Ok(v) => {
                self.map.insert(def.name, (v, source));
                Ok(())
            }
            Err(reason) => Err(ConfigError::invalid(def, raw, source, reason)),
        }
    }
}

/// Reads every layer in precedence order into the defaults; warnings (unknown keys and the
/// like) are appended to `warnings`.
pub(super) fn merge(layers: &Layers, warnings: &mut Vec<String>) -> Result<Values, ConfigError> {
    let mut values = Values::defaults();
    values.default_roots(&layers.env);
    if let Some(path) = &layers.file {
        apply_file(&mut values, path, layers.file_required, warnings)?;
    }
    if let Some(path) = &layers.dotenv {
        apply_dotenv(&mut values, path, layers.dotenv_required, warnings)?;
    }
    apply_env(&mut values, &layers.env, warnings)?;
    apply_flags(&mut values, &layers.flags)?;
    Ok(values)
}

/// The process environment: known keys are set, unknown `EXAI_*` keys warned about, the
/// rest (PATH, HOME...) ignored.
fn apply_env(
    values: &mut Values,
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        match find_key(name) {
            Some(def) => values.set(def, raw, Source::Env)?,
            None if name.starts_with("EXAI_") => {
                warnings.push(format!("unknown key {name} in environment (ignored)"));
            }
            None => {}
        }
    }
    Ok(())
}

/// Flags: an unknown key is an error (the operator typed it just now).
fn apply_flags(values: &mut Values, flags: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, raw) in flags {
        match find_key_loose(name) {
            Some(def) => values.set(def, raw, Source::Flag)?,
            None => {
                return Err(ErrorDetail {
                    kind: ErrorKind::Unknown,
                    key: name.clone(),
                    value: None,
                    source: Source::Flag,
                    reason: "not a configuration key; run `exaid config` to list them".to_string(),
                    related: Vec::new(),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// Reads the TOML config file into `values`.
fn apply_file(
    values: &mut Values,
    path: &Path,
    required: bool,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let source = Source::File(path.to_path_buf());
    let text = match read_text(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(()),
        Err(e) => return Err(ConfigError::file(key::EXAI_CONFIG, source, e.to_string())),
    };
    // Use only the message and position: toml's full Display quotes the source line,
    // which could contain the token.
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let (line, col) = line_col(&text, span.start);
                format!(" at line {line}, column {col}")
            })
            .unwrap_or_default();
        ConfigError::file(
            key::EXAI_CONFIG,
            source.clone(),
            format!("TOML syntax error{at}: {}", e.message().trim()),
        )
    })?;
    let mut seen: BTreeMap<&'static str, &str> = BTreeMap::new();
    for (name, value) in &table {
        let raw = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                let found = match other {
                    toml::Value::Table(_) => "a table",
                    toml::Value::Array(_) => "an array",
                    _ => "a datetime",
                };
                return Err(ErrorDetail {
                    kind: ErrorKind::Invalid,
                    key: name.clone(),
                    value: None,
                    source,
                    reason: format!(
                        "the config file is a flat table of KEY = value; expected a string, number or boolean, found {found}"
                    ),
                    related: Vec::new(),
                }
                .into());
            }
        };
        let Some(def) = find_key_loose(name) else {
            warnings.push(format!(
                "unknown key {name} in file {} (ignored)",
                path.display()
            ));
            continue;
        };
        if !def.file_ok {
            warnings.push(format!(
                "{name} in file {} is ignored: it is only read from the environment or flags",
                path.display()
            ));
            continue;
        }
        if let Some(first) = seen.insert(def.name, name) {
            return Err(ConfigError::invalid(
                def,
                &raw,
                source,
                format!("given twice in the file (as {first} and {name})"),
            ));
        }
        values.set(def, &raw, source.clone())?;
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Reads the dotenv file into `values` without touching the process environment.
fn apply_dotenv(
    values: &mut Values,
    path: &Path,
    required: bool,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let source = Source::DotEnv(path.to_path_buf());
    let iter = match dotenvy::from_path_iter(path) {
        Ok(it) => it,
        Err(e) if e.not_found() && !required => return Ok(()),
        Err(e) => return Err(ConfigError::file(key::EXAI_ENV_FILE, source, e.to_string())),
    };
    for item in iter {
        let (name, raw) = match item {
            Ok(pair) => pair,
            Err(dotenvy::Error::LineParse(line, index)) => {
                return Err(ConfigError::file(
                    key::EXAI_ENV_FILE,
                    source,
                    dotenv_syntax_reason(path, &line, index),
                ));
            }
            Err(e) => return Err(ConfigError::file(key::EXAI_ENV_FILE, source, e.to_string())),
        };
        match find_key(&name) {
            Some(def) => values.set(def, &raw, source.clone())?,
            None if name.starts_with("EXAI_") => warnings.push(format!(
                "unknown key {name} in .env {} (ignored)",
                path.display()
            )),
            None => {}
        }
    }
    Ok(())
}

/// One configuration file, whole. Read at start-up, before any runtime exists, so it does
/// not go through the seam's file system.
fn read_text(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path) // dst-ok: start-up only, before any runtime
}

/// Describes a dotenv syntax error by line number (found by re-reading the file)
/// and the key name, never by the line's content, which may hold a secret.
fn dotenv_syntax_reason(path: &Path, bad: &str, index: usize) -> String {
    let first = bad.lines().next().unwrap_or("").trim_end();
    let line_no = read_text(path).ok().and_then(|text| {
        text.lines()
            .position(|l| l.trim_end() == first)
            .map(|i| i + 1)
    });
    let key: String = first
        .trim_start()
        .trim_start_matches("export ")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let mut out = String::from("syntax error");
    if let Some(n) = line_no {
        out.push_str(&format!(" at line {n}, column {}", index + 1));
    } else {
        out.push_str(&format!(" at column {}", index + 1));
    }
    if !key.is_empty() {
        out.push_str(&format!(" (key {key})"));
    }
    out
}
