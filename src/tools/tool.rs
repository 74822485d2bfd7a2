//! What a tool is: a typed [`Tool`] that tool files implement, and the object-safe
//! [`DynTool`] the registry stores, implemented once for every tool by [`Registered`].
//!
//! Why two traits: a tool author writes only what is its own (an argument type, a name, a
//! description, a kind, and how a call is planned); the schema generated from the argument
//! type, its cache, validation against it and decoding are the same for every tool, so they
//! are written once, here, and the registry can still hold tools of different argument types
//! side by side.
//!
//! A call is planned in two steps. [`DynTool::prepare`] runs in the router, on the reader: it
//! validates and decodes the arguments and asks the tool for a [`Plan`] (which provider the
//! call needs, if any, and the work), so a bad call is refused at once and admission knows
//! which provider limit to take. The plan's work then runs in the call's own task, under its
//! deadline and permits.

use std::future::Future;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::CallError;
use crate::provider::Resolved;
use crate::rt::BoxFuture;
use crate::tools::arguments::{self, Names};
use crate::tools::context::{PlanEnv, ToolCtx};
use crate::tools::ignored::{self, Ignored};
use crate::tools::output;

/// Which deadline a tool runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// One provider round trip or less: `SIMPLE_TOOL_TIMEOUT_SECS`.
    Simple,
    /// Expert analysis over many steps: `WORKFLOW_TOOL_TIMEOUT_SECS`.
    Workflow,
}

/// The work of a planned call: runs once, in the call's task, and answers with the text of
/// the call's result.
pub type Work = Box<dyn FnOnce(ToolCtx) -> BoxFuture<'static, Result<String, CallError>> + Send>;

/// A validated call, ready for admission.
pub struct Plan {
    /// The provider and model the call will use, admitted before the work runs; `None` for
    /// calls that need no permits (`version`, an intermediate workflow step, `consensus`,
    /// which admits each consultation on its own).
    pub provider: Option<Resolved>,
    /// The work.
    pub work: Work,
}

impl Plan {
    /// A call whose answer is known at planning: no provider, no permits.
    pub fn answer(text: String) -> Plan {
        Plan::work(None, move |_ctx| async move { Ok(text) })
    }

    /// A call that runs `work` in its task, admitted for `provider` first if it names one.
    pub fn work<F, Fut>(provider: Option<Resolved>, work: F) -> Plan
    where
        F: FnOnce(ToolCtx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<String, CallError>> + Send + 'static,
    {
        Plan {
            provider,
            work: Box::new(move |ctx| Box::pin(work(ctx))),
        }
    }
}

/// One tool, as its author writes it.
pub trait Tool: Send + Sync + 'static {
    /// The arguments, decoded; their JSON Schema is the tool's `inputSchema`.
    type Args: DeserializeOwned + JsonSchema;
    /// Canonical name.
    const NAME: &'static str;
    /// One paragraph for the model choosing tools.
    const DESCRIPTION: &'static str;
    /// Simple or workflow (which deadline applies).
    const KIND: ToolKind;
    /// A name for people, in an editor's tool list.
    const TITLE: &'static str;
    /// Whether it asks a model (a provider outside exaid): MCP's `openWorldHint`.
    const ASKS_A_MODEL: bool;

    /// Adjust the schema generated from [`Tool::Args`] (a tool's own wording of shared
    /// fields). By default it is shown as generated.
    fn tailor_schema(_schema: &mut Value) {}

