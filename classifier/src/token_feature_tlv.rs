//! The token feature TLV of the token-aware traffic steering draft (§5a),
//! its two carriers (an IPv6 Hop-by-Hop option and an IPv4 option) and the
//! fast-path lookup [`find_token_feature`].
//!
//! # The TLV
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |  Length = 10  |D|         Unassigned          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Token feature ID (64 bits)                   |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The draft says Length is "the total number of the octets of the value
//! field". The value field is everything after Length: the D flag and the 15
//! unassigned bits (2 octets) plus the ID (8 octets), so **Length = 10** and
//! the TLV is 12 octets. (The other reading — the value is only the 64-bit
//! ID, Length = 8, with D/Unassigned a fixed part of the header — is
//! rejected: the D word sits between Length and the ID, and a Length that
//! did not cover it would not let a generic TLV walker skip the option.)
//! Unassigned bits are sent as zero and **ignored** on receipt, as the
//! draft requires; only a wrong Length, truncation or an invalid ID
//! ([`crate::token_feature::decode`]) makes the TLV malformed.
//!
//! # Carriers
//!
//! * **IPv6 Hop-by-Hop option, type 0x1E** (RFC 4727 experimental; high
//!   bits `00` = skip if unrecognised, third bit `0` = does not change en
//!   route). The option *is* the TLV byte for byte: option type = TLV
//!   Type, Opt Data Len = TLV Length = 10 (both count only what follows the
//!   length byte). [`emit_hbh_header`] builds a whole 16-byte Hop-by-Hop
//!   header: Next Header, Hdr Ext Len 1, PadN(2), then the option, so the
//!   option is at its alignment `8n+4` and the 64-bit ID starts on an
//!   8-octet boundary of the header.
//! * **IPv4 option, type 0x9E** (RFC 4727 experimental number 30, class 0,
//!   *copied* flag set, so a fragmenting router puts it in every fragment
//!   and every fragment can be steered alike). An IPv4 option's length byte
//!   counts the type and length octets too, so here it is **12**, not 10;
//!   the value bytes after it are the same 10 octets. 12 is a multiple of 4,
//!   so the option alone needs no padding (IHL 8); [`emit_ipv4_option_area`]
//!   pads other layouts with End of Option List and zeros. Receivers also
//!   accept the uncopied codepoint 0x1E.
//!
//! # Lookup
//!
//! [`find_token_feature`] scans the option span the parser already located
//! and returns [`TlvLookup`]. It is bounded by the span (≤ 40 bytes for
//! IPv4, ≤ 2048 for a Hop-by-Hop header), never allocates and never panics.
//! Callers MUST treat [`TlvLookup::Malformed`] exactly like
//! [`TlvLookup::Absent`] for steering (fall back to inferring the features)
//! and count it under [`TlvMalformed::code`].

use core::fmt;

use crate::field::need;
use crate::ipv4_option::Ipv4OptionIter;
use crate::ipv6_option::Ipv6OptionIter;
use crate::parse::{L3Kind, ParsedPacket};
use crate::token_feature::{FeatureError, TokenFeatureId};

/// TLV Length: octets after the Length field (2 flag octets + 8 ID octets).
pub const TLV_VALUE_LEN: usize = 10;
/// Whole TLV: Type + Length + value.
pub const TLV_LEN: usize = 2 + TLV_VALUE_LEN;
/// IPv6 Hop-by-Hop option type (RFC 4727 experimental, skip, no change).
pub const HBH_OPTION_TYPE: u8 = 0x1e;
/// IPv4 option type emitted (RFC 4727 experimental 30, class 0, copied).
pub const IPV4_OPTION_TYPE: u8 = 0x9e;
/// IPv4 option type also accepted (experimental 30, class 0, not copied).
pub const IPV4_OPTION_TYPE_UNCOPIED: u8 = 0x1e;
/// IPv4 option length byte (counts type and length octets).
pub const IPV4_OPTION_LEN: u8 = TLV_LEN as u8;
/// Bytes [`emit_hbh_header`] writes.
pub const HBH_HEADER_LEN: usize = 16;

const D_FLAG: u8 = 0x80;

/// Why a TLV could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlvError {
    /// Fewer bytes than the TLV needs.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The Length field is not 10 (or 12 for the IPv4 carrier).
    BadLength(u8),
    /// The feature ID is not a valid version-1 ID.
    Feature(FeatureError),
}

