// The SDK inside Chromium (the real WebSocket, fetch, localStorage and 'online' event), loaded
// from the server's own asset path on a same-origin page that does not run the app.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startServer, PASSWORD } from './support/server.mjs';
import { launch, CHROMIUM } from './support/browser.mjs';
import { newUser } from './support/sdk.mjs';

const skip = existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM}`;
let server;
let browser;
let assets;

before(async () => {
  if (skip) return;
  server = await startServer();
  const html = await (await fetch(`${server.url}/`)).text();
  assets = html.match(/\/assets\/[^/"]+/)[0];
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A page (own context: own localStorage) on the server's origin, not running the app. */
async function blankPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${server.url}/healthz`);
  return { context, page, errors };
}

/**
 * Puts a BanterClient on `window.client` (default options: location.origin, localStorage, the
 * browser's WebSocket, wrapped to record sockets in `window.sockets`). Logs in as `name`, or
 * restores the saved session when `name` is null. Connects unless `connect` is false.
 */
function boot(page, name, { connect = true } = {}) {
  return page.evaluate(async ({ assets, name, password, connect }) => {
    const { BanterClient } = await import(`${assets}/sdk.js`);
    window.sockets = [];
    window.socketTimes = [];
    class RecordingWebSocket extends WebSocket {
      constructor(url, protocols) {
        // While `window.refuseSockets` is set, every attempt goes to a closed port and fails.
        super(window.refuseSockets ? 'ws://127.0.0.1:1/v1/ws' : url, protocols);
        window.sockets.push(this);
        window.socketTimes.push(performance.now());
      }
    }
    const client = new BanterClient({ WebSocket: RecordingWebSocket });
    window.client = client;
    if (name) await client.login(name, password);
    else if (!client.restore()) throw new Error('no saved session');
    if (connect) {
      const hello = new Promise((resolve) => client.addEventListener('hello', resolve, { once: true }));
      client.connect();
      await hello;
    }
    return client.me;
  }, { assets, name, password: PASSWORD, connect });
}

const delivered = (page, conv) => page.evaluate((conv) => client.messages(conv).filter((m) => !m.pending).map((m) => m.text), conv);

test('in Chromium: messages flow, and the outbox survives a real reload (localStorage)', { skip }, async () => {
  const aName = await newUser(server.url, 'ba');
  const bName = await newUser(server.url, 'bb');
  const A = await blankPage();
  const B = await blankPage();
  try {
    const bob = await boot(B.page, bName);
    await boot(A.page, aName);
    // A goes offline (disconnect), writes two messages, and the page reloads before any is sent.
    const ids = await A.page.evaluate((to) => {
      client.disconnect();
      return [client.send({ to, text: 'written before reload 1' }), client.send({ to, text: 'written before reload 2' })];
    }, bob.id);
    await A.page.reload();
    const outbox = await A.page.evaluate(async (assets) => {
      const { BanterClient } = await import(`${assets}/sdk.js`);
      const probe = new BanterClient();
      probe.restore();
      return probe.outbox().map((e) => e.client_msg_id);
    }, assets);
    assert.deepEqual(outbox, ids, 'the entries are in localStorage after the reload');
    await boot(A.page, null);
    await B.page.waitForFunction(() => client.conversations().length === 1, null, { timeout: 5000 });
    const conv = await B.page.evaluate(() => client.conversations()[0].id);
    await B.page.evaluate((conv) => client.openConversation(conv), conv);
    await B.page.waitForFunction((conv) => client.messages(conv).length === 2, conv, { timeout: 5000 });
    assert.deepEqual(await delivered(B.page, conv), ['written before reload 1', 'written before reload 2']);
    await A.page.waitForFunction(() => client.outbox().length === 0, null, { timeout: 5000 });
    // And back: B replies, A sees the reply after its own two.
    await B.page.evaluate((conv) => client.send({ conversation: conv, text: 'got both' }), conv);
    await A.page.waitForFunction((conv) => client.messages(conv).length === 3, conv, { timeout: 5000 });
    assert.deepEqual(await delivered(A.page, conv), ['written before reload 1', 'written before reload 2', 'got both']);
    assert.deepEqual(A.errors, []);
    assert.deepEqual(B.errors, []);
  } finally {
    await A.context.close();
    await B.context.close();
  }
});

