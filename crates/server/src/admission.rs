//! Connections counted per source address, shared by the accept loop (`transport::listener`)
//! and the WebSocket upgrade (`transport::ws`): the per-address caps of PROTOCOL.md "Limits".

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::net::address_key;

/// Per-address connection counts, shared by the accept loop and the WebSocket upgrade. IPv6
/// addresses count by their /64 (one host usually holds a whole /64); IPv4-mapped ones as IPv4.
pub(crate) struct Admission {
    max_pending: usize,
    max_sessions: usize,
    counts: Mutex<HashMap<IpAddr, Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    pending: usize,
    sessions: usize,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pending,
    Session,
}

/// One connection counted against its address; released on drop.
pub(crate) struct IpPermit {
    admission: Arc<Admission>,
    key: IpAddr,
    kind: Kind,
}

impl Admission {
    /// Counts from the configured per-address caps.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            max_pending: config.max_pending_per_ip,
            max_sessions: config.max_sessions_per_ip,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a connection that is not an authenticated session; `None` at the cap.
    pub(crate) fn pending(self: &Arc<Self>, ip: IpAddr) -> Option<IpPermit> {
        self.acquire(ip, Kind::Pending)
    }

    /// Counts an authenticated WebSocket session; `None` at the cap.
    pub(crate) fn session(self: &Arc<Self>, ip: IpAddr) -> Option<IpPermit> {
        self.acquire(ip, Kind::Session)
    }

    /// The most authenticated sessions one address may hold.
    pub(crate) fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    fn acquire(self: &Arc<Self>, ip: IpAddr, kind: Kind) -> Option<IpPermit> {
        let key = address_key(ip);
        let mut counts = self.counts.lock().expect("admission lock");
        let entry = counts.entry(key).or_default();
        let (held, max) = match kind {
            Kind::Pending => (&mut entry.pending, self.max_pending),
            Kind::Session => (&mut entry.sessions, self.max_sessions),
        };
        if *held >= max {
            if entry.pending == 0 && entry.sessions == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *held += 1;
        Some(IpPermit {
            admission: Arc::clone(self),
            key,
            kind,
        })
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock().expect("admission lock");
        if let Some(entry) = counts.get_mut(&self.key) {
            match self.kind {
                Kind::Pending => entry.pending -= 1,
                Kind::Session => entry.sessions -= 1,
            }
            if entry.pending == 0 && entry.sessions == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_by_host_and_ipv6_by_64() {
        let config = Config {
            max_pending_per_ip: 2,
            max_sessions_per_ip: 1,
            ..Config::default()
        };
        let admission = Arc::new(Admission::new(&config));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let first = admission.pending(a).unwrap();
        let _second = admission.pending(b).unwrap();
        assert!(admission.pending(a).is_none(), "the /64 holds two");
        let _session = admission.session(a).unwrap();
        assert!(admission.session(b).is_none());
        drop(first);
        assert!(admission.pending(a).is_some(), "released on drop");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn released_addresses_are_forgotten() {
        let admission = Arc::new(Admission::new(&Config::default()));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        drop(admission.pending(ip));
        drop(admission.session(ip));
        assert!(admission.counts.lock().unwrap().is_empty());
    }
}
