// The SDK's delivery guarantees against a real server: catch-up after a reconnect, the outbox
// (offline, across a reload, deduplicated retries), gaps filled by sync, scroll-back, and order
// under concurrent senders and rate limiting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.mjs';
import { BanterClient, memoryStorage } from '../app/sdk.js';
import { until, testServer } from './support/people.mjs';
import {
  makeClient, newUser, texts, seqsContiguous, pairWithConversation, closeAll, tap, record,
} from './support/sdk.mjs';

const env = testServer();
const { track } = env;

/** Sends `n` texts `${prefix}${i}` from `client` into `conv`; returns the texts. */
function sendMany(client, conv, prefix, n) {
  const out = [];
  for (let i = 1; i <= n; i += 1) {
    out.push(`${prefix}${i}`);
    client.send({ conversation: conv, text: `${prefix}${i}` });
  }
  return out;
}

/** Waits until `sentinel`, sent after everything else, reached `client`: nothing is still in flight. */
async function settle(sender, receiver, conv, label) {
  const sentinel = `sentinel-${label}`;
  sender.send({ conversation: conv, text: sentinel });
  await until(() => texts(receiver, conv).includes(sentinel), { timeout: 5000, what: `the sentinel ${label}` });
}

test('20 messages sent while the receiver is disconnected appear once, in order, after reconnect', async () => {
  const { a, b, conv } = await pairWithConversation(env.url);
  track(a, b);
  b.disconnect();
  assert.equal(b.state, 'offline');
  const sent = sendMany(a, conv, 'while-away-', 20);
  await until(() => a.outbox().length === 0, { timeout: 5000, what: "A's 20 acks" });
  assert.deepEqual(texts(b, conv), ['hello'], 'nothing arrives while disconnected');

  const states = record(b, 'state');
  b.connect();
  await until(() => texts(b, conv).length === 21, { timeout: 5000, what: 'the 20 messages at B' });
  assert.deepEqual(texts(b, conv), ['hello', ...sent]);
  assert.deepEqual(b.messages(conv).map((m) => m.seq), Array.from({ length: 21 }, (_, i) => i + 1));
  assert.deepEqual(states.map((s) => s.detail.state), ['connecting', 'connected']);
  await settle(a, b, conv, 'after-catch-up');
  assert.deepEqual(texts(b, conv), ['hello', ...sent, 'sentinel-after-catch-up'], 'no duplicates came later');
});

test('a lost connection is re-established with backoff and caught up', async () => {
  const socket = tap();
  const { a, b, conv } = await pairWithConversation(env.url, { socketB: socket });
  track(a, b);
  const states = record(b, 'state');
  socket.refuse = true; // the network stays down until the messages are stored
  socket.cut();
  await until(() => b.state === 'reconnecting', { timeout: 2000, what: 'B to notice the cut' });
  const sent = sendMany(a, conv, 'during-cut-', 5);
  await until(() => a.outbox().length === 0, { timeout: 5000, what: "A's acks" });
  await until(() => socket.sockets.length >= 3, { timeout: 5000, what: 'B to try again (and be refused)' });
  assert.equal(b.loggedIn, true, 'a refused connection with a valid token does not sign out');
  socket.refuse = false;
  await until(() => b.state === 'connected', { timeout: 10000, what: 'B to reconnect by itself' });
  await until(() => texts(b, conv).length === 6, { timeout: 5000, what: 'the messages sent during the cut' });
  assert.deepEqual(texts(b, conv), ['hello', ...sent]);
  assert.ok(seqsContiguous(b, conv));
  assert.deepEqual(states.map((s) => s.detail.state), ['reconnecting', 'connected']);
  // The catch-up asked for the list, then synced the conversation from what B held.
  const second = socket.sent.slice(socket.sent.findLastIndex((f) => f.type === 'conversations'));
  assert.ok(second.some((f) => f.type === 'sync' && f.conversation === conv && f.after_seq === 1), 'sync after_seq 1 after reconnect');
});

