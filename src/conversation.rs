//! Conversation memory: what a `continuation_id` remembers.
//!
//! Why: clients continue a conversation across calls and across tools (a `chat` after a
//! `debug` investigation sees the investigation), and workflow tools keep their steps here
//! between the caller's calls, as the original did. The original kept threads in an unbounded
//! dictionary; here everything is bounded: conversations kept (`EXAI_CONVERSATIONS_MAX`,
//! least recently used evicted first), turns and bytes per conversation
//! (`EXAI_CONVERSATION_TURNS_MAX`, `EXAI_CONVERSATION_BYTES_MAX`, oldest turns dropped first)
//! and idle time (`EXAI_CONVERSATION_TTL_SECS`). Nothing is dropped silently: every
//! conversation counts the turns it lost, and tools say so in their output.
//!
//! Time comes from the caller (the runtime seam), ids from the daemon's seeded generator, so
//! the store behaves identically under the simulator. It is a `BTreeMap` behind one lock:
//! iteration order is stable and every operation is short.
//!
//! Conversations outlive the process: with a [`Durable`] writer, every change of a
//! conversation queues its whole record (its turns as JSON), and an evicted or expired one is
//! deleted; at start-up [`ConversationStore::restore`] loads them back. A restored
//! conversation's idle time starts again at the restart.
//!
//! What the store holds is counted against the daemon's memory budget (`memory`): every
//! time the store's lock is let go, the sum of its conversations' bytes is counted again and
//! the budget moved by the difference, so the count follows every path that changes a
//! conversation (turns added or dropped, steps replaced, conversations evicted or expired).

use std::collections::{BTreeMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::config::profile::BUILTIN_TOOL_NAMES;
use crate::config::{ConversationSettings, key};
use crate::durable::Durable;
use crate::error::{CallError, ErrorCode};
use crate::memory::MemoryBudget;
use crate::provider::{ChatMessage, Role};
use crate::rt::Instant;
use crate::rt::store::{Record, RecordKind};

/// The store's bounds, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationLimits {
    /// Conversations kept at once (`EXAI_CONVERSATIONS_MAX`).
    pub conversations_max: usize,
    /// Turns kept per conversation (`EXAI_CONVERSATION_TURNS_MAX`).
    pub turns_max: usize,
    /// Bytes kept per conversation (`EXAI_CONVERSATION_BYTES_MAX`); a single turn larger
    /// than this is kept alone (it is itself bounded by the frame size limit).
    pub bytes_max: usize,
    /// How long an untouched conversation is kept (`EXAI_CONVERSATION_TTL_SECS`).
    pub ttl: Duration,
}

impl From<&ConversationSettings> for ConversationLimits {
    fn from(settings: &ConversationSettings) -> ConversationLimits {
        ConversationLimits {
            conversations_max: settings.conversations_max as usize,
            turns_max: settings.turns_max as usize,
            bytes_max: settings.bytes_max,
            ttl: Duration::from_millis(settings.ttl_ms),
        }
    }
}

/// A workflow issue as the caller reported it (`issues_found` items).
pub type IssueRecord = Value;

/// A built-in tool's name. Written as an alias so that serde does not borrow it from the
/// input (it does for a field spelled `&str`); [`known_tool`] reads it back instead.
pub type ToolName = &'static str;

/// A tool's name read back from the state file: one of the built-in tools (a record naming
/// another is refused, so a damaged file cannot make up names).
fn known_tool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'static str, D::Error> {
    let name = String::deserialize(deserializer)?;
    BUILTIN_TOOL_NAMES
        .iter()
        .copied()
        .find(|known| *known == name)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown tool {name:?}")))
}

