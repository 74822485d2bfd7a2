//! Value kinds: how a key's text is parsed, checked and shown, and how a parsed value
//! becomes a typed field.
//!
//! Why apart: parsing bytes is kept apart from handling them. Every layer (file, `.env`,
//! environment, flags) and every default goes through [`parse_value`], so a default is
//! checked by the same rule as user input.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::profile::Profile;
use super::secret::Secret;
use super::source::Source;

/// How a key's text is parsed and checked. Secret-ness follows from the kind.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// Host name or address: non-empty, no whitespace, at most `max_chars`.
    Host { max_chars: usize },
    /// Plain decimal integer in `min..=max`; `unit` (may be empty) is named in errors.
    Int {
        min: u64,
        max: u64,
        unit: &'static str,
    },
    /// Decimal seconds, stored as integer milliseconds in `min_ms..=max_ms`.
    Secs { min_ms: u64, max_ms: u64 },
    /// Secret token: empty means unset; otherwise `min_chars`+ and no whitespace.
    Token { min_chars: usize },
    /// Path; empty means none.
    OptPath,
    /// Path; must be non-empty.
    Path,
    /// An `http://` or `https://` URL without whitespace, at most `max_chars`.
    Url { max_chars: usize },
    /// Comma-separated non-empty items (spaces around items trimmed), at most `max_items`.
    List { max_items: usize },
    /// Comma-separated model names, at most `max_items`; empty means none (the routing then
    /// derives its default from the configured providers).
    Models { max_items: usize },
    /// Comma-separated browser origins (`scheme://host[:port]`), at most `max_items`; empty
    /// means none. Stored normalised (lower case, port explicit).
    Origins { max_items: usize },
    /// Comma-separated absolute paths (spaces around items trimmed), at most `max_items`;
    /// empty means none (the key's default is then supplied by the layering).
    AbsPaths { max_items: usize },
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// One of fixed names, case-insensitive (stored lower case).
    Choice { choices: &'static [&'static str] },
    /// Comma-separated names from a fixed set, case-insensitive (stored lower case); empty
    /// means none. An unknown name is an error that names it.
    Names {
        known: &'static [&'static str],
        max_items: usize,
    },
    /// `;`-separated `model:fact=value,...` entries correcting the model table, at most
    /// `max_items`; empty means none. A bad entry is an error that names it.
    ModelFacts { max_items: usize },
}

/// A key of decimal seconds, stored in milliseconds (shorthand for the key table).
pub(super) const fn secs(min_ms: u64, max_ms: u64) -> Kind {
    Kind::Secs { min_ms, max_ms }
}

/// A key of plain integers without a unit (shorthand for the key table).
pub(super) const fn int(min: u64, max: u64) -> Kind {
    Kind::Int { min, max, unit: "" }
}

impl Kind {
    /// Secrets are redacted in every error, table and log line.
    pub(super) fn is_secret(self) -> bool {
        matches!(self, Kind::Token { .. })
    }

