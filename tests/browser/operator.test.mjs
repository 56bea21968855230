// The operator's view after a known workload, on a confab of its own (its registry counts
// nothing else): N messages by M users in K threads and a few requests answered 404. The
// Overview's totals equal N (last hour and since start), the Threads page names the topics and
// leads to each thread's page, Requests counts the 404s, and Usage's today row equals N, also
// after confab restarts (it reads the database). Screenshots of every page go to
// target/browser/operator-*.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { KEY, SHOTS, launch, createUser, startConfab } from "./helpers.mjs";

const M = 3;
const TOPICS = ["Quarterly planning", "Support desk", "Release train"];
const PER_USER_PER_THREAD = 4;
const N = M * TOPICS.length * PER_USER_PER_THREAD;
const NOT_FOUND = 5;

let browser;
let confab;
before(async () => {
  browser = await launch();
  confab = await startConfab(["--dashboard-sample-interval", "1s"]);
});
after(async () => {
  await browser?.close();
  await confab?.stop();
});

function client(base, token) {
  return (method, path, body) => fetch(`${base}${path}${path.includes("?") ? "&" : "?"}api-version=2024-03-07`, {
    method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });
}

async function signIn(page, admin) {
  await page.goto(`${admin}/login`);
  await page.fill("input[name=key]", KEY);
  await page.click("button[type=submit]");
  await page.waitForURL(`${admin}/`);
}

const today = () => new Date().toISOString().slice(0, 10);

/// The value of an Overview tile.
const tile = (page, id) => page.locator(`#${id} .value`).innerText();

