//! The tensor engine driven deterministically, without I/O: RoCEv2 frames
//! built here byte by byte go through `Engine::host` and, encapsulated,
//! through a second engine's `classify_network` / `verify_overlay` /
//! `accept_overlay`, with the clock and the predictions in the test's hand.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use classifier::{parse, BthOpcode};
use tensor::egress::QueueMeta;
use tensor::encap::EncapError;
use tensor::engine::{
    class_of, heuristic_semantics, interleave_lanes, is_fresh, phase_of, slice_of, Delivery,
    Engine, EngineConfig, NetworkClass, Node, NodeWeights, OverlayPath, Refusal, Send, Verdict,
    FEATURE_BATCH, PREDICTION_MAX_AGE_NS,
};
use tensor::metadata::{
    flow_key_bytes, option_type, MetadataError, MetadataKey, MetadataKeys, TrainingPhase,
    OPTION_CLASS,
};
use tensor::plan::{SlicePlan, NO_PATH};
use tensor::stats::{Event, MetaOutcome, SchedClass, TensorCounters};
use tensor::{
    Predictions, QpFlow, QpState, QpThresholds, SemanticFeatures, SemanticSource, TensorType,
};

const SEED: u64 = 0x5eed;

fn host(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 0, i)
}

/// A RoCEv2 frame: Ethernet, IPv4 (ECT(0), DF, TTL 64), UDP 4791, BTH
/// (and a RETH with `dma_len` when given), `payload` bytes, a valid ICRC.
fn rocev2(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    qpn: u32,
    op: u8,
    psn: u32,
    dma_len: Option<u32>,
    payload: usize,
) -> Vec<u8> {
    let mut bth = vec![op, 0, 0xff, 0xff, 0];
    bth.extend_from_slice(&qpn.to_be_bytes()[1..]);
    bth.push(0);
    bth.extend_from_slice(&psn.to_be_bytes()[1..]);
    if let Some(l) = dma_len {
        bth.extend_from_slice(&0x1000u64.to_be_bytes());
        bth.extend_from_slice(&7u32.to_be_bytes());
        bth.extend_from_slice(&l.to_be_bytes());
    }
    bth.extend(std::iter::repeat(0xab).take(payload));
    bth.extend_from_slice(&[0; 4]); // ICRC, written below
    let udp_len = 8 + bth.len();
    let ip_len = 20 + udp_len;
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![0x45, 0x02];
    ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = classifier::checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&49152u16.to_be_bytes());
    f.extend_from_slice(&4791u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&bth);
    classifier::icrc::write_icrc(&mut f[14..]).unwrap();
    f
}

/// One RDMA WRITE of `bytes` in 1 KiB packets.
fn write(src: Ipv4Addr, dst: Ipv4Addr, qpn: u32, bytes: u32) -> Vec<Vec<u8>> {
    let n = bytes.div_ceil(1024);
    (0..n)
        .map(|i| {
            let (op, reth) = match (i, n) {
                (_, 1) => (0x0a, Some(bytes)),
                (0, _) => (0x06, Some(bytes)),
                (i, n) if i == n - 1 => (0x08, None),
                _ => (0x07, None),
            };
            rocev2(src, dst, qpn, op, i, reth, 1024)
        })
        .collect()
}

fn key() -> MetadataKey {
    MetadataKey::from_bytes(1, [7; 16])
}

fn config(paths: Vec<OverlayPath>, local: Ipv4Addr) -> EngineConfig {
    let mut keys = MetadataKeys::new();
    keys.insert(key()).unwrap();
    EngineConfig {
        thresholds: QpThresholds {
            large_rate_bps: 1e15,
            ..QpThresholds::default()
        },
        host_port: 0,
        nodes: vec![
            Node {
                id: 2,
                ip: host(2),
                weight: 3,
                local: false,
            },
            Node {
                id: 1,
                ip: host(1),
                weight: 5,
                local: true,
            },
        ],
        signing_key: (!paths.is_empty()).then(key),
        paths,
        validate_icrc: true,
        icrc_check_every: 1,
        decrement_ttl: false,
        ecn_mark_packets: 0,
        small_rate_split_bps: 1e9,
        min_slice_bytes: 64 * 1024,
        offload_reducer: None,
        local_ip: Some(local),
        local_mac: [2, 0, 0, 0, 0, 1],
        vni: 7,
        keys,
        qp_table_size: 1024,
        reorder_streams: 16,
        reorder_window: 512,
        reorder_timeout_ns: 1_000_000_000,
        seed: SEED,
        rss_key: [0x6d; 40],
        feature_window_ns: 100_000,
    }
}

fn two_paths(remote: Ipv4Addr) -> Vec<OverlayPath> {
    [(1u8, 1u16), (2, 2)]
        .into_iter()
        .map(|(id, port)| OverlayPath {
            id,
            port,
            next_hop_mac: [2, 0, 0, 0, id, 1],
            remote_ip: remote,
            capacity_bps: 10e9,
            latency_ns: 5_000,
        })
        .collect()
}

fn engine<T>(cfg: EngineConfig) -> (Engine<T>, Arc<TensorCounters>) {
    let counters = Arc::new(TensorCounters::new(cfg.paths.len(), 4));
    let weights = NodeWeights::new(&cfg.nodes);
    (Engine::new(cfg, weights, Arc::clone(&counters)), counters)
}

/// Runs `frame` through `e.host` at `now`, with every port `depth` deep.
fn send(e: &mut Engine<()>, frame: &mut [u8], now: u64, depth: u32) -> Verdict {
    let p = parse(frame).unwrap();
    let qp = e.qp_of(&p);
    e.host(frame, &p, qp, 0, 1, now, &Predictions::default(), &|_| {
        depth
    })
}

