// The dashboard's Cluster page (contract §9.3) on a two-node cluster, in headless Chromium:
// both nodes are listed with their address, start time, live sessions, thread actors and last
// heartbeat, and a real-time session opened on the second node is counted there. Needs
// CONFAB_URL and CONFAB_ADMIN_URL (the first node), CONFAB_URL_2 (the second node) and
// CONFAB_NODES (the node ids, comma-separated, the first node's first).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE, ADMIN, KEY, SHOTS, launch, createUser } from "./helpers.mjs";

const SECOND = process.env.CONFAB_URL_2;
const NODES = (process.env.CONFAB_NODES ?? "").split(",").filter(Boolean);

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test("the Cluster page lists every live node and counts their sessions", async () => {
  assert.ok(SECOND && NODES.length === 2, "CONFAB_URL_2 and CONFAB_NODES are set");
  // a real-time session (SSE) on the second node, kept open during the test
  const user = await createUser();
  const sse = await fetch(`${SECOND}/realtime/sse?access_token=${user.token}`);
  assert.equal(sse.status, 200);
  const reader = sse.body.getReader();
  await reader.read(); // the connected frame

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  await page.goto(`${ADMIN}/login`);
  await page.fill("input[name=key]", KEY);
  await page.click("button[type=submit]");
  await page.waitForURL(`${ADMIN}/`);
  await page.click("nav a[href='/cluster']");
  await page.waitForURL(`${ADMIN}/cluster`);
  assert.equal(await page.locator("#this-node").innerText(), NODES[0]);
  assert.equal(await page.locator("#bus").innerText(), "connected");
  // heartbeats are every second: wait for the second node's count of its session
  const sessionsOf = (id) => page.locator(`tr[data-node='${id}'] td:nth-child(4)`);
  const end = Date.now() + 15000;
  for (;;) {
    const rows = await page.locator("#nodes tbody tr").count();
    if (rows === 2 && (await sessionsOf(NODES[1]).innerText()) === "1") break;
    if (Date.now() > end) throw new Error(`the page never showed 2 nodes with 1 session on ${NODES[1]}`);
    await new Promise((ok) => setTimeout(ok, 500));
    await page.reload();
  }
  assert.equal(await page.locator("#live-nodes").innerText(), "2");
  for (const id of NODES) {
    const row = page.locator(`tr[data-node='${id}']`);
    assert.match(await row.locator("td:nth-child(2)").innerText(), /^https?:\/\/127\.0\.0\.1:\d+$/);
    assert.match(await row.locator("td:nth-child(3)").innerText(), /^\d{4}-\d\d-\d\dT/);
    assert.match(await row.locator("td:nth-child(6)").innerText(), /s ago\)$/);
  }
  assert.match(await page.locator(`tr[data-node='${NODES[0]}'] td:first-child`).innerText(), /this node/);
  await page.screenshot({ path: `${SHOTS}dashboard-cluster.png`, fullPage: true });
  await reader.cancel();
  await ctx.close();
});
