// The message composer: a labelled, auto-growing <textarea> (Enter sends, Shift+Enter adds a
// line, Esc closes the emoji picker), the emoji picker, a byte counter near the length limit,
// typing notifications, and a disabled state with the reason (dissolved or left group). With
// `media`, also files: an "Attach file" button, pasted files, a row of uploads (uploads.js,
// the text becomes the caption), voice notes (recorder.js) and stickers (stickers.js).
import { h } from './dom.js';
import { createUploads } from './uploads.js';
import { createRecorder } from './recorder.js';
import { stickerPicker } from './stickers.js';
import { errorText } from './format.js';
import { emojiPicker } from './emoji.js';
import { autosize } from './message.js';
import { byteLength } from './format.js';
import { icon } from './icons.js';

const drafts = new Map();

/** Forgets every unsent draft (on log out, so the next user of this tab sees none). */
export function clearDrafts() {
  drafts.clear();
}

/**
 * Options: {draftKey, placeholder, maxBytes() -> number, onSend(text) -> boolean (true when
 * queued), onTyping(), onEditLast() -> boolean, media?: {client, target(), toast}}.
 * Returns {el, focus(), setDisabled(reason), insert(text), addFiles(files), destroy()}.
 */
export function createComposer({ draftKey, placeholder, maxBytes, onSend, onTyping, onEditLast, media }) {
  const counter = h('div', { class: 'composer-counter', id: 'composer-counter', 'aria-live': 'polite' });
  const area = h('textarea', {
    id: 'composer-input', class: 'chat-input', rows: 1, placeholder,
    'aria-describedby': 'composer-counter', enterKeyHint: 'send', autocomplete: 'off',
    oninput: onInput, onkeydown: onKey,
  });
  const emojiButton = h('button', {
    type: 'button', class: 'icon-btn emoji-btn', 'aria-label': 'Insert emoji', 'aria-haspopup': 'dialog', title: 'Emoji',
    onclick: () => { stickers?.close({ restoreFocus: false }); picker.toggle(); },
  }, icon('smile'));
  const sendButton = h('button', {
    type: 'submit', class: 'icon-btn send-btn', 'aria-label': 'Send', title: 'Send (Enter)',
  }, icon('send'));
  const reasonBox = h('p', { class: 'composer-disabled', hidden: true });
  const uploads = media ? createUploads({
    ...media, onChange: () => updateCounter(), onCaptionBack: (text) => { if (!area.value) insert(text); },
  }) : null;
  const recorder = media ? createRecorder({
    toast: media.toast,
    onRecorded: (file, durationMs) => uploads.add([file], { kind: 'voice', durationMs, send: true }),
    onState: (on) => { updateCounter(); if (!on) area.focus(); },
  }) : null;
  const fileInput = media ? h('input', {
    type: 'file', multiple: true, hidden: true, class: 'attach-input', tabIndex: -1, 'aria-hidden': 'true',
    onchange: () => { addFiles([...fileInput.files]); fileInput.value = ''; },
  }) : null;
  const attachButton = media ? h('button', {
    type: 'button', class: 'icon-btn attach-btn', 'aria-label': 'Attach file', title: 'Attach file',
    onclick: () => fileInput.click(),
  }, icon('clip')) : null;
  const stickerButton = media ? h('button', {
    type: 'button', class: 'icon-btn sticker-btn', 'aria-label': 'Stickers', 'aria-haspopup': 'dialog', title: 'Stickers',
    onclick: () => { picker.close({ restoreFocus: false }); stickers.toggle(); },
  }, icon('sticker')) : null;
  const stickers = media ? stickerPicker({
    client: media.client, anchor: stickerButton, onPick: sendSticker,
    onClose: ({ restoreFocus }) => { if (restoreFocus) area.focus(); },
  }) : null;
  const picker = emojiPicker({
    anchor: emojiButton,
    onPick: insert,
    onClose: ({ restoreFocus }) => { if (restoreFocus) area.focus(); },
  });
  const box = h('div', { class: 'composer-box' },
    stickerButton,
    emojiButton,
    h('label', { for: 'composer-input', class: 'sr-only' }, 'Message'),
    area,
    attachButton,
    fileInput,
    recorder?.button,
    sendButton);
  const el = h('form', { class: 'chat-composer', onsubmit: (e) => { e.preventDefault(); send(); } },
    picker.el, stickers?.el, reasonBox, uploads?.el, recorder?.bar, box, counter);
  if (media) area.addEventListener('paste', onPaste);

  area.value = drafts.get(draftKey) ?? '';

  function limit() {
    return Number(maxBytes?.()) || 16384;
  }

  function updateCounter() {
    const max = limit();
    const used = byteLength(area.value);
    const near = used > max * 0.8;
    counter.textContent = near ? `${used.toLocaleString()} / ${max.toLocaleString()}` : '';
    counter.classList.toggle('over', used > max);
    counter.title = used > max ? 'The message is too long' : '';
    if (used > max) counter.textContent += ' — too long';
    const files = uploads?.waiting() ?? 0;
    sendButton.disabled = used > max || (!area.value.trim() && !files) || Boolean(recorder?.recording());
  }

  function onInput() {
    drafts.set(draftKey, area.value);
    autosize(area);
    updateCounter();
    if (area.value.trim()) onTyping?.();
  }

  function send() {
    const text = area.value;
    if (byteLength(text) > limit() || area.disabled || recorder?.recording()) return;
    // Files not sent yet take the text as their caption; otherwise it is a message of its own.
    if (!uploads?.sendAll(text.trim() ? text : '') && (!text.trim() || onSend(text) === false)) return;
    area.value = '';
    drafts.delete(draftKey);
    autosize(area);
    updateCounter();
    picker.close({ restoreFocus: false });
    area.focus();
  }

  function onKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      send();
    } else if (e.key === 'Escape' && picker.isOpen()) {
      e.preventDefault();
      e.stopPropagation();
      picker.close();
    } else if (e.key === 'ArrowUp' && !area.value && onEditLast?.()) {
      e.preventDefault();
    }
  }

  function sendSticker(sticker) {
    const to = media.target();
    try {
      if (!to) throw new Error('There is no one to send this to.');
      media.client.sendSticker({ ...to, sticker });
    } catch (err) {
      media.toast(errorText(err), 'error');
      return;
    }
    stickers.close();
  }

  /** Files from the picker, a paste or a drop: they start uploading and wait for Send. */
  function addFiles(files) {
    if (!uploads || area.disabled || !files.length) return;
    uploads.add(files);
    area.focus();
  }

  function onPaste(e) {
    const files = [...(e.clipboardData?.files ?? [])];
    if (!files.length) return;
    e.preventDefault();
    addFiles(files);
  }

  function insert(text) {
    if (area.disabled) return;
    const start = area.selectionStart ?? area.value.length;
    const end = area.selectionEnd ?? start;
    area.setRangeText(text, start, end, 'end');
    area.dispatchEvent(new Event('input', { bubbles: true }));
  }

  updateCounter();
  queueMicrotask(() => autosize(area));

  return {
    el,
    focus() { if (!area.disabled) area.focus({ preventScroll: true }); },
    setDisabled(reason) {
      const off = Boolean(reason);
      area.disabled = off;
      emojiButton.disabled = off;
      if (attachButton) attachButton.disabled = off;
      if (stickerButton) stickerButton.disabled = off;
      if (off) stickers?.close({ restoreFocus: false });
      recorder?.setDisabled(off);
      reasonBox.hidden = !off;
      reasonBox.textContent = reason || '';
      box.hidden = off;
      if (off) picker.close({ restoreFocus: false });
      else updateCounter();
    },
    insert,
    addFiles,
    destroy() {
      picker.destroy();
      stickers?.destroy();
      recorder?.destroy();
      uploads?.destroy();
    },
  };
}
