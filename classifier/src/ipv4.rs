//! The IPv4 header (RFC 791), options included.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------+-------+-----------+---+-------------------------------+
//! |Version|  IHL  |    DSCP   |ECN|          Total Length         |
//! +-------+-------+-----------+---+-+-+-+-------------------------+
//! |         Identification        |R|D|M|     Fragment Offset     |
//! +---------------+---------------+-+-+-+-------------------------+
//! |      TTL      |    Protocol   |        Header Checksum        |
//! +---------------+---------------+-------------------------------+
//! |                        Source Address                         |
//! |                      Destination Address                      |
//! |                    Options (IHL > 5) ...                      |
//! ```
//!
//! [`Ipv4Packet::new_checked`] establishes, once, every invariant the
//! accessors rely on: at least 20 bytes, version 4, IHL ≥ 5, the IHL-sized
//! header present, and `IHL*4 ≤ Total Length ≤ buffer length`. Bytes past
//! Total Length (Ethernet minimum-size padding) are ignored by
//! [`Ipv4Packet::payload`].
//!
//! The header checksum is *not* checked by `new_checked`, so that tools can
//! still look inside a corrupted packet; call [`Ipv4Packet::verify_checksum`]
//! (the fast-path parser does).

use core::fmt;
use std::net::Ipv4Addr;

use crate::checksum;
use crate::field::{be16, be32, need, set_be16};
use crate::ip::{Ecn, IpProtocol};
use crate::ipv4_option::Ipv4OptionIter;

/// Everything that can be wrong with an IPv4 header, or with a request to
/// emit one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Fewer than 20 bytes: the fixed header does not fit.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// The version nibble is not 4.
    BadVersion(u8),
    /// IHL below 5 cannot even cover the fixed header.
    IhlTooSmall(u8),
    /// IHL announces a header longer than the bytes present.
    HeaderTruncated {
        /// IHL × 4.
        ihl_bytes: usize,
        /// Bytes present.
        available: usize,
    },
    /// Total Length is smaller than the header itself.
    TotalLengthBelowHeader {
        /// The Total Length field.
        total_len: u16,
        /// IHL × 4.
        ihl_bytes: usize,
    },
    /// Total Length runs past the end of the frame.
    TotalLengthBeyondFrame {
        /// The Total Length field.
        total_len: u16,
        /// Bytes present from the start of the IPv4 header.
        available: usize,
    },
    /// The header checksum does not verify.
    BadChecksum {
        /// The checksum field as received.
        stored: u16,
        /// What the field should contain.
        computed: u16,
    },
    /// Emit: options must fill whole 32-bit words.
    OptionsNotAligned(usize),
    /// Emit: at most 40 bytes of options fit (IHL is 4 bits).
    OptionsTooLong(usize),
    /// Emit: the fragment offset does not fit in 13 bits.
    FragmentOffsetOutOfRange(u16),
    /// Emit: header + payload exceed 65535 bytes.
    PayloadTooLong(usize),
    /// Emit: the destination buffer is shorter than the header.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl Ipv4Error {
    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            Ipv4Error::Truncated { .. } => "ipv4.truncated",
            Ipv4Error::BadVersion(_) => "ipv4.bad_version",
            Ipv4Error::IhlTooSmall(_) => "ipv4.ihl_too_small",
            Ipv4Error::HeaderTruncated { .. } => "ipv4.header_truncated",
            Ipv4Error::TotalLengthBelowHeader { .. } => "ipv4.total_length_below_header",
            Ipv4Error::TotalLengthBeyondFrame { .. } => "ipv4.total_length_beyond_frame",
            Ipv4Error::BadChecksum { .. } => "ipv4.bad_checksum",
            Ipv4Error::OptionsNotAligned(_) => "ipv4.options_not_aligned",
            Ipv4Error::OptionsTooLong(_) => "ipv4.options_too_long",
            Ipv4Error::FragmentOffsetOutOfRange(_) => "ipv4.fragment_offset_out_of_range",
            Ipv4Error::PayloadTooLong(_) => "ipv4.payload_too_long",
            Ipv4Error::BufferTooSmall { .. } => "ipv4.buffer_too_small",
        }
    }
}

