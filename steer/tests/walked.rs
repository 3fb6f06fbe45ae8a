//! The fast path ([`Engine::handle_walked`] on [`classifier::flow_walk`]'s
//! [`FlowPacket`]) against the full path ([`Engine::handle`] on
//! [`classifier::parse`]): two engines with the same configuration and
//! seed are fed the same long, seeded mix of packets (TCP connections with
//! and without a TLV, over IPv4 and IPv6, their NATed responses, closes,
//! reconnections from the same port, UDP, tampered TLVs, VLAN tags,
//! traffic to no service, frames the walk declines), with delayed binding
//! on and off. After every packet the verdicts, the frames as they leave
//! and the segments the engines built must be identical, and at the end
//! every counter.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use classifier::checksum::{checksum, PseudoHeader};
use classifier::flow_walk;
use classifier::token_feature::encode;
use classifier::token_feature_tlv::{emit_hbh_header, emit_ipv4_option, TokenFeatureTlvRepr};
use classifier::{parse, IpProtocol, TaskType, TokenFeatures};
use common::*;
use control::view::DataplaneView;
use steer::fragment::FragmentLimits;
use steer::splice::SpliceLimits;
use steer::stats::SteerCounters;
use steer::{Engine, EngineConfig, Steerable, Verdict};

const PORT: u16 = 8000;

fn engine(splice: bool) -> (Engine, Arc<SteerCounters>) {
    let table = dual_stack_table();
    let models = models(&table);
    let counters = Arc::new(SteerCounters::new(table.instances().len(), 4));
    let engine = Engine::new(
        Arc::new(table),
        EngineConfig {
            policy: steer::Policy::ALL[0],
            infer_http_ports: vec![PORT],
            infer_limits: Default::default(),
            flow_table_size: 256,
            flow_idle_ns: 50 * MS,
            seed: 0x5eed,
            rss_key: [0x5a; 40],
            fragments: FragmentLimits::default(),
            prefixes: steer::PrefixLimits::default(),
            splice: splice.then(|| SpliceLimits {
                connections: 8,
                buffer_bytes: 1 << 20,
                ..SpliceLimits::default()
            }),
        },
        models,
        Arc::clone(&counters),
    );
    (engine, counters)
}

/// One packet to build.
struct Pkt {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    tcp: Option<u8>,
    payload: Vec<u8>,
    features: Option<TokenFeatures>,
    tamper_tlv: bool,
    vlan: bool,
    /// An IPv6 Destination Options header before the transport, which the
    /// walk leaves to the full parse.
    dest_opts: bool,
}

