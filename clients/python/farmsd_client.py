#!/usr/bin/env python3
"""farmsd_client -- post checkpoints to a farmsd service and read its results.

Python standard library only (urllib, json, hashlib), Python 3.8+. Copy this
one file next to a training script, or run it as a command:

    python3 farmsd_client.py post RUN STEP FILE [--wait]      # upload a checkpoint
    python3 farmsd_client.py post-path RUN STEP PATH [--wait] # a path under --allow-root
    python3 farmsd_client.py wait JOB_ID
    python3 farmsd_client.py layers RUN                       # latest alpha of every layer
    python3 farmsd_client.py history RUN LAYER [--metrics alpha,D]

The server is FARMSD_URL (default http://127.0.0.1:8080), the bearer token
FARMSD_TOKEN (if the server has --tokens). Uploads stream the file and send
its SHA-256 (X-Content-SHA256), which the server verifies. Connection errors
and answers 429, 503 and 507 are retried with exponential backoff (honouring
Retry-After); other errors raise FarmsdError with the server's problem+json.
"""

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["FarmsdClient", "FarmsdError"]

RETRY_STATUS = (429, 503, 507)
FINAL_STATES = ("succeeded", "failed", "canceled")


class FarmsdError(Exception):
    """An error answer (status, category and detail from problem+json), or a
    transport error after the last retry (status 0)."""

    def __init__(self, status, detail, category=None, body=None):
        super().__init__(f"farmsd: {status or 'no answer'}"
                         f"{' ' + category if category else ''}: {detail}")
        self.status = status
        self.detail = detail
        self.category = category
        self.body = body


