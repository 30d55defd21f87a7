// /devices: the caller's sessions (revoke the others), a password change and log out.
import { h, replace } from '../dom.js';
import { icon } from '../icons.js';
import { byteLength, dateTime, errorText } from '../format.js';
import { confirmDialog, listOf, panelHeader, removeDialogs, statusLine } from './common.js';

export function mount(root, ctx) {
  const { client } = ctx;
  let alive = true;
  let sessions = null;
  let loadError = null;

  const list = h('ul', { class: 'session-list', 'aria-label': 'Sessions' });
  const countBadge = h('span', { class: 'count-badge' });
  const refreshBtn = h('button', { type: 'button', class: 'btn btn-sm' }, 'Refresh');
  refreshBtn.addEventListener('click', () => load());

  // ---- password form -----------------------------------------------------------------------
  const pw = (id, label, autocomplete) => h('div', { class: 'field' },
    h('label', { for: id, class: 'field-label' }, label),
    h('input', { id, type: 'password', class: 'input', autocomplete, required: true, maxLength: 128 }));
  const oldF = pw('pw-old', 'Current password', 'current-password');
  const newF = pw('pw-new', 'New password', 'new-password');
  const confF = pw('pw-confirm', 'Confirm new password', 'new-password');
  const [oldIn, newIn, confIn] = [oldF, newF, confF].map((f) => f.querySelector('input'));
  newIn.setAttribute('aria-describedby', 'pw-new-hint');
  newF.append(h('p', { id: 'pw-new-hint', class: 'field-hint' }, '8 to 128 characters. Changing it signs out every other device.'));
  const pwStatus = statusLine();
  const pwBtn = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Change password');
  const pwForm = h('form', { class: 'form', novalidate: true, 'aria-labelledby': 'dev-pw-h' },
    oldF, newF, confF, pwStatus.el, h('div', { class: 'form-actions' }, pwBtn));

  pwForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    pwStatus.clear();
    for (const i of [oldIn, newIn, confIn]) i.setAttribute('aria-invalid', 'false');
    const bad = (input, text) => { input.setAttribute('aria-invalid', 'true'); input.focus(); pwStatus.error(text); };
    if (!oldIn.value) return bad(oldIn, 'Enter your current password.');
    const n = byteLength(newIn.value);
    if (n < 8 || n > 128) return bad(newIn, 'The new password must be 8 to 128 characters long.');
    if (newIn.value === oldIn.value) return bad(newIn, 'The new password is the same as the current one.');
    if (confIn.value !== newIn.value) return bad(confIn, 'The two new passwords do not match.');
    pwBtn.disabled = true;
    try {
      await client.changePassword(oldIn.value, newIn.value);
      if (!alive) return;
      for (const i of [oldIn, newIn, confIn]) i.value = '';
      pwStatus.ok('Password changed. Your other devices have been signed out.');
      ctx.toast('Password changed', 'info');
      load();
    } catch (err) {
      if (!alive) return;
      if (err?.code === 'bad_credentials') bad(oldIn, 'The current password is wrong.');
      else pwStatus.error(errorText(err));
    } finally {
      if (alive) pwBtn.disabled = false;
    }
  });

  // ---- log out -----------------------------------------------------------------------------
  const logoutBtn = h('button', { type: 'button', class: 'btn btn-danger' }, 'Log out');
  logoutBtn.addEventListener('click', async () => {
    logoutBtn.disabled = true;
    try {
      await client.logout();
    } catch (err) {
      // The session is gone locally either way; say so only when the server could not be told.
      if (err?.code && err.code !== 'unauthorized') ctx.toast(`Logged out here; the server was not reached (${errorText(err)})`, 'error');
    }
    ctx.navigate('/login');
  });

  root.append(h('div', { class: 'panel panel-devices' },
    panelHeader('Devices'),
    h('section', { class: 'panel-card', 'aria-labelledby': 'dev-sessions-h' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'dev-sessions-h', class: 'card-title' }, 'Signed-in devices ', countBadge),
        refreshBtn),
      h('p', { class: 'field-hint' }, 'Every login is a session. Revoke the ones you do not recognise: they are signed out at once.'),
      list),
    h('section', { class: 'panel-card', 'aria-labelledby': 'dev-pw-h' },
      h('h2', { id: 'dev-pw-h', class: 'card-title' }, 'Change password'),
      pwForm),
    h('section', { class: 'panel-card', 'aria-labelledby': 'dev-logout-h' },
      h('h2', { id: 'dev-logout-h', class: 'card-title' }, 'Log out'),
      h('p', { class: 'field-hint' }, 'Ends the session on this device. Messages not yet sent from here are kept for your next login here.'),
      h('div', { class: 'form-actions' }, logoutBtn))));

  function render() {
    if (!alive) return;
    countBadge.textContent = sessions ? String(sessions.length) : '';
    if (loadError && !sessions) {
      replace(list, h('li', { class: 'empty-note', role: 'alert' }, `Could not load sessions: ${errorText(loadError)}`));
      return;
    }
    if (!sessions) { replace(list, h('li', { class: 'empty-note' }, 'Loading…')); return; }
    const sorted = [...sessions].sort((a, b) => (b.current ? 1 : 0) - (a.current ? 1 : 0) || (b.created_at ?? 0) - (a.created_at ?? 0));
    replace(list, sorted.map((s) => {
      const label = s.device || 'Unnamed device';
      const actions = [];
      if (!s.current) {
        const b = h('button', { type: 'button', class: 'btn btn-sm btn-danger-quiet', 'aria-label': `Revoke: ${label}` }, 'Revoke');
        b.addEventListener('click', async () => {
          const ok = await confirmDialog(root, {
            title: `Revoke “${label}”?`,
            body: 'That device is signed out immediately and has to log in again.', confirm: 'Revoke',
          });
          if (!ok) return;
          b.disabled = true;
          try {
            await client.revokeSession(s.id);
            if (!alive) return;
            sessions = sessions.filter((x) => x.id !== s.id);
            render();
            ctx.toast(`“${label}” signed out`, 'info');
          } catch (err) {
            if (!alive) return;
            if (err?.code === 'unknown_session') { sessions = sessions.filter((x) => x.id !== s.id); render(); } else {
              ctx.toast(errorText(err), 'error');
              b.disabled = false;
            }
          }
        });
        actions.push(b);
      }
      return h('li', { class: `session${s.current ? ' session-current' : ''}`, dataset: { session: s.id } },
        h('span', { class: 'session-icon', 'aria-hidden': 'true' }, icon('devices')),
        h('div', { class: 'session-text' },
          h('span', { class: 'session-name' }, label,
            s.current ? h('span', { class: 'state-chip state-ok this-device' }, 'This device') : null),
          h('span', { class: 'session-meta' },
            h('span', {}, 'Signed in ', h('time', { dateTime: iso(s.created_at) }, dateTime(s.created_at))),
            h('span', {}, 'Expires ', h('time', { dateTime: iso(s.expires_at) }, dateTime(s.expires_at))))),
        h('div', { class: 'person-actions' }, actions));
    }));
  }

  async function load() {
    refreshBtn.disabled = true;
    try {
      const r = await client.sessions();
      if (!alive) return;
      sessions = listOf(r, 'sessions');
      loadError = null;
    } catch (err) {
      if (alive) loadError = err;
    } finally {
      if (alive) refreshBtn.disabled = false;
    }
    render();
  }

  render();
  load();
  return { unmount() { alive = false; removeDialogs(root); } };
}

function iso(ms) {
  try { return new Date(ms).toISOString(); } catch { return ''; }
}
