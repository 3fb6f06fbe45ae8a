//! Everything observable about a running appliance, read off the fast path:
//! the Prometheus exposition and the JSON sections shared by the stats
//! report and `ctl query stats`. It reads the same single-writer counters
//! the live display reads; nothing here blocks a worker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use control::ControlState;
use serde_json::{json, Value};

use crate::control_plane::{ControlCounters, MonoClock, KINDS};
use crate::dpdk::Mempool;
use crate::metrics::Exposition;
use crate::pipeline::tensor_counters::{SchedClass, STATES};
use steer::stats::{
    FeatureSource, FlowEvent, FragmentEvent, SpliceEvent, SteerCounters, NO_CHOICE, REASONS,
    REJECTIONS,
};
use steer::TrafficClass;

use crate::stats::{quantile, Decision, DropReason, LcoreCounters, Snapshot, LATENCY_BUCKETS_US};

/// The label naming a `[[steer.instances]]` entry. Not `instance`: that is
/// the label Prometheus gives every scraped sample (the appliance's own
/// address), and a clash would rename ours to `exported_instance`.
const STEER_INSTANCE: &str = "steer_instance";

/// Reads one counter of a port's totals.
type PortField = fn(&crate::stats::PortTotals) -> u64;
/// Reads one sum of predicted against observed latency.
type LatencyField = fn(&steer::stats::LatencySums) -> &AtomicU64;

/// Handles to every counter and table worth exposing.
#[derive(Clone)]
pub struct Telemetry {
    /// (port id, device name) of every started port.
    pub ports: Vec<(u16, String)>,
    pub nb_ports: usize,
    pub lcores: Vec<Arc<LcoreCounters>>,
    pub control: Option<ControlHandles>,
    /// The prober's counters, when it runs.
    pub probe: Option<Arc<crate::probe::ProbeCounters>>,
    /// Steering counters and the instance names, for `pipeline = "steer"`.
    /// One block per worker.
    pub steer: Option<(Vec<Arc<SteerCounters>>, Vec<String>)>,
    /// Tensor-pipeline counters and the path ids, for `pipeline = "tensor"`.
    pub tensor: Option<TensorHandles>,
    /// The packet pool. Weak: the pool is freed before EAL, whoever still
    /// holds a copy of the telemetry; its readers stop before that.
    pub pool: Option<Weak<Mempool>>,
}

/// What the telemetry reads of the tensor pipeline.
#[derive(Clone)]
pub struct TensorHandles {
    /// One block per worker.
    pub counters: Vec<Arc<crate::pipeline::tensor_counters::TensorCounters>>,
    pub predictor: Arc<crate::pipeline::tensor_counters::PredictorCounters>,
    /// Path ids in configuration order.
    pub paths: Vec<u8>,
}

#[derive(Clone)]
pub struct ControlHandles {
    pub counters: Arc<ControlCounters>,
    pub state: Arc<Mutex<ControlState>>,
    pub clock: MonoClock,
}

impl Telemetry {
    fn snapshot(&self) -> Snapshot {
        Snapshot::take(crate::dpdk::rdtsc(), self.nb_ports, &self.lcores)
    }

