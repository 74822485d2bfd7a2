//! What exaid knows of each model it lists, in one table: its context window and whether it
//! takes images, may search the web through its provider, and has a thinking mode.
//!
//! Why one table: the file budget (a share of the context window), the image check and the
//! web-search rounds each need a model's facts; scattered guesses disagreed. A model the
//! table does not know (one a user added to `KIMI_MODELS`) gets [`UNKNOWN`], the
//! conservative default: a small window and no capability it might lack. `EXAI_MODEL_FACTS`
//! corrects any entry, or describes a model the table does not know.
//!
//! Sources (read when the table was written; providers change their models, hence the key):
//! - Kimi: Moonshot's model list names the window in the `moonshot-v1-*` ids (8k = 8,192;
//!   32k = 32,768; 128k = 128,000 tokens, as its model list states); Kimi K2 0905 and K2 Turbo
//!   have 256K (262,144 tokens; kept at 256,000 here); none of them takes images but the
//!   `moonshot-v1-*-vision-preview` models, which do (platform.moonshot.ai, "Use the Kimi
//!   Vision Model"; their search support is not documented, so it is off); the built-in
//!   `$web_search` tool is documented at
//!   <https://platform.moonshot.ai/docs/guide/use-web-search>. It is left off
//!   for `moonshot-v1-8k`, whose window search results would fill.
//! - GLM: <https://docs.z.ai/guides/llm/glm-4.5> (GLM-4.5, -Air, -Flash: 128K, text in,
//!   hybrid thinking via `thinking.type`); GLM-4.6 extends the window to 200K
//!   (zai-org's GLM-4.5 repository README); the `web_search` tool of chat completions is
//!   documented at <https://docs.z.ai/api-reference/llm/chat-completion>. It is left off for
//!   the free GLM-4.5-Flash, whose tool support is not documented as the others'. GLM-4.5V,
//!   the vision model built on GLM-4.5-Air, takes images with a 64K window (65,536 tokens, as
//!   OpenRouter and Vercel's AI Gateway list it) and has the same thinking switch.
//! - offline: exaid's own; its window is the one the file budget used before this table.

use serde::Serialize;

use crate::config::FactsOverride;

/// One model's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelFacts {
    /// Its context window, in tokens: prompt, files, conversation and answer together.
    pub context_tokens: u64,
    /// Whether it accepts images in a message.
    pub vision: bool,
    /// Whether its provider's built-in web search may be offered to it.
    pub web_search: bool,
    /// Whether it has a thinking (reasoning) mode.
    pub thinking: bool,
    /// What a million prompt tokens cost, in millionths of a US dollar, when configured
    /// (`EXAI_MODEL_FACTS` `price_in=`; providers change prices, so none is built in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_in_micro_usd: Option<u64>,
    /// What a million completion tokens cost, likewise (`price_out=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_out_micro_usd: Option<u64>,
}

impl ModelFacts {
    /// What `usage` cost in US dollars, when both prices are configured.
    pub fn cost_usd(&self, usage: crate::provider::Usage) -> Option<f64> {
        let (input, output) = (self.price_in_micro_usd?, self.price_out_micro_usd?);
        let micro_usd_mtok = usage.prompt_tokens as f64 * input as f64
            + usage.completion_tokens as f64 * output as f64;
        Some(micro_usd_mtok / 1e12)
    }
}

/// The facts of a model the table does not know: a window most models exceed, and no
/// capability, so nothing is sent that the model might refuse.
pub const UNKNOWN: ModelFacts = ModelFacts {
    context_tokens: 32_768,
    vision: false,
    web_search: false,
    thinking: false,
    price_in_micro_usd: None,
    price_out_micro_usd: None,
};

/// A text model's facts (shorthand for the table).
const fn text(context_tokens: u64, web_search: bool, thinking: bool) -> ModelFacts {
    ModelFacts {
        context_tokens,
        vision: false,
        web_search,
        thinking,
        price_in_micro_usd: None,
        price_out_micro_usd: None,
    }
}

/// A vision model's facts (shorthand for the table): images in, no web search offered.
const fn vision(context_tokens: u64, thinking: bool) -> ModelFacts {
    ModelFacts {
        context_tokens,
        vision: true,
        web_search: false,
        thinking,
        price_in_micro_usd: None,
        price_out_micro_usd: None,
    }
}

