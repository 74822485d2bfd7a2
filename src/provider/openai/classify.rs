//! What a failed answer means: the pure classification of a provider's refusal from its HTTP
//! status, its `Retry-After` / `retry-after-ms` headers and its body (Z.ai business codes
//! 1302/1303/1113, OpenAI's `insufficient_quota`, Moonshot's error types).
//!
//! Why pure: this is the model of the providers' failure semantics, the part most worth
//! testing and the part that changes when a provider documents a new code. Nothing here does
//! I/O or reads a clock; the wall clock (for HTTP-date `Retry-After`) comes in as an argument.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use crate::provider::{ProviderError, RateLimitKind};

/// The longest provider message quoted in an error, in characters: enough to say what went
/// wrong, short enough that a provider's HTML error page cannot flood a client.
pub const MESSAGE_CHARS_MAX: usize = 300;
/// The longest wait a provider may ask for. Anything longer is treated as this: a day is
/// already past every call's deadline, and it keeps the arithmetic far from overflow.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// The parts of an error body that classify it: OpenAI's `{"error": {"code", "type",
/// "message"}}`, which Moonshot and Z.ai both follow (Z.ai puts its business code in `code`,
/// as a string or a number).
#[derive(Debug, Default)]
struct ErrorBody {
    /// `error.code` as text.
    code: Option<String>,
    /// `error.type`.
    kind: Option<String>,
    /// `error.message`.
    message: Option<String>,
}

/// The error object of a body, if it is JSON with an `error` (an object, or just a message).
fn parse_error_body(body: &str) -> Option<ErrorBody> {
    let value: Value = serde_json::from_str(body.trim()).ok()?;
    let error = value.get("error")?;
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Some(match error {
        Value::String(message) => ErrorBody {
            message: Some(message.clone()),
            ..ErrorBody::default()
        },
        Value::Object(_) => ErrorBody {
            code: text(error.get("code")),
            kind: text(error.get("type")),
            message: text(error.get("message")),
        },
        _ => return None,
    })
}

/// What a failed response means, from its HTTP status, its `Retry-After` and `retry-after-ms`
/// headers, its body and the wall clock (Unix milliseconds, for HTTP-date `Retry-After`).
/// Pure: no I/O, no clock of its own.
///
/// - Quota (never retried): Z.ai business code 1113 (arrears), OpenAI's `insufficient_quota`
///   (`error.code` or `error.type`), Moonshot's `exceeded_current_quota_error`; whatever the
///   status.
/// - Rate limits (retried as the provider asks): Z.ai 1302 (concurrency) and 1303 (frequency)
///   whatever the status, then any 429 (Moonshot's `rate_limit_reached_error` naming its
///   concurrency limit is a concurrency limit; everything else is frequency). The wait is
///   `retry-after-ms`, else `Retry-After`, else (Moonshot) the "try again after N seconds"
///   of its message.
/// - 503: overloaded; other 5xx: server errors (both retried).
/// - Anything else, 4xx included: the request is wrong, not retried.
///
/// Z.ai codes: docs.z.ai/api-reference/api-code. Moonshot error types: platform.moonshot.ai,
/// chat API "error explanation".
pub fn classify_failure(
    status: u16,
    retry_after: Option<&str>,
    retry_after_ms: Option<&str>,
    body: &str,
    now_unix_ms: u64,
) -> ProviderError {
    let detail = parse_error_body(body);
    let code = detail.as_ref().and_then(|d| d.code.as_deref());
    let kind = detail.as_ref().and_then(|d| d.kind.as_deref());
    let provider_message = detail.as_ref().and_then(|d| d.message.as_deref());

    let is_quota = matches!(code, Some("1113" | "insufficient_quota"))
        || matches!(
            kind,
            Some("insufficient_quota" | "exceeded_current_quota_error")
        );
    if is_quota {
        return ProviderError::RateLimited {
            retry_after: None,
            kind: RateLimitKind::Quota,
        };
    }
    let rate_limit = match code {
        Some("1302") => Some(RateLimitKind::Concurrency),
        Some("1303") => Some(RateLimitKind::Frequency),
        _ if status == 429 => Some(
            if kind == Some("rate_limit_reached_error")
                && provider_message.is_some_and(|m| m.to_ascii_lowercase().contains("concurrency"))
            {
                RateLimitKind::Concurrency
            } else {
                RateLimitKind::Frequency
            },
        ),
        _ => None,
    };
    if let Some(kind) = rate_limit {
        let retry_after = parse_retry_after(retry_after, retry_after_ms, now_unix_ms)
            .or_else(|| provider_message.and_then(wait_named_in_message));
        return ProviderError::RateLimited { retry_after, kind };
    }

    let message = failure_message(status, detail.as_ref(), body);
    match status {
        503 => ProviderError::Overloaded(message),
        500..=599 => ProviderError::Server { status, message },
        _ => ProviderError::Client { status, message },
    }
}

