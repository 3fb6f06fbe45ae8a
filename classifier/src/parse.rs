//! The single-pass fast-path parser.
//!
//! [`parse`] walks a frame once, outermost header first — Ethernet, up to two
//! VLAN tags, IPv4 (options, header checksum) or IPv6 (extension-header
//! chain), UDP or TCP, and for UDP port 4791 the RoCEv2 BTH — and returns a
//! [`ParsedPacket`] of offsets and small values.
//!
//! # Why offsets instead of borrowed views
//!
//! [`ParsedPacket`] holds no reference into the frame. The data plane parses a
//! burst of mbufs into an array of results, hands them between pipeline
//! stages, and may rewrite the frames in between (ECN marking, TTL); a result
//! borrowing the frame would freeze the buffer for as long as the result
//! lives, and would tie the result's lifetime to memory that is actually
//! owned by DPDK on the other side of an FFI boundary. Offsets cost nothing
//! to keep and re-slicing is a bounds check; [`Span::slice`] and the
//! accessors on [`ParsedPacket`] do it without panicking even if given the
//! wrong frame.
//!
//! # What is checked, and what is not
//!
//! Every length field is checked against the bytes present, and the IPv4
//! header checksum is verified (at most 60 bytes, the same check a router
//! does). UDP/TCP checksums and the RoCEv2 ICRC are *not* verified: they
//! cover the whole payload, and touching every payload byte would dominate
//! the per-packet cost. Use [`crate::udp::UdpPacket::verify_checksum`],
//! [`crate::tcp::TcpPacket::verify_checksum`] and [`crate::icrc::verify_icrc`]
//! off the fast path.
//!
//! Fragments are classified as far as they can be: the first fragment's
//! ports are read (its UDP Length describes the whole datagram, so it is not
//! enforced), later fragments get a flow key without ports and no transport
//! offset, and no fragment gets a BTH summary — RoCEv2 senders set DF, and a
//! fragment's BTH could not be checked against its ICRC anyway.
//!
//! Frames whose EtherType is not IPv4/IPv6 (ARP, LLC, anything unknown) are
//! not errors: an in-line appliance must forward them, so they parse as
//! [`L3Kind::Arp`] or [`L3Kind::Other`] without a flow key.
//!
//! The parser never panics and never allocates; its only loops are the VLAN
//! unwrap (≤ 2 steps), the IPv6 extension-header walk (≤ 8 steps) and the
//! IPv4 header checksum (≤ 30 words).

use core::fmt;

use crate::bth::BthError;
use crate::bth::{Bth, ICRC_LEN, ROCEV2_UDP_PORT};
use crate::bth_opcode::BthOpcode;
use crate::ethernet::{EtherType, EthernetError, EthernetFrame};
use crate::flow::FlowKey;
use crate::ip::{FragmentInfo, IpProtocol};
use crate::ipv4::{Ipv4Error, Ipv4Packet};
use crate::ipv6::{Ipv6Error, Ipv6Packet};
use crate::ipv6_ext::{self, Ipv6ExtError};
use crate::reth::Reth;
use crate::span::Span;
use crate::tcp::{TcpError, TcpPacket};
use crate::udp::{UdpError, UdpPacket};
use crate::vlan::{VlanError, VlanStack};

/// What sits at the network layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L3Kind {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// ARP (forwarded, not classified).
    Arp,
    /// Any other EtherType, or an 802.3 length field.
    Other,
}

/// The RoCEv2 fields the data plane's per-QP state machine needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BthSummary {
    /// Opcode.
    pub opcode: BthOpcode,
    /// Partition key.
    pub pkey: u16,
    /// Destination QP (24 bits).
    pub dest_qp: u32,
    /// Packet sequence number (24 bits).
    pub psn: u32,
    /// Forward ECN.
    pub fecn: bool,
    /// Backward ECN.
    pub becn: bool,
    /// Acknowledge request.
    pub ack_req: bool,
    /// Solicited event.
    pub solicited: bool,
    /// Pad bytes before the ICRC.
    pub pad_count: u8,
    /// Whole-message length from the RETH, on WRITE First/Only and READ
    /// Request: lets the first packet classify the message as small or large.
    pub dma_len: Option<u32>,
    /// Frame offset of the BTH.
    pub bth_offset: u16,
    /// The RDMA payload: after the extension headers, before pad and ICRC.
    pub data: Span,
    /// Frame offset of the 4-byte ICRC.
    pub icrc_offset: u16,
}