/// One step of a workflow investigation, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The workflow tool that recorded it: steps of one tool form one investigation.
    #[serde(deserialize_with = "known_tool")]
    pub tool: ToolName,
    /// Its number, 1-based.
    pub step_number: u32,
    /// The caller's estimate of steps in all, when it was recorded.
    pub total_steps: u32,
    /// What the caller did or plans in this step.
    pub step: String,
    /// What the caller found.
    pub findings: String,
    /// Files the caller looked at.
    pub files_checked: Vec<String>,
    /// Files that matter to the answer.
    pub relevant_files: Vec<String>,
    /// Functions, methods or places that matter.
    pub relevant_context: Vec<String>,
    /// Issues found, as reported (objects with severity and description).
    pub issues_found: Vec<IssueRecord>,
    /// How sure the caller was (`exploring` ... `certain`), if said.
    pub confidence: Option<String>,
    /// The caller's current theory, if any.
    pub hypothesis: Option<String>,
    /// Tool-specific options sent with the step (e.g. consensus models), as JSON.
    pub options: Value,
}

impl StepRecord {
    /// The step as one text block, for a model's context.
    pub fn render(&self) -> String {
        let mut text = format!(
            "[{} step {} of {}]\nStep: {}",
            self.tool, self.step_number, self.total_steps, self.step
        );
        if !self.findings.is_empty() {
            text.push_str(&format!("\nFindings: {}", self.findings));
        }
        if let Some(hypothesis) = &self.hypothesis {
            text.push_str(&format!("\nHypothesis: {hypothesis}"));
        }
        if let Some(confidence) = &self.confidence {
            text.push_str(&format!("\nConfidence: {confidence}"));
        }
        for (label, items) in [
            ("Files checked", &self.files_checked),
            ("Relevant files", &self.relevant_files),
            ("Relevant context", &self.relevant_context),
        ] {
            if !items.is_empty() {
                text.push_str(&format!("\n{label}: {}", items.join(", ")));
            }
        }
        for issue in &self.issues_found {
            text.push_str(&format!("\nIssue: {}", describe_issue(issue)));
        }
        text
    }
}

/// An issue object as one line: `[SEVERITY] description`, or its JSON if it has neither.
pub fn describe_issue(issue: &Value) -> String {
    let severity = issue.get("severity").and_then(Value::as_str);
    let description = issue.get("description").and_then(Value::as_str);
    match (severity, description) {
        (Some(severity), Some(description)) => {
            format!("[{}] {description}", severity.to_ascii_uppercase())
        }
        (None, Some(description)) => description.to_string(),
        _ => issue.to_string(),
    }
}

/// What a turn holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnBody {
    /// Plain text: a prompt or a model's answer.
    Text(String),
    /// A workflow step (boxed: a step is much larger than a string handle).
    Step(Box<StepRecord>),
}

/// A file whose contents a turn carries, by path and content digest: a later call of the
/// conversation that names the same unchanged file refers to this turn instead of sending
/// the file again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    /// The file, as the caller named it (normalised).
    pub path: std::path::PathBuf,
    /// A digest of its contents when the turn embedded it.
    pub digest: String,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Who said it: the caller (`User`) or a model (`Assistant`).
    pub role: Role,
    /// The tool the turn came through.
    #[serde(deserialize_with = "known_tool")]
    pub tool: ToolName,
    /// What was said.
    pub body: TurnBody,
    /// The files whose contents the body carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileMark>,
    /// The model that answered, on an answer's turn: an `auto` call that continues the
    /// conversation keeps it (a conversation should not change voice between calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Turn {
    /// A text turn.
    pub fn text(role: Role, tool: &'static str, content: String) -> Turn {
        Turn {
            role,
            tool,
            body: TurnBody::Text(content),
            files: Vec::new(),
            model: None,
        }
    }

    /// The same turn, answered by `model`.
    pub fn answered_by(mut self, model: impl Into<String>) -> Turn {
        self.model = Some(model.into());
        self
    }

    /// The same turn, carrying the contents of `files`.
    pub fn with_files(mut self, files: Vec<FileMark>) -> Turn {
        self.files = files;
        self
    }

    /// The turn as a chat message for a model.
    pub fn to_message(&self) -> ChatMessage {
        let content = match &self.body {
            TurnBody::Text(text) if self.role == Role::User && self.tool != "chat" => {
                format!("[{}] {text}", self.tool)
            }
            TurnBody::Text(text) => text.clone(),
            TurnBody::Step(step) => step.render(),
        };
        ChatMessage::new(self.role, content)
    }

    /// The step, if the turn is one.
    pub fn step(&self) -> Option<&StepRecord> {
        match &self.body {
            TurnBody::Step(step) => Some(step),
            TurnBody::Text(_) => None,
        }
    }

    /// Bytes the turn costs against `EXAI_CONVERSATION_BYTES_MAX`: its text, or its step
    /// serialized (what it would take to send it anywhere).
    fn bytes(&self) -> usize {
        match &self.body {
            TurnBody::Text(text) => text.len(),
            TurnBody::Step(step) => serde_json::to_string(step).map_or(0, |s| s.len()),
        }
    }
}