    /// The unit a value is given in, when it has one (`exaid config --explain`).
    pub(super) fn unit(self) -> Option<&'static str> {
        match self {
            Kind::Secs { .. } => Some("seconds"),
            Kind::Int { unit, .. } if !unit.is_empty() => Some(unit),
            _ => None,
        }
    }

    /// The "expected ..." text used in every error for this kind.
    pub(super) fn expected(self) -> String {
        match self {
            Kind::Host { max_chars } => format!(
                "expected a host name or address: non-empty, no whitespace, at most {max_chars} characters"
            ),
            Kind::Int { min, max, unit: "" } => {
                format!("expected an integer from {min} to {max}")
            }
            Kind::Int { min, max, unit } => {
                format!("expected an integer ({unit}) from {min} to {max}")
            }
            Kind::Secs { min_ms, max_ms } => format!(
                "expected seconds (decimal) from {} to {}",
                fmt_secs(min_ms),
                fmt_secs(max_ms)
            ),
            Kind::Token { min_chars } => format!(
                "expected a token of at least {min_chars} characters without whitespace (or empty for none)"
            ),
            Kind::OptPath => "expected a path (or empty for none)".to_string(),
            Kind::Path => "expected a non-empty path".to_string(),
            Kind::Url { max_chars } => {
                format!(
                    "expected an http:// or https:// URL without spaces, at most {max_chars} characters"
                )
            }
            Kind::List { max_items } => {
                format!("expected a comma-separated list of 1 to {max_items} non-empty items")
            }
            Kind::AbsPaths { max_items } => format!(
                "expected a comma-separated list of at most {max_items} absolute paths (or empty for the default)"
            ),
            Kind::Models { max_items } => format!(
                "expected a comma-separated list of at most {max_items} model names (or empty for the default)"
            ),
            Kind::Origins { max_items } => format!(
                "expected a comma-separated list of at most {max_items} origins scheme://host[:port] (or empty for none)"
            ),
            Kind::Bool => "expected true or false (also 1/0, yes/no, on/off)".to_string(),
            Kind::Choice { choices } => format!("expected one of {}", choices.join(", ")),
            Kind::Names { known, max_items } => format!(
                "expected a comma-separated list of at most {max_items} tool names (or empty for none) from: {}",
                known.join(", ")
            ),
            Kind::ModelFacts { max_items } => format!(
                "expected at most {max_items} entries model:fact=value,... separated by ';' \
                 (facts: context, vision, web_search, thinking, price_in, price_out), or empty for none"
            ),
        }
    }
}

/// A parsed value, before it is placed in a typed field.
#[derive(Debug, Clone)]
pub(super) enum Value {
    /// Integers, and durations in milliseconds.
    Num(u64),
    /// Host names and other plain text.
    Text(String),
    /// Paths; None for "none".
    Path(Option<PathBuf>),
    /// Secrets; None for "unset".
    Secret(Option<Secret>),
    /// Lists of items.
    List(Vec<String>),
}

