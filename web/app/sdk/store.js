// Conversations and their messages, kept in order and exactly once.
//
// A conversation's messages are loaded on demand (openConversation loads the newest page,
// loadOlder pages back). Once anything is loaded the conversation is "held": the store keeps
// `held`, the highest seq it has applied, and follows PROTOCOL.md "Ordering, gaps and
// reconnecting" for it:
//   - an entry with seq == held + 1 is applied, then any early entries that now follow;
//   - one further ahead is kept aside (early) and a `sync` from `held` fills the gap first;
//   - one at or below `held` is a duplicate and dropped.
// Pushes, sync pages and our own acks all go through the same `#accept`, and at most one sync
// loop runs per conversation, so messages are applied once and in order even when pushes arrive
// during a sync. Conversations nothing was loaded for only have their summary (last_seq, unread,
// preview) kept up to date; opening them later loads what is there.
//
// Unread is "entries past our read cursor". As on the server (PROTOCOL.md, `read`), every entry
// we make moves our own read cursor to it: one has read what one writes and what came before it,
// so our own messages are never unread and need no `read` request. Likewise, in a direct
// conversation a message from the peer at seq n is a read receipt up to n.

const SYNC_PAGE = 200;

/** System events that take the user out of a group. */
const GONE = new Set(['member_removed', 'member_left']);

export class ConversationStore {
  #host;
  /** id -> summary {id, kind, peer?, peer_username?, name?, last_seq, read_seq, unread, updated_at, last_message?, left, dissolved} */
  #summaries = new Map();
  /** id -> thread {msgs, bySeq, low, held, hasOlder, early, filling, refill, opening, olderLoading} */
  #threads = new Map();
  /** id -> the peer's read cursor in a direct conversation */
  #peerRead = new Map();
  #listLoaded = false;
  #refreshing = null;
  #refreshAgain = false;
  /** id -> highest seq whose unread contribution is counted (by the server's list or by us) */
  #counted = new Map();

  /**
   * @param {{request: Function, me: () => string|undefined, emit: (type: string, detail: object) => void,
   *          delivered: (message: object) => void, spoke: (conversation: string, user: string) => void}} host
   */
  constructor(host) {
    this.#host = host;
  }

  /** Forgets everything (log out, another user). */
  reset() {
    this.#summaries.clear();
    this.#threads.clear();
    this.#peerRead.clear();
    this.#counted.clear();
    this.#listLoaded = false;
    this.#refreshAgain = false;
  }

