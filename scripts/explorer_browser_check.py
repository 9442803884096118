#!/usr/bin/env python3
"""Drives headless Chromium through the explorer of a running `plexus up` (network.json), over
the DevTools protocol with only the standard library: loads every page kind and screenshots it,
follows the trace of a request that failed over mid-stream (both nodes and their token shares,
the settlement block, the verification), searches by request id, address and block height, and
watches the overview's request count rise while requests are sent, without a reload.

usage: explorer_browser_check.py NETWORK_JSON SCREENSHOT_DIR
"""
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

NET = json.load(open(sys.argv[1]))
SHOTS = sys.argv[2]
os.makedirs(SHOTS, exist_ok=True)
EXPLORER = NET["explorer"]
checks = []


def check(ok, what):
    checks.append((bool(ok), what))
    print(("ok   " if ok else "FAIL ") + what, flush=True)


def http_json(url, body=None, timeout=120):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"authorization": "Bearer " + NET["apiKey"], "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def chat(text, extra=None):
    body = {"model": NET.get("model", "smollm2-135m"), "max_tokens": 8, "messages": [{"role": "user", "content": text}]}
    body.update(extra or {})
    return http_json(NET["baseURL"] + "/chat/completions", body)


class WebSocket:
    """A client WebSocket (RFC 6455): masked text frames out, whole messages in."""

    def __init__(self, url):
        m = re.match(r"ws://([^:/]+):(\d+)(/.*)", url)
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}:{m.group(2)}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("no websocket upgrade: " + head.decode(errors="replace"))

    def send(self, text):
        data = text.encode()
        header = bytes([0x81])
        n = len(data)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n):
        out = b""
        while len(out) < n:
            part = self.sock.recv(n - len(out))
            if not part:
                raise RuntimeError("the browser closed the connection")
            out += part
        return out

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            if b0 & 0x0F == 0x9:  # ping
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="plexus-chromium-")
        binary = os.environ.get("CHROMIUM", "chromium")
        self.proc = subprocess.Popen([binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                      "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "--window-size=1280,900",
                                      "about:blank"], stderr=subprocess.PIPE, text=True)
        port = None
        deadline = time.time() + 60
        while time.time() < deadline and port is None:
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
        if port is None:
            raise RuntimeError("chromium did not start")
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        self.next_id += 1
        me = self.next_id
        self.ws.send(json.dumps({"id": me, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == me:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, name, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == name:
                    del self.events[i]
                    return e
            self.events.append(json.loads(self.ws.recv()))
        raise RuntimeError("no " + name)

    def open(self, path):
        self.events.clear()
        self.call("Page.navigate", url=EXPLORER + path)
        self.wait_event("Page.loadEventFired")
        return self.eval("location.pathname + location.search")

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r.get("result", {}).get("value")

    def text(self):
        return self.eval("document.body.innerText") or ""

    def shot(self, name):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(os.path.join(SHOTS, name + ".png"), "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()


def failed_over_request():
    """A streamed request whose first node is killed after a few chunks: the gateway finishes it on another."""
    nodes = json.loads(urllib.request.urlopen(NET["ledger"] + "/v1/nodes", timeout=30).read())["nodes"]
    key = {n["endpoint"]: n["nodeKey"] for n in nodes}
    first, second = key[NET["nodes"][1]], key[NET["nodes"][0]]  # node-2 is the cheapest, node-1 next
    # The end-of-text tokens banned, so that the answer runs to max_tokens: seconds of generation,
    # and the node dies mid-answer even on a loaded machine.
    body = {"model": "smollm2-135m", "max_tokens": 300, "stream": True, "temperature": 0,
            "logit_bias": {"0": -100, "1": -100, "2": -100},
            "messages": [{"role": "user", "content": "Count from 1 to 500, separated by commas."}],
            "plexus": {"sort": "price", "allow": [first, second]}}
    req = urllib.request.Request(NET["baseURL"] + "/chat/completions", data=json.dumps(body).encode(),
                                 headers={"authorization": "Bearer " + NET["apiKey"], "content-type": "application/json"})
    chunks = 0
    with urllib.request.urlopen(req, timeout=300) as r:
        rid = r.headers["x-plexus-request-id"]
        for line in r:
            if line.startswith(b"data: {") and b'"content"' in line:
                chunks += 1
                if chunks == 4:
                    os.kill(NET["pids"][2], signal.SIGKILL)
    return rid, first, second, chunks


def main():
    rid, first, second, chunks = failed_over_request()
    check(chunks > 4, f"the streamed request {rid[:16]} went on after its node was killed ({chunks} chunks)")
    settlement = None
    for _ in range(120):
        try:
            settlement = json.loads(urllib.request.urlopen(NET["ledger"] + "/v1/settlements/" + rid, timeout=30).read())
            break
        except Exception:
            time.sleep(0.5)
    check(settlement is not None, "the request settled")
    trace = json.loads(urllib.request.urlopen(NET["baseURL"][:-3] + "/v1/trace/" + rid, timeout=30).read())
    attempts = [(a["node"], a["output_tokens"]) for a in trace["attempts"]]
    check([n for n, _ in attempts] == [first, second], f"the gateway's trace lists the killed node, then the one that finished ({attempts})")
    check(bool(trace["attempts"][0].get("failure")) and "failure" not in trace["attempts"][1],
          f"the gateway's trace says why the first attempt ended ({trace['attempts'][0].get('failure')})")
    for text in ["one", "two", "three"]:
        chat(text)
    account = NET["requestor"]
    time.sleep(3)  # the explorer follows the blocks as they come

    b = Browser()
    try:
        # Every page kind, screenshotted.
        height = json.loads(urllib.request.urlopen(NET["ledger"] + "/v1/status", timeout=30).read())["height"]
        block = json.loads(urllib.request.urlopen(f"{NET['ledger']}/v1/blocks/{settlement['settledHeight']}", timeout=30).read())
        tx = next(h for h, t in zip(block["transactionHashes"], block["transactions"]) if rid in json.dumps(t))
        for name, path, needle in [("overview", "/", "Network overview"), ("blocks", "/blocks", "Blocks"),
                                   ("block", f"/blocks/{settlement['settledHeight']}", f"Block {settlement['settledHeight']}"),
                                   ("transaction", f"/tx/{tx}", "Transaction"), ("account", f"/accounts/{account}", "Activity"),
                                   ("nodes", "/nodes", "Nodes"), ("node", f"/nodes/{second}", "Measured service"),
                                   ("request", f"/requests/{rid}", "Path"),
                                   ("governance", "/governance", "Proposals"), ("markets", "/markets", "Models")]:
            b.open(path)
            b.shot(name)
            check(needle in b.text(), f"{path} shows '{needle}'")
            check(b.eval("document.querySelector('h1') !== null && document.title.length > 0"), f"{path} has a title and a heading")
        # The phone's width: the overview fits without the page scrolling sideways.
        b.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
        b.open("/nodes")
        b.shot("nodes-phone")
        check(b.eval("document.documentElement.scrollWidth <= window.innerWidth + 1"), "/nodes fits a phone's width (tables scroll inside)")
        b.call("Emulation.clearDeviceMetricsOverride")

        # The trace of the failed-over request: both nodes and their shares, the block, the verification.
        b.open(f"/requests/{rid}")
        page = b.text()
        check(first in page and second in page, "the trace names both nodes")
        rows = b.eval("Array.from(document.querySelectorAll('main table')[0].querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))")
        shown = [(r[1], int(r[2])) for r in rows or []]
        check(shown == attempts and all(r[3].endswith("%") for r in rows), f"the trace shows each node's tokens and share ({shown})")
        check(f"Settled at block {settlement['settledHeight']}" in page, "the trace shows the settlement block")
        check("Verification" in page and ("check" in page or "verifiable" in page), "the trace shows the verification state")
        check("failed over" in page, "the trace says the answer failed over")
        why = [r[5] for r in rows or []]
        check(len(why) == 2 and why[0] not in ("", "–") and why[1] == "finished the answer", f"the trace says why each attempt ended ({why})")
        check(f"Parameters in force at block {settlement['settledHeight']}" in page, "the trace shows the parameters in force at its settlement block")
        check("Receipts" in page and "both valid" in page and "INVALID" not in page, "the trace shows the paid receipt, its ask and its checked signatures")

        # Each overview figure links to its history chart; a node page has its own.
        b.open("/")
        check(b.eval("document.querySelector('a[href=\"/charts/requests\"]') !== null"), "the overview's figures link to their charts")
        b.open("/charts/requests?range=hour")
        b.shot("chart")
        check("Requests settled" in b.text() and b.eval("document.querySelector('svg polyline') !== null"), "a figure's history chart is drawn")
        b.open(f"/nodes/{second}")
        check("History" in b.text() and b.eval("document.querySelectorAll('svg.chart').length") >= 5, "a node page has its history charts")

        # Search by request id, address and block height.
        for q, want in [(rid, f"/requests/{rid}"), (account, f"/accounts/{account}"), (str(height), f"/blocks/{height}")]:
            b.open("/")
            b.eval(f"document.getElementById('q').value = {json.dumps(q)}; document.querySelector('form.search').submit()")
            b.wait_event("Page.loadEventFired")
            check(b.eval("location.pathname") == want, f"search '{q[:20]}' goes to {want[:40]}")

        # Live: the overview's request count rises while requests are sent, with no reload.
        b.open("/")
        b.eval("window.plexusMarker = 1")
        before = int(b.eval("document.getElementById('requests').textContent") or 0)
        for text in ["four", "five", "six"]:
            chat(text)
        after = before
        for _ in range(60):
            time.sleep(0.5)
            after = int(b.eval("document.getElementById('requests').textContent") or 0)
            if after > before:
                break
        b.shot("overview-live")
        check(after > before and b.eval("window.plexusMarker") == 1, f"the overview's request count rose from {before} to {after} without a reload")
    finally:
        b.close()
    failed = [w for ok, w in checks if not ok]
    print(f"explorer browser check: {len(checks) - len(failed)} of {len(checks)} passed; screenshots in {SHOTS}")
    sys.exit(1 if failed else 0)


main()
