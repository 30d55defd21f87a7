// Formatting helpers shared by the shell, the chat and the panels: names and profiles, times
// and dates, previews, system entries, byte lengths and friendly error text. Pure functions over
// plain data (plus the client for names).

const DAY = 24 * 60 * 60 * 1000;

function startOfDay(ts) {
  const d = new Date(ts);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

function yesterdayOf(today) {
  const d = new Date(today);
  d.setDate(d.getDate() - 1);
  return d.getTime();
}

/** "14:05" in the user's locale. */
export function timeOf(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** A full date and time, for tooltips. */
export function fullDate(ts) {
  return new Date(ts).toLocaleString([], { dateStyle: 'full', timeStyle: 'short' });
}

/** A date with the year and a time ("3 Mar 2025, 14:05"), for records such as sessions. */
export function dateTime(ts) {
  if (!ts) return '';
  return new Date(ts).toLocaleString([], {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

/** The time today ("14:05"), else the day and time ("3 Mar, 14:05"). */
export function timeOrDate(ts, now = Date.now()) {
  if (!ts) return '';
  if (sameDay(ts, now)) return timeOf(ts);
  return new Date(ts).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** "Today", "Yesterday", "Monday 3 March" or "3 March 2025". */
export function dayLabel(ts, now = Date.now()) {
  const today = startOfDay(now);
  const day = startOfDay(ts);
  if (day === today) return 'Today';
  if (day === yesterdayOf(today)) return 'Yesterday';
  const d = new Date(ts);
  const sameYear = d.getFullYear() === new Date(now).getFullYear();
  if (sameYear && today - day < 7 * DAY) {
    return d.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' });
  }
  return d.toLocaleDateString([], { day: 'numeric', month: 'long', ...(sameYear ? {} : { year: 'numeric' }) });
}

/** True when two timestamps fall on the same local day. */
export function sameDay(a, b) {
  return startOfDay(a) === startOfDay(b);
}

/** Compact time for the conversation list: "14:05" today, "Yesterday", weekday, or a date. */
export function listTime(ts, now = Date.now()) {
  if (!ts) return '';
  const today = startOfDay(now);
  const day = startOfDay(ts);
  if (day === today) return timeOf(ts);
  if (day === yesterdayOf(today)) return 'Yesterday';
  const d = new Date(ts);
  if (today - day < 7 * DAY) return d.toLocaleDateString([], { weekday: 'short' });
  if (d.getFullYear() === new Date(now).getFullYear()) {
    return d.toLocaleDateString([], { day: 'numeric', month: 'short' });
  }
  return d.toLocaleDateString([], { day: 'numeric', month: 'short', year: '2-digit' });
}

/** "last seen 5 minutes ago" style text. */
export function lastSeen(ts, now = Date.now()) {
  if (!ts) return 'offline';
  const mins = Math.round((now - ts) / 60000);
  if (mins < 1) return 'last seen just now';
  if (mins < 60) return `last seen ${mins} minute${mins === 1 ? '' : 's'} ago`;
  if (sameDay(ts, now)) return `last seen today at ${timeOf(ts)}`;
  return `last seen ${dayLabel(ts, now).toLowerCase()} at ${timeOf(ts)}`.replace(/^last seen (\d)/, 'last seen on $1');
}

/** The logged-in user {id, username}, or an empty one while logged out. */
export function me(client) {
  const u = client.me;
  return u ?? { id: undefined, username: '' };
}

/** The cached profile of a user, or undefined (asking may start a load that emits 'profile'). */
export function profileOf(client, id) {
  return id ? client.profile(id) : undefined;
}

/** Whether a user is online: true, false, or undefined while unknown. */
export function onlineOf(client, id) {
  return id ? safe(() => client.online(id)) : undefined;
}

/**
 * A display name for a user id, preferring the cached profile over `fallback` (a profile-like
 * object the caller holds, such as a friends-list entry). "You" for the logged-in user when
 * `you` is set.
 */
export function nameOf(client, id, fallback, { you = false } = {}) {
  const self = me(client);
  if (you && id === self.id) return 'You';
  const profile = profileOf(client, id);
  const known = profile?.display_name || fallback?.display_name || profile?.username || fallback?.username;
  if (known) return known;
  const name = safe(() => client.displayName(id));
  if (name && name !== '…') return name;
  return id === self.id && self.username ? self.username : (name || '…');
}

/** The username of a user id ('' while unknown). */
export function usernameOf(client, id, fallback) {
  return profileOf(client, id)?.username || fallback?.username || '';
}

/** The title of a conversation: the peer's display name, or the group's name. */
export function conversationName(client, conv) {
  if (!conv) return '';
  if (conv.kind === 'group') return conv.name || 'Group';
  const profile = conv.peer ? profileOf(client, conv.peer) : null;
  return profile?.display_name || profile?.username || conv.peer_username
    || (conv.peer ? nameOf(client, conv.peer) : 'Conversation');
}

function list(names) {
  if (names.length <= 1) return names.join('');
  if (names.length === 2) return `${names[0]} and ${names[1]}`;
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** Words for a group's system entry: "alice added bob", "carol left". */
export function systemText(client, event) {
  if (!event) return 'Group updated';
  const n = (id) => nameOf(client, id, undefined, { you: true });
  // In object position "You" is "you": "alice made you the owner".
  const o = (id) => (id === me(client)?.id ? 'you' : n(id));
  switch (event.event) {
    case 'group_created':
      return `${n(event.by)} created the group${event.name ? ` “${event.name}”` : ''}`;
    case 'members_added':
      return `${n(event.by)} added ${list((event.users || []).map(o))}`;
    case 'member_joined':
      return `${n(event.user)} joined`;
    case 'member_left':
      return `${n(event.user)} left`;
    case 'member_removed':
      return `${n(event.by)} removed ${o(event.user)}`;
    case 'role_changed':
      return `${n(event.by)} made ${o(event.user)} ${event.role === 'admin' ? 'an admin' : `a ${event.role || 'member'}`}`;
    case 'owner_transferred':
      return `${n(event.from)} made ${o(event.to)} the owner`;
    case 'group_updated': {
      const parts = [];
      if (event.name !== undefined && event.name !== null) parts.push(`renamed the group to “${event.name}”`);
      if (event.description !== undefined && event.description !== null) parts.push('changed the description');
      return `${n(event.by)} ${parts.length ? parts.join(' and ') : 'updated the group'}`;
    }
    case 'group_dissolved':
      return `${n(event.by)} dissolved the group`;
    default:
      return 'Group updated';
  }
}

/** One-line preview of a conversation's last entry, for the list. */
export function previewOf(client, conv) {
  const m = conv.last_message;
  if (!m) return conv.last_seq ? '' : 'No messages yet';
  const myId = me(client).id;
  const kind = m.kind || 'text';
  if (kind === 'system') return systemText(client, m.event);
  if (kind === 'recall' || m.recalled) return 'message recalled';
  const who = m.sender === myId ? 'You: ' : conv.kind === 'group' ? `${nameOf(client, m.sender)}: ` : '';
  const text = (mediaPreview(m) ?? String(m.text || '')).replace(/\s+/g, ' ').trim();
  if (kind === 'edit') return `${who}${text} (edited)`;
  return `${who}${text}`;
}

/**
 * The list's words for a file or sticker message ("📷 Photo", "📎 report.pdf", "🎤 Voice
 * message", with the caption if any), or undefined for plain text.
 */
export function mediaPreview(m) {
  if (m.sticker) return `${m.sticker.emoji ? `${m.sticker.emoji} ` : ''}Sticker`;
  const a = m.attachment;
  if (!a) return undefined;
  const caption = String((m.pending ? m.text : a.caption) ?? '').trim();
  const label = {
    image: '📷 Photo', voice: '🎤 Voice message', audio: `🎵 ${a.name || 'Audio'}`, video: `🎬 ${a.name || 'Video'}`,
  }[a.kind] ?? `📎 ${a.name || 'File'}`;
  return caption ? `${label}: ${caption}` : label;
}

/** "12 KB", "3.4 MB": a file size for people (1 KB = 1024 bytes). */
export function humanSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} byte${n === 1 ? '' : 's'}`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v < 10 ? v.toFixed(1).replace(/\.0$/, '') : Math.round(v)} ${units[i]}`;
}

/** "0:07", "12:03", "1:02:03" for a duration in ms. */
export function clockDuration(ms) {
  const total = Math.max(0, Math.round((Number(ms) || 0) / 1000));
  const s = String(total % 60).padStart(2, '0');
  const m = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  return hours ? `${hours}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** "alice is typing…" for a list of user ids (empty string for none). */
export function typingText(client, ids) {
  const names = ids.map((id) => nameOf(client, id));
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return 'Several people are typing…';
}

/** UTF-8 length of a string. */
const encoder = new TextEncoder();
export function byteLength(text) {
  return encoder.encode(text).length;
}

const FRIENDLY = {
  bad_credentials: 'Wrong username or password.',
  invalid_username: 'Usernames are 3–32 characters: lower-case letters, digits, “_”, “.” and “-”.',
  invalid_password: 'Passwords must be 8 to 128 bytes long.',
  username_taken: 'That username is already taken. Try another one.',
  unauthorized: 'Your session has ended. Log in again.',
  token_expired: 'Your session has expired. Log in again.',
  bad_request: 'The request was not understood.',
  empty_message: 'The message is empty.',
  text_too_long: 'The message is too long.',
  invalid_field: 'Some text is too long or contains characters that are not allowed.',
  unknown_user: 'That user does not exist.',
  unknown_conversation: 'This conversation is not available.',
  unknown_message: 'That message can no longer be changed.',
  unknown_request: 'That request no longer exists.',
  unknown_session: 'That session has already ended.',
  cannot_message_self: 'You cannot send a message to yourself.',
  blocked: 'Not possible: one of you has blocked the other.',
  not_friends: 'You can only do that with friends.',
  already_friends: 'You are already friends.',
  group_dissolved: 'This group was dissolved.',
  group_full: 'The group is full.',
  too_many_groups: 'Someone is already in too many groups.',
  already_member: 'Already a member of the group.',
  not_member: 'That person is not a member of the group.',
  invalid_room: 'Room names are 1–64 characters of a–z, 0–9, _ and -.',
  not_in_room: 'You are not in that room.',
  recall_window_passed: 'It is too late to recall this message.',
  forbidden: 'You are not allowed to do that.',
  too_many_connections: 'Too many open connections. Close another tab or device and retry.',
  shutting_down: 'The server is restarting. Try again in a moment.',
  store_unavailable: 'The server cannot save data right now. Try again later.',
  payload_too_large: 'That is too large to send.',
  internal: 'Something went wrong on the server.',
  timeout: 'The server did not answer in time.',
  media_too_large: 'That file is too large to send.',
  quota_exceeded: 'You have no storage left for files. Files you sent before still count.',
  unsupported_media_type: 'Files of this type cannot be sent.',
  invalid_media: 'That file is empty or damaged, or cannot be sent that way.',
  invalid_file_name: 'That file name cannot be used. Rename the file and try again.',
  unknown_media: 'That file is not available.',
  unknown_sticker: 'That sticker is not available.',
  aborted: 'The upload was cancelled.',
};

/** Codes whose server message names who was refused: it is kept after the friendly words. */
const WITH_DETAIL = new Set(['blocked', 'not_friends', 'too_many_groups']);

function seconds(n) {
  const s = Math.max(1, Math.ceil(Number(n) || 1));
  return `${s} second${s === 1 ? '' : 's'}`;
}

/** Friendly text for an error (a BanterError's code, a network failure, or anything else). */
export function errorText(err) {
  if (!err) return 'Something went wrong.';
  const code = err.code;
  if (code === 'rate_limited') {
    return err.retryAfter ? `Too many attempts. Try again in ${seconds(err.retryAfter)}.` : 'Slow down a little and try again.';
  }
  if (code === 'busy') {
    return `The server is busy. Try again in ${seconds(err.retryAfter || 1)}.`;
  }
  if (code && FRIENDLY[code]) {
    const detail = WITH_DETAIL.has(code) && err.message && err.message !== code;
    return detail ? `${FRIENDLY[code]} (${err.message})` : FRIENDLY[code];
  }
  if (err instanceof TypeError || code === 'network' || code === 'offline') {
    return 'Cannot reach the server. Check your connection and try again.';
  }
  return err.message || 'Something went wrong.';
}

/** `fn()`, or undefined if it throws (the client's getters throw for what is not loaded yet). */
export function safe(fn) {
  try { return fn(); } catch { return undefined; }
}
