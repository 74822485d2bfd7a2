//! A battery of hostile inputs, end to end on real tokio. After every one, the daemon still
//! serves a normal client; every violation gets an error frame or a close code naming the
//! limit.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, Event, TOKEN, start};
use futures_util::SinkExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// A normal client still gets a normal answer.
async fn still_serves(addr: SocketAddr) {
    let (mut client, _) = Client::ready(addr).await;
    client.call("ok", "version", json!({})).await;
    let result = client.result("ok").await;
    assert_eq!(result["ok"], true, "the daemon stopped serving: {result}");
}

#[tokio::test]
async fn oversized_and_binary_frames() {
    let daemon = start(|c| c.limits.frame_bytes_max = 4096).await;
    // Oversized before hello.
    let mut client = Client::connect(daemon.addr).await;
    client.send_text(&"x".repeat(10_000)).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("EXAI_WS_MAX_BYTES"));
    still_serves(daemon.addr).await;
    // Binary before hello: not JSON.
    let mut client = Client::connect(daemon.addr).await;
    client
        .ws
        .send(Message::binary(vec![0u8; 64]))
        .await
        .unwrap();
    assert_eq!(client.expect_close().await.0, 4000);
    // Binary after hello: an error frame, and the connection goes on.
    let (mut client, _) = Client::ready(daemon.addr).await;
    client
        .ws
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(client.recv().await["error"]["code"], "PROTOCOL_ERROR");
    client.call("after", "version", json!({})).await;
    assert_eq!(client.result("after").await["ok"], true);
    still_serves(daemon.addr).await;
}

