//! RoCEv2 and the InfiniBand Base Transport Header (BTH).
//!
//! RoCEv2 ("routable RoCE") carries InfiniBand transport packets in UDP to
//! destination port [`ROCEV2_UDP_PORT`] (4791). The UDP source port carries
//! flow entropy for ECMP (NICs derive it from the QP), and the UDP checksum is
//! usually 0 because the InfiniBand *invariant CRC* (ICRC, see
//! [`crate::icrc`]) in the last 4 bytes of the UDP payload protects the
//! packet end to end.
//!
//! ```text
//! UDP payload:  BTH (12) | extension headers (RETH, AETH, ImmDt…) | payload | pad (0-3) | ICRC (4)
//!
//!  0               1               2               3
//! +---------------+-+-+---+-------+-------------------------------+
//! |    OpCode     |S|M|Pad| TVer  |            P_Key              |
//! +-+-+-----------+-+-+---+-------+-------------------------------+
//! |F|B|   resv6   |              Destination QP                   |
//! +-+-------------+-----------------------------------------------+
//! |A|   resv7     |                  PSN                          |
//! +-+-------------+-----------------------------------------------+
//! ```
//!
//! `S` = solicited event, `M` = migration request, `Pad` = bytes of padding
//! before the ICRC, `F`/`B` = forward/backward explicit congestion
//! notification, `A` = acknowledge request, PSN = 24-bit packet sequence
//! number. The data plane tracks per-QP state from `(dest QP, PSN, opcode)`.

use core::fmt;

use crate::bth_opcode::BthOpcode;
use crate::field::{be16, be24, need, set_be16, set_be24};

/// The IANA-assigned UDP destination port of RoCEv2.
pub const ROCEV2_UDP_PORT: u16 = 4791;

/// Length of the invariant CRC trailer.
pub const ICRC_LEN: usize = 4;

/// Everything that can be wrong with a BTH, or with a request to emit one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BthError {
    /// Fewer than 12 bytes.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// The UDP payload cannot hold BTH + the opcode's extension headers + ICRC.
    TooShortForOpcode {
        /// The opcode whose headers did not fit.
        opcode: BthOpcode,
        /// Bytes needed for BTH + extension headers + ICRC.
        needed: usize,
        /// Bytes of UDP payload present.
        available: usize,
    },
    /// Emit: pad count must fit in 2 bits.
    PadCountOutOfRange(u8),
    /// Emit: transport version must fit in 4 bits.
    TverOutOfRange(u8),
    /// Emit: the destination QP must fit in 24 bits.
    QpnOutOfRange(u32),
    /// Emit: the PSN must fit in 24 bits.
    PsnOutOfRange(u32),
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl BthError {
    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            BthError::Truncated { .. } => "bth.truncated",
            BthError::TooShortForOpcode { .. } => "bth.too_short_for_opcode",
            BthError::PadCountOutOfRange(_) => "bth.pad_count_out_of_range",
            BthError::TverOutOfRange(_) => "bth.tver_out_of_range",
            BthError::QpnOutOfRange(_) => "bth.qpn_out_of_range",
            BthError::PsnOutOfRange(_) => "bth.psn_out_of_range",
            BthError::BufferTooSmall { .. } => "bth.buffer_too_small",
        }
    }
}

