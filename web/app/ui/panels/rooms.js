// /rooms: join a chatroom by name; /rooms/<name>: the room with its live occupant count, the
// recent window and live messages, a composer and a Leave button. Rooms keep no history.
import { h, listen, replace } from '../dom.js';
import { linkify } from '../linkify.js';
import { byteLength, errorText, fullDate, me, nameOf, timeOrDate } from '../format.js';
import { appLink, debounce, panelHeader } from './common.js';

const ROOM_NAME = /^[a-z0-9_-]{1,64}$/;
const SUGGESTIONS = [
  { name: 'lobby', about: 'Say hello to everyone' },
  { name: 'random', about: 'Anything goes' },
  { name: 'help', about: 'Questions and answers' },
  { name: 'dev', about: 'Code and tools' },
];
const GROUP_GAP_MS = 5 * 60 * 1000;

// Rooms this client joined from the UI, so /rooms can list them (the client re-joins them
// after a reconnect). Keyed by client so another login starts empty.
const joinedByClient = new WeakMap();
function joinedRooms(client) {
  let set = joinedByClient.get(client);
  if (!set) { set = new Set(); joinedByClient.set(client, set); }
  return set;
}
/** Why a room name is not valid, or ''. */
export function roomNameError(name) {
  if (!name) return 'Enter a room name.';
  if (name.length > 64) return 'Room names are at most 64 characters.';
  if (!ROOM_NAME.test(name)) return 'Use only lower-case letters a–z, digits 0–9, “_” and “-”.';
  return '';
}

export function mount(root, ctx, params) {
  const name = params?.name ? String(params.name) : '';
  return name ? mountRoom(root, ctx, name) : mountIndex(root, ctx);
}

// ---- /rooms ----------------------------------------------------------------------------------