def _sha256_file(path, block=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


class FarmsdClient:
    """A farmsd HTTP API client. Requests are independent, so threads may
    share one instance (`last_attempts` then tells about any of them)."""

    def __init__(self, base_url=None, token=None, timeout=60.0, retries=5, backoff=0.5,
                 max_backoff=30.0):
        self.base_url = (base_url or os.environ.get("FARMSD_URL")
                         or "http://127.0.0.1:8080").rstrip("/")
        self.token = token if token is not None else os.environ.get("FARMSD_TOKEN")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.last_attempts = 0  # attempts made by the last request

    # --- transport ---------------------------------------------------------------

    def _url(self, path, query=None):
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self.base_url + path + ("?" + urllib.parse.urlencode(q) if q else "")

    def _delay(self, attempt, retry_after=None):
        if retry_after is not None:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return min(self.max_backoff, self.backoff * (2 ** attempt))

    def request(self, method, path, query=None, json_body=None, file_path=None, headers=None):
        """One API call with retries: the decoded JSON answer (None for an
        empty body). `file_path` is streamed as application/octet-stream and
        re-opened on every attempt."""
        hdrs = {"Accept": "application/json"}
        hdrs.update(headers or {})
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        url = self._url(path, query)
        attempt = 0
        while True:
            self.last_attempts = attempt + 1
            f = None
            try:
                body = data
                if file_path is not None:
                    f = open(file_path, "rb")
                    hdrs["Content-Type"] = "application/octet-stream"
                    hdrs["Content-Length"] = str(os.fstat(f.fileno()).st_size)
                    body = f
                req = urllib.request.Request(url, data=body, headers=hdrs, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    raw = r.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as e:
                raw = e.read()
                if e.code in RETRY_STATUS and attempt < self.retries:
                    time.sleep(self._delay(attempt, e.headers.get("Retry-After")))
                    attempt += 1
                    continue
                try:
                    p = json.loads(raw)
                except ValueError:
                    p = {"detail": raw.decode("utf-8", "replace")[:500]}
                raise FarmsdError(e.code, p.get("detail") or p.get("title") or e.reason,
                                  p.get("category"), p) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
                if isinstance(e, FileNotFoundError) or isinstance(e, IsADirectoryError):
                    raise
                if attempt < self.retries:
                    time.sleep(self._delay(attempt))
                    attempt += 1
                    continue
                raise FarmsdError(0, f"{url}: {getattr(e, 'reason', e)}") from e
            finally:
                if f is not None:
                    f.close()

    # --- ingestion ----------------------------------------------------------------

    def post_checkpoint(self, run, step, file_path, preset=None, fmt=None):
        """Upload `file_path` as checkpoint `step` of `run`: the job (dict).
        Posting the same content again returns the same job; other content
        for the same run and step raises FarmsdError(409)."""
        sha = _sha256_file(file_path)
        return self.request("PUT", f"/v1/runs/{urllib.parse.quote(run, safe='')}/checkpoints",
                            query={"step": int(step), "preset": preset, "format": fmt},
                            file_path=file_path, headers={"X-Content-SHA256": sha})

    def post_path(self, run, step, path, preset=None, fmt=None):
        """Submit a checkpoint that the server reads itself (a file, shard
        index or shard folder under one of its --allow-root folders)."""
        body = {"step": int(step), "path": os.path.abspath(path)}
        if preset:
            body["preset"] = preset
        if fmt:
            body["format"] = fmt
        return self.request("POST", f"/v1/runs/{urllib.parse.quote(run, safe='')}/checkpoints",
                            json_body=body)

    def job(self, job_id):
        return self.request("GET", f"/v1/jobs/{int(job_id)}")

    def wait_job(self, job, timeout=600.0, poll=1.0):
        """Poll until the job (an id or a job dict) is succeeded, failed or
        canceled: the final job dict. TimeoutError after `timeout` seconds."""
        job_id = job["id"] if isinstance(job, dict) else int(job)
        deadline = time.monotonic() + timeout
        while True:
            j = self.job(job_id)
            if j["state"] in FINAL_STATES:
                return j
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {j['state']} after {timeout} s")
            time.sleep(poll)

    # --- reads ----------------------------------------------------------------------

    def runs(self):
        return self.request("GET", "/v1/runs", query={"page_size": 1000})["runs"]

    def checkpoint(self, run, step, preset=None):
        return self.request("GET", f"/v1/runs/{urllib.parse.quote(run, safe='')}/checkpoints/"
                            f"{int(step)}", query={"preset": preset})

    def latest_layers(self, run, preset=None):
        """The latest result of every layer: a list of layer dicts with `step`."""
        return self.request("GET", f"/v1/runs/{urllib.parse.quote(run, safe='')}/layers",
                            query={"preset": preset})["layers"]

    def history(self, run, layer, metrics=("alpha",), preset=None, start_step=None,
                end_step=None, max_points=None):
        """One layer over the steps: a list of {"step", "status", metric...}."""
        if isinstance(metrics, str):
            metrics = [metrics]
        r = self.request("GET", f"/v1/runs/{urllib.parse.quote(run, safe='')}/layers/"
                         f"{urllib.parse.quote(layer, safe='')}/history",
                         query={"metrics": ",".join(metrics), "preset": preset,
                                "start_step": start_step, "end_step": end_step,
                                "max_points": max_points})
        return r["points"]

    def run_history(self, run, metric="alpha", preset=None):
        """Every layer at every step: {"steps": [...], "layers": {name: [values]}},
        all pages merged (None where a layer has no value at a step)."""
        steps, layers, token = [], {}, None
        while True:
            r = self.request("GET", f"/v1/runs/{urllib.parse.quote(run, safe='')}/history",
                             query={"metric": metric, "preset": preset, "page_size": 1000,
                                    "page_token": token})
            for name, vals in ((l["name"], l["values"]) for l in r["layers"]):
                layers.setdefault(name, [None] * len(steps)).extend(vals)
            steps.extend(r["steps"])
            for vals in layers.values():
                vals.extend([None] * (len(steps) - len(vals)))
            token = r.get("next_page_token")
            if not token:
                return {"steps": steps, "layers": layers}


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="farmsd client (FARMSD_URL, FARMSD_TOKEN)")
    ap.add_argument("--url", default=None, help="server (default $FARMSD_URL or 127.0.0.1:8080)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("post", "post-path"):
        p = sub.add_parser(name)
        p.add_argument("run")
        p.add_argument("step", type=int)
        p.add_argument("file")
        p.add_argument("--preset")
        p.add_argument("--wait", action="store_true", help="wait for the job and print it")
    sub.add_parser("wait").add_argument("job", type=int)
    sub.add_parser("layers").add_argument("run")
    p = sub.add_parser("history")
    p.add_argument("run")
    p.add_argument("layer")
    p.add_argument("--metrics", default="alpha")
    a = ap.parse_args(argv)
    c = FarmsdClient(a.url)
    try:
        if a.cmd in ("post", "post-path"):
            post = c.post_checkpoint if a.cmd == "post" else c.post_path
            out = post(a.run, a.step, a.file, preset=a.preset)
            if a.wait:
                out = c.wait_job(out)
        elif a.cmd == "wait":
            out = c.wait_job(a.job)
        elif a.cmd == "layers":
            out = c.latest_layers(a.run)
        else:
            out = c.history(a.run, a.layer, a.metrics.split(","))
    except FarmsdError as e:
        print(e, file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0 if not isinstance(out, dict) or out.get("state") != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