impl fmt::Display for BthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BthError::Truncated { available } => {
                write!(f, "only {available} bytes, fewer than the 12-byte BTH")
            }
            BthError::TooShortForOpcode {
                opcode,
                needed,
                available,
            } => write!(
                f,
                "{opcode} needs {needed} bytes (BTH, extension headers, ICRC) but the UDP payload has {available}"
            ),
            BthError::PadCountOutOfRange(p) => write!(f, "pad count {p} does not fit in 2 bits"),
            BthError::TverOutOfRange(t) => {
                write!(f, "transport version {t} does not fit in 4 bits")
            }
            BthError::QpnOutOfRange(q) => write!(f, "QP number 0x{q:x} does not fit in 24 bits"),
            BthError::PsnOutOfRange(p) => write!(f, "PSN 0x{p:x} does not fit in 24 bits"),
            BthError::BufferTooSmall { needed, available } => write!(
                f,
                "BTH needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for BthError {}

/// A zero-copy view of a Base Transport Header.
#[derive(Debug, Clone)]
pub struct Bth<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Bth<T> {
    /// The BTH is always 12 bytes.
    pub const HEADER_LEN: usize = 12;

    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Bth { buffer }
    }

    /// Wraps after proving 12 bytes exist.
    pub fn new_checked(buffer: T) -> Result<Self, BthError> {
        let available = buffer.as_ref().len();
        if available < Self::HEADER_LEN {
            return Err(BthError::Truncated { available });
        }
        Ok(Bth { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self, at: usize) -> u8 {
        self.buffer.as_ref()[at]
    }

    /// Opcode.
    pub fn opcode(&self) -> BthOpcode {
        BthOpcode(self.b(0))
    }

    /// Solicited event.
    pub fn solicited(&self) -> bool {
        self.b(1) & 0x80 != 0
    }

    /// Migration request.
    pub fn mig_req(&self) -> bool {
        self.b(1) & 0x40 != 0
    }

    /// Pad bytes before the ICRC (0..=3).
    pub fn pad_count(&self) -> u8 {
        (self.b(1) >> 4) & 0x3
    }

    /// Transport header version (0 today).
    pub fn tver(&self) -> u8 {
        self.b(1) & 0x0f
    }

    /// Partition key.
    pub fn pkey(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Forward ECN: congestion seen on the way to the responder.
    pub fn fecn(&self) -> bool {
        self.b(4) & 0x80 != 0
    }

    /// Backward ECN: congestion reported back to the requester.
    pub fn becn(&self) -> bool {
        self.b(4) & 0x40 != 0
    }

    /// The byte holding FECN, BECN and the 6 reserved bits (masked to all
    /// ones by the ICRC).
    pub fn fecn_becn_resv(&self) -> u8 {
        self.b(4)
    }

    /// Destination queue pair (24 bits).
    pub fn dest_qp(&self) -> u32 {
        be24(self.buffer.as_ref(), 5)
    }

    /// Acknowledge request.
    pub fn ack_req(&self) -> bool {
        self.b(8) & 0x80 != 0
    }

    /// Packet sequence number (24 bits).
    pub fn psn(&self) -> u32 {
        be24(self.buffer.as_ref(), 9)
    }

    /// Bytes after the BTH.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Bth<T> {
    fn set_bits(&mut self, at: usize, mask: u8, v: u8) {
        let b = &mut self.buffer.as_mut()[at];
        *b = (*b & !mask) | (v & mask);
    }

    /// Overwrites the opcode.
    pub fn set_opcode(&mut self, op: BthOpcode) {
        self.buffer.as_mut()[0] = op.0;
    }

    /// Overwrites the S, M, PadCnt and TVer byte.
    pub fn set_flags(&mut self, solicited: bool, mig_req: bool, pad_count: u8, tver: u8) {
        self.buffer.as_mut()[1] = (u8::from(solicited) << 7)
            | (u8::from(mig_req) << 6)
            | ((pad_count & 3) << 4)
            | (tver & 0x0f);
    }

    /// Overwrites the partition key.
    pub fn set_pkey(&mut self, pkey: u16) {
        set_be16(self.buffer.as_mut(), 2, pkey);
    }

    /// Sets or clears FECN. The ICRC does not cover this bit, so a switch
    /// may mark congestion without recomputing it.
    pub fn set_fecn(&mut self, v: bool) {
        self.set_bits(4, 0x80, if v { 0x80 } else { 0 });
    }

    /// Sets or clears BECN (ICRC-neutral, like FECN).
    pub fn set_becn(&mut self, v: bool) {
        self.set_bits(4, 0x40, if v { 0x40 } else { 0 });
    }

    /// Overwrites the destination QP (low 24 bits of `qp`).
    pub fn set_dest_qp(&mut self, qp: u32) {
        set_be24(self.buffer.as_mut(), 5, qp & 0x00ff_ffff);
    }

    /// Sets or clears the acknowledge request bit.
    pub fn set_ack_req(&mut self, v: bool) {
        self.set_bits(8, 0x80, if v { 0x80 } else { 0 });
    }

    /// Overwrites the PSN (low 24 bits of `psn`).
    pub fn set_psn(&mut self, psn: u32) {
        set_be24(self.buffer.as_mut(), 9, psn & 0x00ff_ffff);
    }
}

/// The owned, parsed form of a BTH. Reserved bits are emitted as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BthRepr {
    /// Opcode.
    pub opcode: BthOpcode,
    /// Solicited event.
    pub solicited: bool,
    /// Migration request.
    pub mig_req: bool,
    /// Pad bytes before the ICRC (0..=3).
    pub pad_count: u8,
    /// Transport version (4 bits, normally 0).
    pub tver: u8,
    /// Partition key (0xFFFF = default full-membership partition).
    pub pkey: u16,
    /// Forward ECN.
    pub fecn: bool,
    /// Backward ECN.
    pub becn: bool,
    /// Destination QP (24 bits).
    pub dest_qp: u32,
    /// Acknowledge request.
    pub ack_req: bool,
    /// Packet sequence number (24 bits).
    pub psn: u32,
}

impl BthRepr {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]>>(b: &Bth<T>) -> Result<Self, BthError> {
        Ok(BthRepr {
            opcode: b.opcode(),
            solicited: b.solicited(),
            mig_req: b.mig_req(),
            pad_count: b.pad_count(),
            tver: b.tver(),
            pkey: b.pkey(),
            fecn: b.fecn(),
            becn: b.becn(),
            dest_qp: b.dest_qp(),
            ack_req: b.ack_req(),
            psn: b.psn(),
        })
    }

    /// Always 12.
    pub const fn buffer_len(&self) -> usize {
        Bth::<&[u8]>::HEADER_LEN
    }

    /// Writes the BTH to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BthError> {
        if self.pad_count > 3 {
            return Err(BthError::PadCountOutOfRange(self.pad_count));
        }
        if self.tver > 0x0f {
            return Err(BthError::TverOutOfRange(self.tver));
        }
        if self.dest_qp > 0x00ff_ffff {
            return Err(BthError::QpnOutOfRange(self.dest_qp));
        }
        if self.psn > 0x00ff_ffff {
            return Err(BthError::PsnOutOfRange(self.psn));
        }
        need(buf.len(), self.buffer_len())
            .map_err(|(needed, available)| BthError::BufferTooSmall { needed, available })?;
        buf[4] = 0;
        buf[8] = 0;
        let mut b = Bth::new_unchecked(buf);
        b.set_opcode(self.opcode);
        b.set_flags(self.solicited, self.mig_req, self.pad_count, self.tver);
        b.set_pkey(self.pkey);
        b.set_fecn(self.fecn);
        b.set_becn(self.becn);
        b.set_dest_qp(self.dest_qp);
        b.set_ack_req(self.ack_req);
        b.set_psn(self.psn);
        Ok(self.buffer_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The BTH of a RoCEv2 CNP captured from a ConnectX-4 Lx: opcode 0x81,
    // P_Key 0xffff, BECN set, dest QP 0x000118, PSN 0.
    const CNP_BTH: [u8; 12] = [
        0x81, 0x00, 0xff, 0xff, 0x40, 0x00, 0x01, 0x18, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn reads_captured_cnp() {
        let b = Bth::new_checked(&CNP_BTH[..]).unwrap();
        assert_eq!(b.opcode(), BthOpcode::CNP);
        assert_eq!(b.pkey(), 0xffff);
        assert!(b.becn());
        assert!(!b.fecn());
        assert_eq!(b.dest_qp(), 0x118);
        assert_eq!(b.psn(), 0);
        assert!(!b.ack_req());
        let mut out = [0u8; 12];
        BthRepr::parse(&b).unwrap().emit(&mut out).unwrap();
        assert_eq!(out, CNP_BTH);
    }

    #[test]
    fn every_field_round_trips() {
        let r = BthRepr {
            opcode: BthOpcode::RC_WRITE_FIRST,
            solicited: true,
            mig_req: true,
            pad_count: 3,
            tver: 0,
            pkey: 0x8001,
            fecn: true,
            becn: false,
            dest_qp: 0xabcdef,
            ack_req: true,
            psn: 0x123456,
        };
        let mut out = [0u8; 12];
        r.emit(&mut out).unwrap();
        assert_eq!(
            out,
            [0x06, 0xf0, 0x80, 0x01, 0x80, 0xab, 0xcd, 0xef, 0x80, 0x12, 0x34, 0x56]
        );
        assert_eq!(
            BthRepr::parse(&Bth::new_checked(&out[..]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn setters_and_errors() {
        let mut buf = CNP_BTH;
        let mut b = Bth::new_checked(&mut buf[..]).unwrap();
        b.set_fecn(true);
        b.set_becn(false);
        b.set_psn(0xffff_ffff);
        assert!(b.fecn() && !b.becn());
        assert_eq!(b.psn(), 0xff_ffff);
        assert_eq!(
            Bth::new_checked(&CNP_BTH[..11]).unwrap_err(),
            BthError::Truncated { available: 11 }
        );
        let r = BthRepr {
            opcode: BthOpcode::RC_ACK,
            solicited: false,
            mig_req: false,
            pad_count: 0,
            tver: 0,
            pkey: 0xffff,
            fecn: false,
            becn: false,
            dest_qp: 1 << 24,
            ack_req: false,
            psn: 0,
        };
        assert_eq!(
            r.emit(&mut [0u8; 12]),
            Err(BthError::QpnOutOfRange(1 << 24))
        );
    }
}
