//! The workflow engine: caller-driven investigations, as in the original.
//!
//! A workflow tool (`debug`, `codereview`, ...) is called once per step by the client's own
//! agent, which does the real work (reading code, running tests) between calls. The daemon
//! never runs a step itself. Each call carries `step`, `step_number`, `total_steps`,
//! `next_step_required` and what was found; the engine records the step in the
//! conversation memory under the `continuation_id` (created at step 1) and:
//! - on an intermediate step (`next_step_required: true`) answers at once, with no provider
//!   call and so no permits, `status: pause_for_<tool>` and the actions the caller must take
//!   before the next step;
//! - on the final step (`next_step_required: false`) asks the provider once for an expert
//!   analysis over every recorded step (that call is admitted like any other: its model's
//!   provider is in `Plan::provider`), or, for tools that complete locally (`planner`,
//!   `docgen`, `tracer`, or `use_assistant_model: false`), answers with the summary.
//!
//! Recording replaces: step N replaces any recorded step N or later of the same tool, so a
//! resent step is never counted twice, step 1 starts a new investigation, and
//! `backtrack_from_step` discards a dead end. Step numbers are validated up front and errors
//! name the field.

use std::collections::BTreeSet;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::conversation::{History, Snapshot, StepRecord, describe_issue};
use crate::error::{CallError, ErrorCode};
use crate::tools::context::{PlanEnv, ToolCtx};
use crate::tools::images::refuse_unless_vision;
use crate::tools::output::{ContentType, ToolOutput};
use crate::tools::route::{self, Category};
use crate::tools::thinking::{Thinking, ThinkingMode};
use crate::tools::tool::{Plan, Tool, ToolKind};

mod ending;

use ending::{Expert, Finish, Skip, run_step};

/// Most steps one investigation may have (`step_number`, `total_steps`).
pub const STEPS_MAX: u32 = 100;

/// How sure the caller is, as in the original.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Just starting.
    Exploring,
    /// Early idea.
    Low,
    /// Some evidence.
    Medium,
    /// Strong evidence.
    High,
    /// Very strong evidence.
    VeryHigh,
    /// Nearly confirmed.
    AlmostCertain,
    /// Confirmed.
    Certain,
}

impl Confidence {
    /// Its wire name.
    pub fn name(self) -> &'static str {
        match self {
            Confidence::Exploring => "exploring",
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
            Confidence::VeryHigh => "very_high",
            Confidence::AlmostCertain => "almost_certain",
            Confidence::Certain => "certain",
        }
    }
}

/// One `issues_found` item: severity and description, plus whatever else the caller sends
/// (kept as sent).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Issue {
    /// `critical`, `high`, `medium` or `low` (free text is kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub severity: Option<String>,
    /// What is wrong, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    pub description: Option<String>,
    /// Other fields of the issue (location, fix...), kept as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Tools with no options of their own.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct NoOptions {}

/// The fields every workflow step carries, whatever the tool: flattened into each workflow
/// tool's arguments, so they are declared, bounded and decoded once. The descriptions are
/// the investigation tools' wording; a tool that says it otherwise sets its own
/// ([`Spec::field_help`]).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct StepFields {
    /// What this step does or found (step 1: the task and the plan).
    #[schemars(length(min = 1, max = 100000))]
    pub step: String,
    /// This step's number, from 1.
    #[schemars(range(min = 1, max = 100))]
    pub step_number: u32,
    /// Estimated steps in all (may grow as the work goes on; at least `step_number`).
    #[schemars(range(min = 1, max = 100))]
    pub total_steps: u32,
    /// True to pause for more work after this step; false on the final step, which gets
    /// the expert analysis.
    pub next_step_required: bool,
    /// The `continuation_id` returned by step 1 (required from step 2 on); also continues
    /// a conversation started by another tool.
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub continuation_id: Option<String>,
}

impl StepFields {
    /// The step as recorded, with everything else of the tool's left empty.
    pub fn record(&self, tool: &'static str, options: Value) -> StepRecord {
        StepRecord {
            tool,
            step_number: self.step_number,
            total_steps: self.total_steps,
            step: self.step.clone(),
            findings: String::new(),
            files_checked: Vec::new(),
            relevant_files: Vec::new(),
            relevant_context: Vec::new(),
            issues_found: Vec::new(),
            confidence: None,
            hypothesis: None,
            options,
        }
    }
}

