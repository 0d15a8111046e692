/* farmsd dashboard: plain ES2017, no framework, no external resources.
 *
 * Reads the HTTP API of the server that serves this page. The main panel
 * shows one of three views of the chosen metric: the block x role grid of
 * one checkpoint (the step picked by a slider; /v1/runs/{run}/checkpoints/
 * {step}), the layer-by-step heatmap (/v1/runs/{run}/history) or the delta
 * view of two checkpoints (/v1/compare). Beside it: the selected layer's
 * history (optionally overlaid with the same layer of a second run), the
 * run's summary over steps (/v1/runs/{run}/summary/history) and the latest
 * checkpoint's table. Every read is polled with If-None-Match; a 304 leaves
 * the view as it is. State lives in the URL hash (#run=&layer=&preset=&
 * metric=&view=&step=&overlay=&b=RUN:STEP) so a reload shows the same view.
 * Optional routes are found in /dashboard/routes.json, which also lists the
 * server's history and summary metrics (the selectors offer exactly those).
 *
 * The page is four classic scripts sharing one global scope, loaded in this
 * order with `defer` (index.html): app.js (this file: constants, state,
 * fetching, loading and polling, the controls), grid.js (formatting,
 * colours, legend, the grid, heatmap and delta views), plots.js (the line
 * charts, the ESD plot, the latest checkpoint's table) and export.js (CSV,
 * SVG and PNG downloads). Top-level code only declares; everything runs
 * from init() at DOMContentLoaded, after all four have loaded.
 */
"use strict";

const POLL_MS = Number(new URLSearchParams(location.search).get("poll")) || 5000;
const OVER = 2; /* alpha below: over-trained */
const UNDER = 6; /* alpha above: under-trained */
const SVGNS = "http://www.w3.org/2000/svg";
/* Alpha: calm light tints inside the healthy band, strong colours outside it
 * (ColorBrewer PuOr ends, colour-blind safe): orange over-trained, purple
 * under-trained. Stops are [alpha, colour]. */
const ALPHA_STOPS = [[1, "#7f3b08"], [1.999, "#e08214"], [2, "#fbe9d3"], [4, "#f7f7f7"],
  [6, "#e6e3f1"], [6.001, "#8073ac"], [8, "#2d004b"]];
const BLUES = ["#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b"]; /* other metrics */
const RDBU = ["#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b"]; /* deltas */
const ROLE_ORDER = ["attn_q", "attn_k", "attn_v", "attn_qkv", "attn_o", "mlp_gate", "mlp_up",
  "mlp_down", "router", "head"];
/* Used only when routes.json lists no metrics (an older server). */
const FALLBACK_METRICS = ["alpha", "D", "xmin", "n_tail", "num_eigs", "spectral_norm", "norm",
  "alpha_hat", "stable_rank", "log_norm", "log_spectral_norm", "entropy"];

const state = {
  runs: [], run: null, layer: null, preset: null, metric: "alpha", view: null, step: null,
  overlay: null, cmpB: null, heat: null, latest: null, ckpt: null, history: null,
  overlayHist: null, sumHist: null, cmp: null, summary: null, routes: null, metrics: null,
  summaryMetrics: [], missingRun: null, missingLayer: null, gen: 0,
  token: localStorage.getItem("farmsd.token") || "", timer: 0, busy: false,
};
const etags = new Map(); /* url -> {etag, data} */

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const svg = ["svg", "g", "rect", "line", "text", "path", "circle", "title", "defs",
    "pattern", "polyline", "linearGradient", "stop", "tspan"].includes(tag);
  const n = svg ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") n.textContent = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids) if (k !== null && k !== undefined) n.append(k);
  return n;
}

/* --- Fetching ---------------------------------------------------------------- */

class HttpError extends Error {
  constructor(status, detail) { super(detail || `HTTP ${status}`); this.status = status; }
}

/* GET url as JSON with If-None-Match: {changed, data}. */
async function getJSON(url) {
  const headers = { Accept: "application/json" };
  const prev = etags.get(url);
  if (prev) headers["If-None-Match"] = prev.etag;
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const r = await fetch(url, { cache: "no-store", headers });
  if (r.status === 304 && prev) {
    await r.text(); /* finish the (empty) response rather than abandon it */
    return { changed: false, data: prev.data };
  }
  if (!r.ok) {
    let detail = "";
    try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
    throw new HttpError(r.status, detail);
  }
  const data = await r.json();
  const tag = r.headers.get("ETag");
  if (tag) etags.set(url, { etag: tag, data });
  return { changed: true, data };
}

