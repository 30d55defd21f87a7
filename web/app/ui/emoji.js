// The emoji picker: a few hundred common emoji in categories, a keyboard-navigable grid
// (arrow keys, Home/End, Enter; Esc closes), and recently used ones remembered locally.
import { h, replace } from './dom.js';
import { focusCell, onGridKey } from './grid-nav.js';

const words = (s) => s.split(' ').filter(Boolean);

export const EMOJI = [
  { name: 'Smileys', emoji: words(
    '😀 😃 😄 😁 😆 😅 🤣 😂 🙂 🙃 😉 😊 😇 🥰 😍 🤩 😘 😗 😚 😙 😋 😛 😜 🤪 😝 🤑 🤗 🤭 🤫 🤔 '
    + '🤐 🤨 😐 😑 😶 😏 😒 🙄 😬 🤥 😌 😔 😪 🤤 😴 😷 🤒 🤕 🤢 🤮 🤧 🥵 🥶 🥴 😵 🤯 🤠 🥳 😎 🤓 '
    + '🧐 😕 😟 🙁 😮 😯 😲 😳 🥺 😦 😧 😨 😰 😥 😢 😭 😱 😖 😣 😞 😓 😩 😫 🥱 😤 😡 😠 🤬 😈 👿 '
    + '💀 💩 🤡 👻 👽 🤖 😺 😸 😹 😻 😼 😽 🙀 😿 😾') },
  { name: 'Gestures', emoji: words(
    '👋 🤚 🖐️ ✋ 🖖 👌 🤏 ✌️ 🤞 🤟 🤘 🤙 👈 👉 👆 👇 ☝️ 👍 👎 ✊ 👊 🤛 🤜 👏 🙌 👐 🤲 🤝 🙏 ✍️ '
    + '💪 🦾 👀 👁️ 👄 🧠 🫶 🙋 🙅 🙆 🤷 🤦 🙇 💁 🧑‍💻 👶 🧒 👦 👧 🧑 👩 👨 🧓 👵 👴') },
  { name: 'Hearts', emoji: words(
    '❤️ 🧡 💛 💚 💙 💜 🖤 🤍 🤎 💔 ❣️ 💕 💞 💓 💗 💖 💘 💝 💟 💌 💋 💯 💢 💥 💫 💦 💨 🕳️ 💬 💭 💤') },
  { name: 'Animals', emoji: words(
    '🐶 🐱 🐭 🐹 🐰 🦊 🐻 🐼 🐨 🐯 🦁 🐮 🐷 🐸 🐵 🙈 🙉 🙊 🐔 🐧 🐦 🐤 🦆 🦅 🦉 🦇 🐺 🐗 🐴 🦄 '
    + '🐝 🐛 🦋 🐌 🐞 🐜 🐢 🐍 🦎 🐙 🦑 🦀 🐠 🐟 🐬 🐳 🐋 🦈 🐊 🐘 🦒 🦘 🐪 🐄 🐎 🐖 🐑 🐕 🐈 🐓 '
    + '🌵 🎄 🌲 🌳 🌴 🌱 🌿 ☘️ 🍀 🍁 🍂 🍃 🌷 🌹 🥀 🌺 🌸 🌼 🌻 🌞 🌝 🌛 🌙 ⭐ 🌟 ✨ ⚡ 🔥 🌈 ☀️ '
    + '⛅ ☁️ 🌧️ ⛈️ ❄️ ☃️ ⛄ 🌊 💧') },
  { name: 'Food', emoji: words(
    '🍏 🍎 🍐 🍊 🍋 🍌 🍉 🍇 🍓 🫐 🍈 🍒 🍑 🥭 🍍 🥥 🥝 🍅 🍆 🥑 🥦 🥕 🌽 🌶️ 🥔 🥐 🍞 🥖 🧀 🥚 '
    + '🍳 🥞 🧇 🥓 🍗 🍖 🌭 🍔 🍟 🍕 🥪 🌮 🌯 🥗 🍝 🍜 🍲 🍛 🍣 🍱 🥟 🍤 🍙 🍚 🍰 🎂 🧁 🍩 🍪 🍫 '
    + '🍬 🍭 🍮 🍯 🍿 ☕ 🍵 🧃 🥤 🍺 🍻 🥂 🍷 🥃 🍸 🍹 🍾 🧊') },
  { name: 'Activities', emoji: words(
    '⚽ 🏀 🏈 ⚾ 🎾 🏐 🏉 🎱 🏓 🏸 🥅 🏒 🏑 ⛳ 🏹 🎣 🥊 🥋 🎽 🛹 ⛸️ 🎿 🏂 🏋️ 🤸 🚴 🏊 🧗 🏆 🥇 '
    + '🥈 🥉 🏅 🎖️ 🎗️ 🎫 🎟️ 🎭 🎨 🎬 🎤 🎧 🎼 🎹 🥁 🎷 🎺 🎸 🎻 🎲 ♟️ 🎯 🎳 🎮 🧩 🎉 🎊 🎈 🎁 🎀') },
  { name: 'Travel', emoji: words(
    '🚗 🚕 🚙 🚌 🚎 🏎️ 🚓 🚑 🚒 🚐 🚚 🚛 🚜 🛵 🏍️ 🚲 🛴 🚨 🚃 🚆 🚇 🚊 🚝 🚄 ✈️ 🛫 🛬 🚀 🛸 🚁 '
    + '⛵ 🚤 🛳️ 🚢 ⚓ ⛽ 🚧 🚦 🗺️ 🗽 🗼 🏰 🏯 🏟️ 🎡 🎢 🎠 ⛲ 🏖️ 🏝️ 🏜️ 🌋 ⛰️ 🏔️ 🏕️ 🏠 🏡 🏢 🏥 🏦 '
    + '🏨 🏪 🏫 ⛪ 🕌 🌍 🌎 🌏 🌐') },
  { name: 'Objects', emoji: words(
    '⌚ 📱 💻 ⌨️ 🖥️ 🖨️ 🖱️ 💾 💿 📷 📸 📹 🎥 📞 ☎️ 📺 📻 ⏰ ⏳ 🔋 🔌 💡 🔦 🕯️ 💸 💵 💰 💳 💎 ⚖️ '
    + '🔧 🔨 ⚒️ 🛠️ ⚙️ 🔩 🧰 🧲 🔫 💣 🔪 🛡️ 🔑 🗝️ 🚪 🛏️ 🛋️ 🚽 🚿 🛁 🧴 🧹 🧺 🧻 🧼 🛒 🎒 👓 🕶️ 👔 '
    + '👕 👖 🧣 🧤 🧥 🧦 👗 👙 👠 👟 🧢 👑 💍 📚 📖 📝 ✏️ 🖊️ 📎 📌 📅 📆 📈 📉 📊 📋 🗂️ 📁 📦 ✉️ '
    + '📧 📨 📮 🔒 🔓 🔔 🔕 📣 📢 🔍') },
  { name: 'Symbols', emoji: words(
    '✅ ☑️ ✔️ ❌ ❎ ➕ ➖ ➗ ✖️ ❓ ❔ ❕ ❗ ‼️ ⁉️ ⚠️ 🚫 ⛔ 🔞 📵 ♻️ ⚜️ 🔰 ⭕ 🛑 🆗 🆕 🆒 🆓 🆘 '
    + '🔴 🟠 🟡 🟢 🔵 🟣 ⚫ ⚪ 🟤 🔺 🔻 🔸 🔹 🔶 🔷 ▶️ ⏸️ ⏹️ ⏺️ ⏭️ ⏮️ 🔀 🔁 🔂 ⬆️ ⬇️ ⬅️ ➡️ ↩️ ↪️ '
    + '🔄 🎵 🎶 ™️ ©️ ®️ 💲 #️⃣ *️⃣ 0️⃣ 1️⃣ 2️⃣ 3️⃣ 4️⃣ 5️⃣ 6️⃣ 7️⃣ 8️⃣ 9️⃣ 🔟 🏁 🚩 🏳️ 🏴 🏳️‍🌈') },
];

