//! `sim_workflow`: a tool of the workflow kind for the simulator, standing in for the real
//! workflow tools (`debug`, `analyze`...) until they exist. It asks the provider once, under
//! `WORKFLOW_TOOL_TIMEOUT_SECS`, exactly as an expert-analysis step does: what the incident
//! scenario needs is a long-deadline call waiting on a rate-limited provider.

use std::sync::Arc;

use exaid::call::CallCtx;
use exaid::daemon::Shared;
use exaid::error::CallError;
use exaid::provider::{ChatMessage, ChatRequest, Role};
use exaid::tools::{Prepared, Tool, ToolKind, parse_arguments, schema_of};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Arguments of `sim_workflow`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SimWorkflowArgs {
    /// What to analyse.
    #[schemars(length(min = 1, max = 100000))]
    pub prompt: String,
    /// Model, or "auto".
    #[serde(default)]
    pub model: Option<String>,
}

/// The tool.
pub struct SimWorkflow {
    /// Its schema.
    schema: Value,
}

impl SimWorkflow {
    /// The tool with its schema.
    pub fn new() -> SimWorkflow {
        SimWorkflow {
            schema: schema_of::<SimWorkflowArgs>(),
        }
    }
}

impl Default for SimWorkflow {
    fn default() -> Self {
        Self::new()
    }
}

impl Tool for SimWorkflow {
    fn name(&self) -> &'static str {
        "sim_workflow"
    }

    fn description(&self) -> &'static str {
        "Simulator stand-in for a workflow tool's expert analysis: one provider call under the workflow deadline."
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Workflow
    }

    fn input_schema(&self) -> &Value {
        &self.schema
    }

    fn prepare(
        &self,
        arguments: Map<String, Value>,
        shared: &Arc<Shared>,
    ) -> Result<Prepared, CallError> {
        let args: SimWorkflowArgs = parse_arguments(self.name(), &self.schema, arguments)?;
        let resolved = shared
            .providers
            .resolve(args.model.as_deref().unwrap_or("auto"))?;
        let request = ChatRequest {
            model: resolved.model.clone(),
            messages: vec![ChatMessage {
                role: Role::User,
                content: args.prompt,
            }],
            temperature: None,
            max_tokens: None,
        };
        let entry = resolved.entry.clone();
        Ok(Prepared {
            provider: Some(resolved),
            run: Box::new(move |ctx: CallCtx| {
                Box::pin(async move { Ok(ctx.complete(&entry, request).await?.text) })
            }),
        })
    }
}
