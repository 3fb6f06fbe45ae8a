//! What is simulated: node and path parameters, the request mix, the
//! emulated evaluation cluster ([`EvalCluster`], shared with `make eval`
//! through `intellisim plan`), and the capacity the loads are fractions of.

use serde::{Deserialize, Serialize};

/// An inference node, with the service-time model of `pktgen serve`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NodeParams {
    /// Fixed part of the time to first token, ms.
    pub base_ttft_ms: f64,
    /// Prefill throughput, prompt tokens/s.
    pub prefill_tps: f64,
    /// Decode throughput per stream, output tokens/s.
    pub decode_tps: f64,
    /// Batch slots: requests served at once.
    pub concurrency: u32,
    /// KV-cache capacity, tokens (the denominator of KV utilisation).
    pub kv_tokens: u64,
}

impl NodeParams {
    /// How long one request holds a batch slot, s: prefill, then decode.
    pub fn slot_time_s(&self, prompt_tokens: f64, output_tokens: f64) -> f64 {
        self.base_ttft_ms / 1000.0
            + prompt_tokens / self.prefill_tps
            + output_tokens / self.decode_tps
    }

    /// Time to the first token on an idle node, s.
    pub fn prefill_s(&self, prompt_tokens: f64) -> f64 {
        self.base_ttft_ms / 1000.0 + prompt_tokens / self.prefill_tps
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        let ok = self.base_ttft_ms.is_finite()
            && self.base_ttft_ms >= 0.0
            && self.prefill_tps.is_finite()
            && self.prefill_tps > 0.0
            && self.decode_tps.is_finite()
            && self.decode_tps > 0.0
            && self.concurrency > 0
            && self.kv_tokens > 0;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "node {what}: rates, concurrency and kv_tokens must be positive, base_ttft_ms >= 0"
            ))
        }
    }
}

/// A network path, both directions alike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PathParams {
    /// One-way delay, ms.
    pub one_way_ms: f64,
    /// Uniform jitter around the delay (±), ms.
    pub jitter_ms: f64,
    /// Probability that a packet is lost, 0 to 1.
    pub loss: f64,
}

impl PathParams {
    fn validate(&self, what: &str) -> Result<(), String> {
        let ok = self.one_way_ms.is_finite()
            && self.one_way_ms >= 0.0
            && self.jitter_ms.is_finite()
            && self.jitter_ms >= 0.0
            && (0.0..=1.0).contains(&self.loss);
        if ok {
            Ok(())
        } else {
            Err(format!(
                "path {what}: delay and jitter must be >= 0, loss in 0..=1"
            ))
        }
    }
}

/// The shared-prefix agents: one definition, in `llm-requests`, for the
/// simulator and the live agent (`emulator agent --agent-fraction`).
pub use llm_requests::agents::AgentMix;

/// The request mix: short interactive requests and long bulk ones, sizes
/// uniform in the inclusive ranges, and optionally agent calls that share
/// prefixes ([`AgentMix`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Share of short requests.
    pub short_fraction: f64,
    /// Short prompt tokens, [lo, hi].
    pub short_prompt_tokens: [u32; 2],
    /// Short output tokens, [lo, hi].
    pub short_output_tokens: [u32; 2],
    /// Long prompt tokens, [lo, hi].
    pub long_prompt_tokens: [u32; 2],
    /// Long output tokens, [lo, hi].
    pub long_output_tokens: [u32; 2],
    /// The long prompts in words, for the emulation's `pktgen agent
    /// --long-prompt-words`, which writes words and lets tokenfeat count
    /// tokens: `long_prompt_tokens / 1.3` (English text runs about 1.3
    /// cl100k tokens a word). The simulator itself uses the tokens.
    pub long_prompt_words: [u32; 2],
    /// Share of all requests that are agent calls (0: none, as in the
    /// emulated cluster); `short_fraction` splits the rest.
    #[serde(default)]
    pub agent_fraction: f64,
    /// The agents, when `agent_fraction` > 0.
    #[serde(default)]
    pub agents: AgentMix,
}

fn mean(r: [u32; 2]) -> f64 {
    (f64::from(r[0]) + f64::from(r[1])) / 2.0
}

