//! The outer headers of the overlay: Ethernet, IPv4, UDP and Geneve in
//! front of the untouched inner Ethernet frame.
//!
//! ```text
//! +----------+------+-----+--------+-------------------+---------------------+
//! | Ethernet | IPv4 | UDP | Geneve | IntelliNode opts  | inner Ethernet frame|
//! |    14    |  20  |  8  |   8    | ≤ MAX_OPTIONS_LEN | (unchanged)         |
//! +----------+------+-----+--------+-------------------+---------------------+
//! ```
//!
//! The data plane prepends the whole header into the mbuf's 128-byte
//! headroom, so [`write_encap`] writes only the header, into a separate
//! buffer, and never touches the inner frame: its length is all it needs.
//!
//! Choices, and why:
//!
//! * **UDP source port** = `entropy` folded into 49152–65535 (RFC 8926
//!   §3.3, RFC 7348 §5): switches between the appliances hash the outer
//!   5-tuple for ECMP, so the caller passes a hash of the inner flow (or a
//!   path choice) to spread flows, or pin one, across links.
//! * **UDP checksum 0**: RFC 8926 §3.3 allows it over IPv4; the inner frame
//!   keeps its own checksums (and RoCEv2 its ICRC) and the metadata has its
//!   MAC, so a full pass over the payload would buy nothing.
//! * **DF set, TTL 64, identification 0**: an overlay packet must never be
//!   fragmented (RFC 8926 §4.1.1), and RFC 6864 lets atomic datagrams leave
//!   the identification at 0.
//!
//! [`read_encap`] is the receive side: every check a malformed or foreign
//! frame can fail has its own [`EncapError`] variant and counter code.

use core::fmt;
use std::net::Ipv4Addr;

use classifier::checksum::{self, PseudoHeader};
use classifier::ipv4::{Ipv4Error, Ipv4Packet};
use classifier::{FlowKey, IpProtocol};

use crate::geneve::{self, GeneveError, GenevePacket, GeneveRepr, ETHERTYPE_TEB, GENEVE_UDP_PORT};
use crate::metadata::{MetadataError, MetadataKey, MetadataRepr};

/// Headroom DPDK leaves in front of every mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const MBUF_HEADROOM: usize = 128;

/// Ethernet header length (untagged).
pub const ETH_LEN: usize = 14;
/// IPv4 header length (no options).
pub const IPV4_LEN: usize = 20;
/// UDP header length.
pub const UDP_LEN: usize = 8;

/// The outer headers before the Geneve options.
pub const OUTER_FIXED_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN + geneve::HEADER_LEN;

const ETHERTYPE_IPV4: u16 = 0x0800;
const TTL: u8 = 64;
const EPHEMERAL_BASE: u16 = 49152;

/// One end of the overlay, as the sender sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayEndpoint {
    /// Our MAC on the overlay port.
    pub src_mac: [u8; 6],
    /// The next hop's MAC towards the peer.
    pub dst_mac: [u8; 6],
    /// Our overlay address.
    pub src_ip: Ipv4Addr,
    /// The peer appliance's overlay address.
    pub dst_ip: Ipv4Addr,
    /// Virtual network, 24 bits.
    pub vni: u32,
}

/// Everything that makes a frame not a valid IntelliNode overlay frame, or
/// a header impossible to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncapError {
    /// Shorter than the header it claims to have.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Outer EtherType is not IPv4 (tagged frames included).
    NotIpv4(u16),
    /// IPv4 version nibble is not 4.
    BadIpVersion(u8),
    /// IHL below 5, or beyond the frame.
    BadIhl(u8),
    /// IPv4 total length below the header or beyond the frame.
    BadTotalLength(u16),
    /// The IPv4 header checksum does not verify.
    BadIpChecksum,
    /// A fragment: the overlay never fragments, so this is not ours.
    IpFragment,
    /// Not UDP.
    NotUdp(u8),
    /// UDP length below 8 or not matching the IPv4 payload.
    BadUdpLength(u16),
    /// A non-zero UDP checksum that does not verify.
    BadUdpChecksum,
    /// UDP destination port is not 6081.
    NotGeneve(u16),
    /// Geneve header too short or its options run past the datagram.
    GeneveTruncated,
    /// Geneve version is not 0.
    BadGeneveVersion(u8),
    /// A Geneve control (OAM) packet, not data.
    GeneveOam,
    /// The payload is not an Ethernet frame (protocol type ≠ 0x6558).
    NotEthernetPayload(u16),
    /// The inner frame is shorter than an Ethernet header.
    InnerTruncated(usize),
    /// Emit: the VNI does not fit in 24 bits.
    VniOutOfRange(u32),
    /// Emit: the overlay packet would exceed 65535 bytes.
    TooLong(usize),
    /// Emit: the metadata could not be written.
    Metadata(MetadataError),
}

