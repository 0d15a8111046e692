/* farmsd dashboard, plots.js: the panels beside the main view.
 *
 * The line charts (the selected layer's history, optionally overlaid with
 * the same layer of a second run, and the run's summary over steps), the
 * ESD plot of the selected layer (when the server has the route) and the
 * latest checkpoint's table. Loaded after grid.js (colours, formatting);
 * see app.js for the whole page.
 */
"use strict";

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
