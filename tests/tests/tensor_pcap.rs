//! Tensor-aware scheduling through `intellinode run`, on pcaps: generated
//! RoCEv2 traffic enters the host port (port 0) and the tests read what
//! left, from the packets themselves and the stats JSON.
//!
//! * route mode (no overlay): QP state transitions of generated flows, the
//!   ICRC (checked by an independent bitwise implementation) and the IPv4
//!   checksum after TTL and ECN rewrites, WDRR shares against compute
//!   weights, and SMALL flows never waiting behind LARGE ones;
//! * overlay mode, two appliance processes: the ingress appliance slices
//!   large messages over two paths in Geneve, the paths' outputs are
//!   merged with a delay skew, and the egress appliance restores every
//!   QP's original packets byte for byte, in order; tampered metadata TLVs
//!   are caught and buy nothing.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use classifier::{parse, FlowKey, ParsedPacket};
use intellinode_tests::*;
use pktgen::workload::flows::{Host, RcConnection};
use pktgen::Packet;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A GPU host at 10.10.0.`i`.
fn host(i: u8) -> Host {
    Host::new(Ipv4Addr::new(10, 10, 0, i))
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Interleaves several packet lists round robin (one packet of each in
/// turn), as concurrent senders would.
fn interleave(lists: Vec<Vec<Packet>>) -> Vec<Packet> {
    let mut iters: Vec<_> = lists.into_iter().map(|l| l.into_iter()).collect();
    let mut out = Vec::new();
    loop {
        let mut any = false;
        for it in iters.iter_mut() {
            if let Some(p) = it.next() {
                out.push(p);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

fn key_of(frame: &[u8]) -> FlowKey {
    parse(frame).unwrap().flow.unwrap()
}

/// The ICRC by the book (IBA vol. 1 Annex A17.3.3), written independently
/// of `classifier::icrc`: a bitwise reflected CRC-32 over 8 bytes of ones,
/// the IPv4 header with TOS, TTL and checksum set to ones, the UDP header
/// with its checksum set to ones, the BTH with its FECN/BECN byte set to
/// ones, and the payload; stored least significant byte first.
fn icrc_by_the_book(frame: &[u8], p: &ParsedPacket) -> (u32, u32) {
    let l3 = usize::from(p.l3_offset);
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]));
    let mut bytes = vec![0xffu8; 8];
    let mut ip = frame[l3..l3 + ihl].to_vec();
    ip[1] = 0xff; // TOS
    ip[8] = 0xff; // TTL
    ip[10] = 0xff; // checksum
    ip[11] = 0xff;
    bytes.extend_from_slice(&ip);
    let mut udp = frame[l3 + ihl..l3 + ihl + 8].to_vec();
    udp[6] = 0xff;
    udp[7] = 0xff;
    bytes.extend_from_slice(&udp);
    let mut rest = frame[l3 + ihl + 8..l3 + total - 4].to_vec();
    rest[4] = 0xff; // BTH FECN/BECN/reserved
    bytes.extend_from_slice(&rest);
    let mut crc = 0xffff_ffffu32;
    for b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    let stored = u32::from_le_bytes(frame[l3 + total - 4..l3 + total].try_into().unwrap());
    (!crc, stored)
}

/// The IPv4 header checksum recomputed from scratch is zero.
fn ipv4_checksum_ok(frame: &[u8], p: &ParsedPacket) -> bool {
    let l3 = usize::from(p.l3_offset);
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    classifier::checksum::checksum(&frame[l3..l3 + ihl]) == 0
}

/// Route-mode config: hosts on port 0, everything to port 1.
struct RouteKnobs {
    rate_mbps: Option<f64>,
    decrement_ttl: bool,
    ecn_mark: u32,
    band_limit: u32,
    nodes: Vec<(u8, u16)>,
    /// Every packet's ICRC is checked here (the shipped default samples).
    icrc_check_every: u32,
}

impl Default for RouteKnobs {
    fn default() -> Self {
        RouteKnobs {
            rate_mbps: None,
            decrement_ttl: false,
            ecn_mark: 0,
            band_limit: 4096,
            nodes: Vec::new(),
            icrc_check_every: 1,
        }
    }
}

/// Rate thresholds are out of reach on purpose: a pcap replays at full
/// speed, so only bytes, opcodes and idleness drive the states here (the
/// rate rules are unit-tested in `tensor`).
/// Route mode. QPs forget themselves after 200 ms idle: long after the
/// pcaps end within a run, and longer than a worker of a busy machine is
/// ever descheduled mid-replay (a stall past the timeout restarts a QP in
/// the middle of a message, which adds transitions nobody sent).
fn route_config(dir: &Path, k: &RouteKnobs) -> PathBuf {
    let mut text = format!(
        "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\n\
         decrement_ttl = {}\necn_mark_packets = {}\nband_limit_packets = {}\n\
         icrc_check_every = {}\n\
         [tensor.qp]\nlarge_rate_mbps = 1e12\nidle_timeout_ms = 200\n",
        k.decrement_ttl, k.ecn_mark, k.band_limit, k.icrc_check_every
    );
    if let Some(r) = k.rate_mbps {
        text += &format!("[[tensor.egress]]\nport = 1\nrate_mbps = {r}\n");
    }
    for (i, w) in &k.nodes {
        text += &format!(
            "[[tensor.nodes]]\nname = \"gpu{i}\"\nip = \"10.10.0.{i}\"\nweight = {w}\nid = {i}\n"
        );
    }
    let path = dir.join("tensor.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// When a run ends: after a fixed time, for what happens with time after
/// the input (QPs going idle), or as soon as the input has gone through
/// and nothing is held, within a bound (`--until-idle`).
#[derive(Clone, Copy)]
enum Stop {
    After(f64),
    Drained(f64),
}

struct Run {
    out: Vec<Vec<u8>>,
    back: Vec<Vec<u8>>,
    stats: serde_json::Value,
}

/// One appliance on `workers` workers: `host` into port 0 and `network`
/// into port 1, one pcap per RX queue each (none: nothing received);
/// returns what left each of its `ports` ports (every TX queue's pcap,
/// one after the other) and its stats.
#[allow(clippy::too_many_arguments)]
fn run_appliance(
    dir: &Path,
    tag: &str,
    config: &Path,
    host: &[PathBuf],
    network: &[PathBuf],
    ports: usize,
    stop: Stop,
    workers: Workers,
) -> (Vec<Vec<Vec<u8>>>, serde_json::Value) {
    let _dpdk = dpdk_lock();
    let mut vdevs = Vec::new();
    let mut outs = Vec::new();
    for port in 0..ports {
        let out = workers.queue_files(dir, &format!("{tag}-out{port}"));
        let rx = match port {
            0 => host,
            1 => network,
            _ => &[],
        };
        vdevs.push(workers.pcap_vdev(port, rx, &out));
        outs.push(out);
    }
    let eal = workers.eal_args(tag, &vdevs);
    let json = dir.join(format!("{tag}-stats.json"));
    let (out, stats) = match stop {
        Stop::After(secs) => run_forward(config, secs, &eal, &json),
        Stop::Drained(bound) => run_drained(config, bound, &eal, &json),
    };
    assert!(
        out.status.success(),
        "intellinode failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = stats.expect("stats json");
    assert_eq!(
        stats["totals"]["balanced"], true,
        "rx = tx + drops: {}",
        stats["totals"]
    );
    (outs.iter().map(|p| frames_of(p)).collect(), stats)
}

/// The host side's input for `workers`: one queue, or two split by flow
/// the way RSS splits them (a QP's packets stay on one queue, in order;
/// whether that queue's worker owns the QP depends on the appliance's
/// random hash seed).
fn host_queues(dir: &Path, stem: &str, input: &[Packet], workers: Workers) -> Vec<PathBuf> {
    let frames: Vec<Vec<u8>> = input.iter().map(|p| p.data.clone()).collect();
    workers.split(dir, stem, &frames, |_, f| flow_hash(f))
}

/// The host side's input for `workers`, every QP's packets dealt
/// alternately over both queues: each QP arrives on both, so whichever
/// worker owns it, the other hands it over. The queues race, so a QP's
/// order is lost; only for scenarios whose checks do not depend on it.
fn host_queues_alternating(
    dir: &Path,
    stem: &str,
    input: &[Packet],
    workers: Workers,
) -> Vec<PathBuf> {
    let frames: Vec<Vec<u8>> = input.iter().map(|p| p.data.clone()).collect();
    workers.split(dir, stem, &frames, |i, _| i)
}

fn run_route(dir: &Path, k: &RouteKnobs, input: &[Packet], stop: Stop, workers: Workers) -> Run {
    let rx = host_queues(dir, "in", input, workers);
    run_route_on(dir, k, &rx, stop, workers)
}

fn run_route_on(dir: &Path, k: &RouteKnobs, rx: &[PathBuf], stop: Stop, workers: Workers) -> Run {
    let config = route_config(dir, k);
    let (mut outs, stats) = run_appliance(dir, "route", &config, rx, &[], 2, stop, workers);
    let out = outs.remove(1);
    let back = outs.remove(0);
    Run { out, back, stats }
}

fn transitions(stats: &serde_json::Value) -> BTreeMap<String, u64> {
    stats["tensor"]["qp_transitions"]
        .as_object()
        .expect("qp_transitions")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn qp_states_follow_bytes_opcodes_and_idleness(workers: Workers) {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(1);
    let mut t = 0u64;
    // S: control messages, SEND Only.
    let mut s = RcConnection::new(&mut r, host(1), host(2));
    let small: Vec<Packet> = (0..5)
        .map(|i| s.send_only(&[i as u8; 200], i * 1000).unwrap())
        .collect();
    // L: one 4 MiB WRITE, large from its RETH on.
    let mut l = RcConnection::new(&mut r, host(3), host(4));
    let (large, _) = l.write(&mut r, 4 << 20, t, 100).unwrap();
    // M: three 512 KiB WRITEs, each under the 1 MiB threshold.
    let mut m = RcConnection::new(&mut r, host(5), host(6));
    let mut medium = Vec::new();
    for _ in 0..3 {
        let (p, end) = m.write(&mut r, 512 << 10, t, 100).unwrap();
        medium.extend(p);
        t = end;
    }
    // B: small WRITE, then a 2 MiB WRITE, then a SEND: small, large,
    // draining, small again.
    let mut b = RcConnection::new(&mut r, host(7), host(8));
    let (mut both, end) = b.write(&mut r, 256 << 10, 0, 100).unwrap();
    let (p, end) = b.write(&mut r, 2 << 20, end, 100).unwrap();
    both.extend(p);
    both.push(b.send_only(b"done", end).unwrap());
    let input = interleave(vec![small, large, medium, both]);
    // A fixed time: the QPs must go idle after the input ends.
    let run = run_route(
        dir.path(),
        &RouteKnobs::default(),
        &input,
        Stop::After(1.5),
        workers,
    );

    let got = transitions(&run.stats);
    let want: BTreeMap<String, u64> = [
        // S, M and B start small; L starts large.
        ("UNALLOCATED->SMALL_FLOW", 3),
        ("UNALLOCATED->LARGE_FLOW", 1),
        // B's 2 MiB message.
        ("SMALL_FLOW->LARGE_FLOW", 1),
        // The Last packets of L's and B's large messages.
        ("LARGE_FLOW->DRAINING", 2),
        // B's closing SEND.
        ("DRAINING->SMALL_FLOW", 1),
        // Idle past 200 ms after the pcap ends: S, M, B small, L draining.
        ("SMALL_FLOW->UNALLOCATED", 3),
        ("DRAINING->UNALLOCATED", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(got, want, "transitions: {}", run.stats["tensor"]);
    assert_eq!(run.out.len(), input.len(), "every packet leaves port 1");
    assert!(run.back.is_empty());
    let events = &run.stats["tensor"]["events"];
    assert_eq!(events["qp_new"], 4, "{events}");
    assert_eq!(events["qp_expired"], 4, "{events}");
    // The worker fed the predictor core.
    assert!(
        events["feature_fifo_pushed"].as_u64().unwrap() > 0,
        "{events}"
    );
    assert!(
        run.stats["tensor"]["predictor"]["records"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Heuristic semantics: L's and B's large WRITEs are gradients.
    assert_eq!(run.stats["tensor"]["tensor_types"]["gradient"], 2);
}

fn icrc_and_ipv4_checksum_survive_ttl_and_ecn_rewrites(workers: Workers) {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(2);
    let mut a = RcConnection::new(&mut r, host(1), host(2));
    let (mut input, _) = a.write(&mut r, 1 << 20, 0, 100).unwrap();
    let mut c = RcConnection::new(&mut r, host(3), host(4));
    for i in 0..50 {
        input.push(c.send_only(&[7; 64], i).unwrap());
    }
    // Three packets whose ICRC was broken on the way in.
    let mut broken = 0;
    for p in input.iter_mut().skip(10).step_by(300).take(3) {
        let n = p.data.len();
        p.data[n - 1] ^= 0x5a;
        broken += 1;
    }
    let knobs = RouteKnobs {
        rate_mbps: Some(50.0),
        decrement_ttl: true,
        ecn_mark: 8,
        ..RouteKnobs::default()
    };
    // Nothing here depends on a QP's order, so each QP arrives on both
    // queues: half its packets reach the worker that does not own it.
    let rx = host_queues_alternating(dir.path(), "in", &input, workers);
    let run = run_route_on(dir.path(), &knobs, &rx, Stop::Drained(1.5), workers);
    assert_eq!(run.out.len(), input.len() - broken);
    if workers == Workers::Two {
        assert!(handoffs(&run.stats) > 0, "both QPs arrived on both queues");
    }
    let drops = &run.stats["ports"][0]["drops"];
    assert_eq!(drops["icrc_bad"], broken as u64, "{drops}");
    for p in input.iter().take(10) {
        let pp = parse(&p.data).unwrap();
        let (computed, stored) = icrc_by_the_book(&p.data, &pp);
        assert_eq!(computed, stored, "the independent ICRC agrees on the input");
    }
    let ttl_in = parse(&input[0].data).unwrap().ttl;
    let mut marked = 0;
    for f in &run.out {
        let p = parse(f).unwrap();
        assert!(p.bth.is_some());
        assert_eq!(p.ttl, ttl_in - 1, "TTL decremented once");
        assert!(ipv4_checksum_ok(f, &p), "IPv4 checksum after rewrite");
        let (computed, stored) = icrc_by_the_book(f, &p);
        assert_eq!(computed, stored, "ICRC still verifies");
        assert_eq!(classifier::icrc::verify_icrc(p.l3(f)), Ok(true));
        if p.tos & 3 == 3 {
            marked += 1;
        }
    }
    assert!(
        marked > 0,
        "a 50 Mbit/s port queues, so some packets are CE"
    );
    assert_eq!(
        run.stats["tensor"]["events"]["ecn_marked"], marked,
        "every mark counted"
    );
    // And it sees the broken ones as broken (so it can fail).
    let p = &input[10];
    let pp = parse(&p.data).unwrap();
    let (computed, stored) = icrc_by_the_book(&p.data, &pp);
    assert_ne!(computed, stored);
}

/// Per QP (by destination address), bytes in `out` while every QP still
/// had packets left to send.
fn shares_while_backlogged(out: &[Vec<u8>]) -> HashMap<Ipv4Addr, u64> {
    let mut remaining: HashMap<Ipv4Addr, usize> = HashMap::new();
    for f in out {
        *remaining.entry(dst(f)).or_default() += 1;
    }
    let mut bytes: HashMap<Ipv4Addr, u64> = HashMap::new();
    for f in out {
        if remaining.values().any(|&n| n == 0) {
            break;
        }
        let d = dst(f);
        *bytes.entry(d).or_default() += f.len() as u64;
        *remaining.get_mut(&d).unwrap() -= 1;
    }
    bytes
}

fn dst(f: &[u8]) -> Ipv4Addr {
    key_of(f).dst_ip().to_string().parse().unwrap()
}

fn large_flows_share_by_compute_weight(workers: Workers) {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(3);
    let weights = [(2u8, 1u16), (4, 2), (6, 4)];
    let flows: Vec<Vec<Packet>> = weights
        .iter()
        .map(|(d, _)| {
            let mut c = RcConnection::new(&mut r, host(d - 1), host(*d));
            let mut all = Vec::new();
            let mut t = 0;
            for _ in 0..2 {
                let (p, end) = c.write(&mut r, 2 << 20, t, 100).unwrap();
                all.extend(p);
                t = end;
            }
            all
        })
        .collect();
    let input = interleave(flows);
    let knobs = RouteKnobs {
        rate_mbps: Some(200.0),
        band_limit: 20_000,
        nodes: weights.to_vec(),
        ..RouteKnobs::default()
    };
    let run = run_route(dir.path(), &knobs, &input, Stop::Drained(2.5), workers);
    assert_eq!(run.out.len(), input.len(), "nothing dropped");
    let bytes = shares_while_backlogged(&run.out);
    let normalised: Vec<f64> = weights
        .iter()
        .map(|(d, w)| bytes[&Ipv4Addr::new(10, 10, 0, *d)] as f64 / f64::from(*w))
        .collect();
    let jain = sched::jain_index(&normalised);
    assert!(
        jain >= 0.99,
        "Jain's index over bytes/weight {jain:.4}: {normalised:?}"
    );
    // And the share is really by weight, not equal: the weight-4 QP sent
    // at least 3.5 times what the weight-1 QP sent.
    assert!(normalised.iter().all(|x| *x > 0.0));
    let ratio =
        bytes[&Ipv4Addr::new(10, 10, 0, 6)] as f64 / bytes[&Ipv4Addr::new(10, 10, 0, 2)] as f64;
    assert!(ratio > 3.5 && ratio < 4.5, "weight 4 vs 1 got {ratio:.2}");
}

fn small_flow_packets_never_wait_behind_large_ones(workers: Workers) {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(4);
    let mut big = RcConnection::new(&mut r, host(1), host(2));
    let (large, _) = big.write(&mut r, 3 << 20, 0, 100).unwrap();
    let mut ctl = RcConnection::new(&mut r, host(3), host(4));
    // A control message after every 100 large packets.
    let mut input = Vec::new();
    for (i, p) in large.into_iter().enumerate() {
        if i % 100 == 50 {
            input.push(ctl.send_only(&[i as u8; 100], 0).unwrap());
        }
        input.push(p);
    }
    let knobs = RouteKnobs {
        rate_mbps: Some(100.0),
        band_limit: 20_000,
        ..RouteKnobs::default()
    };
    let run = run_route(dir.path(), &knobs, &input, Stop::Drained(2.0), workers);
    assert_eq!(run.out.len(), input.len());
    let arrival: HashMap<Vec<u8>, usize> = input
        .iter()
        .enumerate()
        .map(|(i, p)| (p.data.clone(), i))
        .collect();
    let is_small =
        |f: &[u8]| key_of(f).dst_ip() == std::net::IpAddr::V4(Ipv4Addr::new(10, 10, 0, 4));
    let mut overtaken = 0usize;
    let mut small_seen = 0;
    for (pos, f) in run.out.iter().enumerate() {
        if !is_small(f) {
            continue;
        }
        small_seen += 1;
        let arrived = arrival[f];
        // No LARGE packet that arrived after this one left before it. With
        // two queues read at once (each QP on its own, as RSS splits
        // them) there is no common arrival order to compare against; the
        // scheduler's own sojourn times below say the same for both.
        if workers == Workers::One {
            for earlier in &run.out[..pos] {
                if !is_small(earlier) {
                    assert!(
                        arrival[earlier] < arrived,
                        "a LARGE packet that arrived after a SMALL one left first"
                    );
                }
            }
        }
        // How many LARGE packets that arrived before it it overtook.
        overtaken += run.out[pos + 1..]
            .iter()
            .filter(|g| !is_small(g) && arrival[*g] < arrived)
            .count();
    }
    assert_eq!(small_seen, 31);
    assert!(
        overtaken > 1000,
        "small packets overtook only {overtaken} queued large ones"
    );
    let classes = &run.stats["tensor"]["ports"][0]["classes"];
    assert_eq!(classes["small_slow"]["queued"], 31, "{classes}");
    // At the port's one scheduler, whichever worker queued them, SMALL
    // packets waited a fraction of what LARGE ones did. Medians, not
    // tails: a worker descheduled by a busy machine delays every class.
    let p50 = |class: &str| {
        run.stats["tensor"]["sojourn_us"][class]["p50"]
            .as_u64()
            .unwrap_or_else(|| panic!("{class}: {}", run.stats["tensor"]["sojourn_us"]))
    };
    assert!(
        p50("small_slow") * 10 < p50("large").max(1),
        "small p50 {} us vs large p50 {} us",
        p50("small_slow"),
        p50("large")
    );
}

/// Overlay config for one of two appliances.
///
/// With two workers the egress appliance's queues (one per path) race, so
/// the far side's reordering distance is up to a handoff ring (1024
/// packets) rather than the merge's skew: its window is sized for that,
/// and so is the host port's queue, which takes what the window releases
/// at once when a late slice fills a gap.
fn overlay_config(
    dir: &Path,
    name: &str,
    local: &str,
    remote: &str,
    key: &Path,
    workers: Workers,
) -> PathBuf {
    let (window, band_limit) = match workers {
        Workers::One => (512, 1024),
        Workers::Two => (4096, 8192),
    };
    let text = format!(
        "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\n\
         local_ip = \"{local}\"\nkey_file = \"{key}\"\nmin_slice_bytes = 65536\n\
         reorder_window = {window}\nreorder_timeout_us = 200000\nband_limit_packets = {band_limit}\n\
         [tensor.qp]\nlarge_rate_mbps = 1e12\n\
         [[tensor.paths]]\nid = 1\nport = 1\nnext_hop_mac = \"02:00:00:00:01:01\"\nremote_ip = \"{remote}\"\ncapacity_mbps = 10000\nlatency_us = 5\n\
         [[tensor.paths]]\nid = 2\nport = 2\nnext_hop_mac = \"02:00:00:00:02:01\"\nremote_ip = \"{remote}\"\ncapacity_mbps = 10000\nlatency_us = 8\n",
        key = key.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Where, in an overlay frame, the data of the IntelliNode option of
/// type `option_type` starts (read without trusting it: the test is the
/// attacker here).
fn option_data_at(frame: &[u8], option_type: u8) -> Option<usize> {
    use tensor::geneve::GeneveOptions;
    let outer = tensor::encap::read_encap(frame).expect("overlay frame");
    let options_start = outer.header_len - outer.options.len();
    let mut it = GeneveOptions::new(outer.options);
    loop {
        let at = it.offset();
        let o = it.next()?.ok()?;
        if o.class == tensor::metadata::OPTION_CLASS && o.option_type == option_type {
            return Some(options_start + at + 4);
        }
    }
}

/// The FRAGMENT option's stream sequence of an overlay frame (its last 4
/// data bytes, wire-format.md §7).
fn stream_seq(frame: &[u8]) -> u32 {
    let at = option_data_at(frame, tensor::metadata::option_type::FRAGMENT).expect("FRAGMENT");
    u32::from_be_bytes(frame[at + 8..at + 12].try_into().unwrap())
}

/// What the two paths delivered, merged as if path 2 were `skew` packets
/// slower than path 1.
fn merge_with_skew(path1: &[Vec<u8>], path2: &[Vec<u8>], skew: usize) -> Vec<Vec<u8>> {
    let mut timed: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for (i, f) in path1.iter().enumerate() {
        timed.push((i * 2, 0, f.clone()));
    }
    for (i, f) in path2.iter().enumerate() {
        timed.push((i * 2 + skew * 2, 1, f.clone()));
    }
    timed.sort_by_key(|(t, p, _)| (*t, *p));
    timed.into_iter().map(|(_, _, f)| f).collect()
}

fn overlay_workload(seed: u64) -> Vec<Packet> {
    let mut r = rng(seed);
    let mut a = RcConnection::new(&mut r, host(1), host(2));
    let mut big = Vec::new();
    let mut t = 0;
    for _ in 0..2 {
        let (p, end) = a.write(&mut r, 2 << 20, t, 100).unwrap();
        big.extend(p);
        t = end;
    }
    let mut c = RcConnection::new(&mut r, host(3), host(2));
    let small: Vec<Packet> = (0..40)
        .map(|i| c.send_only(&[i as u8; 256], i).unwrap())
        .collect();
    interleave(vec![big, small])
}

/// The ingress appliance on `input`: returns what left the host port and
/// the two paths, and its stats.
fn run_ingress(
    dir: &Path,
    key: &Path,
    input: &[Packet],
    workers: Workers,
) -> (Vec<Vec<Vec<u8>>>, serde_json::Value) {
    let config = overlay_config(dir, "ingress", "192.0.2.1", "192.0.2.2", key, workers);
    let rx = host_queues(dir, "hosts", input, workers);
    run_appliance(
        dir,
        "ingress",
        &config,
        &rx,
        &[],
        3,
        Stop::Drained(1.5),
        workers,
    )
}

/// The egress appliance on what the network delivered into its port 1.
/// On one queue, `merged`: both paths merged with a skew. On two, each
/// path's frames on a queue of their own, as RSS on the outer headers
/// (whose source port differs per path) would put them: every QP's
/// slices arrive on both queues, which race each other, so they meet out
/// of order at whichever worker owns the QP.
fn run_egress(
    dir: &Path,
    key: &Path,
    merged: &[Vec<u8>],
    paths: [&[Vec<u8>]; 2],
    workers: Workers,
) -> (Vec<Vec<Vec<u8>>>, serde_json::Value) {
    let config = overlay_config(dir, "egress", "192.0.2.2", "192.0.2.1", key, workers);
    let files = workers.queue_files(dir, "network");
    match workers {
        Workers::One => write_frames(&files[0], merged),
        Workers::Two => {
            for (file, frames) in files.iter().zip(paths) {
                write_frames(file, frames);
            }
        }
    }
    run_appliance(
        dir,
        "egress",
        &config,
        &[],
        &files,
        3,
        Stop::Drained(1.5),
        workers,
    )
}

/// Per QP, its frames in order.
fn per_qp(frames: &[Vec<u8>]) -> HashMap<FlowKey, Vec<Vec<u8>>> {
    let mut m: HashMap<FlowKey, Vec<Vec<u8>>> = HashMap::new();
    for f in frames {
        m.entry(key_of(f)).or_default().push(f.clone());
    }
    m
}

fn sliced_messages_arrive_byte_identical_and_in_order(workers: Workers) {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = write_key(dir.path(), "overlay.key");
    let input = overlay_workload(5);
    let (outs, stats_a) = run_ingress(dir.path(), &key, &input, workers);
    let (path1, path2) = (&outs[1], &outs[2]);
    assert!(outs[0].is_empty());
    assert_eq!(
        path1.len() + path2.len(),
        input.len(),
        "every packet overlaid"
    );
    assert!(
        path1.len() > 500 && path2.len() > 500,
        "both paths carry slices: {} and {}",
        path1.len(),
        path2.len()
    );
    let ev = &stats_a["tensor"]["events"];
    assert_eq!(ev["encapsulated"], input.len() as u64, "{ev}");
    assert_eq!(ev["messages_sliced"], 2, "{ev}");
    // Each path's stream sequence numbers rise; the merge below makes the
    // far side see them out of order.
    let merged = merge_with_skew(path1, path2, 150);
    let seqs: Vec<u32> = merged.iter().map(|f| stream_seq(f)).collect();
    assert!(seqs.windows(2).any(|w| w[1] < w[0]), "the merge reorders");

    let (outs_b, stats_b) = run_egress(dir.path(), &key, &merged, [path1, path2], workers);
    let delivered = &outs_b[0];
    assert_eq!(
        delivered.len(),
        input.len(),
        "every packet delivered once: ports {} events {}",
        stats_b["ports"],
        stats_b["tensor"]["events"]
    );
    let want = per_qp(&input.iter().map(|p| p.data.clone()).collect::<Vec<_>>());
    let got = per_qp(delivered);
    assert_eq!(got.len(), want.len());
    for (k, frames) in &want {
        assert!(
            got[k] == *frames,
            "QP {k:?}: the far side's frames differ from the original or are out of order"
        );
    }
    let meta = &stats_b["tensor"]["metadata"];
    assert_eq!(meta["accepted"], input.len() as u64, "{meta}");
    assert_eq!(meta["bad_mac"], 0);
    let codes = stats_b["tensor"]["metadata_errors"]
        .as_object()
        .expect("tensor.metadata_errors");
    assert!(
        codes.values().all(|v| v == 0),
        "no metadata error: {codes:?}"
    );
    let ev = &stats_b["tensor"]["events"];
    assert!(ev["reorder_held"].as_u64().unwrap() > 0, "{ev}");
    assert_eq!(ev["reorder_lost"], 0, "{ev}");
    if workers == Workers::Two {
        assert!(
            handoffs(&stats_b) > 0,
            "every QP's slices arrived on both queues, so some met the worker that does not own it"
        );
    }
}

fn tampered_metadata_tlvs_are_caught_and_buy_nothing(workers: Workers) {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = write_key(dir.path(), "overlay.key");
    let input = overlay_workload(6);
    let (outs, _) = run_ingress(dir.path(), &key, &input, workers);
    // An on-path attacker rewrites the TENSOR_TYPE of every 10th packet
    // of path 1 to "activation", hoping for the strict band.
    let mut path1 = outs[1].clone();
    let mut tampered = 0u64;
    for f in path1.iter_mut().step_by(10) {
        let at = option_data_at(f, tensor::metadata::option_type::TENSOR_TYPE)
            .expect("a TENSOR_TYPE option");
        f[at] = tensor::TensorType::Activation as u8;
        tampered += 1;
    }
    let merged = merge_with_skew(&path1, &outs[2], 0);
    let (outs_b, stats) = run_egress(dir.path(), &key, &merged, [&path1, &outs[2]], workers);
    let meta = &stats["tensor"]["metadata"];
    assert_eq!(meta["bad_mac"], tampered, "{meta}");
    assert_eq!(
        meta["accepted"].as_u64().unwrap() + tampered,
        input.len() as u64,
        "{meta}"
    );
    // wire-format.md §7.5: each error is counted under its code too.
    let codes = &stats["tensor"]["metadata_errors"];
    assert_eq!(codes["meta.bad_mac"], tampered, "{codes}");
    let total: u64 = codes
        .as_object()
        .expect("tensor.metadata_errors")
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, tampered, "under no other code: {codes}");
    // A tampered packet's FRAGMENT cannot be trusted either, so it is
    // delivered unsequenced and leaves a hole in its stream; the reorder
    // buffer skips the hole (counted lost) and anything that then arrives
    // behind its window is a counted late drop. Every packet is accounted
    // for, and every tampered one was delivered.
    let late = stats["ports"][1]["drops"]["reorder_late"].as_u64().unwrap();
    assert_eq!(
        outs_b[0].len() as u64 + late,
        input.len() as u64,
        "drops: {} events: {}",
        stats["ports"][1]["drops"],
        stats["tensor"]["events"]
    );
    // Tampered packets are delivered at best effort: none of them got a
    // strict band, and no activation was believed.
    let t = &stats["tensor"];
    assert!(t["semantic_sources"]["forged"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(t["tensor_types"]["activation"], 0, "{t}");
    assert_eq!(t["events"]["unsequenced_delivered"], tampered, "{t}");
    let classes = &t["ports"][0]["classes"];
    assert_eq!(classes["best_effort"]["queued"], tampered, "{classes}");
    if workers == Workers::Two {
        assert!(
            handoffs(&stats) > 0,
            "slices met the worker that does not own their QP"
        );
    }
}

/// Issue 16: at the decapsulating appliance, an overlay frame whose outer
/// IPv4 header checksum is wrong was delivered to the hosts still
/// encapsulated (the parser refused it, so it did not look like Geneve and
/// passed as ordinary traffic). A frame addressed to the overlay that
/// fails any outer check is a drop, counted under its code.
fn a_damaged_overlay_frame_is_a_counted_drop_never_delivered(workers: Workers) {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = write_key(dir.path(), "overlay.key");
    let input = overlay_workload(7);
    let (outs, _) = run_ingress(dir.path(), &key, &input, workers);
    let mut path1 = outs[1].clone();
    let mut damaged = 0u64;
    for f in path1.iter_mut().skip(3).step_by(25) {
        f[14 + 10] ^= 0x5a; // the outer IPv4 header checksum
        assert!(parse(f).is_err(), "the parser refuses it");
        damaged += 1;
    }
    let merged = merge_with_skew(&path1, &outs[2], 0);
    let (outs_b, stats) = run_egress(dir.path(), &key, &merged, [&path1, &outs[2]], workers);
    for f in &outs_b[0] {
        assert!(
            tensor::encap::read_encap(f).is_err() && parse(f).is_ok_and(|p| p.bth.is_some()),
            "only decapsulated RoCEv2 frames reach the hosts"
        );
    }
    let drops = &stats["ports"][1]["drops"];
    assert_eq!(drops["overlay_malformed"], damaged, "{drops}");
    let codes = &stats["tensor"]["overlay_malformed"];
    assert_eq!(codes["bad_ip_checksum"], damaged, "{codes}");
    let total: u64 = codes
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, damaged, "the codes add up to the drops: {codes}");
    // Every other packet is accounted for: delivered, or behind the hole a
    // dropped one left in its stream.
    let late = drops["reorder_late"].as_u64().unwrap();
    assert_eq!(
        outs_b[0].len() as u64 + late + damaged,
        input.len() as u64,
        "{drops}"
    );
}

on_one_and_two_workers!(
    qp_states_follow_bytes_opcodes_and_idleness,
    icrc_and_ipv4_checksum_survive_ttl_and_ecn_rewrites,
    large_flows_share_by_compute_weight,
    small_flow_packets_never_wait_behind_large_ones,
    sliced_messages_arrive_byte_identical_and_in_order,
    tampered_metadata_tlvs_are_caught_and_buy_nothing,
    a_damaged_overlay_frame_is_a_counted_drop_never_delivered,
);

/// With the host port's RSS key in the config, a NIC hashing the UDP
/// 4-tuple as `docs/architecture.md` says delivers every QP to the worker
/// that owns it: RoCEv2 traffic split that way (`pktgen rss-split --field
/// ports`, the documented hash computed outside the appliance) is never
/// handed over, and all of it is forwarded.
#[test]
fn qps_split_by_the_configured_rss_key_reach_their_owner_without_handoff() {
    const KEY: &str =
        "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa";
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("roce.pcap");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin_under_test("pktgen"))
            .args(args)
            .output()
            .expect("spawn pktgen");
        assert!(
            out.status.success(),
            "pktgen {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let input_s = input.to_str().unwrap();
    run(&[
        "write",
        "--workload",
        "roce",
        "--seed",
        "5",
        "--packets",
        "4000",
        "-o",
        input_s,
    ]);
    let prefix = dir.path().join("host");
    run(&[
        "rss-split",
        "--queues",
        "2",
        "--field",
        "ports",
        "--key",
        KEY,
        "-o",
        prefix.to_str().unwrap(),
        input_s,
    ]);
    let workers = Workers::Two;
    let rx = workers.queue_files(dir.path(), "host");
    assert!(
        rx.iter().all(|q| frames(q).len() > 400),
        "both queues get QPs"
    );
    let config = route_config(dir.path(), &RouteKnobs::default());
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[tensor]\n", &format!("[tensor]\nrss_key = \"{KEY}\"\n"), 1),
    )
    .unwrap();
    let (outs, stats) = run_appliance(
        dir.path(),
        "rss",
        &config,
        &rx,
        &[],
        2,
        Stop::Drained(3.0),
        workers,
    );
    assert_eq!(handoffs(&stats), 0, "{}", stats["lcores"]);
    let per_worker: Vec<u64> = stats["lcores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rx_packets"].as_u64().unwrap_or(0))
        .collect();
    assert!(per_worker.iter().all(|&n| n > 400), "{per_worker:?}");
    assert_eq!(
        outs[1].len(),
        frames(&input).len(),
        "every packet forwarded"
    );
}
