// The sticker picker: the server's built-in stickers (GET /v1/stickers, asked once per page) in
// a keyboard-navigable grid like the emoji picker's: arrow keys, Home/End, Enter or a click
// sends one, Esc or a click outside closes.
import { h, replace } from './dom.js';
import { focusCell, onGridKey } from './grid-nav.js';
import { errorText } from './format.js';

let listed = null;

/** The server's stickers, [{id, name, emoji}] (one request per page; a failure is asked again). */
function stickerList(client) {
  if (!listed) {
    listed = client.stickers();
    listed.catch(() => { listed = null; });
  }
  return listed;
}

/**
 * A picker popover. `onPick(sticker)` sends it; `onClose({restoreFocus})` follows a close.
 * Returns {el, toggle(), close(), isOpen(), destroy()}.
 */
export function stickerPicker({ client, anchor, onPick, onClose }) {
  const grid = h('div', { class: 'sticker-grid', role: 'group', 'aria-label': 'Stickers' });
  const el = h('div', {
    class: 'sticker-picker', id: 'sticker-picker', role: 'dialog', 'aria-label': 'Sticker picker', hidden: true,
    onkeydown: onKey,
  }, grid);
  let buttons = [];
  let open = false;

  async function build() {
    replace(grid, h('p', { class: 'sticker-status' }, 'Loading stickers…'));
    buttons = [];
    let list;
    try {
      list = await stickerList(client);
    } catch (err) {
      replace(grid, h('p', { class: 'sticker-status' }, `Stickers are not available: ${errorText(err)}`));
      return;
    }
    if (!open) return;
    buttons = list.map((s) => h('button', {
      type: 'button', class: 'sticker-cell', tabIndex: -1, 'aria-label': s.name, title: s.name,
      dataset: { sticker: s.id }, onclick: () => onPick(s),
    }, h('img', { src: `/v1/stickers/${encodeURIComponent(s.id)}`, alt: '', width: 64, height: 64 })));
    replace(grid, buttons.length ? buttons : h('p', { class: 'sticker-status' }, 'No stickers here.'));
    focusIndex(0);
  }

  function focusIndex(i) { focusCell(buttons, i); }
  function onKey(e) { onGridKey(e, buttons, close); }

  function onOutside(e) {
    if (open && !el.contains(e.target) && !anchor.contains(e.target)) close({ restoreFocus: false });
  }

  function show() {
    if (open) return;
    open = true;
    el.hidden = false;
    anchor.setAttribute('aria-expanded', 'true');
    document.addEventListener('pointerdown', onOutside, true);
    build();
  }

  function close({ restoreFocus = true } = {}) {
    if (!open) return;
    open = false;
    el.hidden = true;
    anchor.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', onOutside, true);
    onClose?.({ restoreFocus });
  }

  anchor.setAttribute('aria-controls', 'sticker-picker');
  anchor.setAttribute('aria-expanded', 'false');
  return {
    el,
    toggle: () => (open ? close() : show()),
    close,
    isOpen: () => open,
    destroy: () => document.removeEventListener('pointerdown', onOutside, true),
  };
}
