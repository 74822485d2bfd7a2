//! The images a call sends (`images`): refused before admission for a model that does not
//! take them, read in the call's own task for one that does, and sent as image parts of the
//! message they belong to.
//!
//! Why the check comes first: the model is known when the call is planned, and a call that
//! cannot succeed must not wait for a permit. The reading (`files::image`) is part of the
//! call, under its permit and deadline, like every file it names.

use serde_json::{Value, json};

use crate::error::{CallError, ErrorCode};
use crate::files::image::read_images;
use crate::tools::context::{PlanEnv, ToolCtx};

/// Images ready for a message, and what the result says about them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attached {
    /// The `data:` URLs, in the order the caller named them.
    pub urls: Vec<String>,
    /// `[{source, media_type, bytes}]`, or `None` when the call named no image.
    pub metadata: Option<Value>,
    /// A line for the conversation's record of the message (the images themselves are not
    /// kept): which images went with it. Empty when none did.
    pub note: String,
}

/// Refuse `images` (the argument `field`) when `model` does not take images, naming the
/// models of the configured providers that do.
pub fn refuse_unless_vision(
    env: &PlanEnv<'_>,
    field: &str,
    images: &[String],
    model: &str,
) -> Result<(), CallError> {
    let table = env.providers().model_table();
    if images.is_empty() || table.facts(model).vision {
        return Ok(());
    }
    let vision: Vec<String> = env
        .providers()
        .entries()
        .iter()
        .filter(|entry| entry.provider.is_configured())
        .flat_map(|entry| entry.provider.models().iter())
        .filter(|m| table.facts(m).vision)
        .cloned()
        .collect();
    let choose = if vision.is_empty() {
        "no configured provider lists a vision model".to_string()
    } else {
        format!("models that take them: {}", vision.join(", "))
    };
    let message = format!(
        "{field}: model {model} does not take images ({choose}; EXAI_MODEL_FACTS corrects a \
         model's facts)"
    );
    Err(CallError::new(ErrorCode::ValidationError, message).with_details(json!({ "field": field })))
}

/// Read and check `entries` for a call to `model`, in the call's task.
pub async fn attach(
    ctx: &ToolCtx,
    field: &str,
    entries: &[String],
    model: &str,
) -> Result<Attached, CallError> {
    if entries.is_empty() {
        return Ok(Attached::default());
    }
    let limits = ctx.daemon().file_limits(model);
    let images = read_images(&*ctx.rt().fs(), field, entries, &limits).await?;
    assert_eq!(images.len(), entries.len());
    let sources: Vec<&str> = images.iter().map(|i| i.source.as_str()).collect();
    Ok(Attached {
        note: format!(
            "[{} image(s) were attached: {}]",
            images.len(),
            sources.join(", ")
        ),
        metadata: Some(Value::Array(images.iter().map(|i| i.metadata()).collect())),
        urls: images.into_iter().map(|i| i.url).collect(),
    })
}
