//! The only module with `unsafe`: thin, safe wrappers over `dpdk-sys`.
//!
//! Everything DPDK returns as a status code comes back as a [`DpdkError`]
//! carrying the call, its subject and `rte_strerror`'s text. Nothing here
//! panics.

mod eal;
mod error;
mod lcore;
mod mbuf;
mod mempool;
mod port;

pub use eal::{Eal, EalInitError};
pub use error::{DpdkError, Result};
pub use lcore::{launch, LcoreId};
pub use mbuf::{Drain, Mbuf, MbufBurst, MAX_BURST};
pub use mempool::{Mempool, DEFAULT_BUF_SIZE, MBUF_DATA_ROOM};
pub use port::{
    NicStats, Port, PortId, PortInfo, PortSetup, Rss, RssFields, RssOutcome, MAX_PORTS,
};

/// Reads the time-stamp counter. On x86-64 the instruction itself, inline
/// (`rte_rdtsc` is the same instruction, but behind the C shim it is a
/// call per use, and the steer engine times every decision with it).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC has no preconditions.
    return unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: no preconditions.
    return unsafe { dpdk_sys::shim_rdtsc() };
}

/// Hints the CPU to pull the cache line holding `addr` into every level
/// (`rte_prefetch0`), inline on x86-64. A hint only: it never faults and
/// never reads through `addr`, whatever `addr` is, so the logic crates
/// may name any address they compute (see `flowtab::Table::prefetch_slot`).
#[inline(always)]
pub fn prefetch(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint; it does not fault on any address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: rte_prefetch0 is a hint; it does not fault on any address.
    unsafe {
        dpdk_sys::shim_prefetch0(addr.cast())
    };
}

/// TSC ticks per second, as calibrated by EAL.
pub fn tsc_hz() -> u64 {
    // SAFETY: no preconditions beyond EAL init, which callers hold.
    unsafe { dpdk_sys::shim_tsc_hz() }
}