    /// Decisions summed over workers, by name.
    pub fn decisions(&self) -> BTreeMap<&'static str, u64> {
        Decision::ALL
            .iter()
            .map(|d| {
                (
                    d.name(),
                    self.lcores
                        .iter()
                        .map(|l| {
                            l.decisions[*d as usize].load(std::sync::atomic::Ordering::Relaxed)
                        })
                        .sum(),
                )
            })
            .collect()
    }

    /// Update-to-visible latency samples (µs) from every worker.
    pub fn visible_samples(&self) -> Vec<u32> {
        self.lcores
            .iter()
            .flat_map(|l| l.visible_us.snapshot())
            .collect()
    }

    /// The `control` section: accepted by kind, rejected by reason, views
    /// published, update-to-visible latency.
    pub fn control_json(&self) -> Value {
        let Some(c) = &self.control else {
            return Value::Null;
        };
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let accepted: BTreeMap<&str, u64> = KINDS
            .iter()
            .zip(&c.counters.accepted)
            .map(|(k, a)| (*k, load(a)))
            .collect();
        let rejected: BTreeMap<&str, u64> = control::RejectCode::ALL
            .iter()
            .map(|r| (r.as_str(), load(&c.counters.rejected[r.index()])))
            .collect();
        let mut samples = self.visible_samples();
        let n = samples.len();
        let p50 = quantile(&mut samples, 0.50);
        let p99 = quantile(&mut samples, 0.99);
        let probe = self.probe.as_ref().map(|p| {
            json!({
                "sent": load(&p.sent), "replies": load(&p.replies), "bad_tag": load(&p.bad_tag),
                "unexpected": load(&p.unexpected), "no_path": load(&p.no_path), "send_failed": load(&p.send_failed), "tx_refused": load(&p.tx_refused),
                "measurements_published": load(&p.measurements_published),
            })
        });
        json!({
            "probe": probe,
            "accepted": accepted,
            "rejected": rejected,
            "rejected_total": rejected.values().sum::<u64>(),
            "replies_sent": load(&c.counters.replies_sent),
            "views_published": load(&c.counters.views_published),
            "policy_entries_dropped": load(&c.counters.policy_entries_dropped),
            "visible_latency_us": {"samples": n, "p50": p50, "p99": p99},
        })
    }

    /// The `mempool` section: mbufs in the pool and in use right now.
    pub fn mempool_json(&self) -> Value {
        self.pool.as_ref().and_then(Weak::upgrade).map_or(
            Value::Null,
            |p| json!({"name": p.name(), "size": p.size(), "in_use": p.in_use()}),
        )
    }

    /// `ctl query stats`: ports, decisions and control, as JSON.
    pub fn stats_json(&self) -> Value {
        let snap = self.snapshot();
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|(id, name)| {
                let p = snap
                    .ports
                    .get(usize::from(*id))
                    .cloned()
                    .unwrap_or_default();
                let drops = p.drops_by_name();
                json!({
                    "port": id, "name": name,
                    "rx_packets": p.rx_packets, "rx_bytes": p.rx_bytes,
                    "tx_packets": p.tx_packets, "tx_bytes": p.tx_bytes,
                    "generated_packets": p.generated_packets,
                    "drops": drops, "drops_total": p.drops_total(),
                })
            })
            .collect();
        json!({
            "ports": ports,
            "decisions": self.decisions(),
            "control": self.control_json(),
            "steer": self.steer_json(),
            "tensor": self.tensor_json(),
            "mempool": self.mempool_json(),
        })
    }

    /// The tensor section of the stats (null without the tensor pipeline).
    pub fn tensor_json(&self) -> Value {
        self.tensor.as_ref().map_or(Value::Null, |t| {
            crate::pipeline::tensor_counters::to_json(&t.counters, &t.predictor, &t.paths)
        })
    }

    /// Every steering worker's counters summed, and the instance names.
    fn steer_totals(&self) -> Option<(SteerCounters, &[String])> {
        let (parts, names) = self.steer.as_ref()?;
        Some((SteerCounters::sum(parts.iter().map(|c| &**c)), names))
    }

    /// The steering section of the stats (null without steering): every
    /// worker's counters summed, and what became of fragments per worker.
    pub fn steer_json(&self) -> Value {
        let Some((c, names)) = self.steer_totals() else {
            return Value::Null;
        };
        let mut v = steer_counters_json(&c, names);
        let mut fragments = fragments_json(&c);
        if let (Some(f), Some((parts, _))) = (fragments.as_object_mut(), &self.steer) {
            f.insert(
                "workers".into(),
                parts.iter().map(|p| fragments_json(p)).collect(),
            );
        }
        let mut splice = splice_json(&c);
        if let (Some(s), Some((parts, _))) = (splice.as_object_mut(), &self.steer) {
            s.insert(
                "workers".into(),
                parts.iter().map(|p| splice_json(p)).collect(),
            );
        }
        if let Some(o) = v.as_object_mut() {
            o.insert("fragments".into(), fragments);
            o.insert("splice".into(), splice);
        }
        v
    }

    fn render_steer(&self, e: &mut Exposition) {
        let Some((c, names)) = self.steer_totals() else {
            return;
        };
        let load =
            |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) as f64;
        let f = |a: &std::sync::atomic::AtomicU64| {
            f64::from_bits(a.load(std::sync::atomic::Ordering::Relaxed))
        };
        one_label_family(
            e,
            ("intellinode_steer_features_total", "counter"),
            "New steered flows by where their token features came from.",
            "source",
            FeatureSource::ALL
                .iter()
                .map(|s| (s.name(), load(&c.features[*s as usize]))),
        );
        one_label_family(
            e,
            ("intellinode_steer_token_tlv_malformed_total", "counter"),
            "Malformed token-feature TLVs (treated as none), by code.",
            "code",
            classifier::TlvMalformed::CODES
                .iter()
                .zip(&c.tlv_malformed)
                .map(|(code, n)| (*code, load(n))),
        );
        one_label_family(
            e,
            ("intellinode_steer_flows_total", "counter"),
            "Flow-table events.",
            "event",
            FlowEvent::ALL
                .iter()
                .map(|ev| (ev.name(), load(&c.flows[*ev as usize]))),
        );
        if let Some((parts, _)) = &self.steer {
            for (family, help, drops) in [
                (
                    "intellinode_steer_fragments_total",
                    "Pieces of fragmented datagrams, per worker: first fragments steered, later ones followed, held and released.",
                    false,
                ),
                (
                    "intellinode_steer_fragment_drops_total",
                    "Later fragments dropped, per worker and reason (also in intellinode_drops_total).",
                    true,
                ),
            ] {
                e.family(family, "counter", help);
                for (w, part) in parts.iter().enumerate() {
                    let worker = w.to_string();
                    for ev in FragmentEvent::ALL.iter().filter(|ev| ev.is_drop() == drops) {
                        let label = if drops { "reason" } else { "event" };
                        e.sample(
                            family,
                            &[("worker", &worker), (label, ev.name())],
                            load(&part.fragments[*ev as usize]),
                        );
                    }
                }
            }
        }
        if let Some((parts, _)) = &self.steer {
            let family = "intellinode_steer_splice_total";
            e.family(
                family,
                "counter",
                "Delayed binding of TLV-less TCP requests, per worker and event (handshakes answered, connections, bounds hit, retransmissions, ...).",
            );
            for (w, part) in parts.iter().enumerate() {
                let worker = w.to_string();
                for ev in SpliceEvent::ALL {
                    e.sample(
                        family,
                        &[("worker", &worker), ("event", ev.name())],
                        load(&part.splice[ev as usize]),
                    );
                }
            }
            for (family, help, get) in [
                (
                    "intellinode_steer_splice_connections",
                    "Connections delayed binding holds now, per worker.",
                    (|p: &SteerCounters| &p.splice_connections) as fn(&SteerCounters) -> &AtomicU64,
                ),
                (
                    "intellinode_steer_splice_buffer_bytes",
                    "Request-buffer bytes delayed binding holds now, per worker.",
                    |p: &SteerCounters| &p.splice_buffer_bytes,
                ),
            ] {
                e.family(family, "gauge", help);
                for (w, part) in parts.iter().enumerate() {
                    e.sample(family, &[("worker", &w.to_string())], load(get(part)));
                }
            }
        }
        e.family(
            "intellinode_steer_chosen_total",
            "counter",
            "New flows steered to an instance, by traffic class.",
        );
        for (i, name) in names.iter().enumerate() {
            for class in steer::TrafficClass::ALL {
                if let Some(n) = c
                    .chosen
                    .get(i * steer::TrafficClass::COUNT + class as usize)
                {
                    e.sample(
                        "intellinode_steer_chosen_total",
                        &[(STEER_INSTANCE, name), ("class", class.name())],
                        load(n),
                    );
                }
            }
        }
        one_label_family(
            e,
            ("intellinode_steer_ttft_mae_seconds", "gauge"),
            "Mean absolute error of the predicted compute TTFT, per instance.",
            STEER_INSTANCE,
            names
                .iter()
                .zip(&c.models)
                .map(|(n, m)| (n.as_str(), f(&m.ttft_mae_us) / 1e6)),
        );
        one_label_family(
            e,
            ("intellinode_steer_observations_total", "counter"),
            "Requests measured (TTFT and completion), per instance.",
            STEER_INSTANCE,
            names
                .iter()
                .zip(&c.models)
                .map(|(n, m)| (n.as_str(), load(&m.observations))),
        );
        let ttft: [(&str, &str, LatencyField); 2] = [
            (
                "intellinode_steer_predicted_ttft_seconds",
                "Time to first token predicted when the measured requests were steered, per instance.",
                |l| &l.predicted_ttft_us,
            ),
            (
                "intellinode_steer_observed_ttft_seconds",
                "Time to first token observed on the measured requests, per instance.",
                |l| &l.observed_ttft_us,
            ),
        ];
        for (name, help, sum_us) in ttft {
            e.family(name, "summary", help);
            for (n, l) in names.iter().zip(&c.instance_latency) {
                e.sample(
                    &format!("{name}_sum"),
                    &[(STEER_INSTANCE, n)],
                    load(sum_us(l)) / 1e6,
                );
                e.sample(
                    &format!("{name}_count"),
                    &[(STEER_INSTANCE, n)],
                    load(&l.measured),
                );
            }
        }
    }

    fn render_mempool(&self, e: &mut Exposition) {
        let Some(pool) = self.pool.as_ref().and_then(Weak::upgrade) else {
            return;
        };
        e.family(
            "intellinode_mempool_in_use_mbufs",
            "gauge",
            "Packet buffers taken from the pool and not yet returned.",
        );
        e.sample(
            "intellinode_mempool_in_use_mbufs",
            &[("pool", pool.name())],
            f64::from(pool.in_use()),
        );
        e.family(
            "intellinode_mempool_size_mbufs",
            "gauge",
            "Packet buffers the pool was created with.",
        );
        e.sample(
            "intellinode_mempool_size_mbufs",
            &[("pool", pool.name())],
            f64::from(pool.size()),
        );
    }

    fn render_tensor(&self, e: &mut Exposition) {
        use crate::pipeline::tensor_counters::{Event, MetaOutcome, TensorCounters};
        let Some(t) = &self.tensor else {
            return;
        };
        let c = TensorCounters::sum(t.counters.iter().map(|c| &**c));
        let load =
            |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) as f64;
        one_label_family(
            e,
            ("intellinode_tensor_overlay_malformed_total", "counter"),
            "Overlay frames dropped by an outer-header check, by code.",
            "code",
            tensor::encap::EncapError::RECEIVE_CODES
                .iter()
                .zip(&c.overlay_malformed)
                .map(|(code, n)| (*code, load(n))),
        );
        one_label_family(
            e,
            ("intellinode_tensor_metadata_total", "counter"),
            "Metadata option blocks at decapsulation, by outcome.",
            "outcome",
            MetaOutcome::ALL
                .iter()
                .map(|o| (o.name(), load(&c.metadata[*o as usize]))),
        );
        one_label_family(
            e,
            ("intellinode_tensor_metadata_errors_total", "counter"),
            "Metadata option blocks refused at decapsulation (delivered best effort), by code.",
            "code",
            tensor::metadata::MetadataError::RECEIVE_CODES
                .iter()
                .zip(&c.metadata_errors)
                .map(|(code, n)| (*code, load(n))),
        );
        one_label_family(
            e,
            ("intellinode_tensor_events_total", "counter"),
            "Tensor pipeline events (QP table, feature FIFO, rewrites, overlay, reordering).",
            "event",
            Event::ALL
                .iter()
                .map(|ev| (ev.name(), load(&c.events[*ev as usize]))),
        );
        e.family(
            "intellinode_tensor_qp_transitions_total",
            "counter",
            "QP state transitions.",
        );
        for (i, from) in STATES.iter().enumerate() {
            for (j, to) in STATES.iter().enumerate() {
                e.sample(
                    "intellinode_tensor_qp_transitions_total",
                    &[("from", &from.to_string()), ("to", &to.to_string())],
                    load(&c.transitions[i][j]),
                );
            }
        }
        let per_class: [(&str, &str, &[[AtomicU64; SchedClass::COUNT]]); 2] = [
            (
                "intellinode_tensor_class_packets_total",
                "Packets queued for an egress port, by scheduling class.",
                &c.class_packets,
            ),
            (
                "intellinode_tensor_class_tx_bytes_total",
                "Bytes sent from an egress port, by scheduling class.",
                &c.class_tx_bytes,
            ),
        ];
        for (name, help, table) in per_class {
            e.family(name, "counter", help);
            for (port, row) in table.iter().enumerate() {
                for class in SchedClass::ALL {
                    e.sample(
                        name,
                        &[("port", &port.to_string()), ("class", class.name())],
                        load(&row[class as usize]),
                    );
                }
            }
        }
        let per_path: [(&str, &str, &[AtomicU64]); 2] = [
            (
                "intellinode_tensor_path_packets_total",
                "Overlay packets sent on a path.",
                &c.path_packets,
            ),
            (
                "intellinode_tensor_path_bytes_total",
                "Overlay bytes sent on a path.",
                &c.path_bytes,
            ),
        ];
        for (name, help, counters) in per_path {
            e.family(name, "counter", help);
            for (id, n) in t.paths.iter().zip(counters) {
                e.sample(name, &[("path", &id.to_string())], load(n));
            }
        }
        let name = "intellinode_tensor_path_down_workers";
        e.family(
            name,
            "gauge",
            "Workers keeping an overlay path out of new plans on the control plane's PATH_STATE (lossy or stale).",
        );
        for (id, n) in t.paths.iter().zip(&c.path_down) {
            e.sample(name, &[("path", &id.to_string())], load(n));
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let snap = self.snapshot();
        let mut e = Exposition::new();
        let port_families: [(&str, &str, PortField); 5] = [
            (
                "intellinode_port_rx_packets_total",
                "Packets received on a port.",
                |p| p.rx_packets,
            ),
            (
                "intellinode_port_rx_bytes_total",
                "Bytes received on a port.",
                |p| p.rx_bytes,
            ),
            (
                "intellinode_port_tx_packets_total",
                "Packets transmitted on a port.",
                |p| p.tx_packets,
            ),
            (
                "intellinode_port_tx_bytes_total",
                "Bytes transmitted on a port.",
                |p| p.tx_bytes,
            ),
            (
                "intellinode_port_generated_packets_total",
                "Of the packets transmitted on a port, those the appliance built itself (delayed binding's segments).",
                |p| p.generated_packets,
            ),
        ];
        for (name, help, get) in port_families {
            e.family(name, "counter", help);
            for (id, dev) in &self.ports {
                let p = snap
                    .ports
                    .get(usize::from(*id))
                    .cloned()
                    .unwrap_or_default();
                e.sample(
                    name,
                    &[("port", &id.to_string()), ("device", dev)],
                    get(&p) as f64,
                );
            }
        }
        e.family(
            "intellinode_drops_total",
            "counter",
            "Packets dropped, by ingress port and reason.",
        );
        for (id, dev) in &self.ports {
            let p = snap
                .ports
                .get(usize::from(*id))
                .cloned()
                .unwrap_or_default();
            for r in DropReason::ALL {
                e.sample(
                    "intellinode_drops_total",
                    &[
                        ("port", &id.to_string()),
                        ("device", dev),
                        ("reason", r.name()),
                    ],
                    p.drops[r as usize] as f64,
                );
            }
        }
        e.family(
            "intellinode_decisions_total",
            "counter",
            "Policy decisions, by outcome.",
        );
        for (name, n) in self.decisions() {
            e.sample(
                "intellinode_decisions_total",
                &[("decision", name)],
                n as f64,
            );
        }
        e.family(
            "intellinode_lcore_busy_cycles_total",
            "counter",
            "TSC cycles a worker spent on polls that moved packets.",
        );
        for l in &snap.lcores {
            e.sample(
                "intellinode_lcore_busy_cycles_total",
                &[("lcore", &l.lcore.to_string())],
                l.busy_cycles as f64,
            );
        }
        e.family(
            "intellinode_lcore_busy_packets_total",
            "counter",
            "Packets those busy polls moved.",
        );
        for l in &snap.lcores {
            e.sample(
                "intellinode_lcore_busy_packets_total",
                &[("lcore", &l.lcore.to_string())],
                l.busy_packets as f64,
            );
        }
        if let Some(c) = &self.control {
            self.render_control(&mut e, c);
        }
        self.render_steer(&mut e);
        self.render_tensor(&mut e);
        self.render_mempool(&mut e);
        e.finish()
    }

    fn render_control(&self, e: &mut Exposition, c: &ControlHandles) {
        let load =
            |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) as f64;
        e.family(
            "intellinode_control_accepted_total",
            "counter",
            "Control messages accepted, by kind.",
        );
        for (k, a) in KINDS.iter().zip(&c.counters.accepted) {
            e.sample(
                "intellinode_control_accepted_total",
                &[("kind", k)],
                load(a),
            );
        }
        e.family(
            "intellinode_control_rejected_total",
            "counter",
            "Control datagrams rejected, by reason; none changed any state.",
        );
        for r in control::RejectCode::ALL {
            e.sample(
                "intellinode_control_rejected_total",
                &[("reason", r.as_str())],
                load(&c.counters.rejected[r.index()]),
            );
        }
        if let Some(p) = &self.probe {
            e.family(
                "intellinode_probe_total",
                "counter",
                "Path probes and their replies, by outcome.",
            );
            for (outcome, counter) in [
                ("sent", &p.sent),
                ("replied", &p.replies),
                ("bad_tag", &p.bad_tag),
                ("unexpected", &p.unexpected),
                ("no_path", &p.no_path),
                ("send_failed", &p.send_failed),
                ("tx_refused", &p.tx_refused),
            ] {
                e.sample(
                    "intellinode_probe_total",
                    &[("outcome", outcome)],
                    load(counter),
                );
            }
        }
        e.family(
            "intellinode_control_views_published_total",
            "counter",
            "Data-plane views published by the control thread.",
        );
        e.sample(
            "intellinode_control_views_published_total",
            &[],
            load(&c.counters.views_published),
        );
        e.family(
            "intellinode_control_policy_entries_dropped_total",
            "counter",
            "Path definitions and forwarding entries of accepted POLICY messages not stored: their table was full.",
        );
        e.sample(
            "intellinode_control_policy_entries_dropped_total",
            &[],
            load(&c.counters.policy_entries_dropped),
        );

        e.family(
            "intellinode_control_visible_latency_seconds",
            "histogram",
            "From a control message's origin time to the first worker burst using its state.",
        );
        let mut cumulative = [0u64; LATENCY_BUCKETS_US.len()];
        let (mut count, mut sum_us) = (0u64, 0u64);
        for l in &self.lcores {
            let (b, n, s) = l.visible_hist.read();
            for (acc, v) in cumulative.iter_mut().zip(b) {
                *acc += v;
            }
            count += n;
            sum_us += s;
        }
        for (bound, n) in LATENCY_BUCKETS_US.iter().zip(cumulative) {
            let le = format!("{}", *bound as f64 / 1e6);
            e.sample(
                "intellinode_control_visible_latency_seconds_bucket",
                &[("le", &le)],
                n as f64,
            );
        }
        e.sample(
            "intellinode_control_visible_latency_seconds_bucket",
            &[("le", "+Inf")],
            count as f64,
        );
        e.sample(
            "intellinode_control_visible_latency_seconds_sum",
            &[],
            sum_us as f64 / 1e6,
        );
        e.sample(
            "intellinode_control_visible_latency_seconds_count",
            &[],
            count as f64,
        );

        let now = c.clock.now_ns();
        let Ok(state) = c.state.lock() else { return };
        let max_age = state.thresholds().max_state_age_ns;
        e.family(
            "intellinode_state_age_seconds",
            "gauge",
            "Age of each state entry; past max_state_age it counts as unknown.",
        );
        let ages: Vec<(&str, u16, u64)> = state
            .path_entries()
            .map(|(id, t)| ("path", id.0, t.age(now)))
            .chain(
                state
                    .node_entries()
                    .map(|(id, t)| ("node", id.0, t.age(now))),
            )
            .collect();
        for (kind, id, age) in &ages {
            e.sample(
                "intellinode_state_age_seconds",
                &[("kind", kind), ("id", &id.to_string())],
                *age as f64 / 1e9,
            );
        }
        e.family(
            "intellinode_state_fresh",
            "gauge",
            "1 while a state entry is young enough to act on.",
        );
        for (kind, id, age) in &ages {
            let fresh = if *age <= max_age { 1.0 } else { 0.0 };
            e.sample(
                "intellinode_state_fresh",
                &[("kind", kind), ("id", &id.to_string())],
                fresh,
            );
        }
    }
}

