// The UI's media cache against a real server that allows one download per user at a time:
// a download refused as rate_limited (the user's other tab or device holds the slot) is tried
// again after its Retry-After, and shows once the slot is free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createMediaCache, RETRIES_WHEN_REFUSED } from '../app/ui/media-cache.js';
import { until, testServer } from './support/people.mjs';
import { pairWithConversation } from './support/sdk.mjs';
import { PASSWORD } from './support/server.mjs';

const env = testServer({ args: ['--media-downloads-per-user', '1'] });
const { track } = env;

/** A second session of `username` (another device), by the HTTP API. */
async function logIn(username) {
  const res = await fetch(new URL('/v1/sessions', env.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  assert.equal(res.status, 200);
  return (await res.json()).token;
}

test('the media cache tries a download refused as rate_limited again after its Retry-After', async () => {
  const { a, b, aName } = await pairWithConversation(env.url);
  track(a, b);
  // Larger than socket buffers hold, so a reader that stops reading keeps its download going.
  const big = await a.media.upload(new Blob([Buffer.alloc(90 * 1024 * 1024, 'x')]), { name: 'big.txt' });
  const small = await a.media.upload(new Blob(['a small file\n']), { name: 'small.txt' });

  // Another device of the same user holds the one download slot: it reads the head, then stops.
  const token = await logIn(aName);
  const held = await new Promise((resolve, reject) => {
    http.get(new URL(`/v1/media/${big.id}`, env.url), { headers: { authorization: `Bearer ${token}` } }, resolve)
      .on('error', reject);
  });
  held.pause();
  assert.equal(held.statusCode, 200);

  const refused = [];
  const client = {
    media: {
      download: (id, options) => a.media.download(id, options).catch((e) => { refused.push(e.code); throw e; }),
    },
  };
  const cache = createMediaCache(client);
  const shown = cache.blob(small.id);
  await until(() => refused.length >= 1, { what: 'the first try refused' });
  assert.equal(refused[0], 'rate_limited');
  assert.ok(RETRIES_WHEN_REFUSED >= 1);
  // The other device lets go: the next try gets the file.
  held.destroy();
  assert.equal(await (await shown).text(), 'a small file\n');
  cache.clear();
});
