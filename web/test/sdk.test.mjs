// The browser SDK against a real server: accounts, messaging, unread and receipts, typing,
// edits and recalls, permanent failures and the outbox bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PASSWORD, uniqueName } from './support/server.mjs';
import { BanterClient, BanterError, memoryStorage, OUTBOX_LIMIT } from '../app/sdk.js';
import { until, testServer } from './support/people.mjs';
import {
  nextEvent, record, makeClient, newUser, texts, seqsContiguous, pairWithConversation,
} from './support/sdk.mjs';

const env = testServer();
const { track } = env;

test('register, login, restore and logout', async () => {
  const storage = memoryStorage();
  const c = track(new BanterClient({ baseUrl: env.url, storage }));
  const username = uniqueName('acc');
  const user = await c.register(username, PASSWORD);
  assert.equal(user.username, username);
  await assert.rejects(c.register(username, PASSWORD), (e) => e instanceof BanterError && e.code === 'username_taken' && e.status === 409);
  await assert.rejects(c.login(username, 'wrong password!'), (e) => e.code === 'bad_credentials' && e.status === 401);
  assert.equal(c.loggedIn, false);
  assert.equal(c.restore(), false, 'nothing saved before a login');

  const login = await c.login(username, PASSWORD, 'laptop');
  assert.equal(c.loggedIn, true);
  assert.equal(login.user.id, user.id);
  assert.equal(c.me.id, user.id);
  assert.equal(c.me.username, username);
  assert.equal(c.sessionId, login.session_id);

  // A "reload": a new client on the same storage takes the session up without logging in.
  const c2 = track(new BanterClient({ baseUrl: env.url, storage }));
  assert.equal(c2.loggedIn, false);
  assert.equal(c2.restore(), true);
  assert.equal(c2.me.id, user.id);
  assert.equal(c2.state, 'offline', 'restore does not connect');
  const states = record(c2, 'state');
  const hello = nextEvent(c2, 'hello');
  c2.connect();
  assert.equal((await hello).hello.user, user.id);
  assert.equal(c2.state, 'connected');
  assert.deepEqual(states.map((s) => s.detail.state), ['connecting', 'connected']);
  assert.equal(c2.limits.max_page, 500);
  const sessions = await c2.sessions();
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0].device, 'laptop');
  assert.equal(sessions[0].current, true);
  assert.deepEqual((await c2.searchUsers(username)).map((u) => u.id), [user.id]);

  const signedout = nextEvent(c2, 'signedout');
  await c2.logout();
  assert.equal((await signedout).reason, 'logout');
  assert.equal(c2.loggedIn, false);
  assert.equal(c2.state, 'offline');
  assert.equal(new BanterClient({ baseUrl: env.url, storage }).restore(), false, 'logout clears the saved session');
  const me = await fetch(`${env.url}/v1/me`, { headers: { authorization: `Bearer ${login.token}` } });
  assert.equal(me.status, 401, 'the token is refused after logout');
  await assert.rejects(c2.request('ping'), (e) => e.code === 'unauthorized');
  assert.throws(() => c2.send({ conversation: '1', text: 'x' }), (e) => e.code === 'unauthorized');
});

test('two clients exchange messages and each sees both sides once, in order', async () => {
  const { a, b, conv } = await pairWithConversation(env.url);
  track(a, b);
  const conversation = b.conversation(conv);
  assert.equal(conversation.kind, 'direct');
  assert.equal(conversation.peer, a.me.id);
  assert.equal(conversation.peer_username, a.me.username);
  assert.equal(a.conversation(conv).peer, b.me.id);

  for (let i = 1; i <= 5; i += 1) {
    a.send({ conversation: conv, text: `a${i}` });
    if (i % 2 === 0) b.send({ conversation: conv, text: `b${i / 2}` });
  }
  const all = ['hello', 'a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'b2'];
  for (const c of [a, b]) {
    await until(() => texts(c, conv).length === all.length && c.outbox().length === 0, { timeout: 5000, what: 'all 8 messages on both sides' });
  }
  const view = (c) => c.messages(conv).map((m) => `${m.seq}:${m.sender}:${m.text}`);
  assert.deepEqual(view(a), view(b), 'both sides hold the same messages in the same order');
  assert.deepEqual(a.messages(conv).map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...texts(a, conv)].sort(), [...all].sort());
  assert.deepEqual(texts(a, conv).filter((t) => t.startsWith('a')), ['a1', 'a2', 'a3', 'a4', 'a5']);
  assert.deepEqual(texts(b, conv).filter((t) => t.startsWith('b')), ['b1', 'b2']);
  assert.equal(a.conversations()[0].id, conv);
  assert.equal(a.conversation(conv).last_seq, 8);
  assert.equal(a.conversation(conv).last_message.text, b.conversation(conv).last_message.text);
});

