//! What the tensor pipeline counts. One writer per counter (the worker, or
//! the predictor thread for its own section), read by the main lcore, the
//! stats query and `/metrics`; every update is a relaxed store ([`bump`]).
//!
//! Named by what happened, VPP-style: QP state transitions, where semantic
//! features came from, metadata TLVs accepted and refused (by reason), the
//! feature FIFO, the overlay (slices, paths, reordering) and the
//! scheduler's classes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{json, Map, Value};
use tensor::{QpState, SemanticSource, TensorType};

use crate::stats::{bump, quantile, SampleRing};

/// The four QP states, in table order.
pub const STATES: [QpState; 4] = [
    QpState::Unallocated,
    QpState::SmallFlow,
    QpState::LargeFlow,
    QpState::Draining,
];

pub fn state_index(s: QpState) -> usize {
    match s {
        QpState::Unallocated => 0,
        QpState::SmallFlow => 1,
        QpState::LargeFlow => 2,
        QpState::Draining => 3,
    }
}

/// A packet's scheduling class on its egress port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SchedClass {
    /// SMALL_FLOW below the rate split: strict band 0.
    SmallSlow = 0,
    /// SMALL_FLOW at or above it: strict band 1.
    SmallFast = 1,
    /// DRAINING: strict band 2, flushed ahead of every LARGE flow.
    Draining = 2,
    /// LARGE_FLOW: WDRR by the target's compute power.
    Large = 3,
    /// Not RoCEv2, no QP state, or metadata that failed authentication:
    /// WDRR at weight 1.
    BestEffort = 4,
}

impl SchedClass {
    pub const ALL: [SchedClass; 5] = [
        SchedClass::SmallSlow,
        SchedClass::SmallFast,
        SchedClass::Draining,
        SchedClass::Large,
        SchedClass::BestEffort,
    ];
    pub const COUNT: usize = 5;
    /// Classes served by strict priority, in band order.
    pub const STRICT: usize = 3;

    pub const fn name(self) -> &'static str {
        match self {
            SchedClass::SmallSlow => "small_slow",
            SchedClass::SmallFast => "small_fast",
            SchedClass::Draining => "draining",
            SchedClass::Large => "large",
            SchedClass::BestEffort => "best_effort",
        }
    }
}

/// Metadata TLV outcomes at decapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum MetaOutcome {
    /// Authenticated and used.
    Accepted,
    /// The MAC did not match (tampered or forged): ignored, best effort.
    BadMac,
    /// Signed with a key id this appliance does not hold.
    UnknownKey,
    /// IntelliNode options without a MAC.
    MissingMac,
    /// Malformed options (bad length, unknown critical type, ...).
    Malformed,
}

impl MetaOutcome {
    pub const ALL: [MetaOutcome; 5] = [
        MetaOutcome::Accepted,
        MetaOutcome::BadMac,
        MetaOutcome::UnknownKey,
        MetaOutcome::MissingMac,
        MetaOutcome::Malformed,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            MetaOutcome::Accepted => "accepted",
            MetaOutcome::BadMac => "bad_mac",
            MetaOutcome::UnknownKey => "unknown_key",
            MetaOutcome::MissingMac => "missing_mac",
            MetaOutcome::Malformed => "malformed",
        }
    }
}

/// Everything else, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Event {
    QpNew,
    QpTableFull,
    QpExpired,
    FifoPushed,
    FifoFull,
    EcnMarked,
    TtlDecremented,
    IcrcChecked,
    Encapsulated,
    Decapsulated,
    MessagesSliced,
    Slices,
    ReorderInOrder,
    ReorderHeld,
    ReorderLost,
    ReorderTimeouts,
    UnsequencedDelivered,
    CapabilityLearned,
    OffloadDecided,
    OffloadDeclined,
}

