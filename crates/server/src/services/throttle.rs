//! Login and registration throttles: how often one account or one source address may make the
//! server hash a password.
//!
//! Logins: every attempt is charged, before hashing, to its username and to its source address;
//! once a key holds `limit` charges, each further attempt first waits out a backoff that starts
//! at `login_backoff_ms` and doubles per charge up to `login_backoff_max_ms`. An attempt during
//! the backoff is refused with `rate_limited` (and `Retry-After`) without hashing and without
//! being charged. A successful login clears its account's charges and takes back its own charge
//! from the address (so successes never count against an address, nor reset it). An attempt
//! the server refused before a verdict (`busy`, a store failure) is refunded; one whose client
//! went away (closed the connection, hit the request deadline) is not: once its hash job was
//! accepted a worker may be computing it, and a refund would let one address keep every worker
//! busy without ever backing off. Charging at admission
//! rather than after the verdict is what holds under concurrency: 128 guesses sent at once are
//! charged one by one, and all but the first `limit` are refused.
//!
//! Registrations: a token bucket per source address (`register_per_address_per_hour`, bursts of
//! `register_burst`), via governor.
//!
//! Addresses are keyed as the connection caps key them ([`crate::net::address_key`]: IPv6 by
//! its /64, IPv4-mapped IPv6 as IPv4). Each table holds at most [`MAX_ENTRIES`] keys: charges are
//! forgotten [`FORGET_AFTER`] after the later of the last charge and the end of its backoff,
//! and a full table drops its forgettable keys, then its stalest one.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use banter_protocol::ErrorCode;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::budget::quota;
use crate::error::Error;
use crate::net::address_key;

/// Most keys one throttle table holds (≈ 100 bytes each).
pub(crate) const MAX_ENTRIES: usize = 65_536;
/// Charges are forgotten this long after the later of the last charge and its backoff's end.
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Registration limiter state is pruned every this many registrations.
const REGISTER_PRUNE_EVERY: u64 = 1024;

/// The login policy (see the module doc).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoginPolicy {
    /// Charges per username before backoff.
    pub(crate) per_account: u32,
    /// Charges per address before backoff.
    pub(crate) per_address: u32,
    /// First backoff.
    pub(crate) backoff: Duration,
    /// Longest backoff.
    pub(crate) backoff_max: Duration,
}

/// One key's charges.
#[derive(Debug, Clone, Copy)]
struct Entry {
    charges: u32,
    /// No attempt is admitted before this.
    next_allowed: Instant,
    last_charge: Instant,
}

impl Entry {
    fn forgotten(&self, now: Instant) -> bool {
        now >= self.last_charge.max(self.next_allowed) + FORGET_AFTER
    }
}

/// Charges per key, bounded in entries.
#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Entry>,
    limit: u32,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(limit: u32) -> Self {
        Self {
            entries: HashMap::new(),
            limit,
        }
    }

    /// How long `key` must still wait, if it must.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        // Under the limit there is never a wait, whatever the clock readings of concurrent
        // attempts (an entry's `next_allowed` starts at its first charge's `now`).
        (entry.charges >= self.limit && !entry.forgotten(now) && now < entry.next_allowed)
            .then(|| entry.next_allowed - now)
    }

    /// Charges one attempt to `key`; from the `limit`-th on, the next one must wait.
    fn charge(&mut self, key: &K, now: Instant, policy: &LoginPolicy) {
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_ENTRIES {
            self.make_room(now);
        }
        let entry = self.entries.entry(key.clone()).or_insert(Entry {
            charges: 0,
            next_allowed: now,
            last_charge: now,
        });
        if entry.forgotten(now) {
            entry.charges = 0;
        }
        entry.charges = entry.charges.saturating_add(1);
        entry.last_charge = now;
        if entry.charges >= self.limit {
            let doublings = (entry.charges - self.limit).min(31);
            let backoff = policy
                .backoff
                .saturating_mul(1 << doublings)
                .min(policy.backoff_max);
            entry.next_allowed = now + backoff;
        }
    }

    /// Takes back one charge (the attempt reached no verdict, or succeeded), and the backoff
    /// it started if the key is under the limit again.
    fn refund(&mut self, key: &K, now: Instant) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.charges = entry.charges.saturating_sub(1);
            if entry.charges < self.limit {
                entry.next_allowed = entry.next_allowed.min(now);
            }
        }
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops forgettable keys; if none were, the stalest one.
    fn make_room(&mut self, now: Instant) {
        self.entries.retain(|_, e| !e.forgotten(now));
        if self.entries.len() >= MAX_ENTRIES {
            let stalest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_charge.max(e.next_allowed))
                .map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                self.entries.remove(&k);
            }
        }
    }
}