/// A conversation as the state file keeps it (written borrowed, read owned).
#[derive(Serialize)]
struct KeptRef<'a> {
    /// Its turns, oldest first.
    turns: &'a VecDeque<Turn>,
    /// Turns it dropped, ever.
    turns_dropped: u64,
}

/// A conversation read back from the state file.
#[derive(Deserialize)]
struct Kept {
    /// Its turns, oldest first.
    turns: VecDeque<Turn>,
    /// Turns it dropped, ever.
    turns_dropped: u64,
}

/// What [`ConversationStore::restore`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// Conversations loaded back.
    pub restored: usize,
    /// Records past their TTL, or beyond `EXAI_CONVERSATIONS_MAX`, forgotten.
    pub forgotten: usize,
    /// Records that could not be read (logged, forgotten).
    pub unreadable: usize,
}

/// One conversation.
#[derive(Debug, Clone)]
struct Conversation {
    /// Turns, oldest first.
    turns: VecDeque<Turn>,
    /// Sum of the turns' bytes.
    bytes: usize,
    /// Turns dropped to stay within the turn and byte limits, ever.
    turns_dropped: u64,
    /// Last time a call read or wrote it: the TTL runs from here.
    touched_at: Instant,
}

impl Conversation {
    /// A conversation read back from the state file, within today's limits (which may be
    /// smaller than when it was written), its idle time starting now.
    fn restored(kept: Kept, now: Instant, limits: &ConversationLimits) -> Conversation {
        let mut conversation = Conversation::new(now);
        conversation.turns_dropped = kept.turns_dropped;
        for turn in kept.turns {
            conversation.push(turn, limits);
        }
        conversation
    }

    fn new(now: Instant) -> Conversation {
        Conversation {
            turns: VecDeque::new(),
            bytes: 0,
            turns_dropped: 0,
            touched_at: now,
        }
    }

    fn push(&mut self, turn: Turn, limits: &ConversationLimits) {
        self.bytes += turn.bytes();
        self.turns.push_back(turn);
        while self.turns.len() > limits.turns_max
            || (self.bytes > limits.bytes_max && self.turns.len() > 1)
        {
            let Some(oldest) = self.turns.pop_front() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(oldest.bytes());
            self.turns_dropped += 1;
        }
    }

    fn history(&self, limits: &ConversationLimits) -> History {
        History {
            turns: self.turns.len(),
            turns_max: limits.turns_max,
            bytes: self.bytes,
            turns_dropped: self.turns_dropped,
        }
    }
}

/// A conversation's size after an operation: what a tool reports to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct History {
    /// Turns kept now.
    pub turns: usize,
    /// Turns a conversation may keep.
    pub turns_max: usize,
    /// Bytes kept now.
    pub bytes: usize,
    /// Turns dropped (oldest first) to stay within the limits, ever.
    pub turns_dropped: u64,
}

impl History {
    /// Turns that can still be added before the oldest start being dropped.
    pub fn remaining_turns(&self) -> usize {
        self.turns_max.saturating_sub(self.turns)
    }

