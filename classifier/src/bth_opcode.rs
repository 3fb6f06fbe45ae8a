//! InfiniBand transport opcodes, as carried in the first byte of the BTH.
//!
//! The byte splits into a 3-bit transport (RC, UC, RD, UD, CNP, XRC) and a
//! 5-bit operation. The operation numbering is shared by the connected
//! transports, so the helpers below look at the operation bits and are
//! meaningful for RC, UC, RD and XRC alike; UD only has the two "SEND Only"
//! operations. Which *extension headers* follow the BTH (RETH, AETH, ImmDt
//! …) is fully determined by the opcode (IBA Vol. 1, §9.2 and Table 43), so
//! [`BthOpcode::ext_headers_len`] lets a parser find the payload without
//! knowing any connection state.

use core::fmt;

/// The transport service named by the top three opcode bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Reliable Connection (000): what RDMA training traffic uses.
    Rc,
    /// Unreliable Connection (001).
    Uc,
    /// Reliable Datagram (010), practically unused.
    Rd,
    /// Unreliable Datagram (011).
    Ud,
    /// Congestion Notification Packet (100), RoCEv2 DCQCN feedback.
    Cnp,
    /// Extended Reliable Connection (101).
    Xrc,
    /// 110 and 111 are reserved / manufacturer specific.
    Reserved(u8),
}

/// A BTH opcode byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BthOpcode(pub u8);

// Operation numbers (low five bits), shared by the connected transports.
mod op {
    pub const SEND_FIRST: u8 = 0x00;
    pub const SEND_MIDDLE: u8 = 0x01;
    pub const SEND_LAST: u8 = 0x02;
    pub const SEND_LAST_IMM: u8 = 0x03;
    pub const SEND_ONLY: u8 = 0x04;
    pub const SEND_ONLY_IMM: u8 = 0x05;
    pub const WRITE_FIRST: u8 = 0x06;
    pub const WRITE_MIDDLE: u8 = 0x07;
    pub const WRITE_LAST: u8 = 0x08;
    pub const WRITE_LAST_IMM: u8 = 0x09;
    pub const WRITE_ONLY: u8 = 0x0a;
    pub const WRITE_ONLY_IMM: u8 = 0x0b;
    pub const READ_REQUEST: u8 = 0x0c;
    pub const READ_RESPONSE_FIRST: u8 = 0x0d;
    pub const READ_RESPONSE_MIDDLE: u8 = 0x0e;
    pub const READ_RESPONSE_LAST: u8 = 0x0f;
    pub const READ_RESPONSE_ONLY: u8 = 0x10;
    pub const ACKNOWLEDGE: u8 = 0x11;
    pub const ATOMIC_ACKNOWLEDGE: u8 = 0x12;
    pub const COMPARE_SWAP: u8 = 0x13;
    pub const FETCH_ADD: u8 = 0x14;
    pub const SEND_LAST_INV: u8 = 0x16;
    pub const SEND_ONLY_INV: u8 = 0x17;
}

const NAMES: [Option<&str>; 24] = [
    Some("SEND_FIRST"),
    Some("SEND_MIDDLE"),
    Some("SEND_LAST"),
    Some("SEND_LAST_WITH_IMMEDIATE"),
    Some("SEND_ONLY"),
    Some("SEND_ONLY_WITH_IMMEDIATE"),
    Some("RDMA_WRITE_FIRST"),
    Some("RDMA_WRITE_MIDDLE"),
    Some("RDMA_WRITE_LAST"),
    Some("RDMA_WRITE_LAST_WITH_IMMEDIATE"),
    Some("RDMA_WRITE_ONLY"),
    Some("RDMA_WRITE_ONLY_WITH_IMMEDIATE"),
    Some("RDMA_READ_REQUEST"),
    Some("RDMA_READ_RESPONSE_FIRST"),
    Some("RDMA_READ_RESPONSE_MIDDLE"),
    Some("RDMA_READ_RESPONSE_LAST"),
    Some("RDMA_READ_RESPONSE_ONLY"),
    Some("ACKNOWLEDGE"),
    Some("ATOMIC_ACKNOWLEDGE"),
    Some("COMPARE_SWAP"),
    Some("FETCH_ADD"),
    None,
    Some("SEND_LAST_WITH_INVALIDATE"),
    Some("SEND_ONLY_WITH_INVALIDATE"),
];