impl EncapError {
    /// The codes [`read_encap`] can fail with, in the order it checks
    /// them: the keys of the per-code overlay drop counters.
    pub const RECEIVE_CODES: [&'static str; 16] = [
        "truncated",
        "not_ipv4",
        "bad_ip_version",
        "bad_ihl",
        "bad_total_length",
        "bad_ip_checksum",
        "ip_fragment",
        "not_udp",
        "bad_udp_length",
        "not_geneve",
        "bad_udp_checksum",
        "bad_geneve_version",
        "geneve_truncated",
        "geneve_oam",
        "not_ethernet_payload",
        "inner_truncated",
    ];

    /// This error's index in [`Self::RECEIVE_CODES`]; `None` for the
    /// errors only writing can produce.
    pub const fn receive_index(&self) -> Option<usize> {
        Some(match self {
            EncapError::Truncated { .. } => 0,
            EncapError::NotIpv4(_) => 1,
            EncapError::BadIpVersion(_) => 2,
            EncapError::BadIhl(_) => 3,
            EncapError::BadTotalLength(_) => 4,
            EncapError::BadIpChecksum => 5,
            EncapError::IpFragment => 6,
            EncapError::NotUdp(_) => 7,
            EncapError::BadUdpLength(_) => 8,
            EncapError::NotGeneve(_) => 9,
            EncapError::BadUdpChecksum => 10,
            EncapError::BadGeneveVersion(_) => 11,
            EncapError::GeneveTruncated => 12,
            EncapError::GeneveOam => 13,
            EncapError::NotEthernetPayload(_) => 14,
            EncapError::InnerTruncated(_) => 15,
            EncapError::VniOutOfRange(_) | EncapError::TooLong(_) | EncapError::Metadata(_) => {
                return None
            }
        })
    }

    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            EncapError::Truncated { .. } => "truncated",
            EncapError::NotIpv4(_) => "not_ipv4",
            EncapError::BadIpVersion(_) => "bad_ip_version",
            EncapError::BadIhl(_) => "bad_ihl",
            EncapError::BadTotalLength(_) => "bad_total_length",
            EncapError::BadIpChecksum => "bad_ip_checksum",
            EncapError::IpFragment => "ip_fragment",
            EncapError::NotUdp(_) => "not_udp",
            EncapError::BadUdpLength(_) => "bad_udp_length",
            EncapError::BadUdpChecksum => "bad_udp_checksum",
            EncapError::NotGeneve(_) => "not_geneve",
            EncapError::GeneveTruncated => "geneve_truncated",
            EncapError::BadGeneveVersion(_) => "bad_geneve_version",
            EncapError::GeneveOam => "geneve_oam",
            EncapError::NotEthernetPayload(_) => "not_ethernet_payload",
            EncapError::InnerTruncated(_) => "inner_truncated",
            EncapError::VniOutOfRange(_) => "vni_out_of_range",
            EncapError::TooLong(_) => "too_long",
            EncapError::Metadata(_) => "metadata",
        }
    }
}

