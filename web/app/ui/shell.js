// The signed-in layout: top bar (brand, connection state), sidebar (navigation, conversation
// list, account menu) and the main area, which holds a chat or a panel. At phone width it is
// one column: the list, or the open chat/panel with a back button.
import { h, listen, replace } from './dom.js';
import { createConversationList } from './conversation-list.js';
import { mountChat } from './chat.js';
import { clearDrafts } from './composer.js';
import { createNotifier, updateTitle } from './notify.js';
import { errorText, me, profileOf, safe } from './format.js';
import { avatar } from './avatar.js';
import { icon as iconEl } from './icons.js';

const NAV = [
  { path: '/', label: 'Chats', icon: 'chats', routes: ['home', 'chat', 'user', 'group-info'] },
  { path: '/contacts', label: 'Contacts', icon: 'contacts', routes: ['contacts'] },
  { path: '/rooms', label: 'Rooms', icon: 'rooms', routes: ['rooms'] },
  { path: '/groups/new', label: 'New group', icon: 'group-new', routes: ['group-create'] },
  { path: '/profile', label: 'Profile', icon: 'profile', routes: ['profile'] },
  { path: '/devices', label: 'Devices', icon: 'devices', routes: ['devices'] },
];

const PANELS = {
  'group-info': 'group-info', contacts: 'contacts', 'group-create': 'group-create',
  rooms: 'rooms', profile: 'profile', devices: 'devices',
};

const STATE_TEXT = {
  connected: 'Connected', connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'Offline',
};

