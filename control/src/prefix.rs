//! IP prefixes of forwarding entries.
//!
//! On the wire: `version:u8 (4|6) | prefix_len:u8 | address[16]`, IPv4 in the
//! first 4 address bytes and the other 12 zero. Host bits must be zero: a
//! prefix like `10.1.2.3/8` is almost always a typo, and refusing it keeps
//! two spellings of one prefix from becoming two entries.

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bytes of a prefix on the wire.
pub const PREFIX_WIRE_LEN: usize = 18;

/// A validated IPv4 or IPv6 prefix with zero host bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// Validates length and host bits.
    pub fn new(addr: IpAddr, len: u8) -> Result<IpPrefix, PrefixError> {
        let max = max_len(&addr);
        if len > max {
            return Err(PrefixError::LengthTooLong { len, max });
        }
        let p = IpPrefix { addr, len };
        let host = match addr {
            IpAddr::V4(a) => u32::from(a) & !p.mask_v4(),
            IpAddr::V6(a) => {
                // Any nonzero host bit makes the prefix invalid; fold to one bit.
                u32::from(u128::from(a) & !p.mask_v6() != 0)
            }
        };
        if host != 0 {
            return Err(PrefixError::HostBitsSet);
        }
        Ok(p)
    }

    /// The network address.
    pub const fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub const fn len(&self) -> u8 {
        self.len
    }

    /// True for the default route (`/0`).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// IPv4 netmask (meaningful for IPv4 prefixes).
    pub fn mask_v4(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.len.min(32)))
            .unwrap_or(0)
    }

    /// IPv6 netmask (meaningful for IPv6 prefixes).
    pub fn mask_v6(&self) -> u128 {
        u128::MAX
            .checked_shl(128 - u32::from(self.len.min(128)))
            .unwrap_or(0)
    }

    /// Does `ip` fall in this prefix? Different families never match.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => u32::from(a) & self.mask_v4() == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(a)) => u128::from(a) & self.mask_v6() == u128::from(net),
            _ => false,
        }
    }

    /// The 18 wire bytes.
    pub fn encode(&self) -> [u8; PREFIX_WIRE_LEN] {
        let mut out = [0u8; PREFIX_WIRE_LEN];
        out[1] = self.len;
        match self.addr {
            IpAddr::V4(a) => {
                out[0] = 4;
                out[2..6].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out[0] = 6;
                out[2..18].copy_from_slice(&a.octets());
            }
        }
        out
    }

    /// Decodes and validates 18 wire bytes.
    pub fn decode(bytes: &[u8]) -> Result<IpPrefix, PrefixError> {
        let raw: &[u8; PREFIX_WIRE_LEN] = bytes
            .try_into()
            .map_err(|_| PrefixError::WrongLength(bytes.len()))?;
        let [version, len, a @ ..] = *raw;
        let addr = match version {
            4 => {
                let [a0, a1, a2, a3, rest @ ..] = a;
                if rest != [0u8; 12] {
                    return Err(PrefixError::V4PaddingNotZero);
                }
                IpAddr::V4(Ipv4Addr::new(a0, a1, a2, a3))
            }
            6 => IpAddr::V6(Ipv6Addr::from(a)),
            v => return Err(PrefixError::BadVersion(v)),
        };
        IpPrefix::new(addr, len)
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Parses `10.0.0.0/8` or `2001:db8::/32`; a bare address is a host route.
impl FromStr for IpPrefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<IpPrefix, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| PrefixError::Syntax(s.to_string()))?;
        let len = match l {
            Some(l) => l.parse().map_err(|_| PrefixError::Syntax(s.to_string()))?,
            None => max_len(&addr),
        };
        IpPrefix::new(addr, len)
    }
}

/// What is wrong with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    /// Not 18 bytes.
    WrongLength(usize),
    /// Version other than 4 or 6.
    BadVersion(u8),
    /// Longer than the family allows.
    LengthTooLong {
        /// The length given.
        len: u8,
        /// 32 or 128.
        max: u8,
    },
    /// Address bits beyond the prefix length are set.
    HostBitsSet,
    /// IPv4 with nonzero bytes in the unused 12 address bytes.
    V4PaddingNotZero,
    /// Text that is not `ADDRESS[/LEN]`.
    Syntax(String),
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::WrongLength(n) => write!(f, "{n} bytes, expected 18"),
            PrefixError::BadVersion(v) => write!(f, "IP version {v}, expected 4 or 6"),
            PrefixError::LengthTooLong { len, max } => {
                write!(f, "prefix length {len} exceeds {max}")
            }
            PrefixError::HostBitsSet => {
                f.write_str("address has bits set beyond the prefix length")
            }
            PrefixError::V4PaddingNotZero => {
                f.write_str("IPv4 prefix with nonzero bytes after the first 4 address bytes")
            }
            PrefixError::Syntax(s) => write!(f, "'{s}' is not ADDRESS/LENGTH"),
        }
    }
}

impl std::error::Error for PrefixError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpPrefix {
        s.parse().expect("valid prefix")
    }

    #[test]
    fn parse_display_encode_decode() {
        for s in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "192.0.2.1/32",
            "2001:db8::/32",
            "::/0",
        ] {
            let x = p(s);
            assert_eq!(x.to_string(), s);
            assert_eq!(IpPrefix::decode(&x.encode()), Ok(x));
        }
        assert_eq!(p("192.0.2.7").len(), 32);
    }

    #[test]
    fn contains_respects_length_and_family() {
        let net = p("10.1.0.0/16");
        assert!(net.contains("10.1.255.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(!net.contains("::ffff:10.1.0.1".parse().expect("ip")));
        assert!(p("0.0.0.0/0").contains("8.8.8.8".parse().expect("ip")));
        assert!(p("::/0").contains("2001:db8::1".parse().expect("ip")));
        assert!(p("2001:db8::/32").contains("2001:db8:ffff::1".parse().expect("ip")));
    }

    #[test]
    fn refuses_bad_prefixes() {
        assert_eq!(
            "10.1.2.3/8".parse::<IpPrefix>(),
            Err(PrefixError::HostBitsSet)
        );
        assert_eq!(
            "10.0.0.0/33".parse::<IpPrefix>(),
            Err(PrefixError::LengthTooLong { len: 33, max: 32 })
        );
        assert!(matches!(
            "x/8".parse::<IpPrefix>(),
            Err(PrefixError::Syntax(_))
        ));
        let mut b = p("10.0.0.0/8").encode();
        b[17] = 1;
        assert_eq!(IpPrefix::decode(&b), Err(PrefixError::V4PaddingNotZero));
        b[0] = 5;
        assert_eq!(IpPrefix::decode(&b), Err(PrefixError::BadVersion(5)));
        assert_eq!(IpPrefix::decode(&b[..3]), Err(PrefixError::WrongLength(3)));
    }
}
