// Group administration on the group info page (/c/<id>/info), in real browsers: the owner hands
// ownership over (both pages follow, the chat says so); the owner cannot leave, a former owner
// can, and then stops receiving; the owner dissolves the group (after cancelling once), every
// member's composer goes off and the history stays readable after a reload. Accounts, friendships,
// the groups themselves and earlier messages are set up through the SDK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { OUTPUT_DIR, closeCleanly } from '../support/browser.mjs';
import { testServer, sdkUser, befriend, sendAll, openAs, connected, until } from '../support/people.mjs';

const env = testServer({ browser: true });

// ---- helpers -------------------------------------------------------------------------------

/** A person in the browser, logged in and connected. */
async function person(username, opts) {
  const session = await openAs(env.browser, env.url, username, opts);
  await connected(session.page);
  return session;
}

/** Client-side navigation (what an in-app link does), without reloading the page. */
async function go(page, path) {
  await page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
}

/** Users `prefixes[0]` (the owner) and the others, all friends of the owner, and a group of them. */
async function groupOf(prefixes, groupName) {
  const users = await Promise.all(prefixes.map((prefix) => sdkUser(env.url, { prefix })));
  const [owner, ...rest] = users;
  for (const u of rest) await befriend(owner, u);
  const group = await owner.client.groupCreate({ name: groupName, members: rest.map((u) => u.id) });
  assert.ok(group?.id, 'the group was created');
  return { users, id: String(group.id) };
}

const timeline = (page) => page.getByRole('log', { name: 'Messages' });
const composer = (page) => page.getByRole('textbox', { name: 'Message', exact: true, includeHidden: true });
const composerReason = (page) => page.locator('.chat-composer .composer-disabled');
const members = (page) => page.getByRole('list', { name: 'Members' });
const memberRow = (page, user) => members(page).locator(`li[data-user="${user.id}"]`);
/** The "Owner" fact of the About card. */
const ownerFact = (page) => page.locator('.facts dt:text-is("Owner") + dd');
const systemLine = (page, re) => timeline(page).locator('.msg-system', { hasText: re });

async function say(page, text) {
  const box = composer(page);
  await box.fill(text);
  await box.press('Enter');
}

/** Waits until the page's own message `text` is acknowledged by the server. */
async function acknowledged(page, text) {
  await timeline(page).locator('.msg.own', { hasText: text })
    .and(page.locator('[data-state="sent"], [data-state="read"]')).waitFor();
}

async function openInfo(page, id) {
  await go(page, `/c/${encodeURIComponent(id)}/info`);
  await members(page).waitFor();
}

async function openChat(page, id) {
  await go(page, `/c/${encodeURIComponent(id)}`);
  await timeline(page).waitFor();
}

/** Alice transfers the group to Bob through the confirmation dialog on her info page. */
async function transferThroughUi(page, to) {
  await memberRow(page, to).getByRole('button', { name: `Transfer ownership: ${to.name}` }).click();
  const dialog = page.getByRole('dialog', { name: `Make ${to.name} the owner?` });
  await dialog.waitFor();
  await dialog.getByText('You become an admin').waitFor();
  await dialog.getByRole('button', { name: 'Transfer ownership', exact: true }).click();
  await dialog.waitFor({ state: 'detached' });
  await memberRow(page, to).getByText('Owner', { exact: true }).waitFor();
}

const literal = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// ---- 1. transfer ownership ---------------------------------------------------------------

