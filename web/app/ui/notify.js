// Unread total in the tab title, and opt-in desktop notifications for new messages from
// others while the page is hidden.
import { h } from './dom.js';
import { conversationName, me, previewOf } from './format.js';
import { icon } from './icons.js';

const PREF_KEY = 'banter.notifications';

function supported() {
  return typeof Notification !== 'undefined';
}

function wanted() {
  try { return localStorage.getItem(PREF_KEY) === 'on'; } catch { return false; }
}

function setWanted(on) {
  try { localStorage.setItem(PREF_KEY, on ? 'on' : 'off'); } catch { /* storage off */ }
}

/** Sum of unread counts. */
export function unreadTotal(client) {
  let total = 0;
  for (const c of client.conversations()) total += Number(c.unread) || 0;
  return total;
}

/** Sets document.title to "(3) Banter" or "Banter". */
export function updateTitle(client) {
  const n = client.loggedIn ? unreadTotal(client) : 0;
  const title = n > 0 ? `(${n > 999 ? '999+' : n}) Banter` : 'Banter';
  if (document.title !== title) document.title = title;
}

/**
 * Watches the client for new messages and shows desktop notifications when enabled.
 * Returns {button, destroy}: `button` toggles notifications (asking permission first).
 */
export function createNotifier(client, { navigate }) {
  const seen = new Map();
  let primed = false;
  const active = new Map();

  const label = h('span', {});
  const button = h('button', {
    type: 'button', class: 'menu-item', role: 'menuitemcheckbox', onclick: toggle, 'aria-checked': 'false',
  }, icon('bell', 'sm'), label);

  function render() {
    if (!supported()) {
      button.hidden = true;
      return;
    }
    const perm = Notification.permission;
    const on = perm === 'granted' && wanted();
    button.setAttribute('aria-checked', on ? 'true' : 'false');
    button.disabled = perm === 'denied';
    label.textContent = perm === 'denied'
      ? 'Notifications blocked by the browser'
      : on ? 'Desktop notifications: on' : 'Enable desktop notifications';
    button.title = perm === 'denied' ? 'Allow notifications for this site in the browser settings' : '';
  }

  async function toggle() {
    if (!supported()) return;
    if (Notification.permission === 'granted' && wanted()) {
      setWanted(false);
      render();
      return;
    }
    let perm = Notification.permission;
    if (perm === 'default') {
      try { perm = await Notification.requestPermission(); } catch { perm = Notification.permission; }
    }
    setWanted(perm === 'granted');
    render();
  }

  function show(conv) {
    const title = conversationName(client, conv);
    try {
      const n = new Notification(title, {
        body: previewOf(client, conv).slice(0, 200), tag: `banter-${conv.id}`, silent: false,
      });
      active.get(conv.id)?.close();
      active.set(conv.id, n);
      n.onclick = () => {
        window.focus();
        navigate(`/c/${encodeURIComponent(conv.id)}`);
        n.close();
      };
      n.onclose = () => { if (active.get(conv.id) === n) active.delete(conv.id); };
    } catch {
      // Some browsers only allow notifications from a service worker; nothing to do then.
    }
  }

  function onConversations() {
    const myId = me(client).id;
    const list = client.conversations();
    for (const conv of list) {
      const before = seen.get(conv.id);
      seen.set(conv.id, conv.last_seq);
      if (!primed) continue;
      const m = conv.last_message;
      const fresh = before === undefined ? conv.unread > 0 : conv.last_seq > before;
      if (!fresh || !m || m.seq !== conv.last_seq) continue;
      if (m.sender === myId || (m.kind && m.kind !== 'text') || m.recalled) continue;
      if (!document.hidden || !supported() || Notification.permission !== 'granted' || !wanted()) continue;
      show(conv);
    }
    if (list.length || client.state === 'connected') primed = true;
  }

  function onVisible() {
    if (document.hidden) return;
    for (const n of active.values()) n.close();
    active.clear();
  }

  client.addEventListener('conversations', onConversations);
  document.addEventListener('visibilitychange', onVisible);
  onConversations();
  render();
  return {
    button,
    destroy() {
      client.removeEventListener('conversations', onConversations);
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}
