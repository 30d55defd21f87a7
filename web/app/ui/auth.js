// The log-in and registration screens. Errors come from the server's error code in plain
// words; a Retry-After (too many attempts, busy server) holds the button with a countdown.
import { h, replace } from './dom.js';
import { byteLength, errorText } from './format.js';
import { icon } from './icons.js';

const USERNAME = /^[a-z0-9_.-]{3,32}$/i;

/** A short label for this device, shown in the sessions list ("Chrome on Linux"). */
export function deviceLabel() {
  const ua = navigator.userAgent || '';
  const browser = /Edg\//.test(ua) ? 'Edge' : /OPR\//.test(ua) ? 'Opera' : /Firefox\//.test(ua) ? 'Firefox'
    : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const platform = navigator.userAgentData?.platform || (/Android/.test(ua) ? 'Android'
    : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'macOS' : /Windows/.test(ua) ? 'Windows'
      : /Linux/.test(ua) ? 'Linux' : '');
  return (platform ? `${browser} on ${platform}` : browser).replace(/[^\x20-\x7e]/g, '').slice(0, 64);
}

/**
 * Renders the screen for `mode` ('login' | 'register') into `root`.
 * `onDone()` runs after a successful log-in. `flash` is an optional notice shown on top.
 */
export function mountAuth(root, { mode, client, flash, onDone }) {
  const isLogin = mode === 'login';
  const errorBox = h('p', { class: 'form-error', id: 'auth-error', role: 'alert' });
  const username = h('input', {
    id: 'auth-username', name: 'username', type: 'text', required: true, autocomplete: 'username',
    autocapitalize: 'none', spellcheck: false, maxLength: 32, 'aria-describedby': isLogin ? undefined : 'auth-username-hint',
  });
  const password = h('input', {
    id: 'auth-password', name: 'password', type: 'password', required: true,
    autocomplete: isLogin ? 'current-password' : 'new-password', maxLength: 128,
    'aria-describedby': isLogin ? undefined : 'auth-password-hint',
  });
  const reveal = h('button', {
    type: 'button', class: 'icon-btn reveal', 'aria-label': 'Show password', 'aria-pressed': 'false',
    onclick: () => {
      const show = password.type === 'password';
      password.type = show ? 'text' : 'password';
      reveal.setAttribute('aria-pressed', String(show));
      reveal.setAttribute('aria-label', show ? 'Hide password' : 'Show password');
      password.focus();
    },
  }, icon('eye'));
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, isLogin ? 'Log in' : 'Create account');
  const submitText = submit.textContent;
  let holdTimer = null;

  function showError(text, field) {
    errorBox.textContent = text;
    for (const input of [username, password]) input.removeAttribute('aria-invalid');
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  function hold(seconds) {
    clearInterval(holdTimer);
    let left = Math.max(1, Math.ceil(seconds));
    const tick = () => {
      if (left <= 0 || !submit.isConnected) {
        clearInterval(holdTimer);
        submit.disabled = false;
        submit.textContent = submitText;
        return;
      }
      submit.disabled = true;
      submit.textContent = `Try again in ${left} s`;
      left -= 1;
    };
    tick();
    holdTimer = setInterval(tick, 1000);
  }

  async function onSubmit(e) {
    e.preventDefault();
    if (submit.disabled) return;
    const name = username.value.trim();
    const pw = password.value;
    if (isLogin && (!name || !pw)) {
      showError('Enter your username and password.', name ? password : username);
      return;
    }
    if (!isLogin && !USERNAME.test(name)) {
      showError(errorText({ code: 'invalid_username' }), username);
      return;
    }
    if (!isLogin && (byteLength(pw) < 8 || byteLength(pw) > 128)) {
      showError(errorText({ code: 'invalid_password' }), password);
      return;
    }
    showError('');
    submit.disabled = true;
    submit.textContent = isLogin ? 'Logging in…' : 'Creating account…';
    try {
      if (!isLogin) await client.register(name, pw);
      await client.login(name, pw, deviceLabel());
      password.value = '';
      onDone();
    } catch (err) {
      submit.disabled = false;
      submit.textContent = submitText;
      const field = err?.code === 'invalid_username' || err?.code === 'username_taken' ? username
        : err?.code === 'invalid_password' || err?.code === 'bad_credentials' ? password : null;
      showError(errorText(err), field);
      if (err?.retryAfter) hold(err.retryAfter);
    }
  }

  const form = h('form', { class: 'auth-form', novalidate: true, onsubmit: onSubmit, 'aria-describedby': 'auth-error' },
    h('div', { class: 'field' },
      h('label', { for: 'auth-username' }, 'Username'),
      username,
      isLogin ? null : h('p', { class: 'hint', id: 'auth-username-hint' }, '3–32 characters: letters, digits, “_”, “.” and “-”.')),
    h('div', { class: 'field' },
      h('label', { for: 'auth-password' }, 'Password'),
      h('div', { class: 'input-with-button' }, password, reveal),
      isLogin ? null : h('p', { class: 'hint', id: 'auth-password-hint' }, 'At least 8 characters.')),
    errorBox,
    submit);

  const logo = new URL('../icon.svg', import.meta.url).href;
  replace(root, h('main', { class: 'auth', id: 'main' },
    h('div', { class: 'auth-card' },
      h('div', { class: 'auth-brand' }, h('img', { src: logo, alt: '', width: 40, height: 40 }), h('span', {}, 'Banter')),
      h('h1', {}, isLogin ? 'Log in' : 'Create your account'),
      flash ? h('p', { class: `notice notice-${flash.kind || 'info'}`, role: 'status' }, flash.text) : null,
      form,
      h('p', { class: 'auth-switch' }, isLogin
        ? ['New to Banter? ', h('a', { href: '/register' }, 'Create an account')]
        : ['Already have an account? ', h('a', { href: '/login' }, 'Log in')]))));
  username.focus();
  return { unmount() { clearInterval(holdTimer); } };
}
