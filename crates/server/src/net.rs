//! Addresses: the one the server listens on ([`Listen`]), and source addresses as the server
//! counts them, the one key under which the connection caps (`transport::listener`) and the
//! login and registration throttles (`services::throttle`) charge a client.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// The address to listen on: an IP address and port (`127.0.0.1:8080`, `[::]:8080`), or a host
/// name and port (`localhost:8080`), resolved when the configuration is read; a name bound to
/// several addresses listens on the first IPv4 one among them, else the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(addr) = s.parse() {
            return Ok(Self(addr));
        }
        if !s.contains(':') {
            return Err(format!("{s:?} needs a port, as in {s}:8080"));
        }
        let found: Vec<SocketAddr> = s
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {s:?}: {e}"))?
            .collect();
        found
            .iter()
            .find(|a| a.is_ipv4())
            .or(found.first())
            .map(|a| Self(*a))
            .ok_or_else(|| format!("{s:?} resolves to no address"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl serde::Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The key of a client address: an IPv4 address as it is; an IPv4-mapped IPv6 address as its
/// IPv4 address (a dual-stack listener sees IPv4 clients that way); any other IPv6 address by
/// its /64, since one host usually holds a whole /64 and could otherwise pick a fresh address
/// per connection.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_addresses_and_host_names() {
        let ip: Listen = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(ip.to_string(), "127.0.0.1:8080");
        assert_eq!("[::1]:9".parse::<Listen>().unwrap().to_string(), "[::1]:9");
        let named: Listen = "localhost:8080".parse().unwrap();
        assert!(
            named.0.ip().is_loopback() && named.0.port() == 8080,
            "{named}"
        );
        assert!(
            "localhost"
                .parse::<Listen>()
                .unwrap_err()
                .contains("needs a port")
        );
        assert!("no-such-host.invalid:80".parse::<Listen>().is_err());
    }

    #[test]
    fn ipv6_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_eq!(address_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(address_key(a), address_key(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(address_key(v4), v4);
    }
}
