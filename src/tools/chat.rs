//! `chat`: one question to a model, answered in one provider round trip, with conversation
//! memory: a `continuation_id` brings the conversation's earlier turns (from any tool) to the
//! model, and every answer offers a `continuation_id` to go on.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::conversation::Turn;
use crate::error::CallError;
use crate::provider::{ChatMessage, ChatRequest, Resolved, Role};
use crate::tools::context::{PlanEnv, ToolCtx};
use crate::tools::embed::{Known, Lines, embed, known_in};
use crate::tools::images::{attach, refuse_unless_vision};
use crate::tools::output::{ContentType, ToolOutput};
use crate::tools::route::{self, Category};
use crate::tools::thinking::{Thinking, ThinkingMode};
use crate::tools::tool::{Plan, Tool, ToolKind};

/// Arguments of `chat`. The original's arguments it does not use yet are accepted and named
/// in the result (`tools::ignored::CHAT`); any other is refused, naming it.
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
    /// Absolute paths of files or folders whose contents the model should see (text files
    /// under the allowed roots; a folder brings its text files in sorted order).
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub files: Vec<String>,
    /// Images the model should see, for a model that takes images (`listmodels` says which):
    /// absolute paths of PNG, JPEG, GIF or WebP files under the allowed roots, or
    /// `data:image/...;base64,` URLs.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub images: Vec<String>,
    /// Let the model search the web through its provider (Kimi's `$web_search`, GLM's
    /// `web_search`), for models that can; default on (`EXAI_WEBSEARCH_DEFAULT` overrides).
    #[serde(default)]
    pub use_websearch: Option<bool>,
    /// How hard the model should think before answering (minimal turns thinking off), for
    /// models with a thinking mode; metadata.thinking says whether it was applied.
    #[serde(default)]
    pub thinking_mode: Option<ThinkingMode>,
}

/// `chat`'s own system prompt; a caller's `system_prompt` follows it.
pub const CHAT_PROMPT: &str = include_str!("prompts/chat.txt");

/// The system message: exaid's prompt, then the caller's instructions, if any.
fn system_message(caller: Option<String>) -> String {
    match caller.filter(|s| !s.trim().is_empty()) {
        Some(extra) => format!("{CHAT_PROMPT}\n\nThe caller adds these instructions:\n{extra}"),
        None => CHAT_PROMPT.to_string(),
    }
}

/// The `chat` tool.
pub struct Chat;

impl Tool for Chat {
    type Args = ChatArgs;
    const NAME: &'static str = "chat";
    const DESCRIPTION: &'static str = "General chat with a model: ask a question, brainstorm, get a second opinion. \
         Pass a continuation_id to continue a conversation (from chat or any workflow tool); \
         every answer offers one. Answered in one provider round trip under the simple-tool deadline.";
    const KIND: ToolKind = ToolKind::Simple;
    const TITLE: &'static str = "Chat with a model";
    const ASKS_A_MODEL: bool = true;