/// Per-account and per-address login charges.
pub(crate) struct LoginThrottle {
    policy: LoginPolicy,
    /// Lock order: `accounts`, then `addresses`. Neither is held across an await.
    accounts: Mutex<Table<String>>,
    addresses: Mutex<Table<IpAddr>>,
}

/// An admitted login attempt. Say how it ended with [`Attempt::succeeded`],
/// [`Attempt::failed`] or [`Attempt::refund`]; dropped without any (its client went away), it
/// counts as failed: its charges stay.
pub(crate) struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: Option<String>,
    address: Option<IpAddr>,
}

impl LoginThrottle {
    pub(crate) fn new(policy: LoginPolicy) -> Self {
        Self {
            policy,
            accounts: Mutex::new(Table::new(policy.per_account)),
            addresses: Mutex::new(Table::new(policy.per_address)),
        }
    }

    /// Admits and charges an attempt on `account` (a normalized username) from `address`, or
    /// refuses it with `rate_limited` if either is backing off.
    pub(crate) fn admit(
        &self,
        account: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<Attempt<'_>, Error> {
        let account = account.map(str::to_owned);
        let address = address.map(address_key);
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Read under the locks, so that charges are stamped in the order they are made.
        let now = Instant::now();
        let wait = account
            .as_ref()
            .and_then(|a| accounts.wait(a, now))
            .max(address.as_ref().and_then(|a| addresses.wait(a, now)));
        if let Some(wait) = wait {
            return Err(Error::with(
                ErrorCode::RateLimited,
                format!(
                    "too many login attempts; retry in {} ms",
                    wait.as_millis().max(1)
                ),
            )
            .retry_after(wait));
        }
        if let Some(a) = &account {
            accounts.charge(a, now, &self.policy);
        }
        if let Some(a) = &address {
            addresses.charge(a, now, &self.policy);
        }
        Ok(Attempt {
            throttle: self,
            account,
            address,
        })
    }
}

impl Attempt<'_> {
    /// The password was right: the account starts afresh, the address is not charged.
    pub(crate) fn succeeded(self) {
        if let Some(a) = &self.account {
            self.throttle
                .accounts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear(a);
        }
        self.refund_address();
    }

    /// The password was wrong: the charges stay.
    pub(crate) fn failed(self) {}

    /// The server refused the attempt before a verdict (`busy`, a store failure): its charges
    /// are taken back.
    pub(crate) fn refund(self) {
        if let Some(a) = &self.account {
            self.throttle
                .accounts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .refund(a, Instant::now());
        }
        self.refund_address();
    }

    fn refund_address(&self) {
        if let Some(a) = &self.address {
            self.throttle
                .addresses
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .refund(a, Instant::now());
        }
    }
}

