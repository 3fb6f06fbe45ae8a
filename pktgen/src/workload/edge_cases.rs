//! `edge-cases`: the conformance set that proves the appliance transparent.
//!
//! A bump in the wire must forward everything, including what it cannot
//! classify. This fixed, labelled set covers three groups:
//!
//! * **valid but unusual** frames — VLAN and QinQ tags, IPv4 options up to
//!   the 40-byte maximum, IPv6 extension-header chains (Hop-by-Hop with the
//!   RFC 4727 experimental option, Routing, Fragment, Destination Options,
//!   AH), first and non-first fragments, ARP, RoCEv2 over IPv4 and IPv6,
//!   LLC and unknown EtherTypes, empty and padded tiny payloads;
//! * **bad checksums the fast path does not look at** — UDP, TCP, IPv6 UDP
//!   with a zero checksum, a corrupted ICRC — which [`crate::verify`] flags;
//! * **malformed frames the parser must reject**, each with the exact
//!   [`classifier::ParseError::code`] expected: runts, truncated headers at
//!   every layer, impossible IHL / data offset / length fields, wrong IP
//!   versions, a bad IPv4 header checksum, over-long tag and extension
//!   chains.
//!
//! The set is deterministic (no seed); the timestamps are 1 µs apart.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use classifier::arp::{ArpOperation, ArpRepr};
use classifier::bth::BthRepr;
use classifier::checksum::{self, PseudoHeader};
use classifier::ethernet::{EtherType, MacAddr};
use classifier::ipv4_option::{Ipv4OptionRepr, Ipv4OptionType};
use classifier::ipv6_option::{Ipv6OptionRepr, Ipv6OptionType};
use classifier::reth::RethRepr;
use classifier::tcp::{TcpFlags, TcpOptionRepr, TcpRepr};
use classifier::{BthOpcode, IpProtocol};

use super::EPOCH_NS;
use crate::build::{
    build, build_l4, mac_for, BuildError, ExtSpec, FrameSpec, Ipv4Header, Ipv6Header, L3Spec,
    L4Spec, Tag,
};
use crate::verify::check_frame;
use crate::Packet;

/// A checksum the fast path skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// UDP checksum.
    Udp,
    /// TCP checksum.
    Tcp,
    /// RoCEv2 invariant CRC.
    Icrc,
}

/// What a correct classifier must conclude about a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expect {
    /// `parse` accepts it and every checksum that applies verifies.
    Valid,
    /// `parse` accepts it (it does not read payloads) but this checksum fails.
    BadChecksum(Check),
    /// `parse` rejects it with this error code.
    Reject(&'static str),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Valid => f.write_str("valid"),
            Expect::BadChecksum(c) => write!(f, "bad {c:?} checksum"),
            Expect::Reject(code) => write!(f, "rejected as {code}"),
        }
    }
}

/// One labelled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeCase {
    /// A unique, descriptive name (`ipv4-ihl-below-5`).
    pub name: &'static str,
    /// The expected verdict.
    pub expect: Expect,
    /// The frame.
    pub packet: Packet,
}

impl EdgeCase {
    /// Checks the frame against its expectation, explaining any mismatch.
    pub fn verify(&self) -> Result<(), String> {
        let c = check_frame(&self.packet.data);
        let ok = match (self.expect, &c.parsed) {
            (Expect::Valid, Ok(_)) => c.is_clean(),
            (Expect::BadChecksum(Check::Icrc), Ok(_)) => {
                c.icrc == Some(false) && c.l4_checksum != Some(false)
            }
            (Expect::BadChecksum(check), Ok(p)) => {
                let proto = if check == Check::Udp {
                    IpProtocol::UDP
                } else {
                    IpProtocol::TCP
                };
                p.ip_protocol == Some(proto)
                    && c.l4_checksum == Some(false)
                    && c.icrc != Some(false)
            }
            (Expect::Reject(code), Err(e)) => e.code() == code,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{}: expected {}, got parse {:?}, l4 checksum {:?}, icrc {:?}",
                self.name,
                self.expect,
                c.parsed.map(|_| "ok").map_err(|e| e.code()),
                c.l4_checksum,
                c.icrc
            ))
        }
    }
}

