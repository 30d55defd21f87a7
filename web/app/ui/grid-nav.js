// Keyboard navigation of a picker's grid of buttons with one tab stop (a roving tabindex):
// the arrows move by cell and by visual row, Home and End to the ends, Escape closes. Shared by
// the emoji and sticker pickers.

/** Makes `buttons[i]` (clamped) the grid's one tab stop and focuses it. */
export function focusCell(buttons, i) {
  if (!buttons.length) return;
  const n = Math.max(0, Math.min(buttons.length - 1, i));
  for (const b of buttons) b.tabIndex = -1;
  buttons[n].tabIndex = 0;
  buttons[n].focus();
  buttons[n].scrollIntoView({ block: 'nearest' });
}

/** Handles a keydown in the grid: Escape calls `close`, the moves focus another cell. */
export function onGridKey(e, buttons, close) {
  if (e.key === 'Escape') {
    e.preventDefault();
    e.stopPropagation();
    close();
    return;
  }
  const i = buttons.indexOf(document.activeElement);
  if (i < 0) return;
  const moves = {
    ArrowRight: () => i + 1, ArrowLeft: () => i - 1,
    ArrowDown: () => vertical(buttons, i, 1), ArrowUp: () => vertical(buttons, i, -1),
    Home: () => 0, End: () => buttons.length - 1,
  };
  if (e.key in moves) {
    e.preventDefault();
    focusCell(buttons, moves[e.key]());
  }
}

// The cell in the next (dir 1) or previous (dir -1) visual row closest to the current column.
function vertical(buttons, i, dir) {
  const cur = buttons[i].getBoundingClientRect();
  let best = i;
  let row = null;
  let bestDx = Infinity;
  for (let j = i + dir; j >= 0 && j < buttons.length; j += dir) {
    const r = buttons[j].getBoundingClientRect();
    if (dir > 0 ? r.top <= cur.top + 1 : r.top >= cur.top - 1) continue;
    if (row === null) row = r.top;
    if (Math.abs(r.top - row) > 1) break;
    const dx = Math.abs(r.left - cur.left);
    if (dx < bestDx) { bestDx = dx; best = j; }
  }
  return best;
}