    fn plan(&self, args: ChatArgs, env: &PlanEnv<'_>) -> Result<Plan, CallError> {
        // Refuse an unknown conversation now, before admission.
        let earlier = match &args.continuation_id {
            Some(id) => Some(env.conversations().snapshot(id, env.now())?),
            None => None,
        };
        let kept = earlier.as_ref().and_then(|s| s.model());
        let mut route = route::plan(env, args.model.as_deref(), Category::Fast, kept)?;
        let resolved = route.primary.clone();
        refuse_unless_vision(env, "images", &args.images, &resolved.model)?;
        if !args.images.is_empty() {
            // The images were checked against this model's facts: it answers, or none.
            route.fallbacks.clear();
        }
        let mut messages = vec![ChatMessage::new(
            Role::System,
            system_message(args.system_prompt),
        )];
        if let Some(snapshot) = &earlier {
            if let Some(note) = snapshot.history.truncation_note() {
                messages.push(ChatMessage::new(Role::System, format!("Note: {note}.")));
            }
            messages.extend(snapshot.turns.iter().map(Turn::to_message));
        }
        messages.push(ChatMessage::new(Role::User, args.prompt.clone()));
        let web_search = args
            .use_websearch
            .or(env.settings().websearch_default)
            .unwrap_or(true)
            && env
                .providers()
                .model_table()
                .facts(&resolved.model)
                .web_search;
        let rounds_max = env.settings().tool_rounds_max;
        let facts = env.providers().model_table().facts(&resolved.model);
        let thinking = Thinking::decide(args.thinking_mode, facts.thinking);
        let request = ChatRequest {
            web_search,
            model: resolved.model.clone(),
            messages,
            temperature: args.temperature,
            max_tokens: args.max_tokens,
            thinking: thinking.applied(),
            ..Default::default()
        };
        let continuation_id = args.continuation_id;
        let prompt = args.prompt;
        let files = Files {
            named: args.files,
            images: args.images,
            thinking,
            known: earlier
                .as_ref()
                .map(|s| known_in(&s.turns))
                .unwrap_or_default(),
        };
        let fallbacks = route.fallbacks;
        Ok(Plan::work(Some(resolved), move |ctx| {
            answer(
                ctx,
                request,
                continuation_id,
                prompt,
                files,
                (rounds_max, fallbacks),
            )
        }))
    }
}

/// The files a chat names, and those its conversation already carries.
struct Files {
    /// `files`, as the caller sent them.
    named: Vec<String>,
    /// `images`, as the caller sent them (the model takes images: checked at planning).
    images: Vec<String>,
    /// The thinking mode asked for, and whether the model gets it.
    thinking: Thinking,
    /// What the earlier turns carry (an unchanged file is referred to, not sent again).
    known: Known,
}

/// Read the named files, ask the admitted provider, then record the exchange (the files with
/// the prompt, so the conversation carries them) in the conversation.
async fn answer(
    mut ctx: ToolCtx,
    mut request: ChatRequest,
    continuation_id: Option<String>,
    mut prompt: String,
    files: Files,
    (rounds_max, fallbacks): (u32, Vec<Resolved>),
) -> Result<String, CallError> {
    let model = ctx.provider().model().to_string();
    let model = model.as_str();
    let embedding = embed(
        &ctx,
        "files",
        &files.named,
        model,
        Lines::Plain,
        &files.known,
    )
    .await?;
    let images = attach(&ctx, "images", &files.images, model).await?;
    let last = request
        .messages
        .last_mut()
        .expect("the prompt is the last message");
    assert_eq!(last.role, Role::User);
    if !embedding.block.is_empty() {
        prompt = format!("{}\n{prompt}", embedding.block);
        last.content = prompt.clone();
    }
    last.images = images.urls;
    let recorded = if images.note.is_empty() {
        prompt
    } else {
        format!("{prompt}\n{}", images.note)
    };
    let web_search = request.web_search;
    let answered = route::complete(&mut ctx, request, rounds_max, &fallbacks).await?;
    let (response, rounds) = (&answered.response, answered.rounds);
    let now = ctx.now();
    let (id, history) = ctx.conversations().open_append(
        continuation_id.as_deref(),
        || ctx.new_conversation_id(),
        vec![
            Turn::text(Role::User, "chat", recorded).with_files(embedding.marks),
            Turn::text(Role::Assistant, "chat", response.text.clone()).answered_by(&response.model),
        ],
        now,
    )?;
    let output = ToolOutput::new(
        "chat",
        "continuation_available",
        response.text.clone(),
        ContentType::Text,
    )
    .model(ctx.provider().provider_name(), &response.model)
    .files(embedding.metadata)
    .images(images.metadata)
    .web_search(web_search, rounds, &response.sources)
    .thinking(files.thinking.metadata())
    .truncated(response.truncated)
    .fallback(answered.metadata())
    .usage(response.usage)
    .cost(response.usage.and_then(|usage| {
        ctx.daemon()
            .cost_usd(ctx.provider().provider_name(), &response.model, usage)
    }));
    Ok(output.continuation(&id, history).render())
}