fn sent(v: Verdict) -> Send {
    match v {
        Verdict::Send(s) => s,
        Verdict::Drop(r) => panic!("dropped: {r:?}"),
    }
}

#[test]
fn classes_follow_qp_state_and_semantics_follow_opcodes() {
    let (mut e, c) = engine::<()>(config(Vec::new(), host(100)));
    let mut small = rocev2(host(1), host(2), 11, 0x04, 0, None, 64);
    let s = sent(send(&mut e, &mut small, 1_000, 0));
    assert_eq!((s.port, s.queue.class), (1, SchedClass::SmallSlow));
    assert!(s.encap.is_none(), "route mode");
    // A 4 MiB WRITE is large from its first packet (its RETH), a gradient.
    let mut classes = Vec::new();
    for (i, mut f) in write(host(3), host(2), 12, 4 << 20).into_iter().enumerate() {
        classes.push(sent(send(&mut e, &mut f, 2_000 + i as u64, 0)).queue);
    }
    assert_eq!(classes[0].class, SchedClass::Large);
    assert_eq!(classes[0].weight, 3, "weighed by the target's power");
    assert_eq!(
        classes.last().unwrap().class,
        SchedClass::Draining,
        "the Last packet drains"
    );
    assert_eq!(c.get(Event::QpNew), 2);
    assert_eq!(
        c.tensor_types[TensorType::Gradient as usize].load(Relaxed),
        1
    );
    assert_eq!(
        c.transitions[0][2].load(Relaxed),
        1,
        "UNALLOCATED->LARGE_FLOW"
    );
    assert_eq!(c.transitions[2][3].load(Relaxed), 1, "LARGE_FLOW->DRAINING");
    // Idle past the timeout, both QPs are forgotten.
    let mut none = |_: Delivery<()>| panic!("nothing to deliver in route mode");
    for step in 0..64 {
        e.housekeeping(10_000_000_000 + step, &mut none);
    }
    assert_eq!(e.qps(), 0);
    assert_eq!(c.get(Event::QpExpired), 2);
}

#[test]
fn a_sampled_icrc_check_looks_at_one_packet_in_n_starting_with_the_first() {
    let mut cfg = config(Vec::new(), host(100));
    cfg.icrc_check_every = 4;
    let (mut e, c) = engine::<()>(cfg);
    let mut refused = 0;
    for i in 0..8u32 {
        let mut f = rocev2(host(1), host(2), 11, 0x04, i, None, 64);
        let n = f.len();
        f[n - 1] ^= 0x5a;
        if matches!(
            send(&mut e, &mut f, 1 + u64::from(i), 0),
            Verdict::Drop(Refusal::IcrcBad)
        ) {
            refused += 1;
        }
    }
    assert_eq!(refused, 2, "packets 0 and 4 are checked");
    assert_eq!(c.get(Event::IcrcChecked), 2);
}

#[test]
fn a_bad_icrc_is_refused_and_anything_else_passes_best_effort() {
    let (mut e, c) = engine::<()>(config(Vec::new(), host(100)));
    let mut f = rocev2(host(1), host(2), 11, 0x04, 0, None, 64);
    let n = f.len();
    f[n - 1] ^= 0x5a;
    assert!(matches!(
        send(&mut e, &mut f, 1, 0),
        Verdict::Drop(Refusal::IcrcBad)
    ));
    assert_eq!(e.qps(), 0, "no state for a broken packet");
    // Not RoCEv2 (a UDP datagram to another port): best effort, no state.
    let mut udp = rocev2(host(1), host(2), 11, 0x04, 0, None, 64);
    udp[36..38].copy_from_slice(&5000u16.to_be_bytes());
    let s = sent(send(&mut e, &mut udp, 2, 0));
    assert_eq!(s.queue, QueueMeta::BEST_EFFORT);
    assert_eq!(c.get(Event::IcrcChecked), 1);
}

#[test]
fn ttl_and_ecn_are_rewritten_in_place_and_the_icrc_still_verifies() {
    let mut cfg = config(Vec::new(), host(100));
    cfg.decrement_ttl = true;
    cfg.ecn_mark_packets = 8;
    let (mut e, c) = engine::<()>(cfg);
    let mut calm = rocev2(host(1), host(2), 11, 0x04, 0, None, 64);
    sent(send(&mut e, &mut calm, 1, 8));
    let mut busy = rocev2(host(1), host(2), 11, 0x04, 1, None, 64);
    sent(send(&mut e, &mut busy, 2, 9));
    for (f, ce) in [(&calm, false), (&busy, true)] {
        let p = parse(f).unwrap();
        assert_eq!(p.ttl, 63);
        assert_eq!(p.tos & 3 == 3, ce);
        assert_eq!(
            classifier::checksum::checksum(&f[14..34]),
            0,
            "IPv4 checksum"
        );
        assert_eq!(classifier::icrc::verify_icrc(p.l3(f)), Ok(true));
    }
    assert_eq!(c.get(Event::EcnMarked), 1);
    let mut last_hop = rocev2(host(1), host(2), 11, 0x04, 2, None, 64);
    last_hop[22] = 1;
    let sum = classifier::checksum::checksum(&{
        let mut h = last_hop[14..34].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    last_hop[24..26].copy_from_slice(&sum.to_be_bytes());
    classifier::icrc::write_icrc(&mut last_hop[14..]).unwrap();
    assert!(matches!(
        send(&mut e, &mut last_hop, 3, 0),
        Verdict::Drop(Refusal::TtlExpired)
    ));
}

/// Encapsulates what `ingress` sends, as the data plane does: the header
/// the verdict describes, prepended to the (rewritten) inner frame.
fn overlay_frames(ingress: &mut Engine<()>, frames: &[Vec<u8>]) -> Vec<(u16, Vec<u8>)> {
    overlay_frames_from(ingress, frames, 1_000)
}

/// [`overlay_frames`], the `i`th frame sent at `t0 + i` ns.
fn overlay_frames_from(
    ingress: &mut Engine<()>,
    frames: &[Vec<u8>],
    t0: u64,
) -> Vec<(u16, Vec<u8>)> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut inner = f.clone();
            let s = sent(send(ingress, &mut inner, t0 + i as u64, 0));
            let encap = s.encap.expect("overlaid");
            let mut hdr = vec![0; encap.header_len()];
            ingress.write_encap(&mut hdr, inner.len(), &encap).unwrap();
            hdr.extend_from_slice(&inner);
            (s.port, hdr)
        })
        .collect()
}

