//! The MCP front doors, end to end on real tokio, driven by a real MCP client (rmcp's):
//! `exaid mcp` started as an editor starts it (the real binary over stdio, against an
//! in-process daemon), and `/mcp` on the daemon's HTTP port. Both: initialize, list tools,
//! call `chat`, progress during a slow call, cancel, an unknown tool. The stdio bridge also
//! survives its socket being cut mid-call by a proxy between it and the daemon: with the
//! result arriving live or replayed on resume, and with the call's ack lost (sent again,
//! joined or answered from the result cache): one result each, one provider call each.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TOKEN, TestDaemon, start};
use exaid::config::ProviderId;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, ProgressNotificationParam, Request,
    ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestHandle, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a test waits for anything before failing.
const WAIT: Duration = Duration::from_secs(15);

/// An MCP client that hands every progress notification to the test.
struct ProgressClient {
    /// Where progress notifications go.
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl ClientHandler for ProgressClient {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.progress.send(params);
    }
}

type Mcp = RunningService<RoleClient, ProgressClient>;

/// The real binary as an editor runs it: `exaid mcp`, told where the daemon is by the
/// environment only (a clean one: no inherited EXAI_* settings, a throwaway HOME and cwd).
async fn stdio_client(
    port: u16,
    home: &tempfile::TempDir,
) -> (Mcp, mpsc::UnboundedReceiver<ProgressNotificationParam>) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_exaid"));
    command
        .arg("mcp")
        .env_clear()
        .env("HOME", home.path())
        .env("EXAI_WS_PORT", port.to_string())
        .env("EXAI_WS_TOKEN", TOKEN)
        .env("EXAI_HTTP_PORT", "0")
        .env("RUST_LOG", "error") // "info" shows the bridge reconnecting
        .current_dir(home.path());
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn exaid mcp");
    let (tx, rx) = mpsc::unbounded_channel();
    let client = tokio::time::timeout(WAIT, ProgressClient { progress: tx }.serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize");
    (client, rx)
}