impl fmt::Display for EncapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncapError::Truncated { needed, available } => write!(
                f,
                "overlay frame needs {needed} bytes of headers but has {available}"
            ),
            EncapError::NotIpv4(t) => write!(f, "outer EtherType {t:#06x} is not IPv4"),
            EncapError::BadIpVersion(v) => write!(f, "outer IP version {v}, expected 4"),
            EncapError::BadIhl(i) => write!(f, "outer IPv4 IHL {i} is invalid for this frame"),
            EncapError::BadTotalLength(l) => write!(
                f,
                "outer IPv4 total length {l} is inconsistent with the frame"
            ),
            EncapError::BadIpChecksum => write!(f, "outer IPv4 header checksum does not verify"),
            EncapError::IpFragment => write!(f, "outer IPv4 packet is a fragment"),
            EncapError::NotUdp(p) => write!(f, "outer IP protocol {p} is not UDP"),
            EncapError::BadUdpLength(l) => {
                write!(f, "UDP length {l} does not match the IPv4 payload")
            }
            EncapError::BadUdpChecksum => write!(f, "UDP checksum does not verify"),
            EncapError::NotGeneve(p) => {
                write!(f, "UDP destination port {p} is not Geneve (6081)")
            }
            EncapError::GeneveTruncated => {
                write!(f, "Geneve header or options run past the datagram")
            }
            EncapError::BadGeneveVersion(v) => write!(f, "Geneve version {v}, expected 0"),
            EncapError::GeneveOam => write!(f, "Geneve control (OAM) packet"),
            EncapError::NotEthernetPayload(p) => {
                write!(f, "Geneve protocol type {p:#06x} is not Ethernet (0x6558)")
            }
            EncapError::InnerTruncated(n) => write!(
                f,
                "inner frame of {n} bytes is shorter than an Ethernet header"
            ),
            EncapError::VniOutOfRange(v) => write!(f, "VNI {v:#x} does not fit in 24 bits"),
            EncapError::TooLong(n) => {
                write!(f, "overlay packet of {n} bytes exceeds the IPv4 maximum")
            }
            EncapError::Metadata(e) => write!(f, "metadata: {e}"),
        }
    }
}

impl std::error::Error for EncapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EncapError::Metadata(e) => Some(e),
            _ => None,
        }
    }
}

impl From<MetadataError> for EncapError {
    fn from(e: MetadataError) -> Self {
        EncapError::Metadata(e)
    }
}

/// Header bytes [`write_encap`] writes for `meta`.
pub fn encap_len(meta: &MetadataRepr) -> usize {
    OUTER_FIXED_LEN + meta.emitted_len()
}

/// The UDP source port for `entropy`: folded into the dynamic range
/// 49152–65535 so it never collides with a well-known port, keeping as
/// much of the entropy as 14 bits can.
pub fn entropy_port(entropy: u16) -> u16 {
    EPHEMERAL_BASE | ((entropy ^ (entropy >> 14)) & 0x3fff)
}

/// Writes the overlay header for an inner Ethernet frame of `inner_len`
/// bytes at the start of `out`, metadata authenticated under `key` for the
/// inner `flow`; returns the header length ([`encap_len`]). The caller
/// prepends exactly that many bytes to the inner frame.
pub fn write_encap(
    out: &mut [u8],
    ep: &OverlayEndpoint,
    entropy: u16,
    inner_len: usize,
    meta: &MetadataRepr,
    flow: &FlowKey,
    key: &MetadataKey,
) -> Result<usize, EncapError> {
    if ep.vni > 0x00ff_ffff {
        return Err(EncapError::VniOutOfRange(ep.vni));
    }
    let options_len = meta.emitted_len();
    let header_len = OUTER_FIXED_LEN + options_len;
    let ip_len = header_len - ETH_LEN + inner_len;
    let ip_total = u16::try_from(ip_len).map_err(|_| EncapError::TooLong(ip_len))?;
    // The UDP datagram is the IP packet minus a 20-byte header, so it fits.
    let udp_len = ip_total - IPV4_LEN as u16;
    let available = out.len();
    let (fixed, rest) = match out.split_at_mut_checked(OUTER_FIXED_LEN) {
        Some(parts) if available >= header_len => parts,
        _ => {
            return Err(EncapError::Truncated {
                needed: header_len,
                available,
            })
        }
    };
    // Options first: if the metadata is refused, nothing else matters.
    meta.emit(rest, flow, key)?;

    let mut h = [0u8; OUTER_FIXED_LEN];
    let (eth, rest_h) = h.split_at_mut(ETH_LEN);
    let (ip, rest_h) = rest_h.split_at_mut(IPV4_LEN);
    let (udp, gen) = rest_h.split_at_mut(UDP_LEN);

    let (macs, ethertype) = eth.split_at_mut(12);
    let (dst_mac, src_mac) = macs.split_at_mut(6);
    dst_mac.copy_from_slice(&ep.dst_mac);
    src_mac.copy_from_slice(&ep.src_mac);
    ethertype.copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let [t0, t1] = ip_total.to_be_bytes();
    let [s0, s1, s2, s3] = ep.src_ip.octets();
    let [d0, d1, d2, d3] = ep.dst_ip.octets();
    let df = 0x40;
    let mut ip_hdr = [
        0x45,
        0,
        t0,
        t1,
        0,
        0,
        df,
        0,
        TTL,
        IpProtocol::UDP.0,
        0,
        0,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ];
    let [c0, c1] = checksum::checksum(&ip_hdr).to_be_bytes();
    ip_hdr[10] = c0;
    ip_hdr[11] = c1;
    ip.copy_from_slice(&ip_hdr);

    let [sp0, sp1] = entropy_port(entropy).to_be_bytes();
    let [dp0, dp1] = GENEVE_UDP_PORT.to_be_bytes();
    let [l0, l1] = udp_len.to_be_bytes();
    udp.copy_from_slice(&[sp0, sp1, dp0, dp1, l0, l1, 0, 0]);

    GeneveRepr {
        oam: false,
        // The MAC option is always present and critical.
        critical: true,
        protocol_type: ETHERTYPE_TEB,
        vni: ep.vni,
        options_len,
    }
    .emit(gen)
    .map_err(|e| match e {
        GeneveError::VniOutOfRange(v) => EncapError::VniOutOfRange(v),
        _ => EncapError::TooLong(ip_len),
    })?;

    fixed.copy_from_slice(&h);
    Ok(header_len)
}

