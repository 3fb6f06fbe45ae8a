//! Small types shared by IPv4 and IPv6: protocol numbers, version and ECN.

use core::fmt;

/// An IANA "Assigned Internet Protocol Number": IPv4's Protocol field and
/// IPv6's Next Header field draw from the same registry.
///
/// A newtype rather than an enum because unknown values must be carried
/// through unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 Hop-by-Hop Options (only valid directly after the IPv6 header).
    pub const HOP_BY_HOP: IpProtocol = IpProtocol(0);
    /// Internet Control Message Protocol (IPv4).
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// Transmission Control Protocol.
    pub const TCP: IpProtocol = IpProtocol(6);
    /// User Datagram Protocol.
    pub const UDP: IpProtocol = IpProtocol(17);
    /// IPv6 Routing header.
    pub const IPV6_ROUTING: IpProtocol = IpProtocol(43);
    /// IPv6 Fragment header.
    pub const IPV6_FRAGMENT: IpProtocol = IpProtocol(44);
    /// Encapsulating Security Payload: everything after it is encrypted.
    pub const ESP: IpProtocol = IpProtocol(50);
    /// Authentication Header (its length is counted in 4-octet units).
    pub const AH: IpProtocol = IpProtocol(51);
    /// ICMP for IPv6.
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    /// IPv6 "No Next Header": nothing follows.
    pub const IPV6_NO_NEXT_HEADER: IpProtocol = IpProtocol(59);
    /// IPv6 Destination Options header.
    pub const IPV6_DEST_OPTS: IpProtocol = IpProtocol(60);
    /// Mobility header (RFC 6275), extension-header formatted.
    pub const MOBILITY: IpProtocol = IpProtocol(135);
    /// Host Identity Protocol (RFC 7401), extension-header formatted.
    pub const HIP: IpProtocol = IpProtocol(139);
    /// Shim6 (RFC 5533), extension-header formatted.
    pub const SHIM6: IpProtocol = IpProtocol(140);

    /// A short lowercase name for well-known values.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "hopopt",
            1 => "icmp",
            6 => "tcp",
            17 => "udp",
            43 => "ipv6-route",
            44 => "ipv6-frag",
            50 => "esp",
            51 => "ah",
            58 => "icmpv6",
            59 => "ipv6-nonxt",
            60 => "ipv6-opts",
            135 => "mobility",
            139 => "hip",
            140 => "shim6",
            _ => return None,
        })
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "proto {}", self.0),
        }
    }
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "IpProtocol({} {n})", self.0),
            None => write!(f, "IpProtocol({})", self.0),
        }
    }
}

/// IP version of a packet or flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// The two-bit Explicit Congestion Notification codepoint (RFC 3168), the
/// low bits of IPv4's TOS byte and IPv6's Traffic Class. RoCEv2 senders mark
/// ECT(0) and switches rewrite it to CE instead of dropping, which is what
/// DCQCN reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ecn {
    /// 0b00: the transport does not support ECN.
    NotEct,
    /// 0b01: ECN-capable transport, codepoint 1.
    Ect1,
    /// 0b10: ECN-capable transport, codepoint 0 (what RoCEv2 NICs send).
    Ect0,
    /// 0b11: congestion experienced.
    Ce,
}

impl Ecn {
    /// Decodes the low two bits of a TOS / traffic-class byte.
    pub const fn from_tos(tos: u8) -> Ecn {
        match tos & 3 {
            0 => Ecn::NotEct,
            1 => Ecn::Ect1,
            2 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    /// The two-bit value.
    pub const fn bits(self) -> u8 {
        match self {
            Ecn::NotEct => 0,
            Ecn::Ect1 => 1,
            Ecn::Ect0 => 2,
            Ecn::Ce => 3,
        }
    }
}

/// Where a fragment sits in its datagram, for IPv4 and IPv6 alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Offset of this fragment's data in 8-octet units.
    pub offset: u16,
    /// More Fragments flag.
    pub more: bool,
    /// Datagram identification (16 bits in IPv4, 32 in IPv6).
    pub ident: u32,
}

impl FragmentInfo {
    /// The first fragment carries the upper-layer header (ports etc.).
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// Later fragments carry only a slice of the upper-layer payload, so
    /// there is no transport header to parse in them.
    pub const fn is_non_first(&self) -> bool {
        self.offset != 0
    }

    /// An IPv6 "atomic fragment" (offset 0, M clear) is a whole datagram
    /// that merely carries a Fragment header.
    pub const fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ecn() {
        assert_eq!(IpProtocol::UDP.to_string(), "udp");
        assert_eq!(IpProtocol(253).to_string(), "proto 253");
        assert_eq!(format!("{:?}", IpProtocol::TCP), "IpProtocol(6 tcp)");
        // DSCP 26 (AF31) + ECT(0): the TOS byte commonly used for RoCEv2.
        assert_eq!(Ecn::from_tos(0x6a), Ecn::Ect0);
        assert_eq!(Ecn::from_tos(0x6b).bits(), 3);
        assert_eq!(Ecn::from_tos(0x01), Ecn::Ect1);
        assert_eq!(Ecn::from_tos(0x00), Ecn::NotEct);
    }
}