/// The result of [`parse`]: offsets into the frame plus the small values
/// the data plane classifies on. `Copy`, no borrow, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParsedPacket {
    /// Length of the frame that was parsed.
    pub frame_len: u16,
    /// VLAN tags, outermost first (empty when untagged).
    pub vlans: VlanStack,
    /// The EtherType after any VLAN tags.
    pub ethertype: EtherType,
    /// Network-layer kind.
    pub l3_kind: L3Kind,
    /// Frame offset of the network-layer header.
    pub l3_offset: u16,
    /// Network-layer length: IPv4 Total Length, 40 + IPv6 Payload Length,
    /// or the rest of the frame for non-IP. Excludes Ethernet padding.
    pub l3_len: u16,
    /// IPv4 TOS / IPv6 traffic class (DSCP << 2 | ECN); 0 for non-IP.
    pub tos: u8,
    /// IPv4 TTL / IPv6 hop limit; 0 for non-IP.
    pub ttl: u8,
    /// IPv4 option bytes, when IHL > 5.
    pub ipv4_options: Option<Span>,
    /// IPv6 Hop-by-Hop option area (after its 2-byte prefix), when present.
    pub ipv6_hbh_options: Option<Span>,
    /// The IPv6 Routing header, when the extension chain has one (its
    /// final destination is what upper-layer checksums cover, so a NAT
    /// must know). The span covers the whole header, from the frame's start.
    pub ipv6_routing: Option<Span>,
    /// Fragment position, when the packet carries IPv4 fragmentation flags or
    /// an IPv6 Fragment header.
    pub fragment: Option<FragmentInfo>,
    /// The upper-layer protocol (after IPv6 extension headers).
    pub ip_protocol: Option<IpProtocol>,
    /// Frame offset of the transport header; `None` when the packet has
    /// none: non-IP, IPv6 No Next Header, or a non-first fragment.
    pub l4_offset: Option<u16>,
    /// Bytes after the last header understood: the UDP/TCP payload, or the
    /// L3 payload when the transport is not parsed (non-first fragments,
    /// ICMP, ESP …), or the L3 packet for ARP/other.
    pub payload: Span,
    /// RoCEv2 transport fields, for UDP destination port 4791.
    pub bth: Option<BthSummary>,
    /// Flow identity for IP packets (ports 0 when not visible).
    pub flow: Option<FlowKey>,
}

impl ParsedPacket {
    fn empty(frame_len: usize, vlans: VlanStack, l3_offset: usize) -> Self {
        ParsedPacket {
            frame_len: u16::try_from(frame_len).unwrap_or(u16::MAX),
            vlans,
            ethertype: vlans.ethertype,
            l3_kind: L3Kind::Other,
            l3_offset: l3_offset as u16,
            l3_len: frame_len.saturating_sub(l3_offset) as u16,
            tos: 0,
            ttl: 0,
            ipv4_options: None,
            ipv6_hbh_options: None,
            ipv6_routing: None,
            fragment: None,
            ip_protocol: None,
            l4_offset: None,
            payload: Span::new(l3_offset, frame_len.saturating_sub(l3_offset)),
            bth: None,
            flow: None,
        }
    }

