// The main screens (log in, conversation list, chat, group info, chatroom) at desktop and phone
// width, in light and dark: each is checked by axe-core for serious and critical accessibility
// violations, and a screenshot of each is written to the test-output folder
// (target/web-test-output/screens/; a set is kept in docs/screenshots/).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { uniqueName } from '../support/server.mjs';
import { OUTPUT_DIR, seriousViolations } from '../support/browser.mjs';
import {
  testServer, sdkUser, befriend, sendAll, logInThroughPage, until,
} from '../support/people.mjs';

const SHOTS = join(OUTPUT_DIR, 'screens');
const ROOM = 'lobby';

const env = testServer({ browser: true });
let people;
let direct;
let group;

before(async () => {
  await env.ready;
  mkdirSync(SHOTS, { recursive: true });
  const [alice, bob, carol, dave] = await Promise.all(
    ['alice', 'bob', 'carol', 'dave'].map((prefix) => sdkUser(env.url, { name: uniqueName(prefix) })),
  );
  people = { alice, bob, carol, dave };
  const names = { alice: 'Alice Martin', bob: 'Bob Chen', carol: 'Carol Diaz', dave: 'Dave Okafor' };
  await Promise.all(Object.entries(people).map(([key, p]) => p.client.updateProfile({
    display_name: names[key],
    status_text: key === 'bob' ? 'Packing for the weekend' : '',
  })));
  await befriend(alice, bob);
  await befriend(alice, carol);
  await befriend(alice, dave);
  await befriend(bob, carol);

  await sendAll(bob, { to: alice.id }, ['Hey Alice! Are we still on for Saturday?']);
  await sendAll(alice, { to: bob.id }, ['Yes! Leaving at 9 from the station.', 'I booked the cabin: https://example.org/cabins/42']);
  await sendAll(bob, { to: alice.id }, ['Perfect 🎉', 'I will bring the map\nand the snacks.']);
  direct = bob.client.directConversation(alice.id)?.id
    ?? (await until(() => bob.client.conversations().find((c) => c.peer === alice.id), { what: 'the direct conversation' })).id;

  const created = await alice.client.groupCreate({
    name: 'Weekend trip', description: 'Cabin, hiking, and who brings what.', members: [bob.id, carol.id],
  });
  group = created.id;
  await sendAll(alice, { conversation: group }, ['Welcome to the trip planning group!']);
  await sendAll(carol, { conversation: group }, ['Count me in. I can drive two people.']);
  await sendAll(bob, { conversation: group }, ['Great, I will take the train with Alice.']);
  await sendAll(dave, { to: alice.id }, ['Can you send me the photos from last time?']);

  for (const p of [bob, carol]) await p.client.roomJoin(ROOM);
  await bob.client.roomSend(ROOM, 'Hello everyone 👋');
  await carol.client.roomSend(ROOM, 'Hi Bob! Anyone up for a board game night?');
  await until(() => carol.client.roomMessages(ROOM).length >= 2, { what: 'the room messages' });
});

const variants = [
  { width: 1280, height: 800, colorScheme: 'light' },
  { width: 1280, height: 800, colorScheme: 'dark' },
  { width: 390, height: 844, colorScheme: 'light' },
  { width: 390, height: 844, colorScheme: 'dark' },
];

for (const variant of variants) {
  const tag = `${variant.width}-${variant.colorScheme}`;
  test(`main screens at ${variant.width} px, ${variant.colorScheme}: no serious accessibility violation`, async () => {
    const context = await env.browser.newContext({
      viewport: { width: variant.width, height: variant.height },
      colorScheme: variant.colorScheme,
    });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); d.dismiss().catch(() => {}); });
    const found = {};
    async function screen(name) {
      await page.evaluate(() => document.fonts.ready);
      await page.screenshot({ path: join(SHOTS, `${name}-${tag}.png`) });
      found[name] = await seriousViolations(page);
    }
    try {
      await page.goto(`${env.url}/login`);
      await page.getByRole('button', { name: 'Log in' }).waitFor();
      await screen('login');

      await logInThroughPage(page, people.alice.name);
      await page.getByText('Dave Okafor').first().waitFor();
      await page.getByText('Weekend trip').first().waitFor();
      await screen('conversations');

      await page.goto(`${env.url}/c/${direct}`);
      await page.getByRole('log', { name: 'Messages' }).getByText('and the snacks.').waitFor();
      await screen('chat');

      await page.goto(`${env.url}/c/${group}/info`);
      await page.getByText('Cabin, hiking, and who brings what.').first().waitFor();
      await page.getByText('Carol Diaz').first().waitFor();
      await screen('group-info');

      await page.goto(`${env.url}/rooms/${ROOM}`);
      const roomLog = page.getByRole('log', { name: `Messages in #${ROOM}` });
      await roomLog.getByText('Anyone up for a board game night?').waitFor();
      await roomLog.getByText('Carol Diaz').waitFor();
      await screen('room');
    } finally {
      await context.close();
    }
    assert.deepEqual(problems, []);
    const failing = Object.entries(found).filter(([, violations]) => violations.length > 0);
    assert.deepEqual(failing, [], `at ${tag}: ${JSON.stringify(failing, null, 1)}`);
    assert.equal(Object.keys(found).length, 5, 'every screen was checked');
  });
}
