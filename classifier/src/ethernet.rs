//! Ethernet II framing: MAC addresses, EtherTypes and the 14-byte header.
//!
//! The appliance sits in the wire, so it sees frames exactly as the NIC
//! delivered them: destination MAC, source MAC, a 16-bit type/length field and
//! a payload. The frame check sequence is stripped by the NIC and never shows
//! up here. Frames shorter than 60 bytes were padded by the sender, so the
//! payload may be longer than what the upper layer claims; upper layers bound
//! themselves by their own length fields, never by the frame length.

use core::fmt;
use core::str::FromStr;

use crate::field::{be16, need, set_be16};

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`, used by ARP requests.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`, the "unknown" target hardware address in ARP requests.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Builds an address from the first six bytes of `bytes`, if there are six.
    pub fn from_bytes(bytes: &[u8]) -> Option<MacAddr> {
        let arr: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(MacAddr(arr))
    }

    /// The raw octets in transmission order.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// True for `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The I/G bit: group addresses (multicast and broadcast) have it set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// The U/L bit: locally administered addresses (VMs, test rigs) have it set.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

// Debug prints the familiar colon form too: a byte array in a test failure
// is much harder to compare against a capture.
impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a textual MAC address was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacParseError(String);

impl fmt::Display for MacParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid MAC address {:?}: expected six hex octets like aa:bb:cc:dd:ee:ff",
            self.0
        )
    }
}

impl std::error::Error for MacParseError {}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for slot in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

/// The 16-bit type field that follows the MAC addresses (and every VLAN tag).
///
/// A newtype rather than an enum: the appliance must carry unknown types
/// through untouched, and an enum would need an `Unknown(u16)` arm anyway.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EtherType(pub u16);

impl EtherType {
    /// Internet Protocol version 4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// Address Resolution Protocol.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q customer VLAN tag (C-TAG).
    pub const VLAN: EtherType = EtherType(0x8100);
    /// Internet Protocol version 6.
    pub const IPV6: EtherType = EtherType(0x86DD);
    /// IEEE 802.1ad service VLAN tag (S-TAG), the outer tag of QinQ.
    pub const QINQ: EtherType = EtherType(0x88A8);

    /// Values up to 1500 are an IEEE 802.3 length, not a type; such frames
    /// carry LLC/SNAP and are forwarded unclassified.
    pub const fn is_length(self) -> bool {
        self.0 <= 1500
    }

    /// True for the two tag protocol identifiers the parser unwraps.
    pub const fn is_vlan_tpid(self) -> bool {
        self.0 == Self::VLAN.0 || self.0 == Self::QINQ.0
    }

    /// A short lowercase name for well-known values.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0x0800 => Some("ipv4"),
            0x0806 => Some("arp"),
            0x8100 => Some("vlan"),
            0x86DD => Some("ipv6"),
            0x88A8 => Some("qinq"),
            _ => None,
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "0x{:04x}", self.0),
        }
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtherType(0x{:04x}", self.0)?;
        if let Some(n) = self.name() {
            write!(f, " {n}")?;
        }
        f.write_str(")")
    }
}

/// Everything that can be wrong with an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EthernetError {
    /// Fewer than 14 bytes: not even the two addresses and the type fit.
    Truncated {
        /// Bytes actually present.
        available: usize,
    },
    /// Longer than the 65535 bytes the fast-path parser's 16-bit offsets
    /// can address (no real Ethernet frame is; LRO/GRO super-frames are).
    FrameTooLong {
        /// Bytes present.
        len: usize,
    },
    /// `emit` was handed a buffer shorter than the header.
    BufferTooSmall {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
}

impl EthernetError {
    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            EthernetError::Truncated { .. } => "ethernet.truncated",
            EthernetError::FrameTooLong { .. } => "ethernet.frame_too_long",
            EthernetError::BufferTooSmall { .. } => "ethernet.buffer_too_small",
        }
    }
}

