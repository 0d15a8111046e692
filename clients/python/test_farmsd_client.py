#!/usr/bin/env python3
"""Tests of farmsd_client against a running farmsd (run by tests/test_client.c).

    python3 clients/python/test_farmsd_client.py http://127.0.0.1:PORT

The server must allow path ingestion under tests/fixtures/checkpoints/mlp
(--allow-root). Expected values come from `farmsd analyze --format json` on
the same fixtures ($FARMSD_BIN, default build/san/farmsd), never from the
service itself. The retry cases use a small local http.server that answers
503 before it accepts. Run from the repository root.
"""

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farmsd_client import FarmsdClient, FarmsdError  # noqa: E402

URL = None
MLP = "tests/fixtures/checkpoints/mlp/"
FARMSD = os.environ.get("FARMSD_BIN", "build/san/farmsd")


def analyze(path):
    """{layer name: alpha} of the layers `farmsd analyze` fits (status ok)."""
    out = subprocess.run([FARMSD, "analyze", path, "--format", "json", "--quiet"],
                         check=True, capture_output=True).stdout
    return {l["name"]: l["alpha"] for l in json.loads(out)["layers"] if l["status"] == "ok"}


class AgainstServer(unittest.TestCase):
    """The client against the real service."""

    @classmethod
    def setUpClass(cls):
        cls.c = FarmsdClient(URL, timeout=30, retries=3, backoff=0.2)
        cls.want0 = analyze(MLP + "mlp_step0000.safetensors")
        cls.want500 = analyze(MLP + "mlp_step0500.safetensors")

    def test_post_wait_and_read_back(self):
        jobs = [self.c.post_checkpoint("client", 0, MLP + "mlp_step0000.safetensors"),
                self.c.post_checkpoint("client", 500, MLP + "mlp_step0500.safetensors")]
        for j, step in zip(jobs, (0, 500)):
            self.assertIn(j["state"], ("queued", "running", "succeeded"))
            self.assertEqual(j["step"], step)
            done = self.c.wait_job(j, timeout=120, poll=0.2)
            self.assertEqual(done["state"], "succeeded", done)
        with open(MLP + "mlp_step0500.safetensors", "rb") as f:
            self.assertEqual(jobs[1]["sha256"], hashlib.sha256(f.read()).hexdigest())

        self.assertEqual(len(self.want500), 3)  # the MLP's three linear weights
        latest = {l["name"]: l for l in self.c.latest_layers("client") if l["status"] == "ok"}
        self.assertEqual(sorted(latest), sorted(self.want500))
        for name, alpha in self.want500.items():
            self.assertEqual(latest[name]["step"], 500)
            self.assertAlmostEqual(latest[name]["alpha"], alpha, places=9)

        layer = sorted(self.want500)[1]
        pts = self.c.history("client", layer, ["alpha", "D"])
        self.assertEqual([p["step"] for p in pts], [0, 500])
        self.assertAlmostEqual(pts[0]["alpha"], self.want0[layer], places=9)
        self.assertAlmostEqual(pts[1]["alpha"], self.want500[layer], places=9)
        self.assertTrue(all(0 < p["D"] < 1 for p in pts))

        heat = self.c.run_history("client")
        self.assertEqual(heat["steps"], [0, 500])
        self.assertAlmostEqual(heat["layers"][layer][1], self.want500[layer], places=9)
        self.assertIn("client", [r["name"] for r in self.c.runs()])

    def test_same_upload_twice_is_the_same_job(self):
        a = self.c.post_checkpoint("client-twice", 7, MLP + "mlp_step0100.safetensors")
        b = self.c.post_checkpoint("client-twice", 7, MLP + "mlp_step0100.safetensors")
        self.assertEqual(a["id"], b["id"])

    def test_other_content_for_a_step_is_a_conflict(self):
        self.c.post_checkpoint("client-conflict", 1, MLP + "mlp_step0000.safetensors")
        with self.assertRaises(FarmsdError) as cm:
            self.c.post_checkpoint("client-conflict", 1, MLP + "mlp_step0500.safetensors")
        self.assertEqual(cm.exception.status, 409)
        self.assertEqual(self.c.last_attempts, 1)  # not retried

    def test_not_a_checkpoint_is_422_with_a_category(self):
        with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
            with open(MLP + "mlp_step0000.safetensors", "rb") as src:
                f.write(src.read(300))
            f.flush()
            with self.assertRaises(FarmsdError) as cm:
                self.c.post_checkpoint("client-bad", 1, f.name)
        self.assertEqual(cm.exception.status, 422)
        self.assertTrue(cm.exception.category)
        self.assertEqual(self.c.last_attempts, 1)

    def test_post_path(self):
        path = os.path.abspath(MLP + "mlp_step0100.safetensors")
        j = self.c.wait_job(self.c.post_path("client-path", 100, path), timeout=120, poll=0.2)
        self.assertEqual(j["state"], "succeeded")
        self.assertEqual(j["source"], "path")
        want = analyze(path)
        got = {l["name"]: l["alpha"] for l in self.c.checkpoint("client-path", 100)["layers"]
               if l["status"] == "ok"}
        self.assertEqual(sorted(got), sorted(want))
        for name in want:
            self.assertAlmostEqual(got[name], want[name], places=9)

    def test_unknown_run_is_404(self):
        with self.assertRaises(FarmsdError) as cm:
            self.c.latest_layers("no-such-run")
        self.assertEqual(cm.exception.status, 404)


class Busy(http.server.BaseHTTPRequestHandler):
    """Answers 503 (Retry-After: 0) to the first `busy` PUTs, then 202."""
    busy = 2
    seen = []

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Busy.seen.append((self.headers.get("X-Content-SHA256"), hashlib.sha256(body).hexdigest()))
        ok = len(Busy.seen) > Busy.busy
        out = json.dumps({"id": 9, "state": "queued"} if ok else
                         {"status": 503, "title": "busy", "detail": "busy"}).encode()
        self.send_response(202 if ok else 503)
        if not ok:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


class Retries(unittest.TestCase):
    """Retry behaviour against a local stand-in and a closed port."""

    def test_503_is_retried_with_the_whole_file_each_time(self):
        srv = http.server.HTTPServer(("127.0.0.1", 0), Busy)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            Busy.seen = []
            c = FarmsdClient(f"http://127.0.0.1:{srv.server_port}", retries=3, backoff=0.01)
            j = c.post_checkpoint("r", 1, MLP + "mlp_step0100.safetensors")
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(j["id"], 9)
        self.assertEqual(c.last_attempts, 3)
        self.assertEqual(len(Busy.seen), 3)
        for sent, got in Busy.seen:  # the declared hash is the hash of the bytes received
            self.assertEqual(sent, got)

    def test_refused_connection_gives_up_after_the_retries(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        c = FarmsdClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.01)
        t0 = time.monotonic()
        with self.assertRaises(FarmsdError) as cm:
            c.runs()
        self.assertEqual(cm.exception.status, 0)
        self.assertEqual(c.last_attempts, 3)
        self.assertLess(time.monotonic() - t0, 10)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_farmsd_client.py URL")
    URL = sys.argv.pop(1)
    unittest.main(verbosity=2)
