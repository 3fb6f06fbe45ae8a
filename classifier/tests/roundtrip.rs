//! `Repr::emit` followed by `Repr::parse` gives back the same repr, for
//! every header type, and whole frames built from reprs are classified with
//! exactly the values that went in.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use classifier::aeth::{Aeth, AethRepr};
use classifier::arp::{ArpOperation, ArpPacket, ArpRepr};
use classifier::bth::{Bth, BthRepr};
use classifier::checksum::PseudoHeader;
use classifier::ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
use classifier::ip::IpProtocol;
use classifier::ipv4::{Ipv4Packet, Ipv4Repr};
use classifier::ipv4_option::{Ipv4OptionRepr, Ipv4OptionType};
use classifier::ipv6::{Ipv6Packet, Ipv6Repr};
use classifier::ipv6_ext::{Ipv6ExtHeader, Ipv6ExtHeaderRepr};
use classifier::ipv6_frag::{Ipv6FragmentHeader, Ipv6FragmentRepr};
use classifier::ipv6_option::{Ipv6OptionIter, Ipv6OptionRepr, Ipv6OptionType};
use classifier::reth::{Reth, RethRepr};
use classifier::tcp::{TcpFlags, TcpPacket, TcpRepr};
use classifier::udp::{UdpPacket, UdpRepr};
use classifier::vlan::{VlanRepr, VlanTag};
use classifier::{parse, BthOpcode, L3Kind};
use proptest::prelude::*;

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn ipv4_option() -> impl Strategy<Value = (u8, Vec<u8>)> {
    // TLV kinds only; NOP/END are covered by the padding.
    (2u8..=255, prop::collection::vec(any::<u8>(), 0..8))
}

