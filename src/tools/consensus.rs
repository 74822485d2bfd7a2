//! `consensus`: ask several models (each with a stance) about one proposal and combine
//! their answers.
//!
//! It is a workflow tool on the same engine: steps before the last are recorded and answered
//! with `pause_for_consensus` and no provider call; the final step consults every model in
//! `models` (given with the final step or an earlier one), one after the other. The call
//! itself holds no permits (`Plan::provider` is `None`): each consultation is admitted on
//! its own (session, that model's provider, then global) through [`ToolCtx::consult`], whose
//! provider handle gives its permits back before the next, so a consensus never holds more
//! than one provider permit. The number of models is bounded by `EXAI_CONSENSUS_MODELS_MAX`. A model that fails
//! is reported in the answer; the call fails only if every model failed.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::conversation::{StepRecord, Turn};
use crate::error::CallError;
use crate::provider::{ChatMessage, ChatRequest, ChatResponse, Resolved, Role, offline};
use crate::tools::context::{PlanEnv, ToolCtx};
use crate::tools::embed::{Known, Lines, embed};
use crate::tools::output::{ContentType, ToolOutput};
use crate::tools::tool::{Plan, Tool, ToolKind};
use crate::tools::workflow::{self, Spec, StepFields, StepInput, describe_fields, invalid};

/// The position a consulted model is asked to argue.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Stance {
    /// Argue for the proposal (but do not invent merits).
    For,
    /// Argue against it (but do not invent flaws).
    Against,
    /// Weigh it evenly.
    Neutral,
}

impl Stance {
    fn name(self) -> &'static str {
        match self {
            Stance::For => "for",
            Stance::Against => "against",
            Stance::Neutral => "neutral",
        }
    }

    fn instructions(self) -> &'static str {
        match self {
            Stance::For => {
                "STANCE: FOR. Make the strongest honest case for the proposal. If it is truly \
                 a bad idea, say so anyway: do not invent merits."
            }
            Stance::Against => {
                "STANCE: AGAINST. Make the strongest honest case against the proposal. If it is \
                 truly sound, say so anyway: do not invent flaws."
            }
            Stance::Neutral => {
                "STANCE: NEUTRAL. Weigh the proposal evenly, in proportion to the evidence: if it \
                 clearly leans one way, say so."
            }
        }
    }
}

/// One model to consult.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ModelStance {
    /// The model's name (as `listmodels` shows it), or "auto".
    #[schemars(length(min = 1, max = 128))]
    pub model: String,
    /// Its stance (default neutral).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stance: Option<Stance>,
    /// Instructions replacing the stance's default ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    pub stance_prompt: Option<String>,
}

/// Arguments of `consensus`. The original's arguments it does not use (its internal
/// `current_model_index`, `model_responses`...) are accepted and named in the result
/// (`tools::ignored::CONSENSUS`); any other is refused, naming it.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ConsensusArgs {
    /// The fields of every step (consensus's wording is in [`CONSENSUS`]'s field help).
    #[serde(flatten)]
    pub step: StepFields,
    /// Your own analysis (not sent to the models; kept for the synthesis).
    #[schemars(length(max = 100000))]
    pub findings: String,
    /// The models to consult, each with a stance; a model and stance may appear once.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub models: Vec<ModelStance>,
    /// Files that give the models context (named in the request).
    #[serde(default)]
    #[schemars(length(max = 1000), inner(length(max = 4096)))]
    pub relevant_files: Vec<String>,
}

/// `consensus`'s texts and guidance.
pub static CONSENSUS: Spec = Spec {
    name: "consensus",
    title: "Consensus of models",
    description: "Ask several models about one proposal, each with a stance (for, against, neutral), \
                  and get their answers side by side to synthesize a decision. Give the proposal as \
                  step and the models in models; with next_step_required false the models are \
                  consulted at once (each admitted separately), otherwise earlier steps are recorded \
                  first. At most EXAI_CONSENSUS_MODELS_MAX models.",
    field_help: &[
        (
            "step",
            "Step 1: the exact proposal or question for every model (a clear question, not a \
             statement about yourself). Later steps: your notes.",
        ),
        (
            "findings",
            "Your own analysis of the proposal; not sent to the models, kept for the \
             synthesis.",
        ),
        ("total_steps", "Steps in all."),
        (
            "next_step_required",
            "False on the step that consults the models.",
        ),
        (
            "continuation_id",
            "The `continuation_id` returned by step 1 (required from step 2 on).",
        ),
    ],
    expert_prompt: None,
    first_actions: &[
        "Write your own independent analysis of the proposal in findings",
        "Check that models lists every model and stance you want consulted",
    ],
    middle_actions: &["Refine the proposal or your analysis if needed"],
    closing_actions: &["Send the final step with next_step_required false to consult the models"],
    temperature: 0.2,
    websearch_default: false,
    skip_confidence: &[],
    step_one_requires: &[],
};