impl Workload {
    /// Mean (prompt, output) tokens of short requests.
    pub fn short_mean(&self) -> (f64, f64) {
        (
            mean(self.short_prompt_tokens),
            mean(self.short_output_tokens),
        )
    }

    /// Share of all requests that are short.
    pub fn short_share(&self) -> f64 {
        (1.0 - self.agent_fraction) * self.short_fraction
    }

    /// Mean (prompt, output) tokens of long requests: long prompts and
    /// agent calls (both bulk work), weighted by their shares. Agent calls
    /// count their whole prompt, as on a cold cache: the capacity the loads
    /// are fractions of assumes no prefix-cache hit.
    pub fn long_mean(&self) -> (f64, f64) {
        let plain = (mean(self.long_prompt_tokens), mean(self.long_output_tokens));
        let long_plain = (1.0 - self.agent_fraction) * (1.0 - self.short_fraction);
        let total = long_plain + self.agent_fraction;
        if self.agent_fraction <= 0.0 || total <= 0.0 {
            return plain;
        }
        let agent = self.agents.mean();
        let (wp, wa) = (long_plain / total, self.agent_fraction / total);
        (wp * plain.0 + wa * agent.0, wp * plain.1 + wa * agent.1)
    }

    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.short_fraction) {
            return Err("workload: short_fraction must be in 0..=1".into());
        }
        if !(0.0..=1.0).contains(&self.agent_fraction) {
            return Err("workload: agent_fraction must be in 0..=1".into());
        }
        if self.agent_fraction > 0.0 {
            self.agents
                .validate()
                .map_err(|e| format!("workload: {e}"))?;
        }
        for (n, r) in [
            ("short_prompt_tokens", self.short_prompt_tokens),
            ("short_output_tokens", self.short_output_tokens),
            ("long_prompt_tokens", self.long_prompt_tokens),
            ("long_output_tokens", self.long_output_tokens),
        ] {
            if r[0] > r[1] {
                return Err(format!("workload: {n} [{}, {}] is empty", r[0], r[1]));
            }
        }
        Ok(())
    }
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            short_fraction: 0.7,
            short_prompt_tokens: [10, 40],
            short_output_tokens: [16, 48],
            long_prompt_tokens: [400, 2000],
            long_output_tokens: [128, 512],
            long_prompt_words: [310, 1540],
            agent_fraction: 0.0,
            agents: AgentMix::default(),
        }
    }
}

/// The two nodes of the evaluation cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalNodes {
    /// Small, fast to first token, little capacity, near.
    pub edge: NodeParams,
    /// Large, more capacity, far.
    pub centre: NodeParams,
}

/// The two paths of the evaluation cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalPaths {
    /// Appliance to edge: a low-delay line.
    pub line: PathParams,
    /// Appliance to centre: the public internet.
    pub internet: PathParams,
}

/// The emulated cluster of `make eval`, one appliance, one service, an edge
/// instance over `line` and a centre instance over `internet`. The
/// emulation reads it from `intellisim plan`, so both run the same numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalCluster {
    /// Node parameters.
    pub nodes: EvalNodes,
    /// Path parameters.
    pub paths: EvalPaths,
    /// Request mix.
    pub workload: Workload,
    /// NODE_STATE period, ms.
    pub report_interval_ms: f64,
    /// Loads, fractions of [`EvalCluster::capacity_rps`].
    pub loads: Vec<f64>,
    /// The nearly idle reference load.
    pub unloaded_load: f64,
    /// Seconds of arrivals per emulated run (the emulation's default).
    pub run_seconds: f64,
    /// Time between the nodes' first report and the first arrival, ms (the
    /// emulation waits 0.3 s for the first NODE_STATE reports).
    pub warmup_ms: f64,
    /// The agent's per-request timeout, ms: a request not complete by then
    /// failed, and its latencies are censored at it.
    pub timeout_ms: f64,
    /// The failure and recovery run.
    pub failover: FailoverTimeline,
}