    /// Whether older turns were dropped: tools must say so.
    pub fn truncated(&self) -> bool {
        self.turns_dropped > 0
    }

    /// The sentence a tool shows when history was dropped, if it was.
    pub fn truncation_note(&self) -> Option<String> {
        self.truncated().then(|| {
            format!(
                "{} earlier turn(s) of this conversation were dropped to stay within \
                 EXAI_CONVERSATION_TURNS_MAX ({}) / EXAI_CONVERSATION_BYTES_MAX; the model did not see them",
                self.turns_dropped, self.turns_max
            )
        })
    }
}

/// A copy of a conversation's turns, for building a request.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Turns, oldest first.
    pub turns: Vec<Turn>,
    /// Its size.
    pub history: History,
}

impl Snapshot {
    /// The model that answered last, if any turn says: what an `auto` call keeps.
    pub fn model(&self) -> Option<&str> {
        self.turns
            .iter()
            .rev()
            .find_map(|turn| turn.model.as_deref())
    }

    /// The steps of `tool`'s investigation, in step order (one per step number, the latest
    /// recorded wins: recording replaces).
    pub fn steps_of(&self, tool: &str) -> Vec<StepRecord> {
        let mut steps: Vec<StepRecord> = self
            .turns
            .iter()
            .filter_map(Turn::step)
            .filter(|s| s.tool == tool)
            .cloned()
            .collect();
        steps.sort_by_key(|s| s.step_number);
        steps
    }
}

/// All conversations.
pub struct ConversationStore {
    /// The bounds.
    limits: ConversationLimits,
    /// Conversations by id. A `BTreeMap`: eviction scans in a stable order.
    conversations: Mutex<BTreeMap<String, Conversation>>,
    /// Where changes are kept past the process, if anywhere.
    durable: Option<Arc<Durable>>,
    /// The daemon's memory budget the conversations count against.
    budget: Arc<MemoryBudget>,
    /// What the conversations are counted as now; changed only under the store's lock.
    charged: AtomicUsize,
}

/// What one kept conversation costs beyond its turns' bytes (its map entry, id, queue).
const CONVERSATION_OVERHEAD_BYTES: usize = 256;

/// The store's lock: the conversations, counted again against the memory budget when it is
/// let go.
struct Locked<'a> {
    /// The conversations.
    guard: MutexGuard<'a, BTreeMap<String, Conversation>>,
    /// The store, for its budget and its count.
    store: &'a ConversationStore,
}

impl Deref for Locked<'_> {
    type Target = BTreeMap<String, Conversation>;
    fn deref(&self) -> &Self::Target {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let now: usize = self
            .guard
            .values()
            .map(|c| c.bytes + c.turns.len() * 64 + CONVERSATION_OVERHEAD_BYTES)
            .sum();
        let before = self.store.charged.swap(now, Ordering::SeqCst);
        self.store.budget.adjust(before, now);
    }
}

impl Drop for ConversationStore {
    /// What the store still holds leaves with it.
    fn drop(&mut self) {
        self.budget.release(self.charged.load(Ordering::SeqCst));
    }
}

impl ConversationStore {
    /// An empty store with these bounds.
    pub fn new(limits: ConversationLimits) -> ConversationStore {
        assert!(limits.conversations_max > 0 && limits.turns_max > 0);
        ConversationStore {
            limits,
            conversations: Mutex::new(BTreeMap::new()),
            durable: None,
            budget: MemoryBudget::unbounded(),
            charged: AtomicUsize::new(0),
        }
    }

    /// The same (empty) store, counted against `budget`.
    pub fn with_budget(mut self, budget: Arc<MemoryBudget>) -> ConversationStore {
        assert!(self.is_empty(), "a store changes budgets only empty");
        self.budget = budget;
        self
    }

    /// The same store, keeping every change through `durable`.
    pub fn with_durable(mut self, durable: Arc<Durable>) -> ConversationStore {
        self.durable = Some(durable);
        self
    }