const RECENT_KEY = 'banter.emoji.recent';
const RECENT_MAX = 24;

function loadRecent() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
    return Array.isArray(list) ? list.filter((e) => typeof e === 'string').slice(0, RECENT_MAX) : [];
  } catch {
    return [];
  }
}

function remember(emoji) {
  const list = [emoji, ...loadRecent().filter((e) => e !== emoji)].slice(0, RECENT_MAX);
  try { localStorage.setItem(RECENT_KEY, JSON.stringify(list)); } catch { /* storage full or off */ }
}

let pickerCount = 0;

/**
 * An emoji picker popover. `onPick(emoji)` inserts it; `onClose()` is called when it closes
 * (Esc, a click outside, or close()). Returns {el, open(), close(), isOpen(), toggle()}.
 */
export function emojiPicker({ onPick, onClose, anchor }) {
  pickerCount += 1;
  const id = `emoji-picker-${pickerCount}`;
  const grid = h('div', { class: 'emoji-scroll' });
  const tabs = h('div', { class: 'emoji-tabs', role: 'tablist', 'aria-label': 'Emoji categories' });
  const el = h('div', {
    class: 'emoji-picker', id, role: 'dialog', 'aria-label': 'Emoji picker', hidden: true,
    onkeydown: onKey,
  }, tabs, grid);
  let buttons = [];
  let open = false;

  function build() {
    const recent = loadRecent();
    const sections = recent.length ? [{ name: 'Recent', emoji: recent }, ...EMOJI] : EMOJI;
    buttons = [];
    const tabButtons = [];
    const bodies = sections.map((section, si) => {
      const headingId = `${id}-h${si}`;
      const cells = section.emoji.map((emoji) => {
        const b = h('button', {
          type: 'button', class: 'emoji-cell', tabIndex: -1, dataset: { emoji },
          onclick: () => pick(emoji),
        }, emoji);
        buttons.push(b);
        return b;
      });
      const heading = h('h3', { class: 'emoji-heading', id: headingId }, section.name);
      const body = h('div', { class: 'emoji-grid', role: 'group', 'aria-labelledby': headingId }, cells);
      const tab = h('button', {
        type: 'button', class: 'emoji-tab', role: 'tab', 'aria-selected': si === 0 ? 'true' : 'false',
        'aria-label': section.name, title: section.name,
        onclick: () => { heading.scrollIntoView({ block: 'start' }); focusIndex(buttons.indexOf(cells[0])); },
      }, section.emoji[0]);
      tabButtons.push(tab);
      return [heading, body];
    });
    replace(tabs, tabButtons);
    replace(grid, bodies);
    if (buttons[0]) buttons[0].tabIndex = 0;
  }

  function focusIndex(i) { focusCell(buttons, i); }
  function onKey(e) { onGridKey(e, buttons, close); }

  function pick(emoji) {
    remember(emoji);
    onPick?.(emoji);
  }

  function onOutside(e) {
    if (!open) return;
    if (el.contains(e.target) || anchor?.contains(e.target)) return;
    close({ restoreFocus: false });
  }

  function show() {
    if (open) return;
    build();
    open = true;
    el.hidden = false;
    anchor?.setAttribute('aria-expanded', 'true');
    document.addEventListener('pointerdown', onOutside, true);
    focusIndex(0);
  }

  function close({ restoreFocus = true } = {}) {
    if (!open) return;
    open = false;
    el.hidden = true;
    anchor?.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', onOutside, true);
    onClose?.({ restoreFocus });
  }

  anchor?.setAttribute('aria-controls', id);
  anchor?.setAttribute('aria-expanded', 'false');
  return {
    el,
    open: show,
    close,
    isOpen: () => open,
    toggle: () => (open ? close() : show()),
    destroy: () => document.removeEventListener('pointerdown', onOutside, true),
  };
}

/** Counts the emoji in `EMOJI` (for a sanity check in tests). */
export function emojiCount() {
  return EMOJI.reduce((n, s) => n + s.emoji.length, 0);
}