    /// True for a piece of a fragmented datagram (IPv6 atomic fragments,
    /// which are whole datagrams, excluded).
    pub fn is_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| !f.is_atomic())
    }

    /// True for RoCEv2 (UDP destination port 4791 with a valid-length BTH).
    pub fn is_roce(&self) -> bool {
        self.bth.is_some()
    }

    /// The network-layer packet (header through end of L3 length), or an
    /// empty slice if `frame` is not the frame that was parsed.
    pub fn l3<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        Span {
            start: self.l3_offset,
            len: self.l3_len,
        }
        .slice(frame)
    }

    /// The transport header onwards (through the end of the L3 packet).
    pub fn l4<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let Some(start) = self.l4_offset else {
            return &[];
        };
        let end = usize::from(self.l3_offset) + usize::from(self.l3_len);
        frame.get(usize::from(start)..end).unwrap_or(&[])
    }

    /// The payload bytes (see [`ParsedPacket::payload`]).
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        self.payload.slice(frame)
    }
}

/// Why [`parse`] rejected a frame: the layer, and that layer's own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Ethernet header.
    Ethernet(EthernetError),
    /// VLAN tag stack.
    Vlan(VlanError),
    /// IPv4 header (checksum included).
    Ipv4(Ipv4Error),
    /// Fixed IPv6 header.
    Ipv6(Ipv6Error),
    /// IPv6 extension-header chain.
    Ipv6Ext(Ipv6ExtError),
    /// UDP header.
    Udp(UdpError),
    /// TCP header.
    Tcp(TcpError),
    /// RoCEv2 BTH and the headers its opcode requires.
    Bth(BthError),
}