/// Feeds `frames` to `egress`, returning what it delivered, in order.
fn decapsulate(
    egress: &mut Engine<Vec<u8>>,
    frames: &[Vec<u8>],
) -> (Vec<(Vec<u8>, QueueMeta)>, Vec<Refusal>) {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let p = parse(f).ok();
        match egress.classify_network(f, p.as_ref()) {
            NetworkClass::Pass => panic!("an overlay frame passed"),
            NetworkClass::Drop(r) => refused.push(r),
            NetworkClass::Overlay(o) => {
                let v = egress.verify_overlay(f, &o);
                let inner = f[o.header_len..].to_vec();
                let len = inner.len() as u32;
                let mut deliver = |d: Delivery<Vec<u8>>| out.push((d.item, d.queue));
                if let Err((_, r)) =
                    egress.accept_overlay(&o, &v, inner, len, 1, 5_000 + i as u64, &mut deliver)
                {
                    refused.push(r);
                }
            }
        }
    }
    (out, refused)
}

#[test]
fn sliced_messages_cross_the_overlay_and_come_out_in_order() {
    let (mut ingress, ci) = engine::<()>(config(two_paths(host(201)), host(200)));
    let (mut egress, ce) = engine::<Vec<u8>>(config(two_paths(host(200)), host(201)));
    let mut input = write(host(1), host(2), 21, 1 << 20);
    input.push(rocev2(host(1), host(2), 21, 0x04, 1024, None, 100));
    let overlaid = overlay_frames(&mut ingress, &input);
    assert_eq!(ci.get(Event::MessagesSliced), 1);
    let on = |port| overlaid.iter().filter(|(p, _)| *p == port).count();
    assert!(
        on(1) > 100 && on(2) > 100,
        "both paths: {} and {}",
        on(1),
        on(2)
    );
    // Path 2 is slower: its frames arrive 200 packets late.
    let mut merged: Vec<(usize, Vec<u8>)> = overlaid
        .iter()
        .enumerate()
        .map(|(i, (port, f))| (i * 2 + if *port == 2 { 400 } else { 0 }, f.clone()))
        .collect();
    merged.sort_by_key(|(t, _)| *t);
    let merged: Vec<Vec<u8>> = merged.into_iter().map(|(_, f)| f).collect();
    let (out, refused) = decapsulate(&mut egress, &merged);
    assert!(refused.is_empty(), "{refused:?}");
    let frames: Vec<&Vec<u8>> = out.iter().map(|(f, _)| f).collect();
    let want: Vec<&Vec<u8>> = input.iter().collect();
    assert!(frames == want, "byte-identical and in order");
    assert_eq!(
        ce.metadata[MetaOutcome::Accepted as usize].load(Relaxed),
        input.len() as u64
    );
    assert_eq!(egress.held(), 0, "every gap filled");
    let mut nothing = |_: Delivery<Vec<u8>>| panic!("nothing left to deliver");
    egress.housekeeping(6_000_000, &mut nothing);
    assert!(ce.get(Event::ReorderHeld) > 0, "the skew was reordered");
    assert_eq!(ce.get(Event::ReorderLost), 0);
}

/// A control state holding `reports` (path id, loss %, when received),
/// seen at `now_ns`.
fn view_with(reports: &[(u16, f64, u64)], now_ns: u64) -> control::DataplaneView {
    use control::{ControlState, Metric, MetricType, PathId, PathState, Thresholds, Unit};
    let mut state = ControlState::new(Thresholds::default());
    for &(id, loss, at_ns) in reports {
        let m = PathState::new(
            PathId(id),
            vec![Metric::new(MetricType::PathLoss, Unit::Percent, loss)],
        );
        state.apply(1, &m.into(), at_ns);
    }
    state.view(1, now_ns)
}

#[test]
fn the_capability_announced_for_a_local_node_carries_its_reported_gpu_utilisation() {
    use control::{ControlState, Message, Metric, MetricType, NodeId, NodeState, Thresholds, Unit};
    const SECOND: u64 = 1_000_000_000;
    // Node 1 (10.10.0.1) is local: its capability goes out on the first
    // packet of each message it sends.
    let (mut e, _) = engine::<()>(config(two_paths(host(201)), host(200)));
    let announced = |e: &mut Engine<()>, qpn: u32, now: u64| {
        let mut f = rocev2(host(1), host(2), qpn, 0x04, 0, None, 100);
        let meta = sent(send(e, &mut f, now, 0)).encap.expect("overlaid").meta;
        meta.capability.expect("announced").gpu_utilisation
    };
    assert_eq!(announced(&mut e, 61, SECOND), 0, "nothing reported yet");
    let reported = |node: u16, percent: f64| {
        let mut state = ControlState::new(Thresholds::default());
        let m = NodeState::new(
            NodeId(node),
            vec![Metric::new(
                MetricType::GpuUtilisation,
                Unit::Percent,
                percent,
            )],
        );
        state.apply(1, &Message::NodeState(m), SECOND);
        state
    };
    e.observe_view(&reported(1, 50.0).view(1, SECOND), SECOND);
    assert_eq!(announced(&mut e, 62, SECOND), 128, "50 % as 0-255");
    // Another node's report is not this one's.
    e.observe_view(&reported(2, 90.0).view(1, SECOND), SECOND);
    assert_eq!(announced(&mut e, 63, SECOND), 0);
    // Older than max_state_age (1 s): no longer announced.
    let late = 2 * SECOND + 1;
    e.observe_view(&reported(1, 50.0).view(1, late), late);
    assert_eq!(announced(&mut e, 64, late), 0);
}

