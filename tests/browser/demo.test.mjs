// Opens /demo as two users in headless Chromium, sends a message from one and sees it on the
// other's page, over WebSocket and over long-poll (?transport=poll). Screenshots go to
// target/browser/. Needs CONFAB_URL (a running confab) and Debian's /usr/bin/chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE, KEY, SHOTS, launch, createUser, rest } from "./helpers.mjs";

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
  await a.click("#composer button[type=submit]");
  await b.locator("#messages li", { hasText: text }).waitFor({ timeout: 10000 });
  // Bob replies; Alice sees it too.
  await b.fill("#text", "hi Alice");
  await b.click("#composer button[type=submit]");
  await a.locator("#messages li", { hasText: "hi Alice" }).waitFor({ timeout: 10000 });

  await a.screenshot({ path: `${SHOTS}demo-${transport}-alice.png` });
  await b.screenshot({ path: `${SHOTS}demo-${transport}-bob.png` });
  await a.context().close();
  await b.context().close();
}

test("two users chat on /demo over WebSocket", async () => { await conversation("websocket"); });
test("two users chat on /demo over long-poll (?transport=poll)", async () => { await conversation("poll"); });

/// Holds the page's `nth` GET of the list at `path` until `release()`. By default confab is asked
/// at once and only its answer held (`read` resolves once it is read): the list the page gets is
/// older than the events that come meanwhile. With `{ asking: true }` the request itself waits
/// (`read` resolves once the page asks): the list is read after what the test does meanwhile.
async function holdRead(p, path, nth, { asking = false } = {}) {
  let release, listed;
  const gate = new Promise((r) => { release = r; });
  const read = new Promise((r) => { listed = r; });
  let count = 0;
  await p.route((url) => url.pathname.endsWith(path) && url.searchParams.has("maxPageSize"), async (route) => {
    if (route.request().method() !== "GET" || ++count !== nth) return route.continue();
    if (asking) {
      listed();
      await gate;
      return route.continue();
    }
    const response = await route.fetch();
    listed();
    await gate;
    await route.fulfill({ response });
  });
  return { read, release };
}

test("what changes while a list is loading stays on /demo: a new thread, a new message", async () => {
  const alice = await createUser();
  const bob = await createUser();
  const p = await page("");
  // Bob signs in: the page lists his threads, opens its real-time session and, once connected,
  // lists them again (nothing to resume from). That second list is read before Alice's thread
  // exists and reaches the page after the thread's chatThreadCreated.
  const threads = await holdRead(p, "/chat/threads", 2);
  await p.fill("#token", bob.token);
  await p.click("#token-form button");
  await threads.read;
  const created = await rest(alice, "POST", "/chat/threads", {
    topic: "made while loading",
    participants: [{ communicationIdentifier: { rawId: alice.id } }, { communicationIdentifier: { rawId: bob.id } }],
  });
  const thread = encodeURIComponent(created.chatThread.id);
  const item = p.locator("#threads li", { hasText: "made while loading" });
  await item.waitFor(); // from chatThreadCreated
  threads.release();
  // The old list arrives now. A message afterwards counts as unread only on a thread in the list.
  await rest(alice, "POST", `/chat/threads/${thread}/messages`, { content: "first", senderDisplayName: "Alice" });
  await p.waitForSelector('#threads li[data-unread="1"]', { timeout: 10000 });
  assert.equal(await item.count(), 1);

  // Bob opens the thread; its messages are read before Alice's second message.
  const messages = await holdRead(p, "/messages", 1);
  await item.click();
  await messages.read;
  await rest(alice, "POST", `/chat/threads/${thread}/messages`, { content: "second", senderDisplayName: "Alice" });
  await p.locator("#messages li", { hasText: "second" }).waitFor(); // from chatMessageReceived
  messages.release();
  await rest(alice, "POST", `/chat/threads/${thread}/messages`, { content: "third", senderDisplayName: "Alice" });
  await p.locator("#messages li", { hasText: "third" }).waitFor({ timeout: 10000 });
  // The list read again after the load that "second" overtook brings "first"; each message is
  // there once, in order, "second" among them.
  await p.locator("#messages li", { hasText: "first" }).waitFor({ timeout: 10000 });
  assert.deepEqual(await p.locator("#messages li:not(.system) .body").allTextContents(), ["first", "second", "third"]);
  await p.context().close();
});

