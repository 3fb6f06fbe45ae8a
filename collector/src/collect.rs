//! The collector's loop: one thread per instance scrapes its Prometheus
//! endpoint every interval and pushes the NODE_STATE it derives (or the
//! down state at once when the scrape fails), and every capability
//! interval reads `/v1/models` and pushes CAPABILITY. One [`Pusher`] (one
//! sealing sequence) serves every thread, so the appliances' replay
//! windows see one increasing sequence from this peer.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{CollectorConfig, InstanceConfig, ModelClass};
use crate::derive::{self, Deriver};
use crate::push::Pusher;
use crate::reading::{self, PrefixCacheStats, Reading};

/// Largest page read from an endpoint.
const MAX_PAGE: u64 = 4 << 20;
/// Longest a scraping thread sleeps before it looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// What happened to one instance, as `--stats-json` and the exit summary
/// give it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InstanceStats {
    /// The node id.
    pub node: u16,
    /// The metrics URL.
    pub metrics_url: String,
    /// Whose metric names it used last (`vllm`, `sglang`, `trtllm`, `triton_trtllm`, `tgi`).
    pub server: Option<&'static str>,
    /// Scrapes that gave a reading.
    pub scrapes_ok: u64,
    /// Failed scrapes by reason: `connect` (no connection, timeout),
    /// `http_status`, `read` (body), `too_large` (a page over 4 MiB),
    /// `syntax` (not exposition text), `unknown_server` (no known names).
    pub scrape_failures: BTreeMap<&'static str, u64>,
    /// Scrapes of a known server whose page held no value a NODE_STATE
    /// carries (its families named, but no sample yet, as a server that
    /// has not served a request may write them): the node is up, but
    /// nothing is pushed for it, so the appliance's state for it ages.
    pub scrapes_without_state: u64,
    /// Times the node went down (a failure after a success, or first).
    pub went_down: u64,
    /// NODE_STATE messages pushed (down ones included).
    pub node_states: u64,
    /// CAPABILITY messages pushed.
    pub capabilities: u64,
    /// `/v1/models` reads that failed.
    pub models_failures: u64,
    /// The last reading's values.
    pub last: Option<LastReading>,
    /// The last failure, for people.
    pub last_error: Option<String>,
}

/// The values of the last successful scrape.
#[derive(Debug, Clone, Serialize)]
pub struct LastReading {
    /// Waiting requests.
    pub waiting: Option<f64>,
    /// Running requests.
    pub running: Option<f64>,
    /// KV-cache use, 0–1.
    pub kv_usage: Option<f64>,
    /// Estimated TTFT, ms.
    pub est_ttft_ms: Option<f64>,
    /// Prefix-cache hit ratio since start (vLLM: hits / queries; SGLang:
    /// its own rate).
    pub prefix_hit_ratio: Option<f64>,
}

/// The whole run's stats.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CollectorStats {
    /// Per instance, in config order.
    pub instances: Vec<InstanceStats>,
    /// Datagrams handed to the kernel, all appliances together.
    pub datagrams_sent: u64,
    /// Seal or send failures.
    pub push_failures: u64,
}

/// Why a scrape failed.
struct ScrapeError {
    reason: &'static str,
    detail: String,
}

fn get(agent: &ureq::Agent, url: &str) -> Result<String, ScrapeError> {
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => ScrapeError {
            reason: "http_status",
            detail: format!("{url}: HTTP {code}"),
        },
        // Its text names the URL already.
        ureq::Error::Transport(t) => ScrapeError {
            reason: "connect",
            detail: t.to_string(),
        },
    })?;
    // One byte past the cap tells a page that fits from one cut short:
    // a cut page could end inside a number and still parse, as a smaller
    // number.
    let mut body = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(response.into_reader(), MAX_PAGE + 1),
        &mut body,
    )
    .map_err(|e| ScrapeError {
        reason: "read",
        detail: format!("{url}: {e}"),
    })?;
    if body.len() as u64 > MAX_PAGE {
        return Err(ScrapeError {
            reason: "too_large",
            detail: format!("{url}: the page is larger than {MAX_PAGE} bytes"),
        });
    }
    Ok(body)
}

