//! The small enums the configuration chooses between.

use serde::{Deserialize, Serialize};

/// Who may open a direct conversation with whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DirectMessagePolicy {
    /// Any user may message any other, unless one blocked the other.
    Anyone,
    /// Only friends may message each other.
    Friends,
}

/// Whom a group member may add to a group without the added user's own action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum GroupAddPolicy {
    /// Any user, unless one of the two blocked the other.
    Anyone,
    /// Only the adder's friends (a block ends a friendship, so it applies too).
    Friends,
}

/// SQLite durability mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSync {
    /// fsync on every commit.
    Full,
    /// fsync at checkpoints only.
    Normal,
}

/// Who may create an account with `POST /v1/accounts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SignupPolicy {
    /// Anyone (throttled per address).
    Open,
    /// Only someone with a live invitation code from an operator; each registration uses one
    /// of the code's uses.
    Invite,
    /// Nobody: only operators create accounts (`banter admin user create`).
    Closed,
}
