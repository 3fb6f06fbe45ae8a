//! IPv4 header options (RFC 791 §3.1) and a panic-free iterator over them.
//!
//! When IHL is above 5 the header carries up to 40 bytes of options. Each
//! option is either a single byte (End of Option List = 0, No Operation = 1)
//! or a type-length-value triple whose length byte counts the type and length
//! bytes themselves (so it is at least 2). End of Option List terminates the
//! list; whatever follows it is padding.
//!
//! Option bytes come straight off the wire, so the iterator yields
//! `Result`s: a malformed option (a missing length byte, a length below 2 or
//! one running past the option area) produces one `Err` item and then the
//! iterator stops, because once a length is wrong the rest cannot be framed.

use core::fmt;

use crate::field::need;

/// An IPv4 option type byte: copied flag (1 bit), class (2 bits), number (5 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4OptionType(pub u8);

impl Ipv4OptionType {
    /// End of Option List.
    pub const END: Ipv4OptionType = Ipv4OptionType(0);
    /// No Operation, used to align the next option.
    pub const NOP: Ipv4OptionType = Ipv4OptionType(1);
    /// Record Route.
    pub const RECORD_ROUTE: Ipv4OptionType = Ipv4OptionType(7);
    /// Internet Timestamp.
    pub const TIMESTAMP: Ipv4OptionType = Ipv4OptionType(68);
    /// Security (RFC 1108).
    pub const SECURITY: Ipv4OptionType = Ipv4OptionType(130);
    /// Loose Source and Record Route.
    pub const LSRR: Ipv4OptionType = Ipv4OptionType(131);
    /// Strict Source and Record Route.
    pub const SSRR: Ipv4OptionType = Ipv4OptionType(137);
    /// Router Alert (RFC 2113), the one option commonly seen in production.
    pub const ROUTER_ALERT: Ipv4OptionType = Ipv4OptionType(148);

    /// Whether a fragmenting router must copy the option into every fragment.
    pub const fn copied(self) -> bool {
        self.0 & 0x80 != 0
    }

    /// Option class: 0 = control, 2 = debugging and measurement.
    pub const fn class(self) -> u8 {
        (self.0 >> 5) & 0x3
    }

    /// Option number within its class.
    pub const fn number(self) -> u8 {
        self.0 & 0x1f
    }

    /// True for the two single-byte options.
    pub const fn is_single_byte(self) -> bool {
        self.0 == 0 || self.0 == 1
    }
}

impl fmt::Debug for Ipv4OptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "eol",
            1 => "nop",
            7 => "rr",
            68 => "ts",
            130 => "sec",
            131 => "lsrr",
            137 => "ssrr",
            148 => "ra",
            _ => "?",
        };
        write!(f, "Ipv4OptionType({} {name})", self.0)
    }
}

/// One well-framed option. `data` excludes the type and length bytes and is
/// empty for No Operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// The option type byte.
    pub kind: Ipv4OptionType,
    /// The value bytes.
    pub data: &'a [u8],
    /// Offset of the type byte within the option area.
    pub offset: usize,
}

/// Why an option could not be framed. Offsets are relative to the start of
/// the option area (byte 20 of the IPv4 header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4OptionError {
    /// A multi-byte option type is the last byte of the area.
    MissingLength {
        /// Option type.
        kind: u8,
        /// Offset of the type byte.
        offset: usize,
    },
    /// The length byte is 0 or 1, which cannot cover type + length.
    LengthTooSmall {
        /// Option type.
        kind: u8,
        /// The length byte.
        len: u8,
        /// Offset of the type byte.
        offset: usize,
    },
    /// The length byte runs past the end of the option area.
    Overrun {
        /// Option type.
        kind: u8,
        /// The length byte.
        len: u8,
        /// Offset of the type byte.
        offset: usize,
        /// Bytes left in the area from `offset`.
        available: usize,
    },
}

