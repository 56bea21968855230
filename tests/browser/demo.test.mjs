// Opens /demo as two users in headless Chromium, sends a message from one and sees it on the
// other's page, over WebSocket and over long-poll (?transport=poll). Screenshots go to
// target/browser/. Needs CONFAB_URL (a running confab) and Debian's /usr/bin/chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE, KEY, SHOTS, launch, createUser } from "./helpers.mjs";

let browser;

before(async () => { browser = await launch(); });

after(async () => { await browser?.close(); });

async function page(query) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const p = await ctx.newPage();
  p.on("pageerror", (e) => { throw e; });
  await p.goto(`${BASE}/demo${query}`);
  return p;
}

async function conversation(transport) {
  const q = transport === "poll" ? "?transport=poll" : "";
  const alice = await createUser();
  // Alice signs in with her token; Bob signs in with the connection string, so the page
  // creates his identity itself (WebCrypto HMAC).
  const a = await page(q);
  await a.fill("#token", alice.token);
  await a.click("#token-form button");
  const b = await page(q);
  await b.fill("#cs", `endpoint=${BASE}/;accesskey=${KEY}`);
  await b.click("#cs-form button");
  const wantStatus = transport === "poll" ? "long-poll: connected" : "websocket: connected";
  for (const p of [a, b]) await p.waitForSelector(`#status[data-state=online]`);
  assert.equal(await a.textContent("#status"), wantStatus);
  assert.equal(await b.textContent("#status"), wantStatus);
  const bobId = (await b.textContent("#my-id")).trim();
  assert.match(bobId, /^8:acs:/);

  await a.fill("#new-topic", `demo over ${transport}`);
  await a.fill("#new-members", bobId);
  await a.click("#new-thread button");
  // Bob's thread list fills from the chatThreadCreated event.
  const item = b.locator("#threads li", { hasText: `demo over ${transport}` });
  await item.waitFor();
  await item.click();

  const text = `hello over ${transport} 👋🏽 👨‍👩‍👧`;
  await a.fill("#text", text);
  await a.click("#composer button");
  await b.locator("#messages li", { hasText: text }).waitFor({ timeout: 10000 });
  // Bob replies; Alice sees it too.
  await b.fill("#text", "hi Alice");
  await b.click("#composer button");
  await a.locator("#messages li", { hasText: "hi Alice" }).waitFor({ timeout: 10000 });

  await a.screenshot({ path: `${SHOTS}demo-${transport}-alice.png` });
  await b.screenshot({ path: `${SHOTS}demo-${transport}-bob.png` });
  await a.context().close();
  await b.context().close();
}

test("two users chat on /demo over WebSocket", async () => { await conversation("websocket"); });
test("two users chat on /demo over long-poll (?transport=poll)", async () => { await conversation("poll"); });
