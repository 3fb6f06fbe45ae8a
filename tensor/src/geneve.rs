//! Geneve (RFC 8926), the overlay two appliances talk over.
//!
//! A Geneve packet is a UDP payload (destination port [`GENEVE_UDP_PORT`])
//! made of an 8-byte fixed header, a variable options area and the
//! encapsulated payload:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Variable-Length Options                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! `Opt Len` counts the options area in 4-byte words (so at most 252
//! bytes). `O` marks a control (OAM) packet, `C` says at least one option
//! is critical. IntelliNode carries whole Ethernet frames, protocol type
//! [`ETHERTYPE_TEB`].
//!
//! Each option is itself a small TLV:
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Option Class         |      Type     |R|R|R| Length  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Variable-Length Option Data                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! `Length` counts the data in 4-byte words, excluding the 4-byte option
//! header, and the high bit of `Type` is the critical bit: a receiver that
//! does not understand a critical option must not process the packet.
//!
//! [`GenevePacket::new_checked`] validates the version and that the whole
//! options area is present, once; after that the accessors cannot fail.
//! Options are walked lazily by [`GeneveOptions`], which stops at the first
//! option whose announced length runs past the options area.

use core::fmt;

/// IANA-assigned UDP destination port of Geneve.
pub const GENEVE_UDP_PORT: u16 = 6081;

/// Protocol type "Transparent Ethernet Bridging": the payload is a whole
/// Ethernet frame, starting with its destination MAC.
pub const ETHERTYPE_TEB: u16 = 0x6558;

/// Length of the fixed Geneve header.
pub const HEADER_LEN: usize = 8;

/// Length of a Geneve option header (class, type, length).
pub const OPTION_HEADER_LEN: usize = 4;

/// The largest options area `Opt Len` (6 bits of 4-byte words) can announce.
pub const MAX_OPTIONS_AREA_LEN: usize = 63 * 4;

/// The largest option data an option's `Length` (5 bits of 4-byte words)
/// can announce.
pub const MAX_OPTION_DATA_LEN: usize = 31 * 4;

/// The critical bit of an option's type.
pub const CRITICAL: u8 = 0x80;

const FLAG_OAM: u8 = 0x80;
const FLAG_CRITICAL: u8 = 0x40;

/// Everything that can be wrong with a Geneve header or option, or with a
/// request to emit one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneveError {
    /// Fewer than 8 bytes: the fixed header does not fit.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// The version field is not 0, the only version defined.
    BadVersion(u8),
    /// `Opt Len` announces more option bytes than follow the header.
    OptionsTruncated {
        /// Bytes announced by `Opt Len`.
        options_len: usize,
        /// Bytes present after the fixed header.
        available: usize,
    },
    /// An option header, or the data its `Length` announces, runs past the
    /// end of the options area.
    OptionTruncated {
        /// Offset of the option within the options area.
        offset: usize,
        /// Bytes the option needs (header and data).
        needed: usize,
        /// Bytes left in the options area from `offset`.
        available: usize,
    },
    /// Emit: the options area (or an option's data) is not a whole number
    /// of 4-byte words.
    NotAligned(usize),
    /// Emit: more option bytes than `Opt Len` or an option's `Length` can
    /// express.
    TooLong {
        /// Bytes requested.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Emit: the VNI does not fit in 24 bits.
    VniOutOfRange(u32),
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl GeneveError {
    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            GeneveError::Truncated { .. } => "geneve.truncated",
            GeneveError::BadVersion(_) => "geneve.bad_version",
            GeneveError::OptionsTruncated { .. } => "geneve.options_truncated",
            GeneveError::OptionTruncated { .. } => "geneve.option_truncated",
            GeneveError::NotAligned(_) => "geneve.not_aligned",
            GeneveError::TooLong { .. } => "geneve.too_long",
            GeneveError::VniOutOfRange(_) => "geneve.vni_out_of_range",
            GeneveError::BufferTooSmall { .. } => "geneve.buffer_too_small",
        }
    }
}