/// The arguments of an investigation step (every workflow tool but `planner` and
/// `consensus`); `X` holds the tool's own options. The original's arguments a tool does not use
/// are accepted and named in the result (`tools::ignored`); any other is refused.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InvestigationArgs<X> {
    /// The fields of every step.
    #[serde(flatten)]
    pub step: StepFields,
    /// What was found in this step: evidence, conclusions, dead ends.
    #[schemars(length(max = 100000))]
    pub findings: String,
    /// Every file examined so far.
    #[serde(default)]
    #[schemars(length(max = 1000), inner(length(max = 4096)))]
    pub files_checked: Vec<String>,
    /// Files that matter to the answer.
    #[serde(default)]
    #[schemars(length(max = 1000), inner(length(max = 4096)))]
    pub relevant_files: Vec<String>,
    /// Functions, methods or places that matter (`Class.method`, `file:line`).
    #[serde(default)]
    #[schemars(length(max = 1000), inner(length(max = 4096)))]
    pub relevant_context: Vec<String>,
    /// Issues found so far, each with a severity and a description.
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub issues_found: Vec<Issue>,
    /// How sure you are now.
    #[serde(default)]
    pub confidence: Option<Confidence>,
    /// Your current theory, if any.
    #[serde(default)]
    #[schemars(length(max = 100000))]
    pub hypothesis: Option<String>,
    /// Discard recorded steps from this number on (a dead end) before recording this one.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub backtrack_from_step: Option<u32>,
    /// Model for the expert analysis, or "auto".
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub model: Option<String>,
    /// Sampling temperature of the expert analysis.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// False to finish without the expert analysis (no provider call).
    #[serde(default)]
    pub use_assistant_model: Option<bool>,
    /// Let the expert search the web through its provider, for models that can (default on
    /// for analyze, off for the others; `EXAI_WEBSEARCH_DEFAULT` overrides).
    #[serde(default)]
    pub use_websearch: Option<bool>,
    /// Images the expert should see with the final step (screenshots, diagrams), for a model
    /// that takes images: absolute paths of PNG, JPEG, GIF or WebP files under the allowed
    /// roots, or `data:image/...;base64,` URLs. Only the final step's are sent.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub images: Vec<String>,
    /// How hard the expert should think before answering (minimal turns thinking off), for
    /// models with a thinking mode; metadata.thinking says whether it was applied.
    #[serde(default)]
    pub thinking_mode: Option<ThinkingMode>,
    /// The tool's own options.
    #[serde(flatten)]
    pub options: X,
}

/// A step as the engine sees it, whatever the tool's arguments looked like.
#[derive(Debug, Clone)]
pub struct StepInput {
    /// The step to record.
    pub record: StepRecord,
    /// False on the final step.
    pub next_step_required: bool,
    /// Discard recorded steps from this number on first.
    pub backtrack_from_step: Option<u32>,
    /// The conversation to record into (required from step 2 on).
    pub continuation_id: Option<String>,
    /// How sure the caller is (picks the required actions).
    pub confidence: Option<Confidence>,
    /// The `total_steps` the caller sent, when the step's number was past it and it was
    /// raised (the original raised it too); the answer says so.
    pub total_steps_adjusted_from: Option<u32>,
}

impl StepInput {
    /// Raise `total_steps` to the step's number when the step is past it (estimates grow).
    pub fn adjust_total_steps(&mut self) {
        let record = &mut self.record;
        if record.step_number > record.total_steps {
            self.total_steps_adjusted_from = Some(record.total_steps);
            record.total_steps = record.step_number;
        }
        assert!(self.record.step_number <= self.record.total_steps);
    }
}

/// Which model finishes the work, and how.
#[derive(Debug, Clone, Default)]
pub struct ModelChoice {
    /// Model name or "auto".
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// `Some(false)`: finish locally, no provider call.
    pub use_assistant_model: Option<bool>,
    /// Whether the expert may search the web (`None`: the tool's default).
    pub use_websearch: Option<bool>,
    /// Images for the expert (`images`), sent with the final step's analysis.
    pub images: Vec<String>,
    /// How hard the expert should think (`thinking_mode`).
    pub thinking_mode: Option<ThinkingMode>,
}

/// Arguments a workflow tool accepts: how they become a step.
pub trait StepArgs: DeserializeOwned + JsonSchema + Send + 'static {
    /// The step and the model choice, for tool `tool`; `VALIDATION_ERROR` naming the field
    /// for what the schema cannot say (a step number referring to a later step...).
    fn into_step(self, tool: &'static str) -> Result<(StepInput, ModelChoice), CallError>;
}

