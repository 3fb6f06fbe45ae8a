//! IEEE 802.1Q VLAN tags and 802.1ad (QinQ) tag stacks.
//!
//! A tag is inserted between the source MAC and the type field: the frame's
//! type field becomes a *tag protocol identifier* (TPID, 0x8100 for a
//! customer tag, 0x88A8 for a provider/service tag) and is followed by four
//! bytes: the 16-bit tag control information (PCP 3 bits, DEI 1 bit, VID 12
//! bits) and the type field that would otherwise have been there. This view
//! therefore starts *after* the TPID:
//!
//! ```text
//!  0               1               2               3
//! +-----+-+-----------------------+-------------------------------+
//! | PCP |D|          VID          |     inner EtherType / TPID    |
//! +-----+-+-----------------------+-------------------------------+
//! ```
//!
//! Data-centre fabrics use at most two tags (S-TAG then C-TAG), so
//! [`VlanStack::parse`] unwraps up to [`MAX_VLAN_TAGS`] and rejects a third:
//! a deeper stack is either an attack on the parser or a misconfiguration,
//! and bounding it keeps the fast path's cost fixed.

use core::fmt;

use crate::ethernet::EtherType;
use crate::field::{be16, need, set_be16};

/// The deepest tag stack the parser unwraps (outer S-TAG + inner C-TAG).
pub const MAX_VLAN_TAGS: usize = 2;

/// Everything that can be wrong with a VLAN tag or a tag stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlanError {
    /// The TPID announced a tag but fewer than 4 bytes follow it.
    Truncated {
        /// Zero-based position of the tag in the stack (0 = outermost).
        depth: usize,
        /// Bytes present after the TPID.
        available: usize,
    },
    /// More than [`MAX_VLAN_TAGS`] tags are stacked.
    TooManyTags {
        /// The limit that was exceeded.
        max: usize,
    },
    /// `emit` was asked for a priority above 7.
    PcpOutOfRange(u8),
    /// `emit` was asked for a VLAN id above 4095.
    VidOutOfRange(u16),
    /// `emit` was handed a buffer shorter than the tag.
    BufferTooSmall {
        /// Bytes the tag needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
}

impl VlanError {
    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            VlanError::Truncated { .. } => "vlan.truncated",
            VlanError::TooManyTags { .. } => "vlan.too_many_tags",
            VlanError::PcpOutOfRange(_) => "vlan.pcp_out_of_range",
            VlanError::VidOutOfRange(_) => "vlan.vid_out_of_range",
            VlanError::BufferTooSmall { .. } => "vlan.buffer_too_small",
        }
    }
}

impl fmt::Display for VlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VlanError::Truncated { depth, available } => write!(
                f,
                "VLAN tag #{} needs 4 bytes after its TPID but only {available} remain",
                depth + 1
            ),
            VlanError::TooManyTags { max } => {
                write!(f, "more than {max} stacked VLAN tags")
            }
            VlanError::PcpOutOfRange(p) => write!(f, "VLAN priority {p} does not fit in 3 bits"),
            VlanError::VidOutOfRange(v) => write!(f, "VLAN id {v} does not fit in 12 bits"),
            VlanError::BufferTooSmall { needed, available } => write!(
                f,
                "VLAN tag needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for VlanError {}

/// A zero-copy view of the 4 bytes that follow a VLAN TPID.
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// TCI + inner type.
    pub const HEADER_LEN: usize = 4;

    /// Wraps without checking; accessors panic on a buffer shorter than 4.
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wraps after proving the 4 bytes exist.
    pub fn new_checked(buffer: T) -> Result<Self, VlanError> {
        let available = buffer.as_ref().len();
        if available < Self::HEADER_LEN {
            return Err(VlanError::Truncated {
                depth: 0,
                available,
            });
        }
        Ok(VlanTag { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw 16-bit tag control information.
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Priority code point (802.1p class of service), 0..=7.
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier, 0..=4095 (0 = priority-tagged only).
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The type that follows this tag: another TPID or the payload's type.
    pub fn ethertype(&self) -> EtherType {
        EtherType(be16(self.buffer.as_ref(), 2))
    }

    /// Everything after the tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Overwrites the whole TCI.
    pub fn set_tci(&mut self, tci: u16) {
        set_be16(self.buffer.as_mut(), 0, tci);
    }

    /// Overwrites the priority; only the low 3 bits of `pcp` are used.
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(pcp & 7) << 13);
        self.set_tci(tci);
    }

    /// Overwrites the drop eligible indicator.
    pub fn set_dei(&mut self, dei: bool) {
        let tci = (self.tci() & !0x1000) | if dei { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    /// Overwrites the VLAN id; only the low 12 bits of `vid` are used.
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }

    /// Overwrites the inner type.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        set_be16(self.buffer.as_mut(), 2, ethertype.0);
    }
}

/// The owned, parsed form of one tag (without its TPID, which belongs to
/// the preceding header's type field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanRepr {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4095.
    pub vid: u16,
    /// The type that follows this tag.
    pub ethertype: EtherType,
}

