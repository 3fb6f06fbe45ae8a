//! A TCP/UDP-flow-only header walk for the steering pipeline's fast path.
//!
//! [`parse`](crate::parse()) builds the whole [`ParsedPacket`] for every
//! frame. A packet of a flow that steering already decided needs far less:
//! its 5-tuple (to find the flow), where its IP and transport headers sit
//! (for the NAT rewrite), its TCP flags and payload length (for the flow's
//! timing), and where a token-feature TLV could be (the IPv4 options or the
//! IPv6 Hop-by-Hop option area). [`walk`] reads exactly that, smoltcp-style
//! through the same checked views as `parse` ([`EthernetFrame`],
//! [`VlanTag`], [`Ipv4Packet`], [`Ipv6Packet`], [`Ipv6ExtHeader`],
//! [`TcpPacket`], [`UdpPacket`]), so every length is validated once and no
//! accessor can panic:
//!
//! ```text
//! Ethernet ─► ≤ 2 VLAN tags ─► IPv4 (any IHL, checksum, not a fragment)
//!                           └► IPv6 (TCP/UDP next, or one Hop-by-Hop header first)
//!          ─► TCP, or UDP not to port 4791
//! ```
//!
//! Anything else (a fragment, another IPv6 extension header, another
//! protocol, RoCEv2, a frame a check refuses) is `None`, and the caller
//! falls back to the full [`parse`](crate::parse()). The walk only ever
//! answers `Some` for a frame that `parse` accepts as an unfragmented TCP or
//! UDP packet, and then with the same flow key, offsets, payload and option
//! area ([`FlowPacket::agrees_with`]; the tests compare the two on
//! generated, cut and mangled frames).

use crate::bth::ROCEV2_UDP_PORT;
use crate::ethernet::{EtherType, EthernetFrame};
use crate::flow::FlowKey;
use crate::ip::IpProtocol;
use crate::ipv4::Ipv4Packet;
use crate::ipv6::Ipv6Packet;
use crate::ipv6_ext::Ipv6ExtHeader;
use crate::parse::{L3Kind, ParsedPacket, MAX_FRAME_LEN};
use crate::span::Span;
use crate::tcp::{TcpFlags, TcpPacket};
use crate::token_feature_tlv::{scan_ipv4, scan_ipv6, TlvLookup};
use crate::udp::UdpPacket;
use crate::vlan::{VlanTag, MAX_VLAN_TAGS};

/// An unfragmented TCP or UDP packet, located. `Copy`, no borrow (offsets
/// into the frame, like [`ParsedPacket`]), and a third of its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPacket {
    /// The 5-tuple.
    pub key: FlowKey,
    /// [`L3Kind::Ipv4`] or [`L3Kind::Ipv6`].
    pub l3_kind: L3Kind,
    /// Frame offset of the IP header.
    pub l3_offset: u16,
    /// IPv4 Total Length, or 40 + IPv6 Payload Length.
    pub l3_len: u16,
    /// Frame offset of the TCP or UDP header.
    pub l4_offset: u16,
    /// The TCP or UDP payload.
    pub payload: Span,
    /// The TCP flags (none for UDP).
    pub tcp_flags: TcpFlags,
    /// Where a token-feature TLV may sit: the IPv4 option bytes (IHL > 5)
    /// or the IPv6 Hop-by-Hop option area (after its 2-byte prefix), as
    /// [`ParsedPacket::ipv4_options`] / [`ParsedPacket::ipv6_hbh_options`].
    pub options: Option<Span>,
}

