//! The RoCEv2 invariant CRC (ICRC).
//!
//! InfiniBand protects every packet twice: a *variant* CRC that each hop
//! recomputes, and an *invariant* CRC (ICRC) computed by the sender over the
//! fields no router may change and checked only by the receiver. RoCEv2
//! (IBA Vol. 1 Annex A17) keeps the ICRC as the last 4 bytes of the UDP
//! payload and defines its coverage over the IP/UDP encapsulation:
//!
//! 1. 8 bytes of `0xFF`, standing in for InfiniBand's Local Route Header,
//!    which RoCEv2 does not have;
//! 2. the IP header with the fields routers rewrite replaced by ones —
//!    IPv4: TOS (DSCP+ECN), TTL and header checksum; IPv6: traffic class,
//!    flow label and hop limit;
//! 3. the UDP header with the checksum replaced by `0xFFFF`;
//! 4. the BTH with its FECN/BECN/reserved byte (byte 4) replaced by `0xFF`,
//!    so that switches can mark congestion without touching the ICRC;
//! 5. the rest of the UDP payload up to, but excluding, the ICRC itself.
//!
//! The CRC is the ordinary CRC-32 of Ethernet and zlib (reflected polynomial
//! `0xEDB88320`, initial value `0xFFFFFFFF`, final complement), exactly what
//! [`crc32fast`] computes. Linux `rxe` (`rxe_icrc.c`) gets the same number by
//! seeding the raw CRC register with `0xDEBB20E3` — the register state after
//! the eight `0xFF` bytes — and complementing at the end.
//!
//! **Byte order.** `rxe` stores the 32-bit result with a plain native store
//! (`*icrcp = ~crc`) on little-endian hosts, i.e. the least significant byte
//! of the CRC goes first on the wire — the same order Ethernet transmits its
//! FCS. A receiver reading the trailer as a big-endian integer therefore sees
//! the byte-swapped value. This module always exchanges the CRC *value*
//! ([`compute_icrc`] returns what `crc32fast` returns) and converts with
//! `to_le_bytes`/`from_le_bytes` at the wire. The test suite checks this
//! against a CNP captured from a Mellanox ConnectX-4 Lx, whose trailer bytes
//! are `82 fd 00 2a` for a CRC value of `0x2a00fd82`.
//!
//! IPv4 options, if present, are covered like the rest of the header (the
//! masks apply to the fixed fields only); RoCE NICs never send options, and
//! `rxe` assumes a 20-byte header. IPv6 packets must carry UDP directly after
//! the fixed header: an extension header would need its own masking rules,
//! which Annex A17 does not define, so such packets are rejected.

use core::fmt;

use crate::bth::{Bth, ICRC_LEN};
use crate::ip::IpProtocol;
use crate::ipv4::{Ipv4Error, Ipv4Packet};
use crate::ipv6::{Ipv6Error, Ipv6Packet};
use crate::udp::{UdpError, UdpPacket};

/// Why the ICRC of a buffer could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcrcError {
    /// The buffer is empty, so not even the IP version is known.
    Empty,
    /// The IP version nibble is neither 4 nor 6.
    UnknownIpVersion(u8),
    /// The IPv4 header is malformed.
    Ipv4(Ipv4Error),
    /// The IPv6 header is malformed.
    Ipv6(Ipv6Error),
    /// The packet does not carry UDP directly after the IP header.
    NotUdp(IpProtocol),
    /// An IPv4 fragment: the ICRC covers the whole datagram.
    Fragmented,
    /// The UDP header is malformed.
    Udp(UdpError),
    /// The UDP payload is shorter than BTH + ICRC.
    PayloadTooShort {
        /// UDP payload bytes present.
        udp_payload_len: usize,
    },
}

impl fmt::Display for IcrcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IcrcError::Empty => f.write_str("empty buffer has no IP header"),
            IcrcError::UnknownIpVersion(v) => write!(f, "IP version {v} is neither 4 nor 6"),
            IcrcError::Ipv4(e) => write!(f, "ipv4: {e}"),
            IcrcError::Ipv6(e) => write!(f, "ipv6: {e}"),
            IcrcError::NotUdp(p) => write!(f, "{p} follows the IP header, RoCEv2 needs udp"),
            IcrcError::Fragmented => {
                f.write_str("IPv4 fragment: the ICRC spans the whole datagram")
            }
            IcrcError::Udp(e) => write!(f, "udp: {e}"),
            IcrcError::PayloadTooShort { udp_payload_len } => write!(
                f,
                "UDP payload of {udp_payload_len} bytes cannot hold a 12-byte BTH and a 4-byte ICRC"
            ),
        }
    }
}

