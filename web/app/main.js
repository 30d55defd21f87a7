// Banter's web client: starts the SDK, restores the session, and switches between the
// log-in screens and the signed-in shell as the route and the session change.
import { h, replace } from './ui/dom.js';
import { startRouter } from './ui/router.js';
import { toast } from './ui/toast.js';
import { mountAuth } from './ui/auth.js';
import { createShell } from './ui/shell.js';
import { errorText } from './ui/format.js';

const root = document.getElementById('app') ?? document.body;

function fatal(text) {
  replace(root, h('main', { class: 'auth', id: 'main' },
    h('div', { class: 'auth-card' },
      h('h1', {}, 'Banter could not start'),
      h('p', { role: 'alert' }, text),
      h('button', { type: 'button', class: 'btn btn-primary', onclick: () => location.reload() }, 'Reload'))));
}

const SIGNED_OUT = {
  logout: 'You have logged out.',
  revoked: 'This device was signed out. Log in again to continue.',
  expired: 'Your session expired. Log in again to continue.',
};

async function boot() {
  let sdk;
  try {
    sdk = await import('./sdk.js');
  } catch (err) {
    console.error(err);
    fatal('The app failed to load. Check your connection and reload the page.');
    return;
  }
  let client;
  try {
    client = new sdk.BanterClient();
  } catch (err) {
    console.error(err);
    fatal(errorText(err));
    return;
  }

  let shell = null;
  let auth = null;
  let flash = null;
  let intended = null;
  let loggingOut = false;

  const isAuthRoute = (route) => route.name === 'login' || route.name === 'register';

  function leaveShell() {
    shell?.destroy();
    shell = null;
  }

  function onRoute(route) {
    if (!client.loggedIn) {
      leaveShell();
      if (!isAuthRoute(route)) {
        if (route.path !== '/') intended = route.path;
        router.navigate('/login', { replace: true });
        return;
      }
      auth?.unmount();
      auth = mountAuth(root, { mode: route.name, client, flash, onDone: signedIn });
      document.title = route.name === 'login' ? 'Log in · Banter' : 'Create account · Banter';
      flash = null;
      return;
    }
    if (isAuthRoute(route)) {
      const to = intended || '/';
      intended = null;
      router.navigate(to, { replace: true });
      return;
    }
    if (!shell) {
      auth?.unmount();
      auth = null;
      shell = createShell(root, { client, navigate: router.navigate, toast, logout });
    }
    shell.show(route);
  }

  function signedIn() {
    client.connect();
    const to = intended || '/';
    intended = null;
    router.navigate(to, { replace: true });
  }

  async function logout() {
    loggingOut = true;
    try {
      await client.logout();
    } catch (err) {
      // The session is gone locally either way; say so if the server could not be told.
      if (client.loggedIn) {
        toast(errorText(err), 'error');
        loggingOut = false;
        return;
      }
    }
    loggingOut = false;
    flash = { text: SIGNED_OUT.logout, kind: 'info' };
    router.navigate('/login');
  }

  client.addEventListener('signedout', (e) => {
    const reason = loggingOut ? 'logout' : e.detail?.reason;
    flash = { text: SIGNED_OUT[reason] || 'You were signed out. Log in again to continue.', kind: 'info' };
    if (!loggingOut) router.navigate('/login', { replace: true });
  });
  // Logging out elsewhere in the app (the devices panel) ends the session too.
  client.addEventListener('state', () => {
    if (shell && !client.loggedIn && !loggingOut) {
      flash = flash ?? { text: SIGNED_OUT.logout, kind: 'info' };
      router.navigate('/login', { replace: true });
    }
  });

  const router = startRouter(onRoute);
  if (client.restore()) client.connect();
  router.refresh();
}

window.addEventListener('unhandledrejection', (e) => console.error(e.reason));
boot().catch((err) => {
  console.error(err);
  fatal('Something went wrong while starting. Reload the page.');
});