  list() {
    return [...this.#summaries.values()].sort((a, b) => b.updated_at - a.updated_at);
  }

  get(id) {
    return this.#summaries.get(id);
  }

  /** The direct conversation with `userId`, if known. */
  direct(userId) {
    for (const s of this.#summaries.values()) if (s.kind === 'direct' && s.peer === userId) return s;
    return undefined;
  }

  /** Loaded text and system entries of `id`, sorted by seq (a new array). */
  loaded(id) {
    const t = this.#threads.get(id);
    return t ? [...t.msgs] : [];
  }

  /** True when `id` has loaded messages (or is loading them). */
  isOpen(id) {
    const t = this.#threads.get(id);
    return Boolean(t && (t.held !== null || t.opening));
  }

  hasOlder(id) {
    const t = this.#threads.get(id);
    if (!t || t.held === null) return Boolean(this.#summaries.get(id)?.last_seq);
    return t.hasOlder;
  }

  heldSeq(id) {
    return this.#threads.get(id)?.held ?? null;
  }

  peerReadSeq(id) {
    return this.#peerRead.get(id) ?? 0;
  }

  // ---- loading ------------------------------------------------------------------------------

  /** Loads the newest page of `id` if nothing is loaded yet, and its receipts (direct). */
  async open(id, limit = 50) {
    let t = this.#thread(id);
    if (t.held === null) {
      if (!t.opening) {
        t.opening = (async () => {
          try {
            const page = await this.#host.request('history', { conversation: id, limit });
            t = this.#thread(id);
            if (t.held === null) {
              const seqs = page.messages.map((m) => m.seq);
              const last = seqs.length ? seqs[seqs.length - 1] : (this.#summaries.get(id)?.last_seq ?? 0);
              t.low = seqs.length ? seqs[0] : last + 1;
              t.held = last;
              t.hasOlder = page.has_more;
              for (const m of page.messages) if (isShown(m)) this.#insert(t, m);
              const s = this.#summaries.get(id);
              if (s) {
                this.#recount(s);
                this.#host.emit('conversations', {});
              }
            } else {
              // Something started the thread meanwhile: older entries go before, newer through accept.
              this.#older(t, page);
              for (const m of page.messages) if (m.seq > t.held) this.#accept(t, m);
            }
            this.#host.emit('messages', { conversation: id });
          } finally {
            t.opening = null;
          }
          if ((this.#summaries.get(id)?.last_seq ?? 0) > t.held) await this.fill(id);
        })();
      }
      await t.opening;
    }
    if (this.#summaries.get(id)?.kind === 'direct' && !t.receipts) {
      t.receipts = true;
      await this.receipts(id).catch(() => { t.receipts = false; });
    }
  }

  /** Loads up to `limit` entries before the lowest loaded seq. Returns the messages added. */
  async loadOlder(id, limit = 50) {
    const t = this.#threads.get(id);
    if (!t || t.held === null) {
      await this.open(id, limit);
      return this.loaded(id);
    }
    if (!t.hasOlder) return [];
    if (!t.olderLoading) {
      t.olderLoading = (async () => {
        try {
          const page = await this.#host.request('history', { conversation: id, before_seq: t.low, limit });
          const added = this.#older(t, page);
          this.#host.emit('messages', { conversation: id });
          return added;
        } finally {
          t.olderLoading = null;
        }
      })();
    }
    return t.olderLoading;
  }

  /** Puts a history page below what is loaded. */
  #older(t, page) {
    const fresh = page.messages.filter((m) => m.seq < t.low);
    if (!fresh.length) {
      t.hasOlder = false;
      return [];
    }
    const shown = fresh.filter(isShown);
    for (const m of shown) t.bySeq.set(m.seq, m);
    t.msgs.unshift(...shown);
    t.low = fresh[0].seq;
    t.hasOlder = page.has_more;
    return shown;
  }

  /** Syncs `id` from what is held until the server has no more. One loop per conversation. */
  fill(id) {
    const t = this.#threads.get(id);
    if (!t || t.held === null) return Promise.resolve();
    if (t.filling) {
      t.refill = true;
      return t.filling;
    }
    t.filling = (async () => {
      try {
        do {
          t.refill = false;
          for (;;) {
            const page = await this.#host.request('sync', {
              conversation: id, after_seq: t.held, limit: SYNC_PAGE,
            });
            const before = t.held;
            for (const m of page.messages) {
              this.#touch(m);
              this.#accept(t, m);
            }
            if (t.held !== before) {
              this.#host.emit('messages', { conversation: id });
              this.#host.emit('conversations', {});
            }
            if (!page.has_more || !page.messages.length) break;
          }
        } while (t.refill);
      } catch (err) {
        if (err?.code === 'unknown_conversation') this.#gone(id);
        else if (!err?.retryable) this.#host.emit('error', { error: err });
        // A lost connection is caught up by the next connect.
      } finally {
        t.filling = null;
      }
    })();
    return t.filling;
  }

  /** After a (re)connect: the conversation list, then a sync of every held conversation behind it. */
  async catchUp() {
    await this.refresh();
    const work = [];
    for (const [id, t] of this.#threads) {
      const s = this.#summaries.get(id);
      if (t.held === null || !s || s.left) continue;
      if (s.last_seq > t.held || t.early.size) work.push(this.fill(id));
      if (s.kind === 'direct') {
        t.receipts = true;
        work.push(this.receipts(id).catch(() => {}));
      }
    }
    await Promise.all(work);
  }

  /** Reloads the conversation list (coalesced: a call during a load makes one more load). */
  refresh() {
    if (this.#refreshing) {
      this.#refreshAgain = true;
      return this.#refreshing;
    }
    this.#refreshing = (async () => {
      try {
        do {
          this.#refreshAgain = false;
          const { conversations } = await this.#host.request('conversations');
          this.#merge(conversations);
        } while (this.#refreshAgain);
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  #merge(list) {
    const seen = new Set();
    for (const c of list) {
      seen.add(c.id);
      const s = this.#summaries.get(c.id);
      if (!s) {
        this.#summaries.set(c.id, { ...c, left: false, dissolved: false });
        this.#counted.set(c.id, c.last_seq);
      } else {
        const { last_seq, read_seq, unread, updated_at, last_message, ...fixed } = c;
        Object.assign(s, fixed);
        if (last_seq >= s.last_seq) Object.assign(s, { last_seq, unread, updated_at, last_message });
        // The server's unread covers everything up to its last_seq.
        this.#counted.set(c.id, Math.max(this.#counted.get(c.id) ?? 0, last_seq));
        s.read_seq = Math.max(s.read_seq, read_seq);
        s.unread = Math.min(s.unread, Math.max(0, s.last_seq - s.read_seq));
        s.left = false;
      }
      const s2 = this.#summaries.get(c.id);
      if (s2.last_message) this.#flags(s2, s2.last_message);
      this.#recount(s2);
    }
    // A group we were removed from while away is no longer listed.
    if (this.#listLoaded) {
      for (const s of this.#summaries.values()) {
        if (!seen.has(s.id) && s.kind === 'group' && !s.left) s.left = true;
      }
    }
    this.#listLoaded = true;
    this.#host.emit('conversations', {});
  }

  // ---- incoming -----------------------------------------------------------------------------

  /** A `message` push. */
  onPush(m) {
    const known = this.#summaries.has(m.conversation);
    let t = this.#threads.get(m.conversation);
    if (!known && m.seq === 1 && (!t || t.held === null)) {
      // A new conversation: nothing came before this, so it is held from the start.
      t = this.#thread(m.conversation);
      t.held = 0;
      t.low = 1;
    }
    this.#touch(m);
    if (t && t.held !== null) {
      const before = t.held;
      if (this.#accept(t, m)) this.fill(m.conversation);
      if (t.held !== before) this.#host.emit('messages', { conversation: m.conversation });
    }
    if (m.sender !== this.#host.me()) this.#host.spoke(m.conversation, m.sender);
    if (!known) this.refresh().catch(() => {});
    this.#host.emit('conversations', {});
  }

  /** Our own entry, acknowledged by the server (a send, edit or recall on this connection). */
  onOwn(m, { peer } = {}) {
    let s = this.#summaries.get(m.conversation);
    if (!s) {
      s = {
        id: m.conversation, kind: peer ? 'direct' : 'group', peer, last_seq: 0, read_seq: 0,
        unread: 0, updated_at: m.ts, left: false, dissolved: false,
      };
      this.#summaries.set(m.conversation, s);
      this.refresh().catch(() => {});
    }
    let t = this.#threads.get(m.conversation);
    if (m.seq === 1 && (!t || t.held === null)) {
      t = this.#thread(m.conversation);
      t.held = 0;
      t.low = 1;
    }
    this.#touch(m);
    if (t && t.held !== null && this.#accept(t, m)) this.fill(m.conversation);
    this.#host.emit('messages', { conversation: m.conversation });
    this.#host.emit('conversations', {});
  }

  /** A `read` event: ours from another device, or the peer's in a direct conversation. */
  onRead({ conversation, user, seq }) {
    if (user === this.#host.me()) {
      const s = this.#summaries.get(conversation);
      if (s && seq > s.read_seq) {
        s.read_seq = seq;
        s.unread = Math.min(s.unread, Math.max(0, s.last_seq - seq));
        this.#recount(s);
        this.#host.emit('conversations', {});
      }
    } else if (seq > this.peerReadSeq(conversation)) {
      this.#peerRead.set(conversation, seq);
    }
    this.#host.emit('read', { conversation, user, seq });
  }

  /** Every member's read cursor; initialises peerReadSeq of a direct conversation. */
  async receipts(id) {
    const { receipts } = await this.#host.request('receipts', { conversation: id });
    const me = this.#host.me();
    for (const r of receipts) {
      if (r.user !== me && r.read_seq > this.peerReadSeq(id)) {
        this.#peerRead.set(id, r.read_seq);
        this.#host.emit('read', { conversation: id, user: r.user, seq: r.read_seq });
      }
    }
    return receipts;
  }

  /** Moves our read cursor (optimistically here, then on the server). */
  async markRead(id, seq) {
    const s = this.#summaries.get(id);
    if (s) {
      seq = Math.min(seq ?? s.last_seq, s.last_seq);
      if (seq <= s.read_seq) return { read_seq: s.read_seq };
      s.read_seq = seq;
      s.unread = Math.min(s.unread, Math.max(0, s.last_seq - seq));
      this.#recount(s);
      this.#host.emit('conversations', {});
    }
    const result = await this.#host.request('read', { conversation: id, seq });
    if (s && result.read_seq > s.read_seq) s.read_seq = result.read_seq;
    return result;
  }

  /** Marks a group left or dissolved (our own leave/dissolve, or a system entry). */
  mark(id, flag) {
    const s = this.#summaries.get(id);
    if (s && !s[flag]) {
      s[flag] = true;
      this.#host.emit('conversations', {});
    }
  }

  // ---- internals ----------------------------------------------------------------------------

  #thread(id) {
    let t = this.#threads.get(id);
    if (!t) {
      t = {
        msgs: [], bySeq: new Map(), low: null, held: null, hasOlder: false, early: new Map(),
        filling: null, refill: false, opening: null, olderLoading: null, receipts: false,
      };
      this.#threads.set(id, t);
    }
    return t;
  }

  /** Applies `m` if it is next, keeps it aside if early; returns true when it revealed a gap. */
  #accept(t, m) {
    if (m.seq <= t.held) return false;
    if (m.seq > t.held + 1) {
      t.early.set(m.seq, m);
      return true;
    }
    this.#apply(t, m);
    for (let next; (next = t.early.get(t.held + 1)); ) {
      t.early.delete(next.seq);
      this.#apply(t, next);
    }
    for (const seq of t.early.keys()) if (seq <= t.held) t.early.delete(seq);
    return false;
  }

  #apply(t, m) {
    t.held = m.seq;
    const kind = m.kind ?? 'text';
    if (kind === 'edit' || kind === 'recall') {
      const target = t.bySeq.get(m.ref_seq);
      if (target) {
        if (kind === 'edit') {
          target.text = m.text;
          target.edited_at = m.edited_at ?? m.ts;
        } else {
          target.recalled = true;
          target.text = '';
          delete target.attachment;
          delete target.sticker;
        }
      }
    } else {
      this.#insert(t, m);
    }
    const s = this.#summaries.get(m.conversation);
    if (s) this.#count(s, m);
    if (m.sender === this.#host.me() && m.client_msg_id) this.#host.delivered(m);
  }

  #insert(t, m) {
    t.bySeq.set(m.seq, m);
    t.msgs.push(m);
  }

  /**
   * Updates the summary from an entry (push, sync page or own ack): last_seq, time, preview.
   * Unread and group flags are counted in seq order by #apply for held conversations, and here,
   * in arrival order, for the others.
   */
  #touch(m) {
    const s = this.#summaries.get(m.conversation);
    if (!s) return;
    const kind = m.kind ?? 'text';
    if (m.seq > s.last_seq) {
      s.last_seq = m.seq;
      s.updated_at = Math.max(s.updated_at ?? 0, m.ts);
      if (isShown(m)) s.last_message = m;
    }
    if ((kind === 'edit' || kind === 'recall') && s.last_message?.seq === m.ref_seq && s.last_message !== m) {
      if (kind === 'edit') Object.assign(s.last_message, { text: m.text, edited_at: m.ts });
      else {
        Object.assign(s.last_message, { text: '', recalled: true });
        delete s.last_message.attachment;
        delete s.last_message.sticker;
      }
    }
    // In a direct conversation, the peer's entry at seq n is a read receipt up to n.
    if (s.kind === 'direct' && m.sender === s.peer && m.seq > this.peerReadSeq(s.id)) {
      this.#peerRead.set(s.id, m.seq);
      this.#host.emit('read', { conversation: s.id, user: m.sender, seq: m.seq });
    }
    const t = this.#threads.get(m.conversation);
    if (!t || t.held === null) this.#count(s, m);
  }

  /**
   * Counts `m` once: unread if from someone else and not read; our own entry moves our read
   * cursor to it (as the server does); and the group flags it carries.
   */
  #count(s, m) {
    if (m.seq <= (this.#counted.get(s.id) ?? 0)) return;
    this.#counted.set(s.id, m.seq);
    if (m.sender === this.#host.me()) {
      if (m.seq > s.read_seq) {
        s.read_seq = m.seq;
        s.unread = Math.min(s.unread, Math.max(0, s.last_seq - m.seq));
        this.#recount(s);
      }
    } else if (isShown(m) && m.seq > s.read_seq) {
      s.unread += 1;
    }
    this.#flags(s, m);
  }

  /**
   * The server counts every entry past the read cursor, ours included. When the loaded messages
   * cover that range, count exactly: entries from others only.
   */
  #recount(s) {
    const t = this.#threads.get(s.id);
    if (!t || t.held === null || t.held < s.last_seq || t.low > s.read_seq + 1) return;
    const me = this.#host.me();
    s.unread = t.msgs.filter((m) => m.seq > s.read_seq && m.sender !== me).length;
  }

  /** Group flags and name from a system entry. */
  #flags(s, m) {
    if (m.kind !== 'system' || !m.event) return;
    const e = m.event;
    const me = this.#host.me();
    if (GONE.has(e.event) && e.user === me) s.left = true;
    else if (e.event === 'group_dissolved') s.dissolved = true;
    else if (e.event === 'member_joined' && e.user === me) s.left = false;
    else if (e.event === 'members_added' && e.users?.includes(me)) s.left = false;
    else if (e.event === 'group_updated' && e.name) s.name = e.name;
  }

  #gone(id) {
    const s = this.#summaries.get(id);
    if (s?.kind === 'group') this.mark(id, 'left');
  }
}

/** Entries that appear in a conversation's array (edits and recalls are applied to their target). */
function isShown(m) {
  const kind = m.kind ?? 'text';
  return kind === 'text' || kind === 'system';
}
