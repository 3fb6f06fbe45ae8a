//! `GET /metrics` of the emulated node: vLLM's own metric names, meanings,
//! labels and histogram buckets (vLLM V1, `vllm/v1/metrics/loggers.py`), in
//! the Prometheus text exposition format 0.0.4 as `prometheus_client`
//! writes it, so a collector or router that reads a vLLM server reads the
//! emulator unchanged.
//!
//! | family | type | meaning here |
//! |---|---|---|
//! | `vllm:num_requests_running` | gauge | requests holding a batch slot |
//! | `vllm:num_requests_waiting` | gauge | requests queued for a slot |
//! | `vllm:kv_cache_usage_perc` | gauge | KV tokens of running requests / `--kv-tokens`, 0–1 (1 = full) |
//! | `vllm:prefix_cache_queries_total` | counter | prompt tokens looked up in the prefix cache |
//! | `vllm:prefix_cache_hits_total` | counter | prompt tokens found there |
//! | `vllm:time_to_first_token_seconds` | histogram | arrival at the node (after the emulated way in) to the first token produced (before the way out) |
//! | `vllm:cache_config_info` | gauge, always 1 | the cache configuration, as labels |
//!
//! Every family but `vllm:cache_config_info` has the labels
//! `engine="0"` and `model_name=` the served model (`--name`); the info
//! gauge has `engine` and the cache config's fields (`block_size`,
//! `cache_dtype`, `enable_prefix_caching`, `gpu_memory_utilization`,
//! `num_gpu_blocks`), as vLLM's `CacheConfig.metrics_info()` gives them:
//! strings, Python's `True` included. Counters are written the way
//! `prometheus_client` writes them: the family named with its `_total`
//! suffix.

use std::fmt::Write as _;

use crate::prefix_cache::BLOCK_TOKENS;

/// vLLM's bucket upper bounds for `vllm:time_to_first_token_seconds`.
pub const TTFT_BUCKETS_S: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// A cumulative-on-render histogram over [`TTFT_BUCKETS_S`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TtftHistogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    per_bucket: [u64; TTFT_BUCKETS_S.len() + 1],
    sum_s: f64,
    count: u64,
}

impl TtftHistogram {
    /// Records one time to first token.
    pub fn observe(&mut self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let i = TTFT_BUCKETS_S
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(TTFT_BUCKETS_S.len());
        self.per_bucket[i] += 1;
        self.sum_s += seconds;
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Everything `/metrics` shows, read at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct VllmSnapshot {
    /// The served model's name (`model_name` label).
    pub model_name: String,
    /// Requests holding a batch slot.
    pub running: usize,
    /// Requests waiting for one.
    pub waiting: usize,
    /// KV-cache use, 0 to 1.
    pub kv_cache_usage: f64,
    /// Prefix-cache tokens looked up.
    pub prefix_cache_queries: u64,
    /// Prefix-cache tokens found.
    pub prefix_cache_hits: u64,
    /// Blocks of the KV cache (`num_gpu_blocks`).
    pub num_gpu_blocks: u64,
    /// Times to first token.
    pub ttft: TtftHistogram,
}

/// Python's `repr` of a float, which `prometheus_client` writes: `2.0`,
/// `0.001`, `+Inf`.
fn float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{v:?}")
    }
}

/// A label value escaped as the exposition format wants.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text of `s`.
pub fn render(s: &VllmSnapshot) -> String {
    let labels = format!("engine=\"0\",model_name=\"{}\"", escape(&s.model_name));
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{{{labels}}} {}", float(value));
    };
    family(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
        s.running as f64,
    );
    family(
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
        s.waiting as f64,
    );
    family(
        "vllm:kv_cache_usage_perc",
        "gauge",
        "KV-cache usage. 1 means 100 percent usage.",
        s.kv_cache_usage.clamp(0.0, 1.0),
    );
    family(
        "vllm:prefix_cache_queries_total",
        "counter",
        "Prefix cache queries, in terms of number of queried tokens.",
        s.prefix_cache_queries as f64,
    );
    family(
        "vllm:prefix_cache_hits_total",
        "counter",
        "Prefix cache hits, in terms of number of cached tokens.",
        s.prefix_cache_hits as f64,
    );
    let name = "vllm:time_to_first_token_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Histogram of time to first token in seconds."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0u64;
    let bounds = TTFT_BUCKETS_S.iter().copied().chain([f64::INFINITY]);
    for (le, n) in bounds.zip(s.ttft.per_bucket) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"{}\"}} {}",
            float(le),
            float(cumulative as f64)
        );
    }
    let _ = writeln!(
        out,
        "{name}_count{{{labels}}} {}",
        float(s.ttft.count as f64)
    );
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", float(s.ttft.sum_s));
    let name = "vllm:cache_config_info";
    let _ = writeln!(
        out,
        "# HELP {name} Information of the LLMEngine CacheConfig"
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(
        out,
        "{name}{{block_size=\"{BLOCK_TOKENS}\",cache_dtype=\"auto\",enable_prefix_caching=\"True\",engine=\"0\",gpu_memory_utilization=\"0.9\",num_gpu_blocks=\"{}\"}} 1.0",
        s.num_gpu_blocks
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_vllms_bounds() {
        let mut h = TtftHistogram::default();
        for s in [0.0005, 0.03, 0.03, 3000.0] {
            h.observe(s);
        }
        let text = render(&VllmSnapshot {
            model_name: "edge".into(),
            running: 2,
            waiting: 5,
            kv_cache_usage: 0.25,
            prefix_cache_queries: 1000,
            prefix_cache_hits: 640,
            num_gpu_blocks: 4096,
            ttft: h,
        });
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        has("vllm:num_requests_waiting{engine=\"0\",model_name=\"edge\"} 5.0");
        has("vllm:num_requests_running{engine=\"0\",model_name=\"edge\"} 2.0");
        has("vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"edge\"} 0.25");
        has("vllm:prefix_cache_hits_total{engine=\"0\",model_name=\"edge\"} 640.0");
        has("# TYPE vllm:time_to_first_token_seconds histogram");
        has("vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"edge\",le=\"0.001\"} 1.0");
        has("vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"edge\",le=\"0.02\"} 1.0");
        has("vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"edge\",le=\"0.04\"} 3.0");
        has("vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"edge\",le=\"2560.0\"} 3.0");
        has("vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"edge\",le=\"+Inf\"} 4.0");
        has("vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"edge\"} 4.0");
        assert!(text.contains("vllm:cache_config_info{block_size=\"16\","));
        assert!(text.contains("num_gpu_blocks=\"4096\"} 1.0"));
    }
}
