/* farmsd dashboard: plain ES2017, no framework, no external resources.
 *
 * Reads the HTTP API of the server that serves this page: the runs, one
 * run's alpha heatmap (/v1/runs/{run}/history), its latest layers
 * (/v1/runs/{run}/layers) and the selected layer's history. Every read is
 * polled with If-None-Match; a 304 leaves the view as it is. State lives in
 * the URL hash (#run=NAME&layer=NAME&preset=P) so a reload shows the same
 * view. Reads name no preset unless the user picks one: the server answers
 * with the run's own (/v1/runs/{run} says which, and which others the run
 * holds; the preset selector appears only when there is more than one).
 */
"use strict";

const POLL_MS = Number(new URLSearchParams(location.search).get("poll")) || 5000;
const OVER = 2; /* alpha below: over-trained */
const UNDER = 6; /* alpha above: under-trained */
const SVGNS = "http://www.w3.org/2000/svg";
/* ColorBrewer PuOr (colour-blind safe), orange = low alpha, purple = high. */
const PUOR = ["#7f3b08", "#b35806", "#e08214", "#fdb863", "#fee0b6", "#f7f7f7",
  "#d8daeb", "#b2abd2", "#8073ac", "#542788", "#2d004b"];
const SCALE_MIN = 1, SCALE_MAX = 7; /* alpha range of the colour scale (centre 4) */

