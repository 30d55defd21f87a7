// Chatrooms in two browsers: join by name (with validation), the occupant count goes to 2,
// messages go both ways and render as text, and leaving lowers the count again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { register, uniqueName } from '../support/server.mjs';
import { OUTPUT_DIR, closeCleanly } from '../support/browser.mjs';
import { testServer, openAs, navLink } from '../support/people.mjs';

const env = testServer({ browser: true });

const person = (username, opts) => openAs(env.browser, env.url, username, opts);

async function joinRoom(page, name) {
  await navLink(page, 'Rooms').click();
  await page.getByLabel('Room name').fill(name);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.waitForURL(new RegExp(`/rooms/${name}$`));
}

test('two people join a room by name, see each other and talk', async () => {
  const room = `r${process.pid % 10000}-${Date.now() % 100000}`;
  const aName = uniqueName('ann');
  const bName = uniqueName('ben');
  await register(env.url, aName);
  await register(env.url, bName);
  const ann = await person(aName);
  const ben = await person(bName, { width: 390, height: 844, colorScheme: 'dark' });

  // An invalid name is refused in the form, with the reason.
  await navLink(ann.page, 'Rooms').click();
  await ann.page.getByLabel('Room name').fill('No Spaces!');
  await ann.page.getByRole('button', { name: 'Join', exact: true }).click();
  await ann.page.getByText(/Use only lower-case letters/).waitFor();
  assert.match(ann.page.url(), /\/rooms$/);
  await ann.page.getByRole('link', { name: /lobby/ }).waitFor();

  await joinRoom(ann.page, room);
  const annCount = ann.page.getByTestId('room-count');
  await annCount.getByText('1 person here').waitFor();
  await ann.page.getByText('Room history is not kept', { exact: false }).waitFor();

  await joinRoom(ben.page, room);
  await annCount.getByText('2 people here').waitFor();
  await ben.page.getByTestId('room-count').getByText('2 people here').waitFor();

  // Ann writes (Shift+Enter makes a new line, Enter sends); Ben sees it with her name.
  const annBox = ann.page.getByRole('textbox', { name: `Message #${room}` });
  await annBox.fill('hello room');
  await annBox.press('Shift+Enter');
  await annBox.pressSequentially('<b>not bold</b> https://example.org/x');
  await annBox.press('Enter');
  const benLog = ben.page.getByRole('log', { name: `Messages in #${room}` });
  const msg = benLog.getByRole('listitem').filter({ hasText: 'hello room' });
  await msg.waitFor();
  await msg.getByText(aName).waitFor();
  assert.equal(await msg.locator('b').count(), 0, 'markup stays text');
  const link = msg.getByRole('link', { name: 'https://example.org/x' });
  assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
  assert.equal(await link.getAttribute('target'), '_blank');

  // Ben answers; Ann sees it.
  const benBox = ben.page.getByRole('textbox', { name: `Message #${room}` });
  await benBox.fill('hi ann');
  await benBox.press('Enter');
  const annLog = ann.page.getByRole('log', { name: `Messages in #${room}` });
  await annLog.getByText('hi ann').waitFor();
  await benLog.getByText('hi ann').waitFor();
  assert.equal(await annBox.inputValue(), '');
  await ben.page.screenshot({ path: join(OUTPUT_DIR, 'room-390-dark.png') });

  // Ben leaves: Ann's count drops back to one.
  await ben.page.getByRole('button', { name: 'Leave room' }).click();
  await ben.page.waitForURL(/\/rooms$/);
  await annCount.getByText('1 person here').waitFor();

  await closeCleanly(ann, ben);
});
