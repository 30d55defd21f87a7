// The chat's finer features in a real headless Chromium: editing and recalling, the emoji
// picker by keyboard, failed sends with Retry and Discard, group system lines and a dissolved
// group's composer, the phone layout, log-in errors with Retry-After, desktop notifications,
// and an accessibility scan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueName, PASSWORD } from '../support/server.mjs';
import { openApp, seriousViolations, closeCleanly } from '../support/browser.mjs';
import {
  testServer, until, sdkUser, befriend, sendDirect, logInThroughPage, openAs, connected,
} from '../support/people.mjs';
import { BanterClient, memoryStorage } from '../../app/sdk.js';

// One wrong password per account, then a long backoff: the log-in test sees Retry-After.
const env = testServer({ args: ['--login-failures-per-account', '1', '--login-backoff-ms', '30000'], browser: true });

const composer = (page) => page.getByRole('textbox', { name: 'Message', exact: true });
const texts = (page) => page.locator('.msg-list .msg .msg-text').allTextContents();

/** A person in the browser, logged in and connected. */
async function login(name, opts) {
  const app = await openAs(env.browser, env.url, name, opts);
  await connected(app.page);
  return app;
}

test('own messages: edit inline (Enter saves, Esc cancels), recall, emoji by keyboard', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['hello']);
  const { page, context, dialogs, errors } = await login(alice.name);
  await page.goto(`${env.url}/c/${convId}`);
  await connected(page);
  await page.locator('.msg-text', { hasText: 'hello' }).waitFor();

  await composer(page).fill('frist try');
  await composer(page).press('Enter');
  const own = page.locator('.msg.own', { hasText: 'frist try' });
  await own.and(page.locator('[data-state="sent"], [data-state="read"]')).waitFor();

  // Esc cancels an edit.
  await own.hover();
  await own.getByRole('button', { name: 'Edit message' }).click();
  const editor = page.getByRole('textbox', { name: 'Edit message' });
  await editor.fill('never saved');
  await editor.press('Escape');
  await editor.waitFor({ state: 'detached' });
  assert.deepEqual(await texts(page), ['hello', 'frist try']);

  // Enter saves; the peer sees the new text and the "edited" marker.
  await own.hover();
  await own.getByRole('button', { name: 'Edit message' }).click();
  await editor.fill('first try');
  await editor.press('Enter');
  await page.locator('.msg.own .msg-text', { hasText: 'first try' }).waitFor();
  await page.locator('.msg.own .msg-edited', { hasText: 'edited' }).waitFor();
  await until(() => bob.client.messages(convId).some((m) => m.text === 'first try' && m.edited_at), { what: 'the edit at the peer' });

  // Recall asks first, then the bubble says so (for the peer too).
  const edited = page.locator('.msg.own', { hasText: 'first try' });
  await edited.hover();
  await edited.getByRole('button', { name: 'Recall message' }).click();
  await page.getByRole('button', { name: 'Recall', exact: true }).click();
  await page.locator('.msg.own .msg-recalled', { hasText: 'This message was recalled' }).waitFor();
  assert.equal(await page.locator('.msg.own', { hasText: 'first try' }).count(), 0);
  await until(() => bob.client.messages(convId).some((m) => m.recalled), { what: 'the recall at the peer' });
  assert.match(await page.locator(`a.conv[data-conversation="${convId}"] .conv-preview`).textContent(), /message recalled/);

  // Near the length limit a counter shows; past it, sending is off.
  const max = 16384; // limits.max_text_bytes by default
  await composer(page).fill('x'.repeat(max - 100));
  await page.locator('.composer-counter', { hasText: `${(max - 100).toLocaleString('en-US')} / ${max.toLocaleString('en-US')}` }).waitFor();
  await composer(page).fill('é'.repeat(max / 2 + 1));
  await page.locator('.composer-counter.over', { hasText: 'too long' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Send' }).isDisabled(), true);
  await composer(page).press('Enter');
  assert.equal(await page.locator('.msg.own').count(), 1, 'nothing sent past the limit');

  // Emoji: open with the button, move with the arrows, Enter inserts at the caret, Esc closes.
  await composer(page).fill('ab');
  await composer(page).evaluate((el) => el.setSelectionRange(1, 1));
  await page.getByRole('button', { name: 'Insert emoji' }).click();
  const picker = page.getByRole('dialog', { name: 'Emoji picker' });
  await picker.waitFor();
  const cells = picker.locator('.emoji-grid button');
  assert.ok(await cells.count() >= 200, 'a few hundred emoji');
  await page.keyboard.press('ArrowRight');
  const chosen = await page.evaluate(() => document.activeElement.dataset.emoji);
  assert.ok(chosen, 'arrow keys move between emoji');
  await page.keyboard.press('Enter');
  assert.equal(await composer(page).inputValue(), `a${chosen}b`);
  await page.keyboard.press('Escape');
  await picker.waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'composer-input', 'focus returns to the composer');
  assert.equal(await page.getByRole('button', { name: 'Insert emoji' }).getAttribute('aria-expanded'), 'false');

  await closeCleanly({ context, dialogs, errors });
});

