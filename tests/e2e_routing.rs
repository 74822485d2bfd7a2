//! End-to-end tests of routing under rate limits, on real tokio against the HTTP mock
//! provider: `auto` by task and failover, usage and cost, rate budgets, several keys, and
//! admission that isolates providers and refuses early (README "Routing and failover").

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::mock::{KEY, Mock, Reply, kimi_search_round, rate_limited};
use common::{Client, answer, chat, output_of, start, wait_permits_back};
use exaid::config::{ProviderId, Secret};
use serde_json::json;

/// A whole completion that reports its usage.
fn with_usage(text: &str, model: &str, prompt: u64, completion: u64) -> Reply {
    let mut body = common::mock::completion(text, model);
    body["usage"] = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion});
    Reply::Json(body)
}

#[tokio::test]
async fn an_auto_call_in_a_long_kimi_storm_is_answered_by_glm_and_says_so() {
    let storm = || rate_limited(vec![("retry-after", "900".into())]);
    let mock = Mock::start(vec![storm(), with_usage("GLM answers", "glm-4.6", 11, 7)]).await;
    let daemon = start(|c| {
        mock.both(c);
        c.models.facts = exaid::config::Config::load(&exaid::config::Layers {
            env: vec![(
                "EXAI_MODEL_FACTS".to_string(),
                "glm-4.6:price_in=0.6,price_out=2.2".to_string(),
            )],
            ..exaid::config::Layers::default()
        })
        .unwrap()
        .config
        .models
        .facts;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, took) = chat(&mut client, "a1", json!({"prompt": "hi"})).await;
    let out = output_of(&result);
    assert_eq!(out["content"], "GLM answers");
    assert_eq!(out["metadata"]["provider_used"], "glm", "{out}");
    assert_eq!(out["metadata"]["model_used"], "glm-4.6");
    let left = &out["metadata"]["fallback"][0];
    assert_eq!(left["provider"], "kimi");
    assert!(left["reason"].as_str().unwrap().contains("900"), "{left}");
    assert_eq!(
        out["metadata"]["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    );
    assert!(
        took < Duration::from_secs(5),
        "no wait for the 900 s: {took:?}"
    );
    let cost = out["metadata"]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - 0.000_022).abs() < 1e-12,
        "11 x $0.6 + 7 x $2.2 per million: {cost}"
    );
    let paths: Vec<String> = mock.arrivals().iter().map(|a| a.path.clone()).collect();
    assert_eq!(
        paths,
        ["/kimi/v1/chat/completions", "/glm/v4/chat/completions"]
    );
    // A model the caller names is never replaced: Kimi is still cooling down.
    let (result, _) = chat(
        &mut client,
        "a2",
        json!({"prompt": "hi", "model": "kimi-k2-0905-preview"}),
    )
    .await;
    assert_eq!(result["error"]["code"], "RATE_LIMITED", "{result}");
    assert_eq!(
        mock.arrivals().len(),
        2,
        "neither Kimi (cooling) nor GLM was called"
    );
    // While Kimi cools down, routing starts `auto` calls on GLM at once.
    mock.set_fallback(with_usage("GLM again", "glm-4.6", 3, 2));
    let (result, _) = chat(&mut client, "a3", json!({"prompt": "again"})).await;
    let out = output_of(&result);
    assert_eq!(out["metadata"]["provider_used"], "glm", "{out}");
    assert!(out["metadata"].get("fallback").is_none(), "{out}");
    // Prometheus counts the tokens.
    let text = daemon.metrics.as_ref().unwrap().render(&daemon.shared);
    assert!(
        text.contains(r#"exaid_tokens_total{provider="glm",model="glm-4.6",kind="prompt"} 14"#),
        "{text}"
    );
    assert!(
        text.contains(r#"exaid_cost_usd_total{provider="glm",model="glm-4.6"}"#),
        "{text}"
    );
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn usage_is_read_from_the_final_stream_event_and_summed_over_tool_rounds() {
    let usage_event = json!({"model": "kimi-k2-0905-preview", "choices": [],
                             "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}});
    let delta = json!({"choices": [{"index": 0, "delta": {"content": "streamed"}, "finish_reason": "stop"}]});
    let mut round = kimi_search_round("call-u");
    if let Reply::Json(body) = &mut round {
        body["usage"] = json!({"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11});
    }
    let mock = Mock::start(vec![
        Reply::Sse(vec![
            (Duration::ZERO, format!("data: {delta}\n\n")),
            (Duration::ZERO, format!("data: {usage_event}\n\n")),
            (Duration::ZERO, "data: [DONE]\n\n".to_string()),
        ]),
        round,
        with_usage("searched", "kimi-k2-0905-preview", 20, 3),
    ])
    .await;
    let daemon = start(|c| mock.kimi(c)).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, _) = chat(
        &mut client,
        "u1",
        json!({"prompt": "hi", "use_websearch": false}),
    )
    .await;
    let out = output_of(&result);
    assert_eq!(out["content"], "streamed");
    assert_eq!(out["metadata"]["usage"]["total_tokens"], 9, "{out}");
    let (result, _) = chat(&mut client, "u2", json!({"prompt": "search"})).await;
    let out = output_of(&result);
    assert_eq!(out["metadata"]["web_search"]["rounds"], 2, "{out}");
    assert_eq!(
        out["metadata"]["usage"],
        json!({"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34})
    );
}

#[tokio::test]
async fn calls_queued_for_a_hung_provider_hold_no_global_permit_another_provider_needs() {
    // Two Kimi attempts hang; four more Kimi calls queue for Kimi's two permits. With four
    // global permits, a GLM call must still start at once: the queued Kimi calls hold only
    // their session permits (session, provider, then global).
    let mock = Mock::start(vec![Reply::Hang, Reply::Hang]).await;
    mock.set_fallback(Reply::Text("GLM is free".into()));
    let daemon = start(|c| {
        mock.both(c);
        c.providers[ProviderId::Kimi].inflight_max = 2;
        c.limits.global_inflight_max = 4;
        c.sessions.inflight_max = 16;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    for i in 0..6 {
        let arguments = json!({"prompt": format!("hang {i}"), "model": "kimi-k2-0905-preview"});
        client.call(&format!("k{i}"), "chat", arguments).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = Instant::now();
    client
        .call("g", "chat", json!({"prompt": "quick", "model": "glm-4.6"}))
        .await;
    let result = client.result("g").await;
    let waited = sent.elapsed();
    assert_eq!(answer(&result), "GLM is free", "{result}");
    assert!(
        waited < Duration::from_secs(2),
        "the GLM call waited {waited:?}"
    );
    assert_eq!(
        mock.state.in_flight.load(Ordering::SeqCst),
        2,
        "Kimi saw only its limit"
    );
}

#[tokio::test]
async fn a_spent_request_budget_refuses_before_the_provider_sees_the_call() {
    let mock = Mock::start(Vec::new()).await;
    let daemon = start(|c| {
        mock.both(c);
        c.providers[ProviderId::Kimi].rpm = 2;
        c.tools.simple_timeout_ms = 10_000;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let named = json!({"prompt": "hi", "model": "kimi-k2-0905-preview"});
    for id in ["b1", "b2"] {
        let (result, _) = chat(&mut client, id, named.clone()).await;
        assert_eq!(result["ok"], true, "{result}");
    }
    let (result, took) = chat(&mut client, "b3", named).await;
    assert_eq!(result["error"]["code"], "OVER_CAPACITY", "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("EXAI_KIMI_RPM") && message.contains("2 requests a minute"),
        "{message}"
    );
    assert!(
        result["error"]["retry_after_secs"].as_u64().unwrap() >= 50,
        "{result}"
    );
    assert!(took < Duration::from_secs(2), "refused at once: {took:?}");
    assert_eq!(mock.arrivals().len(), 2, "Kimi never saw the third");
    // An `auto` call goes to GLM instead.
    let (result, _) = chat(&mut client, "b4", json!({"prompt": "hi"})).await;
    let out = output_of(&result);
    assert_eq!(out["metadata"]["provider_used"], "glm", "{out}");
}

#[tokio::test]
async fn two_kimi_keys_share_the_load_and_cool_down_separately() {
    const SECOND: &str = "sk-test-second-key-0000";
    let mock = Mock::start(vec![rate_limited(vec![("retry-after", "900".into())])]).await;
    mock.set_fallback(Reply::Slow(Duration::from_millis(300), "answered".into()));
    let daemon = start(|c| {
        mock.kimi(c);
        c.providers[ProviderId::Kimi].api_keys = Some(Secret::new(SECOND));
        c.providers[ProviderId::Kimi].inflight_max = 1;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let named = json!({"prompt": "hi", "model": "kimi-k2-0905-preview"});
    // The first key answers 429 for 15 minutes: that key cools, the call moves to the second.
    let (result, _) = chat(&mut client, "k1", named.clone()).await;
    assert_eq!(answer(&result), "answered", "{result}");
    let keys: Vec<String> = mock
        .arrivals()
        .iter()
        .map(|a| a.authorization.clone())
        .collect();
    assert_eq!(keys, [format!("Bearer {KEY}"), format!("Bearer {SECOND}")]);
    // The cooling key is never called again while it cools.
    let (result, _) = chat(&mut client, "k2", named.clone()).await;
    assert_eq!(answer(&result), "answered", "{result}");
    assert_eq!(mock.arrivals()[2].authorization, format!("Bearer {SECOND}"));
    // Each key has its own limit, named by index.
    let health = serde_json::to_string(&exaid::health::snapshot(&daemon.shared)).unwrap();
    assert!(health.contains("provider:kimi#2"), "{health}");
    assert!(!health.contains(SECOND), "keys are never shown");
}

#[tokio::test]
async fn calls_go_to_the_key_with_capacity() {
    const SECOND: &str = "sk-test-second-key-0000";
    let mock = Mock::start(Vec::new()).await;
    mock.set_fallback(Reply::Slow(Duration::from_millis(400), "answered".into()));
    let daemon = start(|c| {
        mock.kimi(c);
        c.providers[ProviderId::Kimi].api_keys = Some(Secret::new(SECOND));
        c.providers[ProviderId::Kimi].inflight_max = 1;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let named = json!({"prompt": "hi", "model": "kimi-k2-0905-preview"});
    client.call("p1", "chat", named.clone()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.call("p2", "chat", named).await;
    for id in ["p1", "p2"] {
        assert_eq!(answer(&client.result(id).await), "answered");
    }
    let mut keys: Vec<String> = mock
        .arrivals()
        .iter()
        .map(|a| a.authorization.clone())
        .collect();
    keys.sort();
    assert_eq!(keys, [format!("Bearer {KEY}"), format!("Bearer {SECOND}")]);
    assert_eq!(
        mock.state.in_flight_max.load(Ordering::SeqCst),
        2,
        "both at once"
    );
}

#[tokio::test]
async fn a_call_whose_estimated_wait_cannot_fit_is_refused_at_once_with_an_honest_retry_after() {
    // One Kimi permit held 1.5 s a call, and 2.5 s of queue timeout: the first call behind the
    // running one fits (about 1.5 s), the second (about 3 s) cannot and is refused at once,
    // not after waiting the whole timeout.
    let mock = Mock::start(Vec::new()).await;
    mock.set_fallback(Reply::Slow(Duration::from_millis(1500), "slow".into()));
    let daemon = start(|c| {
        mock.kimi(c);
        c.providers[ProviderId::Kimi].inflight_max = 1;
        c.limits.queue_timeout_ms = 2_500;
        c.sessions.inflight_max = 16;
        c.tools.simple_timeout_ms = 20_000;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let named = json!({"prompt": "hi", "model": "kimi-k2-0905-preview"});
    // Before any hold time is measured nobody is refused early: this one measures it.
    let (result, _) = chat(&mut client, "measure", named.clone()).await;
    assert_eq!(answer(&result), "slow", "{result}");
    client.call("running", "chat", named.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.call("fits", "chat", named.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (refused, took) = chat(&mut client, "hopeless", named).await;
    assert_eq!(refused["error"]["code"], "OVER_CAPACITY", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("provider:kimi") && message.contains("estimated"),
        "{message}"
    );
    assert!(took < Duration::from_secs(1), "refused at once: {took:?}");
    let retry_after_secs = refused["error"]["retry_after_secs"].as_u64().unwrap();
    assert!(
        (3..=4).contains(&retry_after_secs),
        "two holds of 1.5 s ahead: {refused}"
    );
    for id in ["running", "fits"] {
        assert_eq!(answer(&client.result(id).await), "slow");
    }
    assert_eq!(mock.arrivals().len(), 3, "Kimi never saw the refused call");
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn a_spent_daily_budget_refuses_naming_it_and_its_reset_and_auto_moves_on() {
    let mock = Mock::start(vec![with_usage("first", "kimi-k2-0905-preview", 80, 40)]).await;
    mock.set_fallback(Reply::Text("from GLM".into()));
    let daemon = start(|c| {
        mock.both(c);
        c.providers[ProviderId::Kimi].tokens_per_day = 100;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let named = json!({"prompt": "hi", "model": "kimi-k2-0905-preview"});
    // The day's first call always fits; it reports 120 tokens, past the budget of 100.
    let (result, _) = chat(&mut client, "d1", named.clone()).await;
    assert_eq!(answer(&result), "first", "{result}");
    let (refused, took) = chat(&mut client, "d2", named).await;
    assert_eq!(refused["error"]["code"], "OVER_CAPACITY", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("EXAI_KIMI_TOKENS_PER_DAY = 100")
            && message.contains("120 tokens used")
            && message.contains("T00:00:00Z"),
        "{message}"
    );
    let retry_after_secs = refused["error"]["retry_after_secs"].as_u64().unwrap();
    assert!((1..=86_400).contains(&retry_after_secs), "{refused}");
    assert_eq!(
        refused["error"]["details"]["budget"],
        "EXAI_KIMI_TOKENS_PER_DAY"
    );
    assert!(took < Duration::from_secs(1), "refused at once: {took:?}");
    assert_eq!(mock.arrivals().len(), 1, "Kimi never saw the refused call");
    // An `auto` call moves to GLM and says why.
    let (result, _) = chat(&mut client, "d3", json!({"prompt": "hi"})).await;
    let out = output_of(&result);
    assert_eq!(out["metadata"]["provider_used"], "glm", "{out}");
    let reason = out["metadata"]["fallback"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("daily token budget"), "{out}");
    // /status shows today's usage per provider.
    let status = exaid::operator::http::status_json(&daemon.shared);
    let kimi = status["usage_today"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["provider"] == "kimi")
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(
        (
            &kimi["tokens_used"],
            &kimi["requests"],
            &kimi["tokens_per_day"]
        ),
        (&json!(120), &json!(1), &json!(100)),
        "{status}"
    );
    assert_eq!(kimi["tokens_in_flight"], 0, "nothing left reserved");
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn an_auto_call_that_continues_a_conversation_keeps_its_model() {
    let mock = Mock::start(Vec::new()).await;
    mock.set_fallback(Reply::Text("answered".into()));
    let daemon = start(|c| mock.both(c)).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    // The conversation starts on GLM, named; `auto` alone would pick Kimi.
    let (result, _) = chat(
        &mut client,
        "c1",
        json!({"prompt": "hi", "model": "glm-4.6"}),
    )
    .await;
    let out = output_of(&result);
    let id = out["continuation_offer"]["continuation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let (result, _) = chat(
        &mut client,
        "c2",
        json!({"prompt": "and then?", "continuation_id": id}),
    )
    .await;
    let out = output_of(&result);
    assert_eq!(out["metadata"]["model_used"], "glm-4.6", "{out}");
    // A new conversation is routed as usual.
    let (result, _) = chat(&mut client, "c3", json!({"prompt": "new"})).await;
    let out = output_of(&result);
    assert_eq!(out["metadata"]["provider_used"], "kimi", "{out}");
    let models: Vec<String> = mock
        .arrivals()
        .iter()
        .map(|a| a.body["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(models, ["glm-4.6", "glm-4.6", "kimi-k2-0905-preview"]);
    wait_permits_back(&daemon.shared).await;
}