impl Event {
    pub const ALL: [Event; 20] = [
        Event::QpNew,
        Event::QpTableFull,
        Event::QpExpired,
        Event::FifoPushed,
        Event::FifoFull,
        Event::EcnMarked,
        Event::TtlDecremented,
        Event::IcrcChecked,
        Event::Encapsulated,
        Event::Decapsulated,
        Event::MessagesSliced,
        Event::Slices,
        Event::ReorderInOrder,
        Event::ReorderHeld,
        Event::ReorderLost,
        Event::ReorderTimeouts,
        Event::UnsequencedDelivered,
        Event::CapabilityLearned,
        Event::OffloadDecided,
        Event::OffloadDeclined,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub const fn name(self) -> &'static str {
        match self {
            Event::QpNew => "qp_new",
            Event::QpTableFull => "qp_table_full",
            Event::QpExpired => "qp_expired",
            Event::FifoPushed => "feature_fifo_pushed",
            Event::FifoFull => "feature_fifo_full",
            Event::EcnMarked => "ecn_marked",
            Event::TtlDecremented => "ttl_decremented",
            Event::IcrcChecked => "icrc_checked",
            Event::Encapsulated => "encapsulated",
            Event::Decapsulated => "decapsulated",
            Event::MessagesSliced => "messages_sliced",
            Event::Slices => "slices",
            Event::ReorderInOrder => "reorder_in_order",
            Event::ReorderHeld => "reorder_held",
            Event::ReorderLost => "reorder_lost",
            Event::ReorderTimeouts => "reorder_timeouts",
            Event::UnsequencedDelivered => "unsequenced_delivered",
            Event::CapabilityLearned => "capability_learned",
            Event::OffloadDecided => "offload_decided",
            Event::OffloadDeclined => "offload_declined",
        }
    }
}

/// What the predictor thread reports about itself.
#[derive(Default)]
pub struct PredictorCounters {
    pub records: AtomicU64,
    pub snapshots: AtomicU64,
    /// Mean absolute error of the 1 ms and 5 ms load forecasts, and of the
    /// last-value baseline, bits/s (stored as integers).
    pub mae_1ms_bps: AtomicU64,
    pub mae_1ms_last_value_bps: AtomicU64,
    pub mae_5ms_bps: AtomicU64,
    pub mae_5ms_last_value_bps: AtomicU64,
    pub period_ns: AtomicU64,
    pub next_burst_ns: AtomicU64,
}

pub struct TensorCounters {
    /// `transitions[from][to]`.
    pub transitions: [[AtomicU64; 4]; 4],
    pub semantic: [AtomicU64; 3],
    pub tensor_types: [AtomicU64; TensorType::COUNT],
    pub metadata: [AtomicU64; 5],
    pub events: [AtomicU64; Event::COUNT],
    /// Packets and bytes per path id slot (index into the configured paths).
    pub path_packets: Vec<AtomicU64>,
    pub path_bytes: Vec<AtomicU64>,
    /// Per port and class: packets queued, and bytes sent.
    pub class_packets: Vec<[AtomicU64; SchedClass::COUNT]>,
    pub class_tx_bytes: Vec<[AtomicU64; SchedClass::COUNT]>,
    /// Time in the scheduler per class, µs.
    pub sojourn_us: [SampleRing; SchedClass::COUNT],
    pub predictor: PredictorCounters,
}

impl TensorCounters {
    pub fn new(paths: usize, ports: usize) -> TensorCounters {
        TensorCounters {
            transitions: Default::default(),
            semantic: Default::default(),
            tensor_types: Default::default(),
            metadata: Default::default(),
            events: Default::default(),
            path_packets: (0..paths).map(|_| AtomicU64::new(0)).collect(),
            path_bytes: (0..paths).map(|_| AtomicU64::new(0)).collect(),
            class_packets: (0..ports).map(|_| Default::default()).collect(),
            class_tx_bytes: (0..ports).map(|_| Default::default()).collect(),
            sojourn_us: Default::default(),
            predictor: PredictorCounters::default(),
        }
    }

    #[inline]
    pub fn event(&self, e: Event) {
        bump(&self.events[e as usize], 1);
    }

    #[inline]
    pub fn events(&self, e: Event, n: u64) {
        if n > 0 {
            bump(&self.events[e as usize], n);
        }
    }

    #[inline]
    pub fn transition(&self, from: QpState, to: QpState) {
        if let Some(c) = self
            .transitions
            .get(state_index(from))
            .and_then(|r| r.get(state_index(to)))
        {
            bump(c, 1);
        }
    }

    #[inline]
    pub fn semantic(&self, source: SemanticSource, t: TensorType) {
        bump(&self.semantic[source as usize], 1);
        bump(&self.tensor_types[t as usize], 1);
    }

