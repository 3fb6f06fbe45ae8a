//! Deterministic synthetic traces of [`FeatureRecord`]s, to measure the
//! predictor core ([`crate::predict`]) on something shaped like
//! data-parallel training.
//!
//! Why generated and not captured: the accuracy of the predictor must be
//! reproducible bit for bit (in tests, in the performance doc, on any
//! machine), and a capture of a real cluster is neither small nor
//! shareable. The generator is seeded and uses its own splitmix64, so the
//! same [`TraceConfig`] always yields the same records.
//!
//! What a trace holds, per [`TraceConfig`]:
//!
//! * **Iterations.** Time is cut into training iterations of nominal
//!   length `iteration_period_ns`, each one lengthened or shortened by a
//!   uniform factor in `±period_jitter`. An iteration is a compute gap
//!   followed by an all-reduce burst of `burst_duration_ns` at its end.
//!   The burst moves about `burst_bytes` (±5 % per iteration) spread
//!   evenly over the `ports` egress ports, two QPs per port, as gradient
//!   traffic of LARGE_FLOW QPs with `gradient_sync` set, in runs of 32
//!   frames of 4150 bytes (a 4096-byte RoCEv2 MTU payload with headers).
//! * **Period changes.** The trace is cut into `period_changes + 1` equal
//!   segments; odd segments use `iteration_period_ns ·
//!   period_change_factor` (say a different model or batch size), even
//!   ones the nominal period. [`nominal_period_ns`] tells which applies.
//! * **Background.** Per port, `background_bps` of ordinary bulk traffic
//!   (runs of 8..32 frames of 1500 bytes, Poisson arrivals, LARGE_FLOW,
//!   tensor type normal) and a trickle of control traffic (runs of 1..2
//!   frames of 256 bytes, SMALL_FLOW) at `control_bps`.
//! * **Congestion events.** `congestion_events` incidents at random times,
//!   each on one random port, adding `congestion_bps` of bulk traffic for
//!   2..5 ms: unpredictable load that no model should foresee.
//!
//! Each record's `queue_depth` comes from a fluid model of its egress
//! port at `port_capacity_bps` (backlog drains at capacity, each run adds
//! its bytes), expressed in frames of the run's size, as the worker would
//! read it from the port's queue. Nodes are assigned per QP
//! (`(port + qp) mod nodes`), paths per port (`port` if below `paths`).

use crate::feature::{FeatureRecord, SemanticFeatures, SemanticSource, TensorType};
use crate::qp_state::QpState;

/// Frame size of bulk RoCEv2 runs: a 4096-byte payload with headers.
pub const BULK_FRAME_BYTES: u32 = 4150;
/// Frames per coalesced run at most (the worker's burst size).
pub const MAX_RUN_PACKETS: u16 = 32;

/// What to generate; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceConfig {
    /// Seed of the generator.
    pub seed: u64,
    /// Length of the trace, ns.
    pub duration_ns: u64,
    /// Nominal training iteration, ns.
    pub iteration_period_ns: u64,
    /// Each iteration's length varies uniformly by ± this fraction.
    pub period_jitter: f64,
    /// Bytes of one all-reduce burst, over all ports.
    pub burst_bytes: u64,
    /// Duration of one burst, ns.
    pub burst_duration_ns: u64,
    /// Bulk background traffic per port, bits/s.
    pub background_bps: f64,
    /// Control (small-flow) traffic per port, bits/s.
    pub control_bps: f64,
    /// Egress ports used (1..=8).
    pub ports: u8,
    /// Paths (path `i` leaves by port `i`).
    pub paths: u8,
    /// Target nodes.
    pub nodes: u16,
    /// Capacity of each port for the queue model, bits/s.
    pub port_capacity_bps: f64,
    /// Unpredictable load incidents.
    pub congestion_events: u32,
    /// Extra load of one incident, bits/s.
    pub congestion_bps: f64,
    /// Times the iteration period changes.
    pub period_changes: u32,
    /// Factor applied to the period in odd segments.
    pub period_change_factor: f64,
}

