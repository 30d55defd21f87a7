// Helpers shared by the panels: friendly error words, a confirmation <dialog>, presence dots,
// avatars, byte-length validation and client event bookkeeping.
import { h, replace } from '../dom.js';

const FRIENDLY = {
  forbidden: 'You do not have permission to do that.',
  blocked: 'Not possible: one of you has blocked the other.',
  not_friends: 'You can only do that with friends.',
  group_full: 'The group is full.',
  too_many_groups: 'Someone is already in too many groups.',
  already_member: 'Already a member of the group.',
  not_member: 'That person is not a member of the group.',
  group_dissolved: 'This group has been dissolved.',
  already_friends: 'You are already friends.',
  unknown_request: 'That request no longer exists.',
  unknown_user: 'That user does not exist (any more).',
  unknown_conversation: 'This conversation is not available to you.',
  unknown_session: 'That session has already ended.',
  cannot_message_self: 'That is you.',
  invalid_field: 'Some text is too long or contains characters that are not allowed.',
  invalid_room: 'Room names are 1–64 characters of a–z, 0–9, _ and -.',
  not_in_room: 'You are not in that room.',
  invalid_password: 'Passwords are 8 to 128 characters.',
  bad_credentials: 'The current password is wrong.',
  rate_limited: 'Slow down a little, then try again.',
  empty_message: 'The message is empty.',
  text_too_long: 'The message is too long.',
  busy: 'The server is busy. Try again in a moment.',
  shutting_down: 'The server is restarting. Try again in a moment.',
  store_unavailable: 'The server cannot save right now. Try again later.',
  timeout: 'The server did not answer in time.',
  unauthorized: 'You are signed out. Log in again.',
  token_expired: 'Your session expired. Log in again.',
  bad_request: 'The request was not understood.',
  internal: 'Something went wrong on the server.',
};

/** Friendly words for a failure (a BanterError carries `.code`). */
export function errorText(err) {
  const code = err?.code;
  if (code && FRIENDLY[code]) {
    // Some codes name the user refused in their message; keep the server's words then.
    if ((code === 'blocked' || code === 'not_friends' || code === 'too_many_groups') && err.message) {
      return `${FRIENDLY[code]} (${err.message})`;
    }
    return FRIENDLY[code];
  }
  if (err?.message) return err.message;
  return 'Something went wrong.';
}

/** The logged-in user {id, username}. */
export function me(client) {
  const u = typeof client.user === 'function' ? client.me ?? client.self : client.user;
  return u ?? { id: undefined, username: '' };
}

/** The cached profile of `id` (may trigger a load that later emits 'profile'). */
export function profile(client, id) {
  try {
    if (typeof client.user === 'function') return client.user(id);
    if (typeof client.profile === 'function') return client.profile(id);
  } catch { /* not loaded */ }
  return undefined;
}

/** Display name for a user, preferring fresh cached data over `fallback` (a profile object). */
export function nameOf(client, id, fallback) {
  const p = profile(client, id);
  const dn = p?.display_name || fallback?.display_name;
  if (dn) return dn;
  const un = p?.username || fallback?.username;
  if (un) return un;
  try { return client.displayName(id); } catch { return '…'; }
}

export function usernameOf(client, id, fallback) {
  return profile(client, id)?.username || fallback?.username || '';
}

/** Subscribes to client events; returns one function that removes them all. */
export function listen(client, handlers) {
  const entries = Object.entries(handlers);
  for (const [type, fn] of entries) client.addEventListener(type, fn);
  return () => { for (const [type, fn] of entries) client.removeEventListener(type, fn); };
}

export function debounce(fn, ms) {
  let t = null;
  const wrapped = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => { t = null; fn(...args); }, ms);
  };
  wrapped.cancel = () => clearTimeout(t);
  return wrapped;
}

/** A presence dot with an accessible label. */
export function presenceDot(client, id) {
  let online;
  try { online = client.online(id); } catch { online = undefined; }
  const state = online === true ? 'online' : online === false ? 'offline' : 'unknown';
  const label = online === true ? 'Online' : online === false ? 'Offline' : 'Presence unknown';
  return h('span', {
    class: `presence presence-${state}`, role: 'img', 'aria-label': label, title: label,
  });
}