#[test]
fn a_path_the_control_plane_reports_down_takes_no_new_message() {
    const SECOND: u64 = 1_000_000_000;
    let (mut e, c) = engine::<()>(config(two_paths(host(201)), host(200)));
    let ports = |e: &mut Engine<()>, qpn: u32, now: u64| {
        let mut on = [0usize; 3];
        for mut f in write(host(1), host(2), qpn, 1 << 20) {
            on[usize::from(sent(send(e, &mut f, now, 0)).port)] += 1;
        }
        on
    };
    // Both paths as configured: the message is sliced over both.
    let both = ports(&mut e, 31, SECOND);
    assert!(both[1] > 100 && both[2] > 100, "{both:?}");

    // Path 1 loses 20 %: new messages avoid it; a lossless report of
    // path 2 changes nothing.
    let lossy = view_with(&[(1, 20.0, SECOND), (2, 0.0, SECOND)], SECOND);
    e.observe_view(&lossy, SECOND);
    assert_eq!(c.get(Event::PathDown), 1);
    assert!(!e.paths_live()[0].usable && e.paths_live()[1].usable);
    assert_eq!(ports(&mut e, 32, SECOND), [0, 0, 1024]);

    // Path 1 recovers, and path 2's report goes stale (older than the
    // 1 s max_state_age): messages move to path 1.
    let late = 2 * SECOND + 1;
    e.observe_view(&view_with(&[(1, 0.0, late), (2, 0.0, SECOND)], late), late);
    assert_eq!(c.get(Event::PathUp), 1);
    assert_eq!(c.get(Event::PathDown), 2);
    assert_eq!(ports(&mut e, 33, late), [0, 1024, 0]);

    // Both down: planned over both as configured, and counted.
    e.observe_view(&view_with(&[(1, 50.0, late), (2, 50.0, late)], late), late);
    let fallback = ports(&mut e, 34, late);
    assert!(fallback[1] > 100 && fallback[2] > 100, "{fallback:?}");
    assert_eq!(c.get(Event::PlannedOverDownPaths), 1);
}

#[test]
fn a_message_under_way_leaves_a_path_that_goes_down_and_still_arrives_in_order() {
    let (mut ingress, ci) = engine::<()>(config(two_paths(host(201)), host(200)));
    let (mut egress, _) = engine::<Vec<u8>>(config(two_paths(host(200)), host(201)));
    let mut input = write(host(1), host(2), 41, 1 << 20);
    input.push(rocev2(host(1), host(2), 41, 0x04, 1024, None, 100));
    let half = input.len() / 2;
    let on = |frames: &[(u16, Vec<u8>)], port| frames.iter().filter(|(p, _)| *p == port).count();

    // The first half goes out over both paths, as planned.
    let mut overlaid = overlay_frames_from(&mut ingress, &input[..half], 1_000);
    assert!(on(&overlaid, 1) > 50 && on(&overlaid, 2) > 50);
    // Path 1 loses 20 %: the rest of the message, lanes planned on it
    // included, goes over path 2.
    const SECOND: u64 = 1_000_000_000;
    ingress.observe_view(&view_with(&[(1, 20.0, SECOND)], SECOND), SECOND);
    let rest = overlay_frames_from(&mut ingress, &input[half..], 1_000 + half as u64);
    assert_eq!(on(&rest, 1), 0, "nothing more on the lossy path");
    assert_eq!(on(&rest, 2), input.len() - half);
    let rerouted = ci.get(Event::LanesRerouted);
    assert!(
        (1..=8).contains(&rerouted),
        "each lane moved once: {rerouted}"
    );
    assert_eq!(ci.get(Event::MessagesSliced), 1, "not planned again");
    overlaid.extend(rest);

    // The far end puts the slices back in order, whichever path they took.
    let frames: Vec<Vec<u8>> = overlaid.into_iter().map(|(_, f)| f).collect();
    let (out, refused) = decapsulate(&mut egress, &frames);
    assert!(refused.is_empty(), "{refused:?}");
    let delivered: Vec<&Vec<u8>> = out.iter().map(|(f, _)| f).collect();
    assert!(
        delivered == input.iter().collect::<Vec<_>>(),
        "byte-identical and in order"
    );
    assert_eq!(egress.held(), 0);

    // With every path down the lanes stay where they were planned.
    let before = ci.get(Event::LanesRerouted);
    ingress.observe_view(
        &view_with(&[(1, 50.0, SECOND), (2, 50.0, SECOND)], SECOND),
        SECOND,
    );
    let all_down = overlay_frames_from(&mut ingress, &write(host(1), host(2), 42, 1 << 20), 5_000);
    assert!(on(&all_down, 1) > 100 && on(&all_down, 2) > 100);
    assert_eq!(ci.get(Event::LanesRerouted), before);
}