test('a message sent while the sender is disconnected is delivered exactly once after connect', async () => {
  const { a, b, conv } = await pairWithConversation(env.url);
  track(a, b);
  a.disconnect();
  const id = a.send({ conversation: conv, text: 'written offline' });
  const pending = a.messages(conv).at(-1);
  assert.equal(pending.client_msg_id, id);
  assert.equal(pending.state, 'sending');
  assert.equal(a.outbox().length, 1);
  a.connect();
  await until(() => texts(b, conv).includes('written offline'), { timeout: 5000, what: 'the offline message at B' });
  await until(() => a.outbox().length === 0, { timeout: 5000, what: "A's outbox to drain" });
  const mine = a.messages(conv).filter((m) => m.client_msg_id === id);
  assert.equal(mine.length, 1);
  assert.equal(mine[0].pending, undefined);
  assert.equal(mine[0].seq, 2);
  await settle(a, b, conv, 'offline');
  assert.deepEqual(texts(b, conv), ['hello', 'written offline', 'sentinel-offline']);
});

test('the outbox survives a reload and is delivered once', async () => {
  const aName = await newUser(env.url, 'a');
  const bName = await newUser(env.url, 'b');
  const b = track(await makeClient(env.url, { name: bName }));
  const storage = memoryStorage();
  // First "page": logged in, never connected, three messages queued.
  const a1 = track(await makeClient(env.url, { name: aName, storage, connect: false }));
  const ids = ['before reload 1', 'before reload 2', 'before reload 3'].map((text) => a1.send({ to: b.me.id, text }));
  assert.equal(a1.state, 'offline');

  // Second "page" on the same storage.
  const a2 = track(new BanterClient({ baseUrl: env.url, storage }));
  assert.equal(a2.restore(), true);
  assert.deepEqual(a2.outbox().map((e) => [e.client_msg_id, e.state]), ids.map((id) => [id, 'sending']));
  a2.connect();
  await until(() => b.conversations().length === 1, { timeout: 5000, what: 'the new conversation at B' });
  const conv = b.conversations()[0].id;
  await b.openConversation(conv);
  await until(() => texts(b, conv).length === 3, { timeout: 5000, what: 'the three messages at B' });
  assert.deepEqual(texts(b, conv), ['before reload 1', 'before reload 2', 'before reload 3']);
  assert.deepEqual(b.messages(conv).map((m) => m.client_msg_id), ids);
  await until(() => a2.outbox().length === 0, { timeout: 5000, what: 'the outbox to drain' });
  assert.equal(a2.directConversation(b.me.id)?.id, conv, 'the conversation id was learned from the ack');
  assert.deepEqual(a2.messages(conv).map((m) => m.text), ['before reload 1', 'before reload 2', 'before reload 3']);

  const a3 = track(new BanterClient({ baseUrl: env.url, storage }));
  assert.equal(a3.restore(), true);
  assert.deepEqual(a3.outbox(), [], 'acknowledged entries are gone from storage');
  await settle(a2, b, conv, 'reload');
  assert.equal(texts(b, conv).length, 4, 'still exactly once each');
});

