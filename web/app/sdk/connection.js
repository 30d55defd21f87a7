// The WebSocket: opening it with the token as a subprotocol, matching replies to requests,
// reconnecting with backoff, and noticing a connection that went quiet.

import { BanterError, timer, interval } from './util.js';

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 30000;
const REQUEST_TIMEOUT_MS = 15000;
/** With nothing received for this long, a `ping` checks that the connection still works. */
const KEEPALIVE_MS = 25000;
const KEEPALIVE_TIMEOUT_MS = 10000;

export class Connection {
  #host;
  #state = 'offline';
  #hello = null;
  /** start() was called and neither stop() nor a sign-out followed */
  #wanted = false;
  #ws = null;
  #finish = null;
  #attempt = 0;
  #reconnectTimer = null;
  #onlineListener = null;
  #offlineListener = null;
  #keepalive = null;
  #lastRx = 0;
  #nextId = 0;
  /** request id -> request: written, waiting for its reply */
  #pending = new Map();
  /** requests made while not connected, written after the next hello */
  #queue = [];

  /**
   * @param {{url: string, token: () => string|undefined, WebSocket: Function,
   *          state: (state: string) => void, hello: (hello: object) => void, event: (frame: object) => void,
   *          error: (error: Error) => void, revoked: () => void, checkAuth: () => Promise<unknown>}} host
   *   `revoked` is called on close 4001; `checkAuth` after a connection that failed before its
   *   hello (a refused upgrade looks like any network failure to a browser).
   */
  constructor(host) {
    this.#host = host;
  }

  get state() {
    return this.#state;
  }

  get hello() {
    return this.#hello;
  }

