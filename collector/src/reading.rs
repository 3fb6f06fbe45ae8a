//! What one scrape of an inference server's Prometheus endpoint says, by
//! the server's own metric names.
//!
//! The exposition text is parsed by `openmetrics-parser` (Prometheus text
//! format 0.0.4). The server is recognised by the families present, first
//! match wins:
//!
//! | server | waiting | running | KV-cache use (0–1) | TTFT histogram | prefix cache |
//! |---|---|---|---|---|---|
//! | vLLM | `vllm:num_requests_waiting` | `vllm:num_requests_running` | `vllm:kv_cache_usage_perc` (else the deprecated `vllm:gpu_cache_usage_perc`) | `vllm:time_to_first_token_seconds` | `vllm:prefix_cache_queries`, `vllm:prefix_cache_hits` (tokens; `_total` counters), else their names before vLLM 0.10, `vllm:gpu_prefix_cache_queries`, `vllm:gpu_prefix_cache_hits` |
//! | SGLang | `sglang:num_queue_reqs` | `sglang:num_running_reqs` | `sglang:token_usage` | `sglang:time_to_first_token_seconds` | `sglang:prompt_tokens`, `sglang:cached_tokens` (tokens; `_total` counters, summed over `cache_source`), else `sglang:cache_hit_rate` (a ratio), with `sglang:prompt_tokens` when present |
//! | TensorRT-LLM (`trtllm-serve`) | `trtllm_num_requests_waiting` | `trtllm_num_requests_running` | `trtllm_kv_cache_utilization` | `trtllm_time_to_first_token_seconds` | — |
//! | TensorRT-LLM on Triton | `nv_trt_llm_request_metrics{request_type="waiting"}` (else `nv_inference_pending_request_count`) | `nv_trt_llm_request_metrics{request_type="active"}` | `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}` (else `used` / `max`) | — | — |
//! | TGI | `tgi_queue_size` | `tgi_batch_current_size` | — | — | — |
//!
//! A family with several series (data-parallel engines, several models
//! on one server) is summed for counts and histograms, and its largest
//! series is taken for KV-cache use (the fullest engine is the one a new
//! request may wait on). SGLang's series of a tensor- or pipeline-parallel
//! rank other than 0 repeat rank 0's and are left out.

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricFamily, PrometheusType, PrometheusValue};
use std::collections::HashMap;

/// Which server's names a page used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// vLLM (`vllm:` names).
    Vllm,
    /// SGLang (`sglang:` names).
    Sglang,
    /// TensorRT-LLM's own server, `trtllm-serve` (`trtllm_` names).
    TensorRtLlm,
    /// TensorRT-LLM behind Triton Inference Server, its `tensorrtllm`
    /// backend (`nv_trt_llm_` names).
    TritonTrtLlm,
    /// Text Generation Inference (`tgi_` names).
    Tgi,
}

impl Server {
    /// Stable lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Server::Vllm => "vllm",
            Server::Sglang => "sglang",
            Server::TensorRtLlm => "trtllm",
            Server::TritonTrtLlm => "triton_trtllm",
            Server::Tgi => "tgi",
        }
    }
}

/// A cumulative histogram: `(upper bound, observations ≤ it)` ascending,
/// `+Inf` last, with the sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Cumulative bucket counts by upper bound.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

/// The prefix cache's own account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PrefixCacheStats {
    /// Counters in tokens since start (vLLM).
    Tokens {
        /// Prompt tokens looked up.
        queries: f64,
        /// Of those, found cached.
        hits: f64,
    },
    /// A hit rate, 0–1, over the server's recent batches (SGLang), and
    /// the prompt tokens counted since start when the server says.
    HitRate {
        /// `sglang:cache_hit_rate`.
        rate: f64,
        /// `sglang:prompt_tokens_total`.
        prompt_tokens: Option<f64>,
    },
}

