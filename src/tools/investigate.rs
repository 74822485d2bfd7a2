//! The investigation family of workflow tools: `analyze`, `codereview`, `debug`, `docgen`,
//! `precommit`, `refactor`, `secaudit`, `testgen`, `thinkdeep`, `tracer`.
//!
//! All share the engine in `workflow` and the investigation arguments (`step`, `findings`,
//! files, issues, confidence, hypothesis...); each has its own texts, expert prompt, guidance
//! and options, as in the original. `docgen` and `tracer` complete locally (the original's
//! were self-contained: the caller writes the docs or the trace); the others end with one
//! expert analysis by a model.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tools::tool::{DynTool, register};
use crate::tools::workflow::{
    Confidence, InvestigationArgs, NoOptions, Spec, Workflow, WorkflowTool,
};

/// Severities a review can be limited to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeverityFilter {
    /// Critical only.
    Critical,
    /// High and above.
    High,
    /// Medium and above.
    Medium,
    /// Low and above.
    Low,
    /// Everything.
    All,
}

/// `analyze` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct AnalyzeOptions {
    /// What to focus the analysis on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_type: Option<AnalysisType>,
    /// How the analysis should be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
}

/// `analyze`'s focus.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisType {
    /// Structure, boundaries, dependencies.
    Architecture,
    /// Hot paths, complexity, resource use.
    Performance,
    /// Security posture.
    Security,
    /// Maintainability and code quality.
    Quality,
    /// All of the above, briefly.
    General,
}

/// `analyze`'s output shape.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Short.
    Summary,
    /// Thorough.
    Detailed,
    /// A list of actions.
    Actionable,
}

/// `codereview` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct CodeReviewOptions {
    /// The kind of review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_type: Option<ReviewType>,
    /// Areas to look at hardest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    pub focus_on: Option<String>,
    /// Coding standards to hold the code to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    pub standards: Option<String>,
    /// Lowest severity to report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_filter: Option<SeverityFilter>,
}

/// `codereview`'s kind.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewType {
    /// Everything.
    Full,
    /// Security first.
    Security,
    /// Performance first.
    Performance,
    /// The important problems only.
    Quick,
}

/// `thinkdeep` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ThinkDeepOptions {
    /// Background the expert should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100000))]
    pub problem_context: Option<String>,
    /// Aspects to concentrate on (architecture, performance, security...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 1000)))]
    pub focus_areas: Vec<String>,
}

/// `precommit` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct PrecommitOptions {
    /// The repository root the changes are in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub path: Option<String>,
    /// Compare with this git ref instead of the working tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub compare_to: Option<String>,
    /// Include staged changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_staged: Option<bool>,
    /// Include unstaged changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_unstaged: Option<bool>,
    /// Areas to look at hardest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    pub focus_on: Option<String>,
    /// Lowest severity to report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_filter: Option<SeverityFilter>,
}

/// `refactor` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct RefactorOptions {
    /// The kind of refactoring to look for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refactor_type: Option<RefactorType>,
    /// Aspects to concentrate on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 1000)))]
    pub focus_areas: Vec<String>,
    /// Files whose style the result should follow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 4096)))]
    pub style_guide_examples: Vec<String>,
}

/// `refactor`'s kind.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefactorType {
    /// Code smells.
    Codesmells,
    /// Large units to split.
    Decompose,
    /// Outdated idioms.
    Modernize,
    /// File and module organization.
    Organization,
}

/// `secaudit` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct SecauditOptions {
    /// What the application is and what it exposes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    pub security_scope: Option<String>,
    /// How exposed it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threat_level: Option<ThreatLevel>,
    /// Standards to check against (SOC2, PCI DSS, GDPR...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 256)))]
    pub compliance_requirements: Vec<String>,
    /// What to concentrate on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_focus: Option<AuditFocus>,
    /// Lowest severity to report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_filter: Option<SeverityFilter>,
}

/// `secaudit`'s threat level.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThreatLevel {
    /// Internal, low risk.
    Low,
    /// Some exposure.
    Medium,
    /// Public or sensitive.
    High,
    /// Critical systems or data.
    Critical,
}

/// `secaudit`'s focus.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditFocus {
    /// The OWASP Top 10.
    Owasp,
    /// Compliance requirements.
    Compliance,
    /// Deployment and infrastructure.
    Infrastructure,
    /// Third-party dependencies.
    Dependencies,
    /// All of it.
    Comprehensive,
}

