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

/* --- Formatting and colour ----------------------------------------------------- */

const isNum = (v) => typeof v === "number" && isFinite(v);
const fmt = (v, d = 2) => (isNum(v) ? v.toFixed(d) : "\u2013");
const fmtSigned = (v, d = 2) => (isNum(v) ? (v > 0 ? "+" : "") + v.toFixed(d) : "\u2013");
/* A cell label: short, with the precision the magnitude allows. */
function fmtCell(v) {
  if (!isNum(v)) return "\u2013";
  const a = Math.abs(v);
  return a >= 1000 ? v.toExponential(0) : a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function hexRgb(h) { return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }
function mix(c0, c1, f) {
  const a = hexRgb(c0), b = hexRgb(c1);
  const c = a.map((v, k) => Math.round(v + (b[k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
/* Evenly spaced colours over t in [0, 1]. */
function ramp(cols, t) {
  const x = Math.min(1, Math.max(0, t)) * (cols.length - 1);
  const i = Math.min(cols.length - 2, Math.floor(x));
  return mix(cols[i], cols[i + 1], x - i);
}

function alphaColour(a) {
  if (!isNum(a)) return "#d0d0d0";
  const s = ALPHA_STOPS;
  if (a <= s[0][0]) return mix(s[0][1], s[0][1], 0);
  for (let i = 0; i + 1 < s.length; i++)
    if (a < s[i + 1][0]) return mix(s[i][1], s[i + 1][1], (a - s[i][0]) / (s[i + 1][0] - s[i][0]));
  return mix(s[s.length - 1][1], s[s.length - 1][1], 0);
}

/* The fill of value v of metric m; range {lo, hi} for metrics other than alpha. */
function colourOf(m, v, range) {
  if (m === "alpha") return alphaColour(v);
  if (!isNum(v)) return "#d0d0d0";
  return ramp(BLUES, range.hi > range.lo ? (v - range.lo) / (range.hi - range.lo) : 0.5);
}
function deltaColour(d, maxAbs) {
  if (!isNum(d)) return "#d0d0d0";
  return ramp(RDBU, maxAbs > 0 ? 0.5 + d / (2 * maxAbs) : 0.5);
}
function rangeOf(vals) {
  const f = vals.filter(isNum);
  return f.length ? { lo: Math.min(...f), hi: Math.max(...f) } : { lo: 0, hi: 1 };
}

/* WCAG relative luminance of "rgb(r,g,b)" or "#rrggbb". */
function luminance(c) {
  const v = c.startsWith("#") ? hexRgb(c) : c.match(/\d+/g).map(Number);
  const lin = v.map((x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
}
/* Black or white, whichever contrasts more with the fill (always >= 4.58:1). */
function textOn(fill) {
  const l = luminance(fill);
  return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
}

function band(a) {
  if (!isNum(a)) return "missing";
  return a < OVER ? "over" : a > UNDER ? "under" : "ok";
}

const WARN_TEXT = {
  over_trained: "\u25bc over-trained (\u03b1 < 2)",
  under_trained: "\u25b2 under-trained (\u03b1 > 6)",
  suspect_fit: "? suspect fit",
};

/* A cell: its rect, the band's pattern, and the value in a contrasting colour. */
function cell(g, x, y, w, h, fill, attrs, label, mark, tip) {
  g.append(el("rect", Object.assign({ x, y, width: w - 1, height: h - 1, fill }, attrs), el("title", { text: tip })));
  if (mark) g.append(el("rect", { x, y, width: w - 1, height: h - 1, fill: `url(#pat-${mark})`, class: "mark", "pointer-events": "none" }));
  if (label !== null) {
    const ink = textOn(fill);
    g.append(el("text", { x: x + w / 2, y: y + h / 2 + 4, "text-anchor": "middle", "pointer-events": "none",
      class: "val", fill: ink, stroke: fill, "data-bg": fill, text: label }));
  }
}

/* A colour bar (svg) and its explanation (HTML text, so it wraps on narrow screens). */
function legendBar(id, cols, label, ticks) {
  const w = 200, svg = el("svg", { width: w + 8, height: 32, role: "img", "aria-label": label });
  const grad = el("linearGradient", { id });
  cols.forEach((c, i) => grad.append(el("stop", { offset: `${(100 * i) / (cols.length - 1)}%`, "stop-color": c })));
  svg.append(el("defs", {}, grad), el("rect", { x: 4, y: 0, width: w, height: 14, fill: `url(#${id})`, stroke: "#555" }));
  ticks.forEach(([t, anchor, text]) => svg.append(el("text", { x: 4 + t * w, y: 28, "text-anchor": anchor, class: "tick", text })));
  return svg;
}

function renderLegend() {
  const box = $("legend"), m = state.metric;
  if (shownView() === "delta") {
    box.replaceChildren(legendBar("legend-grad-d", RDBU, `${m} change from A to B: blue lower, red higher`,
      [[0, "start", "B lower"], [0.5, "middle", "0"], [1, "end", "B higher"]]),
    el("span", { class: "legend-text", text: `\u0394 ${m} = B \u2212 A` }));
    return;
  }
  if (m !== "alpha") {
    box.replaceChildren(legendBar("legend-grad-m", BLUES, `${m}: light low, dark high`, [[0, "start", "lowest"], [1, "end", "highest"]]),
      el("span", { class: "legend-text", text: `${m}, scaled to this view` }));
    return;
  }
  const w = 220, h = 14, lo = 1, hi = 8, x = (a) => 4 + ((a - lo) / (hi - lo)) * w;
  const svg = el("svg", { width: w + 8, height: 32, role: "img", id: "legend-svg",
    "aria-label": "alpha colour scale: 2 to 6 healthy (light), below 2 over-trained (orange, hatched), above 6 under-trained (purple, dotted)" });
  for (let i = 0; i < 70; i++) {
    const a = lo + ((i + 0.5) / 70) * (hi - lo);
    svg.append(el("rect", { x: x(lo) + (i / 70) * w, y: 0, width: w / 70 + 0.5, height: h, fill: alphaColour(a) }));
  }
  svg.append(el("rect", { x: x(lo), y: 0, width: x(OVER) - x(lo), height: h, fill: "url(#pat-over)" }));
  svg.append(el("rect", { x: x(UNDER), y: 0, width: x(hi) - x(UNDER), height: h, fill: "url(#pat-under)" }));
  svg.append(el("rect", { x: x(lo), y: 0, width: w, height: h, fill: "none", stroke: "#555" }));
  for (const a of [1, 2, 4, 6, 8]) {
    svg.append(el("line", { x1: x(a), x2: x(a), y1: h, y2: h + 4, stroke: "#333" }));
    svg.append(el("text", { x: x(a), y: h + 15, "text-anchor": a === 1 ? "start" : a === 8 ? "end" : "middle", class: "tick", text: a === 8 ? "\u22658" : a === 1 ? "\u22641" : a }));
  }
  box.replaceChildren(svg, el("span", { class: "legend-text" }, "\u03b1 2\u20136 healthy (light)", el("br"),
    "< 2 over-trained (orange, hatched) \u00b7 > 6 under-trained (purple, dotted)"));
}

/* --- Block and role of a layer ---------------------------------------------------- */

const ROLE_BY_SUFFIX = [[/q_proj$/, "attn_q"], [/k_proj$/, "attn_k"], [/v_proj$/, "attn_v"],
  [/o_proj$/, "attn_o"], [/gate_proj$/, "mlp_gate"], [/up_proj$/, "mlp_up"], [/down_proj$/, "mlp_down"],
  [/attn\.c_attn$/, "attn_qkv"], [/attn\.c_proj$/, "attn_o"], [/mlp\.c_fc$/, "mlp_up"], [/mlp\.c_proj$/, "mlp_down"]];

/* {block, role} from the layer JSON, or from the name on a server without them. */
function blockRole(l) {
  if (l.block !== undefined || l.role !== undefined) return { block: l.block, role: l.role };
  const stem = l.name.replace(/\.(weight|kernel)$/, "");
  const b = stem.match(/(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\./);
  const r = ROLE_BY_SUFFIX.find(([re]) => re.test(stem));
  return { block: b ? Number(b[1]) : null, role: b && r ? r[1] : null };
}

/* Layers of a checkpoint placed in the grid: {blocks, roles, cells: Map "b|r" -> layer}. */
function gridOf(layers) {
  const cells = new Map(), roles = new Set(), blocks = new Set();
  for (const l of layers) {
    if (l.status === "skipped") continue;
    const { block, role } = blockRole(l);
    if (block === null || block === undefined || !role) continue;
    const k = `${block}|${role}`;
    if (cells.has(k)) continue; /* experts of one block: the first */
    cells.set(k, l); roles.add(role); blocks.add(block);
  }
  const ord = (r) => (ROLE_ORDER.includes(r) ? ROLE_ORDER.indexOf(r) : 99);
  return { blocks: [...blocks].sort((a, b) => a - b), roles: [...roles].sort((a, b) => ord(a) - ord(b) || a.localeCompare(b)), cells };
}

/* The view on screen: the user's pick, else the default for the run's size. */
const shownView = () => state.view || state.autoView || "heatmap";
const steps = () => (state.heat ? state.heat.steps : []);
function currentStep() {
  const s = steps();
  if (!s.length) return null;
  return state.step !== null && s.includes(state.step) ? state.step : s[s.length - 1];
}

/* --- Views: grid, heatmap, delta ------------------------------------------------------ */

function emptyView(box, text) { box.replaceChildren(el("p", { class: "empty", text })); }

function roleLabel(r, cw) {
  if (cw >= 56) return r;
  return r.replace(/^attn_/, "").replace(/^mlp_/, "");
}

function renderGrid() {
  const box = $("view"), ck = state.ckpt, m = state.metric;
  if (!ck) { emptyView(box, state.run ? "No analysed checkpoints in this run yet." : "No runs yet: POST a checkpoint (see the README)."); return; }
  const g = gridOf(ck.layers);
  if (!g.cells.size) { emptyView(box, "No layer of this checkpoint has a block and role: see the heatmap view."); return; }
  const range = rangeOf([...g.cells.values()].map((l) => l[m]));
  const labelW = 62, top = 22, avail = Math.max(160, box.clientWidth - labelW - 24);
  const cw = Math.max(30, Math.min(110, avail / g.roles.length)), ch = g.blocks.length > 24 ? 17 : 22;
  const W = labelW + cw * g.roles.length + 2, H = top + ch * g.blocks.length + 2;
  const svg = el("svg", { width: W, height: H, id: "grid-svg", role: "grid", "data-step": ck.step, "data-metric": m,
    "data-blocks": g.blocks.length, "data-roles": g.roles.join(","),
    "aria-label": `${m} of ${g.cells.size} layers by block and role at step ${ck.step}` });
  const head = el("g", { class: "col-head" }, el("rect", { x: 0, y: 0, width: W, height: top, fill: "#ffffff" }));
  g.roles.forEach((r, j) => head.append(el("text", { x: labelW + cw * j + cw / 2, y: top - 7, "text-anchor": "middle", class: "tick col-label", text: roleLabel(r, cw) }, el("title", { text: r }))));
  head.append(el("text", { x: 2, y: top - 7, class: "axis-title", text: "block" }));
  g.blocks.forEach((b, i) => {
    const y = top + ch * i, row = el("g", { class: "row", "data-block": b });
    row.append(el("text", { x: labelW - 6, y: y + ch / 2 + 4, "text-anchor": "end", class: "tick", text: b }));
    g.roles.forEach((r, j) => {
      const l = g.cells.get(`${b}|${r}`), x = labelW + cw * j;
      if (!l) return;
      const v = l.status === "ok" ? l[m] : null, bd = m === "alpha" ? band(v) : "";
      const mark = l.status === "failed" ? "failed" : l.warning === "suspect_fit" ? "suspect" : bd === "over" || bd === "under" ? bd : null;
      const fill = colourOf(m, v, range);
      cell(row, x, y, cw, ch, fill, { class: `cell ${bd} ${l.status}${l.name === state.layer ? " selected" : ""}`, "data-layer": l.name,
        "data-block": b, "data-role": r, "data-value": isNum(v) ? v : "", tabindex: 0, role: "button" },
      cw >= 30 && ch >= 14 ? (l.status === "failed" ? "\u2716" : fmtCell(v)) : null, mark,
      `${l.name}\nblock ${b} ${r}\nstep ${ck.step}\n${m} ${fmt(v, 3)}${l.warning ? `\n${l.warning}` : ""}${l.status !== "ok" ? `\n${l.status}: ${l.reason || ""}` : ""}`);
      if (l.name === state.layer) {
        row.append(el("rect", { x: x - 1, y: y - 1, width: cw + 1, height: ch + 1, class: "sel-halo", "pointer-events": "none" }));
        row.append(el("rect", { x: x - 1, y: y - 1, width: cw + 1, height: ch + 1, class: "sel-outline", "pointer-events": "none" }));
      }
    });
    svg.append(row);
  });
  const other = ck.layers.filter((l) => l.status !== "skipped").length - g.cells.size;
  $("view-note").textContent = other > 0 ? `${other} analysed layers outside blocks (embeddings, head, ...): see the heatmap view` : "";
  svg.append(head); /* last: drawn over the rows it stays above (stickHead) */
  box.replaceChildren(svg);
  stickHead();
}

function shortName(s, n) { return s.length <= n ? s : `\u2026${s.slice(s.length - n + 1)}`; }

function renderHeatmap() {
  const box = $("view"), hm = state.heat, m = state.metric;
  if (!hm || hm.layers.length === 0 || hm.steps.length === 0) {
    emptyView(box, state.run ? "No analysed checkpoints in this run yet." : "No runs yet: POST a checkpoint (see the README).");
    return;
  }
  const stepsH = hm.steps, layers = hm.layers.filter((l) => l.values.some((v) => v !== null));
  const hidden = hm.layers.length - layers.length;
  $("view-note").textContent = hidden ? `${hidden} layers without results (skipped: biases, norms, ...) not shown` : "";
  if (layers.length === 0) { emptyView(box, "No analysed layers in this run yet."); return; }
  const range = rangeOf(layers.flatMap((l) => l.values));
  const narrow = box.clientWidth < 600, maxLen = narrow ? 22 : 40;
  const longest = Math.max(...layers.map((l) => Math.min(l.name.length, maxLen)));
  const labelW = Math.min(narrow ? 160 : 320, 16 + longest * 7), top = 30;
  const avail = Math.max(100, box.clientWidth - labelW - 24);
  const cw = Math.max(4, Math.min(120, avail / stepsH.length));
  const ch = layers.length > 40 ? 14 : 20;
  const W = labelW + cw * stepsH.length + 4, H = top + ch * layers.length + 4;
  const svg = el("svg", { width: W, height: H, id: "heatmap-svg", role: "grid", "data-metric": m,
    "aria-label": `${m} of ${layers.length} layers at ${stepsH.length} steps`,
    "data-layers": layers.length, "data-steps": stepsH.length });
  const every = Math.max(1, Math.ceil(48 / cw));
  stepsH.forEach((s, j) => {
    if (j % every === 0 || j === stepsH.length - 1)
      svg.append(el("text", { x: labelW + cw * j + cw / 2, y: top - 10, "text-anchor": "middle", class: "tick", text: s }));
  });
  svg.append(el("text", { x: 4, y: top - 10, class: "axis-title", text: "layer \u2193 / step \u2192" }));
  const showText = cw >= 34 && ch >= 14;
  layers.forEach((l, i) => {
    const y = top + ch * i, sel = l.name === state.layer;
    const row = el("g", { class: sel ? "row selected" : "row", "data-layer": l.name });
    row.append(el("text", { x: labelW - 6, y: y + ch / 2 + 4, "text-anchor": "end", class: "row-label",
      "data-layer": l.name, tabindex: 0, role: "button" }, shortName(l.name, maxLen), el("title", { text: l.name })));
    l.values.forEach((v, j) => {
      const x = labelW + cw * j, b = m === "alpha" ? band(v) : "";
      cell(row, x, y, cw, ch, colourOf(m, v, range), { class: `cell ${b}`, "data-layer": l.name, "data-step": stepsH[j], "data-value": v === null ? "" : v },
        showText ? fmtCell(v) : null, b === "over" || b === "under" ? b : null,
        `${l.name}\nstep ${stepsH[j]}\n${m} ${fmt(v, 3)}${b === "over" ? " (over-trained)" : b === "under" ? " (under-trained)" : ""}`);
    });
    if (sel) row.append(el("rect", { x: 1, y: y - 1, width: W - 3, height: ch + 1, class: "sel-outline", "pointer-events": "none" }));
    svg.append(row);
  });
  box.replaceChildren(svg);
}

function renderDelta() {
  const box = $("view"), c = state.cmp, m = state.metric;
  if (!hasRoute("/v1/compare")) { emptyView(box, "This server has no /v1/compare: no delta view."); return; }
  if (!c) { emptyView(box, state.cmpError || "Pick a checkpoint B to compare with."); return; }
  const rows = c.layers, ds = rows.map((r) => (r.delta ? r.delta[m] : null));
  const maxAbs = Math.max(0, ...ds.filter(isNum).map(Math.abs));
  const grid = rows.length && rows.every((r) => r.block !== null && r.block !== undefined && r.role);
  const s = c.summary && c.summary[m];
  $("view-note").textContent = `A ${c.a.run}:${c.a.step} vs B ${c.b.run}:${c.b.step}` +
    (s ? ` \u00b7 mean ${m} ${fmt(s.a, 3)} \u2192 ${fmt(s.b, 3)} (${fmtSigned(s.delta, 3)})` : "") +
    ` \u00b7 ${rows.length} matched` + (c.only_a.length ? `, ${c.only_a.length} only in A` : "") + (c.only_b.length ? `, ${c.only_b.length} only in B` : "");
  const tip = (r, d) => `${r.key}\nA ${r.name_a}: ${fmt(r.a[m], 3)}\nB ${r.name_b}: ${fmt(r.b[m], 3)}\n\u0394 ${fmtSigned(d, 3)} (matched by ${r.matched_by})`;
  let svg;
  if (grid) {
    const g = { blocks: [...new Set(rows.map((r) => r.block))].sort((a, b) => a - b), roles: [...new Set(rows.map((r) => r.role))] };
    g.roles.sort((a, b) => ROLE_ORDER.indexOf(a) - ROLE_ORDER.indexOf(b));
    const labelW = 62, top = 22, avail = Math.max(160, box.clientWidth - labelW - 24);
    const cw = Math.max(30, Math.min(110, avail / g.roles.length)), ch = g.blocks.length > 24 ? 17 : 22;
    svg = el("svg", { width: labelW + cw * g.roles.length + 2, height: top + ch * g.blocks.length + 2, id: "delta-svg", role: "grid", "data-metric": m,
      "aria-label": `change of ${m} per layer, ${c.a.run}:${c.a.step} to ${c.b.run}:${c.b.step}` });
    const head = el("g", { class: "col-head" }, el("rect", { x: 0, y: 0, width: labelW + cw * g.roles.length + 2, height: top, fill: "#ffffff" }));
    g.roles.forEach((r, j) => head.append(el("text", { x: labelW + cw * j + cw / 2, y: top - 7, "text-anchor": "middle", class: "tick col-label", text: roleLabel(r, cw) })));
    head.append(el("text", { x: 2, y: top - 7, class: "axis-title", text: "block" }));
    const at = new Map(rows.map((r, i) => [`${r.block}|${r.role}`, i]));
    g.blocks.forEach((b, i) => {
      const y = top + ch * i, row = el("g", { class: "row" });
      row.append(el("text", { x: labelW - 6, y: y + ch / 2 + 4, "text-anchor": "end", class: "tick", text: b }));
      g.roles.forEach((ro, j) => {
        const k = at.get(`${b}|${ro}`);
        if (k === undefined) return;
        const r = rows[k], d = ds[k];
        cell(row, labelW + cw * j, y, cw, ch, deltaColour(d, maxAbs), { class: "dcell", "data-key": r.key, "data-layer": r.name_a, "data-delta": isNum(d) ? d : "" },
          fmtSigned(d, Math.abs(d) >= 10 ? 1 : 2), null, tip(r, d));
      });
      svg.append(row);
    });
    svg.append(head);
  } else {
    const labelW = Math.min(300, 16 + Math.max(...rows.map((r) => Math.min(r.key.length, 40))) * 7), ch = 18, cw = 80, top = 20;
    svg = el("svg", { width: labelW + cw + 4, height: top + ch * rows.length + 2, id: "delta-svg", role: "grid", "data-metric": m });
    svg.append(el("text", { x: labelW + cw / 2, y: top - 6, "text-anchor": "middle", class: "tick", text: `\u0394 ${m}` }));
    rows.forEach((r, i) => {
      const y = top + ch * i, row = el("g", { class: "row" });
      row.append(el("text", { x: labelW - 6, y: y + ch / 2 + 4, "text-anchor": "end", class: "row-label", "data-layer": r.name_a }, shortName(r.key, 40)));
      cell(row, labelW, y, cw, ch, deltaColour(ds[i], maxAbs), { class: "dcell", "data-key": r.key, "data-layer": r.name_a, "data-delta": isNum(ds[i]) ? ds[i] : "" },
        fmtSigned(ds[i], 3), null, tip(r, ds[i]));
      svg.append(row);
    });
  }
  box.replaceChildren(svg);
  stickHead();
}

/* Keep the column labels of a grid at the top of the scrolled box. */
function stickHead() {
  const h = $("view").querySelector("g.col-head");
  if (h) h.setAttribute("transform", `translate(0,${$("view").scrollTop})`);
}

function renderView() {
  $("view-note").textContent = "";
  const v = shownView();
  $("view-title").textContent = v === "grid" ? `${state.metric} by block and role` : v === "delta" ? `Change of ${state.metric} (B \u2212 A)` : `${state.metric} by layer and training step`;
  $("step-box").hidden = v === "heatmap" || !steps().length;
  $("cmp-box").hidden = v !== "delta";
  $("view-select").value = v;
  renderLegend();
  if (state.missingRun) { emptyView($("view"), "Pick a run above."); return; }
  if (v === "grid") renderGrid();
  else if (v === "delta") renderDelta();
  else renderHeatmap();
  revealSelected();
}

/* Scroll the selected layer into the view's box, once per selection and view. */
function revealSelected() {
  const key = `${shownView()}|${state.layer}`;
  if (!state.layer || state.revealed === key) return;
  const t = Array.from($("view").querySelectorAll("[data-layer]")).find((n) => n.getAttribute("data-layer") === state.layer);
  if (!t) return;
  state.revealed = key;
  const box = $("view"), r = t.getBoundingClientRect(), b = box.getBoundingClientRect();
  if (r.top < b.top || r.bottom > b.bottom) box.scrollTop += r.top - b.top - b.height / 3;
}

function renderStepSlider() {
  const s = steps(), sl = $("step-slider"), cur = currentStep();
  sl.max = Math.max(0, s.length - 1);
  sl.value = Math.max(0, s.indexOf(cur));
  $("step-label").textContent = cur === null ? "" : `step ${cur} (${s.indexOf(cur) + 1} of ${s.length})`;
  sl.setAttribute("aria-valuetext", cur === null ? "" : `step ${cur}`);
}

/* --- Line charts: layer history, summary ------------------------------------------- */

/* A line chart of series [{name, cls, points: [{x, y}]}] into box; for alpha
 * the healthy band is drawn. Returns the svg. */
function lineChart(box, id, series, yTitle, attrs) {
  const W = Math.max(260, box.clientWidth || 420), H = 230, m = { l: 52, r: 14, t: 22, b: 34 };
  const all = series.flatMap((s) => s.points).filter((p) => isNum(p.y));
  const xs = all.map((p) => p.x), ys = all.map((p) => p.y);
  const x0 = xs.length ? Math.min(...xs) : 0, x1 = Math.max(...xs, x0 + 1);
  const alpha = yTitle === "alpha";
  let y0 = ys.length ? Math.min(...ys) : 0, y1 = ys.length ? Math.max(...ys) : 1;
  if (alpha) { y0 = Math.min(1, y0); y1 = Math.max(8, y1); }
  if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
  const X = (s) => m.l + ((s - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (a) => H - m.b - ((a - y0) / (y1 - y0)) * (H - m.t - m.b);
  const svg = el("svg", Object.assign({ width: W, height: H, id, role: "img" }, attrs));
  if (alpha) {
    svg.append(el("rect", { x: m.l, y: Y(OVER), width: W - m.l - m.r, height: Y(y0) - Y(OVER), fill: "url(#pat-over-grey)", class: "zone-over" }));
    svg.append(el("rect", { x: m.l, y: Y(y1), width: W - m.l - m.r, height: Y(UNDER) - Y(y1), fill: "url(#pat-under-grey)", class: "zone-under" }));
    svg.append(el("rect", { x: m.l, y: Y(UNDER), width: W - m.l - m.r, height: Y(OVER) - Y(UNDER), class: "zone-ok" }));
    for (const [a, label] of [[OVER, "\u03b1 = 2 over-trained below"], [UNDER, "\u03b1 = 6 under-trained above"]]) {
      svg.append(el("line", { x1: m.l, x2: W - m.r, y1: Y(a), y2: Y(a), class: "threshold" }));
      svg.append(el("text", { x: W - m.r - 4, y: Y(a) - 4, "text-anchor": "end", class: "tick", text: label }));
    }
  }
  for (let i = 0; i <= 4; i++) {
    const a = y0 + ((y1 - y0) * i) / 4;
    svg.append(el("text", { x: m.l - 6, y: Y(a) + 4, "text-anchor": "end", class: "tick", text: fmtCell(a) }));
  }
  const sx = [...new Set(xs)].sort((a, b) => a - b), every = Math.max(1, Math.ceil(sx.length / 6));
  sx.forEach((s, i) => {
    if (i % every === 0 || i === sx.length - 1)
      svg.append(el("text", { x: X(s), y: H - m.b + 16, "text-anchor": "middle", class: "tick", text: s }));
  });
  svg.append(el("text", { x: (W + m.l) / 2, y: H - 4, "text-anchor": "middle", class: "axis-title", text: "training step" }));
  svg.append(el("text", { x: 4, y: 11, class: "axis-title", text: yTitle }));
  svg.append(el("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis" }));
  svg.append(el("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }));
  for (const s of series) {
    const pts = s.points.filter((p) => isNum(p.y));
    if (pts.length > 1) svg.append(el("polyline", { points: pts.map((p) => `${X(p.x)},${Y(p.y)}`).join(" "), class: `line ${s.cls}` }));
    for (const p of pts)
      svg.append(el("circle", { cx: X(p.x), cy: Y(p.y), r: 4, class: `point ${s.cls} ${alpha ? band(p.y) : ""}`, "data-step": p.x, "data-value": p.y },
        el("title", { text: `${s.name}\nstep ${p.x}: ${yTitle} ${fmt(p.y, 3)}` })));
  }
  if (series.length > 1) {
    series.forEach((s, i) => {
      svg.append(el("line", { x1: m.l + 60 + i * 150, x2: m.l + 80 + i * 150, y1: 7, y2: 7, class: `line ${s.cls}` }));
      svg.append(el("text", { x: m.l + 84 + i * 150, y: 11, class: "tick key", text: shortName(s.name, 18) }));
    });
  }
  return svg;
}

function renderHistory() {
  const box = $("history-chart"), h = state.history, m = state.metric;
  $("layer-title").textContent = state.layer ? `Layer ${state.layer}` : "Layer";
  $("layer-hint").hidden = !!state.layer || !!state.missingLayer;
  $("layer-msg").hidden = !state.missingLayer;
  $("layer-msg").textContent = state.missingLayer || "";
  if (!state.layer || !h) { box.replaceChildren(); return; }
  const series = [{ name: state.run, cls: "main", points: h.points.map((p) => ({ x: p.step, y: p[m] })) }];
  const o = state.overlayHist;
  if (state.overlay && o && o.layer === state.layer) series.push({ name: state.overlay, cls: "overlay", points: o.points.map((p) => ({ x: p.step, y: p[m] })) });
  const svg = lineChart(box, "history-svg", series, m, { "data-layer": state.layer, "data-metric": m,
    "data-points": series[0].points.filter((p) => isNum(p.y)).length, "data-overlay": series.length > 1 ? state.overlay : "",
    "aria-label": `${m} of ${state.layer} over ${h.points.length} steps` });
  const last = h.points.length ? h.points[h.points.length - 1] : null;
  let text = (last ? `step ${last.step}: ${m} ${fmt(last[m], 3)}` : "no points") +
    (h.downsampled ? ` \u00b7 ${h.points.length} of ${h.total_points} points shown` : "");
  if (state.overlay && state.overlayError) text += ` \u00b7 ${state.overlayError}`;
  box.replaceChildren(svg, el("p", { class: "note", id: "history-note", text }));
}

function renderSummary() {
  const box = $("summary-chart"), d = state.sumHist;
  $("summary-panel").hidden = !hasRoute("/v1/runs/{run}/summary/history") || !!state.missingRun;
  if (!d) { box.replaceChildren(el("p", { class: "empty", text: state.sumError || "No summaries yet." })); return; }
  const series = [{ name: "mean", cls: "main", points: d.points.map((p) => ({ x: p.step, y: p.mean })) },
    { name: "weighted mean", cls: "weighted", points: d.points.map((p) => ({ x: p.step, y: p.weighted_mean })) }];
  $("summary-title").textContent = `Mean ${d.metric} over steps`;
  const svg = lineChart(box, "summary-svg", series, d.metric, { "data-metric": d.metric, "data-points": d.points.length,
    "aria-label": `mean and parameter-weighted mean of ${d.metric} over ${d.points.length} steps` });
  const last = d.points.length ? d.points[d.points.length - 1] : null;
  const note = last ? `step ${last.step}: mean ${fmt(last.mean, 3)}, weighted ${fmt(last.weighted_mean, 3)} over ${last.n_layers} layers` : "no checkpoints";
  box.replaceChildren(svg, el("p", { class: "note", text: d.metric !== state.metric ? `${note} (no summary of ${state.metric}: showing ${d.metric})` : note }));
}

function renderEsd() {
  const box = $("esd");
  $("esd-title").hidden = !state.layer || !!state.missingLayer;
  if (!state.layer || state.missingLayer) { box.replaceChildren(); return; }
  if (!hasRoute("/v1/runs/{run}/layers/{layer}/esd.svg")) {
    box.replaceChildren(el("p", { class: "empty", text: "No ESD plot: this server has no ESD endpoint." }));
    return;
  }
  const src = `${layerURL(state.run, state.layer)}/esd.svg${presetQ("?")}`;
  const cur = box.querySelector("img");
  if (cur && cur.getAttribute("src") === src) return;
  const img = el("img", { src, alt: `eigenvalue spectrum of ${state.layer}`, class: "esd" });
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
  const body = $("latest-table").tBodies[0], lat = state.latest, m = state.metric;
  const only = $("only-warnings").checked;
  $("latest-metric").textContent = m === "alpha" ? "D" : m;
  if (!lat) { body.replaceChildren(); $("latest-summary").textContent = ""; return; }
  const analysed = lat.layers.filter((l) => l.status !== "skipped");
  const n = (w) => analysed.filter((l) => l.warning === w).length;
  const st = [...new Set(lat.layers.map((l) => l.step))];
  $("latest-title").textContent = st.length ? `Latest checkpoint: step ${Math.max(...st)}` : "Latest checkpoint";
  $("latest-summary").textContent = `${analysed.length} layers \u00b7 ${n("over_trained")} over-trained \u00b7 ` +
    `${n("under_trained")} under-trained \u00b7 ${n("suspect_fit")} suspect`;
  const rows = [];
  for (const l of lat.layers) {
    const w = warningOf(l);
    if (only && (!w || w.cls === "skipped")) continue;
    const btn = el("button", { type: "button", class: "link", "data-layer": l.name, text: l.name });
    rows.push(el("tr", { class: [w ? `warn-${w.cls}` : "", l.name === state.layer ? "selected" : ""].join(" ").trim() || null, "data-layer": l.name },
      el("td", { class: "name" }, btn), el("td", { class: "num", text: l.step }), el("td", { class: "num", text: fmt(l.alpha) }),
      el("td", { class: "num", text: m === "alpha" ? fmt(l.D, 3) : fmt(l[m], 3) }), el("td", { class: "warn", text: w ? w.text : "" })));
  }
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 5, class: "empty", text: only ? "No warnings." : "No layers yet." })));
  body.replaceChildren(...rows);
}

/* --- Export: CSV of any view, SVG and PNG of the plots ----------------------------------- */

const safe = (s) => String(s).replace(/[^A-Za-z0-9_.-]+/g, "_");
const csvCell = (v) => (v === null || v === undefined ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
const csvOf = (rows) => rows.map((r) => r.map(csvCell).join(",")).join("\n") + "\n";

/* {name, rows} of panel `what` ("view", "history", "summary"), or null. */
function tableOf(what) {
  const m = state.metric, run = safe(state.run || "none");
  if (what === "history") {
    const h = state.history;
    if (!h) return null;
    const o = state.overlay && state.overlayHist && state.overlayHist.layer === state.layer ? state.overlayHist : null;
    const all = [...new Set([...h.points.map((p) => p.step), ...(o ? o.points.map((p) => p.step) : [])])].sort((a, b) => a - b);
    const at = (d, s) => { const p = d.points.find((q) => q.step === s); return p ? p[m] : null; };
    return { name: `${run}-${safe(state.layer)}-${m}-history`, rows: [["step", o ? `${state.run}` : m, ...(o ? [state.overlay] : [])],
      ...all.map((s) => [s, at(h, s), ...(o ? [at(o, s)] : [])])] };
  }
  if (what === "summary") {
    const d = state.sumHist;
    if (!d) return null;
    return { name: `${run}-summary-${d.metric}`, rows: [["step", "n_layers", "mean", "weighted_mean"], ...d.points.map((p) => [p.step, p.n_layers, p.mean, p.weighted_mean])] };
  }
  if (shownView() === "grid") {
    const ck = state.ckpt;
    if (!ck) return null;
    const g = gridOf(ck.layers), rows = [["block", "role", "layer", "step", m]];
    for (const b of g.blocks) for (const r of g.roles) {
      const l = g.cells.get(`${b}|${r}`);
      if (l) rows.push([b, r, l.name, ck.step, l.status === "ok" ? l[m] : null]);
    }
    return { name: `${run}-grid-${m}-step${ck.step}`, rows };
  }
  if (shownView() === "delta") {
    const c = state.cmp;
    if (!c) return null;
    return { name: `${run}-${c.a.step}-vs-${safe(c.b.run)}-${c.b.step}-delta-${m}`,
      rows: [["key", "name_a", "name_b", "matched_by", `${m}_a`, `${m}_b`, "delta"],
        ...c.layers.map((r) => [r.key, r.name_a, r.name_b, r.matched_by, r.a[m], r.b[m], r.delta[m]])] };
  }
  const hm = state.heat;
  if (!hm) return null;
  return { name: `${run}-heatmap-${m}`, rows: [["layer", ...hm.steps], ...hm.layers.filter((l) => l.values.some((v) => v !== null)).map((l) => [l.name, ...l.values])] };
}

const SVG_OF = { view: () => $("view").querySelector("svg"), history: () => $("history-svg"), summary: () => $("summary-svg") };
const STYLE_PROPS = ["fill", "stroke", "stroke-width", "stroke-dasharray", "opacity", "font-size", "font-weight", "font-family", "paint-order", "stroke-linejoin"];

/* A standalone copy of svg: computed styles inlined, the shared patterns included. */
function standaloneSVG(svg) {
  const copy = svg.cloneNode(true), src = [svg, ...svg.querySelectorAll("*")], dst = [copy, ...copy.querySelectorAll("*")];
  src.forEach((n, i) => {
    const cs = getComputedStyle(n);
    dst[i].setAttribute("style", STYLE_PROPS.map((p) => `${p}:${cs.getPropertyValue(p)}`).join(";"));
  });
  copy.setAttribute("xmlns", SVGNS);
  copy.querySelectorAll("g.col-head").forEach((h) => h.removeAttribute("transform")); /* unscrolled */
  copy.insertBefore(document.querySelector("svg.defs defs").cloneNode(true), copy.firstChild);
  copy.insertBefore(el("rect", { x: 0, y: 0, width: "100%", height: "100%", fill: "#ffffff" }), copy.firstChild.nextSibling);
  return new XMLSerializer().serializeToString(copy);
}

function download(name, blob) {
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function exportAs(what, kind) {
  const t = tableOf(what);
  if (!t) { setStatus("nothing to export yet", "error"); return; }
  if (kind === "csv") { download(`${t.name}.csv`, new Blob([csvOf(t.rows)], { type: "text/csv" })); return; }
  const svg = SVG_OF[what]();
  if (!svg) { setStatus("nothing to export yet", "error"); return; }
  const text = standaloneSVG(svg);
  if (kind === "svg") { download(`${t.name}.svg`, new Blob([text], { type: "image/svg+xml" })); return; }
  const img = new Image(), w = Number(svg.getAttribute("width")), h = Number(svg.getAttribute("height"));
  img.src = `data:image/svg+xml;charset=utf-8,${enc(text)}`;
  await img.decode();
  const cv = el("canvas", { width: w * 2, height: h * 2 }), ctx = cv.getContext("2d");
  ctx.scale(2, 2);
  ctx.drawImage(img, 0, 0, w, h);
  const blob = await new Promise((res) => cv.toBlob(res, "image/png"));
  download(`${t.name}.png`, blob);
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

async function loadSummaryHistory() {
  if (!hasRoute("/v1/runs/{run}/summary/history")) return false;
  const m = state.summaryMetrics.includes(state.metric) ? state.metric : "alpha";
  const url = `${runURL(state.run)}/summary/history?metric=${enc(m)}&page_size=1000${presetQ("&")}`;
  try {
    const { changed, data } = await get(url);
    if (!changed && state.sumHist && state.sumHist.url === url) return false;
    state.sumHist = Object.assign({ url }, data);
    state.sumError = null;
  } catch (e) {
    if (!(e instanceof HttpError) || e.status >= 500) throw e;
    state.sumHist = null; state.sumError = `no summary: ${e.message}`;
  }
  return true;
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
  try {
    const { changed, data } = await get(url);
    if (!changed && state.cmp && state.cmp.url === url) return false;
    state.cmp = Object.assign({ url }, data);
    state.cmpError = null;
  } catch (e) {
    if (!(e instanceof HttpError) || e.status >= 500) throw e;
    state.cmp = null; state.cmpError = `cannot compare: ${e.message}`;
  }
  return true;
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
