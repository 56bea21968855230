// Logs in to the admin dashboard in headless Chromium after a short load and saves a
// screenshot of the Overview (target/browser/dashboard-overview.png). Needs CONFAB_URL,
// CONFAB_ADMIN_URL and a confab sampling often (--dashboard-sample-interval 1s).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE, ADMIN, KEY, SHOTS, launch, createUser } from "./helpers.mjs";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/// A few seconds of chat traffic so that the charts have points.
async function load(seconds) {
  const t = (await createUser()).token;
  const api = (method, path, body) => fetch(`${BASE}${path}${path.includes("?") ? "&" : "?"}api-version=2024-03-07`, {
    method, headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });
  const thread = (await (await api("POST", "/chat/threads", { topic: "load" })).json()).chatThread.id;
  const until = Date.now() + seconds * 1000;
  let n = 0;
  while (Date.now() < until) {
    await api("POST", `/chat/threads/${encodeURIComponent(thread)}/messages`, { content: `load ${n++}` });
    if (n % 10 === 0) await api("GET", `/chat/threads/${encodeURIComponent(thread)}/messages?maxPageSize=20`);
  }
  return n;
}

test("the dashboard overview shows charts after a short load", async () => {
  const sent = await load(4);
  assert.ok(sent > 10, `${sent} messages sent`);
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${ADMIN}/`);
  assert.match(page.url(), /\/login$/);
  await page.fill("input[name=key]", KEY);
  await page.click("button[type=submit]");
  await page.waitForURL(`${ADMIN}/`);
  const charts = await page.locator("svg.chart polyline").count();
  assert.ok(charts >= 6, `${charts} chart lines`);
  await page.screenshot({ path: `${SHOTS}dashboard-overview.png`, fullPage: true });
  await ctx.close();
});