/* Thrown when the user picked another run or preset while a read was under
 * way: its answer belongs to the old pick and is dropped. */
class Stale extends Error {}

/* getJSON for the current pick (state.gen): Stale if the pick changed meanwhile. */
async function get(url) {
  const g = state.gen, r = await getJSON(url);
  if (g !== state.gen) throw new Stale("stale");
  return r;
}

const enc = encodeURIComponent;
const runURL = (run) => `/v1/runs/${enc(run)}`;
const layerURL = (run, layer) => `${runURL(run)}/layers/${enc(layer)}`;

/* "&preset=P" when the user picked one, else "" (the run's own). */
const presetQ = (sep) => (state.preset ? `${sep}preset=${enc(state.preset)}` : "");

function hasRoute(path) {
  return !!state.routes && state.routes.some((r) => r.method === "GET" && r.path === path);
}

/* --- Loading and polling ------------------------------------------------------------------ */

function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = cls || ""; }
function setMessage(text) { const m = $("message"); m.textContent = text || ""; m.hidden = !text; }

function saveHash() {
  const p = new URLSearchParams();
  if (state.run) p.set("run", state.run);
  if (state.layer) p.set("layer", state.layer);
  if (state.preset) p.set("preset", state.preset);
  if (state.metric !== "alpha") p.set("metric", state.metric);
  if (state.view) p.set("view", state.view);
  if (state.step !== null) p.set("step", state.step);
  if (state.overlay) p.set("overlay", state.overlay);
  if (state.cmpB) p.set("b", `${state.cmpB.run}:${state.cmpB.step}`);
  history.replaceState(null, "", `#${p.toString()}`);
}

function fillSelect(sel, values, label) {
  const cur = Array.from(sel.options).map((o) => o.value).join("\n");
  if (cur === values.join("\n")) return;
  sel.replaceChildren(...values.map((v) => el("option", { value: v, text: label ? label(v) : v })));
}

async function loadRuns() {
  const { changed, data } = await getJSON("/v1/runs?page_size=1000");
  if (!changed && state.runs.length) return;
  state.runs = data.runs;
  const names = state.runs.map((r) => r.name);
  fillSelect($("run-select"), names);
  fillSelect($("overlay-select"), ["", ...names], (v) => (v ? v : "(none)"));
  fillSelect($("cmp-run"), names);
  if (!state.run) {
    const byTime = [...state.runs].sort((a, b) => String(b.created).localeCompare(String(a.created)));
    state.run = byTime.length ? byTime[0].name : null;
  }
  state.missingRun = state.run && !names.includes(state.run)
    ? `no run '${state.run}' \u2014 runs: ${names.length ? names.join(", ") : "none yet"}` : null;
  if (state.run && !state.missingRun) $("run-select").value = state.run;
  else $("run-select").selectedIndex = -1;
  renderRunInfo();
}

function renderRunInfo() {
  const r = state.runs.find((x) => x.name === state.run), u = state.summary;
  const preset = state.preset || (u ? u.default_preset : null);
  $("run-info").textContent = r ? `${r.checkpoints} checkpoints, last step ${r.last_step === null ? "\u2013" : r.last_step}` +
    (preset ? ` \u00b7 ${preset}` : "") : "";
}

/* The run: its presets and the one reads default to. */
async function loadRunSummary() {
  const sel = $("preset-select");
  if (!hasRoute("/v1/runs/{run}")) { sel.parentElement.hidden = true; return; }
  const { changed, data } = await get(runURL(state.run));
  if (!changed && state.summary) return;
  state.summary = data;
  const names = data.presets.map((p) => p.name);
  if (state.preset && !names.includes(state.preset)) names.push(state.preset);
  sel.replaceChildren(...names.map((n) => {
    const p = data.presets.find((x) => x.name === n);
    return el("option", { value: n, text: p ? `${n} (${p.analysed} analysed)` : n });
  }));
  sel.value = state.preset || data.default_preset;
  sel.parentElement.hidden = names.length < 2;
  renderRunInfo();
}