/** A round avatar: the picture for https URLs, otherwise initials. */
export function avatar(client, id, fallback, size = 'md') {
  const p = profile(client, id) ?? fallback;
  const name = nameOf(client, id, fallback);
  const url = p?.avatar_url;
  const cls = `avatar avatar-${size}`;
  if (url && /^https:\/\//i.test(url)) {
    const img = h('img', { class: cls, src: url, alt: '', referrerPolicy: 'no-referrer', loading: 'lazy' });
    img.addEventListener('error', () => img.replaceWith(initials(name, cls, id)), { once: true });
    return img;
  }
  return initials(name, cls, id);
}

function initials(name, cls, id) {
  const letters = String(name || '?').trim().split(/\s+/).slice(0, 2).map((w) => [...w][0] ?? '').join('');
  const hue = hash(String(id ?? name)) % 8;
  return h('span', { class: `${cls} avatar-hue-${hue}`, 'aria-hidden': 'true' }, letters.toUpperCase() || '?');
}

function hash(s) {
  let x = 0;
  for (const c of s) x = (x * 31 + c.codePointAt(0)) >>> 0;
  return x;
}

/**
 * Asks for confirmation in a modal <dialog> appended to `host` (removed afterwards).
 * Resolves true when confirmed.
 */
export function confirmDialog(host, { title, body, confirm = 'Confirm', danger = true }) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      if (dialog.open) dialog.close();
      dialog.remove();
      resolve(value);
    };
    const ok = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary', onclick: () => finish(true) }, confirm);
    const cancel = h('button', { type: 'button', class: 'btn', onclick: () => finish(false) }, 'Cancel');
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const dialog = h('dialog', { class: 'panel-dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId, class: 'panel-dialog-title' }, title),
      body ? h('p', { class: 'panel-dialog-body' }, body) : null,
      h('div', { class: 'panel-dialog-actions' }, cancel, ok));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); finish(false); });
    dialog.addEventListener('close', () => finish(false));
    host.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** Runs an async action while `button` is disabled; reports failures via ctx.toast. */
export async function busy(button, ctx, fn, { success } = {}) {
  if (button) button.disabled = true;
  try {
    const r = await fn();
    if (success) ctx.toast(success, 'info');
    return r;
  } catch (err) {
    ctx.toast(errorText(err), 'error');
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

/** An in-app link: a real href (open in new tab works) that navigates without reloading. */
export function appLink(ctx, path, props, ...children) {
  return h('a', {
    href: path,
    ...props,
    onclick: (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      e.stopPropagation();
      ctx.navigate(path);
    },
  }, ...children);
}

export function panelHeader(title, ...extra) {
  return h('header', { class: 'panel-header' }, h('h1', { class: 'panel-title' }, title), ...extra);
}

/** A status line for form feedback (errors are announced). */
export function statusLine() {
  const el = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
  return {
    el,
    error(text) { el.className = 'form-status form-status-error'; el.setAttribute('role', 'alert'); replace(el, text); },
    ok(text) { el.className = 'form-status form-status-ok'; el.setAttribute('role', 'status'); replace(el, text); },
    clear() { el.className = 'form-status'; replace(el); },
  };
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_EXCEPT_NL_TAB = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const BIDI = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/;
const enc = new TextEncoder();

export const bytes = (s) => enc.encode(s).length;

/**
 * Checks a text field against the protocol's rules; returns an error sentence or ''.
 * opts: {label, min=0, max, multiline=false}
 */
export function checkField(value, { label, min = 0, max, multiline = false }) {
  if (min > 0 && !value.trim()) return `${label} is required.`;
  if (max && bytes(value) > max) return `${label} is too long (at most ${max} bytes; it has ${bytes(value)}).`;
  if ((multiline ? CONTROL_EXCEPT_NL_TAB : CONTROL).test(value)) {
    return multiline ? `${label} contains control characters.` : `${label} cannot contain line breaks, tabs or control characters.`;
  }
  if (BIDI.test(value)) return `${label} contains text-direction control characters.`;
  return '';
}

export function fmtTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function fmtDate(ms) {
  if (!ms) return '';
  return new Date(ms).toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

/** Normalises a list result that may be an array or an object holding one under `key`. */
export function listOf(result, key) {
  if (Array.isArray(result)) return result;
  if (result && Array.isArray(result[key])) return result[key];
  return [];
}

export function emptyNote(text) {
  return h('p', { class: 'empty-note' }, text);
}