    /// Load back the conversations the state file kept (at start-up, before any call): those
    /// written within the TTL (by the wall clock), the most recent first up to
    /// `EXAI_CONVERSATIONS_MAX`. The rest, and records that cannot be read, are forgotten.
    pub fn restore(
        &self,
        records: BTreeMap<String, Record>,
        now: Instant,
        now_unix_ms: u64,
    ) -> Restored {
        let ttl_ms = u64::try_from(self.limits.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut report = Restored::default();
        let mut fresh: Vec<(u64, String, Conversation)> = Vec::new();
        for (id, record) in records {
            if now_unix_ms.saturating_sub(record.written_unix_ms) >= ttl_ms {
                report.forgotten += 1;
                self.forget(&id);
                continue;
            }
            match serde_json::from_str::<Kept>(&record.body) {
                Ok(kept) => {
                    let conversation = Conversation::restored(kept, now, &self.limits);
                    fresh.push((record.written_unix_ms, id, conversation));
                }
                Err(error) => {
                    tracing::warn!(conversation = %id, %error, "a kept conversation cannot be read; forgotten");
                    report.unreadable += 1;
                    self.forget(&id);
                }
            }
        }
        fresh.sort_by_key(|(written, _, _)| std::cmp::Reverse(*written));
        let mut conversations = self.lock();
        for (_, id, conversation) in fresh {
            if conversations.len() >= self.limits.conversations_max {
                report.forgotten += 1;
                self.forget(&id);
                continue;
            }
            conversations.insert(id, conversation);
            report.restored += 1;
        }
        assert!(conversations.len() <= self.limits.conversations_max);
        report
    }

    /// Queue conversation `id`'s whole record for the state file.
    fn persist(&self, id: &str, conversation: &Conversation) {
        let Some(durable) = &self.durable else {
            return;
        };
        let kept = KeptRef {
            turns: &conversation.turns,
            turns_dropped: conversation.turns_dropped,
        };
        let body = serde_json::to_string(&kept).expect("turns serialize");
        durable.put(RecordKind::Conversation, id, body);
    }

    /// Queue the deletion of conversation `id` from the state file.
    fn forget(&self, id: &str) {
        if let Some(durable) = &self.durable {
            durable.delete(RecordKind::Conversation, id);
        }
    }

    /// The bounds.
    pub fn limits(&self) -> ConversationLimits {
        self.limits
    }

    /// What the conversations are counted as against the memory budget now.
    pub fn charged_bytes(&self) -> usize {
        let _books = self.conversations.lock().expect("conversation store lock");
        self.charged.load(Ordering::SeqCst)
    }

    /// Conversations kept now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> Locked<'_> {
        Locked {
            guard: self.conversations.lock().expect("conversation store lock"),
            store: self,
        }
    }

    /// A copy of conversation `id`, touching it; `VALIDATION_ERROR` naming `continuation_id`
    /// if it is unknown or expired.
    pub fn snapshot(&self, id: &str, now: Instant) -> Result<Snapshot, CallError> {
        let mut conversations = self.lock();
        let conversation = self.live(&mut conversations, id, now)?;
        conversation.touched_at = now;
        Ok(Snapshot {
            turns: conversation.turns.iter().cloned().collect(),
            history: conversation.history(&self.limits),
        })
    }

    /// Conversation `existing` (which must be alive), or a new one under `new_id()`.
    /// Creating may evict the least recently used conversation, and sweeps expired ones.
    pub fn open(
        &self,
        existing: Option<&str>,
        new_id: impl FnOnce() -> String,
        now: Instant,
    ) -> Result<String, CallError> {
        let mut conversations = self.lock();
        let id = self.open_locked(&mut conversations, existing, new_id, now)?;
        if existing.is_none() {
            // A new conversation is kept from the start (its id was handed out); one that
            // gets turns at once is kept by `open_append` instead, written once.
            self.persist(&id, &conversations[&id]);
        }
        Ok(id)
    }

