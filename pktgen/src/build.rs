//! Assembling whole frames from the classifier's `Repr::emit` APIs.
//!
//! A [`FrameSpec`] describes a frame from the outside in — MACs, VLAN tags,
//! an L3 header, optional IPv6 extension headers, and an L4 payload — and
//! [`build`] lays it out, filling in every derived field: lengths, next-header
//! chains, RoCEv2 pad count, IPv4 header checksum, UDP/TCP checksums and the
//! RoCEv2 ICRC, in the only order that works (headers, then transport
//! checksum over the final payload, then the ICRC over the final headers).
//!
//! There is deliberately no second set of header writers here: every header
//! byte comes from a classifier repr, so the generator and the parser can
//! only disagree if the parser disagrees with its own emitter, which the
//! classifier's round-trip tests rule out.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use classifier::aeth::{AethError, AethRepr};
use classifier::arp::{ArpError, ArpRepr};
use classifier::bth::{BthError, BthRepr, ICRC_LEN};
use classifier::checksum::PseudoHeader;
use classifier::ethernet::{EtherType, EthernetError, EthernetRepr, MacAddr};
use classifier::icrc::{self, IcrcError};
use classifier::ip::IpProtocol;
use classifier::ipv4::{Ipv4Error, Ipv4Repr};
use classifier::ipv4_option::Ipv4OptionEmitError;
use classifier::ipv6::{Ipv6Error, Ipv6Repr};
use classifier::ipv6_ext::{Ipv6ExtError, Ipv6ExtHeaderRepr};
use classifier::ipv6_frag::{Ipv6FragError, Ipv6FragmentRepr};
use classifier::ipv6_option::{Ipv6OptionEmitError, Ipv6OptionRepr};
use classifier::reth::{RethError, RethRepr};
use classifier::tcp::{TcpError, TcpPacket, TcpRepr};
use classifier::token_feature_tlv::{self, TlvError, TokenFeatureTlvRepr, HBH_HEADER_LEN};
use classifier::udp::{UdpError, UdpPacket, UdpRepr};
use classifier::vlan::{VlanError, VlanRepr};
use classifier::ROCEV2_UDP_PORT;

/// One VLAN tag, outermost first in [`FrameSpec::vlans`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// 0x8100 (C-TAG) or 0x88A8 (S-TAG).
    pub tpid: EtherType,
    /// Priority code point.
    pub pcp: u8,
    /// VLAN id.
    pub vid: u16,
}

/// The IPv4 header fields a workload chooses; lengths, protocol and
/// checksum are derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// TOS byte (DSCP << 2 | ECN).
    pub tos: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in 8-octet units.
    pub frag_offset: u16,
    /// Option bytes (multiple of 4).
    pub options: &'a [u8],
}

impl<'a> Ipv4Header<'a> {
    /// A plain header: DF set, TTL 64, no options.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Ipv4Header {
            src,
            dst,
            tos: 0,
            ttl: 64,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            options: &[],
        }
    }
}

/// The IPv6 header fields a workload chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Hop limit.
    pub hop_limit: u8,
}

/// An IPv6 extension header; Next Header and lengths are derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtSpec<'a> {
    /// Hop-by-Hop options (padded automatically).
    HopByHop(&'a [Ipv6OptionRepr<'a>]),
    /// Destination options (padded automatically).
    DestOpts(&'a [Ipv6OptionRepr<'a>]),
    /// Routing header; `data` follows routing type and segments left and
    /// must be 4 bytes short of a multiple of 8.
    Routing {
        /// Routing type (e.g. 4 = segment routing).
        routing_type: u8,
        /// Segments left.
        segments_left: u8,
        /// Type-specific data.
        data: &'a [u8],
    },
    /// Fragment header.
    Fragment {
        /// Offset in 8-octet units.
        offset: u16,
        /// More Fragments.
        more: bool,
        /// Identification.
        ident: u32,
    },
    /// A 16-byte Hop-by-Hop header carrying only the token feature option
    /// (0x1E), laid out by [`token_feature_tlv::emit_hbh_header`].
    TokenFeatureHbh(TokenFeatureTlvRepr),
    /// Authentication Header with a 12-byte ICV (HMAC-SHA1-96 sized).
    Ah {
        /// Security parameters index.
        spi: u32,
        /// Sequence number.
        seq: u32,
    },
}

