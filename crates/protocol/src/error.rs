//! Typed error codes shared by the HTTP API and the WebSocket protocol.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error a client can receive. The string form (`snake_case`) is what goes on the wire;
/// `docs/PROTOCOL.md` has one entry per variant and a test produces each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or body is not valid JSON, or lacks a required field.
    BadRequest,
    /// The frame's `type` is not one this server knows.
    UnknownType,
    /// No token, an unknown token, or a revoked one.
    Unauthorized,
    /// The token is past its expiry.
    TokenExpired,
    /// Username too short, too long, or with characters outside `[a-z0-9_.-]`.
    InvalidUsername,
    /// Password too short or too long.
    InvalidPassword,
    /// The username is already registered.
    UsernameTaken,
    /// Unknown username or wrong password (deliberately not told apart).
    BadCredentials,
    /// The server's sign-up policy is `invite` and the registration carried no invitation code.
    InviteRequired,
    /// The invitation code is unknown, expired, revoked, used up, or longer than 128 bytes.
    InvalidInvite,
    /// The server's sign-up policy is `closed`: only an operator creates accounts.
    SignupClosed,
    /// The account was disabled by an operator: it cannot log in.
    AccountDisabled,
    /// There are as many live invitations as the server allows; revoke some first.
    TooManyInvites,
    /// No invitation with that id, or it was revoked already.
    UnknownInvite,
    /// The message text is empty.
    EmptyMessage,
    /// The message text exceeds the configured maximum length.
    TextTooLong,
    /// `client_msg_id` is empty or longer than 64 bytes.
    InvalidClientMsgId,
    /// The sender exceeded the per-user send rate.
    RateLimited,
    /// The user already holds the maximum number of connections.
    TooManyConnections,
    /// The named user does not exist.
    UnknownUser,
    /// The named conversation does not exist, or the caller is not a member of it.
    UnknownConversation,
    /// The named session does not exist or belongs to someone else.
    UnknownSession,
    /// Sending a direct message to yourself is not supported.
    CannotMessageSelf,
    /// A `seq` beyond the conversation's last message.
    InvalidSeq,
    /// The caller's role (or not being the sender) does not allow this.
    Forbidden,
    /// One of the two users blocked the other.
    Blocked,
    /// The server's policy allows direct messages between friends only.
    NotFriends,
    /// The two users are friends already.
    AlreadyFriends,
    /// No such pending friend request.
    UnknownRequest,
    /// The group would exceed the configured maximum size.
    GroupFull,
    /// The user is a member already.
    AlreadyMember,
    /// A user named (or the caller) is in the configured maximum number of live groups.
    TooManyGroups,
    /// The named user is not a member of the group.
    NotMember,
    /// The group was dissolved and accepts no changes or messages.
    GroupDissolved,
    /// No recallable or editable message of the caller at that seq.
    UnknownMessage,
    /// The message is older than the recall window.
    RecallWindowPassed,
    /// A name, description, URL or status is empty where required, too long, or malformed.
    InvalidField,
    /// A room name that is not 1–64 of `a-z0-9_-`.
    InvalidRoom,
    /// The connection has not joined that room.
    NotInRoom,
    /// The HTTP body exceeds the configured maximum.
    PayloadTooLarge,
    /// No such HTTP route.
    NotFound,
    /// The HTTP route exists, but not with this method (the `Allow` header lists those it has).
    MethodNotAllowed,
    /// The server is shutting down and accepts no new work.
    ShuttingDown,
    /// The server is at capacity for this kind of work (password hashing); retry after the
    /// `Retry-After` header's seconds.
    Busy,
    /// The server's store cannot write (I/O error, full or read-only disk, damaged database).
    StoreUnavailable,
    /// In a cluster: the node cannot reach the other nodes (its NATS is away), so it takes no
    /// new connections; retry later or on another node.
    BusUnavailable,
    /// No stored file with that id that the caller may read (also for files that exist but
    /// were never shared with the caller: existence is not revealed).
    UnknownMedia,
    /// The upload is larger than the server's per-file limit (`media.max_file_bytes`).
    MediaTooLarge,
    /// The upload would take the caller past their storage quota (`media.quota_bytes`).
    QuotaExceeded,
    /// The file's type, sniffed from its bytes, is not on the server's allow-list, or is an
    /// SVG with script.
    UnsupportedMediaType,
    /// The file claims a type it does not hold, or is damaged, or is an image whose canvas is
    /// over the server's pixel limits (a decompression bomb).
    InvalidMedia,
    /// A file name with a path separator, `..`, control characters, or over 255 bytes.
    InvalidFileName,
    /// No sticker with that id in the server's built-in set.
    UnknownSticker,
    /// Something failed inside the server; details are in its log, never on the wire.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 54] = [
        Self::BadRequest,
        Self::UnknownType,
        Self::Unauthorized,
        Self::TokenExpired,
        Self::InvalidUsername,
        Self::InvalidPassword,
        Self::UsernameTaken,
        Self::BadCredentials,
        Self::InviteRequired,
        Self::InvalidInvite,
        Self::SignupClosed,
        Self::AccountDisabled,
        Self::TooManyInvites,
        Self::UnknownInvite,
        Self::EmptyMessage,
        Self::TextTooLong,
        Self::InvalidClientMsgId,
        Self::RateLimited,
        Self::TooManyConnections,
        Self::UnknownUser,
        Self::UnknownConversation,
        Self::UnknownSession,
        Self::CannotMessageSelf,
        Self::InvalidSeq,
        Self::Forbidden,
        Self::Blocked,
        Self::NotFriends,
        Self::AlreadyFriends,
        Self::UnknownRequest,
        Self::GroupFull,
        Self::AlreadyMember,
        Self::TooManyGroups,
        Self::NotMember,
        Self::GroupDissolved,
        Self::UnknownMessage,
        Self::RecallWindowPassed,
        Self::InvalidField,
        Self::InvalidRoom,
        Self::NotInRoom,
        Self::PayloadTooLarge,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::ShuttingDown,
        Self::Busy,
        Self::StoreUnavailable,
        Self::BusUnavailable,
        Self::UnknownMedia,
        Self::MediaTooLarge,
        Self::QuotaExceeded,
        Self::UnsupportedMediaType,
        Self::InvalidMedia,
        Self::InvalidFileName,
        Self::UnknownSticker,
        Self::Internal,
    ];

    /// The wire string of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownType => "unknown_type",
            Self::Unauthorized => "unauthorized",
            Self::TokenExpired => "token_expired",
            Self::InvalidUsername => "invalid_username",
            Self::InvalidPassword => "invalid_password",
            Self::UsernameTaken => "username_taken",
            Self::BadCredentials => "bad_credentials",
            Self::InviteRequired => "invite_required",
            Self::InvalidInvite => "invalid_invite",
            Self::SignupClosed => "signup_closed",
            Self::AccountDisabled => "account_disabled",
            Self::TooManyInvites => "too_many_invites",
            Self::UnknownInvite => "unknown_invite",
            Self::EmptyMessage => "empty_message",
            Self::TextTooLong => "text_too_long",
            Self::InvalidClientMsgId => "invalid_client_msg_id",
            Self::RateLimited => "rate_limited",
            Self::TooManyConnections => "too_many_connections",
            Self::UnknownUser => "unknown_user",
            Self::UnknownConversation => "unknown_conversation",
            Self::UnknownSession => "unknown_session",
            Self::CannotMessageSelf => "cannot_message_self",
            Self::InvalidSeq => "invalid_seq",
            Self::Forbidden => "forbidden",
            Self::Blocked => "blocked",
            Self::NotFriends => "not_friends",
            Self::AlreadyFriends => "already_friends",
            Self::UnknownRequest => "unknown_request",
            Self::GroupFull => "group_full",
            Self::AlreadyMember => "already_member",
            Self::TooManyGroups => "too_many_groups",
            Self::NotMember => "not_member",
            Self::GroupDissolved => "group_dissolved",
            Self::UnknownMessage => "unknown_message",
            Self::RecallWindowPassed => "recall_window_passed",
            Self::InvalidField => "invalid_field",
            Self::InvalidRoom => "invalid_room",
            Self::NotInRoom => "not_in_room",
            Self::PayloadTooLarge => "payload_too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ShuttingDown => "shutting_down",
            Self::Busy => "busy",
            Self::StoreUnavailable => "store_unavailable",
            Self::BusUnavailable => "bus_unavailable",
            Self::UnknownMedia => "unknown_media",
            Self::MediaTooLarge => "media_too_large",
            Self::QuotaExceeded => "quota_exceeded",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidMedia => "invalid_media",
            Self::InvalidFileName => "invalid_file_name",
            Self::UnknownSticker => "unknown_sticker",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{code, message}`: the body of every error, over HTTP and WebSocket alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation; never contains server internals.
    pub message: String,
}
