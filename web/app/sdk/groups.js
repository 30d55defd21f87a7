// Groups: the group_* requests, with the conversation list kept in step with them (a created or
// joined group's conversation is added, a left or dissolved one is marked so).

export class Groups {
  #host;

  /** @param {{request: Function, store: import('./store.js').ConversationStore}} host */
  constructor(host) {
    this.#host = host;
  }

  /** The caller's groups (not wrapped in {groups}). */
  async list() {
    return (await this.#host.request('groups')).groups;
  }

  /** Creates a group and adds its conversation to the list. Resolves to the group. */
  async create({ name, description = '', public: isPublic = false, members = [] }) {
    const group = await this.#host.request('group_create', { name, description, public: isPublic, members });
    await this.#host.store.refresh().catch(() => {});
    return group;
  }

  add(group, users) {
    return this.#change(group, 'group_add', { group, users });
  }

  /** Joins a public group and adds its conversation to the list. */
  async join(group) {
    const result = await this.#host.request('group_join', { group });
    await this.#host.store.refresh().catch(() => {});
    return result;
  }

  /** Leaves a group; the conversation is marked `left`. */
  async leave(group) {
    const result = await this.#host.request('group_leave', { group });
    this.#host.store.mark(group, 'left');
    return result;
  }

  remove(group, user) {
    return this.#change(group, 'group_remove', { group, user });
  }

  role(group, user, role) {
    return this.#change(group, 'group_role', { group, user, role });
  }

  transfer(group, user) {
    return this.#change(group, 'group_transfer', { group, user });
  }

  update(group, { name, description } = {}) {
    return this.#change(group, 'group_update', { group, name, description });
  }

  /** Dissolves a group; the conversation is marked `dissolved`, its history stays readable. */
  async dissolve(group) {
    const result = await this.#change(group, 'group_dissolve', { group });
    this.#host.store.mark(group, 'dissolved');
    return result;
  }

  /** The members (not wrapped in {members}). */
  async members(group) {
    return (await this.#host.request('group_members', { group })).members;
  }

  /**
   * A group change by this connection: the server answers it instead of pushing its system
   * entry here (other devices get the push), so the entry is fetched with `sync` before the
   * change resolves, and an open chat shows it at once.
   */
  async #change(group, type, fields) {
    const result = await this.#host.request(type, fields);
    await this.#host.store.fill(group).catch(() => {});
    return result;
  }
}