    #[inline]
    pub fn metadata(&self, o: MetaOutcome) {
        bump(&self.metadata[o as usize], 1);
    }

    pub fn get(&self, e: Event) -> u64 {
        self.events[e as usize].load(Relaxed)
    }

    /// The stats JSON `tensor` section.
    pub fn to_json(&self, path_ids: &[u8]) -> Value {
        let mut transitions = Map::new();
        for (i, from) in STATES.iter().enumerate() {
            for (j, to) in STATES.iter().enumerate() {
                let n = self.transitions[i][j].load(Relaxed);
                if n > 0 {
                    transitions.insert(format!("{from}->{to}"), json!(n));
                }
            }
        }
        let sources = ["heuristic", "tlv", "forged"];
        let semantic: Map<String, Value> = sources
            .iter()
            .zip(&self.semantic)
            .map(|(n, c)| ((*n).to_owned(), json!(c.load(Relaxed))))
            .collect();
        let types: Map<String, Value> = TensorType::ALL
            .iter()
            .zip(&self.tensor_types)
            .map(|(t, c)| (t.name().to_owned(), json!(c.load(Relaxed))))
            .collect();
        let metadata: Map<String, Value> = MetaOutcome::ALL
            .iter()
            .zip(&self.metadata)
            .map(|(o, c)| (o.name().to_owned(), json!(c.load(Relaxed))))
            .collect();
        let events: Map<String, Value> = Event::ALL
            .iter()
            .zip(&self.events)
            .map(|(e, c)| (e.name().to_owned(), json!(c.load(Relaxed))))
            .collect();
        let paths: Vec<Value> = path_ids
            .iter()
            .zip(self.path_packets.iter().zip(&self.path_bytes))
            .map(|(id, (p, b))| json!({"id": id, "packets": p.load(Relaxed), "bytes": b.load(Relaxed)}))
            .collect();
        let ports: Vec<Value> = self
            .class_packets
            .iter()
            .zip(&self.class_tx_bytes)
            .enumerate()
            .filter(|(_, (p, _))| p.iter().any(|c| c.load(Relaxed) > 0))
            .map(|(port, (p, b))| {
                let classes: Map<String, Value> = SchedClass::ALL
                    .iter()
                    .map(|c| {
                        (
                            c.name().to_owned(),
                            json!({
                                "queued": p[*c as usize].load(Relaxed),
                                "tx_bytes": b[*c as usize].load(Relaxed),
                            }),
                        )
                    })
                    .collect();
                json!({"port": port, "classes": classes})
            })
            .collect();
        let sojourn: Map<String, Value> = SchedClass::ALL
            .iter()
            .map(|c| {
                let mut s = self.sojourn_us[*c as usize].snapshot();
                (
                    c.name().to_owned(),
                    json!({
                        "samples": s.len(),
                        "p50": quantile(&mut s, 0.5),
                        "p99": quantile(&mut s, 0.99),
                        "max": quantile(&mut s, 1.0),
                    }),
                )
            })
            .collect();
        let pushed = self.get(Event::FifoPushed);
        let full = self.get(Event::FifoFull);
        let offered = pushed + full;
        let p = &self.predictor;
        json!({
            "qp_transitions": transitions,
            "semantic_sources": semantic,
            "tensor_types": types,
            "metadata": metadata,
            "events": events,
            "feature_fifo_drop_rate": if offered == 0 { 0.0 } else { full as f64 / offered as f64 },
            "paths": paths,
            "ports": ports,
            "sojourn_us": sojourn,
            "predictor": {
                "records": p.records.load(Relaxed),
                "snapshots": p.snapshots.load(Relaxed),
                "mae_1ms_bps": p.mae_1ms_bps.load(Relaxed),
                "mae_1ms_last_value_bps": p.mae_1ms_last_value_bps.load(Relaxed),
                "mae_5ms_bps": p.mae_5ms_bps.load(Relaxed),
                "mae_5ms_last_value_bps": p.mae_5ms_last_value_bps.load(Relaxed),
                "period_ns": p.period_ns.load(Relaxed),
                "next_burst_ns": p.next_burst_ns.load(Relaxed),
            },
        })
    }
}