impl fmt::Display for TlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TlvError::Truncated { needed, available } => write!(
                f,
                "token feature TLV needs {needed} bytes but {available} are present"
            ),
            TlvError::BadLength(l) => write!(f, "token feature TLV length {l} is not 10"),
            TlvError::Feature(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TlvError {}

/// A zero-copy view of the 12-byte TLV in its canonical (draft / IPv6)
/// framing: Type, Length = 10, D + Unassigned, ID.
#[derive(Debug, Clone, Copy)]
pub struct TokenFeatureTlv<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> TokenFeatureTlv<T> {
    /// Checks that the buffer holds a whole TLV and that Length is 10. The
    /// Type byte is not checked (it depends on the carrier) and neither is
    /// the ID (see [`TokenFeatureTlvRepr::parse`]).
    pub fn new_checked(buf: T) -> Result<Self, TlvError> {
        let b = buf.as_ref();
        need(b.len(), 2)
            .map_err(|(needed, available)| TlvError::Truncated { needed, available })?;
        if usize::from(b[1]) != TLV_VALUE_LEN {
            return Err(TlvError::BadLength(b[1]));
        }
        need(b.len(), TLV_LEN)
            .map_err(|(needed, available)| TlvError::Truncated { needed, available })?;
        Ok(TokenFeatureTlv { buf })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Type octet.
    pub fn kind(&self) -> u8 {
        self.buf.as_ref()[0]
    }

    /// Length octet (10).
    pub fn length(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// The D (directed) flag.
    pub fn directed(&self) -> bool {
        self.buf.as_ref()[2] & D_FLAG != 0
    }

    /// The 15 unassigned bits (ignored on receipt).
    pub fn unassigned(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[2] & !D_FLAG, b[3]])
    }

    /// The raw feature ID (not validated).
    pub fn feature_id(&self) -> TokenFeatureId {
        let b = self.buf.as_ref();
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[4..12]);
        TokenFeatureId::from_bytes(id)
    }

    /// The 10 value octets.
    pub fn value(&self) -> &[u8] {
        &self.buf.as_ref()[2..TLV_LEN]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TokenFeatureTlv<T> {
    /// Sets the D flag.
    pub fn set_directed(&mut self, d: bool) {
        let b = &mut self.buf.as_mut()[2];
        *b = if d { *b | D_FLAG } else { *b & !D_FLAG };
    }

    /// Sets the feature ID.
    pub fn set_feature_id(&mut self, id: TokenFeatureId) {
        self.buf.as_mut()[4..12].copy_from_slice(&id.to_bytes());
    }
}

/// The decoded TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenFeatureTlvRepr {
    /// The D flag: the transaction is directed.
    pub directed: bool,
    /// The feature ID (valid version 1 after [`Self::parse`]).
    pub feature_id: TokenFeatureId,
}

impl TokenFeatureTlvRepr {
    /// Decodes a checked view; the ID must be a valid version-1 ID.
    /// Unassigned bits are ignored.
    pub fn parse<T: AsRef<[u8]>>(tlv: &TokenFeatureTlv<T>) -> Result<Self, TlvError> {
        Self::parse_value(tlv.value())
    }

    /// Decodes the 10 value octets (D + Unassigned + ID), as found after the
    /// type and length bytes of either carrier.
    pub fn parse_value(value: &[u8]) -> Result<Self, TlvError> {
        let Some(v) = value.get(..TLV_VALUE_LEN) else {
            return Err(TlvError::Truncated {
                needed: TLV_VALUE_LEN,
                available: value.len(),
            });
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&v[2..10]);
        let feature_id = TokenFeatureId::from_bytes(id);
        feature_id.validate().map_err(TlvError::Feature)?;
        Ok(TokenFeatureTlvRepr {
            directed: v[0] & D_FLAG != 0,
            feature_id,
        })
    }

    /// Bytes [`Self::emit`] writes (12).
    pub const fn buffer_len(&self) -> usize {
        TLV_LEN
    }

    /// The 10 value octets (unassigned bits zero).
    pub fn value_bytes(&self) -> [u8; TLV_VALUE_LEN] {
        let mut v = [0u8; TLV_VALUE_LEN];
        v[0] = if self.directed { D_FLAG } else { 0 };
        v[2..].copy_from_slice(&self.feature_id.to_bytes());
        v
    }

    /// Writes the canonical TLV (`kind`, 10, value) to the front of `buf`.
    /// Use [`HBH_OPTION_TYPE`] for IPv6; see [`emit_ipv4_option`] for IPv4,
    /// whose length byte differs.
    pub fn emit(&self, kind: u8, buf: &mut [u8]) -> Result<usize, TlvError> {
        need(buf.len(), TLV_LEN)
            .map_err(|(needed, available)| TlvError::Truncated { needed, available })?;
        buf[0] = kind;
        buf[1] = TLV_VALUE_LEN as u8;
        buf[2..TLV_LEN].copy_from_slice(&self.value_bytes());
        Ok(TLV_LEN)
    }
}

/// Writes a complete 16-byte IPv6 Hop-by-Hop extension header carrying only
/// the token feature option: `next_header`, Hdr Ext Len = 1, PadN (2 bytes,
/// `01 00`), then the option (type 0x1E, Opt Data Len 10). The ID lands at
/// header offset 8.
pub fn emit_hbh_header(
    repr: &TokenFeatureTlvRepr,
    next_header: u8,
    buf: &mut [u8],
) -> Result<usize, TlvError> {
    need(buf.len(), HBH_HEADER_LEN)
        .map_err(|(needed, available)| TlvError::Truncated { needed, available })?;
    buf[0] = next_header;
    buf[1] = (HBH_HEADER_LEN / 8 - 1) as u8;
    buf[2] = 1; // PadN
    buf[3] = 0; // with no value bytes: 2 bytes of padding in total
    repr.emit(HBH_OPTION_TYPE, &mut buf[4..])?;
    Ok(HBH_HEADER_LEN)
}

/// Writes the 12-byte IPv4 option (type 0x9E, length 12, value).
pub fn emit_ipv4_option(repr: &TokenFeatureTlvRepr, buf: &mut [u8]) -> Result<usize, TlvError> {
    need(buf.len(), TLV_LEN)
        .map_err(|(needed, available)| TlvError::Truncated { needed, available })?;
    buf[0] = IPV4_OPTION_TYPE;
    buf[1] = IPV4_OPTION_LEN;
    buf[2..TLV_LEN].copy_from_slice(&repr.value_bytes());
    Ok(TLV_LEN)
}

/// Writes an IPv4 option area: `other` (already-encoded options, placed
/// first), the token feature option, then End of Option List and zeros up
/// to a multiple of 4. Returns the area length (at most 40), from which
/// IHL = 5 + len / 4.
pub fn emit_ipv4_option_area(
    repr: &TokenFeatureTlvRepr,
    other: &[u8],
    buf: &mut [u8],
) -> Result<usize, TlvError> {
    let raw = other.len() + TLV_LEN;
    let len = raw + (4 - raw % 4) % 4;
    if len > 40 {
        return Err(TlvError::Truncated {
            needed: len,
            available: 40,
        });
    }
    need(buf.len(), len)
        .map_err(|(needed, available)| TlvError::Truncated { needed, available })?;
    buf[..other.len()].copy_from_slice(other);
    emit_ipv4_option(repr, &mut buf[other.len()..])?;
    // First padding byte is End of Option List (0); the rest are zero too.
    buf[raw..len].fill(0);
    Ok(len)
}

/// Why a present TLV was not usable. Callers treat all of these as "no
/// TLV" and count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlvMalformed {
    /// The option's length is not 10 (IPv6) / 12 (IPv4).
    BadLength(u8),
    /// The option runs past the option area, or its length byte is missing.
    Truncated,
    /// The ID's layout version is unknown.
    UnknownVersion(u8),
    /// The ID's task code is reserved.
    ReservedTask(u8),
    /// The ID's reserved bits are not zero.
    ReservedBits,
    /// The option area could not be framed before a TLV was found.
    OptionFraming,
    /// More than one token feature TLV.
    Duplicate,
    /// The ID's version-2 prefix field is inconsistent.
    BadPrefix,
}

