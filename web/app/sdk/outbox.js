// The outbox: messages the user sent that the server has not acknowledged yet.
//
// Entries are persisted in storage under a per-user key, so they survive a reload, and each keeps
// its client_msg_id forever: a retry after a lost reply, a reconnect or a reload is deduplicated
// by the server (the ack says duplicate:true) and never makes a second message. On every connect
// the entries are sent in order without waiting for each other (the server pipelines consecutive
// sends); acks come back in the same order.

import { BanterError, readJson, newId, timer } from './util.js';

/** Most entries the outbox holds; send() beyond it throws BanterError 'outbox_full'. */
export const OUTBOX_LIMIT = 500;

/** Retryable failures other than a lost connection wait this long first (doubling, capped). */
const PAUSE_START_MS = 1000;
const PAUSE_MAX_MS = 30000;

/**
 * @typedef {object} OutboxEntry
 * @property {string} client_msg_id
 * @property {string} [conversation]  target conversation (learned from the ack for `to` sends)
 * @property {string} [to]            target user, for a direct message
 * @property {string} text          the text, or an attachment's caption (may then be empty)
 * @property {object} [attachment]   a file already uploaded: {kind, id, name?, duration_ms?} as sent, and
 *                                   what the UI shows meanwhile (type, size, width, height, thumbnail, color)
 * @property {object} [sticker]      a sticker {id, name?, emoji?} (the text is then empty)
 * @property {'sending'|'failed'} state
 * @property {string} [error]         the error code of a permanent failure
 * @property {true} pending
 * @property {number} ts              local time it was queued (ms)
 */

export class Outbox {
  #storage;
  #host;
  #key = null;
  /** @type {OutboxEntry[]} */
  #entries = [];
  /** client_msg_ids sent on the current connection and not yet answered. */
  #inflight = new Set();
  /** client_msg_ids this instance acknowledged or discarded (never written back to storage). */
  #removed = new Set();
  #pauseMs = PAUSE_START_MS;
  #pauseTimer = null;

  /**
   * @param {Storage} storage
   * @param {{request: Function, connected: () => boolean, acked: (entry: OutboxEntry, ack: object) => void,
   *          changed: (entry: OutboxEntry) => void}} host
   */
  constructor(storage, host) {
    this.#storage = storage;
    this.#host = host;
  }

