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

pub use counters::{bump, quantile, LatencyHistogram, SampleRing, LATENCY_BUCKETS_US};

/// Why a packet was dropped. Append new reasons at the end; the names are
/// part of the stats JSON and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// The egress TX queue had no room for the packet.
    TxQueueFull,
    /// A reply to one of our own probes: consumed by the appliance (handed
    /// to the probe thread), not forwarded.
    ProbeReplyConsumed,
    /// A probe reply arrived while the hand-off queue to the probe thread
    /// was full.
    ProbeQueueFull,
    /// A request to a service that no live, capable instance can serve.
    NoInstance,
    /// The NAT rewrite was refused (address family mismatch, IPv6 routing
    /// header, truncated frame).
    RewriteFailed,
    /// The egress scheduler's band for the packet's class was full.
    SchedQueueFull,
    /// Still queued for a busy egress port when the appliance stopped.
    ShutdownBacklog,
    /// A RoCEv2 packet whose ICRC does not match its contents.
    IcrcBad,
    /// A RoCEv2 packet too short or too odd to check its ICRC.
    IcrcUnreadable,
    /// Its TTL (hop limit) would reach 0 at this hop (router mode).
    TtlExpired,
    /// An overlay (Geneve) frame with a malformed outer header.
    OverlayMalformed,
    /// An overlay frame whose inner frame does not parse.
    InnerUnparsable,
    /// No usable overlay path for the packet.
    NoPath,
    /// The encapsulation did not fit the packet's headroom.
    EncapNoRoom,
    /// A sliced packet behind its stream's delivery point (already skipped
    /// as lost, or a replay).
    ReorderLate,
    /// A sliced packet the reorder buffer already holds.
    ReorderDuplicate,
    /// No reorder stream was free for a new stream.
    ReorderNoStream,
    /// The ring to the worker that owns the packet's flow was full.
    HandoffFull,
    /// `steer`: a fragment held for its datagram's first fragment, which
    /// did not come within the fragment timeout.
    FragmentTimeout,
    /// `steer`: a fragment that came before its datagram's first when the
    /// hold was full (for the datagram or the worker).
    FragmentHoldFull,
    /// `steer`: a later fragment whose datagram had no entry, with the
    /// fragment table full.
    FragmentTableFull,
    /// `steer`: taken by the appliance itself, not forwarded: a TLV-less
    /// SYN answered with a cookie, request bytes buffered for delayed
    /// binding, the instance's SYN-ACK and ACKs of the replay.
    SpliceConsumed,
    /// `steer`: a client segment delayed binding did not take (out of
    /// order, or before the instance answered); the client retransmits.
    SpliceRefused,
}

impl DropReason {
    pub const ALL: [DropReason; 23] = [
        DropReason::TxQueueFull,
        DropReason::ProbeReplyConsumed,
        DropReason::ProbeQueueFull,
        DropReason::NoInstance,
        DropReason::RewriteFailed,
        DropReason::SchedQueueFull,
        DropReason::ShutdownBacklog,
        DropReason::IcrcBad,
        DropReason::IcrcUnreadable,
        DropReason::TtlExpired,
        DropReason::OverlayMalformed,
        DropReason::InnerUnparsable,
        DropReason::NoPath,
        DropReason::EncapNoRoom,
        DropReason::ReorderLate,
        DropReason::ReorderDuplicate,
        DropReason::ReorderNoStream,
        DropReason::HandoffFull,
        DropReason::FragmentTimeout,
        DropReason::FragmentHoldFull,
        DropReason::FragmentTableFull,
        DropReason::SpliceConsumed,
        DropReason::SpliceRefused,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            DropReason::TxQueueFull => "tx_queue_full",
            DropReason::ProbeReplyConsumed => "probe_reply_consumed",
            DropReason::ProbeQueueFull => "probe_queue_full",
            DropReason::NoInstance => "no_instance",
            DropReason::RewriteFailed => "rewrite_failed",
            DropReason::SchedQueueFull => "sched_queue_full",
            DropReason::ShutdownBacklog => "shutdown_backlog",
            DropReason::IcrcBad => "icrc_bad",
            DropReason::IcrcUnreadable => "icrc_unreadable",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::OverlayMalformed => "overlay_malformed",
            DropReason::InnerUnparsable => "inner_unparsable",
            DropReason::NoPath => "no_path",
            DropReason::EncapNoRoom => "encap_no_room",
            DropReason::ReorderLate => "reorder_late",
            DropReason::ReorderDuplicate => "reorder_duplicate",
            DropReason::ReorderNoStream => "reorder_no_stream",
            DropReason::HandoffFull => "handoff_full",
            DropReason::FragmentTimeout => "fragment_timeout",
            DropReason::FragmentHoldFull => "fragment_hold_full",
            DropReason::FragmentTableFull => "fragment_table_full",
            DropReason::SpliceConsumed => "splice_consumed",
            DropReason::SpliceRefused => "splice_refused",
        }
    }
}