test('two tabs sharing storage keep each other\'s outbox entries', async () => {
  const aName = await newUser(env.url, 'a');
  const bName = await newUser(env.url, 'b');
  const b = track(await makeClient(env.url, { name: bName }));
  const storage = memoryStorage();
  const tab1 = track(await makeClient(env.url, { name: aName, storage, connect: false }));
  const tab2 = track(new BanterClient({ baseUrl: env.url, storage }));
  assert.equal(tab2.restore(), true);
  const x = tab1.send({ to: b.me.id, text: 'from tab 1' });
  const y = tab2.send({ to: b.me.id, text: 'from tab 2' });
  assert.deepEqual(tab2.outbox().map((e) => e.client_msg_id), [y], 'each tab holds its own entries');
  const reloaded = track(new BanterClient({ baseUrl: env.url, storage }));
  assert.equal(reloaded.restore(), true);
  assert.deepEqual(reloaded.outbox().map((e) => e.client_msg_id).sort(), [x, y].sort(), 'neither write lost the other');
  // Both tabs and the reloaded page connect: each message still arrives once.
  for (const c of [tab1, tab2, reloaded]) c.connect();
  await until(() => b.conversations().length === 1, { timeout: 5000, what: 'the conversation at B' });
  const conv = b.conversations()[0].id;
  await b.openConversation(conv);
  await until(() => [tab1, tab2, reloaded].every((c) => c.outbox().length === 0), { timeout: 5000, what: 'every outbox to drain' });
  await settle(reloaded, b, conv, 'tabs');
  assert.deepEqual([...texts(b, conv)].sort(), ['from tab 1', 'from tab 2', 'sentinel-tabs']);
  const after = new BanterClient({ baseUrl: env.url, storage });
  after.restore();
  assert.deepEqual(after.outbox(), [], 'and storage is empty again');
});

test('our own messages move our read cursor, also when flushed after a reload: no read requests', async () => {
  const storage = memoryStorage();
  const { a, b, conv } = await pairWithConversation(env.url, { storageA: storage });
  track(a, b);
  a.disconnect();
  a.send({ conversation: conv, text: 'queued offline' });
  b.send({ conversation: conv, text: 'from b 1' });
  b.send({ conversation: conv, text: 'from b 2' });
  await until(() => b.outbox().length === 0, { timeout: 5000, what: "B's sends" });
  assert.equal(b.conversation(conv).unread, 0, "B's own messages are not unread for B");
  assert.equal(b.conversation(conv).read_seq, 3);
  // A reloads; its queued message lands after B's two, and (PROTOCOL.md, `read`) one has read
  // what one writes and what came before it.
  const socket = tap();
  const a2 = track(new BanterClient({ baseUrl: env.url, storage, WebSocket: socket.WebSocket }));
  assert.equal(a2.restore(), true);
  a2.connect();
  await until(() => a2.outbox().length === 0 && a2.conversation(conv)?.last_seq === 4, { timeout: 5000, what: 'the flush and the list' });
  await a2.openConversation(conv);
  assert.equal(a2.conversation(conv).read_seq, 4);
  assert.equal(a2.conversation(conv).unread, 0);
  assert.deepEqual(socket.sent.filter((f) => f.type === 'read'), [], 'no read request was needed');
  // B takes A's message at seq 4 as a read receipt up to 4 (no read event is pushed for it).
  await until(() => texts(b, conv).includes('queued offline'), { timeout: 5000, what: 'the queued message at B' });
  assert.equal(b.peerReadSeq(conv), 4);
  assert.equal(b.conversation(conv).unread, 1);
  assert.equal((await b.receipts(conv)).find((r) => r.user === a.me.id).read_seq, 4, 'the server agrees');
});