impl<X: DeserializeOwned + JsonSchema + Serialize + Send + 'static> StepArgs
    for InvestigationArgs<X>
{
    fn into_step(self, tool: &'static str) -> Result<(StepInput, ModelChoice), CallError> {
        let options = serde_json::to_value(&self.options).unwrap_or(Value::Null);
        let issues_found = self
            .issues_found
            .iter()
            .map(|issue| serde_json::to_value(issue).unwrap_or(Value::Null))
            .collect();
        let record = StepRecord {
            findings: self.findings,
            files_checked: self.files_checked,
            relevant_files: self.relevant_files,
            relevant_context: self.relevant_context,
            issues_found,
            confidence: self.confidence.map(|c| c.name().to_string()),
            hypothesis: self.hypothesis,
            ..self.step.record(tool, options)
        };
        Ok((
            StepInput {
                record,
                next_step_required: self.step.next_step_required,
                backtrack_from_step: self.backtrack_from_step,
                continuation_id: self.step.continuation_id,
                confidence: self.confidence,
                total_steps_adjusted_from: None,
            },
            ModelChoice {
                model: self.model,
                temperature: self.temperature,
                use_assistant_model: self.use_assistant_model,
                use_websearch: self.use_websearch,
                images: self.images,
                thinking_mode: self.thinking_mode,
            },
        ))
    }
}

/// What makes one workflow tool itself: its texts, its expert prompt, its guidance.
#[derive(Debug)]
pub struct Spec {
    /// The tool's name.
    pub name: &'static str,
    /// A name for people, in an editor's tool list.
    pub title: &'static str,
    /// What it does, for the model choosing tools.
    pub description: &'static str,
    /// The tool's own schema descriptions of shared fields (`step`, `findings`...), by
    /// field name; each names a field of the tool's arguments.
    pub field_help: &'static [(&'static str, &'static str)],
    /// System prompt of the expert analysis; `None` for tools that complete locally.
    pub expert_prompt: Option<&'static str>,
    /// What the caller must do after step 1.
    pub first_actions: &'static [&'static str],
    /// What the caller must do after a middle step.
    pub middle_actions: &'static [&'static str],
    /// What the caller must do when close to done (last steps, or high confidence).
    pub closing_actions: &'static [&'static str],
    /// The expert analysis's temperature unless the caller sets one.
    pub temperature: f64,
    /// Whether the expert may search the web when the call does not say (`use_websearch`):
    /// on for `analyze`, as in the original; `EXAI_WEBSEARCH_DEFAULT` overrides.
    pub websearch_default: bool,
    /// Confidences at which a final step finishes without the expert (the original's rule:
    /// `certain`, for `refactor` also `almost_certain`, never for `analyze`).
    pub skip_confidence: &'static [Confidence],
    /// Fields step 1 must fill (the original's step-1 requirements): `relevant_files`, or an
    /// option by name (`path`).
    pub step_one_requires: &'static [&'static str],
}