fn scrape(agent: &ureq::Agent, url: &str) -> Result<Reading, ScrapeError> {
    let page = get(agent, url)?;
    reading::read(&page).map_err(|e| ScrapeError {
        reason: match e {
            reading::ReadError::Syntax(_) => "syntax",
            reading::ReadError::UnknownServer => "unknown_server",
        },
        detail: format!("{url}: {e}"),
    })
}

/// The first model of a `/v1/models` answer: its id and `max_model_len`.
pub fn first_model(json: &str) -> Option<(String, Option<u32>)> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let m = v.get("data")?.as_array()?.first()?;
    let id = m.get("id")?.as_str()?.to_string();
    let len = m
        .get("max_model_len")
        .and_then(|l| l.as_u64())
        .and_then(|l| u32::try_from(l).ok());
    Some((id, len))
}

/// The CAPABILITY fields for `inst`, from its config and the model list
/// (`None` when neither gives a model name and a context length).
fn capability(
    inst: &InstanceConfig,
    listed: Option<&(String, Option<u32>)>,
) -> Option<control::CapabilityFields> {
    let c = inst.capability.as_ref()?;
    let model = c.model.clone().or_else(|| listed.map(|l| l.0.clone()))?;
    let max_context = c.max_context.or_else(|| listed.and_then(|l| l.1))?;
    Some(control::CapabilityFields {
        node: inst.node,
        model,
        class: match c.class {
            ModelClass::Edge => control::ModelClass::SmallEdge,
            ModelClass::Centre => control::ModelClass::LargeCentre,
        },
        accelerator: c.accelerator.clone(),
        tasks: control::TaskTypes::from_str(&c.tasks.join(",")).ok()?,
        max_context,
        prefill_tps: c.prefill_tps,
        decode_tps: c.decode_tps,
        concurrency: inst.concurrency,
    })
}

fn prefix_hit_ratio(r: &Reading) -> Option<f64> {
    match r.prefix_cache? {
        PrefixCacheStats::Tokens { queries, hits } if queries > 0.0 => Some(hits / queries),
        PrefixCacheStats::Tokens { .. } => None,
        PrefixCacheStats::HitRate { rate, .. } => Some(rate),
    }
}

