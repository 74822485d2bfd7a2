//! `challenge`: wrap the user's statement in critical-thinking instructions and return them.
//!
//! Why it exists (as in the original): a coding agent tends to agree reflexively when a user
//! pushes back. This tool hands the statement back framed as something to evaluate, not to
//! obey. It calls no model and takes no permits.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::error::CallError;
use crate::tools::context::PlanEnv;
use crate::tools::output::{ContentType, ToolOutput};
use crate::tools::tool::{Plan, Tool, ToolKind};

/// Arguments of `challenge`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChallengeArgs {
    /// The user's statement to assess critically (without a leading "challenge").
    #[schemars(length(min = 1, max = 100000))]
    pub prompt: String,
}

/// The `challenge` tool.
pub struct Challenge;

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
    type Args = ChallengeArgs;
    const NAME: &'static str = "challenge";
    const DESCRIPTION: &'static str = "Use when the user questions or disagrees with something you said: returns their \
         statement wrapped in instructions to evaluate it critically instead of agreeing by \
         reflex. Calls no model.";
    const KIND: ToolKind = ToolKind::Simple;
    const TITLE: &'static str = "Challenge a claim";
    const ASKS_A_MODEL: bool = false;

    fn plan(&self, args: ChallengeArgs, _env: &PlanEnv<'_>) -> Result<Plan, CallError> {
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
        Ok(Plan::answer(text))
    }
}