impl fmt::Display for EthernetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EthernetError::Truncated { available } => write!(
                f,
                "frame of {available} bytes is shorter than the 14-byte Ethernet header"
            ),
            EthernetError::FrameTooLong { len } => write!(
                f,
                "frame of {len} bytes exceeds the 65535 bytes the parser addresses"
            ),
            EthernetError::BufferTooSmall { needed, available } => write!(
                f,
                "Ethernet header needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for EthernetError {}

/// A zero-copy view of an Ethernet II frame.
///
/// Construct it with [`EthernetFrame::new_checked`]; after that every accessor
/// is infallible because the 14 header bytes are known to exist.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of destination + source + type.
    pub const HEADER_LEN: usize = 14;

    /// Wraps `buffer` without checking it. Accessors panic if it is shorter
    /// than [`Self::HEADER_LEN`]; use [`Self::new_checked`] for untrusted data.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after proving the header is present.
    pub fn new_checked(buffer: T) -> Result<Self, EthernetError> {
        let available = buffer.as_ref().len();
        if available < Self::HEADER_LEN {
            return Err(EthernetError::Truncated { available });
        }
        Ok(EthernetFrame { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        MacAddr([b[6], b[7], b[8], b[9], b[10], b[11]])
    }

    /// The outermost type field (a TPID when the frame is VLAN tagged).
    pub fn ethertype(&self) -> EtherType {
        EtherType(be16(self.buffer.as_ref(), 12))
    }

    /// Everything after the 14-byte header, including any sender padding.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Overwrites the destination MAC.
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[0..6].copy_from_slice(&addr.0);
    }

    /// Overwrites the source MAC.
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[6..12].copy_from_slice(&addr.0);
    }

    /// Overwrites the outermost type field.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        set_be16(self.buffer.as_mut(), 12, ethertype.0);
    }

    /// Mutable access to everything after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[Self::HEADER_LEN..]
    }
}

/// The owned, parsed form of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source MAC address.
    pub src_addr: MacAddr,
    /// Destination MAC address.
    pub dst_addr: MacAddr,
    /// Outermost type field.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header out of a checked view.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self, EthernetError> {
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Bytes that [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        EthernetFrame::<&[u8]>::HEADER_LEN
    }

    /// Writes the header to the front of `buf`, returning the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EthernetError> {
        need(buf.len(), self.buffer_len())
            .map_err(|(needed, available)| EthernetError::BufferTooSmall { needed, available })?;
        let mut frame = EthernetFrame::new_unchecked(buf);
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
        Ok(self.buffer_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A broadcast ARP request header as captured on a lab switch.
    const ARP_HDR: [u8; 14] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
    ];

    #[test]
    fn parses_real_header() {
        let f = EthernetFrame::new_checked(&ARP_HDR[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(f.src_addr().to_string(), "52:54:00:12:34:56");
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert!(f.payload().is_empty());
        assert!(f.dst_addr().is_multicast());
        assert!(!f.src_addr().is_multicast());
    }

    #[test]
    fn rejects_runts() {
        for n in 0..14 {
            assert_eq!(
                EthernetFrame::new_checked(&ARP_HDR[..n]).unwrap_err(),
                EthernetError::Truncated { available: n }
            );
        }
    }

    #[test]
    fn emit_round_trips_and_checks_space() {
        let repr = EthernetRepr {
            src_addr: "02:00:00:00:00:01".parse().unwrap(),
            dst_addr: "02-00-00-00-00-02".parse().unwrap(),
            ethertype: EtherType::IPV6,
        };
        let mut buf = [0u8; 20];
        assert_eq!(repr.emit(&mut buf).unwrap(), 14);
        assert_eq!(&buf[12..14], &[0x86, 0xdd]);
        let parsed = EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(parsed, repr);
        assert_eq!(
            repr.emit(&mut buf[..13]).unwrap_err(),
            EthernetError::BufferTooSmall {
                needed: 14,
                available: 13
            }
        );
    }

    #[test]
    fn mac_text_forms() {
        assert!("aa:bb:cc:dd:ee".parse::<MacAddr>().is_err());
        assert!("aa:bb:cc:dd:ee:ff:00".parse::<MacAddr>().is_err());
        assert!("aa:bb:cc:dd:ee:zz".parse::<MacAddr>().is_err());
        assert!("aaa:bb:cc:dd:ee:ff".parse::<MacAddr>().is_err());
        let m: MacAddr = "AA:bb:0c:dd:ee:ff".parse().unwrap();
        assert_eq!(format!("{m:?}"), "aa:bb:0c:dd:ee:ff");
        assert!(m.is_local());
    }

    #[test]
    fn ethertype_names() {
        assert_eq!(EtherType(0x0800).to_string(), "ipv4");
        assert_eq!(EtherType(0x1234).to_string(), "0x1234");
        assert!(EtherType(0x05dc).is_length());
        assert!(!EtherType(0x0600).is_length());
        assert!(EtherType::QINQ.is_vlan_tpid());
        assert!(!EtherType::IPV4.is_vlan_tpid());
    }
}