fn build(p: &Pkt) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&p.sport.to_be_bytes());
    l4.extend_from_slice(&p.dport.to_be_bytes());
    let proto = match p.tcp {
        Some(flags) => {
            l4.extend_from_slice(&[0, 0, 0x10, 0, 0, 0, 0x20, 1, 0x50, flags, 0xff, 0xff]);
            l4.extend_from_slice(&[0, 0, 0, 0]);
            IpProtocol::TCP
        }
        None => {
            l4.extend_from_slice(&((8 + p.payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
            IpProtocol::UDP
        }
    };
    let ck_at = if p.tcp.is_some() { 16 } else { 6 };
    l4.extend_from_slice(&p.payload);
    let tlv = p.features.map(|f| TokenFeatureTlvRepr {
        directed: false,
        feature_id: encode(&f),
    });
    let mut frame = vec![2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 1, 0x11];
    if p.vlan {
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    }
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let c = PseudoHeader::V4 { src: s, dst: d }.checksum(proto, &l4);
            l4[ck_at..ck_at + 2].copy_from_slice(&c.to_be_bytes());
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto.0, 0, 0];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            if let Some(t) = tlv {
                let mut opt = [0u8; 12];
                emit_ipv4_option(&t, &mut opt).unwrap();
                if p.tamper_tlv {
                    opt[5] ^= 0x5a;
                }
                h.extend_from_slice(&opt);
                h[0] = 0x48;
            }
            let total = (h.len() + l4.len()) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            frame.extend_from_slice(&[0x08, 0x00]);
            frame.extend(h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let c = PseudoHeader::V6 { src: s, dst: d }.checksum(proto, &l4);
            l4[ck_at..ck_at + 2].copy_from_slice(&c.to_be_bytes());
            let mut ext = Vec::new();
            let upper = if p.dest_opts { 60 } else { proto.0 };
            let next = match tlv {
                Some(t) => {
                    let mut hbh = [0u8; 16];
                    emit_hbh_header(&t, upper, &mut hbh).unwrap();
                    if p.tamper_tlv {
                        hbh[7] ^= 0x5a;
                    }
                    ext.extend_from_slice(&hbh);
                    0
                }
                None => upper,
            };
            if p.dest_opts {
                // Next header, length 0, PadN of 4.
                ext.extend_from_slice(&[proto.0, 0, 1, 4, 0, 0, 0, 0]);
            }
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
            h.extend_from_slice(&[next, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            frame.extend_from_slice(&[0x86, 0xdd]);
            frame.extend(h);
            frame.extend(ext);
        }
        _ => unreachable!("one family"),
    }
    frame.extend(l4);
    frame
}

/// The full path.
fn full(e: &mut Engine, frame: &mut [u8], from_agents: bool, now_ns: u64) -> Verdict {
    let Ok(p) = parse(frame) else {
        return Verdict::Pass;
    };
    match e.key_of(&p, from_agents) {
        Some(k) => e.handle(frame, &p, k, from_agents, &DataplaneView::default(), now_ns),
        None => Verdict::Pass,
    }
}

/// Which way [`walked`] went: the fast path's answer, its hand-back to
/// the full path, or the full path alone (a frame the walk declines).
#[derive(Default, Debug)]
struct Ways {
    fast: u32,
    declined: u32,
    unwalked: u32,
}

/// The fast path, falling back to the full one as the data plane does.
fn walked(
    e: &mut Engine,
    frame: &mut [u8],
    from_agents: bool,
    now_ns: u64,
    ways: &mut Ways,
) -> Verdict {
    let Some(w) = flow_walk::walk(frame) else {
        ways.unwalked += 1;
        return full(e, frame, from_agents, now_ns);
    };
    let Some(k) = e.key_of_walked(&w, from_agents) else {
        let p = parse(frame).expect("what the walk locates parses");
        assert!(e.key_of(&p, from_agents).is_none());
        return Verdict::Pass;
    };
    let view = DataplaneView::default();
    if let Some(v) = e.handle_walked(frame, &w, &k, from_agents, &view, now_ns) {
        ways.fast += 1;
        return v;
    }
    ways.declined += 1;
    let p = parse(frame).expect("what the walk locates parses");
    assert!(matches!(
        e.key_of(&p, from_agents),
        Some(Steerable::Flow(_))
    ));
    e.handle(frame, &p, Steerable::Flow(k), from_agents, &view, now_ns)
}

fn drain(e: &mut Engine) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(t) = e.poll_transmit(&mut buf) {
        out.push(buf[..t.len].to_vec());
    }
    out
}

fn load(a: &[AtomicU64]) -> Vec<u64> {
    a.iter().map(|c| c.load(Relaxed)).collect()
}

fn run(splice: bool, seed: u64) {
    let (mut a, ca) = engine(splice);
    let (mut b, cb) = engine(splice);
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let clients4 = [Ipv4Addr::new(10, 0, 1, 11), Ipv4Addr::new(10, 0, 1, 12)];
    let client6 = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 0x11);
    let vip4 = IpAddr::V4(Ipv4Addr::new(10, 0, 100, 1));
    let vip6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0x100, 0, 0, 0, 1));
    let instances4 = [
        IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 3, 2)),
    ];
    let instances6 = [
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 2)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 3, 0, 0, 0, 2)),
    ];
    let http = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 58\r\n\r\n{\"messages\":[{\"role\":\"user\",\"content\":\"turn on the light\"}]}".to_vec();
    let features = [short(), long(), features(300, 50, TaskType::CodeGeneration)];
    let mut now = 0u64;
    let mut ways = Ways::default();
    for step in 0..6000u32 {
        now += 20_000 + next() % 400_000;
        let r = next();
        let v6 = r % 5 == 0;
        let client = if v6 {
            IpAddr::V6(client6)
        } else {
            IpAddr::V4(clients4[(r >> 3) as usize % 2])
        };
        let vip = if v6 { vip6 } else { vip4 };
        let cport = 40_000 + (r >> 8) as u16 % 6;
        let flags = [0x02u8, 0x10, 0x18, 0x11, 0x04, 0x12, 0x19][(r >> 16) as usize % 7];
        let tlv = (r >> 20) % 4 != 0;
        let udp = (r >> 23) % 6 == 0;
        let payload = if flags & 0x08 != 0 || udp {
            http.clone()
        } else {
            Vec::new()
        };
        let kind = (r >> 26) % 10;
        let (pkt, from_agents) = if kind < 6 {
            (
                Pkt {
                    src: client,
                    dst: if kind == 5 && (r >> 30) % 4 == 0 {
                        // Not a service.
                        if v6 {
                            IpAddr::V6(Ipv6Addr::new(0xfd00, 9, 9, 9, 0, 0, 0, 9))
                        } else {
                            IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))
                        }
                    } else {
                        vip
                    },
                    sport: cport,
                    dport: if (r >> 32) % 9 == 0 { 8001 } else { PORT },
                    tcp: (!udp).then_some(flags),
                    payload,
                    features: tlv.then(|| features[(r >> 34) as usize % 3]),
                    tamper_tlv: (r >> 36) % 17 == 0,
                    vlan: (r >> 38) % 11 == 0,
                    dest_opts: v6 && (r >> 44) % 3 == 0,
                },
                true,
            )
        } else {
            let inst = if v6 { instances6 } else { instances4 };
            (
                Pkt {
                    src: inst[(r >> 40) as usize % 2],
                    dst: client,
                    sport: PORT,
                    dport: cport,
                    tcp: (!udp).then_some(flags | 0x10),
                    payload: if (r >> 42) % 2 == 0 {
                        b"HTTP/1.1 200 OK\r\n\r\n".to_vec()
                    } else {
                        Vec::new()
                    },
                    features: None,
                    tamper_tlv: false,
                    vlan: false,
                    dest_opts: v6 && (r >> 44) % 3 == 0,
                },
                false,
            )
        };
        let frame = build(&pkt);
        let (mut fa, mut fb) = (frame.clone(), frame);
        let va = full(&mut a, &mut fa, from_agents, now);
        let vb = walked(&mut b, &mut fb, from_agents, now, &mut ways);
        assert_eq!(va, vb, "step {step}: verdicts differ");
        assert_eq!(fa, fb, "step {step}: frames differ");
        assert_eq!(
            drain(&mut a),
            drain(&mut b),
            "step {step}: built segments differ"
        );
        if step % 64 == 0 {
            a.expire(now);
            b.expire(now);
            assert_eq!(
                drain(&mut a),
                drain(&mut b),
                "step {step}: segments after expiry"
            );
        }
        assert_eq!(a.flows(), b.flows(), "step {step}: flows held");
        assert_eq!(a.spliced_connections(), b.spliced_connections());
    }
    for (x, y) in [
        (&ca.features[..], &cb.features[..]),
        (&ca.tlv_malformed[..], &cb.tlv_malformed[..]),
        (&ca.flows[..], &cb.flows[..]),
        (&ca.fragments[..], &cb.fragments[..]),
        (&ca.splice[..], &cb.splice[..]),
        (&ca.reasons[..], &cb.reasons[..]),
        (&ca.no_choice[..], &cb.no_choice[..]),
        (&ca.rejections[..], &cb.rejections[..]),
        (&ca.chosen[..], &cb.chosen[..]),
    ] {
        assert_eq!(load(x), load(y));
    }
    // The mix exercised what it is meant to: the fast path, its
    // hand-backs (with delayed binding) and frames it does not walk.
    assert!(ways.fast > 2000 && ways.unwalked > 100, "{ways:?}");
    assert_eq!(ways.declined > 20, splice, "{ways:?}");
    assert!(
        load(&ca.flows).iter().sum::<u64>() > 100,
        "{:?}",
        load(&ca.flows)
    );
    if splice {
        assert!(load(&ca.splice).iter().sum::<u64>() > 0);
    }
}