const A4: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
const B4: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 2);
const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x20, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x20, 0, 0, 0, 0, 0, 2);

/// Offsets in an untagged frame.
const L3: usize = 14;
const L4_V4: usize = 34;
const L4_V6: usize = 54;

fn v4h() -> Ipv4Header<'static> {
    Ipv4Header {
        ident: 0x2e2e,
        ..Ipv4Header::new(A4, B4)
    }
}

fn v6h() -> Ipv6Header {
    Ipv6Header {
        src: A6,
        dst: B6,
        traffic_class: 0,
        flow_label: 0x0beef,
        hop_limit: 64,
    }
}

fn udp(payload: &[u8]) -> L4Spec<'_> {
    L4Spec::Udp {
        src_port: 5000,
        dst_port: 6000,
        payload,
        checksum: true,
    }
}

fn tcp_header(flags: TcpFlags, options: &[u8]) -> TcpRepr<'_> {
    TcpRepr {
        src_port: 41000,
        dst_port: 8000,
        seq: 0x1000_0000,
        ack: if flags.contains(TcpFlags::ACK) {
            0x2000_0001
        } else {
            0
        },
        flags,
        window: 502,
        urgent: 0,
        options,
    }
}

fn bth(opcode: BthOpcode, dest_qp: u32, psn: u32) -> BthRepr {
    BthRepr {
        opcode,
        solicited: false,
        mig_req: true,
        pad_count: 0,
        tver: 0,
        pkey: 0xffff,
        fecn: false,
        becn: false,
        dest_qp,
        ack_req: opcode.is_last_or_only(),
        psn,
    }
}

fn roce(opcode: BthOpcode, reth: Option<RethRepr>, data: &[u8]) -> L4Spec<'_> {
    L4Spec::Roce {
        src_port: 0xc0de,
        bth: bth(opcode, 0x00_0a11, 0x10_0000),
        reth,
        aeth: None,
        data,
    }
}

const RETH: RethRepr = RethRepr {
    virtual_addr: 0x7f3a_0000_0000,
    rkey: 0x0004_2a2a,
    dma_len: 4096,
};

fn frame(vlans: &[Tag], l3: L3Spec<'_>) -> Result<Vec<u8>, BuildError> {
    build(&FrameSpec {
        src_mac: mac_for(A4),
        dst_mac: mac_for(B4),
        vlans,
        l3,
    })
}

fn v4(l4: L4Spec<'_>) -> Result<Vec<u8>, BuildError> {
    frame(&[], L3Spec::Ipv4 { header: v4h(), l4 })
}

fn v6<'a>(ext: &'a [ExtSpec<'a>], l4: L4Spec<'a>) -> Result<Vec<u8>, BuildError> {
    frame(
        &[],
        L3Spec::Ipv6 {
            header: v6h(),
            ext,
            l4,
        },
    )
}

fn set16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn get16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

/// Recomputes the IPv4 header checksum after a deliberate corruption, so
/// that the frame fails for the intended reason only.
fn fix_ipv4_checksum(f: &mut [u8]) {
    let ihl = (usize::from(f[L3] & 0x0f) * 4).clamp(20, f.len() - L3);
    set16(f, L3 + 10, 0);
    let c = checksum::checksum(&f[L3..L3 + ihl]);
    set16(f, L3 + 10, c);
}

fn ipv4_options(opts: &[Ipv4OptionRepr<'_>]) -> Result<Vec<u8>, BuildError> {
    let mut area = Vec::new();
    for o in opts {
        let mut b = vec![0u8; o.buffer_len()];
        o.emit(&mut b)?;
        area.extend(b);
    }
    area.resize(area.len() + Ipv4OptionRepr::padding(area.len()), 0);
    Ok(area)
}

/// An experimental Hop-by-Hop option (RFC 4727 codepoint 0x1E: skip if
/// unknown, immutable en route) carrying 8 bytes, the shape IntelliNode's
/// scheduling hint will take.
const HBH_HINT: [Ipv6OptionRepr<'static>; 1] = [Ipv6OptionRepr::Tlv {
    option_type: Ipv6OptionType(0x1e),
    data: b"INTLNODE",
}];

