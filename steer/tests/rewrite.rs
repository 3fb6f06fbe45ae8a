//! NAT rewrite tests. Frames are built with classifier's `Repr` emitters and
//! full checksums; after an incremental rewrite the frame must equal, byte
//! for byte, the frame built directly with the new address and full
//! recomputation — the strongest form of "incremental == full".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use classifier::checksum::{checksum, PseudoHeader};
use classifier::ethernet::{EtherType, EthernetRepr, MacAddr};
use classifier::ip::IpProtocol;
use classifier::ipv4::Ipv4Repr;
use classifier::ipv6::Ipv6Repr;
use classifier::ipv6_ext::Ipv6ExtHeaderRepr;
use classifier::ipv6_option::{Ipv6OptionRepr, Ipv6OptionType};
use classifier::tcp::{TcpFlags, TcpPacket, TcpRepr};
use classifier::udp::{UdpPacket, UdpRepr};
use classifier::vlan::VlanRepr;
use classifier::{parse, L3Kind, ParsedPacket};
use proptest::prelude::*;
use steer::rewrite::{rewrite_destination, rewrite_source, RewriteError};

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const VIP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const INSTANCE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x33];

#[derive(Clone, Copy, Debug, PartialEq)]
enum L4 {
    Tcp,
    Udp,
    /// UDP sent without a checksum (0), legal over IPv4.
    UdpNoChecksum,
}

#[derive(Clone, Debug)]
struct Spec {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    l4: L4,
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
    vlan: Option<u16>,
    ipv4_options: Vec<u8>,
    hop_by_hop: bool,
    routing: bool,
    /// IPv4 fragment offset in 8-byte units (non-zero: a later fragment
    /// carrying `payload` as raw continuation bytes).
    frag_offset: u16,
}

impl Spec {
    fn new(src: IpAddr, dst: IpAddr, l4: L4) -> Spec {
        Spec {
            src_mac: CLIENT_MAC,
            dst_mac: VIP_MAC,
            src,
            dst,
            l4,
            sport: 40_000,
            dport: 8000,
            payload: b"POST /v1/chat/completions HTTP/1.1\r\n\r\n{}".to_vec(),
            vlan: None,
            ipv4_options: Vec::new(),
            hop_by_hop: false,
            routing: false,
            frag_offset: 0,
        }
    }