test("the dashboard shows a known workload, and its usage survives a restart", async () => {
  const base = confab.url;
  const day = today();
  const users = [];
  for (let i = 0; i < M; i++) users.push(await createUser(base));
  const chats = users.map((u) => client(base, u.token));
  const threads = [];
  for (const topic of TOPICS) {
    const r = await chats[0]("POST", "/chat/threads", {
      topic, participants: users.slice(1).map((u) => ({ communicationIdentifier: { rawId: u.id } })),
    });
    const body = await r.text();
    assert.equal(r.status, 201, body);
    threads.push(JSON.parse(body).chatThread.id);
  }
  for (let round = 0; round < PER_USER_PER_THREAD; round++) {
    for (const [u, chat] of chats.entries()) {
      for (const t of threads) {
        const r = await chat("POST", `/chat/threads/${encodeURIComponent(t)}/messages`, { content: `m${round} from ${u}` });
        assert.equal(r.status, 201);
      }
    }
  }
  for (let i = 0; i < NOT_FOUND; i++) {
    const r = await chats[1]("GET", `/chat/threads/${encodeURIComponent(`19:${"0".repeat(31)}${i}@thread.v2`)}`);
    assert.equal(r.status, 404);
  }
  await new Promise((ok) => setTimeout(ok, 1500)); // a sample or two for the charts

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await signIn(page, confab.admin);
  await page.screenshot({ path: `${SHOTS}operator-login-landing.png` });
  // Overview: totals over named windows, not the last sample's rate
  assert.equal(await tile(page, "messages-hour"), String(N));
  const detail = await page.locator("#messages-hour .detail").innerText();
  assert.match(detail, new RegExp(`^${N} in the last 24 hours`));
  assert.match(detail, new RegExp(`${N} since start`));
  assert.equal(await tile(page, "active-users"), String(M));
  assert.equal(await tile(page, "threads-created"), String(TOPICS.length));
  assert.match(await page.locator("#requests-rate .detail").innerText(), new RegExp(`${NOT_FOUND} answered 4xx`));
  assert.match(await page.locator("#range-label").innerText(), /last 1 hour: data since .* when confab started/);
  // full-width charts with a labelled time axis and gridlines
  const charts = page.locator("svg.chart");
  assert.ok(await charts.count() >= 7);
  const box = await charts.first().boundingBox();
  assert.ok(box.width > 1100, `the chart spans the page: ${box.width}px of 1280`);
  assert.ok(await page.locator("svg.chart text.time").count() >= 7, "time-axis labels");
  assert.ok(await page.locator("svg.chart line.grid").count() >= 28, "gridlines");
  await page.screenshot({ path: `${SHOTS}operator-overview.png`, fullPage: true });
  await page.click("a[href='/?range=15m']");
  await page.waitForURL(`${confab.admin}/?range=15m`);
  assert.match(await page.locator("#range-label").innerText(), /^last 15 minutes/);
  assert.equal(await tile(page, "messages-hour"), String(N), "the range changes the charts, not the totals");

  // Threads: topics, participants and messages; each leads to its thread page
  await page.click("nav a[href='/threads']");
  await page.waitForURL(`${confab.admin}/threads`);
  const rows = await page.locator("#busiest-threads tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.cells].map((td) => td.innerText.trim())));
  assert.deepEqual(rows.map((r) => r[0]).sort(), [...TOPICS].sort());
  for (const r of rows) {
    assert.equal(r[1], String(M), "participants");
    assert.equal(r[2], String(M * PER_USER_PER_THREAD), "messages in the window");
  }
  await page.screenshot({ path: `${SHOTS}operator-threads.png`, fullPage: true });
  await page.click(`#busiest-threads a:has-text("Support desk")`);
  assert.equal(await page.locator("#thread-topic").innerText(), "Support desk");
  assert.equal(await page.locator("#thread-participants").innerText(), String(M));
  assert.equal(await page.locator("#thread-recent").innerText(), String(M * PER_USER_PER_THREAD));
  assert.ok(!(await page.content()).includes("m0 from"), "no message content");
  await page.screenshot({ path: `${SHOTS}operator-thread.png`, fullPage: true });

  // Requests: the workload's 404s in the route's 4xx column
  await page.click("nav a[href='/requests']");
  await page.waitForURL(`${confab.admin}/requests`);
  const cell = await page.locator("table").first().locator("tbody tr").evaluateAll((trs) => {
    const r = trs.map((tr) => [...tr.cells].map((td) => td.innerText.trim()))
      .find((c) => c[0] === "/chat/threads/{t}" && c[1] === "GET");
    return r ? r[3] : "";
  });
  assert.equal(cell.split(" ")[0], String(NOT_FOUND), `4xx column: ${cell}`);
  await page.screenshot({ path: `${SHOTS}operator-requests.png`, fullPage: true });

  // Usage, from the database
  await page.click("nav a[href='/usage']");
  await page.waitForURL(`${confab.admin}/usage`);
  const todayRow = async () => page.locator("#usage-days tbody tr").first().evaluate((tr) =>
    [...tr.cells].map((td) => td.innerText.trim()));
  assert.deepEqual(await todayRow(), [day, String(N), String(TOPICS.length), String(M)]);
  const csv = await (await page.request.get(`${confab.admin}/usage.csv`)).text();
  assert.ok(csv.split("\n").includes(`day,${day}T00:00:00.000Z,${N},${TOPICS.length},${M}`), csv);
  await page.screenshot({ path: `${SHOTS}operator-usage.png`, fullPage: true });
  for (const [name, path] of [["cluster", "/cluster"], ["webhooks", "/webhooks"], ["alerts", "/alerts"]]) {
    await page.click(`nav a[href='${path}']`);
    await page.waitForURL(`${confab.admin}${path}`);
    await page.screenshot({ path: `${SHOTS}operator-${name}.png`, fullPage: true });
  }
  await ctx.close();

  // restart: the registry starts over, the Usage page does not
  await confab.stop({ keep: true });
  confab = await startConfab(["--dashboard-sample-interval", "1s"], { data: confab.data });
  const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const again = await ctx2.newPage();
  await signIn(again, confab.admin);
  assert.match(await again.locator("#messages-hour .detail").innerText(), /0 since start/);
  await again.goto(`${confab.admin}/usage`);
  const row = await again.locator("#usage-days tbody tr").first().evaluate((tr) =>
    [...tr.cells].map((td) => td.innerText.trim()));
  if (today() === day) assert.deepEqual(row, [day, String(N), String(TOPICS.length), String(M)]);
  assert.equal(await again.locator("#total-messages").innerText(), String(N), "the 30 days hold the workload");
  await again.screenshot({ path: `${SHOTS}operator-usage-after-restart.png`, fullPage: true });
  await ctx2.close();
});
