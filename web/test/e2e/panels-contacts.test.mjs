// The contacts panel in two browsers: a friend request found through the search, accepted on the
// other side, both lists updated live; then a block, after which the blocked user's message fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, register, uniqueName, PASSWORD } from '../support/server.mjs';
import { launch, openApp, OUTPUT_DIR } from '../support/browser.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function person(username, opts) {
  const session = await openApp(browser, `${server.url}/login`, opts);
  const { page } = session;
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  return session;
}

function nav(page, name) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name }).click();
}

test('friend request from the search, accept, live lists; block makes messages fail', async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  const aliceUser = await register(server.url, aliceName);
  await register(server.url, bobName);

  const alice = await person(aliceName);
  const bob = await person(bobName, { width: 390, height: 844 });
  await nav(alice.page, 'Contacts');
  await nav(bob.page, 'Contacts');
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
  await bob.page.goto(`${server.url}/u/${encodeURIComponent(aliceUser.id)}`);
  const box = bob.page.getByRole('textbox', { name: 'Message', exact: true });
  await box.fill('are you there?');
  await box.press('Enter');
  await bob.page.getByText(/Not sent/).first().waitFor();

  // Unblock puts Alice's list back in order.
  await blocked.getByRole('button', { name: `Unblock ${bobName}` }).click();
  await blocked.waitFor({ state: 'hidden' });

  for (const s of [alice, bob]) {
    assert.deepEqual(s.dialogs, []);
    assert.deepEqual(s.errors.map(String), []);
    await s.context.close();
  }
});
