// One entry of the message list: a text bubble (own on the right), a file or sticker with its
// caption (attachments.js; never the fallback text the server puts in `text` for old clients),
// a recalled placeholder, a pending/failed outbox entry, or a centred system line. Text is only ever set as text nodes
// (links through linkify); `white-space: pre-wrap` keeps the newlines.
import { h, replace } from './dom.js';
import { linkify } from './linkify.js';
import { byteLength, fullDate, systemText, timeOf } from './format.js';
import { hueIndex } from './avatar.js';
import { icon } from './icons.js';

const STATE_LABEL = { sending: 'Sending', sent: 'Sent', read: 'Read', failed: 'Not sent' };
const STATE_ICON = { sending: 'clock', sent: 'check', read: 'check2', failed: 'alert' };

const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}|\p{Emoji_Modifier}|\p{Regional_Indicator}|[\u200d\ufe0f\u20e3#*0-9]|\s)+$/u;

function emojiOnly(text) {
  if (!text || text.length > 40 || !EMOJI_ONLY.test(text) || !/\p{Extended_Pictographic}|\p{Regional_Indicator}/u.test(text)) return false;
  if (typeof Intl?.Segmenter !== 'function') return true;
  const n = [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text.trim())]
    .filter((s) => s.segment.trim()).length;
  return n <= 3;
}

/** The delivery state of an own entry: sending, sent, read or failed. */
export function deliveryState(client, conv, msg) {
  if (msg.pending) return msg.state === 'failed' ? 'failed' : 'sending';
  if (conv?.kind === 'direct') {
    let peerSeq = 0;
    try { peerSeq = Number(client.peerReadSeq(conv.id)) || 0; } catch { peerSeq = 0; }
    if (peerSeq >= msg.seq) return 'read';
  }
  return 'sent';
}

/** May the sender still recall `msg` (own, text, not recalled, inside the window)? */
export function canRecall(msg, limits, now = Date.now()) {
  if (msg.pending || msg.recalled || (msg.kind && msg.kind !== 'text')) return false;
  const windowMs = (Number(limits?.recall_window_secs) || 120) * 1000;
  return now - msg.ts < windowMs;
}

/** A signature of everything that changes how an item looks; equal signatures skip work. */
export function signature(item) {
  const m = item.msg;
  return JSON.stringify([
    item.type, m?.seq, m?.text, m?.edited_at, m?.attachment?.id, m?.sticker?.id, !!m?.recalled, m?.state, m?.error?.code ?? m?.error,
    item.state, item.showName, item.senderName, item.grouped, item.canRecall, item.editing, item.label,
  ]);
}

/**
 * Renders an item. `item`: {type: 'day'|'unread'|'system'|'message', key, msg, own, state,
 * showName, senderName, grouped, canRecall, editing, label}. `actions`: {startEdit(item),
 * saveEdit(item, text), cancelEdit(item), recall(item), retry(item), discard(item)}.
 */
export function renderItem(client, item, actions, { maxBytes, media }) {
  if (item.type === 'day') {
    return h('li', { class: 'day-sep', dataset: { key: item.key } }, h('span', {}, item.label));
  }
  if (item.type === 'unread') {
    return h('li', { class: 'unread-sep', dataset: { key: item.key } }, h('span', {}, 'Unread messages'));
  }
  const m = item.msg;
  if (item.type === 'system') {
    return h('li', { class: 'msg-system', dataset: { key: item.key, seq: m.seq } },
      h('span', { title: fullDate(m.ts) }, systemText(client, m.event)));
  }
  const own = item.own;
  const classes = ['msg', own ? 'own' : 'other'];
  if (item.grouped) classes.push('grouped');
  if (m.pending) classes.push('pending');
  if (m.recalled) classes.push('recalled');
  const text = m.recalled ? null : String(m.text ?? '');
  const file = !m.recalled && (m.attachment || m.sticker) ? m : null;
  if (file) classes.push(m.sticker ? 'has-sticker' : 'has-media');
  else if (text !== null && emojiOnly(text)) classes.push('jumbo');

  const li = h('li', {
    class: classes.join(' '),
    dataset: { key: item.key, seq: m.seq ?? '', state: own ? item.state : '', sender: m.sender ?? '' },
  });
  const bubble = h('div', { class: 'bubble' });
  if (item.showName) {
    bubble.append(h('div', { class: `msg-sender sender-hue-${hueIndex(m.sender)}` }, item.senderName));
  }
  if (item.editing) {
    bubble.append(editor(item, actions, maxBytes));
  } else if (m.recalled) {
    bubble.append(h('div', { class: 'msg-text msg-recalled' }, 'This message was recalled'));
  } else if (file) {
    bubble.append(media ? media.render(m) : h('div', { class: 'msg-text' }, text));
    const caption = m.sticker ? '' : String((m.pending ? m.text : m.attachment.caption) ?? '');
    if (caption.trim()) bubble.append(h('div', { class: 'msg-text msg-caption', dir: 'auto' }, linkify(caption)));
  } else {
    bubble.append(h('div', { class: 'msg-text', dir: 'auto' }, linkify(text)));
  }
  const meta = h('div', { class: 'msg-meta' },
    m.edited_at && !m.recalled ? h('span', { class: 'msg-edited', title: `Edited ${fullDate(m.edited_at)}` }, 'edited') : null,
    h('time', { dateTime: new Date(m.ts || Date.now()).toISOString(), title: fullDate(m.ts || Date.now()) }, timeOf(m.ts || Date.now())),
    own ? h('span', { class: `msg-state state-${item.state}`, title: STATE_LABEL[item.state] },
      icon(STATE_ICON[item.state], 'xs'),
      h('span', { class: 'sr-only' }, STATE_LABEL[item.state])) : null);
  bubble.append(meta);

  const row = h('div', { class: 'msg-row' }, bubble);
  if (own && !m.pending && !m.recalled && !item.editing && (m.kind ?? 'text') === 'text') {
    row.append(ownActions(item, actions));
  }
  li.append(row);

  if (m.pending && m.state === 'failed') {
    const reason = m.error?.message || (typeof m.error === 'string' ? m.error : '') || '';
    li.append(h('div', { class: 'msg-failed' },
      h('span', {}, `Not sent${reason ? `: ${friendlyFailure(m.error) || reason}` : '.'}`),
      h('button', { type: 'button', class: 'btn btn-small', onclick: () => actions.retry(item) }, 'Retry'),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => actions.discard(item) }, 'Discard')));
  }
  return li;
}

