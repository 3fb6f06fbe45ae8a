//! Fragments through the steering engine, deterministically and without
//! I/O: the first fragment decides, later ones follow with the same egress
//! and rewrite, ones ahead of their first are held and released by it,
//! and the hold is bounded and ages out. Every rewritten datagram is
//! reassembled and its checksums verified.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use classifier::checksum::{checksum, PseudoHeader};
use classifier::fragment::{fragment, reassemble};
use classifier::token_feature::encode;
use classifier::token_feature_tlv::{emit_hbh_header, emit_ipv4_option, TokenFeatureTlvRepr};
use classifier::{parse, IpProtocol, L3Kind, TokenFeatures};
use common::*;
use control::view::DataplaneView;
use steer::fragment::{FragmentLimits, Treatment, Unheld, Unhold};
use steer::stats::{FragmentEvent, SteerCounters};
use steer::{Engine, EngineConfig, Refusal, Steerable, Verdict};

const CLIENT4: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 11);
const VIP4: Ipv4Addr = Ipv4Addr::new(10, 0, 100, 1);
const EDGE4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const CENTRE4: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);

fn client6() -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 0x11)
}
fn vip6() -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0x100, 0, 0, 0, 1)
}
fn edge6() -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 2)
}

/// Path 1's next hop (the edge path), where requests to the edge go.
const EDGE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// Port of path 1 (edge) and path 2 (centre).
const EDGE_PORT: u16 = 1;
const CENTRE_PORT: u16 = 2;

/// A UDP datagram `src:sport → dst:dport` with `payload_len` bytes, a
/// correct checksum, and the token-feature TLV for `features` when given
/// (IPv4 option 0x9E, or an IPv6 Hop-by-Hop header).
fn udp_frame(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    payload_len: usize,
    features: Option<TokenFeatures>,
) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7 + 3) as u8).collect();
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend(payload);
    let tlv = features.map(|f| TokenFeatureTlvRepr {
        directed: false,
        feature_id: encode(&f),
    });
    let mut frame = vec![2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 1, 0x11];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let c = PseudoHeader::V4 { src: s, dst: d }.checksum(IpProtocol::UDP, &udp);
            udp[6..8].copy_from_slice(&c.to_be_bytes());
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            if let Some(t) = tlv {
                let mut opt = [0u8; 12];
                emit_ipv4_option(&t, &mut opt).unwrap();
                h.extend_from_slice(&opt);
                h[0] = 0x48;
            }
            let total = (h.len() + udp.len()) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            frame.extend_from_slice(&[0x08, 0x00]);
            frame.extend(h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let c = PseudoHeader::V6 { src: s, dst: d }.checksum(IpProtocol::UDP, &udp);
            udp[6..8].copy_from_slice(&c.to_be_bytes());
            let mut ext = Vec::new();
            let next = match tlv {
                Some(t) => {
                    let mut hbh = [0u8; 16];
                    emit_hbh_header(&t, 17, &mut hbh).unwrap();
                    ext.extend_from_slice(&hbh);
                    0
                }
                None => 17,
            };
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&((ext.len() + udp.len()) as u16).to_be_bytes());
            h.extend_from_slice(&[next, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            frame.extend_from_slice(&[0x86, 0xdd]);
            frame.extend(h);
            frame.extend(ext);
        }
        _ => panic!("one family"),
    }
    frame.extend(udp);
    frame
}

fn request(v6: bool, features: TokenFeatures, payload_len: usize) -> Vec<u8> {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (client6().into(), vip6().into())
    } else {
        (CLIENT4.into(), VIP4.into())
    };
    udp_frame(src, dst, 40_000, 8000, payload_len, Some(features))
}

fn engine_with(limits: FragmentLimits) -> (Engine, Arc<SteerCounters>) {
    let table = dual_stack_table();
    let models = models(&table);
    let counters = Arc::new(SteerCounters::new(table.instances().len(), 4));
    let engine = Engine::new(
        Arc::new(table),
        EngineConfig {
            policy: steer::Policy::ALL[0],
            infer_http_ports: Vec::new(),
            infer_limits: Default::default(),
            flow_table_size: 64,
            flow_idle_ns: 10_000 * MS,
            seed: 0x5eed,
            rss_key: [0x5a; 40],
            fragments: limits,
            prefixes: steer::PrefixLimits::default(),
            splice: None,
        },
        models,
        Arc::clone(&counters),
    );
    (engine, counters)
}

