//! NAT rewrites for steering: VIP → instance on the way in, instance → VIP
//! on the way back.
//!
//! Clients address a *service VIP*. When the steering decision picks an
//! instance, [`rewrite_destination`] points the request at it (Ethernet
//! destination MAC and IP destination address); when the instance answers,
//! [`rewrite_source`] puts the VIP back as the IP source (and optionally the
//! appliance's MAC as the Ethernet source), so the client only ever sees
//! the VIP.
//!
//! # Checksums
//!
//! Changing an IP address invalidates two checksums: the IPv4 header
//! checksum (IPv6 has none) and the TCP/UDP/ICMPv6 checksum, whose
//! *pseudo-header* includes both addresses. Both are patched with RFC 1624
//! incremental updates ([`classifier::checksum::update_bytes`]): the cost is
//! a few additions regardless of payload size, and the payload is never
//! read. Because the pseudo-header change is independent of the payload,
//! the same patch is right for the first fragment of a fragmented datagram,
//! whose checksum covers bytes that are not in this frame.
//!
//! Special cases the patch must respect:
//!
//! * a **non-first fragment** carries no transport header
//!   ([`ParsedPacket::l4_offset`] is `None`): only the IP header changes;
//!   the checksum lives in the first fragment, which gets its own rewrite;
//! * a **UDP checksum of 0** means "no checksum" (RFC 768; RFC 6935 allows
//!   it over IPv6 for tunnels): it stays 0, since patching it would
//!   fabricate a wrong checksum where there was none;
//! * a UDP checksum that *computes* to 0 is sent as `0xFFFF` (RFC 768),
//!   because 0 would read as "none";
//! * other protocols are rewritten at the IP layer only. ICMPv4 and ESP do
//!   not cover the addresses; DCCP and UDP-Lite do but are not expected on
//!   an LLM front end, and AH-protected packets cannot be NATed at all.
//!
//! # IPv6 Routing headers
//!
//! With a Routing header, the IPv6 destination field holds the *next*
//! waypoint, while the transport checksum is computed over the *final*
//! destination, which sits inside the Routing header. Patching the checksum
//! for a change of the destination field would then corrupt it, and
//! steering a source-routed packet is meaningless anyway, so
//! [`rewrite_destination`] refuses such packets
//! ([`RewriteError::RoutingHeader`]), found by the parser while it walked
//! the extension chain ([`ParsedPacket::ipv6_routing`]), so no second
//! walk. The source side is unaffected: the pseudo-header source
//! is always the source field, so [`rewrite_source`] accepts them.
//!
//! # All or nothing
//!
//! Each function first works out every byte it will write (reading the
//! frame, checking every offset) and only then writes. An error therefore
//! leaves the frame byte-for-byte untouched, and the caller can still
//! forward or drop the original.
//!
//! Nothing here allocates, panics or loops over the payload; the functions
//! are meant for the per-packet path.

use core::fmt;
use core::ops::Range;
use std::net::IpAddr;

use classifier::checksum::{apply_delta, replace_delta};
use classifier::{EtherType, FlowPacket, IpProtocol, IpVersion, L3Kind, ParsedPacket, Span};

/// Why a rewrite was refused. The frame is unchanged in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteError {
    /// The frame is not IPv4 or IPv6 (ARP or another EtherType).
    NotIp {
        /// The EtherType after any VLAN tags.
        ethertype: EtherType,
    },
    /// The new address is of the other IP version than the packet.
    FamilyMismatch {
        /// The packet's IP version.
        packet: IpVersion,
        /// The new address's IP version.
        address: IpVersion,
    },
    /// An IPv6 Routing header is present, so the transport checksum covers
    /// the final destination inside it rather than the destination field.
    RoutingHeader {
        /// The header's Segments Left field.
        segments_left: u8,
    },
    /// The frame ends before a header the parse result points at: the
    /// frame is not the one that was parsed, or was truncated since.
    FrameTooShort {
        /// Bytes the rewrite needs.
        needed: usize,
        /// Bytes in the frame.
        available: usize,
    },
    /// The bytes at the parse result's offsets are not the header it
    /// describes (wrong IP version nibble, or an IPv6 extension chain that
    /// no longer walks).
    HeaderMismatch {
        /// Frame offset of the network-layer header.
        l3_offset: usize,
    },
}

