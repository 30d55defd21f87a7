// Toasts: short messages in a corner. Errors are announced at once (role="alert"), other
// kinds politely. Each closes by itself after a while, or with its close button.
import { h } from './dom.js';
import { icon } from './icons.js';

let host = null;

function container() {
  if (!host || !host.isConnected) {
    host = h('div', { class: 'toasts', 'aria-label': 'Notifications' });
    document.body.append(host);
  }
  return host;
}

/** Shows `text`; kind is 'info' (default), 'ok' or 'error'. Returns a function that closes it. */
export function toast(text, kind = 'info') {
  const box = container();
  // The same text twice in a row is one toast, shown a little longer.
  for (const existing of box.children) {
    if (existing.dataset.text === String(text) && existing.dataset.kind === kind) {
      existing.dispatchEvent(new CustomEvent('renew'));
      return () => existing.remove();
    }
  }
  const close = () => {
    clearTimeout(timer);
    el.classList.add('toast-leaving');
    setTimeout(() => el.remove(), 150);
  };
  const el = h('div', {
    class: `toast toast-${kind}`,
    role: kind === 'error' ? 'alert' : undefined,
    'aria-live': kind === 'error' ? undefined : 'polite',
    dataset: { text: String(text), kind },
  },
  h('span', { class: 'toast-text' }, String(text)),
  h('button', { type: 'button', class: 'icon-btn toast-close', 'aria-label': 'Dismiss', onclick: close }, icon('close', 'sm')));
  const ttl = kind === 'error' ? 8000 : 4500;
  let timer = setTimeout(close, ttl);
  el.addEventListener('renew', () => { clearTimeout(timer); timer = setTimeout(close, ttl); });
  // Keep it while the pointer or focus is on it.
  el.addEventListener('pointerenter', () => clearTimeout(timer));
  el.addEventListener('pointerleave', () => { timer = setTimeout(close, 2000); });
  box.append(el);
  while (box.children.length > 4) box.firstElementChild.remove();
  return close;
}