impl Spec {
    /// Why a final step should end without the expert, if it should. `earlier` is the
    /// conversation before this step (what it will hold is predicted as `record_step` keeps
    /// it: the steps before this one, or before the backtrack target).
    fn skip(
        &self,
        input: &StepInput,
        choice: &ModelChoice,
        earlier: Option<&Snapshot>,
    ) -> Option<Skip> {
        if input.next_step_required {
            return None;
        }
        if choice.use_assistant_model == Some(false) {
            return Some(Skip::ByCaller);
        }
        if input
            .confidence
            .is_some_and(|c| self.skip_confidence.contains(&c))
        {
            return Some(Skip::CertainConfidence);
        }
        let from = input
            .backtrack_from_step
            .map_or(input.record.step_number, |b| {
                b.min(input.record.step_number)
            });
        let mut steps: Vec<StepRecord> = earlier
            .map(|s| s.steps_of(self.name))
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.step_number < from)
            .collect();
        steps.push(input.record.clone());
        let all = consolidate(&steps);
        let findings = steps
            .iter()
            .filter(|s| !s.findings.trim().is_empty())
            .count();
        let substance = !all.relevant_files.is_empty() || findings + all.issues.len() >= 2;
        (!substance).then_some(Skip::NothingToAnalyse)
    }

    /// Step 1's requirements, each refusal naming its field.
    fn check_step_one(&self, input: &StepInput) -> Result<(), CallError> {
        if input.record.step_number != 1 {
            return Ok(());
        }
        for field in self.step_one_requires {
            let filled = match *field {
                "relevant_files" => !input.record.relevant_files.is_empty(),
                option => input.record.options[option]
                    .as_str()
                    .is_some_and(|v| !v.trim().is_empty()),
            };
            if !filled {
                return Err(invalid(
                    field,
                    format!(
                        "step 1 of {} needs {field}: name the code in scope (absolute paths) so the \
                         investigation and its expert can see it",
                        self.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn actions(&self, input: &StepInput) -> &'static [&'static str] {
        let step = input.record.step_number;
        let confident = input.confidence.is_some_and(|c| c >= Confidence::High);
        if step == 1 {
            self.first_actions
        } else if confident || step + 1 >= input.record.total_steps {
            self.closing_actions
        } else {
            self.middle_actions
        }
    }
}

/// A `VALIDATION_ERROR` naming `field`.
pub fn invalid(field: &str, message: String) -> CallError {
    CallError::new(ErrorCode::ValidationError, format!("{field}: {message}"))
        .with_details(json!({ "field": field }))
}

/// Check a step before admission: numbers consistent, the conversation alive, a backtrack
/// target recorded. Returns the conversation as it is now, if the step continues one.
pub fn validate(input: &StepInput, env: &PlanEnv<'_>) -> Result<Option<Snapshot>, CallError> {
    let record = &input.record;
    assert!(
        record.step_number <= record.total_steps,
        "total_steps is adjusted before validation"
    );
    if record.step_number > 1 && input.continuation_id.is_none() {
        return Err(invalid(
            "continuation_id",
            format!(
                "step {} continues an investigation: pass the continuation_id returned by step 1",
                record.step_number
            ),
        ));
    }
    let snapshot = match &input.continuation_id {
        Some(id) => Some(env.conversations().snapshot(id, env.now())?),
        None => None,
    };
    if let Some(target) = input.backtrack_from_step {
        let recorded: Vec<u32> = snapshot
            .as_ref()
            .map(|s| {
                s.steps_of(record.tool)
                    .iter()
                    .map(|s| s.step_number)
                    .collect()
            })
            .unwrap_or_default();
        if target > record.step_number || !recorded.contains(&target) {
            let shown: Vec<String> = recorded.iter().map(u32::to_string).collect();
            return Err(invalid(
                "backtrack_from_step",
                format!(
                    "step {target} is not a recorded step of this {} investigation before step {} (recorded: {})",
                    record.tool,
                    record.step_number,
                    if shown.is_empty() {
                        "none".to_string()
                    } else {
                        shown.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(snapshot)
}

/// Record the step (opening the conversation, or creating it at step 1). Returns the
/// conversation's id and size.
pub fn record(ctx: &ToolCtx, input: &StepInput) -> Result<(String, History), CallError> {
    let now = ctx.now();
    let id = ctx.conversations().open(
        input.continuation_id.as_deref(),
        || ctx.new_conversation_id(),
        now,
    )?;
    let history = ctx.conversations().record_step(
        &id,
        input.record.clone(),
        input.backtrack_from_step,
        now,
    )?;
    Ok((id, history))
}

/// What an investigation has gathered, over its recorded steps (sets: a file named in
/// several steps counts once, in a stable order).
struct Consolidated {
    /// Every file examined.
    files_checked: BTreeSet<String>,
    /// Every file that matters.
    relevant_files: BTreeSet<String>,
    /// Every function or place that matters.
    relevant_context: BTreeSet<String>,
    /// Every issue reported, in step order.
    issues: Vec<Value>,
}

fn consolidate(steps: &[StepRecord]) -> Consolidated {
    let mut all = Consolidated {
        files_checked: BTreeSet::new(),
        relevant_files: BTreeSet::new(),
        relevant_context: BTreeSet::new(),
        issues: Vec::new(),
    };
    for step in steps {
        all.files_checked.extend(step.files_checked.iter().cloned());
        all.relevant_files
            .extend(step.relevant_files.iter().cloned());
        all.relevant_context
            .extend(step.relevant_context.iter().cloned());
        all.issues.extend(step.issues_found.iter().cloned());
    }
    all
}

/// Step numbers below `last` that the conversation no longer holds (dropped to its limits,
/// or skipped by the caller): the final answer says so.
fn missing_steps(steps: &[StepRecord], last: u32) -> Vec<u32> {
    (1..last)
        .filter(|n| !steps.iter().any(|s| s.step_number == *n))
        .collect()
}

/// The status block of a workflow answer (`<tool>_status`).
fn status_block(steps: &[StepRecord], input: &StepInput) -> Value {
    let all = consolidate(steps);
    json!({
        "steps_recorded": steps.len(),
        "files_checked": all.files_checked.len(),
        "relevant_files": all.relevant_files.len(),
        "relevant_context": all.relevant_context.len(),
        "issues_found": all.issues.len(),
        "current_confidence": input.confidence.map(Confidence::name),
    })
}

/// The answer to an intermediate step: pause, and what to do before the next one.
pub fn pause_output(
    spec: &Spec,
    input: &StepInput,
    id: &str,
    history: History,
    steps: &[StepRecord],
) -> String {
    let name = spec.name;
    let next = input.record.step_number + 1;
    let actions = spec.actions(input);
    let listed: Vec<String> = actions
        .iter()
        .enumerate()
        .map(|(i, action)| format!("{}. {action}", i + 1))
        .collect();
    let guidance = format!(
        "Do not call {name} again yet: do this work yourself first. Required before step {next}:\n{}\n\n\
         Then call {name} with step_number {next}, what you found, and continuation_id \"{id}\". \
         The daemon records steps; it never runs one for you.",
        listed.join("\n")
    );
    ToolOutput::new(
        name,
        format!("pause_for_{name}"),
        &guidance,
        ContentType::Text,
    )
    .field("step_number", json!(input.record.step_number))
    .field("total_steps", json!(input.record.total_steps))
    .field("next_step_required", json!(true))
    .field(&format!("{name}_status"), status_block(steps, input))
    .field(&format!("{name}_required"), json!(true))
    .field("required_actions", json!(actions))
    .field("next_steps", json!(guidance))
    .field("next_call", next_call(name, input, id))
    .field("continuation_id", json!(id))
    .adjusted(input.total_steps_adjusted_from)
    .continuation(id, history)
    .render()
}

/// The call the agent sends next: the tool and a skeleton of its arguments, the texts left
/// for the agent to write.
fn next_call(name: &str, input: &StepInput, id: &str) -> Value {
    let next = input.record.step_number + 1;
    let total = input.record.total_steps.max(next);
    json!({
        "tool": name,
        "arguments": {
            "step": format!("<what you examined in step {next}, and why>"),
            "step_number": next,
            "total_steps": total,
            "next_step_required": next < total,
            "findings": "<what you found, with evidence>",
            "continuation_id": id,
        },
    })
}

/// Every recorded step as one document: what the expert is shown and what a local
/// completion returns.
pub fn work_summary(name: &str, steps: &[StepRecord], last: u32) -> String {
    let all = consolidate(steps);
    let mut text = format!("=== {} WORK SUMMARY ===\n", name.to_ascii_uppercase());
    if let Some(first) = steps.first() {
        text.push_str(&format!("Initial request: {}\n", first.step));
    }
    text.push_str(&format!("Steps recorded: {}\n", steps.len()));
    let missing = missing_steps(steps, last);
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().map(u32::to_string).collect();
        text.push_str(&format!(
            "Steps not in memory: {} (dropped to stay within the conversation limits, or never sent)\n",
            shown.join(", ")
        ));
    }
    for (label, items) in [
        ("Files checked", &all.files_checked),
        ("Relevant files", &all.relevant_files),
        ("Relevant context", &all.relevant_context),
    ] {
        if !items.is_empty() {
            let shown: Vec<&str> = items.iter().map(String::as_str).collect();
            text.push_str(&format!(
                "{label} ({}): {}\n",
                items.len(),
                shown.join(", ")
            ));
        }
    }
    text.push_str("\n=== WORK PROGRESSION ===\n");
    for step in steps {
        text.push_str(&step.render());
        text.push_str("\n\n");
    }
    if !all.issues.is_empty() {
        text.push_str("=== ISSUES IDENTIFIED ===\n");
        for issue in &all.issues {
            text.push_str(&describe_issue(issue));
            text.push('\n');
        }
        text.push('\n');
    }
    if let Some(last_step) = steps.last() {
        let has_options = last_step
            .options
            .as_object()
            .is_some_and(|o| o.values().any(|v| !v.is_null()));
        if has_options {
            text.push_str(&format!("=== OPTIONS ===\n{}\n", last_step.options));
        }
    }
    text
}

/// One workflow tool: its argument type and what makes it itself.
pub trait Workflow: Send + Sync + 'static {
    /// Its arguments.
    type Args: StepArgs;
    /// Its texts, expert prompt and guidance.
    const SPEC: &'static Spec;
}

/// A workflow tool over the engine.
pub struct WorkflowTool<W> {
    /// The workflow, as a type: everything about it is in its `Args` and `SPEC`.
    workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> WorkflowTool<W> {
    /// The tool.
    pub fn new() -> WorkflowTool<W> {
        WorkflowTool {
            workflow: PhantomData,
        }
    }
}

impl<W: Workflow> Default for WorkflowTool<W> {
    fn default() -> Self {
        Self::new()
    }
}

/// Set the description of property `field` in `schema` (tool-specific wording of a shared
/// field), if the property exists.
pub fn describe_field(schema: &mut Value, field: &str, text: &str) {
    if let Some(property) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut(field))
        .and_then(Value::as_object_mut)
    {
        property.insert("description".to_string(), json!(text));
    }
}

/// Apply a spec's own wording of shared fields to `schema`; each must name a field of it.
pub fn describe_fields(schema: &mut Value, spec: &Spec) {
    for (field, text) in spec.field_help {
        assert!(
            schema["properties"].get(field).is_some(),
            "{}'s field help names {field}, which its arguments do not have",
            spec.name
        );
        describe_field(schema, field, text);
    }
}

impl<W: Workflow> Tool for WorkflowTool<W> {
    type Args = W::Args;
    const NAME: &'static str = W::SPEC.name;
    const DESCRIPTION: &'static str = W::SPEC.description;
    const KIND: ToolKind = ToolKind::Workflow;
    const TITLE: &'static str = W::SPEC.title;
    const ASKS_A_MODEL: bool = W::SPEC.expert_prompt.is_some();

    fn tailor_schema(schema: &mut Value) {
        if let Some(object) = schema.as_object_mut() {
            object.insert(
                "description".to_string(),
                json!(format!("Arguments of one {} step.", W::SPEC.name)),
            );
        }
        describe_fields(schema, W::SPEC);
    }

    fn plan(&self, args: W::Args, env: &PlanEnv<'_>) -> Result<Plan, CallError> {
        let spec = W::SPEC;
        let (mut input, choice) = args.into_step(spec.name)?;
        input.adjust_total_steps();
        let snapshot = validate(&input, env)?;
        spec.check_step_one(&input)?;
        // A tool that ends with an expert analysis checks the model on every step, so a bad
        // name fails at step 1, not at the end. Tools that complete locally ignore it.
        let finish = match spec.expert_prompt {
            Some(prompt) => {
                let kept = snapshot.as_ref().and_then(|s| s.model());
                let mut route = route::plan(env, choice.model.as_deref(), Category::Quality, kept)?;
                let resolved = route.primary.clone();
                refuse_unless_vision(env, "images", &choice.images, &resolved.model)?;
                if !choice.images.is_empty() {
                    // The images were checked against this model's facts.
                    route.fallbacks.clear();
                }
                let skip = spec.skip(&input, &choice, snapshot.as_ref());
                let facts = env.providers().model_table().facts(&resolved.model);
                let web_search = choice
                    .use_websearch
                    .or(env.settings().websearch_default)
                    .unwrap_or(spec.websearch_default)
                    && facts.web_search;
                match skip {
                    Some(skip) => Finish::Local(skip),
                    None => Finish::Expert(
                        resolved,
                        Expert {
                            prompt,
                            temperature: choice.temperature.unwrap_or(spec.temperature),
                            web_search,
                            rounds_max: env.settings().tool_rounds_max,
                            images: choice.images,
                            thinking: Thinking::decide(choice.thinking_mode, facts.thinking),
                            fallbacks: route.fallbacks,
                        },
                    ),
                }
            }
            None => Finish::Local(Skip::ByDesign),
        };
        let (provider, finish) = match finish {
            Finish::Expert(resolved, expert) => (Some(resolved), Ok(expert)),
            Finish::Local(skip) => (None, Err(skip)),
        };
        Ok(Plan::work(provider, move |ctx| {
            run_step(ctx, spec, input, finish)
        }))
    }
}