impl fmt::Display for Ipv4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv4Error::Truncated { available } => write!(
                f,
                "only {available} bytes, fewer than the 20-byte IPv4 header"
            ),
            Ipv4Error::BadVersion(v) => write!(f, "version field is {v}, expected 4"),
            Ipv4Error::IhlTooSmall(ihl) => {
                write!(f, "IHL {ihl} is below the minimum of 5 (20 bytes)")
            }
            Ipv4Error::HeaderTruncated {
                ihl_bytes,
                available,
            } => write!(
                f,
                "IHL announces a {ihl_bytes}-byte header but only {available} bytes are present"
            ),
            Ipv4Error::TotalLengthBelowHeader {
                total_len,
                ihl_bytes,
            } => write!(
                f,
                "total length {total_len} is smaller than the {ihl_bytes}-byte header"
            ),
            Ipv4Error::TotalLengthBeyondFrame {
                total_len,
                available,
            } => write!(
                f,
                "total length {total_len} exceeds the {available} bytes left in the frame"
            ),
            Ipv4Error::BadChecksum { stored, computed } => write!(
                f,
                "header checksum 0x{stored:04x} does not match computed 0x{computed:04x}"
            ),
            Ipv4Error::OptionsNotAligned(n) => {
                write!(f, "{n} bytes of options is not a multiple of 4")
            }
            Ipv4Error::OptionsTooLong(n) => {
                write!(f, "{n} bytes of options exceeds the 40-byte maximum")
            }
            Ipv4Error::FragmentOffsetOutOfRange(o) => {
                write!(f, "fragment offset {o} does not fit in 13 bits")
            }
            Ipv4Error::PayloadTooLong(n) => {
                write!(f, "packet of {n} bytes exceeds the 65535-byte IPv4 maximum")
            }
            Ipv4Error::BufferTooSmall { needed, available } => write!(
                f,
                "IPv4 header needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for Ipv4Error {}

mod off {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// A zero-copy view of an IPv4 packet (header, options and payload).
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of the fixed header.
    pub const MIN_HEADER_LEN: usize = 20;
    /// Length of the largest header (IHL 15).
    pub const MAX_HEADER_LEN: usize = 60;

    /// Wraps without checking; accessors may panic on malformed buffers.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps after validating version and every length field (see the
    /// module documentation for the exact invariants).
    pub fn new_checked(buffer: T) -> Result<Self, Ipv4Error> {
        let b = buffer.as_ref();
        let available = b.len();
        if available < Self::MIN_HEADER_LEN {
            return Err(Ipv4Error::Truncated { available });
        }
        let version = b[off::VER_IHL] >> 4;
        if version != 4 {
            return Err(Ipv4Error::BadVersion(version));
        }
        let ihl = b[off::VER_IHL] & 0x0f;
        if ihl < 5 {
            return Err(Ipv4Error::IhlTooSmall(ihl));
        }
        let ihl_bytes = usize::from(ihl) * 4;
        if ihl_bytes > available {
            return Err(Ipv4Error::HeaderTruncated {
                ihl_bytes,
                available,
            });
        }
        let total_len = be16(b, off::TOTAL_LEN);
        if usize::from(total_len) < ihl_bytes {
            return Err(Ipv4Error::TotalLengthBelowHeader {
                total_len,
                ihl_bytes,
            });
        }
        if usize::from(total_len) > available {
            return Err(Ipv4Error::TotalLengthBeyondFrame {
                total_len,
                available,
            });
        }
        Ok(Ipv4Packet { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Always 4 for a checked view.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[off::VER_IHL] >> 4
    }

    /// Header length in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[off::VER_IHL] & 0x0f
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// The whole TOS byte (DSCP << 2 | ECN).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[off::TOS]
    }

    /// Differentiated Services code point.
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    /// ECN codepoint.
    pub fn ecn(&self) -> Ecn {
        Ecn::from_tos(self.dscp_ecn())
    }

    /// Header + payload length as announced by the sender.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), off::TOTAL_LEN)
    }

    /// Identification, shared by all fragments of one datagram.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), off::IDENT)
    }

    /// Don't Fragment flag (RoCEv2 and TCP with PMTUD set it).
    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[off::FLAGS_FRAG] & 0x40 != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[off::FLAGS_FRAG] & 0x20 != 0
    }

    /// Fragment offset in 8-octet units.
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), off::FLAGS_FRAG) & 0x1fff
    }

    /// True for any fragment of a fragmented datagram, first one included.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[off::TTL]
    }

    /// The upper-layer protocol.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[off::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), off::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.buffer.as_ref(), 12))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.buffer.as_ref(), 16))
    }

    /// The whole header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The option bytes (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::MIN_HEADER_LEN..self.header_len()]
    }

    /// Iterates over the options; see [`Ipv4OptionIter`].
    pub fn option_iter(&self) -> Ipv4OptionIter<'_> {
        Ipv4OptionIter::new(self.options())
    }

    /// The payload, bounded by Total Length (trailing padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// The header checksum the header should carry.
    pub fn compute_checksum(&self) -> u16 {
        let h = self.header();
        // Sum around the checksum field instead of copying the header.
        let s = checksum::partial_sum(0, &h[..off::CHECKSUM]);
        let s = checksum::partial_sum(s, &h[off::CHECKSUM + 2..]);
        !(s as u16)
    }

    /// True when the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.header())
    }

    /// Like [`Self::verify_checksum`] but says what was expected.
    pub fn check_checksum(&self) -> Result<(), Ipv4Error> {
        if self.verify_checksum() {
            Ok(())
        } else {
            Err(Ipv4Error::BadChecksum {
                stored: self.checksum(),
                computed: self.compute_checksum(),
            })
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn set_byte(&mut self, at: usize, v: u8) {
        self.buffer.as_mut()[at] = v;
    }

    /// Writes version 4 and the given IHL (in words).
    pub fn set_version_ihl(&mut self, ihl: u8) {
        self.set_byte(off::VER_IHL, 0x40 | (ihl & 0x0f));
    }

    /// Overwrites the TOS byte without fixing the checksum.
    pub fn set_dscp_ecn(&mut self, tos: u8) {
        self.set_byte(off::TOS, tos);
    }

    /// Overwrites Total Length without fixing the checksum.
    pub fn set_total_len(&mut self, len: u16) {
        set_be16(self.buffer.as_mut(), off::TOTAL_LEN, len);
    }

    /// Overwrites Identification without fixing the checksum.
    pub fn set_ident(&mut self, ident: u16) {
        set_be16(self.buffer.as_mut(), off::IDENT, ident);
    }

    /// Overwrites flags and fragment offset (offset in 8-octet units).
    pub fn set_flags_frag(&mut self, dont_frag: bool, more_frags: bool, frag_offset: u16) {
        let v =
            (u16::from(dont_frag) << 14) | (u16::from(more_frags) << 13) | (frag_offset & 0x1fff);
        set_be16(self.buffer.as_mut(), off::FLAGS_FRAG, v);
    }

    /// Overwrites TTL without fixing the checksum.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.set_byte(off::TTL, ttl);
    }

    /// Overwrites the protocol without fixing the checksum.
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.set_byte(off::PROTOCOL, p.0);
    }

    /// Overwrites the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        set_be16(self.buffer.as_mut(), off::CHECKSUM, c);
    }

    /// Overwrites the source address without fixing the checksum.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[off::SRC..off::SRC + 4].copy_from_slice(&a.octets());
    }

    /// Overwrites the destination address without fixing the checksum.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[off::DST..off::DST + 4].copy_from_slice(&a.octets());
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.set_checksum(c);
    }

    /// Rewrites TTL and patches the checksum incrementally (RFC 1624), the
    /// way a forwarding element does, so that an already-bad checksum stays
    /// bad rather than being silently "repaired".
    pub fn set_ttl_incremental(&mut self, ttl: u8) {
        let old = self.ttl();
        let c = checksum::update8(self.checksum(), old, ttl, true);
        self.set_ttl(ttl);
        self.set_checksum(c);
    }

    /// Rewrites the TOS byte (DSCP + ECN) and patches the checksum incrementally.
    pub fn set_dscp_ecn_incremental(&mut self, tos: u8) {
        let old = self.dscp_ecn();
        let c = checksum::update8(self.checksum(), old, tos, false);
        self.set_dscp_ecn(tos);
        self.set_checksum(c);
    }

    /// Rewrites only the ECN bits (e.g. ECT(0) → CE) and patches the checksum.
    pub fn set_ecn_incremental(&mut self, ecn: Ecn) {
        let tos = (self.dscp_ecn() & !3) | ecn.bits();
        self.set_dscp_ecn_incremental(tos);
    }

    /// Rewrites the source address and patches the header checksum. The
    /// UDP/TCP checksum covers the address too; patch it with
    /// [`checksum::update_bytes`] using the same old/new octets.
    pub fn set_src_addr_incremental(&mut self, a: Ipv4Addr) {
        let old = self.src_addr().octets();
        let c = checksum::update_bytes(self.checksum(), &old, &a.octets());
        self.set_src_addr(a);
        // update_bytes only returns None for unequal/odd lengths; 4 == 4.
        if let Some(c) = c {
            self.set_checksum(c);
        }
    }

    /// Rewrites the destination address and patches the header checksum.
    pub fn set_dst_addr_incremental(&mut self, a: Ipv4Addr) {
        let old = self.dst_addr().octets();
        let c = checksum::update_bytes(self.checksum(), &old, &a.octets());
        self.set_dst_addr(a);
        if let Some(c) = c {
            self.set_checksum(c);
        }
    }

    /// Mutable access to the payload (bounded by Total Length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[start..end]
    }
}

