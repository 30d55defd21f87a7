// The composer's files waiting to be sent: each one picked, pasted, dropped or recorded starts
// uploading at once (after the hash pre-check) and shows a row with a progress bar and Cancel.
// A voice note is queued as soon as it is recorded; the others wait for Send.
// Send sends them in the order they were added, one message each, the composer's text as the
// caption of the first; one still uploading is sent when its upload ends (later ones wait for
// it, so the order holds; a text sent meanwhile goes at once). A refused upload is a toast with the server's reason, and nothing is
// sent for it. Leaving the chat cancels the uploads not yet sent; those already sent on their
// way finish and are sent.
import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { errorText, humanSize } from './format.js';

/** Files one composer holds at once; more are refused with a toast. */
export const MAX_PENDING_FILES = 10;

/**
 * Options: {client, target() -> {to}|{conversation}|null, toast, onChange(), onCaptionBack(text)}.
 * Returns {el, add(files, {kind, durationMs, send}), count(), waiting(), sendAll(caption), destroy()}.
 */
export function createUploads({ client, target, toast, onChange, onCaptionBack }) {
  const list = h('ul', { class: 'uploads', 'aria-label': 'Files to send', hidden: true });
  /** @type {Array<object>} in the order they go out */
  const items = [];

  function changed() {
    list.hidden = items.length === 0;
    onChange?.();
  }

  function row(item) {
    const fill = h('span', { class: 'upload-fill' });
    item.bar = h('span', {
      class: 'upload-bar', role: 'progressbar', 'aria-label': `Uploading ${item.name}`,
      'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0,
    }, fill);
    item.fill = fill;
    item.stateText = h('span', { class: 'upload-state', 'aria-live': 'polite' }, 'Uploading…');
    item.li = h('li', { class: 'upload-item', dataset: { state: 'uploading' } },
      icon(item.kind === 'voice' ? 'mic' : 'file', 'sm'),
      h('span', { class: 'upload-body' },
        h('span', { class: 'upload-top' },
          h('span', { class: 'upload-name', dir: 'auto' }, item.name),
          h('span', { class: 'upload-size' }, humanSize(item.file.size))),
        item.bar, item.stateText),
      h('button', {
        type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': `Cancel ${item.name}`,
        onclick: () => cancel(item),
      }, 'Cancel'));
    return item.li;
  }

  function progress(item, sent, total) {
    const pct = total > 0 ? Math.min(100, Math.round((sent / total) * 100)) : 0;
    item.bar.setAttribute('aria-valuenow', String(pct));
    item.fill.style.width = `${pct}%`;
    if (!item.info) item.stateText.textContent = `Uploading… ${pct}%`;
  }

  function state(item) {
    item.li.dataset.state = item.info ? 'ready' : 'uploading';
    if (item.info) item.stateText.textContent = item.queued ? 'Sending…' : 'Ready to send';
    else if (item.queued) item.stateText.textContent = 'Sends when uploaded…';
  }

  function add(files, { kind, durationMs, send = false } = {}) {
    for (const file of files) {
      if (items.length >= MAX_PENDING_FILES) {
        toast(`At most ${MAX_PENDING_FILES} files can wait to be sent.`, 'error');
        break;
      }
      const item = {
        file, name: file.name || 'file', kind, durationMs, queued: send, caption: '',
        controller: new AbortController(), info: null,
      };
      items.push(item);
      list.append(row(item));
      start(item);
    }
    changed();
  }

  function start(item) {
    client.media.prepare(item.file, {
      name: item.name, signal: item.controller.signal, onProgress: (sent, total) => progress(item, sent, total),
    }).then(
      (info) => {
        if (!items.includes(item)) return;
        item.info = info;
        progress(item, 1, 1);
        state(item);
        flush();
      },
      (err) => {
        if (!items.includes(item)) return;
        if (err?.code !== 'aborted') toast(`${item.name}: ${errorText(err)}`, 'error');
        drop(item);
      },
    );
  }

  /** Removes `item`; a caption it was to carry moves to the next queued file, else back to the composer. */
  function drop(item) {
    const i = items.indexOf(item);
    if (i < 0) return;
    items.splice(i, 1);
    item.li.remove();
    if (item.caption) {
      const next = items.find((x) => x.queued);
      if (next && !next.caption) next.caption = item.caption;
      else onCaptionBack?.(item.caption);
    }
    changed();
    flush();
  }

  function cancel(item) {
    item.controller.abort();
    drop(item);
  }

  /**
   * Sends the queued files whose uploads are done, in order: one still uploading holds back the
   * queued ones after it. Files not queued (waiting for Send) hold back nothing.
   */
  function flush() {
    for (;;) {
      const item = items.find((x) => x.queued);
      if (!item?.info) break;
      items.splice(items.indexOf(item), 1);
      item.li.remove();
      const to = target();
      try {
        if (!to) throw new Error('There is no one to send this to.');
        client.sendAttachment({
          ...to, info: item.info, kind: item.kind, caption: item.caption, duration_ms: item.durationMs, name: item.name,
        });
      } catch (err) {
        toast(`${item.name}: ${errorText(err)}`, 'error');
      }
    }
    changed();
  }

  return {
    el: list,
    add,
    count: () => items.length,
    /** Files not queued for sending yet (Send would send them). */
    waiting: () => items.filter((x) => !x.queued).length,
    /** Queues every file for sending, `caption` with the first one not queued yet. */
    sendAll(caption = '') {
      const first = items.find((x) => !x.queued);
      if (!first) return false;
      first.caption = caption;
      for (const item of items) { item.queued = true; state(item); }
      flush();
      return true;
    },
    destroy() {
      for (const item of [...items]) {
        if (!item.queued) { item.controller.abort(); items.splice(items.indexOf(item), 1); }
      }
      replace(list);
    },
  };
}