impl fmt::Display for Ipv4OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv4OptionError::MissingLength { kind, offset } => write!(
                f,
                "IPv4 option type {kind} at offset {offset} has no length byte"
            ),
            Ipv4OptionError::LengthTooSmall { kind, len, offset } => write!(
                f,
                "IPv4 option type {kind} at offset {offset} has length {len}, below the minimum of 2"
            ),
            Ipv4OptionError::Overrun {
                kind,
                len,
                offset,
                available,
            } => write!(
                f,
                "IPv4 option type {kind} at offset {offset} claims {len} bytes but only {available} remain"
            ),
        }
    }
}

impl std::error::Error for Ipv4OptionError {}

/// Iterator over an IPv4 option area. Never panics, whatever the bytes.
#[derive(Debug, Clone)]
pub struct Ipv4OptionIter<'a> {
    area: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Ipv4OptionIter<'a> {
    /// Iterates over `area`, the bytes between offset 20 and IHL*4.
    pub fn new(area: &'a [u8]) -> Self {
        Ipv4OptionIter {
            area,
            offset: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for Ipv4OptionIter<'a> {
    type Item = Result<Ipv4Option<'a>, Ipv4OptionError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.offset;
        let rest = self.area.get(offset..).unwrap_or(&[]);
        let Some(&kind) = rest.first() else {
            self.done = true;
            return None;
        };
        match kind {
            0 => {
                // End of list: the remaining bytes are padding by definition.
                self.done = true;
                None
            }
            1 => {
                self.offset += 1;
                Some(Ok(Ipv4Option {
                    kind: Ipv4OptionType::NOP,
                    data: &[],
                    offset,
                }))
            }
            _ => {
                let Some(&len) = rest.get(1) else {
                    self.done = true;
                    return Some(Err(Ipv4OptionError::MissingLength { kind, offset }));
                };
                if len < 2 {
                    self.done = true;
                    return Some(Err(Ipv4OptionError::LengthTooSmall { kind, len, offset }));
                }
                let Some(data) = rest.get(2..usize::from(len)) else {
                    self.done = true;
                    return Some(Err(Ipv4OptionError::Overrun {
                        kind,
                        len,
                        offset,
                        available: rest.len(),
                    }));
                };
                self.offset += usize::from(len);
                Some(Ok(Ipv4Option {
                    kind: Ipv4OptionType(kind),
                    data,
                    offset,
                }))
            }
        }
    }
}

/// An option to emit. [`Ipv4OptionRepr::emit`] writes exactly
/// [`Ipv4OptionRepr::buffer_len`] bytes; the caller pads the area to a
/// multiple of 4 (see [`Ipv4OptionRepr::padding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4OptionRepr<'a> {
    /// End of Option List (1 byte).
    End,
    /// No Operation (1 byte).
    Nop,
    /// A type-length-value option; `data` is at most 38 bytes.
    Tlv {
        /// Option type (not 0 or 1).
        kind: Ipv4OptionType,
        /// Value bytes.
        data: &'a [u8],
    },
}

