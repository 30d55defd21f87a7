// /contacts: friends with presence, incoming and outgoing requests, blocked users, and a user
// search to send friend requests. Live: re-renders on 'friend', 'presence' and 'profile'.
import { h, listen, replace } from '../dom.js';
import { errorText, me, nameOf, onlineOf, profileOf, usernameOf } from '../format.js';
import { presenceDot, userAvatar } from '../avatar.js';
import { busy, confirmDialog, debounce, panelHeader, removeDialogs, smallButton } from './common.js';

const USERNAME_PREFIX = /^[a-z0-9_.-]{1,32}$/;

export function mount(root, ctx, params) {
  const { client } = ctx;
  let alive = true;
  let data = { friends: [], incoming: [], outgoing: [], blocked: [] };
  let loaded = false;
  let loadError = null;
  let results = null; // null: no search yet; array: the last answer
  let searchMsg = '';
  let searchSeq = 0;

  const friendsList = h('ul', { class: 'person-list', 'aria-label': 'Friends' });
  const incomingList = h('ul', { class: 'person-list', 'aria-label': 'Incoming requests' });
  const outgoingList = h('ul', { class: 'person-list', 'aria-label': 'Sent requests' });
  const blockedList = h('ul', { class: 'person-list', 'aria-label': 'Blocked users' });
  const resultsList = h('ul', { class: 'person-list', 'aria-label': 'Search results' });
  const searchNote = h('p', { class: 'field-hint', role: 'status', 'aria-live': 'polite' });
  const friendsCount = h('span', { class: 'count-badge' });
  const incomingCount = h('span', { class: 'count-badge' });

  const search = h('input', {
    type: 'search', id: 'contacts-search', class: 'input', autocomplete: 'off', spellcheck: false,
    placeholder: 'Search by username', 'aria-describedby': 'contacts-search-note',
    maxLength: 32,
  });
  searchNote.id = 'contacts-search-note';

  const incomingSection = h('section', { class: 'panel-card', 'aria-labelledby': 'contacts-incoming-h' },
    h('h2', { id: 'contacts-incoming-h', class: 'card-title' }, 'Friend requests ', incomingCount),
    incomingList);
  const outgoingSection = h('section', { class: 'panel-card', 'aria-labelledby': 'contacts-outgoing-h' },
    h('h2', { id: 'contacts-outgoing-h', class: 'card-title' }, 'Sent requests'),
    outgoingList);
  const blockedSection = h('section', { class: 'panel-card', 'aria-labelledby': 'contacts-blocked-h' },
    h('h2', { id: 'contacts-blocked-h', class: 'card-title' }, 'Blocked'),
    blockedList);

  const view = h('div', { class: 'panel panel-contacts' },
    panelHeader('Contacts'),
    h('section', { class: 'panel-card', 'aria-labelledby': 'contacts-search-h' },
      h('h2', { id: 'contacts-search-h', class: 'card-title' }, 'Find people'),
      h('label', { for: 'contacts-search', class: 'field-label' }, 'Username'),
      search, searchNote, resultsList),
    incomingSection,
    h('section', { class: 'panel-card', 'aria-labelledby': 'contacts-friends-h' },
      h('h2', { id: 'contacts-friends-h', class: 'card-title' }, 'Friends ', friendsCount),
      friendsList),
    outgoingSection,
    blockedSection);
  root.append(view);

  // ---- data -----------------------------------------------------------------------------

  async function load() {
    try {
      const r = await client.friends();
      if (!alive) return;
      data = {
        friends: r?.friends ?? [], incoming: r?.incoming ?? [],
        outgoing: r?.outgoing ?? [], blocked: r?.blocked ?? [],
      };
      loaded = true;
      loadError = null;
      const ids = data.friends.map((p) => p.id);
      if (ids.length && client.loadPresence) client.loadPresence(ids).catch(() => {});
    } catch (err) {
      if (!alive) return;
      loadError = err;
    }
    render();
  }
  const reload = debounce(load, 100);

  function relation(id) {
    if (id === me(client).id) return 'self';
    if (data.friends.some((p) => p.id === id)) return 'friend';
    if (data.outgoing.some((p) => p.id === id)) return 'outgoing';
    if (data.incoming.some((p) => p.id === id)) return 'incoming';
    if (data.blocked.some((p) => p.id === id)) return 'blocked';
    return 'none';
  }

  // ---- rendering --------------------------------------------------------------------------

  function person(p, { presence = false, actions = [], extra = null } = {}) {
    const name = nameOf(client, p.id, p);
    const username = usernameOf(client, p.id, p);
    const status = presence ? (profileOf(client, p.id)?.status_text || p.status_text || '') : '';
    return h('li', { class: 'person', dataset: { user: p.id } },
      h('div', { class: 'person-avatar' }, userAvatar(client, p.id, p), presence ? presenceDot(onlineOf(client, p.id)) : null),
      h('div', { class: 'person-text' },
        h('span', { class: 'person-name' }, name),
        username && username !== name ? h('span', { class: 'person-sub' }, `@${username}`) : null,
        status ? h('span', { class: 'person-status' }, status) : null,
        extra),
      h('div', { class: 'person-actions' }, ...actions));
  }

  function act(button, fn, success) {
    return busy(button, ctx, fn, { success }).then((r) => { reload(); return r; });
  }

  function render() {
    if (!alive) return;
    const who = (p) => nameOf(client, p.id, p);

    friendsCount.textContent = loaded ? String(data.friends.length) : '';
    incomingCount.textContent = data.incoming.length ? String(data.incoming.length) : '';

    if (loadError && !loaded) {
      replace(friendsList, h('li', { class: 'empty-note', role: 'alert' }, `Could not load contacts: ${errorText(loadError)}`));
    } else if (!loaded) {
      replace(friendsList, h('li', { class: 'empty-note' }, 'Loading…'));
    } else if (!data.friends.length) {
      replace(friendsList, h('li', { class: 'empty-note' }, 'No friends yet. Find people above and send a request.'));
    } else {
      const sorted = [...data.friends].sort((a, b) => {
        const oa = client.online?.(a.id) === true ? 0 : 1;
        const ob = client.online?.(b.id) === true ? 0 : 1;
        return oa - ob || who(a).localeCompare(who(b));
      });
      replace(friendsList, sorted.map((p) => person(p, {
        presence: true,
        actions: [
          smallButton('Message', () => ctx.navigate(`/u/${encodeURIComponent(p.id)}`), { kind: 'btn-primary', aria: `Message ${who(p)}` }),
          smallButton('Remove', async (b) => {
            const ok = await confirmDialog(root, {
              title: `Remove ${who(p)} from friends?`,
              body: 'You can send a new friend request later.', confirm: 'Remove',
            });
            if (ok) await act(b, () => client.friendRemove(p.id), `${who(p)} removed from friends`);
          }, { aria: `Remove ${who(p)}` }),
          blockButton(p),
        ],
      })));
    }

    incomingSection.hidden = loaded && !data.incoming.length;
    replace(incomingList, data.incoming.length ? data.incoming.map((p) => person(p, {
      extra: h('span', { class: 'person-note' }, 'wants to be your friend'),
      actions: [
        smallButton('Accept', (b) => act(b, () => client.friendAccept(p.id), `You and ${who(p)} are now friends`), { kind: 'btn-primary', aria: `Accept ${who(p)}` }),
        smallButton('Decline', (b) => act(b, () => client.friendDecline(p.id)), { aria: `Decline ${who(p)}` }),
        blockButton(p),
      ],
    })) : h('li', { class: 'empty-note' }, 'No requests.'));

    outgoingSection.hidden = !data.outgoing.length;
    replace(outgoingList, data.outgoing.map((p) => person(p, {
      extra: h('span', { class: 'person-note' }, 'request pending'),
      actions: [smallButton('Cancel', (b) => act(b, () => client.friendCancel(p.id)), { aria: `Cancel request to ${who(p)}` })],
    })));

    blockedSection.hidden = !data.blocked.length;
    replace(blockedList, data.blocked.map((p) => person(p, {
      actions: [smallButton('Unblock', (b) => act(b, () => client.unblock(p.id), `${who(p)} unblocked`), { aria: `Unblock ${who(p)}` })],
    })));

    renderResults();
  }

  function blockButton(p) {
    const who = nameOf(client, p.id, p);
    return smallButton('Block', async (b) => {
      const ok = await confirmDialog(root, {
        title: `Block ${who}?`,
        body: 'This ends your friendship and any requests. Neither of you can message the other or add them to a group until you unblock.',
        confirm: 'Block',
      });
      if (ok) await act(b, () => client.block(p.id), `${who} blocked`);
    }, { kind: 'btn-danger-quiet', aria: `Block ${who}` });
  }

  function renderResults() {
    searchNote.textContent = searchMsg;
    if (!results) { replace(resultsList); return; }
    const shown = results.filter((u) => u.id !== me(client).id);
    if (!shown.length) {
      replace(resultsList, h('li', { class: 'empty-note' }, 'Nobody found with that username.'));
      return;
    }
    replace(resultsList, shown.map((u) => {
      const rel = relation(u.id);
      const who = nameOf(client, u.id, u);
      let actions;
      if (rel === 'friend') actions = [h('span', { class: 'state-chip state-ok' }, 'Friends')];
      else if (rel === 'outgoing') actions = [h('span', { class: 'state-chip' }, 'Pending')];
      else if (rel === 'incoming') {
        actions = [smallButton('Accept', (b) => act(b, () => client.friendAccept(u.id), `You and ${who} are now friends`), { kind: 'btn-primary', aria: `Accept ${who}` })];
      } else if (rel === 'blocked') actions = [h('span', { class: 'state-chip state-bad' }, 'Blocked')];
      else {
        actions = [smallButton('Add friend', (b) => act(b, () => client.friendRequest(u.id), `Friend request sent to ${who}`),
          { kind: 'btn-primary', aria: `Add friend ${who}` })];
      }
      return person(u, { actions });
    }));
  }

  // ---- search -----------------------------------------------------------------------------

  const runSearch = debounce(async () => {
    const prefix = search.value.trim().toLowerCase();
    const seq = ++searchSeq;
    if (!prefix) { results = null; searchMsg = ''; renderResults(); return; }
    if (!USERNAME_PREFIX.test(prefix)) {
      results = null;
      searchMsg = 'Usernames use only a–z, 0–9, “_”, “.” and “-”.';
      renderResults();
      return;
    }
    searchMsg = 'Searching…';
    renderResults();
    try {
      const found = await client.searchUsers(prefix, 20);
      if (!alive || seq !== searchSeq) return;
      results = Array.isArray(found) ? found : found?.users ?? [];
      const n = results.filter((u) => u.id !== me(client).id).length;
      searchMsg = n ? `${n} found` : '';
    } catch (err) {
      if (!alive || seq !== searchSeq) return;
      results = null;
      searchMsg = errorText(err);
    }
    renderResults();
  }, 250);
  search.addEventListener('input', runSearch);
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && search.value) { search.value = ''; runSearch(); }
  });

  // ---- live updates -----------------------------------------------------------------------

  const rerender = debounce(render, 30);
  const off = listen(client, {
    friend: reload,
    presence: rerender,
    profile: rerender,
    hello: reload, // after a reconnect, requests may have changed while away
  });

  render();
  load();
  if (params?.focus === 'search') search.focus();

  return {
    unmount() {
      alive = false;
      off();
      reload.cancel();
      rerender.cancel();
      runSearch.cancel();
      removeDialogs(root);
    },
  };
}
