/* farmsd dashboard, grid.js: the colours and the main panel's views.
 *
 * Number formatting, the colour scales (alpha's healthy band, the other
 * metrics, deltas) and the legend; where a layer sits in the block x role
 * grid; and the three views of the main panel (grid, heatmap, delta) with
 * the step slider. Loaded after app.js (state, el, fetching), before
 * plots.js and export.js; see app.js for the whole page.
 */
"use strict";

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
