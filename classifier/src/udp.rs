//! The UDP header (RFC 768).
//!
//! ```text
//! +----------------+----------------+----------------+----------------+
//! |   Source Port  | Destination Port|     Length     |    Checksum    |
//! +----------------+----------------+----------------+----------------+
//! ```
//!
//! Length covers header and payload, so [`UdpPacket::payload`] is bounded by
//! it rather than by the buffer. The checksum is optional over IPv4 (0 means
//! "not computed", which RoCEv2 senders commonly use because the ICRC
//! already protects the payload) and mandatory over IPv6.

use core::fmt;

use crate::checksum::PseudoHeader;
use crate::field::{be16, need, set_be16};
use crate::ip::IpProtocol;

/// Everything that can be wrong with a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpError {
    /// Fewer than 8 bytes.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// The Length field is below the 8-byte header size.
    LengthTooSmall(u16),
    /// The Length field runs past the IP payload.
    LengthBeyondPacket {
        /// The Length field.
        length: u16,
        /// Bytes the IP layer delivered.
        available: usize,
    },
    /// Emit: header + payload exceed 65535 bytes.
    PayloadTooLong(usize),
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl UdpError {
    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            UdpError::Truncated { .. } => "udp.truncated",
            UdpError::LengthTooSmall(_) => "udp.length_too_small",
            UdpError::LengthBeyondPacket { .. } => "udp.length_beyond_packet",
            UdpError::PayloadTooLong(_) => "udp.payload_too_long",
            UdpError::BufferTooSmall { .. } => "udp.buffer_too_small",
        }
    }
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            UdpError::Truncated { available } => {
                write!(
                    f,
                    "only {available} bytes, fewer than the 8-byte UDP header"
                )
            }
            UdpError::LengthTooSmall(l) => {
                write!(f, "length field {l} is below the 8-byte header size")
            }
            UdpError::LengthBeyondPacket { length, available } => write!(
                f,
                "length field {length} exceeds the {available} bytes of IP payload"
            ),
            UdpError::PayloadTooLong(n) => {
                write!(f, "datagram of {n} bytes does not fit the 16-bit length")
            }
            UdpError::BufferTooSmall { needed, available } => write!(
                f,
                "UDP header needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for UdpError {}

/// A zero-copy view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Header length.
    pub const HEADER_LEN: usize = 8;

    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps after proving `8 ≤ Length ≤ buffer length`. `buffer` should be
    /// the IP payload, so that the check is against what IP delivered.
    pub fn new_checked(buffer: T) -> Result<Self, UdpError> {
        let b = buffer.as_ref();
        let available = b.len();
        if available < Self::HEADER_LEN {
            return Err(UdpError::Truncated { available });
        }
        let length = be16(b, 4);
        if usize::from(length) < Self::HEADER_LEN {
            return Err(UdpError::LengthTooSmall(length));
        }
        if usize::from(length) > available {
            return Err(UdpError::LengthBeyondPacket { length, available });
        }
        Ok(UdpPacket { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Header + payload length.
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// True when the datagram has no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == Self::HEADER_LEN
    }

    /// Checksum field (0 = not computed, IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// Header + payload, bounded by Length.
    pub fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// The payload's length, from Length (which `new_checked` proved is
    /// at least the header's).
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(self.len()).saturating_sub(Self::HEADER_LEN)
    }

    /// The payload, bounded by Length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum is acceptable: correct, or absent over IPv4.
    pub fn verify_checksum(&self, pseudo: &PseudoHeader) -> bool {
        if self.checksum() == 0 {
            return matches!(pseudo, PseudoHeader::V4 { .. });
        }
        pseudo.checksum(IpProtocol::UDP, self.datagram()) == 0
    }

    /// The value the checksum field should hold (never 0, which would mean
    /// "absent": a computed 0 is sent as 0xFFFF).
    pub fn compute_checksum(&self, pseudo: &PseudoHeader) -> u16 {
        let d = self.datagram();
        let s = pseudo.sum(IpProtocol::UDP, d.len());
        let s = crate::checksum::partial_sum(s, &d[..6]);
        let s = crate::checksum::partial_sum(s, &d[8..]);
        match !(s as u16) {
            0 => 0xffff,
            c => c,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Overwrites the source port (checksum not updated).
    pub fn set_src_port(&mut self, p: u16) {
        set_be16(self.buffer.as_mut(), 0, p);
    }

    /// Overwrites the destination port (checksum not updated).
    pub fn set_dst_port(&mut self, p: u16) {
        set_be16(self.buffer.as_mut(), 2, p);
    }

    /// Overwrites Length.
    pub fn set_len(&mut self, l: u16) {
        set_be16(self.buffer.as_mut(), 4, l);
    }

    /// Overwrites the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        set_be16(self.buffer.as_mut(), 6, c);
    }

    /// Computes and stores the checksum over header + payload.
    pub fn fill_checksum(&mut self, pseudo: &PseudoHeader) {
        let c = self.compute_checksum(pseudo);
        self.set_checksum(c);
    }

    /// Mutable payload, bounded by Length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[Self::HEADER_LEN..end]
    }
}

/// The owned, parsed form of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload bytes after the header.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads a checked view. The checksum is not verified here; see
    /// [`UdpPacket::verify_checksum`].
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> Result<Self, UdpError> {
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: usize::from(p.len()) - UdpPacket::<&[u8]>::HEADER_LEN,
        })
    }

    /// Header bytes [`Self::emit`] writes (8).
    pub const fn buffer_len(&self) -> usize {
        UdpPacket::<&[u8]>::HEADER_LEN
    }

    /// Writes the header with a zero checksum to the front of `buf`. Place
    /// the payload after it, then call [`UdpPacket::fill_checksum`] (or
    /// leave 0, which IPv4 and RoCEv2 permit).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, UdpError> {
        let total = UdpPacket::<&[u8]>::HEADER_LEN + self.payload_len;
        let total = u16::try_from(total).map_err(|_| UdpError::PayloadTooLong(total))?;
        need(buf.len(), self.buffer_len())
            .map_err(|(needed, available)| UdpError::BufferTooSmall { needed, available })?;
        let mut p = UdpPacket::new_unchecked(buf);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(total);
        p.set_checksum(0);
        Ok(self.buffer_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    // DNS query header from 192.168.0.1:1024 to 192.168.0.199:53 carrying "hi".
    fn datagram() -> [u8; 10] {
        [0x04, 0x00, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, b'h', b'i']
    }

    fn v4() -> PseudoHeader {
        PseudoHeader::V4 {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
        }
    }

    #[test]
    fn fields_and_checksum() {
        let mut d = datagram();
        let mut p = UdpPacket::new_checked(&mut d[..]).unwrap();
        assert_eq!(p.src_port(), 1024);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.payload(), b"hi");
        // Zero checksum is acceptable over IPv4 only.
        assert!(p.verify_checksum(&v4()));
        let v6 = PseudoHeader::V6 {
            src: Ipv6Addr::LOCALHOST,
            dst: Ipv6Addr::LOCALHOST,
        };
        assert!(!p.verify_checksum(&v6));
        p.fill_checksum(&v4());
        // By hand: pseudo-header + header + "hi" words sum to 0x1eedb,
        // which folds to 0xeedc; the checksum is its complement.
        assert_eq!(p.checksum(), !0xeedcu16);
        assert!(p.verify_checksum(&v4()));
        p.set_dst_port(54);
        assert!(!p.verify_checksum(&v4()));
        p.fill_checksum(&v6);
        assert!(p.verify_checksum(&v6));
    }

    #[test]
    fn trailing_bytes_are_not_payload() {
        let mut buf = datagram().to_vec();
        buf.extend_from_slice(&[0xee; 6]);
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), b"hi");
    }

    #[test]
    fn length_errors() {
        let d = datagram();
        assert_eq!(
            UdpPacket::new_checked(&d[..7]).unwrap_err(),
            UdpError::Truncated { available: 7 }
        );
        let mut b = d;
        b[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            UdpError::LengthTooSmall(7)
        );
        b[5] = 11;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            UdpError::LengthBeyondPacket {
                length: 11,
                available: 10
            }
        );
    }

    #[test]
    fn emit_round_trip() {
        let r = UdpRepr {
            src_port: 49152,
            dst_port: 4791,
            payload_len: 2,
        };
        let mut buf = [0u8; 10];
        assert_eq!(r.emit(&mut buf).unwrap(), 8);
        assert_eq!(&buf[..8], &[0xc0, 0x00, 0x12, 0xb7, 0x00, 0x0a, 0x00, 0x00]);
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p).unwrap(), r);
        let too_big = UdpRepr {
            payload_len: 65528,
            ..r
        };
        assert_eq!(too_big.emit(&mut buf), Err(UdpError::PayloadTooLong(65536)));
    }
}