/// `docgen` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct DocgenOptions {
    /// Document big-O complexity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_complexity: Option<bool>,
    /// Document call flow and dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_flow: Option<bool>,
    /// Improve existing documentation rather than only adding missing docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_existing: Option<bool>,
    /// Add inline comments on complex logic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments_on_complex_logic: Option<bool>,
    /// Files fully documented so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100000))]
    pub num_files_documented: Option<u32>,
    /// Files to document in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100000))]
    pub total_files_to_document: Option<u32>,
}

/// `tracer` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TracerOptions {
    /// `precision`: execution flow of one function; `dependencies`: how a unit is wired in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_mode: Option<TraceMode>,
    /// What to trace and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    pub target_description: Option<String>,
}

/// `tracer`'s mode.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TraceMode {
    /// Execution flow of one function or method.
    Precision,
    /// Structural relationships of a class or module.
    Dependencies,
    /// Let the caller decide after step 1.
    Ask,
}

const INVESTIGATE_FIRST: &[&str] = &[
    "Read the code and material relevant to the request; list what you examined in files_checked",
    "Note the files and functions that matter in relevant_files and relevant_context",
    "Write what you found, with evidence, in findings; state a hypothesis if you have one",
];
const INVESTIGATE_CLOSING: &[&str] = &[
    "Confirm the remaining uncertainties against the code",
    "Make sure every relevant file and issue is recorded",
    "Send the final step with next_step_required false to get the expert analysis",
];

/// `analyze`.
pub static ANALYZE: Spec = Spec {
    name: "analyze",
    title: "Analyze code",
    description: "Step-by-step code analysis: architecture, performance, maintainability, security \
                  posture, tech debt. You investigate between calls; each step is recorded, and the \
                  final step (next_step_required false) gets one expert analysis of all steps.",
    field_help: &[
        (
            "step",
            "What you analyze in this step. Step 1: the goal and scope of the analysis and how \
                    you will approach it. Later steps: what you examined and why.",
        ),
        (
            "findings",
            "What this step found: structure, patterns, risks, strengths, with evidence.",
        ),
    ],
    expert_prompt: Some(include_str!("prompts/analyze.txt")),
    first_actions: INVESTIGATE_FIRST,
    middle_actions: &[
        "Map the main components, their responsibilities and their dependencies",
        "Look for performance, scalability and maintainability risks in the code you mapped",
        "Record strengths as well as weaknesses in findings",
    ],
    closing_actions: INVESTIGATE_CLOSING,
    temperature: 0.2,
    websearch_default: true,
    skip_confidence: &[],
    step_one_requires: &["relevant_files"],
};

/// `codereview`.
pub static CODEREVIEW: Spec = Spec {
    name: "codereview",
    title: "Code review",
    description: "Step-by-step code review: quality, security, performance, architecture. You walk \
                  the code between calls and record issues with severities; the final step gets one \
                  expert review of everything recorded.",
    field_help: &[
        (
            "step",
            "What you review in this step. Step 1: what the code is for and your review plan. \
                    Later steps: which code you went through and what you looked for.",
        ),
        (
            "findings",
            "What this step found: bugs, risks, quality problems and good practice, with \
                        locations.",
        ),
    ],
    expert_prompt: Some(include_str!("prompts/codereview.txt")),
    first_actions: INVESTIGATE_FIRST,
    middle_actions: &[
        "Review the next part of the code for correctness, security and performance problems",
        "Record each problem in issues_found with severity, location and why it matters",
        "Note good patterns too, so the review is balanced",
    ],
    closing_actions: INVESTIGATE_CLOSING,
    temperature: 0.2,
    websearch_default: false,
    skip_confidence: &[Confidence::Certain],
    step_one_requires: &["relevant_files"],
};

