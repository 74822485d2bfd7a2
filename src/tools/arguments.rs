//! A call's arguments, from the JSON the client sent to the tool's typed argument struct.
//!
//! Why one entry point: every tool's arguments go through the same four rules, in this
//! order, and every refusal is a `VALIDATION_ERROR` whose `details.field` names the argument:
//! 1. no string anywhere longer than `EXAI_ARG_STRING_CHARS_MAX` characters, whatever the
//!    schema says (no tool can be handed an unbounded string);
//! 2. no top-level argument the tool does not know: nothing a client sends is dropped in
//!    silence (the names it knows are its schema's properties, see [`Names`]);
//! 3. the tool's own JSON Schema (the one `list_tools` shows), so what is promised and what
//!    is enforced cannot drift apart;
//! 4. typed decoding with serde, which catches what the schema subset lets through.
//!
//! Rules 1 and 3 are one walk over the value (`schema::validate_within`), rule 2 a look at
//! the top-level names, and decoding is the second and last walk. What the tool accepts and
//! does not use ([`crate::tools::ignored`]) is reported back with the decoded arguments, for
//! the result's `metadata.ignored_arguments`.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::{CallError, ErrorCode};
use crate::tools::ignored::Ignored;
use crate::tools::schema::{self, Refusal};

/// Longest unknown name echoed back, in characters: a refusal stays small whatever was sent.
pub const NAME_CHARS_MAX: usize = 64;
/// Longest list of accepted names in a refusal, in characters (the rest are counted).
pub const ACCEPTED_CHARS_MAX: usize = 400;

/// The top-level argument names of one tool: every property of its schema (what its `Args`
/// type reads and what it accepts unused), and which of them it ignores. Built once per
/// tool, with its schema.
#[derive(Debug, Clone)]
pub struct Names {
    /// Every accepted name, sorted (as a refusal lists them).
    accepted: Vec<String>,
    /// The accepted names the tool does not use.
    ignored: &'static [Ignored],
}

impl Names {
    /// The names of `schema`'s top-level properties, of which `ignored` are unused.
    pub fn new(schema: &Value, ignored: &'static [Ignored]) -> Names {
        let mut accepted: Vec<String> = schema["properties"]
            .as_object()
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        accepted.sort();
        for entry in ignored {
            assert!(
                accepted.iter().any(|name| name == entry.name),
                "ignored argument {} is not in the schema",
                entry.name
            );
        }
        Names { accepted, ignored }
    }

    /// Whether the tool accepts `name`.
    pub fn accepts(&self, name: &str) -> bool {
        self.accepted
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok()
    }

    /// The accepted names the tool does not use.
    pub fn ignored(&self) -> &'static [Ignored] {
        self.ignored
    }
}

/// Decoded arguments, with the accepted-but-unused ones the call sent.
#[derive(Debug)]
pub struct Parsed<T> {
    /// The tool's typed arguments.
    pub args: T,
    /// Names the call sent that the tool accepts and does not use, in the table's order.
    pub ignored: Vec<&'static str>,
}

/// Check `arguments` for `tool` against the string cap, its `names` and `schema`, then
/// decode them.
pub fn parse<T: DeserializeOwned>(
    tool: &str,
    schema: &Value,
    names: &Names,
    arguments: Map<String, Value>,
    chars_max: usize,
) -> Result<Parsed<T>, CallError> {
    let value = Value::Object(arguments);
    let checked = schema::validate_within(schema, &value, chars_max);
    if let Err(Refusal::TooLong { path, chars }) = checked {
        return Err(too_long(&path, chars, chars_max));
    }
    let Value::Object(arguments) = &value else {
        unreachable!("arguments are an object")
    };
    if let Some(name) = arguments.keys().find(|name| !names.accepts(name)) {
        return Err(unknown(tool, name, names));
    }
    if let Err(Refusal::Violation(violation)) = checked {
        return Err(CallError::new(
            ErrorCode::ValidationError,
            format!("{tool}: argument {} {}", violation.path, violation.message),
        )
        .with_details(json!({ "field": violation.path })));
    }
    let ignored = names
        .ignored()
        .iter()
        .filter(|entry| arguments.contains_key(entry.name))
        .map(|entry| entry.name)
        .collect();
    let args = serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        CallError::new(
            ErrorCode::ValidationError,
            format!("{tool}: argument {path}: {}", err.inner()),
        )
        .with_details(json!({ "field": path }))
    })?;
    Ok(Parsed { args, ignored })
}

