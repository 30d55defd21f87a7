// The account over HTTP (register, log in and out, sessions, password, user search) and the
// session it holds: the token every other part reads, saved in storage so that a reload takes it
// up again. It never touches the socket or the client's state: when the server refuses the
// current token it says so through `refused`, and BanterClient signs out.

import { BanterError, httpError, readJson } from './util.js';

/** Where the session is saved in storage. */
const SESSION_KEY = 'banter.session';

export class Account {
  #baseUrl;
  #storage;
  #fetch;
  #refused;
  /** {token, session_id, expires_at, user} while logged in */
  #session = null;

  /**
   * @param {{baseUrl: string, storage: object, fetch: Function, refused: (code: string) => void}} host
   *   `refused` is told when an authenticated call is answered 401 for the current token
   */
  constructor({ baseUrl, storage, fetch, refused }) {
    this.#baseUrl = baseUrl;
    this.#storage = storage;
    this.#fetch = fetch;
    this.#refused = refused;
  }

  /** The current session, or null. */
  get session() {
    return this.#session;
  }

  /** Creates an account (does not log in). */
  register(username, password) {
    return this.http('POST', '/v1/accounts', { username, password }, { auth: false });
  }

  /** Asks for a new session; it is not taken up until adopt(). */
  logIn(username, password, device) {
    return this.http('POST', '/v1/sessions', { username, password, device }, { auth: false });
  }

  /** Takes up `session` and saves it in storage. */
  adopt(session) {
    this.#session = session;
    this.#storage.setItem(SESSION_KEY, JSON.stringify(session));
  }

  /** Takes up the saved session; an expired one is deleted. @returns {boolean} whether one was taken */
  restore() {
    const saved = readJson(this.#storage, SESSION_KEY);
    if (!saved?.token || !saved.user?.id) return false;
    if (saved.expires_at && saved.expires_at <= Date.now()) {
      this.#storage.removeItem(SESSION_KEY);
      return false;
    }
    this.#session = saved;
    return true;
  }

  /** Ends the current session on the server (a 401 here is not reported: the caller is leaving). */
  logOut() {
    return this.http('DELETE', '/v1/sessions/current', undefined, { signOutOn401: false });
  }

  /** Deletes the saved session if it is the current one (another tab may have saved a newer one). */
  unsave() {
    const token = this.#session?.token;
    if (readJson(this.#storage, SESSION_KEY)?.token === token) this.#storage.removeItem(SESSION_KEY);
  }

  /** Drops the current session (storage is left alone). */
  forget() {
    this.#session = null;
  }

  sessions() {
    return this.http('GET', '/v1/sessions');
  }

  revokeSession(id) {
    return this.http('DELETE', `/v1/sessions/${encodeURIComponent(id)}`);
  }

  changePassword(oldPassword, newPassword) {
    return this.http('PUT', '/v1/me/password', { old_password: oldPassword, new_password: newPassword });
  }

  searchUsers(prefix, limit) {
    const q = new URLSearchParams({ prefix, limit: String(limit) });
    return this.http('GET', `/v1/users?${q}`);
  }

  /**
   * A JSON call. Resolves to the parsed answer (undefined when empty or unreadable); rejects with
   * BanterError: 'network', or the server's error. With `auth`, a 401 for the current token is
   * reported through `refused` (unless `signOutOn401` is false).
   */
  async http(method, path, body, { auth = true, signOutOn401 = true } = {}) {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    const token = this.#session?.token;
    if (auth) {
      if (!token) throw new BanterError('unauthorized', 'not logged in');
      headers.authorization = `Bearer ${token}`;
    }
    let res;
    try {
      res = await this.#fetch(`${this.#baseUrl}${path}`, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new BanterError('network', `cannot reach the server: ${err?.message ?? err}`);
    }
    const text = await res.text().catch(() => '');
    if (res.ok) {
      try {
        return text ? JSON.parse(text) : undefined;
      } catch {
        return undefined;
      }
    }
    const err = httpError(res.status, text, res.headers.get('retry-after'));
    const refused = res.status === 401 && (err.code === 'unauthorized' || err.code === 'token_expired');
    if (auth && signOutOn401 && refused && this.#session?.token === token) this.#refused(err.code);
    throw err;
  }
}