impl TlvMalformed {
    /// Every code, in [`Self::index`] order: the keys of per-code counters.
    pub const CODES: [&'static str; 8] = [
        "token_tlv.bad_length",
        "token_tlv.truncated",
        "token_tlv.unknown_version",
        "token_tlv.reserved_task",
        "token_tlv.reserved_bits",
        "token_tlv.option_framing",
        "token_tlv.duplicate",
        "token_tlv.bad_prefix",
    ];

    /// This reason's index in [`Self::CODES`].
    pub const fn index(&self) -> usize {
        match self {
            TlvMalformed::BadLength(_) => 0,
            TlvMalformed::Truncated => 1,
            TlvMalformed::UnknownVersion(_) => 2,
            TlvMalformed::ReservedTask(_) => 3,
            TlvMalformed::ReservedBits => 4,
            TlvMalformed::OptionFraming => 5,
            TlvMalformed::Duplicate => 6,
            TlvMalformed::BadPrefix => 7,
        }
    }

    /// The reason an ID that does not decode gives.
    pub const fn of_feature_error(e: FeatureError) -> TlvMalformed {
        match e {
            FeatureError::UnknownVersion(v) => TlvMalformed::UnknownVersion(v),
            FeatureError::ReservedTask(t) => TlvMalformed::ReservedTask(t),
            FeatureError::ReservedBits(_) => TlvMalformed::ReservedBits,
            FeatureError::BadPrefix(_) => TlvMalformed::BadPrefix,
        }
    }

