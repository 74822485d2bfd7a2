//! Validating tool arguments against the tool's own JSON Schema.
//!
//! Why: `inputSchema` is generated from each tool's argument type (schemars), and the same
//! schema is what the arguments are checked against here, so what `list_tools` promises and
//! what a call is held to cannot drift apart. This covers the subset of JSON Schema that the
//! generated schemas use (type, properties, required, additionalProperties, minimum/maximum,
//! minLength/maxLength, enum, const, anyOf/oneOf, items, minItems/maxItems, local `$ref`);
//! other keywords are
//! ignored. Typed decoding with serde follows and catches anything this subset lets through.

use serde_json::{Map, Value};

use crate::protocol::frame::type_name;

/// The first place an argument breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the offending value, e.g. `temperature` or `relevant_files[2]`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// How deep `$ref`s and nesting are followed: generated schemas are shallow, and a bound keeps
/// a hostile value from costing more than a bounded walk.
const DEPTH_MAX: usize = 32;

/// Why arguments are refused: a string over the cap every argument is held to, or a place
/// where they break the schema. The cap wins: it is checked whatever the schema says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A string longer than the cap (`EXAI_ARG_STRING_CHARS_MAX`).
    TooLong {
        /// Path of the string, as [`longest_string_over`] names it.
        path: String,
        /// Its length in characters.
        chars: usize,
    },
    /// The first place the value breaks the schema.
    Violation(Violation),
}

/// Check `value` against `schema` (whose `$defs` resolve local refs).
pub fn validate(schema: &Value, value: &Value) -> Result<(), Violation> {
    let mut walk = Walk {
        root: schema,
        chars_max: usize::MAX,
        overlong_seen: false,
    };
    walk.check(schema, value, "", 0)
}

/// Check `value` against `schema` and hold every string in it to `chars_max` characters, in
/// one walk over the value when it is accepted. Why one entry point: the arguments of a call
/// are walked once before serde sees them, not once per rule. The answer is the same as
/// [`longest_string_over`] first, then [`validate`]: a refusal re-reads the value to name
/// the same string the separate scan would.
pub fn validate_within(schema: &Value, value: &Value, chars_max: usize) -> Result<(), Refusal> {
    let mut walk = Walk {
        root: schema,
        chars_max,
        overlong_seen: false,
    };
    let checked = walk.check(schema, value, "", 0);
    if checked.is_ok() && !walk.overlong_seen {
        return Ok(());
    }
    // Refused: the cap has priority, and names the string the separate scan names.
    if let Some((path, chars)) = longest_string_over(value, chars_max) {
        return Err(Refusal::TooLong { path, chars });
    }
    assert!(
        !walk.overlong_seen,
        "a string seen over the cap is found again by the scan"
    );
    checked.map_err(Refusal::Violation)
}

/// One validation walk: the schema it resolves refs in, and the string cap it applies on the
/// way. Every node of an accepted value is visited, by the schema check or, where the schema
/// does not descend, by [`Walk::scan`], so an accepted value with no string seen over the cap
/// has none.
struct Walk<'a> {
    /// The whole schema (`$defs`).
    root: &'a Value,
    /// The cap on every string, in characters.
    chars_max: usize,
    /// Whether a string over the cap was seen.
    overlong_seen: bool,
}