#[test]
fn a_damaged_overlay_frame_is_a_drop_counted_by_its_code_never_a_pass() {
    let (mut ingress, _) = engine::<()>(config(two_paths(host(201)), host(200)));
    let (mut egress, ce) = engine::<Vec<u8>>(config(two_paths(host(200)), host(201)));
    let input = write(host(1), host(2), 21, 4096);
    let overlaid = overlay_frames(&mut ingress, &input);
    let mut bad_checksum = overlaid[0].1.clone();
    bad_checksum[24] ^= 0xff; // outer IPv4 header checksum
    let mut not_udp = overlaid[1].1.clone();
    not_udp[23] = 6;
    let sum = classifier::checksum::checksum(&{
        let mut h = not_udp[14..34].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    not_udp[24..26].copy_from_slice(&sum.to_be_bytes());
    let mut truncated = overlaid[2].1.clone();
    truncated.truncate(40);
    for f in [&bad_checksum, &not_udp, &truncated] {
        assert!(tensor::encap::addressed_to_overlay(f, Some(host(201))));
    }
    let (out, refused) = decapsulate(&mut egress, &[bad_checksum, not_udp, truncated]);
    assert!(out.is_empty(), "nothing delivered");
    assert_eq!(refused, vec![Refusal::OverlayMalformed; 3]);
    let at = |code: &str| {
        let i = EncapError::RECEIVE_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap();
        ce.overlay_malformed[i].load(Relaxed)
    };
    assert_eq!(at("bad_ip_checksum"), 1);
    assert_eq!(at("not_udp"), 1);
    assert_eq!(at("bad_total_length") + at("truncated"), 1);
    // A frame for someone else, not Geneve, is not the overlay's.
    let plain = rocev2(host(1), host(2), 21, 0x04, 0, None, 10);
    assert!(!tensor::encap::addressed_to_overlay(
        &plain,
        Some(host(201))
    ));
    assert!(matches!(
        egress.classify_network(&plain, parse(&plain).ok().as_ref()),
        NetworkClass::Pass
    ));
}

#[test]
fn tampered_metadata_is_forged_and_buys_best_effort() {
    let (mut ingress, _) = engine::<()>(config(two_paths(host(201)), host(200)));
    let (mut egress, ce) = engine::<Vec<u8>>(config(two_paths(host(200)), host(201)));
    let input = vec![
        rocev2(host(1), host(2), 31, 0x04, 0, None, 100),
        rocev2(host(1), host(2), 31, 0x04, 1, None, 100),
    ];
    let mut overlaid = overlay_frames(&mut ingress, &input);
    let f = &mut overlaid[1].1;
    let n = f.len();
    // The last byte before the inner frame is the MAC's: flip it.
    f[n - input[1].len() - 1] ^= 1;
    let frames: Vec<Vec<u8>> = overlaid.iter().map(|(_, f)| f.clone()).collect();
    let (out, refused) = decapsulate(&mut egress, &frames);
    assert!(refused.is_empty());
    assert_eq!(
        out.len(),
        2,
        "the first in turn, the tampered one delivered unsequenced"
    );
    assert_eq!(out[0].0, input[0]);
    assert_eq!(out[1].0, input[1]);
    assert_eq!(out[1].1.class, SchedClass::BestEffort);
    assert_eq!(out[1].1.weight, 1);
    assert_eq!(ce.metadata[MetaOutcome::BadMac as usize].load(Relaxed), 1);
    assert_eq!(
        ce.semantic[SemanticSource::Forged as usize].load(Relaxed),
        1
    );
    assert_eq!(ce.get(Event::UnsequencedDelivered), 1);
}

/// One Geneve option of `class`.
fn option(class: u16, option_type: u8, data: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 128];
    let n = tensor::geneve::emit_option(&mut buf, class, option_type, data).unwrap();
    buf[..n].to_vec()
}

/// `area` (IntelliNode options only) with a MAC option appended, signed
/// the way a sender would under `key` for the inner flow of `frame`.
fn seal(frame: &[u8], area: &[u8], key: &MetadataKey) -> Vec<u8> {
    let outer = tensor::encap::read_encap(frame).unwrap();
    let flow = parse(outer.inner(frame)).unwrap().flow.unwrap();
    let mut msg = flow_key_bytes(&flow).to_vec();
    msg.extend_from_slice(area);
    let mut data = vec![key.id(), 0, 0, 0];
    data.extend_from_slice(&key.cmac(&msg));
    let mut out = area.to_vec();
    out.extend(option(OPTION_CLASS, option_type::MAC, &data));
    out
}

/// The Geneve options area of an overlay frame.
fn options_of(frame: &[u8]) -> Vec<u8> {
    tensor::encap::read_encap(frame).unwrap().options.to_vec()
}

/// `frame` (untagged, outer IHL 5) with its Geneve options replaced by
/// `area`, and the outer lengths and IPv4 checksum to match, so that only
/// the metadata is wrong.
fn with_options(frame: &[u8], area: &[u8]) -> Vec<u8> {
    assert_eq!(area.len() % 4, 0);
    let outer = tensor::encap::read_encap(frame).unwrap();
    let start = outer.header_len - outer.options.len();
    let mut f = frame[..start].to_vec();
    f.extend_from_slice(area);
    f.extend_from_slice(&frame[outer.header_len..]);
    f[42] = (f[42] & 0xc0) | (area.len() / 4) as u8;
    let ip_len = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let sum = classifier::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    assert!(
        tensor::encap::read_encap(&f).is_ok(),
        "outer headers intact"
    );
    f
}

/// wire-format.md §7.5: every metadata error is counted under its code
/// (and under its outcome, as before), and the packet is still delivered.
#[test]
fn each_metadata_error_is_counted_under_its_own_code() {
    let (mut ingress, _) = engine::<()>(config(two_paths(host(201)), host(200)));
    let (mut egress, ce) = engine::<Vec<u8>>(config(two_paths(host(200)), host(201)));
    let input: Vec<Vec<u8>> = (0..9)
        .map(|i| rocev2(host(1), host(2), 41, 0x04, i, None, 100))
        .collect();
    let overlaid: Vec<Vec<u8>> = overlay_frames(&mut ingress, &input)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    let k = key();
    let area = options_of(&overlaid[0]);
    let (covered, mac) = area.split_at(area.len() - 24);
    assert_eq!(&mac[..4], &[0xff, 0x49, option_type::MAC, 5], "MAC last");
    let tensor_type = |t: u8| {
        option(
            OPTION_CLASS,
            option_type::TENSOR_TYPE,
            &[t, 0, 0, 0, 0, 0, 0, 0],
        )
    };
    let phase = option(
        OPTION_CLASS,
        option_type::TRAINING_PHASE,
        &[1, 0, 0, 0, 0, 0, 0, 1],
    );
    let f = |i: usize| overlaid[i].as_slice();
    let cases: Vec<(&str, MetaOutcome, Vec<u8>)> = vec![
        (
            "meta.truncated",
            MetaOutcome::Malformed,
            // Claims 5 words of data; the area ends after its header.
            with_options(f(0), &[0xff, 0x49, option_type::TENSOR_TYPE, 5, 0, 0, 0, 0]),
        ),
        ("meta.mac_not_last", MetaOutcome::Malformed, {
            let mut a = area.clone();
            a.extend(tensor_type(1));
            with_options(f(1), &a)
        }),
        (
            "meta.bad_length",
            MetaOutcome::Malformed,
            with_options(f(2), &option(OPTION_CLASS, option_type::MAC, &[1, 0, 0, 0])),
        ),
        (
            "meta.missing_mac",
            MetaOutcome::MissingMac,
            with_options(f(3), covered),
        ),
        (
            "meta.unknown_key",
            MetaOutcome::UnknownKey,
            with_options(
                f(4),
                &seal(f(4), covered, &MetadataKey::from_bytes(9, [7; 16])),
            ),
        ),
        ("meta.bad_mac", MetaOutcome::BadMac, {
            let mut a = options_of(f(5));
            *a.last_mut().unwrap() ^= 1;
            with_options(f(5), &a)
        }),
        (
            "meta.bad_value",
            MetaOutcome::Malformed,
            with_options(f(6), &seal(f(6), &tensor_type(9), &k)),
        ),
        ("meta.duplicate", MetaOutcome::Malformed, {
            let twice = [phase.clone(), phase.clone()].concat();
            with_options(f(7), &seal(f(7), &twice, &k))
        }),
        (
            "meta.unknown_critical",
            MetaOutcome::Malformed,
            with_options(f(8), &seal(f(8), &option(OPTION_CLASS, 0x90, &[0; 4]), &k)),
        ),
    ];
    let codes = |c: &TensorCounters| -> Vec<u64> {
        c.metadata_errors.iter().map(|n| n.load(Relaxed)).collect()
    };
    let outcomes =
        |c: &TensorCounters| -> Vec<u64> { c.metadata.iter().map(|n| n.load(Relaxed)).collect() };
    let mut seen = Vec::new();
    for (code, outcome, frame) in &cases {
        let i = MetadataError::RECEIVE_CODES
            .iter()
            .position(|c| c == code)
            .unwrap_or_else(|| panic!("{code} is not a receive code"));
        let (before, before_outcomes) = (codes(&ce), outcomes(&ce));
        let forged = || ce.semantic[SemanticSource::Forged as usize].load(Relaxed);
        let forged_before = forged();
        let (out, refused) = decapsulate(&mut egress, std::slice::from_ref(frame));
        assert!(refused.is_empty(), "{code}: {refused:?}");
        assert_eq!(out.len(), 1, "{code}: still delivered");
        // Authentication failures are Forged and best effort; an authentic
        // but malformed block only loses its TLVs (heuristic semantics).
        let auth = *outcome != MetaOutcome::Malformed;
        assert_eq!(forged() - forged_before, u64::from(auth), "{code}");
        assert_eq!(out[0].1.class == SchedClass::BestEffort, auth, "{code}");
        let mut want = before.clone();
        want[i] += 1;
        assert_eq!(codes(&ce), want, "{code} and no other code");
        let mut want = before_outcomes.clone();
        want[*outcome as usize] += 1;
        assert_eq!(outcomes(&ce), want, "{code}: outcome {}", outcome.name());
        seen.push(*code);
    }
    assert_eq!(seen, MetadataError::RECEIVE_CODES, "every code, in order");
    assert_eq!(ce.metadata[MetaOutcome::Accepted as usize].load(Relaxed), 0);
    // An intact frame counts as accepted and under no code.
    let fresh = overlay_frames(
        &mut ingress,
        &[rocev2(host(1), host(2), 41, 0x04, 9, None, 100)],
    );
    let before = codes(&ce);
    decapsulate(&mut egress, &[fresh[0].1.clone()]);
    assert_eq!(codes(&ce), before);
    assert_eq!(ce.metadata[MetaOutcome::Accepted as usize].load(Relaxed), 1);
}

#[test]
fn both_sides_key_a_qp_alike_so_one_worker_owns_it() {
    let (mut ingress, _) = engine::<()>(config(two_paths(host(201)), host(200)));
    let (egress, _) = engine::<Vec<u8>>(config(two_paths(host(200)), host(201)));
    let input = write(host(1), host(2), 41, 8192);
    let overlaid = overlay_frames(&mut ingress, &input);
    for (f, (_, o)) in input.iter().zip(&overlaid) {
        let host_side = ingress.qp_of(&parse(f).unwrap()).unwrap();
        let NetworkClass::Overlay(net) = egress.classify_network(o, parse(o).ok().as_ref()) else {
            panic!("not an overlay frame");
        };
        assert_eq!(net.qp, host_side);
        for workers in 1..=4 {
            let owner = egress.owner_of(&net.qp, workers);
            assert!(owner < workers);
            assert_eq!(owner, ingress.owner_of(&host_side, workers));
        }
    }
    // The owner is the queue RSS on the UDP 4-tuple gives (the two ends
    // share the key): QPs of different 4-tuples spread over the workers.
    let owners: std::collections::HashSet<usize> = (0..64)
        .map(|q| {
            let f = rocev2(host(1 + q as u8), host(2), q, 0x04, 0, None, 10);
            ingress.owner_of(&ingress.qp_of(&parse(&f).unwrap()).unwrap(), 2)
        })
        .collect();
    assert_eq!(owners.len(), 2);
}

#[test]
fn a_learnt_capability_weighs_the_node_on_every_engine() {
    let mut cfg_in = config(two_paths(host(201)), host(200));
    cfg_in.nodes[1].weight = 9; // the sender's own node, announced
    let (mut ingress, _) = engine::<()>(cfg_in);
    let mut cfg_out = config(two_paths(host(200)), host(201));
    cfg_out.nodes[1].local = false;
    let counters = Arc::new(TensorCounters::new(2, 4));
    let weights = NodeWeights::new(&cfg_out.nodes);
    let mut a: Engine<Vec<u8>> =
        Engine::new(cfg_out.clone(), weights.clone(), Arc::clone(&counters));
    let _b: Engine<Vec<u8>> = Engine::new(cfg_out, weights.clone(), Arc::clone(&counters));
    assert_eq!(weights.get(1), 5);
    let input = vec![rocev2(host(1), host(2), 51, 0x04, 0, None, 100)];
    let overlaid = overlay_frames(&mut ingress, &input);
    let (out, _) = decapsulate(&mut a, &[overlaid[0].1.clone()]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        weights.get(1),
        9,
        "every engine sharing the weights sees it"
    );
    assert_eq!(counters.get(Event::CapabilityLearned), 1);
}

#[test]
fn feature_records_coalesce_per_qp_and_a_full_fifo_is_counted() {
    let (mut e, c) = engine::<()>(config(Vec::new(), host(100)));
    for i in 0..3 {
        let mut f = rocev2(host(1), host(2), 11, 0x04, i, None, 64);
        sent(send(&mut e, &mut f, 10 + u64::from(i), 0));
    }
    let mut other = rocev2(host(3), host(2), 12, 0x04, 0, None, 64);
    sent(send(&mut e, &mut other, 20, 0));
    let mut got = Vec::new();
    e.drain_features(99_999, |_| panic!("the window is still open"));
    e.drain_features(100_000, |r| {
        got.push(r);
        got.len() < 2
    });
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].packets, 3, "three packets of one QP, one record");
    assert_eq!(got[0].node, 0, "towards node 0 (10.10.0.2)");
    assert_eq!(c.get(Event::FifoPushed), 1);
    assert_eq!(c.get(Event::FifoFull), 1);
}

