// Helpers for the SDK tests (sdk*.test.mjs): clients against a real server and a WebSocket
// wrapper that records frames and can drop some or cut the connection. (Polling: people.mjs's
// `until`.)
import { register, uniqueName, PASSWORD } from './server.mjs';
import { until } from './people.mjs';
import { BanterClient, memoryStorage } from '../../app/sdk.js';

/** Resolves with the detail of the next `type` event of `client` for which `pred` holds. */
export function nextEvent(client, type, pred = () => true, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      client.removeEventListener(type, on);
      reject(new Error(`no '${type}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    function on(e) {
      if (!pred(e.detail)) return;
      clearTimeout(t);
      client.removeEventListener(type, on);
      resolve(e.detail);
    }
    client.addEventListener(type, on);
  });
}

/** Records every event of the given types: returns an array of {type, detail}. */
export function record(client, ...types) {
  const seen = [];
  for (const type of types) client.addEventListener(type, (e) => seen.push({ type, detail: e.detail }));
  return seen;
}

/**
 * A WebSocket stand-in for the client's `WebSocket` option. Records frames both ways
 * (`sent`, `received`), drops incoming frames for which `dropIncoming(frame)` is true (into
 * `dropped`), counts sockets opened (`sockets`), refuses new connections while `refuse` is set,
 * and `cut()` closes the current socket as a network failure would.
 */
export function tap() {
  const t = { sent: [], received: [], dropped: [], sockets: [], dropIncoming: null, onDrop: null, refuse: false };
  class TapWebSocket {
    constructor(url, protocols) {
      t.sockets.push(this);
      if (t.refuse) {
        // As a browser sees a refused upgrade: an error, then a close without a code from the server.
        this.ws = null;
        setTimeout(() => {
          this.onerror?.(new Event('error'));
          this.onclose?.({ code: 1006, reason: '' });
        }, 0);
        return;
      }
      const ws = new WebSocket(url, protocols);
      this.ws = ws;
      ws.onopen = (e) => this.onopen?.(e);
      ws.onclose = (e) => this.onclose?.(e);
      ws.onerror = (e) => this.onerror?.(e);
      ws.onmessage = (e) => {
        const frame = JSON.parse(e.data);
        if (t.dropIncoming?.(frame)) {
          t.dropped.push(frame);
          t.onDrop?.(frame, this);
          return;
        }
        t.received.push(frame);
        this.onmessage?.(e);
      };
    }
    get readyState() {
      return this.ws?.readyState ?? 3;
    }
    get protocol() {
      return this.ws?.protocol ?? '';
    }
    send(data) {
      t.sent.push(JSON.parse(data));
      this.ws.send(data);
    }
    close(code, reason) {
      this.ws?.close(code, reason);
    }
  }
  t.WebSocket = TapWebSocket;
  t.cut = () => t.sockets.at(-1)?.ws?.close();
  return t;
}

/** A client of the server at `url`; logged in as `name` if given, connected unless told not to. */
export async function makeClient(url, { name, storage = memoryStorage(), connect = true, socket } = {}) {
  const c = new BanterClient({ baseUrl: url, storage, WebSocket: socket?.WebSocket ?? WebSocket });
  if (name) await c.login(name, PASSWORD);
  if (name && connect) {
    c.connect();
    await until(() => c.state === 'connected', { timeout: 5000, what: `${name} to connect` });
  }
  return c;
}

/** Registers a fresh user and returns its name. */
export async function newUser(url, prefix = 'u') {
  const name = uniqueName(prefix);
  await register(url, name);
  return name;
}

/** Texts of the delivered (non-pending) messages of a conversation. */
export function texts(client, conversation) {
  return client.messages(conversation).filter((m) => !m.pending).map((m) => m.text);
}

/** Asserts-friendly check that delivered messages have seqs from..to, each once and in order. */
export function seqsContiguous(client, conversation) {
  const seqs = client.messages(conversation).filter((m) => !m.pending).map((m) => m.seq);
  return seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1);
}

/**
 * Two connected users with a direct conversation holding one message from A ('hello'), opened on
 * both sides. Returns {a, b, conv, aName, bName}.
 */
export async function pairWithConversation(url, { socketA, socketB, storageA, storageB } = {}) {
  const aName = await newUser(url, 'a');
  const bName = await newUser(url, 'b');
  const a = await makeClient(url, { name: aName, socket: socketA, storage: storageA });
  const b = await makeClient(url, { name: bName, socket: socketB, storage: storageB });
  a.send({ to: b.me.id, text: 'hello' });
  const conv = (await until(() => a.directConversation(b.me.id), { timeout: 5000, what: 'A to learn the conversation' })).id;
  await until(() => b.conversation(conv), { timeout: 5000, what: 'B to learn the conversation' });
  await Promise.all([a.openConversation(conv), b.openConversation(conv)]);
  await until(() => texts(b, conv).includes('hello'), { timeout: 5000, what: "B to hold 'hello'" });
  await until(() => a.outbox().length === 0, { timeout: 5000, what: "A's outbox to drain" });
  return { a, b, conv, aName, bName };
}

/** Disconnects every client given (for `after` hooks). */
export function closeAll(clients) {
  for (const c of clients.splice(0)) c.disconnect();
}
