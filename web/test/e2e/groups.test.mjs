// A group of three in three browsers: created, filled and used through the UI; the owner
// removes a member from group info, and the removed member stops seeing new messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { OUTPUT_DIR, closeCleanly } from '../support/browser.mjs';
import { testServer, sdkUser, befriend, openAs, navLink } from '../support/people.mjs';

const env = testServer({ browser: true });

const person = (username, opts) => openAs(env.browser, env.url, username, opts);

/** Client-side navigation (what an in-app link does), without reloading the page. */
async function go(page, path) {
  await page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
}

async function say(page, text) {
  const box = page.getByRole('textbox', { name: 'Message', exact: true });
  await box.fill(text);
  await box.press('Enter');
}

function timeline(page) {
  return page.getByRole('log', { name: 'Messages' });
}

test('a group of three chats; a removed member stops receiving', async () => {
  const [a, b, c] = await Promise.all(['alice', 'bob', 'carol'].map((prefix) => sdkUser(env.url, { prefix })));
  const names = { alice: a.name, bob: b.name, carol: c.name };
  await befriend(a, b);
  await befriend(a, c);
  b.client.disconnect();
  c.client.disconnect();

  const alice = await person(names.alice);
  const bob = await person(names.bob);
  const carol = await person(names.carol, { width: 390, height: 844 });
  const groupName = `Trip ${Date.now() % 100000}`;

  // Alice creates the group from the sidebar, picking both friends.
  await navLink(alice.page, 'New group').click();
  await alice.page.waitForURL(/\/groups\/new$/);
  await alice.page.getByLabel('Group name').fill(groupName);
  await alice.page.getByLabel('Description').fill('Planning the summer trip');
  const picker = alice.page.getByRole('list', { name: 'Friends to add' });
  await picker.getByLabel(names.bob).check();
  await picker.getByLabel(names.carol).check();
  await alice.page.getByRole('button', { name: 'Create group' }).click();
  await alice.page.waitForURL(/\/c\/[^/]+$/);
  const groupId = decodeURIComponent(new URL(alice.page.url()).pathname.split('/')[2]);
  assert.ok(groupId, 'navigated to the new group');

  // Bob and Carol find the group in their conversation lists.
  for (const p of [bob.page, carol.page]) {
    const entry = p.getByRole('link', { name: new RegExp(groupName) }).first();
    await entry.waitFor();
    await entry.click();
    await p.waitForURL(new RegExp(`/c/${groupId}$`));
  }

  // Everyone speaks; everyone sees all three messages.
  await say(alice.page, 'hello from alice');
  await say(bob.page, 'bob here');
  await say(carol.page, 'carol says hi');
  for (const p of [alice.page, bob.page, carol.page]) {
    for (const text of ['hello from alice', 'bob here', 'carol says hi']) {
      await timeline(p).getByText(text, { exact: true }).waitFor();
    }
  }

  // Alice opens group info: three members, she is the owner.
  await alice.page.getByRole('link', { name: 'Group info' }).click();
  await alice.page.waitForURL(new RegExp(`/c/${groupId}/info$`));
  const members = alice.page.getByRole('list', { name: 'Members' });
  await members.getByRole('listitem').nth(2).waitFor();
  assert.equal(await members.getByRole('listitem').count(), 3);
  const row = (n) => members.getByRole('listitem').filter({ hasText: n });
  await row(names.alice).getByText('Owner', { exact: true }).waitFor();

  // She makes Bob an admin (and the chip follows).
  await row(names.bob).getByRole('button', { name: `Make admin: ${names.bob}` }).click();
  await row(names.bob).getByText('Admin', { exact: true }).waitFor();
  await row(names.bob).getByRole('button', { name: `Make member: ${names.bob}` }).waitFor();
  await alice.page.screenshot({ path: join(OUTPUT_DIR, 'group-info.png'), fullPage: true });

  // She edits the description; Bob's open info page follows live.
  await go(bob.page, `/c/${groupId}/info`);
  await bob.page.getByText('Planning the summer trip').waitFor();
  await alice.page.getByRole('button', { name: 'Edit', exact: true }).click();
  await alice.page.getByLabel('Description').fill('Planning the summer trip: Lisbon');
  await alice.page.getByRole('button', { name: 'Save', exact: true }).click();
  await alice.page.getByText('Planning the summer trip: Lisbon').waitFor();
  await bob.page.getByText('Planning the summer trip: Lisbon').waitFor();
  // Bob is an admin now: he may edit too, but not change roles.
  await bob.page.getByRole('button', { name: 'Edit', exact: true }).waitFor();
  assert.equal(await bob.page.getByRole('button', { name: /Make admin|Transfer ownership/ }).count(), 0);
  await go(bob.page, `/c/${groupId}`);
  await timeline(bob.page).waitFor();
  await alice.page.getByText('Planning the summer trip').waitFor();

  // She removes Carol, confirming in the dialog.
  await members.getByRole('button', { name: `Remove: ${names.carol}` }).click();
  const dialog = alice.page.getByRole('dialog');
  await dialog.getByText(`Remove ${names.carol}`).waitFor();
  await dialog.getByRole('button', { name: 'Remove' }).click();
  await alice.page.waitForFunction(
    (n) => ![...document.querySelectorAll('[aria-label="Members"] li')].some((li) => li.textContent.includes(n)),
    names.carol,
  );
  assert.equal(await members.getByRole('listitem').count(), 2);

  // Carol is told and her composer is off.
  await timeline(carol.page).getByText(/removed/).first().waitFor();
  await carol.page.locator('.chat-composer').getByText(/no longer a member|removed from this group/).waitFor();
  const carolBox = carol.page.getByRole('textbox', { name: 'Message', exact: true, includeHidden: true });
  assert.equal(await carolBox.isDisabled(), true);

  // Alice and Bob keep chatting; Carol does not get it.
  await alice.page.getByRole('link', { name: 'Back to chat' }).click();
  await say(alice.page, 'just the two of us now');
  await say(bob.page, 'indeed');
  for (const p of [alice.page, bob.page]) {
    await timeline(p).getByText('just the two of us now', { exact: true }).waitFor();
    await timeline(p).getByText('indeed', { exact: true }).waitFor();
  }
  // A barrier: Alice then sends Carol a direct message. Had Carol still been a member, the group
  // messages (committed and pushed earlier) would have reached her before it.
  a.client.send({ to: c.id, text: 'sorry carol, see you around' });
  await carol.page.getByText('sorry carol, see you around').first().waitFor({ state: 'attached' });
  assert.equal(await timeline(carol.page).getByText('just the two of us now').count(), 0);
  assert.equal(await timeline(carol.page).getByText('indeed').count(), 0);

  // Group info for Carol: not available any more.
  await go(carol.page, `/c/${groupId}/info`);
  await carol.page.getByText(/not a member of this group/).waitFor();

  await carol.page.screenshot({ path: join(OUTPUT_DIR, 'group-removed-390.png') });
  await alice.page.screenshot({ path: join(OUTPUT_DIR, 'group-chat.png') });
  await closeCleanly(alice, bob, carol);
});
