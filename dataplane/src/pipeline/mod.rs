//! Packet pipelines: what a worker lcore does with each burst.
//!
//! Like DPDK's l3fwd, each worker gets one [`WorkerConf`] naming exactly the
//! RX queues it polls and where their packets go, so workers share nothing
//! on the fast path but read-only configuration.

pub mod egress;
pub mod forward;
pub mod steer;
pub mod steer_counters;
pub mod tensor;
pub mod tensor_counters;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::control_plane::{MonoClock, SharedView};
use crate::dpdk::{LcoreId, PortId};
use crate::stats::LcoreCounters;

/// One RX queue a worker polls and the TX queue its packets leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRoute {
    pub rx_port: PortId,
    pub tx_port: PortId,
    /// The worker's queue index, used on both ports: queue `q` of every port
    /// belongs to worker `q`, so no two workers share a queue.
    pub queue: u16,
}

/// Everything a worker lcore needs, built before launch.
pub struct WorkerConf {
    pub lcore: LcoreId,
    pub routes: Vec<QueueRoute>,
    pub burst_size: usize,
    /// Sleep after an idle pass; zero means poll without pause.
    pub idle_sleep: std::time::Duration,
    pub counters: Arc<LcoreCounters>,
    pub stop: Arc<AtomicBool>,
    /// The control plane's view, when one runs.
    pub control: Option<SharedView>,
    /// Shared with the control thread, so state ages compare like with like.
    pub clock: MonoClock,
    /// `started_ports[p]`: this worker has a TX queue on port `p`.
    pub started_ports: Vec<bool>,
    /// Probe handling, when `[probe]` is configured.
    pub probe: Option<crate::probe::ProbeWorker>,
    /// Services, instances and counters, for `pipeline = "steer"`.
    pub steer: Option<Arc<steer::SteerShared>>,
}