function friendlyFailure(error) {
  const code = error?.code ?? error;
  return {
    blocked: 'you cannot message this person',
    not_friends: 'you can only message friends',
    group_dissolved: 'the group was dissolved',
    unknown_conversation: 'you are no longer in this conversation',
    text_too_long: 'the message is too long',
    rate_limited: 'sending too fast',
    unknown_media: 'the file is not available',
    invalid_media: 'the file cannot be sent this way',
    invalid_file_name: 'the file name cannot be used',
    unknown_sticker: 'that sticker is not available',
  }[code];
}

function ownActions(item, actions) {
  const box = h('div', { class: 'msg-actions' });
  const editable = !item.msg.attachment && !item.msg.sticker;
  const normal = () => replace(box,
    !editable ? null : h('button', {
      type: 'button', class: 'icon-btn', 'aria-label': 'Edit message', title: 'Edit',
      onclick: () => actions.startEdit(item),
    }, icon('edit', 'sm')),
    item.canRecall ? h('button', {
      type: 'button', class: 'icon-btn', 'aria-label': 'Recall message', title: 'Recall',
      onclick: confirm,
    }, icon('recall', 'sm')) : null);
  function confirm() {
    const no = h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => { normal(); box.querySelector('button')?.focus(); } }, 'Cancel');
    replace(box,
      h('span', { class: 'msg-confirm' }, 'Recall for everyone?'),
      h('button', { type: 'button', class: 'btn btn-small btn-danger', onclick: () => actions.recall(item) }, 'Recall'),
      no);
    box.classList.add('confirming');
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); box.classList.remove('confirming'); normal(); }
    }, { once: true });
    no.focus();
  }
  normal();
  return box;
}

function editor(item, actions, maxBytes) {
  const id = `edit-${item.key.replace(/[^a-z0-9_-]/gi, '_')}`;
  const area = h('textarea', {
    id, class: 'edit-input', rows: 1, value: item.msg.text ?? '', 'aria-describedby': `${id}-hint`,
  });
  const hint = h('div', { class: 'edit-hint', id: `${id}-hint` }, 'Enter to save · Esc to cancel');
  const save = () => {
    const text = area.value;
    if (!text.trim()) { hint.textContent = 'The message cannot be empty. Esc to cancel.'; return; }
    if (maxBytes && byteLength(text) > maxBytes) { hint.textContent = 'The message is too long.'; return; }
    if (text === item.msg.text) { actions.cancelEdit(item); return; }
    area.disabled = true;
    actions.saveEdit(item, text).catch(() => { area.disabled = false; area.focus(); });
  };
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); save(); }
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); actions.cancelEdit(item); }
  });
  area.addEventListener('input', () => autosize(area));
  queueMicrotask(() => {
    autosize(area);
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  });
  return h('div', { class: 'msg-editor' },
    h('label', { for: id, class: 'sr-only' }, 'Edit message'),
    area,
    h('div', { class: 'edit-bar' }, hint,
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => actions.cancelEdit(item) }, 'Cancel'),
      h('button', { type: 'button', class: 'btn btn-small btn-primary', onclick: save }, 'Save')));
}

/** Grows a textarea with its content, up to its CSS max-height. */
export function autosize(area) {
  area.style.height = 'auto';
  area.style.height = `${area.scrollHeight + 2}px`;
}
