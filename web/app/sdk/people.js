// Profiles, presence and who is typing: small caches fed by requests and pushes.

import { chunks, timer } from './util.js';

/** Ids per `profiles` or `presence` request (the server's LOOKUP_MAX). */
const LOOKUP_MAX = 200;
/** Someone counts as typing this long after their last typing event. */
const TYPING_TTL_MS = 5000;

export class People {
  #host;
  /** id -> profile, or null when the server did not return it */
  #profiles = new Map();
  #wanted = new Set();
  #asked = new Set();
  #flushTimer = null;
  /** id -> {online, last_seen} */
  #presence = new Map();
  /** usernames learned on the side (conversation list), for displayName before profiles load */
  #usernames = new Map();
  /** conversation -> Map(user -> expiry timer) */
  #typers = new Map();

  /** @param {{request: Function, emit: (type: string, detail: object) => void}} host */
  constructor(host) {
    this.#host = host;
  }

  reset() {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    for (const users of this.#typers.values()) for (const t of users.values()) clearTimeout(t);
    this.#typers.clear();
    this.#profiles.clear();
    this.#wanted.clear();
    this.#asked.clear();
    this.#presence.clear();
    this.#usernames.clear();
  }

  /** The cached profile, or undefined (and a batched load is started). */
  user(id) {
    const p = this.#profiles.get(id);
    if (p) return p;
    if (p === undefined && !this.#asked.has(id) && id) {
      this.#wanted.add(id);
      this.#asked.add(id);
      if (!this.#flushTimer) this.#flushTimer = timer(() => this.#flush(), 0);
    }
    return undefined;
  }

  knowUsername(id, username) {
    if (id && username) this.#usernames.set(id, username);
  }

  displayName(id) {
    const p = this.#profiles.get(id);
    return p?.display_name || p?.username || this.#usernames.get(id) || '…';
  }

  /** Stores profiles from a push, a reply or the friends list, emitting 'profile' for each. */
  put(profiles) {
    for (const p of profiles) {
      if (!p?.id) continue;
      this.#profiles.set(p.id, p);
      this.#host.emit('profile', { profile: p });
    }
  }

  async #flush() {
    this.#flushTimer = null;
    const ids = [...this.#wanted];
    this.#wanted.clear();
    await Promise.all(chunks(ids, LOOKUP_MAX).map(async (batch) => {
      try {
        const { profiles } = await this.#host.request('profiles', { users: batch });
        this.put(profiles);
        for (const id of batch) if (!this.#profiles.has(id)) this.#profiles.set(id, null);
      } catch {
        for (const id of batch) this.#asked.delete(id); // asked again on the next user(id)
      }
    }));
  }

  online(id) {
    return this.#presence.get(id)?.online;
  }

  lastSeen(id) {
    return this.#presence.get(id)?.last_seen ?? undefined;
  }

  onPresence({ user, online, last_seen }) {
    this.#presence.set(user, { online, last_seen });
    this.#host.emit('presence', { user, online, last_seen });
  }

  async loadPresence(ids) {
    const out = [];
    for (const batch of chunks([...new Set(ids)], LOOKUP_MAX)) {
      const { presence } = await this.#host.request('presence', { users: batch });
      for (const p of presence) {
        this.onPresence(p);
        out.push(p);
      }
    }
    return out;
  }

  typers(conversation) {
    return [...(this.#typers.get(conversation)?.keys() ?? [])];
  }

  onTyping({ conversation, user }) {
    let users = this.#typers.get(conversation);
    if (!users) this.#typers.set(conversation, (users = new Map()));
    clearTimeout(users.get(user));
    users.set(user, timer(() => this.stopped(conversation, user), TYPING_TTL_MS));
    this.#host.emit('typing', { conversation, user, typing: true });
  }

  /** `user` stopped typing in `conversation` (expired, or their message arrived). */
  stopped(conversation, user) {
    const users = this.#typers.get(conversation);
    if (!users?.has(user)) return;
    clearTimeout(users.get(user));
    users.delete(user);
    if (!users.size) this.#typers.delete(conversation);
    this.#host.emit('typing', { conversation, user, typing: false });
  }
}
