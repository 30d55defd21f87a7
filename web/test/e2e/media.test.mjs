// Files in a real headless Chromium between two people: a photo picked with the file picker
// (progress, caption, the peer's thumbnail, the viewer by keyboard), a text file as a file card
// whose Download saves its bytes, a refused upload, Send during uploads (order kept) and Cancel of
// one in flight, an SVG that is never shown as an image, and a failed file send retried without
// a second upload. (Paste, drop, voice notes and the
// accessibility scan: media-input.test.mjs.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { closeCleanly } from '../support/browser.mjs';
import {
  testServer, until, sdkUser, sendDirect, openAs, connected, navLink,
} from '../support/people.mjs';
import { png, SVG, elf, WITH_SVG } from '../support/media.mjs';
import { showsAsImage } from '../../app/ui/attachments.js';

const env = testServer({ args: ['--media-types', WITH_SVG], browser: true });

const composer = (page) => page.getByRole('textbox', { name: 'Message', exact: true });

/** A person in the browser, logged in, connected and in conversation `convId`. */
async function inChat(user, convId) {
  const app = await openAs(env.browser, env.url, user.name);
  await connected(app.page);
  await app.page.locator(`a.conv[data-conversation="${convId}"]`).click();
  await app.page.locator('.msg').first().waitFor();
  return app;
}

/** Uploads `bytes` as `name` through the SDK and sends it; waits for the ack. */
async function sdkSendFile(user, target, bytes, name, { kind, caption = '' } = {}) {
  const info = await user.client.media.prepare(new Blob([bytes]), { name });
  user.client.sendAttachment({ ...target, info, kind, caption });
  await until(() => user.client.outbox().length === 0, { what: `${name} acknowledged` });
  return info;
}

/** Messages the SDK user holds in `convId` that carry a file. */
const files = (user, convId) => user.client.messages(convId).filter((m) => m.attachment && !m.pending);

