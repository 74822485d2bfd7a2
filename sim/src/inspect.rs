//! What a simulated provider checks in every request it receives, from outside the daemon:
//! the files embedded in the call's message (markers, sizes, paths, the budget) and the tool
//! rounds it carries (how many, and that each answers the previous round's calls).
//!
//! Why at the provider: it sees exactly what a real provider would be sent, whatever the
//! daemon believes it sent. The checks are pure (no randomness, no journal lines unless an
//! invariant breaks), so adding them changes no seed's trace.

use exaid::provider::models::ModelTable;
use exaid::provider::{ChatRequest, Role};
use serde_json::Value;

use crate::journal::Invariant;

/// Bytes a token is estimated at when the file budget is derived (the daemon's own estimate,
/// restated here so the witness does not ask the daemon).
const BYTES_PER_TOKEN: u64 = 4;

/// What a request must obey, from the run's configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The model facts, corrected as the daemon's are (`EXAI_MODEL_FACTS`).
    pub table: ModelTable,
    /// `EXAI_FILE_CONTEXT_SHARE_PERCENT`.
    pub share_percent: u32,
    /// `EXAI_TOOL_ROUNDS_MAX`.
    pub rounds_max: u32,
    /// The only folder files may come from.
    pub root: &'static str,
}

/// One file found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The path its markers name.
    pub path: String,
    /// The size its BEGIN marker declares.
    pub declared_bytes: u64,
    /// The size of what stands between its markers (line numbers taken off).
    pub bytes: u64,
}

impl Rules {
    /// The rules of a run's configuration.
    pub fn of(config: &exaid::config::Config, root: &'static str) -> Rules {
        Rules {
            table: ModelTable::new(&config.models.facts),
            share_percent: config.file_access.context_share_percent,
            rounds_max: config.tools.tool_rounds_max,
            root,
        }
    }

    /// The byte budget of one call to `model`.
    pub fn budget_bytes(&self, model: &str) -> u64 {
        let tokens = self.table.facts(model).context_tokens;
        tokens * u64::from(self.share_percent) / 100 * BYTES_PER_TOKEN
    }

    /// Every broken rule in `request`.
    pub fn inspect(&self, request: &ChatRequest) -> Vec<(Invariant, String)> {
        let mut broken = Vec::new();
        // The call's own files are in its last user message (earlier turns carry theirs,
        // each within the budget of the model that call used).
        if let Some(asked) = request.messages.iter().rev().find(|m| m.role == Role::User) {
            match files_in(&asked.content) {
                Ok(seen) => self.check_files(&request.model, &seen, &mut broken),
                Err(why) => broken.push((Invariant::EmbeddedWithinBudget, why)),
            }
        }
        if let Err(why) = self.check_rounds(request) {
            broken.push((Invariant::ToolRoundsBounded, why));
        }
        broken
    }

    fn check_files(&self, model: &str, seen: &[Seen], broken: &mut Vec<(Invariant, String)>) {
        let budget = self.budget_bytes(model);
        let total: u64 = seen.iter().map(|s| s.declared_bytes).sum();
        if total > budget {
            let why = format!("{total} bytes of files sent to {model}, budget {budget}");
            broken.push((Invariant::EmbeddedWithinBudget, why));
        }
        for file in seen {
            // The render ends a file without a final newline with one.
            let fits = file.bytes == file.declared_bytes || file.bytes == file.declared_bytes + 1;
            if !fits {
                let why = format!(
                    "{} declared {} bytes, {} stand between its markers",
                    file.path, file.declared_bytes, file.bytes
                );
                broken.push((Invariant::EmbeddedWithinBudget, why));
            }
            if !std::path::Path::new(&file.path).starts_with(self.root) {
                let why = format!("{} was sent, outside the root {}", file.path, self.root);
                broken.push((Invariant::FilesWithinRoots, why));
            }
        }
    }

    /// The rounds a request carries: fewer than the limit (the request itself is one more),
    /// each tool message answering a call of the assistant message before it with that
    /// call's own arguments, and none unless web search was offered.
    fn check_rounds(&self, request: &ChatRequest) -> Result<(), String> {
        let rounds_done = request
            .tool_turns
            .iter()
            .filter(|t| t["role"] == "assistant")
            .count() as u32;
        if rounds_done >= self.rounds_max {
            return Err(format!(
                "round {} sent, limit {}",
                rounds_done + 1,
                self.rounds_max
            ));
        }
        if rounds_done > 0 && !request.web_search {
            return Err("tool rounds without web search offered".to_string());
        }
        if request.web_search && !self.table.facts(&request.model).web_search {
            return Err(format!(
                "web search offered to {}, whose facts say no",
                request.model
            ));
        }
        let mut calls: Vec<&Value> = Vec::new();
        for turn in &request.tool_turns {
            if turn["role"] == "assistant" {
                calls = turn["tool_calls"]
                    .as_array()
                    .map(|c| c.iter().collect())
                    .unwrap_or_default();
                continue;
            }
            let id = &turn["tool_call_id"];
            let Some(call) = calls.iter().find(|c| c["id"] == *id) else {
                return Err(format!(
                    "a tool message answers {id}, which no call of its round made"
                ));
            };
            if turn["content"] != call["function"]["arguments"] {
                return Err(format!("the answer to {id} does not echo its arguments"));
            }
        }
        Ok(())
    }
}

