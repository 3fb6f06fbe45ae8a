//! Per-flow decision cost: `Decider::decide` for the service table of
//! `examples/steer.toml` (one service, an edge and a centre instance, one
//! path each), against a realistic control view (fresh PATH_STATE for both
//! paths, NODE_STATE for both nodes, a CAPABILITY from each node) and the
//! per-instance latency models the data plane builds.
//!
//! 1,000,000 decisions over a pre-generated, seeded mix of token features
//! (short and long, every task type, some explicit urgencies, some past the
//! edge's context limit). Each decision is timed on its own with the TSC
//! (fenced `rdtsc`, calibrated against `std::time::Instant` over ~100 ms);
//! the back-to-back cost of the timer itself is measured and subtracted.
//! As in the data plane, the traffic class is computed before the timed
//! section and only `decide` is timed.
//!
//! ```sh
//! cargo run --release -p steer --example decision_bench [-- DECISIONS]
//! ```
//!
//! Then the same decisions again, each naming one of 20 shared prefixes
//! (layout version 2), with a prefix record in which half of them are
//! cached on one instance or the other: the cost of prefix-cache affinity
//! (`prefix_p50_ns`, `prefix_p99_ns`).
//!
//! Prints one JSON line:
//! `{"decisions":N,"p50_ns":..,"p99_ns":..,"p999_ns":..,"mean_ns":..,...,"prefix_p50_ns":..,"prefix_p99_ns":..}`.

// The same service table and models as the decision tests: the topology
// of `examples/steer.toml` with its priors.
#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use classifier::{TaskType, TokenFeatures, Urgency};
use common::{models, table};
use control::capability::{Capability, ModelClass};
use control::ids::{NodeId, PathId};
use control::message::Message;
use control::metric::{Metric, MetricType, Unit};
use control::node_state::NodeState;
use control::path_state::PathState;
use control::state::ControlState;
use control::task_types::TaskTypes;
use control::thresholds::Thresholds;
use control::view::DataplaneView;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use steer::{Decider, Rejections, TrafficClass};

const DEFAULT_DECISIONS: usize = 1_000_000;
const WARMUP: usize = 200_000;
const SEED: u64 = 7;
/// Control-plane time of the view: the state was applied at 0, so every
/// entry is fresh (well under `max_state_age`).
const NOW_NS: u64 = 50_000_000;

fn path_state(id: u16, latency_us: f64, jitter_us: f64, loss_percent: f64) -> Message {
    PathState::new(
        PathId(id),
        vec![
            Metric::new(MetricType::PathLatency, Unit::Microseconds, latency_us),
            Metric::new(MetricType::PathJitter, Unit::Microseconds, jitter_us),
            Metric::new(MetricType::PathLoss, Unit::Percent, loss_percent),
        ],
    )
    .into()
}

fn node_state(id: u16, queue: f64, est_ttft_us: f64) -> Message {
    NodeState::new(
        NodeId(id),
        vec![
            Metric::new(MetricType::QueueLength, Unit::Count, queue),
            Metric::new(MetricType::EstTtft, Unit::Microseconds, est_ttft_us),
        ],
    )
    .into()
}

fn capability(node: u16, model: &str, class: ModelClass, accel: &str, max_ctx: f64) -> Message {
    let mut c = Capability::new(
        NodeId(node),
        model,
        class,
        accel,
        TaskTypes::from_bits(TaskTypes::DEFINED).expect("defined task types"),
    );
    c.metrics.push(Metric::new(
        MetricType::MaxContextTokens,
        Unit::Tokens,
        max_ctx,
    ));
    c.into()
}

/// A control view as the appliance holds it in steady state: measured
/// paths, reporting nodes with some load, announced capabilities.
fn view() -> DataplaneView {
    let mut state = ControlState::new(Thresholds::default());
    for m in [
        path_state(1, 620.0, 45.0, 0.0),
        path_state(2, 14_200.0, 2_600.0, 0.1),
        node_state(1, 1.0, 3_500.0),
        node_state(2, 12.0, 9_000.0),
        capability(1, "phi-3-mini", ModelClass::SmallEdge, "L4", 8192.0),
        capability(2, "llama-3-70b", ModelClass::LargeCentre, "A100", 131_072.0),
    ] {
        state.apply(1, &m, 0);
    }
    state.view(1, 0)
}

