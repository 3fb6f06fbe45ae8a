//! IPv6 extension headers and the bounded chain walker.
//!
//! After the fixed header, IPv6 strings optional *extension headers* together
//! through their Next Header fields until an upper-layer protocol appears:
//!
//! ```text
//! IPv6 ─nh=0─▶ Hop-by-Hop ─nh=43─▶ Routing ─nh=44─▶ Fragment ─nh=60─▶ DestOpts ─nh=17─▶ UDP
//! ```
//!
//! Most extension headers share one framing: Next Header, then a length in
//! 8-octet units *not counting the first 8 octets*, then a body. Two differ:
//! the Fragment header is always 8 bytes (its second byte is reserved), and
//! the Authentication Header counts its length in 4-octet units minus 2.
//!
//! [`walk`] follows the chain at most [`MAX_EXT_HEADERS`] steps, so a
//! malicious chain costs a bounded amount of work, and reports where the
//! upper layer starts, where the Hop-by-Hop options are, and whether the
//! packet is a non-first fragment (which has no upper-layer header at all).
//! Protocols it does not know as extension headers (including ESP, whose
//! contents are encrypted) are treated as the upper layer, as RFC 7045
//! advises.

use core::fmt;

use crate::field::need;
use crate::ip::{FragmentInfo, IpProtocol};
use crate::ipv6_frag::Ipv6FragmentHeader;
use crate::ipv6_option::Ipv6OptionIter;
use crate::span::Span;

/// The longest chain [`walk`] follows. Real traffic rarely has more than 3;
/// 8 covers every header type once plus a second Destination Options header.
pub const MAX_EXT_HEADERS: usize = 8;

/// True for the Next Header values that [`walk`] steps over.
pub const fn is_extension_header(p: IpProtocol) -> bool {
    matches!(p.0, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140)
}

/// Everything that can go wrong walking or emitting extension headers.
/// Offsets are relative to the start of the IPv6 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6ExtError {
    /// A header's declared (or minimum) length runs past the payload.
    Truncated {
        /// The header being read.
        header_type: IpProtocol,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left from `offset`.
        available: usize,
    },
    /// A Hop-by-Hop header appeared after another extension header
    /// (RFC 8200 §4.1 only allows it directly after the fixed header).
    HopByHopNotFirst {
        /// Where it starts.
        offset: usize,
    },
    /// The chain is longer than [`MAX_EXT_HEADERS`].
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// Emit: the header would not be a multiple of 8 bytes, or is too long
    /// for its length field.
    BadLength {
        /// The header being emitted.
        header_type: IpProtocol,
        /// Its total length in bytes.
        len: usize,
    },
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl Ipv6ExtError {
    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            Ipv6ExtError::Truncated { .. } => "ipv6_ext.truncated",
            Ipv6ExtError::HopByHopNotFirst { .. } => "ipv6_ext.hop_by_hop_not_first",
            Ipv6ExtError::TooManyHeaders { .. } => "ipv6_ext.too_many_headers",
            Ipv6ExtError::BadLength { .. } => "ipv6_ext.bad_length",
            Ipv6ExtError::BufferTooSmall { .. } => "ipv6_ext.buffer_too_small",
        }
    }
}

