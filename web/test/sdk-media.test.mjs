// The browser SDK's media calls against a real server (in node, where uploads go by fetch):
// upload, the hash pre-check and download; typed refusals; a file send that waits in the
// persisted outbox across a reload and goes with the id it was uploaded under; stickers. And
// the UI's media cache: at most four downloads at a time, one per id, URLs revoked on clear().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveObjectURL } from 'node:buffer';
import { BanterError, memoryStorage, kindFor } from '../app/sdk.js';
import { HASH_PRECHECK_MAX_BYTES, sha256Hex } from '../app/sdk/media.js';
import { createMediaCache, MAX_CONCURRENT_FETCHES } from '../app/ui/media-cache.js';
import { until, testServer } from './support/people.mjs';
import { makeClient, pairWithConversation } from './support/sdk.mjs';
import { png, elf } from './support/media.mjs';

const env = testServer();
const { track } = env;

test('upload, pre-check and download; typed refusals', async () => {
  const { a, b, conv } = await pairWithConversation(env.url);
  track(a, b);
  const bytes = png(64, 48);
  const blob = new Blob([bytes]);
  const id = await sha256Hex(blob);
  assert.equal(await a.media.info(id), null, 'unknown before the upload');
  const info = await a.media.prepare(blob, { name: 'pic.png' });
  assert.deepEqual([info.id, info.type, info.width, info.height, info.thumbnail, info.reused], [id, 'image/png', 64, 48, true, undefined]);
  assert.equal(kindFor(info), 'image');
  assert.equal((await a.media.prepare(blob, { name: 'pic.png' })).reused, true);
  assert.ok(HASH_PRECHECK_MAX_BYTES >= 1024 * 1024);

  // Bob may not read it until it is sent to him.
  await assert.rejects(b.media.download(id), (e) => e instanceof BanterError && e.code === 'unknown_media' && e.status === 404);
  a.sendAttachment({ conversation: conv, info, caption: 'look' });
  await until(() => b.messages(conv).some((m) => m.attachment?.id === id), { what: 'the photo at bob' });
  const got = b.messages(conv).find((m) => m.attachment?.id === id);
  assert.equal(got.attachment.caption, 'look');
  assert.match(got.text, /^\[Image: pic\.png\]\nlook$/, 'the fallback text is still there for old clients');
  assert.deepEqual(Buffer.from(await (await b.media.download(id)).arrayBuffer()), bytes);
  const thumb = await b.media.download(id, { thumbnail: true });
  assert.ok(thumb.size > 0 && thumb.type.startsWith('image/'));
  const own = a.messages(conv).find((m) => m.attachment?.id === id);
  assert.equal(own.attachment.kind, 'image', 'the sender holds it as an attachment too');

  await assert.rejects(a.media.upload(new Blob([elf()]), { name: 'cat.png' }),
    (e) => e.code === 'unsupported_media_type' && e.status === 415);
  await assert.rejects(a.media.upload(new Blob(['x']), { name: '../up.txt' }), (e) => e.code === 'invalid_file_name');
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(a.media.upload(new Blob(['x']), { name: 'x.txt', signal: controller.signal }), (e) => e.code === 'aborted');
  assert.throws(() => a.sendAttachment({ conversation: conv, info: null }), (e) => e.code === 'bad_request');
});

test('a file send waits in the outbox across a reload and goes with its uploaded id', async () => {
  const storageA = memoryStorage();
  const { a, b, conv, aName } = await pairWithConversation(env.url, { storageA });
  track(a, b);
  const info = await a.media.upload(new Blob(['offline notes\n']), { name: 'notes.txt' });
  a.disconnect();
  const queued = a.sendAttachment({ conversation: conv, info, caption: 'for later' });
  assert.equal(a.outbox()[0].attachment.id, info.id);

  // A reload: a new client on the same storage sends the saved entry once it connects.
  const reloaded = track(await makeClient(env.url, { name: aName, storage: storageA }));
  await until(() => b.messages(conv).some((m) => m.client_msg_id === queued), { what: 'the queued file at bob' });
  const got = b.messages(conv).find((m) => m.client_msg_id === queued);
  assert.deepEqual([got.attachment.id, got.attachment.kind, got.attachment.name, got.attachment.caption], [info.id, 'file', 'notes.txt', 'for later']);
  await until(() => reloaded.outbox().length === 0, { what: 'the outbox emptied' });
  assert.equal(b.messages(conv).filter((m) => m.attachment).length, 1, 'sent once');
});

test('stickers: the list, a send, and the message that carries one', async () => {
  const { a, b, conv } = await pairWithConversation(env.url);
  track(a, b);
  const stickers = await a.stickers();
  assert.ok(stickers.length > 0 && stickers.every((s) => s.id && s.name), JSON.stringify(stickers));
  a.sendSticker({ conversation: conv, sticker: stickers[0] });
  await until(() => b.messages(conv).some((m) => m.sticker?.id === stickers[0].id), { what: 'the sticker at bob' });
  assert.equal(a.outbox().length, 0);
  a.sendSticker({ conversation: conv, sticker: { id: 'no-such-sticker' } });
  await until(() => a.outbox().some((e) => e.state === 'failed' && e.error === 'unknown_sticker'), { what: 'an unknown sticker refused' });
});

test('the media cache: at most four downloads at once, one per id, URLs revoked on clear', async () => {
  let running = 0;
  let most = 0;
  const asked = [];
  const release = [];
  const client = {
    media: {
      download: (id, { thumbnail }) => new Promise((resolve) => {
        asked.push(`${thumbnail ? 't' : 'f'}:${id}`);
        running += 1;
        most = Math.max(most, running);
        release.push(() => { running -= 1; resolve(new Blob([id])); });
      }),
    },
  };
  const cache = createMediaCache(client);
  const urls = Array.from({ length: 10 }, (_, i) => cache.url(`id${i}`, 'thumbnail'));
  const again = cache.url('id0', 'thumbnail');
  await until(() => asked.length === MAX_CONCURRENT_FETCHES, { what: 'the first downloads' });
  assert.equal(MAX_CONCURRENT_FETCHES, 4);
  // Finish them one at a time: each ending lets one more start.
  while (asked.length < 10 || release.length) {
    if (release.length) release.shift()();
    await new Promise((r) => setTimeout(r, 0));
  }
  const done = await Promise.all(urls);
  assert.equal(most, MAX_CONCURRENT_FETCHES);
  assert.equal(await again, done[0], 'one download per id');
  assert.equal(asked.filter((x) => x === 't:id0').length, 1);
  assert.ok(resolveObjectURL(done[3]), 'a live URL');
  cache.clear();
  assert.equal(resolveObjectURL(done[3]), undefined, 'revoked');
});