const DST_OPT: [Ipv6OptionRepr<'static>; 1] = [Ipv6OptionRepr::Tlv {
    option_type: Ipv6OptionType(0x3e),
    data: &[0xaa, 0xbb],
}];

struct Cases {
    list: Vec<EdgeCase>,
}

impl Cases {
    fn add(&mut self, name: &'static str, expect: Expect, data: Vec<u8>) {
        let ts = EPOCH_NS + self.list.len() as u64 * 1_000;
        self.list.push(EdgeCase {
            name,
            expect,
            packet: Packet::new(ts, data),
        });
    }
}

/// The whole conformance set, in a fixed order.
pub fn edge_cases() -> Result<Vec<EdgeCase>, BuildError> {
    let mut c = Cases { list: Vec::new() };
    valid(&mut c)?;
    bad_checksums(&mut c)?;
    rejected(&mut c)?;
    Ok(c.list)
}

fn valid(c: &mut Cases) -> Result<(), BuildError> {
    use Expect::Valid;
    let tag = |tpid, vid, pcp| Tag { tpid, pcp, vid };

    c.add(
        "vlan-8021q-ipv4-udp",
        Valid,
        frame(
            &[tag(EtherType::VLAN, 100, 3)],
            L3Spec::Ipv4 {
                header: v4h(),
                l4: udp(b"tagged once"),
            },
        )?,
    );
    let mut syn_opts = [0u8; 8];
    let n = TcpOptionRepr::emit_all(
        &[TcpOptionRepr::Mss(1460), TcpOptionRepr::SackPermitted],
        &mut syn_opts,
    )
    .map_err(BuildError::Tcp)?;
    c.add(
        "qinq-8021ad-ipv4-tcp-syn",
        Valid,
        frame(
            &[tag(EtherType::QINQ, 200, 5), tag(EtherType::VLAN, 10, 0)],
            L3Spec::Ipv4 {
                header: v4h(),
                l4: L4Spec::Tcp {
                    header: tcp_header(TcpFlags::SYN, &syn_opts[..n]),
                    payload: &[],
                },
            },
        )?,
    );
    c.add(
        "double-8100-ipv6-udp",
        Valid,
        frame(
            &[tag(EtherType::VLAN, 300, 0), tag(EtherType::VLAN, 30, 0)],
            L3Spec::Ipv6 {
                header: v6h(),
                ext: &[],
                l4: udp(b"two customer tags"),
            },
        )?,
    );

    let ra = ipv4_options(&[Ipv4OptionRepr::Tlv {
        kind: Ipv4OptionType::ROUTER_ALERT,
        data: &[0, 0],
    }])?;
    c.add(
        "ipv4-options-router-alert-udp",
        Valid,
        frame(
            &[],
            L3Spec::Ipv4 {
                header: Ipv4Header {
                    options: &ra,
                    ..v4h()
                },
                l4: udp(b"router alert"),
            },
        )?,
    );
    // NOP + Timestamp with two recorded stamps (pointer 13 = full) + EOL pad.
    let ts_data = [13, 0, 0, 0x36, 0xee, 0x80, 0, 0x36, 0xee, 0x81];
    let ts = ipv4_options(&[
        Ipv4OptionRepr::Nop,
        Ipv4OptionRepr::Tlv {
            kind: Ipv4OptionType::TIMESTAMP,
            data: &ts_data,
        },
        Ipv4OptionRepr::End,
    ])?;
    c.add(
        "ipv4-options-nop-timestamp-tcp",
        Valid,
        frame(
            &[],
            L3Spec::Ipv4 {
                header: Ipv4Header {
                    options: &ts,
                    ..v4h()
                },
                l4: L4Spec::Tcp {
                    header: tcp_header(TcpFlags::ACK | TcpFlags::PSH, &[]),
                    payload: b"GET / HTTP/1.1\r\n\r\n",
                },
            },
        )?,
    );
    // Record Route with nine slots: 39 bytes + EOL = the 40-byte maximum (IHL 15).
    let mut rr = vec![4u8];
    rr.extend_from_slice(&[0u8; 36]);
    let rr = ipv4_options(&[
        Ipv4OptionRepr::Tlv {
            kind: Ipv4OptionType::RECORD_ROUTE,
            data: &rr,
        },
        Ipv4OptionRepr::End,
    ])?;
    c.add(
        "ipv4-options-40-byte-record-route-udp",
        Valid,
        frame(
            &[],
            L3Spec::Ipv4 {
                header: Ipv4Header {
                    options: &rr,
                    ..v4h()
                },
                l4: udp(b"ihl 15"),
            },
        )?,
    );

    c.add(
        "ipv6-hbh-rh-frag-dst-chain-udp",
        Valid,
        v6(
            &[
                ExtSpec::HopByHop(&HBH_HINT),
                ExtSpec::Routing {
                    routing_type: 253,
                    segments_left: 0,
                    data: &[0; 4],
                },
                // An atomic fragment: offset 0, M clear, a whole datagram.
                ExtSpec::Fragment {
                    offset: 0,
                    more: false,
                    ident: 0x0e0e_0e0e,
                },
                ExtSpec::DestOpts(&DST_OPT),
            ],
            udp(b"through the whole chain"),
        )?,
    );
    c.add(
        "ipv6-hbh-experimental-option-tcp",
        Valid,
        v6(
            &[ExtSpec::HopByHop(&HBH_HINT)],
            L4Spec::Tcp {
                header: tcp_header(TcpFlags::ACK | TcpFlags::PSH, &[]),
                payload: b"POST /v1/chat/completions HTTP/1.1\r\n",
            },
        )?,
    );
    c.add(
        "ipv6-ah-udp",
        Valid,
        v6(&[ExtSpec::Ah { spi: 0x100, seq: 7 }], udp(b"authenticated"))?,
    );
    c.add(
        "ipv6-no-next-header",
        Valid,
        v6(
            &[ExtSpec::DestOpts(&[])],
            L4Spec::Raw {
                protocol: IpProtocol::IPV6_NO_NEXT_HEADER,
                bytes: &[],
            },
        )?,
    );

    // One 1400-byte UDP datagram, fragmented at 1000 bytes, over both IPs.
    let payload: Vec<u8> = (0..1400u32).map(|i| (i % 251) as u8).collect();
    let dgram4 = build_l4(&udp(&payload), &PseudoHeader::V4 { src: A4, dst: B4 })?;
    let dgram6 = build_l4(&udp(&payload), &PseudoHeader::V6 { src: A6, dst: B6 })?;
    let (first4, rest4) = dgram4.split_at(1000);
    let (first6, rest6) = dgram6.split_at(1000);
    let raw = |bytes| L4Spec::Raw {
        protocol: IpProtocol::UDP,
        bytes,
    };
    c.add(
        "ipv4-first-fragment-udp",
        Valid,
        frame(
            &[],
            L3Spec::Ipv4 {
                header: Ipv4Header {
                    dont_frag: false,
                    more_frags: true,
                    ..v4h()
                },
                l4: raw(first4),
            },
        )?,
    );
    c.add(
        "ipv4-non-first-fragment",
        Valid,
        frame(
            &[],
            L3Spec::Ipv4 {
                header: Ipv4Header {
                    dont_frag: false,
                    frag_offset: 125,
                    ..v4h()
                },
                l4: raw(rest4),
            },
        )?,
    );
    let frag = |offset, more| {
        [ExtSpec::Fragment {
            offset,
            more,
            ident: 0xfeed_0001,
        }]
    };
    c.add(
        "ipv6-first-fragment-udp",
        Valid,
        v6(&frag(0, true), raw(first6))?,
    );
    c.add(
        "ipv6-non-first-fragment",
        Valid,
        v6(&frag(125, false), raw(rest6))?,
    );

    let arp = |operation, target_mac| ArpRepr {
        operation,
        sender_mac: mac_for(A4),
        sender_ip: A4,
        target_mac,
        target_ip: B4,
    };
    c.add(
        "arp-request-broadcast",
        Valid,
        build(&FrameSpec {
            src_mac: mac_for(A4),
            dst_mac: MacAddr::BROADCAST,
            vlans: &[],
            l3: L3Spec::Arp(arp(ArpOperation::REQUEST, MacAddr::ZERO)),
        })?,
    );
    let mut reply = frame(&[], L3Spec::Arp(arp(ArpOperation::REPLY, mac_for(B4))))?;
    reply.resize(60, 0);
    c.add("arp-reply-padded-to-60", Valid, reply);

    let data: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 256) as u8).collect();
    c.add(
        "roce-v4-rc-write-first",
        Valid,
        v4(roce(BthOpcode::RC_WRITE_FIRST, Some(RETH), &data))?,
    );
    c.add(
        "roce-v4-rc-read-request",
        Valid,
        v4(roce(BthOpcode::RC_READ_REQUEST, Some(RETH), &[]))?,
    );
    c.add(
        "roce-v4-rc-ack",
        Valid,
        v4(L4Spec::Roce {
            src_port: 0xc0df,
            bth: bth(BthOpcode::RC_ACK, 0x00_0b22, 0x10_0003),
            reth: None,
            aeth: Some(classifier::aeth::AethRepr {
                syndrome: 0x1f,
                msn: 4,
            }),
            data: &[],
        })?,
    );
    c.add(
        "roce-v4-cnp",
        Valid,
        v4(L4Spec::Roce {
            src_port: 0,
            bth: BthRepr {
                becn: true,
                ..bth(BthOpcode::CNP, 0x00_0a11, 0)
            },
            reth: None,
            aeth: None,
            data: &[0; 16],
        })?,
    );
    c.add(
        "roce-v6-rc-send-only-padded",
        Valid,
        v6(
            &[],
            roce(
                BthOpcode::RC_SEND_ONLY,
                None,
                b"37 bytes need three bytes of pad....",
            ),
        )?,
    );
    c.add(
        "roce-v6-rc-write-first",
        Valid,
        v6(&[], roce(BthOpcode::RC_WRITE_FIRST, Some(RETH), &data))?,
    );

    let mut tiny = v4(udp(b"x"))?;
    tiny.resize(60, 0);
    c.add("ipv4-udp-1-byte-padded-to-60", Valid, tiny);
    c.add("ipv4-udp-empty-payload", Valid, v4(udp(&[]))?);
    let mut ack = v4(L4Spec::Tcp {
        header: tcp_header(TcpFlags::ACK, &[]),
        payload: &[],
    })?;
    ack.resize(60, 0);
    c.add("ipv4-tcp-pure-ack-padded-to-60", Valid, ack);

    // An 802.3 frame: a spanning-tree configuration BPDU (LLC 42 42 03).
    let mut bpdu = vec![0x42, 0x42, 0x03, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00];
    bpdu.extend_from_slice(&mac_for(A4).0);
    bpdu.resize(38, 0);
    c.add(
        "ieee8023-llc-stp-bpdu",
        Valid,
        build(&FrameSpec {
            src_mac: mac_for(A4),
            dst_mac: MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]),
            vlans: &[],
            l3: L3Spec::Raw {
                ethertype: EtherType(38),
                bytes: &bpdu,
            },
        })?,
    );
    c.add(
        "garbage-ethertype-0xdead",
        Valid,
        frame(
            &[],
            L3Spec::Raw {
                ethertype: EtherType(0xdead),
                bytes: &[
                    0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0xff, 0xfe, 0xfd, 0xfc, 0x55,
                    0xaa, 0x55, 0xaa,
                ],
            },
        )?,
    );
    Ok(())
}

