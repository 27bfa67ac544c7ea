"""Peer: Python's http.server. The same echo as scf-lean's own (src/main.rs): the event checked to be
JSON (400 if not), echoed as received, with the context from the X-Scf-* headers. Access lines
are off, as for every other peer. ThreadingHTTPServer, because HTTP/1.1 keep-alive on the
single-threaded HTTPServer would serve one connection until it closes.

    PORT=9000 python3 bench/peers/python/server.py
"""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def num(v):
    return int(v) if v is not None and v.isdigit() else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as every other peer: head and body go out in two writes, and Nagle would
    # hold the second until the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        event = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/event-invoke":
            return self.reply(404, b'{"errorCode":404}')
        try:
            json.loads(event)
        except ValueError:
            return self.reply(400, b'{"errorCode":400,"errorMessage":"the event is not valid JSON"}')
        h = self.headers
        ctx = json.dumps(
            {
                "request_id": h.get("X-Scf-Request-Id"),
                "function_name": h.get("X-Scf-Name"),
                "function_version": h.get("X-Scf-Version"),
                "namespace": h.get("X-Scf-Namespace"),
                "memory_limit_in_mb": num(h.get("X-Scf-Memory")),
                "time_limit_in_ms": num(h.get("X-Scf-Timeout")),
                "tencentcloud_region": h.get("X-Scf-Region"),
                "tencentcloud_appid": h.get("X-Scf-Appid"),
                "tencentcloud_uin": h.get("X-Scf-Uin"),
            },
            separators=(",", ":"),
        ).encode()
        self.reply(200, b'{"event":' + event + b',"context":' + ctx + b"}")


class Server(ThreadingHTTPServer):
    # bind without the reverse DNS lookup HTTPServer.server_bind does for server_name.
    def server_bind(self):
        self.socket.bind(self.server_address)
        self.server_name, self.server_port = self.server_address[:2]


if __name__ == "__main__":
    Server(("0.0.0.0", int(os.environ.get("PORT", "9000"))), Handler).serve_forever()