impl ParseError {
    /// The layer that failed: `ethernet`, `vlan`, `ipv4`, `ipv6`,
    /// `ipv6_ext`, `udp`, `tcp` or `bth`.
    pub const fn layer(&self) -> &'static str {
        match self {
            ParseError::Ethernet(_) => "ethernet",
            ParseError::Vlan(_) => "vlan",
            ParseError::Ipv4(_) => "ipv4",
            ParseError::Ipv6(_) => "ipv6",
            ParseError::Ipv6Ext(_) => "ipv6_ext",
            ParseError::Udp(_) => "udp",
            ParseError::Tcp(_) => "tcp",
            ParseError::Bth(_) => "bth",
        }
    }

    /// A stable `layer.reason` key such as `ipv4.bad_checksum`, suitable
    /// for counters and metrics labels.
    pub const fn code(&self) -> &'static str {
        match self {
            ParseError::Ethernet(e) => e.code(),
            ParseError::Vlan(e) => e.code(),
            ParseError::Ipv4(e) => e.code(),
            ParseError::Ipv6(e) => e.code(),
            ParseError::Ipv6Ext(e) => e.code(),
            ParseError::Udp(e) => e.code(),
            ParseError::Tcp(e) => e.code(),
            ParseError::Bth(e) => e.code(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.layer())?;
        match self {
            ParseError::Ethernet(e) => e.fmt(f),
            ParseError::Vlan(e) => e.fmt(f),
            ParseError::Ipv4(e) => e.fmt(f),
            ParseError::Ipv6(e) => e.fmt(f),
            ParseError::Ipv6Ext(e) => e.fmt(f),
            ParseError::Udp(e) => e.fmt(f),
            ParseError::Tcp(e) => e.fmt(f),
            ParseError::Bth(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(match self {
            ParseError::Ethernet(e) => e,
            ParseError::Vlan(e) => e,
            ParseError::Ipv4(e) => e,
            ParseError::Ipv6(e) => e,
            ParseError::Ipv6Ext(e) => e,
            ParseError::Udp(e) => e,
            ParseError::Tcp(e) => e,
            ParseError::Bth(e) => e,
        })
    }
}

/// The longest frame [`parse`] accepts: offsets in [`ParsedPacket`] are `u16`.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// Parses one Ethernet frame (without FCS). See the module documentation.
pub fn parse(frame: &[u8]) -> Result<ParsedPacket, ParseError> {
    // Every offset below is stored as u16; refusing larger frames up front
    // is what makes those conversions lossless.
    if frame.len() > MAX_FRAME_LEN {
        return Err(ParseError::Ethernet(EthernetError::FrameTooLong {
            len: frame.len(),
        }));
    }
    let eth = EthernetFrame::new_checked(frame).map_err(ParseError::Ethernet)?;
    let vlans = VlanStack::parse(eth.ethertype(), eth.payload()).map_err(ParseError::Vlan)?;
    let l3_offset = EthernetFrame::<&[u8]>::HEADER_LEN + vlans.header_len();
    let l3 = frame.get(l3_offset..).unwrap_or(&[]);
    let mut out = ParsedPacket::empty(frame.len(), vlans, l3_offset);
    match vlans.ethertype {
        EtherType::IPV4 => parse_ipv4(l3, l3_offset, &mut out)?,
        EtherType::IPV6 => parse_ipv6(l3, l3_offset, &mut out)?,
        EtherType::ARP => out.l3_kind = L3Kind::Arp,
        _ => {}
    }
    Ok(out)
}

fn parse_ipv4(l3: &[u8], l3_offset: usize, out: &mut ParsedPacket) -> Result<(), ParseError> {
    let ip = Ipv4Packet::new_checked(l3).map_err(ParseError::Ipv4)?;
    ip.check_checksum().map_err(ParseError::Ipv4)?;
    let header_len = ip.header_len();
    out.l3_kind = L3Kind::Ipv4;
    out.l3_len = ip.total_len();
    out.tos = ip.dscp_ecn();
    out.ttl = ip.ttl();
    if header_len > Ipv4Packet::<&[u8]>::MIN_HEADER_LEN {
        out.ipv4_options = Some(Span::new(
            l3_offset + Ipv4Packet::<&[u8]>::MIN_HEADER_LEN,
            header_len - Ipv4Packet::<&[u8]>::MIN_HEADER_LEN,
        ));
    }
    if ip.is_fragment() {
        out.fragment = Some(FragmentInfo {
            offset: ip.frag_offset(),
            more: ip.more_frags(),
            ident: u32::from(ip.ident()),
        });
    }
    let key = FlowKey::v4(ip.src_addr(), ip.dst_addr(), ip.protocol(), 0, 0);
    parse_transport(
        ip.protocol(),
        ip.payload(),
        l3_offset + header_len,
        key,
        out,
    )
}

fn parse_ipv6(l3: &[u8], l3_offset: usize, out: &mut ParsedPacket) -> Result<(), ParseError> {
    let ip = Ipv6Packet::new_checked(l3).map_err(ParseError::Ipv6)?;
    out.l3_kind = L3Kind::Ipv6;
    out.l3_len = (Ipv6Packet::<&[u8]>::HEADER_LEN + usize::from(ip.payload_len())) as u16;
    out.tos = ip.traffic_class();
    out.ttl = ip.hop_limit();
    let payload = ip.payload();
    let chain = ipv6_ext::walk(ip.next_header(), payload).map_err(ParseError::Ipv6Ext)?;
    let payload_offset = l3_offset + Ipv6Packet::<&[u8]>::HEADER_LEN;
    out.ipv6_hbh_options = chain.hop_by_hop_options.map(|s| s.shifted(payload_offset));
    out.ipv6_routing = chain
        .headers()
        .iter()
        .find(|h| h.header_type == IpProtocol::IPV6_ROUTING)
        .map(|h| Span::new(payload_offset + usize::from(h.offset), usize::from(h.len)));
    out.fragment = chain.fragment;
    let key = FlowKey::v6(ip.src_addr(), ip.dst_addr(), chain.upper_protocol, 0, 0);
    let upper = payload.get(chain.upper_offset..).unwrap_or(&[]);
    let upper_offset = payload_offset + chain.upper_offset;
    if chain.upper_protocol == IpProtocol::IPV6_NO_NEXT_HEADER {
        out.ip_protocol = Some(chain.upper_protocol);
        out.payload = Span::new(upper_offset, upper.len());
        out.flow = Some(key);
        return Ok(());
    }
    parse_transport(chain.upper_protocol, upper, upper_offset, key, out)
}

/// Shared by IPv4 and IPv6: `l4` is bounded by the IP length fields and
/// starts at frame offset `l4_offset`.
fn parse_transport(
    protocol: IpProtocol,
    l4: &[u8],
    l4_offset: usize,
    mut key: FlowKey,
    out: &mut ParsedPacket,
) -> Result<(), ParseError> {
    out.ip_protocol = Some(protocol);
    let fragmented = out.is_fragment();
    if out.fragment.is_some_and(|f| f.is_non_first()) {
        // Only a continuation of the datagram's payload is here; reading
        // "ports" out of it would invent a flow.
        out.payload = Span::new(l4_offset, l4.len());
        out.flow = Some(key);
        return Ok(());
    }
    out.l4_offset = Some(l4_offset as u16);
    match protocol {
        IpProtocol::UDP => {
            let hdr = UdpPacket::<&[u8]>::HEADER_LEN;
            if fragmented {
                // A first fragment: UDP Length describes the reassembled
                // datagram, so only the header itself can be checked.
                if l4.len() < hdr {
                    return Err(ParseError::Udp(UdpError::Truncated {
                        available: l4.len(),
                    }));
                }
                let udp = UdpPacket::new_unchecked(l4);
                key.src_port = udp.src_port();
                key.dst_port = udp.dst_port();
                out.payload = Span::new(l4_offset + hdr, l4.len() - hdr);
            } else {
                let udp = UdpPacket::new_checked(l4).map_err(ParseError::Udp)?;
                key.src_port = udp.src_port();
                key.dst_port = udp.dst_port();
                let payload = udp.payload();
                out.payload = Span::new(l4_offset + hdr, payload.len());
                if udp.dst_port() == ROCEV2_UDP_PORT {
                    let bth = parse_bth(payload, l4_offset + hdr).map_err(ParseError::Bth)?;
                    key = key.with_dest_qpn(bth.dest_qp);
                    out.bth = Some(bth);
                }
            }
        }
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(l4).map_err(ParseError::Tcp)?;
            key.src_port = tcp.src_port();
            key.dst_port = tcp.dst_port();
            let header_len = tcp.header_len();
            out.payload = Span::new(l4_offset + header_len, l4.len() - header_len);
        }
        _ => out.payload = Span::new(l4_offset, l4.len()),
    }
    out.flow = Some(key);
    Ok(())
}

