// confab demo client: vanilla JS, no build step. WebSocket with long-poll fallback
// (?transport=poll forces it), resume by cursor, REST for every command. It also shows confab's
// extensions (CONTRACT §10): unread badges and previews, sentiment marks, translation (per
// message, and live with ?lang=) and speech to text for the compose box.
"use strict";

const CHAT_V = "2025-03-15";
const IDENTITY_V = "2023-10-01";
const params = new URLSearchParams(location.search);
const forcePoll = params.get("transport") === "poll";

const state = {
  token: null, userId: null, cursor: null, transport: null,
  threads: new Map(), current: null, messages: new Map(), lastTypingSent: 0, typingTimers: new Map(),
  lang: "", ws: null, pollAbort: null, recorder: null, reloadTimer: null,
  // How many changes events have made to each list; see settled().
  changes: { threads: 0, messages: 0 },
  // Extensions the server turned off (400 FeatureNotSupported): their controls go away.
  off: { translate: false, speech: false },
};

const $ = (id) => document.getElementById(id);

function setStatus(text, kind) {
  const s = $("status");
  s.textContent = text;
  s.className = "status " + kind;
  s.dataset.state = kind === "on" ? "online" : kind === "wait" ? "resuming" : "offline";
}

// ---- REST -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, error) {
    super(`${status} ${error ? error.code + ": " + error.message : ""}`);
    this.status = status;
    this.code = error?.code;
  }
}

