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
pub use mbuf::{Mbuf, MbufBurst, MAX_BURST};
pub use mempool::{Mempool, DEFAULT_BUF_SIZE, MBUF_DATA_ROOM};
pub use port::{
    NicStats, Port, PortId, PortInfo, PortSetup, Rss, RssFields, RssOutcome, MAX_PORTS,
};

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: no preconditions.
    unsafe { dpdk_sys::shim_rdtsc() }
}

/// TSC ticks per second, as calibrated by EAL.
pub fn tsc_hz() -> u64 {
    // SAFETY: no preconditions beyond EAL init, which callers hold.
    unsafe { dpdk_sys::shim_tsc_hz() }
}
