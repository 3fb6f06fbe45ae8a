//! No byte string makes any view, iterator, walker or the fast-path parser
//! panic. Random bytes alone rarely get past the Ethernet type check, so the
//! second property mutates and truncates *valid* frames from the emitters,
//! which drives the fuzzing into the deep layers (extension headers, BTH,
//! RETH, options).

mod common;

use classifier::aeth::{Aeth, AethRepr};
use classifier::arp::{ArpPacket, ArpRepr};
use classifier::bth::{Bth, BthRepr};
use classifier::checksum::PseudoHeader;
use classifier::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use classifier::icrc;
use classifier::ip::IpProtocol;
use classifier::ipv4::{Ipv4Packet, Ipv4Repr};
use classifier::ipv4_option::{Ipv4OptionIter, Ipv4OptionRepr};
use classifier::ipv6::{Ipv6Packet, Ipv6Repr};
use classifier::ipv6_ext::{self, Ipv6ExtHeader, Ipv6ExtHeaderRepr};
use classifier::ipv6_frag::{Ipv6FragmentHeader, Ipv6FragmentRepr};
use classifier::ipv6_option::{Ipv6OptionIter, Ipv6OptionRepr};
use classifier::reth::{Reth, RethRepr};
use classifier::tcp::{TcpPacket, TcpRepr};
use classifier::udp::{UdpPacket, UdpRepr};
use classifier::vlan::{VlanRepr, VlanStack, VlanTag};
use classifier::{parse, BthOpcode};
use proptest::prelude::*;
use proptest::sample::Index;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Feeds `b` to everything that accepts untrusted bytes and touches every
/// accessor. The values are folded into a checksum so that nothing is
/// optimised away and so that accessors really run.
fn exercise_views(b: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut eat = |v: u64| acc = acc.wrapping_mul(31).wrapping_add(v);

    if let Ok(f) = EthernetFrame::new_checked(b) {
        eat(f.ethertype().0.into());
        eat(f.src_addr().0[5].into());
        eat(f.dst_addr().0[0].into());
        eat(f.payload().len() as u64);
        if let Ok(r) = EthernetRepr::parse(&f) {
            eat(r.ethertype.0.into());
        }
        if let Ok(s) = VlanStack::parse(f.ethertype(), f.payload()) {
            eat(s.len() as u64 + s.header_len() as u64);
            eat(s.outer_vid().unwrap_or(0).into());
        }
    }
    if let Ok(t) = VlanTag::new_checked(b) {
        eat(t.vid().into());
        eat(t.pcp().into());
        eat(u64::from(t.dei()));
        eat(VlanRepr::parse(&t).map(|r| r.vid).unwrap_or(0).into());
    }
    if let Ok(ip) = Ipv4Packet::new_checked(b) {
        eat(ip.header_len() as u64);
        eat(ip.total_len().into());
        eat(u64::from(ip.verify_checksum()));
        eat(ip.compute_checksum().into());
        eat(ip.payload().len() as u64);
        eat(ip.options().len() as u64);
        eat(ip.frag_offset().into());
        eat(u32::from(ip.src_addr()).into());
        for o in ip.option_iter() {
            match o {
                Ok(o) => eat(o.kind.0 as u64 + o.data.len() as u64),
                Err(e) => eat(e.to_string().len() as u64),
            }
        }
        if let Ok(r) = Ipv4Repr::parse(&ip) {
            eat(r.payload_len as u64);
            let mut out = vec![0u8; r.buffer_len()];
            eat(r.emit(&mut out).map(|n| n as u64).unwrap_or(0));
        }
    }
    for o in Ipv4OptionIter::new(b).flatten() {
        eat(Ipv4OptionRepr::parse(&o).buffer_len() as u64);
    }
    if let Ok(ip) = Ipv6Packet::new_checked(b) {
        eat(ip.payload_len().into());
        eat(ip.flow_label().into());
        eat(ip.traffic_class().into());
        eat(u64::from(ip.next_header().0));
        if let Ok(c) = ipv6_ext::walk(ip.next_header(), ip.payload()) {
            eat(c.upper_offset as u64 + c.headers().len() as u64);
            eat(u64::from(c.has_upper_header()));
        }
        if let Ok(r) = Ipv6Repr::parse(&ip) {
            eat(r.payload_len as u64);
        }
    }
    if let Some(&first) = b.first() {
        if let Ok(c) = ipv6_ext::walk(IpProtocol(first), b.get(1..).unwrap_or(&[])) {
            eat(c.upper_offset as u64);
            if let Some(h) = c.hop_by_hop_options {
                eat(h.slice(b).len() as u64);
            }
        }
    }
    for t in [0u8, 43, 44, 51, 60, 135] {
        if let Ok(h) = Ipv6ExtHeader::new_checked(b, IpProtocol(t)) {
            eat(h.header_len() as u64 + h.body().len() as u64);
            eat(h.routing_type().unwrap_or(0).into());
            eat(h.segments_left().unwrap_or(0).into());
            eat(h.option_iter().count() as u64);
            eat(h.payload().len() as u64);
            if let Ok(r) = Ipv6ExtHeaderRepr::parse(&h) {
                let mut out = vec![0u8; r.buffer_len()];
                eat(r.emit(&mut out).map(|n| n as u64).unwrap_or(0));
            }
        }
    }
    for o in Ipv6OptionIter::new(b) {
        match o {
            Ok(o) => {
                eat(Ipv6OptionRepr::parse(&o).buffer_len() as u64);
                eat(u64::from(o.option_type.is_experimental()));
            }
            Err(e) => eat(e.to_string().len() as u64),
        }
    }
    if let Ok(f) = Ipv6FragmentHeader::new_checked(b) {
        eat(f.frag_offset().into());
        eat(f.ident().into());
        eat(Ipv6FragmentRepr::parse(&f)
            .map(|r| r.ident)
            .unwrap_or(0)
            .into());
    }
    let ph4 = PseudoHeader::V4 {
        src: Ipv4Addr::new(1, 2, 3, 4),
        dst: Ipv4Addr::new(5, 6, 7, 8),
    };
    let ph6 = PseudoHeader::V6 {
        src: Ipv6Addr::LOCALHOST,
        dst: Ipv6Addr::UNSPECIFIED,
    };
    if let Ok(u) = UdpPacket::new_checked(b) {
        eat(u.src_port().into());
        eat(u.payload().len() as u64);
        eat(u64::from(u.verify_checksum(&ph4)) + u64::from(u.verify_checksum(&ph6)));
        eat(u.compute_checksum(&ph6).into());
        eat(UdpRepr::parse(&u)
            .map(|r| r.payload_len as u64)
            .unwrap_or(0));
    }
    if let Ok(t) = TcpPacket::new_checked(b) {
        eat(t.seq().into());
        eat(t.flags().0.into());
        eat(t.options().len() as u64 + t.payload().len() as u64);
        eat(u64::from(t.verify_checksum(&ph4)));
        eat(t.compute_checksum(&ph6).into());
        if let Ok(r) = TcpRepr::parse(&t) {
            eat(r.options.len() as u64);
            eat(r.flags.to_string().len() as u64);
        }
    }
    if let Ok(h) = Bth::new_checked(b) {
        let op: BthOpcode = h.opcode();
        eat(h.psn().into());
        eat(h.dest_qp().into());
        eat(h.pkey().into());
        eat(op.ext_headers_len().unwrap_or(99) as u64);
        eat(op.reth_offset().unwrap_or(99) as u64);
        eat(u64::from(op.is_first()) + u64::from(op.is_last_or_only()) + u64::from(op.is_write()));
        eat(op.to_string().len() as u64);
        eat(BthRepr::parse(&h).map(|r| r.psn).unwrap_or(0).into());
    }
    if let Ok(r) = Reth::new_checked(b) {
        eat(r.dma_len().into());
        eat(RethRepr::parse(&r).map(|r| r.virtual_addr).unwrap_or(0));
    }
    if let Ok(a) = Aeth::new_checked(b) {
        eat(a.msn().into());
        eat(format!("{:?}", a.kind()).len() as u64);
        eat(AethRepr::parse(&a).map(|a| a.syndrome).unwrap_or(0).into());
    }
    if let Ok(a) = ArpPacket::new_checked(b) {
        eat(a.sender_hw().len() as u64 + a.target_proto().len() as u64);
        eat(ArpRepr::parse(&a)
            .map(|r| u64::from(r.operation.0))
            .unwrap_or(0));
    }
    eat(icrc::compute_icrc(b).map(u64::from).unwrap_or(1));
    eat(icrc::verify_icrc(b).map(u64::from).unwrap_or(2));
    eat(icrc::stored_icrc(b).map(u64::from).unwrap_or(3));
    acc
}