/// The failure and recovery run of `make eval` (and `intellisim
/// failover`): IntelliNode at one load, and in one run the edge node is
/// killed and restarted, then the centre's path is black-holed and
/// restored. Times are seconds from the start of arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FailoverTimeline {
    /// Arrival rate, fraction of capacity.
    pub load: f64,
    /// The edge node's process is killed.
    pub kill_edge_s: f64,
    /// A new edge node process starts.
    pub restart_edge_s: f64,
    /// The centre's path (`internet`) starts losing every packet.
    pub cut_internet_s: f64,
    /// It carries traffic again.
    pub restore_internet_s: f64,
    /// Arrivals stop.
    pub arrivals_s: f64,
    /// Width of the report's time bins, ms.
    pub bin_ms: f64,
}

impl Default for FailoverTimeline {
    fn default() -> Self {
        FailoverTimeline {
            load: 0.5,
            kill_edge_s: 2.0,
            restart_edge_s: 4.0,
            cut_internet_s: 6.0,
            restore_internet_s: 8.0,
            arrivals_s: 10.0,
            bin_ms: 200.0,
        }
    }
}

impl FailoverTimeline {
    /// Each step after the one before, all within the arrivals.
    pub fn validate(&self) -> Result<(), String> {
        let steps = [
            0.0,
            self.kill_edge_s,
            self.restart_edge_s,
            self.cut_internet_s,
            self.restore_internet_s,
            self.arrivals_s,
        ];
        if steps.iter().any(|t| !t.is_finite()) || steps.windows(2).any(|w| w[1] <= w[0]) {
            return Err(
                "failover: 0 < kill_edge_s < restart_edge_s < cut_internet_s < \
                 restore_internet_s < arrivals_s"
                    .into(),
            );
        }
        if !(self.load.is_finite()
            && self.load > 0.0
            && self.bin_ms.is_finite()
            && self.bin_ms > 0.0)
        {
            return Err("failover: load and bin_ms must be > 0".into());
        }
        Ok(())
    }
}

impl Default for EvalCluster {
    fn default() -> Self {
        EvalCluster {
            nodes: EvalNodes {
                edge: NodeParams {
                    base_ttft_ms: 20.0,
                    prefill_tps: 4000.0,
                    decode_tps: 400.0,
                    concurrency: 16,
                    kv_tokens: 32_768,
                },
                centre: NodeParams {
                    base_ttft_ms: 40.0,
                    prefill_tps: 40_000.0,
                    decode_tps: 800.0,
                    concurrency: 16,
                    kv_tokens: 262_144,
                },
            },
            paths: EvalPaths {
                line: PathParams {
                    one_way_ms: 0.5,
                    jitter_ms: 0.1,
                    loss: 0.0,
                },
                internet: PathParams {
                    one_way_ms: 10.0,
                    jitter_ms: 3.0,
                    loss: 0.01,
                },
            },
            workload: Workload::default(),
            report_interval_ms: 20.0,
            loads: vec![0.5, 0.8, 0.95],
            unloaded_load: 0.05,
            run_seconds: 15.0,
            warmup_ms: 300.0,
            timeout_ms: 20_000.0,
            failover: FailoverTimeline::default(),
        }
    }
}

impl EvalCluster {
    /// Checks every number.
    pub fn validate(&self) -> Result<(), String> {
        self.nodes.edge.validate("edge")?;
        self.nodes.centre.validate("centre")?;
        self.paths.line.validate("line")?;
        self.paths.internet.validate("internet")?;
        self.workload.validate()?;
        self.failover.validate()?;
        let pos = |v: f64| v.is_finite() && v > 0.0;
        if !(pos(self.report_interval_ms) && pos(self.run_seconds) && pos(self.timeout_ms)) {
            return Err("report_interval_ms, run_seconds and timeout_ms must be > 0".into());
        }
        if !(self.warmup_ms.is_finite() && self.warmup_ms >= 0.0) {
            return Err("warmup_ms must be >= 0".into());
        }
        if self
            .loads
            .iter()
            .chain([&self.unloaded_load])
            .any(|l| !pos(*l))
        {
            return Err("loads must be > 0".into());
        }
        Ok(())
    }