/// Registrations per source address.
pub(crate) struct RegisterThrottle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl RegisterThrottle {
    pub(crate) fn new(per_hour: u32, burst: u32) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota(Quota::per_hour, per_hour, burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one registration from `address`'s budget, or refuses with `rate_limited`.
    pub(crate) fn admit(&self, address: IpAddr) -> Result<(), Error> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(REGISTER_PRUNE_EVERY)
        {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&address_key(address))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Error::with(
                    ErrorCode::RateLimited,
                    format!(
                        "too many registrations from this address; retry in {} s",
                        wait.as_secs().max(1)
                    ),
                )
                .retry_after(wait)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LoginPolicy = LoginPolicy {
        per_account: 3,
        per_address: 100,
        backoff: Duration::from_secs(1),
        backoff_max: Duration::from_secs(8),
    };

    #[test]
    fn backoff_starts_at_the_limit_doubles_and_is_capped() {
        let mut t = Table::new(POLICY.per_account);
        let t0 = Instant::now();
        let key = "alice".to_owned();
        for _ in 0..2 {
            t.charge(&key, t0, &POLICY);
            assert_eq!(t.wait(&key, t0), None, "under the limit: no wait");
        }
        t.charge(&key, t0, &POLICY);
        assert_eq!(t.wait(&key, t0), Some(Duration::from_secs(1)));
        let waits: Vec<_> = (1..=6)
            .map(|n| {
                let at = t0 + Duration::from_secs(100 * n);
                t.charge(&key, at, &POLICY);
                t.wait(&key, at).unwrap().as_secs()
            })
            .collect();
        assert_eq!(waits, [2, 4, 8, 8, 8, 8]);
        // Long after, the charges are forgotten.
        let later = t0 + Duration::from_secs(600) + FORGET_AFTER + Duration::from_secs(9);
        assert_eq!(t.wait(&key, later), None);
        t.charge(&key, later, &POLICY);
        assert_eq!(t.wait(&key, later), None, "forgotten charges start over");
    }

    #[test]
    fn under_the_limit_an_earlier_clock_reading_never_waits() {
        // Two attempts read the clock, the later reading is charged first: the earlier one,
        // still under the limit, must not be told to wait for the other's timestamp (it used to
        // be refused "retry in 1 ms").
        let mut t = Table::new(POLICY.per_account);
        let earlier = Instant::now();
        let later = earlier + Duration::from_millis(5);
        let key = "bob".to_owned();
        t.charge(&key, later, &POLICY);
        assert_eq!(t.wait(&key, earlier), None);
    }

    #[test]
    fn concurrent_attempts_are_charged_at_admission_and_refunds_undo() {
        let throttle = LoginThrottle::new(POLICY);
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| throttle.admit(Some("bob"), Some(addr)).unwrap())
            .collect();
        let refused = throttle.admit(Some("bob"), Some(addr)).err().unwrap();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert!(refused.retry_after.is_some());
        // Another account from the same address is not affected.
        throttle.admit(Some("carol"), Some(addr)).unwrap().failed();
        held.into_iter().for_each(Attempt::refund); // refused before a verdict (busy)
        throttle.admit(Some("bob"), Some(addr)).unwrap().succeeded();
        assert_eq!(
            throttle
                .accounts
                .lock()
                .unwrap()
                .entries
                .get("bob")
                .map(|e| e.charges),
            None,
            "a success clears the account"
        );
        assert_eq!(throttle.addresses.lock().unwrap().entries[&addr].charges, 1);
    }

    #[test]
    fn abandoned_attempts_keep_their_charges() {
        let throttle = LoginThrottle::new(POLICY);
        let addr: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..3 {
            // The client went away after its hash job was queued: no verdict, no refund.
            drop(throttle.admit(Some("dave"), Some(addr)).unwrap());
        }
        let refused = throttle.admit(Some("dave"), Some(addr)).err().unwrap();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(throttle.addresses.lock().unwrap().entries[&addr].charges, 3);
    }

    #[test]
    fn ipv6_is_charged_by_its_64_and_the_table_stays_bounded() {
        // Both addresses of one /64 are one key (`crate::net::address_key`).
        let throttle = LoginThrottle::new(LoginPolicy {
            per_address: 3,
            ..POLICY
        });
        for a in [
            "2001:db8:1:2:aaaa::1",
            "2001:db8:1:2:bbbb::2",
            "2001:db8:1:2::3",
        ] {
            throttle
                .admit(None, Some(a.parse().unwrap()))
                .unwrap()
                .failed();
        }
        let refused = throttle.admit(None, Some("2001:db8:1:2::4".parse().unwrap()));
        assert!(refused.is_err(), "three failures from one /64 back it off");
        let mut t = Table::new(1);
        let now = Instant::now();
        for n in 0..MAX_ENTRIES + 10 {
            t.charge(&n, now, &POLICY);
        }
        assert_eq!(t.entries.len(), MAX_ENTRIES);
    }
}
