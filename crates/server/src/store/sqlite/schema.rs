//! SQLite schema and migrations, applied in order at open and tracked in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema from version `i` to `i + 1`. Append only: never edit a shipped
/// migration.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    token_hash BLOB    NOT NULL UNIQUE,
    device     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE TABLE conversations (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,
    direct_key TEXT    UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE members (
    conv_id   INTEGER NOT NULL,
    user_id   INTEGER NOT NULL,
    read_seq  INTEGER NOT NULL DEFAULT 0,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (conv_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members(user_id, conv_id);
-- One row per message, whatever the number of members (read diffusion).
CREATE TABLE messages (
    conv_id       INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    id            INTEGER NOT NULL,
    sender        INTEGER NOT NULL,
    client_msg_id TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    ts            INTEGER NOT NULL,
    PRIMARY KEY (conv_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_by_client_id ON messages(sender, client_msg_id);
",
    r"
-- Social graph, profiles, groups, recall and edit.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN avatar_url   TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN status_text  TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN last_seen_at INTEGER;
ALTER TABLE conversations ADD COLUMN name         TEXT;
ALTER TABLE conversations ADD COLUMN description  TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN public       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN dissolved_at INTEGER;
ALTER TABLE members ADD COLUMN role       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN kind      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN ref_seq   INTEGER;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN recalled  INTEGER NOT NULL DEFAULT 0;
-- Both directions are stored, so 'friends of X' is one index range.
CREATE TABLE friendships (
    user_id    INTEGER NOT NULL,
    friend_id  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, friend_id)
) WITHOUT ROWID;
CREATE TABLE friend_requests (
    from_id    INTEGER NOT NULL,
    to_id      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (from_id, to_id)
) WITHOUT ROWID;
CREATE INDEX friend_requests_by_recipient ON friend_requests(to_id, from_id);
CREATE TABLE blocks (
    blocker    INTEGER NOT NULL,
    blocked    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
) WITHOUT ROWID;
",
    r"
-- The store's own facts: its id (also in the data directory's banter.id marker, so that a
-- replaced or emptied database is noticed at start) and when it was last opened and probed.
CREATE TABLE banter_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
",
    r"
-- Operators: disabled and deleted accounts (a deleted user stays as a tombstone row so that
-- their messages keep a sender), and invitation codes, stored as their SHA-256 only.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
ALTER TABLE users ADD COLUMN deleted_at  INTEGER;
CREATE TABLE invites (
    id         INTEGER PRIMARY KEY,
    code_hash  BLOB    NOT NULL UNIQUE,
    uses       INTEGER NOT NULL,
    uses_left  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
",
    r"
-- Seqs and message ids are assigned from counters kept in the database, in the transaction
-- that inserts the entries, never from MAX(seq): several writers on one database then agree.
ALTER TABLE conversations ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET last_seq =
    (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conv_id = conversations.id);
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) SELECT 'message_id', COALESCE(MAX(id), 0) FROM messages;
",
    r"
-- Media: one row per stored file (by the SHA-256 of its bytes), one per uploader of it (the
-- quota counts these), one per conversation it was sent into (its members may read it).
CREATE TABLE media (
    hash       TEXT    PRIMARY KEY,
    mime       TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    width      INTEGER,
    height     INTEGER,
    thumbnail  TEXT,
    color      TEXT,
    created_at INTEGER NOT NULL,
    touched_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX media_by_touch ON media(touched_at);
CREATE TABLE media_uploads (
    user_id    INTEGER NOT NULL,
    hash       TEXT    NOT NULL,
    name       TEXT,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, hash)
) WITHOUT ROWID;
CREATE INDEX media_uploads_by_hash ON media_uploads(hash);
CREATE TABLE media_shares (
    hash    TEXT    NOT NULL,
    conv_id INTEGER NOT NULL,
    PRIMARY KEY (hash, conv_id)
) WITHOUT ROWID;
",
];

/// Brings the database up to the newest schema.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