test('a retry with the same client_msg_id is deduplicated by the server', async () => {
  const socket = tap();
  const { a, b, conv } = await pairWithConversation(env.url, { socketA: socket });
  track(a, b);

  // Directly: the same key twice gives the original ack.
  const first = await a.request('send', { conversation: conv, client_msg_id: 'fixed-key-1', text: 'direct dup' });
  const again = await a.request('send', { conversation: conv, client_msg_id: 'fixed-key-1', text: 'direct dup' });
  assert.equal(first.duplicate, false);
  assert.equal(again.duplicate, true);
  assert.equal(again.seq, first.seq);

  // Through the outbox: the ack is lost with the connection; the retry after reconnect is a duplicate.
  const sendIds = () => socket.sent.filter((f) => f.type === 'send' && f.client_msg_id === id).map((f) => f.id);
  socket.dropIncoming = (f) => f.type === 'ok' && sendIds().length === 1 && sendIds()[0] === f.id;
  socket.onDrop = () => {
    socket.dropIncoming = null;
    socket.cut();
  };
  const id = a.send({ conversation: conv, text: 'ack lost' });
  await until(() => socket.dropped.length === 1, { timeout: 5000, what: 'the first ack to be dropped' });
  await until(() => sendIds().length === 2, { timeout: 5000, what: 'the retry after reconnect' });
  await until(() => a.outbox().length === 0, { timeout: 5000, what: 'the retry to be acknowledged' });
  const retryAck = socket.received.find((f) => f.type === 'ok' && f.id === sendIds()[1]);
  assert.equal(retryAck.result.duplicate, true);
  assert.equal(retryAck.result.seq, socket.dropped[0].result.seq);
  await settle(a, b, conv, 'dedupe');
  for (const c of [a, b]) {
    assert.equal(texts(c, conv).filter((t) => t === 'ack lost').length, 1);
    assert.equal(texts(c, conv).filter((t) => t === 'direct dup').length, 1);
    assert.ok(seqsContiguous(c, conv));
  }
});

test('a gap in pushes is filled by sync before later messages', async () => {
  const socket = tap();
  const { a, b, conv } = await pairWithConversation(env.url, { socketB: socket });
  track(a, b);
  let dropOnce = true;
  socket.dropIncoming = (f) => {
    if (dropOnce && f.type === 'message' && f.message.text === 'gap-1') {
      dropOnce = false;
      return true;
    }
    return false;
  };
  a.send({ conversation: conv, text: 'gap-1' });
  await until(() => socket.dropped.length === 1, { timeout: 5000, what: 'the push of gap-1 to be dropped' });
  assert.deepEqual(texts(b, conv), ['hello']);
  const syncsBefore = socket.sent.filter((f) => f.type === 'sync').length;
  a.send({ conversation: conv, text: 'gap-2' });
  await until(() => texts(b, conv).length === 3, { timeout: 5000, what: 'gap-1 and gap-2 at B' });
  assert.deepEqual(texts(b, conv), ['hello', 'gap-1', 'gap-2']);
  assert.deepEqual(b.messages(conv).map((m) => m.seq), [1, 2, 3]);
  const syncs = socket.sent.filter((f) => f.type === 'sync').slice(syncsBefore);
  assert.deepEqual(syncs.map((f) => [f.conversation, f.after_seq]), [[conv, 1]], 'one sync from the held seq');
  assert.equal(socket.received.filter((f) => f.type === 'message' && f.message.text === 'gap-1').length, 0, 'gap-1 never came by push');
  await settle(a, b, conv, 'gap');
  assert.deepEqual(texts(b, conv), ['hello', 'gap-1', 'gap-2', 'sentinel-gap']);
});

test('loadOlder pages back through history', async () => {
  const { a, b, conv, bName } = await pairWithConversation(env.url);
  track(a, b);
  sendMany(a, conv, 'h', 119);
  await until(() => a.outbox().length === 0, { timeout: 10000, what: "A's 119 acks" });
  const b2 = track(await makeClient(env.url, { name: bName }));
  assert.equal(b2.messages(conv).length, 0);
  await b2.openConversation(conv);
  const seqs = () => b2.messages(conv).map((m) => m.seq);
  assert.deepEqual(seqs(), Array.from({ length: 50 }, (_, i) => 71 + i), 'the newest page');
  assert.equal(b2.hasOlder(conv), true);
  const older = await b2.loadOlder(conv);
  assert.deepEqual(older.map((m) => m.seq), Array.from({ length: 50 }, (_, i) => 21 + i));
  assert.equal(b2.hasOlder(conv), true);
  await b2.loadOlder(conv, 50);
  assert.deepEqual(seqs(), Array.from({ length: 120 }, (_, i) => i + 1));
  assert.equal(b2.hasOlder(conv), false);
  assert.deepEqual(await b2.loadOlder(conv), []);
  assert.equal(b2.messages(conv)[0].text, 'hello');
  // New messages still append after scroll-back.
  a.send({ conversation: conv, text: 'newest' });
  await until(() => texts(b2, conv).at(-1) === 'newest', { timeout: 5000, what: 'a new message after paging' });
  assert.equal(b2.messages(conv).length, 121);
  assert.ok(seqsContiguous(b2, conv));
});