    fn pseudo(&self) -> PseudoHeader {
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => PseudoHeader::V4 { src, dst },
            (IpAddr::V6(src), IpAddr::V6(dst)) => PseudoHeader::V6 { src, dst },
            _ => panic!("mixed families"),
        }
    }

    fn protocol(&self) -> IpProtocol {
        match self.l4 {
            L4::Tcp => IpProtocol::TCP,
            L4::Udp | L4::UdpNoChecksum => IpProtocol::UDP,
        }
    }

    fn transport(&self) -> Vec<u8> {
        if self.frag_offset != 0 {
            return self.payload.clone();
        }
        let ph = self.pseudo();
        match self.l4 {
            L4::Tcp => {
                let r = TcpRepr {
                    src_port: self.sport,
                    dst_port: self.dport,
                    seq: 0x0102_0304,
                    ack: 0x0a0b_0c0d,
                    flags: TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0),
                    window: 502,
                    urgent: 0,
                    options: &[],
                };
                let mut s = vec![0u8; r.buffer_len() + self.payload.len()];
                let n = r.emit(&mut s).unwrap();
                s[n..].copy_from_slice(&self.payload);
                TcpPacket::new_checked(&mut s[..])
                    .unwrap()
                    .fill_checksum(&ph);
                s
            }
            L4::Udp | L4::UdpNoChecksum => {
                let r = UdpRepr {
                    src_port: self.sport,
                    dst_port: self.dport,
                    payload_len: self.payload.len(),
                };
                let mut d = vec![0u8; r.buffer_len() + self.payload.len()];
                let n = r.emit(&mut d).unwrap();
                d[n..].copy_from_slice(&self.payload);
                if self.l4 == L4::Udp {
                    UdpPacket::new_checked(&mut d[..])
                        .unwrap()
                        .fill_checksum(&ph);
                }
                d
            }
        }
    }

    fn l3(&self) -> (EtherType, Vec<u8>) {
        let l4 = self.transport();
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let repr = Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    protocol: self.protocol(),
                    dscp_ecn: 0,
                    ident: 0x1c46,
                    dont_frag: self.frag_offset == 0,
                    more_frags: false,
                    frag_offset: self.frag_offset,
                    ttl: 64,
                    options: &self.ipv4_options,
                    payload_len: l4.len(),
                };
                let mut p = vec![0u8; repr.buffer_len() + l4.len()];
                let n = repr.emit(&mut p).unwrap();
                p[n..].copy_from_slice(&l4);
                (EtherType::IPV4, p)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let mut chain = Vec::new();
                let mut first = self.protocol();
                if self.routing {
                    // Type 253 (experimental), segments left 1.
                    let body = [253, 1, 0, 0, 0, 0];
                    chain = ext(IpProtocol::IPV6_ROUTING, first, &body);
                    first = IpProtocol::IPV6_ROUTING;
                }
                if self.hop_by_hop {
                    let opts = [Ipv6OptionRepr::Tlv {
                        option_type: Ipv6OptionType(0x1e),
                        data: &[1, 2, 3],
                    }];
                    let mut body = vec![0u8; Ipv6OptionRepr::padded_area_len(&opts)];
                    Ipv6OptionRepr::emit_padded_area(&opts, &mut body).unwrap();
                    let mut h = ext(IpProtocol::HOP_BY_HOP, first, &body);
                    h.extend(chain);
                    chain = h;
                    first = IpProtocol::HOP_BY_HOP;
                }
                chain.extend_from_slice(&l4);
                let repr = Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: first,
                    hop_limit: 64,
                    traffic_class: 0,
                    flow_label: 0x12345,
                    payload_len: chain.len(),
                };
                let mut p = vec![0u8; repr.buffer_len() + chain.len()];
                let n = repr.emit(&mut p).unwrap();
                p[n..].copy_from_slice(&chain);
                (EtherType::IPV6, p)
            }
            _ => panic!("mixed families"),
        }
    }

    fn build(&self) -> Vec<u8> {
        let (ethertype, l3) = self.l3();
        let outer = if self.vlan.is_some() {
            EtherType::VLAN
        } else {
            ethertype
        };
        let repr = EthernetRepr {
            src_addr: MacAddr(self.src_mac),
            dst_addr: MacAddr(self.dst_mac),
            ethertype: outer,
        };
        let mut f = vec![0u8; repr.buffer_len()];
        repr.emit(&mut f).unwrap();
        if let Some(vid) = self.vlan {
            let tag = VlanRepr {
                pcp: 3,
                dei: false,
                vid,
                ethertype,
            };
            let mut b = [0u8; 4];
            tag.emit(&mut b).unwrap();
            f.extend_from_slice(&b);
        }
        f.extend_from_slice(&l3);
        f
    }
}

