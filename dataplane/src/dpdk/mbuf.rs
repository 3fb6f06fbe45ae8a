//! Owned packet buffers.
//!
//! `Mbuf` owns one `rte_mbuf` and frees it on drop. `MbufBurst` owns up to
//! `MAX_BURST` of them for the burst-oriented fast path: a transmit hands the
//! sent mbufs to the driver and *forgets* them (the driver frees them after
//! transmission), so an mbuf can never be freed twice, and whatever was not
//! sent stays owned by the burst until it is dropped or freed explicitly.

use std::ptr::NonNull;

use dpdk_sys as sys;

use super::error::{DpdkError, Result};
use super::mempool::Mempool;
use super::port::PortId;

/// Largest burst the fast path moves at once.
pub const MAX_BURST: usize = 64;

/// One owned packet buffer (single segment).
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an mbuf has exactly one owner at a time; moving it between threads
// is how DPDK is used.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes a fresh mbuf from `pool`.
    pub fn alloc(pool: &Mempool) -> Result<Mbuf> {
        // SAFETY: the pool pointer is valid.
        let raw = unsafe { sys::shim_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(raw).map(Mbuf).ok_or_else(|| {
            DpdkError::new("rte_pktmbuf_alloc", pool.name().to_owned(), libc::ENOBUFS)
        })
    }

    /// A new mbuf holding a copy of `bytes`.
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Result<Mbuf> {
        let mut m = Mbuf::alloc(pool)?;
        m.append(bytes)?;
        Ok(m)
    }

    /// Appends `bytes` to the packet's tail; fails (EMSGSIZE) if they do
    /// not fit in the buffer's tailroom.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let len = u16::try_from(bytes.len())
            .map_err(|_| DpdkError::new("rte_pktmbuf_append", "frame", libc::EMSGSIZE))?;
        // SAFETY: single-segment mbuf we own exclusively.
        let dst = unsafe { sys::shim_pktmbuf_append(self.0.as_ptr(), len) };
        if dst.is_null() {
            return Err(DpdkError::new(
                "rte_pktmbuf_append",
                "frame",
                libc::EMSGSIZE,
            ));
        }
        // SAFETY: append returned `len` writable bytes inside our buffer.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst as *mut u8, bytes.len()) };
        Ok(())
    }

    /// Grows the packet at its head by `len` bytes (taken from the
    /// headroom, 128 bytes in a fresh mbuf) and returns them for the
    /// caller to fill; `None`, with the packet unchanged, if they do not
    /// fit. This is how an encapsulation is pushed without copying the
    /// frame.
    #[inline]
    pub fn prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: single-segment mbuf we own exclusively.
        let dst = unsafe { sys::shim_pktmbuf_prepend(self.0.as_ptr(), len) };
        if dst.is_null() {
            return None;
        }
        // SAFETY: prepend returned `len` writable bytes inside our buffer,
        // now the start of the packet.
        Some(unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, usize::from(len)) })
    }

    /// Grows the packet at its tail by `len` bytes and returns them for
    /// the caller to fill (a frame built in place); `None`, with the
    /// packet unchanged, if they do not fit in the tailroom.
    #[inline]
    pub fn extend(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: single-segment mbuf we own exclusively.
        let dst = unsafe { sys::shim_pktmbuf_append(self.0.as_ptr(), len) };
        if dst.is_null() {
            return None;
        }
        // SAFETY: append returned `len` writable bytes inside our buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, usize::from(len)) })
    }

    /// Shortens a single-segment packet to `len` bytes (no-op if it is
    /// not longer).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        // SAFETY: single-segment mbuf we own exclusively; only shrinks.
        unsafe {
            let m = self.0.as_ptr();
            if let Ok(len) = u16::try_from(len) {
                if len < (*m).data_len {
                    (*m).data_len = len;
                    (*m).pkt_len = u32::from(len);
                }
            }
        }
    }

    /// Removes `len` bytes from the packet's head (a decapsulation);
    /// returns false, with the packet unchanged, if it is shorter.
    #[inline]
    pub fn adj(&mut self, len: u16) -> bool {
        // SAFETY: single-segment mbuf we own exclusively.
        !unsafe { sys::shim_pktmbuf_adj(self.0.as_ptr(), len) }.is_null()
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        // SAFETY: valid mbuf owned by self.
        unsafe { (*self.0.as_ptr()).pkt_len }
    }

    /// Bytes of the first segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: buf_addr + data_off points at data_len initialised bytes
        // inside the buffer, which lives as long as self.
        unsafe {
            let m = self.0.as_ptr();
            let start = ((*m).buf_addr as *const u8).add((*m).data_off as usize);
            std::slice::from_raw_parts(start, (*m).data_len as usize)
        }
    }

    /// Mutable bytes of the first segment.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and we own the mbuf exclusively.
        unsafe {
            let m = self.0.as_ptr();
            let start = ((*m).buf_addr as *mut u8).add((*m).data_off as usize);
            std::slice::from_raw_parts_mut(start, (*m).data_len as usize)
        }
    }

    /// Hints the CPU to pull the packet's first cache line in.
    #[inline]
    pub fn prefetch_data(&self) {
        // SAFETY: reads the header of a valid mbuf we own.
        let data = unsafe {
            let m = self.0.as_ptr();
            ((*m).buf_addr as *const u8).wrapping_add((*m).data_off as usize)
        };
        super::prefetch(data);
    }

    /// Hints the CPU to pull the mbuf's own first cache line in (data
    /// pointer, lengths, port): for an mbuf another lcore wrote last, such
    /// as one handed over, whose header is in that lcore's cache.
    #[inline]
    pub fn prefetch_header(&self) {
        super::prefetch(self.0.as_ptr().cast());
    }

    /// The port that received this mbuf.
    #[inline]
    pub fn rx_port(&self) -> PortId {
        // SAFETY: valid mbuf.
        PortId(unsafe { (*self.0.as_ptr()).port })
    }

    /// The receiving NIC verified the frame's IPv4 header checksum (never,
    /// on a port without the offload). Not inlined: inlined, the compiler
    /// read the flags of every packet, offload or not, to spare a branch
    /// the port's setting makes predictable.
    #[inline(never)]
    pub fn rx_ip_checksum_good(&self) -> bool {
        // SAFETY: valid mbuf.
        ip_checksum_good(unsafe { (*self.0.as_ptr()).ol_flags })
    }
}