impl ExtSpec<'_> {
    fn header_type(&self) -> IpProtocol {
        match self {
            ExtSpec::HopByHop(_) | ExtSpec::TokenFeatureHbh(_) => IpProtocol::HOP_BY_HOP,
            ExtSpec::DestOpts(_) => IpProtocol::IPV6_DEST_OPTS,
            ExtSpec::Routing { .. } => IpProtocol::IPV6_ROUTING,
            ExtSpec::Fragment { .. } => IpProtocol::IPV6_FRAGMENT,
            ExtSpec::Ah { .. } => IpProtocol::AH,
        }
    }
}

/// The transport layer and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Spec<'a> {
    /// UDP with `payload`; `checksum` false leaves the field 0 (IPv4 only).
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload bytes.
        payload: &'a [u8],
        /// Whether to compute the checksum.
        checksum: bool,
    },
    /// TCP with `payload`; the checksum is always computed.
    Tcp {
        /// Header fields (options included).
        header: TcpRepr<'a>,
        /// Payload bytes.
        payload: &'a [u8],
    },
    /// RoCEv2: UDP to port 4791 carrying BTH, optional RETH/AETH, `data`,
    /// pad to 4 bytes and a correct ICRC. The UDP checksum is 0 over IPv4
    /// (as NICs send it) and computed over IPv6 (where 0 is illegal). The
    /// BTH pad count is derived from `data`.
    Roce {
        /// UDP source port (flow entropy).
        src_port: u16,
        /// Base transport header.
        bth: BthRepr,
        /// RETH, for WRITE First/Only and READ Request.
        reth: Option<RethRepr>,
        /// AETH, for ACK and READ responses.
        aeth: Option<AethRepr>,
        /// RDMA payload.
        data: &'a [u8],
    },
    /// Arbitrary bytes announced as `protocol` (ICMP, truncated headers …).
    Raw {
        /// The protocol number to put in the IP header.
        protocol: IpProtocol,
        /// The bytes.
        bytes: &'a [u8],
    },
}

/// What follows the Ethernet header and VLAN tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3Spec<'a> {
    /// IPv4 and its transport.
    Ipv4 {
        /// Header fields.
        header: Ipv4Header<'a>,
        /// Transport.
        l4: L4Spec<'a>,
    },
    /// IPv6, extension headers, and the transport.
    Ipv6 {
        /// Header fields.
        header: Ipv6Header,
        /// Extension headers in wire order.
        ext: &'a [ExtSpec<'a>],
        /// Transport.
        l4: L4Spec<'a>,
    },
    /// An Ethernet/IPv4 ARP message.
    Arp(ArpRepr),
    /// Arbitrary bytes under `ethertype`.
    Raw {
        /// EtherType (or 802.3 length).
        ethertype: EtherType,
        /// The bytes.
        bytes: &'a [u8],
    },
}

/// A whole frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec<'a> {
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// VLAN tags, outermost first (any number, so that malformed stacks can
    /// be generated too).
    pub vlans: &'a [Tag],
    /// Network layer.
    pub l3: L3Spec<'a>,
}