/// The stats JSON `steer.fragments` of one counter block: the events by
/// name, the drops under `dropped`.
fn fragments_json(c: &SteerCounters) -> Value {
    let mut out = serde_json::Map::new();
    let mut dropped = serde_json::Map::new();
    for ev in FragmentEvent::ALL {
        let n = json!(c.fragments[ev as usize].load(Relaxed));
        if ev.is_drop() {
            dropped.insert(ev.name().into(), n);
        } else {
            out.insert(ev.name().into(), n);
        }
    }
    out.insert("dropped".into(), Value::Object(dropped));
    Value::Object(out)
}

/// The stats JSON `steer.splice` of one counter block: the events by
/// name, and the gauges.
fn splice_json(c: &SteerCounters) -> Value {
    let mut out = serde_json::Map::new();
    for ev in SpliceEvent::ALL {
        out.insert(ev.name().into(), json!(c.splice[ev as usize].load(Relaxed)));
    }
    out.insert(
        "connections".into(),
        json!(c.splice_connections.load(Relaxed)),
    );
    out.insert(
        "buffer_bytes".into(),
        json!(c.splice_buffer_bytes.load(Relaxed)),
    );
    Value::Object(out)
}

/// A metric family whose samples differ by one label: `(name, kind)`, its
/// help text, the label's name and `(label value, sample)` pairs.
fn one_label_family<'a>(
    e: &mut Exposition,
    (name, kind): (&str, &str),
    help: &str,
    label: &str,
    samples: impl Iterator<Item = (&'a str, f64)>,
) {
    e.family(name, kind, help);
    for (value, v) in samples {
        e.sample(name, &[(label, value)], v);
    }
}

