// Banter's browser SDK: accounts over HTTP, one reconnecting WebSocket, and the client-side state
// (conversations, ordered messages, the outbox, profiles, presence, rooms) that the UI renders.
// No DOM access: it runs in browsers and in node (20+, with --experimental-websocket).
//
// Guarantees (the same as the Rust SDK's Messenger, crates/client/src/messenger.rs):
//  - every message of a loaded conversation appears once and in seq order, whatever order pushes
//    arrive in (a gap is filled with `sync` before anything after it is shown);
//  - after every (re)connect: `conversations`, then `sync` of each loaded conversation behind;
//  - a sent message waits in a persisted outbox until acknowledged, and every retry (reconnect,
//    reload) reuses its client_msg_id, so the server never stores it twice.

import { BanterError, defaultStorage, memoryStorage, newId } from './sdk/util.js';
import { Account } from './sdk/account.js';
import { Connection } from './sdk/connection.js';
import { Outbox, OUTBOX_LIMIT } from './sdk/outbox.js';
import { ConversationStore } from './sdk/store.js';
import { People } from './sdk/people.js';
import { Rooms } from './sdk/rooms.js';
import { Groups } from './sdk/groups.js';
import { Media, kindFor } from './sdk/media.js';

export { BanterError, memoryStorage, OUTBOX_LIMIT, kindFor };

const TYPING_THROTTLE_MS = 3000;
/** Attempts an edit or recall makes across lost connections (same client_msg_id each time). */
const EDIT_ATTEMPTS = 3;

/**
 * The Banter client. Events (CustomEvent, payload in `event.detail`): 'state' {state},
 * 'hello' {hello}, 'conversations' {}, 'messages' {conversation}, 'read' {conversation, user, seq},
 * 'typing' {conversation, user, typing}, 'profile' {profile}, 'presence' {user, online, last_seen},
 * 'friend' {event, from, to}, 'room' {room}, 'signedout' {reason}, 'error' {error}.
 */
export class BanterClient extends EventTarget {
  #account;
  #conn;
  #typingSent = new Map();
  /** conversations messages() already opened in the background on this connection */
  #autoOpened = new Set();
  #outbox;
  #store;
  #people;
  #rooms;
  #groups;
  #media;

