// /profile: the caller's username, display name, status text and avatar URL, validated against
// the protocol's limits and saved with updateProfile.
import { h, listen, replace } from '../dom.js';
import { byteLength, errorText, me, profileOf } from '../format.js';
import { avatar, isPictureUrl } from '../avatar.js';
import { checkField, panelHeader, statusLine } from './common.js';

const LIMITS = { display_name: 64, status_text: 140, avatar_url: 512 };

/** Why an avatar URL is not acceptable, or ''. */
export function avatarError(value) {
  if (!value) return '';
  const plain = checkField(value, { label: 'Avatar URL', max: LIMITS.avatar_url });
  if (plain) return plain;
  let url;
  try { url = new URL(value); } catch { return 'Enter a full web address starting with https://'; }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'Only http:// and https:// addresses are allowed.';
  if (!url.hostname) return 'The address needs a host name.';
  return '';
}

export function mount(root, ctx) {
  const { client } = ctx;
  let alive = true;
  let saved = null; // the profile as the server last confirmed it
  const self = me(client);

  const field = (id, label, input, hint) => {
    const err = h('p', { id: `${id}-err`, class: 'field-error', 'aria-live': 'polite' });
    const counter = h('span', { class: 'field-counter', 'aria-hidden': 'true' });
    input.id = id;
    input.setAttribute('aria-describedby', `${id}-hint ${id}-err`);
    return {
      err, counter,
      el: h('div', { class: 'field' },
        h('div', { class: 'field-label-row' }, h('label', { for: id, class: 'field-label' }, label), counter),
        input,
        h('p', { id: `${id}-hint`, class: 'field-hint' }, hint),
        err),
    };
  };

  const displayName = h('input', { class: 'input', autocomplete: 'nickname', maxLength: 64 });
  const statusText = h('input', { class: 'input', autocomplete: 'off', maxLength: 140 });
  const avatarUrl = h('input', { class: 'input', type: 'url', inputMode: 'url', autocomplete: 'photo', spellcheck: false, placeholder: 'https://…' });
  const fName = field('pf-name', 'Display name', displayName, 'Shown to friends and group members instead of your username. Up to 64 bytes.');
  const fStatus = field('pf-status', 'Status', statusText, 'A short line, e.g. “on holiday”. Up to 140 bytes.');
  const fAvatar = field('pf-avatar', 'Avatar URL', avatarUrl, 'An https:// image address (http:// is accepted, but only https:// pictures are shown). Up to 512 bytes.');

  const preview = h('div', { class: 'profile-preview', 'aria-live': 'polite' });
  const status = statusLine();
  const saveBtn = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save profile');
  const resetBtn = h('button', { type: 'button', class: 'btn' }, 'Undo changes');

  const form = h('form', { class: 'panel-card form', novalidate: true, 'aria-label': 'Profile' },
    h('div', { class: 'field' },
      h('span', { class: 'field-label', id: 'pf-username-l' }, 'Username'),
      h('p', { class: 'username-fixed', 'aria-labelledby': 'pf-username-l' }, `@${self.username || '…'}`),
      h('p', { class: 'field-hint' }, 'Your username cannot be changed.')),
    fName.el, fStatus.el, fAvatar.el,
    status.el,
    h('div', { class: 'form-actions' }, resetBtn, saveBtn));

  root.append(h('div', { class: 'panel panel-profile' }, panelHeader('Profile'), preview, form));

  function values() {
    return { display_name: displayName.value.trim(), status_text: statusText.value.trim(), avatar_url: avatarUrl.value.trim() };
  }

  function validate(show = true) {
    const v = values();
    const errs = {
      display_name: checkField(v.display_name, { label: 'Display name', max: LIMITS.display_name }),
      status_text: checkField(v.status_text, { label: 'Status', max: LIMITS.status_text }),
      avatar_url: avatarError(v.avatar_url),
    };
    if (show) {
      for (const [k, f, input] of [['display_name', fName, displayName], ['status_text', fStatus, statusText], ['avatar_url', fAvatar, avatarUrl]]) {
        f.err.textContent = errs[k];
        input.setAttribute('aria-invalid', errs[k] ? 'true' : 'false');
      }
    }
    return errs;
  }

  function counters() {
    const v = values();
    fName.counter.textContent = `${byteLength(v.display_name)}/${LIMITS.display_name}`;
    fStatus.counter.textContent = `${byteLength(v.status_text)}/${LIMITS.status_text}`;
    fAvatar.counter.textContent = v.avatar_url ? `${byteLength(v.avatar_url)}/${LIMITS.avatar_url}` : '';
    fName.counter.classList.toggle('over', byteLength(v.display_name) > LIMITS.display_name);
    fStatus.counter.classList.toggle('over', byteLength(v.status_text) > LIMITS.status_text);
  }

  function renderPreview() {
    const v = values();
    const name = v.display_name || self.username || '…';
    let pic;
    if (isPictureUrl(v.avatar_url) && !avatarError(v.avatar_url)) {
      pic = h('img', { class: 'avatar avatar-xl', src: v.avatar_url, alt: 'Avatar preview', referrerPolicy: 'no-referrer' });
      pic.addEventListener('error', () => {
        if (pic.isConnected) pic.replaceWith(h('span', { class: 'avatar avatar-xl avatar-broken', role: 'img', 'aria-label': 'The picture could not be loaded' }, '!'));
      }, { once: true });
    } else {
      pic = avatar({ id: self.id, name, size: 'xl' });
    }
    replace(preview,
      pic,
      h('div', { class: 'profile-preview-text' },
        h('p', { class: 'profile-preview-name', 'data-testid': 'profile-name' }, saved ? (saved.display_name || saved.username || name) : name),
        h('p', { class: 'person-sub' }, `@${self.username || ''}`),
        saved?.status_text ? h('p', { class: 'person-status' }, saved.status_text) : null,
        v.avatar_url && /^http:\/\//i.test(v.avatar_url) ? h('p', { class: 'field-hint' }, 'Pictures over plain http:// are not shown.') : null));
  }

  function dirty() {
    if (!saved) return true;
    const v = values();
    return v.display_name !== (saved.display_name ?? '') || v.status_text !== (saved.status_text ?? '')
      || v.avatar_url !== (saved.avatar_url ?? '');
  }

  function fill(p) {
    displayName.value = p?.display_name ?? '';
    statusText.value = p?.status_text ?? '';
    avatarUrl.value = p?.avatar_url ?? '';
    validate(false);
    for (const f of [fName, fStatus, fAvatar]) f.err.textContent = '';
    counters();
    renderPreview();
    resetBtn.disabled = !dirty();
  }

  const onInput = () => {
    status.clear();
    const errs = validate(false);
    // Show errors as soon as they appear; clear them as soon as they are fixed.
    for (const [k, f] of [['display_name', fName], ['status_text', fStatus], ['avatar_url', fAvatar]]) {
      if (!errs[k] || f.err.textContent || k !== 'avatar_url') f.err.textContent = errs[k];
    }
    counters();
    renderPreview();
    resetBtn.disabled = !dirty();
  };
  for (const input of [displayName, statusText, avatarUrl]) input.addEventListener('input', onInput);
  avatarUrl.addEventListener('blur', () => validate(true));
  resetBtn.addEventListener('click', () => { fill(saved); status.clear(); });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.clear();
    const errs = validate(true);
    const first = Object.entries(errs).find(([, v]) => v);
    if (first) {
      ({ display_name: displayName, status_text: statusText, avatar_url: avatarUrl })[first[0]].focus();
      status.error('Fix the highlighted fields first.');
      return;
    }
    const v = values();
    const changes = {};
    for (const k of Object.keys(v)) if (!saved || v[k] !== (saved[k] ?? '')) changes[k] = v[k];
    if (!Object.keys(changes).length) { status.ok('Nothing to save.'); return; }
    saveBtn.disabled = true;
    try {
      const p = await client.updateProfile(changes);
      if (!alive) return;
      saved = { ...(saved ?? {}), ...v, ...(p && typeof p === 'object' && p.id ? p : {}) };
      fill(saved);
      status.ok('Profile saved.');
    } catch (err) {
      if (alive) status.error(errorText(err));
    } finally {
      if (alive) saveBtn.disabled = false;
    }
  });

  async function load() {
    const cached = profileOf(client, self.id);
    if (cached) { saved = cached; fill(saved); }
    try {
      const r = await client.request('profiles', { users: [self.id] });
      if (!alive) return;
      const p = (r?.profiles ?? []).find((x) => x.id === self.id);
      // Do not overwrite what the user has started typing.
      if (p && (!saved || !dirty())) { saved = p; fill(saved); } else if (p) { saved = p; renderPreview(); }
    } catch (err) {
      if (alive && !saved) status.error(`Could not load your profile: ${errorText(err)}`);
    }
  }

  const off = listen(client, {
    profile: (e) => {
      const p = e.detail?.profile;
      if (!p || p.id !== self.id) return;
      const wasDirty = saved && dirty();
      saved = p;
      if (!wasDirty) fill(saved); else renderPreview();
    },
  });

  fill(null);
  resetBtn.disabled = true;
  load();

  return { unmount() { alive = false; off(); } };
}
