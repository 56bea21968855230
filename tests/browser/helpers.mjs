// What the browser tests share: where confab is, Chromium, and HMAC-signed identity creation.
import { createHash, createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

export const BASE = process.env.CONFAB_URL ?? "http://127.0.0.1:8080";
export const ADMIN = process.env.CONFAB_ADMIN_URL ?? "http://127.0.0.1:8090";
export const KEY = process.env.CONFAB_ACCESS_KEY
  ?? "GiHYTbr7Hthx7jH3sJUozAx8YxlDVfFRbDNOPvbIzRmDiWvlMHr1Wy90vwSk1VbWlMqhqOfmSHJbHCuIImtqrA==";
export const SHOTS = new URL("../../target/browser/", import.meta.url).pathname;

/// Debian's Chromium, headless, with the flags this machine's closed network needs.
export async function launch(extraArgs = []) {
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", ...extraArgs],
  });
}

/// An access-key (HMAC-SHA256) request, signed as the SDKs sign it.
export async function signed(method, pathAndQuery, body = "", base = BASE) {
  const url = new URL(pathAndQuery, base);
  const date = new Date().toUTCString();
  const hash = createHash("sha256").update(body).digest("base64");
  const sig = createHmac("sha256", Buffer.from(KEY, "base64"))
    .update(`${method}\n${url.pathname}${url.search}\n${date};${url.host};${hash}`).digest("base64");
  return fetch(url, {
    method, body: method === "GET" ? undefined : body,
    headers: { "content-type": "application/json", "x-ms-date": date, "x-ms-content-sha256": hash,
      authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${sig}` },
  });
}

/// Creates an identity with a chat token.
export async function createUser(base = BASE) {
  const res = await signed("POST", "/identities?api-version=2023-10-01",
    JSON.stringify({ createTokenWithScopes: ["chat"] }), base);
  if (res.status !== 201) throw new Error(`create identity: ${res.status}`);
  const v = await res.json();
  return { id: v.identity.id, token: v.accessToken.token };
}

/// A chat REST call as `user` (from createUser); throws on a status other than 2xx.
export async function rest(user, method, path, body, base = BASE) {
  const sep = path.includes("?") ? "&" : "?";
  const res = await fetch(`${base}${path}${sep}api-version=2025-03-15`, {
    method,
    headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/// Starts a confab of its own (`CONFAB_BIN`, by default the debug build) on free ports with a
/// fresh data directory (or `data`, to start again on what an earlier one left) and the given
/// extra flags; resolves once its banner says where it is. `stop({ keep: true })` leaves the
/// data directory for the next start.
export async function startConfab(args = [], { data: reuse } = {}) {
  const { spawn } = await import("node:child_process");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const bin = process.env.CONFAB_BIN ?? new URL("../../target/debug/confab", import.meta.url).pathname;
  const data = reuse ?? mkdtempSync(join(tmpdir(), "confab-browser-"));
  const child = spawn(bin, ["serve", "--http-port", "0", "--no-tls", "--admin-addr", "127.0.0.1:0",
    "--data-dir", data, "--log", "warn", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`confab did not start:\n${out}`)), 15000);
    const onData = (chunk) => {
      out += chunk;
      const url = out.match(/^ {2}http +: (http:\/\/\S+?)\/?\s/m);
      const admin = out.match(/metrics: (http:\/\/\S+)\/metrics/);
      if (url && admin) { clearTimeout(timer); resolve({ url: url[1], admin: admin[1] }); }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`confab exited (${code}):\n${out}`)); });
  });
  const where = await started;
  return {
    ...where,
    data,
    log: () => out,
    async stop({ keep = false } = {}) {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      if (!keep) rmSync(data, { recursive: true, force: true });
    },
  };
}