fn ipv6_option() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (2u8..=255, prop::collection::vec(any::<u8>(), 0..12))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn ethernet(src in mac(), dst in mac(), et in any::<u16>()) {
        let r = EthernetRepr { src_addr: src, dst_addr: dst, ethertype: EtherType(et) };
        let mut b = [0u8; 14];
        prop_assert_eq!(r.emit(&mut b).unwrap(), 14);
        prop_assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn vlan(pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4096, et in any::<u16>()) {
        let r = VlanRepr { pcp, dei, vid, ethertype: EtherType(et) };
        let mut b = [0u8; 4];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(VlanRepr::parse(&VlanTag::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn ipv4_with_options(
        src in any::<u32>(), dst in any::<u32>(), proto in any::<u8>(), tos in any::<u8>(),
        ident in any::<u16>(), df in any::<bool>(), mf in any::<bool>(), off in 0u16..0x2000,
        ttl in any::<u8>(), payload_len in 0usize..1400,
        opts in prop::collection::vec(ipv4_option(), 0..4),
    ) {
        // Build the option area with the option emitter, NOP-padded.
        let mut area = Vec::new();
        for (kind, data) in &opts {
            let o = Ipv4OptionRepr::Tlv { kind: Ipv4OptionType(*kind), data };
            if area.len() + o.buffer_len() > 40 { break; }
            let mut b = vec![0u8; o.buffer_len()];
            o.emit(&mut b).unwrap();
            area.extend(b);
        }
        let pad = Ipv4OptionRepr::padding(area.len());
        if area.len() + pad > 40 { area.truncate(36); }
        let pad = Ipv4OptionRepr::padding(area.len());
        area.extend(std::iter::repeat_n(1u8, pad));
        let r = Ipv4Repr {
            src_addr: Ipv4Addr::from(src), dst_addr: Ipv4Addr::from(dst), protocol: IpProtocol(proto),
            dscp_ecn: tos, ident, dont_frag: df, more_frags: mf, frag_offset: off, ttl,
            options: &area, payload_len,
        };
        let mut b = vec![0u8; r.buffer_len() + payload_len];
        prop_assert_eq!(r.emit(&mut b).unwrap(), 20 + area.len());
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
        // The iterator never fails on an emitter-built area.
        prop_assert!(p.option_iter().all(|o| o.is_ok()));
    }

    #[test]
    fn ipv6(src in any::<u128>(), dst in any::<u128>(), nh in any::<u8>(), hl in any::<u8>(),
            tc in any::<u8>(), fl in 0u32..0x10_0000, payload_len in 0usize..1400) {
        let r = Ipv6Repr {
            src_addr: Ipv6Addr::from(src), dst_addr: Ipv6Addr::from(dst), next_header: IpProtocol(nh),
            hop_limit: hl, traffic_class: tc, flow_label: fl, payload_len,
        };
        let mut b = vec![0u8; 40 + payload_len];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn ipv6_options_header(opts in prop::collection::vec(ipv6_option(), 0..5), nh in any::<u8>(), dest in any::<bool>()) {
        let reprs: Vec<Ipv6OptionRepr<'_>> = opts
            .iter()
            .map(|(t, d)| Ipv6OptionRepr::Tlv { option_type: Ipv6OptionType(*t), data: d })
            .collect();
        let mut area = vec![0u8; Ipv6OptionRepr::padded_area_len(&reprs)];
        Ipv6OptionRepr::emit_padded_area(&reprs, &mut area).unwrap();
        prop_assert_eq!((area.len() + 2) % 8, 0);
        let header_type = if dest { IpProtocol::IPV6_DEST_OPTS } else { IpProtocol::HOP_BY_HOP };
        let r = Ipv6ExtHeaderRepr { header_type, next_header: IpProtocol(nh), body: &area };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b).unwrap();
        let h = Ipv6ExtHeader::new_checked(&b[..], header_type).unwrap();
        prop_assert_eq!(Ipv6ExtHeaderRepr::parse(&h).unwrap(), r);
        let parsed: Vec<_> = Ipv6OptionIter::new(h.body())
            .map(|o| Ipv6OptionRepr::parse(&o.unwrap()))
            .filter(|o| !matches!(o, Ipv6OptionRepr::Pad1 | Ipv6OptionRepr::PadN(_)))
            .collect();
        prop_assert_eq!(parsed, reprs);
    }

    #[test]
    fn ipv6_fragment(nh in any::<u8>(), off in 0u16..0x2000, more in any::<bool>(), ident in any::<u32>()) {
        let r = Ipv6FragmentRepr { next_header: IpProtocol(nh), frag_offset: off, more_frags: more, ident };
        let mut b = [0u8; 8];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(Ipv6FragmentRepr::parse(&Ipv6FragmentHeader::new_checked(&b[..]).unwrap()).unwrap(), r);
        let g = Ipv6ExtHeader::new_checked(&b[..], IpProtocol::IPV6_FRAGMENT).unwrap();
        prop_assert_eq!(g.header_len(), 8);
    }

    #[test]
    fn udp(sp in any::<u16>(), dp in any::<u16>(), payload in prop::collection::vec(any::<u8>(), 0..600),
           src in any::<u128>(), dst in any::<u128>()) {
        let r = UdpRepr { src_port: sp, dst_port: dp, payload_len: payload.len() };
        let mut b = vec![0u8; 8 + payload.len()];
        r.emit(&mut b).unwrap();
        b[8..].copy_from_slice(&payload);
        let ph = PseudoHeader::V6 { src: Ipv6Addr::from(src), dst: Ipv6Addr::from(dst) };
        UdpPacket::new_checked(&mut b[..]).unwrap().fill_checksum(&ph);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum(&ph));
        prop_assert_ne!(p.checksum(), 0);
        prop_assert_eq!(UdpRepr::parse(&p).unwrap(), r);
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn tcp(sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(),
           flags in 0u16..0x200, window in any::<u16>(), urgent in any::<u16>(),
           opt_words in prop::collection::vec(any::<[u8; 4]>(), 0..10),
           payload in prop::collection::vec(any::<u8>(), 0..200)) {
        let options: Vec<u8> = opt_words.concat();
        let r = TcpRepr { src_port: sp, dst_port: dp, seq, ack, flags: TcpFlags(flags), window, urgent, options: &options };
        let mut b = vec![0u8; r.buffer_len() + payload.len()];
        let n = r.emit(&mut b).unwrap();
        b[n..].copy_from_slice(&payload);
        let ph = PseudoHeader::V4 { src: Ipv4Addr::new(10, 0, 0, 1), dst: Ipv4Addr::new(10, 0, 0, 2) };
        TcpPacket::new_checked(&mut b[..]).unwrap().fill_checksum(&ph);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum(&ph));
        prop_assert_eq!(TcpRepr::parse(&p).unwrap(), r);
    }

    #[test]
    fn bth_reth_aeth(op in any::<u8>(), se in any::<bool>(), m in any::<bool>(), pad in 0u8..4, tver in 0u8..16,
                     pkey in any::<u16>(), fecn in any::<bool>(), becn in any::<bool>(), qp in 0u32..0x100_0000,
                     a in any::<bool>(), psn in 0u32..0x100_0000, va in any::<u64>(), rkey in any::<u32>(),
                     len in any::<u32>(), syn in any::<u8>(), msn in 0u32..0x100_0000) {
        let r = BthRepr { opcode: BthOpcode(op), solicited: se, mig_req: m, pad_count: pad, tver, pkey, fecn, becn, dest_qp: qp, ack_req: a, psn };
        let mut b = [0u8; 12];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(BthRepr::parse(&Bth::new_checked(&b[..]).unwrap()).unwrap(), r);
        let rr = RethRepr { virtual_addr: va, rkey, dma_len: len };
        let mut b = [0u8; 16];
        rr.emit(&mut b).unwrap();
        prop_assert_eq!(RethRepr::parse(&Reth::new_checked(&b[..]).unwrap()).unwrap(), rr);
        let ar = AethRepr { syndrome: syn, msn };
        let mut b = [0u8; 4];
        ar.emit(&mut b).unwrap();
        prop_assert_eq!(AethRepr::parse(&Aeth::new_checked(&b[..]).unwrap()).unwrap(), ar);
    }

    #[test]
    fn arp(req in any::<bool>(), sm in mac(), tm in mac(), si in any::<u32>(), ti in any::<u32>()) {
        let r = ArpRepr {
            operation: if req { ArpOperation::REQUEST } else { ArpOperation::REPLY },
            sender_mac: sm, sender_ip: Ipv4Addr::from(si), target_mac: tm, target_ip: Ipv4Addr::from(ti),
        };
        let mut b = [0u8; 28];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    /// Whole frames: what the builder put in is what `parse` reports.
    #[test]
    fn roce_frames_classify_exactly(
        v6 in any::<bool>(),
        op in prop::sample::select(vec![
            BthOpcode::RC_SEND_FIRST, BthOpcode::RC_SEND_ONLY, BthOpcode::RC_SEND_ONLY_IMM,
            BthOpcode::RC_WRITE_FIRST, BthOpcode::RC_WRITE_MIDDLE, BthOpcode::RC_WRITE_LAST,
            BthOpcode::RC_WRITE_ONLY, BthOpcode::RC_WRITE_ONLY_IMM, BthOpcode::RC_READ_REQUEST,
            BthOpcode::RC_READ_RESPONSE_FIRST, BthOpcode::RC_ACK, BthOpcode::UC_SEND_ONLY,
        ]),
        qp in 0u32..0x100_0000, psn in 0u32..0x100_0000,
        data in prop::collection::vec(any::<u8>(), 0..1024),
        vlan in prop::option::of(1u16..4095),
    ) {
        let mut f = if v6 { common::roce_v6(op, qp, psn, &data) } else { common::roce_v4(op, qp, psn, &data) };
        if let Some(vid) = vlan {
            f = common::vlan_wrap(&f, &[(EtherType::VLAN, vid)]);
        }
        let p = parse(&f).unwrap();
        prop_assert_eq!(p.l3_kind, if v6 { L3Kind::Ipv6 } else { L3Kind::Ipv4 });
        prop_assert_eq!(p.vlans.inner_vid(), vlan);
        let b = p.bth.unwrap();
        prop_assert_eq!(b.opcode, op);
        prop_assert_eq!(b.dest_qp, qp);
        prop_assert_eq!(b.psn, psn);
        prop_assert_eq!(b.data.slice(&f), &data[..]);
        prop_assert_eq!(b.dma_len, op.has_reth().then_some(1 << 20));
        let key = p.flow.unwrap();
        prop_assert_eq!(key.dest_qpn, Some(qp));
        prop_assert_eq!(key.dst_port, 4791);
        prop_assert!(classifier::icrc::verify_icrc(p.l3(&f)).unwrap());
        // Over IPv6 the UDP checksum is mandatory and covers the ICRC.
        let udp = UdpPacket::new_checked(p.l4(&f)).unwrap();
        let ph = if v6 { common::pseudo6() } else { common::pseudo4() };
        prop_assert!(udp.verify_checksum(&ph));
        prop_assert_eq!(udp.checksum() != 0, v6);
    }
}