async function loadHeatmap() {
  const first = `${runURL(state.run)}/history?metric=${enc(state.metric)}&page_size=1000${presetQ("&")}`;
  const { changed, data } = await get(first);
  if (!changed && state.heat && state.heat.url === first) return false;
  const hm = { url: first, steps: [...data.steps], layers: data.layers.map((l) => ({ name: l.name, values: [...l.values] })) };
  for (let tok = data.next_page_token, pages = 1; tok && pages < 20; pages++) {
    const more = (await get(`${first}&page_token=${enc(tok)}`)).data;
    const idx = new Map(hm.layers.map((l, i) => [l.name, i]));
    for (const l of more.layers) {
      if (!idx.has(l.name)) { idx.set(l.name, hm.layers.length); hm.layers.push({ name: l.name, values: hm.steps.map(() => null) }); }
    }
    for (const l of hm.layers) {
      const x = more.layers.find((y) => y.name === l.name);
      l.values.push(...(x ? x.values : more.steps.map(() => null)));
    }
    hm.steps.push(...more.steps);
    tok = more.next_page_token;
  }
  state.heat = hm;
  return true;
}

async function loadCheckpoint() {
  const s = currentStep();
  if (s === null) { const had = !!state.ckpt; state.ckpt = null; return had; }
  const { changed, data } = await get(`${runURL(state.run)}/checkpoints/${s}${presetQ("?")}`);
  if (!changed && state.ckpt && state.ckpt.step === s) return false;
  state.ckpt = data;
  return true;
}

async function loadLatest() {
  const { changed, data } = await get(`${runURL(state.run)}/layers${presetQ("?")}`);
  if (!changed && state.latest) return false;
  state.latest = data;
  return true;
}

/* The analysed layer farthest outside the healthy band (the lowest alpha if all are inside). */
function worstLayer(layers) {
  let best = null, score = -Infinity;
  for (const l of layers) {
    if (l.status !== "ok" || !isNum(l.alpha)) continue;
    const out = l.alpha < OVER ? OVER - l.alpha : l.alpha > UNDER ? l.alpha - UNDER : 0;
    const sc = out > 0 ? out : -l.alpha / 1000; /* inside: lower alpha first */
    if (sc > score) { score = sc; best = l.name; }
  }
  return best;
}

function chooseDefaults() {
  const lat = state.latest ? state.latest.layers : [];
  if (!state.view) {
    const analysed = lat.filter((l) => l.status !== "skipped");
    const withBlock = analysed.filter((l) => { const br = blockRole(l); return br.block !== null && br.block !== undefined && br.role; });
    state.autoView = withBlock.length > 0 && analysed.length > 60 ? "grid" : "heatmap";
  }
  if (state.layer && lat.length && !lat.some((l) => l.name === state.layer)) {
    state.missingLayer = `no layer '${state.layer}' in run '${state.run}' \u2014 pick one in the ${(state.view || state.autoView) === "grid" ? "grid" : "heatmap"} or the table`;
    state.history = null;
  } else {
    state.missingLayer = null;
  }
  if (!state.layer && lat.length) {
    state.layer = worstLayer(lat);
    if (state.layer) saveHash();
  }
}

async function loadHistory() {
  if (!state.layer || state.missingLayer) { state.history = null; return true; }
  const m = state.metric === "alpha" ? "alpha,D" : state.metric;
  const url = `${layerURL(state.run, state.layer)}/history?metrics=${enc(m)}${presetQ("&")}`;
  const { changed, data } = await get(url);
  let any = changed || !state.history || state.history.url !== url;
  state.history = Object.assign({ url }, data);
  state.overlayError = null;
  if (state.overlay) {
    try {
      const o = await get(`${layerURL(state.overlay, state.layer)}/history?metrics=${enc(m)}`);
      any = any || o.changed || !state.overlayHist || state.overlayHist.layer !== state.layer;
      state.overlayHist = o.data;
    } catch (e) {
      if (!(e instanceof HttpError && e.status === 404)) throw e;
      state.overlayHist = null; any = true;
      state.overlayError = `run ${state.overlay} has no layer ${state.layer}`;
    }
  }
  return any;
}

/* Read url into state[key] (with its url), or on a 4xx answer set
 * state[key] = null and state[errKey] = "`what`: the problem": true if what
 * is shown changed (false on a 304 of the url already shown). */
