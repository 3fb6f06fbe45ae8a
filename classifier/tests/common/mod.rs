//! Frame builders for the integration tests, assembled only from the crate's
//! own `Repr::emit` APIs so that the tests also exercise the emitters.

#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use classifier::aeth::AethRepr;
use classifier::arp::{ArpOperation, ArpRepr};
use classifier::bth::{Bth, BthRepr, ICRC_LEN};
use classifier::checksum::PseudoHeader;
use classifier::ethernet::{EtherType, EthernetRepr, MacAddr};
use classifier::icrc;
use classifier::ip::IpProtocol;
use classifier::ipv4::Ipv4Repr;
use classifier::ipv6::Ipv6Repr;
use classifier::ipv6_ext::Ipv6ExtHeaderRepr;
use classifier::ipv6_frag::Ipv6FragmentRepr;
use classifier::ipv6_option::{Ipv6OptionRepr, Ipv6OptionType};
use classifier::reth::RethRepr;
use classifier::tcp::{TcpFlags, TcpPacket, TcpRepr};
use classifier::udp::{UdpPacket, UdpRepr};
use classifier::vlan::VlanRepr;
use classifier::BthOpcode;

pub const SRC_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
pub const DST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
pub const SRC4: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
pub const DST4: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);

pub fn src6() -> Ipv6Addr {
    "2001:db8::1".parse().unwrap()
}

pub fn dst6() -> Ipv6Addr {
    "2001:db8::2".parse().unwrap()
}

/// Ethernet header + `l3`.
pub fn ether(ethertype: EtherType, l3: &[u8]) -> Vec<u8> {
    let repr = EthernetRepr {
        src_addr: SRC_MAC,
        dst_addr: DST_MAC,
        ethertype,
    };
    let mut f = vec![0u8; repr.buffer_len() + l3.len()];
    let n = repr.emit(&mut f).unwrap();
    f[n..].copy_from_slice(l3);
    f
}

/// Inserts VLAN tags (outermost first, `(tpid, vid)`) after the MACs.
pub fn vlan_wrap(frame: &[u8], tags: &[(EtherType, u16)]) -> Vec<u8> {
    let inner_type = EtherType(u16::from_be_bytes([frame[12], frame[13]]));
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&tags[0].0 .0.to_be_bytes());
    // Each tag's repr carries the *next* type: the following TPID, or the
    // original EtherType after the innermost tag.
    for (i, &(_, vid)) in tags.iter().enumerate() {
        let r = VlanRepr {
            pcp: (i as u8) + 1,
            dei: false,
            vid,
            ethertype: tags.get(i + 1).map_or(inner_type, |t| t.0),
        };
        let mut buf = [0u8; 4];
        r.emit(&mut buf).unwrap();
        out.extend_from_slice(&buf);
    }
    out.extend_from_slice(&frame[14..]);
    out
}

/// IPv4 header (+ options) followed by `l4`.
pub fn ipv4(protocol: IpProtocol, options: &[u8], tos: u8, l4: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: SRC4,
        dst_addr: DST4,
        protocol,
        dscp_ecn: tos,
        ident: 0x1c46,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        ttl: 64,
        options,
        payload_len: l4.len(),
    };
    let mut p = vec![0u8; repr.buffer_len() + l4.len()];
    let n = repr.emit(&mut p).unwrap();
    p[n..].copy_from_slice(l4);
    p
}

/// An IPv6 extension header for [`ipv6`].
#[derive(Clone, Copy, Debug)]
pub enum Ext<'a> {
    HopByHop(&'a [Ipv6OptionRepr<'a>]),
    DestOpts(&'a [Ipv6OptionRepr<'a>]),
    Routing { routing_type: u8, segments_left: u8 },
    Fragment { offset: u16, more: bool },
    Ah,
}

impl Ext<'_> {
    fn header_type(&self) -> IpProtocol {
        match self {
            Ext::HopByHop(_) => IpProtocol::HOP_BY_HOP,
            Ext::DestOpts(_) => IpProtocol::IPV6_DEST_OPTS,
            Ext::Routing { .. } => IpProtocol::IPV6_ROUTING,
            Ext::Fragment { .. } => IpProtocol::IPV6_FRAGMENT,
            Ext::Ah => IpProtocol::AH,
        }
    }

    fn emit(&self, next: IpProtocol) -> Vec<u8> {
        match *self {
            Ext::HopByHop(opts) | Ext::DestOpts(opts) => {
                let mut body = vec![0u8; Ipv6OptionRepr::padded_area_len(opts)];
                Ipv6OptionRepr::emit_padded_area(opts, &mut body).unwrap();
                ext_generic(self.header_type(), next, &body)
            }
            Ext::Routing {
                routing_type,
                segments_left,
            } => {
                let body = [routing_type, segments_left, 0, 0, 0, 0];
                ext_generic(IpProtocol::IPV6_ROUTING, next, &body)
            }
            Ext::Fragment { offset, more } => {
                let r = Ipv6FragmentRepr {
                    next_header: next,
                    frag_offset: offset,
                    more_frags: more,
                    ident: 0xfeed_f00d,
                };
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(&mut b).unwrap();
                b
            }
            Ext::Ah => ext_generic(IpProtocol::AH, next, &[0x5a; 22]),
        }
    }
}

