// The API explorer at /docs with the network off: every request that leaves the registry's origin
// is refused, and the page must still show the API's operations, with no Content-Security-Policy
// violation and no failed request.
// Usage: node check_docs.mjs BASE_URL   (AGENT_REGISTRY_NODE_PACKAGES: where playwright-core is)
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.AGENT_REGISTRY_NODE_PACKAGES, "package.json"));
const { chromium } = require("playwright-core");

const base = process.argv[2];
const origin = new URL(base).origin;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  const offsite = [];
  const problems = [];
  await page.route("**/*", (route) => {
    if (new URL(route.request().url()).origin === origin) return route.continue();
    offsite.push(route.request().url());
    return route.abort("internetdisconnected");
  });
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("requestfailed", (request) => problems.push(`failed: ${request.url()}`));
  await page.goto(`${base}/docs/`, { waitUntil: "networkidle" });
  await page.waitForSelector(".opblock", { timeout: 15000 });
  const operations = await page.locator(".opblock").count();
  const title = await page.locator(".info .title").first().innerText();
  if (operations < 20) throw new Error(`only ${operations} operations are shown`);
  if (offsite.length) throw new Error(`the page asked for other origins: ${offsite.join(", ")}`);
  if (problems.length) throw new Error(problems.join("\n"));
  console.log(`docs: ${operations} operations of "${title}" shown with the network off`);

  const landing = await browser.newPage();
  await landing.goto(`${base}/`);
  const link = await landing.locator('a[href="/docs"]').count();
  if (link !== 1) throw new Error("the landing page does not link the explorer");
  console.log("landing: links the explorer");
} finally {
  await browser.close();
}
console.log("ok");