#[tokio::test]
async fn deep_nesting_wrong_types_and_long_strings() {
    let daemon = start(|_| {}).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    // Deeper than serde_json's own recursion limit: not even JSON to us.
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    client.send_text(&deep).await;
    assert_eq!(client.recv().await["error"]["code"], "PROTOCOL_ERROR");
    // Deeper than EXAI_WS_JSON_DEPTH_MAX but valid JSON: refused, naming the limit and request.
    let nested = format!(
        r#"{{"op":"call_tool","request_id":"deep","name":"chat","arguments":{{"x":{}1{}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    client.send_text(&nested).await;
    let refused = client.recv().await;
    assert_eq!(refused["request_id"], "deep");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("EXAI_WS_JSON_DEPTH_MAX"),
        "{refused}"
    );
    // Wrong types everywhere.
    for frame in [
        json!({"op": 5}),
        json!({"op": "call_tool", "request_id": {"a": 1}, "name": "chat"}),
        json!({"op": "call_tool", "request_id": "t", "name": ["chat"]}),
        json!({"op": "call_tool", "request_id": "t", "name": "chat", "arguments": [1, 2]}),
        json!({"op": "ack", "seq": -1}),
        json!({"op": "cancel"}),
        json!("just a string"),
        json!(null),
    ] {
        client.send(frame.clone()).await;
        let reply = client.recv().await;
        assert!(reply["error"]["code"].is_string(), "{frame} got {reply}");
    }
    // A request id over its limit.
    client
        .send(json!({"op": "ping", "request_id": "r".repeat(1000)}))
        .await;
    let reply = client.recv().await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("EXAI_WS_REQUEST_ID_BYTES_MAX")
    );
    // A prompt over 100,000 characters.
    client
        .call("long", "chat", json!({"prompt": "p".repeat(100_001)}))
        .await;
    let reply = client.result("long").await;
    assert_eq!(reply["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(reply["error"]["details"]["field"], "prompt");
    client.call("fine", "version", json!({})).await;
    assert_eq!(client.result("fine").await["ok"], true);
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_only_that_connection() {
    let daemon = start(|_| {}).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let raw = Frame::message(vec![0xffu8, 0xfe, 0x7b], OpCode::Data(Data::Text), true);
    let _ = client.ws.send(Message::Frame(raw)).await;
    match client.next_event().await {
        Event::Closed(code, _) => {
            assert!(code == 1007 || code == 1006 || code == 1005, "code {code}")
        }
        Event::Frame(frame) => assert!(frame["error"]["code"].is_string(), "{frame}"),
    }
    still_serves(daemon.addr).await;
}

#[tokio::test]
async fn a_flood_is_refused_then_closed_and_others_are_served() {
    let daemon = start(|c| {
        c.sessions.rate_per_sec = 50;
        c.sessions.burst = 100;
    })
    .await;
    let (mut flooder, _) = Client::ready(daemon.addr).await;
    for i in 0..400 {
        if flooder
            .ws
            .send(Message::text(format!("{{garbage {i}")))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut over_capacity = 0;
    let (code, reason) = loop {
        match flooder.next_event().await {
            Event::Frame(frame) => {
                if frame["error"]["code"] == "OVER_CAPACITY" {
                    over_capacity += 1;
                    assert!(frame["error"]["retry_after_secs"].as_u64().unwrap() >= 1);
                    assert!(
                        frame["error"]["message"]
                            .as_str()
                            .unwrap()
                            .contains("EXAI_WS_SESSION_RATE")
                    );
                }
            }
            Event::Closed(code, reason) => break (code, reason),
        }
    };
    assert!(
        over_capacity > 0,
        "excess frames are refused with OVER_CAPACITY first"
    );
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("EXAI_WS_SESSION_RATE"), "{reason}");
    still_serves(daemon.addr).await;
}

#[tokio::test]
async fn sockets_that_never_say_hello_are_closed_and_others_are_served() {
    let daemon = start(|c| {
        c.connections.hello_timeout_ms = 300;
    })
    .await;
    // Raw TCP that never even upgrades, and WebSockets that never say hello.
    let mut raw = Vec::new();
    for _ in 0..10 {
        let mut stream = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        raw.push(stream);
    }
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(Client::connect(daemon.addr).await);
    }
    still_serves(daemon.addr).await;
    for mut client in silent {
        assert_eq!(client.expect_close().await.0, 4002);
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        exaid::health::snapshot(&daemon.shared).connections,
        0,
        "every idle socket was let go"
    );
    drop(raw);
    still_serves(daemon.addr).await;
}

#[tokio::test]
async fn connections_per_address_are_limited_with_1008() {
    let daemon = start(|c| c.connections.per_loopback_max = 2).await;
    let (_a, _) = Client::ready(daemon.addr).await;
    let (_b, _) = Client::ready(daemon.addr).await;
    // The limit counts authenticated connections: the third is refused after its hello.
    let mut third = Client::connect(daemon.addr).await;
    third.send(json!({"op": "hello", "token": TOKEN})).await;
    let (code, reason) = third.expect_close().await;
    assert_eq!(code, 1008);
    assert!(
        reason.contains("EXAI_WS_MAX_CONNECTIONS_LOOPBACK=2"),
        "{reason}"
    );
    drop(_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    still_serves(daemon.addr).await;
}

#[tokio::test]
async fn many_local_clients_at_once_fit_the_loopback_default() {
    let daemon = start(|_| {}).await;
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(Client::ready(daemon.addr).await.0);
    }
    assert_eq!(exaid::health::snapshot(&daemon.shared).connections, 40);
    still_serves(daemon.addr).await;
}

#[tokio::test]
async fn a_flood_of_sockets_before_hello_never_locks_out_a_client() {
    let daemon = start(|c| {
        c.connections.pending_hellos_max = 16;
        // Long enough that only the pool's eviction frees the flood's sockets.
        c.connections.hello_timeout_ms = 60_000;
    })
    .await;
    let addr = daemon.addr;
    // An abuser that keeps opening sockets that never say hello (half raw TCP, half
    // WebSocket), one a millisecond, and holds every one.
    let flood = tokio::spawn(async move {
        let mut held_raw = Vec::new();
        let mut held_ws = Vec::new();
        for i in 0..600 {
            if i % 2 == 0 {
                held_raw.push(tokio::net::TcpStream::connect(addr).await.unwrap());
            } else {
                held_ws.push(Client::connect(addr).await);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (held_raw, held_ws)
    });
    // Meanwhile a normal client comes and goes, and is served every time.
    let mut waits = Vec::new();
    while !flood.is_finished() {
        let started = std::time::Instant::now();
        still_serves(addr).await;
        waits.push(started.elapsed());
    }
    let (_raw, mut silent) = flood.await.unwrap();
    waits.sort();
    let worst = *waits.last().unwrap();
    eprintln!(
        "normal client beside a pre-hello flood: {} calls, median {:?}, worst {:?}",
        waits.len(),
        waits[waits.len() / 2],
        worst
    );
    assert!(waits.len() >= 3, "the flood ran too fast to measure");
    assert!(worst < Duration::from_secs(5), "a client waited {worst:?}");
    let health = exaid::health::snapshot(&daemon.shared);
    assert!(health.pending_hellos <= 16, "{health:?}");
    assert!(health.pending_hellos_evicted > 500, "{health:?}");
    // An evicted WebSocket is told why.
    let (code, reason) = silent[0].expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("EXAI_WS_MAX_PENDING_HELLOS=16"), "{reason}");
}

/// A minimal HTTP/1.1 GET: the status code.
async fn http_status(addr: SocketAddr, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn silent_sockets_on_the_http_port_never_lock_out_a_client() {
    let daemon = start(|c| {
        c.server.http_connections_max = 32;
        c.server.http_header_timeout_ms = 2_000;
    })
    .await;
    let http = exaid::rt::tokio::serve_http(
        "127.0.0.1:0".parse().unwrap(),
        daemon.routes.clone(),
        exaid::operator::http::limits(&daemon.shared.config.server),
        std::future::pending(),
    )
    .await
    .unwrap();
    // Far more silent sockets than the cap, and some that start a request and stall.
    let mut silent = Vec::new();
    for i in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(http).await.unwrap();
        if i % 3 == 0 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\n")
                .await
                .unwrap();
        }
        silent.push(stream);
    }
    for _ in 0..20 {
        let started = std::time::Instant::now();
        assert_eq!(http_status(http, "/healthz").await, 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    still_serves(daemon.addr).await;
    // The header timeout lets go of whatever the cap did not close already.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut closed = 0;
    for stream in &mut silent {
        // Closed: reading to the end finishes (EOF or reset), whatever was written first.
        let mut rest = Vec::new();
        let read = tokio::io::AsyncReadExt::read_to_end(stream, &mut rest);
        if tokio::time::timeout(Duration::from_millis(100), read)
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, silent.len(), "every silent socket was let go");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_can_resume() {
    let daemon = start(|c| {
        c.connections.write_timeout_ms = 500;
        c.sessions.rate_per_sec = 100_000;
        c.sessions.burst = 100_000;
        c.sessions.outbox_frames_max = 256;
    })
    .await;
    let (mut reader, hello) = Client::ready(daemon.addr).await;
    // Ask for far more than the socket buffers hold, and never read.
    for i in 0..3_000 {
        let frame = json!({"op": "list_tools", "request_id": format!("l{i}")});
        if reader
            .ws
            .send(Message::text(frame.to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut detached = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if exaid::health::snapshot(&daemon.shared).sessions_attached == 0 {
            detached = true;
            break;
        }
    }
    assert!(detached, "a client that does not read must be disconnected");
    let outbox = daemon.shared.sessions.all()[0].outbox.stats();
    assert!(outbox.frames <= 256, "the outbox cap holds: {outbox:?}");
    drop(reader);
    // The session is still there to resume.
    let mut again = Client::connect(daemon.addr).await;
    again
        .send(
            json!({"op": "hello", "token": TOKEN, "session_id": hello["session_id"],
                     "resume_token": hello["resume_token"], "last_seq": 0}),
        )
        .await;
    let ack = again.recv().await;
    assert_eq!(ack["resumed"], true, "{ack}");
    still_serves(daemon.addr).await;
}

/// Open a WebSocket to `addr` whose upgrade carries `origin` (as a browser's page would).
async fn upgrade_from(
    addr: SocketAddr,
    origin: Option<&str>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, stream)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_browser_origin_is_refused_before_the_upgrade_unless_allowed() {
    let daemon = start(|c| {
        c.server.http_allowed_origins = vec!["https://app.example.com".to_string()];
    })
    .await;
    let refused = upgrade_from(daemon.addr, Some("http://evil.example")).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
        panic!("a foreign origin was let in: {refused:?}");
    };
    assert_eq!(response.status(), 403);
    let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
    assert!(body.contains("EXAI_HTTP_ALLOWED_ORIGINS"), "{body}");
    let null = upgrade_from(daemon.addr, Some("null")).await;
    assert!(null.is_err(), "a sandboxed page's null origin is refused");
    for allowed in [
        None,
        Some("http://127.0.0.1:3000"),
        Some("https://app.example.com"),
    ] {
        let upgraded = upgrade_from(daemon.addr, allowed).await;
        assert!(upgraded.is_ok(), "{allowed:?}: {upgraded:?}");
    }
    still_serves(daemon.addr).await;
}