/// The stats JSON `steer` section of `c` (every worker's counters
/// summed). `instances` names them in table order.
fn steer_counters_json(c: &SteerCounters, instances: &[String]) -> Value {
    let load = |a: &AtomicU64| a.load(Relaxed);
    let f = |a: &AtomicU64| f64::from_bits(a.load(Relaxed));
    let named = |names: &mut dyn Iterator<Item = &'static str>, counters: &[AtomicU64]| {
        names
            .zip(counters)
            .map(|(n, c)| (n.to_string(), json!(load(c))))
            .collect::<serde_json::Map<_, _>>()
    };
    let mut chosen = serde_json::Map::new();
    for (i, name) in instances.iter().enumerate() {
        let mut per_class = serde_json::Map::new();
        let mut total = 0;
        for class in TrafficClass::ALL {
            let n = c
                .chosen
                .get(i * TrafficClass::COUNT + class as usize)
                .map_or(0, load);
            total += n;
            if n > 0 {
                per_class.insert(class.name().into(), json!(n));
            }
        }
        per_class.insert("total".into(), json!(total));
        chosen.insert(name.clone(), Value::Object(per_class));
    }
    let mut latency = serde_json::Map::new();
    for class in TrafficClass::ALL {
        let l = &c.class_latency[class as usize];
        let n = load(&l.measured);
        let mut sojourn = c.sojourn_us[class as usize].snapshot();
        let mean = |a: &AtomicU64| {
            if n == 0 {
                Value::Null
            } else {
                json!((load(a) as f64 / n as f64 / 1000.0 * 100.0).round() / 100.0)
            }
        };
        latency.insert(
            class.name().into(),
            json!({
                "measured": n,
                "predicted_ttft_ms": mean(&l.predicted_ttft_us),
                "observed_ttft_ms": mean(&l.observed_ttft_us),
                "ttft_mae_ms": mean(&l.abs_error_ttft_us),
                "predicted_completion_ms": mean(&l.predicted_completion_us),
                "observed_completion_ms": mean(&l.observed_completion_us),
                "egress_wait_us": {
                    "samples": sojourn.len(),
                    "p50": quantile(&mut sojourn, 0.5),
                    "p99": quantile(&mut sojourn, 0.99),
                    "max": quantile(&mut sojourn, 1.0),
                },
            }),
        );
    }
    let mut models = serde_json::Map::new();
    for (i, name) in instances.iter().enumerate() {
        if let Some(m) = c.models.get(i) {
            models.insert(
                name.clone(),
                json!({
                    "observations": load(&m.observations),
                    "ttft_mae_us": f(&m.ttft_mae_us),
                    "ttft_bias_us": f(&m.ttft_bias_us),
                    "completion_mae_us": f(&m.completion_mae_us),
                    "ttft_coefficients": [f(&m.coefficients[0]), f(&m.coefficients[1]), f(&m.coefficients[2])],
                    "decode_us_per_token": f(&m.decode_us_per_token),
                    "prefix_cache_reports": load(&m.prefix_cache_reports),
                    "prefix_cache_scale": if load(&m.prefix_cache_reports) > 0 { f(&m.prefix_cache_scale) } else { 1.0 },
                }),
            );
        }
    }
    let mut decision = c.decision_ns.snapshot();
    json!({
        "features": named(&mut FeatureSource::ALL.iter().map(|s| s.name()), &c.features),
        "tlv_malformed": named(&mut classifier::TlvMalformed::CODES.iter().copied(), &c.tlv_malformed),
        "flows": named(&mut FlowEvent::ALL.iter().map(|s| s.name()), &c.flows),
        "reasons": named(&mut REASONS.iter().map(|s| s.name()), &c.reasons),
        "no_choice": named(&mut NO_CHOICE.iter().map(|s| s.name()), &c.no_choice),
        "rejected_candidates": named(&mut REJECTIONS.iter().copied(), &c.rejections),
        "chosen": chosen,
        "latency": latency,
        "models": models,
        "decision_ns": {
            "samples": c.decision_ns.count(),
            "p50": quantile(&mut decision, 0.5),
            "p99": quantile(&mut decision, 0.99),
        },
    })
}
