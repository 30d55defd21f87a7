// The blob: URLs of one open chat's files. Media downloads need the token, so an <img> or
// <audio> cannot fetch them itself: each file (or thumbnail) is fetched once through the SDK,
// at most MAX_CONCURRENT_FETCHES at a time (a long history must not open dozens of requests),
// and its URL is kept per id until the chat closes, when every URL is revoked.

/** Downloads in flight at once; the rest wait in order. */
export const MAX_CONCURRENT_FETCHES = 4;

/**
 * Tries of a download the server refuses for now (`rate_limited`: the user's other tabs and
 * devices hold its downloads; `busy`), each after the answer's Retry-After (1 s if none).
 */
export const RETRIES_WHEN_REFUSED = 5;

/**
 * Creates a cache over `client.media`. Returns {url(id, variant), blob(id, variant), clear()}:
 * variant is 'thumbnail' or 'file'. After clear() the cache refuses work (a chat that closed).
 */
export function createMediaCache(client) {
  /** `${variant}:${id}` -> Promise<{url, blob}> */
  const entries = new Map();
  const waiting = [];
  let running = 0;
  let closed = false;
  const urls = new Set();

  function next() {
    while (running < MAX_CONCURRENT_FETCHES && waiting.length) {
      const job = waiting.shift();
      running += 1;
      job().finally(() => { running -= 1; next(); });
    }
  }

  function limited(work) {
    return new Promise((resolve, reject) => {
      waiting.push(() => work().then(resolve, reject));
      next();
    });
  }

  async function download(id, thumbnail) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await client.media.download(id, { thumbnail });
      } catch (e) {
        const later = e?.code === 'rate_limited' || e?.code === 'busy';
        if (!later || attempt >= RETRIES_WHEN_REFUSED || closed) throw e;
        await new Promise((resolve) => { setTimeout(resolve, (e.retryAfter ?? 1) * 1000); });
        if (closed) throw new Error('closed');
      }
    }
  }

  function load(id, variant) {
    const key = `${variant}:${id}`;
    let entry = entries.get(key);
    if (!entry) {
      entry = limited(async () => {
        if (closed) throw new Error('closed');
        const blob = await download(id, variant === 'thumbnail');
        if (closed) throw new Error('closed');
        const url = URL.createObjectURL(blob);
        urls.add(url);
        return { url, blob };
      });
      // A failure is not cached: showing the item again tries again.
      entry.catch(() => { if (entries.get(key) === entry) entries.delete(key); });
      entries.set(key, entry);
    }
    return entry;
  }

  return {
    /** @returns {Promise<string>} a blob: URL of the file or thumbnail */
    url: async (id, variant = 'file') => (await load(id, variant)).url,
    /** @returns {Promise<Blob>} */
    blob: async (id, variant = 'file') => (await load(id, variant)).blob,
    /** Revokes every URL handed out; later calls fail. */
    clear() {
      closed = true;
      waiting.length = 0;
      for (const url of urls) URL.revokeObjectURL(url);
      urls.clear();
      entries.clear();
    },
  };
}