#[test]
fn walked_path_agrees_with_full_path_with_delayed_binding() {
    for seed in [1, 0x9e37_79b9_7f4a_7c15, 42] {
        run(true, seed);
    }
}

#[test]
fn walked_path_agrees_with_full_path_without_delayed_binding() {
    for seed in [7, 0xdead_beef] {
        run(false, seed);
    }
}

/// A SYN from a client port whose connection closed is a new flow, decided
/// afresh on its own TLV, in the closed connection's table entry; its
/// later segments follow the new decision, and the client's retransmitted
/// SYN of a live connection does not decide again.
#[test]
fn a_syn_on_a_closed_connections_port_is_decided_afresh_in_its_entry() {
    use steer::stats::FlowEvent;
    let (mut e, counters) = engine(false);
    let client = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 11));
    let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 100, 1));
    let seg = |flags: u8, features: Option<TokenFeatures>| Pkt {
        src: client,
        dst: vip,
        sport: 40_000,
        dport: PORT,
        tcp: Some(flags),
        payload: if flags & 0x08 != 0 {
            b"hello".to_vec()
        } else {
            Vec::new()
        },
        features,
        tamper_tlv: false,
        vlan: false,
        dest_opts: false,
    };
    let (syn, ack, psh_ack, fin_ack) = (0x02, 0x10, 0x18, 0x11);
    let mut ways = Ways::default();
    let mut send = |e: &mut Engine, p: Pkt, now_ns: u64| {
        let mut f = build(&p);
        match walked(e, &mut f, true, now_ns, &mut ways) {
            Verdict::Send { band, .. } => band,
            v => panic!("not sent: {v:?}"),
        }
    };
    let new = |c: &SteerCounters| c.flows[FlowEvent::New as usize].load(Relaxed);
    let short_band = send(&mut e, seg(syn, Some(short())), MS);
    assert_eq!(send(&mut e, seg(psh_ack, None), 2 * MS), short_band);
    // A retransmitted SYN of the live connection follows it.
    assert_eq!(send(&mut e, seg(syn, Some(long())), 3 * MS), short_band);
    assert_eq!(new(&counters), 1);
    assert_eq!(send(&mut e, seg(fin_ack, None), 4 * MS), short_band);
    // The port reused: decided on the new TLV, in the same entry.
    let long_band = send(&mut e, seg(syn, Some(long())), 5 * MS);
    assert_ne!(long_band, short_band, "the new connection's own class");
    assert_eq!(new(&counters), 2);
    assert_eq!(e.flows(), 1);
    assert_eq!(send(&mut e, seg(ack, None), 6 * MS), long_band);
    assert_eq!(send(&mut e, seg(psh_ack, None), 7 * MS), long_band);
    // Reused again without a FIN in between: still the live connection.
    assert_eq!(send(&mut e, seg(syn, Some(short())), 8 * MS), long_band);
    assert_eq!(new(&counters), 2);
    assert!(ways.fast >= 8, "the fast path decided them: {ways:?}");
}
