//! Local tools that answer from the daemon itself, with no provider and no permits:
//! `version`, `listmodels`, `status`.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::call::CallCtx;
use crate::error::CallError;
use crate::state::Shared;
use crate::tools::output::{ContentType, ToolOutput};
use crate::tools::{Prepared, Tool, ToolKind, parse_arguments, schema_of};

/// Arguments of the local tools: none.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

/// The tool output around a JSON document: `content_type` "json", `content` the document.
fn envelope(tool: &str, value: &Value) -> String {
    let document = serde_json::to_string_pretty(value).expect("JSON values always serialize");
    ToolOutput::new(tool, "success", document, ContentType::Json).render()
}

fn local(text: String) -> Prepared {
    Prepared {
        provider: None,
        run: Box::new(move |_ctx: CallCtx| Box::pin(async move { Ok(text) })),
    }
}

macro_rules! local_tool {
    ($type:ident, $name:literal, $description:literal) => {
        #[doc = $description]
        pub struct $type {
            /// Generated once from [`NoArgs`].
            schema: Value,
        }

        impl $type {
            /// The tool with its schema.
            pub fn new() -> $type {
                $type {
                    schema: schema_of::<NoArgs>(),
                }
            }
        }

        impl Default for $type {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

local_tool!(
    Version,
    "version",
    "`version`: exaid's version, protocol and configured providers."
);
local_tool!(
    ListModels,
    "listmodels",
    "`listmodels`: every provider, its models, and whether it is configured."
);
local_tool!(
    Status,
    "status",
    "`status`: the daemon's health snapshot: limits, permits, sessions."
);

impl Tool for Version {
    fn name(&self) -> &'static str {
        "version"
    }
    fn description(&self) -> &'static str {
        "Show exaid's version, protocol version and providers."
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
        let _: NoArgs = parse_arguments(self.name(), &self.schema, arguments)?;
        let providers: Vec<Value> = shared
            .providers
            .entries()
            .iter()
            .map(|e| json!({ "name": e.provider.name(), "configured": e.provider.is_configured() }))
            .collect();
        Ok(local(envelope(
            self.name(),
            &json!({
                "name": "exaid",
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": 1,
                "default_provider": shared.providers.default_entry().provider.name(),
                "providers": providers,
                "tool_profile": shared.config.tools.profile.name(),
                "tools": shared.tools.names(),
            }),
        )))
    }
}

impl Tool for ListModels {
    fn name(&self) -> &'static str {
        "listmodels"
    }
    fn description(&self) -> &'static str {
        "List every provider, its models, whether it is configured, and what `auto` picks."
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
        let _: NoArgs = parse_arguments(self.name(), &self.schema, arguments)?;
        let default = shared.providers.default_entry();
        let providers: Vec<Value> = shared
            .providers
            .entries()
            .iter()
            .map(|e| {
                json!({
                    "provider": e.provider.name(),
                    "configured": e.provider.is_configured(),
                    "models": e.provider.models(),
                    "default_model": e.provider.default_model(),
                    "max_inflight": e.limit.permits_max(),
                })
            })
            .collect();
        Ok(local(envelope(
            self.name(),
            &json!({
                "auto": { "provider": default.provider.name(), "model": default.provider.default_model() },
                "providers": providers,
            }),
        )))
    }
}

impl Tool for Status {
    fn name(&self) -> &'static str {
        "status"
    }
    fn description(&self) -> &'static str {
        "Show the daemon's health: limits, permits in use against live holders, waiters, sessions."
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
        let _: NoArgs = parse_arguments(self.name(), &self.schema, arguments)?;
        // The snapshot is taken when the call runs, not when it is accepted.
        Ok(Prepared {
            provider: None,
            run: Box::new(move |ctx: CallCtx| {
                Box::pin(async move {
                    let health = crate::health::snapshot(&ctx.shared);
                    Ok(envelope(
                        "status",
                        &serde_json::to_value(&health).expect("health serializes"),
                    ))
                })
            }),
        })
    }
}