test('a photo by the file picker: progress, caption, the thumbnail at the peer, the viewer by keyboard', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['send me a photo']);
  const a = await inChat(alice, convId);
  const b = await inChat(bob, convId);
  await a.page.evaluate(() => {
    window.progress = [];
    new MutationObserver((records) => {
      for (const r of records) window.progress.push(Number(r.target.getAttribute('aria-valuenow')));
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['aria-valuenow'] });
  });

  await a.page.locator('input.attach-input').setInputFiles({ name: 'sunset.png', mimeType: 'image/png', buffer: png(640, 480) });
  const bar = a.page.getByRole('progressbar', { name: 'Uploading sunset.png' });
  await bar.waitFor();
  await a.page.locator('.upload-item[data-state="ready"] [role="progressbar"][aria-valuenow="100"]').waitFor();
  const seen = await a.page.evaluate(() => window.progress);
  assert.ok(seen.includes(100) && seen.every((n) => n >= 0 && n <= 100), `progress ${seen}`);
  assert.equal(files(bob, convId).length, 0, 'nothing is sent before Send');

  await composer(a.page).fill('the view from here');
  await composer(a.page).press('Enter');
  await bar.waitFor({ state: 'detached' });
  assert.equal(await composer(a.page).inputValue(), '', 'the text went as the caption');

  // The peer: the thumbnail over a placeholder of the image's shape, the caption, not the fallback text.
  const photo = b.page.locator('.msg.other .att-photo');
  await photo.and(b.page.locator('.loaded')).waitFor();
  const img = await photo.locator('img').evaluate((el) => ({ w: el.naturalWidth, h: el.naturalHeight, src: el.src, alt: el.alt }));
  assert.ok(img.w > 0 && img.src.startsWith('blob:'), JSON.stringify(img));
  assert.equal(img.w, 320, 'the thumbnail, not the original');
  assert.equal(img.alt, 'sunset.png');
  const box = await photo.evaluate((el) => ({ ratio: el.style.aspectRatio, color: el.style.backgroundColor }));
  const { color } = (await until(() => files(bob, convId)[0], { what: 'the photo in the SDK' })).attachment;
  assert.match(color, /^#[0-9a-f]{6}$/);
  const rgb = `rgb(${[1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16)).join(', ')})`;
  assert.deepEqual(box, { ratio: '640 / 480', color: rgb }, 'the placeholder has the shape and colour the server gave');
  assert.equal(await b.page.locator('.msg.other .msg-caption').last().textContent(), 'the view from here');
  assert.equal(await b.page.locator('.msg-list', { hasText: '[Image' }).count(), 0, 'no fallback line');
  await b.page.locator(`a.conv[data-conversation="${convId}"] .conv-preview`, { hasText: '📷 Photo: the view from here' }).waitFor();
  const own = a.page.locator('.msg.own .att-photo');
  await own.and(a.page.locator('.loaded')).waitFor();

  // The viewer: Enter opens the original, Download saves it by its name, Esc closes, focus returns.
  await photo.focus();
  await b.page.keyboard.press('Enter');
  const viewer = b.page.getByRole('dialog', { name: 'Photo sunset.png' });
  await viewer.waitFor();
  await b.page.waitForFunction(() => document.querySelector('dialog.viewer img')?.naturalWidth === 640);
  const [download] = await Promise.all([
    b.page.waitForEvent('download'),
    viewer.getByRole('button', { name: 'Download' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'sunset.png');
  await b.page.keyboard.press('Escape');
  await viewer.waitFor({ state: 'detached' });
  assert.equal(await b.page.evaluate(() => document.activeElement.classList.contains('att-photo')), true);
  // The close button too.
  await b.page.keyboard.press('Enter');
  await viewer.getByRole('button', { name: 'Close viewer' }).click();
  await viewer.waitFor({ state: 'detached' });

  // Leaving the chat revokes its blob: URLs.
  await navLink(b.page, 'Contacts').click();
  await b.page.locator('.chat').waitFor({ state: 'detached' });
  const after = await b.page.evaluate((src) => fetch(src).then(() => 'live', () => 'revoked'), img.src);
  assert.equal(after, 'revoked');

  // The SDK side holds it as an image with the server's description.
  const [m] = files(bob, convId);
  assert.deepEqual([m.attachment.kind, m.attachment.type, m.attachment.width, m.attachment.caption], ['image', 'image/png', 640, 'the view from here']);
  await closeCleanly(a, b);
});

test('a text file is a file card whose Download saves its bytes under its name; the pre-check skips a second upload', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['notes coming']);
  const bytes = Buffer.from('Meeting notes\nline two\n');
  const first = await sdkSendFile(bob, { conversation: convId }, bytes, 'notes.txt');
  assert.equal(first.reused, undefined);
  const again = await bob.client.media.prepare(new Blob([bytes]), { name: 'notes.txt' });
  assert.equal(again.reused, true, 'a file the sender holds already is not uploaded again');
  assert.equal(again.id, first.id);

  const a = await inChat(alice, convId);
  const card = a.page.locator('.msg.other .att-file');
  await card.waitFor();
  assert.equal(await card.locator('.att-file-name').textContent(), 'notes.txt');
  assert.match(await card.locator('.att-file-meta').textContent(), /^23 bytes · text\/plain/);
  await a.page.locator(`a.conv[data-conversation="${convId}"] .conv-preview`, { hasText: '📎 notes.txt' }).waitFor();
  const [download] = await Promise.all([
    a.page.waitForEvent('download'),
    card.getByRole('button', { name: 'Download notes.txt' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'notes.txt');
  assert.deepEqual(await readFile(await download.path()), bytes);
  await closeCleanly(a);
});

test('a refused upload shows the reason and sends nothing; Cancel drops a file', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['hi']);
  const a = await inChat(alice, convId);

  await a.page.locator('input.attach-input').setInputFiles({ name: 'cat.png', mimeType: 'image/png', buffer: elf() });
  await a.page.getByRole('alert').filter({ hasText: 'cat.png: Files of this type cannot be sent.' }).waitFor();
  await a.page.locator('.upload-item').waitFor({ state: 'detached' });
  assert.equal(await a.page.getByRole('button', { name: 'Send' }).isDisabled(), true);

  await a.page.locator('input.attach-input').setInputFiles({ name: 'keep.png', mimeType: 'image/png', buffer: png(8, 8) });
  await a.page.getByRole('button', { name: 'Cancel keep.png' }).click();
  await a.page.locator('.upload-item').waitFor({ state: 'detached' });
  await composer(a.page).press('Enter');

  // A text sent afterwards arrives right after 'hi': nothing went before it.
  await composer(a.page).fill('after');
  await composer(a.page).press('Enter');
  await until(() => bob.client.messages(convId).some((m) => m.text === 'after'), { what: "'after' at the peer" });
  assert.deepEqual(bob.client.messages(convId).map((m) => m.text), ['hi', 'after']);
  await closeCleanly(a);
});

test('Send during uploads: the files go when uploaded, in the order added; Cancel stops one in flight', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['waiting']);
  const a = await inChat(alice, convId);
  // Uploads of every file but fast.txt are held until the test lets them go.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await a.page.route((url) => url.pathname === '/v1/media' && url.searchParams.get('name') !== 'fast.txt', async (route) => {
    await held;
    await route.continue().catch(() => {}); // a cancelled upload's request is gone
  });
  const pick = (name, buffer, mimeType) => a.page.locator('input.attach-input').setInputFiles({ name, mimeType, buffer });
  await pick('slow.png', png(50, 40), 'image/png');
  await pick('fast.txt', Buffer.from('fast\n'), 'text/plain');
  await pick('gone.txt', Buffer.from('never\n'), 'text/plain');
  await a.page.locator('.upload-item[data-state="ready"]', { hasText: 'fast.txt' }).waitFor();
  assert.equal(await a.page.locator('.upload-item', { hasText: 'slow.png' }).getAttribute('data-state'), 'uploading');
  await a.page.getByRole('button', { name: 'Cancel gone.txt' }).click();
  await a.page.locator('.upload-item', { hasText: 'gone.txt' }).waitFor({ state: 'detached' });

  await composer(a.page).fill('slow first');
  await composer(a.page).press('Enter');
  await a.page.locator('.upload-item', { hasText: 'slow.png' }).filter({ hasText: 'Sends when uploaded' }).waitFor();
  // A text meanwhile goes at once; the files wait for slow.png.
  await composer(a.page).fill('meanwhile');
  await composer(a.page).press('Enter');
  await until(() => bob.client.messages(convId).some((m) => m.text === 'meanwhile'), { what: "'meanwhile' at the peer" });
  assert.equal(files(bob, convId).length, 0);

  release();
  await until(() => files(bob, convId).length === 2, { what: 'both files at the peer' });
  assert.deepEqual(files(bob, convId).map((m) => [m.attachment.name, m.attachment.caption ?? '']), [['slow.png', 'slow first'], ['fast.txt', '']]);
  await a.page.locator('.upload-item').waitFor({ state: 'detached' });
  assert.equal(await a.page.getByRole('alert').count(), 0, 'a cancel is no error');
  assert.ok(!bob.client.messages(convId).some((m) => m.attachment?.name === 'gone.txt'));
  await closeCleanly(a);
});