fn engine() -> (Engine, Arc<SteerCounters>) {
    engine_with(FragmentLimits::default())
}

/// Keys and handles one frame, rewriting it in place.
fn feed(e: &mut Engine, frame: &mut [u8], from_agents: bool, now_ns: u64) -> Verdict {
    let p = parse(frame).expect("test frames parse");
    let Some(k) = e.key_of(&p, from_agents) else {
        return Verdict::Pass;
    };
    e.handle(frame, &p, k, from_agents, &DataplaneView::default(), now_ns)
}

/// Enough ageing calls to visit every entry of a default-sized table.
fn sweep(e: &mut Engine, now_ns: u64) {
    let calls = FragmentLimits::default()
        .datagrams
        .div_ceil(steer::engine::EXPIRE_BUDGET);
    for _ in 0..calls {
        e.expire(now_ns);
    }
}

fn count(c: &SteerCounters, e: FragmentEvent) -> u64 {
    c.fragments[e as usize].load(std::sync::atomic::Ordering::Relaxed)
}

/// Reassembles `frags` and checks the datagram: IPv4 header checksum, UDP
/// checksum over the pseudo-header; returns its (source, destination).
fn reassembled_addresses(frags: &[Vec<u8>]) -> (IpAddr, IpAddr) {
    let refs: Vec<&[u8]> = frags.iter().map(Vec::as_slice).collect();
    let whole = reassemble(&refs).expect("the fragments reassemble");
    let p = parse(&whole).expect("the datagram parses");
    assert!(!p.is_fragment());
    let flow = p.flow.unwrap();
    let ph = match p.l3_kind {
        L3Kind::Ipv4 => {
            let l3 = p.l3(&whole);
            let ihl = usize::from(l3[0] & 0x0f) * 4;
            assert_eq!(checksum(&l3[..ihl]), 0, "IPv4 header checksum");
            let (IpAddr::V4(src), IpAddr::V4(dst)) = (flow.src_ip(), flow.dst_ip()) else {
                panic!("v4")
            };
            PseudoHeader::V4 { src, dst }
        }
        _ => {
            let (IpAddr::V6(src), IpAddr::V6(dst)) = (flow.src_ip(), flow.dst_ip()) else {
                panic!("v6")
            };
            PseudoHeader::V6 { src, dst }
        }
    };
    assert_eq!(
        ph.checksum(IpProtocol::UDP, p.l4(&whole)),
        0,
        "UDP checksum of the reassembled datagram"
    );
    (flow.src_ip(), flow.dst_ip())
}

fn first_fragment_decides_and_the_others_follow(v6: bool) {
    let (mut e, c) = engine();
    let frame = request(v6, short(), 3000);
    let mut frags = fragment(&frame, 1200, 0x4242).unwrap();
    assert_eq!(frags.len(), 3);
    let mut verdicts = Vec::new();
    for (i, f) in frags.iter_mut().enumerate() {
        verdicts.push(feed(&mut e, f, true, i as u64));
    }
    let Verdict::Send { port, band } = verdicts[0] else {
        panic!("the first fragment is steered: {verdicts:?}")
    };
    assert_eq!(port, Some(EDGE_PORT), "short work to the edge");
    assert!(verdicts.iter().all(|v| *v == Verdict::Send { port, band }));
    for f in &frags {
        assert_eq!(
            f[..6],
            EDGE_MAC,
            "every fragment to the edge path's next hop"
        );
        let dst = parse(f).unwrap().flow.unwrap().dst_ip();
        let edge: IpAddr = if v6 { edge6().into() } else { EDGE4.into() };
        assert_eq!(dst, edge, "every fragment rewritten to the instance");
    }
    let (_, dst) = reassembled_addresses(&frags);
    assert_eq!(
        dst,
        if v6 {
            IpAddr::from(edge6())
        } else {
            EDGE4.into()
        }
    );
    assert_eq!(count(&c, FragmentEvent::Steered), 1);
    assert_eq!(count(&c, FragmentEvent::Followed), 2);
    assert_eq!(count(&c, FragmentEvent::Held), 0);
    assert_eq!(e.next_unheld(), None);
}

#[test]
fn ipv4_first_fragment_decides_and_the_others_follow() {
    first_fragment_decides_and_the_others_follow(false);
}

#[test]
fn ipv6_first_fragment_decides_and_the_others_follow() {
    first_fragment_decides_and_the_others_follow(true);
}