/// An emitter refused a field while building a frame. This means a workload
/// asked for something unrepresentable (a 25-bit QP number, unaligned
/// options …) — a bug in the workload, reported instead of panicking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Ethernet header.
    Ethernet(EthernetError),
    /// VLAN tag.
    Vlan(VlanError),
    /// IPv4 header.
    Ipv4(Ipv4Error),
    /// IPv6 header.
    Ipv6(Ipv6Error),
    /// IPv4 option.
    Ipv4Option(Ipv4OptionEmitError),
    /// IPv6 extension header.
    Ipv6Ext(Ipv6ExtError),
    /// IPv6 option.
    Ipv6Option(Ipv6OptionEmitError),
    /// IPv6 fragment header.
    Ipv6Frag(Ipv6FragError),
    /// UDP header.
    Udp(UdpError),
    /// TCP header.
    Tcp(TcpError),
    /// BTH.
    Bth(BthError),
    /// RETH.
    Reth(RethError),
    /// AETH.
    Aeth(AethError),
    /// ARP.
    Arp(ArpError),
    /// ICRC computation.
    Icrc(IcrcError),
    /// Token feature TLV.
    TokenTlv(TlvError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Ethernet(e) => write!(f, "building ethernet header: {e}"),
            BuildError::Vlan(e) => write!(f, "building VLAN tag: {e}"),
            BuildError::Ipv4(e) => write!(f, "building IPv4 header: {e}"),
            BuildError::Ipv6(e) => write!(f, "building IPv6 header: {e}"),
            BuildError::Ipv4Option(e) => write!(f, "building IPv4 option: {e}"),
            BuildError::Ipv6Ext(e) => write!(f, "building IPv6 extension header: {e}"),
            BuildError::Ipv6Option(e) => write!(f, "building IPv6 option: {e}"),
            BuildError::Ipv6Frag(e) => write!(f, "building IPv6 fragment header: {e}"),
            BuildError::Udp(e) => write!(f, "building UDP header: {e}"),
            BuildError::Tcp(e) => write!(f, "building TCP header: {e}"),
            BuildError::Bth(e) => write!(f, "building BTH: {e}"),
            BuildError::Reth(e) => write!(f, "building RETH: {e}"),
            BuildError::Aeth(e) => write!(f, "building AETH: {e}"),
            BuildError::Arp(e) => write!(f, "building ARP: {e}"),
            BuildError::Icrc(e) => write!(f, "computing ICRC: {e}"),
            BuildError::TokenTlv(e) => write!(f, "building token feature TLV: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

macro_rules! from_err {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<$t> for BuildError {
            fn from(e: $t) -> Self {
                BuildError::$v(e)
            }
        })*
    };
}

from_err!(
    EthernetError => Ethernet,
    VlanError => Vlan,
    Ipv4Error => Ipv4,
    Ipv6Error => Ipv6,
    Ipv4OptionEmitError => Ipv4Option,
    Ipv6ExtError => Ipv6Ext,
    Ipv6OptionEmitError => Ipv6Option,
    Ipv6FragError => Ipv6Frag,
    UdpError => Udp,
    TcpError => Tcp,
    BthError => Bth,
    RethError => Reth,
    AethError => Aeth,
    ArpError => Arp,
    IcrcError => Icrc,
    TlvError => TokenTlv,
);

/// Appends `n` zero bytes to `buf` and returns the new tail to emit into.
fn grow(buf: &mut Vec<u8>, n: usize) -> &mut [u8] {
    let at = buf.len();
    buf.resize(at + n, 0);
    &mut buf[at..]
}

impl L4Spec<'_> {
    fn protocol(&self) -> IpProtocol {
        match self {
            L4Spec::Udp { .. } | L4Spec::Roce { .. } => IpProtocol::UDP,
            L4Spec::Tcp { .. } => IpProtocol::TCP,
            L4Spec::Raw { protocol, .. } => *protocol,
        }
    }

    /// Emits the segment with its checksum field zeroed.
    fn emit(&self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        match *self {
            L4Spec::Udp {
                src_port,
                dst_port,
                payload,
                ..
            } => {
                let r = UdpRepr {
                    src_port,
                    dst_port,
                    payload_len: payload.len(),
                };
                r.emit(grow(out, r.buffer_len()))?;
                out.extend_from_slice(payload);
            }
            L4Spec::Tcp { header, payload } => {
                header.emit(grow(out, header.buffer_len()))?;
                out.extend_from_slice(payload);
            }
            L4Spec::Roce {
                src_port,
                bth,
                reth,
                aeth,
                data,
            } => {
                let pad = (4 - data.len() % 4) % 4;
                let ext = reth.map_or(0, |r| r.buffer_len()) + aeth.map_or(0, |a| a.buffer_len());
                let udp_payload = bth.buffer_len() + ext + data.len() + pad + ICRC_LEN;
                let u = UdpRepr {
                    src_port,
                    dst_port: ROCEV2_UDP_PORT,
                    payload_len: udp_payload,
                };
                u.emit(grow(out, u.buffer_len()))?;
                let bth = BthRepr {
                    pad_count: pad as u8,
                    ..bth
                };
                bth.emit(grow(out, bth.buffer_len()))?;
                if let Some(r) = reth {
                    r.emit(grow(out, r.buffer_len()))?;
                }
                if let Some(a) = aeth {
                    a.emit(grow(out, a.buffer_len()))?;
                }
                out.extend_from_slice(data);
                // Pad and ICRC placeholder; the ICRC is written last.
                grow(out, pad + ICRC_LEN);
            }
            L4Spec::Raw { bytes, .. } => out.extend_from_slice(bytes),
        }
        Ok(())
    }

    /// Fills the transport checksum over the final segment `seg`.
    fn finish(&self, seg: &mut [u8], pseudo: &PseudoHeader) {
        let want_udp = match self {
            L4Spec::Udp { checksum, .. } => *checksum,
            // IPv6 forbids a zero UDP checksum; IPv4 RoCE sends 0.
            L4Spec::Roce { .. } => matches!(pseudo, PseudoHeader::V6 { .. }),
            _ => false,
        };
        if want_udp {
            if let Ok(mut u) = UdpPacket::new_checked(&mut seg[..]) {
                u.fill_checksum(pseudo);
            }
        }
        if matches!(self, L4Spec::Tcp { .. }) {
            if let Ok(mut t) = TcpPacket::new_checked(&mut seg[..]) {
                t.fill_checksum(pseudo);
            }
        }
    }
}