/// Scrapes one instance until `stop`.
fn run_instance(
    cfg: &CollectorConfig,
    inst: &InstanceConfig,
    pusher: &Mutex<Pusher>,
    stats: &Mutex<InstanceStats>,
    stop: &AtomicBool,
) {
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout(timeout)
        .build();
    let interval = Duration::from_millis(cfg.interval_ms);
    let capability_interval = Duration::from_millis(cfg.capability_interval_ms);
    let models_url = inst.models_url();
    let push = |m: &control::Message| {
        pusher.lock().unwrap_or_else(|e| e.into_inner()).push(m);
    };
    let mut deriver = Deriver::default();
    let mut up = None::<bool>;
    let mut without_state = false;
    let mut listed = None;
    let mut next_capability = Instant::now();
    let start = Instant::now();
    let mut tick = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if inst.capability.is_some() && now >= next_capability {
            next_capability = now + capability_interval;
            match get(&agent, &models_url).map(|j| first_model(&j)) {
                Ok(Some(m)) => listed = Some(m),
                Ok(None) | Err(_) => {
                    stats
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .models_failures += 1
                }
            }
            if let Some(cap) = capability(inst, listed.as_ref()) {
                push(&cap.message());
                stats.lock().unwrap_or_else(|e| e.into_inner()).capabilities += 1;
            }
        }
        let mut prefix_cache = None;
        let (fields, failure) = match scrape(&agent, &inst.metrics_url) {
            Ok(r) => {
                let fields = deriver.node_state(inst.node, &r, inst.concurrency);
                prefix_cache = deriver.prefix_cache(&r);
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                s.scrapes_ok += 1;
                s.server = Some(r.server.name());
                s.last = Some(LastReading {
                    waiting: r.waiting,
                    running: r.running,
                    kv_usage: r.kv_usage,
                    est_ttft_ms: fields.ttft_ms,
                    prefix_hit_ratio: prefix_hit_ratio(&r),
                });
                (fields, None)
            }
            Err(e) => (derive::down(inst.node), Some(e)),
        };
        match &failure {
            Some(e) => {
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                *s.scrape_failures.entry(e.reason).or_default() += 1;
                s.last_error = Some(e.detail.clone());
                if up != Some(false) {
                    s.went_down += 1;
                    eprintln!(
                        "collector: node {} down: {} ({})",
                        inst.node, e.detail, e.reason
                    );
                }
                up = Some(false);
            }
            None => {
                if up == Some(false) {
                    eprintln!(
                        "collector: node {} up again ({})",
                        inst.node, inst.metrics_url
                    );
                }
                up = Some(true);
            }
        }
        // A reading with no value a NODE_STATE carries (a recognised page
        // without samples) is counted, and said once, not pushed: a node
        // that answers is not down, and its state is not known either.
        let message = fields.message();
        if failure.is_none() {
            let stateless = message.is_err();
            let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
            if stateless {
                s.scrapes_without_state += 1;
            }
            if stateless != without_state {
                eprintln!(
                    "collector: node {}: {} ({})",
                    inst.node,
                    if stateless {
                        "its page holds no queue, KV-cache or TTFT value; nothing is pushed"
                    } else {
                        "its page holds state again"
                    },
                    inst.metrics_url
                );
                without_state = stateless;
            }
        }
        if let Ok(mut m) = message {
            // The prefix cache's increments ride along (PREFIX_CACHE,
            // docs/wire-format.md §3.4) for the appliance to correct its
            // prefix record with.
            if let (control::Message::NodeState(ns), Some(c)) = (&mut m, prefix_cache) {
                ns.prefix_cache = Some(c);
            }
            push(&m);
            stats.lock().unwrap_or_else(|e| e.into_inner()).node_states += 1;
        }
        // Fixed ticks from the start, so a slow scrape does not shift the
        // ones after it.
        tick = tick.saturating_add(1);
        let next = start + interval * tick;
        let now = Instant::now();
        if next > now {
            // In slices, so that a stop ends a long interval at once.
            while !stop.load(Ordering::Relaxed) {
                let left = next.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(STOP_POLL));
            }
        } else {
            // Behind by more than a tick: skip the missed ones.
            tick = u32::try_from(((now - start).as_nanos() / interval.as_nanos().max(1)) as u64)
                .unwrap_or(u32::MAX);
        }
    }
}

/// Runs the collector until `stop` is set or `duration` passes.
pub fn run(
    cfg: &CollectorConfig,
    duration: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<CollectorStats> {
    let pusher = Arc::new(Mutex::new(Pusher::new(
        &cfg.key_file,
        cfg.key_id,
        &cfg.appliances,
    )?));
    let stats: Vec<Arc<Mutex<InstanceStats>>> = cfg
        .instances
        .iter()
        .map(|i| {
            Arc::new(Mutex::new(InstanceStats {
                node: i.node,
                metrics_url: i.metrics_url.clone(),
                ..InstanceStats::default()
            }))
        })
        .collect();
    let mut threads = Vec::new();
    for (inst, st) in cfg.instances.iter().zip(&stats) {
        let (cfg, inst, pusher, st, stop) = (
            cfg.clone(),
            inst.clone(),
            Arc::clone(&pusher),
            Arc::clone(st),
            Arc::clone(&stop),
        );
        threads.push(
            std::thread::Builder::new()
                .name(format!("collect-{}", inst.node))
                .spawn(move || run_instance(&cfg, &inst, &pusher, &st, &stop))?,
        );
    }
    let deadline = duration.map(|d| Instant::now() + d);
    while !stop.load(Ordering::Relaxed) && deadline.map_or(true, |d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let p = pusher.lock().unwrap_or_else(|e| e.into_inner());
    Ok(CollectorStats {
        instances: stats
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect(),
        datagrams_sent: p.sent,
        push_failures: p.failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_list_gives_name_and_context() {
        let j =
            r#"{"object":"list","data":[{"id":"llama","object":"model","max_model_len":8192}]}"#;
        assert_eq!(first_model(j), Some(("llama".into(), Some(8192))));
        assert_eq!(
            first_model(r#"{"data":[{"id":"x"}]}"#),
            Some(("x".into(), None))
        );
        assert_eq!(first_model("not json"), None);
        assert_eq!(first_model(r#"{"data":[]}"#), None);
    }
}
