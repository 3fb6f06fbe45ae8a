//! The IPv6 Fragment extension header (RFC 8200 §4.5), 8 bytes.
//!
//! ```text
//! +---------------+---------------+-------------------------+---+-+
//! |  Next Header  |   Reserved    |     Fragment Offset     |Res|M|
//! +---------------+---------------+-------------------------+---+-+
//! |                        Identification                         |
//! +---------------------------------------------------------------+
//! ```
//!
//! Only the fragment with offset 0 carries the upper-layer header. Later
//! fragments carry a continuation of the upper-layer payload, and Next Header
//! merely *names* the protocol whose bytes they contain; reading ports out of
//! them would yield garbage, which is why the chain walker reports them
//! separately.

use core::fmt;

use crate::field::{be16, be32, need, set_be16, set_be32};
use crate::ip::{FragmentInfo, IpProtocol};

/// Everything that can be wrong with a Fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6FragError {
    /// Fewer than 8 bytes.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// Emit: the offset does not fit in 13 bits.
    OffsetOutOfRange(u16),
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for Ipv6FragError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv6FragError::Truncated { available } => write!(
                f,
                "only {available} bytes, fewer than the 8-byte Fragment header"
            ),
            Ipv6FragError::OffsetOutOfRange(o) => {
                write!(f, "fragment offset {o} does not fit in 13 bits")
            }
            Ipv6FragError::BufferTooSmall { needed, available } => write!(
                f,
                "Fragment header needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for Ipv6FragError {}

/// A zero-copy view of a Fragment header.
#[derive(Debug, Clone)]
pub struct Ipv6FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6FragmentHeader<T> {
    /// The header is always 8 bytes.
    pub const HEADER_LEN: usize = 8;

    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6FragmentHeader { buffer }
    }

    /// Wraps after proving 8 bytes exist.
    pub fn new_checked(buffer: T) -> Result<Self, Ipv6FragError> {
        let available = buffer.as_ref().len();
        if available < Self::HEADER_LEN {
            return Err(Ipv6FragError::Truncated { available });
        }
        Ok(Ipv6FragmentHeader { buffer })
    }

    /// The protocol of the datagram being fragmented.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[0])
    }

    /// Offset in 8-octet units.
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), 2) >> 3
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[3] & 1 != 0
    }

    /// Identification.
    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// The three fields that locate this fragment.
    pub fn info(&self) -> FragmentInfo {
        FragmentInfo {
            offset: self.frag_offset(),
            more: self.more_frags(),
            ident: self.ident(),
        }
    }

    /// Bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6FragmentHeader<T> {
    /// Overwrites Next Header.
    pub fn set_next_header(&mut self, nh: IpProtocol) {
        self.buffer.as_mut()[0] = nh.0;
    }

    /// Overwrites offset and M flag; clears the reserved bits.
    pub fn set_offset_more(&mut self, offset: u16, more: bool) {
        set_be16(self.buffer.as_mut(), 2, (offset << 3) | u16::from(more));
    }

    /// Overwrites Identification.
    pub fn set_ident(&mut self, ident: u32) {
        set_be32(self.buffer.as_mut(), 4, ident);
    }
}

/// The owned, parsed form of a Fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6FragmentRepr {
    /// The protocol of the datagram being fragmented.
    pub next_header: IpProtocol,
    /// Offset in 8-octet units (13 bits).
    pub frag_offset: u16,
    /// More Fragments flag.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl Ipv6FragmentRepr {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]>>(h: &Ipv6FragmentHeader<T>) -> Result<Self, Ipv6FragError> {
        Ok(Ipv6FragmentRepr {
            next_header: h.next_header(),
            frag_offset: h.frag_offset(),
            more_frags: h.more_frags(),
            ident: h.ident(),
        })
    }

    /// Always 8.
    pub const fn buffer_len(&self) -> usize {
        Ipv6FragmentHeader::<&[u8]>::HEADER_LEN
    }

    /// Writes the header to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Ipv6FragError> {
        if self.frag_offset > 0x1fff {
            return Err(Ipv6FragError::OffsetOutOfRange(self.frag_offset));
        }
        need(buf.len(), self.buffer_len())
            .map_err(|(needed, available)| Ipv6FragError::BufferTooSmall { needed, available })?;
        buf[1] = 0;
        let mut h = Ipv6FragmentHeader::new_unchecked(buf);
        h.set_next_header(self.next_header);
        h.set_offset_more(self.frag_offset, self.more_frags);
        h.set_ident(self.ident);
        Ok(self.buffer_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_fragment_of_udp_datagram() {
        // Next header UDP, offset 185 (1480 bytes), M=1, ident 0xdeadbeef.
        let bytes = [0x11, 0x00, 0x05, 0xc9, 0xde, 0xad, 0xbe, 0xef];
        let h = Ipv6FragmentHeader::new_checked(&bytes[..]).unwrap();
        assert_eq!(h.next_header(), IpProtocol::UDP);
        assert_eq!(h.frag_offset(), 185);
        assert!(h.more_frags());
        assert_eq!(h.ident(), 0xdead_beef);
        assert!(h.info().is_non_first());
        let mut out = [0u8; 8];
        Ipv6FragmentRepr::parse(&h).unwrap().emit(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Ipv6FragmentHeader::new_checked(&[0u8; 7][..]).unwrap_err(),
            Ipv6FragError::Truncated { available: 7 }
        );
        let r = Ipv6FragmentRepr {
            next_header: IpProtocol::TCP,
            frag_offset: 0x2000,
            more_frags: false,
            ident: 1,
        };
        assert_eq!(
            r.emit(&mut [0u8; 8]),
            Err(Ipv6FragError::OffsetOutOfRange(0x2000))
        );
    }
}
