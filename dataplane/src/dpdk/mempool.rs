//! Packet-buffer pools.

use std::ffi::CString;
use std::ptr::NonNull;

use dpdk_sys as sys;

use super::error::{DpdkError, Result};

/// Default data room per mbuf (2048 bytes plus headroom): one standard
/// Ethernet frame per mbuf, no chaining.
pub const DEFAULT_BUF_SIZE: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// Bytes of packet data one default mbuf holds (buffer minus headroom): the
/// largest single-segment frame.
pub const MBUF_DATA_ROOM: usize =
    (sys::RTE_MBUF_DEFAULT_BUF_SIZE - sys::RTE_PKTMBUF_HEADROOM) as usize;

/// A `rte_pktmbuf` pool. Freed when dropped; every mbuf taken from it must be
/// back (or its port stopped) by then.
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    name: String,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe.
unsafe impl Send for Mempool {}
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `count` mbufs with a per-lcore cache of `cache`.
    pub fn new(name: &str, count: u32, cache: u32, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new("rte_pktmbuf_pool_create", name, libc::EINVAL))?;
        // SAFETY: the name is a valid C string; DPDK copies it.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(cname.as_ptr(), count, cache, 0, DEFAULT_BUF_SIZE, socket)
        };
        NonNull::new(raw)
            .map(|raw| Mempool {
                raw,
                name: name.to_owned(),
            })
            .ok_or_else(|| DpdkError::from_errno("rte_pktmbuf_pool_create", name))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Free mbufs left in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid for self's lifetime.
        unsafe { sys::shim_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs taken from the pool and not yet returned (mbufs parked in
    /// per-lcore caches count as returned): what the appliance holds in
    /// rings, queues and bursts. A leak shows as a count that does not come
    /// back down once traffic stops.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid for self's lifetime; the call only
        // reads its counters.
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        // SAFETY: the pool is valid for self's lifetime; `size` is set at
        // creation and never written again.
        unsafe { (*self.raw.as_ptr()).size }
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: owned pool; ports using it are stopped before drop.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
    }
}