  /** Loads the outbox of `userId` from storage. */
  open(userId) {
    this.#key = `banter.outbox.${userId}`;
    const saved = readJson(this.#storage, this.#key, []);
    this.#entries = (Array.isArray(saved) ? saved : [])
      .filter((e) => e && typeof e.client_msg_id === 'string' && typeof e.text === 'string')
      .map((e) => ({
        client_msg_id: e.client_msg_id,
        conversation: e.conversation ?? undefined,
        to: e.to ?? undefined,
        text: e.text,
        attachment: e.attachment && typeof e.attachment.id === 'string' ? e.attachment : undefined,
        sticker: typeof e.sticker?.id === 'string' ? e.sticker : undefined,
        state: e.state === 'failed' ? 'failed' : 'sending',
        error: e.state === 'failed' ? e.error : undefined,
        pending: true,
        ts: e.ts ?? Date.now(),
      }));
    this.#inflight.clear();
    this.#removed.clear();
  }

  /** Forgets the in-memory entries (storage keeps them). */
  close() {
    this.#key = null;
    this.#entries = [];
    this.#inflight.clear();
    clearTimeout(this.#pauseTimer);
    this.#pauseTimer = null;
  }

  /** Deletes the stored outbox of the current user and closes it. */
  clear() {
    if (this.#key) this.#storage.removeItem(this.#key);
    this.close();
  }

  /** @returns {OutboxEntry[]} every entry, oldest first */
  all() {
    return [...this.#entries];
  }

  /** @returns {OutboxEntry|undefined} */
  get(clientMsgId) {
    return this.#entries.find((e) => e.client_msg_id === clientMsgId);
  }

  /** Entries for a conversation (and, for a direct one, those sent `to` its peer before its id was known). */
  forConversation(id, peer) {
    return this.#entries.filter(
      (e) => e.conversation === id || (!e.conversation && peer !== undefined && e.to === peer),
    );
  }

  /** Queues a message; returns the entry. Throws BanterError 'outbox_full' past the limit. */
  add({ to, conversation, text, attachment, sticker }) {
    if (!this.#key) throw new BanterError('unauthorized', 'not logged in');
    if (this.#entries.length >= OUTBOX_LIMIT) {
      throw new BanterError('outbox_full', `at most ${OUTBOX_LIMIT} messages can wait to be sent`);
    }
    const entry = {
      client_msg_id: newId(),
      conversation: conversation ?? undefined,
      to: conversation ? undefined : to,
      text,
      attachment: attachment ?? undefined,
      sticker: sticker ?? undefined,
      state: 'sending',
      error: undefined,
      pending: true,
      ts: Date.now(),
    };
    this.#entries.push(entry);
    this.#persist();
    this.pump();
    return entry;
  }

  /** Puts a failed entry back to 'sending' and sends it. Returns false if there is no such entry. */
  retry(clientMsgId) {
    const e = this.get(clientMsgId);
    if (!e) return false;
    e.state = 'sending';
    e.error = undefined;
    this.#persist();
    this.#host.changed(e);
    this.pump();
    return true;
  }

  /** Removes an entry (a reply already on its way still lands). Returns the entry removed. */
  remove(clientMsgId) {
    const i = this.#entries.findIndex((e) => e.client_msg_id === clientMsgId);
    if (i < 0) return undefined;
    const [e] = this.#entries.splice(i, 1);
    this.#removed.add(e.client_msg_id);
    this.#persist();
    return e;
  }

  /** A direct conversation's id became known: later retries of sends `to` that peer use it. */
  learn(to, conversation) {
    let touched = false;
    for (const e of this.#entries) {
      if (!e.conversation && e.to === to) {
        e.conversation = conversation;
        touched = true;
      }
    }
    if (touched) this.#persist();
  }

  /** Sends every 'sending' entry not already in flight, in order. Called on connect and on changes. */
  pump() {
    if (this.#pauseTimer || !this.#host.connected()) return;
    for (const e of this.#entries) {
      if (e.state === 'sending' && !this.#inflight.has(e.client_msg_id)) this.#send(e);
    }
  }

  #send(e) {
    this.#inflight.add(e.client_msg_id);
    const target = e.conversation ? { conversation: e.conversation } : { to: e.to };
    this.#host
      .request('send', { ...target, client_msg_id: e.client_msg_id, text: e.text, ...extras(e) })
      .then(
        (ack) => {
          this.#inflight.delete(e.client_msg_id);
          this.#pauseMs = PAUSE_START_MS;
          this.remove(e.client_msg_id);
          this.#host.acked(e, ack);
        },
        (err) => {
          this.#inflight.delete(e.client_msg_id);
          if (!this.#entries.includes(e)) return;
          const code = err?.code ?? 'internal';
          if (code === 'disconnected') return; // the next connect sends it again
          if (err?.retryable) {
            this.#pause();
            return;
          }
          e.state = 'failed';
          e.error = code;
          this.#persist();
          this.#host.changed(e);
        },
      );
  }

  /** Waits before sending again after a retryable refusal (rate limit, busy server, timeout). */
  #pause() {
    if (this.#pauseTimer) return;
    const ms = this.#pauseMs;
    this.#pauseMs = Math.min(PAUSE_MAX_MS, this.#pauseMs * 2);
    this.#pauseTimer = timer(() => {
      this.#pauseTimer = null;
      this.pump();
    }, ms);
  }

  /**
   * Writes the entries. Another tab of the same user shares the storage: its entries that this
   * one does not hold are kept (sending one twice is harmless: the server deduplicates).
   */
  #persist() {
    if (!this.#key) return;
    const mine = new Set(this.#entries.map((e) => e.client_msg_id));
    const stored = readJson(this.#storage, this.#key, []);
    const others = (Array.isArray(stored) ? stored : []).filter(
      (e) => e?.client_msg_id && !mine.has(e.client_msg_id) && !this.#removed.has(e.client_msg_id),
    );
    const saved = [
      ...others,
      ...this.#entries.map(({ client_msg_id, conversation, to, text, attachment, sticker, state, error, ts }) => ({
        client_msg_id, conversation, to, text, attachment, sticker, state, error, ts,
      })),
    ];
    try {
      if (saved.length) this.#storage.setItem(this.#key, JSON.stringify(saved));
      else this.#storage.removeItem(this.#key);
    } catch {
      // Storage full or unavailable: the entries still live in memory and are sent from there.
    }
  }
}

/**
 * The send frame's fields beyond the text: the attachment as the server takes it (the uploaded
 * id, never the bytes: a retry does not upload again), or the sticker.
 */
function extras(e) {
  if (e.sticker) return { sticker: e.sticker.id };
  if (!e.attachment) return {};
  const { kind, id, name, duration_ms: durationMs } = e.attachment;
  return {
    attachment: {
      kind, id, ...(name ? { name } : {}), ...(Number.isFinite(durationMs) ? { duration_ms: Math.round(durationMs) } : {}),
    },
  };
}
