//! The secrets of the configuration (the admin token, the store URL): never in `Debug` output
//! or logs.

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

/// `Debug` and `Display` as the redacted form, and parsing from the text as given, for a URL
/// that may hold a secret.
macro_rules! url_secret {
    ($t:ident) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.redacted())
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.redacted())
            }
        }

        impl std::str::FromStr for $t {
            type Err = std::convert::Infallible;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self(s.to_owned()))
            }
        }

        impl From<&str> for $t {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

/// The `store` key: empty (the default) for the embedded SQLite store in `data_dir`, or a
/// `postgres://` / `postgresql://` URL. The URL may hold a password, so its `Debug` and
/// `Display` forms are [`StoreUrl::redacted`]; only [`StoreUrl::expose`] gives it whole.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The URL as given; empty for the embedded store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether a PostgreSQL URL is configured (else: the embedded store).
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether it is empty or a URL of a scheme the PostgreSQL store accepts.
    pub(super) fn is_valid(&self) -> bool {
        !self.is_set()
            || ["postgres://", "postgresql://"]
                .iter()
                .any(|s| self.0.starts_with(s))
    }

    /// What the logs show: `sqlite` for the embedded store, else the URL with any password
    /// (in the user part or a `password=` parameter) replaced by `***`.
    pub fn redacted(&self) -> String {
        if self.is_set() {
            redact_url(&self.0)
        } else {
            "sqlite".to_owned()
        }
    }
}

/// `url` with any password (in the user part or a `password=` parameter) replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

url_secret!(StoreUrl);

/// The `bus` key: empty (the default) for a single node, or a `nats://` URL for a cluster.
/// Shown with any password replaced by `***`, as [`StoreUrl`].
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BusUrl(String);

impl BusUrl {
    /// The URL as given; empty for a single node.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether a NATS URL is configured (else: one node, the in-process bus).
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether it is empty or a `nats://` URL.
    pub(super) fn is_valid(&self) -> bool {
        !self.is_set() || self.0.starts_with("nats://")
    }

    /// What the logs show: `local` for one node, else the URL with its user part (a user and
    /// password, or a token: `nats://token@host`) replaced by `***`.
    pub fn redacted(&self) -> String {
        if !self.is_set() {
            return "local".to_owned();
        }
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "***".to_owned();
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        match rest[..end].rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[end..]),
            None => self.0.clone(),
        }
    }
}

url_secret!(BusUrl);