impl FlowPacket {
    /// The upper-layer protocol: TCP or UDP.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.key.protocol
    }

    /// The token-feature TLV lookup [`crate::find_token_feature`] gives for
    /// the full parse of `frame`, from the option area the walk located.
    #[inline]
    pub fn token_feature(&self, frame: &[u8]) -> TlvLookup {
        match (self.l3_kind, self.options) {
            (L3Kind::Ipv4, Some(area)) => scan_ipv4(area.slice(frame)),
            (L3Kind::Ipv6, Some(area)) => scan_ipv6(area.slice(frame)),
            _ => TlvLookup::Absent,
        }
    }

    /// Whether `p` (the full parse of the same frame) says the same: the
    /// walk's contract, checked by the tests.
    pub fn agrees_with(&self, p: &ParsedPacket) -> bool {
        let options = match self.l3_kind {
            L3Kind::Ipv4 => p.ipv4_options,
            _ => p.ipv6_hbh_options,
        };
        p.flow == Some(self.key)
            && p.l3_kind == self.l3_kind
            && p.l3_offset == self.l3_offset
            && p.l3_len == self.l3_len
            && p.l4_offset == Some(self.l4_offset)
            && p.ip_protocol == Some(self.key.protocol)
            && p.payload == self.payload
            && options == self.options
            && !p.is_fragment()
            && p.fragment.is_none()
            && p.ipv6_routing.is_none()
            && p.bth.is_none()
    }
}

/// Walks a frame as far as a TCP/UDP flow needs; `None` for anything else
/// (the caller then uses [`crate::parse()`]). Never panics, never allocates.
#[inline]
pub fn walk(frame: &[u8]) -> Option<FlowPacket> {
    let mut out = None;
    walk_into(frame, false, &mut out);
    out
}

/// [`walk`], written into `out`: field by field, where the returned
/// `Option` is assembled on the stack from the walk's branches and then
/// copied, a copy whose loads span the pieces just stored and wait for
/// them (a store-forwarding stall, on every packet of a worker's burst).
/// `nic_verified`: the receiving NIC verified the IPv4 header checksum
/// (DPDK's `RTE_MBUF_F_RX_IP_CKSUM_GOOD`), so the walk does not; otherwise
/// the walk verifies it, as a router relying on no NIC does. With it the
/// caller vouches for the checksum, and the walk agrees with the full
/// parse on every frame whose checksum is right.
#[inline]
pub fn walk_into(frame: &[u8], nic_verified: bool, out: &mut Option<FlowPacket>) {
    if locate(frame, nic_verified, out).is_none() {
        *out = None;
    }
}

#[inline(always)]
fn locate(frame: &[u8], nic_verified: bool, out: &mut Option<FlowPacket>) -> Option<()> {
    if frame.len() > MAX_FRAME_LEN {
        return None;
    }
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let mut ethertype = eth.ethertype();
    let mut l3_offset = EthernetFrame::<&[u8]>::HEADER_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !ethertype.is_vlan_tpid() {
            break;
        }
        let tag = VlanTag::new_checked(frame.get(l3_offset..)?).ok()?;
        ethertype = tag.ethertype();
        l3_offset += VlanTag::<&[u8]>::HEADER_LEN;
    }
    let l3 = frame.get(l3_offset..)?;
    match ethertype {
        EtherType::IPV4 => walk_ipv4(l3, l3_offset, nic_verified, out),
        EtherType::IPV6 => walk_ipv6(l3, l3_offset, out),
        // A third tag, ARP, anything else.
        _ => None,
    }
}

#[inline]
fn walk_ipv4(
    l3: &[u8],
    l3_offset: usize,
    nic_verified: bool,
    out: &mut Option<FlowPacket>,
) -> Option<()> {
    const MIN: usize = Ipv4Packet::<&[u8]>::MIN_HEADER_LEN;
    let ip = Ipv4Packet::new_checked(l3).ok()?;
    if ip.is_fragment() || !(nic_verified || ip.verify_checksum()) {
        return None;
    }
    let header_len = ip.header_len();
    let options = (header_len > MIN).then(|| Span::new(l3_offset + MIN, header_len - MIN));
    let key = FlowKey::v4(ip.src_addr(), ip.dst_addr(), ip.protocol(), 0, 0);
    let ip_layer = IpLayer {
        l3_offset,
        l4_offset: l3_offset + header_len,
        l3_len: ip.total_len(),
        l3_kind: L3Kind::Ipv4,
        options,
    };
    transport(ip.payload(), &ip_layer, key, out)
}

