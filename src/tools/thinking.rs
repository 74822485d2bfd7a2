//! `thinking_mode`: how hard the model should reason before it answers.
//!
//! Why a switch and not a budget: of the models exaid lists, only GLM's have a thinking
//! parameter, and it is on or off (`thinking.type`, docs.z.ai "GLM-4.5"), not a token budget.
//! So `minimal` turns thinking off and every other mode turns it on; a model without a
//! thinking mode gets nothing, and the result's `metadata.thinking` says so, never silently.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The original's five modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThinkingMode {
    /// Answer directly (thinking off).
    Minimal,
    /// Think a little.
    Low,
    /// Think.
    Medium,
    /// Think hard.
    High,
    /// Think as hard as the model can.
    Max,
}

impl ThinkingMode {
    /// Its wire name.
    pub fn name(self) -> &'static str {
        match self {
            ThinkingMode::Minimal => "minimal",
            ThinkingMode::Low => "low",
            ThinkingMode::Medium => "medium",
            ThinkingMode::High => "high",
            ThinkingMode::Max => "max",
        }
    }
}

/// What a call asked for and what its model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thinking {
    /// `thinking_mode`, if the call sent one.
    pub requested: Option<ThinkingMode>,
    /// Whether the model has a thinking mode (its facts, `provider::models`).
    pub supported: bool,
}

impl Thinking {
    /// The decision for a call to a model whose facts say `supported`.
    pub fn decide(requested: Option<ThinkingMode>, supported: bool) -> Thinking {
        Thinking {
            requested,
            supported,
        }
    }

    /// The request's thinking switch: `Some(on)` when the call asked and the model can.
    pub fn applied(self) -> Option<bool> {
        let mode = self.requested?;
        self.supported.then_some(mode != ThinkingMode::Minimal)
    }

    /// `metadata.thinking`, or `None` when the call did not ask.
    pub fn metadata(self) -> Option<Value> {
        let mode = self.requested?;
        Some(match self.applied() {
            Some(on) => json!({"requested": mode.name(), "applied": true, "enabled": on}),
            None => json!({
                "requested": mode.name(), "applied": false,
                "reason": "the model has no thinking mode (listmodels shows which do)",
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_the_switch_only_where_the_model_has_one() {
        let asked = |mode, supported| Thinking::decide(Some(mode), supported);
        assert_eq!(asked(ThinkingMode::High, true).applied(), Some(true));
        assert_eq!(asked(ThinkingMode::Minimal, true).applied(), Some(false));
        assert_eq!(asked(ThinkingMode::Max, false).applied(), None);
        assert_eq!(Thinking::decide(None, true).applied(), None);
        assert!(Thinking::decide(None, true).metadata().is_none());
        let refused = asked(ThinkingMode::Low, false).metadata().unwrap();
        assert_eq!(refused["applied"], false);
        assert!(
            refused["reason"]
                .as_str()
                .unwrap()
                .contains("no thinking mode")
        );
    }
}