/// The system prompt of one consultation.
fn consult_prompt(stance: Stance, custom: Option<&str>) -> String {
    format!(
        "{CONSENSUS_PROMPT}\n\nYour stance: {}",
        custom.unwrap_or(stance.instructions())
    )
}

/// What every consulted model is told before its stance (`tools/prompts/consensus.txt`).
pub const CONSENSUS_PROMPT: &str = include_str!("prompts/consensus.txt");

/// The `consensus` tool.
pub struct Consensus;

/// A model to consult, resolved.
#[derive(Clone)]
struct Consultation {
    /// As the caller gave it.
    stance: ModelStance,
    /// Its provider and model name.
    resolved: Resolved,
}

impl Tool for Consensus {
    type Args = ConsensusArgs;
    const NAME: &'static str = CONSENSUS.name;
    const DESCRIPTION: &'static str = CONSENSUS.description;
    const KIND: ToolKind = ToolKind::Workflow;
    const TITLE: &'static str = CONSENSUS.title;
    const ASKS_A_MODEL: bool = true;

    fn tailor_schema(schema: &mut Value) {
        describe_fields(schema, &CONSENSUS);
    }

    fn plan(&self, args: ConsensusArgs, env: &PlanEnv<'_>) -> Result<Plan, CallError> {
        let mut input = StepInput {
            record: StepRecord {
                findings: args.findings,
                relevant_files: args.relevant_files,
                ..args
                    .step
                    .record(CONSENSUS.name, json!({ "models": args.models }))
            },
            next_step_required: args.step.next_step_required,
            backtrack_from_step: None,
            continuation_id: args.step.continuation_id,
            confidence: None,
            total_steps_adjusted_from: None,
        };
        input.adjust_total_steps();
        let snapshot = workflow::validate(&input, env)?;
        let earlier = snapshot
            .map(|s| s.steps_of(CONSENSUS.name))
            .unwrap_or_default();
        let models = models_to_consult(args.models, &earlier, input.record.step_number);
        let limit = env.settings().consensus_models_max;
        if models.len() > limit {
            return Err(invalid(
                "models",
                format!(
                    "{} models given, at most {limit} (EXAI_CONSENSUS_MODELS_MAX)",
                    models.len()
                ),
            ));
        }
        if !input.next_step_required && models.is_empty() {
            return Err(invalid(
                "models",
                "consensus needs models to consult: give models (e.g. [{\"model\": \"auto\"}]) \
                 with step 1 or with the final step"
                    .to_string(),
            ));
        }
        let consultations = resolve_all(models, env)?;
        // The proposal is step 1's text (or this step's, when it is step 1 or step 1 is gone).
        let proposal = earlier
            .iter()
            .find(|s| s.step_number == 1 && input.record.step_number > 1)
            .map_or_else(|| input.record.step.clone(), |s| s.step.clone());
        Ok(Plan::work(None, move |ctx| {
            run_consensus(ctx, input, consultations, proposal)
        }))
    }
}

/// The models to consult: this step's, else the latest earlier step's.
fn models_to_consult(
    given: Vec<ModelStance>,
    earlier: &[StepRecord],
    step_number: u32,
) -> Vec<ModelStance> {
    if !given.is_empty() {
        return given;
    }
    earlier
        .iter()
        .rev()
        .filter(|s| s.step_number < step_number)
        .find_map(|s| {
            serde_json::from_value::<Vec<ModelStance>>(s.options["models"].clone())
                .ok()
                .filter(|m| !m.is_empty())
        })
        .unwrap_or_default()
}

/// Resolve every model to its provider; a model and stance may appear once. Errors name the
/// entry (`models[1].model`).
fn resolve_all(
    models: Vec<ModelStance>,
    env: &PlanEnv<'_>,
) -> Result<Vec<Consultation>, CallError> {
    let mut seen = BTreeSet::new();
    let mut consultations = Vec::with_capacity(models.len());
    for (index, stance) in models.into_iter().enumerate() {
        let field = format!("models[{index}].model");
        let resolved = env
            .providers()
            .resolve(&stance.model)
            .map_err(|error| invalid(&field, error.message))?;
        let key = (
            resolved.model.clone(),
            stance.stance.unwrap_or(Stance::Neutral),
        );
        if !seen.insert(key) {
            return Err(invalid(
                &format!("models[{index}]"),
                format!(
                    "model {} with stance {} is listed twice; each model and stance may appear once",
                    resolved.model,
                    stance.stance.unwrap_or(Stance::Neutral).name()
                ),
            ));
        }
        consultations.push(Consultation { stance, resolved });
    }
    Ok(consultations)
}

/// Ask one consulted model: admitted on its own, its permits given back on return.
async fn ask(
    ctx: &ToolCtx,
    resolved: &Resolved,
    request: ChatRequest,
) -> Result<ChatResponse, CallError> {
    let provider = ctx.consult(resolved).await?;
    provider.complete(request).await
}