#[test]
fn a_long_request_in_fragments_goes_to_the_centre_whole() {
    let (mut e, _) = engine();
    let mut frags = fragment(&request(false, long(), 4000), 1480, 7).unwrap();
    let verdicts: Vec<Verdict> = frags.iter_mut().map(|f| feed(&mut e, f, true, 0)).collect();
    assert!(verdicts.iter().all(|v| matches!(
        v,
        Verdict::Send {
            port: Some(CENTRE_PORT),
            ..
        }
    )));
    assert_eq!(reassembled_addresses(&frags).1, IpAddr::from(CENTRE4));
}

fn early_fragments_are_held_and_released_with_the_first_decision(v6: bool) {
    let (mut e, c) = engine();
    let mut frags = fragment(&request(v6, short(), 3000), 1000, 99).unwrap();
    assert_eq!(frags.len(), 4);
    // The last and a middle one come first.
    let mut held = Vec::new();
    for i in [3usize, 1] {
        match feed(&mut e, &mut frags[i], true, 0) {
            Verdict::Hold { slot } => held.push((slot, i)),
            v => panic!("fragment {i} ahead of its first: {v:?}"),
        }
    }
    let before = frags[3].clone();
    assert_eq!(e.next_unheld(), None, "nothing released before the first");
    let first = feed(&mut e, &mut frags[0], true, 1);
    assert!(matches!(
        first,
        Verdict::Send {
            port: Some(EDGE_PORT),
            ..
        }
    ));
    // Released in arrival order, with the first's decision; applied to the
    // held frames, which were left untouched while held.
    assert_eq!(frags[3], before);
    for (slot, i) in &held {
        let Some(Unheld {
            slot: s,
            fate: Unhold::Released(t),
        }) = e.next_unheld()
        else {
            panic!("fragment {i} released")
        };
        assert_eq!(s, *slot);
        assert!(matches!(
            t,
            Treatment::Send {
                port: Some(EDGE_PORT),
                ..
            }
        ));
        let p = parse(&frags[*i]).unwrap();
        assert_eq!(e.apply(&mut frags[*i], &p, t), first);
    }
    assert_eq!(e.next_unheld(), None);
    // The one still to come follows.
    assert_eq!(feed(&mut e, &mut frags[2], true, 2), first);
    let edge: IpAddr = if v6 { edge6().into() } else { EDGE4.into() };
    assert_eq!(reassembled_addresses(&frags).1, edge);
    assert_eq!(count(&c, FragmentEvent::Held), 2);
    assert_eq!(count(&c, FragmentEvent::Released), 2);
    assert_eq!(count(&c, FragmentEvent::Followed), 1);
    assert_eq!(count(&c, FragmentEvent::Steered), 1);
}

#[test]
fn ipv4_early_fragments_are_held_and_released_with_the_first_decision() {
    early_fragments_are_held_and_released_with_the_first_decision(false);
}

#[test]
fn ipv6_early_fragments_are_held_and_released_with_the_first_decision() {
    early_fragments_are_held_and_released_with_the_first_decision(true);
}

fn responses_in_fragments_get_the_reverse_rewrite(v6: bool) {
    let (mut e, c) = engine();
    let (client, vip, edge): (IpAddr, IpAddr, IpAddr) = if v6 {
        (client6().into(), vip6().into(), edge6().into())
    } else {
        (CLIENT4.into(), VIP4.into(), EDGE4.into())
    };
    let mut req = request(v6, short(), 200);
    assert!(matches!(
        feed(&mut e, &mut req, true, 0),
        Verdict::Send {
            port: Some(EDGE_PORT),
            ..
        }
    ));
    let answer = udp_frame(edge, client, 8000, 40_000, 5000, None);
    let mut frags = fragment(&answer, 1400, 0xdead_beef).unwrap();
    // One later fragment ahead of the first, the rest in order.
    frags.swap(0, 1);
    let verdicts: Vec<Verdict> = frags
        .iter_mut()
        .map(|f| feed(&mut e, f, false, 1))
        .collect();
    let Verdict::Hold { slot } = verdicts[0] else {
        panic!("{verdicts:?}")
    };
    let Some(Unheld {
        slot: s,
        fate: Unhold::Released(t),
    }) = e.next_unheld()
    else {
        panic!("released")
    };
    assert_eq!(s, slot);
    let p = parse(&frags[0]).unwrap();
    let back = Verdict::Send {
        port: None,
        band: steer::TrafficClass::Interactive as u8,
    };
    assert_eq!(e.apply(&mut frags[0], &p, t), back);
    assert!(verdicts[1..].iter().all(|v| *v == back), "{verdicts:?}");
    for f in &frags {
        assert_eq!(
            parse(f).unwrap().flow.unwrap().src_ip(),
            vip,
            "source is the VIP"
        );
    }
    assert_eq!(reassembled_addresses(&frags), (vip, client));
    assert_eq!(count(&c, FragmentEvent::Steered), 1);
    assert_eq!(
        c.flows[steer::stats::FlowEvent::ResponseTranslated as usize]
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the datagram's first fragment is the one translated response"
    );
}