impl VlanRepr {
    /// Reads the tag out of a checked view.
    pub fn parse<T: AsRef<[u8]>>(tag: &VlanTag<T>) -> Result<Self, VlanError> {
        Ok(VlanRepr {
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }

    /// Bytes that [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        VlanTag::<&[u8]>::HEADER_LEN
    }

    /// Writes TCI + inner type to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, VlanError> {
        if self.pcp > 7 {
            return Err(VlanError::PcpOutOfRange(self.pcp));
        }
        if self.vid > 0x0fff {
            return Err(VlanError::VidOutOfRange(self.vid));
        }
        need(buf.len(), self.buffer_len())
            .map_err(|(needed, available)| VlanError::BufferTooSmall { needed, available })?;
        let mut tag = VlanTag::new_unchecked(buf);
        tag.set_tci((u16::from(self.pcp) << 13) | if self.dei { 0x1000 } else { 0 } | self.vid);
        tag.set_ethertype(self.ethertype);
        Ok(self.buffer_len())
    }
}

/// One unwrapped tag, including the TPID that announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanSummary {
    /// 0x8100 or 0x88A8.
    pub tpid: EtherType,
    /// Priority code point.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier.
    pub vid: u16,
}

/// The (possibly empty) stack of tags between the MAC addresses and the
/// payload type, outermost first. Fixed-size so it can live in a `Copy`
/// parse result without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanStack {
    count: u8,
    tags: [VlanSummary; MAX_VLAN_TAGS],
    /// The type after the innermost tag (or the frame's type if untagged).
    pub ethertype: EtherType,
}

impl VlanStack {
    /// Unwraps tags starting from the frame's outer type field.
    ///
    /// `outer` is the Ethernet header's type field and `after_eth` the bytes
    /// that follow the Ethernet header. Any TPID (0x8100 or 0x88A8) is
    /// accepted at either depth, because real networks emit 0x8100/0x8100
    /// double tags as often as the standard 0x88A8/0x8100.
    pub fn parse(outer: EtherType, after_eth: &[u8]) -> Result<VlanStack, VlanError> {
        let mut stack = VlanStack {
            ethertype: outer,
            ..VlanStack::default()
        };
        let mut offset = 0usize;
        while stack.ethertype.is_vlan_tpid() {
            let depth = usize::from(stack.count);
            if depth == MAX_VLAN_TAGS {
                return Err(VlanError::TooManyTags { max: MAX_VLAN_TAGS });
            }
            let rest = after_eth.get(offset..).unwrap_or(&[]);
            let tag = VlanTag::new_checked(rest).map_err(|_| VlanError::Truncated {
                depth,
                available: rest.len(),
            })?;
            stack.tags[depth] = VlanSummary {
                tpid: stack.ethertype,
                pcp: tag.pcp(),
                dei: tag.dei(),
                vid: tag.vid(),
            };
            stack.count += 1;
            stack.ethertype = tag.ethertype();
            offset += VlanTag::<&[u8]>::HEADER_LEN;
        }
        Ok(stack)
    }

