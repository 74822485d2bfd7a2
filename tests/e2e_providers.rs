//! End-to-end tests of the HTTP providers on real tokio, over real HTTP and a real WebSocket.
//!
//! The test starts its own OpenAI-compatible mock provider (`common::mock`), scripted per
//! call; a WebSocket client drives the daemon exactly as an editor would.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::mock::{KEY, Mock, Reply, rate_limited};
use common::{Client, start, wait_permits_back};
use exaid::config::{Config, ProviderId, Secret};
use serde_json::{Value, json};

/// The model's text inside a successful call's tool output (the original's JSON shape:
/// `status`, `content`, `content_type`, `metadata`...).
fn answer(result: &Value) -> String {
    let text = result["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text: {result}"));
    let output: Value =
        serde_json::from_str(text).unwrap_or_else(|_| panic!("tool output is JSON: {text}"));
    output["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content: {output}"))
        .to_string()
}

/// Call `chat` and return its terminal frame and how long it took from the send.
async fn chat(client: &mut Client, id: &str, arguments: Value) -> (Value, Duration) {
    let sent = Instant::now();
    client.call(id, "chat", arguments).await;
    let result = client.result(id).await;
    (result, sent.elapsed())
}

#[tokio::test]
async fn chat_with_a_kimi_model_answers_with_the_providers_text() {
    let mock = Mock::start(vec![Reply::Text("Hello from the mock".into())]).await;
    let daemon = start(|c| {
        mock.kimi(c);
        c.tools.streaming = false;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, _) = chat(
        &mut client,
        "c1",
        json!({"prompt": "hi", "model": "kimi-k2-turbo-preview", "temperature": 1.5}),
    )
    .await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(answer(&result), "Hello from the mock");
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 1);
    let request = &arrivals[0];
    assert_eq!(request.path, "/kimi/v1/chat/completions");
    assert_eq!(request.authorization, format!("Bearer {KEY}"));
    assert_eq!(request.body["model"], "kimi-k2-turbo-preview");
    assert_eq!(request.body["messages"][0]["role"], "system");
    assert_eq!(
        request.body["messages"][1],
        json!({"role": "user", "content": "hi"})
    );
    // Kimi accepts temperatures in [0, 1] only.
    assert_eq!(request.body["temperature"], 1.0);
    assert_eq!(request.body.get("stream"), None);
    // `auto` is Kimi now, the first configured HTTP provider.
    let (result, _) = chat(&mut client, "c2", json!({"prompt": "again"})).await;
    assert_eq!(answer(&result), "fallback", "{result}");
    assert_eq!(mock.arrivals()[1].body["model"], "kimi-k2-0905-preview");
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_the_provider_asks() {
    let mock = Mock::start(vec![
        rate_limited(vec![("retry-after", "1".into())]),
        rate_limited(vec![("retry-after", "1".into())]),
        rate_limited(vec![("retry-after-ms", "300".into())]),
        Reply::Text("finally".into()),
    ])
    .await;
    let daemon = start(|c| {
        mock.kimi(c);
        c.tools.simple_timeout_ms = 10_000;
        c.retry.attempts_max = 4;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, _) = chat(&mut client, "r1", json!({"prompt": "hi"})).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(answer(&result), "finally");
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 4);
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1].at - w[0].at).collect();
    let asked = [
        Duration::from_secs(1),
        Duration::from_secs(1),
        Duration::from_millis(300),
    ];
    for (gap, asked) in gaps.iter().zip(asked) {
        assert!(
            *gap >= asked && *gap < asked + Duration::from_millis(500),
            "asked {asked:?}, waited {gap:?} (all gaps {gaps:?})"
        );
    }
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn a_retry_after_past_the_deadline_fails_fast() {
    let mock = Mock::start(vec![rate_limited(vec![("retry-after", "30".into())])]).await;
    let daemon = start(|c| {
        mock.kimi(c);
        c.tools.simple_timeout_ms = 5_000;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, took) = chat(&mut client, "f1", json!({"prompt": "hi"})).await;
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["error"]["code"], "RATE_LIMITED", "{result}");
    assert_eq!(result["error"]["retry_after_secs"], 30, "{result}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(mock.arrivals().len(), 1);
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn glm_arrears_are_never_retried() {
    let mock = Mock::start(vec![Reply::Status(
        429,
        vec![("retry-after", "1".into())],
        r#"{"error":{"code":"1113","message":"Your account is in arrears, please recharge and try again"}}"#
            .into(),
    )])
    .await;
    let daemon = start(|c| {
        c.providers[ProviderId::Glm].api_url = mock.glm_url();
        c.providers[ProviderId::Glm].api_key = Some(Secret::new(KEY));
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, took) = chat(
        &mut client,
        "g1",
        json!({"prompt": "hi", "model": "glm-4.6"}),
    )
    .await;
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["error"]["code"], "PROVIDER_ERROR", "{result}");
    assert!(
        result["error"]["message"].as_str().unwrap().contains("glm"),
        "{result}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // Give a (wrong) retry every chance to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 1, "{arrivals:?}");
    assert_eq!(arrivals[0].path, "/glm/v4/chat/completions");
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn a_hanging_provider_times_out_at_the_deadline_and_the_request_is_aborted() {
    let mock = Mock::start(vec![Reply::Hang]).await;
    let daemon = start(|c| {
        mock.kimi(c);
        c.tools.simple_timeout_ms = 1_000;
        c.providers[ProviderId::Kimi].timeout_ms = 2_000;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, took) = chat(&mut client, "h1", json!({"prompt": "hi"})).await;
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["error"]["code"], "TIMEOUT", "{result}");
    assert!(
        took >= Duration::from_millis(1_000) && took < Duration::from_millis(1_500),
        "took {took:?}"
    );
    // The deadline dropped the attempt: the mock sees its request go away.
    let mut aborted = 0;
    for _ in 0..100 {
        aborted = mock.state.aborted.load(Ordering::SeqCst);
        if aborted == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(aborted, 1, "the provider never saw the request aborted");
    assert_eq!(mock.state.in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(mock.arrivals().len(), 1);
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn an_attempt_timeout_is_retried_within_the_deadline() {
    let mock = Mock::start(vec![Reply::Hang, Reply::Text("second try".into())]).await;
    let daemon = start(|c| {
        mock.kimi(c);
        c.tools.simple_timeout_ms = 5_000;
        c.providers[ProviderId::Kimi].timeout_ms = 1_000;
        c.retry.backoff_base_ms = 50;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, took) = chat(&mut client, "t1", json!({"prompt": "hi"})).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(answer(&result), "second try");
    assert!(took < Duration::from_millis(2_000), "took {took:?}");
    assert_eq!(mock.arrivals().len(), 2);
    assert_eq!(mock.state.aborted.load(Ordering::SeqCst), 1);
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn the_provider_never_sees_more_than_its_limit() {
    let mock = Mock::start(Vec::new()).await;
    mock.set_fallback(Reply::Slow(Duration::from_millis(60), "done".into()));
    let daemon = start(|c| {
        mock.kimi(c);
        c.providers[ProviderId::Kimi].inflight_max = 3;
        c.sessions.inflight_max = 24;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    for i in 0..24 {
        client
            .call(
                &format!("p{i}"),
                "chat",
                json!({"prompt": format!("call {i}")}),
            )
            .await;
    }
    let mut results = 0;
    while results < 24 {
        let frame = client.recv().await;
        if frame["op"] == "call_tool_res" {
            assert_eq!(frame["ok"], true, "{frame}");
            assert_eq!(answer(&frame), "done");
            results += 1;
        }
    }
    assert_eq!(mock.arrivals().len(), 24);
    let most = mock.state.in_flight_max.load(Ordering::SeqCst);
    assert!(most <= 3, "the provider saw {most} requests at once");
    assert_eq!(most, 3, "the limit should be used fully");
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn streamed_chunks_arrive_as_progress_in_order() {
    let pause = Duration::from_millis(20);
    let delta =
        |text: &str| format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"{text}"}}}}]}}"#);
    let mock = Mock::start(vec![Reply::Sse(vec![
        (Duration::ZERO, ": keep-alive\n\n".into()),
        (
            pause,
            r#"data: {"model":"kimi-k2-0905-preview","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
                .to_string()
                + "\n\n",
        ),
        // A line split across two network chunks.
        (pause, format!("data: {}\n\nda", delta("Hel"))),
        (pause, format!("ta: {}\r\n\r\n", delta("lo, "))),
        (
            pause,
            r#"data: {"choices":[{"index":0,"delta":{"content":"world"},"finish_reason":"stop"}]}"#
                .to_string()
                + "\n\n",
        ),
        (pause, "data: [DONE]\n\n".into()),
    ])])
    .await;
    let daemon = start(|c| {
        mock.kimi(c);
        c.tools.streaming = true;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("s1", "chat", json!({"prompt": "hi"})).await;
    let frames = client.until_result("s1").await;
    let chunks: Vec<&str> = frames
        .iter()
        .filter(|f| f["op"] == "progress" && f["phase"] == "streaming")
        .map(|f| f["chunk"].as_str().unwrap())
        .collect();
    assert_eq!(chunks, vec!["Hel", "lo, ", "world"], "{frames:?}");
    let result = frames.last().unwrap();
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(answer(result), "Hello, world");
    assert_eq!(mock.arrivals()[0].body["stream"], true);
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn listmodels_shows_configured_and_default_model_facts() {
    let mock = Mock::start(Vec::new()).await;
    let daemon = start(|c| {
        mock.kimi(c);
        c.providers[ProviderId::Kimi].models =
            vec!["kimi-k2-turbo-preview".to_string(), "kimi-new".to_string()];
        c.models.facts = vec![exaid::config::FactsOverride {
            model: "KIMI-K2-TURBO-PREVIEW".to_string(),
            context_tokens: Some(100_000),
            vision: None,
            web_search: Some(false),
            thinking: None,
            price_in_micro_usd: None,
            price_out_micro_usd: None,
        }];
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("lm", "listmodels", json!({})).await;
    let result = client.result("lm").await;
    let listed: Value = serde_json::from_str(&answer(&result)).unwrap();
    let facts = &listed["providers"][0]["model_facts"];
    assert_eq!(
        facts[0],
        json!({"model": "kimi-k2-turbo-preview", "context_tokens": 100_000, "vision": false,
               "web_search": false, "thinking": false, "facts": "configured"})
    );
    assert_eq!(
        facts[1],
        json!({"model": "kimi-new", "context_tokens": 32_768, "vision": false,
               "web_search": false, "thinking": false, "facts": "default"})
    );
}

#[tokio::test]
async fn listmodels_shows_each_provider_and_whether_it_is_configured() {
    let mock = Mock::start(Vec::new()).await;
    let daemon = start(|c| mock.kimi(c)).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("lm", "listmodels", json!({})).await;
    let result = client.result("lm").await;
    assert_eq!(result["ok"], true, "{result}");
    let listed: Value = serde_json::from_str(&answer(&result)).unwrap();
    let providers = listed["providers"].as_array().unwrap();
    let names: Vec<&str> = providers
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["kimi", "glm", "offline"]);
    let config = Config::defaults();
    assert_eq!(providers[0]["configured"], true);
    assert_eq!(
        providers[0]["models"],
        json!(config.providers[ProviderId::Kimi].models)
    );
    assert_eq!(
        providers[0]["default_model"],
        config.providers[ProviderId::Kimi].models[0].as_str()
    );
    assert_eq!(
        providers[0]["max_inflight"],
        config.providers[ProviderId::Kimi].inflight_max
    );
    assert_eq!(providers[1]["configured"], false);
    assert_eq!(
        providers[1]["models"],
        json!(config.providers[ProviderId::Glm].models)
    );
    assert_eq!(providers[2]["configured"], true);
    let facts = &providers[0]["model_facts"][0];
    assert_eq!(facts["model"], "kimi-k2-0905-preview", "{facts}");
    assert_eq!(facts["context_tokens"], 256_000);
    assert_eq!(
        (facts["vision"].as_bool(), facts["web_search"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(facts["facts"], "builtin");
    assert_eq!(
        providers[1]["model_facts"][0]["thinking"], true,
        "glm-4.6 thinks"
    );
    assert_eq!(listed["auto"]["provider"], "kimi");
    assert_eq!(
        listed["auto"]["model"],
        config.providers[ProviderId::Kimi].models[0].as_str()
    );
    // A model of the unconfigured provider is refused up front, naming the fix.
    let (refused, _) = chat(
        &mut client,
        "g",
        json!({"prompt": "hi", "model": "glm-4.6"}),
    )
    .await;
    assert_eq!(refused["error"]["code"], "VALIDATION_ERROR", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{refused}"
    );
    assert!(mock.arrivals().is_empty());
}

#[tokio::test]
async fn unreachable_providers_are_transport_errors_that_never_show_the_key() {
    // A port nothing listens on.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    // A plain-HTTP server spoken to over TLS: the handshake fails (and rustls is exercised).
    let mock = Mock::start(Vec::new()).await;
    for (id, url) in [
        ("closed", format!("http://{closed}/v1")),
        ("tls", format!("https://{}/kimi/v1", mock.addr)),
    ] {
        let daemon = start(|c| {
            c.providers[ProviderId::Kimi].api_url = url.clone();
            c.providers[ProviderId::Kimi].api_key = Some(Secret::new(KEY));
            c.retry.attempts_max = 2;
            c.retry.backoff_base_ms = 50;
        })
        .await;
        let (mut client, _) = Client::ready(daemon.addr).await;
        let (result, took) = chat(&mut client, id, json!({"prompt": "hi"})).await;
        assert_eq!(result["error"]["code"], "PROVIDER_ERROR", "{result}");
        let message = result["error"]["message"].as_str().unwrap();
        assert!(message.contains("transport error"), "{message}");
        assert!(message.contains(&url), "{message}");
        assert!(!result.to_string().contains(KEY), "{result}");
        assert!(took < Duration::from_secs(2), "{id} took {took:?}");
        wait_permits_back(&daemon.shared).await;
    }
    assert!(mock.arrivals().is_empty());
}

/// A Kimi answer that stops for one `$web_search` call, as Moonshot documents it.
fn kimi_search_round(call_id: &str) -> Reply {
    Reply::Json(json!({
        "model": "kimi-k2-0905-preview",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "",
            "tool_calls": [{"index": 0, "id": call_id, "type": "builtin_function",
                "function": {"name": "$web_search", "arguments": "{\"search_result\":{\"search_id\":\"s-1\"},\"usage\":{\"total_tokens\":42}}"}}]
        }}],
    }))
}

/// The whole tool output of a successful call.
fn output_of(result: &Value) -> Value {
    assert_eq!(result["ok"], true, "{result}");
    serde_json::from_str(result["text"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn kimi_web_search_answers_the_tool_call_and_asks_again() {
    let mock = Mock::start(vec![
        kimi_search_round("call-1"),
        Reply::Text("It rained.".into()),
    ])
    .await;
    let daemon = start(|c| mock.kimi(c)).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, _) = chat(&mut client, "ws", json!({"prompt": "Weather today?"})).await;
    let output = output_of(&result);
    assert_eq!(output["content"], "It rained.");
    assert_eq!(output["metadata"]["web_search"]["rounds"], 2, "{output}");
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 2);
    for arrival in &arrivals {
        assert_eq!(
            arrival.body["tools"],
            json!([{"type": "builtin_function", "function": {"name": "$web_search"}}])
        );
    }
    let first = arrivals[0].body["messages"].as_array().unwrap().clone();
    let second = arrivals[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(second.len(), first.len() + 2, "{second:?}");
    assert_eq!(second[..first.len()], first[..]);
    let assistant = &second[first.len()];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["tool_calls"][0]["id"], "call-1");
    assert_eq!(
        second[first.len() + 1],
        json!({"role": "tool", "tool_call_id": "call-1", "name": "$web_search",
               "content": "{\"search_result\":{\"search_id\":\"s-1\"},\"usage\":{\"total_tokens\":42}}"})
    );
    // Off when asked, and never for a model whose facts say no.
    chat(
        &mut client,
        "off",
        json!({"prompt": "hi", "use_websearch": false}),
    )
    .await;
    chat(
        &mut client,
        "8k",
        json!({"prompt": "hi", "model": "moonshot-v1-8k"}),
    )
    .await;
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 4);
    assert!(arrivals[2..].iter().all(|a| a.body.get("tools").is_none()));
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn kimi_tool_rounds_stop_at_their_limit() {
    let mock = Mock::start(Vec::new()).await;
    mock.set_fallback(kimi_search_round("again"));
    let daemon = start(|c| {
        mock.kimi(c);
        c.tools.tool_rounds_max = 2;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, _) = chat(&mut client, "loop", json!({"prompt": "search forever"})).await;
    assert_eq!(result["error"]["code"], "PROVIDER_ERROR", "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("EXAI_TOOL_ROUNDS_MAX"), "{message}");
    assert_eq!(mock.arrivals().len(), 2);
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn glm_web_search_is_one_round_with_its_sources_in_metadata() {
    let mock = Mock::start(vec![Reply::Json(json!({
        "model": "glm-4.6",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Per the news, yes."}}],
        "web_search": [{"title": "News", "link": "https://news.example/a", "media": "Example",
                        "content": "a long extract", "refer": "ref_1"}],
    }))])
    .await;
    let daemon = start(|c| {
        mock.kimi(c);
        c.providers[ProviderId::Kimi].api_key = None;
        c.providers[ProviderId::Glm].api_key = Some(Secret::new(KEY));
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let (result, _) = chat(
        &mut client,
        "g",
        json!({"prompt": "Is it so?", "model": "glm-4.6"}),
    )
    .await;
    let output = output_of(&result);
    assert_eq!(output["content"], "Per the news, yes.");
    assert_eq!(
        output["metadata"]["web_search"],
        json!({"rounds": 1, "sources": [{"title": "News", "link": "https://news.example/a", "media": "Example"}]})
    );
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 1);
    assert!(arrivals[0].path.starts_with("/glm/"));
    assert_eq!(
        arrivals[0].body["tools"],
        json!([{"type": "web_search", "web_search": {"enable": true, "search_engine": "search-prime", "search_result": true}}])
    );
    wait_permits_back(&daemon.shared).await;
}

#[tokio::test]
async fn analyze_searches_by_default_and_codereview_only_when_asked() {
    let mock = Mock::start(vec![
        kimi_search_round("call-a"),
        Reply::Text("Expert view.".into()),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("lib.rs"), "pub fn f() {}\n").unwrap();
    let roots = vec![root.clone()];
    let daemon = start(|c| {
        mock.kimi(c);
        c.file_access.roots = roots;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let step = json!({"step": "look", "step_number": 1, "total_steps": 1,
                      "next_step_required": false, "findings": "f",
                      "relevant_files": [root.join("lib.rs").display().to_string()]});
    client.call("a", "analyze", step.clone()).await;
    let output = output_of(&client.result("a").await);
    assert_eq!(output["metadata"]["web_search"]["rounds"], 2, "{output}");
    client.call("r", "codereview", step).await;
    let output = output_of(&client.result("r").await);
    assert!(output["metadata"].get("web_search").is_none(), "{output}");
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 3);
    assert!(
        arrivals[1].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "tool")
    );
    assert!(
        arrivals[2].body.get("tools").is_none(),
        "codereview does not search unasked"
    );
    wait_permits_back(&daemon.shared).await;
}

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
