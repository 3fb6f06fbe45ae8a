//! A RoCEv2-only header walk for the tensor pipeline's host side.
//!
//! [`parse`](crate::parse()) builds the whole [`ParsedPacket`] (VLAN stack,
//! options, IPv6 extension chain, payload spans …) for every frame. A
//! RoCEv2 scheduler needs far less: the QP's flow key, the BTH summary and
//! where the IP header is (for the ICRC and the TTL/ECN rewrite). [`walk`]
//! reads exactly that, smoltcp-style through the same checked views
//! ([`EthernetFrame`], [`VlanTag`], [`Ipv4Packet`], [`Ipv6Packet`],
//! [`UdpPacket`], the BTH), so every length is validated once and no
//! accessor can panic:
//!
//! ```text
//! Ethernet ─► ≤ 2 VLAN tags ─► IPv4 (IHL 5, checksum, not a fragment)
//!                           └► IPv6 (next header UDP)
//!          ─► UDP, destination port 4791 ─► BTH (+ RETH DMA length)
//! ```
//!
//! It covers the shape RoCE NICs send. Anything else (IPv4 options, IPv6
//! extension headers, fragments, another protocol, a frame a check
//! refuses) is `None`, and the caller falls back to the full
//! [`parse`](crate::parse()) and [`RocePacket::from_parsed`]: the walk
//! only ever answers `Some` for a frame that `parse` accepts as an
//! unfragmented RoCEv2 packet, with the same key, BTH summary and offsets
//! (the tests compare the two on generated and mangled frames).
//!
//! The walk also records where the ICRC's coverage sits
//! ([`RocePacket::icrc_layout`]), so the ICRC check does not walk the IP and
//! UDP headers a third time ([`crate::icrc::verify_icrc_at`]).

use crate::bth::ROCEV2_UDP_PORT;
use crate::ethernet::{EtherType, EthernetFrame};
use crate::flow::FlowKey;
use crate::icrc::IcrcLayout;
use crate::ip::IpProtocol;
use crate::ipv4::Ipv4Packet;
use crate::ipv6::Ipv6Packet;
use crate::parse::{parse_bth, BthSummary, L3Kind, ParsedPacket, MAX_FRAME_LEN};
use crate::span::Span;
use crate::udp::UdpPacket;
use crate::vlan::{VlanTag, MAX_VLAN_TAGS};

/// An unfragmented RoCEv2 packet, located: what a per-QP scheduler reads.
/// `Copy`, no borrow (offsets into the frame, like [`ParsedPacket`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocePacket {
    /// The QP's flow key (the 5-tuple and the destination QPN).
    pub key: FlowKey,
    /// The BTH fields.
    pub bth: BthSummary,
    /// [`L3Kind::Ipv4`] or [`L3Kind::Ipv6`].
    pub l3_kind: L3Kind,
    /// Frame offset of the IP header.
    pub l3_offset: u16,
    /// IPv4 Total Length, or 40 + IPv6 Payload Length.
    pub l3_len: u16,
    /// Where the ICRC's coverage sits, when it is computable (`None`: an
    /// IPv6 packet with extension headers, which Annex A17 does not cover).
    icrc: Option<IcrcLayout>,
}

impl RocePacket {
    /// The RoCEv2 packet a full parse found: `None` unless it has a BTH and
    /// a flow key and is not a fragment (exactly the packets with a QP).
    pub fn from_parsed(p: &ParsedPacket) -> Option<RocePacket> {
        let key = p.flow?;
        let bth = p.bth.filter(|_| !p.is_fragment())?;
        let l4 = p.l4_offset?;
        let ip_header_len = usize::from(l4.checked_sub(p.l3_offset)?);
        // The BTH follows the 8-byte UDP header; the ICRC ends the UDP
        // datagram, so UDP Length = ICRC end - UDP start.
        let udp_len = usize::from(bth.icrc_offset) + crate::bth::ICRC_LEN - usize::from(l4);
        let icrc = match p.l3_kind {
            L3Kind::Ipv4 => Some(IcrcLayout::new(true, ip_header_len, udp_len)),
            // Only UDP directly after the fixed header is covered.
            L3Kind::Ipv6 if ip_header_len == Ipv6Packet::<&[u8]>::HEADER_LEN => {
                Some(IcrcLayout::new(false, ip_header_len, udp_len))
            }
            _ => None,
        };
        Some(RocePacket {
            key,
            bth,
            l3_kind: p.l3_kind,
            l3_offset: p.l3_offset,
            l3_len: p.l3_len,
            icrc,
        })
    }

