//! Rules across keys, checked once every layer is merged: values fine one by one can still
//! contradict each other (an attempt longer than any call's deadline could never finish).

use super::error::{ConfigError, ErrorDetail, ErrorKind};
use super::keys::{Config, key};
use super::profile::ALWAYS_ON;
use super::providers::ProviderId;
use super::source::Source;

/// A rule across several keys, checked after all layers merge.
struct Relation {
    /// The keys involved, named in the error with their values and sources.
    keys: &'static [&'static str],
    /// Returns the reason when the rule is broken.
    check: fn(&Config) -> Option<String>,
}

/// The reason both provider-attempt rules give.
const ATTEMPT_OVER_DEADLINE: &str =
    "one provider attempt cannot be longer than the longest call deadline";

/// The longer of the two tool deadlines, in milliseconds.
fn longest_deadline_ms(c: &Config) -> u64 {
    c.tools.simple_timeout_ms.max(c.tools.workflow_timeout_ms)
}

/// Why a comma-separated key list is malformed, if it is: an entry too short to be a key.
fn bad_key_list(c: &Config, id: ProviderId) -> Option<String> {
    let list = c.providers[id].api_keys.as_ref()?;
    list.expose()
        .split(',')
        .map(str::trim)
        .enumerate()
        .find(|(_, part)| part.chars().count() < 8)
        .map(|(index, _)| {
            format!(
                "entry {} is shorter than 8 characters (keys are comma-separated)",
                index + 1
            )
        })
}

/// All cross-key rules. Add more here.
static RELATIONS: &[Relation] = &[
    Relation {
        keys: &[key::KIMI_API_KEYS],
        check: |c| bad_key_list(c, ProviderId::Kimi),
    },
    Relation {
        keys: &[key::GLM_API_KEYS],
        check: |c| bad_key_list(c, ProviderId::Glm),
    },
    Relation {
        keys: &[
            key::KIMI_TIMEOUT_SECS,
            key::SIMPLE_TOOL_TIMEOUT_SECS,
            key::WORKFLOW_TOOL_TIMEOUT_SECS,
        ],
        check: |c| {
            let attempt_ms = c.providers[ProviderId::Kimi].timeout_ms;
            (attempt_ms > longest_deadline_ms(c)).then(|| ATTEMPT_OVER_DEADLINE.to_string())
        },
    },
    Relation {
        keys: &[
            key::GLM_TIMEOUT_SECS,
            key::SIMPLE_TOOL_TIMEOUT_SECS,
            key::WORKFLOW_TOOL_TIMEOUT_SECS,
        ],
        check: |c| {
            let attempt_ms = c.providers[ProviderId::Glm].timeout_ms;
            (attempt_ms > longest_deadline_ms(c)).then(|| ATTEMPT_OVER_DEADLINE.to_string())
        },
    },
    Relation {
        keys: &[
            key::EXAI_RETRY_BACKOFF_BASE_SECS,
            key::EXAI_RETRY_BACKOFF_MAX_SECS,
        ],
        check: |c| {
            (c.retry.backoff_base_ms > c.retry.backoff_max_ms)
                .then(|| "the first backoff pause must not exceed the longest".to_string())
        },
    },
    Relation {
        keys: &[
            key::EXAI_WS_QUEUE_TIMEOUT_SECS,
            key::SIMPLE_TOOL_TIMEOUT_SECS,
            key::WORKFLOW_TOOL_TIMEOUT_SECS,
        ],
        check: |c| {
            (c.limits.queue_timeout_ms > longest_deadline_ms(c)).then(|| {
                "the queue timeout must not exceed the longer tool timeout (the tool timeout includes queueing)"
                    .to_string()
            })
        },
    },
];

/// The first broken rule, as an error naming every key involved with its value and source.
pub(super) fn check(config: &Config) -> Result<(), ConfigError> {
    for rel in RELATIONS {
        let Some(reason) = (rel.check)(config) else {
            continue;
        };
        let mut involved = rel.keys.iter().map(|k| {
            let (val, src) = config
                .shown
                .get(k)
                .cloned()
                .unwrap_or_else(|| (String::new(), Source::Default));
            (k.to_string(), format!("{val:?}"), src)
        });
        let (key, value, source) = involved
            .next()
            .unwrap_or_else(|| (String::new(), String::new(), Source::Default));
        return Err(ErrorDetail {
            kind: ErrorKind::Relation,
            key,
            value: Some(value),
            source,
            reason,
            related: involved.collect(),
        }
        .into());
    }
    Ok(())
}

/// Non-fatal findings across keys: always-on tools named in `DISABLED_TOOLS`, and provider
/// limits the global limit makes unreachable.
pub(super) fn warnings(config: &Config) -> Vec<String> {
    let disabled = config
        .tools
        .disabled
        .iter()
        .filter(|name| ALWAYS_ON.contains(&name.as_str()))
        .map(|name| {
            format!(
                "{} names {name}, which is always on (ignored)",
                key::DISABLED_TOOLS
            )
        });
    disabled
        .chain(provider_limits_over_global(config))
        .collect()
}

/// A provider limit above the global one can never be reached: say so, since the operator
/// who raised it expects that many calls at once.
fn provider_limits_over_global(config: &Config) -> impl Iterator<Item = String> + '_ {
    let global = config.limits.global_inflight_max;
    ProviderId::ALL.into_iter().filter_map(move |id| {
        let limit = config.providers[id].inflight_max;
        let name = match id {
            ProviderId::Kimi => key::EXAI_WS_KIMI_MAX_INFLIGHT,
            ProviderId::Glm => key::EXAI_WS_GLM_MAX_INFLIGHT,
            ProviderId::Offline => key::EXAI_WS_OFFLINE_MAX_INFLIGHT,
        };
        (limit > global).then(|| {
            format!(
                "{name}={limit} is above {}={global}: at most {global} of its calls run at once",
                key::EXAI_WS_GLOBAL_MAX_INFLIGHT
            )
        })
    })
}
