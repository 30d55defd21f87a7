//! Banter's wire types: the JSON frames spoken over the WebSocket, the bodies of the HTTP
//! account API, the error codes and the close codes.
//!
//! This crate owns the *shape* of everything a client sees and nothing else: it performs no I/O
//! and holds no server logic, so the server, the Rust SDK and the benchmark share one definition.
//! Every type here is documented with an example in `docs/PROTOCOL.md`.

pub mod admin;
mod close;
mod error;
mod frames;
mod http;
mod media;
pub mod model;

pub use close::CloseCode;
pub use error::{ErrorBody, ErrorCode};
pub use frames::{ClientFrame, ClientRequest, FriendEvent, ServerFrame};
pub use http::{
    ChangePasswordRequest, ErrorResponse, LoginRequest, LoginResponse, RegisterRequest,
    SessionInfo, User,
};
pub use media::{Attachment, AttachmentKind, AttachmentRequest, MediaInfo, Sticker, StickerList};
pub use model::{
    ConversationKind, ConversationSummary, ConversationsResult, FriendResult, FriendStatus,
    GroupAddResult, GroupInfo, GroupsResult, Hello, Limits, MemberInfo, MembersResult, Message,
    MessageKind, MessagePage, PresenceInfo, PresenceResult, Profile, ProfilesResult, ReadResult,
    Receipt, ReceiptsResult, Role, RoomAck, RoomJoined, RoomMessage, SendAck, SocialResult,
    SystemEvent,
};

/// The WebSocket subprotocol that names this version of the protocol. A client offers it (and
/// optionally `banter.auth.<token>`); the server selects it.
pub const SUBPROTOCOL: &str = "banter.v1";

/// Prefix of the subprotocol that carries a bearer token, for browsers that cannot set headers.
pub const AUTH_SUBPROTOCOL_PREFIX: &str = "banter.auth.";

/// The protocol version carried in the `hello` frame.
pub const PROTOCOL_VERSION: u32 = 1;
