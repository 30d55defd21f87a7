// The other ways a file gets into a chat, in a real headless Chromium: a paste and a drop onto
// the conversation, a voice note from Chromium's fake microphone (and a refused microphone), a
// video, an accessibility scan of a timeline holding a photo, a file and a voice note, and
// stickers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeCleanly, seriousViolations } from '../support/browser.mjs';
import { testServer, until, sdkUser, sendDirect, openAs, connected } from '../support/people.mjs';
import { png, deliverFile } from '../support/media.mjs';

const env = testServer({ browser: true });

const composer = (page) => page.getByRole('textbox', { name: 'Message', exact: true });

async function inChat(user, convId, opts) {
  const app = await openAs(env.browser, env.url, user.name, opts);
  await connected(app.page);
  await app.page.locator(`a.conv[data-conversation="${convId}"]`).click();
  await app.page.locator('.msg').first().waitFor();
  return app;
}

const files = (user, convId) => user.client.messages(convId).filter((m) => m.attachment && !m.pending);

test('a pasted image and a file dropped on the conversation are each sent', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['paste something']);
  const a = await inChat(alice, convId);

  await deliverFile(a.page, 'paste', '#composer-input', { name: 'pasted.png', type: 'image/png', bytes: png(120, 90) });
  await a.page.locator('.upload-item[data-state="ready"]', { hasText: 'pasted.png' }).waitFor();
  await composer(a.page).press('Enter');
  await until(() => files(bob, convId).length === 1, { what: 'the pasted image at the peer' });
  assert.deepEqual([files(bob, convId)[0].attachment.kind, files(bob, convId)[0].attachment.name], ['image', 'pasted.png']);
  await a.page.locator('.msg.own .att-photo.loaded').waitFor();

  await deliverFile(a.page, 'drop', '.timeline-wrap', { name: 'dropped.txt', type: 'text/plain', bytes: Buffer.from('dropped in\n') });
  await a.page.locator('.upload-item[data-state="ready"]', { hasText: 'dropped.txt' }).waitFor();
  assert.equal(await a.page.locator('.chat.dropping').count(), 0, 'the drop highlight is gone');
  await composer(a.page).fill('with a caption');
  await composer(a.page).press('Enter');
  await until(() => files(bob, convId).length === 2, { what: 'the dropped file at the peer' });
  const dropped = files(bob, convId)[1].attachment;
  assert.deepEqual([dropped.kind, dropped.name, dropped.type, dropped.caption], ['file', 'dropped.txt', 'text/plain', 'with a caption']);
  await a.page.locator('.msg.own .att-file', { hasText: 'dropped.txt' }).waitFor();

  // A paste of plain text stays text.
  await a.page.evaluate(() => {
    const data = new DataTransfer();
    data.setData('text/plain', 'just words');
    document.querySelector('#composer-input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  });
  assert.equal(await a.page.locator('.upload-item').count(), 0);
  await closeCleanly(a);
});

test('a voice note from the microphone arrives as voice with an audio player; a timeline with media passes axe', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['say something']);
  const photo = await bob.client.media.upload(new Blob([png(200, 300)]), { name: 'portrait.png' });
  bob.client.sendAttachment({ conversation: convId, info: photo, caption: 'me' });
  const doc = await bob.client.media.upload(new Blob(['a report\n']), { name: 'report.txt' });
  bob.client.sendAttachment({ conversation: convId, info: doc });
  await until(() => bob.client.outbox().length === 0, { what: 'the files sent' });
  const a = await inChat(alice, convId);
  const b = await inChat(bob, convId, { colorScheme: 'dark' });

  // A file waiting for Send does not hold the voice note back.
  await a.page.locator('input.attach-input').setInputFiles({ name: 'staged.txt', mimeType: 'text/plain', buffer: Buffer.from('later\n') });
  await a.page.locator('.upload-item[data-state="ready"]', { hasText: 'staged.txt' }).waitFor();
  await a.page.getByRole('button', { name: 'Record voice message' }).click();
  const recording = a.page.getByRole('group', { name: 'Recording a voice message' });
  await recording.waitFor();
  await recording.getByRole('timer').filter({ hasText: '0:01' }).waitFor();
  await recording.getByRole('button', { name: 'Stop and send' }).click();
  await recording.waitFor({ state: 'hidden' });

  await until(() => files(bob, convId).some((m) => m.attachment.kind === 'voice'), { what: 'the voice note at the peer' });
  const voice = files(bob, convId).find((m) => m.attachment.kind === 'voice').attachment;
  assert.equal(files(bob, convId).some((m) => m.attachment.name === 'staged.txt'), false);
  assert.equal(await a.page.evaluate(() => document.activeElement.id), 'composer-input', 'focus back in the composer');
  await a.page.getByRole('button', { name: 'Cancel staged.txt' }).click();
  assert.ok(voice.duration_ms >= 1000 && voice.duration_ms < 30000, `duration ${voice.duration_ms}`);
  assert.match(voice.type, /^(audio|video)\/webm$/);
  const player = b.page.locator('.msg.other .att-player[data-kind="voice"]');
  await player.waitFor();
  await b.page.waitForFunction(() => {
    const el = document.querySelector('.msg.other .att-player[data-kind="voice"] audio');
    return el?.src.startsWith('blob:') && el.readyState >= 1;
  });
  assert.match(await player.locator('.att-duration').textContent(), /^0:0[1-9]$/);
  await b.page.locator(`a.conv[data-conversation="${convId}"] .conv-preview`, { hasText: '🎤 Voice message' }).waitFor();
  await a.page.locator('.msg.own .att-player[data-kind="voice"] audio').waitFor();

  // Both timelines hold a photo, a file card and a voice note.
  for (const page of [a.page, b.page]) {
    await page.locator('.att-photo.loaded').waitFor();
    await page.locator('.att-file').waitFor();
    assert.deepEqual(await seriousViolations(page), []);
  }
  await closeCleanly(a, b);
});

