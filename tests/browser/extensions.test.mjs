// The demo page's use of confab's extensions (CONTRACT §10) in headless Chromium: unread badges and
// previews in the thread list (live, and cleared on the reader's other device), a sentiment mark
// per message, "translate" per message, live translation from the language picker, and the
// microphone button (MediaRecorder → POST /speech:transcribe → compose box).
//
// It starts its own confab (CONFAB_BIN, by default target/debug/confab) pointed at stand-ins of a
// LibreTranslate server and an OpenAI-compatible transcriber served by this file, so that the
// real outbound HTTP path is used. Chromium's fake microphone feeds MediaRecorder.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { SHOTS, launch, createUser, startConfab, rest as restAt } from "./helpers.mjs";

let browser, confab, standIn;
const seen = { translate: [], speech: [] };

/// LibreTranslate (`POST /translate`) and OpenAI transcriptions (`POST /v1/audio/transcriptions`).
function startStandIn() {
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    res.setHeader("content-type", "application/json");
    if (req.method === "POST" && req.url.startsWith("/translate")) {
      const v = JSON.parse(body.toString());
      seen.translate.push(v);
      res.end(JSON.stringify({ translatedText: `«${v.target}» ${v.q}`, detectedLanguage: { language: "en", confidence: 93 } }));
    } else if (req.method === "POST" && req.url.startsWith("/v1/audio/transcriptions")) {
      seen.speech.push({ contentType: req.headers["content-type"], body });
      res.end(JSON.stringify({ text: "see you at the standup" }));
    } else {
      res.statusCode = 404;
      res.end("{}");
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

before(async () => {
  standIn = await startStandIn();
  const at = `http://127.0.0.1:${standIn.address().port}`;
  confab = await startConfab([
    "--translator-url", at, "--translator-kind", "libretranslate", "--translator-allow-private",
    "--speech-url", at, "--speech-kind", "openai", "--speech-allow-private",
  ]);
  browser = await launch(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]);
});

after(async () => {
  await browser?.close();
  await confab?.stop();
  standIn?.close();
});

function rest(user, method, path, body) {
  return restAt(user, method, path, body, confab.url);
}

async function signIn(user, query = "") {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  await ctx.grantPermissions(["microphone"], { origin: confab.url });
  const p = await ctx.newPage();
  p.on("pageerror", (e) => { throw e; });
  await p.goto(`${confab.url}/demo${query}`);
  await p.fill("#token", user.token);
  await p.click("#token-form button");
  await p.waitForSelector("#status[data-state=online]");
  return p;
}

test("unread badges, previews, sentiment, translation and speech on /demo", async () => {
  const alice = await createUser(confab.url);
  const bob = await createUser(confab.url);
  // Bob on two devices.
  const phone = await signIn(bob);
  const laptop = await signIn(bob);

  const created = await rest(alice, "POST", "/chat/threads", {
    topic: "launch plan",
    participants: [{ communicationIdentifier: { rawId: alice.id } }, { communicationIdentifier: { rawId: bob.id } }],
  });
  const thread = encodeURIComponent(created.chatThread.id);
  for (const p of [phone, laptop]) await p.locator("#threads li", { hasText: "launch plan" }).waitFor();

  await rest(alice, "POST", `/chat/threads/${thread}/messages`,
    { content: "I love this plan, great work everyone!", senderDisplayName: "Alice" });
  await rest(alice, "POST", `/chat/threads/${thread}/messages`, {
    type: "html", senderDisplayName: "Alice",
    content: "<p>The build is <b>terrible</b> &amp; broken,   I hate it</p>",
  });

  // Both devices count two unread messages and preview the newest as plain text, live.
  for (const p of [phone, laptop]) {
    const item = p.locator("#threads li", { hasText: "launch plan" });
    await p.waitForSelector('#threads li[data-unread="2"]');
    assert.equal((await item.locator(".badge").textContent()).trim(), "2");
    assert.equal(await item.locator(".preview").textContent(), "Alice: The build is terrible & broken, I hate it");
  }
  await phone.screenshot({ path: `${SHOTS}demo-extensions-inbox.png` });

  // Reading on the laptop clears the badge there and, through readMarkerUpdated, on the phone.
  await laptop.click("#threads li >> text=launch plan");
  await laptop.locator("#messages li", { hasText: "I hate it" }).waitFor();
  for (const p of [laptop, phone]) await p.waitForSelector('#threads li[data-unread="0"]', { timeout: 10000 });
  assert.equal(await phone.locator("#threads li .badge").count(), 0);

  // A sentiment mark per message.
  const loved = laptop.locator("#messages li", { hasText: "I love this plan" });
  const hated = laptop.locator("#messages li", { hasText: "I hate it" });
  assert.equal(await loved.locator(".sentiment").getAttribute("data-label"), "positive");
  assert.equal(await hated.locator(".sentiment").getAttribute("data-label"), "negative");

  // The language picker reopens the session with ?lang=de (from the same cursor).
  await laptop.selectOption("#lang", "de");
  await laptop.waitForSelector("#status[data-state=online][data-lang=de]");

  // "translate" on one message.
  await loved.locator("button.translate").click();
  await loved.locator(".translation").waitFor();
  assert.equal(await loved.locator(".translation").textContent(), "«de» I love this plan, great work everyone! (en → de)");
  assert.ok(seen.translate.some((r) => r.target === "de" && r.q === "I love this plan, great work everyone!"));

  // Live translation: a new message arrives, then its translation under it, unasked.
  await rest(alice, "POST", `/chat/threads/${thread}/messages`, { content: "Standup moves to ten tomorrow", senderDisplayName: "Alice" });
  const live = laptop.locator("#messages li", { hasText: "Standup moves to ten tomorrow" });
  await live.locator(".translation").waitFor({ timeout: 10000 });
  assert.equal(await live.locator(".translation").textContent(), "«de» Standup moves to ten tomorrow (en → de)");
  // The phone's session has no ?lang=: no translation is pushed to it.
  await phone.click("#threads li >> text=launch plan");
  await phone.locator("#messages li", { hasText: "Standup moves to ten tomorrow" }).waitFor();
  assert.equal(await phone.locator("#messages .translation").count(), 0);

  // The microphone: record a moment of Chromium's fake microphone, transcribe, fill the compose box.
  await laptop.fill("#text", "");
  await laptop.click("#mic");
  await laptop.waitForSelector("#mic.recording");
  await laptop.waitForTimeout(1200);
  await laptop.click("#mic");
  await laptop.waitForFunction(() => document.getElementById("text").value === "see you at the standup", null, { timeout: 10000 });
  assert.equal(seen.speech.length, 1);
  const upload = seen.speech[0];
  assert.match(upload.contentType, /^multipart\/form-data; boundary=/);
  const ebml = Buffer.from([0x1a, 0x45, 0xdf, 0xa3]); // a WebM recording from MediaRecorder
  assert.ok(upload.body.includes(ebml), "the transcriber got the recorded WebM audio");
  assert.ok(upload.body.includes(Buffer.from('name="language"\r\n\r\nde\r\n')), "the picked language is passed on");
  await laptop.click("#composer button[type=submit]");
  await phone.locator("#messages li", { hasText: "see you at the standup" }).waitFor();
  const sent = await rest(alice, "GET", `/chat/threads/${thread}/messages?maxPageSize=1`);
  assert.equal(sent.value[0].content.message, "see you at the standup");
  assert.equal(sent.value[0].senderCommunicationIdentifier.rawId, bob.id);

  await laptop.screenshot({ path: `${SHOTS}demo-extensions.png` });
  await phone.context().close();
  await laptop.context().close();
});

test("live translation over long-poll: the picker re-polls from the same cursor with ?lang=", async () => {
  const alice = await createUser(confab.url);
  const bob = await createUser(confab.url);
  const p = await signIn(bob, "?transport=poll");
  assert.equal(await p.textContent("#status"), "long-poll: connected");
  const created = await rest(alice, "POST", "/chat/threads", {
    topic: "polling", participants: [{ communicationIdentifier: { rawId: bob.id } }],
  });
  const thread = encodeURIComponent(created.chatThread.id);
  await p.click("#threads li >> text=polling");
  await p.selectOption("#lang", "fr");
  await p.waitForSelector("#status[data-state=online][data-lang=fr]");
  await rest(alice, "POST", `/chat/threads/${thread}/messages`, { content: "lunch is at noon" });
  const msg = p.locator("#messages li", { hasText: "lunch is at noon" });
  await msg.locator(".translation").waitFor({ timeout: 10000 });
  assert.equal(await msg.locator(".translation").textContent(), "«fr» lunch is at noon (en → fr)");
  await p.context().close();
});