impl fmt::Display for Ipv6ExtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv6ExtError::Truncated {
                header_type,
                offset,
                needed,
                available,
            } => write!(
                f,
                "{header_type} extension header at payload offset {offset} needs {needed} bytes but only {available} remain"
            ),
            Ipv6ExtError::HopByHopNotFirst { offset } => write!(
                f,
                "Hop-by-Hop header at payload offset {offset} does not directly follow the IPv6 header"
            ),
            Ipv6ExtError::TooManyHeaders { max } => {
                write!(f, "extension header chain longer than {max} headers")
            }
            Ipv6ExtError::BadLength { header_type, len } => write!(
                f,
                "{header_type} extension header of {len} bytes is not a valid length"
            ),
            Ipv6ExtError::BufferTooSmall { needed, available } => write!(
                f,
                "extension header needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for Ipv6ExtError {}

/// The total length of an extension header of `header_type` whose
/// second byte is `len_byte`.
const fn declared_len(header_type: IpProtocol, len_byte: u8) -> usize {
    match header_type.0 {
        44 => 8,
        51 => (len_byte as usize + 2) * 4,
        _ => (len_byte as usize + 1) * 8,
    }
}

/// A zero-copy view of one extension header (any type, Fragment included,
/// though [`Ipv6FragmentHeader`] gives typed access to that one).
#[derive(Debug, Clone)]
pub struct Ipv6ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
    header_type: IpProtocol,
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    /// Wraps after proving the whole declared header is present. The type
    /// must be supplied because it is named by the *previous* header and it
    /// decides how the length byte is read.
    pub fn new_checked(buffer: T, header_type: IpProtocol) -> Result<Self, Ipv6ExtError> {
        let b = buffer.as_ref();
        let available = b.len();
        let min = if header_type == IpProtocol::IPV6_FRAGMENT {
            8
        } else {
            2
        };
        if available < min {
            return Err(Ipv6ExtError::Truncated {
                header_type,
                offset: 0,
                needed: min,
                available,
            });
        }
        let needed = declared_len(header_type, b[1]);
        if needed > available {
            return Err(Ipv6ExtError::Truncated {
                header_type,
                offset: 0,
                needed,
                available,
            });
        }
        Ok(Ipv6ExtHeader {
            buffer,
            header_type,
        })
    }

    /// The type this header was read as.
    pub fn header_type(&self) -> IpProtocol {
        self.header_type
    }

    /// The next header in the chain.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[0])
    }

    /// Total length in bytes.
    pub fn header_len(&self) -> usize {
        declared_len(self.header_type, self.buffer.as_ref()[1])
    }

    /// Everything after the 2-byte prefix, up to the declared length. For
    /// Hop-by-Hop and Destination Options this is the option area.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[2..self.header_len()]
    }

    /// Iterates over the TLV options (meaningful for Hop-by-Hop and
    /// Destination Options only).
    pub fn option_iter(&self) -> Ipv6OptionIter<'_> {
        Ipv6OptionIter::new(self.body())
    }

    /// Routing header: the routing type (first body byte).
    pub fn routing_type(&self) -> Option<u8> {
        (self.header_type == IpProtocol::IPV6_ROUTING).then(|| self.body()[0])
    }

    /// Routing header: segments left (second body byte).
    pub fn segments_left(&self) -> Option<u8> {
        (self.header_type == IpProtocol::IPV6_ROUTING).then(|| self.body()[1])
    }

    /// Bytes after this header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// An extension header to emit, generic over the common framing.
///
/// `body` is everything after the next-header and length bytes. For options
/// headers build it with
/// [`Ipv6OptionRepr::emit_padded_area`](crate::ipv6_option::Ipv6OptionRepr::emit_padded_area);
/// for a Routing header it starts with routing type and segments left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6ExtHeaderRepr<'a> {
    /// The type of this header (named by the previous header).
    pub header_type: IpProtocol,
    /// The type of the following header.
    pub next_header: IpProtocol,
    /// Body bytes.
    pub body: &'a [u8],
}