async function api(method, path, body) {
  const sep = path.includes("?") ? "&" : "?";
  const res = await fetch(`${path}${sep}api-version=${CHAT_V}`, {
    method,
    headers: { "Authorization": `Bearer ${state.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) {
    const err = await res.json().catch(() => ({}));
    throw new ApiError(res.status, err.error);
  }
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

const enc = (id) => encodeURIComponent(id);

// ---- identity through the access key (HMAC-SHA256 with WebCrypto) ----------------------

function b64(bytes) { return btoa(String.fromCharCode(...new Uint8Array(bytes))); }

async function signedFetch(endpoint, accessKey, method, pathAndQuery, body) {
  const url = new URL(pathAndQuery, endpoint);
  const date = new Date().toUTCString();
  const hash = b64(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)));
  // The browser sends Host itself: it is the endpoint's host[:port].
  const toSign = `${method}\n${url.pathname}${url.search}\n${date};${url.host};${hash}`;
  const keyBytes = Uint8Array.from(atob(accessKey), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = b64(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(toSign)));
  return fetch(url, {
    method,
    headers: {
      "x-ms-date": date, "x-ms-content-sha256": hash, "Content-Type": "application/json",
      "Authorization": `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${sig}`,
    },
    body,
  });
}

function parseConnectionString(cs) {
  const parts = Object.fromEntries(cs.split(";").filter(Boolean).map((p) => {
    const i = p.indexOf("=");
    return [p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).trim()];
  }));
  if (!parts.endpoint || !parts.accesskey) throw new Error("expected endpoint=…;accesskey=…");
  return { endpoint: parts.endpoint.replace(/\/$/, "") + "/", accessKey: parts.accesskey };
}

async function createUser(cs) {
  const { endpoint, accessKey } = parseConnectionString(cs);
  const body = JSON.stringify({ createTokenWithScopes: ["chat"] });
  const res = await signedFetch(endpoint, accessKey, "POST", `/identities?api-version=${IDENTITY_V}`, body);
  if (!res.ok) throw new Error(`identity: ${res.status}`);
  const v = await res.json();
  return v.accessToken.token;
}

function userIdOf(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return "8:" + JSON.parse(atob(payload)).skypeid;
}

// ---- real time ----------------------------------------------------------------------------

function onFrame(f) {
  if (f.type === "pong") return;
  if (f.type === "realTimeNotificationConnected") {
    setStatus(`${state.transport}: connected`, "on");
    $("status").dataset.lang = state.lang || "off"; // the language this session was opened with
    state.cursor = f.cursor;
    if (!f.data.recovered) resync();
    return;
  }
  if (f.cursor) state.cursor = f.cursor;
  const d = f.data;
  switch (f.type) {
    case "chatMessageReceived":
    case "chatMessageEdited": {
      const edited = f.type === "chatMessageEdited";
      if (d.threadId === state.current) upsertMessage(fromEvent(d, edited));
      if (edited) reloadThreadsSoon(); // the preview may have changed
      else newMessageInList(d);
      if (d.threadId === state.current && d.sender.rawId !== state.userId) sendReceipt(d.id);
      break;
    }
    case "chatMessageDeleted":
      if (d.threadId === state.current) {
        state.changes.messages++;
        const m = state.messages.get(d.id);
        if (m) { m.deletedOn = d.deletedOn; delete m.content; delete m.translation; renderMessages(); }
      }
      reloadThreadsSoon(); // an unread message may be gone, and the preview with it
      break;
    case "chatMessageTranslated":
      if (d.threadId === state.current) {
        const m = state.messages.get(d.id);
        // A translation of an older version (an edit overtook it) is not shown.
        if (m && (!m.version || m.version === d.version)) {
          m.translation = { text: d.text, from: d.from, to: d.to };
          renderMessages();
        }
      }
      break;
    case "readMarkerUpdated":
      // This user read something, here or on another device: the badges follow.
      reloadThreadsSoon();
      break;
    case "typingIndicatorReceived":
      if (d.threadId === state.current) showTyping(d.senderDisplayName || d.sender.rawId.slice(-6));
      break;
    case "readReceiptReceived":
      if (d.threadId === state.current && d.sender.rawId !== state.userId) {
        const m = state.messages.get(d.chatMessageId);
        if (m) { m.readBy = true; renderMessages(); }
      }
      break;
    case "chatThreadCreated":
      state.changes.threads++;
      state.threads.set(d.threadId, { id: d.threadId, topic: d.properties.topic, lastMessageReceivedOn: d.createdOn });
      renderThreads();
      break;
    case "chatThreadPropertiesUpdated":
      state.changes.threads++;
      if (state.threads.has(d.threadId)) { state.threads.get(d.threadId).topic = d.properties.topic; renderThreads(); }
      if (d.threadId === state.current) { $("topic").textContent = d.properties.topic; loadMessages(); }
      break;
    case "participantsAdded":
      if (!state.threads.has(d.threadId)) loadThreads();
      else if (d.threadId === state.current) loadMessages();
      break;
    case "participantsRemoved":
      if (d.participantsRemoved.some((p) => p.id.rawId === state.userId)) loadThreads();
      else if (d.threadId === state.current) loadMessages();
      break;
    case "chatThreadDeleted":
      state.changes.threads++;
      if (state.threads.has(d.threadId)) { state.threads.get(d.threadId).deletedOn = d.deletedOn; renderThreads(); }
      if (d.threadId === state.current) { $("thread").hidden = true; state.current = null; }
      break;
  }
}

let retry = 0;
function connect() {
  if (forcePoll || state.transport === "poll" || state.transport === "long-poll") return startPolling();
  state.transport = "websocket";
  setStatus("websocket: connecting", "wait");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const q = new URLSearchParams({ access_token: state.token });
  if (state.cursor) q.set("cursor", state.cursor);
  if (state.lang) q.set("lang", state.lang);
  let opened = false;
  const ws = new WebSocket(`${scheme}://${location.host}/realtime?${q}`);
  state.ws = ws;
  ws.onopen = () => { opened = true; retry = 0; };
  ws.onmessage = (e) => onFrame(JSON.parse(e.data));
  ws.onclose = (e) => {
    if (ws.replaced) return connect(); // closed by us to change the session (?lang=): resume at once
    if (!opened) { state.transport = "poll"; return startPolling(); } // WebSocket unusable here: fall back
    if (e.code === 4003) return setStatus("signed out (tokens revoked)", "off");
    if (e.code === 4001) return setStatus("token expired: sign in again", "off");
    setStatus(`websocket: disconnected (${e.code}), resuming…`, "wait");
    setTimeout(connect, Math.min(1000 * 2 ** retry++, 15000));
  };
}

/// Opens the session again from the same cursor (nothing is lost), e.g. with another ?lang=.
function reconnect() {
  if (state.ws && state.ws.readyState <= WebSocket.OPEN) {
    state.ws.replaced = true;
    state.ws.close(1000);
  } else if (state.pollAbort) {
    state.pollAbort.abort();
  }
}

let polling = false;
async function startPolling() {
  state.transport = "long-poll";
  if (polling) return;
  polling = true;
  setStatus("long-poll: connecting", "wait");
  // The first poll, and the first after reconnect(), answers at once: the session is open (and its
  // ?lang= registered) as soon as the status says so.
  let quick = true;
  for (;;) {
    try {
      const q = new URLSearchParams({ timeout: quick ? "0" : "25" });
      quick = false;
      if (state.cursor) q.set("cursor", state.cursor);
      if (state.lang) q.set("lang", state.lang);
      state.pollAbort = new AbortController();
      const res = await fetch(`/realtime/poll?${q}`, {
        headers: { "Authorization": `Bearer ${state.token}` }, signal: state.pollAbort.signal,
      });
      if (res.status === 401) { polling = false; return setStatus("token expired: sign in again", "off"); }
      if (!res.ok) throw new Error(String(res.status));
      const v = await res.json();
      setStatus("long-poll: connected", "on");
      $("status").dataset.lang = state.lang || "off";
      if (!v.recovered) { state.cursor = v.cursor; await resync(); continue; }
      for (const f of v.events) onFrame(f);
      state.cursor = v.cursor;
      retry = 0;
    } catch (e) {
      if (e.name === "AbortError") { quick = true; continue; } // reconnect(): poll again at once, same cursor
      setStatus("long-poll: disconnected, retrying…", "wait");
      await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** retry++, 15000)));
    }
  }
}

