//! The fixture tools of the official MCP conformance suite (`@modelcontextprotocol/conformance`),
//! served by `/mcp` only with `EXAI_MCP_CONFORMANCE_FIXTURES=true`, a test-only setting that
//! `scripts/mcp-conformance.sh` turns on.
//!
//! Why: the suite's `tools-call-*` scenarios each call a tool of its own (`test_image_content`,
//! `test_tool_with_progress`, ...) to check that the server's MCP layer carries each kind of
//! content and notification. Without them those scenarios fail for want of a tool, and
//! `tools-call-error` passes only because calling a missing tool is also an error. These tools
//! are answered by the MCP door itself, each as the suite's own description asks: they never
//! reach the core, a provider or a limit, so they must never be on in use.
//!
//! Left out: the sampling and elicitation fixtures (exaid's tools never ask the client for a
//! completion or for input) and the logging one (rmcp 3.11 marks logging deprecated, and exaid
//! offers no logging capability).

use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    CallToolResult, ContentBlock, ProgressNotificationParam, ResourceContents, Tool,
};
use rmcp::service::RequestContext;
use serde_json::{Map, json};

use crate::rt::Rt;

/// A 1x1 red PNG (8-bit RGB), base64.
const RED_PIXEL_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

/// A WAV of eight silent samples (8 kHz, mono, 8-bit PCM), base64.
const SILENT_WAV: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

/// The pause between the progress notifications of `test_tool_with_progress`, as the suite
/// describes it.
const PROGRESS_STEP: Duration = Duration::from_millis(50);

/// The fixture tools, by name and description (none takes arguments).
const FIXTURES: [(&str, &str); 7] = [
    (
        "test_simple_text",
        "Conformance fixture: returns one text block.",
    ),
    (
        "test_image_content",
        "Conformance fixture: returns a PNG image.",
    ),
    (
        "test_audio_content",
        "Conformance fixture: returns a WAV sound.",
    ),
    (
        "test_embedded_resource",
        "Conformance fixture: returns an embedded text resource.",
    ),
    (
        "test_multiple_content_types",
        "Conformance fixture: returns text, an image and a resource.",
    ),
    (
        "test_tool_with_progress",
        "Conformance fixture: reports progress 0, 50 and 100 of 100.",
    ),
    ("test_error_handling", "Conformance fixture: always fails."),
];

/// The fixture tools, as `tools/list` lists them.
pub fn tools() -> Vec<Tool> {
    let schema = Arc::new(Map::from_iter([("type".to_string(), json!("object"))]));
    FIXTURES
        .iter()
        .map(|(name, description)| Tool::new(*name, *description, schema.clone()))
        .collect()
}

/// Whether `name` is a fixture tool.
pub fn is_fixture(name: &str) -> bool {
    FIXTURES.iter().any(|(fixture, _)| *fixture == name)
}

/// Call fixture `name` (one of [`tools`]).
pub async fn call(rt: &Rt, name: &str, context: &RequestContext<RoleServer>) -> CallToolResult {
    match name {
        "test_simple_text" => text("This is a simple text response for testing."),
        "test_image_content" => CallToolResult::success(vec![image()]),
        "test_audio_content" => {
            CallToolResult::success(vec![ContentBlock::audio(SILENT_WAV, "audio/wav")])
        }
        "test_embedded_resource" => CallToolResult::success(vec![ContentBlock::embedded_text(
            "test://embedded-resource",
            "This is an embedded resource content.",
        )]),
        "test_multiple_content_types" => CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            image(),
            ContentBlock::resource(
                ResourceContents::text(
                    r#"{"test":"data","value":123}"#,
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ]),
        "test_tool_with_progress" => progress(rt, context).await,
        "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )]),
        other => unreachable!("{other} is not a fixture tool"),
    }
}

fn text(text: &str) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn image() -> ContentBlock {
    ContentBlock::image(RED_PIXEL_PNG, "image/png")
}

/// Progress 0, 50 and 100 of 100 (when the request has a progress token), 50 ms apart.
async fn progress(rt: &Rt, context: &RequestContext<RoleServer>) -> CallToolResult {
    let token = context.meta.get_progress_token();
    for (step, value) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if step > 0 {
            rt.sleep(PROGRESS_STEP).await;
        }
        if let Some(token) = &token {
            let param = ProgressNotificationParam::new(token.clone(), value).with_total(100.0);
            // A client that stopped listening is no reason to fail the fixture.
            let _ = context.peer.notify_progress(param).await;
        }
    }
    text("Progress reported: 0, 50 and 100 of 100.")
}