/// `debug`.
pub static DEBUG: Spec = Spec {
    name: "debug",
    title: "Debug an issue",
    description: "Step-by-step root-cause investigation of a bug, crash, race or performance problem. \
                  You investigate between calls (reading code, reproducing, testing hypotheses); each \
                  step is recorded, and the final step gets one expert analysis of all the evidence.",
    field_help: &[
        (
            "step",
            "What you investigate in this step. Step 1: the symptoms (errors, logs, how to \
                    reproduce) and where you will look first. Later steps: what you checked and why.",
        ),
        (
            "findings",
            "What this step found: evidence for or against your hypothesis, code paths, \
                        reproduction results.",
        ),
    ],
    expert_prompt: Some(include_str!("prompts/debug.txt")),
    first_actions: &[
        "Reproduce or pin down the symptoms: exact errors, logs, inputs and conditions",
        "Find the code paths involved and list what you examined in files_checked",
        "Write your first hypothesis about the cause, with the evidence so far",
    ],
    middle_actions: &[
        "Test your hypothesis against the code and a reproduction; record what confirms or refutes it",
        "Trace the data and control flow to where behaviour diverges from what is expected",
        "Record ruled-out causes in findings too, so the expert does not chase them",
    ],
    closing_actions: &[
        "Confirm the root cause with concrete evidence (a failing path, a reproduction)",
        "Note the minimal fix and how to verify it in findings",
        "Send the final step with next_step_required false to get the expert analysis",
    ],
    temperature: 0.2,
    websearch_default: false,
    skip_confidence: &[Confidence::Certain],
    step_one_requires: &[],
};

/// `docgen`.
pub static DOCGEN: Spec = Spec {
    name: "docgen",
    title: "Generate documentation",
    description: "Step-by-step documentation generation: you go through the code file by file, \
                  documenting functions, complexity and call flow; each step is recorded. Completes \
                  locally with a summary of the work (no model call).",
    field_help: &[
        (
            "step",
            "What you document in this step. Step 1: the scope (which files) and the \
                    documentation plan. Later steps: which file or functions you documented.",
        ),
        (
            "findings",
            "What this step documented, and anything notable found while doing it (bugs, \
                        unclear logic).",
        ),
    ],
    expert_prompt: None,
    first_actions: &[
        "List every file in scope and count them in total_files_to_document",
        "Start with the first file: document each function's purpose, parameters and return value",
    ],
    middle_actions: &[
        "Document the next file completely before moving on; update num_files_documented",
        "Note complexity and call flow where asked (document_complexity, document_flow)",
    ],
    closing_actions: &[
        "Check that every file in scope is documented",
        "Send the final step with next_step_required false",
    ],
    temperature: 0.2,
    websearch_default: false,
    skip_confidence: &[],
    step_one_requires: &[],
};

/// `precommit`.
pub static PRECOMMIT: Spec = Spec {
    name: "precommit",
    title: "Pre-commit check",
    description: "Step-by-step validation of pending changes before a commit: completeness, \
                  correctness, security, regressions. You inspect the diff between calls; the final \
                  step gets one expert assessment of the recorded changes and issues.",
    field_help: &[
        (
            "step",
            "What you check in this step. Step 1: what the change is meant to do and how you \
                    will validate it. Later steps: which changes you examined.",
        ),
        (
            "findings",
            "What this step found in the changes: problems, missing pieces, risks.",
        ),
    ],
    expert_prompt: Some(include_str!("prompts/precommit.txt")),
    first_actions: &[
        "Look at the whole diff (staged and unstaged as configured) and list the changed files",
        "Write down what the change is supposed to achieve",
        "Record the first problems you see in issues_found",
    ],
    middle_actions: &[
        "Check each changed file against the intent: correctness, edge cases, error handling",
        "Look for missing tests, docs and migrations the change needs",
        "Check for regressions in code that calls what changed",
    ],
    closing_actions: INVESTIGATE_CLOSING,
    temperature: 0.2,
    websearch_default: false,
    skip_confidence: &[Confidence::Certain],
    step_one_requires: &["path"],
};

/// `refactor`.
pub static REFACTOR: Spec = Spec {
    name: "refactor",
    title: "Plan a refactoring",
    description: "Step-by-step search for refactoring opportunities: code smells, decomposition, \
                  modernization, organization. You examine the code between calls; the final step \
                  gets one expert plan of prioritized refactorings.",
    field_help: &[
        (
            "step",
            "What you examine in this step. Step 1: the code in scope and the kind of \
                    refactoring sought. Later steps: which code you examined.",
        ),
        (
            "findings",
            "What this step found: smells, oversized units, outdated idioms, with \
                        locations.",
        ),
    ],
    expert_prompt: Some(include_str!("prompts/refactor.txt")),
    first_actions: INVESTIGATE_FIRST,
    middle_actions: &[
        "Look for smells: long functions, duplication, deep nesting, unclear names",
        "Find units that do too much and sketch how they would split",
        "Record each opportunity in issues_found with a severity reflecting its value",
    ],
    closing_actions: INVESTIGATE_CLOSING,
    temperature: 0.2,
    websearch_default: false,
    skip_confidence: &[Confidence::AlmostCertain, Confidence::Certain],
    step_one_requires: &["relevant_files"],
};