    /// Plan a call of validated arguments: refuse what the schema cannot say (`VALIDATION_ERROR`
    /// naming the field), resolve the model, and return the work.
    fn plan(&self, args: Self::Args, env: &PlanEnv<'_>) -> Result<Plan, CallError>;
}

/// One tool, as the registry holds it (object-safe).
pub trait DynTool: Send + Sync + 'static {
    /// Canonical name.
    fn name(&self) -> &'static str;
    /// One paragraph for the model choosing tools.
    fn description(&self) -> &'static str;
    /// Simple or workflow (which deadline applies).
    fn kind(&self) -> ToolKind;
    /// A name for people.
    fn title(&self) -> &'static str;
    /// Whether it asks a model.
    fn asks_a_model(&self) -> bool;
    /// JSON Schema of the arguments, generated from the argument type.
    fn input_schema(&self) -> &Value;
    /// Validate the raw arguments (string cap, schema), decode them and plan the call.
    /// Every refusal is a `VALIDATION_ERROR` whose `details.field` names the argument.
    fn prepare(&self, arguments: Map<String, Value>, env: &PlanEnv<'_>) -> Result<Plan, CallError>;
}

/// A [`Tool`] with its schema generated once: the one implementation of [`DynTool`].
pub struct Registered<T: Tool> {
    /// The tool.
    tool: T,
    /// Generated from `T::Args`, tailored by the tool, with the arguments it accepts unused
    /// ([`ignored::of`]) added, once.
    schema: Value,
    /// The top-level names the schema accepts, and which of them are unused.
    names: Names,
}

impl<T: Tool> Registered<T> {
    /// The tool with its schema.
    pub fn new(tool: T) -> Registered<T> {
        let mut schema = schemars::schema_for!(T::Args).to_value();
        T::tailor_schema(&mut schema);
        assert_eq!(
            schema["type"],
            "object",
            "tool {} takes an object of arguments",
            T::NAME
        );
        let unused = ignored::of(T::NAME);
        add_ignored(&mut schema, T::NAME, unused);
        let names = Names::new(&schema, unused);
        Registered {
            tool,
            schema,
            names,
        }
    }
}

/// Show the arguments `tool` accepts unused in its schema: an argument of the `Args` type
/// keeps its schema with a note; any other is added with its shape. A name that is both in
/// the `Args` type and in the table without saying so is a mistake (implemented, or not?).
fn add_ignored(schema: &mut Value, tool: &str, unused: &[Ignored]) {
    let properties = schema
        .as_object_mut()
        .expect("an object schema")
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .expect("properties are an object");
    for entry in unused {
        let added = entry.shape.schema();
        match properties.get_mut(entry.name) {
            Some(property) => {
                assert!(
                    entry.in_args,
                    "{tool}: {} is implemented and listed as ignored",
                    entry.name
                );
                property["description"] = added["description"].clone();
            }
            None => {
                assert!(
                    !entry.in_args,
                    "{tool}: {} is listed as in its arguments, which lack it",
                    entry.name
                );
                properties.insert(entry.name.to_string(), added);
            }
        }
    }
}

impl<T: Tool> DynTool for Registered<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }

    fn kind(&self) -> ToolKind {
        T::KIND
    }

    fn title(&self) -> &'static str {
        T::TITLE
    }

    fn asks_a_model(&self) -> bool {
        T::ASKS_A_MODEL
    }

    fn input_schema(&self) -> &Value {
        &self.schema
    }

    fn prepare(&self, arguments: Map<String, Value>, env: &PlanEnv<'_>) -> Result<Plan, CallError> {
        let chars_max = env.settings().arg_string_chars_max;
        let parsed =
            arguments::parse::<T::Args>(T::NAME, &self.schema, &self.names, arguments, chars_max)?;
        let plan = self.tool.plan(parsed.args, env)?;
        Ok(report_ignored(plan, parsed.ignored))
    }
}

/// `plan`, whose successful answer names the `ignored` arguments the call sent (in
/// `metadata.ignored_arguments`); unchanged when there are none.
fn report_ignored(plan: Plan, ignored: Vec<&'static str>) -> Plan {
    if ignored.is_empty() {
        return plan;
    }
    let Plan { provider, work } = plan;
    Plan::work(provider, move |ctx| async move {
        let text = work(ctx).await?;
        Ok(output::with_ignored_arguments(&text, &ignored))
    })
}

/// `tool`, ready for a registry.
pub fn register<T: Tool>(tool: T) -> Arc<dyn DynTool> {
    Arc::new(Registered::new(tool))
}