/// Extension header sizes in bytes (IBA Vol. 1 §9.3).
mod ext {
    pub const RDETH: usize = 4;
    pub const DETH: usize = 8;
    pub const XRCETH: usize = 4;
    pub const RETH: usize = 16;
    pub const ATOMIC_ETH: usize = 28;
    pub const AETH: usize = 4;
    pub const ATOMIC_ACK_ETH: usize = 8;
    pub const IMM_DT: usize = 4;
    pub const IETH: usize = 4;
}

impl BthOpcode {
    /// RC SEND First.
    pub const RC_SEND_FIRST: BthOpcode = BthOpcode(op::SEND_FIRST);
    /// RC SEND Middle.
    pub const RC_SEND_MIDDLE: BthOpcode = BthOpcode(op::SEND_MIDDLE);
    /// RC SEND Last.
    pub const RC_SEND_LAST: BthOpcode = BthOpcode(op::SEND_LAST);
    /// RC SEND Last with Immediate.
    pub const RC_SEND_LAST_IMM: BthOpcode = BthOpcode(op::SEND_LAST_IMM);
    /// RC SEND Only.
    pub const RC_SEND_ONLY: BthOpcode = BthOpcode(op::SEND_ONLY);
    /// RC SEND Only with Immediate.
    pub const RC_SEND_ONLY_IMM: BthOpcode = BthOpcode(op::SEND_ONLY_IMM);
    /// RC RDMA WRITE First (carries a RETH).
    pub const RC_WRITE_FIRST: BthOpcode = BthOpcode(op::WRITE_FIRST);
    /// RC RDMA WRITE Middle.
    pub const RC_WRITE_MIDDLE: BthOpcode = BthOpcode(op::WRITE_MIDDLE);
    /// RC RDMA WRITE Last.
    pub const RC_WRITE_LAST: BthOpcode = BthOpcode(op::WRITE_LAST);
    /// RC RDMA WRITE Last with Immediate.
    pub const RC_WRITE_LAST_IMM: BthOpcode = BthOpcode(op::WRITE_LAST_IMM);
    /// RC RDMA WRITE Only (carries a RETH).
    pub const RC_WRITE_ONLY: BthOpcode = BthOpcode(op::WRITE_ONLY);
    /// RC RDMA WRITE Only with Immediate (carries a RETH).
    pub const RC_WRITE_ONLY_IMM: BthOpcode = BthOpcode(op::WRITE_ONLY_IMM);
    /// RC RDMA READ Request (carries a RETH).
    pub const RC_READ_REQUEST: BthOpcode = BthOpcode(op::READ_REQUEST);
    /// RC RDMA READ Response First (carries an AETH).
    pub const RC_READ_RESPONSE_FIRST: BthOpcode = BthOpcode(op::READ_RESPONSE_FIRST);
    /// RC RDMA READ Response Middle.
    pub const RC_READ_RESPONSE_MIDDLE: BthOpcode = BthOpcode(op::READ_RESPONSE_MIDDLE);
    /// RC RDMA READ Response Last (carries an AETH).
    pub const RC_READ_RESPONSE_LAST: BthOpcode = BthOpcode(op::READ_RESPONSE_LAST);
    /// RC RDMA READ Response Only (carries an AETH).
    pub const RC_READ_RESPONSE_ONLY: BthOpcode = BthOpcode(op::READ_RESPONSE_ONLY);
    /// RC Acknowledge (carries an AETH).
    pub const RC_ACK: BthOpcode = BthOpcode(op::ACKNOWLEDGE);
    /// RC Atomic Acknowledge (AETH + AtomicAckETH).
    pub const RC_ATOMIC_ACK: BthOpcode = BthOpcode(op::ATOMIC_ACKNOWLEDGE);
    /// RC Compare & Swap (AtomicETH).
    pub const RC_COMPARE_SWAP: BthOpcode = BthOpcode(op::COMPARE_SWAP);
    /// RC Fetch & Add (AtomicETH).
    pub const RC_FETCH_ADD: BthOpcode = BthOpcode(op::FETCH_ADD);
    /// RC SEND Last with Invalidate.
    pub const RC_SEND_LAST_INV: BthOpcode = BthOpcode(op::SEND_LAST_INV);
    /// RC SEND Only with Invalidate.
    pub const RC_SEND_ONLY_INV: BthOpcode = BthOpcode(op::SEND_ONLY_INV);
    /// UC SEND Only.
    pub const UC_SEND_ONLY: BthOpcode = BthOpcode(0x20 | op::SEND_ONLY);
    /// UC RDMA WRITE Only.
    pub const UC_WRITE_ONLY: BthOpcode = BthOpcode(0x20 | op::WRITE_ONLY);
    /// UD SEND Only (carries a DETH).
    pub const UD_SEND_ONLY: BthOpcode = BthOpcode(0x60 | op::SEND_ONLY);
    /// UD SEND Only with Immediate.
    pub const UD_SEND_ONLY_IMM: BthOpcode = BthOpcode(0x60 | op::SEND_ONLY_IMM);
    /// RoCEv2 Congestion Notification Packet (DCQCN).
    pub const CNP: BthOpcode = BthOpcode(0x81);

