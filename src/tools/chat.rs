//! `chat`: one question to a model, answered in one provider round trip, with conversation
//! memory: a `continuation_id` brings the conversation's earlier turns (from any tool) to the
//! model, and every answer offers a `continuation_id` to go on.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::call::CallCtx;
use crate::conversation::Turn;
use crate::error::CallError;
use crate::provider::{ChatMessage, ChatRequest, Role};
use crate::state::Shared;
use crate::tools::output::{ContentType, ToolOutput};
use crate::tools::{Prepared, Tool, ToolKind, parse_arguments, schema_of};

/// Arguments of `chat`. Unknown extra arguments are accepted and ignored, so clients of the
/// original daemon that send more keep working.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChatArgs {
    /// The question or request for the model.
    #[schemars(length(min = 1, max = 100000))]
    pub prompt: String,
    /// Model name, or "auto" for the default model of the configured providers.
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub model: Option<String>,
    /// Sampling temperature.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// Cap on generated tokens.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_tokens: Option<u32>,
    /// Instructions placed before the prompt.
    #[serde(default)]
    #[schemars(length(max = 100000))]
    pub system_prompt: Option<String>,
    /// Continue this conversation (from any tool's `continuation_offer`): its earlier turns
    /// are sent to the model as context.
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub continuation_id: Option<String>,
}

/// The `chat` tool.
pub struct Chat {
    /// Generated once from [`ChatArgs`].
    schema: Value,
}

impl Chat {
    /// The tool with its schema.
    pub fn new() -> Chat {
        Chat {
            schema: schema_of::<ChatArgs>(),
        }
    }
}

impl Default for Chat {
    fn default() -> Self {
        Self::new()
    }
}

impl Tool for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn description(&self) -> &'static str {
        "General chat with a model: ask a question, brainstorm, get a second opinion. \
         Pass a continuation_id to continue a conversation (from chat or any workflow tool); \
         every answer offers one. Answered in one provider round trip under the simple-tool deadline."
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
        shared: &Arc<Shared>,
    ) -> Result<Prepared, CallError> {
        let args: ChatArgs = parse_arguments(self.name(), &self.schema, arguments)?;
        let resolved = shared
            .providers
            .resolve(args.model.as_deref().unwrap_or("auto"))?;
        // Refuse an unknown conversation now, before admission.
        let earlier = match &args.continuation_id {
            Some(id) => Some(shared.conversations.snapshot(id, shared.rt.now())?),
            None => None,
        };
        let mut messages = Vec::new();
        if let Some(system) = args.system_prompt.filter(|s| !s.trim().is_empty()) {
            messages.push(ChatMessage {
                role: Role::System,
                content: system,
            });
        }
        if let Some(snapshot) = &earlier {
            if let Some(note) = snapshot.history.truncation_note() {
                messages.push(ChatMessage {
                    role: Role::System,
                    content: format!("Note: {note}."),
                });
            }
            messages.extend(snapshot.turns.iter().map(Turn::to_message));
        }
        messages.push(ChatMessage {
            role: Role::User,
            content: args.prompt.clone(),
        });
        let request = ChatRequest {
            model: resolved.model.clone(),
            messages,
            temperature: args.temperature,
            max_tokens: args.max_tokens,
        };
        let entry = resolved.entry.clone();
        let continuation_id = args.continuation_id;
        let prompt = args.prompt;
        Ok(Prepared {
            provider: Some(resolved),
            run: Box::new(move |ctx: CallCtx| {
                Box::pin(async move {
                    let response = ctx.complete(&entry, request).await?;
                    let shared = &ctx.shared;
                    let now = shared.rt.now();
                    let (id, history) = shared.conversations.open_append(
                        continuation_id.as_deref(),
                        || shared.random_hex(16),
                        vec![
                            Turn::text(Role::User, "chat", prompt),
                            Turn::text(Role::Assistant, "chat", response.text.clone()),
                        ],
                        now,
                    )?;
                    Ok(ToolOutput::new(
                        "chat",
                        "continuation_available",
                        response.text,
                        ContentType::Text,
                    )
                    .model(entry.provider.name(), &response.model)
                    .continuation(&id, history)
                    .render())
                })
            }),
        })
    }
}