impl<'a> Ipv6ExtHeaderRepr<'a> {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(h: &Ipv6ExtHeader<&'a T>) -> Result<Self, Ipv6ExtError> {
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(h.buffer);
        Ok(Ipv6ExtHeaderRepr {
            header_type: h.header_type,
            next_header: h.next_header(),
            body: &bytes[2..h.header_len()],
        })
    }

    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        2 + self.body.len()
    }

    /// Writes the header to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Ipv6ExtError> {
        let len = self.buffer_len();
        let bad = Ipv6ExtError::BadLength {
            header_type: self.header_type,
            len,
        };
        // RFC 8200 requires every extension header, AH included (RFC 4302
        // §2.2), to keep the chain 8-octet aligned.
        if len % 8 != 0 {
            return Err(bad);
        }
        let len_byte = match self.header_type.0 {
            44 if len == 8 => 0,
            44 => return Err(bad),
            51 => len / 4 - 2,
            _ => len / 8 - 1,
        };
        let len_byte = u8::try_from(len_byte).map_err(|_| bad)?;
        need(buf.len(), len)
            .map_err(|(needed, available)| Ipv6ExtError::BufferTooSmall { needed, available })?;
        buf[0] = self.next_header.0;
        buf[1] = len_byte;
        buf[2..len].copy_from_slice(self.body);
        Ok(len)
    }
}

/// Where one header of the chain sits (offsets relative to the IPv6 payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExtHeaderInfo {
    /// Header type.
    pub header_type: IpProtocol,
    /// First byte.
    pub offset: u16,
    /// Length in bytes.
    pub len: u16,
}

/// What [`walk`] found. Fixed-size and `Copy`: no allocation per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6ExtChain {
    count: u8,
    headers: [ExtHeaderInfo; MAX_EXT_HEADERS],
    /// The protocol after the last extension header. For a non-first
    /// fragment this is the protocol *named* by the Fragment header, whose
    /// header is in the first fragment, not here.
    pub upper_protocol: IpProtocol,
    /// Where the upper-layer data starts, relative to the IPv6 payload.
    pub upper_offset: usize,
    /// The Hop-by-Hop option area (after its 2-byte prefix), relative to
    /// the IPv6 payload.
    pub hop_by_hop_options: Option<Span>,
    /// Present when the chain contains a Fragment header.
    pub fragment: Option<FragmentInfo>,
}

impl Ipv6ExtChain {
    /// The extension headers in wire order.
    pub fn headers(&self) -> &[ExtHeaderInfo] {
        &self.headers[..usize::from(self.count)]
    }

    /// Whether an upper-layer header starts at `upper_offset`: false for
    /// non-first fragments and for "No Next Header".
    pub fn has_upper_header(&self) -> bool {
        !self.fragment.is_some_and(|f| f.is_non_first())
            && self.upper_protocol != IpProtocol::IPV6_NO_NEXT_HEADER
    }
}

