//! The TCP header (RFC 9293 §3.1).
//!
//! ```text
//! +-------------------------------+-------------------------------+
//! |          Source Port          |       Destination Port        |
//! +-------------------------------+-------------------------------+
//! |                        Sequence Number                        |
//! |                    Acknowledgment Number                      |
//! +-------+-----+-+-+-+-+-+-+-+-+-+-------------------------------+
//! |  Data | Res |N|C|E|U|A|P|R|S|F|                               |
//! | Offset|     |S|W|C|R|C|S|S|Y|I|            Window             |
//! +-------+-----+-+-+-+-+-+-+-+-+-+-------------------------------+
//! |           Checksum            |         Urgent Pointer        |
//! +-------------------------------+-------------------------------+
//! |                    Options (Data Offset > 5)                  |
//! ```
//!
//! TCP has no length field of its own: the segment is whatever the IP layer
//! delivered, so build the view over the IP payload (which IPv4 Total Length
//! or IPv6 Payload Length already bounded). Options are exposed as raw bytes;
//! the data plane only needs ports and flags, and [`TcpOptionRepr`] exists to
//! build realistic segments in tests and generators.

use core::fmt;

use crate::checksum::{partial_sum, PseudoHeader};
use crate::field::{be16, be32, need, set_be16, set_be32};
use crate::ip::IpProtocol;

