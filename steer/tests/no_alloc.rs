//! Everything the data plane calls per packet or per new flow — the
//! decision, flow-table lookups, inserts and ageing, the NAT rewrite, the
//! HTTP inference and the passive timing — must not allocate. A counting
//! global allocator (per thread, so the harness's other threads do not
//! interfere) proves it.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use control::ids::NodeId;
use control::metric::{Metric, MetricType, Unit};
use control::node_state::NodeState;
use control::state::ControlState;
use steer::infer::{infer_http, InferLimits};
use steer::rewrite::{rewrite_destination, rewrite_source};
use steer::{ClientKey, Decider, FlowEntry, FlowTable, Rejections, TrafficClass};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

use counting_alloc::allocations_during;

/// A TCP/IPv4 request to the VIP carrying an HTTP POST, built by hand.
fn request_frame(body: &[u8]) -> Vec<u8> {
    let http = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let payload = [http.as_bytes(), body].concat();
    let mut f = vec![2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 1, 0x11, 0x08, 0x00];
    let total = (20 + 20 + payload.len()) as u16;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 1, 11, 10, 0, 100, 1,
    ];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let c = classifier::checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = vec![
        0xc3, 0x50, 0x1f, 0x40, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let ph = classifier::checksum::PseudoHeader::V4 {
        src: Ipv4Addr::new(10, 0, 1, 11),
        dst: Ipv4Addr::new(10, 0, 100, 1),
    };
    let seg = [tcp.as_slice(), &payload].concat();
    let c = ph.checksum(classifier::IpProtocol::TCP, &seg);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend_from_slice(&payload);
    f
}

#[test]
fn the_per_packet_and_per_flow_steering_calls_do_not_allocate() {
    let table = table();
    let models = models(&table);
    let mut state = ControlState::default();
    state.apply(
        1,
        &NodeState::new(
            NodeId(1),
            vec![Metric::new(MetricType::QueueLength, Unit::Count, 1.0)],
        )
        .into(),
        0,
    );
    let view = state.view(1, 0);
    let mut flows = FlowTable::new(1024, 0x5eed);
    let mut frame = request_frame(br#"{"model":"m","messages":[{"role":"user","content":"turn on the light"}],"max_tokens":20}"#);
    let parsed = classifier::parse(&frame).unwrap();
    let limits = InferLimits::default();
    // Prefix-cache affinity: the record is allocated here, once.
    let mut prefixes = steer::PrefixRecord::new(
        steer::PrefixLimits {
            capacity: 64,
            ..steer::PrefixLimits::default()
        },
        table.instances().len(),
        0x5eed,
    );

    let n = allocations_during(|| {
        for i in 0..2000u32 {
            let mut f = if i % 2 == 0 { short() } else { long() };
            if i % 3 == 0 {
                // Many prefixes, so the record fills and ages too.
                f.prefix = Some(classifier::SharedPrefix::of_hash(u64::from(i % 97), 400));
            }
            let class = TrafficClass::of(&f, 256);
            let mut r = Rejections::default();
            let d = Decider {
                table: &table,
                view: &view,
                models: &models,
                now_ns: u64::from(i),
                policy: steer::Policy::ALL[i as usize % steer::Policy::ALL.len()],
                turn: i,
                unreported: &[],
                prefixes: Some(&prefixes),
            };
            let choice = d.decide(0, &f, class, &mut r).unwrap();
            if let Some(p) = &f.prefix {
                prefixes.served(choice.instance, p, f.prompt_tokens, u64::from(i));
            }
            prefixes.correct(choice.instance, 100.0, 400.0);
            prefixes.expire(u64::from(i), 64);
            let key = ClientKey {
                addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, 11],
                port: (i % 3000) as u16,
                service_port: 8000,
                protocol: 6,
            };
            let _ = flows.insert(
                key,
                FlowEntry::new(
                    0,
                    choice.instance,
                    choice.path,
                    class,
                    f,
                    choice.predicted,
                    u64::from(i),
                ),
                u64::from(i),
            );
            if let Some(e) = flows.get_mut(&key) {
                let _ = e.timing.on_request_payload(u64::from(i));
                e.timing.on_response_payload(u64::from(i) + 5);
                let _ = e.timing.on_end();
            }
            flows.expire(u64::from(i), 100, 64, |_, _| {});
            let _ = infer_http(parsed.payload(&frame), &limits);
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2));
            rewrite_destination(&mut frame, &parsed, [2, 0, 0, 0, 2, 2], ip).unwrap();
            let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 100, 1));
            rewrite_source(&mut frame, &parsed, None, vip).unwrap();
        }
    });
    assert_eq!(n, 0, "steering allocated {n} times");
    // The counter itself works.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0);
}

/// The fragment path: a later fragment held, the first deciding and
/// releasing it, the release applied, followers, and ageing.
#[test]
fn the_fragment_path_does_not_allocate() {
    use std::sync::Arc;
    use steer::fragment::{FragmentLimits, Unhold};
    use steer::{Engine, EngineConfig, Verdict};

    let table = table();
    let models = models(&table);
    let counters = Arc::new(steer::stats::SteerCounters::new(table.instances().len(), 4));
    let mut engine = Engine::new(
        Arc::new(table),
        EngineConfig {
            policy: steer::Policy::ALL[0],
            infer_http_ports: vec![8000],
            infer_limits: InferLimits::default(),
            flow_table_size: 64,
            flow_idle_ns: 1_000,
            seed: 1,
            rss_key: [0x5a; 40],
            fragments: FragmentLimits::default(),
            prefixes: steer::PrefixLimits::default(),
            splice: None,
        },
        models,
        counters,
    );
    let view = ControlState::default().view(1, 0);
    let body = vec![b'x'; 3000];
    let frame = request_frame(&body);
    let datagrams: Vec<Vec<Vec<u8>>> = (0..16)
        .map(|id| classifier::fragment::fragment(&frame, 1000, id).unwrap())
        .collect();
    let mut scratch: Vec<Vec<u8>> = datagrams[0].clone();
    let n = allocations_during(|| {
        for i in 0..2000u64 {
            let frags = &datagrams[i as usize % datagrams.len()];
            for (buf, f) in scratch.iter_mut().zip(frags) {
                buf.copy_from_slice(f);
            }
            // The last fragment first, then the rest in order.
            let order = [frags.len() - 1, 0, 1, 2];
            for &j in order.iter().take(frags.len()) {
                let buf = &mut scratch[j];
                let p = classifier::parse(buf).unwrap();
                if let Some(k) = engine.key_of(&p, true) {
                    let v = engine.handle(buf, &p, k, true, &view, i * 10);
                    assert!(!matches!(v, Verdict::Drop(_)), "{v:?}");
                }
                while let Some(u) = engine.next_unheld() {
                    if let Unhold::Released(t) = u.fate {
                        let last = frags.len() - 1;
                        let p = classifier::parse(&scratch[last]).unwrap();
                        let _ = engine.apply(&mut scratch[last], &p, t);
                    }
                }
            }
            engine.expire(i * 10);
        }
    });
    assert_eq!(n, 0, "the fragment path allocated {n} times");
}