    /// [`ConversationStore::open`] and [`ConversationStore::append`] under one lock. Why:
    /// between two separate calls, other calls may open enough conversations to evict this
    /// one as the least recently used (found by `exaid bench`: at 3,000 chat calls/s on a
    /// loaded machine a fresh conversation was evicted before its first turn was recorded,
    /// and the call failed with VALIDATION_ERROR on a `continuation_id` it never sent).
    pub fn open_append(
        &self,
        existing: Option<&str>,
        new_id: impl FnOnce() -> String,
        turns: Vec<Turn>,
        now: Instant,
    ) -> Result<(String, History), CallError> {
        let mut conversations = self.lock();
        let id = self.open_locked(&mut conversations, existing, new_id, now)?;
        let conversation = self.live(&mut conversations, &id, now)?;
        conversation.touched_at = now;
        for turn in turns {
            conversation.push(turn, &self.limits);
        }
        let history = conversation.history(&self.limits);
        self.persist(&id, conversation);
        Ok((id, history))
    }

    fn open_locked(
        &self,
        conversations: &mut BTreeMap<String, Conversation>,
        existing: Option<&str>,
        new_id: impl FnOnce() -> String,
        now: Instant,
    ) -> Result<String, CallError> {
        if let Some(id) = existing {
            self.live(conversations, id, now)?.touched_at = now;
            return Ok(id.to_string());
        }
        let ttl = self.limits.ttl;
        conversations.retain(|id, c| {
            let alive = now.saturating_since(c.touched_at) < ttl;
            if !alive {
                self.forget(id);
            }
            alive
        });
        while conversations.len() >= self.limits.conversations_max {
            let oldest = conversations
                .iter()
                .min_by_key(|(_, c)| c.touched_at)
                .map(|(id, _)| id.clone());
            let Some(oldest) = oldest else { break };
            // Debug, not info: once the cap is reached every new conversation evicts one, and a
            // line per call at the default level costs every call.
            tracing::debug!(conversation = %oldest, "conversation evicted: {} reached", key::EXAI_CONVERSATIONS_MAX);
            conversations.remove(&oldest);
            self.forget(&oldest);
        }
        let id = new_id();
        conversations.insert(id.clone(), Conversation::new(now));
        Ok(id)
    }

    /// Append turns to conversation `id`; the oldest turns go if limits are passed.
    pub fn append(&self, id: &str, turns: Vec<Turn>, now: Instant) -> Result<History, CallError> {
        let mut conversations = self.lock();
        let conversation = self.live(&mut conversations, id, now)?;
        conversation.touched_at = now;
        for turn in turns {
            conversation.push(turn, &self.limits);
        }
        let history = conversation.history(&self.limits);
        self.persist(id, conversation);
        Ok(history)
    }

    /// Record a workflow step in conversation `id`. A step replaces every step of the same
    /// tool numbered `step_number` or later (a resent step is not recorded twice, and step 1
    /// starts a new investigation); with `backtrack_from`, steps from that number on go too.
    pub fn record_step(
        &self,
        id: &str,
        step: StepRecord,
        backtrack_from: Option<u32>,
        now: Instant,
    ) -> Result<History, CallError> {
        let mut conversations = self.lock();
        let conversation = self.live(&mut conversations, id, now)?;
        conversation.touched_at = now;
        let from = backtrack_from.map_or(step.step_number, |b| b.min(step.step_number));
        let tool = step.tool;
        let mut removed_bytes = 0;
        conversation.turns.retain(|turn| {
            let stale = turn
                .step()
                .is_some_and(|s| s.tool == tool && s.step_number >= from);
            if stale {
                removed_bytes += turn.bytes();
            }
            !stale
        });
        conversation.bytes = conversation.bytes.saturating_sub(removed_bytes);
        let turn = Turn {
            role: Role::User,
            tool,
            body: TurnBody::Step(Box::new(step)),
            files: Vec::new(),
            model: None,
        };
        conversation.push(turn, &self.limits);
        let history = conversation.history(&self.limits);
        self.persist(id, conversation);
        Ok(history)
    }