    /// A stable identifier for counters.
    pub const fn code(&self) -> &'static str {
        match self {
            TlvMalformed::BadLength(_) => "token_tlv.bad_length",
            TlvMalformed::Truncated => "token_tlv.truncated",
            TlvMalformed::UnknownVersion(_) => "token_tlv.unknown_version",
            TlvMalformed::ReservedTask(_) => "token_tlv.reserved_task",
            TlvMalformed::ReservedBits => "token_tlv.reserved_bits",
            TlvMalformed::OptionFraming => "token_tlv.option_framing",
            TlvMalformed::Duplicate => "token_tlv.duplicate",
            TlvMalformed::BadPrefix => "token_tlv.bad_prefix",
        }
    }

    fn from_tlv_error(e: TlvError) -> Self {
        match e {
            TlvError::Truncated { .. } => TlvMalformed::Truncated,
            TlvError::BadLength(l) => TlvMalformed::BadLength(l),
            TlvError::Feature(f) => TlvMalformed::of_feature_error(f),
        }
    }
}

impl fmt::Display for TlvMalformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TlvMalformed::BadLength(l) => write!(f, "token feature TLV has length {l}"),
            TlvMalformed::Truncated => f.write_str("token feature TLV is truncated"),
            TlvMalformed::UnknownVersion(v) => {
                write!(f, "token feature ID has unknown layout version {v}")
            }
            TlvMalformed::ReservedTask(t) => write!(f, "token feature ID has reserved task {t}"),
            TlvMalformed::ReservedBits => f.write_str("token feature ID has nonzero reserved bits"),
            TlvMalformed::OptionFraming => {
                f.write_str("option area malformed before any token feature TLV")
            }
            TlvMalformed::Duplicate => f.write_str("more than one token feature TLV"),
            TlvMalformed::BadPrefix => {
                f.write_str("token feature ID has an inconsistent shared-prefix field")
            }
        }
    }
}

/// The result of [`find_token_feature`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlvLookup {
    /// No token feature option (or not IP, or no options).
    Absent,
    /// A well-formed TLV with a valid version-1 ID.
    Present {
        /// The D flag.
        directed: bool,
        /// The validated ID.
        id: TokenFeatureId,
    },
    /// A TLV was there but unusable: treat as [`TlvLookup::Absent`] and count.
    Malformed(TlvMalformed),
}