test('the owner transfers ownership: both info pages follow and the chat says so', async () => {
  const groupName = `Club ${Date.now() % 100000}`;
  const { users: [a, b], id } = await groupOf(['alice', 'bob'], groupName);
  b.client.disconnect();
  const alice = await person(a.name);
  const bob = await person(b.name);
  await openInfo(alice.page, id);
  await openInfo(bob.page, id);

  // Before: Alice owns the group and has the owner's controls; Bob has none of them.
  await memberRow(alice.page, a).getByText('Owner', { exact: true }).waitFor();
  await memberRow(bob.page, a).getByText('Owner', { exact: true }).waitFor();
  assert.equal(await ownerFact(alice.page).textContent(), a.name);
  assert.equal(await ownerFact(bob.page).textContent(), a.name);
  await alice.page.getByRole('button', { name: 'Dissolve group' }).waitFor();
  await alice.page.getByRole('button', { name: `Make admin: ${b.name}` }).waitFor();
  assert.equal(await alice.page.getByRole('button', { name: 'Leave group' }).count(), 0);
  await bob.page.getByRole('button', { name: 'Leave group' }).waitFor();
  assert.equal(await bob.page.getByRole('button', { name: /Dissolve group|Transfer ownership|Make admin/ }).count(), 0);

  // Cancelling the dialog changes nothing.
  await memberRow(alice.page, b).getByRole('button', { name: `Transfer ownership: ${b.name}` }).click();
  const dialog = alice.page.getByRole('dialog', { name: `Make ${b.name} the owner?` });
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await memberRow(alice.page, a).getByText('Owner', { exact: true }).count(), 1);
  assert.equal(await memberRow(alice.page, b).locator('.role-chip').count(), 0);

  // Alice transfers for real.
  await transferThroughUi(alice.page, b);
  await alice.page.getByText(`${b.name} now owns the group`).waitFor();

  // Alice's page: Bob owns the group, she is an admin and the owner-only controls are gone.
  await memberRow(alice.page, a).getByText('Admin', { exact: true }).waitFor();
  await until(async () => (await ownerFact(alice.page).textContent()) === b.name, { what: 'Alice sees Bob as the owner' });
  await alice.page.getByRole('button', { name: 'Leave group' }).waitFor();
  assert.equal(await alice.page.getByRole('button', { name: /Dissolve group|Transfer ownership|Make admin|Make member/ }).count(), 0);
  assert.equal(await alice.page.getByText('As the owner you cannot leave').count(), 0);
  // An admin may still edit the group.
  await alice.page.getByRole('button', { name: 'Edit', exact: true }).waitFor();

  // Bob's open page follows live: he is the owner and has the owner's controls.
  await memberRow(bob.page, b).getByText('Owner', { exact: true }).waitFor();
  await memberRow(bob.page, a).getByText('Admin', { exact: true }).waitFor();
  await until(async () => (await ownerFact(bob.page).textContent()) === b.name, { what: 'Bob sees himself as the owner' });
  await bob.page.getByRole('button', { name: 'Dissolve group' }).waitFor();
  await bob.page.getByRole('button', { name: `Transfer ownership: ${a.name}` }).waitFor();
  await bob.page.getByRole('button', { name: `Make member: ${a.name}` }).waitFor();
  await bob.page.getByText('As the owner you cannot leave').waitFor();
  assert.equal(await bob.page.getByRole('button', { name: 'Leave group' }).count(), 0);
  await bob.page.screenshot({ path: join(OUTPUT_DIR, 'group-admin-new-owner.png'), fullPage: true });

  // The chat shows the transfer as a system line on both pages at once: pushed to Bob; fetched
  // by Alice's SDK (the acting connection gets the reply instead of the push).
  await alice.page.getByRole('link', { name: 'Back to chat' }).click();
  await bob.page.getByRole('link', { name: 'Back to chat' }).click();
  await systemLine(bob.page, new RegExp(`^${literal(a.name)} made you the owner$`, 'i')).waitFor();
  await systemLine(alice.page, new RegExp(`^You made ${literal(b.name)} the owner$`)).waitFor();

  await closeCleanly(alice, bob);
});

// ---- 2. leave ------------------------------------------------------------------------------