/// Parses `raw` according to `kind`. The error is the "expected ..." text (for `Names`,
/// preceded by the unknown names); it never contains a secret.
pub(super) fn parse_value(kind: Kind, raw: &str) -> Result<Value, String> {
    let s = raw.trim();
    let fail = || kind.expected();
    match kind {
        Kind::Host { max_chars } => {
            if s.is_empty() || s.chars().any(char::is_whitespace) || s.chars().count() > max_chars {
                return Err(fail());
            }
            Ok(Value::Text(s.to_string()))
        }
        Kind::Int { min, max, .. } => {
            let n = parse_plain_int(s).ok_or_else(fail)?;
            if n < min || n > max {
                return Err(fail());
            }
            Ok(Value::Num(n))
        }
        Kind::Secs { min_ms, max_ms } => {
            let ms = parse_decimal_secs_ms(s).ok_or_else(fail)?;
            if ms < min_ms || ms > max_ms {
                return Err(fail());
            }
            Ok(Value::Num(ms))
        }
        Kind::Token { min_chars } => {
            if s.is_empty() {
                return Ok(Value::Secret(None));
            }
            if s.chars().count() < min_chars || s.chars().any(char::is_whitespace) {
                return Err(fail());
            }
            Ok(Value::Secret(Some(Secret::new(s))))
        }
        Kind::OptPath => Ok(Value::Path((!s.is_empty()).then(|| PathBuf::from(s)))),
        Kind::Path => {
            if s.is_empty() {
                return Err(fail());
            }
            Ok(Value::Path(Some(PathBuf::from(s))))
        }
        Kind::Url { max_chars } => {
            let scheme_ok = s.starts_with("http://") || s.starts_with("https://");
            let host_ok = s.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
            if !scheme_ok
                || !host_ok
                || s.chars().any(char::is_whitespace)
                || s.chars().count() > max_chars
            {
                return Err(fail());
            }
            Ok(Value::Text(s.trim_end_matches('/').to_string()))
        }
        Kind::List { max_items } => {
            let items: Vec<String> = s.split(',').map(|i| i.trim().to_string()).collect();
            if items.is_empty()
                || items.len() > max_items
                || items
                    .iter()
                    .any(|i| i.is_empty() || i.chars().count() > 128)
            {
                return Err(fail());
            }
            Ok(Value::List(items))
        }
        Kind::Models { max_items } => {
            if s.is_empty() {
                return Ok(Value::List(Vec::new()));
            }
            let items: Vec<String> = s.split(',').map(|i| i.trim().to_string()).collect();
            let named = |i: &String| !i.is_empty() && i.chars().count() <= 128;
            if items.len() > max_items || !items.iter().all(named) {
                return Err(fail());
            }
            Ok(Value::List(items))
        }
        Kind::Origins { max_items } => {
            if s.is_empty() {
                return Ok(Value::List(Vec::new()));
            }
            let items: Vec<&str> = s.split(',').map(str::trim).collect();
            if items.len() > max_items {
                return Err(fail());
            }
            let origins = items
                .iter()
                .map(|item| super::origin::Origin::parse(item).map(|o| o.to_string()))
                .collect::<Result<Vec<String>, String>>();
            Ok(Value::List(origins.map_err(|_| fail())?))
        }
        Kind::AbsPaths { max_items } => {
            if s.is_empty() {
                return Ok(Value::List(Vec::new()));
            }
            let items: Vec<String> = s.split(',').map(|i| i.trim().to_string()).collect();
            let absolute = |i: &String| std::path::Path::new(i).is_absolute();
            if items.len() > max_items || !items.iter().all(absolute) {
                return Err(fail());
            }
            Ok(Value::List(items))
        }
        Kind::Bool => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Num(1)),
            "false" | "0" | "no" | "off" => Ok(Value::Num(0)),
            _ => Err(fail()),
        },
        Kind::Choice { choices } => {
            let lower = s.to_ascii_lowercase();
            if !choices.contains(&lower.as_str()) {
                return Err(fail());
            }
            Ok(Value::Text(lower))
        }
        Kind::Names { known, max_items } => {
            if s.is_empty() {
                return Ok(Value::List(Vec::new()));
            }
            let items: Vec<String> = s
                .split(',')
                .map(|i| i.trim().to_ascii_lowercase())
                .filter(|i| !i.is_empty())
                .collect();
            if items.len() > max_items {
                return Err(fail());
            }
            let unknown: Vec<&str> = items
                .iter()
                .map(String::as_str)
                .filter(|i| !known.contains(i))
                .collect();
            if !unknown.is_empty() {
                let shown: Vec<String> = unknown
                    .iter()
                    .map(|u| format!("{:?}", u.chars().take(64).collect::<String>()))
                    .collect();
                return Err(format!(
                    "unknown tool name(s) {}; {}",
                    shown.join(", "),
                    fail()
                ));
            }
            Ok(Value::List(items))
        }
        Kind::ModelFacts { max_items } => super::facts::parse_entries(s, max_items)
            .map(Value::List)
            .map_err(|why| format!("{why}; {}", fail())),
    }
}

/// Plain decimal digits only (no sign, no `_`, no exponent). None on overflow.
pub(super) fn parse_plain_int(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Decimal seconds (`180`, `0.5`) to milliseconds, rounded half up, using exact
/// integer arithmetic (no float surprises; NaN/inf/negatives/exponents rejected by syntax).
pub(super) fn parse_decimal_secs_ms(s: &str) -> Option<u64> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || s.ends_with('.') {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac = frac.as_bytes();
    let mut millis: u64 = 0;
    for i in 0..3 {
        let digit = frac.get(i).map_or(0, |b| u64::from(b - b'0'));
        millis = millis * 10 + digit;
    }
    if frac.get(3).is_some_and(|b| *b >= b'5') {
        millis += 1;
    }
    whole.checked_mul(1000)?.checked_add(millis)
}

/// Milliseconds as decimal seconds without trailing zeros: 30000 -> "30", 500 -> "0.5".
pub(super) fn fmt_secs(ms: u64) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:03}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
}

