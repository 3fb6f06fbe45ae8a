//! The tensor pipeline's counters as the stats JSON shows them. The
//! counters themselves are the engine's ([`tensor::stats`]): one block per
//! worker, added up here off the fast path.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Map, Value};
pub use tensor::stats::{
    Event, MetaOutcome, PredictorCounters, SchedClass, TensorCounters, STATES,
};
use tensor::TensorType;

use crate::stats::quantile;

/// The stats JSON `tensor` section: every worker's block summed, and the
/// predictor's own counters.
pub fn to_json(
    parts: &[std::sync::Arc<TensorCounters>],
    p: &PredictorCounters,
    path_ids: &[u8],
) -> Value {
    let total = TensorCounters::sum(parts.iter().map(|c| &**c));
    json_of(&total, p, path_ids)
}

fn json_of(c: &TensorCounters, p: &PredictorCounters, path_ids: &[u8]) -> Value {
    let mut transitions = Map::new();
    for (i, from) in STATES.iter().enumerate() {
        for (j, to) in STATES.iter().enumerate() {
            let n = c.transitions[i][j].load(Relaxed);
            if n > 0 {
                transitions.insert(format!("{from}->{to}"), json!(n));
            }
        }
    }
    let sources = ["heuristic", "tlv", "forged"];
    let semantic: Map<String, Value> = sources
        .iter()
        .zip(&c.semantic)
        .map(|(n, c)| ((*n).to_owned(), json!(c.load(Relaxed))))
        .collect();
    let types: Map<String, Value> = TensorType::ALL
        .iter()
        .zip(&c.tensor_types)
        .map(|(t, c)| (t.name().to_owned(), json!(c.load(Relaxed))))
        .collect();
    let overlay: Map<String, Value> = tensor::encap::EncapError::RECEIVE_CODES
        .iter()
        .zip(&c.overlay_malformed)
        .map(|(code, n)| ((*code).to_owned(), json!(n.load(Relaxed))))
        .collect();
    let metadata: Map<String, Value> = MetaOutcome::ALL
        .iter()
        .zip(&c.metadata)
        .map(|(o, c)| (o.name().to_owned(), json!(c.load(Relaxed))))
        .collect();
    let metadata_errors: Map<String, Value> = tensor::metadata::MetadataError::RECEIVE_CODES
        .iter()
        .zip(&c.metadata_errors)
        .map(|(code, n)| ((*code).to_owned(), json!(n.load(Relaxed))))
        .collect();
    let events: Map<String, Value> = Event::ALL
        .iter()
        .zip(&c.events)
        .map(|(e, c)| (e.name().to_owned(), json!(c.load(Relaxed))))
        .collect();
    let paths: Vec<Value> = path_ids
        .iter()
        .zip(c.path_packets.iter().zip(&c.path_bytes).zip(&c.path_down))
        .map(|(id, ((p, b), down))| {
            json!({
                "id": id,
                "packets": p.load(Relaxed),
                "bytes": b.load(Relaxed),
                "down_in_workers": down.load(Relaxed),
            })
        })
        .collect();
    let ports: Vec<Value> = c
        .class_packets
        .iter()
        .zip(&c.class_tx_bytes)
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
        .map(|class| {
            let mut s = c.sojourn_us[*class as usize].snapshot();
            (
                class.name().to_owned(),
                json!({
                    "samples": s.len(),
                    "p50": quantile(&mut s, 0.5),
                    "p99": quantile(&mut s, 0.99),
                    "max": quantile(&mut s, 1.0),
                }),
            )
        })
        .collect();
    let pushed = c.get(Event::FifoPushed);
    let full = c.get(Event::FifoFull);
    let offered = pushed + full;
    json!({
        "qp_transitions": transitions,
        "semantic_sources": semantic,
        "tensor_types": types,
        "metadata": metadata,
        "metadata_errors": metadata_errors,
        "overlay_malformed": overlay,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tensor::metadata::MetadataError;

    #[test]
    fn metadata_errors_are_summed_per_code_next_to_the_outcomes() {
        let a = Arc::new(TensorCounters::new(0, 2));
        let b = Arc::new(TensorCounters::new(0, 2));
        a.metadata(MetaOutcome::BadMac);
        a.metadata_error(&MetadataError::BadMac);
        b.metadata(MetaOutcome::BadMac);
        b.metadata_error(&MetadataError::BadMac);
        b.metadata(MetaOutcome::Malformed);
        b.metadata_error(&MetadataError::MacNotLast);
        let j = to_json(&[a, b], &PredictorCounters::default(), &[]);
        let outcomes = &j["metadata"];
        assert_eq!(outcomes["bad_mac"], 2, "{outcomes}");
        assert_eq!(outcomes["malformed"], 1, "{outcomes}");
        assert_eq!(outcomes["accepted"], 0, "{outcomes}");
        let codes = j["metadata_errors"].as_object().expect("metadata_errors");
        let mut keys: Vec<&str> = codes.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = MetadataError::RECEIVE_CODES.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "one key per §7.5 code");
        assert_eq!(codes["meta.bad_mac"], 2);
        assert_eq!(codes["meta.mac_not_last"], 1);
        let total: u64 = codes.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(total, 3, "every error under exactly one code: {codes:?}");
    }
}