impl TlvLookup {
    /// The ID when present and valid.
    pub const fn id(&self) -> Option<TokenFeatureId> {
        match self {
            TlvLookup::Present { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// Looks for the token feature TLV in the IPv4 options or the IPv6
/// Hop-by-Hop options that [`crate::parse()`] located in `frame`.
///
/// IPv4: option type 0x9E or 0x1E with length 12. IPv6: option type 0x1E
/// with Opt Data Len 10. A second TLV makes the lookup
/// [`TlvMalformed::Duplicate`]. A framing error in the option area *after*
/// a good TLV is ignored (the TLV is returned); before one it is
/// [`TlvMalformed::OptionFraming`], since a TLV could be hidden behind it.
pub fn find_token_feature(frame: &[u8], parsed: &ParsedPacket) -> TlvLookup {
    match parsed.l3_kind {
        L3Kind::Ipv4 => match parsed.ipv4_options {
            Some(span) => scan_ipv4(span.slice(frame)),
            None => TlvLookup::Absent,
        },
        L3Kind::Ipv6 => match parsed.ipv6_hbh_options {
            Some(span) => scan_ipv6(span.slice(frame)),
            None => TlvLookup::Absent,
        },
        L3Kind::Arp | L3Kind::Other => TlvLookup::Absent,
    }
}

/// Folds one candidate into the running result.
fn accept(found: TlvLookup, candidate: Result<TokenFeatureTlvRepr, TlvError>) -> TlvLookup {
    if !matches!(found, TlvLookup::Absent) {
        return TlvLookup::Malformed(TlvMalformed::Duplicate);
    }
    match candidate {
        Ok(r) => TlvLookup::Present {
            directed: r.directed,
            id: r.feature_id,
        },
        Err(e) => TlvLookup::Malformed(TlvMalformed::from_tlv_error(e)),
    }
}

/// Scans an IPv4 option area (the bytes between offset 20 and IHL*4).
pub fn scan_ipv4(area: &[u8]) -> TlvLookup {
    let mut found = TlvLookup::Absent;
    for item in Ipv4OptionIter::new(area) {
        match item {
            Ok(opt) => {
                let k = opt.kind.0;
                if k != IPV4_OPTION_TYPE && k != IPV4_OPTION_TYPE_UNCOPIED {
                    continue;
                }
                let cand = if opt.data.len() == TLV_VALUE_LEN {
                    TokenFeatureTlvRepr::parse_value(opt.data)
                } else {
                    Err(TlvError::BadLength((opt.data.len() + 2) as u8))
                };
                found = accept(found, cand);
            }
            Err(e) => {
                let kind = match e {
                    crate::ipv4_option::Ipv4OptionError::MissingLength { kind, .. }
                    | crate::ipv4_option::Ipv4OptionError::LengthTooSmall { kind, .. }
                    | crate::ipv4_option::Ipv4OptionError::Overrun { kind, .. } => kind,
                };
                if kind == IPV4_OPTION_TYPE || kind == IPV4_OPTION_TYPE_UNCOPIED {
                    return accept(
                        found,
                        Err(TlvError::Truncated {
                            needed: 0,
                            available: 0,
                        }),
                    );
                }
                if matches!(found, TlvLookup::Absent) {
                    return TlvLookup::Malformed(TlvMalformed::OptionFraming);
                }
                break;
            }
        }
    }
    found
}

/// Scans an IPv6 Hop-by-Hop option area (after its 2-byte prefix).
pub fn scan_ipv6(area: &[u8]) -> TlvLookup {
    let mut found = TlvLookup::Absent;
    for item in Ipv6OptionIter::new(area) {
        match item {
            Ok(opt) => {
                if opt.option_type.0 != HBH_OPTION_TYPE {
                    continue;
                }
                let cand = if opt.data.len() == TLV_VALUE_LEN {
                    TokenFeatureTlvRepr::parse_value(opt.data)
                } else {
                    Err(TlvError::BadLength(opt.data.len() as u8))
                };
                found = accept(found, cand);
            }
            Err(e) => {
                let kind = match e {
                    crate::ipv6_option::Ipv6OptionError::MissingLength { option_type, .. }
                    | crate::ipv6_option::Ipv6OptionError::Overrun { option_type, .. } => {
                        option_type
                    }
                };
                if kind == HBH_OPTION_TYPE {
                    return accept(
                        found,
                        Err(TlvError::Truncated {
                            needed: 0,
                            available: 0,
                        }),
                    );
                }
                if matches!(found, TlvLookup::Absent) {
                    return TlvLookup::Malformed(TlvMalformed::OptionFraming);
                }
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_malformed_code_has_its_index() {
        for m in [
            TlvMalformed::BadLength(3),
            TlvMalformed::Truncated,
            TlvMalformed::UnknownVersion(2),
            TlvMalformed::ReservedTask(14),
            TlvMalformed::ReservedBits,
            TlvMalformed::OptionFraming,
            TlvMalformed::Duplicate,
            TlvMalformed::BadPrefix,
        ] {
            assert_eq!(TlvMalformed::CODES[m.index()], m.code());
        }
    }
    use crate::token_feature::{encode, TaskType, TokenFeatures, Urgency};
    use proptest::prelude::*;

    /// "turn on the light": 5 prompt tokens, 16 output, immediate control.
    fn light() -> TokenFeatureTlvRepr {
        TokenFeatureTlvRepr {
            directed: true,
            feature_id: encode(&TokenFeatures {
                prompt_tokens: 5,
                output_tokens: 16,
                task: TaskType::ImmediateControl,
                urgency: Urgency::Immediate,
                explicit_urgency: false,
                prefix: None,
            }),
        }
    }

    const UDP: [u8; 8] = [0x30, 0x39, 0x1f, 0x90, 0x00, 0x08, 0x00, 0x00];

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// Ethernet + IPv4 (with `opts`, a multiple of 4) + 8-byte UDP.
    fn v4_frame(opts: &[u8]) -> Vec<u8> {
        let ihl = 5 + opts.len() / 4;
        let total = ihl * 4 + UDP.len();
        let mut ip = vec![
            0x40 | ihl as u8,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            17,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ];
        ip.extend_from_slice(opts);
        let c = crate::checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = eth(0x0800);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&UDP);
        f
    }

    /// Ethernet + IPv6 + `hbh` (a whole Hop-by-Hop header, next header UDP) + UDP.
    fn v6_frame(hbh: &[u8]) -> Vec<u8> {
        let plen = hbh.len() + UDP.len();
        let mut ip = vec![0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, 0, 64];
        ip.extend_from_slice(&[0xfd; 16]);
        ip.extend_from_slice(&[0xfe; 16]);
        ip.extend_from_slice(hbh);
        let mut f = eth(0x86dd);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&UDP);
        f
    }

    fn lookup(frame: &[u8]) -> TlvLookup {
        let p = crate::parse(frame).expect("frame parses");
        find_token_feature(frame, &p)
    }

    fn hbh_bytes() -> [u8; 16] {
        let mut h = [0u8; 16];
        assert_eq!(emit_hbh_header(&light(), 17, &mut h), Ok(16));
        h
    }

    #[test]
    fn tlv_bytes_match_the_figure() {
        let mut b = [0u8; 12];
        assert_eq!(light().emit(HBH_OPTION_TYPE, &mut b), Ok(12));
        assert_eq!(
            b,
            [0x1e, 0x0a, 0x80, 0x00, 0x10, 0x05, 0x01, 0x00, 0xc0, 0, 0, 0]
        );
        let v = TokenFeatureTlv::new_checked(&b[..]).unwrap();
        assert_eq!((v.kind(), v.length()), (0x1e, 10));
        assert!(v.directed());
        assert_eq!(v.unassigned(), 0);
        assert_eq!(TokenFeatureTlvRepr::parse(&v), Ok(light()));
        // Unassigned bits are ignored on receipt.
        b[2] |= 0x7f;
        b[3] = 0xff;
        let v = TokenFeatureTlv::new_checked(&b[..]).unwrap();
        assert_eq!(v.unassigned(), 0x7fff);
        assert_eq!(TokenFeatureTlvRepr::parse(&v), Ok(light()));
        // Setters.
        assert_eq!(
            TokenFeatureTlv::new_checked([0u8; 12]).err(),
            Some(TlvError::BadLength(0))
        );
        let mut w = TokenFeatureTlv::new_checked(b).unwrap();
        w.set_directed(false);
        w.set_feature_id(TokenFeatureId(0x1000_0001_0000_0000));
        assert!(!w.directed());
        assert_eq!(w.unassigned(), 0x7fff);
        assert_eq!(w.feature_id().task(), Some(TaskType::Chat));
    }

    #[test]
    fn tlv_view_checks_lengths() {
        assert_eq!(
            TokenFeatureTlv::new_checked(&[0x1e][..]).err(),
            Some(TlvError::Truncated {
                needed: 2,
                available: 1
            })
        );
        assert_eq!(
            TokenFeatureTlv::new_checked(&[0x1e, 8, 0, 0, 0, 0, 0, 0, 0, 0][..]).err(),
            Some(TlvError::BadLength(8))
        );
        assert_eq!(
            TokenFeatureTlv::new_checked(&[0x1e, 10, 0, 0][..]).err(),
            Some(TlvError::Truncated {
                needed: 12,
                available: 4
            })
        );
        let mut small = [0u8; 11];
        assert!(light().emit(0x1e, &mut small).is_err());
        assert!(emit_hbh_header(&light(), 17, &mut [0u8; 15]).is_err());
        assert!(emit_ipv4_option(&light(), &mut small).is_err());
    }

    #[test]
    fn hbh_header_layout_and_lookup() {
        let h = hbh_bytes();
        assert_eq!(
            h,
            [
                0x11, 0x01, 0x01, 0x00, 0x1e, 0x0a, 0x80, 0x00, 0x10, 0x05, 0x01, 0x00, 0xc0, 0, 0,
                0
            ]
        );
        // The option walker sees PadN then our option; act bits 00, chg 0.
        let t = crate::ipv6_option::Ipv6OptionType(HBH_OPTION_TYPE);
        assert!(t.is_experimental() && !t.may_change());
        assert_eq!(
            t.unknown_action(),
            crate::ipv6_option::UnknownOptionAction::Skip
        );
        let f = v6_frame(&h);
        let p = crate::parse(&f).unwrap();
        assert_eq!(p.ip_protocol, Some(crate::IpProtocol::UDP));
        assert_eq!(
            find_token_feature(&f, &p),
            TlvLookup::Present {
                directed: true,
                id: light().feature_id
            }
        );
        assert_eq!(find_token_feature(&f, &p).id(), Some(light().feature_id));
        // Behind other options, with Pad1 padding.
        let mut h2 = vec![17, 2, 0x05, 0x02, 0, 0, 0x00];
        h2.extend_from_slice(&h[4..]);
        h2.extend_from_slice(&[0x01, 0x03, 0, 0, 0]);
        assert_eq!(h2.len(), 24);
        assert!(matches!(lookup(&v6_frame(&h2)), TlvLookup::Present { .. }));
    }

    #[test]
    fn ipv4_option_layout_and_lookup() {
        let mut o = [0u8; 12];
        assert_eq!(emit_ipv4_option(&light(), &mut o), Ok(12));
        assert_eq!(
            o,
            [0x9e, 0x0c, 0x80, 0x00, 0x10, 0x05, 0x01, 0x00, 0xc0, 0, 0, 0]
        );
        let t = crate::ipv4_option::Ipv4OptionType(IPV4_OPTION_TYPE);
        assert!(t.copied());
        assert_eq!((t.class(), t.number()), (0, 30));
        let f = v4_frame(&o);
        assert_eq!(
            lookup(&f),
            TlvLookup::Present {
                directed: true,
                id: light().feature_id
            }
        );
        // After Router Alert, padded with EOL.
        let mut area = [0u8; 40];
        let n = emit_ipv4_option_area(&light(), &[0x94, 0x04, 0, 0, 0x01], &mut area).unwrap();
        assert_eq!(n, 20);
        assert_eq!(&area[17..20], &[0, 0, 0]);
        assert!(matches!(
            lookup(&v4_frame(&area[..n])),
            TlvLookup::Present { .. }
        ));
        // Uncopied codepoint accepted.
        o[0] = IPV4_OPTION_TYPE_UNCOPIED;
        assert!(matches!(lookup(&v4_frame(&o)), TlvLookup::Present { .. }));
        // Area too large.
        assert!(emit_ipv4_option_area(&light(), &[1; 30], &mut area).is_err());
    }

    #[test]
    fn absent_cases() {
        assert_eq!(lookup(&v4_frame(&[])), TlvLookup::Absent);
        assert_eq!(lookup(&v4_frame(&[0x94, 0x04, 0, 0])), TlvLookup::Absent);
        // IPv6 without Hop-by-Hop: next header UDP directly.
        let mut f = v6_frame(&[]);
        f[14 + 6] = 17;
        assert_eq!(lookup(&f), TlvLookup::Absent);
        // HBH with only PadN.
        assert_eq!(
            lookup(&v6_frame(&[17, 0, 1, 4, 0, 0, 0, 0])),
            TlvLookup::Absent
        );
        // 0x1E in IPv6 is ours, but other experimental codepoints are not.
        let mut h = hbh_bytes();
        h[4] = 0x3e;
        assert_eq!(lookup(&v6_frame(&h)), TlvLookup::Absent);
        // Wrong frame for the parse result: nothing found, no panic.
        let p = crate::parse(&v6_frame(&hbh_bytes())).unwrap();
        assert_eq!(find_token_feature(&[], &p), TlvLookup::Absent);
    }

    #[test]
    fn malformed_cases() {
        use TlvMalformed as M;
        let m = |l: TlvLookup| match l {
            TlvLookup::Malformed(m) => Some(m),
            _ => None,
        };
        // IPv6: Opt Data Len 8 instead of 10 (PadN grows to keep 8-alignment).
        let h = [
            17, 1, 0x1e, 0x08, 0x80, 0, 0x10, 0x05, 0x01, 0x00, 0xc0, 0, 0x01, 0x02, 0, 0,
        ];
        assert_eq!(m(lookup(&v6_frame(&h))), Some(M::BadLength(8)));
        // Unknown version.
        let mut h = hbh_bytes();
        h[8] = 0x30;
        assert_eq!(m(lookup(&v6_frame(&h))), Some(M::UnknownVersion(3)));
        // Version 2 (the shared prefix) with a hash but no prefix tokens.
        let mut h = hbh_bytes();
        h[8] = 0x20;
        h[15] = 1;
        assert_eq!(m(lookup(&v6_frame(&h))), Some(M::BadPrefix));
        // Version 2 without a prefix is the version-1 features.
        let mut h = hbh_bytes();
        h[8] = 0x20;
        assert!(matches!(lookup(&v6_frame(&h)), TlvLookup::Present { .. }));
        // Reserved bits.
        let mut h = hbh_bytes();
        h[15] = 1;
        assert_eq!(m(lookup(&v6_frame(&h))), Some(M::ReservedBits));
        // Reserved task.
        let mut h = hbh_bytes();
        h[11] = 0x07;
        assert_eq!(m(lookup(&v6_frame(&h))), Some(M::ReservedTask(7)));
        // Truncated: option claims 10 bytes, area ends first.
        let h = [17, 0, 0x1e, 0x0a, 0x80, 0, 0x10, 0x05];
        assert_eq!(m(lookup(&v6_frame(&h))), Some(M::Truncated));
        // Duplicate.
        let mut h = vec![17, 3, 1, 0];
        h.extend_from_slice(&hbh_bytes()[4..]);
        h.extend_from_slice(&hbh_bytes()[4..]);
        h.extend_from_slice(&[1, 2, 0, 0]);
        assert_eq!(h.len(), 32);
        assert_eq!(m(lookup(&v6_frame(&h))), Some(M::Duplicate));
        // Framing error before the option (PadN overrun).
        let h = [17, 0, 0x01, 0x09, 0, 0, 0, 0];
        assert_eq!(m(lookup(&v6_frame(&h))), Some(M::OptionFraming));

        // IPv4: length 10 (the HBH reading) is wrong here.
        let mut o = [0u8; 12];
        emit_ipv4_option(&light(), &mut o).unwrap();
        let mut bad = o;
        bad[1] = 10;
        bad[10] = 1; // NOP, NOP fill the last two bytes
        bad[11] = 1;
        assert_eq!(m(lookup(&v4_frame(&bad))), Some(M::BadLength(10)));
        let mut bad = o;
        bad[1] = 16;
        assert_eq!(m(lookup(&v4_frame(&bad))), Some(M::Truncated));
        let mut bad = o;
        bad[4] = 0xf0;
        assert_eq!(m(lookup(&v4_frame(&bad))), Some(M::UnknownVersion(15)));
        let bad = [0x94, 0x01, 0, 0];
        assert_eq!(m(lookup(&v4_frame(&bad))), Some(M::OptionFraming));
        let mut two = [0u8; 24];
        two[..12].copy_from_slice(&o);
        two[12..].copy_from_slice(&o);
        assert_eq!(m(lookup(&v4_frame(&two))), Some(M::Duplicate));
        // Unassigned bits in IPv4 carrier are ignored too.
        let mut ok = o;
        ok[3] = 0xff;
        assert!(matches!(lookup(&v4_frame(&ok)), TlvLookup::Present { .. }));
        assert_eq!(M::Duplicate.code(), "token_tlv.duplicate");
        assert!(!M::ReservedBits.to_string().is_empty());
    }

    proptest! {
        #[test]
        fn tlv_emit_parse_roundtrip(d in any::<bool>(), p in any::<u32>(), o in any::<u32>(),
                                    t in 0usize..5, u in 0u8..4, x in any::<bool>()) {
            let r = TokenFeatureTlvRepr {
                directed: d,
                feature_id: encode(&TokenFeatures {
                    prompt_tokens: p, output_tokens: o, task: TaskType::ALL[t],
                    urgency: Urgency::from_code(u), explicit_urgency: x,
                    prefix: None,
                }),
            };
            let mut h = [0u8; 16];
            emit_hbh_header(&r, 17, &mut h).unwrap();
            prop_assert_eq!(lookup(&v6_frame(&h)), TlvLookup::Present { directed: d, id: r.feature_id });
            let mut o4 = [0u8; 12];
            emit_ipv4_option(&r, &mut o4).unwrap();
            prop_assert_eq!(lookup(&v4_frame(&o4)), TlvLookup::Present { directed: d, id: r.feature_id });
        }

        #[test]
        fn mutated_packets_never_panic(
            v6 in any::<bool>(),
            flips in proptest::collection::vec((0usize..128, any::<u8>()), 0..8),
            cut in 0usize..128,
        ) {
            let mut f = if v6 {
                v6_frame(&hbh_bytes())
            } else {
                let mut o = [0u8; 12];
                emit_ipv4_option(&light(), &mut o).unwrap();
                v4_frame(&o)
            };
            for (at, v) in flips {
                let n = f.len();
                f[at % n] = v;
            }
            f.truncate(f.len().saturating_sub(cut % 8));
            if let Ok(p) = crate::parse(&f) {
                let _ = find_token_feature(&f, &p);
            }
            // Also with a parse result that does not belong to the frame.
            if let Ok(p) = crate::parse(&v6_frame(&hbh_bytes())) {
                let _ = find_token_feature(&f[..f.len() / 2], &p);
            }
        }

        #[test]
        fn option_area_scans_never_panic(area in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = scan_ipv4(&area);
            let _ = scan_ipv6(&area);
            let _ = TokenFeatureTlv::new_checked(&area[..]).map(|v| TokenFeatureTlvRepr::parse(&v));
        }
    }
}