/// Whether an mbuf's receive flags say the IPv4 header checksum was
/// verified: `GOOD` alone. `BAD`, `UNKNOWN` and `NONE` (both bits: the
/// header is intact but its checksum field is not right, as some virtual
/// NICs report, which a NAT's incremental update cannot patch into a right
/// one) leave the check to software, which refuses what is wrong.
#[inline]
pub fn ip_checksum_good(ol_flags: u64) -> bool {
    ol_flags & u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK)
        == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD)
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody else references it.
        unsafe { sys::shim_pktmbuf_free(self.0.as_ptr()) };
    }
}

/// Up to `MAX_BURST` owned mbufs, filled by `rx_burst`, emptied by
/// `tx_burst`. Lives on the worker's stack; never allocates.
pub struct MbufBurst {
    slots: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
}

// SAFETY: owns its mbufs exclusively, like Vec<Mbuf>.
unsafe impl Send for MbufBurst {}

impl Default for MbufBurst {
    fn default() -> Self {
        MbufBurst::new()
    }
}

impl MbufBurst {
    pub const fn new() -> Self {
        MbufBurst {
            slots: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The owned mbufs, as `Mbuf`s.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, and the
        // first `len` slots are non-null mbufs owned by this burst.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr() as *const Mbuf, self.len) }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Appends an owned mbuf; gives it back if the burst is full.
    pub fn push(&mut self, m: Mbuf) -> std::result::Result<(), Mbuf> {
        if self.len == MAX_BURST {
            return Err(m);
        }
        self.slots[self.len] = m.0.as_ptr();
        std::mem::forget(m);
        self.len += 1;
        Ok(())
    }

    /// Fills the burst up to `n` mbufs with fresh, empty buffers from `pool`
    /// in one bulk call; all or nothing.
    pub fn alloc_from(&mut self, pool: &Mempool, n: usize) -> Result<()> {
        let n = n.min(MAX_BURST - self.len);
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the free slots after `len` receive `n` mbufs we then own.
        let rc = unsafe {
            sys::shim_pktmbuf_alloc_bulk(
                pool.as_ptr(),
                self.slots.as_mut_ptr().add(self.len),
                n as u32,
            )
        };
        if rc != 0 {
            return Err(DpdkError::new(
                "rte_pktmbuf_alloc_bulk",
                pool.name().to_owned(),
                rc,
            ));
        }
        self.len += n;
        Ok(())
    }

    /// Moves every owned mbuf, in order, into `sink`; the burst is empty
    /// afterwards.
    #[inline]
    pub fn drain_into(&mut self, sink: impl FnMut(Mbuf)) {
        self.drain().for_each(sink);
    }

    /// Moves every owned mbuf out, in order, as an iterator: the caller's
    /// loop body stays in its own function, where [`MbufBurst::drain_into`]
    /// makes a closure of it that the compiler may call once a packet.
    /// The burst is empty afterwards; what the caller does not take is
    /// freed.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let n = self.len;
        // Ownership moves out slot by slot; setting len first means a
        // panic while draining (there is none on the fast path) would
        // leak, never free twice.
        self.len = 0;
        Drain {
            slots: self.slots[..n].iter(),
        }
    }

    /// Receives up to `max` (capped at the free space) packets from a queue.
    /// Returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, port: PortId, queue: u16, max: usize) -> usize {
        let room = max.min(MAX_BURST - self.len);
        // SAFETY: the slots after `len` are free for the driver to fill with
        // up to `room` mbufs, which we then own.
        let n = unsafe {
            sys::shim_rx_burst(
                port.0,
                queue,
                self.slots.as_mut_ptr().add(self.len),
                room as u16,
            )
        } as usize;
        self.len += n;
        n
    }