/// A different, nonzero checksum: over IPv4 a zero UDP checksum would mean
/// "not computed" and pass verification.
fn corrupt(cs: u16) -> u16 {
    match cs ^ 0x8000 {
        0 => cs ^ 0x4000,
        c => c,
    }
}

fn bad_checksums(c: &mut Cases) -> Result<(), BuildError> {
    let mut f = v4(udp(b"flipped checksum"))?;
    let cs = corrupt(get16(&f, L4_V4 + 6));
    set16(&mut f, L4_V4 + 6, cs);
    c.add("ipv4-udp-bad-checksum", Expect::BadChecksum(Check::Udp), f);

    let mut f = v4(L4Spec::Tcp {
        header: tcp_header(TcpFlags::ACK | TcpFlags::PSH, &[]),
        payload: b"flipped checksum",
    })?;
    let cs = corrupt(get16(&f, L4_V4 + 16));
    set16(&mut f, L4_V4 + 16, cs);
    c.add("ipv4-tcp-bad-checksum", Expect::BadChecksum(Check::Tcp), f);

    // Zero means "no checksum" over IPv4 but is forbidden over IPv6.
    let mut f = v6(&[], udp(b"zero checksum"))?;
    set16(&mut f, L4_V6 + 6, 0);
    c.add("ipv6-udp-zero-checksum", Expect::BadChecksum(Check::Udp), f);

    let mut f = v4(roce(BthOpcode::RC_SEND_ONLY, None, b"corrupted in flight"))?;
    if let Some(last) = f.last_mut() {
        *last ^= 0xff;
    }
    c.add("roce-v4-bad-icrc", Expect::BadChecksum(Check::Icrc), f);
    Ok(())
}

