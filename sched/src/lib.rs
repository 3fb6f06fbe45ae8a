//! Per-egress-port packet scheduling for IntelliNode, without I/O.
//!
//! # Why this crate exists
//!
//! Two specs ask the egress side of the appliance for the same thing:
//!
//! * token-aware traffic steering §4.3: *high-priority short tasks are not
//!   blocked by long tasks*, so a short or urgent LLM request must never
//!   queue behind a multi-megabyte transfer;
//! * IntelliNode in-network scheduling §3.3: SMALL_FLOWs go first
//!   (ordered by arrival rate), LARGE_FLOWs share the remaining bandwidth
//!   by *Weighted Deficit Round Robin* with weights taken from the target
//!   node's computing power, and a DRAINING flow is flushed.
//!
//! # The two schedulers
//!
//! [`Scheduler`] is shaped like Linux `sch_ets`: a number of
//! **strict-priority bands** (band 0 is served first, then band 1, ...)
//! followed by **DRR bands**, each with its own quantum in bytes. A DRR band
//! is only served when every strict band is empty. The caller picks the
//! band; the scheduler never looks inside the item.
//!
//! "SMALL_FLOWs prioritised by arrival rate" is modelled by giving the
//! small-flow class *several* strict bands and letting the classifier put a
//! flow into a higher band the lower its arrival rate (or the more urgent
//! its token features). The ordering policy stays in the caller, where the
//! rate estimate lives; the scheduler only guarantees that a lower band
//! index always wins.
//!
//! [`FlowDrr`] is a weighted DRR over *per-flow* FIFOs keyed by any
//! `Copy + Eq + Hash` flow key. It is what the LARGE_FLOW class needs: each
//! flow's quantum is `base_quantum × weight`, weights change at run time
//! ([`FlowDrr::set_weight`]) and a draining flow is flushed in FIFO order
//! with [`FlowDrr::drain_flow`]. A data plane can feed one DRR band of a
//! [`Scheduler`] from a `FlowDrr`, or run a `FlowDrr` on its own port.
//!
//! Both implement deficit round robin exactly as Shreedhar and Varghese
//! describe it: an active list visited round robin, the quantum added to
//! a queue's deficit once per visit, packets sent while the deficit covers
//! the head packet, and the deficit reset to zero when the queue empties.
//! (The only shortcut, skipping rounds in which nobody could send, yields
//! the same order; see the `drr` module.)
//!
//! # Rules the fast path keeps
//!
//! * **Sans-IO and generic.** Items are an opaque `T` with a byte length
//!   passed alongside, so the data plane queues mbufs and tests queue
//!   integers. No clocks, threads or DPDK.
//! * **No allocation after construction.** Every queue, the active lists,
//!   the flow table and the per-flow packet storage are sized from the
//!   configuration in `new`; `enqueue`, `dequeue`, `dequeue_burst`,
//!   `set_quantum`, `set_weight` and `drain_flow` never allocate. The
//!   `no_alloc` integration test checks this with a counting allocator.
//!   The one exception is the `out` collection given to `dequeue_burst`:
//!   it grows only if the caller did not give it room.
//! * **Nothing is silently lost.** A full band, an unknown band, a full
//!   buffer or a full flow table hands the item back in [`Rejected`] with
//!   the [`RejectReason`], so the caller counts the drop and frees the
//!   buffer itself.
//! * **No panics on any input.** Indices come from the caller, so every
//!   lookup is checked; arithmetic on byte counts saturates.
//!
//! # Measuring fairness
//!
//! [`jain_index`] computes Jain's fairness index, which tests and
//! benchmarks report over `bytes_i / weight_i`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod drr;
mod fairness;
mod flow_drr;
mod flow_drr_config;
mod reject;
mod scheduler;
mod stats;

pub use config::{ConfigError, SchedConfig, MAX_BAND_LIMIT};
pub use fairness::jain_index;
pub use flow_drr::{DrainFlow, FlowDrr};
pub use flow_drr_config::{FlowDrrConfig, MAX_FLOWS, MAX_PACKETS};
pub use reject::{RejectReason, Rejected};
pub use scheduler::Scheduler;
pub use stats::{BandStats, FlowDrrStats};
