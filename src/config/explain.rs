//! `exaid config --explain KEY`: one key's documentation and its effective value.
//!
//! Why: an operator who meets a key in a log line or an error should learn what it bounds,
//! what it accepts and where its current value came from without reading the source.

use super::declare::KeyDef;
use super::keys::{Config, KEYS, find_key_loose};
use super::value::{parse_value, show_value};

/// The explanation of key `name` (any case the config file accepts), or an error that
/// names the closest key.
pub(super) fn explain(config: &Config, name: &str) -> Result<String, String> {
    let Some(def) = find_key_loose(name).or_else(|| find_key_loose(&name.to_ascii_uppercase()))
    else {
        return Err(unknown(name));
    };
    Ok(describe(config, def))
}

/// The text for one known key.
fn describe(config: &Config, def: &KeyDef) -> String {
    let default = parse_value(def.kind, def.default)
        .map(|v| show_value(def.kind, &v))
        .unwrap_or_else(|_| format!("{:?}", def.default));
    let accepts = def.kind.expected();
    let accepts = accepts.strip_prefix("expected ").unwrap_or(&accepts);
    let (value, source) = config
        .shown
        .get(def.name)
        .map(|(v, s)| (v.clone(), s.to_string()))
        .unwrap_or_else(|| (String::new(), "unknown".to_string()));
    let mut out = format!("{}\n  {}\n", def.name, def.doc_text());
    out.push_str(&format!("  default: {default}\n"));
    out.push_str(&format!("  accepts: {accepts}\n"));
    if let Some(unit) = def.kind.unit() {
        out.push_str(&format!("  unit:    {unit}\n"));
    }
    if !def.file_ok {
        out.push_str("  set by:  the environment or flags only (not the config file)\n");
    }
    out.push_str(&format!("  field:   config.{}\n", def.field));
    out.push_str(&format!("  value:   {value} (from {source})\n"));
    out
}

/// The error for a key nobody declared, with the closest declared name.
fn unknown(name: &str) -> String {
    let wanted = name.to_ascii_uppercase();
    let closest = KEYS
        .iter()
        .min_by_key(|d| (edit_distance(&wanted, d.name), d.name))
        .map(|d| d.name);
    match closest {
        Some(near) => {
            format!("unknown key {name}: did you mean {near}? (`exaid config` lists every key)")
        }
        None => format!("unknown key {name} (`exaid config` lists every key)"),
    }
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::layers::Layers;
    use crate::config::secret::Secret;

    #[test]
    fn explains_a_key_with_its_value_and_source() {
        let config = Config::load(&Layers {
            flags: vec![("EXAI_WS_QUEUE_TIMEOUT_SECS".into(), "12.5".into())],
            ..Layers::default()
        })
        .expect("load")
        .config;
        let text = explain(&config, "exai_ws_queue_timeout_secs").expect("known key");
        assert_eq!(
            text,
            "EXAI_WS_QUEUE_TIMEOUT_SECS\n  \
             Longest wait for a concurrency slot; past it the caller gets a clear 'busy' instead of hanging.\n  \
             default: 30\n  \
             accepts: seconds (decimal) from 0.001 to 3600\n  \
             unit:    seconds\n  \
             field:   config.limits.queue_timeout_ms\n  \
             value:   12.5 (from flag)\n"
        );
    }

    #[test]
    fn explains_providers_locators_and_secrets_without_leaking() {
        let mut config = Config::defaults();
        let text = explain(&config, "EXAI_WS_KIMI_MAX_INFLIGHT").expect("known key");
        assert!(
            text.contains("  field:   config.providers[ProviderId::Kimi].inflight_max\n"),
            "{text}"
        );
        let text = explain(&config, "EXAI_ENV_FILE").expect("known key");
        assert!(
            text.contains("  set by:  the environment or flags only"),
            "{text}"
        );

        let token = "a-token-of-24-characters";
        config = Config::load(&Layers {
            env: vec![("EXAI_WS_TOKEN".into(), token.into())],
            ..Layers::default()
        })
        .expect("load")
        .config;
        assert_eq!(
            config.server.token.as_ref().map(Secret::expose),
            Some(token)
        );
        let text = explain(&config, "EXAI_WS_TOKEN").expect("known key");
        assert!(!text.contains(token), "{text}");
        assert!(text.contains("  default: <unset>\n"), "{text}");
        assert!(
            text.contains("  value:   <set, 24 chars> (from environment)\n"),
            "{text}"
        );
    }

    #[test]
    fn every_key_explains() {
        let config = Config::defaults();
        for def in KEYS {
            let text = explain(&config, def.name).expect("declared key");
            assert!(text.starts_with(&format!("{}\n  ", def.name)), "{text}");
            assert!(text.ends_with(" (from default)\n"), "{text}");
        }
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let config = Config::defaults();
        assert_eq!(
            explain(&config, "EXAI_WS_PROT").unwrap_err(),
            "unknown key EXAI_WS_PROT: did you mean EXAI_WS_PORT? (`exaid config` lists every key)"
        );
        let err = explain(&config, "kimi_timeout").unwrap_err();
        assert!(err.contains("did you mean KIMI_TIMEOUT_SECS?"), "{err}");
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