#[test]
fn ipv4_responses_in_fragments_get_the_reverse_rewrite() {
    responses_in_fragments_get_the_reverse_rewrite(false);
}

#[test]
fn ipv6_responses_in_fragments_get_the_reverse_rewrite() {
    responses_in_fragments_get_the_reverse_rewrite(true);
}

#[test]
fn holding_beyond_the_bounds_is_a_counted_refusal() {
    let (mut e, c) = engine_with(FragmentLimits {
        datagrams: 8,
        held: 3,
        held_per_datagram: 2,
        timeout_ns: 1_000 * MS,
    });
    let mut a = fragment(&request(false, short(), 4000), 800, 1).unwrap();
    let mut b = fragment(&request(false, short(), 4000), 800, 2).unwrap();
    let mut verdicts = Vec::new();
    for f in a.iter_mut().skip(1).take(3) {
        verdicts.push(feed(&mut e, f, true, 0));
    }
    assert!(matches!(verdicts[0], Verdict::Hold { .. }));
    assert!(matches!(verdicts[1], Verdict::Hold { .. }));
    assert_eq!(
        verdicts[2],
        Verdict::Drop(Refusal::FragmentHoldFull),
        "two per datagram"
    );
    assert!(matches!(
        feed(&mut e, &mut b[1], true, 0),
        Verdict::Hold { .. }
    ));
    assert_eq!(
        feed(&mut e, &mut b[2], true, 0),
        Verdict::Drop(Refusal::FragmentHoldFull),
        "three in all"
    );
    assert_eq!(count(&c, FragmentEvent::HoldFull), 2);
    assert_eq!(count(&c, FragmentEvent::Held), 3);
    assert_eq!(e.hold_slots(), 3);
}

#[test]
fn a_full_fragment_table_refuses_later_fragments_of_new_datagrams() {
    let (mut e, c) = engine_with(FragmentLimits {
        datagrams: 1,
        ..FragmentLimits::default()
    });
    let mut a = fragment(&request(false, short(), 3000), 1200, 1).unwrap();
    let mut b = fragment(&request(false, short(), 3000), 1200, 2).unwrap();
    assert!(matches!(
        feed(&mut e, &mut a[0], true, 0),
        Verdict::Send { .. }
    ));
    // b's first is still steered, but its datagram cannot be remembered.
    assert!(matches!(
        feed(&mut e, &mut b[0], true, 0),
        Verdict::Send { .. }
    ));
    assert_eq!(
        feed(&mut e, &mut b[1], true, 0),
        Verdict::Drop(Refusal::FragmentTableFull)
    );
    assert!(matches!(
        feed(&mut e, &mut a[1], true, 0),
        Verdict::Send { .. }
    ));
    assert_eq!(count(&c, FragmentEvent::TableFull), 1);
}

#[test]
fn held_fragments_time_out_and_a_late_first_decides_afresh() {
    let timeout = 500 * MS;
    let (mut e, c) = engine_with(FragmentLimits {
        timeout_ns: timeout,
        ..FragmentLimits::default()
    });
    let mut frags = fragment(&request(false, short(), 3000), 1200, 5).unwrap();
    assert!(matches!(
        feed(&mut e, &mut frags[1], true, 0),
        Verdict::Hold { .. }
    ));
    assert!(matches!(
        feed(&mut e, &mut frags[2], true, 10),
        Verdict::Hold { .. }
    ));
    sweep(&mut e, timeout + 9);
    assert_eq!(e.next_unheld(), None, "idle for less than the timeout");
    sweep(&mut e, timeout + 10);
    for _ in 0..2 {
        assert!(matches!(
            e.next_unheld(),
            Some(Unheld {
                fate: Unhold::TimedOut,
                ..
            })
        ));
    }
    assert_eq!(e.next_unheld(), None);
    assert_eq!(count(&c, FragmentEvent::TimedOut), 2);
    // The first, too late, is steered on its own; nothing is released.
    assert!(matches!(
        feed(&mut e, &mut frags[0], true, timeout + 20),
        Verdict::Send { .. }
    ));
    assert_eq!(e.next_unheld(), None);
    assert_eq!(count(&c, FragmentEvent::Released), 0);
}