/// The message of an error: the provider's `error.message` (with its code), else the start
/// of the body, else the status's name; truncated.
fn failure_message(status: u16, detail: Option<&ErrorBody>, body: &str) -> String {
    let from_body = detail.and_then(|d| {
        let message = d.message.as_deref()?;
        Some(match (&d.code, &d.kind) {
            (Some(code), _) => format!("{message} (code {code})"),
            (None, Some(kind)) => format!("{message} ({kind})"),
            (None, None) => message.to_string(),
        })
    });
    let text = from_body.unwrap_or_else(|| {
        let trimmed = body.trim();
        if trimmed.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no message")
                .to_string()
        } else {
            trimmed.to_string()
        }
    });
    truncate(&text, MESSAGE_CHARS_MAX)
}

/// `text` cut to `chars_max` characters, marked when cut.
pub(super) fn truncate(text: &str, chars_max: usize) -> String {
    match text.char_indices().nth(chars_max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}...", &text[..cut]),
    }
}

/// How long a provider asked to wait, from its headers: `retry-after-ms` (milliseconds, may be
/// fractional; takes precedence) or `Retry-After` (delta-seconds, or an HTTP date compared with
/// `now_unix_ms`; a date already past means no wait: zero). Unparseable values are ignored.
pub fn parse_retry_after(
    retry_after: Option<&str>,
    retry_after_ms: Option<&str>,
    now_unix_ms: u64,
) -> Option<Duration> {
    if let Some(wait) = retry_after_ms.and_then(|ms| non_negative_secs(ms.trim(), 1000.0)) {
        return Some(wait);
    }
    let value = retry_after?.trim();
    if value.is_empty() {
        return None;
    }
    if let Some(wait) = non_negative_secs(value, 1.0) {
        return Some(wait);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_unix_ms = u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(Duration::from_millis(at_unix_ms.saturating_sub(now_unix_ms)).min(RETRY_AFTER_MAX))
}

/// `value / per_second` seconds, when `value` is a finite non-negative decimal number.
fn non_negative_secs(value: &str, per_second: f64) -> Option<Duration> {
    // Only plain decimals: `f64::from_str` would also take "inf", "NaN" and "1e3".
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let number: f64 = value.parse().ok()?;
    let secs = number / per_second;
    Some(Duration::try_from_secs_f64(secs).ok()?.min(RETRY_AFTER_MAX))
}

/// Moonshot names the wait in its rate-limit message ("... please try again after 3
/// seconds"); used only when no header says it.
fn wait_named_in_message(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let (_, rest) = lower.split_once("try again after ")?;
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = rest[number.len()..].trim_start();
    if !unit.starts_with("second") {
        return None;
    }
    non_negative_secs(&number, 1.0)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{NOW_MS, rate_limited};
    use super::*;

    #[test]
    fn retry_after_seconds_and_milliseconds() {
        assert_eq!(
            parse_retry_after(Some("2"), None, NOW_MS),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(Some(" 0 "), None, NOW_MS),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(None, Some("1500"), NOW_MS),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(None, Some("250.5"), NOW_MS),
            Some(Duration::from_micros(250_500))
        );
        // retry-after-ms wins when both are present.
        assert_eq!(
            parse_retry_after(Some("30"), Some("200"), NOW_MS),
            Some(Duration::from_millis(200))
        );
        // An unreadable retry-after-ms falls back to Retry-After.
        assert_eq!(
            parse_retry_after(Some("3"), Some("soon"), NOW_MS),
            Some(Duration::from_secs(3))
        );
        for junk in ["-1", "inf", "NaN", "1e3", "", "soon"] {
            assert_eq!(parse_retry_after(Some(junk), None, NOW_MS), None, "{junk}");
            assert_eq!(parse_retry_after(None, Some(junk), NOW_MS), None, "{junk}");
        }
        assert_eq!(parse_retry_after(None, None, NOW_MS), None);
        // Absurd waits are capped.
        assert_eq!(
            parse_retry_after(Some("99999999999999"), None, NOW_MS),
            Some(RETRY_AFTER_MAX)
        );
    }

    #[test]
    fn retry_after_http_dates() {
        // 7 s after NOW_MS.
        assert_eq!(
            parse_retry_after(Some("Thu, 06 Nov 2025 08:49:44 GMT"), None, NOW_MS),
            Some(Duration::from_secs(7))
        );
        // Sub-second clock: the date is 6.5 s away.
        assert_eq!(
            parse_retry_after(Some("Thu, 06 Nov 2025 08:49:44 GMT"), None, NOW_MS + 500),
            Some(Duration::from_millis(6500))
        );
        // In the past: no wait.
        assert_eq!(
            parse_retry_after(Some("Thu, 06 Nov 2025 08:00:00 GMT"), None, NOW_MS),
            Some(Duration::ZERO)
        );
        // The obsolete formats HTTP still allows.
        assert_eq!(
            parse_retry_after(Some("Thursday, 06-Nov-25 08:49:47 GMT"), None, NOW_MS),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after(Some("Thu Nov  6 08:49:38 2025"), None, NOW_MS),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            parse_retry_after(Some("Thu, 32 Nov 2025 08:49:44 GMT"), None, NOW_MS),
            None
        );
    }

    #[test]
    fn plain_429_is_a_frequency_limit_with_its_wait() {
        let error = classify_failure(429, Some("1"), None, "", NOW_MS);
        assert_eq!(
            rate_limited(&error),
            (Some(Duration::from_secs(1)), RateLimitKind::Frequency)
        );
        assert!(error.is_retryable());
        let error = classify_failure(429, None, None, "Too Many Requests", NOW_MS);
        assert_eq!(rate_limited(&error), (None, RateLimitKind::Frequency));
        let error = classify_failure(429, Some("9"), Some("120"), "{}", NOW_MS);
        assert_eq!(rate_limited(&error).0, Some(Duration::from_millis(120)));
    }

    #[test]
    fn glm_business_codes() {
        for (status, body) in [
            (
                429,
                r#"{"error":{"code":"1302","message":"High concurrency"}}"#,
            ),
            (
                429,
                r#"{"error":{"code":1302,"message":"High concurrency"}}"#,
            ),
            (
                400,
                r#"{"error":{"code":"1302","message":"High concurrency"}}"#,
            ),
        ] {
            let error = classify_failure(status, Some("2"), None, body, NOW_MS);
            assert_eq!(
                rate_limited(&error),
                (Some(Duration::from_secs(2)), RateLimitKind::Concurrency),
                "{status} {body}"
            );
            assert!(error.is_retryable());
        }
        let error = classify_failure(
            429,
            None,
            None,
            r#"{"error":{"code":"1303","message":"High frequency"}}"#,
            NOW_MS,
        );
        assert_eq!(rate_limited(&error), (None, RateLimitKind::Frequency));
        for (status, body) in [
            (
                429,
                r#"{"error":{"code":"1113","message":"Your account is in arrears"}}"#,
            ),
            (
                429,
                r#"{"error":{"code":1113,"message":"Your account is in arrears"}}"#,
            ),
            (402, r#"{"error":{"code":"1113","message":"arrears"}}"#),
            (200, r#"{"error":{"code":"1113","message":"arrears"}}"#),
        ] {
            let error = classify_failure(status, Some("5"), None, body, NOW_MS);
            assert_eq!(
                rate_limited(&error),
                (None, RateLimitKind::Quota),
                "{status} {body}"
            );
            assert!(!error.is_retryable(), "arrears are never retried");
        }
    }

    #[test]
    fn openai_and_moonshot_quota() {
        for body in [
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
            r#"{"error":{"message":"quota","type":"invalid_request_error","code":"insufficient_quota"}}"#,
            r#"{"error":{"message":"quota","type":"insufficient_quota"}}"#,
            r#"{"error":{"message":"You exceeded your current token quota","type":"exceeded_current_quota_error"}}"#,
        ] {
            let error = classify_failure(429, Some("1"), None, body, NOW_MS);
            assert_eq!(rate_limited(&error), (None, RateLimitKind::Quota), "{body}");
            assert!(!error.is_retryable());
        }
    }

    #[test]
    fn moonshot_rate_limits() {
        let body = r#"{"error":{"message":"Your account org-1<ak-1> request reached organization max concurrency: 3, please try again after 2 seconds","type":"rate_limit_reached_error"}}"#;
        let error = classify_failure(429, None, None, body, NOW_MS);
        assert_eq!(
            rate_limited(&error),
            (Some(Duration::from_secs(2)), RateLimitKind::Concurrency)
        );
        // A header beats the message.
        let error = classify_failure(429, Some("7"), None, body, NOW_MS);
        assert_eq!(rate_limited(&error).0, Some(Duration::from_secs(7)));
        let body = r#"{"error":{"message":"Your account org-1<ak-1> request reached organization max RPM: 20, please try again after 1 seconds","type":"rate_limit_reached_error"}}"#;
        assert_eq!(
            rate_limited(&classify_failure(429, None, None, body, NOW_MS)),
            (Some(Duration::from_secs(1)), RateLimitKind::Frequency)
        );
        let body = r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"engine_overloaded_error"}}"#;
        assert_eq!(
            rate_limited(&classify_failure(429, None, None, body, NOW_MS)),
            (None, RateLimitKind::Frequency)
        );
    }

    #[test]
    fn server_client_and_overload() {
        let error = classify_failure(
            503,
            None,
            None,
            r#"{"error":{"message":"busy","type":"server_error"}}"#,
            NOW_MS,
        );
        assert_eq!(
            error,
            ProviderError::Overloaded("busy (server_error)".into())
        );
        assert!(error.is_retryable());
        let error = classify_failure(502, None, None, "<html>Bad Gateway</html>", NOW_MS);
        assert_eq!(
            error,
            ProviderError::Server {
                status: 502,
                message: "<html>Bad Gateway</html>".into()
            }
        );
        assert!(error.is_retryable());
        let error = classify_failure(500, None, None, "", NOW_MS);
        assert_eq!(
            error,
            ProviderError::Server {
                status: 500,
                message: "Internal Server Error".into()
            }
        );
        let error = classify_failure(
            401,
            None,
            None,
            r#"{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}"#,
            NOW_MS,
        );
        assert_eq!(
            error,
            ProviderError::Client {
                status: 401,
                message: "Invalid Authentication (invalid_authentication_error)".into()
            }
        );
        assert!(!error.is_retryable());
        let error = classify_failure(
            400,
            None,
            None,
            r#"{"error":{"code":"1211","message":"Model does not exist"}}"#,
            NOW_MS,
        );
        assert_eq!(
            error,
            ProviderError::Client {
                status: 400,
                message: "Model does not exist (code 1211)".into()
            }
        );
        let error = classify_failure(404, None, None, r#"{"error":"no such route"}"#, NOW_MS);
        assert_eq!(
            error,
            ProviderError::Client {
                status: 404,
                message: "no such route".into()
            }
        );
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = "é".repeat(1000);
        let body = format!(r#"{{"error":{{"message":"{long}"}}}}"#);
        match classify_failure(400, None, None, &body, NOW_MS) {
            ProviderError::Client { message, .. } => {
                assert_eq!(message.chars().count(), MESSAGE_CHARS_MAX + 3);
                assert!(message.ends_with("..."));
            }
            other => panic!("{other:?}"),
        }
    }
}