async function loadInto(key, errKey, url, what) {
  try {
    const { changed, data } = await get(url);
    if (!changed && state[key] && state[key].url === url) return false;
    state[key] = Object.assign({ url }, data);
    state[errKey] = null;
  } catch (e) {
    if (!(e instanceof HttpError) || e.status >= 500) throw e;
    state[key] = null; state[errKey] = `${what}: ${e.message}`;
  }
  return true;
}

async function loadSummaryHistory() {
  if (!hasRoute("/v1/runs/{run}/summary/history")) return false;
  const m = state.summaryMetrics.includes(state.metric) ? state.metric : "alpha";
  const url = `${runURL(state.run)}/summary/history?metric=${enc(m)}&page_size=1000${presetQ("&")}`;
  return loadInto("sumHist", "sumError", url, "no summary");
}

function defaultB() {
  const s = steps(), a = currentStep();
  const prev = s.filter((x) => x < a);
  if (prev.length) return { run: state.run, step: prev[prev.length - 1] };
  const other = state.runs.find((r) => r.name !== state.run && r.last_step !== null);
  return other ? { run: other.name, step: other.last_step } : { run: state.run, step: a };
}

async function loadCompare() {
  if (state.view !== "delta" || !hasRoute("/v1/compare")) return false;
  const a = currentStep();
  if (a === null) return false;
  if (!state.cmpB) state.cmpB = defaultB();
  await fillCmpSteps();
  const url = `/v1/compare?a=${enc(`${state.run}:${a}`)}&b=${enc(`${state.cmpB.run}:${state.cmpB.step}`)}${presetQ("&")}`;
  return loadInto("cmp", "cmpError", url, "cannot compare");
}

/* The steps of B's run in the B step selector. */
async function fillCmpSteps() {
  const b = state.cmpB, sel = $("cmp-step");
  $("cmp-run").value = b.run;
  let list = b.run === state.run ? steps() : null;
  if (!list) {
    const d = (await get(`${runURL(b.run)}/checkpoints?page_size=1000`)).data;
    list = (d.checkpoints || []).map((c) => c.step).sort((x, y) => x - y);
  }
  if (!list.includes(b.step)) list = [...list, b.step].sort((x, y) => x - y);
  fillSelect(sel, list.map(String));
  sel.value = String(b.step);
}

async function refresh() {
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    if (!state.routes) {
      const r = (await getJSON("/dashboard/routes.json")).data;
      state.routes = r.routes;
      state.metrics = r.metrics && r.metrics.length ? r.metrics : FALLBACK_METRICS;
      state.summaryMetrics = r.summary_metrics || [];
      fillSelect($("metric-select"), state.metrics);
      if (!state.metrics.includes(state.metric)) state.metric = "alpha";
      $("metric-select").value = state.metric;
    }
    await loadRuns();
    setMessage(state.missingRun);
    if (state.run && !state.missingRun) {
      await loadRunSummary();
      const h = await loadHeatmap();
      const l = await loadLatest();
      chooseDefaults();
      const c = await loadCheckpoint();
      const x = await loadCompare();
      if (h || l || c || x) { renderStepSlider(); renderView(); }
      if (l) renderLatest();
      if (await loadHistory()) { renderHistory(); renderEsd(); }
      if (await loadSummaryHistory()) renderSummary();
    } else {
      state.heat = state.latest = state.ckpt = state.history = state.sumHist = null;
      renderView(); renderLatest(); renderHistory(); renderEsd(); renderSummary();
    }
    $("token-form").hidden = true;
    setStatus(`updated ${new Date().toLocaleTimeString()}`, "ok");
  } catch (e) {
    if (e instanceof Stale) {
      state.again = true;
    } else if (e instanceof HttpError && (e.status === 401 || e.status === 403)) {
      $("token-form").hidden = false;
      setStatus(e.status === 401 ? "this server needs a token" : "the token lacks the read scope", "error");
    } else if (e instanceof HttpError && e.status === 404 && state.run) {
      setStatus(`run ${state.run}: ${e.message}`, "error");
    } else {
      setStatus(`cannot reach farmsd: ${e.message}`, "error");
    }
  } finally {
    state.busy = false;
    if (state.again) { state.again = false; setTimeout(refresh, 0); }
  }
}

