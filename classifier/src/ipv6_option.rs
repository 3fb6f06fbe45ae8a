//! TLV options carried in IPv6 Hop-by-Hop and Destination Options headers
//! (RFC 8200 §4.2).
//!
//! The option area is a sequence of `type, length, value` triples in which
//! the length byte counts only the value. Two options are special: Pad1 (type
//! 0) is a single zero byte with no length, and PadN (type 1) is ordinary TLV
//! padding. The two high bits of the type say what a node that does not
//! recognise the option must do, and the third bit says whether the value may
//! change en route (which matters for anything computing a checksum or ICRC
//! over it).
//!
//! IntelliNode will carry an experimental Hop-by-Hop option for in-network
//! scheduling, so the RFC 4727 experimental codepoints (low five bits
//! `11110`: 0x1E, 0x3E, … 0xFE) are recognised by
//! [`Ipv6OptionType::is_experimental`].
//!
//! As with IPv4, the iterator never panics: a truncated option yields one
//! `Err` item and ends the iteration.

use core::fmt;

use crate::field::need;

/// An option type byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6OptionType(pub u8);

/// What a node must do with an option type it does not recognise
/// (the two high bits of the type, RFC 8200 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnknownOptionAction {
    /// 00: skip over the option.
    Skip,
    /// 01: discard the packet silently.
    Discard,
    /// 10: discard and send ICMP Parameter Problem.
    DiscardAndIcmp,
    /// 11: discard and send ICMP unless the destination is multicast.
    DiscardAndIcmpUnlessMulticast,
}

impl Ipv6OptionType {
    /// Pad1: a single zero byte.
    pub const PAD1: Ipv6OptionType = Ipv6OptionType(0x00);
    /// PadN: N bytes of padding (2 + value length).
    pub const PADN: Ipv6OptionType = Ipv6OptionType(0x01);
    /// Router Alert (RFC 2711).
    pub const ROUTER_ALERT: Ipv6OptionType = Ipv6OptionType(0x05);
    /// Jumbo Payload (RFC 2675).
    pub const JUMBO: Ipv6OptionType = Ipv6OptionType(0xc2);
    /// The eight RFC 4727 experimental codepoints, one per combination of
    /// action and may-change bits.
    pub const EXPERIMENTAL: [Ipv6OptionType; 8] = [
        Ipv6OptionType(0x1e),
        Ipv6OptionType(0x3e),
        Ipv6OptionType(0x5e),
        Ipv6OptionType(0x7e),
        Ipv6OptionType(0x9e),
        Ipv6OptionType(0xbe),
        Ipv6OptionType(0xde),
        Ipv6OptionType(0xfe),
    ];

    /// The action for nodes that do not recognise this type.
    pub const fn unknown_action(self) -> UnknownOptionAction {
        match self.0 >> 6 {
            0 => UnknownOptionAction::Skip,
            1 => UnknownOptionAction::Discard,
            2 => UnknownOptionAction::DiscardAndIcmp,
            _ => UnknownOptionAction::DiscardAndIcmpUnlessMulticast,
        }
    }

    /// Whether the value may change en route.
    pub const fn may_change(self) -> bool {
        self.0 & 0x20 != 0
    }

    /// True for the RFC 4727 experimental codepoints.
    pub const fn is_experimental(self) -> bool {
        self.0 & 0x1f == 0x1e
    }

    /// True for Pad1 and PadN.
    pub const fn is_padding(self) -> bool {
        self.0 <= 1
    }
}

impl fmt::Debug for Ipv6OptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0x00 => "pad1",
            0x01 => "padn",
            0x05 => "router-alert",
            0xc2 => "jumbo",
            t if t & 0x1f == 0x1e => "experimental",
            _ => "?",
        };
        write!(f, "Ipv6OptionType(0x{:02x} {name})", self.0)
    }
}

/// One well-framed option; `data` is the value (empty for Pad1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Option<'a> {
    /// Option type.
    pub option_type: Ipv6OptionType,
    /// Value bytes.
    pub data: &'a [u8],
    /// Offset of the type byte within the option area.
    pub offset: usize,
}