    /// The network-layer packet (IP header through the end of its length),
    /// or an empty slice if `frame` is not the frame that was walked.
    #[inline]
    pub fn l3<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        Span {
            start: self.l3_offset,
            len: self.l3_len,
        }
        .slice(frame)
    }

    /// Where the ICRC's coverage sits in [`RocePacket::l3`], if the ICRC of
    /// this packet is defined.
    #[inline]
    pub fn icrc_layout(&self) -> Option<IcrcLayout> {
        self.icrc
    }
}

/// Walks a frame the way RoCE NICs send it; `None` for anything else (the
/// caller then uses [`crate::parse()`]). Never panics, never allocates.
#[inline]
pub fn walk(frame: &[u8]) -> Option<RocePacket> {
    walk_received(frame, false)
}

/// [`walk`] for a received frame: `nic_verified`, the receiving NIC
/// verified its IPv4 header checksum (DPDK's
/// `RTE_MBUF_F_RX_IP_CKSUM_GOOD`), which is then not verified again.
#[inline]
pub fn walk_received(frame: &[u8], nic_verified: bool) -> Option<RocePacket> {
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
        EtherType::IPV4 => walk_ipv4(l3, l3_offset, nic_verified),
        EtherType::IPV6 => walk_ipv6(l3, l3_offset),
        // A third tag, ARP, anything else.
        _ => None,
    }
}

#[inline]
fn walk_ipv4(l3: &[u8], l3_offset: usize, nic_verified: bool) -> Option<RocePacket> {
    const HDR: usize = Ipv4Packet::<&[u8]>::MIN_HEADER_LEN;
    let ip = Ipv4Packet::new_checked(l3).ok()?;
    if ip.header_len() != HDR || ip.protocol() != IpProtocol::UDP || ip.is_fragment() {
        return None;
    }
    if !(nic_verified || ip.verify_checksum()) {
        return None;
    }
    let addresses = FlowKey::v4(ip.src_addr(), ip.dst_addr(), IpProtocol::UDP, 0, 0);
    over_udp(
        ip.payload(),
        l3_offset,
        HDR,
        ip.total_len(),
        L3Kind::Ipv4,
        addresses,
    )
}

#[inline]
fn walk_ipv6(l3: &[u8], l3_offset: usize) -> Option<RocePacket> {
    const HDR: usize = Ipv6Packet::<&[u8]>::HEADER_LEN;
    let ip = Ipv6Packet::new_checked(l3).ok()?;
    if ip.next_header() != IpProtocol::UDP {
        return None;
    }
    let l3_len = (HDR + usize::from(ip.payload_len())) as u16;
    let addresses = FlowKey::v6(ip.src_addr(), ip.dst_addr(), IpProtocol::UDP, 0, 0);
    over_udp(
        ip.payload(),
        l3_offset,
        HDR,
        l3_len,
        L3Kind::Ipv6,
        addresses,
    )
}