#[test]
fn policy_functions() {
    // Classes.
    let h = SemanticSource::Heuristic;
    assert_eq!(
        class_of(QpState::SmallFlow, 1e6, 1e9, h),
        SchedClass::SmallSlow
    );
    assert_eq!(
        class_of(QpState::SmallFlow, 2e9, 1e9, h),
        SchedClass::SmallFast
    );
    assert_eq!(class_of(QpState::LargeFlow, 0.0, 1e9, h), SchedClass::Large);
    assert_eq!(
        class_of(QpState::Draining, 0.0, 1e9, h),
        SchedClass::Draining
    );
    assert_eq!(
        class_of(QpState::SmallFlow, 0.0, 1e9, SemanticSource::Forged),
        SchedClass::BestEffort
    );
    // Heuristic semantics and phases.
    let th = QpThresholds::default();
    let flow = QpFlow::default();
    let s = heuristic_semantics(BthOpcode::RC_WRITE_FIRST, Some(8 << 20), &flow, &th);
    assert_eq!(
        (s.tensor_type, s.gradient_sync),
        (TensorType::Gradient, true)
    );
    assert_eq!(phase_of(&s), TrainingPhase::Backward);
    let s = heuristic_semantics(BthOpcode::RC_WRITE_FIRST, Some(4096), &flow, &th);
    assert_eq!(s.tensor_type, TensorType::Normal);
    let s = heuristic_semantics(BthOpcode::RC_READ_REQUEST, Some(4096), &flow, &th);
    assert_eq!(s.tensor_type, TensorType::Parameter);
    assert_eq!(
        phase_of(&SemanticFeatures {
            tensor_type: TensorType::Activation,
            ..SemanticFeatures::default()
        }),
        TrainingPhase::Forward
    );
    // Slices are dealt round robin over the lanes, which alternate paths.
    let mut plan = SlicePlan {
        slices: 4,
        paths: [NO_PATH; tensor::plan::MAX_SLICES],
        slice_bytes: 1 << 20,
        objective_ns: 1.0,
    };
    plan.paths[..4].copy_from_slice(&[1, 1, 2, 2]);
    interleave_lanes(&mut plan);
    assert_eq!(&plan.paths[..4], &[1, 2, 1, 2]);
    assert_eq!(slice_of(&plan, 0, 1000), (0, 0));
    assert_eq!(slice_of(&plan, 5500, 1000), (5, 1));
    assert_eq!(slice_of(&SlicePlan::NONE, 5500, 1000), (0, 0));
    // Predictions go stale.
    let p = Predictions {
        made_at_ns: 1_000,
        ..Predictions::default()
    };
    assert!(is_fresh(&p, 1_000 + PREDICTION_MAX_AGE_NS));
    assert!(!is_fresh(&p, 1_001 + PREDICTION_MAX_AGE_NS));
    assert!(!is_fresh(&Predictions::default(), 5));
}