test('a video file plays in a <video controls>', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['a clip?']);
  const a = await inChat(alice, convId);
  // A short WebM recorded from a canvas in the page (five chunks of frames).
  const bytes = await a.page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 64;
    canvas.height = 48;
    const g = canvas.getContext('2d');
    const recorder = new MediaRecorder(canvas.captureStream(15), { mimeType: 'video/webm' });
    const chunks = [];
    let frame = 0;
    const paint = setInterval(() => { g.fillStyle = `hsl(${(frame += 40) % 360} 80% 50%)`; g.fillRect(0, 0, 64, 48); }, 30);
    const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
    recorder.ondataavailable = (e) => { chunks.push(e.data); if (chunks.length === 5) recorder.stop(); };
    recorder.start(100);
    await stopped;
    clearInterval(paint);
    return [...new Uint8Array(await new Blob(chunks).arrayBuffer())];
  });
  await deliverFile(a.page, 'paste', '#composer-input', { name: 'clip.webm', type: 'video/webm', bytes });
  await a.page.locator('.upload-item[data-state="ready"]', { hasText: 'clip.webm' }).waitFor();
  await composer(a.page).press('Enter');
  await until(() => files(bob, convId).length === 1, { what: 'the clip at the peer' });
  assert.deepEqual([files(bob, convId)[0].attachment.kind, files(bob, convId)[0].attachment.type], ['video', 'video/webm']);
  await a.page.waitForFunction(() => {
    const el = document.querySelector('.msg.own video.att-video');
    return el?.controls && el.src.startsWith('blob:') && el.readyState >= 1;
  });
  await a.page.locator(`a.conv[data-conversation="${convId}"] .conv-preview`, { hasText: '🎬 clip.webm' }).waitFor();
  await closeCleanly(a);
});

test('a refused microphone is a toast, and nothing records', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['hi']);
  const a = await inChat(alice, convId);
  await a.page.evaluate(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  await a.page.getByRole('button', { name: 'Record voice message' }).click();
  await a.page.getByRole('alert').filter({ hasText: 'Microphone access was refused.' }).waitFor();
  assert.equal(await a.page.getByRole('group', { name: 'Recording a voice message' }).isVisible(), false);
  assert.equal(await a.page.getByRole('button', { name: 'Record voice message' }).isEnabled(), true);
  await closeCleanly(a);
});

test('stickers: the picker by keyboard sends one, a received one is its image, never the fallback text', async () => {
  const alice = await sdkUser(env.url, { prefix: 'alice' });
  const bob = await sdkUser(env.url, { prefix: 'bob' });
  const convId = await sendDirect(bob, alice, ['stickers?']);
  const set = await bob.client.stickers();
  const heart = set.find((x) => x.id === 'heart');
  assert.ok(set.length >= 2 && heart, JSON.stringify(set));
  const a = await inChat(alice, convId);

  await a.page.getByRole('button', { name: 'Stickers', exact: true }).click();
  const picker = a.page.getByRole('dialog', { name: 'Sticker picker' });
  await picker.getByRole('button', { name: set[0].name }).waitFor();
  assert.equal(await picker.getByRole('button').count(), set.length);
  assert.equal(await a.page.evaluate(() => document.activeElement.dataset.sticker), set[0].id, 'focus on the first');
  await a.page.keyboard.press('ArrowRight');
  assert.equal(await a.page.evaluate(() => document.activeElement.dataset.sticker), set[1].id);
  await a.page.keyboard.press('Enter');
  await picker.waitFor({ state: 'hidden' });
  assert.equal(await a.page.evaluate(() => document.activeElement.id), 'composer-input');
  await until(() => bob.client.messages(convId).some((m) => m.sticker?.id === set[1].id), { what: 'the sticker at the peer' });
  const mine = a.page.locator(`.msg.own .sticker-img[alt="${set[1].name}"]`);
  await mine.waitFor();
  await a.page.waitForFunction((alt) => document.querySelector(`.msg.own .sticker-img[alt="${alt}"]`)?.naturalWidth > 0, set[1].name);

  // Esc closes the picker without sending.
  await a.page.getByRole('button', { name: 'Stickers', exact: true }).click();
  await picker.getByRole('button', { name: set[0].name }).waitFor();
  assert.deepEqual(await seriousViolations(a.page), [], 'with the picker open');
  await a.page.keyboard.press('Escape');
  await picker.waitFor({ state: 'hidden' });

  bob.client.sendSticker({ conversation: convId, sticker: heart });
  const theirs = a.page.locator('.msg.other .sticker-img[alt="Heart"]');
  await theirs.waitFor();
  await a.page.waitForFunction(() => document.querySelector('.msg.other .sticker-img[alt="Heart"]')?.naturalWidth > 0);
  assert.equal(await a.page.locator('.msg-list', { hasText: '[Sticker' }).count(), 0, 'no fallback line');
  await a.page.locator(`a.conv[data-conversation="${convId}"] .conv-preview`, { hasText: `${heart.emoji} Sticker` }).waitFor();
  assert.equal(bob.client.messages(convId).filter((m) => m.sticker).length, 2);
  await closeCleanly(a);
});
