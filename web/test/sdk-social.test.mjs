// The SDK against a real server: signed out by a revoked session (4001, and a refused upgrade),
// chatrooms, and groups (system entries, removal, dissolution).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BanterClient, memoryStorage } from '../app/sdk.js';
import { until, testServer } from './support/people.mjs';
import {
  nextEvent, record, makeClient, newUser, texts, seqsContiguous, tap,
} from './support/sdk.mjs';

const env = testServer({ args: ['--group-add-policy', 'anyone'] });
const { track } = env;

test('a session revoked from another device closes with 4001: signedout, no reconnect', async () => {
  const name = await newUser(env.url, 'rev');
  const storage = memoryStorage();
  const socket = tap();
  const phone = track(await makeClient(env.url, { name, storage, socket }));
  const laptop = track(await makeClient(env.url, { name }));
  const pending = phone.request('ping', {}, { timeout: 60000 });
  await pending; // the connection works
  const signedout = nextEvent(phone, 'signedout');
  const states = record(phone, 'state');
  await laptop.revokeSession(phone.sessionId);
  assert.equal((await signedout).reason, 'revoked');
  assert.equal(phone.loggedIn, false);
  assert.equal(phone.state, 'offline');
  assert.deepEqual(states.map((s) => s.detail.state), ['offline']);
  assert.equal(new BanterClient({ baseUrl: env.url, storage }).restore(), false, 'the saved session is cleared');
  // No reconnect: after another full round trip elsewhere, still only the one socket.
  await laptop.request('ping');
  await laptop.sessions();
  assert.equal(socket.sockets.length, 1);
  assert.equal(phone.state, 'offline');
  assert.throws(() => phone.connect(), (e) => e.code === 'unauthorized');
});

test('a token refused at the upgrade (invisible to browsers) is detected over HTTP: signedout', async () => {
  const name = await newUser(env.url, 'rev');
  const storage = memoryStorage();
  const first = track(await makeClient(env.url, { name, storage, connect: false }));
  const other = track(await makeClient(env.url, { name }));
  first.send({ to: other.me.id, text: 'never sent' });
  await other.revokeSession(first.sessionId);
  // A reload finds the (now revoked) session in storage and tries to connect.
  const socket = tap();
  const reloaded = track(new BanterClient({ baseUrl: env.url, storage, WebSocket: socket.WebSocket }));
  assert.equal(reloaded.restore(), true);
  const signedout = nextEvent(reloaded, 'signedout');
  reloaded.connect();
  assert.equal((await signedout).reason, 'unauthorized');
  assert.equal(reloaded.loggedIn, false);
  assert.equal(reloaded.state, 'offline');
  assert.equal(socket.sockets.length, 1, 'no reconnect after the refusal');
  assert.equal(new BanterClient({ baseUrl: env.url, storage }).restore(), false);
  // The outbox is kept for the user's next login on this storage.
  const again = track(await makeClient(env.url, { name, storage }));
  assert.deepEqual(again.outbox().map((e) => e.text), ['never sent']);
});

test('rooms: join, send, receive, counts, and re-joined after a reconnect', async () => {
  const room = `lobby-${process.pid % 10000}`;
  const socket = tap();
  const a = track(await makeClient(env.url, { name: await newUser(env.url, 'ra'), socket }));
  const b = track(await makeClient(env.url, { name: await newUser(env.url, 'rb') }));
  const joined = await a.roomJoin(room);
  assert.equal(joined.room, room);
  assert.equal(joined.count, 1);
  await a.roomSend(room, 'first in the room');
  const bJoined = await b.roomJoin(room);
  assert.deepEqual(bJoined.recent.map((m) => m.text), ['first in the room']);
  assert.deepEqual(b.roomMessages(room).map((m) => m.text), ['first in the room']);
  await until(() => a.roomCount(room) === 2, { timeout: 5000, what: 'A to see two occupants' });
  assert.equal(b.roomCount(room), 2);

  const atA = nextEvent(a, 'room', () => a.roomMessages(room).some((m) => m.text === 'hi from b'));
  const ack = await b.roomSend(room, 'hi from b');
  await atA;
  assert.equal(ack.duplicate, false);
  assert.deepEqual(a.roomMessages(room).map((m) => m.text), ['first in the room', 'hi from b']);
  assert.deepEqual(b.roomMessages(room).map((m) => m.text), ['first in the room', 'hi from b'], 'own message once');

  // A's connection drops; the SDK re-joins the room, and the recent window does not duplicate.
  socket.cut();
  await until(() => a.state === 'reconnecting', { timeout: 2000, what: 'A to notice' });
  await until(() => a.state === 'connected', { timeout: 5000, what: 'A to reconnect' });
  await until(() => socket.sent.filter((f) => f.type === 'room_join' && f.room === room).length === 2, { timeout: 5000, what: 'the re-join' });
  await until(() => socket.received.some((f) => f.type === 'ok' && f.result?.room === room && f.result.recent?.length === 2), { timeout: 5000, what: 'the re-join reply' });
  await b.roomSend(room, 'after the reconnect');
  await until(() => a.roomMessages(room).length === 3, { timeout: 5000, what: 'the message after the reconnect at A' });
  assert.deepEqual(a.roomMessages(room).map((m) => m.text), ['first in the room', 'hi from b', 'after the reconnect']);

  await b.roomLeave(room);
  assert.deepEqual(b.roomMessages(room), []);
  await until(() => a.roomCount(room) === 1, { timeout: 5000, what: 'A to see B leave' });
  await assert.rejects(b.roomSend(room, 'not in it'), (e) => e.code === 'not_in_room');
});

