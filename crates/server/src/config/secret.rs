//! The admin token: a secret that never appears in `Debug` output or logs.

use serde::{Deserialize, Serialize};

/// Shortest admin token accepted, in bytes.
pub(super) const ADMIN_TOKEN_MIN: usize = 32;
/// Longest admin token accepted, in bytes.
pub(super) const ADMIN_TOKEN_MAX: usize = 256;

/// The operator credential for `/v1/admin/...`; empty means the admin API is off. Its `Debug`
/// form says only whether it is set, so that printing a `Config` cannot leak it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AdminToken(String);

impl AdminToken {
    /// The token; empty when the admin API is off.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether a token is configured.
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_set() { "<set>" } else { "<unset>" })
    }
}

impl std::str::FromStr for AdminToken {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl From<&str> for AdminToken {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}