test('messages() of a listed conversation loads its newest page by itself', async () => {
  const { a, b, conv, bName } = await pairWithConversation(env.url);
  track(a, b);
  a.send({ conversation: conv, text: 'second' });
  await until(() => texts(b, conv).includes('second'), { timeout: 5000, what: 'the message at B' });
  const b2 = track(await makeClient(env.url, { name: bName }));
  await until(() => b2.conversation(conv), { timeout: 5000, what: "the list on B's second device" });
  assert.deepEqual(b2.messages(conv), [], 'nothing loaded yet');
  await until(() => texts(b2, conv).length === 2, { timeout: 5000, what: 'messages() to load the conversation' });
  assert.deepEqual(texts(b2, conv), ['hello', 'second']);
});

test('a pending message shows in messages() until acknowledged, then has its seq', async () => {
  const { a, b, conv } = await pairWithConversation(env.url);
  track(a, b);
  const events = record(a, 'messages');
  const id = a.send({ conversation: conv, text: 'on its way' });
  const last = a.messages(conv).at(-1);
  assert.equal(last.client_msg_id, id);
  assert.equal(last.pending, true);
  assert.equal(last.state, 'sending');
  assert.equal(last.text, 'on its way');
  assert.ok(events.some((e) => e.detail.conversation === conv), "send emits 'messages' at once");
  const sent = await until(() => a.messages(conv).find((m) => m.client_msg_id === id && !m.pending), { timeout: 5000, what: 'the ack' });
  assert.equal(sent.seq, 2);
  assert.equal(sent.sender, a.me.id);
  assert.equal(a.messages(conv).filter((m) => m.client_msg_id === id).length, 1, 'the pending entry is gone');
});

test('unread counts messages from others; our own sends are not unread for us', async () => {
  const aName = await newUser(env.url, 'a');
  const bName = await newUser(env.url, 'b');
  const a = track(await makeClient(env.url, { name: aName }));
  const b = track(await makeClient(env.url, { name: bName }));
  a.send({ to: b.me.id, text: 'one' });
  const conv = (await until(() => a.directConversation(b.me.id), { timeout: 5000, what: 'the conversation' })).id;
  a.send({ conversation: conv, text: 'two' });
  a.send({ conversation: conv, text: 'three' });
  await until(() => b.conversation(conv)?.unread === 3, { timeout: 5000, what: 'B to count 3 unread' });
  await until(() => texts(b, conv).length === 3, { timeout: 5000, what: 'the three messages at B' });
  assert.equal(b.peerReadSeq(conv), 3, "A's own message at seq 3 is a read receipt up to 3");
  await until(() => a.outbox().length === 0, { timeout: 5000, what: "A's sends to be acknowledged" });
  assert.equal(a.conversation(conv).unread, 0, 'A does not count its own messages');
  assert.equal(a.conversation(conv).read_seq, 3, "A's read cursor follows its own messages");
  // The server agrees.
  await until(async () => (await a.receipts(conv)).find((r) => r.user === a.me.id)?.read_seq === 3, { timeout: 5000, what: "A's read cursor at 3" });
  const a2 = track(await makeClient(env.url, { name: aName }));
  await until(() => a2.conversation(conv), { timeout: 5000, what: 'the list on a second device' });
  assert.equal(a2.conversation(conv).unread, 0);
  assert.equal(a2.conversation(conv).read_seq, 3);

  // Reading: unread drops at once, A gets a read receipt.
  const read = nextEvent(a, 'read', (d) => d.conversation === conv && d.user === b.me.id);
  const p = b.markRead(conv, 3);
  assert.equal(b.conversation(conv).unread, 0, 'markRead updates unread synchronously');
  assert.deepEqual(await p, { read_seq: 3 });
  assert.equal((await read).seq, 3);
  assert.equal(a.peerReadSeq(conv), 3);

  // A fresh device of A learns the peer's cursor from receipts when it opens the conversation.
  const a3 = track(await makeClient(env.url, { name: aName }));
  assert.equal(a3.peerReadSeq(conv), 0);
  await a3.openConversation(conv);
  assert.equal(a3.peerReadSeq(conv), 3);

  // B's other device hears about B's read, and a new message counts again.
  const b2 = track(await makeClient(env.url, { name: bName }));
  await until(() => b2.conversation(conv)?.unread === 0, { timeout: 5000, what: "B2's list" });
  a.send({ conversation: conv, text: 'four' });
  await until(() => b.conversation(conv).unread === 1 && b2.conversation(conv).unread === 1, { timeout: 5000, what: 'one unread on both B devices' });
  await b.markRead(conv, 4);
  await until(() => b2.conversation(conv).unread === 0, { timeout: 5000, what: "B's read reaching B2" });
  assert.equal(b2.conversation(conv).read_seq, 4);
});