impl std::error::Error for IcrcError {}

/// Where the covered regions sit in an L3 packet.
struct Layout {
    v4: bool,
    ip_header_len: usize,
    /// Offset of the UDP header.
    udp: usize,
    /// UDP Length (header + payload, ICRC included).
    udp_len: usize,
}

impl Layout {
    fn located(&self) -> IcrcLayout {
        IcrcLayout::new(self.v4, self.ip_header_len, self.udp_len)
    }
}

fn locate(l3: &[u8]) -> Result<Layout, IcrcError> {
    let first = *l3.first().ok_or(IcrcError::Empty)?;
    // The views prove `ip_header_len <= ip_end <= l3.len()`.
    let (v4, ip_header_len, ip_end) = match first >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(l3).map_err(IcrcError::Ipv4)?;
            if ip.protocol() != IpProtocol::UDP {
                return Err(IcrcError::NotUdp(ip.protocol()));
            }
            if ip.is_fragment() {
                return Err(IcrcError::Fragmented);
            }
            (true, ip.header_len(), usize::from(ip.total_len()))
        }
        6 => {
            let ip = Ipv6Packet::new_checked(l3).map_err(IcrcError::Ipv6)?;
            if ip.next_header() != IpProtocol::UDP {
                return Err(IcrcError::NotUdp(ip.next_header()));
            }
            let hl = Ipv6Packet::<&[u8]>::HEADER_LEN;
            (false, hl, hl + usize::from(ip.payload_len()))
        }
        v => return Err(IcrcError::UnknownIpVersion(v)),
    };
    let ip_payload = l3.get(ip_header_len..ip_end).unwrap_or(&[]);
    let udp = UdpPacket::new_checked(ip_payload).map_err(IcrcError::Udp)?;
    let udp_payload_len = udp.payload().len();
    if udp_payload_len < Bth::<&[u8]>::HEADER_LEN + ICRC_LEN {
        return Err(IcrcError::PayloadTooShort { udp_payload_len });
    }
    Ok(Layout {
        v4,
        ip_header_len,
        udp: ip_header_len,
        udp_len: usize::from(udp.len()),
    })
}

/// Where the regions the ICRC covers sit in an L3 packet, once a header
/// walk has proved them (see [`crate::roce::RocePacket::icrc_layout`]):
/// [`verify_icrc_at`] then checks the ICRC without walking the IP and UDP
/// headers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcrcLayout {
    v4: bool,
    ip_header_len: u16,
    udp_len: u16,
}

impl IcrcLayout {
    pub(crate) fn new(v4: bool, ip_header_len: usize, udp_len: usize) -> IcrcLayout {
        IcrcLayout {
            v4,
            ip_header_len: ip_header_len.min(usize::from(u16::MAX)) as u16,
            udp_len: udp_len.min(usize::from(u16::MAX)) as u16,
        }
    }

    /// Bytes of IP header (options included) before the UDP header.
    pub fn ip_header_len(&self) -> usize {
        usize::from(self.ip_header_len)
    }
}

/// The CRC state after the eight `0xFF` bytes that stand in for the LRH
/// (`rxe` seeds its raw register with the equivalent `0xDEBB20E3`).
const AFTER_LRH: u32 = 0x2144_df1c;