impl RewriteError {
    /// A stable `rewrite.reason` key for counters.
    pub const fn code(&self) -> &'static str {
        match self {
            RewriteError::NotIp { .. } => "rewrite.not_ip",
            RewriteError::FamilyMismatch { .. } => "rewrite.family_mismatch",
            RewriteError::RoutingHeader { .. } => "rewrite.routing_header",
            RewriteError::FrameTooShort { .. } => "rewrite.frame_too_short",
            RewriteError::HeaderMismatch { .. } => "rewrite.header_mismatch",
        }
    }
}

const fn version_name(v: IpVersion) -> &'static str {
    match v {
        IpVersion::V4 => "IPv4",
        IpVersion::V6 => "IPv6",
    }
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RewriteError::NotIp { ethertype } => write!(
                f,
                "cannot NAT a non-IP frame (EtherType {:#06x})",
                ethertype.0
            ),
            RewriteError::FamilyMismatch { packet, address } => write!(
                f,
                "cannot write an {} address into an {} packet",
                version_name(address),
                version_name(packet)
            ),
            RewriteError::RoutingHeader { segments_left } => write!(
                f,
                "IPv6 packet has a Routing header (segments left {segments_left}); its checksum covers the final destination, refusing to rewrite the destination"
            ),
            RewriteError::FrameTooShort { needed, available } => write!(
                f,
                "rewrite needs {needed} bytes of frame but only {available} are present"
            ),
            RewriteError::HeaderMismatch { l3_offset } => write!(
                f,
                "frame does not hold the IP header the parse result describes at offset {l3_offset}"
            ),
        }
    }
}

impl std::error::Error for RewriteError {}

/// Which address the rewrite replaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

const ETH_DST: Range<usize> = 0..6;
const ETH_SRC: Range<usize> = 6..12;
const IPV4_CHECKSUM: usize = 10;
const IPV4_SRC: usize = 12;
const IPV4_DST: usize = 16;
const IPV6_SRC: usize = 8;
const IPV6_DST: usize = 24;
const IPV6_HEADER_LEN: usize = 40;
const TCP_CHECKSUM: usize = 16;
const UDP_CHECKSUM: usize = 6;
const ICMPV6_CHECKSUM: usize = 2;

/// Where the headers a rewrite touches sit: what it reads of a parse
/// result. Built from [`classifier::parse`]'s [`ParsedPacket`] or from the
/// steering fast path's [`FlowPacket`] ([`classifier::flow_walk`]), which
/// locate the same headers alike for the frames both accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The EtherType after any VLAN tags.
    pub ethertype: EtherType,
    /// Network-layer kind.
    pub l3_kind: L3Kind,
    /// Frame offset of the IP header.
    pub l3_offset: u16,
    /// Frame offset of the transport header, when there is one.
    pub l4_offset: Option<u16>,
    /// The upper-layer protocol.
    pub ip_protocol: Option<IpProtocol>,
    /// The IPv6 Routing header, when present.
    pub ipv6_routing: Option<Span>,
}

impl Layout {
    /// The headers a full parse located.
    #[inline(always)]
    pub fn of_parsed(p: &ParsedPacket) -> Layout {
        Layout {
            ethertype: p.ethertype,
            l3_kind: p.l3_kind,
            l3_offset: p.l3_offset,
            l4_offset: p.l4_offset,
            ip_protocol: p.ip_protocol,
            ipv6_routing: p.ipv6_routing,
        }
    }

    /// The headers the flow walk located (it declines Routing headers).
    #[inline(always)]
    pub fn of_walked(w: &FlowPacket) -> Layout {
        Layout {
            ethertype: match w.l3_kind {
                L3Kind::Ipv6 => EtherType::IPV6,
                _ => EtherType::IPV4,
            },
            l3_kind: w.l3_kind,
            l3_offset: w.l3_offset,
            l4_offset: Some(w.l4_offset),
            ip_protocol: Some(w.key.protocol),
            ipv6_routing: None,
        }
    }
}