/// What [`read_encap`] found in a valid overlay frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer<'a> {
    /// Offset of the inner Ethernet frame: every outer header and option.
    pub header_len: usize,
    /// Length of the inner frame (outer Ethernet padding excluded).
    pub inner_len: usize,
    /// The sending appliance.
    pub src_ip: Ipv4Addr,
    /// Us.
    pub dst_ip: Ipv4Addr,
    /// The virtual network.
    pub vni: u32,
    /// Whether the Geneve C bit is set.
    pub critical: bool,
    /// The Geneve options area, for [`MetadataRepr::parse_verified`].
    pub options: &'a [u8],
}

impl<'a> Outer<'a> {
    /// The inner frame within `frame` (the frame `self` was read from).
    pub fn inner<'f>(&self, frame: &'f [u8]) -> &'f [u8] {
        frame
            .get(self.header_len..self.header_len + self.inner_len)
            .unwrap_or(&[])
    }
}

fn ipv4_error(e: Ipv4Error) -> EncapError {
    match e {
        Ipv4Error::Truncated { available } => EncapError::Truncated {
            needed: ETH_LEN + IPV4_LEN,
            available: ETH_LEN + available,
        },
        Ipv4Error::BadVersion(v) => EncapError::BadIpVersion(v),
        Ipv4Error::IhlTooSmall(i) => EncapError::BadIhl(i),
        Ipv4Error::HeaderTruncated { ihl_bytes, .. } => EncapError::BadIhl((ihl_bytes / 4) as u8),
        Ipv4Error::TotalLengthBelowHeader { total_len, .. }
        | Ipv4Error::TotalLengthBeyondFrame { total_len, .. } => {
            EncapError::BadTotalLength(total_len)
        }
        Ipv4Error::BadChecksum { .. } => EncapError::BadIpChecksum,
        // Emit-side errors; reading never produces them, and listing them
        // makes a new parse error a compile error here rather than a
        // silently wrong counter.
        Ipv4Error::OptionsNotAligned(_)
        | Ipv4Error::OptionsTooLong(_)
        | Ipv4Error::FragmentOffsetOutOfRange(_)
        | Ipv4Error::PayloadTooLong(_)
        | Ipv4Error::BufferTooSmall { .. } => EncapError::BadIhl(0),
    }
}