/// One scrape's facts; `None` where the server does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Whose names the page used.
    pub server: Server,
    /// Requests waiting to be scheduled.
    pub waiting: Option<f64>,
    /// Requests in the running batch.
    pub running: Option<f64>,
    /// KV-cache use, 0 to 1.
    pub kv_usage: Option<f64>,
    /// Time-to-first-token histogram, seconds, cumulative since start.
    pub ttft: Option<Histogram>,
    /// Prefix-cache account.
    pub prefix_cache: Option<PrefixCacheStats>,
}

/// Why a page could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    /// Not Prometheus text exposition.
    Syntax(String),
    /// Valid text, but none of the known servers' names.
    UnknownServer,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Syntax(e) => write!(f, "not Prometheus text exposition: {e}"),
            ReadError::UnknownServer => {
                f.write_str("no vLLM, SGLang, TensorRT-LLM, Triton TensorRT-LLM or TGI queue metric on the page")
            }
        }
    }
}

impl std::error::Error for ReadError {}

type Families = HashMap<String, MetricFamily<PrometheusType, PrometheusValue>>;

/// Which series of a family count.
#[derive(Debug, Clone, Copy)]
enum Select<'a> {
    /// Every series (data-parallel engines, several models).
    All,
    /// The series whose label `.0` is `.1` (Triton's request and block
    /// types, which are different quantities in one family).
    Label(&'a str, &'a str),
    /// The scheduler of the first tensor- and pipeline-parallel rank of
    /// each data-parallel rank: SGLang reports one per rank when asked
    /// to (`--enable-metrics-for-all-schedulers`), each with the same
    /// queue, which a plain sum would count once per rank.
    FirstRanks,
}

impl Select<'_> {
    fn keeps<V: openmetrics_parser::RenderableMetricValue + Clone>(
        self,
        sample: &openmetrics_parser::Sample<V>,
    ) -> bool {
        let labels = sample.get_labelset().ok();
        let label = |name: &str| labels.as_ref().and_then(|l| l.get_label_value(name));
        match self {
            Select::All => true,
            Select::Label(name, value) => label(name) == Some(value),
            Select::FirstRanks => ["tp_rank", "pp_rank"]
                .iter()
                .all(|rank| label(rank).map_or(true, |r| r == "0")),
        }
    }
}

/// The finite plain values (gauge, counter, untyped) of the series
/// `select` keeps in family `name`, or in `name_total` (a counter as
/// `prometheus_client` names it). `+Inf` and `NaN` say nothing about a
/// queue and are left out.
fn values(families: &Families, name: &str, select: Select<'_>) -> Option<Vec<f64>> {
    let family = families
        .get(name)
        .or_else(|| families.get(&format!("{name}_total")))?;
    let v: Vec<f64> = family
        .iter_samples()
        .filter(|s| select.keeps(s))
        .filter_map(|s| match &s.value {
            PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => Some(n.as_f64()),
            PrometheusValue::Counter(c) => Some(c.value.as_f64()),
            _ => None,
        })
        .filter(|v| v.is_finite())
        .collect();
    (!v.is_empty()).then_some(v)
}

fn sum_of(families: &Families, name: &str, select: Select<'_>) -> Option<f64> {
    values(families, name, select).map(|v| v.iter().sum())
}

fn max_of(families: &Families, name: &str, select: Select<'_>) -> Option<f64> {
    values(families, name, select).map(|v| v.iter().copied().fold(f64::MIN, f64::max))
}

fn sum(families: &Families, name: &str) -> Option<f64> {
    sum_of(families, name, Select::All)
}

fn max(families: &Families, name: &str) -> Option<f64> {
    max_of(families, name, Select::All)
}