// A gap the server could not replay: reload from REST.
async function resync() {
  await loadThreads();
  if (state.current) await loadMessages();
}

// ---- UI -------------------------------------------------------------------------------------

/// The server's preview rule (CONTRACT §10.1), for a message that just arrived: plain text,
/// whitespace collapsed, 120 characters. The next list reload brings the server's own.
function previewOf(type, message) {
  const text = type === "html" ? new DOMParser().parseFromString(message, "text/html").body.textContent : message;
  const chars = [...(text || "").replace(/\s+/g, " ").trim()];
  return chars.length > 120 ? chars.slice(0, 120).join("") + "…" : chars.join("");
}

/// A new message moves its thread up, replaces its preview and, unless the thread is open,
/// counts as unread when somebody else sent it. A list read after the message was committed
/// already counts it (its lastMessage is this message or a newer one) even when the event comes
/// after the list: such an event changes nothing, or the badge would count the message twice.
function newMessageInList(d) {
  state.changes.threads++;
  const t = state.threads.get(d.threadId);
  if (!t) return;
  if (t.lastMessage && Number(t.lastMessage.sequenceId) >= Number(d.sequenceId)) return;
  t.lastMessageReceivedOn = d.createdOn;
  if (d.type === "text" || d.type === "html") {
    t.lastMessage = {
      id: d.id, sequenceId: d.sequenceId, type: d.type, senderCommunicationIdentifier: d.sender,
      senderDisplayName: d.senderDisplayName, preview: previewOf(d.type, d.message), createdOn: d.createdOn,
    };
    if (d.sender.rawId !== state.userId && d.threadId !== state.current) t.unreadCount = (t.unreadCount || 0) + 1;
  }
  renderThreads();
}

function reloadThreadsSoon() {
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(() => loadThreads().catch(() => {}), 150);
}

