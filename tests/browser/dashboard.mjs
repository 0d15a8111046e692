// dashboard.mjs -- the dashboard in Debian's headless Chromium, driven by playwright-core.
//
// node tests/browser/dashboard.mjs CONFIG_JSON
//   url      the server, e.g. "http://127.0.0.1:PORT/"
//   shots    folder for the screenshots (dashboard-grid.png, -heatmap, -compare, -narrow)
//   mlp      {run, cells, layer, points}: a small run (no blocks): opens on the heatmap with
//            `cells` cells; clicking `layer` shows `points` history points
//   mixed    {run, cells, preset2, cells2}: a run holding two presets: the preset selector shows,
//            its own preset has `cells`, picking preset2 gives `cells2`
//   llama    the 224-layer run (the newest: the first view), several steps
//   other    a second run of the same model (overlay, delta against another run)
//   without  routes this server lacks ("summary", "compare"): their checks are skipped, loudly
// Expected numbers come from the API itself (fetched here, not from the page). Prints one
// "ok ..." / "FAIL ..." / "SKIP ..." line per check and exits 1 on any failure; a console
// error or an uncaught page error is a failure.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";

const cfg = JSON.parse(process.argv[2] || "null");
if (!cfg || !cfg.url || !cfg.shots) {
  console.error("usage: node dashboard.mjs CONFIG_JSON (see the top of the file)");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const without = new Set(cfg.without || []);
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok" : "FAIL"} ${what}`);
  if (!ok) failed++;
};
const skip = (what) => console.log(`SKIP ${what}`);
const base = cfg.url.replace(/\/$/, "");
const api = async (path) => {
  const r = await fetch(base + path);
  if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
  return r.json();
};
const enc = encodeURIComponent;
const close = (a, b) => (a === null || b === null ? a === b : Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)));
const num = (s) => (s === "" || s === null ? null : Number(s));
const lum = (c) => {
  const v = c.startsWith("#") ? [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)) : c.match(/\d+/g).map(Number);
  const l = v.map((x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2];
};
const contrast = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
const ROLES = ["attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate", "mlp_up", "mlp_down"];

mkdirSync(cfg.shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
let seen = []; // errors up to the end of the checks (closing aborts in-flight polls)

async function newPage(width, height) {
  const page = await browser.newPage({ viewport: { width, height }, acceptDownloads: true });
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    const f = r.failure()?.errorText || "";
    if (!r.url().startsWith("blob:") && !r.url().startsWith("data:")) errors.push(`request failed: ${r.url()} ${f}`);
  });
  page.setDefaultTimeout(20000);
  return page;
}
const waitFor = (page, fn, arg) => page.waitForFunction(fn, arg).then(() => true, () => false);

/* Click an export button; {name, text} of the download. */
async function exported(page, what, kind) {
  const [dl] = await Promise.all([page.waitForEvent("download"),
    page.click(`button.export[data-what="${what}"][data-kind="${kind}"]`)]);
  const path = await dl.path();
  return { name: dl.suggestedFilename(), bytes: readFileSync(path) };
}
const csvRows = (b) => b.toString("utf8").trim().split("\n").map((l) => l.split(","));

/* Every cell of the grid: {layer, block, role, value}. */
const gridCells = (page) => page.locator("#grid-svg rect.cell").evaluateAll((r) => r.map((x) => ({
  layer: x.getAttribute("data-layer"), block: Number(x.getAttribute("data-block")),
  role: x.getAttribute("data-role"), value: x.getAttribute("data-value"), fill: x.getAttribute("fill") })));

/* Every labelled cell of the view: its text colour and its background. */
const labels = (page) => page.locator("#view text.val").evaluateAll((t) => t.map((x) => ({ ink: x.getAttribute("fill"), bg: x.getAttribute("data-bg") })));

async function checkContrast(page, what) {
  const ls = await labels(page);
  const worst = ls.reduce((m, l) => Math.min(m, contrast(l.ink, l.bg)), Infinity);
  check(ls.length > 0 && worst >= 4.5, `${what}: ${ls.length} labelled cells, lowest text contrast ${worst.toFixed(2)}:1 (want >= 4.5)`);
}

