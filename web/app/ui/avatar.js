// Avatars and presence dots, for the shell, the chat and the panels alike: a person's https
// picture, or their initials on a colour picked from their id (the same colour everywhere).
import { h } from './dom.js';
import { nameOf, profileOf } from './format.js';

/** How many avatar colours there are (`.avatar-hue-0` … in app.css; `.sender-hue-*` match). */
const HUES = 8;

/** Picture addresses that failed to load: shown as initials from then on, without retrying. */
const broken = new Set();

/** A stable colour number (0..7) for an id or name. */
export function hueIndex(key) {
  let x = 0;
  for (const ch of String(key ?? '')) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % HUES;
}

/** Up to two initials of a name ("Alice Martin" → "AM"), or "?". */
export function initials(name) {
  const words = String(name || '').trim().split(/\s+/).slice(0, 2);
  return words.map((w) => [...w][0] ?? '').join('').toLocaleUpperCase() || '?';
}

/** Whether an avatar_url is shown as a picture (only https: plain http would be mixed content). */
export function isPictureUrl(url) {
  return typeof url === 'string' && /^https:\/\//i.test(url);
}

/**
 * A round avatar: the picture at `url` when it is https, otherwise (and when it fails to load)
 * the initials of `name` on the colour of `id`. Decorative: the name is always next to it.
 * `size`: 'sm', 'md' or 'xl'.
 */
export function avatar({ id, name, url, size = 'md' }) {
  const cls = `avatar avatar-${size}`;
  const letters = () => h('span', {
    class: `${cls} avatar-hue-${hueIndex(id ?? name)}`, 'aria-hidden': 'true',
  }, initials(name));
  if (!isPictureUrl(url) || broken.has(url)) return letters();
  const img = h('img', { class: cls, src: url, alt: '', referrerPolicy: 'no-referrer', loading: 'lazy' });
  img.addEventListener('error', () => { broken.add(url); img.replaceWith(letters()); }, { once: true });
  return img;
}

/** The avatar of user `id`, from the cached profile or `fallback` (a profile-like object). */
export function userAvatar(client, id, fallback, size = 'md') {
  const profile = profileOf(client, id) ?? fallback;
  return avatar({ id, name: nameOf(client, id, fallback), url: profile?.avatar_url, size });
}

/** A presence dot (placed on an avatar) for `online`: true, false, or undefined (hidden). */
export function presenceDot(online) {
  const state = online === true ? 'online' : online === false ? 'offline' : 'unknown';
  const label = { online: 'Online', offline: 'Offline', unknown: 'Presence unknown' }[state];
  return h('span', { class: `presence presence-${state}`, role: 'img', 'aria-label': label, title: label });
}