/// Seeded mix: every task type, about half short (≤ a few hundred tokens),
/// the rest long (up to 16k prompt, so some exceed the edge's context), and
/// one in ten with an explicit urgency.
fn workload(n: usize, short_task_tokens: u32) -> Vec<(TokenFeatures, TrafficClass)> {
    const TASKS: [TaskType; 5] = [
        TaskType::ImmediateControl,
        TaskType::Chat,
        TaskType::CodeGeneration,
        TaskType::Summarisation,
        TaskType::ComplexReasoning,
    ];
    const URGENCIES: [Urgency; 4] = [
        Urgency::Background,
        Urgency::Normal,
        Urgency::Interactive,
        Urgency::Immediate,
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    (0..n)
        .map(|_| {
            let task = TASKS[rng.gen_range(0..TASKS.len())];
            let (prompt_tokens, output_tokens) = if rng.gen_bool(0.5) {
                (rng.gen_range(4..200), rng.gen_range(4..120))
            } else {
                (rng.gen_range(300..16_000), rng.gen_range(64..2_000))
            };
            let explicit_urgency = rng.gen_bool(0.1);
            let urgency = if explicit_urgency {
                URGENCIES[rng.gen_range(0..URGENCIES.len())]
            } else {
                task.default_urgency()
            };
            let f = TokenFeatures {
                prompt_tokens,
                output_tokens,
                task,
                urgency,
                explicit_urgency,
                prefix: None,
            };
            (f, TrafficClass::of(&f, short_task_tokens))
        })
        .collect()
}

/// A fenced TSC read: the `lfence` keeps it from being reordered with the
/// instructions around it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ticks() -> u64 {
    use core::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: lfence and rdtsc are available on every x86_64 CPU.
    #[allow(unused_unsafe)]
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// Elsewhere: nanoseconds from a process-wide Instant.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn ticks() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Ticks per nanosecond, against `Instant` over ~100 ms.
fn calibrate() -> f64 {
    if cfg!(not(target_arch = "x86_64")) {
        return 1.0;
    }
    let (i0, t0) = (Instant::now(), ticks());
    while i0.elapsed() < Duration::from_millis(100) {
        std::hint::spin_loop();
    }
    let (t1, elapsed) = (ticks(), i0.elapsed());
    (t1 - t0) as f64 / elapsed.as_nanos() as f64
}

/// Cost of an empty timed section, in ticks: the median of many
/// back-to-back pairs of fenced reads, subtracted from every sample.
fn timer_overhead() -> u64 {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let a = ticks();
            let b = ticks();
            b.wrapping_sub(a)
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        None => DEFAULT_DECISIONS,
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("decision_bench: DECISIONS must be a positive integer, got '{s}'");
                std::process::exit(2);
            }
        },
    };
    let table = table();
    let models = models(&table);
    let view = view();
    let service = table
        .service_for(IpAddr::V4(Ipv4Addr::new(10, 0, 100, 1)), 8000)
        .expect("the chat service");
    let work = workload(n, view.thresholds().short_task_tokens);
    let decider = Decider {
        table: &table,
        view: &view,
        models: &models,
        now_ns: NOW_NS,
        policy: steer::Policy::TokenAware,
        turn: 0,
        unreported: &[],
        prefixes: None,
    };

    // Warm-up: one untimed pass over the whole workload (caches, branch
    // predictors, page faults), which also checks that every decision
    // succeeds: both instances are live, so a failure means the setup is
    // wrong and the numbers would not be of the normal path.
    let mut chosen = [0u64; 2];
    for _ in 0..WARMUP.div_ceil(n).max(1) {
        chosen = [0; 2];
        for (f, class) in &work {
            let mut r = Rejections::default();
            match black_box(decider).decide(black_box(service), black_box(f), *class, &mut r) {
                Ok(c) => chosen[usize::from(c.instance).min(1)] += 1,
                Err(no) => {
                    eprintln!(
                        "decision_bench: a decision found no instance ({}): {f:?}",
                        no.name()
                    );
                    std::process::exit(1);
                }
            }
        }
    }

    let ticks_per_ns = calibrate();
    let overhead = timer_overhead();
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram bounds");
    let mut total_ns = 0f64;
    for (f, class) in &work {
        let mut r = Rejections::default();
        let t0 = ticks();
        let out = black_box(decider).decide(black_box(service), black_box(f), *class, &mut r);
        let t1 = ticks();
        let _ = black_box((out, r));
        let ns = t1.wrapping_sub(t0).saturating_sub(overhead) as f64 / ticks_per_ns;
        total_ns += ns;
        hist.saturating_record((ns.round() as u64).max(1));
    }

    // The same work, every request naming one of 20 shared prefixes, ten
    // of them recorded (on alternating instances).
    let mut record = steer::PrefixRecord::new(steer::PrefixLimits::default(), 2, 0x5eed);
    for persona in 0..10u64 {
        let p = classifier::SharedPrefix::of_hash(persona, 2_000);
        record.served((persona % 2) as u8, &p, 3_000, 0);
    }
    let prefixed: Vec<(TokenFeatures, TrafficClass)> = work
        .iter()
        .enumerate()
        .map(|(i, (f, class))| {
            let prefix =
                classifier::SharedPrefix::of_hash((i % 20) as u64, f.prompt_tokens.min(2_000));
            (
                TokenFeatures {
                    prefix: Some(prefix),
                    ..*f
                },
                *class,
            )
        })
        .collect();
    let with_record = Decider {
        prefixes: Some(&record),
        ..decider
    };
    let mut prefix_hist =
        Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram bounds");
    for _ in 0..2 {
        // The first pass warms up; the second is recorded.
        prefix_hist.reset();
        for (f, class) in &prefixed {
            let mut r = Rejections::default();
            let t0 = ticks();
            let out =
                black_box(with_record).decide(black_box(service), black_box(f), *class, &mut r);
            let t1 = ticks();
            let _ = black_box((out, r));
            let ns = t1.wrapping_sub(t0).saturating_sub(overhead) as f64 / ticks_per_ns;
            prefix_hist.saturating_record((ns.round() as u64).max(1));
        }
    }

    let q = |p: f64| hist.value_at_quantile(p);
    println!(
        "{{\"decisions\":{},\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"mean_ns\":{:.1},\"max_ns\":{},\
         \"timer_overhead_ns\":{:.1},\"tsc_ghz\":{:.3},\"chosen_edge\":{},\"chosen_centre\":{},\
         \"prefix_p50_ns\":{},\"prefix_p99_ns\":{}}}",
        hist.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        total_ns / n as f64,
        hist.max(),
        overhead as f64 / ticks_per_ns,
        ticks_per_ns,
        chosen[0],
        chosen[1],
        prefix_hist.value_at_quantile(0.5),
        prefix_hist.value_at_quantile(0.99),
    );
}