  constructor({
    baseUrl = globalThis.location?.origin ?? '',
    storage = defaultStorage(),
    WebSocket = globalThis.WebSocket,
    fetch = globalThis.fetch,
  } = {}) {
    super();
    const base = String(baseUrl).replace(/\/+$/, '');
    const fetchFn = (...args) => fetch(...args);
    this.#account = new Account({
      baseUrl: base, storage, fetch: fetchFn, refused: (code) => this.#signOut(code),
    });
    this.#conn = new Connection({
      url: `${base.replace(/^http/, 'ws')}/v1/ws`,
      token: () => this.#session?.token,
      WebSocket,
      state: (state) => this.#emit('state', { state }),
      hello: (hello) => this.#onHello(hello),
      event: (frame) => this.#event(frame),
      error: (error) => this.#emit('error', { error }),
      revoked: () => this.#signOut('revoked'),
      // A refused upgrade (401) is invisible to browsers: ask over HTTP whether the token works.
      // A 401 there reaches #signOut through the account's `refused`.
      checkAuth: () => this.#account.http('GET', '/v1/me'),
    });
    const host = {
      request: (type, fields, opts) => this.request(type, fields, opts),
      me: () => this.#session?.user?.id,
      emit: (type, detail) => this.#emit(type, detail),
    };
    this.#people = new People(host);
    this.#rooms = new Rooms(host);
    this.#store = new ConversationStore({
      ...host,
      delivered: (m) => this.#delivered(m),
      spoke: (conversation, user) => this.#people.stopped(conversation, user),
    });
    this.#groups = new Groups({ request: host.request, store: this.#store });
    this.#media = new Media({
      baseUrl: base,
      token: () => this.#session?.token,
      fetch: fetchFn,
      refused: (token, code) => { if (this.#session?.token === token) this.#signOut(code); },
    });
    this.#outbox = new Outbox(storage, {
      request: host.request,
      connected: () => this.#conn.state === 'connected',
      acked: (entry, ack) => this.#acked(entry, ack),
      changed: (entry) => this.#entryChanged(entry),
    });
  }

  // ---- accounts -----------------------------------------------------------------------------

  /** Creates an account (does not log in). @returns {Promise<{id, username, created_at}>} */
  register(username, password) {
    return this.#account.register(username, password);
  }

  /**
   * Logs in and saves the session in storage.
   * @returns {Promise<{token, session_id, expires_at, user}>}
   */
  async login(username, password, device) {
    const result = await this.#account.logIn(username, password, device);
    if (this.#session) this.#forget();
    this.#account.adopt(result);
    this.#outbox.open(result.user.id);
    return result;
  }

  /** Takes up a session saved in storage (does not connect). @returns {boolean} whether one exists */
  restore() {
    if (this.#session) return true;
    if (!this.#account.restore()) return false;
    this.#outbox.open(this.#session.user.id);
    return true;
  }

  /**
   * Logs out: ends the session on the server, deletes the saved session and this user's outbox,
   * closes the socket and emits 'signedout' {reason: 'logout'}.
   */
  async logout() {
    if (!this.#session) return;
    try {
      await this.#account.logOut();
    } catch {
      // Already ended, or unreachable: forget it locally all the same.
    }
    this.#outbox.clear();
    this.#signOut('logout');
  }

  /** The caller's live sessions (devices). */
  sessions() {
    return this.#account.sessions();
  }

  /** Ends one of the caller's sessions; its sockets close with 4001. */
  revokeSession(id) {
    return this.#account.revokeSession(id);
  }

  /** Changes the password; every other session is revoked. */
  changePassword(oldPassword, newPassword) {
    return this.#account.changePassword(oldPassword, newPassword);
  }

  /** Users whose username starts with `prefix`. @returns {Promise<Array<{id, username, created_at}>>} */
  async searchUsers(prefix, limit = 20) {
    const users = await this.#account.searchUsers(prefix, limit);
    for (const u of users) this.#people.knowUsername(u.id, u.username);
    return users;
  }

  /** The logged-in user {id, username, created_at} as a plain object, or null. */
  get me() {
    return this.#session?.user ?? null;
  }

  get loggedIn() {
    return this.#session !== null;
  }

  /** The current session's id, or null. */
  get sessionId() {
    return this.#session?.session_id ?? null;
  }

  // ---- connection ---------------------------------------------------------------------------

  /** 'offline' | 'connecting' | 'connected' | 'reconnecting' */
  get state() {
    return this.#conn.state;
  }

  /** hello.limits of the current (or last) connection, or null. */
  get limits() {
    return this.#conn.hello?.limits ?? null;
  }

  /**
   * Opens the socket and keeps it open: reconnects with exponential backoff and jitter (0.5 s
   * doubling to 30 s, reset after a hello), at once on the 'online' event; on 'offline' the
   * socket is given up at once and no retry runs until 'online'. Stops on close 4001 or when the
   * server refuses the token (emits 'signedout').
   */
  connect() {
    if (!this.#session) throw new BanterError('unauthorized', 'not logged in');
    this.#conn.start();
  }

  /** Closes the socket and stops reconnecting. Requests in flight fail with 'disconnected'. */
  disconnect() {
    this.#conn.stop();
  }

  /**
   * Sends a request frame and resolves with its result. Made while not connected, it waits for
   * the connection (up to `timeout` ms). Rejects with BanterError: the server's code, or
   * 'disconnected' (retryable) if the connection closed before the reply, or 'timeout'.
   * @returns {Promise<object>}
   */
  request(type, fields = {}, options = {}) {
    if (!this.#session) return Promise.reject(new BanterError('unauthorized', 'not logged in'));
    return this.#conn.request(type, fields, options);
  }

  #onHello(hello) {
    this.#autoOpened.clear();
    this.#emit('hello', { hello });
    this.#outbox.pump();
    this.#rooms.rejoinAll();
    this.#store.catchUp().catch((error) => {
      if (!error?.retryable) this.#emit('error', { error });
    });
  }

  #event(f) {
    switch (f.type) {
      case 'message':
        return this.#store.onPush(f.message);
      case 'read':
        return this.#store.onRead(f);
      case 'typing':
        if (f.user !== this.#session?.user?.id) this.#people.onTyping(f);
        return undefined;
      case 'profile':
        return this.#people.put([f.profile]);
      case 'presence':
        return this.#people.onPresence(f);
      case 'friend':
        return this.#emit('friend', { event: f.event, from: f.from, to: f.to });
      case 'room_message':
        return this.#rooms.onMessage(f);
      case 'room_occupancy':
        return this.#rooms.onOccupancy(f);
      default:
        return undefined; // unknown events are ignored, like unknown fields
    }
  }

  /** Ends the session locally: no socket, no saved session, no state; emits 'signedout'. */
  #signOut(reason) {
    if (!this.#session) return;
    this.#account.unsave();
    this.#forget();
    this.#emit('signedout', { reason });
  }

  /** Drops the socket and all state of the current session (storage is left alone). */
  #forget() {
    this.#conn.abandon(new BanterError('unauthorized', 'signed out'));
    this.#account.forget();
    this.#outbox.close();
    this.#store.reset();
    this.#people.reset();
    this.#rooms.reset();
    this.#typingSent.clear();
    this.#autoOpened.clear();
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** {token, session_id, expires_at, user} while logged in, else null (the account owns it). */
  get #session() {
    return this.#account.session;
  }

  // ---- conversations and messages -------------------------------------------------------------

  /** Conversations, most recently active first. */
  conversations() {
    return this.#store.list();
  }

  /** One conversation's summary, or undefined. */
  conversation(id) {
    return this.#store.get(id);
  }

  /** The direct conversation with `userId`, or undefined if there is none yet. */
  directConversation(userId) {
    return this.#store.direct(userId);
  }

  /**
   * The loaded messages of a conversation in seq order (text and system entries; edits and
   * recalls applied), then its outbox entries ({client_msg_id, text, state, error?, pending, ts}).
   * For a conversation nothing was loaded for yet, starts openConversation() in the background.
   */
  messages(conversationId) {
    const s = this.#store.get(conversationId);
    if (s && this.state === 'connected' && !this.#store.isOpen(conversationId) && !this.#autoOpened.has(conversationId)) {
      this.#autoOpened.add(conversationId);
      this.#store.open(conversationId).catch((error) => {
        if (!error?.retryable) this.#emit('error', { error });
      });
    }
    const peer = s?.kind === 'direct' ? s.peer : undefined;
    return [...this.#store.loaded(conversationId), ...this.#outbox.forConversation(conversationId, peer)];
  }

  /** True when older messages than the loaded ones exist. */
  hasOlder(conversationId) {
    return this.#store.hasOlder(conversationId);
  }

  /** Loads up to `limit` messages before the lowest loaded one. @returns {Promise<object[]>} those added */
  loadOlder(conversationId, limit = 50) {
    return this.#store.loadOlder(conversationId, limit);
  }

  /** Loads the newest page if nothing is loaded yet (and, for a direct conversation, the receipts). */
  openConversation(id) {
    return this.#store.open(id);
  }

  /**
   * Queues a text message (synchronously: it is in the outbox, persisted, when this returns) and
   * sends it when connected. Exactly one of `to` (a user: opens the direct conversation) and
   * `conversation`. @returns {string} its client_msg_id
   * @throws {BanterError} 'outbox_full', 'empty_message', 'bad_request', 'unauthorized'
   */
  send({ to, conversation, text, attachment, sticker } = {}) {
    if (!this.#session) throw new BanterError('unauthorized', 'not logged in');
    if (Boolean(to) === Boolean(conversation)) {
      throw new BanterError('bad_request', 'give exactly one of `to` and `conversation`');
    }
    if (typeof text !== 'string' || (!text.trim() && !attachment && !sticker)) {
      throw new BanterError('empty_message', 'the message is empty');
    }
    const known = to ? this.#store.direct(to) : undefined;
    const target = known ? { conversation: known.id } : { to, conversation };
    const entry = this.#outbox.add({ ...target, text, attachment, sticker });
    this.#entryChanged(entry);
    return entry.client_msg_id;
  }

  /**
   * Queues a file that was uploaded (or passed the pre-check) as a message, like send(): it
   * waits in the outbox and a retry sends the same id again, never the bytes.
   * `info` is the MediaInfo from `media.prepare`/`media.upload`; `kind` defaults to kindFor(info).
   * @returns {string} its client_msg_id
   */
  sendAttachment({ to, conversation, info, kind = kindFor(info), caption = '', name, duration_ms: durationMs }) {
    if (!info?.id) throw new BanterError('bad_request', 'no uploaded file');
    const attachment = {
      kind, id: info.id, name: name ?? info.name, type: info.type, size: info.size, width: info.width,
      height: info.height, thumbnail: Boolean(info.thumbnail), color: info.color,
      duration_ms: Number.isFinite(durationMs) ? Math.round(durationMs) : undefined,
    };
    return this.send({ to, conversation, text: caption, attachment });
  }

  /** Queues a sticker ({id, name?, emoji?} from stickers()) as a message. @returns {string} its client_msg_id */
  sendSticker({ to, conversation, sticker }) {
    return this.send({ to, conversation, text: '', sticker });
  }

  /** The server's built-in stickers, [{id, name, emoji}] (no token needed). */
  async stickers() {
    return (await this.#account.http('GET', '/v1/stickers', undefined, { auth: false })).stickers ?? [];
  }

  /** Uploads (`upload`, `prepare` with the hash pre-check) and downloads (`download`) of files. */
  get media() {
    return this.#media;
  }

  /** Sends a failed outbox entry again (same client_msg_id). */
  retry(clientMsgId) {
    return this.#outbox.retry(clientMsgId);
  }

  /** Drops an outbox entry. */
  discard(clientMsgId) {
    const entry = this.#outbox.remove(clientMsgId);
    if (entry) this.#entryChanged(entry);
    return Boolean(entry);
  }

  /** Every outbox entry, oldest first. */
  outbox() {
    return this.#outbox.all();
  }

  /** Moves the read cursor to `seq` (default: the last message); updates unread at once. */
  markRead(conversationId, seq) {
    return this.#store.markRead(conversationId, seq);
  }

  /** Every member's read cursor. @returns {Promise<Array<{user, read_seq}>>} */
  receipts(conversationId) {
    return this.#store.receipts(conversationId);
  }

  /** Replaces the text of one of our messages. */
  async edit(conversationId, seq, text) {
    const ack = await this.#retrying('edit', { conversation: conversationId, seq, text, client_msg_id: newId() });
    this.#own(ack, { kind: 'edit', text, ref_seq: seq });
    return ack;
  }

  /** Recalls one of our messages (within the recall window). */
  async recall(conversationId, seq) {
    const ack = await this.#retrying('recall', { conversation: conversationId, seq, client_msg_id: newId() });
    this.#own(ack, { kind: 'recall', text: '', ref_seq: seq });
    return ack;
  }

  /** Tells the others we are typing (at most once per 3 s per conversation; errors ignored). */
  typing(conversationId) {
    if (this.state !== 'connected') return;
    const now = Date.now();
    if (now - (this.#typingSent.get(conversationId) ?? -Infinity) < TYPING_THROTTLE_MS) return;
    this.#typingSent.set(conversationId, now);
    this.request('typing', { conversation: conversationId }).catch(() => {});
  }

  /** User ids typing in the conversation now (each expires 5 s after their last typing event). */
  typers(conversationId) {
    return this.#people.typers(conversationId);
  }

  /** The other side's read cursor in a direct conversation (0 if unknown). */
  peerReadSeq(conversationId) {
    return this.#store.peerReadSeq(conversationId);
  }

  async #retrying(type, fields) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.request(type, fields);
      } catch (err) {
        if (err?.code !== 'disconnected' || attempt >= EDIT_ATTEMPTS) throw err;
      }
    }
  }

  #own(ack, fields) {
    this.#store.onOwn({
      id: ack.message_id, conversation: ack.conversation, seq: ack.seq, sender: this.#session?.user?.id,
      client_msg_id: '', ts: ack.ts, ...fields,
    });
  }

  #acked(entry, ack) {
    if (entry.to) this.#outbox.learn(entry.to, ack.conversation);
    this.#store.onOwn(
      {
        id: ack.message_id, conversation: ack.conversation, seq: ack.seq, sender: this.#session?.user?.id,
        client_msg_id: entry.client_msg_id, kind: 'text', text: entry.text, ts: ack.ts,
        ...(entry.attachment ? { attachment: { ...entry.attachment, caption: entry.text } } : {}),
        ...(entry.sticker ? { sticker: entry.sticker } : {}),
      },
      { peer: entry.to },
    );
  }

  /** One of our messages reached us through sync: its outbox entry (if any) is done. */
  #delivered(m) {
    const entry = this.#outbox.get(m.client_msg_id);
    if (entry && (entry.conversation === m.conversation || entry.to)) {
      this.#outbox.remove(m.client_msg_id);
      if (entry.to) this.#outbox.learn(entry.to, m.conversation);
    }
  }

  #entryChanged(entry) {
    const conversation = entry.conversation ?? this.#store.direct(entry.to)?.id ?? null;
    this.#emit('messages', { conversation, to: entry.to });
  }

  // ---- people -------------------------------------------------------------------------------

  /**
   * The cached profile {id, username, display_name, avatar_url, status_text}, or undefined (and a
   * batched `profiles` load starts; 'profile' is emitted when it arrives).
   */
  profile(id) {
    return this.#people.user(id);
  }

  /** display_name, else username, else '…' (and loads the profile). */
  displayName(id) {
    if (id && id === this.#session?.user?.id && !this.#people.user(id)) return this.#session.user.username;
    this.#people.user(id);
    const name = this.#people.displayName(id);
    return name !== '…' ? name : this.#store.direct(id)?.peer_username || name;
  }

  /** true/false once known (presence push or loadPresence), else undefined. */
  online(id) {
    return this.#people.online(id);
  }

  /** When the user's last device disconnected (ms), if known. */
  lastSeen(id) {
    return this.#people.lastSeen(id);
  }

  /** Asks for the presence of `ids` (contacts only; others are left out). */
  loadPresence(ids) {
    return this.#people.loadPresence(ids);
  }

  /** Changes our profile; absent fields keep their value. @returns {Promise<object>} the profile */
  async updateProfile(fields) {
    const profile = await this.request('profile_update', fields);
    this.#people.put([profile]);
    return profile;
  }

  /** @returns {Promise<{friends, incoming, outgoing, blocked}>} lists of profiles */
  async friends() {
    const result = await this.request('friends');
    this.#people.put([...result.friends, ...result.incoming, ...result.outgoing, ...result.blocked]);
    return result;
  }

  /** Asks `user` to be friends. @returns {Promise<{status: 'pending'|'friends'}>} */
  friendRequest(user) { return this.request('friend_request', { user }); }
  /** Accepts `user`'s request. */
  friendAccept(user) { return this.request('friend_accept', { user }); }
  /** Declines `user`'s request. */
  friendDecline(user) { return this.request('friend_decline', { user }); }
  /** Withdraws our request to `user`. */
  friendCancel(user) { return this.request('friend_cancel', { user }); }
  /** Ends the friendship with `user`. */
  friendRemove(user) { return this.request('friend_remove', { user }); }
  /** Blocks `user` (ends friendship and requests; no direct messages either way). */
  block(user) { return this.request('block', { user }); }
  /** Lifts a block. */
  unblock(user) { return this.request('unblock', { user }); }

  // ---- groups -------------------------------------------------------------------------------

  /** The caller's groups. @returns {Promise<object[]>} group objects (not wrapped in {groups}) */
  groups() { return this.#groups.list(); }
  /** Creates a group; its conversation is added to the list. @returns {Promise<object>} the group */
  groupCreate(fields) { return this.#groups.create(fields); }
  /** Adds users to a group. @returns {Promise<{added: string[]}>} */
  groupAdd(group, users) { return this.#groups.add(group, users); }
  /** Joins a public group; its conversation is added to the list. @returns {Promise<object>} the group */
  groupJoin(group) { return this.#groups.join(group); }
  /** Leaves a group (not its owner); the conversation is marked `left`. */
  groupLeave(group) { return this.#groups.leave(group); }
  /** Removes a member (owner: anyone; admin: plain members). */
  groupRemove(group, user) { return this.#groups.remove(group, user); }
  /** Sets a member's role ('admin' or 'member'; owner only). */
  groupRole(group, user, role) { return this.#groups.role(group, user, role); }
  /** Hands ownership to a member (the owner becomes admin). */
  groupTransfer(group, user) { return this.#groups.transfer(group, user); }
  /** Changes name and/or description (absent ones stay). @returns {Promise<object>} the group */
  groupUpdate(group, fields) { return this.#groups.update(group, fields); }
  /** Dissolves a group (owner only); the conversation is marked `dissolved`, history stays readable. */
  groupDissolve(group) { return this.#groups.dissolve(group); }
  /** @returns {Promise<Array<{user, role, joined_seq, read_seq}>>} (not wrapped in {members}) */
  groupMembers(group) { return this.#groups.members(group); }

  // ---- rooms --------------------------------------------------------------------------------

  /** Enters a room (re-entered automatically after a reconnect). @returns {Promise<{room, count, recent}>} */
  roomJoin(name) {
    return this.#rooms.join(name);
  }

  /** Leaves a room and forgets its messages. */
  roomLeave(name) {
    return this.#rooms.leave(name);
  }

  /** Sends into a room we are in. @returns {Promise<{room, seq, message_id, ts, duplicate}>} */
  roomSend(name, text) {
    return this.#rooms.send(name, text);
  }

  /** Messages seen in the room (its recent window and everything since), oldest first. */
  roomMessages(name) {
    return this.#rooms.messages(name);
  }

  /** Connections in the room, as last reported. */
  roomCount(name) {
    return this.#rooms.count(name);
  }
}