/// Why an option could not be framed. Offsets are relative to the option
/// area (which starts 2 bytes into its extension header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6OptionError {
    /// A TLV option type is the last byte of the area.
    MissingLength {
        /// Option type.
        option_type: u8,
        /// Offset of the type byte.
        offset: usize,
    },
    /// The value runs past the end of the area.
    Overrun {
        /// Option type.
        option_type: u8,
        /// The length byte.
        len: u8,
        /// Offset of the type byte.
        offset: usize,
        /// Bytes left in the area after the length byte.
        available: usize,
    },
}

impl fmt::Display for Ipv6OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv6OptionError::MissingLength {
                option_type,
                offset,
            } => write!(
                f,
                "IPv6 option 0x{option_type:02x} at offset {offset} has no length byte"
            ),
            Ipv6OptionError::Overrun {
                option_type,
                len,
                offset,
                available,
            } => write!(
                f,
                "IPv6 option 0x{option_type:02x} at offset {offset} claims {len} value bytes but only {available} remain"
            ),
        }
    }
}

impl std::error::Error for Ipv6OptionError {}

/// Iterator over a Hop-by-Hop or Destination Options area. Padding options
/// are yielded too, so that callers can reproduce the exact layout; filter
/// with [`Ipv6OptionType::is_padding`] if they are not wanted.
#[derive(Debug, Clone)]
pub struct Ipv6OptionIter<'a> {
    area: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Ipv6OptionIter<'a> {
    /// Iterates over an option area.
    pub fn new(area: &'a [u8]) -> Self {
        Ipv6OptionIter {
            area,
            offset: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for Ipv6OptionIter<'a> {
    type Item = Result<Ipv6Option<'a>, Ipv6OptionError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.offset;
        let rest = self.area.get(offset..).unwrap_or(&[]);
        let Some(&option_type) = rest.first() else {
            self.done = true;
            return None;
        };
        if option_type == 0 {
            self.offset += 1;
            return Some(Ok(Ipv6Option {
                option_type: Ipv6OptionType::PAD1,
                data: &[],
                offset,
            }));
        }
        let Some(&len) = rest.get(1) else {
            self.done = true;
            return Some(Err(Ipv6OptionError::MissingLength {
                option_type,
                offset,
            }));
        };
        let Some(data) = rest.get(2..2 + usize::from(len)) else {
            self.done = true;
            return Some(Err(Ipv6OptionError::Overrun {
                option_type,
                len,
                offset,
                available: rest.len() - 2,
            }));
        };
        self.offset += 2 + usize::from(len);
        Some(Ok(Ipv6Option {
            option_type: Ipv6OptionType(option_type),
            data,
            offset,
        }))
    }
}

/// An option to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6OptionRepr<'a> {
    /// A single zero byte.
    Pad1,
    /// PadN covering `n` bytes in total (2..=257); its value is zeros.
    PadN(usize),
    /// Any other option.
    Tlv {
        /// Option type (not 0 or 1).
        option_type: Ipv6OptionType,
        /// Value, at most 255 bytes.
        data: &'a [u8],
    },
}

