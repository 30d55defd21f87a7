// Turns message text into text nodes and links. Only http:// and https:// URLs become links
// (`javascript:`, `data:` and every other scheme stay plain text); nothing is parsed as HTML.
import { h } from './dom.js';

// A candidate starts at "http://" or "https://" and runs to the next white space or a
// character that cannot end a URL in running text.
const CANDIDATE = /\bhttps?:\/\/[^\s<>"'`\u0000-\u001f\u007f]+/giu;
const PUNCT = /[.,;:!?…'"»>*]/u;
const CLOSERS = { ')': '(', ']': '[', '}': '{' };

// Drops trailing punctuation, but keeps a closing bracket that closes one opened inside the
// URL (https://en.wikipedia.org/wiki/Foo_(bar)).
function trimTrailing(url) {
  let out = url;
  while (out.length) {
    const last = out[out.length - 1];
    const open = CLOSERS[last];
    if (PUNCT.test(last) || (open && count(out, open) < count(out, last))) {
      out = out.slice(0, -1);
    } else {
      break;
    }
  }
  return out;
}

function count(s, ch) {
  let n = 0;
  for (const c of s) if (c === ch) n += 1;
  return n;
}

/** A safe http(s) URL string for `raw`, or null. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    if (!url.hostname) return null;
    return url.href;
  } catch {
    return null;
  }
}

/**
 * Splits text into parts: {text} for plain runs and {url, text} for links.
 * Exported for tests and previews.
 */
export function tokenize(text) {
  const parts = [];
  const s = String(text ?? '');
  let last = 0;
  for (const m of s.matchAll(CANDIDATE)) {
    const start = m.index;
    const raw = trimTrailing(m[0]);
    const href = raw.length > 'https://'.length ? safeUrl(raw) : null;
    if (!href) continue;
    if (start > last) parts.push({ text: s.slice(last, start) });
    parts.push({ url: href, text: raw });
    last = start + raw.length;
  }
  if (last < s.length) parts.push({ text: s.slice(last) });
  return parts;
}

/** Nodes for message text: text nodes, plus <a> elements for http(s) links. */
export function linkify(text) {
  return tokenize(text).map((part) => (part.url
    ? h('a', { href: part.url, target: '_blank', rel: 'noopener noreferrer', class: 'msg-link' }, part.text)
    : document.createTextNode(part.text)));
}