#[inline]
fn walk_ipv6(l3: &[u8], l3_offset: usize, out: &mut Option<FlowPacket>) -> Option<()> {
    const HDR: usize = Ipv6Packet::<&[u8]>::HEADER_LEN;
    let ip = Ipv6Packet::new_checked(l3).ok()?;
    let l3_len = (HDR + usize::from(ip.payload_len())) as u16;
    let payload = ip.payload();
    let (protocol, upper, options) = match ip.next_header() {
        p @ (IpProtocol::TCP | IpProtocol::UDP) => (p, 0, None),
        IpProtocol::HOP_BY_HOP => {
            let hbh = Ipv6ExtHeader::new_checked(payload, IpProtocol::HOP_BY_HOP).ok()?;
            let len = hbh.header_len();
            match hbh.next_header() {
                p @ (IpProtocol::TCP | IpProtocol::UDP) => {
                    (p, len, Some(Span::new(l3_offset + HDR + 2, len - 2)))
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    let key = FlowKey::v6(ip.src_addr(), ip.dst_addr(), protocol, 0, 0);
    let ip_layer = IpLayer {
        l3_offset,
        l4_offset: l3_offset + HDR + upper,
        l3_len,
        l3_kind: L3Kind::Ipv6,
        options,
    };
    transport(payload.get(upper..)?, &ip_layer, key, out)
}

/// What the IP header told [`transport`]: where it and the transport
/// header start, its length, kind and option area.
struct IpLayer {
    l3_offset: usize,
    l4_offset: usize,
    l3_len: u16,
    l3_kind: L3Kind,
    options: Option<Span>,
}

/// The TCP or UDP header, the same over either IP version: `l4` is bounded
/// by the IP length fields and starts at frame offset `ip.l4_offset`;
/// `key` holds the addresses and protocol (ports 0).
#[inline(always)]
fn transport(
    l4: &[u8],
    ip: &IpLayer,
    mut key: FlowKey,
    out: &mut Option<FlowPacket>,
) -> Option<()> {
    let l4_offset = ip.l4_offset;
    let (payload, tcp_flags) = match key.protocol {
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(l4).ok()?;
            key.src_port = tcp.src_port();
            key.dst_port = tcp.dst_port();
            let header_len = tcp.header_len();
            (
                Span::new(l4_offset + header_len, l4.len() - header_len),
                tcp.flags(),
            )
        }
        IpProtocol::UDP => {
            let udp = UdpPacket::new_checked(l4).ok()?;
            // RoCEv2: the full parse also checks the BTH.
            if udp.dst_port() == ROCEV2_UDP_PORT {
                return None;
            }
            key.src_port = udp.src_port();
            key.dst_port = udp.dst_port();
            let hdr = UdpPacket::<&[u8]>::HEADER_LEN;
            (
                Span::new(l4_offset + hdr, udp.payload_len()),
                TcpFlags::default(),
            )
        }
        _ => return None,
    };
    *out = Some(FlowPacket {
        key,
        l3_kind: ip.l3_kind,
        l3_offset: ip.l3_offset as u16,
        l3_len: ip.l3_len,
        l4_offset: l4_offset as u16,
        payload,
        tcp_flags,
        options: ip.options,
    });
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// An IPv4 header with `options` (a multiple of 4 bytes), correct
    /// checksum, for `payload_len` bytes of `proto`.
    fn ipv4(proto: u8, options: &[u8], payload_len: usize, flags_frag: u16) -> Vec<u8> {
        let hl = 20 + options.len();
        let total = (hl + payload_len) as u16;
        let mut h = vec![0x40 | (hl / 4) as u8, 0x02];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0x12, 0x34]);
        h.extend_from_slice(&flags_frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0, 10, 0, 1, 11, 10, 0, 100, 1]);
        h.extend_from_slice(options);
        let c = crate::checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    fn tcp(flags: u8, data: usize) -> Vec<u8> {
        let mut t = vec![0xc3, 0x50, 0x1f, 0x40, 0, 0, 0, 1, 0, 0, 0, 0];
        t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend(std::iter::repeat_n(0x61, data));
        t
    }

    fn udp(dst: u16, data: usize) -> Vec<u8> {
        let mut u = vec![0xc3, 0x51];
        u.extend_from_slice(&dst.to_be_bytes());
        u.extend_from_slice(&((8 + data) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend(std::iter::repeat_n(0x62, data));
        u
    }

    /// The 8-byte IPv4 option 0x9E a token-feature TLV is carried in.
    const TLV_OPTION: [u8; 8] = [0x9e, 8, 1, 2, 3, 4, 5, 6];

    fn v4_frame(vlans: usize, proto: u8, options: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut f = eth(if vlans > 0 { 0x8100 } else { 0x0800 });
        for i in 0..vlans {
            let next: u16 = if i + 1 < vlans { 0x8100 } else { 0x0800 };
            f.extend_from_slice(&[0x00, 0x64]);
            f.extend_from_slice(&next.to_be_bytes());
        }
        f.extend(ipv4(proto, options, l4.len(), 0x4000));
        f.extend_from_slice(l4);
        f
    }

    /// IPv6 with the extension headers `ext` (each given whole, with its
    /// own next-header byte) before `l4`.
    fn v6_frame(first: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut f = eth(0x86dd);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[first, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(ext);
        f.extend_from_slice(l4);
        f
    }

    /// A Hop-by-Hop header carrying option 0x1E (6 bytes), then `next`.
    fn hbh(next: u8) -> Vec<u8> {
        vec![next, 0, 0x1e, 4, 1, 2, 3, 4]
    }

    /// The walk answers only for frames the full parse calls an
    /// unfragmented TCP/UDP packet, and then exactly as it does.
    fn agrees(f: &[u8]) {
        if let Some(w) = walk(f) {
            let p = parse(f).unwrap_or_else(|e| panic!("walked, parse refused ({e}): {f:02x?}"));
            assert!(w.agrees_with(&p), "walk {w:?}\nparse {p:?}\nframe {f:02x?}");
            // What a reader of the full parse takes for the flags: the TCP
            // header's, for TCP only.
            let flags = match p.ip_protocol {
                Some(IpProtocol::TCP) => {
                    TcpPacket::new_checked(p.l4(f)).map_or(TcpFlags::default(), |t| t.flags())
                }
                _ => TcpFlags::default(),
            };
            assert_eq!(flags, w.tcp_flags);
            assert_eq!(w.token_feature(f), crate::find_token_feature(f, &p));
        }
    }

    #[test]
    fn common_shapes_are_walked_like_parse() {
        let frames = [
            v4_frame(0, 6, &[], &tcp(0x18, 100)),
            v4_frame(0, 6, &TLV_OPTION, &tcp(0x02, 0)),
            v4_frame(1, 6, &TLV_OPTION, &tcp(0x11, 0)),
            v4_frame(2, 17, &[], &udp(8000, 40)),
            v4_frame(0, 17, &TLV_OPTION, &udp(8000, 0)),
            v6_frame(6, &[], &tcp(0x10, 10)),
            v6_frame(0, &hbh(6), &tcp(0x02, 0)),
            v6_frame(0, &hbh(17), &udp(53, 12)),
        ];
        for f in &frames {
            let w = walk(f).expect("a TCP/UDP frame walks");
            let p = parse(f).expect("and parses");
            assert!(w.agrees_with(&p), "walk {w:?}\nparse {p:?}");
        }
        let w = walk(&frames[1]).unwrap();
        assert_eq!(w.options, Some(Span::new(34, 8)));
        assert!(w.tcp_flags.contains(TcpFlags::SYN));
        assert_eq!(w.payload.len, 0);
        assert_eq!(walk(&frames[0]).unwrap().payload, Span::new(54, 100));
        assert_eq!(walk(&frames[6]).unwrap().options, Some(Span::new(56, 6)));
        assert_eq!(walk(&frames[6]).unwrap().l4_offset, 62);
    }

    /// A NIC's verification of the IPv4 header checksum replaces the
    /// walk's own, and only that: a correct header walks the same either
    /// way; a wrong checksum is refused unless the NIC vouched for it, when
    /// the walk takes the caller's word against the bytes.
    #[test]
    fn a_checksum_the_nic_verified_is_not_verified_again() {
        let good = v4_frame(0, 6, &TLV_OPTION, &tcp(0x18, 20));
        let mut out = None;
        walk_into(&good, true, &mut out);
        assert_eq!(out, walk(&good));
        assert!(out.is_some());
        let mut wrong = good.clone();
        wrong[24] ^= 0x01; // the IPv4 header checksum's high byte
        assert_eq!(walk(&wrong), None);
        walk_into(&wrong, false, &mut out);
        assert_eq!(out, None);
        walk_into(&wrong, true, &mut out);
        assert_eq!(out, walk(&good));
        // IPv6 has no header checksum: the flag changes nothing.
        let v6 = v6_frame(6, &[], &tcp(0x10, 10));
        walk_into(&v6, true, &mut out);
        assert_eq!(out, walk(&v6));
        assert!(out.is_some());
    }

    #[test]
    fn other_shapes_fall_back() {
        // Fragments (first and later), RoCEv2, ICMP, ARP, a runt.
        let mut first = eth(0x0800);
        let l4 = tcp(0x18, 16);
        first.extend(ipv4(6, &[], l4.len(), 0x2000));
        first.extend_from_slice(&l4);
        assert!(walk(&first).is_none());
        assert!(parse(&first).unwrap().is_fragment());
        let mut later = eth(0x0800);
        later.extend(ipv4(6, &[], 16, 0x0003));
        later.extend_from_slice(&[0; 16]);
        assert!(walk(&later).is_none());
        assert!(walk(&v4_frame(0, 17, &[], &udp(4791, 32))).is_none());
        assert!(walk(&v4_frame(0, 1, &[], &[8, 0, 0, 0, 0, 0, 0, 0])).is_none());
        assert!(walk(&eth(0x0806)).is_none());
        assert!(walk(&[0u8; 10]).is_none());
        // Bad IHL (< 5, and beyond the packet), a bad checksum.
        let mut bad_ihl = v4_frame(0, 6, &[], &tcp(0x10, 0));
        bad_ihl[14] = 0x44;
        assert!(walk(&bad_ihl).is_none() && parse(&bad_ihl).is_err());
        let mut long_ihl = v4_frame(0, 6, &[], &tcp(0x10, 0));
        long_ihl[14] = 0x4f;
        assert!(walk(&long_ihl).is_none());
        let mut bad_sum = v4_frame(0, 6, &TLV_OPTION, &tcp(0x10, 0));
        bad_sum[24] ^= 0xff;
        assert!(walk(&bad_sum).is_none() && parse(&bad_sum).is_err());
        // A TCP data offset past the segment.
        let mut bad_doff = v4_frame(0, 6, &[], &tcp(0x10, 0));
        bad_doff[14 + 20 + 12] = 0xf0;
        assert!(walk(&bad_doff).is_none() && parse(&bad_doff).is_err());
        // IPv6: a Routing header, a Fragment header, Destination Options,
        // HBH not followed by TCP/UDP, HBH cut short.
        let routing = [6u8, 0, 253, 0, 0, 0, 0, 0];
        assert!(walk(&v6_frame(43, &routing, &tcp(0x10, 0))).is_none());
        let frag = [6u8, 0, 0, 0, 0, 0, 0, 1];
        assert!(walk(&v6_frame(44, &frag, &tcp(0x10, 0))).is_none());
        assert!(walk(&v6_frame(60, &hbh(6), &tcp(0x10, 0))).is_none());
        assert!(walk(&v6_frame(0, &hbh(43), &routing)).is_none());
        let mut cut = v6_frame(0, &hbh(6), &[]);
        cut.truncate(cut.len() - 3);
        assert!(walk(&cut).is_none());
    }

    #[test]
    fn mangled_frames_never_disagree() {
        let frames = [
            v4_frame(0, 6, &TLV_OPTION, &tcp(0x18, 40)),
            v4_frame(2, 6, &[], &tcp(0x02, 0)),
            v4_frame(1, 17, &TLV_OPTION, &udp(8000, 16)),
            v4_frame(0, 17, &[], &udp(4791, 16)),
            v6_frame(0, &hbh(6), &tcp(0x18, 24)),
            v6_frame(17, &[], &udp(8000, 8)),
            v6_frame(43, &[6u8, 0, 253, 0, 0, 0, 0, 0], &tcp(0x10, 0)),
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for f in &frames {
            agrees(f);
            for cut in 0..f.len() {
                agrees(&f[..cut]);
            }
            for _ in 0..3000 {
                let mut g = f.clone();
                for _ in 0..(next() % 3 + 1) {
                    let at = (next() as usize) % g.len();
                    g[at] = next() as u8;
                }
                agrees(&g);
            }
        }
    }
}