/// The refusal of an argument `tool` does not know, naming it (bounded) and what it accepts.
fn unknown(tool: &str, name: &str, names: &Names) -> CallError {
    let shown = bounded_name(name);
    CallError::new(
        ErrorCode::ValidationError,
        format!(
            "{tool}: argument {shown} is unknown to this tool (it accepts: {})",
            bounded_list(&names.accepted, ACCEPTED_CHARS_MAX)
        ),
    )
    .with_details(json!({ "field": shown }))
}

/// `name`, cut to [`NAME_CHARS_MAX`] characters (marked with `...` when cut).
fn bounded_name(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS_MAX {
        return name.to_string();
    }
    let mut cut: String = name.chars().take(NAME_CHARS_MAX).collect();
    cut.push_str("...");
    cut
}

/// `names` joined with commas, as many as fit in `chars_max` characters, then how many more.
fn bounded_list(names: &[String], chars_max: usize) -> String {
    let mut text = String::new();
    for (shown, name) in names.iter().enumerate() {
        let separator = if shown == 0 { "" } else { ", " };
        if text.len() + separator.len() + name.len() > chars_max {
            return format!("{text} and {} more", names.len() - shown);
        }
        text.push_str(separator);
        text.push_str(name);
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ignored::{self, Shape};
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Args {
        prompt: String,
    }

    const UNUSED: &[Ignored] = &[Ignored {
        name: "files",
        shape: Shape::Texts,
        in_args: false,
    }];

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {"prompt": {"type": "string"}, "files": ignored::Shape::Texts.schema()},
            "required": ["prompt"]
        })
    }

    fn run(arguments: Value) -> Result<Parsed<Args>, CallError> {
        let schema = schema();
        let names = Names::new(&schema, UNUSED);
        let Value::Object(arguments) = arguments else {
            panic!("an object")
        };
        parse("chat", &schema, &names, arguments, 10)
    }

    #[test]
    fn an_unknown_argument_is_refused_naming_it_and_what_is_accepted() {
        let err = run(json!({"prompt": "hi", "promt": "hi"})).unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError);
        assert_eq!(err.details, Some(json!({"field": "promt"})));
        assert_eq!(
            err.message,
            "chat: argument promt is unknown to this tool (it accepts: files, prompt)"
        );
        // Before the schema: a misspelt required argument is named as sent.
        let err = run(json!({"promt": "hi"})).unwrap_err();
        assert_eq!(err.details, Some(json!({"field": "promt"})));
        // After the string cap, which wins whatever the names.
        let err = run(json!({"prompt": "hi", "promt": "x".repeat(11)})).unwrap_err();
        assert!(
            err.message.contains("EXAI_ARG_STRING_CHARS_MAX"),
            "{}",
            err.message
        );
    }

    #[test]
    fn accepted_unused_arguments_are_reported() {
        let parsed = run(json!({"prompt": "hi", "files": ["a"]})).unwrap();
        assert_eq!(parsed.args.prompt, "hi");
        assert_eq!(parsed.ignored, ["files"]);
        let parsed = run(json!({"prompt": "hi"})).unwrap();
        assert!(parsed.ignored.is_empty());
        // Still checked against their shape.
        let err = run(json!({"prompt": "hi", "files": "a"})).unwrap_err();
        assert_eq!(err.details, Some(json!({"field": "files"})));
    }

    #[test]
    fn refusals_stay_bounded() {
        let long = "n".repeat(1000);
        assert_eq!(bounded_name(&long).chars().count(), NAME_CHARS_MAX + 3);
        assert_eq!(bounded_name("short"), "short");
        let names: Vec<String> = (0..200).map(|i| format!("argument_{i}")).collect();
        let list = bounded_list(&names, ACCEPTED_CHARS_MAX);
        assert!(list.len() < ACCEPTED_CHARS_MAX + 20, "{list}");
        assert!(list.ends_with("more"), "{list}");
        let few = ["a".to_string(), "b".to_string()];
        assert_eq!(bounded_list(&few, ACCEPTED_CHARS_MAX), "a, b");
    }
}