fn emit_ext(e: &ExtSpec<'_>, next: IpProtocol, out: &mut Vec<u8>) -> Result<(), BuildError> {
    let generic = |body: &[u8], out: &mut Vec<u8>| -> Result<(), BuildError> {
        let r = Ipv6ExtHeaderRepr {
            header_type: e.header_type(),
            next_header: next,
            body,
        };
        r.emit(grow(out, r.buffer_len()))?;
        Ok(())
    };
    match *e {
        ExtSpec::HopByHop(opts) | ExtSpec::DestOpts(opts) => {
            let mut area = vec![0u8; Ipv6OptionRepr::padded_area_len(opts)];
            Ipv6OptionRepr::emit_padded_area(opts, &mut area)?;
            generic(&area, out)
        }
        ExtSpec::TokenFeatureHbh(repr) => {
            token_feature_tlv::emit_hbh_header(&repr, next.0, grow(out, HBH_HEADER_LEN))?;
            Ok(())
        }
        ExtSpec::Routing {
            routing_type,
            segments_left,
            data,
        } => {
            let mut body = vec![routing_type, segments_left];
            body.extend_from_slice(data);
            generic(&body, out)
        }
        ExtSpec::Fragment {
            offset,
            more,
            ident,
        } => {
            let r = Ipv6FragmentRepr {
                next_header: next,
                frag_offset: offset,
                more_frags: more,
                ident,
            };
            r.emit(grow(out, r.buffer_len()))?;
            Ok(())
        }
        ExtSpec::Ah { spi, seq } => {
            let mut body = vec![0u8; 2];
            body.extend_from_slice(&spi.to_be_bytes());
            body.extend_from_slice(&seq.to_be_bytes());
            body.extend_from_slice(&[0xa5; 12]);
            generic(&body, out)
        }
    }
}

/// The transport segment of `l4` alone, with its checksum computed for
/// `pseudo` — for callers that slice a datagram into IP fragments
/// themselves. A RoCE segment's ICRC is left zero: it covers the IP header,
/// which does not exist yet.
pub fn build_l4(l4: &L4Spec<'_>, pseudo: &PseudoHeader) -> Result<Vec<u8>, BuildError> {
    let mut seg = Vec::with_capacity(1500);
    l4.emit(&mut seg)?;
    l4.finish(&mut seg, pseudo);
    Ok(seg)
}

/// Fills the integrity fields of the segment at the end of `pkt`, in the
/// one order that works: the ICRC first (it masks the UDP checksum, so it
/// does not depend on it), then the UDP/TCP checksum (which covers the ICRC).
fn finish_segment(
    l4: &L4Spec<'_>,
    pkt: &mut [u8],
    seg_len: usize,
    pseudo: &PseudoHeader,
) -> Result<(), BuildError> {
    if matches!(l4, L4Spec::Roce { .. }) {
        icrc::write_icrc(pkt)?;
    }
    let at = pkt.len() - seg_len;
    l4.finish(&mut pkt[at..], pseudo);
    Ok(())
}

