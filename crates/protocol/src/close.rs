//! WebSocket close codes the server uses. Application codes live in 4000–4999.

/// Why the server closed a WebSocket. `docs/PROTOCOL.md` lists each with its meaning and what a
/// client should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the client asked to close, or the exchange ended normally.
    Normal,
    /// 1001: the server is shutting down; reconnect (to another node) with backoff.
    GoingAway,
    /// 1002: the client's close frame was malformed (a forbidden close code, a one-byte
    /// payload, a reason that is not UTF-8; RFC 6455 §5.5.1, §7.4).
    ProtocolError,
    /// 1009: a frame exceeded the configured maximum size.
    TooBig,
    /// 1013: the node cannot take the connection now (in a cluster: its bus is away, so the
    /// connection could not be counted); reconnect with backoff, to another node if there is one.
    TryAgainLater,
    /// 4000: the peer broke the protocol (binary frame, invalid UTF-8).
    ProtocolViolation,
    /// 4001: the session's token was revoked (logout, revoke, password change). Do not reconnect
    /// with the same token.
    AuthRevoked,
    /// 4002: nothing was received within the heartbeat timeout.
    HeartbeatTimeout,
    /// 4003: the connection's outbound queue stayed full (slow consumer). Reconnect and `sync`.
    SlowConsumer,
    /// 4004: the user already holds `max_connections_per_user` connections (another device
    /// took the last place while this one was upgrading). Close another one, or retry later.
    TooManyConnections,
}

impl CloseCode {
    /// The numeric code sent in the close frame.
    pub fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::ProtocolError => 1002,
            Self::TooBig => 1009,
            Self::TryAgainLater => 1013,
            Self::ProtocolViolation => 4000,
            Self::AuthRevoked => 4001,
            Self::HeartbeatTimeout => 4002,
            Self::SlowConsumer => 4003,
            Self::TooManyConnections => 4004,
        }
    }

    /// The reason text sent with the code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::GoingAway => "server shutting down",
            Self::ProtocolError => "malformed close frame",
            Self::TooBig => "frame too big",
            Self::TryAgainLater => "try again later",
            Self::ProtocolViolation => "protocol violation",
            Self::AuthRevoked => "auth revoked",
            Self::HeartbeatTimeout => "heartbeat timeout",
            Self::SlowConsumer => "slow consumer",
            Self::TooManyConnections => "too many connections",
        }
    }

    /// Maps a received numeric code back to a known close code.
    pub fn from_code(code: u16) -> Option<Self> {
        [
            Self::Normal,
            Self::GoingAway,
            Self::ProtocolError,
            Self::TooBig,
            Self::TryAgainLater,
            Self::ProtocolViolation,
            Self::AuthRevoked,
            Self::HeartbeatTimeout,
            Self::SlowConsumer,
            Self::TooManyConnections,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}