test('typing is throttled, delivered to the peer and expires', async () => {
  const { a, b, conv } = await pairWithConversation(env.url);
  track(a, b);
  const typingAtB = record(b, 'typing');
  let typersDuring;
  b.addEventListener('typing', () => { typersDuring ??= b.typers(conv); });
  a.typing(conv);
  a.typing(conv); // within 3 s: not sent
  a.send({ conversation: conv, text: 'after typing' });
  await until(() => texts(b, conv).includes('after typing'), { timeout: 5000, what: 'the message after typing' });
  const fromA = typingAtB.filter((e) => e.detail.user === a.me.id && e.detail.typing);
  assert.equal(fromA.length, 1, 'exactly one typing event reached B before the message');
  assert.equal(fromA[0].detail.conversation, conv);
  assert.deepEqual(typersDuring, [a.me.id]);
  assert.deepEqual(b.typers(conv), [], "A's message ends A's typing");

  // Expiry: B types, A sees it for about 5 s.
  const started = Date.now();
  b.typing(conv);
  await until(() => a.typers(conv).includes(b.me.id), { timeout: 5000, what: 'B typing at A' });
  await until(() => a.typers(conv).length === 0, { timeout: 8000, what: "B's typing to expire at A" });
  assert.ok(Date.now() - started >= 4500, `expired after ${Date.now() - started} ms, expected about 5 s`);
});

test('edits and recalls are applied to their target and are not entries of their own', async () => {
  const { a, b, conv } = await pairWithConversation(env.url);
  track(a, b);
  a.send({ conversation: conv, text: 'tpyo' });
  a.send({ conversation: conv, text: 'regret' });
  await until(() => texts(b, conv).includes('regret') && a.outbox().length === 0, { timeout: 5000, what: 'both messages' });
  const ack = await a.edit(conv, 2, 'typo');
  assert.equal(ack.seq, 4);
  await a.recall(conv, 3);
  for (const c of [a, b]) {
    await until(() => c.messages(conv).find((m) => m.seq === 3)?.recalled === true, { timeout: 5000, what: 'the recall' });
    const msgs = c.messages(conv);
    assert.deepEqual(msgs.map((m) => m.seq), [1, 2, 3], 'edit and recall entries are not in the array');
    assert.equal(msgs[1].text, 'typo');
    assert.ok(msgs[1].edited_at > 0);
    assert.equal(msgs[2].text, '');
  }
  // A later device gets the final state straight from history.
  const b2 = track(await makeClient(env.url, { name: b.me.username }));
  await b2.openConversation(conv);
  assert.deepEqual(b2.messages(conv).map((m) => [m.seq, m.text, Boolean(m.recalled)]), [[1, 'hello', false], [2, 'typo', false], [3, '', true]]);
});

test('permanent failures mark the entry failed; retry and discard', async () => {
  const aName = await newUser(env.url, 'a');
  const a = track(await makeClient(env.url, { name: aName }));
  const id = a.send({ to: a.me.id, text: 'note to self' });
  await until(() => a.outbox().find((e) => e.client_msg_id === id)?.state === 'failed', { timeout: 5000, what: 'the send to fail' });
  assert.equal(a.outbox()[0].error, 'cannot_message_self');
  const bogus = a.send({ conversation: '999999', text: 'nowhere' });
  const failed = await until(() => a.outbox().find((e) => e.client_msg_id === bogus && e.state === 'failed'), { timeout: 5000, what: 'unknown conversation to fail' });
  assert.equal(failed.error, 'unknown_conversation');
  assert.deepEqual(a.messages('999999').map((m) => [m.client_msg_id, m.state, m.pending]), [[bogus, 'failed', true]]);

  const events = record(a, 'messages');
  assert.equal(a.retry(id), true);
  assert.equal(a.outbox()[0].state, 'sending');
  await until(() => a.outbox()[0].state === 'failed', { timeout: 5000, what: 'the retry to fail again' });
  assert.ok(events.length >= 2, 'retry and its failure emit messages');
  assert.equal(a.discard(id), true);
  assert.equal(a.discard(bogus), true);
  assert.deepEqual(a.outbox(), []);
  assert.equal(a.discard(id), false);

  assert.throws(() => a.send({ conversation: '1', text: '   ' }), (e) => e.code === 'empty_message');
  assert.throws(() => a.send({ text: 'where to?' }), (e) => e.code === 'bad_request');
  assert.throws(() => a.send({ to: '1', conversation: '1', text: 'both' }), (e) => e.code === 'bad_request');
});