function mountIndex(root, ctx) {
  const { client } = ctx;
  const input = h('input', {
    id: 'room-name', class: 'input', autocomplete: 'off', spellcheck: false, maxLength: 64,
    placeholder: 'e.g. lobby', 'aria-describedby': 'room-name-err room-name-hint', autocapitalize: 'none',
  });
  const err = h('p', { id: 'room-name-err', class: 'field-error', 'aria-live': 'polite' });
  const form = h('form', { class: 'join-form', novalidate: true, 'aria-label': 'Join a room' },
    h('label', { for: 'room-name', class: 'field-label' }, 'Room name'),
    h('div', { class: 'input-row' }, input, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Join')),
    err,
    h('p', { id: 'room-name-hint', class: 'field-hint' }, '1–64 characters: a–z, 0–9, “_” and “-”. A room is created when someone first joins it.'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const value = input.value.trim().toLowerCase();
    const problem = roomNameError(value);
    err.textContent = problem;
    input.setAttribute('aria-invalid', problem ? 'true' : 'false');
    if (problem) { input.focus(); return; }
    ctx.navigate(`/rooms/${encodeURIComponent(value)}`);
  });
  input.addEventListener('input', () => {
    if (err.textContent) {
      const problem = roomNameError(input.value.trim().toLowerCase());
      err.textContent = problem;
      input.setAttribute('aria-invalid', problem ? 'true' : 'false');
    }
  });

  const mine = h('section', { class: 'panel-card', 'aria-labelledby': 'rooms-mine-h' });
  function renderMine() {
    const rooms = [...joinedRooms(client)].sort();
    mine.hidden = !rooms.length;
    replace(mine, h('h2', { id: 'rooms-mine-h', class: 'card-title' }, 'Your rooms'),
      h('ul', { class: 'room-list' }, rooms.map((r) => {
        const count = safeCount(client, r);
        return h('li', {},
          appLink(ctx, `/rooms/${encodeURIComponent(r)}`, { class: 'room-link' },
            h('span', { class: 'room-hash', 'aria-hidden': 'true' }, '#'),
            h('span', { class: 'room-link-name' }, r),
            count ? h('span', { class: 'room-link-about' }, `${count} here`) : null));
      })));
  }

  const suggestions = h('section', { class: 'panel-card', 'aria-labelledby': 'rooms-sugg-h' },
    h('h2', { id: 'rooms-sugg-h', class: 'card-title' }, 'Popular rooms'),
    h('ul', { class: 'room-list' }, SUGGESTIONS.map((s) => h('li', {},
      appLink(ctx, `/rooms/${s.name}`, { class: 'room-link' },
        h('span', { class: 'room-hash', 'aria-hidden': 'true' }, '#'),
        h('span', { class: 'room-link-name' }, s.name),
        h('span', { class: 'room-link-about' }, s.about))))));

  root.append(h('div', { class: 'panel panel-rooms' },
    panelHeader('Rooms'),
    h('section', { class: 'panel-card' },
      h('p', { class: 'lead' }, 'Chatrooms are open to everyone who knows the name. ',
        h('strong', {}, 'History is not kept:'),
        ' you see the last messages while a room is active, and everything is gone once the last person leaves. Use a group when history matters.'),
      form),
    mine, suggestions));
  renderMine();
  const off = listen(client, { room: renderMine });
  input.focus();
  return { unmount() { off(); } };
}

function safeCount(client, room) {
  try { return client.roomCount(room); } catch { return undefined; }
}

// ---- /rooms/<name> ---------------------------------------------------------------------------

function mountRoom(root, ctx, name) {
  const { client } = ctx;
  let alive = true;
  let joined = false;
  let joinError = null;
  let count;

  const countEl = h('p', { class: 'room-count', 'aria-live': 'polite', 'data-testid': 'room-count' });
  const leaveBtn = h('button', { type: 'button', class: 'btn btn-sm btn-danger-quiet' }, 'Leave room');
  const list = h('ol', { class: 'room-log-list' });
  const log = h('div', { class: 'room-log', role: 'log', 'aria-label': `Messages in #${name}`, 'aria-live': 'polite', tabIndex: 0 }, list);
  const textarea = h('textarea', {
    id: 'room-composer', class: 'composer-input', rows: 1, placeholder: `Message #${name}`,
    'aria-describedby': 'room-composer-hint', disabled: true,
  });
  const sendBtn = h('button', { type: 'submit', class: 'btn btn-primary composer-send', disabled: true }, 'Send');
  const composerErr = h('p', { class: 'field-error', role: 'alert' });
  const composer = h('form', { class: 'composer', 'aria-label': 'Send a message' },
    h('label', { for: 'room-composer', class: 'sr-only' }, `Message #${name}`),
    textarea, sendBtn);

  const problem = roomNameError(name);
  const view = h('div', { class: 'panel panel-room' },
    h('header', { class: 'panel-header room-header' },
      appLink(ctx, '/rooms', { class: 'back-link' }, h('span', { 'aria-hidden': 'true' }, '← '), 'Rooms'),
      h('div', { class: 'room-title-row' },
        h('h1', { class: 'panel-title' }, h('span', { class: 'room-hash', 'aria-hidden': 'true' }, '#'), name),
        countEl,
        problem ? null : leaveBtn)),
    h('p', { class: 'room-notice' }, 'Room history is not kept: only recent messages are shown while the room is active.'),
    log,
    h('div', { class: 'composer-wrap' }, composerErr, composer,
      h('p', { id: 'room-composer-hint', class: 'field-hint composer-hint' }, 'Enter to send, Shift+Enter for a new line.')));
  root.append(view);

  if (problem) {
    replace(list, h('li', { class: 'empty-note', role: 'alert' }, `“${name}” is not a valid room name. ${problem}`));
    composer.hidden = true;
    return { unmount() {} };
  }

  function renderCount() {
    const c = safeCount(client, name) ?? count;
    countEl.textContent = joined && typeof c === 'number' ? `${c} ${c === 1 ? 'person' : 'people'} here` : '';
  }

  const pending = []; // own messages waiting for their acknowledgement
  function messages() {
    let list = [];
    try { list = client.roomMessages(name) ?? []; } catch { list = []; }
    return pending.length ? [...list, ...pending] : list;
  }

  // Rendered entries as [{key, li}], so new messages are appended instead of re-rendering the
  // whole log (a screen reader then announces just the new ones).
  let rendered = [];
  const keyOf = (m) => (m.pending ? m : `${m.seq}|${m.id}|${m.ts}`);

  function notice(...children) {
    rendered = [];
    replace(list, h('li', { class: 'empty-note room-empty' }, ...children));
  }

  function renderLog() {
    if (!alive) return;
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    if (joinError) {
      notice(`Could not join #${name}: ${errorText(joinError)} `,
        h('button', { type: 'button', class: 'btn btn-sm', onclick: join }, 'Try again'));
      return;
    }
    if (!joined) { notice(`Joining #${name}…`); return; }
    const all = messages();
    if (!all.length) { notice(`You are in #${name}. No recent messages — say hello!`); return; }
    if (!rendered.length) list.replaceChildren();
    let p = 0;
    while (p < rendered.length && p < all.length && rendered[p].key === keyOf(all[p])) p += 1;
    for (const r of rendered.splice(p)) r.li.remove();
    for (let i = p; i < all.length; i += 1) {
      const li = entry(all[i], all[i - 1]);
      rendered.push({ key: keyOf(all[i]), li });
      list.append(li);
    }
    if (nearBottom) log.scrollTop = log.scrollHeight;
  }

  function entry(m, prev) {
    const mine = m.sender === me(client).id;
    const cont = prev && !prev.pending && !m.pending && prev.sender === m.sender && m.ts - prev.ts < GROUP_GAP_MS;
    return h('li', { class: `room-msg${mine ? ' room-msg-own' : ''}${cont ? ' room-msg-cont' : ''}${m.pending ? ' room-msg-sending' : ''}` },
      cont ? null : h('div', { class: 'room-msg-meta' },
        h('span', { class: 'room-msg-sender' }, mine ? 'You' : nameOf(client, m.sender)),
        m.ts ? h('time', { class: 'room-msg-time', dateTime: new Date(m.ts).toISOString(), title: fullDate(m.ts) }, timeOrDate(m.ts)) : null),
      h('div', { class: 'room-msg-text' }, linkify(m.text ?? '')),
      m.pending ? h('span', { class: 'room-msg-state' }, 'Sending…') : null);
  }

  async function join() {
    joinError = null;
    renderLog();
    try {
      const r = await client.roomJoin(name);
      if (!alive) return;
      joined = true;
      count = r?.count;
      joinedRooms(client).add(name);
      textarea.disabled = false;
      sendBtn.disabled = false;
      textarea.focus();
    } catch (err) {
      if (!alive) return;
      joinError = err;
    }
    renderCount();
    renderLog();
    log.scrollTop = log.scrollHeight;
  }

  function autosize() {
    textarea.style.height = 'auto';
    textarea.style.height = `${Math.min(textarea.scrollHeight, 160)}px`;
  }

  async function send() {
    const text = textarea.value;
    composerErr.textContent = '';
    if (!text.trim()) return;
    const max = client.limits?.max_text_bytes ?? 16384;
    if (byteLength(text) > max) { composerErr.textContent = `The message is too long (at most ${max} bytes).`; return; }
    textarea.value = '';
    autosize();
    const entry = { pending: true, sender: me(client).id, text, ts: Date.now() };
    pending.push(entry);
    renderLog();
    log.scrollTop = log.scrollHeight;
    try {
      await client.roomSend(name, text);
      if (!alive) return;
      pending.splice(pending.indexOf(entry), 1);
      renderLog();
      log.scrollTop = log.scrollHeight;
    } catch (err) {
      if (!alive) return;
      pending.splice(pending.indexOf(entry), 1);
      renderLog();
      if (!textarea.value) { textarea.value = text; autosize(); }
      composerErr.textContent = `Not sent: ${errorText(err)}`;
    }
  }

  composer.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  textarea.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      send();
    }
  });
  textarea.addEventListener('input', () => { autosize(); if (composerErr.textContent) composerErr.textContent = ''; });

  leaveBtn.addEventListener('click', async () => {
    leaveBtn.disabled = true;
    try {
      await client.roomLeave(name);
    } catch (err) {
      if (err?.code !== 'not_in_room') {
        ctx.toast(errorText(err), 'error');
        if (alive) leaveBtn.disabled = false;
        return;
      }
    }
    joinedRooms(client).delete(name);
    ctx.toast(`You left #${name}`, 'info');
    ctx.navigate('/rooms');
  });

  const redraw = debounce(() => { rendered = []; renderLog(); }, 50);
  const off = listen(client, {
    room: (e) => {
      if (e.detail?.room !== name) return;
      renderCount();
      renderLog();
    },
    state: renderCount,
    // Names arrive after the messages: redraw them once a profile is known.
    profile: redraw,
  });

  renderLog();
  join();

  return { unmount() { alive = false; off(); redraw.cancel(); } };
}
