// Path-based routing with the History API. Internal links (<a href="/...">) are intercepted so
// the page never reloads; the back and forward buttons work as expected.

const ROUTES = [
  { name: 'login', pattern: /^\/login$/ },
  { name: 'register', pattern: /^\/register$/ },
  { name: 'home', pattern: /^\/$/ },
  { name: 'group-info', pattern: /^\/c\/([^/]+)\/info$/, keys: ['id'] },
  { name: 'chat', pattern: /^\/c\/([^/]+)$/, keys: ['id'] },
  { name: 'user', pattern: /^\/u\/([^/]+)$/, keys: ['id'] },
  { name: 'contacts', pattern: /^\/contacts$/ },
  { name: 'group-create', pattern: /^\/groups\/new$/ },
  { name: 'rooms', pattern: /^\/rooms$/ },
  { name: 'rooms', pattern: /^\/rooms\/([^/]+)$/, keys: ['name'] },
  { name: 'profile', pattern: /^\/profile$/ },
  { name: 'devices', pattern: /^\/devices$/ },
];

/** Matches a path to {name, params, path}; unknown paths give name 'not-found'. */
export function match(path) {
  const clean = path.length > 1 ? path.replace(/\/+$/, '') : path;
  for (const route of ROUTES) {
    const m = clean.match(route.pattern);
    if (!m) continue;
    const params = {};
    (route.keys || []).forEach((key, i) => {
      try { params[key] = decodeURIComponent(m[i + 1]); } catch { params[key] = m[i + 1]; }
    });
    return { name: route.name, params, path: clean };
  }
  return { name: 'not-found', params: {}, path: clean };
}

/**
 * Starts the router: calls `onRoute(route)` on every navigation, and on refresh().
 * Returns {navigate(path, {replace}), current(), refresh()}.
 */
export function startRouter(onRoute) {
  let current = match(location.pathname);

  function go(path, { replace = false, state = null } = {}) {
    const url = new URL(path, location.origin);
    if (url.origin !== location.origin) {
      location.assign(url.href);
      return;
    }
    const target = url.pathname + url.search + url.hash;
    const here = location.pathname + location.search + location.hash;
    if (target !== here) {
      if (replace) history.replaceState(state, '', target);
      else history.pushState(state, '', target);
    }
    current = match(url.pathname);
    onRoute(current);
  }

  window.addEventListener('popstate', () => {
    current = match(location.pathname);
    onRoute(current);
  });

  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest?.('a[href]');
    if (!a || (a.target && a.target !== '_self') || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    if (url.pathname.startsWith('/v1/') || url.pathname.startsWith('/assets/')) return;
    e.preventDefault();
    go(url.pathname + url.search + url.hash);
  });

  return {
    navigate: go,
    current: () => current,
    refresh() { current = match(location.pathname); onRoute(current); },
  };
}