/// A list read over REST while events changed the same list is older than what they did: put in
/// place, it would undo them (a thread created while the list was loading would vanish). Each
/// event that changes a list counts in state.changes; a read that overlapped one reads again, and
/// that read has the change, since an event is sent only after its change is committed.
async function settled(list, read) {
  for (let tries = 1; ; tries++) {
    const before = state.changes[list];
    const v = await read();
    if (state.changes[list] === before) return v;
    if (tries === 4) { // a busy list: take this one and look again shortly
      if (list === "threads") reloadThreadsSoon();
      return v;
    }
  }
}

async function loadThreads() {
  const v = await settled("threads", () => api("GET", "/chat/threads?maxPageSize=100"));
  state.threads = new Map(v.value.map((t) => [t.id, t]));
  renderThreads();
}

function renderThreads() {
  const ul = $("threads");
  ul.replaceChildren();
  const list = [...state.threads.values()].sort((a, b) => (b.lastMessageReceivedOn || "").localeCompare(a.lastMessageReceivedOn || ""));
  for (const t of list) {
    const li = document.createElement("li");
    li.dataset.id = t.id;
    const topic = document.createElement("span");
    topic.className = "topic";
    topic.textContent = t.topic || "(no topic)";
    li.append(topic);
    const unread = t.deletedOn ? 0 : t.unreadCount || 0;
    li.dataset.unread = String(unread);
    if (unread > 0) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.title = `${unread} unread`;
      badge.textContent = unread > 99 ? "99+" : String(unread);
      li.append(badge);
      li.classList.add("unread");
    }
    if (t.lastMessage) {
      const preview = document.createElement("span");
      preview.className = "preview";
      const who = t.lastMessage.senderCommunicationIdentifier?.rawId === state.userId ? "you"
        : t.lastMessage.senderDisplayName || t.lastMessage.senderCommunicationIdentifier?.rawId.slice(-6);
      preview.textContent = `${who}: ${t.lastMessage.preview}`;
      li.append(preview);
    }
    if (t.id === state.current) li.classList.add("active");
    if (t.deletedOn) li.classList.add("deleted");
    else li.onclick = () => openThread(t.id);
    ul.append(li);
  }
}

async function openThread(id) {
  state.current = id;
  $("thread").hidden = false;
  $("topic").textContent = state.threads.get(id)?.topic || "";
  renderThreads();
  await loadMessages();
}

async function loadMessages() {
  const id = state.current;
  const v = await settled("messages", () => api("GET", `/chat/threads/${enc(id)}/messages?maxPageSize=50`));
  if (id !== state.current) return;
  const shown = state.messages;
  state.messages = new Map(v.value.reverse().map((m) => {
    // A translation pushed or asked for earlier still holds for the same version of the message.
    const old = shown.get(m.id);
    if (old?.translation && old.version === m.version) m.translation = old.translation;
    return [m.id, m];
  }));
  renderMessages();
  const last = [...state.messages.values()].reverse().find((m) => m.senderCommunicationIdentifier && m.senderCommunicationIdentifier.rawId !== state.userId);
  if (last) sendReceipt(last.id);
}

function fromEvent(d, edited) {
  return {
    id: d.id, type: d.type, sequenceId: d.sequenceId, version: d.version, createdOn: d.createdOn,
    senderDisplayName: d.senderDisplayName, senderCommunicationIdentifier: d.sender, content: { message: d.message },
    editedOn: edited ? d.editedOn : undefined, sentiment: d.sentiment,
  };
}

function upsertMessage(m) {
  state.changes.messages++;
  const old = state.messages.get(m.id);
  const next = { ...old, ...m };
  // chatMessageTranslated may come before or after its original; an edit drops an old translation.
  if (old?.translation && old.version !== m.version) delete next.translation;
  state.messages.set(m.id, next);
  renderMessages();
}