#[test]
fn a_target_predicted_backlogged_gets_its_message_on_fewer_paths() {
    // 256 KiB gradients in eight 32 KiB slices over two 10 Gbit/s paths:
    // worth slicing for a waiting GPU (105 µs saved for 7 × 5 µs of
    // slicing), not for one predicted backlogged, which would not start on
    // it sooner (its transfer time weighs 0.2).
    let mut cfg = config(two_paths(host(201)), host(200));
    cfg.min_slice_bytes = 32 << 10;
    cfg.thresholds.large_message_bytes = 256 << 10;
    let (mut e, c) = engine::<()>(cfg);
    let now = 1_000_000;
    let mut p = Predictions {
        made_at_ns: now,
        ..Predictions::default()
    };
    for path in &mut p.paths[..2] {
        path.available_bps = [10e9; tensor::HORIZONS];
    }
    let mut ports_used = |qpn: u32, backlog: f32| {
        // host(2) is the first configured node.
        p.nodes[0].backlog_probability = backlog;
        let mut on = [0usize; 3];
        for mut f in write(host(1), host(2), qpn, 256 << 10) {
            let parsed = parse(&f).unwrap();
            let qp = e.qp_of(&parsed);
            let v = e.host(&mut f, &parsed, qp, 0, 1, now, &p, &|_| 0);
            on[usize::from(sent(v).port)] += 1;
        }
        on
    };
    let waiting = ports_used(41, 0.0);
    assert!(waiting[1] > 0 && waiting[2] > 0, "{waiting:?}");
    let backlogged = ports_used(42, 1.0);
    assert_eq!(
        backlogged.iter().filter(|n| **n > 0).count(),
        1,
        "{backlogged:?}"
    );
    assert_eq!(c.get(Event::MessagesSliced), 1);
}