test('a refused send shows as failed with Retry and Discard', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['hi']);
  await bob.client.block(alice.id);
  const { page, context } = await login(alice.name);
  await page.locator(`a.conv[data-conversation="${convId}"]`).click();
  await page.locator('.msg-text', { hasText: 'hi' }).waitFor();

  await composer(page).fill('are you there?');
  await composer(page).press('Enter');
  const failed = page.locator('.msg.own[data-state="failed"]', { hasText: 'are you there?' });
  await failed.waitFor();
  assert.match(await failed.locator('.msg-failed').textContent(), /Not sent: you cannot message this person/);
  await failed.getByRole('button', { name: 'Retry' }).click();
  await failed.waitFor();
  await failed.getByRole('button', { name: 'Discard' }).click();
  await failed.waitFor({ state: 'detached' });
  assert.deepEqual(await texts(page), ['hi']);
  await context.close();
});

test('groups: sender names, system lines in words, group info link, dissolved group composer', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice', profile: { display_name: 'Alice A' } });
  const bob = await sdkUser(env.url, { prefix: 'bob', profile: { display_name: 'Bob B' } });
  const carol = await sdkUser(env.url, { prefix: 'carol', profile: { display_name: 'Carol C' } });
  await befriend(alice, bob);
  await befriend(alice, carol);
  const group = await alice.client.groupCreate({ name: 'Team', members: [bob.id] });
  await alice.client.groupAdd(group.id, [carol.id]);
  bob.client.send({ conversation: group.id, text: 'hi team' });
  await until(() => bob.client.outbox().length === 0);
  await carol.client.groupLeave(group.id);

  const { page, context } = await login(alice.name);
  await page.locator(`a.conv[data-conversation="${group.id}"]`).click();
  await page.getByRole('heading', { name: 'Team' }).waitFor();
  const system = page.locator('.msg-system');
  await system.filter({ hasText: 'You created the group “Team”' }).waitFor();
  await system.filter({ hasText: 'You added Carol C' }).waitFor();
  await system.filter({ hasText: 'Carol C left' }).waitFor();
  await page.locator('.msg.other .msg-sender', { hasText: 'Bob B' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Group info' }).getAttribute('href'), `/c/${group.id}/info`);
  assert.equal(await composer(page).isEnabled(), true);

  await alice.client.groupDissolve(group.id);
  await system.filter({ hasText: 'You dissolved the group' }).waitFor();
  await page.locator('.composer-disabled', { hasText: 'This group was dissolved' }).waitFor();
  assert.equal(await composer(page).isVisible(), false);
  await context.close();
});

test('phone width: one column, the list or the chat with a back button; the filter box', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob', profile: { display_name: 'Bobby' } });
  const carol = await sdkUser(env.url, { prefix: 'carol', profile: { display_name: 'Caroline' } });
  await befriend(alice, bob);
  await befriend(alice, carol);
  const bobConv = await sendDirect(bob, alice, ['from bob']);
  await sendDirect(carol, alice, ['from carol']);
  const { page, context } = await login(alice.name, { width: 390, height: 760 });

  const list = page.getByRole('navigation', { name: 'Conversations' });
  await list.getByRole('link', { name: /Bobby/ }).waitFor();
  await page.getByLabel('Filter conversations by name').fill('CAROL');
  await list.getByRole('link', { name: /Bobby/ }).waitFor({ state: 'detached' });
  assert.equal(await list.getByRole('link').count(), 1);
  await page.getByLabel('Filter conversations by name').fill('');
  await list.getByRole('link', { name: /Bobby/ }).click();
  await page.locator('.msg-text', { hasText: 'from bob' }).waitFor();
  assert.equal(new URL(page.url()).pathname, `/c/${bobConv}`);
  assert.equal(await list.isVisible(), false, 'the list is hidden while a chat is open');
  assert.equal(await page.getByRole('status').filter({ hasText: 'Connected' }).isVisible(), true, 'the connection state stays visible');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no horizontal scrolling (${width})`);
  await page.getByRole('link', { name: 'Back to chats' }).click();
  await list.waitFor();
  assert.equal(new URL(page.url()).pathname, '/');
  await context.close();
});

test('log-in errors in words, Retry-After honoured; log out from the sidebar menu', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const { page, context } = await openApp(env.browser, `${env.url}/`);
  await page.getByLabel('Username').fill(alice.name);
  await page.getByLabel('Password', { exact: true }).fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: /Too many attempts\. Try again in \d+ seconds\./ }).waitFor();
  const held = page.getByRole('button', { name: /Try again in \d+ s/ });
  assert.equal(await held.isDisabled(), true, 'the button waits out Retry-After');

  // Registration errors too.
  await page.goto(`${env.url}/register`);
  await page.getByLabel('Username').fill(alice.name);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('alert').filter({ hasText: 'That username is already taken' }).waitFor();

  // A session, then log out from the account menu.
  const bob = uniqueName('bob');
  await page.getByLabel('Username').fill(bob);
  await page.getByRole('button', { name: 'Create account' }).click();
  await connected(page);
  await page.getByRole('button', { name: 'Account menu' }).click();
  await page.getByRole('menuitem', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  await page.getByText('You have logged out.').waitFor();
  await page.reload();
  await page.getByRole('button', { name: 'Log in' }).waitFor();

  // A session revoked elsewhere ends here too, with a message.
  await logInThroughPage(page, bob);
  await connected(page);
  const other = new BanterClient({ baseUrl: env.url, storage: memoryStorage() });
  await other.login(bob, PASSWORD, 'other device');
  const browserSession = (await other.sessions()).find((x) => !x.current && x.device !== 'other device');
  await other.revokeSession(browserSession.id);
  await page.getByText('This device was signed out. Log in again to continue.').waitFor();
  assert.equal(new URL(page.url()).pathname, '/login');
  await context.close();
});

test('desktop notifications are opt-in and fire for messages from others while hidden', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob', profile: { display_name: 'Bob N' } });
  await befriend(alice, bob);
  const convId = await sendDirect(bob, alice, ['first']);
  const app = await login(alice.name);
  const { page, context } = app;
  await context.grantPermissions(['notifications']);
  await page.locator(`a.conv[data-conversation="${convId}"]`, { hasText: 'Bob N' }).waitFor();

  await page.getByRole('button', { name: 'Account menu' }).click();
  const toggle = page.getByRole('menuitemcheckbox', { name: 'Enable desktop notifications' });
  await toggle.click();
  await page.getByRole('menuitemcheckbox', { name: 'Desktop notifications: on' }).waitFor();

  // The page goes to the background; record notifications instead of showing them.
  await page.evaluate(() => {
    window.shown = [];
    const Real = window.Notification;
    window.Notification = class {
      static get permission() { return Real.permission; }
      static requestPermission() { return Real.requestPermission(); }
      constructor(title, options) { window.shown.push({ title, body: options?.body }); }
      close() {}
    };
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
  });
  bob.client.send({ conversation: convId, text: 'ping while away' });
  await page.waitForFunction(() => window.shown.length === 1);
  assert.deepEqual(await page.evaluate(() => window.shown), [{ title: 'Bob N', body: 'ping while away' }]);
  await page.waitForFunction(() => document.title === '(2) Banter');
  await context.close();
});

test('accessibility: no serious axe violations on the log-in screen and in a chat', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['see https://example.com']);
  for (const colorScheme of ['light', 'dark']) {
    const { page, context } = await openApp(env.browser, `${env.url}/login`, { colorScheme });
    await page.getByLabel('Username').waitFor();
    assert.deepEqual(await seriousViolations(page), [], `log-in screen (${colorScheme})`);
    await logInThroughPage(page, alice.name);
    await connected(page);
    await page.locator(`a.conv[data-conversation="${convId}"]`).click();
    await page.locator('.msg-text', { hasText: 'see' }).waitFor();
    await composer(page).fill('mine');
    await composer(page).press('Enter');
    await page.locator('.msg.own[data-state="sent"], .msg.own[data-state="read"]').last().waitFor();
    assert.deepEqual(await seriousViolations(page), [], `chat (${colorScheme})`);
    // Keyboard: from the composer, Shift+Tab reaches the emoji button with a visible focus ring.
    await page.keyboard.press('Shift+Tab');
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Insert emoji');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none');
    await context.close();
  }
});