/// Walks the extension headers of an IPv6 packet.
///
/// `first` is the fixed header's Next Header and `payload` the bytes after
/// the fixed header (bounded by Payload Length). Never panics; the cost is
/// bounded by [`MAX_EXT_HEADERS`] steps of constant work each.
pub fn walk(first: IpProtocol, payload: &[u8]) -> Result<Ipv6ExtChain, Ipv6ExtError> {
    let mut chain = Ipv6ExtChain {
        count: 0,
        headers: [ExtHeaderInfo::default(); MAX_EXT_HEADERS],
        upper_protocol: first,
        upper_offset: 0,
        hop_by_hop_options: None,
        fragment: None,
    };
    let mut nh = first;
    let mut offset = 0usize;
    while is_extension_header(nh) {
        if usize::from(chain.count) == MAX_EXT_HEADERS {
            return Err(Ipv6ExtError::TooManyHeaders {
                max: MAX_EXT_HEADERS,
            });
        }
        if nh == IpProtocol::HOP_BY_HOP && chain.count != 0 {
            return Err(Ipv6ExtError::HopByHopNotFirst { offset });
        }
        let rest = payload.get(offset..).unwrap_or(&[]);
        let header = Ipv6ExtHeader::new_checked(rest, nh).map_err(|e| match e {
            Ipv6ExtError::Truncated {
                header_type,
                needed,
                available,
                ..
            } => Ipv6ExtError::Truncated {
                header_type,
                offset,
                needed,
                available,
            },
            other => other,
        })?;
        let len = header.header_len();
        chain.headers[usize::from(chain.count)] = ExtHeaderInfo {
            header_type: nh,
            offset: offset as u16,
            len: len as u16,
        };
        chain.count += 1;
        if nh == IpProtocol::HOP_BY_HOP {
            chain.hop_by_hop_options = Some(Span::new(offset + 2, len - 2));
        }
        let next = header.next_header();
        offset += len;
        if nh == IpProtocol::IPV6_FRAGMENT {
            // new_checked above proved 8 bytes exist, so this cannot fail;
            // the `?`-free form keeps the walker panic-free regardless.
            if let Ok(frag) = Ipv6FragmentHeader::new_checked(rest) {
                let info = frag.info();
                chain.fragment = Some(info);
                if info.is_non_first() {
                    // What follows is a slice of the original payload, not
                    // headers: stop here.
                    chain.upper_protocol = next;
                    chain.upper_offset = offset;
                    return Ok(chain);
                }
            }
        }
        nh = next;
    }
    chain.upper_protocol = nh;
    chain.upper_offset = offset;
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    // HBH (PadN 4) -> Routing (experimental type 253, segments left 0)
    // -> Fragment (offset 0, M=1) -> DestOpts (PadN 4) -> UDP.
    // Offsets: 0, 8, 16, 24, 32.
    fn chain_bytes() -> Vec<u8> {
        vec![
            43, 0, 0x01, 0x04, 0, 0, 0, 0, // HBH
            44, 0, 253, 0, 0, 0, 0, 0, // Routing
            60, 0, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78, // Fragment, offset 0, M
            17, 0, 0x01, 0x04, 0, 0, 0, 0, // DestOpts
            0x30, 0x39, 0x12, 0xb7, 0x00, 0x08, 0x00, 0x00, // UDP
        ]
    }

    #[test]
    fn walks_full_chain_to_udp() {
        let bytes = chain_bytes();
        let c = walk(IpProtocol::HOP_BY_HOP, &bytes).unwrap();
        assert_eq!(c.upper_protocol, IpProtocol::UDP);
        assert_eq!(c.upper_offset, 32);
        assert!(c.has_upper_header());
        let types: Vec<u8> = c.headers().iter().map(|h| h.header_type.0).collect();
        assert_eq!(types, vec![0, 43, 44, 60]);
        assert_eq!(c.hop_by_hop_options, Some(Span::new(2, 6)));
        let f = c.fragment.unwrap();
        assert!(f.is_first() && f.more);
        assert_eq!(f.ident, 0x1234_5678);
    }

    #[test]
    fn non_first_fragment_has_no_upper_header() {
        // Fragment at offset 0 of the payload: offset 2 (16 bytes), M=0.
        let bytes = [17, 0, 0x00, 0x10, 0, 0, 0, 7, 0xde, 0xad, 0xbe, 0xef];
        let c = walk(IpProtocol::IPV6_FRAGMENT, &bytes).unwrap();
        assert_eq!(c.upper_protocol, IpProtocol::UDP);
        assert_eq!(c.upper_offset, 8);
        assert!(!c.has_upper_header());
        assert_eq!(c.fragment.unwrap().offset, 2);
    }

    #[test]
    fn ah_length_is_in_4_octet_units_plus_2() {
        // AH with payload len 4 => (4+2)*4 = 24 bytes, then TCP.
        let mut bytes = vec![6, 4];
        bytes.resize(24, 0);
        bytes.extend_from_slice(&[0u8; 20]);
        let c = walk(IpProtocol::AH, &bytes).unwrap();
        assert_eq!(c.upper_offset, 24);
        assert_eq!(c.upper_protocol, IpProtocol::TCP);
    }

    #[test]
    fn no_next_header_and_esp_stop_the_walk() {
        let bytes = [59, 0, 1, 4, 0, 0, 0, 0];
        let c = walk(IpProtocol::IPV6_DEST_OPTS, &bytes).unwrap();
        assert_eq!(c.upper_protocol, IpProtocol::IPV6_NO_NEXT_HEADER);
        assert!(!c.has_upper_header());
        let c = walk(IpProtocol::ESP, &[0u8; 8]).unwrap();
        assert_eq!(c.upper_protocol, IpProtocol::ESP);
        assert_eq!(c.upper_offset, 0);
    }

    #[test]
    fn errors() {
        let bytes = chain_bytes();
        assert_eq!(
            walk(IpProtocol::HOP_BY_HOP, &bytes[..12]),
            Err(Ipv6ExtError::Truncated {
                header_type: IpProtocol::IPV6_ROUTING,
                offset: 8,
                needed: 8,
                available: 4
            })
        );
        assert_eq!(
            walk(IpProtocol::HOP_BY_HOP, &bytes[..1]),
            Err(Ipv6ExtError::Truncated {
                header_type: IpProtocol::HOP_BY_HOP,
                offset: 0,
                needed: 2,
                available: 1
            })
        );
        let late_hbh = [0, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(
            walk(IpProtocol::IPV6_DEST_OPTS, &late_hbh),
            Err(Ipv6ExtError::HopByHopNotFirst { offset: 8 })
        );
        let mut many = Vec::new();
        for _ in 0..9 {
            many.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(
            walk(IpProtocol::IPV6_DEST_OPTS, &many),
            Err(Ipv6ExtError::TooManyHeaders { max: 8 })
        );
        // Eight is still fine.
        let mut eight = many[..64].to_vec();
        eight[56] = 17;
        assert_eq!(
            walk(IpProtocol::IPV6_DEST_OPTS, &eight)
                .unwrap()
                .headers()
                .len(),
            8
        );
    }

    #[test]
    fn view_and_repr_round_trip() {
        let bytes = chain_bytes();
        let h = Ipv6ExtHeader::new_checked(&bytes[8..], IpProtocol::IPV6_ROUTING).unwrap();
        assert_eq!(h.routing_type(), Some(253));
        assert_eq!(h.segments_left(), Some(0));
        let r = Ipv6ExtHeaderRepr::parse(&h).unwrap();
        let mut out = [0u8; 8];
        assert_eq!(r.emit(&mut out).unwrap(), 8);
        assert_eq!(&out[..], &bytes[8..16]);
        let hbh = Ipv6ExtHeader::new_checked(&bytes[..], IpProtocol::HOP_BY_HOP).unwrap();
        assert_eq!(hbh.routing_type(), None);
        assert_eq!(hbh.option_iter().count(), 1);
    }

    #[test]
    fn emit_length_rules() {
        let r = Ipv6ExtHeaderRepr {
            header_type: IpProtocol::IPV6_DEST_OPTS,
            next_header: IpProtocol::UDP,
            body: &[1, 3, 0, 0, 0],
        };
        assert_eq!(
            r.emit(&mut [0u8; 16]),
            Err(Ipv6ExtError::BadLength {
                header_type: IpProtocol::IPV6_DEST_OPTS,
                len: 7
            })
        );
        let ah = Ipv6ExtHeaderRepr {
            header_type: IpProtocol::AH,
            next_header: IpProtocol::UDP,
            body: &[0u8; 22],
        };
        let mut out = [0u8; 24];
        ah.emit(&mut out).unwrap();
        assert_eq!(out[1], 4);
        // 2056 bytes would need a length byte of 256.
        let big = [0u8; 2054];
        let too_long = Ipv6ExtHeaderRepr {
            header_type: IpProtocol::IPV6_DEST_OPTS,
            next_header: IpProtocol::UDP,
            body: &big,
        };
        assert!(matches!(
            too_long.emit(&mut [0u8; 4096]),
            Err(Ipv6ExtError::BadLength { .. })
        ));
    }
}
