// /c/<id>/info: a group's details, members with roles and presence, and what the caller's role
// allows: edit, add, remove, roles, ownership transfer, dissolve, leave.
import { h, listen, replace } from '../dom.js';
import { dateTime, errorText, me, nameOf, onlineOf, usernameOf } from '../format.js';
import { presenceDot, userAvatar } from '../avatar.js';
import {
  appLink, busy, checkField, confirmDialog, debounce, listOf, pickEntry, removeDialogs, smallButton,
  statusLine,
} from './common.js';

const ROLE_LABEL = { owner: 'Owner', admin: 'Admin', member: 'Member' };
const ROLE_ORDER = { owner: 0, admin: 1, member: 2 };

export function mount(root, ctx, params) {
  const { client } = ctx;
  const id = String(params?.id ?? '');
  const chatPath = `/c/${encodeURIComponent(id)}`;
  let alive = true;
  let group = null;
  let members = [];
  let friends = [];
  let gone = null; // an error when the group is not (any more) available to the caller
  let loaded = false;
  let editing = false;
  const toAdd = new Set();

  const body = h('div', { class: 'panel-body' });
  const back = appLink(ctx, chatPath, { class: 'back-link' }, h('span', { 'aria-hidden': 'true' }, '← '), 'Back to chat');
  const title = h('h1', { class: 'panel-title' }, 'Group info');
  root.append(h('div', { class: 'panel panel-group-info' },
    h('header', { class: 'panel-header' }, back, title), body));

  // Form elements survive re-renders so typing is never lost.
  const editName = h('input', { id: 'gi-name', class: 'input', maxLength: 64, autocomplete: 'off', 'aria-describedby': 'gi-name-err' });
  const editNameErr = h('p', { id: 'gi-name-err', class: 'field-error', 'aria-live': 'polite' });
  const editDesc = h('textarea', { id: 'gi-desc', class: 'input', rows: 3, 'aria-describedby': 'gi-desc-err' });
  const editDescErr = h('p', { id: 'gi-desc-err', class: 'field-error', 'aria-live': 'polite' });
  const editStatus = statusLine();
  const editSave = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save');
  const editForm = h('form', { class: 'form', novalidate: true, 'aria-label': 'Edit group' },
    h('div', { class: 'field' }, h('label', { for: 'gi-name', class: 'field-label' }, 'Group name'), editName, editNameErr),
    h('div', { class: 'field' }, h('label', { for: 'gi-desc', class: 'field-label' }, 'Description'), editDesc, editDescErr),
    editStatus.el,
    h('div', { class: 'form-actions' },
      h('button', { type: 'button', class: 'btn', onclick: () => { editing = false; render(); } }, 'Cancel'),
      editSave));
  editForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = checkField(editName.value, { label: 'Group name', min: 1, max: 64 });
    const d = checkField(editDesc.value, { label: 'Description', max: 512, multiline: true });
    editNameErr.textContent = n;
    editDescErr.textContent = d;
    if (n || d) return;
    const changes = {};
    if (editName.value.trim() !== group.name) changes.name = editName.value.trim();
    if (editDesc.value !== (group.description ?? '')) changes.description = editDesc.value;
    if (!Object.keys(changes).length) { editing = false; render(); return; }
    editSave.disabled = true;
    try {
      const updated = await client.groupUpdate(id, changes);
      if (!alive) return;
      if (updated && updated.id) group = { ...group, ...updated };
      editing = false;
      ctx.toast('Group updated', 'info');
      render();
      reload();
    } catch (err) {
      if (alive) editStatus.error(errorText(err));
    } finally {
      editSave.disabled = false;
    }
  });

  // ---- data -------------------------------------------------------------------------------

  async function load() {
    try {
      const [groupsR, membersR] = await Promise.all([client.groups(), client.groupMembers(id)]);
      if (!alive) return;
      group = listOf(groupsR, 'groups').find((g) => String(g.id) === id) ?? null;
      members = listOf(membersR, 'members');
      const mine = members.some((m) => m.user === me(client).id);
      gone = group && mine ? null : { code: 'unknown_conversation' };
      const ids = members.map((m) => m.user);
      for (const u of ids) nameOf(client, u); // warms the profile cache ('profile' re-renders)
      if (ids.length && client.loadPresence) client.loadPresence(ids.slice(0, 200)).catch(() => {});
    } catch (err) {
      if (!alive) return;
      if (err?.code === 'unknown_conversation' || err?.code === 'not_member') gone = err;
      else if (!loaded) gone = err;
      else ctx.toast(errorText(err), 'error');
    }
    loaded = true;
    render();
  }
  const reload = debounce(load, 120);

  async function loadFriends() {
    try {
      const r = await client.friends();
      if (!alive) return;
      friends = r?.friends ?? [];
      render();
    } catch { /* the add section just stays empty */ }
  }

  // ---- rendering --------------------------------------------------------------------------

  function myRole() {
    return members.find((m) => m.user === me(client).id)?.role ?? null;
  }

  function render() {
    if (!alive) return;
    if (!loaded) { replace(body, h('p', { class: 'empty-note' }, 'Loading…')); return; }
    if (gone) {
      title.textContent = 'Group info';
      replace(body, h('section', { class: 'panel-card notice', role: 'alert' },
        h('h2', { class: 'card-title' }, 'Not available'),
        h('p', {}, gone.code === 'unknown_conversation'
          ? 'You are not a member of this group (any more), or it does not exist.'
          : `Could not load the group: ${errorText(gone)}`),
        appLink(ctx, '/', { class: 'btn' }, 'Go to chats')));
      return;
    }
    title.textContent = group.name;
    const role = myRole();
    const manager = !group.dissolved && (role === 'owner' || role === 'admin');
    replace(body,
      aboutCard(manager),
      membersCard(role),
      !group.dissolved ? addCard() : null,
      !group.dissolved ? dangerCard(role) : null);
  }

  function aboutCard(manager) {
    const chips = h('div', { class: 'chips' },
      h('span', { class: 'state-chip' }, group.public ? 'Public' : 'Private'),
      group.dissolved ? h('span', { class: 'state-chip state-bad' }, 'Dissolved') : null);
    const facts = h('dl', { class: 'facts' },
      h('dt', {}, 'Owner'), h('dd', {}, nameOf(client, group.owner)),
      h('dt', {}, 'Members'), h('dd', {}, String(members.length || group.member_count || 0)),
      group.created_at ? [h('dt', {}, 'Created'), h('dd', {}, dateTime(group.created_at))] : null);
    const card = h('section', { class: 'panel-card', 'aria-labelledby': 'gi-about-h' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'gi-about-h', class: 'card-title' }, 'About'),
        manager && !editing ? h('button', {
          type: 'button', class: 'btn btn-sm',
          onclick: () => {
            editing = true;
            editName.value = group.name;
            editDesc.value = group.description ?? '';
            editNameErr.textContent = '';
            editDescErr.textContent = '';
            editStatus.clear();
            render();
            editName.focus();
          },
        }, 'Edit') : null),
      chips);
    if (group.dissolved) {
      card.append(h('p', { class: 'notice-text', role: 'status' }, 'This group was dissolved. Its history stays readable, but nothing can be sent or changed.'));
    }
    if (editing && manager) card.append(editForm);
    else {
      card.append(h('p', { class: 'group-desc' }, group.description ? group.description : h('span', { class: 'muted' }, 'No description.')));
    }
    card.append(facts);
    return card;
  }

  function membersCard(role) {
    const sorted = [...members].sort((a, b) => (ROLE_ORDER[a.role] ?? 3) - (ROLE_ORDER[b.role] ?? 3)
      || nameOf(client, a.user).localeCompare(nameOf(client, b.user)));
    return h('section', { class: 'panel-card', 'aria-labelledby': 'gi-members-h' },
      h('h2', { id: 'gi-members-h', class: 'card-title' }, 'Members ', h('span', { class: 'count-badge' }, String(members.length))),
      h('ul', { class: 'person-list', 'aria-label': 'Members' }, sorted.map((m) => memberRow(m, role))));
  }

  function memberRow(m, role) {
    const self = m.user === me(client).id;
    const who = nameOf(client, m.user);
    const username = usernameOf(client, m.user);
    const actions = [];
    const live = !group.dissolved;
    if (live && !self && role === 'owner') {
      actions.push(m.role === 'admin'
        ? smallButton('Make member', (b) => act(b, () => client.groupRole(id, m.user, 'member'), `${who} is now a member`),
          { aria: `Make member: ${who}` })
        : smallButton('Make admin', (b) => act(b, () => client.groupRole(id, m.user, 'admin'), `${who} is now an admin`),
          { aria: `Make admin: ${who}` }));
      actions.push(smallButton('Transfer ownership', async (b) => {
        const ok = await confirmDialog(root, {
          title: `Make ${who} the owner?`,
          body: 'You become an admin. Only the new owner can undo this.', confirm: 'Transfer ownership',
        });
        if (ok) await act(b, () => client.groupTransfer(id, m.user), `${who} now owns the group`);
      }, { aria: `Transfer ownership: ${who}` }));
    }
    const canRemove = live && !self && (role === 'owner' || (role === 'admin' && m.role === 'member'));
    if (canRemove) {
      actions.push(smallButton('Remove', async (b) => {
        const ok = await confirmDialog(root, {
          title: `Remove ${who} from “${group.name}”?`,
          body: 'They stop receiving the group’s messages and lose access to its history.', confirm: 'Remove',
        });
        if (ok) await act(b, () => client.groupRemove(id, m.user), `${who} removed`);
      }, { kind: 'btn-danger-quiet', aria: `Remove: ${who}` }));
    }
    return h('li', { class: 'person', dataset: { user: m.user } },
      h('div', { class: 'person-avatar' }, userAvatar(client, m.user), presenceDot(onlineOf(client, m.user))),
      h('div', { class: 'person-text' },
        h('span', { class: 'person-name' }, who, self ? h('span', { class: 'you-tag' }, ' (you)') : null),
        username && username !== who ? h('span', { class: 'person-sub' }, `@${username}`) : null),
      m.role !== 'member' ? h('span', { class: `role-chip role-${m.role}` }, ROLE_LABEL[m.role] ?? m.role) : null,
      actions.length ? h('div', { class: 'person-actions' }, actions) : null);
  }

  function addCard() {
    const inGroup = new Set(members.map((m) => m.user));
    const candidates = friends.filter((p) => !inGroup.has(p.id));
    for (const u of [...toAdd]) if (!candidates.some((p) => p.id === u)) toAdd.delete(u);
    const addBtn = h('button', { type: 'button', class: 'btn btn-primary', disabled: !toAdd.size }, toAdd.size ? `Add ${toAdd.size}` : 'Add');
    addBtn.addEventListener('click', async () => {
      const users = [...toAdd];
      const r = await busy(addBtn, ctx, () => client.groupAdd(id, users));
      if (r !== undefined) {
        const n = listOf(r, 'added').length || users.length;
        ctx.toast(`${n} member${n === 1 ? '' : 's'} added`, 'info');
        toAdd.clear();
        reload();
      }
    });
    return h('section', { class: 'panel-card', 'aria-labelledby': 'gi-add-h' },
      h('h2', { id: 'gi-add-h', class: 'card-title' }, 'Add members'),
      candidates.length
        ? [h('ul', { class: 'pick-list', 'aria-label': 'Friends not in the group' }, candidates.map((p) => pickEntry(client, p, {
          id: `gi-add-${p.id}`,
          checked: toAdd.has(p.id),
          onChange: (checked) => {
            if (checked) toAdd.add(p.id); else toAdd.delete(p.id);
            addBtn.disabled = !toAdd.size;
            addBtn.textContent = toAdd.size ? `Add ${toAdd.size}` : 'Add';
          },
        }))), h('div', { class: 'form-actions' }, addBtn)]
        : h('p', { class: 'empty-note' }, friends.length ? 'All your friends are in this group.' : 'Only friends can be added. ',
          friends.length ? null : appLink(ctx, '/contacts', {}, 'Find people')));
  }

  function dangerCard(role) {
    const items = [];
    if (role === 'owner') {
      items.push(h('p', { class: 'field-hint' },
        'As the owner you cannot leave: transfer ownership to another member first (they become the owner, you an admin), or dissolve the group.'));
      items.push(h('button', {
        type: 'button', class: 'btn btn-danger',
        onclick: async (e) => {
          const b = e.currentTarget;
          const ok = await confirmDialog(root, {
            title: `Dissolve “${group.name}”?`,
            body: 'Nobody can send to it or change it any more; its history stays readable. This cannot be undone.',
            confirm: 'Dissolve group',
          });
          if (ok) await act(b, () => client.groupDissolve(id), 'Group dissolved');
        },
      }, 'Dissolve group'));
    } else {
      items.push(h('button', {
        type: 'button', class: 'btn btn-danger',
        onclick: async (e) => {
          const b = e.currentTarget;
          const ok = await confirmDialog(root, {
            title: `Leave “${group.name}”?`,
            body: 'You stop receiving its messages and lose access to its history. A member can add you again.',
            confirm: 'Leave group',
          });
          if (!ok) return;
          const r = await busy(b, ctx, () => client.groupLeave(id));
          if (r !== undefined && alive) { ctx.toast(`You left “${group.name}”`, 'info'); ctx.navigate('/'); }
        },
      }, 'Leave group'));
    }
    return h('section', { class: 'panel-card danger-zone', 'aria-labelledby': 'gi-danger-h' },
      h('h2', { id: 'gi-danger-h', class: 'card-title' }, role === 'owner' ? 'Leave or dissolve' : 'Leave'),
      items);
  }

  function act(button, fn, success) {
    return busy(button, ctx, fn, { success }).then((r) => { reload(); return r; });
  }

  // ---- live updates -----------------------------------------------------------------------

  let lastSystemSeq = newestSystemSeq();
  const conversation = () => { try { return client.conversation(id); } catch { return undefined; } };
  let lastSeq = conversation()?.last_seq;
  function newestSystemSeq() {
    let list = [];
    try { list = client.messages(id) ?? []; } catch { list = []; }
    for (let i = list.length - 1; i >= 0; i -= 1) {
      if (list[i]?.kind === 'system' && typeof list[i].seq === 'number') return list[i].seq;
    }
    return 0;
  }
  function systemChanged() {
    const seq = newestSystemSeq();
    if (seq > lastSystemSeq) { lastSystemSeq = seq; return true; }
    return false;
  }

  const rerender = debounce(render, 30);
  const off = listen(client, {
    // Group changes arrive as system entries in the conversation.
    messages: (e) => { if (String(e.detail?.conversation) === id && systemChanged()) reload(); },
    // When the conversation's messages are not loaded, its list entry still shows a change.
    conversations: () => {
      const c = conversation();
      if (!c || c.last_seq === lastSeq) return;
      lastSeq = c.last_seq;
      if (c.last_message?.kind === 'system' || c.left || c.dissolved) reload();
    },
    profile: rerender,
    presence: rerender,
    friend: loadFriends,
    hello: () => { reload(); loadFriends(); },
  });

  render();
  load();
  loadFriends();

  return {
    unmount() {
      alive = false;
      off();
      reload.cancel();
      rerender.cancel();
      removeDialogs(root);
    },
  };
}
