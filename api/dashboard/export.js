/* farmsd dashboard, export.js: downloads of what is on screen.
 *
 * CSV of any view (main view, layer history, summary), and SVG and PNG of
 * the plots (computed styles inlined, so the files stand alone). Loaded
 * last; see app.js for the whole page.
 */
"use strict";

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
