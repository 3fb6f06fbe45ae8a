//! Per-packet cost of the steering engine alone, without DPDK: the frames
//! of a pcap (`bench/steer.sh` writes one with `pktgen write --workload
//! agent --tlv ipv4`) replayed through what the `steer` pipeline calls per
//! packet from the agents' port ([`classifier::flow_walk::walk`],
//! [`Engine::key_of_walked`], [`Engine::handle_walked`], and the full parse
//! and [`Engine::handle`] for what the walk or the fast path declines),
//! over the service table of `examples/steer.toml` with delayed binding on
//! (its `infer_http_ports = [8000]`), as one worker holds it.
//!
//! Each pass copies every frame into a reused buffer (as the PMD copies it
//! into an mbuf), so the NAT rewrite always starts from the original bytes
//! and a replayed connection is a new flow, as in the bench. Meant for
//! `valgrind --tool=callgrind --toggle-collect=packet_bench::pass`, whose
//! instruction count over the packets handled is the engine's per-packet
//! cost; the TSC figure it prints is indicative only.
//!
//! ```sh
//! cargo run --release -p steer --example packet_bench -- agent.pcap [PASSES]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use classifier::{flow_walk, parse};
use common::{models, table};
use control::view::DataplaneView;
use steer::fragment::FragmentLimits;
use steer::splice::SpliceLimits;
use steer::stats::SteerCounters;
use steer::{Engine, EngineConfig, Verdict};

/// The pipeline's housekeeping runs every 100 µs: about every 330 packets
/// at the bench's rate.
const EXPIRE_EVERY: usize = 330;

fn read_pcap(path: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let le = match bytes.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) | Some([0x4d, 0x3c, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) | Some([0xa1, 0xb2, 0x3c, 0x4d]) => false,
        _ => panic!("{path}: not a pcap file"),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32_at(at + 8) as usize;
        at += 16;
        frames.push(bytes[at..at + len].to_vec());
        at += len;
    }
    frames
}

fn engine() -> Engine {
    let table = table();
    let models = models(&table);
    let counters = Arc::new(SteerCounters::new(table.instances().len(), 3));
    // dataplane's steer_config defaults, one worker.
    Engine::new(
        Arc::new(table),
        EngineConfig {
            policy: steer::Policy::default(),
            infer_http_ports: vec![8000],
            infer_limits: Default::default(),
            flow_table_size: 65_536,
            flow_idle_ns: 30_000_000_000,
            seed: 0x5eed,
            rss_key: [0x5a; 40],
            fragments: FragmentLimits::default(),
            prefixes: steer::PrefixLimits::default(),
            splice: Some(SpliceLimits {
                connections: 4096,
                buffer_bytes: 32 * 1024 * 1024,
                ..SpliceLimits::default()
            }),
        },
        models,
        counters,
    )
}

/// What the pipeline does per packet of a burst from the agents' port.
#[inline(never)]
fn pass(
    engine: &mut Engine,
    frames: &[Vec<u8>],
    buf: &mut [u8],
    view: &DataplaneView,
    now_ns: &mut u64,
    sent: &mut u64,
) {
    for (i, f) in frames.iter().enumerate() {
        let frame = &mut buf[..f.len()];
        frame.copy_from_slice(f);
        *now_ns += 300;
        let now = *now_ns;
        let verdict = match flow_walk::walk(frame) {
            Some(w) => match engine.key_of_walked(&w, true) {
                Some(k) => match engine.handle_walked(frame, &w, &k, true, view, now) {
                    Some(v) => v,
                    None => full(engine, frame, view, now),
                },
                None => Verdict::Pass,
            },
            None => full(engine, frame, view, now),
        };
        if matches!(verdict, Verdict::Send { .. }) {
            *sent += 1;
        }
        black_box(&*frame);
        if i % EXPIRE_EVERY == EXPIRE_EVERY - 1 {
            engine.expire(now);
        }
    }
}

fn full(engine: &mut Engine, frame: &mut [u8], view: &DataplaneView, now: u64) -> Verdict {
    let Ok(p) = parse(frame) else {
        return Verdict::Pass;
    };
    match engine.key_of(&p, true) {
        Some(k) => engine.handle(frame, &p, k, true, view, now),
        None => Verdict::Pass,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: packet_bench PCAP [PASSES]");
    let passes: usize = args.next().map_or(20, |s| s.parse().expect("PASSES"));
    let frames = read_pcap(&path);
    let mut engine = engine();
    let view = DataplaneView::default();
    let mut buf = vec![0u8; 16 * 1024];
    let (mut now, mut sent) = (0u64, 0u64);
    // One pass to fill the table, as the bench's first pass does.
    pass(&mut engine, &frames, &mut buf, &view, &mut now, &mut sent);
    let started = Instant::now();
    for _ in 0..passes {
        pass(&mut engine, &frames, &mut buf, &view, &mut now, &mut sent);
    }
    let packets = frames.len() * passes;
    let ns = started.elapsed().as_nanos() as f64 / packets as f64;
    let new_flows = engine.counters().flows[steer::stats::FlowEvent::New as usize]
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{{\"packets\":{packets},\"ns_per_packet\":{ns:.1},\"sent\":{sent},\"flows\":{},\"new_flows\":{new_flows}}}",
        engine.flows(),
    );
}
