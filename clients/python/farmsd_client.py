#!/usr/bin/env python3
"""farmsd_client -- post checkpoints to a farmsd service and read its results.

Python standard library only (urllib, json, hashlib), Python 3.8+. Install it
with `pip install ./clients/python` (no network needed), or copy this one file
next to a training script. As a command (`farmsd-client` once installed, or
`python3 farmsd_client.py`):

    farmsd-client post RUN STEP FILE [--wait]       # upload a checkpoint
    farmsd-client post-path RUN STEP PATH [--wait]  # a path under --allow-root
    farmsd-client wait JOB_ID
    farmsd-client runs                              # the runs, a table
    farmsd-client layers RUN                        # latest alpha of every layer
    farmsd-client history RUN LAYER [--metrics alpha,D]

Tables are for people; `--json` prints the API's JSON for machines. Errors
are one line on stderr and exit status 1 (2 for usage errors).

The server is FARMSD_URL (default http://127.0.0.1:8080), the bearer token
FARMSD_TOKEN (if the server has --tokens). Uploads stream the file and send
its SHA-256 (X-Content-SHA256), which the server verifies. Answers 429, 503
and 507 are retried with exponential backoff (honouring Retry-After) up to
`retries` times; a refused or failed connection is retried `connect_retries`
times (default 2, about 1.5 s in all), each retry reported through the
`farmsd_client` logger. Every failure, timeouts included, raises FarmsdError.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

__all__ = ["FarmsdClient", "FarmsdError", "main"]
__version__ = "0.3.0"

RETRY_STATUS = (429, 503, 507)
FINAL_STATES = ("succeeded", "failed", "canceled")

log = logging.getLogger("farmsd_client")

Json = Any
JobRef = Union[int, Mapping[str, Any]]


class FarmsdError(Exception):
    """Every failure of the client.

    `status` is the HTTP status of an error answer, or 0 when there was no
    answer (connection refused, timeout, a job that did not finish in time);
    `category` is the server's problem category (for example
    "invalid_parameter"), or the client's own: "connection", "timeout",
    "file"; `detail` is the human-readable reason; `body` the problem+json
    answer (a dict) when there is one."""

    def __init__(self, status: int, detail: str, category: Optional[str] = None,
                 body: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(f"farmsd: {status or 'no answer'}"
                         f"{' ' + category if category else ''}: {detail}")
        self.status = status
        self.detail = detail
        self.category = category
        self.body = body


def _sha256_file(path: str, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class FarmsdClient:
    """A farmsd HTTP API client. Requests are independent, so threads may
    share one instance (`last_attempts` then tells about any of them)."""

    def __init__(self, base_url: Optional[str] = None, token: Optional[str] = None,
                 timeout: float = 60.0, retries: int = 5, backoff: float = 0.5,
                 max_backoff: float = 30.0, connect_retries: int = 2) -> None:
        """`base_url` defaults to $FARMSD_URL, then http://127.0.0.1:8080;
        `token` to $FARMSD_TOKEN. `timeout` bounds each HTTP request in
        seconds; `retries` counts the retries of busy answers (429/503/507),
        `connect_retries` those of failed connections; the delay starts at
        `backoff` seconds and doubles, at most `max_backoff`."""
        self.base_url = (base_url or os.environ.get("FARMSD_URL")
                         or "http://127.0.0.1:8080").rstrip("/")
        self.token = token if token is not None else os.environ.get("FARMSD_TOKEN")
        self.timeout = timeout
        self.retries = retries
        self.connect_retries = connect_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.last_attempts = 0  # attempts made by the last request

    # --- transport ---------------------------------------------------------------

    def _url(self, path: str, query: Optional[Mapping[str, Any]] = None) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self.base_url + path + ("?" + urllib.parse.urlencode(q) if q else "")

    def _delay(self, attempt: int, retry_after: Optional[str] = None) -> float:
        if retry_after is not None:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return min(self.max_backoff, self.backoff * (2 ** attempt))

    @staticmethod
    def _problem(e: urllib.error.HTTPError) -> FarmsdError:
        raw = e.read()
        try:
            p = json.loads(raw)
            if not isinstance(p, dict):
                raise ValueError
        except ValueError:
            p = {"detail": raw.decode("utf-8", "replace")[:500]}
        return FarmsdError(e.code, p.get("detail") or p.get("title") or str(e.reason),
                           p.get("category"), p)

    def request(self, method: str, path: str, query: Optional[Mapping[str, Any]] = None,
                json_body: Optional[Json] = None, file_path: Optional[str] = None,
                headers: Optional[Mapping[str, str]] = None) -> Json:
        """One API call with retries: the decoded JSON answer (None for an
        empty body). `file_path` is streamed as application/octet-stream and
        re-opened on every attempt. Raises FarmsdError on any failure."""
        hdrs = {"Accept": "application/json"}
        hdrs.update(headers or {})
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        url = self._url(path, query)
        busy = conn = 0
        while True:
            self.last_attempts = busy + conn + 1
            try:
                return self._once(method, url, data, file_path, hdrs)
            except urllib.error.HTTPError as e:
                err = self._problem(e)
                if e.code not in RETRY_STATUS or busy >= self.retries:
                    raise err from None
                delay = self._delay(busy, e.headers.get("Retry-After"))
                busy += 1
                log.warning("%s %s: %d %s; retry %d of %d in %.1f s", method, url, e.code,
                            err.category or "", busy, self.retries, delay)
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as e:
                reason = getattr(e, "reason", e)
                timed_out = isinstance(e, (socket.timeout, TimeoutError)) or \
                    isinstance(reason, (socket.timeout, TimeoutError))
                if conn >= self.connect_retries:
                    raise FarmsdError(0, f"{method} {url}: {reason} (after {conn + 1} "
                                      f"attempts; is farmsd running there? FARMSD_URL "
                                      f"sets the server)",
                                      "timeout" if timed_out else "connection") from None
                delay = self._delay(conn)
                conn += 1
                log.warning("%s %s: %s; retry %d of %d in %.1f s", method, url, reason, conn,
                            self.connect_retries, delay)
            time.sleep(delay)

    def _once(self, method: str, url: str, data: Optional[bytes], file_path: Optional[str],
              hdrs: Dict[str, str]) -> Json:
        if file_path is None:
            req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
            return json.loads(raw) if raw else None
        try:
            f = open(file_path, "rb")
        except OSError as e:
            raise FarmsdError(0, f"{file_path}: {e.strerror}", "file") from None
        with f:
            hdrs = dict(hdrs, **{"Content-Type": "application/octet-stream",
                                 "Content-Length": str(os.fstat(f.fileno()).st_size)})
            req = urllib.request.Request(url, data=f, headers=hdrs, method=method)
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        return json.loads(raw) if raw else None

    # --- ingestion ----------------------------------------------------------------

    def post_checkpoint(self, run: str, step: int, file_path: str, preset: Optional[str] = None,
                        fmt: Optional[str] = None) -> Dict[str, Any]:
        """Upload `file_path` as checkpoint `step` of `run`: the job (dict).
        Posting the same content again returns the same job; other content
        for the same run and step raises FarmsdError(409). A missing or
        unreadable file raises FarmsdError with category "file"."""
        try:
            sha = _sha256_file(file_path)
        except OSError as e:
            raise FarmsdError(0, f"{file_path}: {e.strerror}", "file") from None
        return self.request("PUT", f"/v1/runs/{_q(run)}/checkpoints",
                            query={"step": int(step), "preset": preset, "format": fmt},
                            file_path=file_path, headers={"X-Content-SHA256": sha})

    def post_path(self, run: str, step: int, path: str, preset: Optional[str] = None,
                  fmt: Optional[str] = None) -> Dict[str, Any]:
        """Submit a checkpoint that the server reads itself (a file, shard
        index or shard folder under one of its --allow-root folders): the
        job (dict)."""
        body: Dict[str, Any] = {"step": int(step), "path": os.path.abspath(path)}
        if preset:
            body["preset"] = preset
        if fmt:
            body["format"] = fmt
        return self.request("POST", f"/v1/runs/{_q(run)}/checkpoints", json_body=body)

    def job(self, job_id: int) -> Dict[str, Any]:
        """Job `job_id` (dict: state, progress, error when failed)."""
        return self.request("GET", f"/v1/jobs/{int(job_id)}")

    def wait_job(self, job: JobRef, timeout: float = 600.0, poll: float = 1.0) -> Dict[str, Any]:
        """Poll until the job (an id or a job dict) is succeeded, failed or
        canceled: the final job dict. FarmsdError with category "timeout"
        after `timeout` seconds."""
        job_id = job["id"] if isinstance(job, Mapping) else int(job)
        deadline = time.monotonic() + timeout
        while True:
            j = self.job(job_id)
            if j["state"] in FINAL_STATES:
                return j
            if time.monotonic() >= deadline:
                raise FarmsdError(0, f"job {job_id} still {j['state']} after {timeout:g} s",
                                  "timeout", j)
            time.sleep(poll)

    # --- reads ----------------------------------------------------------------------

    def runs(self) -> List[Dict[str, Any]]:
        """Every run (dicts with name, checkpoints, last_step, ...)."""
        return self.request("GET", "/v1/runs", query={"page_size": 1000})["runs"]

    def checkpoint(self, run: str, step: int, preset: Optional[str] = None) -> Dict[str, Any]:
        """Checkpoint `step` of `run` with its per-layer results."""
        return self.request("GET", f"/v1/runs/{_q(run)}/checkpoints/{int(step)}",
                            query={"preset": preset})

    def run(self, run: str) -> Dict[str, Any]:
        """The run's summary: checkpoints, first_step, last_step, the presets
        present ({"name", "checkpoints", "analysed"}), default_preset (what
        reads without a preset use) and last_job (a job dict or None)."""
        return self.request("GET", f"/v1/runs/{_q(run)}")

    def delete_run(self, run: str) -> Dict[str, Any]:
        """Delete `run` with its checkpoints, jobs and layer results (the
        uploaded files no other run shares go too; the tensor cache stays):
        {"run", "deleted": {"checkpoints", "jobs", "layer_rows", "blobs"}}.
        FarmsdError(409, category "job_running") while one of its jobs runs:
        cancel it (cancel_job) first."""
        return self.request("DELETE", f"/v1/runs/{_q(run)}")

    def cancel_job(self, job_id: int) -> Dict[str, Any]:
        """Cancel a queued or running job: the job dict, now canceled."""
        return self.request("DELETE", f"/v1/jobs/{int(job_id)}")

    def jobs(self, state: Optional[str] = None, run: Optional[str] = None,
             limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Jobs newest first, of one `state` ("queued", "running",
        "succeeded", "failed", "canceled") and/or one `run`; every page
        fetched, at most `limit` jobs (None: all)."""
        out: List[Dict[str, Any]] = []
        token = None
        while limit is None or len(out) < limit:
            r = self.request("GET", "/v1/jobs", query={"state": state, "run": run,
                                                      "page_size": 1000, "page_token": token})
            out.extend(r["jobs"])
            token = r.get("next_page_token")
            if not token:
                break
        return out if limit is None else out[:limit]

    def latest_layers(self, run: str, preset: Optional[str] = None) -> List[Dict[str, Any]]:
        """The latest result of every layer: a list of layer dicts with `step`.
        Without `preset`, the run's own (the preset its latest step was
        analysed with, run()["default_preset"]), so a run uploaded with
        preset="farms-cv" reads back without naming it again."""
        return self.request("GET", f"/v1/runs/{_q(run)}/layers",
                            query={"preset": preset})["layers"]

    def history(self, run: str, layer: str, metrics: Union[str, Sequence[str]] = ("alpha",),
                preset: Optional[str] = None, start_step: Optional[int] = None,
                end_step: Optional[int] = None,
                max_points: Optional[int] = None) -> List[Dict[str, Any]]:
        """One layer over the steps: a list of {"step", "status", metric...}."""
        if isinstance(metrics, str):
            metrics = [metrics]
        r = self.request("GET", f"/v1/runs/{_q(run)}/layers/{_q(layer)}/history",
                         query={"metrics": ",".join(metrics), "preset": preset,
                                "start_step": start_step, "end_step": end_step,
                                "max_points": max_points})
        return r["points"]

    def run_history(self, run: str, metric: str = "alpha",
                    preset: Optional[str] = None) -> Dict[str, Any]:
        """Every layer at every step: {"steps": [...], "layers": {name: [values]}},
        all pages merged (None where a layer has no value at a step)."""
        steps: List[int] = []
        layers: Dict[str, List[Optional[float]]] = {}
        token = None
        while True:
            r = self.request("GET", f"/v1/runs/{_q(run)}/history",
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

    def summary_history(self, run: str, metric: str = "alpha", preset: Optional[str] = None,
                        start_step: Optional[int] = None,
                        end_step: Optional[int] = None) -> List[Dict[str, Any]]:
        """One checkpoint-summary metric (alpha, alpha_weighted, log_norm,
        log_spectral_norm, log_alpha_norm, stable_rank, mp_softrank) over the
        run's steps, all pages merged: [{"step", "n_layers", "mean",
        "weighted_mean"}, ...] ascending, the means over the analysed layers,
        plain and weighted by parameter count (None where no layer has it)."""
        points: List[Dict[str, Any]] = []
        token = None
        while True:
            r = self.request("GET", f"/v1/runs/{_q(run)}/summary/history",
                             query={"metric": metric, "preset": preset, "start_step": start_step,
                                    "end_step": end_step, "page_size": 1000,
                                    "page_token": token})
            points.extend(r["points"])
            token = r.get("next_page_token")
            if not token:
                return points

    # --- alerts (README "Alerts and webhooks") -------------------------------------

    def alert_rules(self, run: Optional[str] = None) -> Dict[str, Any]:
        """The alert rule set in force: the default set (run None), else the
        run's: {"run", "scope" ("run", "default" or "builtin"), "rules": [...]}."""
        path = "/v1/alerts/rules" if run is None else f"/v1/runs/{_q(run)}/alerts/rules"
        return self.request("GET", path)

    def set_alert_rules(self, rules: Optional[Sequence[Mapping[str, Any]]],
                        run: Optional[str] = None) -> Dict[str, Any]:
        """Replace the default set (run None) or give `run` its own set; each
        rule a dict {"name", "kind", "threshold", "window", "min_layers",
        "enabled"} (name and kind required). rules None with a run drops the
        run's own set (it follows the default again). The set now in force;
        FarmsdError(400) naming the bad member."""
        if run is None:
            return self.request("PUT", "/v1/alerts/rules", json_body={"rules": list(rules or [])})
        path = f"/v1/runs/{_q(run)}/alerts/rules"
        if rules is None:
            return self.request("DELETE", path)
        return self.request("PUT", path, json_body={"rules": list(rules)})

    def alerts(self, run: str) -> List[Dict[str, Any]]:
        """The run's alert events, newest first (every page), each with its
        layers, recommendations and webhook deliveries."""
        out: List[Dict[str, Any]] = []
        token = None
        while True:
            r = self.request("GET", f"/v1/runs/{_q(run)}/alerts",
                             query={"page_size": 1000, "page_token": token})
            out.extend(r["events"])
            token = r.get("next_page_token")
            if not token:
                return out

    def deliveries(self, run: Optional[str] = None, state: Optional[str] = None,
                   limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """The webhook delivery log, newest first, of one `run` and/or one
        `state` ("pending", "delivered", "failed"); at most `limit` (None: all)."""
        out: List[Dict[str, Any]] = []
        token = None
        while limit is None or len(out) < limit:
            r = self.request("GET", "/v1/alerts/deliveries",
                             query={"run": run, "state": state, "page_size": 1000,
                                    "page_token": token})
            out.extend(r["deliveries"])
            token = r.get("next_page_token")
            if not token:
                break
        return out if limit is None else out[:limit]

    # --- compare (README "Comparing checkpoints") -----------------------------------

    def compare(self, a: Union[str, Sequence[Any]], b: Union[str, Sequence[Any]],
                preset: Optional[str] = None, preset_b: Optional[str] = None) -> Dict[str, Any]:
        """Two analysed checkpoints side by side (GET /v1/compare). `a` and `b` are
        "RUN:STEP" or (run, step); `preset` is side a's settings (default: those it was
        analysed with), `preset_b` side b's (default `preset`). Returns {"a", "b",
        "layers": [{"key", "matched_by", "name_a", "name_b", "block", "role", "a", "b",
        "delta"}], "only_a", "only_b", "summary"}; every delta is b - a."""
        def side(x: Union[str, Sequence[Any]]) -> str:
            return x if isinstance(x, str) else f"{x[0]}:{int(x[1])}"
        return self.request("GET", "/v1/compare",
                            query={"a": side(a), "b": side(b), "preset": preset,
                                   "preset_b": preset_b})


# --- the command --------------------------------------------------------------------

def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """`rows` as a plain-text table with a header line; numbers right-aligned."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows)
               for c in columns]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(vals, widths, numeric)).rstrip()
    return "\n".join([line(list(columns))] + [line(row) for row in cells])


def _job_line(j: Mapping[str, Any]) -> str:
    out = f"job {j.get('id')}: {j.get('state')} (run {j.get('run')}, step {j.get('step')})"
    err = j.get("error")
    if isinstance(err, Mapping):
        out += f": {err.get('category', '')}: {err.get('message', '')}"
    elif err:
        out += f": {err}"
    return out


def _run(a: Any, c: FarmsdClient) -> int:
    out: Json
    if a.cmd in ("post", "post-path"):
        post = c.post_checkpoint if a.cmd == "post" else c.post_path
        out = post(a.run, a.step, a.file, preset=a.preset)
        if a.wait:
            out = c.wait_job(out)
        text = _job_line(out)
    elif a.cmd == "wait":
        out = c.wait_job(a.job)
        text = _job_line(out)
    elif a.cmd == "runs":
        out = c.runs()
        text = format_table(out, ["name", "checkpoints", "last_step", "created"])
    elif a.cmd == "layers":
        out = c.latest_layers(a.run)
        text = format_table(out, ["name", "step", "status", "alpha", "D"])
    else:
        metrics = a.metrics.split(",")
        out = c.history(a.run, a.layer, metrics)
        text = format_table(out, ["step", "status"] + metrics)
    if a.json:
        json.dump(out, sys.stdout, indent=1)
        print()
    else:
        print(text)
    failed = isinstance(out, Mapping) and out.get("state") == "failed"
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The `farmsd-client` command: the exit status (0 ok, 1 error, 2 usage)."""
    import argparse

    ap = argparse.ArgumentParser(prog="farmsd-client",
                                 description="farmsd client (FARMSD_URL, FARMSD_TOKEN)")
    ap.add_argument("--url", default=None, help="server (default $FARMSD_URL or 127.0.0.1:8080)")
    ap.add_argument("--json", action="store_true", help="print the API's JSON, not a table")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("post", "post-path"):
        p = sub.add_parser(name, help="upload a file" if name == "post"
                           else "submit a path the server reads")
        p.add_argument("run")
        p.add_argument("step", type=int)
        p.add_argument("file")
        p.add_argument("--preset")
        p.add_argument("--wait", action="store_true", help="wait for the job and print it")
    sub.add_parser("wait", help="wait for a job").add_argument("job", type=int)
    sub.add_parser("runs", help="list the runs")
    sub.add_parser("layers", help="latest result of every layer").add_argument("run")
    p = sub.add_parser("history", help="one layer over the steps")
    p.add_argument("run")
    p.add_argument("layer")
    p.add_argument("--metrics", default="alpha")
    a = ap.parse_args(argv)
    logging.basicConfig(format="farmsd-client: %(message)s", level=logging.WARNING)
    try:
        rc = _run(a, FarmsdClient(a.url))
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return rc
    except FarmsdError as e:
        print(e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `farmsd-client layers run | head`: the reader left; say nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