/// The UDP and BTH part, the same over either IP version: `key` holds the
/// addresses (ports 0), `l3_header_len` the IP header's length before UDP.
#[inline(always)]
fn over_udp(
    ip_payload: &[u8],
    l3_offset: usize,
    l3_header_len: usize,
    l3_len: u16,
    l3_kind: L3Kind,
    mut key: FlowKey,
) -> Option<RocePacket> {
    let udp = UdpPacket::new_checked(ip_payload).ok()?;
    if udp.dst_port() != ROCEV2_UDP_PORT {
        return None;
    }
    let udp_at = l3_offset + l3_header_len;
    let bth = parse_bth(udp.payload(), udp_at + UdpPacket::<&[u8]>::HEADER_LEN).ok()?;
    key.src_port = udp.src_port();
    key.dst_port = udp.dst_port();
    Some(RocePacket {
        key: key.with_dest_qpn(bth.dest_qp),
        bth,
        l3_kind,
        l3_offset: l3_offset as u16,
        l3_len,
        icrc: Some(IcrcLayout::new(
            l3_kind == L3Kind::Ipv4,
            l3_header_len,
            usize::from(udp.len()),
        )),
    })
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

    fn ipv4(proto: u8, payload_len: usize) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0x02];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[
            0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let c = crate::checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    /// UDP to 4791 + BTH(opcode) + RETH (when `reth`) + `data` bytes + ICRC.
    fn roce_l4(opcode: u8, reth: bool, data: usize) -> Vec<u8> {
        let ext = if reth { 16 } else { 0 };
        let udp_len = 8 + 12 + ext + data + 4;
        let mut f = vec![0xc0, 0x01, 0x12, 0xb7];
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&[opcode, 0x00, 0xff, 0xff, 0, 0, 0x00, 0x42, 0x80, 0, 0, 7]);
        if reth {
            f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 1, 0, 0, 0x40, 0]);
        }
        f.extend(std::iter::repeat_n(0xaa, data));
        f.extend_from_slice(&[0; 4]);
        f
    }

    fn v4_frame(vlans: usize, opcode: u8, reth: bool, data: usize) -> Vec<u8> {
        let mut f = eth(if vlans > 0 { 0x8100 } else { 0x0800 });
        for i in 0..vlans {
            let next: u16 = if i + 1 < vlans { 0x8100 } else { 0x0800 };
            f.extend_from_slice(&[0x00, 0x64]);
            f.extend_from_slice(&next.to_be_bytes());
        }
        let l4 = roce_l4(opcode, reth, data);
        f.extend(ipv4(17, l4.len()));
        f.extend(l4);
        f
    }

    fn v6_frame(opcode: u8, data: usize) -> Vec<u8> {
        let l4 = roce_l4(opcode, false, data);
        let mut f = eth(0x86dd);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend(l4);
        f
    }

    /// What the walk must agree with: the full parse's RoCEv2 packet.
    fn reference(f: &[u8]) -> Option<RocePacket> {
        parse(f).ok().as_ref().and_then(RocePacket::from_parsed)
    }

    /// The walk answers only for frames the full parse calls RoCEv2, and
    /// then exactly as it does.
    fn agrees(f: &[u8]) {
        if let Some(w) = walk(f) {
            assert_eq!(Some(w), reference(f), "frame {f:02x?}");
        }
    }

    #[test]
    fn common_shapes_are_walked_like_parse() {
        let frames = [
            v4_frame(0, 0x06, true, 64),  // WRITE First + RETH
            v4_frame(0, 0x07, false, 64), // WRITE Middle
            v4_frame(1, 0x0a, true, 8),   // WRITE Only, one VLAN tag
            v4_frame(2, 0x04, false, 0),  // SEND Only, QinQ
            v4_frame(0, 0x11, false, 4),  // ACK (AETH as data)
            v6_frame(0x04, 32),
        ];
        for f in &frames {
            let w = walk(f).expect("a RoCEv2 frame walks");
            assert_eq!(Some(w), reference(f));
            assert_eq!(w.key.dest_qpn, Some(0x42));
            assert!(w.icrc_layout().is_some());
        }
    }

    /// As for the flow walk: a checksum the NIC verified is not verified
    /// again.
    #[test]
    fn a_checksum_the_nic_verified_is_not_verified_again() {
        let good = v4_frame(0, 0x06, true, 64);
        assert_eq!(walk_received(&good, true), walk(&good));
        assert!(walk(&good).is_some());
        let mut wrong = good.clone();
        wrong[25] ^= 0x01; // the IPv4 header checksum's low byte
        assert_eq!(walk(&wrong), None);
        assert_eq!(walk_received(&wrong, false), None);
        assert_eq!(walk_received(&wrong, true), walk(&good));
    }

    #[test]
    fn other_shapes_fall_back() {
        // IPv4 with options: parse handles it, the walk declines.
        let mut f = v4_frame(0, 0x04, false, 8);
        f[14] = 0x46;
        f.splice(34..34, [1, 1, 1, 1]);
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = crate::checksum::checksum(&f[14..38]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        assert!(walk(&f).is_none());
        let r = reference(&f).expect("still RoCEv2 to the full parse");
        assert_eq!(r.icrc_layout().map(|l| l.ip_header_len()), Some(24));
        // Not UDP 4791, a bad checksum, ARP, a runt.
        let mut other_port = v4_frame(0, 0x04, false, 8);
        other_port[37] = 0xb8;
        assert!(walk(&other_port).is_none());
        let mut bad_sum = v4_frame(0, 0x04, false, 8);
        bad_sum[24] ^= 0xff;
        assert!(walk(&bad_sum).is_none() && reference(&bad_sum).is_none());
        assert!(walk(&eth(0x0806)).is_none());
        assert!(walk(&[0u8; 10]).is_none());
    }

    #[test]
    fn mangled_frames_never_disagree() {
        let frames = [
            v4_frame(0, 0x06, true, 40),
            v4_frame(2, 0x0a, true, 0),
            v4_frame(1, 0x64, false, 16), // UD SEND Only (DETH)
            v4_frame(0, 0x81, false, 16), // CNP
            v4_frame(0, 0xff, false, 16), // undefined opcode
            v6_frame(0x06, 0),
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