test('the owner cannot leave; after a transfer she leaves and stops receiving', async () => {
  const groupName = `Band ${Date.now() % 100000}`;
  const { users: [a, b, c], id } = await groupOf(['alice', 'bob', 'carol'], groupName);
  c.client.disconnect();
  const alice = await person(a.name);
  const bob = await person(b.name);
  await openInfo(alice.page, id);
  await openInfo(bob.page, id);
  await members(bob.page).getByRole('listitem').nth(2).waitFor();
  assert.equal(await members(bob.page).getByRole('listitem').count(), 3);

  // As the owner, Alice is told to transfer first, and there is no Leave button.
  await memberRow(alice.page, a).getByText('Owner', { exact: true }).waitFor();
  await alice.page.getByText(/As the owner you cannot leave: transfer ownership to another member first/).waitFor();
  await alice.page.getByRole('heading', { name: 'Leave or dissolve' }).waitFor();
  assert.equal(await alice.page.getByRole('button', { name: /Leave/ }).count(), 0);

  // After handing the group to Bob, she may leave.
  await transferThroughUi(alice.page, b);
  const leave = alice.page.getByRole('button', { name: 'Leave group' });
  await leave.waitFor();
  assert.equal(await alice.page.getByText('As the owner you cannot leave').count(), 0);

  // Cancelling keeps her in; confirming takes her out (and back to the chats).
  await leave.click();
  const dialog = alice.page.getByRole('dialog', { name: `Leave “${groupName}”?` });
  await dialog.getByText('You stop receiving its messages').waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.match(alice.page.url(), new RegExp(`/c/${id}/info$`));
  await leave.click();
  await dialog.getByRole('button', { name: 'Leave group' }).click();
  await alice.page.waitForURL((u) => u.pathname === '/');
  await alice.page.getByText(`You left “${groupName}”`).waitFor();

  // Bob's member list no longer lists her, and his chat says she left.
  await until(async () => (await memberRow(bob.page, a).count()) === 0, { what: 'Alice gone from Bob’s member list' });
  await memberRow(bob.page, b).waitFor();
  await memberRow(bob.page, c).waitFor();
  assert.equal(await members(bob.page).getByRole('listitem').count(), 2);
  await openChat(bob.page, id);
  await systemLine(bob.page, new RegExp(`^${literal(a.name)} left$`)).waitFor();

  // Her composer in that chat is off, with the reason.
  await openChat(alice.page, id);
  await composerReason(alice.page).getByText('You are no longer a member of this group.').waitFor();
  assert.equal(await composer(alice.page).isDisabled(), true);
  assert.equal(await alice.page.getByRole('button', { name: 'Send' }).isVisible(), false);

  // Bob writes to the group; then, as a barrier, he sends Alice a direct message. Had she still
  // been a member, the group message (committed before it) would have reached her first.
  await say(bob.page, 'after alice left');
  await acknowledged(bob.page, 'after alice left');
  b.client.send({ to: a.id, text: 'bob checking in directly' });
  await alice.page.getByText('bob checking in directly').first().waitFor({ state: 'attached' });
  assert.equal(await timeline(alice.page).getByText('after alice left').count(), 0);
  assert.equal(await alice.page.getByText('after alice left').count(), 0);

  await alice.page.screenshot({ path: join(OUTPUT_DIR, 'group-admin-left.png') });
  await closeCleanly(alice, bob);
});

// ---- 3. dissolve ---------------------------------------------------------------------------

