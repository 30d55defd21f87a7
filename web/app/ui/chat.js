// The chat view (/c/<id> and /u/<userId>): header with name and presence or members, the
// message timeline, typing line, "new messages" jump button and the composer. Marks messages
// read when they are visible and the page has focus; loads older pages near the top.
import { h, listen, replace } from './dom.js';
import { createTimeline } from './timeline.js';
import { createComposer } from './composer.js';
import { createMediaView } from './attachments.js';
import {
  conversationName, errorText, lastSeen, me, nameOf, onlineOf, profileOf, safe, typingText,
} from './format.js';
import { avatar, presenceDot } from './avatar.js';
import { icon } from './icons.js';

function findDirect(client, userId) {
  return safe(() => client.directConversation(userId))
    ?? client.conversations().find((c) => c.kind === 'direct' && c.peer === userId);
}

/** Outbox entries sent `to` a user whose conversation is not known yet. */
function pendingTo(client, userId) {
  const all = safe(() => client.outbox()) || [];
  return all.filter((e) => !e.conversation && e.to === userId);
}

/**
 * Mounts the chat for {id} (a conversation) or {userId} (a direct chat that may not exist
 * yet) into `root`. Returns {unmount()}.
 */
export function mountChat(root, ctx, { id, userId }) {
  const { client, navigate, toast } = ctx;
  const myId = me(client).id;
  let convId = id ?? null;
  let peerId = userId ?? null;
  if (!convId && peerId) {
    const existing = findDirect(client, peerId);
    if (existing) {
      // Not during the caller's mount: the new route mounts a chat of its own.
      let gone = false;
      queueMicrotask(() => { if (!gone) navigate(`/c/${encodeURIComponent(existing.id)}`, { replace: true }); });
      return { unmount() { gone = true; } };
    }
  }

  let editingKey = null;
  let unreadAfter;
  let positioned = false;
  let loadingOlder = false;
  let olderFailed = false;
  let newCount = 0;
  let lastMarked = 0;
  let markTimer = null;
  let typingTimer = null;
  let unavailable = null;
  let groupInfo = null;
  let destroyed = false;

  const conv = () => (convId ? safe(() => client.conversation(convId)) : undefined);
  const limits = () => safe(() => client.limits) || {};

  // Header.
  const avatarBox = h('span', { class: 'avatar-wrap' });
  const title = h('h2', { class: 'chat-title', id: 'chat-title' });
  const subtitle = h('p', { class: 'chat-sub' });
  const headActions = h('div', { class: 'chat-head-actions' });
  const header = h('header', { class: 'chat-head' },
    h('a', { class: 'icon-btn back-btn', href: '/', 'aria-label': 'Back to chats' }, icon('back')),
    avatarBox,
    h('div', { class: 'chat-title-box' }, title, subtitle),
    headActions);

  const actions = {
    startEdit(item) { editingKey = item.key; render(); },
    cancelEdit() { editingKey = null; render(); composer.focus(); },
    async saveEdit(item, text) {
      try {
        await client.edit(convId, item.msg.seq, text);
        editingKey = null;
        render();
        composer.focus();
      } catch (err) {
        toast(errorText(err), 'error');
        throw err;
      }
    },
    async recall(item) {
      try {
        await client.recall(convId, item.msg.seq);
      } catch (err) {
        toast(errorText(err), 'error');
        render();
      }
    },
    retry(item) { safe(() => client.retry(item.msg.client_msg_id)); },
    discard(item) {
      safe(() => client.discard(item.msg.client_msg_id));
      render();
    },
  };

  let mediaView = null;
  const timeline = createTimeline({
    client, actions, maxBytes: () => limits().max_text_bytes, onScroll, media: () => mediaView,
  });
  mediaView = createMediaView(client, { toast, root: timeline.el });
  const jump = h('button', {
    type: 'button', class: 'jump-btn', hidden: true,
    onclick: () => { timeline.scrollToBottom(); hideJump(); scheduleRead(); },
  });
  const typingLine = h('div', { class: 'typing-line', 'aria-live': 'polite' });
  const composer = createComposer({
    draftKey: convId ? `c:${convId}` : `u:${peerId}`,
    placeholder: 'Message',
    maxBytes: () => limits().max_text_bytes,
    onSend: send,
    onTyping: () => { if (convId) safe(() => client.typing(convId)); },
    onEditLast,
    media: { client, toast, target },
  });
  const section = h('section', {
    class: 'chat', 'aria-labelledby': 'chat-title',
    ondragenter: onDrag, ondragover: onDrag, ondragleave: onDragLeave, ondrop: onDrop,
  },
    header,
    h('div', { class: 'timeline-wrap' }, timeline.el, jump),
    typingLine,
    composer.el);
  replace(root, section);

  function send(text) {
    if (!convId && (!peerId || peerId === myId)) return false;
    try {
      client.send(convId ? { conversation: convId, text } : { to: peerId, text });
    } catch (err) {
      toast(errorText(err), 'error');
      return false;
    }
    render({ forceBottom: true });
    return true;
  }

  /** Where a file goes: the conversation, or the peer a first message opens one with. */
  function target() {
    if (convId) return { conversation: convId };
    return peerId && peerId !== myId ? { to: peerId } : null;
  }

  // Files dropped anywhere on the chat go to the composer (only drags that carry files).
  function carriesFiles(e) {
    return [...(e.dataTransfer?.types ?? [])].includes('Files');
  }
  function onDrag(e) {
    if (!carriesFiles(e) || !target()) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    section.classList.add('dropping');
  }
  function onDragLeave(e) {
    if (!section.contains(e.relatedTarget)) section.classList.remove('dropping');
  }
  function onDrop(e) {
    section.classList.remove('dropping');
    if (!carriesFiles(e) || !target()) return;
    e.preventDefault();
    composer.addFiles([...e.dataTransfer.files]);
  }

  function onEditLast() {
    const list = convId ? client.messages(convId) : [];
    for (let i = list.length - 1; i >= 0; i -= 1) {
      const m = list[i];
      if (m.pending || (m.kind && m.kind !== 'text')) continue;
      if (m.sender !== myId || m.attachment || m.sticker) return false;
      if (m.recalled) return false;
      editingKey = m.client_msg_id ? `c:${m.client_msg_id}` : `s:${m.seq}`;
      render();
      return true;
    }
    return false;
  }

  function hideJump() {
    newCount = 0;
    jump.hidden = true;
  }

  function onScroll() {
    if (timeline.isAtBottom()) hideJump();
    maybeLoadOlder();
    scheduleRead();
  }

  function renderHeader() {
    const c = conv();
    const isGroup = c ? c.kind === 'group' : false;
    if (c?.peer) peerId = c.peer;
    const name = c ? conversationName(client, c) : peerId ? nameOf(client, peerId) : '…';
    title.textContent = name;
    const online = isGroup ? undefined : onlineOf(client, peerId);
    replace(avatarBox,
      isGroup ? avatar({ id: convId, name }) : avatar({ id: peerId, name, url: profileOf(client, peerId)?.avatar_url }),
      online === undefined ? null : presenceDot(online));
    let sub = '';
    if (isGroup) {
      const count = groupInfo?.member_count;
      sub = count ? `${count} member${count === 1 ? '' : 's'}` : 'Group';
    } else if (peerId) {
      const status = profileOf(client, peerId)?.status_text;
      const presence = online === true ? 'online' : online === false ? lastSeen(safe(() => client.lastSeen(peerId))) : '';
      sub = [presence, status].filter(Boolean).join(' · ');
    }
    subtitle.textContent = sub;
    if (isGroup) {
      if (!headActions.firstElementChild) {
        headActions.append(h('a', { class: 'btn btn-ghost', href: `/c/${encodeURIComponent(convId)}/info` }, icon('info', 'sm'), 'Group info'));
      }
    } else if (headActions.firstElementChild) {
      headActions.replaceChildren();
    }
    composer.el.querySelector('textarea')?.setAttribute('placeholder', `Message ${name}`);
  }

  /** Why the composer is off: left, removed, dissolved, or unavailable (null if it is on). */
  function blockedReason(messages) {
    if (!convId) {
      if (peerId === myId) return 'This is you. Pick someone else to message.';
      return null;
    }
    if (unavailable) return unavailable;
    const c = conv();
    if (c?.dissolved || groupInfo?.dissolved) return 'This group was dissolved. Its history stays readable.';
    if (c?.left) return 'You are no longer a member of this group.';
    if (groupInfo?.dissolved) return 'This group was dissolved. Its history stays readable.';
    for (let i = messages.length - 1; i >= 0; i -= 1) {
      const ev = messages[i].kind === 'system' ? messages[i].event : null;
      if (!ev) continue;
      if (ev.event === 'group_dissolved') return 'This group was dissolved. Its history stays readable.';
      if (ev.event === 'member_left' && ev.user === myId) return 'You left this group.';
      if (ev.event === 'member_removed' && ev.user === myId) return 'You were removed from this group.';
      if ((ev.event === 'members_added' && ev.users?.includes(myId)) || (ev.event === 'member_joined' && ev.user === myId)) break;
    }
    return null;
  }

  function render({ forceBottom = false } = {}) {
    if (destroyed) return;
    const c = conv();
    if (unreadAfter === undefined && c) unreadAfter = c.unread > 0 ? c.read_seq : null;
    const messages = convId ? safe(() => client.messages(convId)) || [] : pendingTo(client, peerId);
    const empty = !convId
      ? (peerId === myId ? 'This is you.' : `No messages yet. Say hello to ${nameOf(client, peerId)}!`)
      : unavailable || (positioned ? 'No messages yet. Say hello!' : 'Loading messages…');
    const { added } = timeline.render({ conv: c, messages, unreadAfter, editingKey, empty }, { forceBottom });
    if (!positioned && messages.length) {
      positioned = true;
      const unread = timeline.el.querySelector('.unread-sep');
      if (unread && unread.offsetTop > timeline.el.clientHeight / 2) {
        timeline.el.scrollTop = Math.max(0, unread.offsetTop - 12);
      } else {
        timeline.scrollToBottom();
      }
    }
    if (added && !timeline.isAtBottom()) {
      newCount += added;
      replace(jump, icon('down', 'sm'), `${newCount} new message${newCount === 1 ? '' : 's'}`);
      jump.hidden = false;
    } else if (timeline.isAtBottom()) {
      hideJump();
    }
    composer.setDisabled(blockedReason(messages));
    updateOlder();
    scheduleRead();
  }

  function updateOlder() {
    if (!convId) { timeline.setOlder(''); return; }
    const more = safe(() => client.hasOlder(convId));
    if (loadingOlder) timeline.setOlder('Loading older messages…');
    else if (olderFailed) timeline.setOlder('Could not load older messages. Scroll up to retry.');
    else if (more === false && positioned) timeline.setOlder('This is the beginning of the conversation.');
    else timeline.setOlder('');
  }

  async function maybeLoadOlder() {
    if (!convId || loadingOlder || destroyed || !positioned) return;
    if (timeline.el.scrollTop > 400) return;
    if (!safe(() => client.hasOlder(convId))) { updateOlder(); return; }
    loadingOlder = true;
    olderFailed = false;
    updateOlder();
    try {
      await client.loadOlder(convId, 50);
    } catch (err) {
      olderFailed = true;
      if (err?.code !== 'timeout') toast(errorText(err), 'error');
    } finally {
      loadingOlder = false;
    }
    if (destroyed) return;
    render();
    if (!olderFailed && timeline.el.scrollTop <= 400 && safe(() => client.hasOlder(convId))) {
      setTimeout(maybeLoadOlder, 0);
    }
  }

  function scheduleRead() {
    if (markTimer) return;
    markTimer = setTimeout(() => { markTimer = null; markRead(); }, 250);
  }

  function markRead() {
    if (!convId || destroyed || document.hidden || !document.hasFocus()) return;
    const c = conv();
    if (!c) return;
    const loaded = (safe(() => client.messages(convId)) || []).filter((m) => !m.pending);
    const maxLoaded = loaded.length ? loaded[loaded.length - 1].seq : 0;
    let seq;
    if (timeline.isAtBottom()) {
      // Everything shown is read; edits and recalls after it (own seqs) are read with it.
      const lastShown = c.last_message?.seq ?? 0;
      seq = maxLoaded >= lastShown ? Math.max(c.last_seq || 0, maxLoaded) : maxLoaded;
    } else {
      seq = timeline.visibleMaxSeq();
    }
    if (!seq || seq <= (c.read_seq || 0) || seq <= lastMarked) return;
    lastMarked = seq;
    Promise.resolve(client.markRead(convId, seq)).catch(() => { lastMarked = 0; });
  }

  function renderTyping() {
    clearTimeout(typingTimer);
    const ids = convId ? (safe(() => client.typers(convId)) || []).filter((u) => u !== myId) : [];
    typingLine.textContent = typingText(client, ids);
    if (ids.length) typingTimer = setTimeout(renderTyping, 1000);
  }

  async function loadGroup() {
    const c = conv();
    if (!c || c.kind !== 'group' || groupInfo) return;
    try {
      const result = await client.groups();
      const list = Array.isArray(result) ? result : result?.groups || [];
      groupInfo = null;
      groupInfo = list.find((g) => g.id === convId) || { missing: true };
      if (!destroyed) { renderHeader(); render(); }
    } catch { /* the header just shows "Group" */ }
  }

  // A new system entry may change the member count: ask again.
  let systemSeen = 0;
  function groupChanged() {
    if (conv()?.kind !== 'group') return;
    const list = safe(() => client.messages(convId)) || [];
    let last = 0;
    for (let i = list.length - 1; i >= 0 && !last; i -= 1) if (list[i].kind === 'system') last = list[i].seq;
    if (last <= systemSeen) return;
    const first = systemSeen === 0;
    systemSeen = last;
    if (!first && groupInfo) { groupInfo = null; loadGroup(); }
  }

  async function open() {
    if (!convId) { render(); return; }
    try {
      await client.openConversation(convId);
      unavailable = null;
    } catch (err) {
      if (err?.code === 'unknown_conversation') unavailable = 'This conversation is not available.';
      else if (!safe(() => client.messages(convId))?.length) toast(errorText(err), 'error');
    }
    if (destroyed) return;
    positioned = positioned || !!unavailable;
    if (!positioned) {
      // Nothing to show yet; the empty state still must replace "Loading messages…".
      positioned = (safe(() => client.messages(convId)) || []).length === 0;
    }
    renderHeader();
    render();
    loadGroup();
    maybeLoadOlder();
  }

  // Client events.
  const handlers = {
    messages(e) {
      const target = e.detail?.conversation;
      if (convId && target === convId) { render(); renderTyping(); groupChanged(); }
      if (!convId && e.detail?.to === peerId) render();
    },
    conversations() {
      if (!convId && peerId) {
        const c = findDirect(client, peerId);
        if (c) { navigate(`/c/${encodeURIComponent(c.id)}`, { replace: true }); return; }
      }
      renderHeader();
      render();
      loadGroup();
    },
    read(e) { if (e.detail?.conversation === convId) render(); },
    typing(e) { if (e.detail?.conversation === convId) renderTyping(); },
    profile() { renderHeader(); render(); },
    presence(e) { if (e.detail?.user === peerId) renderHeader(); },
    hello() { if (convId && (!positioned || unavailable)) open(); },
  };
  const onFocus = () => scheduleRead();
  const unlisten = [
    listen(client, handlers),
    listen(window, { focus: onFocus }),
    listen(document, { visibilitychange: onFocus }),
  ];
  const resize = new ResizeObserver(() => { if (timeline.isAtBottom()) scheduleRead(); });
  resize.observe(timeline.el);
  // Recall windows close and "Today" becomes "Yesterday" while the chat stays open.
  const clock = setInterval(() => render(), 30_000);

  if (peerId && !convId) safe(() => profileOf(client, peerId));
  renderHeader();
  render();
  open();
  if (window.matchMedia('(min-width: 701px)').matches) composer.focus();

  return {
    unmount() {
      destroyed = true;
      for (const off of unlisten) off();
      resize.disconnect();
      clearInterval(clock);
      clearTimeout(markTimer);
      clearTimeout(typingTimer);
      composer.destroy();
      timeline.destroy();
      mediaView.destroy();
    },
  };
}