/// `secaudit`.
pub static SECAUDIT: Spec = Spec {
    name: "secaudit",
    title: "Security audit",
    description: "Step-by-step security audit: OWASP Top 10, authentication, input handling, \
                  secrets, dependencies, compliance. You examine the code between calls; the final \
                  step gets one expert security assessment of everything recorded.",
    field_help: &[
        (
            "step",
            "What you audit in this step. Step 1: the application, its exposure and the audit \
                    plan. Later steps: which area you audited.",
        ),
        (
            "findings",
            "What this step found: vulnerabilities, weak controls, good controls, with \
                        locations.",
        ),
    ],
    expert_prompt: Some(include_str!("prompts/secaudit.txt")),
    first_actions: &[
        "Identify the application's entry points, trust boundaries and sensitive data",
        "List what you examined in files_checked",
        "Record the first security findings in issues_found with severities",
    ],
    middle_actions: &[
        "Audit input handling and injection risks at every entry point",
        "Audit authentication, authorization and session handling",
        "Check secrets, configuration and dependencies for known weaknesses",
    ],
    closing_actions: INVESTIGATE_CLOSING,
    temperature: 0.2,
    websearch_default: false,
    skip_confidence: &[Confidence::Certain],
    step_one_requires: &["relevant_files"],
};

/// `testgen`.
pub static TESTGEN: Spec = Spec {
    name: "testgen",
    title: "Generate tests",
    description: "Step-by-step test planning: you study the code's behaviour, edge cases and \
                  failure modes between calls; the final step gets one expert set of concrete test \
                  cases to write.",
    field_help: &[
        (
            "step",
            "What you examine in this step. Step 1: the code to test and the testing goal. \
                    Later steps: which behaviour or paths you studied.",
        ),
        (
            "findings",
            "What this step found: behaviours, edge cases, failure modes and existing test \
                        patterns.",
        ),
    ],
    expert_prompt: Some(include_str!("prompts/testgen.txt")),
    first_actions: INVESTIGATE_FIRST,
    middle_actions: &[
        "Trace the main paths and list the behaviours each must show",
        "Find boundary values, error paths and failure modes",
        "Look at existing tests to follow their framework and style",
    ],
    closing_actions: INVESTIGATE_CLOSING,
    temperature: 0.2,
    websearch_default: false,
    skip_confidence: &[Confidence::Certain],
    step_one_requires: &["relevant_files"],
};

/// `thinkdeep`.
pub static THINKDEEP: Spec = Spec {
    name: "thinkdeep",
    title: "Think deeper",
    description: "Step-by-step deep reasoning on a hard problem: hypotheses, evidence, trade-offs, \
                  architecture decisions. You reason and investigate between calls; the final step \
                  gets one expert second opinion on the whole line of thought.",
    field_help: &[
        (
            "step",
            "Your reasoning in this step. Step 1: the problem, what is known and how you will \
                    approach it. Later steps: the next line of thought or evidence.",
        ),
        (
            "findings",
            "What this step established or ruled out, with the reasoning behind it.",
        ),
    ],
    expert_prompt: Some(include_str!("prompts/thinkdeep.txt")),
    first_actions: &[
        "State the problem, the constraints and what is already known",
        "Lay out the candidate approaches or hypotheses",
        "Decide what evidence would tell them apart",
    ],
    middle_actions: &[
        "Gather the evidence for or against each candidate",
        "Record assumptions explicitly and check the risky ones",
        "Narrow down the candidates and say why",
    ],
    closing_actions: &[
        "Check your conclusion against the constraints once more",
        "Send the final step with next_step_required false to get the expert's second opinion",
    ],
    temperature: 0.7,
    websearch_default: false,
    skip_confidence: &[Confidence::Certain],
    step_one_requires: &[],
};

