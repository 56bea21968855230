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
export async function launch() {
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

/// An access-key (HMAC-SHA256) request, signed as the SDKs sign it.
export async function signed(method, pathAndQuery, body = "") {
  const url = new URL(pathAndQuery, BASE);
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
export async function createUser() {
  const res = await signed("POST", "/identities?api-version=2023-10-01",
    JSON.stringify({ createTokenWithScopes: ["chat"] }));
  if (res.status !== 201) throw new Error(`create identity: ${res.status}`);
  const v = await res.json();
  return { id: v.identity.id, token: v.accessToken.token };
}