/* Re-render everything from state (after a pick that changes what is shown). */
function renderAll() { renderStepSlider(); renderView(); renderLatest(); renderHistory(); renderEsd(); renderSummary(); }

async function selectRun(run) {
  state.gen++; state.view = state.view === "delta" ? "delta" : null; /* grid or heatmap: by the run's size */
  state.run = run; state.layer = null; state.missingLayer = null; state.step = null; state.cmpB = null;
  state.heat = state.latest = state.ckpt = state.history = state.cmp = state.sumHist = null;
  state.preset = null; state.summary = null;
  saveHash();
  renderAll();
  await refresh();
}

async function selectPreset(preset) {
  state.gen++;
  state.preset = state.summary && preset === state.summary.default_preset ? null : preset;
  state.layer = null; state.heat = state.latest = state.ckpt = state.history = state.summary = state.cmp = state.sumHist = null;
  saveHash();
  renderAll();
  await refresh();
}

async function selectLayer(layer) {
  if (!layer || (layer === state.layer && !state.missingLayer)) return;
  state.layer = layer; state.missingLayer = null; state.history = null;
  saveHash();
  renderView(); renderLatest(); renderHistory();
  await refresh();
}

function init() {
  const p = new URLSearchParams(location.hash.slice(1));
  state.run = p.get("run"); state.layer = p.get("layer"); state.preset = p.get("preset");
  state.metric = p.get("metric") || "alpha";
  state.view = ["grid", "heatmap", "delta"].includes(p.get("view")) ? p.get("view") : null;
  state.step = p.get("step") !== null && p.get("step") !== "" ? Number(p.get("step")) : null;
  state.overlay = p.get("overlay") || null;
  const b = (p.get("b") || "").match(/^(.+):(\d+)$/);
  state.cmpB = b ? { run: b[1], step: Number(b[2]) } : null;
  renderLegend();
  $("run-select").addEventListener("change", (ev) => selectRun(ev.target.value));
  $("preset-select").addEventListener("change", (ev) => selectPreset(ev.target.value));
  $("metric-select").addEventListener("change", (ev) => {
    state.metric = ev.target.value; /* the reads see the new URLs and render */
    saveHash(); refresh();
  });
  $("view-select").addEventListener("change", (ev) => { state.view = ev.target.value; saveHash(); renderView(); refresh(); });
  $("step-slider").addEventListener("input", (ev) => {
    const s = steps()[Number(ev.target.value)];
    if (s === undefined) return;
    state.step = s; state.cmp = null;
    saveHash(); renderStepSlider(); refresh();
  });
  $("overlay-select").addEventListener("change", (ev) => {
    state.overlay = ev.target.value || null; state.overlayHist = null;
    saveHash(); state.history = null; refresh();
  });
  $("cmp-run").addEventListener("change", async (ev) => {
    const r = state.runs.find((x) => x.name === ev.target.value);
    state.cmpB = { run: ev.target.value, step: r && r.last_step !== null ? r.last_step : 0 };
    saveHash(); refresh();
  });
  $("cmp-step").addEventListener("change", (ev) => {
    state.cmpB = { run: state.cmpB.run, step: Number(ev.target.value) };
    saveHash(); refresh();
  });
  document.body.addEventListener("click", (ev) => {
    const x = ev.target.closest("button.export");
    if (x) exportAs(x.getAttribute("data-what"), x.getAttribute("data-kind")).catch((e) => setStatus(`export: ${e.message}`, "error"));
  });
  const onPick = (ev) => {
    const t = ev.target.closest("[data-layer]");
    if (t) selectLayer(t.getAttribute("data-layer"));
  };
  $("view").addEventListener("click", onPick);
  $("view").addEventListener("scroll", stickHead, { passive: true });
  $("view").addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onPick(ev); } });
  $("latest-table").addEventListener("click", onPick);
  $("only-warnings").addEventListener("change", renderLatest);
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    localStorage.setItem("farmsd.token", state.token);
    etags.clear();
    refresh();
  });
  let lastW = window.innerWidth;
  window.addEventListener("resize", () => {
    if (window.innerWidth === lastW) return;
    lastW = window.innerWidth; renderView(); renderHistory(); renderSummary();
  });
  refresh();
  state.timer = setInterval(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", init);
