//! How a workflow step ends, in the call's task: a pause (an intermediate step), a local
//! finish (no model: by the tool's design, the caller's wish, certain confidence or nothing to
//! analyse), or one expert analysis whose JSON answer is read back and whose files request
//! becomes the result's status. The engine (`workflow`) decides which before admission
//! ([`Finish`]); this module carries it out.

use serde_json::{Value, json};

use super::{Spec, StepInput, consolidate, pause_output, record, work_summary};
use crate::conversation::{History, Snapshot, StepRecord, Turn};
use crate::error::CallError;
use crate::provider::{ChatMessage, ChatRequest, Resolved, Role};
use crate::tools::context::ToolCtx;
use crate::tools::embed::{Lines, embed, known_in};
use crate::tools::expert::{self, analysis_block, files_required};
use crate::tools::images::attach;
use crate::tools::output::{ContentType, ToolOutput};
use crate::tools::route;
use crate::tools::thinking::Thinking;

/// How a final step ends, decided before admission (a local end takes no provider permit).
pub(super) enum Finish {
    /// With one expert analysis by this model.
    Expert(Resolved, Expert),
    /// Locally, for this reason.
    Local(Skip),
}

/// Why a final step ends without the expert, as `expert_analysis.status` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The tool never asks a model (`docgen`, `tracer`, `planner`).
    ByDesign,
    /// The caller said `use_assistant_model: false`.
    ByCaller,
    /// The caller is certain (`Spec::skip_confidence`): the original skipped the expert too.
    CertainConfidence,
    /// Nothing to analyse: no relevant files, and fewer than two findings or issues.
    NothingToAnalyse,
}

impl Skip {
    /// Its `expert_analysis.status`.
    pub fn name(self) -> &'static str {
        match self {
            Skip::ByDesign => "skipped_by_tool_design",
            Skip::ByCaller => "skipped_by_caller",
            Skip::CertainConfidence => "skipped_due_to_certain_confidence",
            Skip::NothingToAnalyse => "skipped_nothing_to_analyse",
        }
    }

    /// What the agent is told, after "The <tool> work is complete."
    fn explain(self) -> &'static str {
        match self {
            Skip::ByDesign | Skip::ByCaller => "no model was asked.",
            Skip::CertainConfidence => {
                "your confidence is certain, so no expert was asked; act on your own findings."
            }
            Skip::NothingToAnalyse => {
                "there was nothing for an expert to analyse (no relevant files, and fewer than two \
                 findings or issues), so none was asked; send relevant_files for an expert analysis."
            }
        }
    }
}

/// The expert analysis a final step asks for (of the provider the call was admitted for).
pub(super) struct Expert {
    /// The tool's expert system prompt.
    pub(super) prompt: &'static str,
    /// Sampling temperature.
    pub(super) temperature: f64,
    /// Whether the provider's web search is offered (the model's facts allow it).
    pub(super) web_search: bool,
    /// Tool rounds the expert call may take (`EXAI_TOOL_ROUNDS_MAX`).
    pub(super) rounds_max: u32,
    /// The final step's `images` (the model takes images: checked at planning).
    pub(super) images: Vec<String>,
    /// The thinking mode asked for, and whether the model gets it.
    pub(super) thinking: Thinking,
    /// Where an `auto` expert call may move (`tools::route`); empty for a named model.
    pub(super) fallbacks: Vec<Resolved>,
}

/// One step, in the call's task.
pub(super) async fn run_step(
    mut ctx: ToolCtx,
    spec: &'static Spec,
    input: StepInput,
    finish: Result<Expert, Skip>,
) -> Result<String, CallError> {
    let (id, history) = record(&ctx, &input)?;
    let snapshot = ctx.conversations().snapshot(&id, ctx.now())?;
    let steps = snapshot.steps_of(spec.name);
    if input.next_step_required {
        return Ok(pause_output(spec, &input, &id, history, &steps));
    }
    let done = Done {
        spec,
        input: &input,
        id: &id,
        steps: &steps,
    };
    match finish {
        Err(skip) => Ok(done.local(skip, history)),
        Ok(expert) => done.ask_expert(&mut ctx, &snapshot, expert).await,
    }
}

/// A final step whose record is kept: what both endings need.
struct Done<'a> {
    /// The tool.
    spec: &'static Spec,
    /// The final step.
    input: &'a StepInput,
    /// The conversation.
    id: &'a str,
    /// Every recorded step of this investigation.
    steps: &'a [StepRecord],
}