/// Everything that can be wrong with a TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpError {
    /// Fewer than 20 bytes.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// Data Offset below 5 words.
    BadDataOffset(u8),
    /// Data Offset announces a header longer than the segment.
    HeaderTruncated {
        /// Data Offset × 4.
        header_len: usize,
        /// Bytes present.
        available: usize,
    },
    /// Emit: options must fill whole 32-bit words.
    OptionsNotAligned(usize),
    /// Emit: at most 40 bytes of options fit.
    OptionsTooLong(usize),
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl TcpError {
    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            TcpError::Truncated { .. } => "tcp.truncated",
            TcpError::BadDataOffset(_) => "tcp.bad_data_offset",
            TcpError::HeaderTruncated { .. } => "tcp.header_truncated",
            TcpError::OptionsNotAligned(_) => "tcp.options_not_aligned",
            TcpError::OptionsTooLong(_) => "tcp.options_too_long",
            TcpError::BufferTooSmall { .. } => "tcp.buffer_too_small",
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TcpError::Truncated { available } => {
                write!(f, "only {available} bytes, fewer than the 20-byte TCP header")
            }
            TcpError::BadDataOffset(d) => {
                write!(f, "data offset {d} is below the minimum of 5 (20 bytes)")
            }
            TcpError::HeaderTruncated {
                header_len,
                available,
            } => write!(
                f,
                "data offset announces a {header_len}-byte header but only {available} bytes are present"
            ),
            TcpError::OptionsNotAligned(n) => {
                write!(f, "{n} bytes of options is not a multiple of 4")
            }
            TcpError::OptionsTooLong(n) => {
                write!(f, "{n} bytes of options exceeds the 40-byte maximum")
            }
            TcpError::BufferTooSmall { needed, available } => write!(
                f,
                "TCP header needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for TcpError {}

/// The nine TCP flag bits (NS is the low bit of the reserved nibble).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronise sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer is significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN-Echo.
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion Window Reduced.
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// ECN nonce (historic).
    pub const NS: TcpFlags = TcpFlags(0x100);

    /// True when every bit of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u16, &str); 9] = [
            (0x002, "SYN"),
            (0x010, "ACK"),
            (0x008, "PSH"),
            (0x001, "FIN"),
            (0x004, "RST"),
            (0x020, "URG"),
            (0x040, "ECE"),
            (0x080, "CWR"),
            (0x100, "NS"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

/// A zero-copy view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Length of the fixed header.
    pub const MIN_HEADER_LEN: usize = 20;

    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps after proving the fixed header and the Data Offset-sized
    /// header are present.
    pub fn new_checked(buffer: T) -> Result<Self, TcpError> {
        let b = buffer.as_ref();
        let available = b.len();
        if available < Self::MIN_HEADER_LEN {
            return Err(TcpError::Truncated { available });
        }
        let data_offset = b[12] >> 4;
        if data_offset < 5 {
            return Err(TcpError::BadDataOffset(data_offset));
        }
        let header_len = usize::from(data_offset) * 4;
        if header_len > available {
            return Err(TcpError::HeaderTruncated {
                header_len,
                available,
            });
        }
        Ok(TcpPacket { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// Acknowledgment number.
    pub fn ack(&self) -> u32 {
        be32(self.buffer.as_ref(), 8)
    }

    /// Data Offset in 32-bit words.
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[12] >> 4
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// Flags.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(be16(self.buffer.as_ref(), 12) & 0x01ff)
    }

    /// Receive window.
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), 14)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 16)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), 18)
    }

    /// Raw option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::MIN_HEADER_LEN..self.header_len()]
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True when the checksum over the whole segment is correct.
    pub fn verify_checksum(&self, pseudo: &PseudoHeader) -> bool {
        pseudo.checksum(IpProtocol::TCP, self.buffer.as_ref()) == 0
    }

    /// The value the checksum field should hold.
    pub fn compute_checksum(&self, pseudo: &PseudoHeader) -> u16 {
        let b = self.buffer.as_ref();
        let s = pseudo.sum(IpProtocol::TCP, b.len());
        let s = partial_sum(s, &b[..16]);
        let s = partial_sum(s, &b[18..]);
        !(s as u16)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Overwrites the source port.
    pub fn set_src_port(&mut self, p: u16) {
        set_be16(self.buffer.as_mut(), 0, p);
    }

    /// Overwrites the destination port.
    pub fn set_dst_port(&mut self, p: u16) {
        set_be16(self.buffer.as_mut(), 2, p);
    }

    /// Overwrites the sequence number.
    pub fn set_seq(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), 4, v);
    }

    /// Overwrites the acknowledgment number.
    pub fn set_ack(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), 8, v);
    }

    /// Overwrites Data Offset (in words) and flags together, since they
    /// share a 16-bit word.
    pub fn set_offset_flags(&mut self, data_offset: u8, flags: TcpFlags) {
        let v = (u16::from(data_offset & 0x0f) << 12) | (flags.0 & 0x01ff);
        set_be16(self.buffer.as_mut(), 12, v);
    }

    /// Overwrites the window.
    pub fn set_window(&mut self, w: u16) {
        set_be16(self.buffer.as_mut(), 14, w);
    }

    /// Overwrites the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        set_be16(self.buffer.as_mut(), 16, c);
    }

    /// Overwrites the urgent pointer.
    pub fn set_urgent(&mut self, u: u16) {
        set_be16(self.buffer.as_mut(), 18, u);
    }

    /// Computes and stores the checksum over the whole buffer, which must
    /// therefore end exactly where the segment ends.
    pub fn fill_checksum(&mut self, pseudo: &PseudoHeader) {
        let c = self.compute_checksum(pseudo);
        self.set_checksum(c);
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// The owned, parsed form of a TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Receive window.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Raw option bytes; a multiple of 4, at most 40.
    pub options: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &TcpPacket<&'a T>) -> Result<Self, TcpError> {
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(p.buffer);
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            urgent: p.urgent(),
            options: &bytes[TcpPacket::<&[u8]>::MIN_HEADER_LEN..p.header_len()],
        })
    }

    /// Header bytes [`Self::emit`] writes (20 + options).
    pub const fn buffer_len(&self) -> usize {
        TcpPacket::<&[u8]>::MIN_HEADER_LEN + self.options.len()
    }

    /// Writes the header with a zero checksum to the front of `buf`. Place
    /// the payload after it, then call [`TcpPacket::fill_checksum`] on a view
    /// spanning exactly header + payload.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, TcpError> {
        let n = self.options.len();
        if n > 40 {
            return Err(TcpError::OptionsTooLong(n));
        }
        if n % 4 != 0 {
            return Err(TcpError::OptionsNotAligned(n));
        }
        let len = self.buffer_len();
        need(buf.len(), len)
            .map_err(|(needed, available)| TcpError::BufferTooSmall { needed, available })?;
        let mut p = TcpPacket::new_unchecked(&mut buf[..len]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq(self.seq);
        p.set_ack(self.ack);
        p.set_offset_flags((len / 4) as u8, self.flags);
        p.set_window(self.window);
        p.set_checksum(0);
        p.set_urgent(self.urgent);
        buf[TcpPacket::<&[u8]>::MIN_HEADER_LEN..len].copy_from_slice(self.options);
        Ok(len)
    }
}