/** Builds the shell into `root`. Returns {show(route), destroy()}. */
export function createShell(root, { client, navigate, toast, logout }) {
  const ctx = { client, navigate, toast };
  const notifier = createNotifier(client, { navigate });

  // Connection indicator: always on screen (it sits in the top bar, shown at every width).
  const connText = h('span', { class: 'conn-text' });
  const conn = h('div', { class: 'conn', role: 'status', dataset: { testid: 'connection' } },
    h('span', { class: 'conn-dot', 'aria-hidden': 'true' }), connText);
  function renderState() {
    const state = client.state || 'offline';
    const offlineNet = typeof navigator !== 'undefined' && navigator.onLine === false;
    conn.dataset.state = state;
    const text = state === 'offline' && offlineNet ? 'Offline — waiting for the network' : STATE_TEXT[state] || state;
    if (connText.textContent !== text) connText.textContent = text;
    conn.title = state === 'connected' ? 'Connected to the server'
      : 'Messages you write are kept and sent when the connection is back';
  }

  const icon = new URL('../icon.svg', import.meta.url).href;
  const topbar = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: '/' }, h('img', { src: icon, alt: '', width: 24, height: 24 }), h('span', {}, 'Banter')),
    conn);

  // Navigation.
  const navLinks = NAV.map((item) => h('a', { class: 'nav-link', href: item.path, dataset: { routes: item.routes.join(' ') } },
    iconEl(item.icon, 'sm'), h('span', { class: 'nav-label' }, item.label)));
  const nav = h('nav', { class: 'main-nav', 'aria-label': 'Main' }, h('ul', {}, navLinks.map((a) => h('li', {}, a))));

  const conversations = createConversationList(client);

  // Account menu in the sidebar footer.
  const meAvatar = h('span', { class: 'avatar-wrap' });
  const meName = h('span', { class: 'me-name' });
  const meUser = h('span', { class: 'me-user' });
  const menuButton = h('button', {
    type: 'button', class: 'icon-btn', id: 'account-menu-button', 'aria-label': 'Account menu',
    'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-controls': 'account-menu', onclick: () => toggleMenu(),
  }, iconEl('more'));
  const menu = h('div', {
    class: 'menu', id: 'account-menu', role: 'menu', 'aria-labelledby': 'account-menu-button', hidden: true,
    onkeydown: onMenuKey, onclick: (e) => { if (e.target.closest('[role^="menuitem"]') && e.target.closest('a')) closeMenu(false); },
  },
  h('a', { class: 'menu-item', role: 'menuitem', href: '/profile' }, iconEl('profile', 'sm'), 'Profile'),
  h('a', { class: 'menu-item', role: 'menuitem', href: '/devices' }, iconEl('devices', 'sm'), 'Devices'),
  notifier.button,
  h('button', {
    type: 'button', class: 'menu-item danger', role: 'menuitem',
    onclick: () => { closeMenu(false); logout(); },
  }, iconEl('logout', 'sm'), 'Log out'));
  const footer = h('footer', { class: 'sidebar-foot' },
    h('a', { class: 'me', href: '/profile', title: 'Your profile' }, meAvatar, h('span', { class: 'me-text' }, meName, meUser)),
    h('div', { class: 'menu-wrap' }, menuButton, menu));

  function renderMe() {
    const self = me(client);
    const p = self.id ? profileOf(client, self.id) : undefined;
    const name = p?.display_name || self.username || '';
    meName.textContent = name;
    meUser.textContent = self.username ? `@${self.username}` : '';
    replace(meAvatar, avatar({ id: self.id, name, url: p?.avatar_url, size: 'sm' }));
  }

  function menuItems() {
    return [...menu.querySelectorAll('[role^="menuitem"]')].filter((el) => !el.hidden && !el.disabled);
  }
  function openMenu() {
    menu.hidden = false;
    menuButton.setAttribute('aria-expanded', 'true');
    menuItems()[0]?.focus();
    document.addEventListener('pointerdown', outside, true);
  }
  function closeMenu(focus = true) {
    if (menu.hidden) return;
    menu.hidden = true;
    menuButton.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', outside, true);
    if (focus) menuButton.focus();
  }
  function toggleMenu() { if (menu.hidden) openMenu(); else closeMenu(); }
  function outside(e) { if (!menu.contains(e.target) && !menuButton.contains(e.target)) closeMenu(false); }
  function onMenuKey(e) {
    const items = menuItems();
    const i = items.indexOf(document.activeElement);
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); closeMenu(); return; }
    if (e.key === 'Tab') { closeMenu(false); return; }
    const next = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: items.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    items[(next + items.length) % items.length]?.focus();
  }

  const sidebar = h('aside', { class: 'sidebar', 'aria-label': 'Chats and navigation' }, nav, conversations.el, footer);
  const main = h('main', { class: 'main', id: 'main', tabIndex: -1 });
  const layout = h('div', { class: 'app', dataset: { view: 'list' } }, topbar, h('div', { class: 'body' }, sidebar, main));
  replace(root, h('a', { class: 'skip-link', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, 'Skip to content'), layout);

  // The main area.
  let mounted = null;
  let mountedKey = '';
  let token = 0;

  function unmountCurrent() {
    try { mounted?.unmount?.(); } catch (err) { console.error(err); }
    mounted = null;
  }

  function showHome() {
    replace(main, h('div', { class: 'empty-state' },
      h('img', { src: icon, alt: '', width: 72, height: 72, class: 'empty-logo' }),
      h('h1', {}, 'Welcome to Banter'),
      h('p', {}, 'Pick a conversation on the left, or find people in ', h('a', { href: '/contacts' }, 'Contacts'), '.')));
  }

  function showPanel(name, params, myToken) {
    const section = h('section', { class: 'panel-root' });
    replace(main, h('div', { class: 'panel-back' }, h('a', { href: '/', class: 'back-to-chats' }, '← Chats')), section);
    import(`./panels/${name}.js`).then((mod) => {
      if (myToken !== token) return;
      if (typeof mod.mount !== 'function') throw new Error('not a panel');
      mounted = mod.mount(section, ctx, params) || null;
    }).catch((err) => {
      if (myToken !== token) return;
      console.error(err);
      replace(section, h('div', { class: 'empty-state' },
        h('h1', {}, 'Not available'),
        h('p', {}, 'This section could not be loaded. Reload the page, or try again later.'),
        h('p', {}, h('a', { href: '/' }, 'Back to chats'))));
    });
  }

  function show(route) {
    const key = `${route.name}:${JSON.stringify(route.params)}`;
    const convId = route.name === 'chat' || route.name === 'group-info' ? route.params.id : null;
    conversations.select(convId);
    for (const a of navLinks) {
      const active = a.dataset.routes.split(' ').includes(route.name);
      if (active) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    layout.dataset.view = route.name === 'home' ? 'list' : 'main';
    closeMenu(false);
    if (key === mountedKey) return;
    mountedKey = key;
    token += 1;
    unmountCurrent();
    main.replaceChildren();
    if (route.name === 'home') showHome();
    else if (route.name === 'chat') mounted = mountChat(main, ctx, { id: route.params.id });
    else if (route.name === 'user') {
      const existing = safe(() => client.directConversation(route.params.id));
      if (existing) {
        mountedKey = '';
        navigate(`/c/${encodeURIComponent(existing.id)}`, { replace: true });
        return;
      }
      mounted = mountChat(main, ctx, { userId: route.params.id });
    }
    else if (PANELS[route.name]) showPanel(PANELS[route.name], route.params, token);
    else {
      replace(main, h('div', { class: 'empty-state' }, h('h1', {}, 'Page not found'),
        h('p', {}, h('a', { href: '/' }, 'Back to chats'))));
    }
  }

  const onConversations = () => updateTitle(client);
  const onProfile = (e) => { if (!e.detail?.profile || e.detail.profile.id === me(client).id) renderMe(); };
  const onError = (e) => {
    const err = e.detail?.error;
    if (err) toast(errorText(err), 'error');
  };
  const onNet = () => renderState();
  const onKeys = (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') {
      e.preventDefault();
      if (layout.dataset.view !== 'list' && window.matchMedia('(max-width: 700px)').matches) navigate('/');
      conversations.focusFilter();
    }
  };
  const unlisten = [
    listen(client, {
      state: renderState, conversations: onConversations, profile: onProfile, hello: renderMe, error: onError,
    }),
    listen(window, { online: onNet, offline: onNet }),
    listen(document, { keydown: onKeys }),
  ];
  renderState();
  renderMe();
  updateTitle(client);

  return {
    show,
    destroy() {
      token += 1;
      unmountCurrent();
      conversations.destroy();
      notifier.destroy();
      closeMenu(false);
      for (const off of unlisten) off();
      clearDrafts();
      document.title = 'Banter';
    },
  };
}