    /// Number of tags, 0..=2.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// True for an untagged frame.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The tags, outermost first.
    pub fn tags(&self) -> &[VlanSummary] {
        &self.tags[..self.len()]
    }

    /// Bytes the tags occupy after the Ethernet header.
    pub fn header_len(&self) -> usize {
        self.len() * VlanTag::<&[u8]>::HEADER_LEN
    }

    /// The outermost VLAN id, if tagged (the one a switch forwards on).
    pub fn outer_vid(&self) -> Option<u16> {
        self.tags().first().map(|t| t.vid)
    }

    /// The innermost VLAN id, if tagged (the customer VLAN in QinQ).
    pub fn inner_vid(&self) -> Option<u16> {
        self.tags().last().map(|t| t.vid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tci_fields() {
        // PCP 5, DEI 1, VID 0x123, inner IPv4.
        let bytes = [0xb1, 0x23, 0x08, 0x00];
        let tag = VlanTag::new_checked(&bytes[..]).unwrap();
        assert_eq!(tag.pcp(), 5);
        assert!(tag.dei());
        assert_eq!(tag.vid(), 0x123);
        assert_eq!(tag.ethertype(), EtherType::IPV4);
        let repr = VlanRepr::parse(&tag).unwrap();
        let mut out = [0u8; 4];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn setters_touch_only_their_bits() {
        let mut bytes = [0xff, 0xff, 0x86, 0xdd];
        let mut tag = VlanTag::new_checked(&mut bytes[..]).unwrap();
        tag.set_vid(0);
        assert_eq!(tag.pcp(), 7);
        assert!(tag.dei());
        tag.set_pcp(0);
        tag.set_dei(false);
        assert_eq!(tag.tci(), 0);
        assert_eq!(tag.ethertype(), EtherType::IPV6);
    }

    #[test]
    fn emit_range_checks() {
        let mut out = [0u8; 4];
        let mut r = VlanRepr {
            pcp: 8,
            dei: false,
            vid: 1,
            ethertype: EtherType::IPV4,
        };
        assert_eq!(r.emit(&mut out), Err(VlanError::PcpOutOfRange(8)));
        r.pcp = 0;
        r.vid = 4096;
        assert_eq!(r.emit(&mut out), Err(VlanError::VidOutOfRange(4096)));
    }

    #[test]
    fn stack_untagged_single_double_triple() {
        assert!(VlanStack::parse(EtherType::IPV4, &[]).unwrap().is_empty());

        let one = [0x00, 0x0a, 0x08, 0x00];
        let s = VlanStack::parse(EtherType::VLAN, &one).unwrap();
        assert_eq!(
            (s.len(), s.ethertype, s.outer_vid()),
            (1, EtherType::IPV4, Some(10))
        );

        let two = [0x00, 0x64, 0x81, 0x00, 0x20, 0x0a, 0x86, 0xdd];
        let s = VlanStack::parse(EtherType::QINQ, &two).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.tags()[0].tpid, EtherType::QINQ);
        assert_eq!(s.outer_vid(), Some(100));
        assert_eq!(s.inner_vid(), Some(10));
        assert_eq!(s.tags()[1].pcp, 1);
        assert_eq!(s.ethertype, EtherType::IPV6);
        assert_eq!(s.header_len(), 8);

        let three = [
            0x00, 0x01, 0x81, 0x00, 0x00, 0x02, 0x81, 0x00, 0x00, 0x03, 0x08, 0x00,
        ];
        assert_eq!(
            VlanStack::parse(EtherType::QINQ, &three),
            Err(VlanError::TooManyTags { max: 2 })
        );
    }

    #[test]
    fn stack_truncated_inner_tag() {
        let bytes = [0x00, 0x64, 0x81, 0x00, 0x20];
        assert_eq!(
            VlanStack::parse(EtherType::QINQ, &bytes),
            Err(VlanError::Truncated {
                depth: 1,
                available: 1
            })
        );
    }
}
