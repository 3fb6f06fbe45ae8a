//! The RDMA Extended Transport Header (RETH), 16 bytes.
//!
//! Follows the BTH on RDMA WRITE First/Only and READ Request and names the
//! remote buffer: virtual address (64 bits), R_Key (32 bits) and DMA length
//! (32 bits). The DMA length is the size of the *whole message*, so the first
//! packet of a WRITE already tells the data plane whether the flow is a
//! small control message or a multi-megabyte gradient transfer.

use core::fmt;

use crate::field::{be32, be64, need, set_be32, set_be64};

/// Everything that can be wrong with a RETH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RethError {
    /// Fewer than 16 bytes.
    Truncated {
        /// Bytes present.
        available: usize,
    },
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for RethError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RethError::Truncated { available } => {
                write!(f, "only {available} bytes, fewer than the 16-byte RETH")
            }
            RethError::BufferTooSmall { needed, available } => write!(
                f,
                "RETH needs {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for RethError {}

/// A zero-copy view of a RETH.
#[derive(Debug, Clone)]
pub struct Reth<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Reth<T> {
    /// Always 16 bytes.
    pub const HEADER_LEN: usize = 16;

    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Reth { buffer }
    }

    /// Wraps after proving 16 bytes exist.
    pub fn new_checked(buffer: T) -> Result<Self, RethError> {
        let available = buffer.as_ref().len();
        if available < Self::HEADER_LEN {
            return Err(RethError::Truncated { available });
        }
        Ok(Reth { buffer })
    }

    /// Remote virtual address.
    pub fn virtual_addr(&self) -> u64 {
        be64(self.buffer.as_ref(), 0)
    }

    /// Remote key.
    pub fn rkey(&self) -> u32 {
        be32(self.buffer.as_ref(), 8)
    }

    /// Length of the whole message in bytes.
    pub fn dma_len(&self) -> u32 {
        be32(self.buffer.as_ref(), 12)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Reth<T> {
    /// Overwrites the virtual address.
    pub fn set_virtual_addr(&mut self, va: u64) {
        set_be64(self.buffer.as_mut(), 0, va);
    }

    /// Overwrites the remote key.
    pub fn set_rkey(&mut self, k: u32) {
        set_be32(self.buffer.as_mut(), 8, k);
    }

    /// Overwrites the DMA length.
    pub fn set_dma_len(&mut self, l: u32) {
        set_be32(self.buffer.as_mut(), 12, l);
    }
}

/// The owned, parsed form of a RETH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RethRepr {
    /// Remote virtual address.
    pub virtual_addr: u64,
    /// Remote key.
    pub rkey: u32,
    /// Length of the whole message.
    pub dma_len: u32,
}

impl RethRepr {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]>>(r: &Reth<T>) -> Result<Self, RethError> {
        Ok(RethRepr {
            virtual_addr: r.virtual_addr(),
            rkey: r.rkey(),
            dma_len: r.dma_len(),
        })
    }

    /// Always 16.
    pub const fn buffer_len(&self) -> usize {
        Reth::<&[u8]>::HEADER_LEN
    }

    /// Writes the RETH to the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, RethError> {
        need(buf.len(), self.buffer_len())
            .map_err(|(needed, available)| RethError::BufferTooSmall { needed, available })?;
        let mut r = Reth::new_unchecked(buf);
        r.set_virtual_addr(self.virtual_addr);
        r.set_rkey(self.rkey);
        r.set_dma_len(self.dma_len);
        Ok(self.buffer_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = [
            0x00, 0x00, 0x7f, 0x12, 0x34, 0x56, 0x70, 0x00, // VA
            0x00, 0x00, 0x1a, 0x2b, // R_Key
            0x00, 0x10, 0x00, 0x00, // 1 MiB
        ];
        let r = Reth::new_checked(&bytes[..]).unwrap();
        assert_eq!(r.virtual_addr(), 0x7f12_3456_7000);
        assert_eq!(r.rkey(), 0x1a2b);
        assert_eq!(r.dma_len(), 1 << 20);
        let mut out = [0u8; 16];
        RethRepr::parse(&r).unwrap().emit(&mut out).unwrap();
        assert_eq!(out, bytes);
        assert_eq!(
            Reth::new_checked(&bytes[..15]).unwrap_err(),
            RethError::Truncated { available: 15 }
        );
    }
}