fn ext_generic(header_type: IpProtocol, next: IpProtocol, body: &[u8]) -> Vec<u8> {
    let r = Ipv6ExtHeaderRepr {
        header_type,
        next_header: next,
        body,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b).unwrap();
    b
}

/// IPv6 header + extension headers + `upper` (protocol `upper_proto`).
pub fn ipv6(exts: &[Ext<'_>], upper_proto: IpProtocol, upper: &[u8], tc: u8) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, e) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(upper_proto, |n| n.header_type());
        chain.extend(e.emit(next));
    }
    chain.extend_from_slice(upper);
    let repr = Ipv6Repr {
        src_addr: src6(),
        dst_addr: dst6(),
        next_header: exts.first().map_or(upper_proto, |e| e.header_type()),
        hop_limit: 64,
        traffic_class: tc,
        flow_label: 0x12345,
        payload_len: chain.len(),
    };
    let mut p = vec![0u8; repr.buffer_len() + chain.len()];
    let n = repr.emit(&mut p).unwrap();
    p[n..].copy_from_slice(&chain);
    p
}

/// A UDP datagram with a correct checksum for `pseudo`.
pub fn udp(sport: u16, dport: u16, payload: &[u8], pseudo: Option<&PseudoHeader>) -> Vec<u8> {
    let r = UdpRepr {
        src_port: sport,
        dst_port: dport,
        payload_len: payload.len(),
    };
    let mut d = vec![0u8; r.buffer_len() + payload.len()];
    let n = r.emit(&mut d).unwrap();
    d[n..].copy_from_slice(payload);
    if let Some(ph) = pseudo {
        UdpPacket::new_checked(&mut d[..])
            .unwrap()
            .fill_checksum(ph);
    }
    d
}

/// A TCP segment with a correct checksum for `pseudo`.
pub fn tcp(
    sport: u16,
    dport: u16,
    flags: TcpFlags,
    options: &[u8],
    payload: &[u8],
    pseudo: &PseudoHeader,
) -> Vec<u8> {
    let r = TcpRepr {
        src_port: sport,
        dst_port: dport,
        seq: 0x0102_0304,
        ack: 0x0a0b_0c0d,
        flags,
        window: 502,
        urgent: 0,
        options,
    };
    let mut s = vec![0u8; r.buffer_len() + payload.len()];
    let n = r.emit(&mut s).unwrap();
    s[n..].copy_from_slice(payload);
    TcpPacket::new_checked(&mut s[..])
        .unwrap()
        .fill_checksum(pseudo);
    s
}

pub fn pseudo4() -> PseudoHeader {
    PseudoHeader::V4 {
        src: SRC4,
        dst: DST4,
    }
}

pub fn pseudo6() -> PseudoHeader {
    PseudoHeader::V6 {
        src: src6(),
        dst: dst6(),
    }
}

/// BTH + extension headers + data + pad + ICRC placeholder.
pub fn roce_payload(opcode: BthOpcode, qp: u32, psn: u32, data: &[u8]) -> Vec<u8> {
    let pad = (4 - data.len() % 4) % 4;
    let bth = BthRepr {
        opcode,
        solicited: false,
        mig_req: true,
        pad_count: pad as u8,
        tver: 0,
        pkey: 0xffff,
        fecn: false,
        becn: false,
        dest_qp: qp,
        ack_req: opcode.is_last_or_only(),
        psn,
    };
    let ext = opcode.ext_headers_len().unwrap_or(0);
    let mut p = vec![0u8; Bth::<&[u8]>::HEADER_LEN + ext + data.len() + pad + ICRC_LEN];
    let mut at = bth.emit(&mut p).unwrap();
    if opcode.has_reth() {
        let r = RethRepr {
            virtual_addr: 0x7f00_0000_1000,
            rkey: 0x1234,
            dma_len: 1 << 20,
        };
        at += r.emit(&mut p[at..]).unwrap();
    }
    if opcode.has_aeth() {
        let a = AethRepr {
            syndrome: 0x1f,
            msn: 7,
        };
        a.emit(&mut p[at..]).unwrap();
    }
    let data_at = Bth::<&[u8]>::HEADER_LEN + ext;
    p[data_at..data_at + data.len()].copy_from_slice(data);
    p
}

/// A complete RoCEv2-over-IPv4 frame with a correct ICRC.
pub fn roce_v4(opcode: BthOpcode, qp: u32, psn: u32, data: &[u8]) -> Vec<u8> {
    let udp_d = udp(0xc123, 4791, &roce_payload(opcode, qp, psn, data), None);
    let mut l3 = ipv4(IpProtocol::UDP, &[], 0x6a, &udp_d);
    icrc::write_icrc(&mut l3).unwrap();
    ether(EtherType::IPV4, &l3)
}