fn ext(header_type: IpProtocol, next: IpProtocol, body: &[u8]) -> Vec<u8> {
    let r = Ipv6ExtHeaderRepr {
        header_type,
        next_header: next,
        body,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b).unwrap();
    b
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

/// Independent verification from the re-parsed frame: every checksum
/// equals a full recomputation over the rewritten bytes.
fn assert_checksums_full(frame: &[u8]) -> ParsedPacket {
    let p = parse(frame).expect("rewritten frame parses (IPv4 header checksum verified)");
    let flow = p.flow.unwrap();
    if p.l3_kind == L3Kind::Ipv4 {
        let ihl = usize::from(p.l3(frame)[0] & 0xf) * 4;
        assert_eq!(checksum(&p.l3(frame)[..ihl]), 0, "IPv4 header checksum");
    }
    let ph = match (flow.src_ip(), flow.dst_ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => PseudoHeader::V4 { src, dst },
        (IpAddr::V6(src), IpAddr::V6(dst)) => PseudoHeader::V6 { src, dst },
        _ => unreachable!(),
    };
    if p.l4_offset.is_some() {
        let seg = p.l4(frame);
        match p.ip_protocol.unwrap() {
            IpProtocol::TCP => {
                let t = TcpPacket::new_checked(seg).unwrap();
                assert_eq!(t.checksum(), t.compute_checksum(&ph), "TCP checksum");
                assert_eq!(ph.checksum(IpProtocol::TCP, seg), 0);
            }
            IpProtocol::UDP => {
                let u = UdpPacket::new_checked(seg).unwrap();
                // 0 is "no checksum" (the proptest also sends it over IPv6,
                // where only tunnels may, to check it is left alone).
                if u.checksum() != 0 {
                    assert_eq!(u.checksum(), u.compute_checksum(&ph), "UDP checksum");
                    assert!(u.verify_checksum(&ph));
                }
            }
            _ => {}
        }
    }
    p
}

fn check_destination(spec: &Spec, new_ip: IpAddr) {
    let mut frame = spec.build();
    let before = parse(&frame).unwrap();
    let payload_before = before.payload(&frame).to_vec();
    rewrite_destination(&mut frame, &before, INSTANCE_MAC, new_ip).unwrap();

    let after = assert_checksums_full(&frame);
    assert_eq!(
        after.payload(&frame),
        &payload_before[..],
        "payload unchanged"
    );
    assert_eq!(after.flow.unwrap().dst_ip(), new_ip);
    assert_eq!(after.flow.unwrap().src_ip(), spec.src);
    assert_eq!(frame[0..6], INSTANCE_MAC);
    assert_eq!(frame[6..12], spec.src_mac);

    let mut expect = spec.clone();
    expect.dst = new_ip;
    expect.dst_mac = INSTANCE_MAC;
    assert_eq!(
        frame,
        expect.build(),
        "incremental differs from full rebuild"
    );
}

fn check_source(spec: &Spec, new_ip: IpAddr, mac: Option<[u8; 6]>) {
    let mut frame = spec.build();
    let before = parse(&frame).unwrap();
    let payload_before = before.payload(&frame).to_vec();
    rewrite_source(&mut frame, &before, mac, new_ip).unwrap();

    let after = assert_checksums_full(&frame);
    assert_eq!(after.payload(&frame), &payload_before[..]);
    assert_eq!(after.flow.unwrap().src_ip(), new_ip);
    assert_eq!(after.flow.unwrap().dst_ip(), spec.dst);

    let mut expect = spec.clone();
    expect.src = new_ip;
    if let Some(m) = mac {
        expect.src_mac = m;
    }
    assert_eq!(
        frame,
        expect.build(),
        "incremental differs from full rebuild"
    );
}

fn client4() -> IpAddr {
    v4([192, 168, 1, 10])
}
fn vip4() -> IpAddr {
    v4([10, 0, 100, 1])
}
fn inst4() -> IpAddr {
    v4([10, 1, 2, 3])
}
fn client6() -> IpAddr {
    v6("2001:db8:1::10")
}
fn vip6() -> IpAddr {
    v6("fd00:0:0:100::1")
}
fn inst6() -> IpAddr {
    v6("fd00:0:0:200::7")
}

#[test]
fn tcp_ipv4_destination_and_source() {
    let spec = Spec::new(client4(), vip4(), L4::Tcp);
    check_destination(&spec, inst4());
    let reply = Spec::new(inst4(), client4(), L4::Tcp);
    check_source(&reply, vip4(), Some(VIP_MAC));
    check_source(&reply, vip4(), None);
}

#[test]
fn udp_ipv4_destination_and_source() {
    let spec = Spec::new(client4(), vip4(), L4::Udp);
    check_destination(&spec, inst4());
    check_source(&Spec::new(inst4(), client4(), L4::Udp), vip4(), None);
}

#[test]
fn ipv4_with_options_and_vlan() {
    for l4 in [L4::Tcp, L4::Udp] {
        let mut spec = Spec::new(client4(), vip4(), l4);
        spec.ipv4_options = vec![1, 1, 1, 1, 1, 1, 1, 0]; // NOPs, EOL
        spec.vlan = Some(100);
        let p = parse(&spec.build()).unwrap();
        assert_eq!(p.vlans.len(), 1);
        assert!(p.ipv4_options.is_some());
        check_destination(&spec, inst4());
        check_source(&spec, vip4(), Some(VIP_MAC));
    }
}

#[test]
fn ipv6_tcp_udp_with_hop_by_hop_and_vlan() {
    for l4 in [L4::Tcp, L4::Udp] {
        for vlan in [None, Some(7)] {
            let mut spec = Spec::new(client6(), vip6(), l4);
            spec.hop_by_hop = true;
            spec.vlan = vlan;
            assert!(parse(&spec.build()).unwrap().ipv6_hbh_options.is_some());
            check_destination(&spec, inst6());
            check_source(&spec, vip6(), Some(VIP_MAC));
        }
    }
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let spec = Spec::new(client4(), vip4(), L4::UdpNoChecksum);
    let mut frame = spec.build();
    let p = parse(&frame).unwrap();
    rewrite_destination(&mut frame, &p, INSTANCE_MAC, inst4()).unwrap();
    let l4 = usize::from(p.l4_offset.unwrap());
    assert_eq!(frame[l4 + 6..l4 + 8], [0, 0]);
    assert_checksums_full(&frame);
}

/// Finds a payload word that makes the rewritten UDP checksum compute to 0
/// and checks that it is sent as 0xFFFF, like a full computation does.
#[test]
fn udp_checksum_that_becomes_zero_is_sent_as_ffff() {
    let mut spec = Spec::new(client4(), vip4(), L4::Udp);
    spec.payload = vec![0, 0];
    // Solve for the payload word w with sum(new pseudo + header + w) ≡ 0xFFFF:
    // checksum over the zero-payload datagram gives !S, so w = !S... i.e.
    // the complement of the sum of everything else.
    let mut target = spec.clone();
    target.dst = inst4();
    let frame = target.build();
    let p = parse(&frame).unwrap();
    let u = UdpPacket::new_checked(p.l4(&frame)).unwrap();
    let ph = PseudoHeader::V4 {
        src: Ipv4Addr::new(192, 168, 1, 10),
        dst: Ipv4Addr::new(10, 1, 2, 3),
    };
    let sum_without_payload = !ph.checksum(IpProtocol::UDP, &{
        let mut d = u.datagram().to_vec();
        d[6] = 0;
        d[7] = 0;
        d
    });
    let w = !sum_without_payload;
    spec.payload = w.to_be_bytes().to_vec();
    let mut frame = spec.build();
    let p = parse(&frame).unwrap();
    rewrite_destination(&mut frame, &p, INSTANCE_MAC, inst4()).unwrap();
    let l4 = usize::from(p.l4_offset.unwrap());
    assert_eq!(frame[l4 + 6..l4 + 8], [0xff, 0xff]);
    assert_checksums_full(&frame);
}

#[test]
fn non_first_ipv4_fragment_rewrites_ip_only() {
    let mut spec = Spec::new(client4(), vip4(), L4::Udp);
    spec.frag_offset = 185;
    spec.payload = (0..64u8).collect();
    let mut frame = spec.build();
    let p = parse(&frame).unwrap();
    assert!(p.l4_offset.is_none());
    let l3_payload_before = p.payload(&frame).to_vec();
    rewrite_destination(&mut frame, &p, INSTANCE_MAC, inst4()).unwrap();
    let after = parse(&frame).unwrap();
    assert_eq!(after.payload(&frame), &l3_payload_before[..]);
    assert_eq!(after.flow.unwrap().dst_ip(), inst4());
    let mut expect = spec.clone();
    expect.dst = inst4();
    expect.dst_mac = INSTANCE_MAC;
    assert_eq!(frame, expect.build());
}

fn assert_refused(frame: &mut [u8], parsed: &ParsedPacket, ip: IpAddr, want: RewriteError) {
    let original = frame.to_vec();
    assert_eq!(
        rewrite_destination(frame, parsed, INSTANCE_MAC, ip),
        Err(want)
    );
    assert_eq!(frame, &original[..], "frame touched on error");
    if !matches!(want, RewriteError::RoutingHeader { .. }) {
        assert_eq!(
            rewrite_source(frame, parsed, Some(INSTANCE_MAC), ip),
            Err(want)
        );
        assert_eq!(frame, &original[..], "frame touched on error");
    }
    assert!(!want.to_string().is_empty());
    assert!(want.code().starts_with("rewrite."));
}

#[test]
fn family_mismatch_is_refused_untouched() {
    let mut frame = Spec::new(client4(), vip4(), L4::Tcp).build();
    let p = parse(&frame).unwrap();
    assert_refused(
        &mut frame,
        &p,
        inst6(),
        RewriteError::FamilyMismatch {
            packet: classifier::IpVersion::V4,
            address: classifier::IpVersion::V6,
        },
    );
    let mut frame = Spec::new(client6(), vip6(), L4::Udp).build();
    let p = parse(&frame).unwrap();
    assert_refused(
        &mut frame,
        &p,
        inst4(),
        RewriteError::FamilyMismatch {
            packet: classifier::IpVersion::V6,
            address: classifier::IpVersion::V4,
        },
    );
}

#[test]
fn non_ip_is_refused_untouched() {
    let repr = EthernetRepr {
        src_addr: MacAddr(CLIENT_MAC),
        dst_addr: MacAddr(VIP_MAC),
        ethertype: EtherType(0x88b5),
    };
    let mut frame = vec![0xabu8; 60];
    repr.emit(&mut frame).unwrap();
    let p = parse(&frame).unwrap();
    assert_refused(
        &mut frame,
        &p,
        inst4(),
        RewriteError::NotIp {
            ethertype: EtherType(0x88b5),
        },
    );
}

#[test]
fn ipv6_routing_header_refuses_destination_but_not_source() {
    let mut spec = Spec::new(client6(), vip6(), L4::Tcp);
    spec.hop_by_hop = true;
    spec.routing = true;
    let mut frame = spec.build();
    let p = parse(&frame).unwrap();
    assert_refused(
        &mut frame,
        &p,
        inst6(),
        RewriteError::RoutingHeader { segments_left: 1 },
    );
    // The pseudo-header source is always the source field.
    rewrite_source(&mut frame, &p, None, vip6()).unwrap();
    let after = parse(&frame).unwrap();
    assert_eq!(after.flow.unwrap().src_ip(), vip6());
    let mut expect = spec.clone();
    expect.src = vip6();
    assert_eq!(frame, expect.build());
}

#[test]
fn truncated_frame_is_refused_untouched() {
    let spec = Spec::new(client4(), vip4(), L4::Tcp);
    let full = spec.build();
    let p = parse(&full).unwrap();
    let l4 = usize::from(p.l4_offset.unwrap());
    // Cut inside the TCP header, before its checksum field.
    let mut short = full[..l4 + 10].to_vec();
    assert_refused(
        &mut short,
        &p,
        inst4(),
        RewriteError::FrameTooShort {
            needed: l4 + 18,
            available: l4 + 10,
        },
    );
    // Cut inside the IP header.
    let mut shorter = full[..20].to_vec();
    assert_refused(
        &mut shorter,
        &p,
        inst4(),
        RewriteError::FrameTooShort {
            needed: 34,
            available: 20,
        },
    );
}

#[test]
fn wrong_frame_for_parse_result_is_refused_untouched() {
    let p = parse(&Spec::new(client4(), vip4(), L4::Tcp).build()).unwrap();
    let mut other = Spec::new(client4(), vip4(), L4::Tcp).build();
    other[14] = 0x65; // version nibble 6 where IPv4 was parsed
    assert_refused(
        &mut other,
        &p,
        inst4(),
        RewriteError::HeaderMismatch { l3_offset: 14 },
    );
}

fn any_ip(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<[u8; 16]>()
            .prop_map(|b| IpAddr::V6(Ipv6Addr::from(b)))
            .boxed()
    } else {
        any::<[u8; 4]>()
            .prop_map(|b| IpAddr::V4(Ipv4Addr::from(b)))
            .boxed()
    }
}

