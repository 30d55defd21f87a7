// /groups/new: name, description, public flag and members picked from friends.
import { h, listen, replace } from '../dom.js';
import { errorText, nameOf, usernameOf } from '../format.js';
import { appLink, checkField, panelHeader, pickEntry, statusLine } from './common.js';

export function mount(root, ctx) {
  const { client } = ctx;
  let alive = true;
  let friends = null;
  let loadError = null;
  const picked = new Set();

  const name = h('input', { id: 'gc-name', class: 'input', required: true, autocomplete: 'off', maxLength: 64, 'aria-describedby': 'gc-name-err' });
  const nameErr = h('p', { id: 'gc-name-err', class: 'field-error', 'aria-live': 'polite' });
  const desc = h('textarea', { id: 'gc-desc', class: 'input', rows: 3, 'aria-describedby': 'gc-desc-err' });
  const descErr = h('p', { id: 'gc-desc-err', class: 'field-error', 'aria-live': 'polite' });
  const isPublic = h('input', { id: 'gc-public', type: 'checkbox' });
  const filter = h('input', { id: 'gc-filter', type: 'search', class: 'input', placeholder: 'Filter friends', autocomplete: 'off' });
  const memberList = h('ul', { class: 'pick-list', 'aria-label': 'Friends to add' });
  const pickedNote = h('p', { class: 'field-hint', 'aria-live': 'polite' });
  const status = statusLine();
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create group');

  const form = h('form', { class: 'panel-card form', novalidate: true, 'aria-label': 'New group' },
    h('div', { class: 'field' },
      h('label', { for: 'gc-name', class: 'field-label' }, 'Group name'), name, nameErr),
    h('div', { class: 'field' },
      h('label', { for: 'gc-desc', class: 'field-label' }, 'Description ', h('span', { class: 'optional' }, '(optional)')),
      desc, descErr),
    h('div', { class: 'field field-check' },
      isPublic,
      h('label', { for: 'gc-public' }, 'Public group',
        h('span', { class: 'field-hint block' }, 'Anyone who knows the group can join it. Private groups are invitation only.'))),
    h('fieldset', { class: 'field fieldset' },
      h('legend', { class: 'field-label' }, 'Members'),
      h('label', { for: 'gc-filter', class: 'sr-only' }, 'Filter friends'),
      filter, pickedNote, memberList),
    status.el,
    h('div', { class: 'form-actions' },
      appLink(ctx, '/', { class: 'btn' }, 'Cancel'),
      submit));

  root.append(h('div', { class: 'panel panel-group-create' }, panelHeader('New group'), form));

  function validate() {
    const n = checkField(name.value, { label: 'Group name', min: 1, max: 64 });
    const d = checkField(desc.value, { label: 'Description', max: 512, multiline: true });
    nameErr.textContent = n;
    descErr.textContent = d;
    name.setAttribute('aria-invalid', n ? 'true' : 'false');
    desc.setAttribute('aria-invalid', d ? 'true' : 'false');
    return !n && !d;
  }

  function renderMembers() {
    if (!alive) return;
    pickedNote.textContent = picked.size ? `${picked.size} selected (plus you)` : 'Only you, for now. Pick friends to add.';
    if (loadError) { replace(memberList, h('li', { class: 'empty-note', role: 'alert' }, errorText(loadError))); return; }
    if (!friends) { replace(memberList, h('li', { class: 'empty-note' }, 'Loading friends…')); return; }
    if (!friends.length) {
      replace(memberList, h('li', { class: 'empty-note' }, 'You have no friends to add yet. ',
        appLink(ctx, '/contacts', {}, 'Find people')));
      return;
    }
    const q = filter.value.trim().toLowerCase();
    const shown = friends.filter((p) => !q
      || nameOf(client, p.id, p).toLowerCase().includes(q)
      || usernameOf(client, p.id, p).toLowerCase().includes(q));
    if (!shown.length) { replace(memberList, h('li', { class: 'empty-note' }, 'No friend matches.')); return; }
    replace(memberList, shown.map((p) => pickEntry(client, p, {
      id: `gc-m-${p.id}`,
      checked: picked.has(p.id),
      presence: true,
      onChange: (checked) => {
        if (checked) picked.add(p.id); else picked.delete(p.id);
        renderMembers();
      },
    })));
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.clear();
    if (!validate()) { (nameErr.textContent ? name : desc).focus(); return; }
    submit.disabled = true;
    try {
      const group = await client.groupCreate({
        name: name.value.trim(), description: desc.value, public: isPublic.checked, members: [...picked],
      });
      if (!alive) return;
      const id = group?.id ?? group?.group?.id;
      ctx.toast(`Group “${name.value.trim()}” created`, 'info');
      ctx.navigate(`/c/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!alive) return;
      status.error(errorText(err));
    } finally {
      if (alive) submit.disabled = false;
    }
  });
  name.addEventListener('input', () => { if (nameErr.textContent) validate(); });
  desc.addEventListener('input', () => { if (descErr.textContent) validate(); });
  filter.addEventListener('input', renderMembers);

  async function load() {
    try {
      const r = await client.friends();
      if (!alive) return;
      friends = [...(r?.friends ?? [])].sort((a, b) => nameOf(client, a.id, a).localeCompare(nameOf(client, b.id, b)));
      loadError = null;
      // Forget picks of people who are no longer friends.
      for (const id of [...picked]) if (!friends.some((p) => p.id === id)) picked.delete(id);
      if (friends.length && client.loadPresence) client.loadPresence(friends.map((p) => p.id)).catch(() => {});
    } catch (err) {
      if (alive) loadError = err;
    }
    renderMembers();
  }

  const off = listen(client, { friend: load, profile: renderMembers, presence: renderMembers });
  renderMembers();
  load();
  name.focus();

  return { unmount() { alive = false; off(); } };
}