  /** Connects and keeps reconnecting until stop(). */
  start() {
    if (this.#wanted) return;
    this.#wanted = true;
    this.#attempt = 0;
    if (typeof globalThis.addEventListener === 'function' && !this.#onlineListener) {
      this.#onlineListener = () => {
        if (this.#wanted && !this.#ws) this.#open('reconnecting');
      };
      globalThis.addEventListener('online', this.#onlineListener);
      // Without a network the socket cannot work, but noticing can take until the keepalive
      // (browsers keep "open" sockets through an outage): give it up at once, and wait for
      // 'online' instead of backing off (#lost).
      this.#offlineListener = () => {
        const ws = this.#ws;
        if (!ws) return;
        this.#lost(ws, 1006, false);
        closeQuietly(ws);
      };
      globalThis.addEventListener('offline', this.#offlineListener);
    }
    this.#open('connecting');
  }

  /** Closes the socket and stops reconnecting. Requests in flight fail with 'disconnected'. */
  stop() {
    this.#wanted = false;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    if (this.#onlineListener) {
      globalThis.removeEventListener?.('online', this.#onlineListener);
      globalThis.removeEventListener?.('offline', this.#offlineListener);
      this.#onlineListener = null;
      this.#offlineListener = null;
    }
    const ws = this.#ws;
    if (ws) {
      this.#lost(ws, 1000, true);
      closeQuietly(ws, 1000);
    } else {
      this.#setState('offline');
    }
  }

  /** Stops, then fails every request, queued ones included, with `error` (sign-out). */
  abandon(error) {
    this.stop();
    this.#hello = null;
    const reqs = [...this.#pending.values(), ...this.#queue];
    this.#pending.clear();
    this.#queue = [];
    for (const req of reqs) {
      clearTimeout(req.timer);
      req.reject(error);
    }
  }

  /** See BanterClient.request. */
  request(type, fields = {}, { timeout = REQUEST_TIMEOUT_MS } = {}) {
    return new Promise((resolve, reject) => {
      const id = String(++this.#nextId);
      const req = { id, type, frame: JSON.stringify({ ...fields, type, id }), resolve, reject, timer: null };
      req.timer = timer(() => {
        this.#pending.delete(id);
        const i = this.#queue.indexOf(req);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(new BanterError('timeout', `no answer to ${type} within ${timeout} ms`));
      }, timeout);
      if (this.#state === 'connected') this.#write(req);
      else this.#queue.push(req);
    });
  }

  #write(req) {
    const max = this.#hello?.limits?.max_frame_bytes;
    if (max && req.frame.length * 3 > max && new TextEncoder().encode(req.frame).length > max) {
      // The server would close the connection (1009), and every retry would do the same.
      clearTimeout(req.timer);
      req.reject(new BanterError('text_too_long', `the ${req.type} request is larger than ${max} bytes`));
      return;
    }
    this.#pending.set(req.id, req);
    try {
      this.#ws.send(req.frame);
    } catch {
      // The socket is closing: its close handler fails the request with 'disconnected'.
    }
  }

  #open(state) {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const token = this.#host.token();
    if (!token) return;
    this.#setState(state);
    let ws;
    try {
      ws = new this.#host.WebSocket(this.#host.url, ['banter.v1', `banter.auth.${token}`]);
    } catch (error) {
      this.#host.error(error);
      this.#wanted = false;
      this.#setState('offline');
      return;
    }
    this.#ws = ws;
    let done = false;
    let helloSeen = false;
    const finish = (code) => {
      if (done) return;
      done = true;
      if (this.#ws === ws) this.#lost(ws, code, helloSeen);
    };
    ws.onmessage = (event) => {
      if (this.#ws !== ws || typeof event.data !== 'string') return;
      this.#lastRx = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame?.type === 'hello') helloSeen = true;
      try {
        this.#frame(frame);
      } catch (error) {
        this.#host.error(error);
      }
    };
    ws.onclose = (event) => finish(event.code);
    ws.onerror = () => {
      // Browsers follow an error with a close; some implementations do not, so end it here.
      finish(1006);
      closeQuietly(ws);
    };
    this.#finish = finish;
  }

  /** The socket `ws` is gone: closed, failed, or dropped by stop(). */
  #lost(ws, code, helloSeen) {
    if (this.#ws !== ws) return;
    this.#ws = null;
    this.#finish = null;
    clearInterval(this.#keepalive);
    this.#keepalive = null;
    const reqs = [...this.#pending.values()];
    this.#pending.clear();
    for (const req of reqs) {
      clearTimeout(req.timer);
      req.reject(new BanterError('disconnected', 'the connection closed before the answer'));
    }
    if (!this.#wanted) {
      this.#setState('offline');
      return;
    }
    if (code === 4001) {
      this.#host.revoked();
      return;
    }
    if (globalThis.navigator?.onLine === false) {
      // No network: the 'online' listener reconnects; retrying meanwhile would only fail.
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
      this.#setState('offline');
      return;
    }
    this.#setState('reconnecting');
    if (helloSeen) {
      this.#scheduleReconnect();
      return;
    }
    Promise.resolve()
      .then(() => this.#host.checkAuth())
      .catch(() => {})
      .finally(() => {
        if (this.#wanted && !this.#ws) this.#scheduleReconnect();
      });
  }

  /** Exponential backoff with jitter: 0.5 s doubling to 30 s, each delay drawn from its upper half. */
  #scheduleReconnect() {
    if (this.#reconnectTimer) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.#attempt);
    this.#attempt += 1;
    const delay = base / 2 + (Math.random() * base) / 2;
    this.#reconnectTimer = timer(() => {
      this.#reconnectTimer = null;
      if (this.#wanted && !this.#ws) this.#open('reconnecting');
    }, delay);
  }

  #frame(f) {
    if (f.type === 'hello') {
      this.#hello = f;
      this.#attempt = 0;
      const queued = this.#queue;
      this.#queue = [];
      this.#state = 'connected';
      for (const req of queued) this.#write(req);
      clearInterval(this.#keepalive);
      this.#keepalive = interval(() => this.#checkAlive(), KEEPALIVE_MS);
      this.#setState('connected', true);
      this.#host.hello(f);
    } else if (f.type === 'ok') {
      this.#settle(f.id, (req) => req.resolve(f.result ?? {}));
    } else if (f.type === 'error') {
      const err = new BanterError(f.error?.code ?? 'internal', f.error?.message);
      if (f.id == null) this.#host.error(err);
      else this.#settle(f.id, (req) => req.reject(err));
    } else {
      this.#host.event(f);
    }
  }

  #settle(id, fn) {
    const req = this.#pending.get(id);
    if (!req) return;
    this.#pending.delete(id);
    clearTimeout(req.timer);
    fn(req);
  }

  #checkAlive() {
    const ws = this.#ws;
    if (!ws || Date.now() - this.#lastRx < KEEPALIVE_MS) return;
    this.request('ping', {}, { timeout: KEEPALIVE_TIMEOUT_MS }).catch((err) => {
      if (err?.code === 'timeout' && this.#ws === ws) {
        this.#finish?.(4002);
        closeQuietly(ws);
      }
    });
  }

  #setState(state, force = false) {
    if (this.#state === state && !force) return;
    this.#state = state;
    this.#host.state(state);
  }
}

function closeQuietly(ws, code) {
  try {
    if (code) ws.close(code);
    else ws.close();
  } catch {
    // already closed
  }
}
