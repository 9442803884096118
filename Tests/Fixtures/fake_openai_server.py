"""A minimal OpenAI-compatible server for tests of `plexus node start --upstream`.

Streams the words of REPLY as chat deltas, then a usage chunk and [DONE].
With FAIL_AFTER=N it drops the connection after N content chunks.
Usage: python3 fake_openai_server.py PORT_FILE
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = os.environ.get("REPLY", "upstream says hello to the network").split(" ")
FAIL_AFTER = int(os.environ.get("FAIL_AFTER", "-1"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        words = REPLY[: body.get("max_tokens", len(REPLY))]
        for i, w in enumerate(words):
            if i == FAIL_AFTER:
                self.wfile.flush()
                self.connection.close()
                return
            chunk = {"choices": [{"index": 0, "delta": {"content": (" " if i else "") + w}, "finish_reason": None}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        usage = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)}}
        for c in (done, usage):
            self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
