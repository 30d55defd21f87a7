// The message composer: a labelled, auto-growing <textarea> (Enter sends, Shift+Enter adds a
// line, Esc closes the emoji picker), the emoji picker, a byte counter near the length limit,
// typing notifications, and a disabled state with the reason (dissolved or left group).
import { h } from './dom.js';
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
 * queued), onTyping(), onEditLast() -> boolean}.
 */
export function createComposer({ draftKey, placeholder, maxBytes, onSend, onTyping, onEditLast }) {
  const counter = h('div', { class: 'composer-counter', id: 'composer-counter', 'aria-live': 'polite' });
  const area = h('textarea', {
    id: 'composer-input', class: 'chat-input', rows: 1, placeholder,
    'aria-describedby': 'composer-counter', enterKeyHint: 'send', autocomplete: 'off',
    oninput: onInput, onkeydown: onKey,
  });
  const emojiButton = h('button', {
    type: 'button', class: 'icon-btn emoji-btn', 'aria-label': 'Insert emoji', 'aria-haspopup': 'dialog', title: 'Emoji',
    onclick: () => picker.toggle(),
  }, icon('smile'));
  const sendButton = h('button', {
    type: 'submit', class: 'icon-btn send-btn', 'aria-label': 'Send', title: 'Send (Enter)',
  }, icon('send'));
  const reasonBox = h('p', { class: 'composer-disabled', hidden: true });
  const picker = emojiPicker({
    anchor: emojiButton,
    onPick: insert,
    onClose: ({ restoreFocus }) => { if (restoreFocus) area.focus(); },
  });
  const box = h('div', { class: 'composer-box' },
    emojiButton,
    h('label', { for: 'composer-input', class: 'sr-only' }, 'Message'),
    area,
    sendButton);
  const el = h('form', { class: 'chat-composer', onsubmit: (e) => { e.preventDefault(); send(); } },
    picker.el, reasonBox, box, counter);

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
    sendButton.disabled = used > max || !area.value.trim();
  }

  function onInput() {
    drafts.set(draftKey, area.value);
    autosize(area);
    updateCounter();
    if (area.value.trim()) onTyping?.();
  }

  function send() {
    const text = area.value;
    if (!text.trim() || byteLength(text) > limit() || area.disabled) return;
    if (onSend(text) === false) return;
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
      reasonBox.hidden = !off;
      reasonBox.textContent = reason || '';
      box.hidden = off;
      if (off) picker.close({ restoreFocus: false });
      else updateCounter();
    },
    insert,
    destroy() { picker.destroy(); },
  };
}