/// The ICRC of `l3` laid out as `layout` says, or `None` if the buffer is
/// too short for it. Every covered header byte is masked in one stack copy
/// and fed to the CRC at once, then the payload.
fn compute_at(l3: &[u8], layout: IcrcLayout) -> Option<u32> {
    let ip_len = usize::from(layout.ip_header_len);
    let udp_len = usize::from(layout.udp_len);
    // IP header (≤ 60) + UDP (8) + BTH (12).
    const MAX_HDR: usize = 60 + 8 + 12;
    let hdr_len = ip_len + 8 + 12;
    let payload_end = (ip_len + udp_len).checked_sub(ICRC_LEN)?;
    if hdr_len > MAX_HDR || payload_end < hdr_len {
        return None;
    }
    let mut hdr = [0u8; MAX_HDR];
    let masked = hdr.get_mut(..hdr_len)?;
    masked.copy_from_slice(l3.get(..hdr_len)?);
    let payload = l3.get(hdr_len..payload_end)?;
    if layout.v4 {
        masked[1] = 0xff; // TOS
        masked[8] = 0xff; // TTL
        masked[10] = 0xff; // header checksum
        masked[11] = 0xff;
    } else {
        masked[0] |= 0x0f; // traffic class, high nibble
        masked[1] = 0xff; // traffic class low nibble + flow label
        masked[2] = 0xff;
        masked[3] = 0xff;
        masked[7] = 0xff; // hop limit
    }
    masked[ip_len + 6] = 0xff; // UDP checksum
    masked[ip_len + 7] = 0xff;
    masked[ip_len + 8 + 4] = 0xff; // BTH FECN/BECN/reserved
    let mut crc = crc32fast::Hasher::new_with_initial(AFTER_LRH);
    crc.update(masked);
    crc.update(payload);
    Some(crc.finalize())
}

/// The stored trailer of `l3` laid out as `layout` says.
fn stored_at(l3: &[u8], layout: IcrcLayout) -> Option<u32> {
    let end = usize::from(layout.ip_header_len) + usize::from(layout.udp_len);
    let b = l3.get(end.checked_sub(ICRC_LEN)?..end)?;
    let mut w = [0u8; ICRC_LEN];
    w.copy_from_slice(b);
    Some(u32::from_le_bytes(w))
}

/// Computes the ICRC of a RoCEv2 packet. `l3_packet` starts at the IP header
/// and may carry trailing Ethernet padding (lengths come from the headers).
/// Returns the CRC value; its wire form is `value.to_le_bytes()`.
pub fn compute_icrc(l3_packet: &[u8]) -> Result<u32, IcrcError> {
    let layout = locate(l3_packet)?;
    // `locate` proved every region present.
    compute_at(l3_packet, layout.located()).ok_or(IcrcError::PayloadTooShort {
        udp_payload_len: layout.udp_len.saturating_sub(8),
    })
}

/// [`verify_icrc`] for a packet whose layout a header walk already proved
/// (`l3` is [`crate::roce::RocePacket::l3`]): no header is walked again.
/// A buffer shorter than the layout (not the walked frame) is an error.
pub fn verify_icrc_at(l3: &[u8], layout: IcrcLayout) -> Result<bool, IcrcError> {
    match (compute_at(l3, layout), stored_at(l3, layout)) {
        (Some(c), Some(s)) => Ok(c == s),
        _ => Err(IcrcError::PayloadTooShort {
            udp_payload_len: usize::from(layout.udp_len).saturating_sub(8),
        }),
    }
}

/// The ICRC value stored in the packet's trailer.
pub fn stored_icrc(l3_packet: &[u8]) -> Result<u32, IcrcError> {
    let layout = locate(l3_packet)?;
    let at = layout.udp + layout.udp_len - ICRC_LEN;
    let mut b = [0u8; 4];
    b.copy_from_slice(&l3_packet[at..at + ICRC_LEN]);
    Ok(u32::from_le_bytes(b))
}

/// True when the stored ICRC matches the computed one.
pub fn verify_icrc(l3_packet: &[u8]) -> Result<bool, IcrcError> {
    Ok(compute_icrc(l3_packet)? == stored_icrc(l3_packet)?)
}