/// Runs the fast-path parser and, on success, every accessor of its result.
fn exercise_parse(frame: &[u8]) -> u64 {
    match parse(frame) {
        Ok(p) => {
            let mut acc =
                p.l3(frame).len() as u64 + p.l4(frame).len() as u64 + p.payload(frame).len() as u64;
            if let Some(s) = p.ipv4_options {
                acc += s.slice(frame).len() as u64;
                // Spans the parser returns must really lie inside the frame.
                assert!(s.end() <= frame.len());
            }
            if let Some(s) = p.ipv6_hbh_options {
                assert!(s.end() <= frame.len());
                acc += Ipv6OptionIter::new(s.slice(frame)).count() as u64;
            }
            assert!(p.payload.end() <= frame.len());
            if let Some(b) = p.bth {
                assert!(b.data.end() <= frame.len());
                assert!(usize::from(b.icrc_offset) + 4 <= frame.len());
                acc += u64::from(b.psn);
            }
            if let Some(k) = p.flow {
                acc += u64::from(k.hash32()) + k.to_string().len() as u64;
            }
            acc
        }
        Err(e) => e.to_string().len() as u64 + e.code().len() as u64,
    }
}

/// Runs the views on the frame and on suffixes starting where headers
/// commonly start (after Ethernet, VLAN tags, IPv4, IPv6, UDP).
fn exercise_all(frame: &[u8]) {
    let mut acc = exercise_parse(frame);
    for start in [0usize, 1, 2, 8, 14, 18, 22, 34, 42, 54, 62, 70] {
        if let Some(s) = frame.get(start..) {
            acc = acc.wrapping_add(exercise_views(s));
        }
    }
    std::hint::black_box(acc);
}

