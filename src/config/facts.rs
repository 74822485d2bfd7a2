//! The text form of `EXAI_MODEL_FACTS`: corrections to the built-in model table
//! (`provider::models`), one entry per model, `;`-separated:
//! `glm-4.6:context=200000,thinking=true;my-model:vision=false`.
//!
//! Why here: the configuration imports nothing of the crate, so it checks the syntax (and
//! names the bad entry at start-up) and hands the provider table plain overrides; what the
//! facts mean is the table's business.

/// The facts one entry sets for one model; a fact it leaves out keeps the table's value
/// (or the conservative default for a model the table does not know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsOverride {
    /// The model, as the provider names it (matched without regard to case).
    pub model: String,
    /// `context=`: the context window, in tokens.
    pub context_tokens: Option<u64>,
    /// `vision=`: whether it accepts images.
    pub vision: Option<bool>,
    /// `web_search=`: whether its provider's built-in web search may be offered to it.
    pub web_search: Option<bool>,
    /// `thinking=`: whether it has a thinking (reasoning) mode.
    pub thinking: Option<bool>,
    /// `price_in=`: US dollars per million prompt tokens, in millionths of a dollar (exact:
    /// `0.6` is 600000).
    pub price_in_micro_usd: Option<u64>,
    /// `price_out=`: US dollars per million completion tokens, in millionths of a dollar.
    pub price_out_micro_usd: Option<u64>,
}

/// The smallest context window an entry may set: below it no prompt fits.
pub(super) const CONTEXT_TOKENS_MIN: u64 = 1024;
/// The largest context window an entry may set (10 million tokens).
pub(super) const CONTEXT_TOKENS_MAX: u64 = 10_000_000;
/// The longest model name an entry may carry, in characters.
const MODEL_CHARS_MAX: usize = 128;

/// The fact names an entry may set, in the order errors list them.
const FACT_NAMES: [&str; 6] = [
    "context",
    "vision",
    "web_search",
    "thinking",
    "price_in",
    "price_out",
];

/// The highest price an entry may set, in dollars per million tokens.
const PRICE_USD_MAX: u64 = 10_000;

/// A price in dollars (`2.5`, at most six decimals) as millionths of a dollar.
fn micro_usd(value: &str) -> Option<u64> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 6 {
        return None;
    }
    let whole: u64 = whole.parse().ok().filter(|w| *w <= PRICE_USD_MAX)?;
    let fraction: u64 = format!("{fraction:0<6}").parse().ok()?;
    Some(whole * 1_000_000 + fraction)
}

/// One entry (`model:fact=value,...`), or why not (without the entry itself: the caller
/// names it).
pub(super) fn parse_entry(entry: &str) -> Result<FactsOverride, String> {
    let (model, facts) = entry
        .split_once(':')
        .ok_or_else(|| "expected model:fact=value".to_string())?;
    let model = model.trim();
    if model.is_empty() || model.chars().count() > MODEL_CHARS_MAX {
        return Err(format!(
            "the model name must be 1 to {MODEL_CHARS_MAX} characters"
        ));
    }
    let mut parsed = FactsOverride {
        model: model.to_string(),
        context_tokens: None,
        vision: None,
        web_search: None,
        thinking: None,
        price_in_micro_usd: None,
        price_out_micro_usd: None,
    };
    for fact in facts.split(',') {
        let (name, value) = fact
            .split_once('=')
            .ok_or_else(|| format!("\"{}\" is not fact=value", fact.trim()))?;
        set_fact(&mut parsed, name.trim(), value.trim())?;
    }
    Ok(parsed)
}