    #[inline]
    const fn props(self) -> Props {
        PROPS[self.0 as usize]
    }

    /// Whether the opcode is defined for its transport.
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.props().flags & F_VALID != 0
    }

    /// SEND of any kind (First/Middle/Last/Only, with Immediate or Invalidate).
    #[inline]
    pub const fn is_send(self) -> bool {
        self.props().flags & F_SEND != 0
    }

    /// RDMA WRITE of any kind.
    #[inline]
    pub const fn is_write(self) -> bool {
        self.props().flags & F_WRITE != 0
    }

    /// RDMA READ Request.
    #[inline]
    pub const fn is_read_request(self) -> bool {
        self.props().flags & F_READ_REQUEST != 0
    }

    /// RDMA READ Response of any kind.
    #[inline]
    pub const fn is_read_response(self) -> bool {
        self.props().flags & F_READ_RESPONSE != 0
    }

    /// The first packet of a multi-packet message.
    #[inline]
    pub const fn is_first(self) -> bool {
        self.props().flags & F_FIRST != 0
    }

    /// A middle packet of a multi-packet message.
    #[inline]
    pub const fn is_middle(self) -> bool {
        self.props().flags & F_MIDDLE != 0
    }

    /// The last packet of a multi-packet message.
    #[inline]
    pub const fn is_last(self) -> bool {
        self.props().flags & F_LAST != 0
    }

    /// A message that fits in one packet: the explicit "Only" opcodes, plus
    /// the inherently single-packet ones (READ Request, acknowledges,
    /// atomics, CNP).
    #[inline]
    pub const fn is_only(self) -> bool {
        self.props().flags & F_ONLY != 0
    }

    /// The packet that completes a message (Last or Only): where a flow
    /// tracker can account a finished message.
    #[inline]
    pub const fn is_last_or_only(self) -> bool {
        self.props().flags & (F_LAST | F_ONLY) != 0
    }

    /// Whether a RETH (virtual address, R_Key, DMA length) follows.
    #[inline]
    pub const fn has_reth(self) -> bool {
        self.props().flags & F_RETH != 0
    }

    /// Where the RETH starts, counted from the end of the BTH.
    #[inline]
    pub const fn reth_offset(self) -> Option<usize> {
        match self.props().reth_offset {
            NO_LEN => None,
            n => Some(n as usize),
        }
    }

    /// Bytes of extension headers between the BTH and the payload, or
    /// `None` for an undefined opcode. CNPs count their 16 reserved bytes
    /// as payload.
    #[inline]
    pub const fn ext_headers_len(self) -> Option<usize> {
        match self.props().ext_len {
            NO_LEN => None,
            n => Some(n as usize),
        }
    }

    /// The transport service.
    #[inline]
    pub const fn transport(self) -> Transport {
        match self.0 >> 5 {
            0 => Transport::Rc,
            1 => Transport::Uc,
            2 => Transport::Rd,
            3 => Transport::Ud,
            4 => Transport::Cnp,
            5 => Transport::Xrc,
            t => Transport::Reserved(t),
        }
    }

    /// The operation (low five bits).
    #[inline]
    pub const fn operation(self) -> u8 {
        self.0 & 0x1f
    }

    /// Whether the opcode is defined for its transport.
    const fn spec_is_valid(self) -> bool {
        let o = self.operation();
        match self.transport() {
            Transport::Rc | Transport::Xrc => o <= op::SEND_ONLY_INV && o != 0x15,
            Transport::Rd => o <= op::FETCH_ADD,
            Transport::Uc => o <= op::WRITE_ONLY_IMM,
            Transport::Ud => o == op::SEND_ONLY || o == op::SEND_ONLY_IMM,
            Transport::Cnp => self.0 == 0x81,
            Transport::Reserved(_) => false,
        }
    }

    /// The operation bits, when they carry the shared RC/UC/RD/UD/XRC
    /// meaning (a defined opcode of a non-CNP transport). 0xFF otherwise,
    /// which matches none of the operation constants.
    #[inline]
    const fn op(self) -> u8 {
        if self.spec_is_valid() && !matches!(self.transport(), Transport::Cnp) {
            self.operation()
        } else {
            0xff
        }
    }

    /// SEND of any kind (First/Middle/Last/Only, with Immediate or Invalidate).
    const fn spec_is_send(self) -> bool {
        let o = self.op();
        o <= op::SEND_ONLY_IMM || o == op::SEND_LAST_INV || o == op::SEND_ONLY_INV
    }

    /// RDMA WRITE of any kind.
    const fn spec_is_write(self) -> bool {
        let o = self.op();
        o >= op::WRITE_FIRST && o <= op::WRITE_ONLY_IMM
    }

    /// RDMA READ Request.
    const fn spec_is_read_request(self) -> bool {
        self.op() == op::READ_REQUEST
    }

    /// RDMA READ Response of any kind.
    const fn spec_is_read_response(self) -> bool {
        let o = self.op();
        o >= op::READ_RESPONSE_FIRST && o <= op::READ_RESPONSE_ONLY
    }

    /// Acknowledge or Atomic Acknowledge.
    pub const fn is_ack(self) -> bool {
        let o = self.op();
        o == op::ACKNOWLEDGE || o == op::ATOMIC_ACKNOWLEDGE
    }

    /// The first packet of a multi-packet message.
    const fn spec_is_first(self) -> bool {
        let o = self.op();
        o == op::SEND_FIRST || o == op::WRITE_FIRST || o == op::READ_RESPONSE_FIRST
    }

    /// A middle packet of a multi-packet message.
    const fn spec_is_middle(self) -> bool {
        let o = self.op();
        o == op::SEND_MIDDLE || o == op::WRITE_MIDDLE || o == op::READ_RESPONSE_MIDDLE
    }

    /// The last packet of a multi-packet message.
    const fn spec_is_last(self) -> bool {
        let o = self.op();
        matches!(
            o,
            op::SEND_LAST
                | op::SEND_LAST_IMM
                | op::WRITE_LAST
                | op::WRITE_LAST_IMM
                | op::READ_RESPONSE_LAST
                | op::SEND_LAST_INV
        )
    }

    /// A message that fits in one packet: the explicit "Only" opcodes, plus
    /// the inherently single-packet ones (READ Request, acknowledges,
    /// atomics, CNP).
    const fn spec_is_only(self) -> bool {
        self.spec_is_valid()
            && !self.spec_is_first()
            && !self.spec_is_middle()
            && !self.spec_is_last()
    }

    /// The packet that completes a message (Last or Only): where a flow
    /// tracker can account a finished message.
    #[cfg(test)]
    const fn spec_is_last_or_only(self) -> bool {
        self.spec_is_last() || self.spec_is_only()
    }

    /// Whether a RETH (virtual address, R_Key, DMA length) follows.
    const fn spec_has_reth(self) -> bool {
        let o = self.op();
        !matches!(self.transport(), Transport::Ud)
            && matches!(
                o,
                op::WRITE_FIRST | op::WRITE_ONLY | op::WRITE_ONLY_IMM | op::READ_REQUEST
            )
    }

    /// Whether an AETH (syndrome + MSN) follows.
    pub const fn has_aeth(self) -> bool {
        let o = self.op();
        matches!(
            o,
            op::READ_RESPONSE_FIRST
                | op::READ_RESPONSE_LAST
                | op::READ_RESPONSE_ONLY
                | op::ACKNOWLEDGE
                | op::ATOMIC_ACKNOWLEDGE
        )
    }

    /// Whether 4 bytes of immediate data follow.
    pub const fn has_immediate(self) -> bool {
        let o = self.op();
        matches!(
            o,
            op::SEND_LAST_IMM | op::SEND_ONLY_IMM | op::WRITE_LAST_IMM | op::WRITE_ONLY_IMM
        )
    }

    /// Where the RETH starts, counted from the end of the BTH.
    const fn spec_reth_offset(self) -> Option<usize> {
        if !self.spec_has_reth() {
            return None;
        }
        Some(match self.transport() {
            Transport::Rd => ext::RDETH + ext::DETH,
            Transport::Xrc => ext::XRCETH,
            _ => 0,
        })
    }

    /// Bytes of extension headers between the BTH and the payload, or
    /// `None` for an undefined opcode. CNPs count their 16 reserved bytes
    /// as payload.
    const fn spec_ext_headers_len(self) -> Option<usize> {
        if !self.spec_is_valid() {
            return None;
        }
        let o = self.op();
        let mut n = match self.transport() {
            Transport::Rd => ext::RDETH + ext::DETH,
            Transport::Ud => ext::DETH,
            Transport::Xrc => ext::XRCETH,
            _ => 0,
        };
        if self.spec_has_reth() {
            n += ext::RETH;
        }
        if o == op::COMPARE_SWAP || o == op::FETCH_ADD {
            n += ext::ATOMIC_ETH;
        }
        if self.has_aeth() {
            n += ext::AETH;
        }
        if o == op::ATOMIC_ACKNOWLEDGE {
            n += ext::ATOMIC_ACK_ETH;
        }
        if self.has_immediate() {
            n += ext::IMM_DT;
        }
        if o == op::SEND_LAST_INV || o == op::SEND_ONLY_INV {
            n += ext::IETH;
        }
        Some(n)
    }

    /// The operation's name without the transport prefix, e.g.
    /// `RDMA_WRITE_FIRST`, or `None` for undefined opcodes.
    pub fn operation_name(self) -> Option<&'static str> {
        if self.0 == 0x81 {
            return Some("CNP");
        }
        if !self.spec_is_valid() {
            return None;
        }
        NAMES.get(usize::from(self.operation())).copied().flatten()
    }

    /// Short transport prefix.
    pub const fn transport_name(self) -> &'static str {
        match self.transport() {
            Transport::Rc => "RC",
            Transport::Uc => "UC",
            Transport::Rd => "RD",
            Transport::Ud => "UD",
            Transport::Cnp => "CNP",
            Transport::Xrc => "XRC",
            Transport::Reserved(_) => "RESERVED",
        }
    }
}