test('concurrent senders during a catch-up: every message exactly once, in seq order', async () => {
  const { a, b, conv, aName, bName } = await pairWithConversation(env.url);
  track(a, b);
  const a2 = track(await makeClient(env.url, { name: aName }));
  const b2 = track(await makeClient(env.url, { name: bName }));
  b.disconnect();
  const backlog = sendMany(a, conv, 'backlog-', 120);
  await until(() => a.outbox().length === 0, { timeout: 10000, what: 'the backlog acks' });
  // B reconnects; while its catch-up runs, three devices keep sending.
  b.connect();
  const live = [
    ...sendMany(a, conv, 'a1-', 20),
    ...sendMany(a2, conv, 'a2-', 20),
    ...sendMany(b2, conv, 'b2-', 20),
  ];
  const total = 1 + backlog.length + live.length;
  await until(() => texts(b, conv).length === total, { timeout: 10000, what: `all ${total} messages at B` });
  const got = texts(b, conv);
  assert.equal(new Set(got).size, total, 'no duplicates');
  assert.deepEqual([...got].sort(), ['hello', ...backlog, ...live].sort());
  assert.deepEqual(b.messages(conv).map((m) => m.seq), Array.from({ length: total }, (_, i) => i + 1));
  for (const prefix of ['backlog-', 'a1-', 'a2-', 'b2-']) {
    const mine = got.filter((t) => t.startsWith(prefix));
    assert.deepEqual(mine, [...mine].sort((x, y) => Number(x.slice(prefix.length)) - Number(y.slice(prefix.length))), `${prefix} in send order`);
  }
  // Every device ends with the same array. a2 and b2 open the conversation only now: they load
  // the newest page and page back for the rest.
  await until(() => texts(a, conv).length === total, { timeout: 10000, what: 'all messages at A' });
  for (const c of [a2, b2]) {
    await c.openConversation(conv);
    while (c.hasOlder(conv)) await c.loadOlder(conv, 200);
  }
  const reference = b.messages(conv).map((m) => `${m.seq}:${m.text}`);
  for (const c of [a, a2, b2]) assert.deepEqual(c.messages(conv).map((m) => `${m.seq}:${m.text}`), reference);
});

test('rate-limited sends wait and are retried until delivered', async () => {
  const limited = await startServer(['--send-rate-per-sec', '20', '--send-burst', '5']);
  const pair = [];
  try {
    const socket = tap();
    const { a, b, conv } = await pairWithConversation(limited.url, { socketA: socket });
    pair.push(a, b);
    const sent = sendMany(a, conv, 'burst-', 30);
    await until(() => a.outbox().length === 0, { timeout: 15000, what: 'all 30 to be acknowledged' });
    const refused = socket.received.filter((f) => f.type === 'error' && f.error.code === 'rate_limited');
    assert.ok(refused.length > 0, 'the server refused some sends');
    await until(() => texts(b, conv).length === 31, { timeout: 5000, what: 'all 30 at B' });
    assert.deepEqual([...texts(b, conv)].sort(), ['hello', ...sent].sort());
    assert.ok(seqsContiguous(b, conv));
    assert.equal(new Set(texts(b, conv)).size, 31, 'each once');
    assert.deepEqual(texts(a, conv), texts(b, conv));
  } finally {
    closeAll(pair);
    await limited.stop();
  }
});
