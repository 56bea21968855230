// The official JS SDKs against a running confab over HTTPS: CONFAB_CONNECTION_STRING (as the
// banner prints it) and NODE_EXTRA_CA_CERTS (confab's dev CA). Nothing is patched: the JS
// identity client signs `host:port:port`, chat sends api-version 2025-03-15 and follows
// nextLink verbatim.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { ChatClient } from "@azure/communication-chat";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";

const cs = process.env.CONFAB_CONNECTION_STRING;
assert.ok(cs?.startsWith("endpoint=https://"), "set CONFAB_CONNECTION_STRING to the banner's connection string");
const endpoint = cs.split(";")[0].slice("endpoint=".length);

async function collect(iter) {
  const out = [];
  for await (const x of iter) out.push(x);
  return out;
}

test("identity and chat flows with the JS SDKs", async () => {
  const identity = new CommunicationIdentityClient(cs);
  const { user, token, expiresOn } = await identity.createUserAndToken(["chat"]);
  assert.ok(expiresOn > new Date(Date.now() + 23 * 3600 * 1000));
  const bob = await identity.createUser();
  const chat = new ChatClient(endpoint, new AzureCommunicationTokenCredential(token));

  const { chatThread, invalidParticipants } = await chat.createChatThread(
    { topic: "js" },
    {
      participants: [{ id: bob, displayName: "Bob" }],
      metadata: { k: "v" },
      retentionPolicy: { kind: "threadCreationDate", deleteThreadAfterDays: 40 },
    },
  );
  assert.equal(invalidParticipants, undefined);
  const thread = chat.getChatThreadClient(chatThread.id);
  const props = await thread.getProperties();
  assert.equal(props.topic, "js");
  assert.deepEqual(props.retentionPolicy, { kind: "threadCreationDate", deleteThreadAfterDays: 40 });
  assert.deepEqual(props.metadata, { k: "v" });
  await thread.updateProperties({ retentionPolicy: { kind: "none" }, metadata: { k: "w" } });
  const updated = await thread.getProperties();
  assert.deepEqual(updated.retentionPolicy, { kind: "none" });
  assert.deepEqual(updated.metadata, { k: "w" });
  assert.equal(props.createdBy.communicationUserId, user.communicationUserId);

  const sent = [];
  for (let i = 0; i < 5; i++) sent.push((await thread.sendMessage({ content: `m${i} 👋🏽` })).id);
  let pages = 0;
  const seen = [];
  for await (const page of thread.listMessages({ maxPageSize: 2 }).byPage()) {
    pages++;
    seen.push(...page);
  }
  assert.ok(pages >= 3, `${pages} pages`);
  assert.deepEqual(seen.filter((m) => m.type === "text").map((m) => m.id), [...sent].reverse());
  const m = await thread.getMessage(sent[0]);
  assert.equal(m.content.message, "m0 👋🏽");
  assert.ok(m.createdOn instanceof Date);
  await thread.updateMessage(sent[0], { content: "edited" });
  assert.equal((await thread.getMessage(sent[0])).content.message, "edited");
  await thread.deleteMessage(sent[1]);
  assert.ok((await thread.getMessage(sent[1])).deletedOn instanceof Date);

  const participants = await collect(thread.listParticipants());
  assert.deepEqual(participants.map((p) => p.id.communicationUserId).sort(), [user.communicationUserId, bob.communicationUserId].sort());
  await thread.updateTopic("renamed");
  await thread.sendTypingNotification();
  await thread.sendReadReceipt({ chatMessageId: sent[4] });
  const receipts = await collect(thread.listReadReceipts());
  assert.equal(receipts[0].chatMessageId, sent[4]);
  const threads = await collect(chat.listChatThreads({ maxPageSize: 1 }));
  assert.ok(threads.some((t) => t.id === chatThread.id && t.topic === "renamed"));

  await assert.rejects(thread.getMessage("12345"), (e) => e.statusCode === 404);
  await chat.deleteChatThread(chatThread.id);
  await assert.rejects(thread.getProperties(), (e) => e.statusCode === 404);
  await identity.revokeTokens(user);
});