test('groups: system entries in the array, messages, removal marks left, dissolution marks dissolved', async () => {
  const owner = track(await makeClient(env.url, { name: await newUser(env.url, 'go') }));
  const bob = track(await makeClient(env.url, { name: await newUser(env.url, 'gb') }));
  const cat = track(await makeClient(env.url, { name: await newUser(env.url, 'gc') }));
  const group = await owner.groupCreate({ name: 'team', description: 'the team', members: [bob.me.id] });
  assert.equal(group.name, 'team');
  assert.deepEqual((await owner.groups()).map((g) => g.id), [group.id]);
  const conv = group.id;
  assert.equal(owner.conversation(conv)?.kind, 'group');
  await until(() => bob.conversation(conv), { timeout: 5000, what: 'the group in bob’s list' });
  assert.equal(bob.conversation(conv).name, 'team');
  await bob.openConversation(conv);
  const first = bob.messages(conv)[0];
  assert.equal(first.kind, 'system');
  assert.equal(first.event.event, 'group_created');

  await owner.groupAdd(conv, [cat.me.id]);
  await until(() => cat.conversation(conv), { timeout: 5000, what: 'the group in cat’s list' });
  await Promise.all([owner.openConversation(conv), cat.openConversation(conv)]);
  owner.send({ conversation: conv, text: 'welcome' });
  cat.send({ conversation: conv, text: 'thanks' });
  for (const c of [owner, bob, cat]) {
    await until(() => texts(c, conv).includes('welcome') && texts(c, conv).includes('thanks'), { timeout: 5000, what: 'both group messages' });
  }
  assert.deepEqual(bob.messages(conv).map((m) => m.kind), ['system', 'system', 'text', 'text']);
  assert.equal(bob.messages(conv)[1].event.event, 'members_added');
  assert.ok(seqsContiguous(bob, conv));
  assert.equal(cat.messages(conv)[0].event.event, 'members_added', 'cat sees the group from its own joining on');
  assert.equal(cat.hasOlder(conv), false);
  assert.deepEqual((await owner.groupMembers(conv)).map((m) => m.user).sort(), [owner.me.id, bob.me.id, cat.me.id].sort());

  // Bob is removed: his conversation is marked left and 'conversations' fires.
  const listChanged = nextEvent(bob, 'conversations', () => bob.conversation(conv).left === true);
  await owner.groupRemove(conv, bob.me.id);
  await listChanged;
  assert.equal(bob.messages(conv).at(-1).event.event, 'member_removed');
  assert.equal(bob.conversation(conv).dissolved, false);

  // Cat leaves by itself.
  await cat.groupLeave(conv);
  assert.equal(cat.conversation(conv).left, true);

  // The owner dissolves it.
  const dissolved = nextEvent(owner, 'conversations', () => owner.conversation(conv).dissolved === true);
  await owner.groupDissolve(conv);
  await dissolved;
  assert.equal(owner.conversation(conv).left, false);
  const id = owner.send({ conversation: conv, text: 'too late' });
  await until(() => owner.outbox().find((e) => e.client_msg_id === id)?.state === 'failed', { timeout: 5000, what: 'the send to fail' });
  assert.equal(owner.outbox()[0].error, 'group_dissolved');

  // A fresh device of the owner learns it is dissolved from the list; one of bob's sees it gone.
  const owner2 = track(await makeClient(env.url, { name: owner.me.username }));
  await until(() => owner2.conversation(conv), { timeout: 5000, what: 'the list' });
  assert.equal(owner2.conversation(conv).dissolved, true);
  const bob2 = track(await makeClient(env.url, { name: bob.me.username, connect: false }));
  const listed = nextEvent(bob2, 'conversations');
  bob2.connect();
  await listed;
  assert.equal(bob2.conversation(conv), undefined, 'a removed member no longer lists the group');
});
