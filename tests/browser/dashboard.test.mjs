// Logs in to the admin dashboard in headless Chromium after a short load and saves a
// screenshot of the Overview (target/browser/dashboard-overview.png), then drives the Webhooks
// page's replay. Needs CONFAB_URL, CONFAB_ADMIN_URL and a confab sampling often
// (--dashboard-sample-interval 1s) that may deliver to loopback (--webhook-allow-private).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { BASE, ADMIN, KEY, SHOTS, launch, createUser, signed } from "./helpers.mjs";

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
  // the sentiment panel: a thread of angry messages tops "most negative threads"
  const t = (await createUser()).token;
  const chat = (method, path, body) => fetch(`${BASE}${path}?api-version=2024-03-07`, {
    method, headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });
  const angry = (await (await chat("POST", "/chat/threads", { topic: "Complaints desk" })).json()).chatThread.id;
  // five negative messages: more than any thread of the earlier suites on this confab (a tie
  // is ordered by thread id, which is random)
  for (const content of ["This is terrible, I hate it.", "Awful service, I am furious.", "Worst day ever, so angry.",
    "This is horrible and broken.", "I hate waiting, it is awful.", "Thanks, that helps!"]) {
    await chat("POST", `/chat/threads/${encodeURIComponent(angry)}/messages`, { content });
  }
  await page.click("nav a[href='/threads']");
  await page.waitForURL(`${ADMIN}/threads`);
  const first = page.locator("#negative-threads tbody tr").first();
  assert.equal(await first.locator("td").nth(0).innerText(), "Complaints desk");
  assert.equal(await first.locator("td").nth(1).innerText(), "5");
  // the busiest threads are named by topic: the load thread leads them
  assert.equal(await page.locator("#busiest-threads tbody tr").first().locator("td").first().innerText(), "load");
  await page.screenshot({ path: `${SHOTS}dashboard-threads-sentiment.png`, fullPage: true });
  // a standalone node's Cluster page says so
  await page.click("nav a[href='/cluster']");
  await page.waitForURL(`${ADMIN}/cluster`);
  assert.match(await page.locator("#standalone").innerText(), /standalone/);
  // Requests: a workload of three 404s is in the route's 4xx column and in the 4xx list, not
  // the 5xx one, each request id leading to how to find it in the log
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const r = await chat("GET", `/chat/threads/${encodeURIComponent("19:" + "0".repeat(31) + i + "@thread.v2")}`);
    assert.equal(r.status, 404);
    ids.push(r.headers.get("x-ms-request-id"));
  }
  await page.click("nav a[href='/requests']");
  await page.waitForURL(`${ADMIN}/requests`);
  const cell = await page.locator("table").first().locator("tbody tr").evaluateAll((rows) => {
    const r = rows.map((tr) => [...tr.cells].map((td) => td.innerText.trim()))
      .find((c) => c[0] === "/chat/threads/{t}" && c[1] === "GET");
    return r ? r[3] : "";
  });
  const fourxx = Number(cell.split(" ")[0]);
  assert.ok(fourxx >= 3, `GET /chat/threads/{t} 4xx in the window: ${fourxx}`);
  await page.click("a[href='/requests?class=4xx']");
  await page.waitForURL(`${ADMIN}/requests?class=4xx`);
  const listed = await page.locator("table").nth(1).innerText();
  for (const id of ids) assert.ok(listed.includes(id), `request ${id} in the 4xx list`);
  await page.screenshot({ path: `${SHOTS}dashboard-requests.png`, fullPage: true });
  await page.goto(`${ADMIN}/requests?class=5xx`);
  const fivexx = await page.locator("table").nth(1).innerText();
  for (const id of ids) assert.ok(!fivexx.includes(id), `request ${id} not in the 5xx list`);
  await page.goto(`${ADMIN}/requests?class=4xx`);
  await page.click(`a:has-text("${ids[0]}")`);
  assert.match(await page.locator(".hint").innerText(), new RegExp(`grep ${ids[0]} confab.log`));
  await ctx.close();
});

/// A webhook endpoint on loopback: answers the handshake, then `status` for deliveries.
async function receiver() {
  const got = [];
  const r = { status: 400, got };
  r.server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      const events = JSON.parse(body || "[]");
      if (req.headers["aeg-event-type"] === "SubscriptionValidation") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ validationResponse: events[0].data.validationCode }));
        return;
      }
      got.push({ status: r.status, event: events[0] });
      res.writeHead(r.status);
      res.end();
    });
  });
  await new Promise((ok) => r.server.listen(0, "127.0.0.1", ok));
  r.url = `http://127.0.0.1:${r.server.address().port}/hook`;
  return r;
}

async function until(what, cond) {
  const end = Date.now() + 15000;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

test("the webhooks page lists a dead letter and its Replay button delivers it", async () => {
  const rx = await receiver();
  try {
    const put = await signed("PUT", "/eventSubscriptions/browser-hook", JSON.stringify({
      endpointUrl: rx.url, includedEventTypes: ["ChatMessageReceivedInThread"] }));
    assert.equal(put.status, 201, await put.text());
    const t = (await createUser()).token;
    const api = (method, path, body) => fetch(`${BASE}${path}?api-version=2024-03-07`, {
      method, headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
      body: body && JSON.stringify(body) });
    const thread = (await (await api("POST", "/chat/threads", { topic: "hooks" })).json()).chatThread.id;
    const sent = await api("POST", `/chat/threads/${encodeURIComponent(thread)}/messages`, { content: "bounce" });
    assert.equal(sent.status, 201);
    await until("the 400 answer", () => rx.got.length === 1);
    const id = rx.got[0].event.id;

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    await page.goto(`${ADMIN}/login`);
    await page.fill("input[name=key]", KEY);
    await page.click("button[type=submit]");
    await page.waitForURL(`${ADMIN}/`);
    await page.click("nav a[href='/webhooks']");
    await page.waitForURL(`${ADMIN}/webhooks`);
    assert.match(await page.locator("#subscriptions").innerText(), /browser-hook/);
    const dead = page.locator("#dead-letters tbody tr", { hasText: id });
    await until("the dead letter row", async () => {
      if (await dead.count() === 1) return true;
      await page.reload();
      return false;
    });
    assert.match(await dead.innerText(), /NonRetryableStatus/);
    assert.match(await page.locator("#deliveries tbody tr", { hasText: id }).innerText(), /DeadLettered\s+1\s+400/);

    // Replay without the CSRF token is refused; with the page's button it is re-queued.
    const forged = await page.request.post(`${ADMIN}/webhooks/replay`,
      { form: { subscription: "browser-hook", id } });
    assert.equal(forged.status(), 403);
    rx.status = 200;
    await dead.locator("button", { hasText: "Replay" }).click();
    await page.waitForURL(/\/webhooks\?replayed=/);
    assert.match(await page.locator("#notice").innerText(), new RegExp(id));
    await until("the replayed delivery", () => rx.got.length === 2);
    assert.equal(rx.got[1].event.id, id, "same webhook id");
    await page.reload();
    await until("the Delivered row", async () => {
      await page.reload();
      return /Delivered/.test(await page.locator("#deliveries tbody tr", { hasText: id }).innerText());
    });
    await page.screenshot({ path: `${SHOTS}dashboard-webhooks.png`, fullPage: true });
    await ctx.close();
  } finally {
    rx.server.close();
    await signed("DELETE", "/eventSubscriptions/browser-hook");
  }
});