    /// Conversation `id` if it exists and has not expired (an expired one is removed).
    fn live<'a>(
        &self,
        conversations: &'a mut BTreeMap<String, Conversation>,
        id: &str,
        now: Instant,
    ) -> Result<&'a mut Conversation, CallError> {
        let expired = conversations
            .get(id)
            .is_some_and(|c| now.saturating_since(c.touched_at) >= self.limits.ttl);
        if expired {
            conversations.remove(id);
            self.forget(id);
        }
        conversations.get_mut(id).ok_or_else(|| self.missing(id))
    }

    fn missing(&self, id: &str) -> CallError {
        let shown: String = id.chars().take(64).collect();
        CallError::new(
            ErrorCode::ValidationError,
            format!(
                "continuation_id: no conversation \"{shown}\": it expired (idle longer than {} = {} s), \
                 was evicted (more than {} = {} conversations), or never existed; \
                 start again without a continuation_id",
                key::EXAI_CONVERSATION_TTL_SECS,
                self.limits.ttl.as_secs(),
                key::EXAI_CONVERSATIONS_MAX,
                self.limits.conversations_max
            ),
        )
        .with_details(serde_json::json!({ "field": "continuation_id" }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_epoch(Duration::from_secs(secs))
    }

    fn limits() -> ConversationLimits {
        ConversationLimits {
            conversations_max: 2,
            turns_max: 3,
            bytes_max: 1_000,
            ttl: Duration::from_secs(100),
        }
    }

    fn step(tool: &'static str, n: u32, findings: &str) -> StepRecord {
        StepRecord {
            tool,
            step_number: n,
            total_steps: 3,
            step: format!("step {n}"),
            findings: findings.to_string(),
            files_checked: Vec::new(),
            relevant_files: Vec::new(),
            relevant_context: Vec::new(),
            issues_found: Vec::new(),
            confidence: None,
            hypothesis: None,
            options: Value::Null,
        }
    }

    #[test]
    fn turns_past_the_limit_drop_the_oldest_and_say_so() {
        let store = ConversationStore::new(limits());
        let id = store.open(None, || "a".to_string(), at(0)).unwrap();
        let turns = (0..5)
            .map(|i| Turn::text(Role::User, "chat", format!("t{i}")))
            .collect();
        let history = store.append(&id, turns, at(1)).unwrap();
        assert_eq!((history.turns, history.turns_dropped), (3, 2));
        assert!(
            history
                .truncation_note()
                .unwrap()
                .contains("2 earlier turn")
        );
        let snapshot = store.snapshot(&id, at(2)).unwrap();
        assert_eq!(snapshot.turns[0].to_message().content, "t2");
        // Bytes bound: one big turn pushes the others out, but is kept alone.
        let history = store
            .append(
                &id,
                vec![Turn::text(Role::User, "chat", "x".repeat(2_000))],
                at(3),
            )
            .unwrap();
        assert_eq!(history.turns, 1);
    }

    #[test]
    fn expiry_and_eviction_are_errors_naming_the_field() {
        let store = ConversationStore::new(limits());
        let a = store.open(None, || "a".to_string(), at(0)).unwrap();
        let _b = store.open(None, || "b".to_string(), at(1)).unwrap();
        let _c = store.open(None, || "c".to_string(), at(2)).unwrap();
        assert_eq!(store.len(), 2);
        let error = store.snapshot(&a, at(3)).unwrap_err();
        assert_eq!(error.code, ErrorCode::ValidationError);
        assert!(error.message.starts_with("continuation_id:"));
        assert!(store.snapshot("b", at(50)).is_ok());
        assert!(
            store.snapshot("b", at(150)).is_err(),
            "expired after the TTL"
        );
    }

    #[test]
    fn recording_replaces_later_steps_and_backtracks() {
        let store = ConversationStore::new(ConversationLimits {
            turns_max: 50,
            ..limits()
        });
        let id = store.open(None, || "a".to_string(), at(0)).unwrap();
        for n in 1..=3 {
            store
                .record_step(&id, step("debug", n, &format!("f{n}")), None, at(n.into()))
                .unwrap();
        }
        // Step 2 again replaces steps 2 and 3.
        store
            .record_step(&id, step("debug", 2, "f2b"), None, at(4))
            .unwrap();
        let steps = store.snapshot(&id, at(5)).unwrap().steps_of("debug");
        let findings: Vec<&str> = steps.iter().map(|s| s.findings.as_str()).collect();
        assert_eq!(findings, ["f1", "f2b"]);
        // Step 3 backtracking from 1 keeps nothing before it.
        store
            .record_step(&id, step("debug", 3, "f3"), Some(1), at(6))
            .unwrap();
        let steps = store.snapshot(&id, at(7)).unwrap().steps_of("debug");
        assert_eq!(steps.len(), 1);
        // Another tool's steps are another investigation.
        store
            .record_step(&id, step("analyze", 1, "a1"), None, at(8))
            .unwrap();
        let snapshot = store.snapshot(&id, at(9)).unwrap();
        assert_eq!(snapshot.steps_of("debug").len(), 1);
        assert_eq!(snapshot.steps_of("analyze").len(), 1);
    }

    #[tokio::test]
    async fn conversations_are_kept_through_the_state_writer_and_restored() {
        use crate::durable::{Durable, DurableLimits};
        use crate::rt::store::{MemoryStore, Store};
        let rt = crate::rt::Rt::new(Arc::new(crate::rt::tokio::TokioRuntime::new()));
        let disk = Arc::new(MemoryStore::new());
        let limits_of_writer = DurableLimits {
            queue_max: 64,
            batch_max: 8,
            hold: Duration::from_secs(5),
        };
        let durable = Durable::new(rt.clone(), disk.clone(), limits_of_writer);
        rt.spawn("writer", durable.clone().run());
        let store = ConversationStore::new(limits()).with_durable(durable.clone());
        let turns = vec![
            Turn::text(Role::User, "chat", "remember me".into()),
            Turn::text(Role::Assistant, "chat", "I will".into()).answered_by("kimi-k2"),
        ];
        let (id, _) = store
            .open_append(None, || "c1".into(), turns, at(1))
            .unwrap();
        store
            .record_step(&id, step("debug", 1, "a clue"), None, at(2))
            .unwrap();
        // The second conversation is evicted by the third: its record goes too.
        store.open(None, || "c2".into(), at(3)).unwrap();
        store.snapshot(&id, at(4)).unwrap();
        store.open(None, || "c3".into(), at(5)).unwrap();
        assert!(durable.flush(Duration::from_secs(5)).await);
        let mut records = disk.load(RecordKind::Conversation).unwrap();
        assert_eq!(records.keys().collect::<Vec<_>>(), ["c1", "c3"]);

        // A restart: what was kept comes back; a damaged or stale record is forgotten.
        let written = records["c1"].written_unix_ms;
        let damaged = Record {
            body: "{not json".into(),
            written_unix_ms: written,
        };
        let stale = Record {
            body: records["c3"].body.clone(),
            written_unix_ms: 0,
        };
        records.insert("c9".into(), damaged);
        records.insert("c0".into(), stale);
        let again = ConversationStore::new(limits());
        let report = again.restore(records, at(0), written + 1_000);
        assert_eq!(
            (report.restored, report.forgotten, report.unreadable),
            (2, 1, 1),
            "{report:?}"
        );
        let before = store.snapshot(&id, at(6)).unwrap();
        let after = again.snapshot(&id, at(1)).unwrap();
        assert_eq!(after.turns, before.turns);
        assert_eq!(after.model(), Some("kimi-k2"));
        assert_eq!(after.steps_of("debug").len(), 1);
    }
}