impl Walk<'_> {
    /// A string the schema checks: its length in characters, noted against the cap.
    fn string(&mut self, text: &str) -> usize {
        let chars = text.chars().count();
        if chars > self.chars_max {
            self.overlong_seen = true;
        }
        chars
    }

    /// Visit a part of the value the schema does not look into, for the cap only.
    fn scan(&mut self, value: &Value) {
        if self.overlong_seen || self.chars_max == usize::MAX {
            return;
        }
        match value {
            // Bytes bound characters from above: only count when it could matter.
            Value::String(text)
                if text.len() > self.chars_max && text.chars().count() > self.chars_max =>
            {
                self.overlong_seen = true;
            }
            Value::Array(items) => items.iter().for_each(|item| self.scan(item)),
            Value::Object(fields) => fields.values().for_each(|field| self.scan(field)),
            _ => {}
        }
    }

    fn check(
        &mut self,
        schema: &Value,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), Violation> {
        if depth > DEPTH_MAX {
            return Err(violation(
                path,
                format!("nests deeper than {DEPTH_MAX} levels"),
            ));
        }
        let Value::Object(rules) = schema else {
            self.scan(value);
            return Ok(()); // `true` schemas and anything unusual accept everything
        };
        if let Some(Value::String(reference)) = rules.get("$ref") {
            let target = resolve(self.root, reference).ok_or_else(|| {
                violation(
                    path,
                    format!("schema reference {reference} does not resolve"),
                )
            })?;
            return self.check(target, value, path, depth + 1);
        }
        self.check_value(rules, value, path, depth)
    }

    fn check_value(
        &mut self,
        rules: &Map<String, Value>,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), Violation> {
        check_kind(rules, value, path)?;
        self.check_choices(rules, value, path, depth)?;
        match value {
            Value::Number(number) => {
                check_number(rules, number.as_f64().unwrap_or(f64::NAN), path)?
            }
            Value::String(text) => {
                let chars = self.string(text);
                check_length(rules, chars, "characters", path, "minLength", "maxLength")?
            }
            Value::Array(items) => {
                check_length(rules, items.len(), "items", path, "minItems", "maxItems")?;
                match rules.get("items") {
                    Some(item_schema) => {
                        for (index, item) in items.iter().enumerate() {
                            self.check(item_schema, item, &format!("{path}[{index}]"), depth + 1)?;
                        }
                    }
                    None => self.scan(value),
                }
            }
            Value::Object(fields) => self.check_object(rules, fields, path, depth)?,
            Value::Null | Value::Bool(_) => {}
        }
        Ok(())
    }

    /// `anyOf` / `oneOf`: the first option that accepts the value wins.
    fn check_choices(
        &mut self,
        rules: &Map<String, Value>,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), Violation> {
        for keyword in ["anyOf", "oneOf"] {
            let Some(Value::Array(options)) = rules.get(keyword) else {
                continue;
            };
            let mut first_error = None;
            let mut matched = false;
            for option in options {
                match self.check(option, value, path, depth + 1) {
                    Ok(()) => {
                        matched = true;
                        break;
                    }
                    Err(err) => {
                        first_error.get_or_insert(err);
                    }
                }
            }
            if !matched {
                // A choice among constants (an enum with documented variants) says so.
                let constants: Option<Vec<String>> = options
                    .iter()
                    .map(|o| o.get("const").map(Value::to_string))
                    .collect();
                if let Some(constants) = constants.filter(|c| !c.is_empty()) {
                    return Err(violation(
                        path,
                        format!("must be one of {}", constants.join(", ")),
                    ));
                }
                return Err(first_error
                    .unwrap_or_else(|| violation(path, "matches no allowed form".to_string())));
            }
        }
        Ok(())
    }

    fn check_object(
        &mut self,
        rules: &Map<String, Value>,
        fields: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<(), Violation> {
        let properties = rules.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = rules.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    return Err(violation(&join(path, name), "is required".to_string()));
                }
            }
        }
        for (name, field_value) in fields {
            match properties.and_then(|p| p.get(name)) {
                Some(field_schema) => {
                    self.check(field_schema, field_value, &join(path, name), depth + 1)?
                }
                None => {
                    if rules.get("additionalProperties") == Some(&Value::Bool(false)) {
                        let known: Vec<&str> = properties
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        return Err(violation(
                            &join(path, name),
                            format!("is not a known argument (known: {})", known.join(", ")),
                        ));
                    }
                    self.scan(field_value);
                }
            }
        }
        Ok(())
    }
}

/// `type`, `const` and `enum`: what the value itself may be.
fn check_kind(rules: &Map<String, Value>, value: &Value, path: &str) -> Result<(), Violation> {
    if let Some(types) = rules.get("type")
        && !type_matches(types, value)
    {
        return Err(violation(
            path,
            format!(
                "expected {}, got {}",
                describe_types(types),
                type_name(value)
            ),
        ));
    }
    if let Some(expected) = rules.get("const")
        && value != expected
    {
        return Err(violation(path, format!("must be {expected}")));
    }
    if let Some(Value::Array(allowed)) = rules.get("enum")
        && !allowed.contains(value)
    {
        let choices: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        return Err(violation(
            path,
            format!("must be one of {}", choices.join(", ")),
        ));
    }
    Ok(())
}

fn check_number(rules: &Map<String, Value>, number: f64, path: &str) -> Result<(), Violation> {
    if !number.is_finite() {
        return Err(violation(path, "must be a finite number".to_string()));
    }
    if let Some(min) = rules.get("minimum").and_then(Value::as_f64)
        && number < min
    {
        return Err(violation(
            path,
            format!("must be at least {min}, got {number}"),
        ));
    }
    if let Some(max) = rules.get("maximum").and_then(Value::as_f64)
        && number > max
    {
        return Err(violation(
            path,
            format!("must be at most {max}, got {number}"),
        ));
    }
    Ok(())
}

fn check_length(
    rules: &Map<String, Value>,
    length: usize,
    unit: &str,
    path: &str,
    min_key: &str,
    max_key: &str,
) -> Result<(), Violation> {
    if let Some(min) = rules.get(min_key).and_then(Value::as_u64)
        && (length as u64) < min
    {
        return Err(violation(
            path,
            format!("must have at least {min} {unit}, got {length}"),
        ));
    }
    if let Some(max) = rules.get(max_key).and_then(Value::as_u64)
        && length as u64 > max
    {
        return Err(violation(
            path,
            format!("must have at most {max} {unit}, got {length}"),
        ));
    }
    Ok(())
}

fn type_matches(types: &Value, value: &Value) -> bool {
    match types {
        Value::String(name) => one_type_matches(name, value),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| one_type_matches(name, value)),
        _ => true,
    }
}

fn one_type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        _ => true,
    }
}

