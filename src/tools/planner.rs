//! `planner`: interactive step-by-step planning, with revisions and branches, as in the
//! original.
//!
//! The caller builds a plan one step per call (the engine records each, pauses between them
//! and says what to think about next); the final step answers with the whole plan. Like the
//! original's, it is self-contained: no model is asked, no permits are taken.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::CallError;
use crate::tools::tool::{DynTool, register};
use crate::tools::workflow::{
    ModelChoice, Spec, StepArgs, StepFields, StepInput, Workflow, WorkflowTool, invalid,
};

/// Arguments of `planner`. There are no findings: the step is the plan.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PlannerArgs {
    /// The fields of every step (the planner's wording is in [`PLANNER`]'s field help).
    #[serde(flatten)]
    pub step: StepFields,
    /// Planning-specific details of this step.
    #[serde(flatten)]
    pub planning: PlanningFields,
    /// Accepted for compatibility; the planner asks no model.
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub model: Option<String>,
}

/// Revision and branching details of a planning step, recorded with it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct PlanningFields {
    /// True if this step revises an earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_step_revision: Option<bool>,
    /// Which step this one revises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub revises_step_number: Option<u32>,
    /// True if this step branches off to explore an alternative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_branch_point: Option<bool>,
    /// Which step the branch starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub branch_from_step: Option<u32>,
    /// The branch's name (e.g. `approach-A`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub branch_id: Option<String>,
    /// True if more steps are needed than first estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_steps_needed: Option<bool>,
}

impl StepArgs for PlannerArgs {
    fn into_step(self, tool: &'static str) -> Result<(StepInput, ModelChoice), CallError> {
        for (field, target) in [
            ("revises_step_number", self.planning.revises_step_number),
            ("branch_from_step", self.planning.branch_from_step),
        ] {
            if let Some(target) = target.filter(|t| *t >= self.step.step_number) {
                return Err(invalid(
                    field,
                    format!(
                        "step {target} is not an earlier step than this one ({})",
                        self.step.step_number
                    ),
                ));
            }
        }
        let options = serde_json::to_value(&self.planning).unwrap_or(json!({}));
        let record = self.step.record(tool, options);
        Ok((
            StepInput {
                record,
                next_step_required: self.step.next_step_required,
                backtrack_from_step: None,
                continuation_id: self.step.continuation_id,
                confidence: None,
                total_steps_adjusted_from: None,
            },
            ModelChoice {
                model: self.model,
                temperature: None,
                use_assistant_model: Some(false),
                use_websearch: None,
                images: Vec::new(),
                thinking_mode: None,
            },
        ))
    }
}

/// `planner`.
pub static PLANNER: Spec = Spec {
    name: "planner",
    title: "Plan step by step",
    description: "Interactive step-by-step planning of a complex task: build the plan one step per \
                  call, revise earlier steps or branch into alternatives, adjust total_steps as you \
                  go. Each step is recorded; the last one returns the whole plan. Asks no model.",
    field_help: &[
        (
            "step",
            "This planning step. Step 1: the task to plan, described fully. Later steps: the \
             next piece of the plan, a revision (is_step_revision) or a branch (is_branch_point).",
        ),
        (
            "total_steps",
            "Estimated steps in all (may change as the plan evolves).",
        ),
        (
            "next_step_required",
            "True while more planning steps follow; false on the last one.",
        ),
        (
            "continuation_id",
            "The `continuation_id` returned by step 1 (required from step 2 on).",
        ),
    ],
    expert_prompt: None,
    first_actions: &[
        "Think through the whole scope of the task and its constraints",
        "Consider several approaches and their trade-offs before choosing",
        "Identify dependencies, risks and how success will be judged",
    ],
    middle_actions: &[
        "Break the chosen approach into phases with clear outcomes",
        "Check the plan so far against the requirements; revise steps that no longer fit",
        "Branch (is_branch_point) if an alternative deserves to be explored",
    ],
    closing_actions: &[
        "Make the remaining steps concrete and ordered",
        "Send the last step with next_step_required false to get the whole plan",
    ],
    temperature: 0.5,
    websearch_default: false,
    skip_confidence: &[],
    step_one_requires: &[],
};

/// `planner`: the workflow engine with [`PLANNER`]'s texts and [`PlannerArgs`].
pub struct Planner;

impl Workflow for Planner {
    type Args = PlannerArgs;
    const SPEC: &'static Spec = &PLANNER;
}

/// The planner tool.
pub fn tool() -> Arc<dyn DynTool> {
    register(WorkflowTool::<Planner>::new())
}