/// Sets the fact `name` to `value` on `parsed`; a fact set twice is an error.
fn set_fact(parsed: &mut FactsOverride, name: &str, value: &str) -> Result<(), String> {
    let twice = || format!("{name} is set twice");
    match name {
        "context" => {
            let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            let tokens = digits
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .filter(|n| (CONTEXT_TOKENS_MIN..=CONTEXT_TOKENS_MAX).contains(n))
                .ok_or_else(|| {
                    format!(
                        "context must be a number of tokens from {CONTEXT_TOKENS_MIN} to {CONTEXT_TOKENS_MAX}"
                    )
                })?;
            if parsed.context_tokens.replace(tokens).is_some() {
                return Err(twice());
            }
        }
        "vision" | "web_search" | "thinking" => {
            let flag = match value.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(format!("{name} must be true or false")),
            };
            let slot = match name {
                "vision" => &mut parsed.vision,
                "web_search" => &mut parsed.web_search,
                _ => &mut parsed.thinking,
            };
            if slot.replace(flag).is_some() {
                return Err(twice());
            }
        }
        "price_in" | "price_out" => {
            let price = micro_usd(value).ok_or_else(|| {
                format!(
                    "{name} must be US dollars per million tokens, 0 to {PRICE_USD_MAX}, like 0.6"
                )
            })?;
            let slot = if name == "price_in" {
                &mut parsed.price_in_micro_usd
            } else {
                &mut parsed.price_out_micro_usd
            };
            if slot.replace(price).is_some() {
                return Err(twice());
            }
        }
        other => {
            return Err(format!(
                "unknown fact \"{}\" (known: {})",
                other.chars().take(32).collect::<String>(),
                FACT_NAMES.join(", ")
            ));
        }
    }
    Ok(())
}

/// Every entry of the key's text, trimmed, empty ones left out; or the first bad one,
/// named by its place and text.
pub(super) fn parse_entries(text: &str, max_items: usize) -> Result<Vec<String>, String> {
    let entries: Vec<String> = text
        .split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    if entries.len() > max_items {
        return Err(format!("{} entries, at most {max_items}", entries.len()));
    }
    for (index, entry) in entries.iter().enumerate() {
        if let Err(why) = parse_entry(entry) {
            let shown: String = entry.chars().take(160).collect();
            return Err(format!("entry {} \"{shown}\": {why}", index + 1));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_exact_millionths_of_a_dollar() {
        let parsed = parse_entry("glm-4.6:price_in=0.6,price_out=2.2").unwrap();
        assert_eq!(parsed.price_in_micro_usd, Some(600_000));
        assert_eq!(parsed.price_out_micro_usd, Some(2_200_000));
        for bad in [
            "m:price_in=-1",
            "m:price_in=0.0000001",
            "m:price_in=abc",
            "m:price_in=20000",
        ] {
            let why = parse_entry(bad).unwrap_err();
            assert!(
                why.contains("US dollars per million tokens"),
                "{bad}: {why}"
            );
        }
    }

    #[test]
    fn an_entry_sets_only_what_it_names() {
        let parsed = parse_entry("glm-4.6:context=200000, thinking=true").unwrap();
        assert_eq!(
            parsed,
            FactsOverride {
                model: "glm-4.6".to_string(),
                context_tokens: Some(200_000),
                vision: None,
                web_search: None,
                thinking: Some(true),
                price_in_micro_usd: None,
                price_out_micro_usd: None,
            }
        );
    }

    #[test]
    fn a_bad_entry_is_named_with_its_reason() {
        let cases = [
            ("a:context=12", "entry 1 \"a:context=12\": context must be"),
            (
                "a:vision=true;b:vision=maybe",
                "entry 2 \"b:vision=maybe\": vision must be true or false",
            ),
            ("a:colour=red", "unknown fact \"colour\""),
            ("a:vision=true,vision=false", "vision is set twice"),
            ("a", "expected model:fact=value"),
            (":vision=true", "model name must be"),
            ("a:vision", "\"vision\" is not fact=value"),
        ];
        for (text, wanted) in cases {
            let error = parse_entries(text, 64).unwrap_err();
            assert!(error.contains(wanted), "{text}: {error}");
        }
        assert!(parse_entries("a:vision=true;b:vision=true", 1).is_err());
        assert_eq!(parse_entries(" ; ", 64).unwrap(), Vec::<String>::new());
    }
}