impl fmt::Display for GeneveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GeneveError::Truncated { available } => write!(
                f,
                "only {available} bytes, fewer than the 8-byte Geneve header"
            ),
            GeneveError::BadVersion(v) => write!(f, "Geneve version {v}, expected 0"),
            GeneveError::OptionsTruncated {
                options_len,
                available,
            } => write!(
                f,
                "Opt Len announces {options_len} option bytes but only {available} follow the header"
            ),
            GeneveError::OptionTruncated {
                offset,
                needed,
                available,
            } => write!(
                f,
                "option at offset {offset} needs {needed} bytes but only {available} remain in the options area"
            ),
            GeneveError::NotAligned(n) => {
                write!(f, "{n} option bytes is not a multiple of 4")
            }
            GeneveError::TooLong { len, max } => {
                write!(f, "{len} option bytes exceeds the maximum of {max}")
            }
            GeneveError::VniOutOfRange(v) => write!(f, "VNI {v:#x} does not fit in 24 bits"),
            GeneveError::BufferTooSmall { needed, available } => write!(
                f,
                "Geneve needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for GeneveError {}

/// A zero-copy view of a Geneve packet: fixed header, options, payload.
#[derive(Debug, Clone)]
pub struct GenevePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GenevePacket<T> {
    /// Wraps after checking the version and that the fixed header and the
    /// whole options area are present.
    pub fn new_checked(buffer: T) -> Result<Self, GeneveError> {
        let b = buffer.as_ref();
        let available = b.len();
        let (Some(&b0), true) = (b.first(), available >= HEADER_LEN) else {
            return Err(GeneveError::Truncated { available });
        };
        let version = b0 >> 6;
        if version != 0 {
            return Err(GeneveError::BadVersion(version));
        }
        let options_len = usize::from(b0 & 0x3f) * 4;
        if HEADER_LEN + options_len > available {
            return Err(GeneveError::OptionsTruncated {
                options_len,
                available: available - HEADER_LEN,
            });
        }
        Ok(GenevePacket { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, at: usize) -> u8 {
        // new_checked guaranteed HEADER_LEN bytes; the default never shows.
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    /// The version (always 0 once checked).
    pub fn version(&self) -> u8 {
        self.byte(0) >> 6
    }

    /// Length of the options area, bytes.
    pub fn options_len(&self) -> usize {
        usize::from(self.byte(0) & 0x3f) * 4
    }

    /// Fixed header plus options: where the payload starts.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// The O bit: a control (OAM) packet, not to be forwarded as data.
    pub fn oam(&self) -> bool {
        self.byte(1) & FLAG_OAM != 0
    }

    /// The C bit: at least one option is critical.
    pub fn critical(&self) -> bool {
        self.byte(1) & FLAG_CRITICAL != 0
    }

    /// The payload's protocol (an EtherType).
    pub fn protocol_type(&self) -> u16 {
        u16::from_be_bytes([self.byte(2), self.byte(3)])
    }

    /// The 24-bit Virtual Network Identifier.
    pub fn vni(&self) -> u32 {
        u32::from_be_bytes([0, self.byte(4), self.byte(5), self.byte(6)])
    }

    /// The raw options area.
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// The options, one at a time.
    pub fn option_iter(&self) -> GeneveOptions<'_> {
        GeneveOptions::new(self.options())
    }

    /// Everything after the options.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

/// One Geneve option, borrowed from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    /// Who defined the option (IANA registry, 0xFF00–0xFFFF experimental).
    pub class: u16,
    /// The type within the class; the high bit is the critical bit.
    pub option_type: u8,
    /// The option data (a multiple of 4 bytes, header excluded).
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    /// Whether a receiver that does not understand the option must drop the
    /// packet.
    pub fn is_critical(&self) -> bool {
        self.option_type & CRITICAL != 0
    }

    /// Bytes on the wire, header included.
    pub fn wire_len(&self) -> usize {
        OPTION_HEADER_LEN + self.data.len()
    }
}

/// Iterator over the options of an options area.
///
/// Yields `Err` once, for the first option that does not fit, and then
/// stops: after a bad length nothing that follows can be trusted to be an
/// option boundary.
#[derive(Debug, Clone)]
pub struct GeneveOptions<'a> {
    area: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> GeneveOptions<'a> {
    /// Walks `area`, an options area (e.g. [`GenevePacket::options`]).
    pub fn new(area: &'a [u8]) -> Self {
        GeneveOptions {
            area,
            offset: 0,
            failed: false,
        }
    }

    /// Offset, within the area, of the next option to be yielded.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for GeneveOptions<'a> {
    type Item = Result<GeneveOption<'a>, GeneveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.area.get(self.offset..)?;
        if rest.is_empty() {
            return None;
        }
        let truncated = |needed: usize| GeneveError::OptionTruncated {
            offset: self.offset,
            needed,
            available: rest.len(),
        };
        let Some(&[c0, c1, option_type, len_byte]) = rest.get(..OPTION_HEADER_LEN) else {
            self.failed = true;
            return Some(Err(truncated(OPTION_HEADER_LEN)));
        };
        // The three R bits are reserved: ignored on receipt (RFC 8926 §3.5).
        let needed = OPTION_HEADER_LEN + usize::from(len_byte & 0x1f) * 4;
        let Some(data) = rest.get(OPTION_HEADER_LEN..needed) else {
            self.failed = true;
            return Some(Err(truncated(needed)));
        };
        self.offset += needed;
        Some(Ok(GeneveOption {
            class: u16::from_be_bytes([c0, c1]),
            option_type,
            data,
        }))
    }
}

/// Writes one option (header and `data`) at the start of `out`; returns
/// the bytes written.
pub fn emit_option(
    out: &mut [u8],
    class: u16,
    option_type: u8,
    data: &[u8],
) -> Result<usize, GeneveError> {
    if data.len() % 4 != 0 {
        return Err(GeneveError::NotAligned(data.len()));
    }
    if data.len() > MAX_OPTION_DATA_LEN {
        return Err(GeneveError::TooLong {
            len: data.len(),
            max: MAX_OPTION_DATA_LEN,
        });
    }
    let needed = OPTION_HEADER_LEN + data.len();
    let available = out.len();
    let Some(dst) = out.get_mut(..needed) else {
        return Err(GeneveError::BufferTooSmall { needed, available });
    };
    let [c0, c1] = class.to_be_bytes();
    let (hdr, body) = dst.split_at_mut(OPTION_HEADER_LEN);
    // data.len() ≤ 124 was checked, so the word count fits in 5 bits.
    hdr.copy_from_slice(&[c0, c1, option_type, (data.len() / 4) as u8]);
    body.copy_from_slice(data);
    Ok(needed)
}

/// The fixed Geneve header, as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GeneveRepr {
    /// The O bit.
    pub oam: bool,
    /// The C bit: set it whenever a critical option is present.
    pub critical: bool,
    /// The payload's EtherType ([`ETHERTYPE_TEB`] for IntelliNode).
    pub protocol_type: u16,
    /// 24-bit VNI.
    pub vni: u32,
    /// Length of the options area that follows, bytes (multiple of 4).
    pub options_len: usize,
}

