// The profile and devices panels: a saved display name shows up; a second login is listed and
// revoking it removes it (and its token stops working); password form validation; log out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { register, uniqueName, PASSWORD } from '../support/server.mjs';
import { OUTPUT_DIR, closeCleanly } from '../support/browser.mjs';
import { testServer, openAs, navLink } from '../support/people.mjs';

const env = testServer({ browser: true });

const person = (username, opts) => openAs(env.browser, env.url, username, opts);

async function httpLogin(username, device) {
  const res = await fetch(`${env.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD, device }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

test('profile: validation, then saving shows the new display name', async () => {
  const name = uniqueName('pat');
  await register(env.url, name);
  const s = await person(name, { width: 390, height: 844 });
  const { page } = s;
  await page.goto(`${env.url}/profile`);
  await page.getByRole('form', { name: 'Profile' }).getByText(`@${name}`).waitFor();

  // A javascript: avatar and a status over 140 bytes are refused before anything is sent.
  await page.getByLabel('Avatar URL', { exact: true }).fill('javascript:alert(1)');
  await page.getByLabel('Status', { exact: true }).fill('é'.repeat(71)) // 71 characters, 142 bytes;
  await page.getByRole('button', { name: 'Save profile' }).click();
  await page.getByText('Only http:// and https:// addresses are allowed.').waitFor();
  await page.getByText(/Status is too long/).waitFor();

  await page.getByLabel('Avatar URL', { exact: true }).fill('');
  await page.getByLabel('Status', { exact: true }).fill('on holiday');
  await page.getByLabel('Display name', { exact: true }).fill('Pat Example');
  await page.getByRole('button', { name: 'Save profile' }).click();
  await page.getByText('Profile saved.').waitFor();
  await page.getByTestId('profile-name').getByText('Pat Example').waitFor();
  await page.screenshot({ path: join(OUTPUT_DIR, 'profile-390.png'), fullPage: true });

  // It is the server's value: a reload shows it again.
  await page.reload();
  await page.getByTestId('profile-name').getByText('Pat Example').waitFor();
  assert.equal(await page.getByLabel('Display name', { exact: true }).inputValue(), 'Pat Example');
  assert.equal(await page.getByLabel('Status', { exact: true }).inputValue(), 'on holiday');

  await closeCleanly(s);
});

test('devices: a second login is listed, revoking it removes it; log out', async () => {
  const name = uniqueName('dev');
  await register(env.url, name);
  const s = await person(name);
  const { page } = s;
  await navLink(page, 'Devices').click();
  const sessions = page.getByRole('list', { name: 'Sessions' });
  await sessions.getByText('This device').waitFor();
  assert.equal(await sessions.getByRole('listitem').count(), 1);

  // A second login elsewhere; Refresh lists it.
  const other = await httpLogin(name, 'work laptop');
  await page.getByRole('button', { name: 'Refresh' }).click();
  await sessions.getByText('work laptop').waitFor();
  assert.equal(await sessions.getByRole('listitem').count(), 2);
  // The current device has no Revoke button, the other one does.
  assert.equal(await sessions.getByRole('button', { name: /Revoke/ }).count(), 1);

  // Revoke asks first; then the entry goes and its token is refused.
  await sessions.getByRole('button', { name: 'Revoke: work laptop' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await sessions.getByText('work laptop').waitFor({ state: 'detached' });
  assert.equal(await sessions.getByRole('listitem').count(), 1);
  const me = await fetch(`${env.url}/v1/me`, { headers: { authorization: `Bearer ${other.token}` } });
  assert.equal(me.status, 401);

  // The password form checks its fields before asking the server.
  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel('New password', { exact: true }).fill('short');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByText('The new password must be 8 to 128 characters long.').waitFor();
  await page.getByLabel('New password', { exact: true }).fill('a much better password');
  await page.getByLabel('Confirm new password').fill('a different password');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByText('The two new passwords do not match.').waitFor();
  await page.screenshot({ path: join(OUTPUT_DIR, 'devices.png'), fullPage: true });

  // Log out: back at the login screen, and the session is gone on the server.
  await page.getByRole('region', { name: 'Log out' }).getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/\/login$/);
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  const again = await httpLogin(name, 'check');
  const list = await (await fetch(`${env.url}/v1/sessions`, { headers: { authorization: `Bearer ${again.token}` } })).json();
  assert.deepEqual(list.map((x) => x.device), ['check']);

  await closeCleanly(s);
});