    /// The largest total arrival rate, requests/s, the two nodes can
    /// sustain with the best split of each class between them
    /// ([`capacity`]).
    pub fn capacity_rps(&self) -> f64 {
        capacity(
            &self.workload,
            [
                Pool {
                    node: self.nodes.edge,
                    count: 1,
                },
                Pool {
                    node: self.nodes.centre,
                    count: 1,
                },
            ],
        )
        .rate_rps
    }

    /// The key a load goes by in the output: "50" for 0.5.
    pub fn load_key(load: f64) -> String {
        format!("{}", (load * 100.0).round() as i64)
    }
}

/// Identical nodes seen as one capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pool {
    /// Their parameters.
    pub node: NodeParams,
    /// How many.
    pub count: u32,
}

/// The solution of the capacity problem.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Capacity {
    /// Largest sustainable total arrival rate, requests/s.
    pub rate_rps: f64,
    /// Share of short requests on pool 0 at that rate.
    pub short_on_first: f64,
    /// Share of long requests on pool 0 at that rate.
    pub long_on_first: f64,
}

/// The largest λ such that some split `x` of each class over two pools
/// keeps every pool's slot utilisation at most 1:
///
/// ```text
/// max λ  s.t.  for each pool p: Σ_c λ·frac_c·x_{c,p}·slot_time_{c,p} ≤ concurrency_p·count_p
///              Σ_p x_{c,p} = 1,  x ≥ 0
/// ```
///
/// with `slot_time` at the class's mean token counts. Solved exactly: with
/// `a`, `b` the short and long shares on pool 0, `1/λ` is the smaller of
/// the two pools' load per unit rate, `max(f0(a, b), f1(a, b))`, both
/// linear. The minimum of the maximum of two linear functions over the
/// unit square lies at a corner, or where `f0 = f1` on an edge (on the
/// segment `f0 = f1` the objective is linear, so it is minimal at an end,
/// which lies on the square's boundary). So the corners and the edge
/// crossings are the only candidates.
pub fn capacity(w: &Workload, pools: [Pool; 2]) -> Capacity {
    let (sp, so) = w.short_mean();
    let (lp, lo) = w.long_mean();
    let fs = w.short_share();
    let fl = 1.0 - fs;
    let slots = |p: &Pool| f64::from(p.node.concurrency) * f64::from(p.count);
    let (c0, c1) = (slots(&pools[0]), slots(&pools[1]));
    let [p0, p1] = pools;
    let (s0, l0) = (p0.node.slot_time_s(sp, so), p0.node.slot_time_s(lp, lo));
    let (s1, l1) = (p1.node.slot_time_s(sp, so), p1.node.slot_time_s(lp, lo));
    // Utilisation per unit arrival rate.
    let f0 = |a: f64, b: f64| (fs * a * s0 + fl * b * l0) / c0;
    let f1 = |a: f64, b: f64| (fs * (1.0 - a) * s1 + fl * (1.0 - b) * l1) / c1;
    let obj = |a: f64, b: f64| f0(a, b).max(f1(a, b));
    let mut candidates: Vec<(f64, f64)> = vec![(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)];
    // Each edge: one coordinate fixed, the other t in [0, 1].
    let edges: [&dyn Fn(f64) -> (f64, f64); 4] =
        [&|t| (t, 0.0), &|t| (t, 1.0), &|t| (0.0, t), &|t| (1.0, t)];
    for e in edges {
        let h = |t: f64| {
            let (a, b) = e(t);
            f0(a, b) - f1(a, b)
        };
        let (h0, h1) = (h(0.0), h(1.0));
        if h0 != h1 && (h0 <= 0.0) != (h1 <= 0.0) {
            let t = (h0 / (h0 - h1)).clamp(0.0, 1.0);
            candidates.push(e(t));
        }
    }
    let mut best = (f64::INFINITY, 0.0, 0.0);
    for (a, b) in candidates {
        let v = obj(a, b);
        if v < best.0 {
            best = (v, a, b);
        }
    }
    Capacity {
        rate_rps: if best.0 > 0.0 && best.0.is_finite() {
            1.0 / best.0
        } else {
            0.0
        },
        short_on_first: best.1,
        long_on_first: best.2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(base_ms: f64, prefill: f64, decode: f64, conc: u32) -> NodeParams {
        NodeParams {
            base_ttft_ms: base_ms,
            prefill_tps: prefill,
            decode_tps: decode,
            concurrency: conc,
            kv_tokens: 1000,
        }
    }

    fn mix(short: f64, s: [u32; 2], l: [u32; 2]) -> Workload {
        Workload {
            short_fraction: short,
            short_prompt_tokens: [0, 0],
            short_output_tokens: s,
            long_prompt_tokens: [0, 0],
            long_output_tokens: l,
            long_prompt_words: [0, 0],
            ..Workload::default()
        }
    }

    #[test]
    fn identical_pools_add_up() {
        // Short: 10 tokens at 100/s = 0.1 s; long: 100 tokens = 1 s.
        // Half and half: 0.55 slot-seconds per request, 32 slots.
        let w = mix(0.5, [10, 10], [100, 100]);
        let n = node(0.0, 1.0, 100.0, 16);
        let c = capacity(&w, [Pool { node: n, count: 1 }, Pool { node: n, count: 1 }]);
        assert!((c.rate_rps - 32.0 / 0.55).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn specialised_pools_split_by_comparative_advantage() {
        // Short: 50 prompt tokens, no output; long: 100 output tokens.
        // Pool 0 prefills at 1000/s (short 0.05 s), pool 1 at 100/s (short
        // 0.5 s); both decode at 100/s (long 1 s); one slot each; half and
        // half. By hand: all short on pool 0, long share b on pool 0 with
        // 0.5·0.05 + 0.5·b = 0.5·(1 − b): b = 0.475, 1/λ = 0.2625.
        let w = Workload {
            short_fraction: 0.5,
            short_prompt_tokens: [50, 50],
            short_output_tokens: [0, 0],
            long_prompt_tokens: [0, 0],
            long_output_tokens: [100, 100],
            long_prompt_words: [0, 0],
            ..Workload::default()
        };
        let p0 = Pool {
            node: node(0.0, 1000.0, 100.0, 1),
            count: 1,
        };
        let p1 = Pool {
            node: node(0.0, 100.0, 100.0, 1),
            count: 1,
        };
        let c = capacity(&w, [p0, p1]);
        assert!((c.rate_rps - 1.0 / 0.2625).abs() < 1e-9, "{c:?}");
        assert!((c.short_on_first - 1.0).abs() < 1e-9, "{c:?}");
        assert!((c.long_on_first - 0.475).abs() < 1e-9, "{c:?}");
        // And no point of a fine grid does better.
        let mut brute: f64 = 0.0;
        for i in 0..=200 {
            for j in 0..=200 {
                let (a, b) = (f64::from(i) / 200.0, f64::from(j) / 200.0);
                let u0 = 0.5 * a * 0.05 + 0.5 * b * 1.0;
                let u1 = 0.5 * (1.0 - a) * 0.5 + 0.5 * (1.0 - b) * 1.0;
                brute = brute.max(1.0 / u0.max(u1));
            }
        }
        assert!(c.rate_rps >= brute - 1e-9, "{c:?} {brute}");
        // Swapping the pools mirrors the split.
        let m = capacity(&w, [p1, p0]);
        assert!((m.rate_rps - c.rate_rps).abs() < 1e-9 && m.short_on_first.abs() < 1e-9);
    }

    #[test]
    fn eval_cluster_capacity_is_between_the_single_nodes_and_their_sum() {
        let e = EvalCluster::default();
        e.validate().unwrap();
        let c = e.capacity_rps();
        let w = e.workload;
        let alone = |n: NodeParams| {
            let (sp, so) = w.short_mean();
            let (lp, lo) = w.long_mean();
            f64::from(n.concurrency)
                / (w.short_fraction * n.slot_time_s(sp, so)
                    + (1.0 - w.short_fraction) * n.slot_time_s(lp, lo))
        };
        let (a, b) = (alone(e.nodes.edge), alone(e.nodes.centre));
        // Splitting every class in proportion to the nodes' capacities is
        // feasible, so specialising can only do better.
        assert!(c >= a + b - 1e-9, "{c} {a} {b}");
    }
}