fn rejected(c: &mut Cases) -> Result<(), BuildError> {
    use Expect::Reject;
    let base_udp = v4(udp(b"valid to begin with"))?;
    let base_tcp = v4(L4Spec::Tcp {
        header: tcp_header(TcpFlags::SYN, &[]),
        payload: &[],
    })?;
    let base_v6 = v6(&[], udp(b"valid to begin with"))?;

    c.add("runt-1-byte", Reject("ethernet.truncated"), vec![0xff]);
    c.add(
        "runt-13-bytes",
        Reject("ethernet.truncated"),
        base_udp[..13].to_vec(),
    );
    c.add(
        "vlan-tag-truncated",
        Reject("vlan.truncated"),
        frame(
            &[],
            L3Spec::Raw {
                ethertype: EtherType::VLAN,
                bytes: &[0x00, 0x64],
            },
        )?,
    );
    let three = [
        Tag {
            tpid: EtherType::QINQ,
            pcp: 0,
            vid: 1,
        },
        Tag {
            tpid: EtherType::VLAN,
            pcp: 0,
            vid: 2,
        },
        Tag {
            tpid: EtherType::VLAN,
            pcp: 0,
            vid: 3,
        },
    ];
    c.add(
        "vlan-three-tags",
        Reject("vlan.too_many_tags"),
        frame(
            &three,
            L3Spec::Ipv4 {
                header: v4h(),
                l4: udp(b"too deep"),
            },
        )?,
    );

    c.add(
        "ipv4-header-truncated",
        Reject("ipv4.truncated"),
        frame(
            &[],
            L3Spec::Raw {
                ethertype: EtherType::IPV4,
                bytes: &base_udp[L3..L3 + 12],
            },
        )?,
    );
    let mut f = base_udp.clone();
    f[L3] = 0x44;
    fix_ipv4_checksum(&mut f);
    c.add("ipv4-ihl-below-5", Reject("ipv4.ihl_too_small"), f);
    let mut f = v4(udp(&[]))?;
    f[L3] = 0x4f;
    c.add("ipv4-ihl-beyond-frame", Reject("ipv4.header_truncated"), f);
    let mut f = base_udp.clone();
    f[L3] = 0x65;
    fix_ipv4_checksum(&mut f);
    c.add("ipv4-bad-version-6", Reject("ipv4.bad_version"), f);
    let mut f = base_udp.clone();
    let v = get16(&f, L3 + 2) + 200;
    set16(&mut f, L3 + 2, v);
    fix_ipv4_checksum(&mut f);
    c.add(
        "ipv4-total-length-beyond-frame",
        Reject("ipv4.total_length_beyond_frame"),
        f,
    );
    let mut f = base_udp.clone();
    set16(&mut f, L3 + 2, 16);
    fix_ipv4_checksum(&mut f);
    c.add(
        "ipv4-total-length-below-header",
        Reject("ipv4.total_length_below_header"),
        f,
    );
    let mut f = base_udp.clone();
    f[L3 + 10] ^= 0x5a;
    c.add("ipv4-bad-header-checksum", Reject("ipv4.bad_checksum"), f);

    c.add(
        "ipv6-header-truncated",
        Reject("ipv6.truncated"),
        frame(
            &[],
            L3Spec::Raw {
                ethertype: EtherType::IPV6,
                bytes: &base_v6[L3..L3 + 30],
            },
        )?,
    );
    c.add(
        "ipv6-bad-version-4",
        Reject("ipv6.bad_version"),
        frame(
            &[],
            L3Spec::Raw {
                ethertype: EtherType::IPV6,
                bytes: &base_udp[L3..],
            },
        )?,
    );
    let mut f = base_v6.clone();
    let v = get16(&f, L3 + 4) + 64;
    set16(&mut f, L3 + 4, v);
    c.add(
        "ipv6-payload-length-beyond-frame",
        Reject("ipv6.payload_length_beyond_frame"),
        f,
    );
    let mut f = v6(&[ExtSpec::DestOpts(&[])], udp(&[]))?;
    // Destination Options now claims 32 bytes; only 16 follow the header.
    f[L3 + 40 + 1] = 3;
    c.add("ipv6-ext-header-truncated", Reject("ipv6_ext.truncated"), f);
    c.add(
        "ipv6-hop-by-hop-not-first",
        Reject("ipv6_ext.hop_by_hop_not_first"),
        v6(
            &[ExtSpec::DestOpts(&[]), ExtSpec::HopByHop(&[])],
            udp(b"late hbh"),
        )?,
    );
    let nine = [ExtSpec::DestOpts(&[]); 9];
    c.add(
        "ipv6-ext-chain-too-long",
        Reject("ipv6_ext.too_many_headers"),
        v6(&nine, udp(b"nine headers"))?,
    );

    c.add(
        "udp-header-truncated",
        Reject("udp.truncated"),
        v4(L4Spec::Raw {
            protocol: IpProtocol::UDP,
            bytes: &base_udp[L4_V4..L4_V4 + 5],
        })?,
    );
    let mut f = base_udp.clone();
    set16(&mut f, L4_V4 + 4, 6);
    c.add("udp-length-below-8", Reject("udp.length_too_small"), f);
    let mut f = base_udp.clone();
    let v = get16(&f, L4_V4 + 4) + 40;
    set16(&mut f, L4_V4 + 4, v);
    c.add(
        "udp-length-beyond-ip-payload",
        Reject("udp.length_beyond_packet"),
        f,
    );

    c.add(
        "tcp-header-truncated",
        Reject("tcp.truncated"),
        v4(L4Spec::Raw {
            protocol: IpProtocol::TCP,
            bytes: &base_tcp[L4_V4..L4_V4 + 12],
        })?,
    );
    let mut f = base_tcp.clone();
    f[L4_V4 + 12] = 0x30;
    c.add("tcp-data-offset-below-5", Reject("tcp.bad_data_offset"), f);
    let mut f = base_tcp.clone();
    f[L4_V4 + 12] = 0xf0;
    c.add(
        "tcp-data-offset-beyond-segment",
        Reject("tcp.header_truncated"),
        f,
    );

    c.add(
        "bth-truncated",
        Reject("bth.truncated"),
        v4(L4Spec::Udp {
            src_port: 0xc0de,
            dst_port: classifier::ROCEV2_UDP_PORT,
            payload: &[0x04, 0x40, 0xff, 0xff, 0, 0, 0x0a, 0x11],
            checksum: false,
        })?,
    );
    let mut short = [0u8; 20];
    bth(BthOpcode::RC_WRITE_FIRST, 0x00_0a11, 1)
        .emit(&mut short)
        .map_err(BuildError::Bth)?;
    c.add(
        "roce-write-first-without-reth",
        Reject("bth.too_short_for_opcode"),
        v4(L4Spec::Udp {
            src_port: 0xc0de,
            dst_port: classifier::ROCEV2_UDP_PORT,
            payload: &short,
            checksum: false,
        })?,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_case_meets_its_expectation() {
        let cases = edge_cases().unwrap();
        let failures: Vec<String> = cases.iter().filter_map(|c| c.verify().err()).collect();
        assert!(failures.is_empty(), "{failures:#?}");
        let names: HashSet<_> = cases.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), cases.len(), "names must be unique");
        assert!(cases.iter().all(|c| c.packet.data.len() <= 1522));
    }
}