/// Why an option could not be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6OptionEmitError {
    /// PadN must cover between 2 and 257 bytes.
    BadPadLength(usize),
    /// A value longer than 255 bytes.
    DataTooLong(usize),
    /// Types 0 and 1 are reserved for padding.
    PaddingType(u8),
    /// The destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for Ipv6OptionEmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv6OptionEmitError::BadPadLength(n) => {
                write!(f, "PadN of {n} bytes is outside 2..=257")
            }
            Ipv6OptionEmitError::DataTooLong(n) => {
                write!(f, "IPv6 option value of {n} bytes exceeds 255")
            }
            Ipv6OptionEmitError::PaddingType(t) => {
                write!(f, "option type {t} is reserved for padding; use Pad1/PadN")
            }
            Ipv6OptionEmitError::BufferTooSmall { needed, available } => write!(
                f,
                "IPv6 option needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for Ipv6OptionEmitError {}

impl<'a> Ipv6OptionRepr<'a> {
    /// Converts an iterator item back into something emittable.
    pub fn parse(opt: &Ipv6Option<'a>) -> Self {
        match opt.option_type.0 {
            0 => Ipv6OptionRepr::Pad1,
            1 => Ipv6OptionRepr::PadN(2 + opt.data.len()),
            _ => Ipv6OptionRepr::Tlv {
                option_type: opt.option_type,
                data: opt.data,
            },
        }
    }

    /// The padding that brings an extension header whose option area is
    /// `area_len` bytes so far to a multiple of 8 (the 2-byte next-header /
    /// length prefix included), or `None` when already aligned.
    pub const fn padding_for(area_len: usize) -> Option<Ipv6OptionRepr<'static>> {
        match (8 - (2 + area_len) % 8) % 8 {
            0 => None,
            1 => Some(Ipv6OptionRepr::Pad1),
            n => Some(Ipv6OptionRepr::PadN(n)),
        }
    }

    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Ipv6OptionRepr::Pad1 => 1,
            Ipv6OptionRepr::PadN(n) => *n,
            Ipv6OptionRepr::Tlv { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Ipv6OptionEmitError> {
        match *self {
            Ipv6OptionRepr::PadN(n) if !(2..=257).contains(&n) => {
                return Err(Ipv6OptionEmitError::BadPadLength(n))
            }
            Ipv6OptionRepr::Tlv { option_type, .. } if option_type.is_padding() => {
                return Err(Ipv6OptionEmitError::PaddingType(option_type.0))
            }
            Ipv6OptionRepr::Tlv { data, .. } if data.len() > 255 => {
                return Err(Ipv6OptionEmitError::DataTooLong(data.len()))
            }
            _ => {}
        }
        let len = self.buffer_len();
        need(buf.len(), len).map_err(|(needed, available)| {
            Ipv6OptionEmitError::BufferTooSmall { needed, available }
        })?;
        match *self {
            Ipv6OptionRepr::Pad1 => buf[0] = 0,
            Ipv6OptionRepr::PadN(n) => {
                buf[0] = 1;
                buf[1] = (n - 2) as u8;
                buf[2..n].fill(0);
            }
            Ipv6OptionRepr::Tlv { option_type, data } => {
                buf[0] = option_type.0;
                buf[1] = data.len() as u8;
                buf[2..2 + data.len()].copy_from_slice(data);
            }
        }
        Ok(len)
    }

    /// Emits `options` followed by whatever padding makes the enclosing
    /// extension header a multiple of 8 bytes, returning the area length.
    pub fn emit_padded_area(
        options: &[Ipv6OptionRepr<'_>],
        buf: &mut [u8],
    ) -> Result<usize, Ipv6OptionEmitError> {
        let mut at = 0;
        for opt in options {
            at += opt.emit(buf.get_mut(at..).unwrap_or(&mut []))?;
        }
        if let Some(pad) = Ipv6OptionRepr::padding_for(at) {
            at += pad.emit(buf.get_mut(at..).unwrap_or(&mut []))?;
        }
        Ok(at)
    }

    /// The length [`Self::emit_padded_area`] would produce.
    pub fn padded_area_len(options: &[Ipv6OptionRepr<'_>]) -> usize {
        let raw: usize = options.iter().map(|o| o.buffer_len()).sum();
        raw + Ipv6OptionRepr::padding_for(raw).map_or(0, |p| p.buffer_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_pad1_padn_router_alert_and_experimental() {
        // Router Alert (05 02 0000), experimental 0x3e with 2 value bytes,
        // Pad1, PadN covering 3 bytes.
        let area = [
            0x05, 0x02, 0x00, 0x00, 0x3e, 0x02, 0xab, 0xcd, 0x00, 0x01, 0x01, 0x00,
        ];
        let opts: Vec<_> = Ipv6OptionIter::new(&area).map(|o| o.unwrap()).collect();
        assert_eq!(opts.len(), 4);
        assert_eq!(opts[0].option_type, Ipv6OptionType::ROUTER_ALERT);
        assert_eq!(
            opts[0].option_type.unknown_action(),
            UnknownOptionAction::Skip
        );
        assert!(opts[1].option_type.is_experimental());
        assert!(opts[1].option_type.may_change());
        assert_eq!(opts[1].data, &[0xab, 0xcd]);
        assert_eq!(opts[2].option_type, Ipv6OptionType::PAD1);
        assert_eq!(opts[3].option_type, Ipv6OptionType::PADN);
        assert_eq!(opts[3].offset, 9);
    }

    #[test]
    fn experimental_codepoints() {
        for t in Ipv6OptionType::EXPERIMENTAL {
            assert!(t.is_experimental(), "{t:?}");
        }
        assert!(!Ipv6OptionType::ROUTER_ALERT.is_experimental());
        assert_eq!(
            Ipv6OptionType(0xde).unknown_action(),
            UnknownOptionAction::DiscardAndIcmpUnlessMulticast
        );
        assert!(!Ipv6OptionType(0x1e).may_change());
    }

    #[test]
    fn malformed_areas() {
        let items: Vec<_> = Ipv6OptionIter::new(&[0x00, 0x05]).collect();
        assert_eq!(
            items,
            vec![
                Ok(Ipv6Option {
                    option_type: Ipv6OptionType::PAD1,
                    data: &[],
                    offset: 0
                }),
                Err(Ipv6OptionError::MissingLength {
                    option_type: 5,
                    offset: 1
                })
            ]
        );
        let items: Vec<_> = Ipv6OptionIter::new(&[0x1e, 0x09, 0x00]).collect();
        assert_eq!(
            items,
            vec![Err(Ipv6OptionError::Overrun {
                option_type: 0x1e,
                len: 9,
                offset: 0,
                available: 1
            })]
        );
    }

    #[test]
    fn padded_area_aligns_header_to_8() {
        let opts = [Ipv6OptionRepr::Tlv {
            option_type: Ipv6OptionType(0x1e),
            data: &[1, 2, 3, 4],
        }];
        // 2 (prefix) + 6 (option) = 8: no padding needed.
        assert_eq!(Ipv6OptionRepr::padded_area_len(&opts), 6);
        let opts = [Ipv6OptionRepr::Tlv {
            option_type: Ipv6OptionType(0x1e),
            data: &[1, 2, 3],
        }];
        let mut buf = [0xff; 16];
        let n = Ipv6OptionRepr::emit_padded_area(&opts, &mut buf).unwrap();
        assert_eq!(n, 6);
        assert_eq!(&buf[..6], &[0x1e, 3, 1, 2, 3, 0x00]);
        let opts = [Ipv6OptionRepr::Tlv {
            option_type: Ipv6OptionType(0x1e),
            data: &[7],
        }];
        let n = Ipv6OptionRepr::emit_padded_area(&opts, &mut buf).unwrap();
        assert_eq!(n, 6);
        assert_eq!(&buf[..6], &[0x1e, 1, 7, 0x01, 0x01, 0x00]);
        assert_eq!(Ipv6OptionRepr::padded_area_len(&opts), n);
    }

    #[test]
    fn emit_errors() {
        let mut buf = [0u8; 4];
        assert_eq!(
            Ipv6OptionRepr::PadN(1).emit(&mut buf),
            Err(Ipv6OptionEmitError::BadPadLength(1))
        );
        assert_eq!(
            Ipv6OptionRepr::Tlv {
                option_type: Ipv6OptionType::PAD1,
                data: &[]
            }
            .emit(&mut buf),
            Err(Ipv6OptionEmitError::PaddingType(0))
        );
        assert_eq!(
            Ipv6OptionRepr::PadN(6).emit(&mut buf),
            Err(Ipv6OptionEmitError::BufferTooSmall {
                needed: 6,
                available: 4
            })
        );
    }
}
