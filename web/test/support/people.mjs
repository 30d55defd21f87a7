// What the web tests share: the server (and browser) a test file runs against; test users
// driven through the browser SDK in node, for setting up what a browser test is not about
// (accounts, friendships, history) quickly and through the real server; polling with `until`;
// and the steps every browser test takes as a person (logging in, waiting for the connection).
import { before, after } from 'node:test';
import { startServer, register, uniqueName, PASSWORD } from './server.mjs';
import { launch, openApp } from './browser.mjs';
import { BanterClient, memoryStorage } from '../../app/sdk.js';

/**
 * Polls `fn` (sync or async) every 25 ms until it returns something truthy, and returns that.
 * A throw counts as not yet. After `timeout` ms it fails, naming `what` and the last error or value.
 */
export async function until(fn, { timeout = 15000, what = 'a condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) {
      const detail = last instanceof Error ? `: ${last.message}` : ` (last value: ${JSON.stringify(last)})`;
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Every client sdkUser connected or testServer's `track` was given, for disconnectAll. */
const connectedClients = new Set();

/**
 * Registers `name` (or a unique name from `prefix`), logs in and connects through the SDK, and
 * saves `profile` fields if given.
 * @returns {Promise<{name: string, id: string, client: BanterClient}>}
 */
export async function sdkUser(url, { prefix = 'u', name = uniqueName(prefix), profile } = {}) {
  await register(url, name);
  const client = new BanterClient({ baseUrl: url, storage: memoryStorage() });
  await client.login(name, PASSWORD, 'test setup');
  const hello = new Promise((resolve) => client.addEventListener('hello', resolve, { once: true }));
  client.connect();
  connectedClients.add(client);
  await hello;
  if (profile) await client.updateProfile(profile);
  return { name, id: client.me.id, client };
}

/** Disconnects every client sdkUser connected or `track` was given. */
function disconnectAll() {
  for (const client of connectedClients) {
    try { client.disconnect(); } catch { /* already closed */ }
  }
  connectedClients.clear();
}

/**
 * For the test file that calls it: a fresh server (`args`: extra `serve` flags) and, with
 * `browser`, a headless Chromium, started before its tests and stopped after them, once every
 * client that sdkUser connected or `track` was given is disconnected. Returns {url, server,
 * browser, track, ready}: the first three are set when the tests run. Node runs a file's
 * `before` hooks side by side, so a hook of the file's own awaits `ready` first.
 */
export function testServer({ args = [], browser = false } = {}) {
  let up;
  const env = {
    server: null,
    browser: null,
    get url() { return env.server.url; },
    /** Resolves once the server (and browser) are up. */
    ready: new Promise((resolve, reject) => { up = { resolve, reject }; }),
    /** Disconnects `clients` after the tests; returns the one client given, or all of them. */
    track: (...clients) => {
      for (const client of clients) connectedClients.add(client);
      return clients.length === 1 ? clients[0] : clients;
    },
  };
  env.ready.catch(() => {}); // reported by the hook below
  before(async () => {
    try {
      env.server = await startServer(args);
      if (browser) env.browser = await launch();
      up.resolve();
    } catch (err) {
      up.reject(err);
      throw err;
    }
  });
  after(async () => {
    disconnectAll();
    await env.browser?.close();
    await env.server?.stop();
  });
  return env;
}

/** Makes `a` and `b` friends. */
export async function befriend(a, b) {
  await a.client.friendRequest(b.id);
  await b.client.friendAccept(a.id);
}

/** Sends `texts` in order from `from` (to a user or a conversation) and waits for every ack. */
export async function sendAll(from, target, texts) {
  for (const text of texts) from.client.send({ ...target, text });
  await until(() => from.client.outbox().length === 0, { timeout: 30000, what: 'every send acknowledged' });
}

/**
 * Sends `texts` from `from` to the user `to`: the first one starts the direct conversation, the
 * rest go into it. Waits for every ack and returns the conversation id.
 */
export async function sendDirect(from, to, texts) {
  await sendAll(from, { to: to.id }, texts.slice(0, 1));
  const conversation = from.client.directConversation(to.id).id;
  await sendAll(from, { conversation }, texts.slice(1));
  return conversation;
}

/** Logs `name` in through the page's form and waits for the app. */
export async function logInThroughPage(page, name, password = PASSWORD) {
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

/**
 * A person: a fresh browser context on `url`'s log-in page, logged in as `name`.
 * `opts` as for openApp (viewport, colour scheme). Returns openApp's {context, page, dialogs, errors}.
 */
export async function openAs(browser, url, name, opts) {
  const session = await openApp(browser, `${url}/login`, opts);
  await logInThroughPage(session.page, name);
  return session;
}

/** Waits until the page's connection indicator says connected. */
export function connected(page) {
  return page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: 15000 });
}

/** The sidebar's navigation link `name` (Chats, Contacts, Rooms, …). */
export function navLink(page, name) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
}
