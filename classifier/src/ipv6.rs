//! The fixed 40-byte IPv6 header (RFC 8200 §3).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------+---------------+---------------------------------------+
//! |Version| Traffic Class |              Flow Label               |
//! +-------+---------------+-------+---------------+---------------+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-------------------------------+---------------+---------------+
//! |                    Source Address (128 bits)                  |
//! |                 Destination Address (128 bits)                |
//! ```
//!
//! Unlike IPv4 there is no header checksum and no options inside this
//! header: options live in extension headers chained through Next Header,
//! walked by [`crate::ipv6_ext`]. [`Ipv6Packet::payload`] is bounded by
//! Payload Length, which covers the extension headers too.

use core::fmt;
use std::net::Ipv6Addr;

use crate::field::{be16, be32, need, set_be16, set_be32};
use crate::ip::{Ecn, IpProtocol};

/// Everything that can be wrong with an IPv6 header, or with a request to
/// emit one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Error {
    /// Fewer than 40 bytes.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// The version nibble is not 6.
    BadVersion(u8),
    /// Payload Length runs past the end of the frame.
    PayloadLengthBeyondFrame {
        /// The Payload Length field.
        payload_len: u16,
        /// Bytes present after the 40-byte header.
        available: usize,
    },
    /// Emit: the flow label does not fit in 20 bits.
    FlowLabelOutOfRange(u32),
    /// Emit: the payload does not fit in 16 bits (jumbograms are not supported).
    PayloadTooLong(usize),
    /// Emit: the destination buffer is shorter than the header.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl Ipv6Error {
    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            Ipv6Error::Truncated { .. } => "ipv6.truncated",
            Ipv6Error::BadVersion(_) => "ipv6.bad_version",
            Ipv6Error::PayloadLengthBeyondFrame { .. } => "ipv6.payload_length_beyond_frame",
            Ipv6Error::FlowLabelOutOfRange(_) => "ipv6.flow_label_out_of_range",
            Ipv6Error::PayloadTooLong(_) => "ipv6.payload_too_long",
            Ipv6Error::BufferTooSmall { .. } => "ipv6.buffer_too_small",
        }
    }
}

impl fmt::Display for Ipv6Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv6Error::Truncated { available } => write!(
                f,
                "only {available} bytes, fewer than the 40-byte IPv6 header"
            ),
            Ipv6Error::BadVersion(v) => write!(f, "version field is {v}, expected 6"),
            Ipv6Error::PayloadLengthBeyondFrame {
                payload_len,
                available,
            } => write!(
                f,
                "payload length {payload_len} exceeds the {available} bytes after the header"
            ),
            Ipv6Error::FlowLabelOutOfRange(l) => {
                write!(f, "flow label 0x{l:x} does not fit in 20 bits")
            }
            Ipv6Error::PayloadTooLong(n) => {
                write!(
                    f,
                    "payload of {n} bytes does not fit the 16-bit payload length"
                )
            }
            Ipv6Error::BufferTooSmall { needed, available } => write!(
                f,
                "IPv6 header needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for Ipv6Error {}

mod off {
    pub const VTF: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = 40;

    /// Wraps without checking; accessors may panic on malformed buffers.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps after validating length, version and Payload Length.
    pub fn new_checked(buffer: T) -> Result<Self, Ipv6Error> {
        let b = buffer.as_ref();
        let available = b.len();
        if available < Self::HEADER_LEN {
            return Err(Ipv6Error::Truncated { available });
        }
        let version = b[0] >> 4;
        if version != 6 {
            return Err(Ipv6Error::BadVersion(version));
        }
        let payload_len = be16(b, off::PAYLOAD_LEN);
        if usize::from(payload_len) > available - Self::HEADER_LEN {
            return Err(Ipv6Error::PayloadLengthBeyondFrame {
                payload_len,
                available: available - Self::HEADER_LEN,
            });
        }
        Ok(Ipv6Packet { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn vtf(&self) -> u32 {
        be32(self.buffer.as_ref(), off::VTF)
    }

    /// Always 6 for a checked view.
    pub fn version(&self) -> u8 {
        (self.vtf() >> 28) as u8
    }

    /// Traffic class (DSCP << 2 | ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.vtf() >> 20) as u8
    }

    /// ECN codepoint.
    pub fn ecn(&self) -> Ecn {
        Ecn::from_tos(self.traffic_class())
    }

    /// 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.vtf() & 0x000f_ffff
    }

    /// Bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), off::PAYLOAD_LEN)
    }

    /// The first extension header or upper-layer protocol.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[off::NEXT_HEADER])
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[off::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr_at(self.buffer.as_ref(), off::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr_at(self.buffer.as_ref(), off::DST)
    }

    /// The 40-byte header.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..Self::HEADER_LEN]
    }

    /// Extension headers + upper layer, bounded by Payload Length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..Self::HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_vtf(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), off::VTF, v);
    }

    /// Writes version 6, the traffic class and the flow label (low 20 bits).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        self.set_vtf((6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff));
    }

    /// Overwrites the traffic class (no checksum to patch in IPv6).
    pub fn set_traffic_class(&mut self, tc: u8) {
        let v = (self.vtf() & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_vtf(v);
    }

    /// Overwrites only the ECN bits.
    pub fn set_ecn(&mut self, ecn: Ecn) {
        let tc = (self.traffic_class() & !3) | ecn.bits();
        self.set_traffic_class(tc);
    }

    /// Overwrites the flow label (low 20 bits of `label`).
    pub fn set_flow_label(&mut self, label: u32) {
        let v = (self.vtf() & 0xfff0_0000) | (label & 0x000f_ffff);
        self.set_vtf(v);
    }

    /// Overwrites Payload Length.
    pub fn set_payload_len(&mut self, len: u16) {
        set_be16(self.buffer.as_mut(), off::PAYLOAD_LEN, len);
    }

    /// Overwrites Next Header.
    pub fn set_next_header(&mut self, nh: IpProtocol) {
        self.buffer.as_mut()[off::NEXT_HEADER] = nh.0;
    }

    /// Overwrites the hop limit.
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[off::HOP_LIMIT] = h;
    }

    /// Overwrites the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[off::SRC..off::SRC + 16].copy_from_slice(&a.octets());
    }

    /// Overwrites the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[off::DST..off::DST + 16].copy_from_slice(&a.octets());
    }

    /// Mutable access to the payload (bounded by Payload Length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = Self::HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[Self::HEADER_LEN..end]
    }
}

