// The web client's chat in a real headless Chromium against a real server: registration and
// friendship through the UI, live messages, read receipts, typing and presence; catching up
// after being offline; the session and history after a reload with scroll-back; and message
// text that must stay text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueName, PASSWORD } from '../support/server.mjs';
import { openApp, closeCleanly } from '../support/browser.mjs';
import {
  testServer, sdkUser, befriend, sendDirect, logInThroughPage, connected, navLink,
} from '../support/people.mjs';

const env = testServer({ browser: true });

// ---- helpers -------------------------------------------------------------------------------

async function uiRegister(page, name) {
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await connected(page);
}

async function uiLogin(page, name) {
  await logInThroughPage(page, name);
  await connected(page);
}

const row = (page, peerId) => page.locator(`a.conv[data-peer="${peerId}"]`);
const texts = (page) => page.locator('.msg-list .msg .msg-text').allTextContents();
const composer = (page) => page.getByRole('textbox', { name: 'Message', exact: true });

async function openApps(...opts) {
  return Promise.all(opts.map((o) => openApp(env.browser, `${env.url}/`, o)));
}

// ---- 1. register, befriend, chat -------------------------------------------------------------

test('two people register, become friends in the UI and chat: receipts, typing, presence', async () => {
  const [a, b] = await openApps({}, {});
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  await uiRegister(a.page, aliceName);
  await uiRegister(b.page, bobName);

  // Alice finds Bob in Contacts and sends a request; Bob accepts it.
  await navLink(b.page, 'Contacts').click();
  await navLink(a.page, 'Contacts').click();
  await a.page.getByLabel('Username').fill(bobName);
  await a.page.getByRole('button', { name: `Add friend ${bobName}` }).click();
  await b.page.getByRole('button', { name: `Accept ${aliceName}` }).click();
  await a.page.getByRole('button', { name: `Message ${bobName}` }).click();

  // First message to a user without a conversation: sent with `to`, then the URL is /c/<id>.
  await composer(a.page).fill('Hi Bob');
  await composer(a.page).press('Enter');
  await a.page.waitForURL(/\/c\/[^/]+$/);
  const convPath = new URL(a.page.url()).pathname;
  const bobId = await a.page.evaluate(() => document.querySelector('a.conv[aria-current="page"]')?.dataset.peer);
  assert.ok(bobId, 'the open conversation is highlighted in the list');
  const aliceId = await b.page.evaluate(async () => {
    for (let i = 0; i < 200; i += 1) {
      const el = document.querySelector('a.conv[data-peer]');
      if (el) return el.dataset.peer;
      await new Promise((r) => setTimeout(r, 50));
    }
    return null;
  });
  assert.ok(aliceId, 'Bob sees the new conversation');

  // Bob: an unread badge and "(1) Banter" until he opens it.
  await row(b.page, aliceId).locator('.badge', { hasText: '1' }).waitFor();
  await b.page.waitForFunction(() => document.title === '(1) Banter');
  assert.match(await row(b.page, aliceId).locator('.conv-preview').textContent(), /Hi Bob/);
  await row(b.page, aliceId).click();
  await b.page.waitForURL((u) => u.pathname === convPath);
  await b.page.locator('.msg.other .msg-text', { hasText: 'Hi Bob' }).waitFor();
  await b.page.waitForFunction(() => document.title === 'Banter');
  assert.equal(await row(b.page, aliceId).locator('.badge').count(), 0, 'no badge once read');

  // Alice: her message turns "read".
  await a.page.locator('.msg.own[data-state="read"] .msg-text', { hasText: 'Hi Bob' }).waitFor();
  assert.equal(await a.page.locator('.msg.own[data-state="read"] .sr-only').first().textContent(), 'Read');

  // Bob types: Alice sees it; his reply arrives and the indicator goes.
  await composer(b.page).pressSequentially('Hello Al', { delay: 20 });
  await a.page.locator('.typing-line', { hasText: `${bobName} is typing…` }).waitFor();
  await composer(b.page).pressSequentially('ice', { delay: 20 });
  await composer(b.page).press('Enter');
  await a.page.locator('.msg.other .msg-text', { hasText: 'Hello Alice' }).waitFor();
  await a.page.waitForFunction(() => document.querySelector('.typing-line').textContent === '');
  assert.deepEqual(await texts(a.page), ['Hi Bob', 'Hello Alice']);
  assert.deepEqual(await texts(b.page), ['Hi Bob', 'Hello Alice']);
  assert.equal(await composer(b.page).inputValue(), '', 'the composer is cleared after sending');

  // Presence: Bob is online for Alice, then offline once his page is gone.
  await row(a.page, bobId).getByRole('img', { name: 'Online' }).waitFor();
  await b.context.close();
  await row(a.page, bobId).getByRole('img', { name: 'Offline' }).waitFor();
  await a.page.locator('.chat-sub', { hasText: /last seen|offline/ }).waitFor();

  // "Message" on a friend with a conversation opens that conversation.
  await navLink(a.page, 'Contacts').click();
  await a.page.getByRole('button', { name: `Message ${bobName}` }).click();
  await a.page.waitForURL((u) => u.pathname === convPath);
  await a.page.locator('.msg-text', { hasText: 'Hello Alice' }).waitFor();
  assert.deepEqual(await texts(a.page), ['Hi Bob', 'Hello Alice']);

  assert.deepEqual(a.dialogs, []);
  assert.deepEqual(a.errors.map(String), []);
  assert.deepEqual(b.errors.map(String), []);
  await a.context.close();
});

