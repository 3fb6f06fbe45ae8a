//! ARP (RFC 826), as used to resolve IPv4 addresses on Ethernet.
//!
//! The appliance forwards ARP untouched; this view exists so that tests and
//! traffic generators can build and inspect requests and replies. The header
//! is generic over hardware and protocol address sizes, so
//! [`ArpPacket::new_checked`] validates the 8-byte fixed part and then the
//! four variable-length addresses; [`ArpRepr`] handles the Ethernet + IPv4
//! case (28 bytes) that matters in practice.

use core::fmt;
use std::net::Ipv4Addr;

use crate::ethernet::{EtherType, MacAddr};
use crate::field::{be16, need, set_be16};

/// ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpOperation(pub u16);

impl ArpOperation {
    /// Who has `target_ip`?
    pub const REQUEST: ArpOperation = ArpOperation(1);
    /// `sender_ip` is at `sender_mac`.
    pub const REPLY: ArpOperation = ArpOperation(2);
}

/// Everything that can be wrong with an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpError {
    /// Fewer than the 8 fixed bytes.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// The declared address sizes run past the buffer.
    AddressesTruncated {
        /// 8 + 2 × (hlen + plen).
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Hardware type/size other than Ethernet (1) with 6-byte addresses.
    UnsupportedHardware {
        /// Hardware type.
        htype: u16,
        /// Hardware address length.
        hlen: u8,
    },
    /// Protocol type/size other than IPv4 with 4-byte addresses.
    UnsupportedProtocol {
        /// Protocol type.
        ptype: u16,
        /// Protocol address length.
        plen: u8,
    },
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for ArpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ArpError::Truncated { available } => {
                write!(
                    f,
                    "only {available} bytes, fewer than the 8-byte ARP header"
                )
            }
            ArpError::AddressesTruncated { needed, available } => write!(
                f,
                "ARP addresses need {needed} bytes but only {available} are present"
            ),
            ArpError::UnsupportedHardware { htype, hlen } => write!(
                f,
                "ARP hardware type {htype} with {hlen}-byte addresses is not Ethernet"
            ),
            ArpError::UnsupportedProtocol { ptype, plen } => write!(
                f,
                "ARP protocol 0x{ptype:04x} with {plen}-byte addresses is not IPv4"
            ),
            ArpError::BufferTooSmall { needed, available } => write!(
                f,
                "ARP packet needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for ArpError {}

/// A zero-copy view of an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// The fixed part before the addresses.
    pub const FIXED_LEN: usize = 8;

    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps after proving the fixed part and all four addresses exist.
    pub fn new_checked(buffer: T) -> Result<Self, ArpError> {
        let b = buffer.as_ref();
        let available = b.len();
        if available < Self::FIXED_LEN {
            return Err(ArpError::Truncated { available });
        }
        let needed = Self::FIXED_LEN + 2 * (usize::from(b[4]) + usize::from(b[5]));
        if needed > available {
            return Err(ArpError::AddressesTruncated { needed, available });
        }
        Ok(ArpPacket { buffer })
    }

    /// Hardware type (1 = Ethernet).
    pub fn htype(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Protocol type (an EtherType, 0x0800 for IPv4).
    pub fn ptype(&self) -> EtherType {
        EtherType(be16(self.buffer.as_ref(), 2))
    }

    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[4]
    }

    /// Protocol address length.
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[5]
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation(be16(self.buffer.as_ref(), 6))
    }

    fn field(&self, index: usize) -> &[u8] {
        let (h, p) = (usize::from(self.hlen()), usize::from(self.plen()));
        let starts = [8, 8 + h, 8 + h + p, 8 + 2 * h + p];
        let lens = [h, p, h, p];
        &self.buffer.as_ref()[starts[index]..starts[index] + lens[index]]
    }

    /// Sender hardware address bytes.
    pub fn sender_hw(&self) -> &[u8] {
        self.field(0)
    }

    /// Sender protocol address bytes.
    pub fn sender_proto(&self) -> &[u8] {
        self.field(1)
    }

    /// Target hardware address bytes.
    pub fn target_hw(&self) -> &[u8] {
        self.field(2)
    }

    /// Target protocol address bytes.
    pub fn target_proto(&self) -> &[u8] {
        self.field(3)
    }
}

/// An Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub sender_mac: MacAddr,
    /// Sender IPv4 address.
    pub sender_ip: Ipv4Addr,
    /// Target MAC (zero in requests).
    pub target_mac: MacAddr,
    /// Target IPv4 address.
    pub target_ip: Ipv4Addr,
}

fn ipv4_from(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl ArpRepr {
    /// Reads a checked view, accepting only Ethernet/IPv4.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self, ArpError> {
        if p.htype() != 1 || p.hlen() != 6 {
            return Err(ArpError::UnsupportedHardware {
                htype: p.htype(),
                hlen: p.hlen(),
            });
        }
        if p.ptype() != EtherType::IPV4 || p.plen() != 4 {
            return Err(ArpError::UnsupportedProtocol {
                ptype: p.ptype().0,
                plen: p.plen(),
            });
        }
        let mac = |b: &[u8]| MacAddr::from_bytes(b).unwrap_or(MacAddr::ZERO);
        Ok(ArpRepr {
            operation: p.operation(),
            sender_mac: mac(p.sender_hw()),
            sender_ip: ipv4_from(p.sender_proto()),
            target_mac: mac(p.target_hw()),
            target_ip: ipv4_from(p.target_proto()),
        })
    }

    /// Always 28.
    pub const fn buffer_len(&self) -> usize {
        28
    }

    /// Writes the message to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, ArpError> {
        need(buf.len(), self.buffer_len())
            .map_err(|(needed, available)| ArpError::BufferTooSmall { needed, available })?;
        set_be16(buf, 0, 1);
        set_be16(buf, 2, EtherType::IPV4.0);
        buf[4] = 6;
        buf[5] = 4;
        set_be16(buf, 6, self.operation.0);
        buf[8..14].copy_from_slice(&self.sender_mac.0);
        buf[14..18].copy_from_slice(&self.sender_ip.octets());
        buf[18..24].copy_from_slice(&self.target_mac.0);
        buf[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(28)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // who-has 10.0.0.2 tell 10.0.0.1, from 52:54:00:12:34:56.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0,
        0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];

    #[test]
    fn parses_request_and_round_trips() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(r.operation, ArpOperation::REQUEST);
        assert_eq!(r.sender_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.target_mac, MacAddr::ZERO);
        let mut out = [0u8; 28];
        r.emit(&mut out).unwrap();
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn errors() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..7]).unwrap_err(),
            ArpError::Truncated { available: 7 }
        );
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(),
            ArpError::AddressesTruncated {
                needed: 28,
                available: 27
            }
        );
        let mut b = REQUEST;
        b[3] = 0x06;
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            ArpRepr::parse(&p),
            Err(ArpError::UnsupportedProtocol {
                ptype: 0x0806,
                plen: 4
            })
        );
        // Oversized address lengths are framed, not trusted.
        let mut b = REQUEST;
        b[4] = 200;
        assert!(matches!(
            ArpPacket::new_checked(&b[..]),
            Err(ArpError::AddressesTruncated { needed: 416, .. })
        ));
    }
}