test('an SVG is never shown as an image: a file card, whatever the kind', async () => {
  assert.equal(showsAsImage({ kind: 'image', type: 'image/svg+xml' }), false);
  assert.equal(showsAsImage({ kind: 'image', type: 'image/png' }), true);
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['logo next']);
  // The server refuses an SVG as an image; as a file it goes.
  const info = await bob.client.media.upload(new Blob([SVG]), { name: 'logo.svg' });
  assert.equal(info.type, 'image/svg+xml');
  const refused = bob.client.sendAttachment({ conversation: convId, info, kind: 'image' });
  await until(() => bob.client.outbox().find((e) => e.client_msg_id === refused && e.state === 'failed'), { what: 'the image send refused' });
  bob.client.discard(refused);
  await sdkSendFile(bob, { conversation: convId }, SVG, 'logo.svg');
  assert.equal(files(bob, convId)[0].attachment.kind, 'file');

  const a = await inChat(alice, convId);
  const svg = a.page.locator('.msg.other', { hasText: 'logo.svg' });
  await svg.locator('.att-file').waitFor();
  // Alice's own SVG, pasted as a picked file, is a file card too.
  await a.page.locator('input.attach-input').setInputFiles({ name: 'mine.svg', mimeType: 'image/svg+xml', buffer: Buffer.from(SVG) });
  await a.page.locator('.upload-item[data-state="ready"]').waitFor();
  await composer(a.page).press('Enter');
  await a.page.locator('.msg.own .att-file', { hasText: 'mine.svg' }).waitFor();
  assert.equal(await a.page.locator('.msg-list img').count(), 0, 'no <img> in the timeline');
  await closeCleanly(a);
});

test('a failed file send is retried with the same upload', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['hello']);
  await bob.client.block(alice.id);
  const a = await inChat(alice, convId);
  const uploads = [];
  a.page.on('request', (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname === '/v1/media') uploads.push(r.url()); });

  await a.page.locator('input.attach-input').setInputFiles({ name: 'retry.png', mimeType: 'image/png', buffer: png(30, 20, [1, 2, 3]) });
  await a.page.locator('.upload-item[data-state="ready"]').waitFor();
  await composer(a.page).press('Enter');
  const failed = a.page.locator('.msg.own[data-state="failed"]');
  await failed.waitFor();
  assert.match(await failed.locator('.msg-failed').textContent(), /you cannot message this person/);
  await bob.client.unblock(alice.id);
  await failed.getByRole('button', { name: 'Retry', exact: true }).click();
  await a.page.locator('.msg.own[data-state="sent"] .att-photo, .msg.own[data-state="read"] .att-photo').waitFor();
  await until(() => files(bob, convId).length === 1, { what: 'the photo at the peer' });
  assert.equal(uploads.length, 1, 'uploaded once');
  await closeCleanly(a);
});