/// Whether a received frame is addressed to the overlay, judged without
/// trusting any of its checksums or lengths: an untagged IPv4 frame to
/// `local_ip` (this appliance's overlay address), or any untagged IPv4
/// frame whose UDP destination port is Geneve's. Such a frame is the
/// overlay's to accept or drop ([`read_encap`]), never to pass on as it
/// is: a damaged overlay frame must not reach a host still encapsulated.
pub fn addressed_to_overlay(frame: &[u8], local_ip: Option<Ipv4Addr>) -> bool {
    let Some(&[t0, t1]) = frame.get(12..14) else {
        return false;
    };
    if u16::from_be_bytes([t0, t1]) != ETHERTYPE_IPV4 {
        return false;
    }
    let ip = frame.get(ETH_LEN..).unwrap_or(&[]);
    let Some(&[vihl, _, _, _, _, _, _, _, _, protocol]) = ip.get(..10) else {
        return false;
    };
    if let (Some(local), Some(&[a, b, c, d])) = (local_ip, ip.get(16..20)) {
        if Ipv4Addr::new(a, b, c, d) == local {
            return true;
        }
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    if protocol != IpProtocol::UDP.0 || ihl < IPV4_LEN {
        return false;
    }
    matches!(ip.get(ihl + 2..ihl + 4), Some(&[p0, p1]) if u16::from_be_bytes([p0, p1]) == GENEVE_UDP_PORT)
}

/// Validates a received overlay frame and locates its parts. Checks, in
/// order: Ethernet type IPv4 (untagged); IPv4 version, IHL, total length
/// within the frame, header checksum, not a fragment, protocol UDP; UDP
/// length equal to the IPv4 payload, destination port 6081, checksum if
/// non-zero; Geneve version 0, options within the datagram, not OAM,
/// protocol type 0x6558; an inner frame of at least 14 bytes.
pub fn read_encap(frame: &[u8]) -> Result<Outer<'_>, EncapError> {
    let (Some(eth), Some(ip_bytes)) = (frame.get(..ETH_LEN), frame.get(ETH_LEN..)) else {
        return Err(EncapError::Truncated {
            needed: ETH_LEN,
            available: frame.len(),
        });
    };
    let ethertype = match eth.get(12..14) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    };
    if ethertype != ETHERTYPE_IPV4 {
        return Err(EncapError::NotIpv4(ethertype));
    }
    let ip = Ipv4Packet::new_checked(ip_bytes).map_err(ipv4_error)?;
    ip.check_checksum().map_err(ipv4_error)?;
    if ip.is_fragment() {
        return Err(EncapError::IpFragment);
    }
    if ip.protocol() != IpProtocol::UDP {
        return Err(EncapError::NotUdp(ip.protocol().0));
    }
    let udp_start = ETH_LEN + ip.header_len();
    let datagram = ip.payload();
    let Some(&[_, _, dp0, dp1, l0, l1, c0, c1]) = datagram.get(..UDP_LEN) else {
        return Err(EncapError::Truncated {
            needed: udp_start + UDP_LEN,
            available: ETH_LEN + usize::from(ip.total_len()),
        });
    };
    let udp_len = u16::from_be_bytes([l0, l1]);
    if usize::from(udp_len) != datagram.len() {
        return Err(EncapError::BadUdpLength(udp_len));
    }
    let dst_port = u16::from_be_bytes([dp0, dp1]);
    if dst_port != GENEVE_UDP_PORT {
        return Err(EncapError::NotGeneve(dst_port));
    }
    if u16::from_be_bytes([c0, c1]) != 0 {
        let ph = PseudoHeader::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        };
        if ph.checksum(IpProtocol::UDP, datagram) != 0 {
            return Err(EncapError::BadUdpChecksum);
        }
    }
    let geneve_bytes = datagram.get(UDP_LEN..).unwrap_or(&[]);
    let gen = GenevePacket::new_checked(geneve_bytes).map_err(|e| match e {
        GeneveError::BadVersion(v) => EncapError::BadGeneveVersion(v),
        _ => EncapError::GeneveTruncated,
    })?;
    if gen.oam() {
        return Err(EncapError::GeneveOam);
    }
    if gen.protocol_type() != ETHERTYPE_TEB {
        return Err(EncapError::NotEthernetPayload(gen.protocol_type()));
    }
    let inner_len = gen.payload().len();
    if inner_len < ETH_LEN {
        return Err(EncapError::InnerTruncated(inner_len));
    }
    let geneve_start = udp_start + UDP_LEN;
    let options_start = geneve_start + geneve::HEADER_LEN;
    Ok(Outer {
        header_len: geneve_start + gen.header_len(),
        inner_len,
        src_ip: ip.src_addr(),
        dst_ip: ip.dst_addr(),
        vni: gen.vni(),
        critical: gen.critical(),
        options: frame
            .get(options_start..options_start + gen.options_len())
            .unwrap_or(&[]),
    })
}