impl Default for TraceConfig {
    /// One second of 4-port data-parallel training: 3 ms iterations with
    /// 2 % jitter, 48 MB bursts over 1 ms (≈ 96 Gbit/s per port at peak on
    /// 100 Gbit/s ports), 4 Gbit/s background and 50 Mbit/s control per
    /// port, 20 congestion incidents of 30 Gbit/s, one period change to
    /// 4 ms half-way.
    fn default() -> Self {
        Self {
            seed: 1,
            duration_ns: 1_000_000_000,
            iteration_period_ns: 3_000_000,
            period_jitter: 0.02,
            burst_bytes: 48_000_000,
            burst_duration_ns: 1_000_000,
            background_bps: 4.0e9,
            control_bps: 5.0e7,
            ports: 4,
            paths: 4,
            nodes: 4,
            port_capacity_bps: 100.0e9,
            congestion_events: 20,
            congestion_bps: 30.0e9,
            period_changes: 1,
            period_change_factor: 4.0 / 3.0,
        }
    }
}

/// splitmix64: tiny, fast, and good enough for traffic shapes.
#[derive(Debug, Clone, Copy)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi].
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Exponential with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// The nominal iteration period in force at `t_ns` (before jitter).
pub fn nominal_period_ns(cfg: &TraceConfig, t_ns: u64) -> u64 {
    let segments = u64::from(cfg.period_changes) + 1;
    let seg_len = (cfg.duration_ns / segments).max(1);
    let segment = t_ns / seg_len;
    if segment % 2 == 1 {
        (cfg.iteration_period_ns as f64 * cfg.period_change_factor) as u64
    } else {
        cfg.iteration_period_ns
    }
}

struct Builder {
    records: Vec<FeatureRecord>,
    nodes: u16,
    paths: u8,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        t_ns: u64,
        port: u8,
        qp: u32,
        state: QpState,
        tensor_type: TensorType,
        packets: u16,
        frame: u32,
    ) {
        let node = if self.nodes == 0 {
            u16::MAX
        } else {
            ((u32::from(port) + qp) % u32::from(self.nodes)) as u16
        };
        let gradient = tensor_type == TensorType::Gradient;
        self.records.push(FeatureRecord {
            t_ns,
            qp,
            node,
            ingress_port: port,
            egress_port: port,
            path: if port < self.paths { port } else { u8::MAX },
            state,
            semantic: SemanticFeatures {
                tensor_type,
                batch_position: 0,
                pipeline_stage: 0,
                gradient_sync: gradient,
                source: if gradient {
                    SemanticSource::Tlv
                } else {
                    SemanticSource::Heuristic
                },
            },
            packets,
            bytes: u32::from(packets) * frame,
            queue_depth: 0,
            rate_mbps: 0,
        });
    }

    /// Runs of `frame`-byte frames carrying `bytes` evenly over
    /// `[start, end)` on one QP.
    #[allow(clippy::too_many_arguments)]
    fn paced(
        &mut self,
        rng: &mut SplitMix,
        start: u64,
        end: u64,
        bytes: u64,
        port: u8,
        qp: u32,
        tensor_type: TensorType,
        frame: u32,
    ) {
        let run_bytes = u64::from(MAX_RUN_PACKETS) * u64::from(frame);
        let runs = bytes.div_ceil(run_bytes).max(1);
        let span = end.saturating_sub(start).max(1);
        let step = span as f64 / runs as f64;
        let mut left = bytes;
        let rate_mbps = (bytes as f64 * 8.0 * 1e3 / span as f64).min(f64::from(u32::MAX)) as u32;
        for i in 0..runs {
            let frames = left
                .div_ceil(u64::from(frame))
                .clamp(1, u64::from(MAX_RUN_PACKETS));
            left = left.saturating_sub(frames * u64::from(frame));
            // Up to a quarter step of jitter keeps runs of different QPs
            // from landing on the same nanosecond.
            let t = start as f64 + step * (i as f64 + 0.25 * rng.unit());
            let state = if i + 1 == runs {
                QpState::Draining
            } else {
                QpState::LargeFlow
            };
            self.push(t as u64, port, qp, state, tensor_type, frames as u16, frame);
            if let Some(r) = self.records.last_mut() {
                r.rate_mbps = rate_mbps;
            }
        }
    }
}