/// The owned, parsed form of an IPv4 header. Options are borrowed from the
/// packet (or from the caller, when emitting) to stay allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr<'a> {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Upper-layer protocol.
    pub protocol: IpProtocol,
    /// TOS byte: DSCP << 2 | ECN.
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment flag.
    pub dont_frag: bool,
    /// More Fragments flag.
    pub more_frags: bool,
    /// Fragment offset in 8-octet units (13 bits).
    pub frag_offset: u16,
    /// Time to live.
    pub ttl: u8,
    /// Raw option bytes; a multiple of 4, at most 40.
    pub options: &'a [u8],
    /// Bytes following the header (Total Length − header length).
    pub payload_len: usize,
}

impl<'a> Ipv4Repr<'a> {
    /// Reads a checked view. The checksum is not verified here; see
    /// [`Ipv4Packet::check_checksum`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&'a T>) -> Result<Self, Ipv4Error> {
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        let header_len = packet.header_len();
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            ttl: packet.ttl(),
            options: &bytes[Ipv4Packet::<&[u8]>::MIN_HEADER_LEN..header_len],
            payload_len: usize::from(packet.total_len()) - header_len,
        })
    }

    /// Header bytes [`Self::emit`] writes (20 + options).
    pub const fn buffer_len(&self) -> usize {
        Ipv4Packet::<&[u8]>::MIN_HEADER_LEN + self.options.len()
    }

    /// Writes the header, with a correct checksum, to the front of `buf`.
    /// The payload is the caller's to place after it.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Ipv4Error> {
        let opt_len = self.options.len();
        if opt_len > 40 {
            return Err(Ipv4Error::OptionsTooLong(opt_len));
        }
        if opt_len % 4 != 0 {
            return Err(Ipv4Error::OptionsNotAligned(opt_len));
        }
        if self.frag_offset > 0x1fff {
            return Err(Ipv4Error::FragmentOffsetOutOfRange(self.frag_offset));
        }
        let header_len = self.buffer_len();
        let total = header_len + self.payload_len;
        if total > usize::from(u16::MAX) {
            return Err(Ipv4Error::PayloadTooLong(total));
        }
        need(buf.len(), header_len)
            .map_err(|(needed, available)| Ipv4Error::BufferTooSmall { needed, available })?;
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..header_len]);
        p.set_version_ihl((header_len / 4) as u8);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len(total as u16);
        p.set_ident(self.ident);
        p.set_flags_frag(self.dont_frag, self.more_frags, self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_checksum(0);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        let b = p.into_inner();
        b[Ipv4Packet::<&[u8]>::MIN_HEADER_LEN..].copy_from_slice(self.options);
        let c = checksum::checksum(b);
        set_be16(b, off::CHECKSUM, c);
        Ok(header_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4_option::Ipv4OptionType;

    // 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73, DF, TTL 64,
    // checksum 0xb861 (the classic Wikipedia IPv4 checksum example).
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet_with_payload() -> Vec<u8> {
        let mut v = HDR.to_vec();
        v.resize(0x73, 0xab);
        v
    }

    #[test]
    fn reads_fields() {
        let buf = packet_with_payload();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.verify_checksum());
        assert_eq!(p.compute_checksum(), 0xb861);
        assert_eq!(p.payload().len(), 0x73 - 20);
        assert!(p.options().is_empty());
    }

    #[test]
    fn trailing_padding_is_not_payload() {
        let mut buf = packet_with_payload();
        buf.extend_from_slice(&[0; 10]);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 0x73 - 20);
    }

    #[test]
    fn each_length_violation_has_its_own_error() {
        let buf = packet_with_payload();
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..19]).unwrap_err(),
            Ipv4Error::Truncated { available: 19 }
        );
        let mut b = buf.clone();
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Ipv4Error::BadVersion(6)
        );
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Ipv4Error::IhlTooSmall(4)
        );
        b[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..40]).unwrap_err(),
            Ipv4Error::HeaderTruncated {
                ihl_bytes: 60,
                available: 40
            }
        );
        let mut b = buf.clone();
        b[2] = 0;
        b[3] = 19;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Ipv4Error::TotalLengthBelowHeader {
                total_len: 19,
                ihl_bytes: 20
            }
        );
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..100]).unwrap_err(),
            Ipv4Error::TotalLengthBeyondFrame {
                total_len: 0x73,
                available: 100
            }
        );
    }

    #[test]
    fn options_are_exposed_and_iterated() {
        // IHL 6: Router Alert option (RFC 2113), 4 bytes.
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(224, 0, 0, 22),
            protocol: IpProtocol(2),
            dscp_ecn: 0xc0,
            ident: 0x1234,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            ttl: 1,
            options: &[0x94, 0x04, 0x00, 0x00],
            payload_len: 8,
        };
        let mut buf = [0u8; 32];
        assert_eq!(repr.emit(&mut buf).unwrap(), 24);
        assert_eq!(buf[0], 0x46);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        let opts: Vec<_> = p.option_iter().collect();
        assert_eq!(opts.len(), 1);
        assert_eq!(opts[0].unwrap().kind, Ipv4OptionType::ROUTER_ALERT);
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), repr);
    }

    #[test]
    fn emit_rejects_bad_reprs() {
        let mut repr = Ipv4Repr {
            src_addr: Ipv4Addr::LOCALHOST,
            dst_addr: Ipv4Addr::LOCALHOST,
            protocol: IpProtocol::UDP,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            ttl: 64,
            options: &[1, 1, 1],
            payload_len: 0,
        };
        let mut buf = [0u8; 64];
        assert_eq!(repr.emit(&mut buf), Err(Ipv4Error::OptionsNotAligned(3)));
        repr.options = &[1; 44];
        assert_eq!(repr.emit(&mut buf), Err(Ipv4Error::OptionsTooLong(44)));
        repr.options = &[];
        repr.frag_offset = 0x2000;
        assert_eq!(
            repr.emit(&mut buf),
            Err(Ipv4Error::FragmentOffsetOutOfRange(0x2000))
        );
        repr.frag_offset = 0;
        repr.payload_len = 65516;
        assert_eq!(repr.emit(&mut buf), Err(Ipv4Error::PayloadTooLong(65536)));
        repr.payload_len = 0;
        assert_eq!(
            repr.emit(&mut buf[..10]),
            Err(Ipv4Error::BufferTooSmall {
                needed: 20,
                available: 10
            })
        );
    }

    #[test]
    fn incremental_rewrites_keep_checksum_valid() {
        let mut buf = packet_with_payload();
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_ttl_incremental(63);
        assert!(p.verify_checksum());
        p.set_ecn_incremental(Ecn::Ce);
        assert!(p.verify_checksum());
        assert_eq!(p.ecn(), Ecn::Ce);
        p.set_src_addr_incremental(Ipv4Addr::new(10, 1, 2, 3));
        p.set_dst_addr_incremental(Ipv4Addr::new(172, 16, 255, 254));
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), incremental);
    }

    #[test]
    fn bad_checksum_reports_expected_value() {
        let mut buf = packet_with_payload();
        buf[10] = 0;
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            p.check_checksum(),
            Err(Ipv4Error::BadChecksum {
                stored: 0x0061,
                computed: 0xb861
            })
        );
    }
}
