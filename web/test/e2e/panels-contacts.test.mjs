// The contacts panel in two browsers: a friend request found through the search, accepted on the
// other side, both lists updated live; then a block, after which the blocked user's message fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { register, uniqueName } from '../support/server.mjs';
import { OUTPUT_DIR, closeCleanly } from '../support/browser.mjs';
import { testServer, openAs, navLink } from '../support/people.mjs';

const env = testServer({ browser: true });

const person = (username, opts) => openAs(env.browser, env.url, username, opts);

test('friend request from the search, accept, live lists; block makes messages fail', async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const aliceUser = await register(env.url, aliceName);
  await register(env.url, bobName);

  const alice = await person(aliceName);
  const bob = await person(bobName, { width: 390, height: 844 });
  await navLink(alice.page, 'Contacts').click();
  await navLink(bob.page, 'Contacts').click();
  const aliceFriends = alice.page.getByRole('list', { name: 'Friends' });
  const bobFriends = bob.page.getByRole('list', { name: 'Friends' });
  await aliceFriends.getByText('No friends yet').waitFor();
  await bobFriends.getByText('No friends yet').waitFor();

  // Alice searches Bob by a prefix of his username and adds him.
  await alice.page.getByLabel('Username').fill(bobName.slice(0, 6));
  const results = alice.page.getByRole('list', { name: 'Search results' });
  const bobResult = results.getByRole('listitem').filter({ hasText: bobName });
  await bobResult.getByRole('button', { name: 'Add friend' }).click();
  await bobResult.getByText('Pending').waitFor();
  await alice.page.getByRole('list', { name: 'Sent requests' }).getByText(bobName).waitFor();

  // Bob sees the request live and accepts it.
  const incoming = bob.page.getByRole('list', { name: 'Incoming requests' });
  await incoming.getByText(aliceName).waitFor();
  await incoming.getByRole('button', { name: `Accept ${aliceName}` }).click();

  // Both see each other among friends, with a presence dot that says online.
  await bobFriends.getByText(aliceName).waitFor();
  await aliceFriends.getByText(bobName).waitFor();
  await bobResult.getByText('Friends', { exact: true }).waitFor();
  await aliceFriends.getByRole('img', { name: 'Online' }).waitFor();
  await bob.page.screenshot({ path: join(OUTPUT_DIR, 'contacts-390.png'), fullPage: true });

  // Alice blocks Bob; the dialog asks first, and Cancel changes nothing.
  await aliceFriends.getByRole('button', { name: `Block ${bobName}` }).click();
  let dialog = alice.page.getByRole('dialog');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await aliceFriends.getByText(bobName).count(), 1);
  await aliceFriends.getByRole('button', { name: `Block ${bobName}` }).click();
  dialog = alice.page.getByRole('dialog');
  await dialog.getByRole('button', { name: 'Block' }).click();
  const blocked = alice.page.getByRole('list', { name: 'Blocked users' });
  await blocked.getByText(bobName).waitFor();
  await aliceFriends.getByText('No friends yet').waitFor();
  // (Bob is not told: a block is never announced to the blocked user.)

  // Bob tries to message Alice: the message is shown as not sent.
  await bob.page.goto(`${env.url}/u/${encodeURIComponent(aliceUser.id)}`);
  const box = bob.page.getByRole('textbox', { name: 'Message', exact: true });
  await box.fill('are you there?');
  await box.press('Enter');
  await bob.page.getByText(/Not sent/).first().waitFor();

  // Unblock puts Alice's list back in order.
  await blocked.getByRole('button', { name: `Unblock ${bobName}` }).click();
  await blocked.waitFor({ state: 'hidden' });

  await closeCleanly(alice, bob);
});