#[test]
fn the_metadata_key_is_derived_from_the_control_key() {
    let control = control::key::Key::from_hex(&"11".repeat(32)).unwrap();
    let a = tensor::engine::derive_metadata_key(&control, 1);
    let b = tensor::engine::derive_metadata_key(&control, 2);
    assert_eq!(a.id(), 1);
    assert_ne!(a.cmac(b"x"), b.cmac(b"x"), "each key id its own key");
    let again = tensor::engine::derive_metadata_key(&control, 1);
    assert_eq!(a.cmac(b"x"), again.cmac(b"x"));
}

#[test]
fn feature_records_sum_a_qp_over_its_window_and_leave_when_it_ends() {
    let (mut e, c) = engine::<()>(config(Vec::new(), host(100)));
    let push_all = |e: &mut Engine<()>, now: u64| {
        let mut got = Vec::new();
        e.drain_features(now, |r| {
            got.push(r);
            true
        });
        got
    };
    // Three bursts in one 100 µs window: drained after each, nothing
    // leaves, and the QP's packets stay in one record.
    for (i, t) in [1_000u64, 40_000, 99_000].into_iter().enumerate() {
        let mut f = rocev2(host(1), host(2), 11, 0x04, i as u32, None, 64);
        sent(send(&mut e, &mut f, t, 0));
        assert!(push_all(&mut e, t).is_empty(), "window still open at {t}");
    }
    // The next window's first packet opens a new record; the end of the
    // first window hands the old one over, and the new one with it.
    let mut f = rocev2(host(1), host(2), 11, 0x04, 3, None, 64);
    sent(send(&mut e, &mut f, 100_500, 0));
    let got = push_all(&mut e, 100_500);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].t_ns, got[0].packets), (1_000, 3));
    assert_eq!((got[1].t_ns, got[1].packets), (100_500, 1));
    assert_eq!(c.get(Event::FifoPushed), 2);
    // A window that ends with no packet after it leaves at the next drain.
    let mut f = rocev2(host(1), host(2), 11, 0x04, 4, None, 64);
    sent(send(&mut e, &mut f, 250_000, 0));
    assert!(push_all(&mut e, 299_999).is_empty());
    assert_eq!(push_all(&mut e, 300_000).len(), 1);
    // More open records than half the batch leave at once, window or not.
    for qp in 0..(FEATURE_BATCH as u32 / 2 + 1) {
        let mut f = rocev2(host(1), host(2), 100 + qp, 0x04, 0, None, 64);
        sent(send(&mut e, &mut f, 400_000, 0));
    }
    assert_eq!(push_all(&mut e, 400_000).len(), FEATURE_BATCH / 2 + 1);
}

#[test]
fn interleaved_qps_keep_one_record_each_even_when_their_slots_collide() {
    let (mut e, _) = engine::<()>(config(Vec::new(), host(100)));
    // 40 QPs: with one slot per hash some would share a slot, and as they
    // interleave each packet would open a record.
    for round in 0..3u32 {
        for qp in 0..40u32 {
            let mut f = rocev2(host(1), host(2), 200 + qp, 0x04, round, None, 64);
            sent(send(&mut e, &mut f, 1_000 + u64::from(round), 0));
        }
    }
    let mut got = Vec::new();
    e.drain_features(100_000, |r| {
        got.push(r);
        true
    });
    assert_eq!(got.len(), 40);
    assert!(got.iter().all(|r| r.packets == 3), "{got:?}");
}