test('the outbox holds at most 500 entries', async () => {
  const aName = await newUser(env.url, 'a');
  const a = track(await makeClient(env.url, { name: aName, connect: false }));
  for (let i = 0; i < OUTBOX_LIMIT; i += 1) a.send({ to: '424242', text: `m${i}` });
  assert.equal(a.outbox().length, 500);
  assert.throws(() => a.send({ to: '424242', text: 'one too many' }), (e) => e instanceof BanterError && e.code === 'outbox_full');
  a.discard(a.outbox()[0].client_msg_id);
  a.send({ to: '424242', text: 'room again' });
  assert.equal(a.outbox().length, 500);
});

test('profiles, display names, presence and friend events', async () => {
  const aName = await newUser(env.url, 'a');
  const bName = await newUser(env.url, 'b');
  const a = track(await makeClient(env.url, { name: aName }));
  const b = track(await makeClient(env.url, { name: bName }));
  const bId = b.me.id;

  assert.equal(a.profile(bId), undefined, 'not cached yet');
  const loaded = await nextEvent(a, 'profile', (d) => d.profile.id === bId);
  assert.equal(loaded.profile.username, bName);
  assert.equal(a.profile(bId).username, bName);
  assert.equal(a.profile(bId).username, bName);
  assert.equal(a.displayName(bId), bName);

  const requested = nextEvent(b, 'friend', (d) => d.event === 'requested');
  await a.friendRequest(bId);
  assert.deepEqual(await requested, { event: 'requested', from: a.me.id, to: bId });
  assert.deepEqual((await b.friends()).incoming.map((p) => p.id), [a.me.id]);
  const accepted = nextEvent(a, 'friend', (d) => d.event === 'accepted');
  await b.friendAccept(a.me.id);
  assert.equal((await accepted).from, bId);
  assert.deepEqual((await a.friends()).friends.map((p) => p.id), [bId]);

  const pushed = nextEvent(a, 'profile', (d) => d.profile.id === bId && d.profile.display_name === 'Bee');
  await b.updateProfile({ display_name: 'Bee', status_text: 'buzzing' });
  await pushed;
  assert.equal(a.displayName(bId), 'Bee');
  assert.equal(a.profile(bId).status_text, 'buzzing');

  assert.equal(a.online(bId), undefined);
  const presence = await a.loadPresence([bId]);
  assert.deepEqual(presence.map((p) => [p.user, p.online]), [[bId, true]]);
  assert.equal(a.online(bId), true);
  const offline = nextEvent(a, 'presence', (d) => d.user === bId && d.online === false);
  b.disconnect();
  await offline;
  assert.equal(a.online(bId), false);
  assert.ok(a.lastSeen(bId) > 0);
});

test('a message from a new conversation adds it to the list', async () => {
  const aName = await newUser(env.url, 'a');
  const bName = await newUser(env.url, 'b');
  const a = track(await makeClient(env.url, { name: aName }));
  const b = track(await makeClient(env.url, { name: bName }));
  assert.deepEqual(b.conversations(), []);
  const changed = nextEvent(b, 'conversations', () => b.conversations().length === 1);
  a.send({ to: b.me.id, text: 'first contact' });
  await changed;
  const [c] = b.conversations();
  assert.equal(c.kind, 'direct');
  assert.equal(c.peer, a.me.id);
  assert.equal(c.unread, 1);
  // The first message of a brand-new conversation is held without opening it.
  await until(() => texts(b, c.id).includes('first contact'), { timeout: 5000, what: 'the first message' });
  assert.ok(seqsContiguous(b, c.id));
  assert.equal(b.hasOlder(c.id), false);
});
