//! Counters: written by one worker lcore each, read by the main lcore.
//!
//! Every worker owns an [`LcoreCounters`] and is its only writer, so an
//! update is a relaxed load and store (a plain `add` to memory on x86, no
//! locked instruction), done once per burst. The main lcore sums all workers'
//! counters off the fast path. Each worker's block is cache-line aligned so
//! two workers never write the same line.
//!
//! Drops follow VPP's habit: one list of reasons, each counted on its own.
//! A drop is charged to the port the packet *entered* on, so for every port
//! `rx = tx(peer) + drops`, and in total `rx = tx + drops`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Why a packet was dropped. Append new reasons at the end; the names are
/// part of the stats JSON and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// The egress TX queue had no room for the packet.
    TxQueueFull,
}

impl DropReason {
    pub const ALL: [DropReason; 1] = [DropReason::TxQueueFull];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            DropReason::TxQueueFull => "tx_queue_full",
        }
    }
}

/// One port's counters as seen by one lcore.
#[derive(Default)]
#[repr(align(64))]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub drops: [AtomicU64; DropReason::COUNT],
}

/// Everything one worker counts.
#[repr(align(64))]
pub struct LcoreCounters {
    pub lcore: u32,
    pub ports: Vec<PortCounters>,
    /// TSC cycles spent in loop iterations that moved at least one packet.
    pub busy_cycles: AtomicU64,
    /// Packets received in those iterations.
    pub busy_packets: AtomicU64,
    /// TSC when the worker loop started and ended (0 while not yet).
    pub loop_start_tsc: AtomicU64,
    pub loop_end_tsc: AtomicU64,
}

/// Adds to a counter that only the calling lcore writes.
#[inline(always)]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl LcoreCounters {
    pub fn new(lcore: u32, ports: usize) -> Self {
        LcoreCounters {
            lcore,
            ports: (0..ports).map(|_| PortCounters::default()).collect(),
            busy_cycles: AtomicU64::new(0),
            busy_packets: AtomicU64::new(0),
            loop_start_tsc: AtomicU64::new(0),
            loop_end_tsc: AtomicU64::new(0),
        }
    }
}

/// Plain totals for one port, summed over lcores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortTotals {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl PortTotals {
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LcoreTotals {
    pub lcore: u32,
    pub rx_packets: u64,
    pub busy_cycles: u64,
    pub busy_packets: u64,
}

impl LcoreTotals {
    pub fn cycles_per_packet(&self) -> f64 {
        if self.busy_packets == 0 {
            0.0
        } else {
            self.busy_cycles as f64 / self.busy_packets as f64
        }
    }
}

/// A consistent-enough read of every counter at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub tsc: u64,
    pub ports: Vec<PortTotals>,
    pub lcores: Vec<LcoreTotals>,
}

impl Snapshot {
    pub fn take(tsc: u64, nb_ports: usize, lcores: &[std::sync::Arc<LcoreCounters>]) -> Snapshot {
        let mut ports = vec![PortTotals::default(); nb_ports];
        let mut per_lcore = Vec::with_capacity(lcores.len());
        for lc in lcores {
            let mut rx = 0;
            for (total, c) in ports.iter_mut().zip(&lc.ports) {
                let r = c.rx_packets.load(Relaxed);
                rx += r;
                total.rx_packets += r;
                total.rx_bytes += c.rx_bytes.load(Relaxed);
                total.tx_packets += c.tx_packets.load(Relaxed);
                total.tx_bytes += c.tx_bytes.load(Relaxed);
                for (d, cd) in total.drops.iter_mut().zip(&c.drops) {
                    *d += cd.load(Relaxed);
                }
            }
            per_lcore.push(LcoreTotals {
                lcore: lc.lcore,
                rx_packets: rx,
                busy_cycles: lc.busy_cycles.load(Relaxed),
                busy_packets: lc.busy_packets.load(Relaxed),
            });
        }
        Snapshot {
            tsc,
            ports,
            lcores: per_lcore,
        }
    }

    pub fn rx_total(&self) -> u64 {
        self.ports.iter().map(|p| p.rx_packets).sum()
    }
    pub fn tx_total(&self) -> u64 {
        self.ports.iter().map(|p| p.tx_packets).sum()
    }
    pub fn drops_total(&self) -> u64 {
        self.ports.iter().map(|p| p.drops_total()).sum()
    }
    pub fn busy_cycles_per_packet(&self) -> f64 {
        let cycles: u64 = self.lcores.iter().map(|l| l.busy_cycles).sum();
        let pkts: u64 = self.lcores.iter().map(|l| l.busy_packets).sum();
        if pkts == 0 {
            0.0
        } else {
            cycles as f64 / pkts as f64
        }
    }
}

/// The stats file written at exit (`--stats-json`). Field names are a
/// contract with `bench/run.sh`, the tests and the docs.
#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub pipeline: String,
    pub burst_size: u16,
    pub duration_secs: f64,
    pub tsc_hz: u64,
    pub ports: Vec<PortReport>,
    pub lcores: Vec<LcoreReport>,
    pub totals: TotalsReport,
}

#[derive(Debug, Serialize)]
pub struct PortReport {
    pub port: u16,
    pub name: String,
    pub driver: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: std::collections::BTreeMap<&'static str, u64>,
    pub drops_total: u64,
    /// What the driver itself counted, including packets it dropped before
    /// the appliance saw them (`rx_missed`, `rx_nombuf`).
    pub nic: NicReport,
}

#[derive(Debug, Serialize)]
pub struct NicReport {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_missed: u64,
    pub rx_nombuf: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

#[derive(Debug, Serialize)]
pub struct LcoreReport {
    pub lcore: u32,
    pub rx_packets: u64,
    pub busy_cycles: u64,
    pub cycles_per_packet: f64,
}

#[derive(Debug, Serialize)]
pub struct TotalsReport {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub drops_total: u64,
    /// Transmitted packets per second over the forwarding time, in millions.
    pub mpps: f64,
    pub cycles_per_packet: f64,
    /// `rx_packets == tx_packets + drops_total`.
    pub balanced: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn snapshot_sums_lcores_and_balances() {
        let a = Arc::new(LcoreCounters::new(1, 2));
        let b = Arc::new(LcoreCounters::new(2, 2));
        bump(&a.ports[0].rx_packets, 10);
        bump(&a.ports[1].tx_packets, 8);
        bump(&a.ports[0].drops[DropReason::TxQueueFull as usize], 2);
        bump(&b.ports[1].rx_packets, 5);
        bump(&b.ports[0].tx_packets, 5);
        bump(&b.busy_cycles, 500);
        bump(&b.busy_packets, 5);
        let s = Snapshot::take(0, 2, &[a, b]);
        assert_eq!(s.rx_total(), 15);
        assert_eq!(s.tx_total(), 13);
        assert_eq!(s.drops_total(), 2);
        assert_eq!(s.rx_total(), s.tx_total() + s.drops_total());
        assert_eq!(s.ports[0].drops_total(), 2);
        assert_eq!(s.lcores[0].rx_packets, 10);
        assert_eq!(s.lcores[1].cycles_per_packet(), 100.0);
    }

    #[test]
    fn drop_reason_names_are_unique_snake_case() {
        let names: std::collections::BTreeSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(
                *r as usize, i,
                "ALL must list reasons in discriminant order"
            );
            assert!(r.name().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}
