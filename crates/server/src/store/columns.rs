//! The column lists both backends select (their schemas name and order these columns alike),
//! so that a record is read from the same columns whatever the engine. Each backend's `rows`
//! module maps them to records; the group columns differ (booleans) and stay there.

pub(crate) const USER_COLUMNS: &str = "id, username, password_hash, created_at, \
     disabled_at IS NOT NULL, deleted_at IS NOT NULL";
pub(crate) const SESSION_COLUMNS: &str = "id, user_id, device, created_at, expires_at";
pub(crate) const MESSAGE_COLUMNS: &str =
    "id, conv_id, seq, sender, client_msg_id, kind, body, ref_seq, edited_at, recalled, ts";
pub(crate) const PROFILE_COLUMNS: &str =
    "id, username, display_name, avatar_url, status_text, last_seen_at";
pub(crate) const MEMBER_COLUMNS: &str = "user_id, role, joined_seq, read_seq";