// ---- 3. offline and back -------------------------------------------------------------------------

test('offline: 20 messages sent meanwhile arrive once and in order; a message written offline is sent once', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  await befriend(alice, bob);
  const convId = await sendDirect(alice, bob, ['before']);
  alice.client.disconnect();

  const [a, b] = await openApps({}, {});
  await uiLogin(a.page, alice.name);
  await uiLogin(b.page, bob.name);
  await row(a.page, bob.id).click();
  await row(b.page, alice.id).click();
  await b.page.locator('.msg-text', { hasText: 'before' }).waitFor();
  await a.page.locator('.msg-text', { hasText: 'before' }).waitFor();

  await b.context.setOffline(true);
  await b.page.locator('[data-testid="connection"]:not([data-state="connected"])').waitFor();

  const sent = Array.from({ length: 20 }, (_, i) => `offline ${i + 1}`);
  for (const text of sent) {
    await composer(a.page).fill(text);
    await composer(a.page).press('Enter');
  }
  await a.page.locator('.msg.own[data-state="sent"] .msg-text', { hasText: 'offline 20' }).waitFor();
  assert.equal(await a.page.locator('.msg.own[data-state="sending"]').count(), 0);

  // Bob writes while offline: shown as "sending".
  await composer(b.page).fill('written offline');
  await composer(b.page).press('Enter');
  const pending = b.page.locator('.msg.own .msg-text', { hasText: 'written offline' });
  await pending.waitFor();
  assert.equal(await b.page.locator('.msg.own[data-state="sending"] .msg-text', { hasText: 'written offline' }).count(), 1);
  assert.equal((await texts(b.page)).filter((t) => t.startsWith('offline ')).length, 0, 'nothing arrives while offline');

  await b.context.setOffline(false);
  await connected(b.page);
  await b.page.locator('.msg.other .msg-text', { hasText: 'offline 20' }).waitFor();
  await b.page.locator('.msg.own[data-state="sent"], .msg.own[data-state="read"]').filter({ hasText: 'written offline' }).waitFor();
  const seen = await texts(b.page);
  assert.deepEqual(seen.filter((t) => t.startsWith('offline ')), sent, 'all 20, in order, once');
  assert.equal(seen.filter((t) => t === 'written offline').length, 1);
  assert.equal(seen[0], 'before');

  await a.page.locator('.msg.other .msg-text', { hasText: 'written offline' }).waitFor();
  assert.equal((await texts(a.page)).filter((t) => t === 'written offline').length, 1, 'the other side sees it once');
  // And the server holds it once too.
  const history = await bob.client.request('history', { conversation: convId, limit: 100 });
  assert.equal(history.messages.filter((m) => m.text === 'written offline').length, 1);
  assert.equal(history.messages.length, 22);

  assert.deepEqual([...a.dialogs, ...b.dialogs], []);
  await a.context.close();
  await b.context.close();
});

// ---- 4. reload and scroll-back -----------------------------------------------------------------

