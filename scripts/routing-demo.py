#!/usr/bin/env python3
"""Routing under rate limits, end to end against the release binary (python3 stdlib only).

  scripts/routing-demo.py failover   an `auto` chat while Kimi answers 429 with Retry-After
                                     900 s: GLM answers, and the result's metadata says so
                                     (fallback, provider_used, usage, cost_usd)
  scripts/routing-demo.py fanout     40 calls naming Kimi at once, Kimi holding each 3 s on 2
                                     permits, a 10 s queue timeout: how many are answered, and
                                     how soon the rest are refused, with which retry_after_secs

A local HTTP server plays both providers; the daemon (`target/release/exaid`, or $EXAID) runs
on free ports with a scratch state folder, and calls go through `exaid mcp` on stdio. Not part
of `cargo test`: it prints figures for a closing note or a README.
"""
import json, os, socket, subprocess, sys, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXAID = os.environ.get("EXAID", "target/release/exaid")
ANSWER = "GLM answers while Kimi cools down."
USAGE = {"prompt_tokens": 412, "completion_tokens": 38, "total_tokens": 450}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Provider(BaseHTTPRequestHandler):
    """/kimi answers 429 (failover) or holds 3 s (fanout); /glm answers with usage."""
    mode = "failover"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        model = body["model"]
        if self.path.startswith("/kimi") and Provider.mode == "failover":
            return self.reply(429, {"error": {"message": "rate limited", "type": "rate_limit_reached_error"}},
                              [("retry-after", "900")])
        if self.path.startswith("/kimi"):
            time.sleep(3)
        message = {"role": "assistant", "content": ANSWER}
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            chunk = {"id": "x", "object": "chat.completion.chunk", "model": model,
                     "choices": [{"index": 0, "delta": message, "finish_reason": "stop"}]}
            last = {"id": "x", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": USAGE}
            for event in (chunk, last):
                self.wfile.write(("data: " + json.dumps(event) + "\n\n").encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        self.reply(200, {"id": "x", "object": "chat.completion", "model": model, "usage": USAGE,
                         "choices": [{"index": 0, "finish_reason": "stop", "message": message}]})


class Bridge:
    """`exaid mcp` on stdio, with answers collected by JSON-RPC id."""

    def __init__(self, env):
        self.proc = subprocess.Popen([EXAID, "mcp"], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lock = threading.Lock()
        self.results = {}
        threading.Thread(target=self.read, daemon=True).start()
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "routing-demo", "version": "1"}}})
        self.wait(0, 10)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def read(self):
        for line in self.proc.stdout:
            message = json.loads(line)
            if "id" in message:
                self.results[message["id"]] = (time.time(), message)

    def send(self, message):
        with self.lock:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()

    def call(self, id, arguments):
        self.send({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": "chat", "arguments": arguments}})

    def wait(self, id, secs):
        until = time.time() + secs
        while id not in self.results:
            if time.time() > until:
                sys.exit(f"no answer to request {id} in {secs} s")
            time.sleep(0.02)
        return self.results[id]


def failover(bridge):
    bridge.call(1, {"prompt": "Is the cache invalidated on write?", "use_websearch": False})
    _, answer = bridge.wait(1, 60)
    output = json.loads(answer["result"]["content"][0]["text"])
    print(json.dumps({k: output.get(k) for k in ("status", "content", "metadata")}, indent=2))


def fanout(bridge):
    named = {"model": "kimi-k2-0905-preview", "use_websearch": False}
    bridge.call(1, dict(named, prompt="measure the hold time"))
    bridge.wait(1, 30)
    sent = {}
    for id in range(2, 42):
        sent[id] = time.time()
        bridge.call(id, dict(named, prompt=f"question {id}"))
    answered, refused = [], []
    for id in range(2, 42):
        at, answer = bridge.wait(id, 60)
        result = answer["result"]
        text = result["content"][0]["text"]
        if result.get("isError"):
            retry = text.split("retry in about ")[1].split(" ")[0] if "retry in about " in text else "?"
            refused.append((at - sent[id], retry))
        else:
            answered.append(at - sent[id])
    print(f"answered {len(answered)}: in {min(answered):.1f} to {max(answered):.1f} s")
    if refused:
        print(f"refused {len(refused)}: after {min(r[0] for r in refused):.2f} to "
              f"{max(r[0] for r in refused):.2f} s, retry in about {sorted(set(r[1] for r in refused))} s")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "failover"
    if mode not in ("failover", "fanout"):
        sys.exit("usage: scripts/routing-demo.py failover|fanout")
    Provider.mode = mode
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, KIMI_API_URL=f"{url}/kimi", GLM_API_URL=f"{url}/glm",
                   KIMI_API_KEY="sk-demo-kimi-0000", GLM_API_KEY="sk-demo-glm-0000",
                   EXAI_WS_PORT=str(free_port()), EXAI_HTTP_PORT="0",
                   EXAI_WS_TOKEN="demo-token-0123456789abcdef",
                   EXAI_TOKEN_FILE=os.path.join(scratch, "token"),
                   EXAI_MODEL_FACTS="glm-4.6:price_in=0.6,price_out=2.2")
        if mode == "fanout":
            env.update(EXAI_WS_KIMI_MAX_INFLIGHT="2", EXAI_WS_QUEUE_TIMEOUT_SECS="10",
                       EXAI_WS_SESSION_MAX_INFLIGHT="64", EXAI_WS_GLOBAL_MAX_INFLIGHT="64")
        daemon = subprocess.Popen([EXAID], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.5)
            bridge = Bridge(env)
            (failover if mode == "failover" else fanout)(bridge)
            bridge.proc.kill()
        finally:
            daemon.terminate()
            daemon.wait()


if __name__ == "__main__":
    main()