/// The owned, parsed form of the fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// First extension header or upper-layer protocol.
    pub next_header: IpProtocol,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP << 2 | ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Bytes after the fixed header, extension headers included.
    pub payload_len: usize,
}

impl Ipv6Repr {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Self, Ipv6Error> {
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
            payload_len: usize::from(packet.payload_len()),
        })
    }

    /// Bytes [`Self::emit`] writes (always 40).
    pub const fn buffer_len(&self) -> usize {
        Ipv6Packet::<&[u8]>::HEADER_LEN
    }

    /// Writes the fixed header to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Ipv6Error> {
        if self.flow_label > 0x000f_ffff {
            return Err(Ipv6Error::FlowLabelOutOfRange(self.flow_label));
        }
        let payload_len = u16::try_from(self.payload_len)
            .map_err(|_| Ipv6Error::PayloadTooLong(self.payload_len))?;
        need(buf.len(), self.buffer_len())
            .map_err(|(needed, available)| Ipv6Error::BufferTooSmall { needed, available })?;
        let mut p = Ipv6Packet::new_unchecked(buf);
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        Ok(self.buffer_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // fe80::1 -> ff02::1, traffic class 0xb8 (EF), flow label 0x12345,
    // payload 8 bytes of UDP, hop limit 255.
    const HDR: [u8; 40] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x08, 0x11, 0xff, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    ];

    #[test]
    fn reads_fields() {
        let mut buf = HDR.to_vec();
        buf.extend_from_slice(&[0u8; 8]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), IpProtocol::UDP);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src_addr(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 8);
        let repr = Ipv6Repr::parse(&p).unwrap();
        let mut out = [0u8; 40];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, HDR);
    }

    #[test]
    fn validation_errors() {
        assert_eq!(
            Ipv6Packet::new_checked(&HDR[..39]).unwrap_err(),
            Ipv6Error::Truncated { available: 39 }
        );
        let mut b = HDR;
        b[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            Ipv6Error::BadVersion(4)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&HDR[..]).unwrap_err(),
            Ipv6Error::PayloadLengthBeyondFrame {
                payload_len: 8,
                available: 0
            }
        );
    }

    #[test]
    fn setters_preserve_neighbours() {
        let mut buf = HDR.to_vec();
        buf.extend_from_slice(&[0u8; 8]);
        let mut p = Ipv6Packet::new_checked(&mut buf[..]).unwrap();
        p.set_ecn(Ecn::Ce);
        assert_eq!(p.traffic_class(), 0xbb);
        assert_eq!(p.flow_label(), 0x12345);
        p.set_flow_label(0xfffff);
        assert_eq!(p.traffic_class(), 0xbb);
        assert_eq!(p.version(), 6);
    }

    #[test]
    fn emit_range_checks() {
        let mut r = Ipv6Repr {
            src_addr: Ipv6Addr::LOCALHOST,
            dst_addr: Ipv6Addr::LOCALHOST,
            next_header: IpProtocol::UDP,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0x10_0000,
            payload_len: 0,
        };
        let mut buf = [0u8; 40];
        assert_eq!(
            r.emit(&mut buf),
            Err(Ipv6Error::FlowLabelOutOfRange(0x10_0000))
        );
        r.flow_label = 0;
        r.payload_len = 70_000;
        assert_eq!(r.emit(&mut buf), Err(Ipv6Error::PayloadTooLong(70_000)));
    }
}