test('a reload keeps the session, unread counts and history; scrolling up loads every older page', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const all = Array.from({ length: 120 }, (_, i) => `message ${i + 1}`);
  const convId = await sendDirect(bob, alice, all);

  const { page, context, dialogs, errors } = await openApp(env.browser, `${env.url}/`);
  await uiLogin(page, alice.name);
  await row(page, bob.id).locator('.badge', { hasText: '99+' }).waitFor();
  await page.waitForFunction(() => document.title === '(120) Banter');

  // Reload before reading: still logged in, same unread count.
  await page.reload();
  await connected(page);
  assert.equal(await page.getByRole('button', { name: 'Log in' }).count(), 0);
  await row(page, bob.id).locator('.badge', { hasText: '99+' }).waitFor();
  await page.waitForFunction(() => document.title === '(120) Banter');

  await row(page, bob.id).click();
  await page.waitForURL((u) => u.pathname === `/c/${convId}`);
  await page.locator('.msg-text', { hasText: /^message 120$/ }).waitFor();
  await page.waitForFunction(() => document.title === 'Banter');

  // Reload inside the conversation: the chat and its history come back.
  await page.reload();
  await connected(page);
  await page.locator('.msg-text', { hasText: /^message 120$/ }).waitFor();
  assert.equal(await row(page, bob.id).locator('.badge').count(), 0, 'read stays read after a reload');
  const loadedBefore = (await texts(page)).length;
  assert.ok(loadedBefore < 120, `only the newest page is loaded at first (${loadedBefore})`);

  // One step up: the first shown message keeps its place on screen while older ones are prepended.
  const before = await page.evaluate(() => {
    const box = document.querySelector('.messages');
    box.scrollTop = 0;
    const first = document.querySelector('.msg-list .msg');
    return { text: first.textContent, top: first.getBoundingClientRect().top - box.getBoundingClientRect().top };
  });
  await page.waitForFunction((n) => document.querySelectorAll('.msg-list .msg').length > n, loadedBefore);
  const afterTop = await page.evaluate((text) => {
    const box = document.querySelector('.messages');
    const el = [...document.querySelectorAll('.msg-list .msg')].find((m) => m.textContent === text);
    return el.getBoundingClientRect().top - box.getBoundingClientRect().top;
  }, before.text);
  assert.ok(Math.abs(afterTop - before.top) <= 2, `no jump: ${before.top} -> ${afterTop}`);

  // Keep going up until the first message is there.
  await page.waitForFunction(() => {
    const box = document.querySelector('.messages');
    box.scrollTop = 0;
    return [...document.querySelectorAll('.msg-list .msg-text')].some((e) => e.textContent === 'message 1');
  }, null, { polling: 100, timeout: 20000 });
  await page.locator('.older', { hasText: 'beginning of the conversation' }).waitFor();
  assert.deepEqual(await texts(page), all, 'every message once, in order');

  // Scrolled up, a new message does not move the view: a jump button appears instead.
  const scrolled = await page.evaluate(() => {
    const box = document.querySelector('.messages');
    box.scrollTop = 400;
    return box.scrollTop;
  });
  bob.client.send({ conversation: convId, text: 'message 121' });
  const jump = page.getByRole('button', { name: '1 new message' });
  await jump.waitFor();
  assert.equal(await page.evaluate(() => document.querySelector('.messages').scrollTop), scrolled);
  await jump.click();
  await jump.waitFor({ state: 'hidden' });
  await page.waitForFunction(() => {
    const box = document.querySelector('.messages');
    return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  });
  // At the bottom, the next one keeps the view at the bottom.
  bob.client.send({ conversation: convId, text: 'message 122' });
  await page.locator('.msg-text', { hasText: /^message 122$/ }).waitFor();
  await page.waitForFunction(() => {
    const box = document.querySelector('.messages');
    return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  });
  assert.equal(await jump.isVisible(), false);

  await closeCleanly({ context, dialogs, errors });
});

// ---- 5. text stays text ------------------------------------------------------------------------

test('markup and javascript: links in messages render as literal text', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const evil = [
    '<img src=x onerror=alert(1)>',
    '<script>alert(1)</script>',
    'javascript:alert(1)',
    '[click](javascript:alert(1)) and data:text/html,<b>x</b>',
    'line one\nline two https://example.com/path?q=1.',
  ];
  const convId = await sendDirect(bob, alice, evil);

  const { page, context, dialogs } = await openApp(env.browser, `${env.url}/`);
  await uiLogin(page, alice.name);
  await row(page, bob.id).click();
  await page.waitForURL((u) => u.pathname === `/c/${convId}`);
  await page.locator('.msg-text', { hasText: 'line two' }).waitFor();

  // Alice sends one too (her own bubble goes through the same path).
  await composer(page).fill('<img src=y onerror=alert(2)>');
  await composer(page).press('Enter');
  await page.locator('.msg.own .msg-text', { hasText: '<img src=y onerror=alert(2)>' }).waitFor();

  assert.deepEqual(await texts(page), [...evil, '<img src=y onerror=alert(2)>']);
  assert.equal(await page.locator('.msg-list img, .msg-list script, .msg-list b').count(), 0);
  assert.equal(await page.locator('a[href^="javascript:" i], a[href^="data:" i]').count(), 0);
  const links = await page.locator('.msg-list a').evaluateAll((as) => as.map((a) => ({
    href: a.getAttribute('href'), text: a.textContent, target: a.target, rel: a.rel,
  })));
  assert.deepEqual(links, [{
    href: 'https://example.com/path?q=1', text: 'https://example.com/path?q=1', target: '_blank', rel: 'noopener noreferrer',
  }]);
  // Newlines are kept (pre-wrap), not turned into markup.
  const multi = page.locator('.msg-text', { hasText: 'line one' });
  assert.equal(await multi.evaluate((el) => getComputedStyle(el).whiteSpace), 'pre-wrap');
  assert.equal(await multi.evaluate((el) => el.querySelectorAll('br').length), 0);
  // The list preview is text as well.
  assert.equal(await row(page, bob.id).locator('img').count(), 0);

  assert.deepEqual(dialogs, [], 'no script ran');
  await context.close();
});