/// `/mcp` served as the daemon serves it, and an MCP client on it with the bearer token.
async fn http_client(
    daemon: &TestDaemon,
) -> (
    SocketAddr,
    Mcp,
    mpsc::UnboundedReceiver<ProgressNotificationParam>,
) {
    let addr = serve_http(daemon).await;
    let config = StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
        .auth_header(TOKEN);
    let transport = StreamableHttpClientTransport::from_config(config);
    let (tx, rx) = mpsc::unbounded_channel();
    let client = tokio::time::timeout(WAIT, ProgressClient { progress: tx }.serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize");
    (addr, client, rx)
}

async fn serve_http(daemon: &TestDaemon) -> SocketAddr {
    exaid::rt::tokio::serve_http(
        "127.0.0.1:0".parse().unwrap(),
        daemon.routes.clone(),
        exaid::operator::http::limits(&daemon.shared.config.server),
        std::future::pending(),
    )
    .await
    .unwrap()
}

/// `/mcp` served, and its URL (for tests that speak raw HTTP to it).
async fn mcp_url(daemon: &TestDaemon) -> String {
    format!("http://{}/mcp", serve_http(daemon).await)
}

fn arguments(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

/// Call a tool and wait for its result.
async fn call(client: &Mcp, name: &str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(name.to_string()).with_arguments(arguments(args));
    tokio::time::timeout(WAIT, client.call_tool(params))
        .await
        .expect("tool result in time")
        .expect("tool result")
}

/// Start a call and return its handle (its progress token is `handle.progress_token`).
async fn start_call(client: &Mcp, name: &str, args: Value) -> RequestHandle<RoleClient> {
    let params = CallToolRequestParams::new(name.to_string()).with_arguments(arguments(args));
    client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("send tools/call")
}

/// The result a started call ends with.
async fn result_of(handle: RequestHandle<RoleClient>) -> CallToolResult {
    let response = tokio::time::timeout(WAIT, handle.await_response())
        .await
        .expect("response in time")
        .expect("response");
    match response {
        ServerResult::CallToolResult(result) => result,
        other => panic!("expected a tool result, got {other:?}"),
    }
}

fn text_of(result: &CallToolResult) -> String {
    let content = serde_json::to_value(&result.content).unwrap();
    content
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The next progress notification, or a failure after `WAIT`.
async fn next_progress(
    progress: &mut mpsc::UnboundedReceiver<ProgressNotificationParam>,
) -> ProgressNotificationParam {
    tokio::time::timeout(WAIT, progress.recv())
        .await
        .expect("a progress notification in time")
        .expect("progress channel open")
}

/// The next progress notification of the call with `token` (earlier calls' are skipped).
async fn next_progress_of(
    progress: &mut mpsc::UnboundedReceiver<ProgressNotificationParam>,
    token: &rmcp::model::ProgressToken,
) -> ProgressNotificationParam {
    loop {
        let notification = next_progress(progress).await;
        if &notification.progress_token == token {
            return notification;
        }
    }
}

/// One series of the daemon's metrics (0 when absent).
fn metric(daemon: &TestDaemon, series: &str) -> f64 {
    let text = daemon.metrics.as_ref().unwrap().render(&daemon.shared);
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Wait until a metric reaches `expected` (the daemon counts a call just after pushing its
/// result, so a client can see the result an instant before the count moves).
async fn wait_metric(daemon: &TestDaemon, series: &str, expected: f64) {
    for _ in 0..500 {
        if metric(daemon, series) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metric(daemon, series), expected, "{series}");
}

/// Wait until the daemon runs no call and holds no permit.
async fn wait_idle(daemon: &TestDaemon) {
    for _ in 0..500 {
        let health = exaid::health::snapshot(&daemon.shared);
        let busy = health.calls_running > 0
            || health.limits.iter().any(|l| l.permits_in_use > 0)
            || health.session_limits.permits_in_use > 0;
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the daemon never went idle: {:?}",
        exaid::health::snapshot(&daemon.shared)
    );
}

/// What both doors must do the same way: list, call, fail clearly, report progress, cancel.
async fn the_basics(daemon: &TestDaemon, client: &Mcp) {
    let info = client.peer_info().expect("initialized");
    assert_eq!(info.server_info.as_ref().unwrap().name, "exaid");
    assert!(info.capabilities.tools.is_some());

    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in ["chat", "listmodels", "status", "version"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let chat = tools.iter().find(|t| t.name == "chat").unwrap();
    assert!(chat.input_schema.contains_key("properties"), "{chat:?}");
    // Every tool is read-only, titled and has an output schema; those that ask a model are
    // open-world.
    for tool in &tools {
        let hints = tool
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{tool:?}"));
        assert_eq!(hints.read_only_hint, Some(true), "{tool:?}");
        assert!(
            tool.title.as_deref().is_some_and(|t| !t.is_empty()),
            "{tool:?}"
        );
        let output = tool
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{tool:?}"));
        assert_eq!(output["type"], "object", "{tool:?}");
        let asks = ["chat", "consensus", "debug", "thinkdeep"].contains(&tool.name.as_ref());
        let local = ["version", "listmodels", "status", "planner", "challenge"]
            .contains(&tool.name.as_ref());
        if asks || local {
            assert_eq!(hints.open_world_hint, Some(asks), "{tool:?}");
        }
    }

    let answer = call(client, "chat", json!({"prompt": "hello through MCP"})).await;
    assert_eq!(answer.is_error, Some(false), "{answer:?}");
    assert!(text_of(&answer).contains("hello through MCP"), "{answer:?}");
    // The structured result is the text's JSON object.
    let text: serde_json::Value = serde_json::from_str(&text_of(&answer)).unwrap();
    assert_eq!(answer.structured_content.as_ref(), Some(&text));

    // An unknown tool is an error result naming the code, not a crash or a JSON-RPC error.
    let unknown = call(client, "no_such_tool", json!({})).await;
    assert_eq!(unknown.is_error, Some(true));
    let text = text_of(&unknown);
    assert!(text.starts_with("TOOL_NOT_FOUND: "), "{text}");
    let structured = unknown.structured_content.as_ref().expect("errors too");
    assert_eq!(
        (&structured["status"], &structured["metadata"]["error_code"]),
        (&json!("error"), &json!("TOOL_NOT_FOUND"))
    );
    assert!(
        text.contains("chat"),
        "it lists the tools there are: {text}"
    );
    let invalid = call(client, "chat", json!({"prompt": 5})).await;
    assert_eq!(invalid.is_error, Some(true));
    assert!(
        text_of(&invalid).starts_with("VALIDATION_ERROR: "),
        "{invalid:?}"
    );

    // Concurrent calls are told apart: each gets its own answer.
    let prompts = ["first of three", "second of three", "third of three"];
    let answers = futures_util::future::join_all(
        prompts
            .iter()
            .map(|p| call(client, "chat", json!({"prompt": p}))),
    )
    .await;
    for (prompt, answer) in prompts.iter().zip(&answers) {
        assert!(text_of(answer).contains(prompt), "{prompt}: {answer:?}");
    }
    // Every call went through the daemon's call path.
    wait_metric(
        daemon,
        "exaid_calls_total{tool=\"chat\",outcome=\"OK\"}",
        4.0,
    )
    .await;
    wait_idle(daemon).await;
}

/// A slow call reports progress; cancelling it stops the work in the daemon at once.
async fn progress_then_cancel(
    daemon: &TestDaemon,
    client: &Mcp,
    progress: &mut mpsc::UnboundedReceiver<ProgressNotificationParam>,
) {
    let handle = start_call(client, "chat", json!({"prompt": "take your time"})).await;
    let token = handle.progress_token.clone();
    let first = next_progress_of(progress, &token).await;
    assert!(
        first
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("provider"),
        "{first:?}"
    );
    let second = next_progress_of(progress, &token).await;
    assert!(
        second.progress > first.progress,
        "{first:?} then {second:?}"
    );
    // It holds a session permit like any call: the same admission path as a WebSocket call.
    let health = exaid::health::snapshot(&daemon.shared);
    assert_eq!(health.calls_running, 1, "{health:?}");
    assert_eq!(health.session_limits.permits_in_use, 1, "{health:?}");

    handle
        .cancel(Some("the user changed their mind".to_string()))
        .await
        .expect("send notifications/cancelled");
    // The call is 30 s long: idle within the wait means the cancel reached the daemon.
    wait_idle(daemon).await;
    wait_metric(
        daemon,
        "exaid_calls_total{tool=\"chat\",outcome=\"CANCELLED\"}",
        1.0,
    )
    .await;
}

#[tokio::test]
async fn stdio_bridge_lists_calls_and_fails_clearly() {
    let daemon = start(|_| {}).await;
    let home = tempfile::tempdir().unwrap();
    let (client, _progress) = stdio_client(daemon.addr.port(), &home).await;
    the_basics(&daemon, &client).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stdio_bridge_relays_progress_and_cancel() {
    let daemon = start(|c| {
        c.providers[ProviderId::Offline].latency_ms = 30_000;
        c.tools.progress_interval_ms = 100;
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let (client, mut progress) = stdio_client(daemon.addr.port(), &home).await;
    progress_then_cancel(&daemon, &client, &mut progress).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn http_endpoint_lists_calls_and_fails_clearly() {
    let daemon = start(|_| {}).await;
    let (_addr, client, _progress) = http_client(&daemon).await;
    the_basics(&daemon, &client).await;
    // The MCP session is a session of the daemon's own, closed with it.
    assert_eq!(exaid::health::snapshot(&daemon.shared).sessions, 1);
    client.cancel().await.unwrap();
    for _ in 0..500 {
        if exaid::health::snapshot(&daemon.shared).sessions == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the daemon session outlived its MCP session");
}

#[tokio::test]
async fn http_endpoint_relays_progress_and_cancel() {
    let daemon = start(|c| {
        c.providers[ProviderId::Offline].latency_ms = 30_000;
        c.tools.progress_interval_ms = 100;
    })
    .await;
    let (_addr, client, mut progress) = http_client(&daemon).await;
    progress_then_cancel(&daemon, &client, &mut progress).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn http_endpoint_wants_the_bearer_token() {
    let daemon = start(|_| {}).await;
    let addr = serve_http(&daemon).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"}}});
    let http = reqwest::Client::new();
    let post = |token: Option<&str>| {
        let mut request = http
            .post(format!("http://{addr}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let missing = post(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    let wrong = post(Some("not-the-token-at-all")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = post(Some(TOKEN)).await.unwrap();
    assert_eq!(right.status(), 200);
    // The operator's routes stay open.
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // rmcp's client without the token cannot even initialize.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp")),
    );
    let refused = tokio::time::timeout(WAIT, ().serve(transport))
        .await
        .expect("refused in time");
    assert!(refused.is_err(), "initialize without a token must fail");
}

#[tokio::test]
async fn a_foreign_origin_gets_403_before_anything_else_token_or_not() {
    let daemon = start(|c| {
        c.server.http_allowed_origins = vec!["https://editor.example.com:443".to_string()];
    })
    .await;
    let addr = serve_http(&daemon).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "page", "version": "1"}}});
    let http = reqwest::Client::new();
    let post = |origin: &str, token: Option<&str>| {
        let mut request = http
            .post(format!("http://{addr}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("origin", origin)
            .json(&initialize);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for (origin, token) in [
        ("http://evil.example", Some(TOKEN)),
        ("http://evil.example", None),
        ("null", Some(TOKEN)),
        ("https://editor.example.com:8443", Some(TOKEN)),
    ] {
        let refused = post(origin, token).await.unwrap();
        assert_eq!(refused.status(), 403, "{origin} with token {token:?}");
        let body = refused.text().await.unwrap();
        assert!(
            body.contains("EXAI_HTTP_ALLOWED_ORIGINS") || body.contains("no origin"),
            "{body}"
        );
    }
    // Loopback and configured origins reach the token check, and with it, the endpoint.
    for origin in [
        "http://localhost:5173",
        "http://127.0.0.1",
        "https://editor.example.com",
    ] {
        assert_eq!(post(origin, None).await.unwrap().status(), 401, "{origin}");
        assert_eq!(
            post(origin, Some(TOKEN)).await.unwrap().status(),
            200,
            "{origin}"
        );
    }
    // The operator's routes too: a rebinding page cannot read /status.
    let status = http
        .get(format!("http://{addr}/status"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 403);
}

/// A TCP proxy between the bridge and the daemon that the test can cut, hold shut, or mute.
struct Proxy {
    /// Where the bridge connects.
    addr: SocketAddr,
    /// Connections accepted and forwarded so far.
    forwarded: Arc<AtomicU32>,
    /// The live pipes, two per connection (aborting them drops both sockets).
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// While set, new connections are closed at once (the daemon looks unreachable).
    held: Arc<AtomicBool>,
    /// While set, what the daemon sends is swallowed (acks and results never arrive).
    muted: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy {
            addr,
            forwarded: Arc::default(),
            pipes: Arc::default(),
            held: Arc::default(),
            muted: Arc::default(),
        };
        let (count, live, held, muted) = (
            proxy.forwarded.clone(),
            proxy.pipes.clone(),
            proxy.held.clone(),
            proxy.muted.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if held.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (mut from_bridge, mut to_bridge) = inbound.into_split();
                let (mut from_daemon, mut to_daemon) = outbound.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_bridge, &mut to_daemon).await;
                });
                let muted = muted.clone();
                let down = tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    loop {
                        let n = match from_daemon.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if !muted.load(Ordering::SeqCst)
                            && to_bridge.write_all(&buffer[..n]).await.is_err()
                        {
                            return;
                        }
                    }
                });
                live.lock().unwrap().extend([up, down]);
            }
        });
        proxy
    }

    /// Cut every live connection, as a daemon-side network failure would.
    fn cut(&self) {
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    fn hold(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
    }

    fn mute(&self, muted: bool) {
        self.muted.store(muted, Ordering::SeqCst);
    }
}

/// Wait until the daemon runs exactly `n` calls.
async fn wait_calls_running(daemon: &TestDaemon, n: usize) {
    for _ in 0..500 {
        if exaid::health::snapshot(&daemon.shared).calls_running == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the daemon never ran {n} calls");
}

#[tokio::test]
async fn stdio_bridge_survives_a_cut_connection_mid_call() {
    let daemon = start(|c| {
        c.providers[ProviderId::Offline].latency_ms = 1_500;
        c.tools.progress_interval_ms = 100;
    })
    .await;
    let proxy = Proxy::start(daemon.addr).await;
    let home = tempfile::tempdir().unwrap();
    let (client, mut progress) = stdio_client(proxy.addr.port(), &home).await;
    let attempts_before = metric(
        &daemon,
        "exaid_provider_attempts_total{provider=\"offline\"}",
    );

    // 1. Cut mid-call and keep the daemon unreachable until the call has ended there: the
    //    result waits in the session outbox and arrives with the resume.
    let handle = start_call(&client, "chat", json!({"prompt": "finish while I am away"})).await;
    next_progress_of(&mut progress, &handle.progress_token).await; // accepted and running
    proxy.hold(true);
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        exaid::health::snapshot(&daemon.shared).calls_running,
        0,
        "the call ended while the bridge was away"
    );
    proxy.hold(false);
    let result = result_of(handle).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert!(text_of(&result).contains("finish while I am away"));

    // 2. Cut mid-call and let the bridge straight back: the result arrives live.
    let handle = start_call(&client, "chat", json!({"prompt": "carry on"})).await;
    next_progress_of(&mut progress, &handle.progress_token).await;
    proxy.cut();
    let result = result_of(handle).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert!(text_of(&result).contains("carry on"));

    // 3. The daemon accepted the call but its ack never reached the bridge: the bridge sends
    //    the call again under the same request id after the resume, and the daemon joins the
    //    running call instead of starting a second one.
    proxy.mute(true);
    let handle = start_call(&client, "chat", json!({"prompt": "ack lost"})).await;
    wait_calls_running(&daemon, 1).await;
    proxy.cut();
    proxy.mute(false);
    let result = result_of(handle).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert!(text_of(&result).contains("ack lost"));

    // 4. The same, but the call ends before the bridge is back: the result comes with the
    //    resume, the call sent again is answered from the result cache, and the MCP client
    //    gets one result.
    proxy.mute(true);
    let handle = start_call(&client, "chat", json!({"prompt": "everything lost"})).await;
    wait_calls_running(&daemon, 1).await;
    wait_calls_running(&daemon, 0).await;
    proxy.cut();
    proxy.mute(false);
    let result = result_of(handle).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert!(text_of(&result).contains("everything lost"));

    // Each call reached the provider once, and the bridge resumed its one session.
    assert_eq!(
        metric(
            &daemon,
            "exaid_provider_attempts_total{provider=\"offline\"}"
        ) - attempts_before,
        4.0
    );
    // (Counted just after the replay is written, so possibly an instant after it arrived.)
    for _ in 0..500 {
        if metric(&daemon, "exaid_resumes_total") >= 4.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(metric(&daemon, "exaid_resumes_total") >= 4.0);
    assert!(proxy.forwarded.load(Ordering::SeqCst) >= 5);
    assert_eq!(exaid::health::snapshot(&daemon.shared).sessions, 1);

    // And it goes on working.
    let after = call(&client, "version", json!({})).await;
    assert_eq!(after.is_error, Some(false), "{after:?}");
    client.cancel().await.unwrap();
}

/// Read an SSE body until an event satisfies `done`; returns every event read, as
/// `(id, data)`.
async fn read_events(
    response: reqwest::Response,
    done: impl Fn(&Option<String>, &str) -> bool,
) -> Vec<(Option<String>, String)> {
    use futures_util::StreamExt;
    let mut body = response.bytes_stream();
    let (mut buffer, mut events) = (String::new(), Vec::new());
    loop {
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .expect("events in time")
            .expect("the stream goes on")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let (id, data) = (field("id:"), field("data:").unwrap_or_default());
            let finished = done(&id, &data);
            events.push((id, data));
            if finished {
                return events;
            }
        }
    }
}

/// The one `chat` call of the test ended OK, and no call was cancelled on the way.
async fn answered_once_never_cancelled(daemon: &TestDaemon) {
    wait_metric(
        daemon,
        "exaid_calls_total{tool=\"chat\",outcome=\"OK\"}",
        1.0,
    )
    .await;
    let cancelled = "exaid_calls_total{tool=\"chat\",outcome=\"CANCELLED\"}";
    assert_eq!(metric(daemon, cancelled), 0.0);
}

/// `GET /mcp` with `Last-Event-ID`: the rest of a dropped stream (of a session, or
/// stateless).
async fn resume(
    http: &reqwest::Client,
    url: &str,
    version: &str,
    session: Option<&str>,
    last_event_id: &str,
) -> reqwest::Response {
    let mut request = http
        .get(url)
        .bearer_auth(TOKEN)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", version)
        .header("last-event-id", last_event_id);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_dropped_mcp_stream_is_resumed_with_last_event_id_and_the_call_is_never_cancelled() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 1_500).await;
    let url = mcp_url(&daemon).await;
    let http = reqwest::Client::new();
    let post = |session: Option<&str>, body: Value| {
        let mut request = http
            .post(&url)
            .bearer_auth(TOKEN)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
    };
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "resumer", "version": "1"}}});
    let answer = post(None, initialize).await.unwrap();
    let session = answer.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    read_events(answer, |_, data| data.contains("\"id\":1")).await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(Some(&session), initialized).await.unwrap();
    // The call's stream drops after its first event.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "chat", "arguments": {"prompt": "kept across a drop"}}});
    let stream = post(Some(&session), call).await.unwrap();
    assert_eq!(stream.status(), 200);
    let seen = read_events(stream, |id, _| id.is_some()).await;
    let last_id = seen.last().unwrap().0.clone().unwrap();
    // Back with Last-Event-ID: the rest arrives, the result among it.
    let resumed = resume(&http, &url, "2025-06-18", Some(&session), &last_id).await;
    assert_eq!(resumed.status(), 200);
    let events = read_events(resumed, |_, data| data.contains("\"id\":2")).await;
    let result = &events.last().unwrap().1;
    assert!(result.contains("kept across a drop"), "{result}");
    assert!(
        events
            .iter()
            .all(|(id, _)| id.as_deref() != Some(last_id.as_str())),
        "nothing replayed twice"
    );
    answered_once_never_cancelled(&daemon).await;
}

#[tokio::test]
async fn every_handshake_revision_is_served_and_answers_a_call() {
    let daemon = start(|_| {}).await;
    let url = mcp_url(&daemon).await;
    let http = reqwest::Client::new();
    for (n, version) in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
        .into_iter()
        .enumerate()
    {
        let post = |session: Option<&str>, body: Value| {
            let mut request = http
                .post(&url)
                .bearer_auth(TOKEN)
                .header("accept", "application/json, text/event-stream")
                .json(&body);
            if let Some(session) = session {
                request = request
                    .header("mcp-session-id", session)
                    .header("mcp-protocol-version", version);
            }
            request.send()
        };
        let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "old-client", "version": "1"}}});
        let answer = post(None, initialize).await.unwrap();
        assert_eq!(answer.status(), 200, "{version}");
        let session = answer.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let events = read_events(answer, |_, data| data.contains("\"id\":1")).await;
        let init: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
        assert_eq!(init["result"]["protocolVersion"], version, "{init}");
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        post(Some(&session), initialized).await.unwrap();
        let prompt = format!("asked in {version}");
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "chat", "arguments": {"prompt": prompt}}});
        let answer = post(Some(&session), call).await.unwrap();
        let events = read_events(answer, |_, data| data.contains("\"id\":2")).await;
        let result: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
        let text = result["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(&prompt), "{version}: {result}");
        wait_metric(
            &daemon,
            "exaid_calls_total{tool=\"chat\",outcome=\"OK\"}",
            (n + 1) as f64,
        )
        .await;
    }
}