/// A complete RoCEv2-over-IPv6 frame with a correct ICRC.
pub fn roce_v6(opcode: BthOpcode, qp: u32, psn: u32, data: &[u8]) -> Vec<u8> {
    let udp_d = udp(0xc123, 4791, &roce_payload(opcode, qp, psn, data), None);
    let mut l3 = ipv6(&[], IpProtocol::UDP, &udp_d, 0x6a);
    // IPv6 forbids a zero UDP checksum. It covers the ICRC, and the ICRC
    // masks it, so the ICRC goes first.
    icrc::write_icrc(&mut l3).unwrap();
    let ph = pseudo6();
    UdpPacket::new_checked(&mut l3[40..])
        .unwrap()
        .fill_checksum(&ph);
    ether(EtherType::IPV6, &l3)
}

pub fn arp(op: ArpOperation) -> Vec<u8> {
    let r = ArpRepr {
        operation: op,
        sender_mac: SRC_MAC,
        sender_ip: SRC4,
        target_mac: if op == ArpOperation::REPLY {
            DST_MAC
        } else {
            MacAddr::ZERO
        },
        target_ip: DST4,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b).unwrap();
    ether(EtherType::ARP, &b)
}

const EXPERIMENTAL_HBH: [Ipv6OptionRepr<'static>; 1] = [Ipv6OptionRepr::Tlv {
    option_type: Ipv6OptionType(0x1e),
    data: &[0xde, 0xad, 0xbe, 0xef, 0x01],
}];

/// A varied set of valid frames covering every layer the parser knows.
pub fn corpus() -> Vec<Vec<u8>> {
    let p4 = pseudo4();
    let p6 = pseudo6();
    let http = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n{}";
    let mut v = vec![
        ether(
            EtherType::IPV4,
            &ipv4(IpProtocol::UDP, &[], 0, &udp(5353, 53, b"query", Some(&p4))),
        ),
        ether(
            EtherType::IPV4,
            &ipv4(
                IpProtocol::UDP,
                &[0x94, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00],
                0,
                &udp(1, 2, b"opts", Some(&p4)),
            ),
        ),
        ether(
            EtherType::IPV4,
            &ipv4(
                IpProtocol::TCP,
                &[],
                0,
                &tcp(
                    40000,
                    8000,
                    TcpFlags::ACK | TcpFlags::PSH,
                    &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
                    http,
                    &p4,
                ),
            ),
        ),
        ether(
            EtherType::IPV6,
            &ipv6(
                &[
                    Ext::HopByHop(&EXPERIMENTAL_HBH),
                    Ext::Routing {
                        routing_type: 4,
                        segments_left: 0,
                    },
                    Ext::Fragment {
                        offset: 0,
                        more: true,
                    },
                    Ext::DestOpts(&[Ipv6OptionRepr::PadN(4)]),
                ],
                IpProtocol::UDP,
                &udp(7, 9, b"chain", Some(&p6)),
                0,
            ),
        ),
        ether(
            EtherType::IPV6,
            &ipv6(
                &[Ext::Fragment {
                    offset: 100,
                    more: false,
                }],
                IpProtocol::UDP,
                &[0xab; 40],
                0,
            ),
        ),
        ether(
            EtherType::IPV6,
            &ipv6(
                &[Ext::Ah],
                IpProtocol::TCP,
                &tcp(1, 2, TcpFlags::SYN, &[], &[], &p6),
                0,
            ),
        ),
        ether(
            EtherType::IPV6,
            &ipv6(
                &[Ext::DestOpts(&[])],
                IpProtocol::IPV6_NO_NEXT_HEADER,
                &[],
                0,
            ),
        ),
        arp(ArpOperation::REQUEST),
        arp(ArpOperation::REPLY),
        roce_v4(BthOpcode::RC_WRITE_FIRST, 0x11, 100, &[0x5a; 256]),
        roce_v4(BthOpcode::RC_WRITE_MIDDLE, 0x11, 101, &[0x5b; 256]),
        roce_v4(BthOpcode::RC_WRITE_LAST, 0x11, 102, &[0x5c; 100]),
        roce_v4(BthOpcode::RC_ACK, 0x22, 102, &[]),
        roce_v4(BthOpcode::RC_SEND_ONLY, 0x33, 5, &[1, 2, 3]),
        roce_v6(BthOpcode::RC_WRITE_ONLY, 0x44, 9, &[7; 64]),
        roce_v6(BthOpcode::RC_READ_REQUEST, 0x45, 10, &[]),
    ];
    let base = v[0].clone();
    v.push(vlan_wrap(&base, &[(EtherType::VLAN, 100)]));
    v.push(vlan_wrap(
        &v[2].clone(),
        &[(EtherType::QINQ, 200), (EtherType::VLAN, 10)],
    ));
    let mut padded = ether(
        EtherType::IPV4,
        &ipv4(IpProtocol::UDP, &[], 0, &udp(1, 2, b"x", Some(&p4))),
    );
    padded.resize(60, 0);
    v.push(padded);
    v
}
