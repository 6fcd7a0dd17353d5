#!/usr/bin/env python3
"""A static HTTP server for the OTA tests: serves a folder on 127.0.0.1,
prints its port, and counts the body bytes it sends. GET /_config?... sets
how it misbehaves: range=0 (ignore Range, answer 200 with the whole file),
die_after=N (close every connection after N more body bytes in total, then
serve normally again: a server killed mid-transfer and restarted),
garbage=1 (answer nonsense), slow=1 (never answer: the client must time
out). GET /_stats answers the bytes sent and requests seen, as JSON."""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ROOT = sys.argv[1]
CONFIG = {"range": 1, "die_after": -1, "garbage": 0, "slow": 0}
STATS = {"bytes": 0, "requests": 0, "ranges": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/_config":
            for k, v in parse_qs(url.query).items():
                CONFIG[k] = int(v[0])
            if "reset" in CONFIG:
                STATS.update(bytes=0, requests=0, ranges=0)
                del CONFIG["reset"]
            return self.reply(200, b"ok")
        if url.path == "/_stats":
            return self.reply(200, json.dumps(STATS).encode())
        STATS["requests"] += 1
        if CONFIG["slow"]:
            time.sleep(30)
            return
        if CONFIG["garbage"]:
            self.wfile.write(b"\x00\xffgarbage\r\n\r\n" * 10)
            return
        path = os.path.join(ROOT, url.path.lstrip("/"))
        try:
            data = open(path, "rb").read()
        except OSError:
            return self.reply(404, b"not found")
        rng = self.headers.get("Range")
        if rng and CONFIG["range"]:
            a, b = rng.split("=")[1].split("-")
            a, b = int(a), min(int(b), len(data) - 1)
            STATS["ranges"] += 1
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (a, b, len(data)))
            body = data[a : b + 1]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.send_body(body)

    def send_body(self, body):
        left = CONFIG["die_after"]
        if left >= 0 and left < len(body):
            body = body[:left]
            CONFIG["die_after"] = -1
            self.wfile.write(body)
            STATS["bytes"] += len(body)
            self.close_connection = True
            return
        if left >= 0:
            CONFIG["die_after"] = left - len(body)
        self.wfile.write(body)
        STATS["bytes"] += len(body)

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