async fn run_consensus(
    ctx: ToolCtx,
    input: StepInput,
    consultations: Vec<Consultation>,
    proposal: String,
) -> Result<String, CallError> {
    let name = CONSENSUS.name;
    let (id, history) = workflow::record(&ctx, &input)?;
    if input.next_step_required {
        let steps = ctx.conversations().snapshot(&id, ctx.now())?.steps_of(name);
        return Ok(workflow::pause_output(
            &CONSENSUS, &input, &id, history, &steps,
        ));
    }
    // Every consultation sees the same files, read once, within the smallest budget of the
    // models consulted.
    let smallest = consultations
        .iter()
        .map(|c| c.resolved.model.as_str())
        .min_by_key(|model| ctx.daemon().file_limits(model).budget_bytes)
        .expect("a consensus consults at least one model");
    let embedding = embed(
        &ctx,
        "relevant_files",
        &input.record.relevant_files,
        smallest,
        Lines::Numbered,
        // The consulted models get no conversation history, so every file is sent.
        &Known::new(),
    )
    .await?;
    let mut question = proposal.clone();
    if !embedding.block.is_empty() {
        question.push_str("\n\n");
        question.push_str(&embedding.block);
    }
    let mut responses = Vec::with_capacity(consultations.len());
    let mut sections = Vec::with_capacity(consultations.len());
    let mut first_error: Option<CallError> = None;
    let mut any_offline = false;
    let mut usage = None;
    let mut cost: Option<f64> = None;
    for consultation in &consultations {
        let stance = consultation.stance.stance.unwrap_or(Stance::Neutral);
        let provider = consultation.resolved.entry.provider.name().to_string();
        let request = ChatRequest {
            model: consultation.resolved.model.clone(),
            messages: vec![
                ChatMessage::new(
                    Role::System,
                    consult_prompt(stance, consultation.stance.stance_prompt.as_deref()),
                ),
                ChatMessage::new(Role::User, question.clone()),
            ],
            temperature: Some(CONSENSUS.temperature),
            max_tokens: None,
            ..Default::default()
        };
        let label = format!("{} ({})", consultation.resolved.model, stance.name());
        match ask(&ctx, &consultation.resolved, request).await {
            Ok(response) => {
                any_offline |= provider == offline::NAME;
                usage = crate::provider::Usage::sum(usage, response.usage);
                if let Some(spent) = response
                    .usage
                    .and_then(|u| ctx.daemon().cost_usd(&provider, &response.model, u))
                {
                    *cost.get_or_insert(0.0) += spent;
                }
                sections.push(format!("## {label}\n{}", response.text));
                responses.push(json!({
                    "model": response.model,
                    "provider": provider,
                    "stance": stance.name(),
                    "status": "success",
                    "verdict": response.text,
                    "usage": response.usage,
                }));
            }
            Err(error) => {
                sections.push(format!("## {label}\nNo answer: {error}"));
                responses.push(json!({
                    "model": consultation.resolved.model,
                    "provider": provider,
                    "stance": stance.name(),
                    "status": "error",
                    "error": { "code": error.code, "message": error.message },
                }));
                first_error.get_or_insert(error);
            }
        }
    }
    let answered = responses
        .iter()
        .filter(|r| r["status"] == "success")
        .count();
    if answered == 0
        && let Some(error) = first_error
    {
        return Err(error);
    }
    let shown: String = proposal.chars().take(200).collect();
    let content = format!(
        "Consensus: {answered} of {} model(s) answered on the proposal \"{shown}{}\".\n\n{}",
        consultations.len(),
        if proposal.chars().count() > 200 {
            "..."
        } else {
            ""
        },
        sections.join("\n\n")
    );
    let history = ctx.conversations().append(
        &id,
        vec![Turn::text(Role::Assistant, name, content.clone())],
        ctx.now(),
    )?;
    let consulted: Vec<String> = consultations
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c.resolved.model,
                c.stance.stance.unwrap_or(Stance::Neutral).name()
            )
        })
        .collect();
    let mut output = ToolOutput::new(
        name,
        "consensus_workflow_complete",
        content,
        ContentType::Text,
    )
    .meta("models_consulted", json!(consulted))
    .files(embedding.metadata)
    .usage(usage)
    .cost(cost)
    .field("step_number", json!(input.record.step_number))
    .field("total_steps", json!(input.record.total_steps))
    .field("next_step_required", json!(false))
    .field("consensus_complete", json!(true))
    .field("models_consulted", json!(consulted))
    .field("accumulated_responses", json!(responses))
    .field(
        "next_steps",
        json!(
            "Every model was consulted. Synthesize their answers with your own findings: \
                 where they agree, where they differ and why, and a clear recommendation."
        ),
    )
    .field("continuation_id", json!(id));
    if any_offline {
        output = output.meta("offline", json!(true));
    }
    Ok(output.continuation(&id, history).render())
}