/// A stateless request of protocol 2026-07-28 (no session, no handshake: what the client is
/// rides in `_meta`).
fn stateless(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "stateless", "version": "1"},
        "progressToken": id,
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POST one stateless 2026-07-28 message (`name`: the tool, for `Mcp-Name`).
async fn post_stateless(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    name: Option<&str>,
) -> reqwest::Response {
    let mut request = http
        .post(url)
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", body["method"].as_str().unwrap());
    if let Some(name) = name {
        request = request.header("mcp-name", name);
    }
    request.json(body).send().await.unwrap()
}

#[tokio::test]
async fn a_stateless_call_sent_again_after_its_stream_dropped_joins_it_and_only_a_cancel_cancels() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 1_500).await;
    let url = mcp_url(&daemon).await;
    let http = reqwest::Client::new();
    let mut call = stateless(
        4,
        "tools/call",
        json!({"name": "chat", "arguments": {"prompt": "asked once"}}),
    );
    // No progress token: nothing is sent before the result, and the stream drops first.
    call["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("progressToken");
    let dropped = post_stateless(&http, &url, &call, Some("chat")).await;
    assert_eq!(dropped.status(), 200);
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = post_stateless(&http, &url, &call, Some("chat")).await;
    let events = read_events(again, |_, data| data.contains("\"id\":4")).await;
    assert!(
        events.last().unwrap().1.contains("asked once"),
        "{events:?}"
    );
    // Sent a third time after it ended: the stored result, and still one call.
    let third = post_stateless(&http, &url, &call, Some("chat")).await;
    let events = read_events(third, |_, data| data.contains("\"id\":4")).await;
    assert!(
        events.last().unwrap().1.contains("asked once"),
        "{events:?}"
    );
    let ok = "exaid_calls_total{tool=\"chat\",outcome=\"OK\"}";
    wait_metric(&daemon, ok, 1.0).await;
    // `notifications/cancelled` naming a running stateless call cancels it.
    let slow = stateless(
        5,
        "tools/call",
        json!({"name": "chat", "arguments": {"prompt": "cancel me"}}),
    );
    let running = {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move { post_stateless(&http, &url, &slow, Some("chat")).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {
        "requestId": 5, "reason": "changed my mind",
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
    let answer = post_stateless(&http, &url, &cancel, None).await;
    assert_eq!(answer.status(), 202);
    running.abort();
    wait_metric(
        &daemon,
        "exaid_calls_total{tool=\"chat\",outcome=\"CANCELLED\"}",
        1.0,
    )
    .await;
    assert_eq!(metric(&daemon, ok), 1.0, "the provider was asked once");
}

#[tokio::test]
async fn a_stateless_call_of_2026_07_28_survives_a_dropped_stream() {
    let daemon = start(|c| {
        c.providers[ProviderId::Offline].latency_ms = 1_500;
        c.tools.progress_interval_ms = 1_000;
    })
    .await;
    let url = mcp_url(&daemon).await;
    let http = reqwest::Client::new();
    let call = stateless(
        3,
        "tools/call",
        json!({"name": "chat", "arguments": {"prompt": "stateless and kept"}}),
    );
    let stream = http
        .post(&url)
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "chat")
        .json(&call)
        .send()
        .await
        .unwrap();
    if stream.status() != 200 {
        panic!("{}: {}", stream.status(), stream.text().await.unwrap());
    }
    // The first event with an id (progress, with its progress token), then the stream drops.
    let seen = read_events(stream, |id, _| id.is_some()).await;
    let last_id = seen.last().unwrap().0.clone().unwrap();
    let resumed = resume(&http, &url, "2026-07-28", None, &last_id).await;
    assert_eq!(resumed.status(), 200);
    let events = read_events(resumed, |_, data| data.contains("\"id\":3")).await;
    let result = &events.last().unwrap().1;
    assert!(result.contains("stateless and kept"), "{result}");
    answered_once_never_cancelled(&daemon).await;
}

/// A stateless request of a client that declares the tasks extension.
fn with_tasks(id: u64, method: &str, params: Value) -> Value {
    let mut request = stateless(id, method, params);
    let meta = request["params"]["_meta"].as_object_mut().unwrap();
    meta.remove("progressToken");
    meta["io.modelcontextprotocol/clientCapabilities"] =
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    request
}

/// Send one stateless request (`name` for `Mcp-Name`) and read its JSON-RPC answer.
async fn ask(http: &reqwest::Client, url: &str, body: &Value, name: &str) -> Value {
    let response = post_stateless(http, url, body, Some(name)).await;
    assert_eq!(response.status(), 200, "{body}");
    let id = format!("\"id\":{}", body["id"]);
    let events = read_events(response, |_, data| data.contains(&id)).await;
    serde_json::from_str(&events.last().unwrap().1).unwrap()
}

/// `tasks/get` until the task is no longer working.
async fn poll_task(http: &reqwest::Client, url: &str, task_id: &str) -> Value {
    let started = tokio::time::Instant::now();
    for id in 100.. {
        let get = with_tasks(id, "tasks/get", json!({"taskId": task_id}));
        let answer = ask(http, url, &get, task_id).await;
        let task = answer["result"].clone();
        if task["status"] != "working" {
            return task;
        }
        assert!(started.elapsed() < WAIT, "still working: {task}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn a_client_with_tasks_gets_a_task_polls_its_result_and_can_cancel_it() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 1_000).await;
    let url = mcp_url(&daemon).await;
    let http = reqwest::Client::new();
    let call = |id, prompt: &str| {
        with_tasks(
            id,
            "tools/call",
            json!({"name": "chat", "arguments": {"prompt": prompt}}),
        )
    };
    // The call is answered at once with a task, working; its result comes from tasks/get.
    let created = ask(&http, &url, &call(1, "polled for"), "chat").await;
    // The task's fields are flattened into the result (SEP-2663 `CreateTaskResult`).
    let task = &created["result"];
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    assert_eq!(task["status"], "working", "{created}");
    assert!(task["createdAt"].as_str().unwrap().ends_with('Z'));
    let task_id = task["taskId"].as_str().unwrap().to_string();
    assert_eq!(task_id.len(), 32, "128 random bits");
    let done = poll_task(&http, &url, &task_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let result = &done["result"];
    assert_eq!(result["isError"], false, "{done}");
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("polled for")
    );
    assert!(result["structuredContent"].is_object(), "{done}");
    answered_once_never_cancelled(&daemon).await;

    // tasks/cancel stops a working task: the real cancel, not a flag.
    let created = ask(&http, &url, &call(2, "cancel me"), "chat").await;
    let task_id = created["result"]["taskId"].as_str().unwrap().to_string();
    let cancel = with_tasks(3, "tasks/cancel", json!({"taskId": task_id}));
    let ack = ask(&http, &url, &cancel, &task_id).await;
    assert!(ack["error"].is_null(), "{ack}");
    let cancelled = poll_task(&http, &url, &task_id).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    wait_metric(
        &daemon,
        "exaid_calls_total{tool=\"chat\",outcome=\"CANCELLED\"}",
        1.0,
    )
    .await;

    // An unknown task is an error that says why.
    let get = with_tasks(4, "tasks/get", json!({"taskId": "nope"}));
    let unknown = ask(&http, &url, &get, "nope").await;
    let message = unknown["error"]["message"].as_str().unwrap();
    assert!(message.contains("no task \"nope\""), "{unknown}");
    assert!(message.contains("EXAI_RESULT_TTL_SECS"), "{unknown}");
}

#[tokio::test]
async fn conformance_fixtures_are_served_only_when_the_test_setting_is_on() {
    let plain = start(|_| {}).await;
    let (_, client, _) = http_client(&plain).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(
        tools.iter().all(|t| !t.name.starts_with("test_")),
        "off by default"
    );
    let missing = call(&client, "test_image_content", json!({})).await;
    assert!(
        text_of(&missing).starts_with("TOOL_NOT_FOUND"),
        "{missing:?}"
    );
    client.cancel().await.unwrap();

    let daemon = start(|c| c.tools.mcp_conformance_fixtures = true).await;
    let (_, client, mut progress) = http_client(&daemon).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"chat") && names.contains(&"test_tool_with_progress"));
    let kinds = |result: &CallToolResult| -> Vec<String> {
        let content = serde_json::to_value(&result.content).unwrap();
        let blocks = content.as_array().unwrap().iter();
        blocks
            .map(|c| c["type"].as_str().unwrap().to_string())
            .collect()
    };
    let mixed = call(&client, "test_multiple_content_types", json!({})).await;
    assert_eq!(kinds(&mixed), ["text", "image", "resource"]);
    let audio = call(&client, "test_audio_content", json!({})).await;
    assert_eq!(
        serde_json::to_value(&audio.content).unwrap()[0]["mimeType"],
        "audio/wav"
    );
    let failing = call(&client, "test_error_handling", json!({})).await;
    assert_eq!(failing.is_error, Some(true));
    assert!(text_of(&failing).contains("intentionally"));
    // Progress 0, 50, 100 of 100 under the call's own token.
    let handle = start_call(&client, "test_tool_with_progress", json!({})).await;
    let token = handle.progress_token.clone();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let note = next_progress_of(&mut progress, &token).await;
        seen.push((note.progress, note.total));
    }
    assert_eq!(
        seen,
        [
            (0.0, Some(100.0)),
            (50.0, Some(100.0)),
            (100.0, Some(100.0))
        ]
    );
    assert_eq!(result_of(handle).await.is_error, Some(false));
    // The fixtures never reach the core: no call of theirs is counted.
    assert_eq!(
        metric(
            &daemon,
            "exaid_calls_total{tool=\"test_error_handling\",outcome=\"OK\"}"
        ),
        0.0
    );
    client.cancel().await.unwrap();
}
