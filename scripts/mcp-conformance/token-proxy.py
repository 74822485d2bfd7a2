# Forwards every request to the daemon's HTTP port with the bearer token added (the MCP
# conformance suite cannot send one), streaming each answer back as it comes (SSE). Used by
# scripts/mcp-conformance.sh; python3 stdlib only.
#
# With EXAID_DROP_FIRST_CALL=1 it also plays a dropped connection: the SSE stream of the first
# `tools/call` is cut right after its first event that carries an id, before the result, and
# the cut is reported on stderr. The client must resume (GET with Last-Event-ID) to get it.
import http.client, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
TARGET = ("127.0.0.1", int(os.environ["EXAID_HTTP_PORT"]))
TOKEN = os.environ["EXAID_TOKEN"]
HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}
DROP = {"armed": os.environ.get("EXAID_DROP_FIRST_CALL") == "1", "lock": threading.Lock()}


def take_drop(body):
    """Whether this request's stream is the one to cut (the first tools/call)."""
    if b'"tools/call"' not in body:
        return False
    with DROP["lock"]:
        armed, DROP["armed"] = DROP["armed"], False
    return armed


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def forward(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Authorization"] = f"Bearer {TOKEN}"
        upstream = http.client.HTTPConnection(*TARGET, timeout=300)
        upstream.request(self.command, self.path, body=body, headers=headers)
        reply = upstream.getresponse()
        cut = self.command == "POST" and take_drop(body)
        seen = b""
        self.send_response(reply.status)
        for k, v in reply.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while True:
                chunk = reply.read1(65536)
                if not chunk:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                seen += chunk
                event_ids = [l for l in seen.split(b"\n") if l.startswith(b"id:")]
                if cut and event_ids and b"\n\n" in seen[seen.find(event_ids[0]):]:
                    print(f"proxy: cut the first tools/call stream after event "
                          f"{event_ids[0][3:].strip().decode()}", file=sys.stderr, flush=True)
                    break
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            upstream.close()
    do_GET = do_POST = do_DELETE = forward
class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client hanging up mid-stream is routine in the suite's scenarios


server = Server(("127.0.0.1", int(sys.argv[1])), Proxy)
server.serve_forever()