/// Generates the trace described by `cfg`, sorted by time. Deterministic:
/// the same `cfg` gives the same records.
pub fn generate(cfg: &TraceConfig) -> Vec<FeatureRecord> {
    let mut rng = SplitMix(cfg.seed ^ 0x5851_f42d_4c95_7f2d);
    let ports = cfg.ports.clamp(1, 8);
    let mut b = Builder {
        records: Vec::new(),
        nodes: cfg.nodes,
        paths: cfg.paths,
    };
    let jitter = cfg.period_jitter.clamp(0.0, 0.5);

    // Iterations: compute gap, then the burst at the iteration's end.
    let mut t = 0u64;
    while t < cfg.duration_ns {
        let nominal = nominal_period_ns(cfg, t).max(1);
        let factor = 1.0 + jitter * (2.0 * rng.unit() - 1.0);
        let len = ((nominal as f64 * factor) as u64).max(1);
        let burst = cfg.burst_duration_ns.min(len);
        let start = t + len - burst;
        let scale = 0.95 + 0.1 * rng.unit();
        let per_qp = (cfg.burst_bytes as f64 * scale / (2.0 * f64::from(ports))) as u64;
        for port in 0..ports {
            for k in 0..2u32 {
                let qp = u32::from(port) * 2 + k;
                b.paced(
                    &mut rng,
                    start,
                    start + burst,
                    per_qp,
                    port,
                    qp,
                    TensorType::Gradient,
                    BULK_FRAME_BYTES,
                );
            }
        }
        t += len;
    }

    // Background bulk and control traffic, Poisson per port.
    for port in 0..ports {
        let mut qp_seq = 0u32;
        if cfg.background_bps > 0.0 {
            let mean_run_bits = 20.0 * 1500.0 * 8.0;
            let mean_gap = 1e9 * mean_run_bits / cfg.background_bps;
            let mut t = rng.exp(mean_gap);
            while t < cfg.duration_ns as f64 {
                let frames = rng.range(8, 32) as u16;
                let qp = 1000 + u32::from(port) * 64 + (qp_seq % 64);
                qp_seq = qp_seq.wrapping_add(1);
                b.push(
                    t as u64,
                    port,
                    qp,
                    QpState::LargeFlow,
                    TensorType::Normal,
                    frames,
                    1500,
                );
                t += rng.exp(mean_gap);
            }
        }
        if cfg.control_bps > 0.0 {
            let mean_gap = 1e9 * 1.5 * 256.0 * 8.0 / cfg.control_bps;
            let mut t = rng.exp(mean_gap);
            while t < cfg.duration_ns as f64 {
                let frames = rng.range(1, 2) as u16;
                let qp = 2000 + u32::from(port) * 16 + (qp_seq % 16);
                qp_seq = qp_seq.wrapping_add(1);
                b.push(
                    t as u64,
                    port,
                    qp,
                    QpState::SmallFlow,
                    TensorType::Normal,
                    frames,
                    256,
                );
                t += rng.exp(mean_gap);
            }
        }
    }

    // Congestion incidents.
    for e in 0..cfg.congestion_events {
        let start = rng.range(0, cfg.duration_ns.saturating_sub(1));
        let len = rng.range(2_000_000, 5_000_000);
        let port = (rng.next_u64() % u64::from(ports)) as u8;
        let bytes = (cfg.congestion_bps * len as f64 / 8e9) as u64;
        let end = (start + len).min(cfg.duration_ns);
        b.paced(
            &mut rng,
            start,
            end,
            bytes,
            port,
            3000 + e,
            TensorType::Normal,
            1500,
        );
    }

    let mut records = b.records;
    records.retain(|r| r.t_ns < cfg.duration_ns);
    records.sort_by_key(|r| (r.t_ns, r.egress_port, r.qp));
    apply_queue_model(&mut records, cfg.port_capacity_bps);
    records
}

/// Fills `queue_depth` from a fluid queue per port (module docs).
fn apply_queue_model(records: &mut [FeatureRecord], capacity_bps: f64) {
    let mut backlog = [0.0f64; 256];
    let mut last = [0u64; 256];
    let bytes_per_ns = (capacity_bps / 8e9).max(0.0);
    for r in records.iter_mut() {
        let p = usize::from(r.egress_port);
        if let (Some(q), Some(l)) = (backlog.get_mut(p), last.get_mut(p)) {
            let drained = r.t_ns.saturating_sub(*l) as f64 * bytes_per_ns;
            *q = (*q - drained).max(0.0);
            *l = r.t_ns;
            let frame = f64::from(r.bytes) / f64::from(r.packets.max(1));
            r.queue_depth = (*q / frame.max(1.0)).min(f64::from(u32::MAX)) as u32;
            *q += f64::from(r.bytes);
        }
    }
}
