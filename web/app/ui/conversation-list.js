// The conversation list in the sidebar: one link per conversation with avatar, name, last
// message preview, time, unread badge and (for direct chats) the peer's presence. Rows are
// updated in place (keyed by id), so focus and scroll position survive updates.
import { h, listen, replace } from './dom.js';
import {
  conversationName, listTime, onlineOf, previewOf, profileOf, safe, typingText,
} from './format.js';
import { avatar, presenceDot } from './avatar.js';

/**
 * Creates the list. Returns {el, select(id), destroy()}; `select` highlights the open
 * conversation (or none).
 */
export function createConversationList(client) {
  const rows = new Map();
  const asked = new Set();
  let selected = null;
  let filter = '';
  let typingTimer = null;
  let frame = 0;

  const input = h('input', {
    id: 'conv-filter', type: 'search', placeholder: 'Search chats', autocomplete: 'off',
    spellcheck: false, 'aria-controls': 'conv-list',
    oninput: () => { filter = input.value.trim().toLocaleLowerCase(); render(); },
    onkeydown: (e) => {
      if (e.key === 'ArrowDown') { e.preventDefault(); list.querySelector('a.conv')?.focus(); }
      if (e.key === 'Enter') { e.preventDefault(); list.querySelector('a.conv')?.click(); }
      if (e.key === 'Escape' && input.value) { e.preventDefault(); e.stopPropagation(); input.value = ''; filter = ''; render(); }
    },
  });
  const list = h('ul', { class: 'conv-list', id: 'conv-list', onkeydown: onListKey });
  const empty = h('p', { class: 'conv-empty', hidden: true });
  const el = h('div', { class: 'convs' },
    h('div', { class: 'conv-search' },
      h('label', { for: 'conv-filter', class: 'sr-only' }, 'Filter conversations by name'),
      input),
    h('nav', { class: 'conv-scroll', 'aria-label': 'Conversations' }, list, empty));

  function onListKey(e) {
    const links = [...list.querySelectorAll('a.conv')];
    const i = links.indexOf(document.activeElement);
    if (i < 0) return;
    const next = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: links.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    if (next < 0) { input.focus(); return; }
    links[Math.min(next, links.length - 1)]?.focus();
  }

  function rowFor(conv) {
    let row = rows.get(conv.id);
    if (!row) {
      const link = h('a', { class: 'conv', href: `/c/${encodeURIComponent(conv.id)}`, dataset: { conversation: conv.id } });
      row = { li: h('li', {}, link), link, sig: '' };
      rows.set(conv.id, row);
    }
    return row;
  }

  function fill(row, conv) {
    const name = conversationName(client, conv);
    const typers = safe(() => client.typers(conv.id)) || [];
    const typing = typers.length ? typingText(client, typers) : '';
    const preview = typing || previewOf(client, conv);
    const direct = conv.kind === 'direct';
    const online = direct ? onlineOf(client, conv.peer) : undefined;
    const picture = direct && conv.peer ? profileOf(client, conv.peer)?.avatar_url : undefined;
    const unread = Number(conv.unread) || 0;
    const time = conv.last_message?.ts || conv.updated_at;
    const isSelected = conv.id === selected;
    const sig = JSON.stringify([name, picture, preview, !!typing, online, unread, listTime(time), isSelected, conv.kind]);
    if (sig === row.sig) return;
    row.sig = sig;
    const link = row.link;
    if (isSelected) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
    link.classList.toggle('unread', unread > 0);
    link.dataset.peer = conv.peer || '';
    link.dataset.kind = conv.kind;
    replace(link,
      h('span', { class: 'avatar-wrap' },
        avatar({ id: direct ? conv.peer : conv.id, name, url: picture }),
        online === undefined ? null : presenceDot(online)),
      h('span', { class: 'conv-body' },
        h('span', { class: 'conv-top' },
          h('span', { class: 'conv-name' }, name),
          time ? h('time', { class: 'conv-time', dateTime: new Date(time).toISOString() }, listTime(time)) : null),
        h('span', { class: 'conv-bottom' },
          h('span', { class: `conv-preview${typing ? ' typing' : ''}` }, preview),
          unread > 0 ? h('span', { class: 'badge', 'aria-label': `${unread} unread` }, unread > 99 ? '99+' : String(unread)) : null)));
  }

  function askPresence(conversations) {
    const ids = [];
    for (const c of conversations) {
      if (c.kind !== 'direct' || !c.peer || asked.has(c.peer)) continue;
      if (onlineOf(client, c.peer) === undefined) ids.push(c.peer);
      asked.add(c.peer);
    }
    if (ids.length && client.state === 'connected' && typeof client.loadPresence === 'function') {
      for (let i = 0; i < ids.length; i += 200) {
        Promise.resolve(client.loadPresence(ids.slice(i, i + 200))).catch(() => {});
      }
    }
  }

  function render() {
    frame = 0;
    const all = client.conversations();
    askPresence(all);
    const shown = filter
      ? all.filter((c) => conversationName(client, c).toLocaleLowerCase().includes(filter))
      : all;
    const keep = new Set();
    let cursor = list.firstElementChild;
    for (const conv of shown) {
      const row = rowFor(conv);
      fill(row, conv);
      keep.add(conv.id);
      if (row.li === cursor) {
        cursor = cursor.nextElementSibling;
      } else {
        list.insertBefore(row.li, cursor);
      }
    }
    for (const [id, row] of rows) {
      if (!keep.has(id)) {
        row.li.remove();
        if (!all.some((c) => c.id === id)) rows.delete(id);
      }
    }
    empty.hidden = shown.length > 0;
    empty.textContent = filter ? 'No chats match.' : client.state === 'connected' || all.length
      ? 'No conversations yet. Find people in Contacts to start chatting.' : 'Loading conversations…';
  }

  function schedule() {
    if (!frame) frame = setTimeout(render, 0);
  }

  function onTyping() {
    schedule();
    clearTimeout(typingTimer);
    typingTimer = setTimeout(schedule, 5500);
  }

  function onHello() {
    asked.clear();
    schedule();
  }

  const events = {
    conversations: schedule, profile: schedule, presence: schedule, typing: onTyping,
    messages: onTyping, state: schedule, hello: onHello,
  };
  const unlisten = listen(client, events);
  // Times like "Yesterday" change while the page stays open.
  const clock = setInterval(schedule, 60_000);
  render();

  return {
    el,
    select(id) {
      if (selected === id) return;
      selected = id;
      render();
    },
    focusFilter() { input.focus(); },
    destroy() {
      unlisten();
      clearInterval(clock);
      clearTimeout(typingTimer);
      clearTimeout(frame);
    },
  };
}