/// The built-in facts, by model id (lower case). Sources in the module comment.
const BUILTIN: &[(&str, ModelFacts)] = &[
    ("kimi-k2-0905-preview", text(256_000, true, false)),
    ("kimi-k2-turbo-preview", text(256_000, true, false)),
    ("moonshot-v1-8k", text(8_192, false, false)),
    ("moonshot-v1-32k", text(32_768, true, false)),
    ("moonshot-v1-128k", text(128_000, true, false)),
    ("moonshot-v1-8k-vision-preview", vision(8_192, false)),
    ("moonshot-v1-32k-vision-preview", vision(32_768, false)),
    ("moonshot-v1-128k-vision-preview", vision(128_000, false)),
    ("glm-4.6", text(200_000, true, true)),
    ("glm-4.5", text(128_000, true, true)),
    ("glm-4.5-air", text(128_000, true, true)),
    ("glm-4.5-flash", text(128_000, false, true)),
    ("glm-4.5v", vision(65_536, true)),
    ("exaid-offline", text(128_000, false, false)),
    ("exaid-offline-mini", text(128_000, false, false)),
];

/// Where a model's facts came from, as `listmodels` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FactsSource {
    /// The built-in table.
    Builtin,
    /// The conservative default: the table does not know the model.
    Default,
    /// `EXAI_MODEL_FACTS` set at least one of them.
    Configured,
}

/// The table with the configuration's corrections applied.
#[derive(Debug, Clone, Default)]
pub struct ModelTable {
    /// `EXAI_MODEL_FACTS`, in order: a later entry for the same model wins fact by fact.
    overrides: Vec<FactsOverride>,
}

impl ModelTable {
    /// The built-in table corrected by `overrides` (`config.models.facts`).
    pub fn new(overrides: &[FactsOverride]) -> ModelTable {
        ModelTable {
            overrides: overrides.to_vec(),
        }
    }

    /// The facts of `model` (matched without regard to case), and where they came from.
    pub fn lookup(&self, model: &str) -> (ModelFacts, FactsSource) {
        let builtin = BUILTIN
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(model))
            .map(|(_, facts)| *facts);
        let (mut facts, mut source) = match builtin {
            Some(facts) => (facts, FactsSource::Builtin),
            None => (UNKNOWN, FactsSource::Default),
        };
        for entry in self
            .overrides
            .iter()
            .filter(|o| o.model.eq_ignore_ascii_case(model))
        {
            facts.context_tokens = entry.context_tokens.unwrap_or(facts.context_tokens);
            facts.vision = entry.vision.unwrap_or(facts.vision);
            facts.web_search = entry.web_search.unwrap_or(facts.web_search);
            facts.thinking = entry.thinking.unwrap_or(facts.thinking);
            facts.price_in_micro_usd = entry.price_in_micro_usd.or(facts.price_in_micro_usd);
            facts.price_out_micro_usd = entry.price_out_micro_usd.or(facts.price_out_micro_usd);
            source = FactsSource::Configured;
        }
        assert!(facts.context_tokens > 0, "every model has a context window");
        (facts, source)
    }

    /// The facts of `model`.
    pub fn facts(&self, model: &str) -> ModelFacts {
        self.lookup(model).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn correction(model: &str, context: Option<u64>, vision: Option<bool>) -> FactsOverride {
        FactsOverride {
            model: model.to_string(),
            context_tokens: context,
            vision,
            web_search: None,
            thinking: None,
            price_in_micro_usd: None,
            price_out_micro_usd: None,
        }
    }

    #[test]
    fn every_listed_model_has_facts_and_an_unknown_one_the_default() {
        let table = ModelTable::default();
        for model in [
            "kimi-k2-0905-preview",
            "kimi-k2-turbo-preview",
            "moonshot-v1-8k",
            "moonshot-v1-32k",
            "moonshot-v1-128k",
            "glm-4.6",
            "glm-4.5",
            "glm-4.5-air",
            "glm-4.5-flash",
            "exaid-offline",
            "exaid-offline-mini",
        ] {
            assert_eq!(table.lookup(model).1, FactsSource::Builtin, "{model}");
        }
        assert_eq!(table.facts("GLM-4.6").context_tokens, 200_000);
        assert!(table.facts("kimi-k2-0905-preview").web_search);
        assert_eq!(
            table.lookup("someone-elses-model"),
            (UNKNOWN, FactsSource::Default)
        );
    }

    #[test]
    fn corrections_change_only_what_they_name_and_the_last_wins() {
        let table = ModelTable::new(&[
            correction("glm-4.6", Some(100_000), None),
            correction("new-model", None, Some(true)),
            correction("GLM-4.6", Some(150_000), None),
        ]);
        let (facts, source) = table.lookup("glm-4.6");
        assert_eq!(source, FactsSource::Configured);
        assert_eq!(facts.context_tokens, 150_000);
        assert!(facts.thinking && facts.web_search, "untouched facts stay");
        let (facts, source) = table.lookup("new-model");
        assert_eq!(source, FactsSource::Configured);
        assert!(facts.vision);
        assert_eq!(facts.context_tokens, UNKNOWN.context_tokens);
    }
}
