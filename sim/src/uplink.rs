//! The `uplink` scenario: the egress scheduler at a busy port.
//!
//! The eval cluster at 80% of its compute capacity, but both paths leave
//! the appliance through one shaped egress port (a site behind one
//! constrained uplink), sized so that the requests alone keep it busy
//! `utilisation` of the time. What the agents' short requests then feel is
//! the port's queue: with strict priority (the product's
//! [`steer::egress::band_config`]) an interactive packet waits at most for
//! the frame on the wire; with one FIFO it waits behind every long
//! request's segments queued before it.
//!
//! Four variants share the same arrivals: the three evaluation policies as
//! `make eval` configures them, and IntelliNode's decision with a FIFO
//! port, which isolates what the scheduler adds to the decision.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{EvalCluster, Workload};
use crate::eval::{run_one, EvalOptions, RunSummary, Variant, FIFO, INTELLINODE, LEAST_QUEUE};
use crate::world::request_wire_bytes;

/// IntelliNode's decision, every egress port one FIFO.
pub const INTELLINODE_FIFO_PORT: Variant = Variant {
    name: "intellinode_fifo_port",
    strict_priority: false,
    ..INTELLINODE
};

/// The variants, in report order.
pub const VARIANTS: [Variant; 4] = [FIFO, LEAST_QUEUE, INTELLINODE_FIFO_PORT, INTELLINODE];

/// How `intellisim uplink` runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UplinkOptions {
    /// Base seed.
    pub seed: u64,
    /// Requests per replication (`None`: as the eval scenario).
    pub requests: Option<u64>,
    /// Replications pooled.
    pub replications: u32,
    /// Arrival rate as a fraction of the cluster's compute capacity.
    pub load: f64,
    /// Share of the uplink's time the requests' bytes take.
    pub utilisation: f64,
}

impl Default for UplinkOptions {
    fn default() -> Self {
        UplinkOptions {
            seed: 1,
            requests: None,
            replications: 30,
            load: 0.8,
            utilisation: 0.8,
        }
    }
}

/// `intellisim uplink`'s output.
#[derive(Debug, Clone, Serialize)]
pub struct UplinkScenario {
    /// Arrival rate, requests/s.
    pub rate_rps: f64,
    /// Load as a fraction of compute capacity.
    pub load: f64,
    /// Mean bytes one request puts on the uplink (SYN and segments).
    pub mean_request_wire_bytes: f64,
    /// What the requests offer the uplink, Mbit/s.
    pub offered_mbps: f64,
    /// The uplink's rate, Mbit/s: `offered_mbps / utilisation`.
    pub uplink_mbps: f64,
    /// Base seed.
    pub seed: u64,
    /// Variant → results.
    pub runs: BTreeMap<String, RunSummary>,
    /// Short p99 TTFT per variant, ms.
    pub short_p99_ttft_ms: BTreeMap<String, f64>,
    /// IntelliNode's short p99 TTFT at the same load with unshaped ports,
    /// ms: what the uplink adds is measured against it.
    pub intellinode_unshaped_short_p99_ttft_ms: f64,
}

/// Exact mean of `f` over integers uniform in `[lo, hi]`.
fn uniform_mean(r: [u32; 2], f: impl Fn(u32) -> u64) -> f64 {
    let (lo, hi) = (r[0].min(r[1]), r[0].max(r[1]));
    let sum: u64 = (lo..=hi).map(f).sum();
    sum as f64 / f64::from(hi - lo + 1)
}

/// Mean bytes a request of the workload puts on the wire toward its node.
pub fn mean_request_wire_bytes(w: &Workload) -> f64 {
    let short = uniform_mean(w.short_prompt_tokens, request_wire_bytes);
    let long = uniform_mean(w.long_prompt_tokens, request_wire_bytes);
    w.short_fraction * short + (1.0 - w.short_fraction) * long
}

/// Runs every variant.
pub fn run_uplink(c: &EvalCluster, opt: &UplinkOptions) -> Result<UplinkScenario, String> {
    c.validate()?;
    if !(opt.load > 0.0 && opt.load.is_finite()) {
        return Err(format!("load = {} must be > 0", opt.load));
    }
    if !(opt.utilisation > 0.0 && opt.utilisation < 1.0) {
        return Err(format!(
            "utilisation = {} must be in (0, 1): a saturated link's queue only grows",
            opt.utilisation
        ));
    }
    let rate_rps = c.capacity_rps() * opt.load;
    let bytes = mean_request_wire_bytes(&c.workload);
    let offered_mbps = rate_rps * bytes * 8.0 / 1e6;
    let uplink_mbps = offered_mbps / opt.utilisation;
    let key = EvalCluster::load_key(opt.load);
    let shaped = EvalOptions {
        seed: opt.seed,
        requests: opt.requests,
        replications: opt.replications,
        uplink_mbps: Some(uplink_mbps),
    };
    let mut runs = BTreeMap::new();
    let mut p99 = BTreeMap::new();
    for v in VARIANTS {
        let r = run_one(c, v, &key, opt.load, &shaped)?;
        p99.insert(v.name.to_string(), r.short.ttft_ms.p99);
        runs.insert(v.name.to_string(), r);
    }
    let unshaped = run_one(
        c,
        INTELLINODE,
        &key,
        opt.load,
        &EvalOptions {
            uplink_mbps: None,
            ..shaped
        },
    )?;
    Ok(UplinkScenario {
        rate_rps,
        load: opt.load,
        mean_request_wire_bytes: bytes,
        offered_mbps,
        uplink_mbps,
        seed: opt.seed,
        runs,
        short_p99_ttft_ms: p99,
        intellinode_unshaped_short_p99_ttft_ms: unshaped.short.ttft_ms.p99,
    })
}