/// The handful of TCP options real stacks put in SYNs and data segments,
/// for building realistic traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOptionRepr {
    /// End of option list (kind 0).
    End,
    /// No-operation (kind 1), used for alignment.
    Nop,
    /// Maximum segment size (kind 2).
    Mss(u16),
    /// Window scale shift (kind 3).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// Timestamps (kind 8).
    Timestamps {
        /// Sender's clock.
        tsval: u32,
        /// Echoed peer clock.
        tsecr: u32,
    },
}

impl TcpOptionRepr {
    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            TcpOptionRepr::End | TcpOptionRepr::Nop => 1,
            TcpOptionRepr::Mss(_) => 4,
            TcpOptionRepr::WindowScale(_) => 3,
            TcpOptionRepr::SackPermitted => 2,
            TcpOptionRepr::Timestamps { .. } => 10,
        }
    }

    /// Writes the option to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, TcpError> {
        let len = self.buffer_len();
        need(buf.len(), len)
            .map_err(|(needed, available)| TcpError::BufferTooSmall { needed, available })?;
        match *self {
            TcpOptionRepr::End => buf[0] = 0,
            TcpOptionRepr::Nop => buf[0] = 1,
            TcpOptionRepr::Mss(m) => {
                buf[..2].copy_from_slice(&[2, 4]);
                set_be16(buf, 2, m);
            }
            TcpOptionRepr::WindowScale(s) => buf[..3].copy_from_slice(&[3, 3, s]),
            TcpOptionRepr::SackPermitted => buf[..2].copy_from_slice(&[4, 2]),
            TcpOptionRepr::Timestamps { tsval, tsecr } => {
                buf[..2].copy_from_slice(&[8, 10]);
                set_be32(buf, 2, tsval);
                set_be32(buf, 6, tsecr);
            }
        }
        Ok(len)
    }

    /// Emits `options` and pads with End-of-list bytes to a multiple of 4,
    /// returning the total. Size `buf` with [`Self::padded_len`].
    pub fn emit_all(options: &[TcpOptionRepr], buf: &mut [u8]) -> Result<usize, TcpError> {
        let mut at = 0;
        for o in options {
            at += o.emit(buf.get_mut(at..).unwrap_or(&mut []))?;
        }
        let padded = Self::padded_len(options);
        need(buf.len(), padded)
            .map_err(|(needed, available)| TcpError::BufferTooSmall { needed, available })?;
        buf[at..padded].fill(0);
        Ok(padded)
    }

    /// Length of `options` rounded up to a multiple of 4.
    pub fn padded_len(options: &[TcpOptionRepr]) -> usize {
        let raw: usize = options.iter().map(|o| o.buffer_len()).sum();
        raw.div_ceil(4) * 4
    }
}

/// One option of a received segment, read in place by [`TcpOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Maximum segment size (kind 2).
    Mss(u16),
    /// Window scale shift (kind 3).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// SACK blocks (kind 5): pairs of big-endian 32-bit edges.
    Sack(&'a [u8]),
    /// Timestamps (kind 8).
    Timestamps {
        /// Sender's clock.
        tsval: u32,
        /// Echoed peer clock.
        tsecr: u32,
    },
    /// Any other kind, with its value bytes.
    Other {
        /// Option kind.
        kind: u8,
        /// Value bytes (after kind and length).
        value: &'a [u8],
    },
}

