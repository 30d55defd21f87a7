// Chatrooms: public, in memory on the server, with a recent window instead of a full history.
// The SDK keeps the messages it saw per room (deduplicated) and re-joins after a reconnect.

import { newId } from './util.js';

/** Attempts a room send makes across lost connections (same client_msg_id each time). */
const SEND_ATTEMPTS = 3;
/** Messages kept per room (the oldest are dropped). */
const KEEP = 1000;

export class Rooms {
  #host;
  /** name -> {name, count, messages, keys} */
  #rooms = new Map();

  /** @param {{request: Function, me: () => string|undefined, emit: Function}} host */
  constructor(host) {
    this.#host = host;
  }

  reset() {
    this.#rooms.clear();
  }

  /** Joins (or re-joins) a room. Resolves to the server's {room, count, recent}. */
  async join(name) {
    const result = await this.#host.request('room_join', { room: name });
    let r = this.#rooms.get(name);
    if (!r) this.#rooms.set(name, (r = { name, count: 0, messages: [], keys: new Set() }));
    r.count = result.count;
    for (const m of result.recent) this.#add(r, m);
    r.messages.sort(byTime);
    this.#host.emit('room', { room: name });
    return result;
  }

  async leave(name) {
    this.#rooms.delete(name);
    const result = await this.#host.request('room_leave', { room: name });
    this.#host.emit('room', { room: name });
    return result;
  }

  /** Sends into a room (retried with the same client_msg_id if the connection drops). */
  async send(name, text) {
    const client_msg_id = newId();
    for (let attempt = 1; ; attempt += 1) {
      try {
        const ack = await this.#host.request('room_send', { room: name, client_msg_id, text });
        const r = this.#rooms.get(name);
        if (r) {
          this.#add(r, { seq: ack.seq, id: ack.message_id, sender: this.#host.me(), client_msg_id, text, ts: ack.ts });
          this.#host.emit('room', { room: name });
        }
        return ack;
      } catch (err) {
        if (err?.code !== 'disconnected' || attempt >= SEND_ATTEMPTS) throw err;
      }
    }
  }

  messages(name) {
    return [...(this.#rooms.get(name)?.messages ?? [])];
  }

  count(name) {
    return this.#rooms.get(name)?.count ?? 0;
  }

  names() {
    return [...this.#rooms.keys()];
  }

  onMessage({ room, message }) {
    const r = this.#rooms.get(room);
    if (r && this.#add(r, message)) this.#host.emit('room', { room });
  }

  onOccupancy({ room, count }) {
    const r = this.#rooms.get(room);
    if (!r) return;
    r.count = count;
    this.#host.emit('room', { room });
  }

  /** After a reconnect: join every room again; its recent window is merged in. */
  rejoinAll() {
    for (const name of this.#rooms.keys()) {
      this.join(name).catch((error) => this.#host.emit('error', { error }));
    }
  }

  /** Adds a message unless already there. A room restarted from seq 1 has new ids and times. */
  #add(r, m) {
    const key = `${m.seq}|${m.id}|${m.ts}`;
    if (r.keys.has(key)) return false;
    r.keys.add(key);
    r.messages.push(m);
    if (r.messages.length > KEEP) {
      const old = r.messages.shift();
      r.keys.delete(`${old.seq}|${old.id}|${old.ts}`);
    }
    return true;
  }
}

function byTime(a, b) {
  return a.ts - b.ts || a.seq - b.seq;
}
