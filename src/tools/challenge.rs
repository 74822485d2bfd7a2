//! `challenge`: wrap the user's statement in critical-thinking instructions and return them.
//!
//! Why it exists (as in the original): a coding agent tends to agree reflexively when a user
//! pushes back. This tool hands the statement back framed as something to evaluate, not to
//! obey. It calls no model and takes no permits.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::call::CallCtx;
use crate::error::CallError;
use crate::state::Shared;
use crate::tools::output::{ContentType, ToolOutput};
use crate::tools::{Prepared, Tool, ToolKind, parse_arguments, schema_of};

/// Arguments of `challenge`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChallengeArgs {
    /// The user's statement to assess critically (without a leading "challenge").
    #[schemars(length(min = 1, max = 100000))]
    pub prompt: String,
}

/// The `challenge` tool.
pub struct Challenge {
    /// Generated once from [`ChallengeArgs`].
    schema: Value,
}

impl Challenge {
    /// The tool with its schema.
    pub fn new() -> Challenge {
        Challenge {
            schema: schema_of::<ChallengeArgs>(),
        }
    }
}

impl Default for Challenge {
    fn default() -> Self {
        Self::new()
    }
}

/// The statement framed as a claim to test.
fn wrap(statement: &str) -> String {
    format!(
        "CRITICAL REASSESSMENT: do not simply agree.\n\n\"{statement}\"\n\n\
         Weigh the statement above on its merits: is it correct, complete and well argued? \
         Check the facts you can before answering. If it is wrong or only partly right, say \
         where and why; if it holds, say why it holds. Answer with reasons, not deference."
    )
}

impl Tool for Challenge {
    fn name(&self) -> &'static str {
        "challenge"
    }

    fn description(&self) -> &'static str {
        "Use when the user questions or disagrees with something you said: returns their \
         statement wrapped in instructions to evaluate it critically instead of agreeing by \
         reflex. Calls no model."
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Simple
    }

    fn input_schema(&self) -> &Value {
        &self.schema
    }

    fn prepare(
        &self,
        arguments: Map<String, Value>,
        _shared: &Arc<Shared>,
    ) -> Result<Prepared, CallError> {
        let args: ChallengeArgs = parse_arguments(self.name(), &self.schema, arguments)?;
        let content = json!({
            "original_statement": args.prompt,
            "challenge_prompt": wrap(&args.prompt),
            "instructions": "Follow challenge_prompt: reassess the statement before replying. \
                             Disagree with reasons where it fails; agree with reasons where it holds.",
        });
        let text = ToolOutput::new(
            "challenge",
            "success",
            serde_json::to_string_pretty(&content).expect("JSON values serialize"),
            ContentType::Json,
        )
        .render();
        Ok(Prepared {
            provider: None,
            run: Box::new(move |_ctx: CallCtx| Box::pin(async move { Ok(text) })),
        })
    }
}
