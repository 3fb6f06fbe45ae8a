//! Big-endian field accessors shared by the header views.
//!
//! Every caller has already proven (in its `new_checked` or by an explicit
//! length test) that the bytes exist, so these helpers index directly. They
//! stay private so that nothing outside the crate can call them on an
//! unchecked slice.

#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    let mut w = [0u8; 2];
    w.copy_from_slice(&b[at..at + 2]);
    u16::from_be_bytes(w)
}

#[inline(always)]
pub(crate) fn be24(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, b[at], b[at + 1], b[at + 2]])
}

#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(w)
}

#[inline(always)]
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

#[inline(always)]
pub(crate) fn set_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn set_be24(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 3].copy_from_slice(&v.to_be_bytes()[1..]);
}

#[inline(always)]
pub(crate) fn set_be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn set_be64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Fails an emit early, before any byte is written, when the destination
/// cannot hold the header. Returning the pair lets each layer wrap it in its
/// own `BufferTooSmall` variant.
#[inline]
pub(crate) fn need(buf_len: usize, needed: usize) -> Result<(), (usize, usize)> {
    if buf_len < needed {
        Err((needed, buf_len))
    } else {
        Ok(())
    }
}