impl Done<'_> {
    /// The fields every final answer carries, around `output`.
    fn finish(&self, output: ToolOutput, complete: bool, history: History) -> String {
        let name = self.spec.name;
        let last = self.input.record.step_number;
        let summary = work_summary(name, self.steps, last);
        output
            .field("step_number", json!(last))
            .field("total_steps", json!(self.input.record.total_steps))
            .field("next_step_required", json!(false))
            .field(&format!("{name}_complete"), json!(complete))
            .field(
                &format!("complete_{name}"),
                completion_block(self.steps, &summary),
            )
            .field("continuation_id", json!(self.id))
            .adjusted(self.input.total_steps_adjusted_from)
            .continuation(self.id, history)
            .render()
    }

    /// The ending without a model.
    fn local(&self, skip: Skip, history: History) -> String {
        let name = self.spec.name;
        let summary = work_summary(name, self.steps, self.input.record.step_number);
        let status = if skip == Skip::ByCaller {
            "local_work_complete".to_string()
        } else {
            format!("{name}_complete")
        };
        let next_steps = format!(
            "The {name} work is complete. Present the result to the user from the summary in content; {}",
            skip.explain()
        );
        let output = ToolOutput::new(name, status, summary, ContentType::Text)
            .field("expert_analysis", json!({ "status": skip.name() }))
            .field("next_steps", json!(next_steps));
        self.finish(output, true, history)
    }

    /// The ending with the expert: files and images read, the provider asked, its answer
    /// parsed.
    async fn ask_expert(
        &self,
        ctx: &mut ToolCtx,
        snapshot: &Snapshot,
        expert: Expert,
    ) -> Result<String, CallError> {
        let (spec, name) = (self.spec, self.spec.name);
        let model = ctx.provider().model().to_string();
        // The expert sees the files the investigation found relevant, numbered for file:line.
        let relevant: Vec<String> = consolidate(self.steps).relevant_files.into_iter().collect();
        let known = known_in(context_turns(spec, snapshot));
        let model = model.as_str();
        let embedding = embed(
            ctx,
            "relevant_files",
            &relevant,
            model,
            Lines::Numbered,
            &known,
        )
        .await?;
        let images = attach(ctx, "images", &expert.images, model).await?;
        let last = self.input.record.step_number;
        let mut request = expert_request(
            spec,
            expert.prompt,
            snapshot,
            self.steps,
            last,
            model.to_string(),
            expert.temperature,
        );
        let asked = request
            .messages
            .last_mut()
            .expect("the summary is the last message");
        if !embedding.block.is_empty() {
            asked.content = format!("{}\n{}", asked.content, embedding.block);
        }
        asked.images = images.urls;
        request.web_search = expert.web_search;
        request.thinking = expert.thinking.applied();
        let answered = route::complete(ctx, request, expert.rounds_max, &expert.fallbacks).await?;
        let (response, rounds) = (&answered.response, answered.rounds);
        let provider = ctx.provider();
        let history = ctx.conversations().append(
            self.id,
            vec![
                Turn::text(Role::Assistant, name, response.text.clone())
                    .answered_by(&response.model),
            ],
            ctx.now(),
        )?;
        let analysis = analysis_block(&response.text);
        let wanted = analysis.get("parsed").and_then(files_required);
        let mut output = ToolOutput::new(
            name,
            "calling_expert_analysis",
            &response.text,
            ContentType::Text,
        )
        .model(provider.provider_name(), &response.model)
        .files(embedding.metadata)
        .images(images.metadata)
        .web_search(expert.web_search, rounds, &response.sources)
        .thinking(expert.thinking.metadata())
        .truncated(response.truncated)
        .fallback(answered.metadata())
        .usage(response.usage)
        .cost(response.usage.and_then(|usage| {
            ctx.daemon()
                .cost_usd(provider.provider_name(), &response.model, usage)
        }))
        .field("expert_analysis", analysis);
        let complete = match wanted {
            Some((files, instructions)) => {
                let next_steps = format!(
                    "The expert needs files it was not shown before it can finish: {}. {instructions} \
                     Send them: call {name} again with step_number {last}, next_step_required false, \
                     relevant_files naming them, and continuation_id \"{}\".",
                    files.join(", "),
                    self.id
                );
                output = output
                    .status(expert::FILES_REQUIRED)
                    .field("files_needed", json!(files))
                    .field("mandatory_instructions", json!(instructions))
                    .field("next_steps", json!(next_steps));
                false
            }
            None => {
                let next_steps = format!(
                    "The {name} investigation is complete. Check the expert analysis against your own \
                     findings before acting on it, then present the key findings and the exact changes to make."
                );
                output = output.field("next_steps", json!(next_steps));
                true
            }
        };
        Ok(self.finish(output, complete, history))
    }
}

/// The turns the expert gets as context: all but this investigation's own steps.
fn context_turns<'a>(spec: &'a Spec, snapshot: &'a Snapshot) -> impl Iterator<Item = &'a Turn> {
    snapshot
        .turns
        .iter()
        .filter(|t| t.step().is_none_or(|s| s.tool != spec.name))
}

/// The expert-analysis request: the tool's prompt, the conversation's other turns as
/// context, then the work summary.
fn expert_request(
    spec: &Spec,
    prompt: &str,
    snapshot: &Snapshot,
    steps: &[StepRecord],
    last: u32,
    model: String,
    temperature: f64,
) -> ChatRequest {
    let mut messages = vec![ChatMessage::new(Role::System, prompt.to_string())];
    if let Some(note) = snapshot.history.truncation_note() {
        messages.push(ChatMessage::new(Role::System, format!("Note: {note}.")));
    }
    // Earlier turns (a chat before, another tool's work) are context; this investigation's
    // own steps are in the summary.
    messages.extend(context_turns(spec, snapshot).map(Turn::to_message));
    messages.push(ChatMessage::new(Role::User, format!(
            "{}\nGive your expert analysis of this investigation: confirm or refute its conclusions, \
             name the most likely causes or problems with evidence, and say exactly what to change.",
            work_summary(spec.name, steps, last)
        )));
    ChatRequest {
        model,
        messages,
        temperature: Some(temperature),
        max_tokens: None,
        ..Default::default()
    }
}

/// The `complete_<tool>` block of a final answer.
fn completion_block(steps: &[StepRecord], summary: &str) -> Value {
    let all = consolidate(steps);
    json!({
        "initial_request": steps.first().map(|s| s.step.clone()),
        "steps_taken": steps.len(),
        "files_examined": all.files_checked,
        "relevant_files": all.relevant_files,
        "relevant_context": all.relevant_context,
        "issues_found": all.issues,
        "work_summary": summary,
    })
}
