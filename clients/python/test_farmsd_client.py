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
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "farmsd_client.py")
MLP = "tests/fixtures/checkpoints/mlp/"
FARMSD = os.environ.get("FARMSD_BIN", "build/san/farmsd")


def analyze(path, preset="farms-llm"):
    """{layer name: alpha} of the layers `farmsd analyze` fits (status ok)."""
    out = subprocess.run([FARMSD, "analyze", path, "--format", "json", "--quiet",
                          "--preset", preset], check=True, capture_output=True).stdout
    return {l["name"]: l["alpha"] for l in json.loads(out)["layers"] if l["status"] == "ok"}


def sizes(path):
    """{layer name: parameter count (product of the shape)} of `farmsd analyze`."""
    out = subprocess.run([FARMSD, "analyze", path, "--format", "json", "--quiet"],
                         check=True, capture_output=True).stdout
    counts = {}
    for l in json.loads(out)["layers"]:
        n = 1
        for d in l["shape"]:
            n *= d
        counts[l["name"]] = n
    return counts


class AgainstServer(unittest.TestCase):
    """The client against the real service."""

    @classmethod
    def setUpClass(cls):
        cls.c = FarmsdClient(URL, timeout=30, retries=3, backoff=0.2)
        cls.want0 = analyze(MLP + "mlp_step0000.safetensors")
        cls.want500 = analyze(MLP + "mlp_step0500.safetensors")
        cls.sizes = sizes(MLP + "mlp_step0500.safetensors")

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

    def test_summary_history_is_the_mean_of_the_layers(self):
        for step in (0, 500):
            j = self.c.post_checkpoint("summary", step, MLP + f"mlp_step{step:04d}.safetensors")
            self.assertEqual(self.c.wait_job(j, timeout=120, poll=0.2)["state"], "succeeded")
        pts = self.c.summary_history("summary", "alpha")
        self.assertEqual([p["step"] for p in pts], [0, 500])
        for p, want in zip(pts, (self.want0, self.want500)):
            sizes = self.sizes
            mean = sum(want.values()) / len(want)
            weighted = (sum(sizes[n] * a for n, a in want.items()) /
                        sum(sizes[n] for n in want))
            self.assertEqual(p["n_layers"], len(want))
            self.assertAlmostEqual(p["mean"], mean, places=9)
            self.assertAlmostEqual(p["weighted_mean"], weighted, places=9)
            self.assertNotAlmostEqual(p["mean"], p["weighted_mean"], places=3)
        self.assertEqual(len(self.c.summary_history("summary", "alpha", start_step=1)), 1)
        with self.assertRaises(FarmsdError) as e:
            self.c.summary_history("summary", "entropy")
        self.assertEqual(e.exception.status, 400)
        self.assertIn("alpha_weighted", e.exception.detail)

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

    def test_compare_two_runs(self):
        """The F32 checkpoint against its BF16 copy, through the service, against
        `farmsd compare` on the same files."""
        f32, bf16 = MLP + "mlp_step0500.safetensors", MLP + "mlp_step0500_bf16.safetensors"
        for run, path in (("client-cmp-f32", f32), ("client-cmp-bf16", bf16)):
            j = self.c.wait_job(self.c.post_checkpoint(run, 500, path), timeout=120, poll=0.2)
            self.assertEqual(j["state"], "succeeded", j)
        want = json.loads(subprocess.run(
            [FARMSD, "compare", f32, bf16, "--format", "json", "--quiet"],
            check=True, capture_output=True).stdout)
        got = self.c.compare("client-cmp-f32:500", ("client-cmp-bf16", 500))
        self.assertEqual((got["a"]["run"], got["b"]["step"]), ("client-cmp-f32", 500))
        self.assertEqual(len(got["layers"]), 3)  # the MLP's three linear weights
        self.assertEqual([l["key"] for l in got["layers"]], [l["key"] for l in want["layers"]])
        for g, w in zip(got["layers"], want["layers"]):
            self.assertEqual(g["matched_by"], "name")
            self.assertAlmostEqual(g["a"]["alpha"], w["a"]["alpha"], places=9)
            self.assertAlmostEqual(g["b"]["alpha"], w["b"]["alpha"], places=9)
            self.assertAlmostEqual(g["delta"]["alpha"], g["b"]["alpha"] - g["a"]["alpha"],
                                   places=12)
        self.assertEqual((got["only_a"], got["only_b"]), ([], []))
        self.assertAlmostEqual(got["summary"]["alpha"]["delta"],
                               want["summary"]["alpha"]["delta"], places=9)
        with self.assertRaises(FarmsdError) as cm:
            self.c.compare("client-cmp-f32:500", "client-cmp-bf16:501")
        self.assertEqual(cm.exception.status, 404)
        self.assertIn("step 501", str(cm.exception))
        with self.assertRaises(FarmsdError) as cm:
            self.c.compare("client-cmp-f32", "client-cmp-bf16:500")
        self.assertEqual(cm.exception.status, 400)

    def test_command_prints_tables_and_json(self):
        self.c.wait_job(self.c.post_checkpoint("client-cli", 500,
                                               MLP + "mlp_step0500.safetensors"), timeout=120)
        out = cli("layers", "client-cli")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["name", "step", "status", "alpha", "D"])
        rows = {l.split()[0]: l.split() for l in lines[1:]}
        for name, alpha in self.want500.items():
            self.assertEqual(rows[name][1:3], ["500", "ok"])
            self.assertEqual(rows[name][3], f"{alpha:.4g}")
        js = cli("--json", "layers", "client-cli")
        got = {l["name"]: l["alpha"] for l in json.loads(js.stdout) if l["status"] == "ok"}
        self.assertEqual(sorted(got), sorted(self.want500))
        self.assertTrue(all(w <= 80 for w in map(len, lines)), lines)

    def test_command_reader_leaving_early_is_no_error(self):
        self.c.wait_job(self.c.post_checkpoint("client-pipe", 0,
                                               MLP + "mlp_step0000.safetensors"), timeout=120)
        p = subprocess.Popen([sys.executable, CLIENT, "--url", URL, "--json", "layers",
                              "client-pipe"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()  # like `| head` that has already left
        err = p.stderr.read()
        p.stderr.close()
        self.assertEqual(p.wait(timeout=30), 0)
        self.assertNotIn(b"Traceback", err)

    def test_a_farms_cv_run_reads_back_without_naming_the_preset(self):
        for step in (0, 500):
            j = self.c.post_checkpoint("client-cv", step, MLP + f"mlp_step{step:04d}.safetensors",
                                       preset="farms-cv")
            self.assertEqual(self.c.wait_job(j, timeout=120, poll=0.2)["state"], "succeeded")
        want = analyze(MLP + "mlp_step0500.safetensors", "farms-cv")
        self.assertNotEqual(want, self.want500)  # the presets differ on these weights
        latest = {l["name"]: l["alpha"] for l in self.c.latest_layers("client-cv")
                  if l["status"] == "ok"}
        self.assertEqual(sorted(latest), sorted(want))
        for name, alpha in want.items():
            self.assertAlmostEqual(latest[name], alpha, places=9)
        summary = self.c.run("client-cv")
        self.assertEqual(summary["default_preset"], "farms-cv")
        self.assertEqual([(p["name"], p["analysed"]) for p in summary["presets"]],
                         [("farms-cv", 2)])
        self.assertEqual((summary["first_step"], summary["last_step"]), (0, 500))
        self.assertEqual(summary["last_job"]["state"], "succeeded")

    def test_jobs_and_delete_run(self):
        j = self.c.post_checkpoint("client-del", 7, MLP + "mlp_step0100.safetensors")
        self.c.wait_job(j, timeout=120, poll=0.2)
        listed = self.c.jobs(run="client-del")
        self.assertEqual([x["id"] for x in listed], [j["id"]])
        self.assertEqual(self.c.jobs(run="client-del", state="failed"), [])
        gone = self.c.delete_run("client-del")
        self.assertEqual(gone["deleted"]["checkpoints"], 1)
        self.assertEqual(gone["deleted"]["jobs"], 1)
        with self.assertRaises(FarmsdError) as cm:
            self.c.run("client-del")
        self.assertEqual(cm.exception.status, 404)
        self.assertNotIn("client-del", [r["name"] for r in self.c.runs()])

    def test_alert_rules_events_and_deliveries(self):
        rules = self.c.alert_rules()
        self.assertIn(rules["scope"], ("builtin", "default"))
        with self.assertRaises(FarmsdError) as cm:
            self.c.set_alert_rules([{"name": "x", "kind": "alpha_sideways"}])
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("rules[0].kind", str(cm.exception))
        # every weight layer analysed ok has alpha > 0: one event per checkpoint
        got = self.c.set_alert_rules([{"name": "any", "kind": "alpha_above", "threshold": 0}])
        self.assertEqual(got["scope"], "default")
        self.assertEqual(got["rules"][0]["threshold"], 0)
        j = self.c.post_checkpoint("client-alerts", 3, MLP + "mlp_step0000.safetensors")
        self.assertEqual(self.c.wait_job(j, timeout=120, poll=0.2)["state"], "succeeded")
        events = self.c.alerts("client-alerts")
        self.assertEqual(len(events), 1)
        ev = events[0]
        self.assertEqual((ev["run"], ev["step"], ev["job_id"]), ("client-alerts", 3, j["id"]))
        self.assertEqual(ev["rule"]["name"], "any")
        self.assertEqual(sorted(l["name"] for l in ev["layers"]), sorted(self.want0))
        self.assertEqual(ev["deliveries"], [])  # no --webhook-url: recorded, not sent
        self.assertEqual(self.c.deliveries(run="client-alerts"), [])
        own = self.c.set_alert_rules([], run="client-alerts")
        self.assertEqual((own["scope"], own["rules"]), ("run", []))
        self.assertEqual(self.c.set_alert_rules(None, run="client-alerts")["scope"], "default")
        self.c.set_alert_rules([{"name": "under_trained", "kind": "alpha_above"}])

    def test_unknown_run_is_404(self):
        with self.assertRaises(FarmsdError) as cm:
            self.c.latest_layers("no-such-run")
        self.assertEqual(cm.exception.status, 404)


def cli(*args, env=None):
    """The command, as a user runs it: its CompletedProcess (text)."""
    return subprocess.run([sys.executable, CLIENT, "--url", URL, *args], capture_output=True,
                          text=True, timeout=60, env=env)


class Command(unittest.TestCase):
    """The command's failures: one line on stderr, no traceback."""

    def test_missing_file_is_one_line(self):
        out = cli("post", "r", "1", "/no/such/checkpoint.safetensors")
        self.assertEqual(out.returncode, 1)
        self.assertEqual(out.stderr.strip(),
                         "farmsd: no answer file: /no/such/checkpoint.safetensors: "
                         "No such file or directory")

    def test_usage_error_is_exit_2(self):
        out = cli("no-such-command")
        self.assertEqual(out.returncode, 2)
        self.assertNotIn("Traceback", out.stderr)

    def test_installs_offline_with_pip(self):
        with tempfile.TemporaryDirectory() as d:
            pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index",
                                  "--no-cache-dir", "--quiet", "--target", d, HERE],
                                 capture_output=True, text=True, timeout=300)
            self.assertEqual(pip.returncode, 0, pip.stderr)
            self.assertTrue(os.path.isfile(os.path.join(d, "farmsd_client.py")))
            run = subprocess.run([os.path.join(d, "bin", "farmsd-client"), "--help"],
                                 capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, PYTHONPATH=d))
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertIn("farmsd-client", run.stdout)


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
        with self.assertRaises(FarmsdError) as cm, \
                self.assertLogs("farmsd_client", "WARNING") as logs:
            c.runs()
        self.assertEqual(len(logs.records), 2)  # each retry is reported
        self.assertIn("retry 2 of 2", logs.output[1])
        self.assertEqual(cm.exception.status, 0)
        self.assertEqual(cm.exception.category, "connection")
        self.assertEqual(c.last_attempts, 3)
        self.assertLess(time.monotonic() - t0, 10)

    def test_a_job_that_does_not_finish_is_a_timeout_error(self):
        srv = http.server.HTTPServer(("127.0.0.1", 0), Running)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            c = FarmsdClient(f"http://127.0.0.1:{srv.server_port}")
            with self.assertRaises(FarmsdError) as cm:
                c.wait_job(4, timeout=0.3, poll=0.1)
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(cm.exception.category, "timeout")
        self.assertEqual(cm.exception.status, 0)
        self.assertIn("job 4 still running", str(cm.exception))


class Running(http.server.BaseHTTPRequestHandler):
    """A job that stays running."""

    def do_GET(self):
        out = json.dumps({"id": 4, "state": "running"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_farmsd_client.py URL")
    URL = sys.argv.pop(1)
    unittest.main(verbosity=2)
