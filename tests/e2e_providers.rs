//! End-to-end tests of the HTTP providers on real tokio, over real HTTP and a real WebSocket.
//!
//! The test starts its own OpenAI-compatible mock provider (`common::mock`), scripted per
//! call; a WebSocket client drives the daemon exactly as an editor would.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::mock::{KEY, Mock, Reply, kimi_search_round, rate_limited};
use common::{Client, answer, chat, output_of, start, wait_permits_back};
use exaid::config::{Config, ProviderId, Secret};
use serde_json::{Value, json};

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
