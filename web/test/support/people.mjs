// Test users driven through the browser SDK in node, for setting up what a browser test is not
// about (accounts, friendships, history) quickly and through the real server.
import { register, uniqueName, PASSWORD } from './server.mjs';
import { BanterClient, memoryStorage } from '../../app/sdk.js';

/** Polls `fn` (sync or async) until it returns something truthy, and returns that. */
export async function until(fn, { timeout = 15000, what = 'a condition' } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Registers `name` (or a unique name from `prefix`), logs in and connects through the SDK.
 * @returns {Promise<{name: string, id: string, client: BanterClient}>}
 */
export async function sdkUser(url, { prefix = 'u', name = uniqueName(prefix) } = {}) {
  await register(url, name);
  const client = new BanterClient({ baseUrl: url, storage: memoryStorage() });
  await client.login(name, PASSWORD, 'test setup');
  const hello = new Promise((resolve) => client.addEventListener('hello', resolve, { once: true }));
  client.connect();
  await hello;
  return { name, id: client.me.id, client };
}

/** Makes `a` and `b` friends. */
export async function befriend(a, b) {
  await a.client.friendRequest(b.id);
  await b.client.friendAccept(a.id);
}

/** Sends `texts` in order from `from` (to a user or a conversation) and waits for every ack. */
export async function sendAll(from, target, texts) {
  for (const text of texts) from.client.send({ ...target, text });
  await until(() => from.client.outbox().length === 0, { what: 'every send acknowledged' });
}

/** Logs `name` in through the page's form and waits for the app. */
export async function logInThroughPage(page, name, password = PASSWORD) {
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}