/// Why an option could not be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4OptionEmitError {
    /// The value does not fit in the 40-byte option area.
    DataTooLong(usize),
    /// Types 0 and 1 are single-byte and cannot carry data.
    SingleByteKind(u8),
    /// The destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for Ipv4OptionEmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv4OptionEmitError::DataTooLong(n) => {
                write!(
                    f,
                    "IPv4 option value of {n} bytes exceeds the 38-byte maximum"
                )
            }
            Ipv4OptionEmitError::SingleByteKind(k) => {
                write!(
                    f,
                    "IPv4 option type {k} is single-byte and cannot carry a value"
                )
            }
            Ipv4OptionEmitError::BufferTooSmall { needed, available } => write!(
                f,
                "IPv4 option needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for Ipv4OptionEmitError {}

impl<'a> Ipv4OptionRepr<'a> {
    /// Converts an iterator item back into something emittable.
    pub fn parse(opt: &Ipv4Option<'a>) -> Self {
        match opt.kind.0 {
            0 => Ipv4OptionRepr::End,
            1 => Ipv4OptionRepr::Nop,
            _ => Ipv4OptionRepr::Tlv {
                kind: opt.kind,
                data: opt.data,
            },
        }
    }

    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Ipv4OptionRepr::End | Ipv4OptionRepr::Nop => 1,
            Ipv4OptionRepr::Tlv { data, .. } => 2 + data.len(),
        }
    }

    /// NOPs needed after `area_len` bytes of options to reach a multiple of 4.
    pub const fn padding(area_len: usize) -> usize {
        (4 - area_len % 4) % 4
    }

    /// Writes the option to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Ipv4OptionEmitError> {
        need(buf.len(), self.buffer_len()).map_err(|(needed, available)| {
            Ipv4OptionEmitError::BufferTooSmall { needed, available }
        })?;
        match *self {
            Ipv4OptionRepr::End => buf[0] = 0,
            Ipv4OptionRepr::Nop => buf[0] = 1,
            Ipv4OptionRepr::Tlv { kind, data } => {
                if kind.is_single_byte() {
                    return Err(Ipv4OptionEmitError::SingleByteKind(kind.0));
                }
                if data.len() > 38 {
                    return Err(Ipv4OptionEmitError::DataTooLong(data.len()));
                }
                buf[0] = kind.0;
                buf[1] = (data.len() + 2) as u8;
                buf[2..2 + data.len()].copy_from_slice(data);
            }
        }
        Ok(self.buffer_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_router_alert_nop_timestamp_eol() {
        // Router Alert (94 04 0000), NOP, Timestamp (44 08 05 00 + 4 bytes), EOL, pad.
        let area = [
            0x94, 0x04, 0x00, 0x00, 0x01, 0x44, 0x08, 0x05, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00,
            0x00, 0x00,
        ];
        let opts: Vec<_> = Ipv4OptionIter::new(&area).collect();
        assert_eq!(opts.len(), 3);
        let ra = opts[0].unwrap();
        assert_eq!(ra.kind, Ipv4OptionType::ROUTER_ALERT);
        assert!(ra.kind.copied());
        assert_eq!(ra.data, &[0, 0]);
        assert_eq!(opts[1].unwrap().kind, Ipv4OptionType::NOP);
        let ts = opts[2].unwrap();
        assert_eq!(ts.kind.class(), 2);
        assert_eq!(ts.kind.number(), 4);
        assert_eq!(ts.offset, 5);
        assert_eq!(ts.data.len(), 6);
    }

    #[test]
    fn malformed_options_yield_one_error_then_stop() {
        let cases: [(&[u8], Ipv4OptionError); 3] = [
            (
                &[0x01, 0x94],
                Ipv4OptionError::MissingLength {
                    kind: 0x94,
                    offset: 1,
                },
            ),
            (
                &[0x07, 0x01, 0x00, 0x00],
                Ipv4OptionError::LengthTooSmall {
                    kind: 7,
                    len: 1,
                    offset: 0,
                },
            ),
            (
                &[0x07, 0x27, 0x04, 0x00],
                Ipv4OptionError::Overrun {
                    kind: 7,
                    len: 0x27,
                    offset: 0,
                    available: 4,
                },
            ),
        ];
        for (area, want) in cases {
            let items: Vec<_> = Ipv4OptionIter::new(area).collect();
            assert_eq!(items.last(), Some(&Err(want)), "{area:02x?}");
            assert_eq!(items.iter().filter(|i| i.is_err()).count(), 1);
        }
    }

    #[test]
    fn emit_and_pad() {
        let ra = Ipv4OptionRepr::Tlv {
            kind: Ipv4OptionType::ROUTER_ALERT,
            data: &[0, 0],
        };
        let mut buf = [0xaa; 8];
        assert_eq!(ra.emit(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], &[0x94, 0x04, 0, 0]);
        assert_eq!(Ipv4OptionRepr::padding(5), 3);
        assert_eq!(Ipv4OptionRepr::padding(8), 0);
        let bad = Ipv4OptionRepr::Tlv {
            kind: Ipv4OptionType::NOP,
            data: &[1],
        };
        assert_eq!(
            bad.emit(&mut buf),
            Err(Ipv4OptionEmitError::SingleByteKind(1))
        );
        let parsed: Vec<_> = Ipv4OptionIter::new(&buf[..4])
            .map(|o| Ipv4OptionRepr::parse(&o.unwrap()))
            .collect();
        assert_eq!(parsed, vec![ra]);
    }
}