/// Points a request at the chosen instance: Ethernet destination `mac`, IP
/// destination `ip`, checksums patched (see the module documentation).
///
/// `parsed` must be [`classifier::parse`]'s result for `frame`. On error the
/// frame is unchanged.
pub fn rewrite_destination(
    frame: &mut [u8],
    parsed: &ParsedPacket,
    mac: [u8; 6],
    ip: IpAddr,
) -> Result<(), RewriteError> {
    rewrite_destination_at(frame, &Layout::of_parsed(parsed), mac, ip)
}

/// [`rewrite_destination`] for headers located by a [`Layout`].
#[inline(always)]
pub fn rewrite_destination_at(
    frame: &mut [u8],
    at: &Layout,
    mac: [u8; 6],
    ip: IpAddr,
) -> Result<(), RewriteError> {
    rewrite_at(frame, at, Side::Destination, Some(mac), ip)
}

/// Translates a response back to the VIP: IP source `ip`, and the Ethernet
/// source when `mac` is given, checksums patched.
///
/// `parsed` must be [`classifier::parse`]'s result for `frame`. On error the
/// frame is unchanged.
pub fn rewrite_source(
    frame: &mut [u8],
    parsed: &ParsedPacket,
    mac: Option<[u8; 6]>,
    ip: IpAddr,
) -> Result<(), RewriteError> {
    rewrite_source_at(frame, &Layout::of_parsed(parsed), mac, ip)
}

/// [`rewrite_source`] for headers located by a [`Layout`].
#[inline(always)]
pub fn rewrite_source_at(
    frame: &mut [u8],
    at: &Layout,
    mac: Option<[u8; 6]>,
    ip: IpAddr,
) -> Result<(), RewriteError> {
    rewrite_at(frame, at, Side::Source, mac, ip)
}

fn too_short(needed: usize, frame: &[u8]) -> RewriteError {
    RewriteError::FrameTooShort {
        needed,
        available: frame.len(),
    }
}

fn read16(frame: &[u8], at: usize) -> Result<u16, RewriteError> {
    match frame.get(at..at.saturating_add(2)) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(too_short(at.saturating_add(2), frame)),
    }
}

/// Checks the packet against the new address's family and dispatches to
/// the rewrite of that IP version. Inlined into the two callers, so the
/// side and (for a walked packet) the version are known at compile time.
#[inline(always)]
fn rewrite_at(
    frame: &mut [u8],
    at: &Layout,
    side: Side,
    mac: Option<[u8; 6]>,
    ip: IpAddr,
) -> Result<(), RewriteError> {
    match (at.l3_kind, ip) {
        (L3Kind::Ipv4, IpAddr::V4(a)) => rewrite_address(frame, at, side, mac, a.octets()),
        (L3Kind::Ipv6, IpAddr::V6(a)) => rewrite_address(frame, at, side, mac, a.octets()),
        (L3Kind::Arp | L3Kind::Other, _) => Err(RewriteError::NotIp {
            ethertype: at.ethertype,
        }),
        (L3Kind::Ipv4, IpAddr::V6(_)) => Err(RewriteError::FamilyMismatch {
            packet: IpVersion::V4,
            address: IpVersion::V6,
        }),
        (L3Kind::Ipv6, IpAddr::V4(_)) => Err(RewriteError::FamilyMismatch {
            packet: IpVersion::V6,
            address: IpVersion::V4,
        }),
    }
}

