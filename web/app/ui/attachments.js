// How a message's file or sticker looks in the timeline: a photo (its thumbnail over a box of
// the placeholder colour and the image's shape until it loads; click or Enter opens the
// viewer), a voice note or audio file (<audio controls> and its length), a video (<video
// controls>), or a file card (icon, name, size, Download). Only JPEG, PNG, GIF and WebP are ever
// shown as images: an SVG or any other type is a file card, whatever its kind says, because an
// SVG opened from a blob: URL would run in this page's origin. Files are fetched with the token
// (media-cache.js) once the item is near the visible part of the timeline.
import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { clockDuration, errorText, humanSize } from './format.js';
import { createMediaCache } from './media-cache.js';
import { openViewer } from './viewer.js';
import { IMAGE_TYPES } from '../sdk/media.js';

/** Longest side of a photo in the timeline (CSS pixels); the thumbnails are 320. */
const PHOTO_MAX = 280;
/** Audio and video up to this size load with the item; larger ones when asked to play. */
const EAGER_PLAYER_BYTES = 16 * 1024 * 1024;
/** Items this far outside the timeline's visible part start loading already. */
const NEAR_PX = 600;

const COLOR = /^#[0-9a-f]{6}$/i;

/** May `a` be shown as an image? (its kind and its sniffed type both say so) */
export function showsAsImage(a) {
  return a?.kind === 'image' && IMAGE_TYPES.has(a.type);
}

function plays(a) {
  const type = String(a?.type ?? '');
  if (a?.kind === 'voice' || a?.kind === 'audio') return type.startsWith('audio/') || type === 'video/webm' ? 'audio' : null;
  if (a?.kind === 'video') return type.startsWith('video/') ? 'video' : null;
  return null;
}

/**
 * One chat's media: render(message) builds the element for its attachment or sticker;
 * destroy() revokes every blob: URL (the chat closed). `root` is the scrolling timeline.
 */
export function createMediaView(client, { toast, root }) {
  const cache = createMediaCache(client);
  const pending = new Map();
  const observer = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      observer.unobserve(e.target);
      const start = pending.get(e.target);
      pending.delete(e.target);
      start?.();
    }
  }, { root, rootMargin: `${NEAR_PX}px 0px` });

  /** Runs `start` once `el` is near the visible part of the timeline. */
  function whenNear(el, start) {
    pending.set(el, start);
    observer.observe(el);
  }

  async function download(a, button) {
    if (button) button.disabled = true;
    try {
      const url = await cache.url(a.id, 'file');
      const link = h('a', { href: url, download: a.name || 'file', hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (err) {
      toast(errorText(err), 'error');
    } finally {
      if (button) button.disabled = false;
    }
  }

  function photo(a) {
    const name = a.name || 'Photo';
    const w = Number(a.width) || 4;
    const ht = Number(a.height) || 3;
    const scale = Math.min(1, PHOTO_MAX / Math.max(w, ht));
    const img = h('img', { class: 'att-photo-img', alt: name, decoding: 'async' });
    const box = h('button', {
      type: 'button', class: 'att-photo', 'aria-label': `View photo ${name}`,
      style: {
        width: `${Math.max(48, Math.round(w * scale))}px`, aspectRatio: `${w} / ${ht}`,
        backgroundColor: COLOR.test(a.color ?? '') ? a.color : '',
      },
      onclick: () => openViewer({ attachment: a, cache, download, toast }),
    }, img);
    img.addEventListener('load', () => box.classList.add('loaded'));
    img.addEventListener('error', () => box.classList.add('broken'));
    whenNear(box, () => {
      cache.url(a.id, a.thumbnail ? 'thumbnail' : 'file').then((url) => { img.src = url; }, () => box.classList.add('broken'));
    });
    return box;
  }

  function player(a, tag) {
    const label = a.kind === 'voice' ? 'Voice message' : a.name || (tag === 'video' ? 'Video' : 'Audio');
    const media = h(tag, { class: `att-${tag}`, controls: true, preload: 'metadata', 'aria-label': label });
    const status = h('span', { class: 'att-status' });
    const box = h('div', { class: `att-player att-player-${tag}`, dataset: { kind: a.kind } },
      a.kind === 'voice' ? icon('mic', 'sm') : null,
      media,
      h('span', { class: 'att-duration' }, a.duration_ms ? clockDuration(a.duration_ms) : humanSize(a.size)),
      status);
    const load = () => {
      status.textContent = 'Loading…';
      cache.url(a.id, 'file').then(
        (url) => { media.src = url; status.textContent = ''; },
        (err) => { status.textContent = `Could not load: ${errorText(err)}`; },
      );
    };
    if (Number(a.size) <= EAGER_PLAYER_BYTES) {
      whenNear(box, load);
    } else {
      const play = h('button', {
        type: 'button', class: 'btn btn-small', onclick: () => { play.remove(); load(); },
      }, `Load ${tag} (${humanSize(a.size)})`);
      box.append(play);
    }
    return box;
  }

  function fileCard(a) {
    const name = a.name || 'file';
    const dl = h('button', {
      type: 'button', class: 'icon-btn att-download', 'aria-label': `Download ${name}`, title: 'Download',
      onclick: () => download(a, dl),
    }, icon('download'));
    return h('div', { class: 'att-file' },
      h('span', { class: 'att-file-icon' }, icon('file')),
      h('span', { class: 'att-file-body' },
        h('span', { class: 'att-file-name', dir: 'auto' }, name),
        h('span', { class: 'att-file-meta' }, [humanSize(a.size), a.type].filter(Boolean).join(' · '))),
      dl);
  }

  return {
    /** The element for `m.attachment` or `m.sticker` (null when it has neither). */
    render(m) {
      if (m.sticker) return sticker(m.sticker);
      const a = m.attachment;
      if (!a) return null;
      if (showsAsImage(a)) return photo(a);
      const tag = plays(a);
      return tag ? player(a, tag) : fileCard(a);
    },
    download,
    destroy() {
      observer.disconnect();
      pending.clear();
      cache.clear();
    },
  };
}

/** A sticker: the server's image (same origin, no token), named by its alt text. */
export function sticker(s) {
  const name = s.name || 'Sticker';
  const box = h('div', { class: 'sticker' });
  const img = h('img', {
    class: 'sticker-img', src: `/v1/stickers/${encodeURIComponent(s.id)}`, alt: name, title: name, width: 128, height: 128,
  });
  img.addEventListener('error', () => replace(box,
    h('span', { class: 'sticker-fallback', role: 'img', 'aria-label': name }, s.emoji || name)), { once: true });
  box.append(img);
  return box;
}