prop_compose! {
    fn any_case()(is_v6 in any::<bool>())(
        src in any_ip(is_v6),
        dst in any_ip(is_v6),
        new_ip in any_ip(is_v6),
        l4 in prop_oneof![Just(L4::Tcp), Just(L4::Udp), Just(L4::UdpNoChecksum)],
        sport in any::<u16>(),
        dport in any::<u16>().prop_filter("not RoCEv2", |p| *p != 4791),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        vlan in proptest::option::of(1u16..4095),
        extra in any::<bool>(),
        mac in any::<[u8; 6]>(),
        destination in any::<bool>(),
        with_mac in any::<bool>(),
        v6_case in Just(is_v6),
    ) -> (Spec, IpAddr, [u8; 6], bool, bool) {
        let mut spec = Spec::new(src, dst, l4);
        spec.sport = sport;
        spec.dport = dport;
        spec.payload = payload;
        spec.vlan = vlan;
        if extra {
            if v6_case {
                spec.hop_by_hop = true;
            } else {
                spec.ipv4_options = vec![1, 1, 1, 1];
            }
        }
        (spec, new_ip, mac, destination, with_mac)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn incremental_equals_full_recompute(case in any_case()) {
        let (spec, new_ip, mac, destination, with_mac) = case;
        let mut frame = spec.build();
        let p = parse(&frame).unwrap();
        let payload = p.payload(&frame).to_vec();
        let mut expect = spec.clone();
        if destination {
            rewrite_destination(&mut frame, &p, mac, new_ip).unwrap();
            expect.dst = new_ip;
            expect.dst_mac = mac;
        } else {
            let m = with_mac.then_some(mac);
            rewrite_source(&mut frame, &p, m, new_ip).unwrap();
            expect.src = new_ip;
            if let Some(m) = m {
                expect.src_mac = m;
            }
        }
        let after = assert_checksums_full(&frame);
        prop_assert_eq!(after.payload(&frame), &payload[..]);
        prop_assert_eq!(frame, expect.build());
    }
}
