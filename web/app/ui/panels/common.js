// Helpers shared by the panels: a confirmation <dialog>, busy buttons, in-app links, form status
// lines, field validation and person rows. Names, avatars, dates and error words come from
// ../format.js and ../avatar.js, as for the shell.
import { h, replace } from '../dom.js';
import { byteLength, errorText, nameOf, onlineOf, usernameOf } from '../format.js';
import { presenceDot, userAvatar } from '../avatar.js';

export function debounce(fn, ms) {
  let t = null;
  const wrapped = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => { t = null; fn(...args); }, ms);
  };
  wrapped.cancel = () => clearTimeout(t);
  return wrapped;
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

/** Removes the confirmation dialogs still open in `root` (when a panel unmounts). */
export function removeDialogs(root) {
  for (const d of root.querySelectorAll('dialog')) d.remove();
}

/** A small button; `onclick(button)`. `kind` adds a class (btn-primary, btn-danger-quiet). */
export function smallButton(label, onclick, { kind = '', aria } = {}) {
  const b = h('button', { type: 'button', class: `btn btn-sm ${kind}`.trim(), 'aria-label': aria }, label);
  b.addEventListener('click', () => onclick(b));
  return b;
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
/**
 * Checks a text field against the protocol's rules; returns an error sentence or ''.
 * opts: {label, min=0, max, multiline=false}
 */
export function checkField(value, { label, min = 0, max, multiline = false }) {
  if (min > 0 && !value.trim()) return `${label} is required.`;
  if (max && byteLength(value) > max) return `${label} is too long (at most ${max} bytes; it has ${byteLength(value)}).`;
  if ((multiline ? CONTROL_EXCEPT_NL_TAB : CONTROL).test(value)) {
    return multiline ? `${label} contains control characters.` : `${label} cannot contain line breaks, tabs or control characters.`;
  }
  if (BIDI.test(value)) return `${label} contains text-direction control characters.`;
  return '';
}

/** Normalises a list result that may be an array or an object holding one under `key`. */
export function listOf(result, key) {
  if (Array.isArray(result)) return result;
  if (result && Array.isArray(result[key])) return result[key];
  return [];
}

/**
 * A checkbox entry of a pick list for person `p` (a profile-like object with an id), labelled
 * with their avatar and names. `onChange(checked)`.
 */
export function pickEntry(client, p, { id, checked, presence = false, onChange }) {
  const box = h('input', { type: 'checkbox', id, checked });
  box.addEventListener('change', () => onChange(box.checked));
  const name = nameOf(client, p.id, p);
  const username = usernameOf(client, p.id, p);
  return h('li', { class: 'pick' }, box,
    h('label', { for: id, class: 'pick-label' },
      h('span', { class: 'person-avatar' },
        userAvatar(client, p.id, p, 'sm'), presence ? presenceDot(onlineOf(client, p.id)) : null),
      h('span', { class: 'person-text' },
        h('span', { class: 'person-name' }, name),
        username && username !== name ? h('span', { class: 'person-sub' }, `@${username}`) : null)));
}
