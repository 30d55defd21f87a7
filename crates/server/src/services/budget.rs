//! Request budgets: how many state-changing requests a user (all devices together) and one
//! connection may make per second, for every such request type except sends and room sends,
//! which spend the send budget instead (see `Messaging::check_send_rate`).
//!
//! Why both: the per-user budget bounds what one account can make the server do (a profile
//! change fans out to every contact, a group change to every member); the per-connection one,
//! smaller, keeps one runaway device from spending the budget of the user's other devices.
//! Which request types are budgeted is decided in one place, `session::dispatch`.

use std::num::NonZeroU32;

use banter_protocol::ErrorCode;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::bus::ConnId;
use crate::error::{Error, Result};
use crate::store::UserId;

/// Rates and bursts of the two budgets (from `Config`).
#[derive(Debug, Clone, Copy)]
pub struct BudgetLimits {
    /// Sustained requests per second per user.
    pub user_rate: u32,
    /// Burst per user.
    pub user_burst: u32,
    /// Sustained requests per second per connection.
    pub conn_rate: u32,
    /// Burst per connection.
    pub conn_burst: u32,
}

/// The per-user and per-connection budgets (GCRA, keyed).
pub struct RequestBudget {
    per_user: DefaultKeyedRateLimiter<UserId>,
    per_conn: DefaultKeyedRateLimiter<ConnId>,
}

/// A quota of `rate` per period (`per`: `Quota::per_second`, `Quota::per_hour`…) with bursts
/// of `burst`. A 0 from the configuration is taken as 1: governor has no empty quota, and a
/// limit of nothing at all is not what an operator writing 0 would get anyway.
pub(crate) fn quota(per: fn(NonZeroU32) -> Quota, rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    per(rate).allow_burst(burst)
}

impl RequestBudget {
    /// Budgets with these limits, every key at full burst.
    pub fn new(limits: BudgetLimits) -> Self {
        Self {
            per_user: RateLimiter::keyed(quota(
                Quota::per_second,
                limits.user_rate,
                limits.user_burst,
            )),
            per_conn: RateLimiter::keyed(quota(
                Quota::per_second,
                limits.conn_rate,
                limits.conn_burst,
            )),
        }
    }

    /// Takes one request from the connection's budget (when there is a connection) and the
    /// user's; `rate_limited` when either is spent. The connection's is checked first, so a
    /// connection over its own budget does not spend the user's.
    pub fn check(&self, user: UserId, conn: Option<ConnId>) -> Result<()> {
        let refused = || {
            Error::new(
                ErrorCode::RateLimited,
                "too many requests that change state; slow down and retry",
            )
        };
        if let Some(conn) = conn {
            self.per_conn.check_key(&conn).map_err(|_| refused())?;
        }
        self.per_user.check_key(&user).map_err(|_| refused())
    }

    /// Forgets the state of keys idle long enough to be back at full burst.
    pub fn prune(&self) {
        self.per_user.retain_recent();
        self.per_user.shrink_to_fit();
        self.per_conn.retain_recent();
        self.per_conn.shrink_to_fit();
    }
}