/// What the policy stage decided for a packet. Packets are never dropped
/// for a decision; these count how each was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Decision {
    /// A forwarding entry matched and a fresh path was chosen.
    Steered,
    /// An entry matched but no candidate path had fresh state: sent on the
    /// entry's first path, as configured.
    StaleFallback,
    /// No forwarding entry matched: forwarded to the pair's peer unchanged.
    NoEntry,
    /// Not a parseable IP packet: forwarded to the pair's peer unchanged.
    Unparsed,
    /// The chosen path's egress port is not one this appliance runs: sent to
    /// the pair's peer instead.
    BadEgress,
    /// A probe request from another appliance, turned around (reflector).
    ProbeReflected,
}

impl Decision {
    pub const ALL: [Decision; 6] = [
        Decision::Steered,
        Decision::StaleFallback,
        Decision::NoEntry,
        Decision::Unparsed,
        Decision::BadEgress,
        Decision::ProbeReflected,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            Decision::Steered => "steered",
            Decision::StaleFallback => "stale_fallback",
            Decision::NoEntry => "no_entry",
            Decision::Unparsed => "unparsed",
            Decision::BadEgress => "bad_egress",
            Decision::ProbeReflected => "probe_reflected",
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
    /// Packets the appliance built and sent on this port (not received:
    /// delayed binding's segments), so rx + generated = tx + drops.
    pub generated_packets: AtomicU64,
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
    /// Packets this worker received but handed to the worker owning their
    /// flow.
    pub handoffs: AtomicU64,
    /// TSC when the worker loop started and ended (0 while not yet).
    pub loop_start_tsc: AtomicU64,
    pub loop_end_tsc: AtomicU64,
    /// Idle passes: loop iterations that polled every RX queue and the
    /// handoff ring, found nothing, sent nothing and held nothing. Counted
    /// only when idle, so it costs a busy worker nothing; `run
    /// --until-idle` reads it to know the worker really looked.
    pub idle_polls: AtomicU64,
    /// Policy decisions, by kind.
    pub decisions: [AtomicU64; Decision::COUNT],
    /// Control-state version this worker last used.
    pub seen_version: AtomicU64,
    /// Update-to-visible latency: from a control message's origin time to
    /// the first burst that used the state it produced (µs).
    pub visible_us: SampleRing,
    /// The same latency, as a monotonic histogram for metrics.
    pub visible_hist: LatencyHistogram,
}

impl LcoreCounters {
    pub fn new(lcore: u32, ports: usize) -> Self {
        LcoreCounters {
            lcore,
            ports: (0..ports).map(|_| PortCounters::default()).collect(),
            busy_cycles: AtomicU64::new(0),
            busy_packets: AtomicU64::new(0),
            handoffs: AtomicU64::new(0),
            loop_start_tsc: AtomicU64::new(0),
            loop_end_tsc: AtomicU64::new(0),
            idle_polls: AtomicU64::new(0),
            decisions: Default::default(),
            seen_version: AtomicU64::new(0),
            visible_us: SampleRing::new(),
            visible_hist: LatencyHistogram::new(),
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
    pub generated_packets: u64,
}

impl PortTotals {
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Drops keyed by reason name, as the report, queries and metrics show them.
    pub fn drops_by_name(&self) -> std::collections::BTreeMap<&'static str, u64> {
        DropReason::ALL
            .iter()
            .map(|r| (r.name(), self.drops[*r as usize]))
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LcoreTotals {
    pub lcore: u32,
    pub rx_packets: u64,
    pub busy_cycles: u64,
    pub busy_packets: u64,
    pub handoffs: u64,
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
                total.generated_packets += c.generated_packets.load(Relaxed);
                for (d, cd) in total.drops.iter_mut().zip(&c.drops) {
                    *d += cd.load(Relaxed);
                }
            }
            per_lcore.push(LcoreTotals {
                lcore: lc.lcore,
                rx_packets: rx,
                busy_cycles: lc.busy_cycles.load(Relaxed),
                busy_packets: lc.busy_packets.load(Relaxed),
                handoffs: lc.handoffs.load(Relaxed),
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
    /// Packets the appliance built itself (delayed binding's segments).
    pub fn generated_total(&self) -> u64 {
        self.ports.iter().map(|p| p.generated_packets).sum()
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
    /// Policy decisions by outcome (all zero without forwarding entries).
    pub decisions: std::collections::BTreeMap<&'static str, u64>,
    /// Control-plane counters and update-to-visible latency; absent without
    /// `[control]`.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub control: serde_json::Value,
    /// Steering: feature sources, decisions, flows, predicted and observed
    /// latency per class; absent without `pipeline = "steer"`.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub steer: serde_json::Value,
    /// The tensor pipeline's counters (null without it).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub tensor: serde_json::Value,
    /// The packet pool: size, and mbufs in use with the ports started but
    /// before the workers ran, and after they stopped and drained.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub mempool: serde_json::Value,
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
    /// Of `tx_packets`, built by the appliance itself.
    pub generated_packets: u64,
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
    /// Of those, handed to the worker that owns their flow.
    pub handoffs: u64,
    pub busy_cycles: u64,
    pub cycles_per_packet: f64,
}

#[derive(Debug, Serialize)]
pub struct TotalsReport {
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Of `tx_packets`, built by the appliance itself (delayed binding's
    /// SYN-ACKs, ACKs, SYNs and replays).
    pub generated_packets: u64,
    pub drops_total: u64,
    /// Transmitted packets per second over the forwarding time, in millions.
    pub mpps: f64,
    pub cycles_per_packet: f64,
    /// `rx_packets + generated_packets == tx_packets + drops_total`.
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
    fn sample_ring_keeps_the_latest_and_quantiles() {
        let r = SampleRing::new();
        assert!(r.snapshot().is_empty());
        for v in 0..(SampleRing::CAPACITY as u32 + 10) {
            r.record(v);
        }
        assert_eq!(r.count(), SampleRing::CAPACITY as u64 + 10);
        let mut s = r.snapshot();
        assert_eq!(s.len(), SampleRing::CAPACITY);
        assert!(s.contains(&(SampleRing::CAPACITY as u32 + 9)) && !s.contains(&5));
        assert_eq!(quantile(&mut s, 1.0), Some(SampleRing::CAPACITY as u32 + 9));
        assert_eq!(quantile(&mut [5, 1, 3], 0.5), Some(3));
        assert_eq!(quantile(&mut [], 0.5), None);
    }

    #[test]
    fn histogram_is_cumulative() {
        let h = LatencyHistogram::new();
        for us in [5, 10, 11, 700, 5_000_000] {
            h.record(us);
        }
        let (b, count, sum) = h.read();
        assert_eq!(count, 5);
        assert_eq!(sum, 5 + 10 + 11 + 700 + 5_000_000);
        assert_eq!(b[0], 2, "<= 10 us");
        assert_eq!(b[1], 3, "<= 25 us");
        assert_eq!(b[6], 4, "<= 1 ms");
        assert_eq!(*b.last().unwrap(), 4, "5 s is only in +Inf");
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
