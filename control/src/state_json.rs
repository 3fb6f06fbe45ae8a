//! The control state as JSON, for the body of a `state` query's REPLY.
//!
//! Every entry shows its freshness and age, so an operator sees at once what
//! the data plane would act on and what it would ignore.

use serde_json::{json, Map, Value};

use crate::metric::Metric;
use crate::state::ControlState;
use crate::thresholds::ThresholdId;
use crate::timed::Timed;

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn age_fields<T>(t: &Timed<T>, now_ns: u64, max_age_ns: u64) -> Map<String, Value> {
    let mut m = Map::new();
    let label = t.freshness(now_ns, max_age_ns).label();
    m.insert("freshness".into(), json!(label));
    m.insert("age_ms".into(), json!(t.age(now_ns) as f64 / 1e6));
    m.insert("from_peer".into(), json!(t.from_peer));
    m
}

fn metric_json(m: &Metric) -> Value {
    json!({
        "type": m.metric_type.name(),
        "value": m.normalised(),
        "unit": m.metric_type.canonical_unit().name(),
        "source": m.source.name(),
        "statistic": m.statistic.name(),
    })
}

impl ControlState {
    /// Paths, nodes, capabilities and policy, with ages, as a JSON value.
    pub fn to_json(&self, now_ns: u64) -> Value {
        let t = self.thresholds();
        let paths: Vec<Value> = self
            .path_entries()
            .map(|(id, e)| {
                let mut m = age_fields(e, now_ns, t.max_state_age_ns);
                m.insert("id".into(), json!(id.0));
                m.insert("latency_us".into(), json!(e.value.latency_us));
                m.insert("jitter_us".into(), json!(e.value.jitter_us));
                m.insert("avail_bw_bps".into(), json!(e.value.avail_bw_bps));
                m.insert("loss_ratio".into(), json!(e.value.loss_ratio));
                Value::Object(m)
            })
            .collect();
        let nodes: Vec<Value> = self
            .node_entries()
            .map(|(id, e)| {
                let v = &e.value;
                let mut m = age_fields(e, now_ns, t.max_state_age_ns);
                m.insert("id".into(), json!(id.0));
                m.insert("gpu_util".into(), json!(v.gpu_util));
                m.insert("mem_util".into(), json!(v.mem_util));
                m.insert("queue_len".into(), json!(v.queue_len));
                m.insert("est_ttft_us".into(), json!(v.est_ttft_us));
                m.insert("tokens_per_s_prefill".into(), json!(v.tokens_per_s_prefill));
                m.insert("tokens_per_s_decode".into(), json!(v.tokens_per_s_decode));
                m.insert(
                    "prefix_cache".into(),
                    json!({
                        "reports": v.prefix_cache.reports,
                        "hit_tokens": v.prefix_cache.hit_tokens,
                        "queried_tokens": v.prefix_cache.queried_tokens,
                    }),
                );
                Value::Object(m)
            })
            .collect();
        let capabilities: Vec<Value> = self
            .capability_entries()
            .map(|(id, e)| {
                let c = &e.value;
                let mut m = age_fields(e, now_ns, t.max_capability_age_ns);
                m.insert("node".into(), json!(id.0));
                m.insert("model".into(), json!(c.model));
                m.insert("model_class".into(), json!(c.model_class.name()));
                m.insert("accelerator".into(), json!(c.accelerator));
                m.insert(
                    "task_types".into(),
                    json!(c.task_types.names().collect::<Vec<_>>()),
                );
                m.insert(
                    "metrics".into(),
                    c.metrics.iter().map(metric_json).collect(),
                );
                Value::Object(m)
            })
            .collect();
        let path_defs: Vec<Value> = self
            .path_defs()
            .map(|d| {
                json!({
                    "id": d.id.0,
                    "egress_port": d.egress_port,
                    "next_hop_mac": mac(&d.next_hop_mac),
                    "name": d.name,
                })
            })
            .collect();
        let fwd: Vec<Value> = self
            .fwd_entries()
            .map(|(p, ids)| json!({"prefix": p.to_string(), "paths": ids.iter().map(|i| i.0).collect::<Vec<_>>()}))
            .collect();
        let weights: Map<String, Value> = self
            .class_weights()
            .map(|(c, w)| (c.to_string(), json!(w)))
            .collect();
        let thresholds: Map<String, Value> = ThresholdId::ALL
            .into_iter()
            .map(|id| (id.name().to_string(), json!(t.get(id))))
            .collect();
        let dangling: Vec<Value> = self
            .dangling_paths()
            .into_iter()
            .map(|(p, id)| json!({"prefix": p.to_string(), "path": id.0}))
            .collect();
        json!({
            "paths": paths,
            "nodes": nodes,
            "capabilities": capabilities,
            "policy": {
                "path_defs": path_defs,
                "fwd_entries": fwd,
                "class_weights": weights,
                "thresholds": thresholds,
                "dangling_path_refs": dangling,
            },
        })
    }
}