fn describe_types(types: &Value) -> String {
    match types {
        Value::String(name) => name.clone(),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_string(),
    }
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn violation(path: &str, message: String) -> Violation {
    Violation {
        path: if path.is_empty() {
            "arguments".to_string()
        } else {
            path.to_string()
        },
        message,
    }
}

/// The first string in `value` longer than `chars_max` characters: (path, length). A limit on
/// every argument, whatever its schema says, so no tool can be handed an unbounded string.
pub fn longest_string_over(value: &Value, chars_max: usize) -> Option<(String, usize)> {
    let mut stack: Vec<(&Value, String)> = vec![(value, String::new())];
    while let Some((value, path)) = stack.pop() {
        match value {
            // Bytes bound characters from above: only count when it could matter.
            Value::String(text) if text.len() > chars_max => {
                let chars = text.chars().count();
                if chars > chars_max {
                    let path = if path.is_empty() {
                        "arguments".to_string()
                    } else {
                        path
                    };
                    return Some((path, chars));
                }
            }
            Value::Array(items) => {
                stack.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v, format!("{path}[{i}]"))),
                );
            }
            Value::Object(fields) => {
                stack.extend(fields.iter().map(|(k, v)| (v, join(&path, k))));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_the_generated_subset() {
        let schema = json!({
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "minLength": 1, "maxLength": 5},
                "temperature": {"type": ["number", "null"], "minimum": 0.0, "maximum": 2.0},
                "files": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["prompt"],
            "additionalProperties": false
        });
        assert!(validate(&schema, &json!({"prompt": "hi"})).is_ok());
        let err = validate(&schema, &json!({})).unwrap_err();
        assert_eq!(err.path, "prompt");
        let err = validate(&schema, &json!({"prompt": "toolong"})).unwrap_err();
        assert!(err.message.contains("at most 5"));
        let err = validate(&schema, &json!({"prompt": "a", "temperature": 3})).unwrap_err();
        assert_eq!(err.path, "temperature");
        let err = validate(&schema, &json!({"prompt": "a", "files": ["x", 1]})).unwrap_err();
        assert_eq!(err.path, "files[1]");
        let err = validate(&schema, &json!({"prompt": "a", "bogus": 1})).unwrap_err();
        assert!(err.message.contains("not a known argument"));
        let err = validate(&schema, &json!({"prompt": 5})).unwrap_err();
        assert_eq!(err.message, "expected string, got a number");
        let choice = json!({
            "type": "object",
            "properties": {"stance": {"anyOf": [{"$ref": "#/$defs/S"}, {"type": "null"}]}},
            "$defs": {"S": {"oneOf": [
                {"const": "for", "type": "string"}, {"const": "against", "type": "string"}
            ]}}
        });
        assert!(validate(&choice, &json!({"stance": "for"})).is_ok());
        assert!(validate(&choice, &json!({"stance": null})).is_ok());
        let err = validate(&choice, &json!({"stance": "maybe"})).unwrap_err();
        assert_eq!(err.path, "stance");
        assert_eq!(err.message, "must be one of \"for\", \"against\"");
    }

    /// The reference `validate_within` must agree with: the scan first, then the schema.
    fn two_walks(schema: &Value, value: &Value, chars_max: usize) -> Result<(), Refusal> {
        if let Some((path, chars)) = longest_string_over(value, chars_max) {
            return Err(Refusal::TooLong { path, chars });
        }
        validate(schema, value).map_err(Refusal::Violation)
    }

    #[test]
    fn one_walk_answers_as_the_scan_then_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "minLength": 1},
                "files": {"type": "array", "items": {"type": "string"}},
                "loose": {"type": "array"},
                "pick": {"anyOf": [{"$ref": "#/$defs/P"}, {"type": "null"}]},
                "any": true
            },
            "required": ["prompt"],
            "$defs": {"P": {"type": "object", "properties": {"name": {"type": "string"}}}}
        });
        let long = "y".repeat(12);
        let values = [
            json!({"prompt": "ok"}),
            json!({"prompt": long}),
            json!({"prompt": 5, "extra": long}),
            json!({"extra": long}),
            json!({"prompt": "ok", "files": ["a", long, long]}),
            json!({"prompt": "ok", "loose": [[long]]}),
            json!({"prompt": "ok", "pick": {"name": long, "other": long}}),
            json!({"prompt": "ok", "pick": {"other": [long]}}),
            json!({"prompt": "ok", "any": {"deep": [long]}}),
            json!({"prompt": "", "z": long, "a": long}),
            json!({"prompt": "ok", "files": [1, long]}),
            json!({"prompt": "éééééééééééé"}),
            json!([long]),
        ];
        for value in &values {
            for chars_max in [0, 3, 11, 12, 100] {
                assert_eq!(
                    validate_within(&schema, value, chars_max),
                    two_walks(&schema, value, chars_max),
                    "{value} with a cap of {chars_max}"
                );
            }
        }
    }

    #[test]
    fn every_string_is_bounded() {
        let value = json!({"a": "ok", "files": ["x", "0123456789"]});
        assert_eq!(longest_string_over(&value, 10), None);
        assert_eq!(
            longest_string_over(&value, 9),
            Some(("files[1]".to_string(), 10))
        );
        // Characters, not bytes.
        assert_eq!(longest_string_over(&json!({"p": "ééé"}), 3), None);
    }
}