test("in Chromium: going offline gives the socket up at once; nothing retries until 'online', which reconnects at once", { skip }, async () => {
  const aName = await newUser(server.url, 'bo');
  const bName = await newUser(server.url, 'bp');
  const A = await blankPage();
  const B = await blankPage();
  try {
    const alice = await boot(A.page, aName);
    await boot(B.page, bName);
    await B.page.evaluate((to) => client.send({ to, text: 'before the outage' }), alice.id);
    await A.page.waitForFunction(() => client.conversations().length === 1, null, { timeout: 5000 });
    const conv = await A.page.evaluate(() => client.conversations()[0].id);
    await A.page.evaluate((conv) => client.openConversation(conv), conv);

    // Chromium keeps the socket "open" when the network goes; the 'offline' event ends it.
    await A.context.setOffline(true);
    await A.page.waitForFunction(() => client.state === 'offline', null, { timeout: 2000 });
    const opened = await A.page.evaluate(() => window.sockets.length);
    await B.page.evaluate((conv) => client.send({ conversation: conv, text: 'during the outage' }), conv);
    await B.page.waitForFunction(() => client.outbox().length === 0, null, { timeout: 5000 });
    // An absence can only be watched for a while: longer than the first two backoff steps.
    await A.page.waitForTimeout(1600);
    assert.equal(await A.page.evaluate(() => window.sockets.length), opened, 'no attempt while offline');
    assert.equal(await A.page.evaluate(() => client.state), 'offline');
    assert.equal(await A.page.evaluate(() => client.loggedIn), true, 'no network is not a sign-out');
    const back = Date.now();
    await A.context.setOffline(false);
    await A.page.waitForFunction(() => client.state === 'connected', null, { timeout: 1500 });
    assert.ok(Date.now() - back < 1500, 'reconnected on the online event, not after the backoff');
    await A.page.waitForFunction((conv) => client.messages(conv).length === 2, conv, { timeout: 5000 });
    assert.deepEqual(await delivered(A.page, conv), ['before the outage', 'during the outage']);
  } finally {
    await A.context.close();
    await B.context.close();
  }
});

test('in Chromium: a dropped connection whose retries fail backs off 0.5 s, doubling', { skip }, async () => {
  const name = await newUser(server.url, 'bq');
  const A = await blankPage();
  try {
    await boot(A.page, name);
    await A.page.evaluate(() => {
      window.refuseSockets = true;
      window.droppedAt = performance.now();
      window.sockets.at(-1).close();
    });
    // Three failed attempts (0.5 + 1 + 2 s, with jitter).
    await A.page.waitForFunction(() => window.sockets.length >= 4, null, { timeout: 8000 });
    assert.equal(await A.page.evaluate(() => client.state), 'reconnecting');
    assert.equal(await A.page.evaluate(() => client.loggedIn), true, 'a refused socket is not a sign-out');
    // The delays: 0.5 s doubling, each drawn from the upper half of its step.
    const [first, second, third] = await A.page.evaluate(() => {
      const [, t1, t2, t3] = window.socketTimes;
      return [t1 - window.droppedAt, t2 - t1, t3 - t2];
    });
    assert.ok(first >= 240 && first < 900, `first retry after ${first} ms (expected 250-500)`);
    assert.ok(second >= 490, `second retry after ${second} ms (expected 500-1000)`);
    assert.ok(third >= 990, `third retry after ${third} ms (expected 1000-2000)`);
    await A.page.evaluate(() => { window.refuseSockets = false; });
    await A.page.waitForFunction(() => client.state === 'connected', null, { timeout: 10000 });
  } finally {
    await A.context.close();
  }
});
