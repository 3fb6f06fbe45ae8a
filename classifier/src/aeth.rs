//! The ACK Extended Transport Header (AETH), 4 bytes.
//!
//! Carried by Acknowledge, Atomic Acknowledge and the first/last/only READ
//! responses: an 8-bit syndrome and the 24-bit message sequence number (MSN)
//! of the last completed message. The syndrome's top bits say whether this
//! is an ACK (with a credit count), an RNR NAK (with a timer) or a NAK (with
//! an error code) — RNR NAKs and PSN-sequence NAKs are what make RoCE
//! retransmit, which the appliance may want to count.

use core::fmt;

use crate::field::{be24, need, set_be24};

/// What an AETH syndrome announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AethKind {
    /// Positive acknowledgement; the value is the credit count (5 bits).
    Ack(u8),
    /// Receiver not ready; the value is the RNR timer code (5 bits).
    RnrNak(u8),
    /// Negative acknowledgement; 0 = PSN sequence error, 1 = invalid request,
    /// 2 = remote access error, 3 = remote operational error, 4 = invalid RD request.
    Nak(u8),
    /// Syndrome class 0b10 is reserved.
    Reserved(u8),
}

/// Everything that can be wrong with an AETH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AethError {
    /// Fewer than 4 bytes.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// Emit: the MSN must fit in 24 bits.
    MsnOutOfRange(u32),
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for AethError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AethError::Truncated { available } => {
                write!(f, "only {available} bytes, fewer than the 4-byte AETH")
            }
            AethError::MsnOutOfRange(m) => write!(f, "MSN 0x{m:x} does not fit in 24 bits"),
            AethError::BufferTooSmall { needed, available } => write!(
                f,
                "AETH needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for AethError {}

/// A zero-copy view of an AETH.
#[derive(Debug, Clone)]
pub struct Aeth<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Aeth<T> {
    /// Always 4 bytes.
    pub const HEADER_LEN: usize = 4;

    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Aeth { buffer }
    }

    /// Wraps after proving 4 bytes exist.
    pub fn new_checked(buffer: T) -> Result<Self, AethError> {
        let available = buffer.as_ref().len();
        if available < Self::HEADER_LEN {
            return Err(AethError::Truncated { available });
        }
        Ok(Aeth { buffer })
    }

    /// The raw syndrome byte.
    pub fn syndrome(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The decoded syndrome.
    pub fn kind(&self) -> AethKind {
        let s = self.syndrome();
        let v = s & 0x1f;
        match (s >> 5) & 0x3 {
            0 => AethKind::Ack(v),
            1 => AethKind::RnrNak(v),
            3 => AethKind::Nak(v),
            _ => AethKind::Reserved(v),
        }
    }

    /// Message sequence number.
    pub fn msn(&self) -> u32 {
        be24(self.buffer.as_ref(), 1)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Aeth<T> {
    /// Overwrites the syndrome.
    pub fn set_syndrome(&mut self, s: u8) {
        self.buffer.as_mut()[0] = s;
    }

    /// Overwrites the MSN (low 24 bits).
    pub fn set_msn(&mut self, msn: u32) {
        set_be24(self.buffer.as_mut(), 1, msn & 0x00ff_ffff);
    }
}

/// The owned, parsed form of an AETH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AethRepr {
    /// Syndrome byte (e.g. 0x1f = ACK with the maximum credit count).
    pub syndrome: u8,
    /// Message sequence number (24 bits).
    pub msn: u32,
}

impl AethRepr {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]>>(a: &Aeth<T>) -> Result<Self, AethError> {
        Ok(AethRepr {
            syndrome: a.syndrome(),
            msn: a.msn(),
        })
    }

    /// Always 4.
    pub const fn buffer_len(&self) -> usize {
        Aeth::<&[u8]>::HEADER_LEN
    }

    /// Writes the AETH to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, AethError> {
        if self.msn > 0x00ff_ffff {
            return Err(AethError::MsnOutOfRange(self.msn));
        }
        need(buf.len(), self.buffer_len())
            .map_err(|(needed, available)| AethError::BufferTooSmall { needed, available })?;
        let mut a = Aeth::new_unchecked(buf);
        a.set_syndrome(self.syndrome);
        a.set_msn(self.msn);
        Ok(self.buffer_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syndromes() {
        let ack = [0x1f, 0x00, 0x00, 0x2a];
        let a = Aeth::new_checked(&ack[..]).unwrap();
        assert_eq!(a.kind(), AethKind::Ack(31));
        assert_eq!(a.msn(), 42);
        assert_eq!(
            Aeth::new_unchecked(&[0x60u8, 0, 0, 0][..]).kind(),
            AethKind::Nak(0)
        );
        assert_eq!(
            Aeth::new_unchecked(&[0x2eu8, 0, 0, 0][..]).kind(),
            AethKind::RnrNak(14)
        );
        assert_eq!(
            Aeth::new_unchecked(&[0x40u8, 0, 0, 0][..]).kind(),
            AethKind::Reserved(0)
        );
        let mut out = [0u8; 4];
        AethRepr::parse(&a).unwrap().emit(&mut out).unwrap();
        assert_eq!(out, ack);
        assert_eq!(
            AethRepr {
                syndrome: 0,
                msn: 1 << 24
            }
            .emit(&mut out),
            Err(AethError::MsnOutOfRange(1 << 24))
        );
    }
}
