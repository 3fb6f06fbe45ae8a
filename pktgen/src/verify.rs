//! Off-fast-path checks of one frame: the parse result plus the checksums
//! the fast path deliberately skips (UDP/TCP over the payload, RoCEv2 ICRC).

use std::net::IpAddr;

use classifier::checksum::PseudoHeader;
use classifier::icrc;
use classifier::tcp::TcpPacket;
use classifier::udp::UdpPacket;
use classifier::{parse, IpProtocol, ParseError, ParsedPacket};

/// Everything known about a frame's validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCheck {
    /// What the fast-path parser said.
    pub parsed: Result<ParsedPacket, ParseError>,
    /// The UDP or TCP checksum verdict; `None` when it cannot be checked on
    /// this frame alone (not UDP/TCP, no transport header, or a fragment
    /// of a larger datagram).
    pub l4_checksum: Option<bool>,
    /// The ICRC verdict for RoCEv2 packets.
    pub icrc: Option<bool>,
}

impl FrameCheck {
    /// Parsed, and no checksum that could be checked failed.
    pub fn is_clean(&self) -> bool {
        self.parsed.is_ok() && self.l4_checksum != Some(false) && self.icrc != Some(false)
    }
}

fn pseudo(p: &ParsedPacket) -> Option<PseudoHeader> {
    let key = p.flow?;
    Some(match (key.src_ip(), key.dst_ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => PseudoHeader::V4 { src, dst },
        (IpAddr::V6(src), IpAddr::V6(dst)) => PseudoHeader::V6 { src, dst },
        _ => return None,
    })
}

/// Parses `frame` and verifies every checksum that applies.
///
/// The IPv6 pseudo-header uses the destination in the fixed header, which
/// is the final destination unless a Routing header still has segments
/// left; the generated workloads never send such packets.
pub fn check_frame(frame: &[u8]) -> FrameCheck {
    let parsed = parse(frame);
    let mut check = FrameCheck {
        parsed,
        l4_checksum: None,
        icrc: None,
    };
    let Ok(p) = parsed else {
        return check;
    };
    if p.bth.is_some() {
        check.icrc = icrc::verify_icrc(p.l3(frame)).ok();
    }
    if p.is_fragment() || p.l4_offset.is_none() {
        return check;
    }
    let (Some(ph), l4) = (pseudo(&p), p.l4(frame)) else {
        return check;
    };
    check.l4_checksum = match p.ip_protocol {
        Some(IpProtocol::UDP) => UdpPacket::new_checked(l4)
            .ok()
            .map(|u| u.verify_checksum(&ph)),
        Some(IpProtocol::TCP) => TcpPacket::new_checked(l4)
            .ok()
            .map(|t| t.verify_checksum(&ph)),
        _ => None,
    };
    check
}