/// The rewrite of an `N`-byte address (4: IPv4, 16: IPv6) in a packet of
/// that version: every byte to write is worked out and every offset
/// checked first, then the frame is written. Straight-line code on
/// fixed-size arrays, with nothing returned through memory in between
/// (a plan struct and loops over its optional parts cost about as much as
/// the rewrite itself, on every packet).
#[inline(always)]
fn rewrite_address<const N: usize>(
    frame: &mut [u8],
    at: &Layout,
    side: Side,
    mac: Option<[u8; 6]>,
    new: [u8; N],
) -> Result<(), RewriteError> {
    let v6 = N == 16;
    let l3 = usize::from(at.l3_offset);
    let header_len = if v6 { IPV6_HEADER_LEN } else { 20 };
    if frame.len() < l3 + header_len {
        return Err(too_short(l3 + header_len, frame));
    }
    let expected_nibble = if v6 { 6 } else { 4 };
    if frame.get(l3).map(|b| b >> 4) != Some(expected_nibble) {
        return Err(RewriteError::HeaderMismatch { l3_offset: l3 });
    }
    let addr_at = l3
        + match (v6, side) {
            (false, Side::Source) => IPV4_SRC,
            (false, Side::Destination) => IPV4_DST,
            (true, Side::Source) => IPV6_SRC,
            (true, Side::Destination) => IPV6_DST,
        };
    let old: [u8; N] = *frame
        .get(addr_at..)
        .and_then(|tail| tail.first_chunk::<N>())
        .ok_or_else(|| too_short(addr_at + N, frame))?;

    if v6 && side == Side::Destination {
        refuse_routing_header(frame, at)?;
    }

    // RFC 1624 eq. 3, with the part that depends only on the addresses
    // summed once for both checksums.
    let delta = replace_delta(&old, &new);
    let patch = |c: u16| apply_delta(c, delta);

    let ip_checksum = if v6 {
        None
    } else {
        let at = l3 + IPV4_CHECKSUM;
        Some((at, patch(read16(frame, at)?)))
    };

    let l4_checksum = match (at.l4_offset, at.ip_protocol) {
        (Some(l4), Some(proto)) => {
            let l4 = usize::from(l4);
            match proto {
                IpProtocol::TCP => {
                    let at = l4 + TCP_CHECKSUM;
                    Some((at, patch(read16(frame, at)?)))
                }
                IpProtocol::UDP => {
                    let at = l4 + UDP_CHECKSUM;
                    match read16(frame, at)? {
                        0 => None,
                        old_sum => match patch(old_sum) {
                            0 => Some((at, 0xffff)),
                            c => Some((at, c)),
                        },
                    }
                }
                IpProtocol::ICMPV6 if v6 => {
                    let at = l4 + ICMPV6_CHECKSUM;
                    Some((at, patch(read16(frame, at)?)))
                }
                _ => None,
            }
        }
        _ => None,
    };

    let mac_range = match side {
        Side::Source => ETH_SRC,
        Side::Destination => ETH_DST,
    };
    if frame.len() < mac_range.end {
        return Err(too_short(mac_range.end, frame));
    }

    // The write phase. Every offset was checked above, so none of these
    // `put`s can miss; they are written this way so that even a logic
    // error here cannot panic on the data path.
    if let Some(mac) = mac {
        put(frame, mac_range.start, &mac);
    }
    put(frame, addr_at, &new);
    if let Some((at, value)) = ip_checksum {
        put(frame, at, &value.to_be_bytes());
    }
    if let Some((at, value)) = l4_checksum {
        put(frame, at, &value.to_be_bytes());
    }
    Ok(())
}

/// Refuses a destination rewrite of a packet with an IPv6 Routing header.
fn refuse_routing_header(frame: &[u8], parsed: &Layout) -> Result<(), RewriteError> {
    // The parser located the Routing header while walking the chain; its
    // byte 3 is Segments Left.
    match parsed.ipv6_routing {
        Some(span) => Err(RewriteError::RoutingHeader {
            segments_left: span.slice(frame).get(3).copied().unwrap_or(0),
        }),
        None => Ok(()),
    }
}

/// Writes `N` bytes at `at`, if they fit.
#[inline(always)]
fn put<const N: usize>(frame: &mut [u8], at: usize, bytes: &[u8; N]) {
    if let Some(dst) = frame
        .get_mut(at..)
        .and_then(|tail| tail.first_chunk_mut::<N>())
    {
        *dst = *bytes;
    }
}
