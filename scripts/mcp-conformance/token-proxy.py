# Forwards every request to the daemon's HTTP port with the bearer token added (the MCP
# conformance suite cannot send one), streaming each answer back as it comes (SSE). Used by
# scripts/mcp-conformance.sh; python3 stdlib only.
import http.client, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
TARGET = ("127.0.0.1", int(os.environ["EXAID_HTTP_PORT"]))
TOKEN = os.environ["EXAID_TOKEN"]
HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}
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
