// dashboard.mjs -- the dashboard in Debian's headless Chromium, driven by playwright-core.
//
// node tests/browser/dashboard.mjs URL RUN CELLS LAYER POINTS SCREENSHOT [RUN2 CELLS2 PRESET2 CELLS3]
//   URL         the server, e.g. http://127.0.0.1:PORT/
//   RUN         the run to pick in the run selector (one preset: no preset selector)
//   CELLS       expected heatmap cells (analysed layers x steps, from the API)
//   LAYER       a layer to click; its history chart must show POINTS points
//   SCREENSHOT  PNG to write (1366x768 viewport)
//   RUN2        a run holding two presets: the preset selector shows, on its
//               default preset the heatmap has CELLS2 cells; picking PRESET2
//               gives CELLS3 cells
// Prints one "ok ..." or "FAIL ..." line per check and exits 1 on any failure;
// a console error or an uncaught page error is a failure.
import { chromium } from "playwright-core";

const [url, run, cells, layer, points, shot, run2, cells2, preset2, cells3] = process.argv.slice(2);
if (!shot) {
  console.error("usage: node dashboard.mjs URL RUN CELLS LAYER POINTS SCREENSHOT");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok" : "FAIL"} ${what}`);
  if (!ok) failed++;
};

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
let seen = []; // errors up to the screenshot (closing aborts in-flight polls)
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.setDefaultTimeout(15000);

  await page.goto(url);
  await page.waitForSelector(`#run-select option[value="${run}"]`, { state: "attached" });
  await page.selectOption("#run-select", run);
  await page.waitForFunction((n) => document.querySelectorAll("#heatmap rect.cell").length === Number(n), cells)
    .catch(() => {});
  const nCells = await page.locator("#heatmap rect.cell").count();
  check(nCells === Number(cells), `heatmap has ${nCells} cells, one per layer and step (want ${cells})`);
  const colours = await page.locator("#heatmap rect.cell").evaluateAll((r) => new Set(r.map((x) => x.getAttribute("fill"))).size);
  check(colours > 1, `cells are coloured by alpha (${colours} colours)`);
  const table = await page.locator("#latest-table tbody tr").count();
  check(table > 0, `latest-checkpoint table has ${table} rows`);
  check(await page.locator("#preset-box").isHidden(), "one preset in the run: no preset selector");

  await page.locator(`#heatmap text.row-label[data-layer="${layer}"]`).click();
  await page.waitForFunction(([l, n]) => {
    const s = document.querySelector("#history-svg");
    return s && s.getAttribute("data-layer") === l && s.querySelectorAll("circle.point").length === Number(n);
  }, [layer, points]).catch(() => {});
  const shown = await page.locator("#history-svg").getAttribute("data-layer").catch(() => null);
  const nPts = await page.locator("#history-svg circle.point").count();
  check(shown === layer, `clicking ${layer} shows its history (${shown})`);
  check(nPts === Number(points), `history chart has ${nPts} points (want ${points})`);
  check(page.url().includes(`layer=${encodeURIComponent(layer)}`), "the URL keeps the selection");

  if (run2) {
    const waitCells = async (n) => {
      await page.waitForFunction((k) => document.querySelectorAll("#heatmap rect.cell").length === Number(k), n)
        .catch(() => {});
      return page.locator("#heatmap rect.cell").count();
    };
    await page.selectOption("#run-select", run2);
    await page.waitForSelector("#preset-box:not([hidden])").catch(() => {});
    check(await page.locator("#preset-box").isVisible(), `${run2} holds two presets: the preset selector shows`);
    const n2 = await waitCells(cells2);
    check(n2 === Number(cells2), `${run2} on its own preset: ${n2} cells (want ${cells2})`);
    const dflt = await page.locator("#preset-select").inputValue();
    check(dflt !== preset2, `the selector starts on the run's preset (${dflt})`);
    await page.selectOption("#preset-select", preset2);
    const n3 = await waitCells(cells3);
    check(n3 === Number(cells3), `${preset2} picked: ${n3} cells (want ${cells3})`);
    check(page.url().includes(`preset=${preset2}`), "the URL keeps the preset");
    await page.selectOption("#run-select", run);
    await waitCells(cells);
  }

  // Polling: a second poll must not have produced console errors either.
  await page.waitForTimeout(1500);
  await page.screenshot({ path: shot });
  seen = [...errors];
  check(true, `screenshot ${shot}`);
} catch (e) {
  seen = [...errors];
  check(false, `driver: ${e.message}`);
} finally {
  await browser.close();
}
check(seen.length === 0, seen.length ? `console: ${seen.join(" | ")}` : "the console stayed clean");
process.exit(failed ? 1 : 0);