test('the owner dissolves the group: every member’s composer goes off, the history stays', async () => {
  const groupName = `Choir ${Date.now() % 100000}`;
  const { users: [a, b, c], id } = await groupOf(['alice', 'bob', 'carol'], groupName);
  await sendAll(a, { conversation: id }, ['rehearsal on monday']);
  await sendAll(b, { conversation: id }, ['bringing the sheet music']);
  b.client.disconnect();
  c.client.disconnect();
  const alice = await person(a.name);
  const bob = await person(b.name);
  const carol = await person(c.name, { width: 390, height: 844 });
  const earlier = ['rehearsal on monday', 'bringing the sheet music'];
  for (const p of [bob.page, carol.page]) {
    await openChat(p, id);
    for (const text of earlier) await timeline(p).getByText(text, { exact: true }).waitFor();
    assert.equal(await composer(p).isDisabled(), false);
  }
  await openInfo(alice.page, id);
  const dissolve = alice.page.getByRole('button', { name: 'Dissolve group' });
  const dialog = alice.page.getByRole('dialog', { name: `Dissolve “${groupName}”?` });

  // Cancel once: nothing changes.
  await dissolve.click();
  await dialog.getByText('This cannot be undone').waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await alice.page.locator('.state-chip', { hasText: 'Dissolved' }).count(), 0);
  assert.equal(await dissolve.isEnabled(), true);
  // Proof the group is still live: Alice's next message through the same connection is accepted
  // and reaches the others, whose composers stay on.
  await alice.page.getByRole('link', { name: 'Back to chat' }).click();
  await say(alice.page, 'still together');
  await acknowledged(alice.page, 'still together');
  for (const p of [bob.page, carol.page]) {
    await timeline(p).getByText('still together', { exact: true }).waitFor();
    assert.equal(await composer(p).isDisabled(), false);
    assert.equal(await systemLine(p, /dissolved/).count(), 0);
  }
  const before = (await a.client.groups()).find((g) => String(g.id) === id);
  assert.ok(before && !before.dissolved, 'the server still has the group live');

  // Now for real.
  await openInfo(alice.page, id);
  await dissolve.click();
  await dialog.getByRole('button', { name: 'Dissolve group' }).click();
  await dialog.waitFor({ state: 'detached' });
  await alice.page.getByText('Group dissolved', { exact: true }).waitFor();

  // Alice's info page: dissolved, with nothing left to change.
  await alice.page.locator('.state-chip', { hasText: 'Dissolved' }).waitFor();
  await alice.page.getByText('This group was dissolved. Its history stays readable, but nothing can be sent or changed.').waitFor();
  assert.equal(await alice.page.getByRole('button', { name: /Dissolve group|Leave group|Edit|Transfer ownership|Make admin|Remove/ }).count(), 0);
  assert.equal(await alice.page.getByRole('heading', { name: 'Add members' }).count(), 0);
  await alice.page.screenshot({ path: join(OUTPUT_DIR, 'group-admin-dissolved-info.png'), fullPage: true });

  // Every member's chat: the system line, and the composer off with the reason.
  await alice.page.getByRole('link', { name: 'Back to chat' }).click();
  const reason = 'This group was dissolved. Its history stays readable.';
  for (const p of [alice.page, bob.page, carol.page]) {
    const line = p === alice.page ? /^You dissolved the group$/ : new RegExp(`^${literal(a.name)} dissolved the group$`);
    await systemLine(p, line).waitFor();
    await composerReason(p).getByText(reason, { exact: true }).waitFor();
    assert.equal(await composer(p).isDisabled(), true);
    assert.equal(await p.getByRole('button', { name: 'Send' }).isVisible(), false);
    assert.equal(await p.getByRole('button', { name: 'Insert emoji', includeHidden: true }).isDisabled(), true);
  }
  // Carol's info page says so too.
  await openInfo(carol.page, id);
  await carol.page.locator('.state-chip', { hasText: 'Dissolved' }).waitFor();
  assert.equal(await carol.page.getByRole('button', { name: 'Leave group' }).count(), 0);
  await carol.page.getByRole('link', { name: 'Back to chat' }).click();
  await composerReason(carol.page).getByText(reason, { exact: true }).waitFor();

  // After a reload the history is still there, with the system line, and the composer still off.
  for (const p of [alice.page, bob.page, carol.page]) {
    await p.reload();
    await connected(p);
    for (const text of [...earlier, 'still together']) await timeline(p).getByText(text, { exact: true }).waitFor();
    await systemLine(p, p === alice.page ? /^You dissolved the group$/ : new RegExp(`^${literal(a.name)} dissolved the group$`)).waitFor();
    await composerReason(p).getByText(reason, { exact: true }).waitFor();
    assert.equal(await composer(p).isDisabled(), true);
  }
  await carol.page.screenshot({ path: join(OUTPUT_DIR, 'group-admin-dissolved-390.png') });
  await closeCleanly(alice, bob, carol);
});