/// The network-layer bytes of `l3` (everything after the VLAN tags).
fn build_l3(l3: &L3Spec<'_>) -> Result<(EtherType, Vec<u8>), BuildError> {
    match *l3 {
        L3Spec::Ipv4 { header, l4 } => {
            let pseudo = PseudoHeader::V4 {
                src: header.src,
                dst: header.dst,
            };
            let mut seg = Vec::with_capacity(1500);
            l4.emit(&mut seg)?;
            let repr = Ipv4Repr {
                src_addr: header.src,
                dst_addr: header.dst,
                protocol: l4.protocol(),
                dscp_ecn: header.tos,
                ident: header.ident,
                dont_frag: header.dont_frag,
                more_frags: header.more_frags,
                frag_offset: header.frag_offset,
                ttl: header.ttl,
                options: header.options,
                payload_len: seg.len(),
            };
            let mut pkt = Vec::with_capacity(repr.buffer_len() + seg.len());
            repr.emit(grow(&mut pkt, repr.buffer_len()))?;
            pkt.extend_from_slice(&seg);
            finish_segment(&l4, &mut pkt, seg.len(), &pseudo)?;
            Ok((EtherType::IPV4, pkt))
        }
        L3Spec::Ipv6 { header, ext, l4 } => {
            let mut chain = Vec::new();
            for (i, e) in ext.iter().enumerate() {
                let next = ext.get(i + 1).map_or(l4.protocol(), |n| n.header_type());
                emit_ext(e, next, &mut chain)?;
            }
            let pseudo = PseudoHeader::V6 {
                src: header.src,
                dst: header.dst,
            };
            let mut seg = Vec::with_capacity(1500);
            l4.emit(&mut seg)?;
            let repr = Ipv6Repr {
                src_addr: header.src,
                dst_addr: header.dst,
                next_header: ext.first().map_or(l4.protocol(), |e| e.header_type()),
                hop_limit: header.hop_limit,
                traffic_class: header.traffic_class,
                flow_label: header.flow_label,
                payload_len: chain.len() + seg.len(),
            };
            let mut pkt = Vec::with_capacity(repr.buffer_len() + chain.len() + seg.len());
            repr.emit(grow(&mut pkt, repr.buffer_len()))?;
            pkt.extend_from_slice(&chain);
            pkt.extend_from_slice(&seg);
            finish_segment(&l4, &mut pkt, seg.len(), &pseudo)?;
            Ok((EtherType::IPV6, pkt))
        }
        L3Spec::Arp(arp) => {
            let mut pkt = Vec::new();
            arp.emit(grow(&mut pkt, arp.buffer_len()))?;
            Ok((EtherType::ARP, pkt))
        }
        L3Spec::Raw { ethertype, bytes } => Ok((ethertype, bytes.to_vec())),
    }
}

/// Builds the frame described by `spec`.
pub fn build(spec: &FrameSpec<'_>) -> Result<Vec<u8>, BuildError> {
    let (l3_type, l3) = build_l3(&spec.l3)?;
    let eth = EthernetRepr {
        src_addr: spec.src_mac,
        dst_addr: spec.dst_mac,
        ethertype: spec.vlans.first().map_or(l3_type, |t| t.tpid),
    };
    let mut frame = Vec::with_capacity(eth.buffer_len() + 4 * spec.vlans.len() + l3.len());
    eth.emit(grow(&mut frame, eth.buffer_len()))?;
    for (i, t) in spec.vlans.iter().enumerate() {
        let v = VlanRepr {
            pcp: t.pcp,
            dei: false,
            vid: t.vid,
            ethertype: spec.vlans.get(i + 1).map_or(l3_type, |n| n.tpid),
        };
        v.emit(grow(&mut frame, v.buffer_len()))?;
    }
    frame.extend_from_slice(&l3);
    Ok(frame)
}