/// `tracer`.
pub static TRACER: Spec = Spec {
    name: "tracer",
    title: "Trace code flow",
    description: "Step-by-step code tracing: execution flow of a function (precision mode) or how \
                  a class or module is wired in (dependencies mode). You trace between calls; each \
                  step is recorded. Completes locally with the recorded trace (no model call).",
    field_help: &[
        (
            "step",
            "What you trace in this step. Step 1: the target and the trace mode. Later steps: \
                    which calls or dependencies you followed.",
        ),
        (
            "findings",
            "What this step traced: call chains, branches, side effects, dependencies.",
        ),
    ],
    expert_prompt: None,
    first_actions: &[
        "Locate the target and its entry points",
        "Choose trace_mode: precision for a call flow, dependencies for structure",
    ],
    middle_actions: &[
        "Follow the next level of calls or dependencies and record them in relevant_context",
        "Note branches, side effects and state changes",
    ],
    closing_actions: &[
        "Check that the trace covers every path that matters",
        "Send the final step with next_step_required false",
    ],
    temperature: 0.2,
    websearch_default: false,
    skip_confidence: &[],
    step_one_requires: &[],
};

/// `analyze`: the investigation engine with [`ANALYZE`]'s texts and [`AnalyzeOptions`].
pub struct Analyze;

impl Workflow for Analyze {
    type Args = InvestigationArgs<AnalyzeOptions>;
    const SPEC: &'static Spec = &ANALYZE;
}

/// `codereview`: the investigation engine with [`CODEREVIEW`]'s texts and [`CodeReviewOptions`].
pub struct CodeReview;

impl Workflow for CodeReview {
    type Args = InvestigationArgs<CodeReviewOptions>;
    const SPEC: &'static Spec = &CODEREVIEW;
}

/// `debug`: the investigation engine with [`DEBUG`]'s texts and no options of its own.
pub struct Debug;

impl Workflow for Debug {
    type Args = InvestigationArgs<NoOptions>;
    const SPEC: &'static Spec = &DEBUG;
}

/// `docgen`: the investigation engine with [`DOCGEN`]'s texts and [`DocgenOptions`].
pub struct Docgen;

impl Workflow for Docgen {
    type Args = InvestigationArgs<DocgenOptions>;
    const SPEC: &'static Spec = &DOCGEN;
}

/// `precommit`: the investigation engine with [`PRECOMMIT`]'s texts and [`PrecommitOptions`].
pub struct Precommit;

impl Workflow for Precommit {
    type Args = InvestigationArgs<PrecommitOptions>;
    const SPEC: &'static Spec = &PRECOMMIT;
}

/// `refactor`: the investigation engine with [`REFACTOR`]'s texts and [`RefactorOptions`].
pub struct Refactor;

impl Workflow for Refactor {
    type Args = InvestigationArgs<RefactorOptions>;
    const SPEC: &'static Spec = &REFACTOR;
}

/// `secaudit`: the investigation engine with [`SECAUDIT`]'s texts and [`SecauditOptions`].
pub struct Secaudit;

impl Workflow for Secaudit {
    type Args = InvestigationArgs<SecauditOptions>;
    const SPEC: &'static Spec = &SECAUDIT;
}

/// `testgen`: the investigation engine with [`TESTGEN`]'s texts and no options of its own.
pub struct Testgen;

impl Workflow for Testgen {
    type Args = InvestigationArgs<NoOptions>;
    const SPEC: &'static Spec = &TESTGEN;
}

/// `thinkdeep`: the investigation engine with [`THINKDEEP`]'s texts and [`ThinkDeepOptions`].
pub struct ThinkDeep;

impl Workflow for ThinkDeep {
    type Args = InvestigationArgs<ThinkDeepOptions>;
    const SPEC: &'static Spec = &THINKDEEP;
}

/// `tracer`: the investigation engine with [`TRACER`]'s texts and [`TracerOptions`].
pub struct Tracer;

impl Workflow for Tracer {
    type Args = InvestigationArgs<TracerOptions>;
    const SPEC: &'static Spec = &TRACER;
}

/// Every tool of the family.
pub fn tools() -> Vec<Arc<dyn DynTool>> {
    vec![
        register(WorkflowTool::<Analyze>::new()),
        register(WorkflowTool::<CodeReview>::new()),
        register(WorkflowTool::<Debug>::new()),
        register(WorkflowTool::<Docgen>::new()),
        register(WorkflowTool::<Precommit>::new()),
        register(WorkflowTool::<Refactor>::new()),
        register(WorkflowTool::<Secaudit>::new()),
        register(WorkflowTool::<Testgen>::new()),
        register(WorkflowTool::<ThinkDeep>::new()),
        register(WorkflowTool::<Tracer>::new()),
    ]
}