async function translate(m, button) {
  const to = state.lang || (navigator.language || "en").split("-")[0];
  button.disabled = true;
  try {
    const v = await api("POST", `/chat/threads/${enc(state.current)}/messages/${m.id}:translate?to=${enc(to)}`);
    const cur = state.messages.get(m.id);
    if (cur) { cur.translation = { text: v.text, from: v.from, to: v.to }; renderMessages(); }
  } catch (e) {
    if (e.code === "FeatureNotSupported") { state.off.translate = true; renderMessages(); }
    setComposeStatus(e.code === "FeatureNotSupported" ? "Translation is off on this server."
      : e.status === 503 ? "The translator is unavailable; try again in a moment." : `Translate failed: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

function sentimentMark(s) {
  const mark = document.createElement("span");
  mark.className = `sentiment ${s.label}`;
  mark.dataset.label = s.label;
  mark.title = `${s.label} (${s.score})`;
  mark.setAttribute("aria-label", `sentiment ${s.label}`);
  return mark;
}

function describeSystem(m) {
  const names = (m.content.participants || []).map((p) => p.displayName || p.communicationIdentifier.rawId.slice(-6)).join(", ");
  if (m.type === "topicUpdated") return `topic set to “${m.content.topic}”`;
  if (m.type === "participantAdded") return `${names} joined`;
  if (m.type === "participantRemoved") return `${names} left`;
  return m.type;
}

function renderMessages() {
  const ol = $("messages");
  ol.replaceChildren();
  const list = [...state.messages.values()].sort((a, b) => Number(a.sequenceId) - Number(b.sequenceId));
  for (const m of list) {
    const li = document.createElement("li");
    li.dataset.id = m.id;
    if (!m.senderCommunicationIdentifier) {
      li.className = "system";
      li.textContent = describeSystem(m);
    } else {
      const own = m.senderCommunicationIdentifier.rawId === state.userId;
      if (own) li.classList.add("own");
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = `${m.senderDisplayName || m.senderCommunicationIdentifier.rawId.slice(-6)} · ${new Date(m.createdOn).toLocaleTimeString()}`
        + (m.editedOn ? " · edited" : "") + (m.readBy ? " · read" : "");
      if (m.sentiment && !m.deletedOn) meta.append(sentimentMark(m.sentiment));
      const body = document.createElement("div");
      body.className = "body";
      if (m.deletedOn) { li.classList.add("deleted"); body.textContent = "message deleted"; }
      else if (m.type === "html") body.innerHTML = m.content.message; // sanitized by the server
      else body.textContent = m.content.message;
      li.append(meta, body);
      if (m.translation && !m.deletedOn) {
        const tr = document.createElement("div");
        tr.className = "translation";
        tr.lang = m.translation.to;
        tr.textContent = m.translation.text;
        const from = document.createElement("small");
        from.textContent = ` (${m.translation.from || "?"} → ${m.translation.to})`;
        tr.append(from);
        li.append(tr);
      }
      if (!m.deletedOn && !state.off.translate) {
        const tb = document.createElement("button");
        tb.className = "translate";
        tb.textContent = "translate";
        tb.onclick = () => translate(m, tb);
        meta.append(tb);
      }
      if (own && !m.deletedOn) {
        const edit = document.createElement("button");
        edit.textContent = "edit";
        edit.onclick = async () => {
          const text = prompt("Edit message", m.content.message);
          if (text) await api("PATCH", `/chat/threads/${enc(state.current)}/messages/${m.id}`, { content: text });
        };
        const del = document.createElement("button");
        del.textContent = "delete";
        del.onclick = () => api("DELETE", `/chat/threads/${enc(state.current)}/messages/${m.id}`);
        meta.append(edit, del);
      }
    }
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

function showTyping(who) {
  $("typing").textContent = `${who} is typing…`;
  clearTimeout(state.typingTimers.get("t"));
  state.typingTimers.set("t", setTimeout(() => { $("typing").textContent = ""; }, 6000));
}

function sendReceipt(id) {
  api("POST", `/chat/threads/${enc(state.current)}/readReceipts`, { chatMessageId: id }).catch(() => {});
}

// ---- speech to text: record, transcribe, fill the compose box ---------------------------

function setComposeStatus(text) { $("compose-status").textContent = text; }

async function toggleMic() {
  if (state.recorder) { state.recorder.stop(); return; }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    return setComposeStatus(`No microphone: ${e.message}`);
  }
  const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"].find((t) => MediaRecorder.isTypeSupported(t));
  const rec = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  const chunks = [];
  rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  rec.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    clearTimeout(rec.limit);
    state.recorder = null;
    $("mic").classList.remove("recording");
    $("mic").textContent = "Speak";
    transcribe(new Blob(chunks, { type: rec.mimeType || type || "audio/webm" }));
  };
  rec.start();
  rec.limit = setTimeout(() => rec.state === "recording" && rec.stop(), 60000);
  state.recorder = rec;
  $("mic").classList.add("recording");
  $("mic").textContent = "Stop";
  setComposeStatus("Recording… press Stop to transcribe.");
}

async function transcribe(blob) {
  setComposeStatus("Transcribing…");
  const q = state.lang ? `?language=${enc(state.lang)}` : "";
  try {
    const res = await fetch(`/speech:transcribe${q}`, {
      method: "POST", body: blob,
      headers: { "Authorization": `Bearer ${state.token}`, "Content-Type": blob.type },
    });
    const v = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(res.status, v.error);
    if (!v.text) return setComposeStatus("Nothing was recognised.");
    const box = $("text");
    box.value = box.value ? `${box.value} ${v.text}` : v.text;
    box.focus();
    setComposeStatus("");
  } catch (e) {
    if (e.code === "FeatureNotSupported") { state.off.speech = true; $("mic").hidden = true; }
    setComposeStatus(e.code === "FeatureNotSupported" ? "Speech to text is off on this server."
      : e.status === 503 ? "The transcriber is unavailable; try again in a moment." : `Transcription failed: ${e.message}`);
  }
}

$("mic").onclick = () => { toggleMic(); };

$("lang").onchange = () => {
  state.lang = $("lang").value;
  reconnect();
};

async function signedIn(token) {
  state.token = token;
  state.userId = userIdOf(token);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("lang-picker").hidden = false;
  if (!navigator.mediaDevices || typeof MediaRecorder === "undefined") $("mic").hidden = true;
  $("my-id").textContent = state.userId;
  $("whoami").textContent = state.userId.slice(-12);
  await loadThreads();
  connect();
}

$("token-form").onsubmit = async (e) => {
  e.preventDefault();
  try { await signedIn($("token").value.trim()); } catch (err) { $("signin-error").textContent = err.message; }
};

$("cs-form").onsubmit = async (e) => {
  e.preventDefault();
  try { await signedIn(await createUser($("cs").value.trim())); } catch (err) { $("signin-error").textContent = err.message; }
};

$("new-thread").onsubmit = async (e) => {
  e.preventDefault();
  const ids = $("new-members").value.split(",").map((s) => s.trim()).filter(Boolean);
  const v = await api("POST", "/chat/threads", {
    topic: $("new-topic").value,
    participants: ids.map((id) => ({ communicationIdentifier: { rawId: id } })),
  });
  state.threads.set(v.chatThread.id, { id: v.chatThread.id, topic: v.chatThread.topic, lastMessageReceivedOn: v.chatThread.createdOn });
  $("new-topic").value = "";
  $("new-members").value = "";
  await openThread(v.chatThread.id);
};

$("add-member").onsubmit = async (e) => {
  e.preventDefault();
  const id = $("add-id").value.trim();
  if (id) await api("POST", `/chat/threads/${enc(state.current)}/participants/:add`, { participants: [{ communicationIdentifier: { rawId: id } }] });
  $("add-id").value = "";
};

$("composer").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("text").value;
  if (!text) return;
  $("text").value = "";
  await api("POST", `/chat/threads/${enc(state.current)}/messages`, { content: text, senderDisplayName: state.userId.slice(-6) });
};

$("text").oninput = () => {
  // At most one typing notification per 8 s, like the ACS JS SDK.
  if (Date.now() - state.lastTypingSent > 8000 && state.current) {
    state.lastTypingSent = Date.now();
    api("POST", `/chat/threads/${enc(state.current)}/typing`).catch(() => {});
  }
};

if (params.get("token")) signedIn(params.get("token"));