async function checkGridAt(page, run, step, metric) {
  const ok = await waitFor(page, ([s, m]) => {
    const g = document.querySelector("#grid-svg");
    return g && g.getAttribute("data-step") === String(s) && g.getAttribute("data-metric") === m;
  }, [step, metric]);
  const ck = await api(`/v1/runs/${enc(run)}/checkpoints/${step}`);
  const want = new Map(ck.layers.filter((l) => l.status !== "skipped").map((l) => [l.name, l]));
  const cells = await gridCells(page);
  let bad = 0;
  for (const c of cells) {
    const l = want.get(c.layer);
    if (!l || !close(num(c.value), l.status === "ok" ? l[metric] : null)) bad++;
    else if (l.block !== undefined && (l.block !== c.block || l.role !== c.role)) bad++;
  }
  check(ok && cells.length === want.size && bad === 0,
    `grid at step ${step}: ${cells.length} cells (want ${want.size}), ${bad} differ from GET checkpoints/${step} ${metric}`);
  return { ck, cells };
}

try {
  const runs = (await api("/v1/runs?page_size=1000")).runs;
  const newest = [...runs].sort((a, b) => String(b.created).localeCompare(String(a.created)))[0].name;
  const routes = (await api("/dashboard/routes.json"));
  const llama = cfg.llama;
  const llamaSteps = (await api(`/v1/runs/${enc(llama)}/history?metric=alpha`)).steps;
  const page = await newPage(1366, 768);

  // 1. The first view is never blank: the newest run, its latest step, the worst layer.
  await page.goto(cfg.url);
  check(newest === llama, `the newest run is ${newest} (the 224-layer run)`);
  const latest = (await api(`/v1/runs/${enc(newest)}/layers`)).layers;
  const worst = latest.filter((l) => l.status === "ok").map((l) => {
    const out = l.alpha < 2 ? 2 - l.alpha : l.alpha > 6 ? l.alpha - 6 : 0;
    return { name: l.name, sc: out > 0 ? out : -l.alpha / 1000 };
  }).reduce((a, b) => (b.sc > a.sc ? b : a)).name;
  const wPoints = (await api(`/v1/runs/${enc(newest)}/layers/${enc(worst)}/history?metrics=alpha`)).points.filter((p) => p.alpha !== null).length;
  const shown = await waitFor(page, ([l, n]) => {
    const s = document.querySelector("#history-svg");
    return s && s.getAttribute("data-layer") === l && s.querySelectorAll("circle.point.main").length === Number(n);
  }, [worst, wPoints]);
  check(shown, `first view selects the worst-alpha layer ${worst} with its ${wPoints} history points`);
  check(await page.locator("#run-select").inputValue() === newest, "first view shows the newest run");
  check(await page.locator("#view-select").inputValue() === "grid", "224 layers with blocks: the page opens on the grid");
  const lastStep = llamaSteps[llamaSteps.length - 1];
  const g1 = await checkGridAt(page, llama, lastStep, "alpha");
  check(g1.cells.length === 224, `the grid has 224 cells (32 blocks x 7 roles): ${g1.cells.length}`);
  const roles = await page.locator("#grid-svg").getAttribute("data-roles");
  check(roles === ROLES.join(","), `columns are the roles of the layer JSON in order (${roles})`);
  check(await page.locator("#grid-svg").getAttribute("data-blocks") === "32", "rows are the 32 blocks");
  await checkContrast(page, "grid");

  // Colour scale: calm inside 2..6, strong outside, patterns kept, a legend.
  const inBand = g1.cells.filter((c) => num(c.value) >= 2 && num(c.value) <= 6);
  const outBand = g1.cells.filter((c) => c.value !== "" && (num(c.value) < 2 || num(c.value) > 6));
  const calm = inBand.every((c) => lum(c.fill) > 0.75), strong = outBand.every((c) => lum(c.fill) < 0.45);
  check(inBand.length > 0 && calm, `${inBand.length} healthy cells (2 <= alpha <= 6) are light (luminance > 0.75)`);
  check(outBand.length > 0 && strong, `${outBand.length} cells outside 2..6 are strong (luminance < 0.45)`);
  const marks = await page.locator('#grid-svg rect.mark[fill="url(#pat-over)"], #grid-svg rect.mark[fill="url(#pat-under)"]').count();
  check(marks === outBand.length, `every out-of-band cell is hatched or dotted (${marks} marks)`);
  const legend = await page.locator("#legend").textContent();
  check(await page.locator("#legend svg").count() === 1 && legend.includes("2\u20136 healthy") && legend.includes("hatched") && legend.includes("dotted"),
    `a legend explains the scale ("${legend}")`);
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${cfg.shots}/dashboard-grid.png` });

  // 2. The step slider: every step of the run, the grid follows it.
  check(await page.locator("#step-slider").getAttribute("max") === String(llamaSteps.length - 1),
    `the slider spans the ${llamaSteps.length} steps`);
  await page.focus("#step-slider");
  await page.keyboard.press("Home");
  await checkGridAt(page, llama, llamaSteps[0], "alpha");
  check(page.url().includes(`step=${llamaSteps[0]}`), "the URL keeps the step");

  // 3. Metric selector: the server's history metrics; the grid shows the picked one.
  const opts = await page.locator("#metric-select option").evaluateAll((o) => o.map((x) => x.value));
  check(JSON.stringify(opts) === JSON.stringify(routes.metrics), `metric selector offers the server's ${routes.metrics.length} history metrics`);
  await page.selectOption("#metric-select", "log_norm");
  await checkGridAt(page, llama, llamaSteps[0], "log_norm");
  await checkContrast(page, "grid of log_norm");
  await page.selectOption("#metric-select", "alpha");
  await checkGridAt(page, llama, llamaSteps[0], "alpha");
  await page.focus("#step-slider");
  await page.keyboard.press("End");
  await checkGridAt(page, llama, lastStep, "alpha");

  // 4. Exports of the grid: CSV with the API's numbers, SVG, PNG.
  const csv = await exported(page, "view", "csv");
  const rows = csvRows(csv.bytes);
  check(/^llama-grid-alpha-step\d+\.csv$/.test(csv.name), `grid CSV is named ${csv.name}`);
  const byName = new Map(g1.ck.layers.map((l) => [l.name, l]));
  const csvBad = rows.slice(1).filter((r) => !byName.has(r[2]) || !close(num(r[4]), byName.get(r[2]).alpha)).length;
  check(rows.length === 225 && rows[0].join(",") === "block,role,layer,step,alpha" && csvBad === 0,
    `grid CSV: header + ${rows.length - 1} rows, ${csvBad} differ from the API`);
  const svgX = await exported(page, "view", "svg");
  const svgText = svgX.bytes.toString("utf8");
  check(/\.svg$/.test(svgX.name) && svgText.startsWith("<svg") && svgText.includes('xmlns="http://www.w3.org/2000/svg"') &&
    (svgText.match(/<rect[^>]*class="cell/g) || []).length === 224 && svgText.includes('id="pat-over"'),
  `grid SVG ${svgX.name}: standalone, 224 cells, patterns included`);
  const png = await exported(page, "view", "png");
  check(/\.png$/.test(png.name) && png.bytes.length > 2000 && png.bytes.subarray(1, 4).toString() === "PNG",
    `grid PNG ${png.name}: ${png.bytes.length} bytes`);

  // 5. A click in the grid selects a layer; its history and the history exports.
  const pick = g1.cells.find((c) => c.role === "mlp_down" && c.block === 7).layer;
  await page.locator(`#grid-svg rect.cell[data-layer="${pick}"]`).click();
  const pPoints = (await api(`/v1/runs/${enc(llama)}/layers/${enc(pick)}/history?metrics=alpha`)).points;
  const hOk = await waitFor(page, ([l, n]) => {
    const s = document.querySelector("#history-svg");
    return s && s.getAttribute("data-layer") === l && s.querySelectorAll("circle.point.main").length === Number(n);
  }, [pick, pPoints.length]);
  check(hOk, `clicking block 7 mlp_down shows ${pick}'s ${pPoints.length} points`);
  check(page.url().includes(`layer=${enc(pick)}`), "the URL keeps the layer");
  const hcsv = csvRows((await exported(page, "history", "csv")).bytes);
  check(hcsv.length === pPoints.length + 1 && hcsv.slice(1).every((r, i) => Number(r[0]) === pPoints[i].step && close(num(r[1]), pPoints[i].alpha)),
    `history CSV has the API's ${pPoints.length} points`);
  const hsvg = (await exported(page, "history", "svg")).bytes.toString("utf8");
  check(hsvg.startsWith("<svg") && hsvg.includes("polyline"), "history SVG export");

  // 6. Overlay of a second run in the history plot.
  const oPoints = (await api(`/v1/runs/${enc(cfg.other)}/layers/${enc(pick)}/history?metrics=alpha`)).points;
  await page.selectOption("#overlay-select", cfg.other);
  const oOk = await waitFor(page, (n) => document.querySelectorAll("#history-svg circle.point.overlay").length === Number(n), oPoints.length);
  const oVals = await page.locator("#history-svg circle.point.overlay").evaluateAll((c) => c.map((x) => Number(x.getAttribute("data-value"))));
  check(oOk && oVals.every((v, i) => close(v, oPoints[i].alpha)), `overlay of ${cfg.other}: ${oVals.length} points with the API's alphas`);
  const ocsv = csvRows((await exported(page, "history", "csv")).bytes);
  check(ocsv[0].join(",") === `step,${llama},${cfg.other}`, `history CSV with the overlay has a column per run (${ocsv[0]})`);
  await page.selectOption("#overlay-select", "");

  // 7. Summary plot: mean and weighted mean over steps.
  if (without.has("summary")) {
    skip("summary plot: this server has no /v1/runs/{run}/summary/history");
  } else {
    const sh = await api(`/v1/runs/${enc(llama)}/summary/history?metric=alpha`);
    const sOk = await waitFor(page, (n) => document.querySelectorAll("#summary-svg circle.point").length === Number(n) * 2, sh.points.length);
    const means = await page.locator("#summary-svg circle.point.main").evaluateAll((c) => c.map((x) => Number(x.getAttribute("data-value"))));
    const wmeans = await page.locator("#summary-svg circle.point.weighted").evaluateAll((c) => c.map((x) => Number(x.getAttribute("data-value"))));
    check(sOk && sh.points.length === llamaSteps.length && means.every((v, i) => close(v, sh.points[i].mean)) &&
      wmeans.every((v, i) => close(v, sh.points[i].weighted_mean)), `summary plot: ${means.length} means and weighted means as the API gives`);
    const scsv = csvRows((await exported(page, "summary", "csv")).bytes);
    check(scsv.length === sh.points.length + 1 && scsv[0].join(",") === "step,n_layers,mean,weighted_mean", "summary CSV export");
    const spng = await exported(page, "summary", "png");
    check(spng.bytes.subarray(1, 4).toString() === "PNG", `summary PNG ${spng.name}`);
  }

  // 8. Heatmap view of the same run: one cell per analysed layer and step.
  await page.selectOption("#view-select", "heatmap");
  const hm = await api(`/v1/runs/${enc(llama)}/history?metric=alpha&page_size=1000`);
  const hmCells = hm.layers.filter((l) => l.values.some((v) => v !== null)).length * hm.steps.length;
  const hmOk = await waitFor(page, (n) => document.querySelectorAll("#heatmap-svg rect.cell").length === Number(n), hmCells);
  check(hmOk, `heatmap of ${llama}: ${hmCells} cells (224 layers x ${hm.steps.length} steps)`);
  const hmcsv = csvRows((await exported(page, "view", "csv")).bytes);
  check(hmcsv.length === 225 && hmcsv[0].length === hm.steps.length + 1, `heatmap CSV: ${hmcsv.length - 1} layers x ${hmcsv[0].length - 1} steps`);
  await page.screenshot({ path: `${cfg.shots}/dashboard-heatmap.png` });

  // 9. Delta view via /v1/compare: step A vs the previous step, then vs another run.
  if (without.has("compare")) {
    skip("delta view: this server has no /v1/compare");
  } else {
    await page.selectOption("#view-select", "delta");
    const prev = llamaSteps[llamaSteps.length - 2];
    const cmp = await api(`/v1/compare?a=${enc(`${llama}:${lastStep}`)}&b=${enc(`${llama}:${prev}`)}`);
    const dOk = await waitFor(page, (n) => document.querySelectorAll("#delta-svg rect.dcell").length === Number(n), cmp.layers.length);
    const ds = await page.locator("#delta-svg rect.dcell").evaluateAll((r) => r.map((x) => [x.getAttribute("data-key"), x.getAttribute("data-delta")]));
    const want = new Map(cmp.layers.map((l) => [l.key, l.delta.alpha]));
    const dBad = ds.filter(([k, d]) => !want.has(k) || !close(num(d), want.get(k))).length;
    check(dOk && ds.length === 224 && dBad === 0, `delta ${llama}:${lastStep} vs :${prev}: ${ds.length} cells, ${dBad} differ from /v1/compare`);
    await checkContrast(page, "delta view");
    await page.screenshot({ path: `${cfg.shots}/dashboard-compare.png` });
    await page.selectOption("#cmp-run", cfg.other);
    const oLast = (await api(`/v1/runs/${enc(cfg.other)}`)).latest_summary?.step ??
      runs.find((r) => r.name === cfg.other).last_step;
    const cmp2 = await api(`/v1/compare?a=${enc(`${llama}:${lastStep}`)}&b=${enc(`${cfg.other}:${oLast}`)}`);
    const want2 = new Map(cmp2.layers.map((l) => [l.key, l.delta.alpha]));
    const d2 = await waitFor(page, (w) => {
      const c = [...document.querySelectorAll("#delta-svg rect.dcell")];
      return c.length > 0 && c.every((x) => x.getAttribute("data-delta") === "" ? w[x.getAttribute("data-key")] === null
        : Math.abs(Number(x.getAttribute("data-delta")) - w[x.getAttribute("data-key")]) <= 1e-9 * Math.max(1, Math.abs(w[x.getAttribute("data-key")])));
    }, Object.fromEntries(want2));
    check(d2, `delta against ${cfg.other}:${oLast} shows /v1/compare's ${want2.size} deltas`);
    const dcsv = await exported(page, "view", "csv");
    check(/delta-alpha\.csv$/.test(dcsv.name) && csvRows(dcsv.bytes).length === cmp2.layers.length + 1, `delta CSV ${dcsv.name}`);
  }
  await page.selectOption("#view-select", "grid");

  // 10. Small runs and presets (the heatmap view, the preset selector).
  const m = cfg.mlp;
  await page.selectOption("#run-select", m.run);
  const mOk = await waitFor(page, (n) => document.querySelectorAll("#heatmap-svg rect.cell").length === Number(n), m.cells);
  check(mOk, `${m.run} (no blocks, few layers): the heatmap view with ${m.cells} cells`);
  check(await page.locator("#preset-box").isHidden(), "one preset in the run: no preset selector");
  await page.locator(`#heatmap-svg text.row-label[data-layer="${m.layer}"]`).click();
  check(await waitFor(page, ([l, n]) => {
    const s = document.querySelector("#history-svg");
    return s && s.getAttribute("data-layer") === l && s.querySelectorAll("circle.point.main").length === Number(n);
  }, [m.layer, m.points]), `clicking ${m.layer} shows its ${m.points} points`);
  // 10b. The delta view of a run without blocks is a list, one row per matched layer.
  if (!without.has("compare")) {
    const ms = (await api(`/v1/runs/${enc(m.run)}/history?metric=alpha`)).steps;
    const mc = await api(`/v1/compare?a=${enc(`${m.run}:${ms[ms.length - 1]}`)}&b=${enc(`${m.run}:${ms[ms.length - 2]}`)}`);
    await page.selectOption("#view-select", "delta");
    const lOk = await waitFor(page, (w) => {
      const c = [...document.querySelectorAll("#delta-svg rect.dcell")];
      const rows = document.querySelectorAll("#delta-svg text.row-label").length;
      return rows === c.length && c.length === Object.keys(w).length && c.every((x) => (x.getAttribute("data-delta") === "" ? w[x.getAttribute("data-key")] === null
        : Math.abs(Number(x.getAttribute("data-delta")) - w[x.getAttribute("data-key")]) <= 1e-9 * Math.max(1, Math.abs(w[x.getAttribute("data-key")]))));
    }, Object.fromEntries(mc.layers.map((l) => [l.key, l.delta.alpha])));
    check(lOk, `${m.run} delta view: a list of ${mc.layers.length} labelled rows with /v1/compare's deltas`);
    await checkContrast(page, "delta list");
    await page.selectOption("#view-select", "heatmap");
  }
  const x = cfg.mixed;
  await page.selectOption("#run-select", x.run);
  await page.waitForSelector("#preset-box:not([hidden])").catch(() => {});
  check(await page.locator("#preset-box").isVisible(), `${x.run} holds two presets: the preset selector shows`);
  check(await waitFor(page, (n) => document.querySelectorAll("#heatmap-svg rect.cell").length === Number(n), x.cells),
    `${x.run} on its own preset: ${x.cells} cells`);
  await page.selectOption("#preset-select", x.preset2);
  check(await waitFor(page, (n) => document.querySelectorAll("#heatmap-svg rect.cell").length === Number(n), x.cells2),
    `${x.preset2} picked: ${x.cells2} cells`);
  check(page.url().includes(`preset=${x.preset2}`), "the URL keeps the preset");

  // 11. Unknown run or layer in the URL: a message, not another run.
  const p2 = await newPage(1366, 768);
  await p2.goto(`${cfg.url}#run=nope`);
  const msgOk = await waitFor(p2, () => !document.querySelector("#message").hidden);
  const msg = await p2.locator("#message").textContent();
  check(msgOk && msg.includes("no run 'nope'") && runs.every((r) => msg.includes(r.name)), `unknown run: "${msg}"`);
  check(await p2.locator("#view rect.cell").count() === 0, "unknown run: no other run's cells are shown");
  await p2.goto(`${cfg.url}#run=${enc(llama)}&layer=zzz`);
  await p2.reload();
  const lOk = await waitFor(p2, () => !document.querySelector("#layer-msg").hidden);
  const lmsg = await p2.locator("#layer-msg").textContent();
  check(lOk && lmsg.includes("no layer 'zzz'") && lmsg.includes(llama), `unknown layer: "${lmsg}"`);
  check(await p2.locator("#grid-svg rect.cell").count() === 224, "unknown layer: the run itself is still shown");
  await p2.close();

  // 12. A narrow screen: no horizontal page scroll, every control reachable.
  const p3 = await newPage(390, 844);
  await p3.goto(`${cfg.url}#run=${enc(llama)}`);
  await waitFor(p3, () => document.querySelectorAll("#grid-svg rect.cell").length === 224);
  await waitFor(p3, () => document.querySelector("#history-svg"));
  const sw = await p3.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(sw[0] <= sw[1], `390 px wide: page ${sw[0]} px wide, no horizontal scroll`);
  let unreachable = [];
  for (const id of ["run-select", "metric-select", "view-select", "step-slider", "overlay-select"]) {
    const loc = p3.locator(`#${id}`);
    await loc.scrollIntoViewIfNeeded();
    const b = await loc.boundingBox();
    if (!b || b.x < 0 || b.x + b.width > 390 || b.width < 20) unreachable.push(id);
  }
  check(unreachable.length === 0, `390 px wide: every control on screen (${unreachable.join(", ") || "all"})`);
  await p3.evaluate(() => window.scrollTo(0, 0));
  await p3.screenshot({ path: `${cfg.shots}/dashboard-narrow.png` });
  await p3.close();

  // Polling: a few more polls must not have produced console errors either.
  await page.waitForTimeout(1500);
  seen = [...errors];
} catch (e) {
  seen = [...errors];
  check(false, `driver: ${e.message}`);
} finally {
  await browser.close();
}
check(seen.length === 0, seen.length ? `console: ${seen.join(" | ")}` : "the console stayed clean");
process.exit(failed ? 1 : 0);