/// The files embedded in a message, or why its markers are broken.
pub fn files_in(content: &str) -> Result<Vec<Seen>, String> {
    let mut seen = Vec::new();
    let mut open: Option<Seen> = None;
    for line in content.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if let Some(rest) = bare.strip_prefix("--- BEGIN FILE: ") {
            if let Some(file) = &open {
                return Err(format!(
                    "{} has no END marker before the next file",
                    file.path
                ));
            }
            open = Some(begin(rest)?);
        } else if let Some(rest) = bare.strip_prefix("--- END FILE: ") {
            let Some(file) = open.take() else {
                return Err(format!("an END marker for {rest} without its BEGIN"));
            };
            if rest.trim_end_matches(" ---") != file.path {
                return Err(format!("{} ends with the marker of {rest}", file.path));
            }
            seen.push(file);
        } else if let Some(file) = &mut open {
            file.bytes += unnumbered(line).len() as u64;
        }
    }
    match open {
        Some(file) => Err(format!("{} has no END marker", file.path)),
        None => Ok(seen),
    }
}

/// A BEGIN marker's rest: `path (N bytes) ---`.
fn begin(rest: &str) -> Result<Seen, String> {
    let malformed = || format!("a malformed BEGIN marker: {rest}");
    let rest = rest.strip_suffix(" bytes) ---").ok_or_else(malformed)?;
    let (path, bytes) = rest.rsplit_once(" (").ok_or_else(malformed)?;
    let declared_bytes = bytes.parse().map_err(|_| malformed())?;
    Ok(Seen {
        path: path.to_string(),
        declared_bytes,
        bytes: 0,
    })
}

/// A line without the workflow experts' `    12 | ` prefix, if it has one.
fn unnumbered(line: &str) -> &str {
    let Some((number, rest)) = line.split_once(" | ") else {
        return line;
    };
    let numbered = number.len() >= 5 && number.trim_start().chars().all(|c| c.is_ascii_digit());
    if numbered && !number.trim_start().is_empty() {
        rest
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_sizes_and_numbers_are_read_back() {
        let plain =
            "intro\n--- BEGIN FILE: /p/a.rs (6 bytes) ---\nfn a()\n--- END FILE: /p/a.rs ---\n";
        let seen = files_in(plain).unwrap();
        assert_eq!(seen[0].path, "/p/a.rs");
        assert_eq!((seen[0].declared_bytes, seen[0].bytes), (6, 7));
        let numbered = "--- BEGIN FILE: /p/b.rs (4 bytes) ---\n    1 | ab\n    2 | c\n--- END FILE: /p/b.rs ---\n";
        assert_eq!(files_in(numbered).unwrap()[0].bytes, 5);
        assert!(files_in("--- BEGIN FILE: /p/c.rs (1 bytes) ---\nx\n").is_err());
        assert!(files_in("--- END FILE: /p/c.rs ---\n").is_err());
    }

    fn rules(rounds_max: u32) -> Rules {
        let searching = exaid::config::FactsOverride {
            model: "m".to_string(),
            context_tokens: Some(8_192),
            vision: None,
            web_search: Some(true),
            thinking: None,
            price_in_micro_usd: None,
            price_out_micro_usd: None,
        };
        Rules {
            table: ModelTable::new(&[searching]),
            share_percent: 10,
            rounds_max,
            root: "/p",
        }
    }

    fn asking(files: &str, tool_turns: Vec<Value>) -> ChatRequest {
        ChatRequest {
            model: "m".to_string(),
            messages: vec![exaid::provider::ChatMessage::new(Role::User, files)],
            web_search: true,
            tool_turns,
            ..ChatRequest::default()
        }
    }

    #[test]
    fn budget_roots_and_rounds_are_witnessed() {
        let rules = rules(2);
        assert_eq!(rules.budget_bytes("m"), 8_192 / 10 * 4);
        let call = serde_json::json!({"id": "c1", "function": {"arguments": "{}"}});
        let round = vec![
            serde_json::json!({"role": "assistant", "tool_calls": [call]}),
            serde_json::json!({"role": "tool", "tool_call_id": "c1", "content": "{}"}),
        ];
        assert!(rules.inspect(&asking("hi", round.clone())).is_empty());
        let mut wrong_echo = round.clone();
        wrong_echo[1]["content"] = serde_json::json!("other");
        let broken = rules.inspect(&asking("hi", wrong_echo));
        assert_eq!(broken[0].0, Invariant::ToolRoundsBounded);
        let too_many = [round.clone(), round].concat();
        let broken = rules.inspect(&asking("hi", too_many));
        assert!(broken[0].1.contains("round 3 sent, limit 2"), "{broken:?}");
        let outside = "--- BEGIN FILE: /etc/x (1 bytes) ---\nx\n--- END FILE: /etc/x ---\n";
        let broken = rules.inspect(&asking(outside, Vec::new()));
        assert_eq!(broken[0].0, Invariant::FilesWithinRoots);
        let big = format!(
            "--- BEGIN FILE: /p/a (4000 bytes) ---\n{}\n--- END FILE: /p/a ---\n",
            "x".repeat(3999)
        );
        let broken = rules.inspect(&asking(&big, Vec::new()));
        assert_eq!(broken[0].0, Invariant::EmbeddedWithinBudget, "{broken:?}");
    }
}