/// How an effective value appears in `render` / `entries`.
pub(super) fn show_value(kind: Kind, value: &Value) -> String {
    match (kind, value) {
        (Kind::Secs { .. }, Value::Num(ms)) => fmt_secs(*ms),
        (Kind::Bool, Value::Num(n)) => (*n != 0).to_string(),
        (_, Value::List(items)) if items.is_empty() => "<none>".to_string(),
        (Kind::ModelFacts { .. }, Value::List(items)) => items.join(";"),
        (_, Value::List(items)) => items.join(","),
        (_, Value::Num(n)) => n.to_string(),
        (_, Value::Text(s)) => s.clone(),
        (_, Value::Path(None)) => "<none>".to_string(),
        (_, Value::Path(Some(p))) => p.display().to_string(),
        (_, Value::Secret(None)) => "<unset>".to_string(),
        (_, Value::Secret(Some(s))) => format!("<set, {} chars>", s.char_len()),
    }
}

/// The merged values, key -> (value, source): what every layer left, before the values
/// become typed fields. A plain map so that the key declarations, which read it, need no
/// other file of this folder.
pub(super) type Merged = BTreeMap<&'static str, (Value, Source)>;

/// Turns a parsed value into a typed field. `None` (never the case for a declared key,
/// whose default always parses: a test checks it) and a value of another shape give the
/// type's empty value, as the flat reader of old did, so loading never panics.
pub(super) trait FromValue: Sized {
    /// The field's value from what the key's rule produced.
    fn from_value(value: Option<&Value>) -> Self;
}

/// Integers of every width: the key's range keeps them in bounds (0 if not).
macro_rules! from_num {
    ($($ty:ty),*) => {$(
        impl FromValue for $ty {
            fn from_value(value: Option<&Value>) -> $ty {
                match value {
                    Some(Value::Num(n)) => <$ty>::try_from(*n).unwrap_or_default(),
                    _ => <$ty>::default(),
                }
            }
        }
    )*};
}

from_num!(u16, u32, u64, usize);

impl FromValue for bool {
    fn from_value(value: Option<&Value>) -> bool {
        matches!(value, Some(Value::Num(n)) if *n != 0)
    }
}

impl FromValue for String {
    fn from_value(value: Option<&Value>) -> String {
        match value {
            Some(Value::Text(s)) => s.clone(),
            _ => String::new(),
        }
    }
}

impl FromValue for Option<PathBuf> {
    fn from_value(value: Option<&Value>) -> Option<PathBuf> {
        match value {
            Some(Value::Path(p)) => p.clone(),
            _ => None,
        }
    }
}

/// A path that cannot be empty (its rule refuses empty text, and its default is set).
impl FromValue for PathBuf {
    fn from_value(value: Option<&Value>) -> PathBuf {
        Option::<PathBuf>::from_value(value).unwrap_or_default()
    }
}

impl FromValue for Vec<String> {
    fn from_value(value: Option<&Value>) -> Vec<String> {
        match value {
            Some(Value::List(items)) => items.clone(),
            _ => Vec::new(),
        }
    }
}

impl FromValue for Vec<PathBuf> {
    fn from_value(value: Option<&Value>) -> Vec<PathBuf> {
        Vec::<String>::from_value(value)
            .into_iter()
            .map(PathBuf::from)
            .collect()
    }
}

impl FromValue for Option<Secret> {
    fn from_value(value: Option<&Value>) -> Option<Secret> {
        match value {
            Some(Value::Secret(s)) => s.clone(),
            _ => None,
        }
    }
}

/// Model-table corrections: each entry was checked by the key's rule, so none is lost here.
impl FromValue for Vec<super::facts::FactsOverride> {
    fn from_value(value: Option<&Value>) -> Vec<super::facts::FactsOverride> {
        Vec::<String>::from_value(value)
            .iter()
            .filter_map(|entry| super::facts::parse_entry(entry).ok())
            .collect()
    }
}

/// The profile named by a `Choice` of [`super::profile::PROFILE_NAMES`].
impl FromValue for Profile {
    fn from_value(value: Option<&Value>) -> Profile {
        Profile::from_name(&String::from_value(value)).unwrap_or(Profile::Full)
    }
}