#[test]
fn decided_datagrams_age_out_so_their_entries_are_reused() {
    let (mut e, _) = engine_with(FragmentLimits {
        datagrams: 1,
        timeout_ns: 100,
        ..FragmentLimits::default()
    });
    let mut a = fragment(&request(false, short(), 3000), 1200, 1).unwrap();
    let mut b = fragment(&request(false, short(), 3000), 1200, 2).unwrap();
    feed(&mut e, &mut a[0], true, 0);
    feed(&mut e, &mut b[0], true, 0);
    assert_eq!(
        feed(&mut e, &mut b[1], true, 0),
        Verdict::Drop(Refusal::FragmentTableFull)
    );
    e.expire(100);
    // a's entry aged out: b's next datagram gets one.
    let mut c = fragment(&request(false, short(), 3000), 1200, 3).unwrap();
    feed(&mut e, &mut c[0], true, 200);
    assert!(matches!(
        feed(&mut e, &mut c[1], true, 200),
        Verdict::Send { .. }
    ));
}

#[test]
fn fragments_of_no_service_pass_and_a_refused_first_drops_the_rest() {
    let (mut e, c) = engine();
    // To the VIP, but not on a service port: the first passes, so do the
    // others, including one that came first.
    let other = udp_frame(CLIENT4.into(), VIP4.into(), 40_000, 9999, 3000, None);
    let mut frags = fragment(&other, 1200, 11).unwrap();
    assert!(matches!(
        feed(&mut e, &mut frags[2], true, 0),
        Verdict::Hold { .. }
    ));
    assert_eq!(feed(&mut e, &mut frags[0], true, 0), Verdict::Pass);
    assert_eq!(
        e.next_unheld().map(|u| u.fate),
        Some(Unhold::Released(Treatment::Pass))
    );
    assert_eq!(feed(&mut e, &mut frags[1], true, 0), Verdict::Pass);
    // Neither to a VIP nor from an instance: not steering's at all.
    let elsewhere = udp_frame(
        CLIENT4.into(),
        Ipv4Addr::new(192, 0, 2, 1).into(),
        1,
        2,
        3000,
        None,
    );
    let frags = fragment(&elsewhere, 1200, 12).unwrap();
    for f in &frags {
        assert!(e.key_of(&parse(f).unwrap(), true).is_none());
    }
    // A request no instance can serve (too long a context): the first is
    // dropped, and so is the rest of its datagram.
    let huge = features(500_000, 10, classifier::TaskType::Chat);
    let mut frags = fragment(&request(false, huge, 3000), 1200, 13).unwrap();
    let v: Vec<Verdict> = frags.iter_mut().map(|f| feed(&mut e, f, true, 0)).collect();
    assert!(
        v.iter().all(|v| *v == Verdict::Drop(Refusal::NoInstance)),
        "{v:?}"
    );
    assert_eq!(count(&c, FragmentEvent::Steered), 0);
}

#[test]
fn a_request_its_response_and_all_their_fragments_have_one_owner() {
    let (e, _) = engine();
    let worker = |f: &[u8], from_agents| {
        let k = e.key_of(&parse(f).unwrap(), from_agents).unwrap();
        assert!(matches!(k, Steerable::Flow(_)) != parse(f).unwrap().is_fragment());
        e.worker_hash(&k)
    };
    let req = request(false, short(), 3000);
    let answer = udp_frame(EDGE4.into(), CLIENT4.into(), 8000, 40_000, 3000, None);
    let owner = worker(&req, true);
    assert_eq!(worker(&answer, false), owner);
    for f in fragment(&req, 1200, 1).unwrap() {
        assert_eq!(worker(&f, true), owner);
    }
    for f in fragment(&answer, 1200, 2).unwrap() {
        assert_eq!(worker(&f, false), owner);
    }
    // Another port of the same client: the same worker.
    let other_port = udp_frame(CLIENT4.into(), VIP4.into(), 40_001, 8000, 10, Some(short()));
    assert_eq!(worker(&other_port, true), owner);
}
