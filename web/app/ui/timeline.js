// The scrolling message list of a chat. It turns the SDK's message array into items (day
// separators, an "Unread messages" line, messages, system lines), updates the DOM in place
// (keyed; unchanged items are left alone), and keeps the scroll position stable: at the bottom
// it follows new messages, elsewhere the first visible item stays where it was, also when
// older pages are prepended.
import { h } from './dom.js';
import { canRecall, deliveryState, renderItem, signature } from './message.js';
import { dayLabel, me, nameOf, safe, sameDay, systemText } from './format.js';

const GROUP_GAP_MS = 5 * 60 * 1000;
const BOTTOM_SLACK = 48;

/**
 * Options: {client, actions (see message.js), maxBytes(), onScroll(), media() -> the chat's
 * media view (attachments.js)}.
 * Returns {el, render(state), isAtBottom(), scrollToBottom(), visibleMaxSeq(), setOlder(text),
 * itemElement(key), destroy()}.
 */
export function createTimeline({ client, actions, maxBytes, onScroll, media }) {
  const older = h('div', { class: 'older', 'aria-live': 'polite' });
  const list = h('ol', { class: 'msg-list' });
  const el = h('div', {
    class: 'messages', role: 'log', 'aria-label': 'Messages', tabIndex: 0, 'aria-relevant': 'additions',
  }, h('div', { class: 'msg-stack' }, older, list));
  const nodes = new Map();
  let ticking = false;

  el.addEventListener('scroll', () => {
    if (ticking) return;
    ticking = true;
    requestAnimationFrame(() => { ticking = false; onScroll?.(); });
    // A hidden page gets no animation frames; the timer covers it.
    setTimeout(() => { if (ticking) { ticking = false; onScroll?.(); } }, 100);
  }, { passive: true });

  function isAtBottom() {
    return el.scrollHeight - el.scrollTop - el.clientHeight < BOTTOM_SLACK;
  }

  function scrollToBottom() {
    el.scrollTop = el.scrollHeight;
  }

  /**
   * The first message (or system line) whose bottom is below the top edge, and its offset from
   * that edge. Day separators are skipped: the first one stays first when a page is prepended.
   */
  function anchor() {
    const top = el.getBoundingClientRect().top;
    for (const li of list.children) {
      if (!li.dataset.seq) continue;
      const r = li.getBoundingClientRect();
      if (r.bottom > top + 1) return { key: li.dataset.key, offset: r.top - top };
    }
    return null;
  }

  /** Highest seq among message elements that are at least partly visible. */
  function visibleMaxSeq() {
    const box = el.getBoundingClientRect();
    let best = 0;
    for (const li of list.children) {
      const seq = Number(li.dataset.seq);
      if (!seq) continue;
      const r = li.getBoundingClientRect();
      if (r.top >= box.bottom) break;
      if (r.bottom > box.top + 4 && seq > best) best = seq;
    }
    return best;
  }

  function buildItems({ conv, messages, unreadAfter, editingKey }) {
    const myId = me(client).id;
    const now = Date.now();
    const limits = safe(() => client.limits) || {};
    const items = [];
    const used = new Set();
    let prev = null;
    let unreadShown = false;
    for (const m of messages) {
      const kind = m.pending ? 'text' : (m.kind || 'text');
      if (kind !== 'text' && kind !== 'system') continue;
      const ts = m.ts || now;
      if (!prev || !sameDay(prev.ts, ts)) {
        const key = `d:${new Date(ts).toDateString()}`;
        if (!used.has(key)) {
          items.push({ type: 'day', key, label: dayLabel(ts, now) });
          used.add(key);
          prev = null;
        }
      }
      if (unreadAfter != null && !unreadShown && !m.pending && m.seq > unreadAfter && m.sender !== myId) {
        items.push({ type: 'unread', key: 'unread' });
        unreadShown = true;
        prev = null;
      }
      if (kind === 'system') {
        const key = `s:${m.seq}`;
        if (used.has(key)) continue;
        used.add(key);
        items.push({ type: 'system', key, msg: m, label: systemText(client, m.event) });
        prev = null;
        continue;
      }
      const own = Boolean(m.pending) || m.sender === myId;
      const key = own && m.client_msg_id ? `c:${m.client_msg_id}` : `s:${m.seq}`;
      if (used.has(key)) continue;
      used.add(key);
      const sender = own ? myId : m.sender;
      const grouped = Boolean(prev && prev.sender === sender && ts - prev.ts < GROUP_GAP_MS);
      const item = {
        type: 'message', key, msg: m, own, grouped,
        state: own ? deliveryState(client, conv, m) : '',
        showName: conv?.kind === 'group' && !own && !grouped,
        senderName: conv?.kind === 'group' && !own ? nameOf(client, m.sender) : '',
        canRecall: own && canRecall(m, limits, now),
        editing: key === editingKey,
      };
      items.push(item);
      prev = { sender, ts };
    }
    return items;
  }

  /**
   * Renders `state` = {conv, messages, unreadAfter, editingKey, empty}. With `forceBottom`
   * it ends at the bottom. Returns {added: number of new messages from others, items}.
   */
  function render(state, { forceBottom = false } = {}) {
    const items = buildItems(state);
    const wasAtBottom = isAtBottom();
    const keep = wasAtBottom || forceBottom ? null : anchor();
    const known = new Set(nodes.keys());
    let added = 0;
    let cursor = list.firstElementChild;
    const lastKnown = list.lastElementChild?.dataset.key;
    const firstKnownIndex = items.findIndex((i) => i.key === lastKnown);
    items.forEach((item, index) => {
      const sig = signature(item);
      let node = nodes.get(item.key);
      if (!node || node.sig !== sig) {
        const li = renderItem(client, item, actions, { maxBytes: maxBytes(), media: media?.() });
        if (node) node.li.replaceWith(li);
        if (node && cursor === node.li) cursor = li;
        node = { li, sig };
        if (!nodes.has(item.key) && item.type === 'message' && !item.own && index > firstKnownIndex && lastKnown) added += 1;
        nodes.set(item.key, node);
      }
      known.delete(item.key);
      if (node.li === cursor) cursor = cursor.nextElementSibling;
      else list.insertBefore(node.li, cursor);
    });
    for (const key of known) {
      nodes.get(key)?.li.remove();
      nodes.delete(key);
    }
    if (state.empty && !items.length) {
      if (!list.firstElementChild || !list.firstElementChild.classList.contains('chat-empty')) {
        list.replaceChildren(h('li', { class: 'chat-empty' }, state.empty));
      } else {
        list.firstElementChild.textContent = state.empty;
      }
    } else {
      list.querySelector(':scope > .chat-empty')?.remove();
    }
    if (forceBottom || wasAtBottom) {
      scrollToBottom();
    } else if (keep && nodes.get(keep.key)) {
      // By key: the element itself may have been re-rendered (it can join a group now).
      const top = el.getBoundingClientRect().top;
      const delta = nodes.get(keep.key).li.getBoundingClientRect().top - top - keep.offset;
      if (Math.abs(delta) > 0.5) el.scrollTop += delta;
    }
    return { added, items };
  }

  return {
    el,
    render,
    isAtBottom,
    scrollToBottom,
    visibleMaxSeq,
    setOlder(text) { if (older.textContent !== text) older.textContent = text; },
    itemElement(key) { return nodes.get(key)?.li ?? null; },
    destroy() { nodes.clear(); },
  };
}