/// Histogram family `name`, its series summed bucket by bucket (series
/// with other bounds than the first are left out).
fn histogram(families: &Families, name: &str) -> Option<Histogram> {
    let family = families.get(name)?;
    let mut total: Option<Histogram> = None;
    for s in family.iter_samples() {
        let PrometheusValue::Histogram(h) = &s.value else {
            continue;
        };
        let mut buckets: Vec<(f64, f64)> = h
            .buckets
            .iter()
            .map(|b| (b.upper_bound, b.count.as_f64()))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let this = Histogram {
            sum: h.sum.map_or(0.0, |n| n.as_f64()),
            count: h
                .count
                .map_or_else(|| buckets.last().map_or(0.0, |b| b.1), |c| c as f64),
            buckets,
        };
        total = Some(match total {
            None => this,
            Some(mut t) => {
                let same_bounds = t.buckets.len() == this.buckets.len()
                    && t.buckets.iter().zip(&this.buckets).all(|(a, b)| a.0 == b.0);
                if same_bounds {
                    for (a, b) in t.buckets.iter_mut().zip(&this.buckets) {
                        a.1 += b.1;
                    }
                    t.sum += this.sum;
                    t.count += this.count;
                }
                t
            }
        });
    }
    total
}

/// The page as the parser's grammar wants it, without changing what the
/// text format says: blank lines and comments other than `# HELP` and
/// `# TYPE` are ignored by the format (exporters such as TGI's put a
/// blank line after every family), a tab separates tokens as a space
/// does, and every line, the last included, ends in a newline.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let trimmed = line.trim_start();
        let comment = trimmed.starts_with('#')
            && !trimmed.starts_with("# HELP ")
            && !trimmed.starts_with("# TYPE ");
        if trimmed.is_empty() || comment {
            continue;
        }
        out.extend(line.chars().map(|c| if c == '\t' { ' ' } else { c }));
        out.push('\n');
    }
    out
}