    /// Hands every packet to a TX queue. Sent mbufs now belong to the driver
    /// and are forgotten here; unsent ones stay, moved to the front, for the
    /// caller to retry or drop. Returns how many were sent.
    #[inline]
    pub fn tx_burst(&mut self, port: PortId, queue: u16) -> usize {
        if self.len == 0 {
            return 0;
        }
        // SAFETY: the first `len` slots are owned mbufs; the driver takes
        // ownership of the first `sent` of them.
        let sent =
            unsafe { sys::shim_tx_burst(port.0, queue, self.slots.as_mut_ptr(), self.len as u16) }
                as usize;
        if sent < self.len {
            self.slots.copy_within(sent..self.len, 0);
        }
        self.len -= sent;
        sent
    }

    /// Frees every mbuf still owned (one bulk call). Returns how many.
    #[inline]
    pub fn free_all(&mut self) -> usize {
        let n = self.len;
        if n > 0 {
            // SAFETY: the first `n` slots are owned mbufs; after this they are
            // forgotten.
            unsafe { sys::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr(), n as u32) };
            self.len = 0;
        }
        n
    }
}

/// The mbufs of a burst, moved out in order ([`MbufBurst::drain`]).
pub struct Drain<'a> {
    slots: std::slice::Iter<'a, *mut sys::rte_mbuf>,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        loop {
            let slot = self.slots.next()?;
            if let Some(raw) = NonNull::new(*slot) {
                return Some(Mbuf(raw));
            }
        }
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for m in self.by_ref() {
            drop(m);
        }
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.free_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DPDK's two IP checksum bits, as DPDK 22.11 defines them: only
    /// `GOOD` alone is a verified header; the other receive flags do not
    /// matter.
    #[test]
    fn only_good_receive_flags_are_a_verified_header() {
        const BAD: u64 = 1 << 4;
        const GOOD: u64 = 1 << 7;
        assert_eq!(u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD), BAD);
        assert_eq!(u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD), GOOD);
        let other = 1 << 1 | 1 << 3 | 1 << 8; // RSS hash, L4 bad, L4 good
        for noise in [0, other] {
            assert!(!ip_checksum_good(noise), "UNKNOWN");
            assert!(ip_checksum_good(noise | GOOD), "GOOD");
            assert!(!ip_checksum_good(noise | BAD), "BAD");
            assert!(!ip_checksum_good(noise | GOOD | BAD), "NONE");
        }
    }
}
