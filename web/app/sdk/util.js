// Small helpers shared by the SDK modules: errors, storage, ids and timers. No DOM access.

/**
 * Codes after which the same request may succeed if repeated later. Anything else is permanent.
 * `disconnected`, `timeout` and `network` are the SDK's own codes; the rest come from the server.
 */
export const RETRYABLE = new Set([
  'disconnected', 'timeout', 'network', 'rate_limited', 'busy', 'shutting_down',
  'store_unavailable', 'internal', 'too_many_connections',
]);

/** An error from the server (its `code`, see PROTOCOL.md) or from the SDK itself. */
export class BanterError extends Error {
  /**
   * @param {string} code  machine-readable code, e.g. 'bad_credentials', 'disconnected'
   * @param {string} [message]  for people
   * @param {{status?: number, retryAfter?: number}} [extra]  HTTP status; Retry-After in seconds
   */
  constructor(code, message = code, { status, retryAfter } = {}) {
    super(message);
    this.name = 'BanterError';
    /** @type {string} */
    this.code = code;
    /** @type {number|undefined} HTTP status, when the error came over HTTP */
    this.status = status;
    /** @type {number|undefined} seconds to wait before retrying (HTTP Retry-After) */
    this.retryAfter = retryAfter;
  }

  /** True when repeating the same request later may succeed. */
  get retryable() {
    return RETRYABLE.has(this.code);
  }
}

/** The error an HTTP answer carries (`{"error": {code, message}}`, PROTOCOL.md), as a BanterError. */
export function httpError(status, text, retryAfterHeader) {
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return new BanterError(json?.error?.code ?? `http_${status}`, json?.error?.message ?? text, {
    status, retryAfter: Number(retryAfterHeader) || undefined,
  });
}

/**
 * An in-memory stand-in for localStorage (getItem/setItem/removeItem), for node and tests.
 * Share one object between two clients to simulate a page reload.
 */
export function memoryStorage() {
  const map = new Map();
  return {
    getItem: (key) => (map.has(key) ? map.get(key) : null),
    setItem: (key, value) => void map.set(key, String(value)),
    removeItem: (key) => void map.delete(key),
    get length() {
      return map.size;
    },
    key: (i) => [...map.keys()][i] ?? null,
  };
}

/** localStorage where the page may use it, else memoryStorage(). */
export function defaultStorage() {
  try {
    if (globalThis.localStorage) return globalThis.localStorage;
  } catch {
    // Storage disabled (privacy settings): keep things in memory.
  }
  return memoryStorage();
}

/** Parses JSON from storage, or returns `fallback` when absent or unreadable. */
export function readJson(storage, key, fallback = null) {
  try {
    const raw = storage.getItem(key);
    return raw == null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

/** A random RFC 4122 v4 UUID (crypto.randomUUID, which only secure contexts have, or the same by hand). */
export function newId() {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** setTimeout that does not keep a node process alive (browsers ignore the difference). */
export function timer(fn, ms) {
  const t = setTimeout(fn, ms);
  t?.unref?.();
  return t;
}

/** setInterval that does not keep a node process alive. */
export function interval(fn, ms) {
  const t = setInterval(fn, ms);
  t?.unref?.();
  return t;
}

/** Splits `items` into arrays of at most `size`. */
export function chunks(items, size) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
