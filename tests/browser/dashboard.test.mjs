// Logs in to the admin dashboard in headless Chromium after a short load and saves a
// screenshot of the Overview (target/browser/dashboard-overview.png). Needs CONFAB_URL,
// CONFAB_ADMIN_URL and a confab sampling often (--dashboard-sample-interval 1s).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const BASE = process.env.CONFAB_URL ?? "http://127.0.0.1:8080";
const ADMIN = process.env.CONFAB_ADMIN_URL ?? "http://127.0.0.1:8090";
const KEY = process.env.CONFAB_ACCESS_KEY
  ?? "GiHYTbr7Hthx7jH3sJUozAx8YxlDVfFRbDNOPvbIzRmDiWvlMHr1Wy90vwSk1VbWlMqhqOfmSHJbHCuIImtqrA==";
const SHOTS = new URL("../../target/browser/", import.meta.url).pathname;

let browser;
before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
});
after(async () => { await browser?.close(); });

async function token() {
  const url = new URL(`/identities?api-version=2023-10-01`, BASE);
  const body = JSON.stringify({ createTokenWithScopes: ["chat"] });
  const date = new Date().toUTCString();
  const hash = createHash("sha256").update(body).digest("base64");
  const sig = createHmac("sha256", Buffer.from(KEY, "base64"))
    .update(`POST\n${url.pathname}${url.search}\n${date};${url.host};${hash}`).digest("base64");
  const res = await fetch(url, {
    method: "POST", body,
    headers: { "content-type": "application/json", "x-ms-date": date, "x-ms-content-sha256": hash,
      authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${sig}` },
  });
  return (await res.json()).accessToken.token;
}

/// A few seconds of chat traffic so that the charts have points.
async function load(seconds) {
  const t = await token();
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
