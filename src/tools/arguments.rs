//! A call's arguments, from the JSON the client sent to the tool's typed argument struct.
//!
//! Why one entry point: every tool's arguments go through the same three rules, in this
//! order, and every refusal is a `VALIDATION_ERROR` whose `details.field` names the argument:
//! 1. no string anywhere longer than `EXAI_ARG_STRING_CHARS_MAX` characters, whatever the
//!    schema says (no tool can be handed an unbounded string);
//! 2. the tool's own JSON Schema (the one `list_tools` shows), so what is promised and what
//!    is enforced cannot drift apart;
//! 3. typed decoding with serde, which catches what the schema subset lets through.
//!
//! Rules 1 and 2 are one walk over the value (`schema::validate_within`), and decoding is
//! the second and last.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::{CallError, ErrorCode};
use crate::tools::schema::{self, Refusal};

/// Check `arguments` for `tool` against the string cap and `schema`, then decode them.
pub fn parse<T: DeserializeOwned>(
    tool: &str,
    schema: &Value,
    arguments: Map<String, Value>,
    chars_max: usize,
) -> Result<T, CallError> {
    let value = Value::Object(arguments);
    match schema::validate_within(schema, &value, chars_max) {
        Ok(()) => {}
        Err(Refusal::TooLong { path, chars }) => return Err(too_long(&path, chars, chars_max)),
        Err(Refusal::Violation(violation)) => {
            return Err(CallError::new(
                ErrorCode::ValidationError,
                format!("{tool}: argument {} {}", violation.path, violation.message),
            )
            .with_details(json!({ "field": violation.path })));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        CallError::new(
            ErrorCode::ValidationError,
            format!("{tool}: argument {path}: {}", err.inner()),
        )
        .with_details(json!({ "field": path }))
    })
}

/// Rule 1 alone, for arguments no tool will read (a call naming an unknown tool is refused
/// for an over-long string first, as it always was).
pub fn check_strings(arguments: &Map<String, Value>, chars_max: usize) -> Result<(), CallError> {
    let value = Value::Object(arguments.clone());
    match schema::longest_string_over(&value, chars_max) {
        Some((path, chars)) => Err(too_long(&path, chars, chars_max)),
        None => Ok(()),
    }
}

fn too_long(path: &str, chars: usize, chars_max: usize) -> CallError {
    CallError::new(
        ErrorCode::ValidationError,
        format!(
            "argument {path} is {chars} characters, the limit is {chars_max} (EXAI_ARG_STRING_CHARS_MAX)"
        ),
    )
    .with_details(json!({ "field": path }))
}