/// Reads one exposition page.
pub fn read(text: &str) -> Result<Reading, ReadError> {
    let text = normalise(text);
    let families = parse_prometheus(&text)
        // The parser's message spans lines; a log line must not.
        .map_err(|e| {
            ReadError::Syntax(
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })?
        .families;
    let has = |n: &str| families.contains_key(n);
    let reading = if has("vllm:num_requests_waiting") || has("vllm:num_requests_running") {
        // The token counters, or their names in vLLM V1 before 0.10.
        let counters = |prefix: &str| {
            Some(PrefixCacheStats::Tokens {
                queries: sum(&families, &format!("{prefix}_queries"))?,
                hits: sum(&families, &format!("{prefix}_hits"))?,
            })
        };
        Reading {
            server: Server::Vllm,
            waiting: sum(&families, "vllm:num_requests_waiting"),
            running: sum(&families, "vllm:num_requests_running"),
            kv_usage: max(&families, "vllm:kv_cache_usage_perc")
                .or_else(|| max(&families, "vllm:gpu_cache_usage_perc")),
            ttft: histogram(&families, "vllm:time_to_first_token_seconds"),
            prefix_cache: counters("vllm:prefix_cache")
                .or_else(|| counters("vllm:gpu_prefix_cache")),
        }
    } else if has("sglang:num_queue_reqs") || has("sglang:num_running_reqs") {
        let ranks = Select::FirstRanks;
        Reading {
            server: Server::Sglang,
            waiting: sum_of(&families, "sglang:num_queue_reqs", ranks),
            running: sum_of(&families, "sglang:num_running_reqs", ranks),
            kv_usage: max_of(&families, "sglang:token_usage", ranks),
            ttft: histogram(&families, "sglang:time_to_first_token_seconds"),
            // The token counters when the server has both (exact, as
            // vLLM's); else its hit rate, which is only the latest
            // prefill batch's.
            prefix_cache: match (
                sum_of(&families, "sglang:prompt_tokens", ranks),
                sum_of(&families, "sglang:cached_tokens", ranks),
            ) {
                (Some(queries), Some(hits)) => Some(PrefixCacheStats::Tokens { queries, hits }),
                (prompt_tokens, _) => {
                    max_of(&families, "sglang:cache_hit_rate", ranks).map(|rate| {
                        PrefixCacheStats::HitRate {
                            rate: rate.clamp(0.0, 1.0),
                            prompt_tokens,
                        }
                    })
                }
            },
        }
    } else if has("trtllm_num_requests_waiting") || has("trtllm_num_requests_running") {
        Reading {
            server: Server::TensorRtLlm,
            waiting: sum(&families, "trtllm_num_requests_waiting"),
            running: sum(&families, "trtllm_num_requests_running"),
            kv_usage: max(&families, "trtllm_kv_cache_utilization"),
            ttft: histogram(&families, "trtllm_time_to_first_token_seconds"),
            prefix_cache: None,
        }
    } else if has("nv_trt_llm_request_metrics") {
        let request = |t| {
            sum_of(
                &families,
                "nv_trt_llm_request_metrics",
                Select::Label("request_type", t),
            )
        };
        let blocks = |t| {
            sum_of(
                &families,
                "nv_trt_llm_kv_cache_block_metrics",
                Select::Label("kv_cache_block_type", t),
            )
        };
        let block_fraction = || {
            max_of(
                &families,
                "nv_trt_llm_kv_cache_block_metrics",
                Select::Label("kv_cache_block_type", "fraction"),
            )
        };
        Reading {
            server: Server::TritonTrtLlm,
            // The backend's own queue; Triton's, for a backend too old
            // to report one.
            waiting: request("waiting")
                .or_else(|| sum(&families, "nv_inference_pending_request_count")),
            running: request("active"),
            kv_usage: block_fraction().or_else(|| match (blocks("used"), blocks("max")) {
                (Some(used), Some(max)) if max > 0.0 => Some(used / max),
                _ => None,
            }),
            ttft: None,
            prefix_cache: None,
        }
    } else if has("tgi_queue_size") || has("tgi_batch_current_size") {
        Reading {
            server: Server::Tgi,
            waiting: sum(&families, "tgi_queue_size"),
            running: sum(&families, "tgi_batch_current_size"),
            kv_usage: None,
            ttft: None,
            prefix_cache: None,
        }
    } else {
        return Err(ReadError::UnknownServer);
    };
    Ok(Reading {
        kv_usage: reading.kv_usage.map(|k| k.clamp(0.0, 1.0)),
        ..reading
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As vLLM 0.10 writes it (`prometheus_client`), two engines.
    pub(crate) const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 5.0
vllm:num_requests_waiting{engine="1",model_name="m"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1000.0
vllm:prefix_cache_queries_total{engine="1",model_name="m"} 0.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 640.0
vllm:prefix_cache_hits_total{engine="1",model_name="m"} 0.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 3.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 4.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 4.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 2.5
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",engine="0"} 1.0
"#;

    #[test]
    fn vllm_by_its_names_summed_over_engines() {
        let r = read(VLLM).unwrap();
        assert_eq!(r.server, Server::Vllm);
        assert_eq!(r.waiting, Some(7.0));
        assert_eq!(r.running, Some(4.0));
        assert_eq!(r.kv_usage, Some(0.75));
        assert_eq!(
            r.prefix_cache,
            Some(PrefixCacheStats::Tokens {
                queries: 1000.0,
                hits: 640.0
            })
        );
        let h = r.ttft.unwrap();
        assert_eq!(
            h.buckets,
            vec![(0.01, 1.0), (0.1, 3.0), (f64::INFINITY, 4.0)]
        );
        assert_eq!((h.sum, h.count), (2.5, 4.0));
    }

    #[test]
    fn sglang_trtllm_and_tgi_by_their_names() {
        let sglang =
            "# TYPE sglang:num_queue_reqs gauge\nsglang:num_queue_reqs{model_name=\"m\"} 4\n\
            # TYPE sglang:num_running_reqs gauge\nsglang:num_running_reqs{model_name=\"m\"} 2\n\
            # TYPE sglang:token_usage gauge\nsglang:token_usage{model_name=\"m\"} 0.3\n\
            # TYPE sglang:cache_hit_rate gauge\nsglang:cache_hit_rate{model_name=\"m\"} 0.6\n\
            # TYPE sglang:time_to_first_token_seconds histogram\n\
            sglang:time_to_first_token_seconds_bucket{le=\"0.5\",model_name=\"m\"} 2\n\
            sglang:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 2\n\
            sglang:time_to_first_token_seconds_sum{model_name=\"m\"} 0.4\n\
            sglang:time_to_first_token_seconds_count{model_name=\"m\"} 2";
        let r = read(sglang).unwrap();
        assert_eq!(r.server, Server::Sglang);
        assert_eq!(
            (r.waiting, r.running, r.kv_usage),
            (Some(4.0), Some(2.0), Some(0.3))
        );
        assert_eq!(
            r.prefix_cache,
            Some(PrefixCacheStats::HitRate {
                rate: 0.6,
                prompt_tokens: None
            })
        );
        assert_eq!(r.ttft.unwrap().count, 2.0);

        let trt = "# TYPE trtllm_num_requests_waiting gauge\ntrtllm_num_requests_waiting 1\n\
            # TYPE trtllm_num_requests_running gauge\ntrtllm_num_requests_running 6\n\
            # TYPE trtllm_kv_cache_utilization gauge\ntrtllm_kv_cache_utilization 0.9\n\
            # TYPE trtllm_time_to_first_token_seconds histogram\n\
            trtllm_time_to_first_token_seconds_bucket{le=\"0.1\",model_name=\"m\"} 2\n\
            trtllm_time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 3\n\
            trtllm_time_to_first_token_seconds_sum{model_name=\"m\"} 0.9\n\
            trtllm_time_to_first_token_seconds_count{model_name=\"m\"} 3\n";
        let r = read(trt).unwrap();
        assert_eq!(r.server, Server::TensorRtLlm);
        assert_eq!(
            (r.waiting, r.running, r.kv_usage),
            (Some(1.0), Some(6.0), Some(0.9))
        );
        assert_eq!(r.ttft.map(|h| h.count), Some(3.0));

        let tgi = "# TYPE tgi_queue_size gauge\ntgi_queue_size 3\n# TYPE tgi_batch_current_size gauge\ntgi_batch_current_size 8\n";
        let r = read(tgi).unwrap();
        assert_eq!(
            (r.server, r.waiting, r.running),
            (Server::Tgi, Some(3.0), Some(8.0))
        );
    }

    /// Triton's TensorRT-LLM backend, as its metrics page writes it: one
    /// family per kind, the quantity in a label.
    #[test]
    fn tensorrt_llm_on_triton_by_its_labels() {
        let triton = r#"# HELP nv_trt_llm_request_metrics TRT LLM request metrics
# TYPE nv_trt_llm_request_metrics gauge
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 3
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="context",version="1"} 1
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="scheduled",version="1"} 4
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 512
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 5
# HELP nv_trt_llm_kv_cache_block_metrics TRT LLM KV cache block metrics
# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per",model="tensorrt_llm",version="1"} 64
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="tensorrt_llm",version="1"} 100
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="free",model="tensorrt_llm",version="1"} 300
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="tensorrt_llm",version="1"} 400
# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="tensorrt_llm",version="1"} 0
nv_inference_pending_request_count{model="ensemble",version="1"} 0
"#;
        let r = read(triton).unwrap();
        assert_eq!(r.server, Server::TritonTrtLlm);
        assert_eq!(
            (r.waiting, r.running, r.kv_usage),
            (Some(3.0), Some(5.0), Some(0.25))
        );
        // A newer backend's own fraction wins over used / max; an older
        // one without a waiting count falls back on Triton's queue.
        let newer = triton.replace(
            "# HELP nv_inference_pending",
            "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\",model=\"tensorrt_llm\",version=\"1\"} 0.5\n# HELP nv_inference_pending",
        );
        assert_eq!(read(&newer).unwrap().kv_usage, Some(0.5));
        let older = triton
            .replace("request_type=\"waiting\"", "request_type=\"gone\"")
            .replace(
                "{model=\"ensemble\",version=\"1\"} 0",
                "{model=\"ensemble\",version=\"1\"} 7",
            );
        assert_eq!(read(&older).unwrap().waiting, Some(7.0));
    }

    /// SGLang's token counters, where it has them, are read as vLLM's
    /// are: cached prompt tokens summed over where they were cached.
    #[test]
    fn sglang_prefix_cache_from_its_token_counters() {
        let page = "# TYPE sglang:num_queue_reqs gauge\nsglang:num_queue_reqs{model_name=\"m\"} 1\n\
            # TYPE sglang:cache_hit_rate gauge\nsglang:cache_hit_rate{model_name=\"m\"} 0.0\n\
            # TYPE sglang:prompt_tokens_total counter\nsglang:prompt_tokens_total{model_name=\"m\"} 1000\n\
            # TYPE sglang:cached_tokens_total counter\n\
            sglang:cached_tokens_total{cache_source=\"device\",model_name=\"m\"} 500\n\
            sglang:cached_tokens_total{cache_source=\"host\",model_name=\"m\"} 100\n";
        assert_eq!(
            read(page).unwrap().prefix_cache,
            Some(PrefixCacheStats::Tokens {
                queries: 1000.0,
                hits: 600.0
            })
        );
    }

    /// With every scheduler reporting, SGLang repeats the queue on each
    /// tensor-parallel rank: counted once per data-parallel rank.
    #[test]
    fn sglang_counts_each_data_parallel_rank_once() {
        let mut page = String::from("# TYPE sglang:num_queue_reqs gauge\n");
        for dp in 0..2 {
            for tp in 0..4 {
                page.push_str(&format!(
                    "sglang:num_queue_reqs{{dp_rank=\"{dp}\",engine_type=\"unified\",model_name=\"m\",pp_rank=\"0\",tp_rank=\"{tp}\"}} {}\n",
                    3 + dp
                ));
            }
        }
        let r = read(&page).unwrap();
        assert_eq!((r.server, r.waiting), (Server::Sglang, Some(7.0)));
    }

    /// vLLM V1 before 0.10 named its prefix-cache counters `gpu_`.
    #[test]
    fn vllm_prefix_cache_counters_by_their_older_names() {
        let old = VLLM
            .replace("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries")
            .replace("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits");
        assert_eq!(
            read(&old).unwrap().prefix_cache,
            Some(PrefixCacheStats::Tokens {
                queries: 1000.0,
                hits: 640.0
            })
        );
    }

    /// What the text format allows and some exporters write: blank lines
    /// between and inside families, tabs between tokens, free comments,
    /// CRLF line ends, no final newline.
    #[test]
    fn blank_lines_tabs_and_comments_are_read_as_the_format_says() {
        let page = "# TYPE tgi_queue_size gauge\r\ntgi_queue_size\t3\r\n\r\n\
            # a free comment\n#\n\
            # TYPE tgi_batch_current_size gauge\n\ntgi_batch_current_size 8";
        let r = read(page).unwrap();
        assert_eq!(
            (r.server, r.waiting, r.running),
            (Server::Tgi, Some(3.0), Some(8.0))
        );
    }

    #[test]
    fn bad_pages_are_errors_not_panics() {
        assert!(matches!(
            read("<html>502 Bad Gateway</html>"),
            Err(ReadError::Syntax(_))
        ));
        assert_eq!(
            read("# TYPE up gauge\nup 1\n"),
            Err(ReadError::UnknownServer)
        );
        assert!(read("").is_err());
        // Every truncation and many byte flips of a real page: an answer,
        // never a panic.
        for end in 0..VLLM.len() {
            if VLLM.is_char_boundary(end) {
                let _ = read(&VLLM[..end]);
            }
        }
        let bytes = VLLM.as_bytes();
        for i in (0..bytes.len()).step_by(7) {
            for flip in [b'{', b'}', b'"', b' ', b'\n', b'x', b'#', b'=', b'-'] {
                let mut b = bytes.to_vec();
                b[i] = flip;
                if let Ok(t) = std::str::from_utf8(&b) {
                    let _ = read(t);
                }
            }
        }
    }
}
