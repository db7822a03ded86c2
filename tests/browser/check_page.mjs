// Opens one built page of the book in headless Chromium and reports, as one
// JSON line: how many figures plotly drew, every console error and page
// error, and every request that left the machine (the book must work
// offline, so there should be none).
//
// usage: node check_page.mjs file:///.../chapters/php_fpm.html
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const PAGE_TIMEOUT_MS = 30000;

const url = process.argv[2];
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // nothing may leave the machine: any attempt fails instead of hanging
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  ],
});
const report = { url, consoleErrors: [], pageErrors: [], externalRequests: [] };
try {
  const page = await browser.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error") report.consoleErrors.push(msg.text());
  });
  page.on("pageerror", (error) => report.pageErrors.push(String(error)));
  page.on("request", (request) => {
    if (!request.url().startsWith("file://") && !request.url().startsWith("data:")) {
      report.externalRequests.push(request.url());
    }
  });
  await page.goto(url, { waitUntil: "load", timeout: PAGE_TIMEOUT_MS });
  await page.waitForTimeout(1500); // plotly draws after load
  report.figures = await page.locator("figure.rewrite-lab-figure").count();
  report.drawn = await page
    .locator("figure.rewrite-lab-figure .js-plotly-plot .main-svg")
    .evaluateAll((nodes) => new Set(nodes.map((n) => n.closest("figure"))).size);
  report.panelNotes = await page.locator(".rewrite-lab-panel").count();
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