/// What every opcode's predicates answer, computed once at compile time
/// from their definitions (the `spec_` functions), so a per-packet
/// question is one table load instead of a chain of matches.
#[derive(Clone, Copy)]
struct Props {
    flags: u16,
    ext_len: u8,
    reth_offset: u8,
}

const F_VALID: u16 = 1;
const F_SEND: u16 = 1 << 1;
const F_WRITE: u16 = 1 << 2;
const F_READ_REQUEST: u16 = 1 << 3;
const F_READ_RESPONSE: u16 = 1 << 4;
const F_FIRST: u16 = 1 << 5;
const F_MIDDLE: u16 = 1 << 6;
const F_LAST: u16 = 1 << 7;
const F_ONLY: u16 = 1 << 8;
const F_RETH: u16 = 1 << 9;
/// `None` in a length column.
const NO_LEN: u8 = u8::MAX;

const fn bit(on: bool, f: u16) -> u16 {
    if on {
        f
    } else {
        0
    }
}

const fn len_col(n: Option<usize>) -> u8 {
    match n {
        // Every length is a few dozen bytes.
        Some(n) if n < NO_LEN as usize => n as u8,
        _ => NO_LEN,
    }
}

const PROPS: [Props; 256] = {
    let mut t = [Props {
        flags: 0,
        ext_len: NO_LEN,
        reth_offset: NO_LEN,
    }; 256];
    let mut i = 0;
    while i < 256 {
        let o = BthOpcode(i as u8);
        let flags = bit(o.spec_is_valid(), F_VALID)
            | bit(o.spec_is_send(), F_SEND)
            | bit(o.spec_is_write(), F_WRITE)
            | bit(o.spec_is_read_request(), F_READ_REQUEST)
            | bit(o.spec_is_read_response(), F_READ_RESPONSE)
            | bit(o.spec_is_first(), F_FIRST)
            | bit(o.spec_is_middle(), F_MIDDLE)
            | bit(o.spec_is_last(), F_LAST)
            | bit(o.spec_is_only(), F_ONLY)
            | bit(o.spec_has_reth(), F_RETH);
        t[i] = Props {
            flags,
            ext_len: len_col(o.spec_ext_headers_len()),
            reth_offset: len_col(o.spec_reth_offset()),
        };
        i += 1;
    }
    t
};