/// The options of a segment ([`TcpPacket::options`]), each with the
/// offset of its kind byte within the option bytes (so a caller can patch
/// a value in place). Stops at End of list, and at the first malformed
/// option (a length below 2 or past the end): nothing after it can be
/// read reliably. Never panics.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> TcpOptions<'a> {
    /// Iterates over raw option bytes.
    pub const fn new(bytes: &'a [u8]) -> Self {
        TcpOptions { bytes, at: 0 }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = (usize, TcpOption<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let at = self.at;
            let kind = *self.bytes.get(at)?;
            match kind {
                0 => {
                    self.at = self.bytes.len();
                    return None;
                }
                1 => {
                    self.at += 1;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(*self.bytes.get(at + 1)?);
            let Some(value) = self.bytes.get(at + 2..at + len).filter(|_| len >= 2) else {
                self.at = self.bytes.len();
                return None;
            };
            self.at = at + len;
            let option = match (kind, value) {
                (2, &[a, b]) => TcpOption::Mss(u16::from_be_bytes([a, b])),
                (3, &[s]) => TcpOption::WindowScale(s),
                (4, &[]) => TcpOption::SackPermitted,
                (5, v) if v.len() % 8 == 0 => TcpOption::Sack(v),
                (8, &[a, b, c, d, e, f, g, h]) => TcpOption::Timestamps {
                    tsval: u32::from_be_bytes([a, b, c, d]),
                    tsecr: u32::from_be_bytes([e, f, g, h]),
                },
                (kind, value) => TcpOption::Other { kind, value },
            };
            return Some((at, option));
        }
    }
}

#[cfg(test)]
mod option_tests {
    use super::*;

    #[test]
    fn reads_a_linux_syn_and_sack_blocks_with_offsets() {
        let syn = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let got: Vec<_> = TcpOptions::new(&syn).collect();
        assert_eq!(
            got,
            vec![
                (0, TcpOption::Mss(1460)),
                (4, TcpOption::SackPermitted),
                (6, TcpOption::Timestamps { tsval: 1, tsecr: 0 }),
                (17, TcpOption::WindowScale(7)),
            ]
        );
        let sack = [1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(
            TcpOptions::new(&sack).collect::<Vec<_>>(),
            vec![(2, TcpOption::Sack(&[0, 0, 0, 1, 0, 0, 0, 2]))]
        );
    }

    #[test]
    fn stops_at_malformed_lengths_and_end_of_list() {
        assert_eq!(TcpOptions::new(&[2, 1, 5, 0xb4]).count(), 0);
        assert_eq!(TcpOptions::new(&[2, 9, 5, 0xb4]).count(), 0);
        assert_eq!(TcpOptions::new(&[0, 2, 4, 5, 0xb4]).count(), 0);
        assert_eq!(TcpOptions::new(&[1, 1, 2]).count(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    // A Linux SYN: 10.0.0.1:40000 -> 10.0.0.2:80, seq 0x01020304, window
    // 64240, options MSS 1460, SACK-permitted, timestamps, NOP, wscale 7.
    fn syn() -> Vec<u8> {
        let mut v = vec![
            0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0,
            0, 0, 0,
        ];
        v.extend_from_slice(&[
            0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x03,
            0x03, 0x07,
        ]);
        v
    }

    #[test]
    fn reads_syn() {
        let b = syn();
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq(), 0x0102_0304);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert_eq!(p.flags().to_string(), "SYN");
        assert_eq!(p.window(), 64240);
        assert_eq!(p.options().len(), 20);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn option_builder_reproduces_linux_syn_options() {
        let opts = [
            TcpOptionRepr::Mss(1460),
            TcpOptionRepr::SackPermitted,
            TcpOptionRepr::Timestamps { tsval: 1, tsecr: 0 },
            TcpOptionRepr::Nop,
            TcpOptionRepr::WindowScale(7),
        ];
        let mut buf = [0u8; 20];
        assert_eq!(TcpOptionRepr::emit_all(&opts, &mut buf).unwrap(), 20);
        assert_eq!(&buf[..], &syn()[20..]);
    }

    #[test]
    fn repr_round_trip_and_checksum() {
        let b = syn();
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        let r = TcpRepr::parse(&p).unwrap();
        let mut out = vec![0u8; 40 + 5];
        r.emit(&mut out).unwrap();
        out[40..].copy_from_slice(b"hello");
        let ph = PseudoHeader::V4 {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut q = TcpPacket::new_checked(&mut out[..]).unwrap();
        q.fill_checksum(&ph);
        assert!(q.verify_checksum(&ph));
        assert_eq!(q.payload(), b"hello");
        assert_eq!(
            TcpRepr::parse(&TcpPacket::new_checked(&out[..]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn errors() {
        let b = syn();
        assert_eq!(
            TcpPacket::new_checked(&b[..19]).unwrap_err(),
            TcpError::Truncated { available: 19 }
        );
        assert_eq!(
            TcpPacket::new_checked(&b[..30]).unwrap_err(),
            TcpError::HeaderTruncated {
                header_len: 40,
                available: 30
            }
        );
        let mut c = b.clone();
        c[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&c[..]).unwrap_err(),
            TcpError::BadDataOffset(4)
        );
        let r = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: 0,
            ack: 0,
            flags: TcpFlags::ACK | TcpFlags::FIN,
            window: 0,
            urgent: 0,
            options: &[1, 1],
        };
        assert_eq!(r.emit(&mut [0u8; 40]), Err(TcpError::OptionsNotAligned(2)));
        assert_eq!(r.flags.to_string(), "ACK|FIN");
    }
}