/// Setters must also be panic-free once a view is checked.
fn exercise_setters(b: &mut [u8]) {
    if let Ok(mut ip) = Ipv4Packet::new_checked(&mut b[..]) {
        ip.set_ttl_incremental(ip.ttl().wrapping_sub(1));
        ip.set_ecn_incremental(classifier::Ecn::Ce);
        ip.set_src_addr_incremental(Ipv4Addr::new(9, 9, 9, 9));
        ip.payload_mut().iter_mut().take(1).for_each(|x| *x ^= 1);
    }
    if let Ok(mut ip) = Ipv6Packet::new_checked(&mut b[..]) {
        ip.set_ecn(classifier::Ecn::Ect1);
        ip.set_flow_label(0xfffff);
        ip.payload_mut().iter_mut().take(1).for_each(|x| *x ^= 1);
    }
    if let Ok(mut u) = UdpPacket::new_checked(&mut b[..]) {
        u.fill_checksum(&PseudoHeader::V4 {
            src: Ipv4Addr::LOCALHOST,
            dst: Ipv4Addr::LOCALHOST,
        });
        u.payload_mut().iter_mut().take(1).for_each(|x| *x ^= 1);
    }
    if let Ok(mut t) = TcpPacket::new_checked(&mut b[..]) {
        t.fill_checksum(&PseudoHeader::V4 {
            src: Ipv4Addr::LOCALHOST,
            dst: Ipv4Addr::LOCALHOST,
        });
        t.payload_mut().iter_mut().take(1).for_each(|x| *x ^= 1);
    }
    if let Ok(mut h) = Bth::new_checked(&mut b[..]) {
        h.set_fecn(true);
        h.set_psn(u32::MAX);
        h.set_dest_qp(u32::MAX);
    }
    let _ = icrc::write_icrc(b);
}

fn corpus_strategy() -> impl Strategy<Value = Vec<u8>> {
    let corpus = common::corpus();
    (
        0..corpus.len(),
        prop::collection::vec((any::<Index>(), any::<u8>()), 0..6),
        any::<Index>(),
        any::<bool>(),
    )
        .prop_map(move |(i, flips, cut, truncate)| {
            let mut f = corpus[i].clone();
            for (at, v) in flips {
                let at = at.index(f.len());
                f[at] = v;
            }
            if truncate {
                let n = cut.index(f.len() + 1);
                f.truncate(n);
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise_all(&bytes);
        let mut m = bytes.clone();
        exercise_setters(&mut m);
    }

    #[test]
    fn random_bytes_behind_valid_ethertypes_never_panic(
        ethertype in prop::sample::select(vec![0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x0806]),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        // Steer the version nibble so the IP layers get past their first check.
        let mut body = body;
        if let Some(b) = body.first_mut() {
            *b = match ethertype { 0x0800 => 0x45 | (*b & 0x0f), 0x86dd => 0x60 | (*b & 0x0f), _ => *b };
        }
        f.extend(body);
        exercise_all(&f);
    }

    #[test]
    fn mutated_valid_frames_never_panic(frame in corpus_strategy()) {
        exercise_all(&frame);
        let mut m = frame.clone();
        exercise_setters(&mut m);
        exercise_all(&m);
    }
}

#[test]
fn every_prefix_of_every_corpus_frame() {
    // Exhaustive truncation: the classic source of slicing panics.
    for f in common::corpus() {
        for n in 0..=f.len() {
            exercise_all(&f[..n]);
        }
    }
}

#[test]
fn corpus_is_valid_to_begin_with() {
    // The mutation test is only meaningful if it starts from packets that
    // reach the deep layers.
    let c = common::corpus();
    let parsed: Vec<_> = c.iter().map(|f| parse(f).unwrap()).collect();
    assert!(parsed.iter().any(|p| p.bth.is_some()));
    assert!(parsed.iter().any(|p| p.ipv6_hbh_options.is_some()));
    assert!(parsed.iter().any(|p| p.ipv4_options.is_some()));
    assert!(parsed.iter().any(|p| p.vlans.len() == 2));
    assert!(parsed
        .iter()
        .any(|p| p.fragment.is_some_and(|f| f.is_non_first())));
    assert!(c
        .iter()
        .any(|f| EthernetFrame::new_checked(&f[..]).unwrap().ethertype() == EtherType::ARP));
}