/// `udp_payload` is bounded by UDP Length and starts at frame offset `at`.
pub(crate) fn parse_bth(udp_payload: &[u8], at: usize) -> Result<BthSummary, BthError> {
    let bth = Bth::new_checked(udp_payload)?;
    let opcode = bth.opcode();
    // An undefined opcode still has a BTH; assume no extension headers so
    // the packet is counted rather than dropped from classification.
    let ext = opcode.ext_headers_len().unwrap_or(0);
    let header = Bth::<&[u8]>::HEADER_LEN + ext;
    let needed = header + ICRC_LEN;
    if udp_payload.len() < needed {
        return Err(BthError::TooShortForOpcode {
            opcode,
            needed,
            available: udp_payload.len(),
        });
    }
    let dma_len = opcode.reth_offset().and_then(|o| {
        let start = Bth::<&[u8]>::HEADER_LEN + o;
        Reth::new_checked(udp_payload.get(start..)?)
            .ok()
            .map(|r| r.dma_len())
    });
    let pad_count = bth.pad_count();
    let data_len = (udp_payload.len() - needed).saturating_sub(usize::from(pad_count));
    Ok(BthSummary {
        opcode,
        pkey: bth.pkey(),
        dest_qp: bth.dest_qp(),
        psn: bth.psn(),
        fecn: bth.fecn(),
        becn: bth.becn(),
        ack_req: bth.ack_req(),
        solicited: bth.solicited(),
        pad_count,
        dma_len,
        bth_offset: at as u16,
        data: Span::new(at + header, data_len),
        icrc_offset: (at + udp_payload.len() - ICRC_LEN) as u16,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::IpVersion;
    use std::net::Ipv4Addr;

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// IPv4 header for `payload_len` bytes of `proto`, correct checksum.
    fn ipv4(proto: u8, payload_len: usize, tos: u8) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, tos];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[
            0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let c = crate::checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    // The captured ConnectX-4 Lx CNP, behind an Ethernet header.
    fn cnp_frame() -> Vec<u8> {
        let mut f = eth(0x0800);
        f.extend_from_slice(&crate::icrc::tests::CONNECTX4_CNP_L3);
        f
    }

    #[test]
    fn captured_cnp() {
        let f = cnp_frame();
        let p = parse(&f).unwrap();
        assert_eq!(p.l3_kind, L3Kind::Ipv4);
        assert_eq!(p.l3_offset, 14);
        assert_eq!(p.l4_offset, Some(34));
        assert_eq!(p.tos, 0xc2);
        let bth = p.bth.unwrap();
        assert_eq!(bth.opcode, BthOpcode::CNP);
        assert!(bth.becn);
        assert_eq!(bth.dest_qp, 0x118);
        assert_eq!(bth.bth_offset, 42);
        assert_eq!(bth.icrc_offset as usize, f.len() - 4);
        assert_eq!(bth.data.len, 16);
        let key = p.flow.unwrap();
        assert_eq!(
            key.to_string(),
            "udp 10.0.17.1:0 -> 10.0.18.1:4791 qp 0x000118"
        );
        assert_eq!(key.version, IpVersion::V4);
        assert!(crate::icrc::verify_icrc(p.l3(&f)).unwrap());
    }

    #[test]
    fn write_first_exposes_dma_len() {
        // UDP + BTH(WRITE FIRST) + RETH + 8 bytes data + ICRC.
        let udp_payload_len = 12 + 16 + 8 + 4;
        let mut f = eth(0x0800);
        f.extend(ipv4(17, 8 + udp_payload_len, 0x02));
        f.extend_from_slice(&[0xc0, 0x01, 0x12, 0xb7]);
        f.extend_from_slice(&((8 + udp_payload_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&[0x06, 0x00, 0xff, 0xff, 0, 0, 0x00, 0x42, 0x80, 0, 0, 7]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 1, 0, 0, 0x40, 0]);
        f.extend_from_slice(&[0xaa; 8]);
        f.extend_from_slice(&[0; 4]);
        let p = parse(&f).unwrap();
        let b = p.bth.unwrap();
        assert_eq!(b.dma_len, Some(0x4000));
        assert_eq!(b.psn, 7);
        assert!(b.ack_req);
        assert_eq!(b.data.slice(&f), &[0xaa; 8]);
        assert_eq!(p.flow.unwrap().dest_qpn, Some(0x42));
        // Cut the RETH short: the opcode demands it.
        let mut short = f.clone();
        let cut = 14 + 20 + 8 + 12 + 8;
        short.truncate(cut);
        short[16..18].copy_from_slice(&((cut - 14) as u16).to_be_bytes());
        short[24..26].copy_from_slice(&[0, 0]);
        let c = crate::checksum::checksum(&short[14..34]);
        short[24..26].copy_from_slice(&c.to_be_bytes());
        short[38..40].copy_from_slice(&28u16.to_be_bytes());
        assert_eq!(
            parse(&short).unwrap_err(),
            ParseError::Bth(BthError::TooShortForOpcode {
                opcode: BthOpcode::RC_WRITE_FIRST,
                needed: 32,
                available: 20
            })
        );
    }

    #[test]
    fn arp_and_unknown_are_ok_without_flow() {
        let mut f = eth(0x0806);
        f.extend_from_slice(&[0u8; 28]);
        let p = parse(&f).unwrap();
        assert_eq!(p.l3_kind, L3Kind::Arp);
        assert!(p.flow.is_none() && p.l4_offset.is_none());
        let mut f = eth(0x1234);
        f.extend_from_slice(&[0xff; 3]);
        let p = parse(&f).unwrap();
        assert_eq!(p.l3_kind, L3Kind::Other);
        assert_eq!(p.payload.len, 3);
    }

    #[test]
    fn runts_and_padding() {
        for n in 0..14 {
            assert_eq!(
                parse(&vec![0u8; n]).unwrap_err(),
                ParseError::Ethernet(EthernetError::Truncated { available: n })
            );
        }
        // A UDP datagram with 1 byte of payload, padded to the 60-byte minimum.
        let mut f = eth(0x0800);
        f.extend(ipv4(17, 9, 0));
        f.extend_from_slice(&[0x30, 0x39, 0x1f, 0x40, 0x00, 0x09, 0x00, 0x00, b'x']);
        f.resize(60, 0);
        let p = parse(&f).unwrap();
        assert_eq!(p.l3_len, 29);
        assert_eq!(p.payload(&f), b"x");
        assert_eq!(p.frame_len, 60);
    }

    #[test]
    fn bad_ipv4_checksum_is_rejected() {
        let mut f = eth(0x0800);
        f.extend(ipv4(17, 8, 0));
        f.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        f[24] ^= 0xff;
        assert_eq!(parse(&f).unwrap_err().code(), "ipv4.bad_checksum");
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment of a UDP datagram whose UDP Length (1000) exceeds
        // this fragment: ports are read, the length is not enforced.
        let mut f = eth(0x0800);
        let mut ip = ipv4(17, 16, 0);
        ip[6] = 0x20; // MF
        ip[10] = 0;
        ip[11] = 0;
        let c = crate::checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(ip.clone());
        f.extend_from_slice(&[
            0x04, 0x00, 0x00, 0x35, 0x03, 0xe8, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        let p = parse(&f).unwrap();
        assert!(p.is_fragment());
        assert_eq!(p.flow.unwrap().dst_port, 53);
        assert_eq!(p.l4_offset, Some(34));
        // A later fragment: no transport header, no ports.
        ip[6] = 0x00;
        ip[7] = 0x02; // offset 2 (16 bytes), MF clear
        ip[10] = 0;
        ip[11] = 0;
        let c = crate::checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.truncate(14);
        f.extend(ip);
        f.extend_from_slice(&[0xde; 16]);
        let p = parse(&f).unwrap();
        assert!(p.is_fragment());
        assert_eq!(p.l4_offset, None);
        assert_eq!(p.ip_protocol, Some(IpProtocol::UDP));
        let key = p.flow.unwrap();
        assert_eq!((key.src_port, key.dst_port), (0, 0));
        assert_eq!(key.src_ip(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.payload.len, 16);
    }

    #[test]
    fn vlan_qinq_offsets() {
        let mut f = eth(0x88a8);
        f.extend_from_slice(&[0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00]);
        f.extend(ipv4(6, 20, 0));
        f.extend_from_slice(&[
            0x9c, 0x40, 0x1f, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        let p = parse(&f).unwrap();
        assert_eq!(p.vlans.len(), 2);
        assert_eq!(p.vlans.outer_vid(), Some(100));
        assert_eq!(p.l3_offset, 22);
        assert_eq!(p.l4_offset, Some(42));
        assert_eq!(p.flow.unwrap().dst_port, 8000);
        assert!(p.payload.is_empty());
    }

    #[test]
    fn error_display_names_layer() {
        let mut f = eth(0x86dd);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        let e = parse(&f).unwrap_err();
        assert_eq!(e.layer(), "ipv6");
        assert_eq!(
            e.to_string(),
            "ipv6: only 4 bytes, fewer than the 40-byte IPv6 header"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn oversized_frames_are_refused_not_truncated() {
        let mut f = eth(0x1234);
        f.resize(MAX_FRAME_LEN, 0);
        assert!(parse(&f).is_ok());
        f.push(0);
        assert_eq!(
            parse(&f).unwrap_err(),
            ParseError::Ethernet(EthernetError::FrameTooLong { len: 65536 })
        );
    }

    #[test]
    fn parsed_packet_is_compact() {
        fn assert_copy<T: Copy + 'static>() {}
        assert_copy::<ParsedPacket>();
        assert!(
            core::mem::size_of::<ParsedPacket>() <= 160,
            "{}",
            core::mem::size_of::<ParsedPacket>()
        );
    }
}