test("a message the thread list already counts is not counted again when its event comes after the list", async () => {
  const alice = await createUser();
  const bob = await createUser();
  const created = await rest(alice, "POST", "/chat/threads", {
    topic: "counted once",
    participants: [{ communicationIdentifier: { rawId: alice.id } }, { communicationIdentifier: { rawId: bob.id } }],
  });
  const thread = encodeURIComponent(created.chatThread.id);
  const p = await page("");
  // Messages reach the page over its WebSocket only when the test lets them.
  const held = [];
  let holding = true, client;
  await p.routeWebSocket(/\/realtime\?/, (ws) => {
    client = ws;
    const server = ws.connectToServer();
    server.onMessage((m) => {
      if (holding && JSON.parse(m).type === "chatMessageReceived") held.push(m);
      else ws.send(m);
    });
  });
  // Bob signs in: once his session is open the page lists his threads again (nothing to resume
  // from). That list is asked for only after Alice's message is committed, so it counts the
  // message; the message's event reaches the page after the list.
  const threads = await holdRead(p, "/chat/threads", 2, { asking: true });
  await p.fill("#token", bob.token);
  await p.click("#token-form button");
  await threads.read;
  await rest(alice, "POST", `/chat/threads/${thread}/messages`, { content: "one", senderDisplayName: "Alice" });
  threads.release();
  const item = p.locator("#threads li", { hasText: "counted once" });
  await p.waitForSelector('#threads li[data-unread="1"]', { timeout: 10000 }); // from the list
  for (let waited = 0; held.length === 0; waited += 10) { // the event, held on its way
    assert.ok(waited < 10000, "the message's event reached the page's WebSocket");
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(JSON.parse(held[0]).data.message, "one");
  holding = false;
  for (const m of held.splice(0)) client.send(m);
  // A second message after the late event: the badge counts two, not three.
  await rest(alice, "POST", `/chat/threads/${thread}/messages`, { content: "two", senderDisplayName: "Alice" });
  await item.locator(".preview", { hasText: "Alice: two" }).waitFor({ timeout: 10000 });
  assert.equal(await item.getAttribute("data-unread"), "2");
  assert.equal(await item.locator(".badge").textContent(), "2");
  await p.context().close();
});

test("signed out, /demo shows only the sign-in card", async () => {
  const p = await page("");
  assert.ok(await p.isVisible("#signin"));
  for (const sel of ["#app", "#threads", "#new-thread", "#add-member", "#composer", "#lang-picker"]) {
    assert.equal(await p.isVisible(sel), false, `${sel} is hidden before sign-in`);
  }
  await p.screenshot({ path: `${SHOTS}demo-signed-out.png` });
  await p.context().close();
});

test("with no translator and no transcriber, /demo says so and drops those controls", async () => {
  const alice = await createUser();
  const p = await page("");
  await p.fill("#token", alice.token);
  await p.click("#token-form button");
  await p.waitForSelector("#status[data-state=online]");
  await p.fill("#new-topic", "extensions off");
  await p.click("#new-thread button");
  await p.fill("#text", "hello there");
  await p.click("#composer button[type=submit]");
  const msg = p.locator("#messages li", { hasText: "hello there" });
  await msg.waitFor();
  await msg.locator("button.translate").click();
  await p.waitForFunction(() => document.getElementById("compose-status").textContent === "Translation is off on this server.");
  assert.equal(await p.locator("button.translate").count(), 0);
  // What the microphone button does with a recording, without a microphone in this browser.
  await p.evaluate(() => transcribe(new Blob([new Uint8Array(64)], { type: "audio/wav" })));
  assert.equal(await p.textContent("#compose-status"), "Speech to text is off on this server.");
  assert.equal(await p.isVisible("#mic"), false);
  await p.context().close();
});