impl fmt::Display for BthOpcode {
    /// `RC_RDMA_WRITE_FIRST`, `CNP`, or `opcode 0xNN` when undefined.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.operation_name()) {
            (0x81, _) => f.write_str("CNP"),
            (_, Some(n)) => write!(f, "{}_{n}", self.transport_name()),
            (_, None) => write!(f, "opcode 0x{:02x}", self.0),
        }
    }
}

impl fmt::Debug for BthOpcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BthOpcode(0x{:02x} {self})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_answers_as_the_definitions_do() {
        for b in 0..=255u8 {
            let o = BthOpcode(b);
            assert_eq!(o.is_valid(), o.spec_is_valid(), "{b:#x}");
            assert_eq!(o.is_send(), o.spec_is_send(), "{b:#x}");
            assert_eq!(o.is_write(), o.spec_is_write(), "{b:#x}");
            assert_eq!(o.is_read_request(), o.spec_is_read_request(), "{b:#x}");
            assert_eq!(o.is_read_response(), o.spec_is_read_response(), "{b:#x}");
            assert_eq!(o.is_first(), o.spec_is_first(), "{b:#x}");
            assert_eq!(o.is_middle(), o.spec_is_middle(), "{b:#x}");
            assert_eq!(o.is_last(), o.spec_is_last(), "{b:#x}");
            assert_eq!(o.is_only(), o.spec_is_only(), "{b:#x}");
            assert_eq!(o.is_last_or_only(), o.spec_is_last_or_only(), "{b:#x}");
            assert_eq!(o.has_reth(), o.spec_has_reth(), "{b:#x}");
            assert_eq!(o.reth_offset(), o.spec_reth_offset(), "{b:#x}");
            assert_eq!(o.ext_headers_len(), o.spec_ext_headers_len(), "{b:#x}");
        }
    }

    #[test]
    fn write_sequence_classification() {
        let first = BthOpcode(0x06);
        let middle = BthOpcode(0x07);
        let last = BthOpcode(0x08);
        let only = BthOpcode(0x0a);
        assert!(first.is_first() && first.is_write() && first.has_reth());
        assert!(!first.is_last_or_only());
        assert!(middle.is_middle() && !middle.has_reth());
        assert!(last.is_last_or_only() && last.is_write());
        assert!(only.is_only() && only.is_last_or_only() && only.has_reth());
        assert_eq!(first.ext_headers_len(), Some(16));
        assert_eq!(middle.ext_headers_len(), Some(0));
        assert_eq!(BthOpcode(0x0b).ext_headers_len(), Some(20));
        assert_eq!(BthOpcode(0x09).ext_headers_len(), Some(4));
    }

    #[test]
    fn send_read_ack_cnp() {
        for o in 0x00..=0x05 {
            assert!(BthOpcode(o).is_send(), "{o:#x}");
            assert!(!BthOpcode(o).is_write());
        }
        assert!(BthOpcode::RC_READ_REQUEST.is_read_request());
        assert!(BthOpcode::RC_READ_REQUEST.is_only());
        assert_eq!(BthOpcode::RC_READ_REQUEST.ext_headers_len(), Some(16));
        assert_eq!(BthOpcode::RC_READ_RESPONSE_FIRST.ext_headers_len(), Some(4));
        assert_eq!(
            BthOpcode::RC_READ_RESPONSE_MIDDLE.ext_headers_len(),
            Some(0)
        );
        assert!(BthOpcode::RC_ACK.is_ack() && BthOpcode::RC_ACK.has_aeth());
        assert_eq!(BthOpcode::RC_ATOMIC_ACK.ext_headers_len(), Some(12));
        assert_eq!(BthOpcode::RC_FETCH_ADD.ext_headers_len(), Some(28));
        assert_eq!(BthOpcode::RC_SEND_ONLY_INV.ext_headers_len(), Some(4));
        assert_eq!(BthOpcode::UD_SEND_ONLY.ext_headers_len(), Some(8));
        assert_eq!(BthOpcode::UD_SEND_ONLY_IMM.ext_headers_len(), Some(12));
        assert_eq!(BthOpcode::CNP.transport(), Transport::Cnp);
        assert_eq!(BthOpcode::CNP.ext_headers_len(), Some(0));
        assert!(BthOpcode::CNP.is_only());
    }

    #[test]
    fn transport_specific_rules() {
        // UC has no READ or ACK.
        assert!(!BthOpcode(0x2c).is_valid());
        assert!(BthOpcode::UC_WRITE_ONLY.has_reth());
        // XRC puts the XRCETH before the RETH.
        assert_eq!(BthOpcode(0xa6).reth_offset(), Some(4));
        assert_eq!(BthOpcode(0xa6).ext_headers_len(), Some(20));
        // RD: RDETH + DETH before the RETH.
        assert_eq!(BthOpcode(0x46).reth_offset(), Some(12));
        assert!(!BthOpcode(0x15).is_valid());
        assert!(!BthOpcode(0xe0).is_valid());
        assert_eq!(BthOpcode(0x15).ext_headers_len(), None);
    }

    #[test]
    fn names() {
        assert_eq!(BthOpcode(0x06).to_string(), "RC_RDMA_WRITE_FIRST");
        assert_eq!(BthOpcode(0x24).to_string(), "UC_SEND_ONLY");
        assert_eq!(BthOpcode(0x81).to_string(), "CNP");
        assert_eq!(BthOpcode(0xff).to_string(), "opcode 0xff");
        assert_eq!(
            format!("{:?}", BthOpcode(0x11)),
            "BthOpcode(0x11 RC_ACKNOWLEDGE)"
        );
    }
}