/// Computes the ICRC and stores it in the trailer, returning the value.
/// Call it last, after every covered field is final.
pub fn write_icrc(l3_packet: &mut [u8]) -> Result<u32, IcrcError> {
    let value = compute_icrc(l3_packet)?;
    let layout = locate(l3_packet)?;
    let at = layout.udp + layout.udp_len - ICRC_LEN;
    l3_packet[at..at + ICRC_LEN].copy_from_slice(&value.to_le_bytes());
    Ok(value)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A RoCEv2 CNP captured on a Mellanox ConnectX-4 Lx (published with
    /// Scapy's RoCE regression tests), starting at the IPv4 header. Its
    /// trailer `82 fd 00 2a` was produced by the NIC hardware.
    pub(crate) const CONNECTX4_CNP_L3: [u8; 60] = [
        0x45, 0xc2, 0x00, 0x3c, 0x71, 0x8c, 0x40, 0x00, 0x40, 0x11, 0x91, 0x61, 0x0a, 0x00, 0x11,
        0x01, 0x0a, 0x00, 0x12, 0x01, // IPv4
        0x00, 0x00, 0x12, 0xb7, 0x00, 0x28, 0x00, 0x00, // UDP
        0x81, 0x00, 0xff, 0xff, 0x40, 0x00, 0x01, 0x18, 0x00, 0x00, 0x00, 0x00, // BTH
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // CNP reserved
        0x82, 0xfd, 0x00, 0x2a, // ICRC
    ];

    #[test]
    fn after_lrh_is_the_crc_of_eight_ones() {
        assert_eq!(crc32fast::hash(&[0xff; 8]), AFTER_LRH);
    }

    #[test]
    fn located_check_matches_the_walking_one() {
        let layout = locate(&CONNECTX4_CNP_L3).unwrap().located();
        assert_eq!(verify_icrc_at(&CONNECTX4_CNP_L3, layout), Ok(true));
        let mut q = CONNECTX4_CNP_L3;
        q[45] ^= 1;
        assert_eq!(verify_icrc_at(&q, layout), Ok(false));
        assert!(verify_icrc_at(&CONNECTX4_CNP_L3[..50], layout).is_err());
    }

    #[test]
    fn hardware_cnp_vector() {
        assert_eq!(compute_icrc(&CONNECTX4_CNP_L3).unwrap(), 0x2a00_fd82);
        assert_eq!(stored_icrc(&CONNECTX4_CNP_L3).unwrap(), 0x2a00_fd82);
        assert!(verify_icrc(&CONNECTX4_CNP_L3).unwrap());
    }

    #[test]
    fn masked_fields_do_not_matter_and_others_do() {
        let mut p = CONNECTX4_CNP_L3;
        p[1] = 0x03; // TOS: ECN marked CE by a switch
        p[8] = 0x01; // TTL decremented
        p[10] = 0x12; // checksum patched
        p[26] = 0xab; // UDP checksum
        p[32] = 0x80; // FECN instead of BECN
        assert!(verify_icrc(&p).unwrap());
        let mut q = CONNECTX4_CNP_L3;
        q[35] ^= 1; // dest QP
        assert!(!verify_icrc(&q).unwrap());
        let mut q = CONNECTX4_CNP_L3;
        q[45] ^= 1; // payload
        assert!(!verify_icrc(&q).unwrap());
    }

    #[test]
    fn write_then_verify_and_padding_ignored() {
        let mut p = CONNECTX4_CNP_L3.to_vec();
        p[56..].fill(0);
        p.extend_from_slice(&[0xee; 6]); // Ethernet padding beyond IP total length
        assert!(!verify_icrc(&p).unwrap());
        assert_eq!(write_icrc(&mut p).unwrap(), 0x2a00_fd82);
        assert_eq!(&p[56..60], &[0x82, 0xfd, 0x00, 0x2a]);
        assert!(verify_icrc(&p).unwrap());
    }

    #[test]
    fn errors() {
        assert_eq!(compute_icrc(&[]), Err(IcrcError::Empty));
        assert_eq!(compute_icrc(&[0x50]), Err(IcrcError::UnknownIpVersion(5)));
        let mut p = CONNECTX4_CNP_L3;
        p[9] = 6;
        assert_eq!(compute_icrc(&p), Err(IcrcError::NotUdp(IpProtocol::TCP)));
        let mut p = CONNECTX4_CNP_L3;
        p[6] = 0x20; // MF
        assert_eq!(compute_icrc(&p), Err(IcrcError::Fragmented));
        let mut p = CONNECTX4_CNP_L3;
        p[25] = 8 + 15; // UDP length leaves 15 payload bytes
        assert_eq!(
            compute_icrc(&p),
            Err(IcrcError::PayloadTooShort {
                udp_payload_len: 15
            })
        );
        assert!(matches!(compute_icrc(&p[..30]), Err(IcrcError::Ipv4(_))));
    }
}