impl GeneveRepr {
    /// Reads the fixed header of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &GenevePacket<T>) -> GeneveRepr {
        GeneveRepr {
            oam: packet.oam(),
            critical: packet.critical(),
            protocol_type: packet.protocol_type(),
            vni: packet.vni(),
            options_len: packet.options_len(),
        }
    }

    /// Fixed header plus options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len
    }

    /// Writes the 8-byte fixed header at the start of `out` (the caller
    /// writes the `options_len` option bytes right after it); returns 8.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, GeneveError> {
        if self.options_len % 4 != 0 {
            return Err(GeneveError::NotAligned(self.options_len));
        }
        if self.options_len > MAX_OPTIONS_AREA_LEN {
            return Err(GeneveError::TooLong {
                len: self.options_len,
                max: MAX_OPTIONS_AREA_LEN,
            });
        }
        if self.vni > 0x00ff_ffff {
            return Err(GeneveError::VniOutOfRange(self.vni));
        }
        let available = out.len();
        let Some(dst) = out.get_mut(..HEADER_LEN) else {
            return Err(GeneveError::BufferTooSmall {
                needed: HEADER_LEN,
                available,
            });
        };
        let mut flags = 0;
        if self.oam {
            flags |= FLAG_OAM;
        }
        if self.critical {
            flags |= FLAG_CRITICAL;
        }
        let [p0, p1] = self.protocol_type.to_be_bytes();
        let [_, v0, v1, v2] = self.vni.to_be_bytes();
        // Version 0 in the top two bits; options_len ≤ 252 fits in six.
        let b0 = (self.options_len / 4) as u8;
        dst.copy_from_slice(&[b0, flags, p0, p1, v0, v1, v2, 0]);
        Ok(HEADER_LEN)
    }
}
