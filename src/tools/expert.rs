//! The expert's answer: asked for as one JSON object (`status` and the tool's fields, as the
//! tool's prompt in `tools/prompts/` says), read back leniently, and handed to the calling
//! agent both parsed and raw.
//!
//! Why lenient: models wrap JSON in code fences, put a sentence before it, or stop halfway.
//! A parse failure loses nothing: the raw text goes back with the reason (`parse_error`), so
//! the agent can still read the analysis. Pure: tests pin every shape without a server.

use serde_json::{Value, json};

/// The status the expert sets when it needs files it was not shown.
pub const FILES_REQUIRED: &str = "files_required_to_continue";

/// Most `files_needed` entries passed on to the agent.
pub const FILES_NEEDED_MAX: usize = 100;

/// The expert's JSON object in `text`: the whole text, the inside of a code fence, or the
/// first complete object after leading prose. It must have a string `status`.
pub fn parse(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the expert's answer is empty".to_string());
    }
    let candidate = unfenced(trimmed).unwrap_or(trimmed);
    let value = first_object(candidate)
        .ok_or_else(|| "the expert's answer holds no complete JSON object".to_string())?;
    match value.get("status") {
        Some(Value::String(status)) if !status.trim().is_empty() => Ok(value),
        Some(_) => Err("the expert's JSON object has a status that is not a text".to_string()),
        None => Err("the expert's JSON object has no status".to_string()),
    }
}

/// The inside of the first ``` fence (with or without a language tag), if the text has one.
fn unfenced(text: &str) -> Option<&str> {
    let start = text.find("```")?;
    let after = &text[start + 3..];
    let body_start = after.find('\n').map_or(0, |i| i + 1);
    let body = &after[body_start..];
    let end = body.find("```")?;
    Some(body[..end].trim())
}

/// The first `{` from which a whole JSON object parses.
fn first_object(text: &str) -> Option<Value> {
    text.match_indices('{').find_map(|(at, _)| {
        let mut stream = serde_json::Deserializer::from_str(&text[at..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) if value.is_object() => Some(value),
            _ => None,
        }
    })
}

/// What a parsed answer asks of the agent when the expert needs files: the paths and the
/// instructions, or `None` for any other status.
pub fn files_required(parsed: &Value) -> Option<(Vec<String>, String)> {
    if parsed["status"] != FILES_REQUIRED {
        return None;
    }
    let files: Vec<String> = parsed["files_needed"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let instructions = parsed["mandatory_instructions"]
        .as_str()
        .unwrap_or("The expert needs more files to continue.")
        .to_string();
    Some((
        files.into_iter().take(FILES_NEEDED_MAX).collect(),
        instructions,
    ))
}

/// The result's `expert_analysis`: the parsed object's status and the object itself, and the
/// raw text; or the raw text and why it did not parse.
pub fn analysis_block(text: &str) -> Value {
    match parse(text) {
        Ok(parsed) => json!({
            "status": parsed["status"].clone(),
            "parsed": parsed,
            "raw_analysis": text,
        }),
        Err(why) => json!({
            "status": "analysis_complete",
            "raw_analysis": text,
            "parse_error": why,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fenced_and_prefaced_objects_parse() {
        let object = r#"{"status": "analysis_complete", "summary": "ok"}"#;
        for text in [
            object.to_string(),
            format!("```json\n{object}\n```"),
            format!("```\n{object}\n```\nHope this helps."),
            format!("Here is my analysis:\n\n{object}\nDone."),
            format!("Note {{braces}} first. {object}"),
        ] {
            let parsed = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed["summary"], "ok", "{text}");
        }
    }

    #[test]
    fn broken_answers_say_why() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(
            parse("no json here")
                .unwrap_err()
                .contains("no complete JSON")
        );
        assert!(
            parse(r#"{"status": "analysis_complete", "summary": "cut of"#)
                .unwrap_err()
                .contains("no complete JSON")
        );
        assert!(
            parse(r#"{"summary": "x"}"#)
                .unwrap_err()
                .contains("no status")
        );
        assert!(
            parse(r#"{"status": 3}"#)
                .unwrap_err()
                .contains("not a text")
        );
        let block = analysis_block("plain prose");
        assert_eq!(block["raw_analysis"], "plain prose");
        assert!(block["parse_error"].is_string());
        assert!(block.get("parsed").is_none());
    }

    #[test]
    fn files_required_names_the_files_and_instructions() {
        let parsed = parse(
            r#"{"status": "files_required_to_continue", "files_needed": ["/p/a.rs", 7],
                "mandatory_instructions": "send a.rs"}"#,
        )
        .unwrap();
        let (files, instructions) = files_required(&parsed).unwrap();
        assert_eq!(files, ["/p/a.rs"]);
        assert_eq!(instructions, "send a.rs");
        let done = parse(r#"{"status": "analysis_complete"}"#).unwrap();
        assert!(files_required(&done).is_none());
        let block = analysis_block(r#"{"status": "no_bug_found", "summary": "fine"}"#);
        assert_eq!(block["status"], "no_bug_found");
        assert_eq!(block["parsed"]["summary"], "fine");
    }
}