const state = {
  runs: [], run: null, layer: null, heat: null, latest: null, history: null,
  preset: null /* null: the run's default */, summary: null,
  routes: null, token: localStorage.getItem("farmsd.token") || "", timer: 0, busy: false,
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

const enc = encodeURIComponent;
const runURL = (run) => `/v1/runs/${enc(run)}`;
const layerURL = (run, layer) => `${runURL(run)}/layers/${enc(layer)}`;

/* "&preset=P" when the user picked one, else "" (the run's own). */
const presetQ = (sep) => (state.preset ? `${sep}preset=${enc(state.preset)}` : "");

function hasRoute(path) {
  return !!state.routes && state.routes.some((r) => r.method === "GET" && r.path === path);
}

/* --- Formatting and colour ----------------------------------------------------- */

const fmt = (v, d = 2) => (v === null || v === undefined || !isFinite(v) ? "\u2013" : v.toFixed(d));

function hexRgb(h) { return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }

function alphaColour(a) {
  if (a === null || !isFinite(a)) return "#d0d0d0";
  const t = Math.min(1, Math.max(0, (a - SCALE_MIN) / (SCALE_MAX - SCALE_MIN))) * (PUOR.length - 1);
  const i = Math.min(PUOR.length - 2, Math.floor(t)), f = t - i;
  const c0 = hexRgb(PUOR[i]), c1 = hexRgb(PUOR[i + 1]);
  const c = c0.map((v, k) => Math.round(v + (c1[k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function isDark(a) { return a !== null && isFinite(a) && (a < 2.3 || a > 5.7); }

function band(a) {
  if (a === null || !isFinite(a)) return "missing";
  return a < OVER ? "over" : a > UNDER ? "under" : "ok";
}

const WARN_TEXT = {
  over_trained: "\u25bc over-trained (\u03b1 < 2)",
  under_trained: "\u25b2 under-trained (\u03b1 > 6)",
  suspect_fit: "? suspect fit",
};

function renderLegend() {
  const w = 260, h = 14, svg = el("svg", { width: w + 270, height: 34, role: "img",
    "aria-label": "alpha colour scale from 1 (orange) through 4 (white) to 7 (purple); " +
      "alpha below 2 hatched, above 6 dotted" });
  const grad = el("linearGradient", { id: "legend-grad" });
  PUOR.forEach((c, i) => grad.append(el("stop", { offset: `${(100 * i) / (PUOR.length - 1)}%`, "stop-color": c })));
  svg.append(el("defs", {}, grad));
  svg.append(el("rect", { x: 0, y: 0, width: w, height: h, fill: "url(#legend-grad)", stroke: "#555" }));
  const x = (a) => ((a - SCALE_MIN) / (SCALE_MAX - SCALE_MIN)) * w;
  svg.append(el("rect", { x: 0, y: 0, width: x(OVER), height: h, fill: "url(#pat-over)" }));
  svg.append(el("rect", { x: x(UNDER), y: 0, width: w - x(UNDER), height: h, fill: "url(#pat-under)" }));
  for (const a of [1, 2, 3, 4, 5, 6, 7]) {
    svg.append(el("line", { x1: x(a), x2: x(a), y1: h, y2: h + 4, stroke: "#333" }));
    svg.append(el("text", { x: x(a), y: h + 15, "text-anchor": "middle", class: "tick", text: a === 7 ? "\u22657" : a === 1 ? "\u22641" : a }));
  }
  svg.append(el("text", { x: w + 24, y: 11, class: "legend-text", text: "\u03b1 < 2 over-trained (hatched)" }));
  svg.append(el("text", { x: w + 24, y: 27, class: "legend-text", text: "\u03b1 > 6 under-trained (dotted)" }));
  $("legend").replaceChildren(svg);
}

/* --- Heatmap -------------------------------------------------------------------- */

function shortName(s, n) { return s.length <= n ? s : `\u2026${s.slice(s.length - n + 1)}`; }

function renderHeatmap() {
  const box = $("heatmap"), hm = state.heat;
  if (!hm || hm.layers.length === 0 || hm.steps.length === 0) {
    $("heatmap-note").textContent = "";
    box.replaceChildren(el("p", { class: "empty", text: state.run ? "No analysed checkpoints in this run yet." : "No runs yet: POST a checkpoint (see the README)." }));
    return;
  }
  const steps = hm.steps, layers = hm.layers.filter((l) => l.values.some((v) => v !== null));
  const hidden = hm.layers.length - layers.length;
  $("heatmap-note").textContent = hidden ? `${hidden} layers without results (skipped: biases, norms, ...) not shown` : "";
  if (layers.length === 0) {
    box.replaceChildren(el("p", { class: "empty", text: "No analysed layers in this run yet." }));
    return;
  }
  const longest = Math.max(...layers.map((l) => Math.min(l.name.length, 40)));
  const labelW = Math.min(320, 16 + longest * 7.4), top = 30;
  const avail = Math.max(100, box.clientWidth - labelW - 24);
  const cw = Math.max(4, Math.min(120, avail / steps.length));
  const ch = layers.length > 40 ? 14 : 20;
  const W = labelW + cw * steps.length + 4, H = top + ch * layers.length + 4;
  const svg = el("svg", { width: W, height: H, id: "heatmap-svg", role: "grid",
    "aria-label": `alpha of ${layers.length} layers at ${steps.length} steps`,
    "data-layers": layers.length, "data-steps": steps.length });
  const every = Math.max(1, Math.ceil(48 / cw));
  steps.forEach((s, j) => {
    if (j % every === 0 || j === steps.length - 1)
      svg.append(el("text", { x: labelW + cw * j + cw / 2, y: top - 10, "text-anchor": "middle", class: "tick", text: s }));
  });
  svg.append(el("text", { x: 4, y: top - 10, class: "axis-title", text: "layer \u2193 / step \u2192" }));
  const showText = cw >= 34 && ch >= 14;
  layers.forEach((l, i) => {
    const y = top + ch * i, sel = l.name === state.layer;
    const row = el("g", { class: sel ? "row selected" : "row", "data-layer": l.name });
    row.append(el("text", { x: labelW - 6, y: y + ch / 2 + 4, "text-anchor": "end", class: "row-label",
      "data-layer": l.name, tabindex: 0, role: "button" }, shortName(l.name, 40), el("title", { text: l.name })));
    l.values.forEach((a, j) => {
      const x = labelW + cw * j, b = band(a);
      const cell = el("rect", { x, y, width: cw - 1, height: ch - 1, fill: alphaColour(a),
        class: `cell ${b}`, "data-layer": l.name, "data-step": steps[j], "data-alpha": a === null ? "" : a },
      el("title", { text: `${l.name}\nstep ${steps[j]}\nalpha ${fmt(a, 3)}${b === "over" ? " (over-trained)" : b === "under" ? " (under-trained)" : ""}` }));
      row.append(cell);
      if (b === "over" || b === "under")
        row.append(el("rect", { x, y, width: cw - 1, height: ch - 1, fill: `url(#pat-${b})`, class: "mark", "pointer-events": "none" }));
      if (showText)
        row.append(el("text", { x: x + cw / 2, y: y + ch / 2 + 4, "text-anchor": "middle", "pointer-events": "none",
          class: isDark(a) ? "val light" : "val", text: fmt(a, 1) }));
    });
    if (sel) row.append(el("rect", { x: 1, y: y - 1, width: W - 3, height: ch + 1, class: "sel-outline", "pointer-events": "none" }));
    svg.append(row);
  });
  box.replaceChildren(svg);
}

/* --- Layer history and ESD -------------------------------------------------------- */

function renderHistory() {
  const box = $("history-chart"), h = state.history;
  $("layer-title").textContent = state.layer ? `Layer ${state.layer}` : "Layer";
  $("layer-hint").hidden = !!state.layer;
  if (!state.layer || !h) { box.replaceChildren(); return; }
  const pts = h.points.filter((p) => p.alpha !== null && isFinite(p.alpha));
  const W = Math.max(300, box.clientWidth || 420), H = 230, m = { l: 42, r: 18, t: 12, b: 34 };
  const svg = el("svg", { width: W, height: H, id: "history-svg", role: "img", "data-layer": state.layer,
    "data-points": pts.length, "aria-label": `alpha of ${state.layer} over ${h.points.length} steps` });
  const steps = h.points.map((p) => p.step);
  const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1);
  const ys = pts.map((p) => p.alpha);
  const y0 = Math.min(1, ...ys), y1 = Math.max(8, ...ys);
  const X = (s) => m.l + ((s - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (a) => H - m.b - ((a - y0) / (y1 - y0)) * (H - m.t - m.b);
  svg.append(el("rect", { x: m.l, y: Y(OVER), width: W - m.l - m.r, height: Y(y0) - Y(OVER), fill: "url(#pat-over-grey)", class: "zone-over" }));
  svg.append(el("rect", { x: m.l, y: Y(y1), width: W - m.l - m.r, height: Y(UNDER) - Y(y1), fill: "url(#pat-under-grey)", class: "zone-under" }));
  svg.append(el("rect", { x: m.l, y: Y(UNDER), width: W - m.l - m.r, height: Y(OVER) - Y(UNDER), class: "zone-ok" }));
  for (const [a, label] of [[OVER, "\u03b1 = 2 over-trained below"], [UNDER, "\u03b1 = 6 under-trained above"]]) {
    svg.append(el("line", { x1: m.l, x2: W - m.r, y1: Y(a), y2: Y(a), class: "threshold" }));
    svg.append(el("text", { x: W - m.r - 4, y: Y(a) - 4, "text-anchor": "end", class: "tick", text: label }));
  }
  for (let a = Math.ceil(y0); a <= y1; a += y1 - y0 > 12 ? 4 : 1)
    svg.append(el("text", { x: m.l - 6, y: Y(a) + 4, "text-anchor": "end", class: "tick", text: a }));
  const every = Math.max(1, Math.ceil(steps.length / 8));
  steps.forEach((s, i) => {
    if (i % every === 0 || i === steps.length - 1)
      svg.append(el("text", { x: X(s), y: H - m.b + 16, "text-anchor": "middle", class: "tick", text: s }));
  });
  svg.append(el("text", { x: (W + m.l) / 2, y: H - 4, "text-anchor": "middle", class: "axis-title", text: "training step" }));
  svg.append(el("text", { x: 12, y: m.t + 8, class: "axis-title", text: "\u03b1" }));
  svg.append(el("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis" }));
  svg.append(el("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }));
  if (pts.length > 1)
    svg.append(el("polyline", { points: pts.map((p) => `${X(p.step)},${Y(p.alpha)}`).join(" "), class: "line" }));
  for (const p of pts)
    svg.append(el("circle", { cx: X(p.step), cy: Y(p.alpha), r: 4, class: `point ${band(p.alpha)}`, "data-step": p.step },
      el("title", { text: `step ${p.step}: alpha ${fmt(p.alpha, 3)}, D ${fmt(p.D, 3)}` })));
  const last = h.points.length ? h.points[h.points.length - 1] : null;
  const note = el("p", { class: "note", text: (last ? `step ${last.step}: \u03b1 ${fmt(last.alpha, 3)}, D ${fmt(last.D, 3)}` : "no points") +
    (h.downsampled ? ` \u00b7 ${h.points.length} of ${h.total_points} points shown` : "") });
  box.replaceChildren(svg, note);
}

function renderEsd() {
  const box = $("esd");
  $("esd-title").hidden = !state.layer;
  if (!state.layer) { box.replaceChildren(); return; }
  if (!hasRoute("/v1/runs/{run}/layers/{layer}/esd.svg")) {
    box.replaceChildren(el("p", { class: "empty", text: "No ESD plot: this server has no ESD endpoint." }));
    return;
  }
  const img = el("img", { src: `${layerURL(state.run, state.layer)}/esd.svg${presetQ("?")}`, alt: `eigenvalue spectrum of ${state.layer}`, class: "esd" });
  img.addEventListener("error", () => box.replaceChildren(el("p", { class: "empty", text: "No ESD plot for this layer." })));
  box.replaceChildren(img);
}

/* --- Latest checkpoint table ---------------------------------------------------------- */

function warningOf(l) {
  if (l.status === "skipped") return { cls: "skipped", text: `skipped: ${l.reason || ""}` };
  if (l.status === "failed") return { cls: "failed", text: `\u2716 fit failed: ${l.reason || ""}` };
  if (l.warning) return { cls: l.warning, text: WARN_TEXT[l.warning] || l.warning };
  return null;
}

function renderLatest() {
  const body = $("latest-table").tBodies[0], lat = state.latest;
  const only = $("only-warnings").checked;
  if (!lat) { body.replaceChildren(); $("latest-summary").textContent = ""; return; }
  const analysed = lat.layers.filter((l) => l.status !== "skipped");
  const n = (w) => analysed.filter((l) => l.warning === w).length;
  const steps = [...new Set(lat.layers.map((l) => l.step))];
  $("latest-title").textContent = steps.length ? `Latest checkpoint: step ${Math.max(...steps)}` : "Latest checkpoint";
  $("latest-summary").textContent = `${analysed.length} layers \u00b7 ${n("over_trained")} over-trained \u00b7 ` +
    `${n("under_trained")} under-trained \u00b7 ${n("suspect_fit")} suspect`;
  const rows = [];
  for (const l of lat.layers) {
    const w = warningOf(l);
    if (only && (!w || w.cls === "skipped")) continue;
    const btn = el("button", { type: "button", class: "link", "data-layer": l.name, text: l.name });
    const tr = el("tr", { class: [w ? `warn-${w.cls}` : "", l.name === state.layer ? "selected" : ""].join(" ").trim() || null, "data-layer": l.name },
      el("td", {}, btn), el("td", { class: "num", text: l.step }), el("td", { class: "num", text: fmt(l.alpha) }),
      el("td", { class: "num", text: fmt(l.D, 3) }), el("td", { class: "num", text: l.n_tail === null ? "\u2013" : l.n_tail }),
      el("td", { class: "warn", text: w ? w.text : "" }));
    rows.push(tr);
  }
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 6, class: "empty", text: only ? "No warnings." : "No layers yet." })));
  body.replaceChildren(...rows);
}

/* --- Loading and polling ------------------------------------------------------------------ */

function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = cls || ""; }

function saveHash() {
  const p = new URLSearchParams();
  if (state.run) p.set("run", state.run);
  if (state.layer) p.set("layer", state.layer);
  if (state.preset) p.set("preset", state.preset);
  history.replaceState(null, "", `#${p.toString()}`);
}

async function loadRuns() {
  const { changed, data } = await getJSON("/v1/runs?page_size=1000");
  if (!changed && state.runs.length) return;
  state.runs = data.runs;
  const sel = $("run-select");
  sel.replaceChildren(...state.runs.map((r) => el("option", { value: r.name, text: r.name })));
  if (!state.run || !state.runs.some((r) => r.name === state.run)) {
    const byTime = [...state.runs].sort((a, b) => String(b.created).localeCompare(String(a.created)));
    state.run = byTime.length ? byTime[0].name : null;
  }
  if (state.run) sel.value = state.run;
  renderRunInfo();
}

function renderRunInfo() {
  const r = state.runs.find((x) => x.name === state.run), u = state.summary;
  const preset = state.preset || (u ? u.default_preset : null);
  $("run-info").textContent = r ? `${r.checkpoints} checkpoints, last step ${r.last_step === null ? "\u2013" : r.last_step}` +
    (preset ? ` \u00b7 ${preset}` : "") : "";
}

/* The run's summary: its presets and the one reads default to. */
async function loadSummary() {
  const sel = $("preset-select");
  if (!hasRoute("/v1/runs/{run}")) { sel.parentElement.hidden = true; return; }
  const { changed, data } = await getJSON(runURL(state.run));
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
  const first = `${runURL(state.run)}/history?metric=alpha&page_size=1000${presetQ("&")}`;
  const { changed, data } = await getJSON(first);
  if (!changed && state.heat) return false;
  const hm = { steps: [...data.steps], layers: data.layers.map((l) => ({ name: l.name, values: [...l.values] })) };
  for (let tok = data.next_page_token, pages = 1; tok && pages < 20; pages++) {
    const more = (await getJSON(`${first}&page_token=${enc(tok)}`)).data;
    const idx = new Map(hm.layers.map((l, i) => [l.name, i]));
    for (const l of more.layers) {
      if (!idx.has(l.name)) { idx.set(l.name, hm.layers.length); hm.layers.push({ name: l.name, values: hm.steps.map(() => null) }); }
    }
    for (const l of hm.layers) {
      const m = more.layers.find((x) => x.name === l.name);
      l.values.push(...(m ? m.values : more.steps.map(() => null)));
    }
    hm.steps.push(...more.steps);
    tok = more.next_page_token;
  }
  state.heat = hm;
  return true;
}

async function loadLatest() {
  const { changed, data } = await getJSON(`${runURL(state.run)}/layers${presetQ("?")}`);
  if (!changed && state.latest) return false;
  state.latest = data;
  return true;
}

async function loadHistory() {
  if (!state.layer) { state.history = null; return true; }
  const { changed, data } = await getJSON(`${layerURL(state.run, state.layer)}/history?metrics=alpha,D${presetQ("&")}`);
  if (!changed && state.history && state.history.layer === state.layer) return false;
  state.history = data;
  return true;
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    if (!state.routes) state.routes = (await getJSON("/dashboard/routes.json")).data.routes;
    await loadRuns();
    if (state.run) {
      await loadSummary();
      if (await loadHeatmap()) renderHeatmap();
      if (await loadLatest()) renderLatest();
      if (await loadHistory()) { renderHistory(); renderEsd(); }
    } else {
      state.heat = null; renderHeatmap();
    }
    $("token-form").hidden = true;
    setStatus(`updated ${new Date().toLocaleTimeString()}`, "ok");
  } catch (e) {
    if (e instanceof HttpError && (e.status === 401 || e.status === 403)) {
      $("token-form").hidden = false;
      setStatus(e.status === 401 ? "this server needs a token" : "the token lacks the read scope", "error");
    } else if (e instanceof HttpError && e.status === 404 && state.run) {
      setStatus(`run ${state.run}: ${e.message}`, "error");
    } else {
      setStatus(`cannot reach farmsd: ${e.message}`, "error");
    }
  } finally {
    state.busy = false;
  }
}

async function selectRun(run) {
  state.run = run; state.layer = null; state.heat = state.latest = state.history = null;
  state.preset = null; state.summary = null;
  saveHash();
  renderHistory(); renderEsd();
  await refresh();
}

async function selectPreset(preset) {
  state.preset = state.summary && preset === state.summary.default_preset ? null : preset;
  state.layer = null; state.heat = state.latest = state.history = state.summary = null;
  saveHash();
  renderHistory(); renderEsd();
  await refresh();
}

async function selectLayer(layer) {
  if (!layer || layer === state.layer) return;
  state.layer = layer; state.history = null;
  saveHash();
  renderHeatmap(); renderLatest();
  try {
    await loadHistory();
  } catch (e) {
    setStatus(`history of ${layer}: ${e.message}`, "error");
  }
  renderHistory(); renderEsd();
}

function init() {
  const p = new URLSearchParams(location.hash.slice(1));
  state.run = p.get("run"); state.layer = p.get("layer"); state.preset = p.get("preset");
  renderLegend();
  $("run-select").addEventListener("change", (ev) => selectRun(ev.target.value));
  $("preset-select").addEventListener("change", (ev) => selectPreset(ev.target.value));
  const onPick = (ev) => {
    const t = ev.target.closest("[data-layer]");
    if (t) selectLayer(t.getAttribute("data-layer"));
  };
  $("heatmap").addEventListener("click", onPick);
  $("heatmap").addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") onPick(ev); });
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
    lastW = window.innerWidth; renderHeatmap(); renderHistory();
  });
  refresh();
  state.timer = setInterval(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", init);