/// A locally administered MAC that embeds an IPv4 address
/// (`02:00:a:b:c:d`), so captures are easy to read.
pub fn mac_for(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use classifier::bth::Bth;
    use classifier::tcp::TcpFlags;
    use classifier::{parse, BthOpcode, L3Kind};

    fn v4() -> Ipv4Header<'static> {
        Ipv4Header::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2))
    }

    fn frame(l3: L3Spec<'_>, vlans: &[Tag]) -> Vec<u8> {
        build(&FrameSpec {
            src_mac: mac_for(Ipv4Addr::new(10, 0, 0, 1)),
            dst_mac: mac_for(Ipv4Addr::new(10, 0, 0, 2)),
            vlans,
            l3,
        })
        .unwrap()
    }

    #[test]
    fn udp_over_vlan_has_valid_checksums() {
        let tags = [Tag {
            tpid: EtherType::VLAN,
            pcp: 3,
            vid: 42,
        }];
        let f = frame(
            L3Spec::Ipv4 {
                header: v4(),
                l4: L4Spec::Udp {
                    src_port: 1000,
                    dst_port: 8000,
                    payload: b"hello",
                    checksum: true,
                },
            },
            &tags,
        );
        assert_eq!(f.len(), 14 + 4 + 20 + 8 + 5);
        let p = parse(&f).unwrap();
        assert_eq!(p.vlans.outer_vid(), Some(42));
        assert_eq!(p.payload(&f), b"hello");
        let udp = UdpPacket::new_checked(p.l4(&f)).unwrap();
        assert!(udp.verify_checksum(&PseudoHeader::V4 {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2)
        }));
        assert_ne!(udp.checksum(), 0);
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 0, 0, 1)).to_string(),
            "02:00:0a:00:00:01"
        );
    }

    #[test]
    fn roce_gets_pad_and_icrc() {
        let bth = BthRepr {
            opcode: BthOpcode::RC_SEND_ONLY,
            solicited: false,
            mig_req: true,
            pad_count: 0,
            tver: 0,
            pkey: 0xffff,
            fecn: false,
            becn: false,
            dest_qp: 0x1234,
            ack_req: true,
            psn: 99,
        };
        let f = frame(
            L3Spec::Ipv4 {
                header: v4(),
                l4: L4Spec::Roce {
                    src_port: 0xc000,
                    bth,
                    reth: None,
                    aeth: None,
                    data: &[1, 2, 3, 4, 5],
                },
            },
            &[],
        );
        let p = parse(&f).unwrap();
        let b = p.bth.unwrap();
        assert_eq!(b.pad_count, 3);
        assert_eq!(b.data.len, 5);
        assert!(icrc::verify_icrc(p.l3(&f)).unwrap());
        let bth_view = Bth::new_checked(&f[usize::from(b.bth_offset)..]).unwrap();
        assert_eq!(bth_view.pad_count(), 3);
        // IPv4 RoCE leaves the UDP checksum at 0, like the NICs.
        assert_eq!(&f[40..42], &[0, 0]);
    }

    #[test]
    fn ipv6_chain_and_tcp() {
        let header = Ipv6Header {
            src: "fd00::1".parse().unwrap(),
            dst: "fd00::2".parse().unwrap(),
            traffic_class: 0,
            flow_label: 7,
            hop_limit: 64,
        };
        let tcp = TcpRepr {
            src_port: 40000,
            dst_port: 8000,
            seq: 1,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 64240,
            urgent: 0,
            options: &[],
        };
        let ext = [
            ExtSpec::HopByHop(&[]),
            ExtSpec::Routing {
                routing_type: 4,
                segments_left: 0,
                data: &[0; 4],
            },
            ExtSpec::Ah { spi: 1, seq: 2 },
        ];
        let f = frame(
            L3Spec::Ipv6 {
                header,
                ext: &ext,
                l4: L4Spec::Tcp {
                    header: tcp,
                    payload: &[],
                },
            },
            &[],
        );
        let p = parse(&f).unwrap();
        assert_eq!(p.l3_kind, L3Kind::Ipv6);
        assert_eq!(p.ip_protocol, Some(IpProtocol::TCP));
        assert_eq!(p.l4_offset, Some(14 + 40 + 8 + 8 + 24));
        let t = TcpPacket::new_checked(p.l4(&f)).unwrap();
        assert!(t.verify_checksum(&PseudoHeader::V6 {
            src: header.src,
            dst: header.dst
        }));
    }

    #[test]
    fn emitter_errors_surface_as_build_errors() {
        let mut h = v4();
        h.options = &[1, 1, 1];
        let e = build(&FrameSpec {
            src_mac: MacAddr::ZERO,
            dst_mac: MacAddr::ZERO,
            vlans: &[],
            l3: L3Spec::Ipv4 {
                header: h,
                l4: L4Spec::Raw {
                    protocol: IpProtocol::UDP,
                    bytes: &[],
                },
            },
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "building IPv4 header: 3 bytes of options is not a multiple of 4"
        );
    }
}
