//! Fragmenting a datagram and putting it back together, as a sending host
//! and a receiving host do (RFC 791 §3.2 for IPv4, RFC 8200 §4.5 for
//! IPv6). For traffic generators and tests, not for the fast path: both
//! functions allocate the frames they return.
//!
//! [`fragment`] cuts a frame's IP payload into pieces of at most
//! `max_data` bytes (rounded down to a multiple of 8) and gives each piece
//! the frame's link-layer header and the datagram's per-fragment headers:
//!
//! * **IPv4**: the first fragment keeps every option, later ones only the
//!   options whose copied flag is set (such as the token-feature option
//!   0x9E); Identification, More Fragments, Fragment Offset, Total Length
//!   and the header checksum are set per fragment, Don't Fragment cleared;
//! * **IPv6**: the unfragmentable part (the fixed header, a Hop-by-Hop
//!   header, and everything up to the last Routing header) is repeated in
//!   every fragment, followed by a Fragment header with the 32-bit
//!   Identification.
//!
//! [`reassemble`] is the receiver: given every fragment of one datagram,
//! in any order, it returns the original frame (link-layer header and
//! per-fragment headers of the first fragment, fragmentation fields
//! removed), or says what is wrong.

use core::fmt;

use crate::checksum::checksum;
use crate::ip::IpProtocol;
use crate::ipv4_option::Ipv4OptionIter;
use crate::ipv6_ext::{self, Ipv6ExtChain};
use crate::parse::{parse, L3Kind, ParseError, ParsedPacket};

/// Why a frame could not be fragmented or fragments reassembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentError {
    /// A frame does not parse.
    Parse(ParseError),
    /// A frame is not IPv4 or IPv6.
    NotIp,
    /// The frame to fragment is already a fragment.
    AlreadyFragmented,
    /// `max_data` is below 8 bytes, the fragment-offset unit.
    DataTooSmall(usize),
    /// The IPv4 option area does not frame.
    BadOptions,
    /// No fragments, or fragments of different datagrams (addresses,
    /// protocol, Identification or IP version differ).
    NotOneDatagram,
    /// The fragments leave a gap, overlap or have no last fragment.
    Incomplete,
    /// The reassembled datagram would exceed 65,535 bytes of IP length.
    TooLong,
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FragmentError::Parse(e) => write!(f, "frame does not parse: {e}"),
            FragmentError::NotIp => f.write_str("not an IPv4 or IPv6 frame"),
            FragmentError::AlreadyFragmented => f.write_str("the frame is already a fragment"),
            FragmentError::DataTooSmall(n) => {
                write!(f, "{n} bytes per fragment is less than the 8-byte unit")
            }
            FragmentError::BadOptions => f.write_str("the IPv4 option area does not frame"),
            FragmentError::NotOneDatagram => {
                f.write_str("the fragments are not of exactly one datagram")
            }
            FragmentError::Incomplete => {
                f.write_str("the fragments leave a gap, overlap or lack the last one")
            }
            FragmentError::TooLong => f.write_str("the datagram would exceed 65535 bytes"),
        }
    }
}

impl std::error::Error for FragmentError {}

/// The IPv4 header (with every option), or the IPv6 unfragmentable part
/// and where its last Next Header field is, of a parsed datagram.
struct Layout {
    l3: usize,
    /// Bytes of per-fragment headers, from `l3`.
    header_len: usize,
    /// IPv6: offset (from `l3`) of the Next Header field naming the first
    /// fragmentable header, and that header's type.
    v6_next: Option<(usize, u8)>,
    /// The fragmentable data, from `l3`.
    data: core::ops::Range<usize>,
}

fn layout(frame: &[u8], p: &ParsedPacket) -> Result<Layout, FragmentError> {
    let l3 = usize::from(p.l3_offset);
    let end = l3 + usize::from(p.l3_len);
    match p.l3_kind {
        L3Kind::Ipv4 => {
            let ihl = usize::from(frame.get(l3).copied().unwrap_or(0) & 0x0f) * 4;
            Ok(Layout {
                l3,
                header_len: ihl,
                v6_next: None,
                data: ihl..end - l3,
            })
        }
        L3Kind::Ipv6 => {
            let payload = frame.get(l3 + 40..end).ok_or(FragmentError::NotIp)?;
            let first = IpProtocol(frame.get(l3 + 6).copied().unwrap_or(0));
            let chain = ipv6_ext::walk(first, payload)
                .map_err(|e| FragmentError::Parse(ParseError::Ipv6Ext(e)))?;
            let unfragmentable = unfragmentable_headers(&chain);
            let (next_at, len) = match unfragmentable.last() {
                Some(h) => (
                    40 + usize::from(h.offset),
                    40 + usize::from(h.offset + h.len),
                ),
                None => (6, 40),
            };
            let next = frame.get(l3 + next_at).copied().unwrap_or(0);
            Ok(Layout {
                l3,
                header_len: len,
                v6_next: Some((next_at, next)),
                data: len..end - l3,
            })
        }
        L3Kind::Arp | L3Kind::Other => Err(FragmentError::NotIp),
    }
}

/// The headers every fragment repeats: through the last Routing header,
/// or else a leading Hop-by-Hop header (RFC 8200 §4.5).
fn unfragmentable_headers(chain: &Ipv6ExtChain) -> &[ipv6_ext::ExtHeaderInfo] {
    let headers = chain.headers();
    match headers
        .iter()
        .rposition(|h| h.header_type == IpProtocol::IPV6_ROUTING)
    {
        Some(i) => &headers[..=i],
        None if headers
            .first()
            .is_some_and(|h| h.header_type == IpProtocol::HOP_BY_HOP) =>
        {
            &headers[..1]
        }
        None => &[],
    }
}

/// The copied IPv4 options of `area`, padded to a multiple of 4.
fn copied_options(area: &[u8]) -> Result<Vec<u8>, FragmentError> {
    let mut out = Vec::new();
    for opt in Ipv4OptionIter::new(area) {
        let opt = opt.map_err(|_| FragmentError::BadOptions)?;
        if opt.kind.copied() {
            let len = 2 + opt.data.len();
            out.extend_from_slice(
                area.get(opt.offset..opt.offset + len)
                    .ok_or(FragmentError::BadOptions)?,
            );
        }
    }
    out.resize(out.len().div_ceil(4) * 4, 0);
    Ok(out)
}

/// Cuts `frame`'s datagram into fragments of at most `max_data` data bytes
/// (rounded down to a multiple of 8), with Identification `ident` (its low
/// 16 bits for IPv4). A datagram that fits in one fragment still becomes
/// one fragment (offset 0, More Fragments clear: for IPv6 an atomic
/// fragment).
pub fn fragment(frame: &[u8], max_data: usize, ident: u32) -> Result<Vec<Vec<u8>>, FragmentError> {
    let unit = max_data / 8 * 8;
    if unit == 0 {
        return Err(FragmentError::DataTooSmall(max_data));
    }
    let p = parse(frame).map_err(FragmentError::Parse)?;
    if p.fragment.is_some() {
        return Err(FragmentError::AlreadyFragmented);
    }
    let lay = layout(frame, &p)?;
    let l2 = &frame[..lay.l3];
    let l3 = &frame[lay.l3..];
    let headers = &l3[..lay.header_len];
    let data = &l3[lay.data.clone()];
    let later_v4_header = match lay.v6_next {
        None => {
            let mut h = headers[..20].to_vec();
            h.extend(copied_options(&headers[20..])?);
            h[0] = 0x40 | (h.len() / 4) as u8;
            Some(h)
        }
        Some(_) => None,
    };
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let chunk = &data[at..(at + unit).min(data.len())];
        let more = at + chunk.len() < data.len();
        let offset = (at / 8) as u16;
        let mut f = l2.to_vec();
        match lay.v6_next {
            None => {
                let mut h = match (&later_v4_header, at) {
                    (Some(later), a) if a > 0 => later.clone(),
                    _ => headers.to_vec(),
                };
                let total =
                    u16::try_from(h.len() + chunk.len()).map_err(|_| FragmentError::TooLong)?;
                h[2..4].copy_from_slice(&total.to_be_bytes());
                h[4..6].copy_from_slice(&(ident as u16).to_be_bytes());
                let flags = (u16::from(more) << 13) | offset;
                h[6..8].copy_from_slice(&flags.to_be_bytes());
                h[10..12].copy_from_slice(&[0, 0]);
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend(h);
            }
            Some((next_at, next)) => {
                let mut h = headers.to_vec();
                let payload_len = u16::try_from(h.len() - 40 + 8 + chunk.len())
                    .map_err(|_| FragmentError::TooLong)?;
                h[4..6].copy_from_slice(&payload_len.to_be_bytes());
                h[next_at] = IpProtocol::IPV6_FRAGMENT.0;
                f.extend(h);
                f.extend_from_slice(&[next, 0]);
                f.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
                f.extend_from_slice(&ident.to_be_bytes());
            }
        }
        f.extend_from_slice(chunk);
        out.push(f);
        at += chunk.len();
        if !more {
            return Ok(out);
        }
    }
}

/// Where one fragment's data sits, and what identifies its datagram.
struct Piece<'a> {
    id: ([u8; 16], [u8; 16], u8, u32, bool),
    start: usize,
    more: bool,
    data: &'a [u8],
}

fn piece(frame: &[u8]) -> Result<(Piece<'_>, ParsedPacket), FragmentError> {
    let p = parse(frame).map_err(FragmentError::Parse)?;
    let info = p.fragment.ok_or(FragmentError::NotOneDatagram)?;
    let flow = p.flow.ok_or(FragmentError::NotIp)?;
    let l3 = usize::from(p.l3_offset);
    let end = l3 + usize::from(p.l3_len);
    let data_start = match p.l3_kind {
        L3Kind::Ipv4 => l3 + usize::from(frame[l3] & 0x0f) * 4,
        _ => {
            let payload = &frame[l3 + 40..end];
            let chain = ipv6_ext::walk(IpProtocol(frame[l3 + 6]), payload)
                .map_err(|e| FragmentError::Parse(ParseError::Ipv6Ext(e)))?;
            let frag = chain
                .headers()
                .iter()
                .find(|h| h.header_type == IpProtocol::IPV6_FRAGMENT)
                .ok_or(FragmentError::NotOneDatagram)?;
            l3 + 40 + usize::from(frag.offset) + 8
        }
    };
    let v6 = p.l3_kind == L3Kind::Ipv6;
    Ok((
        Piece {
            id: (
                flow.src_addr,
                flow.dst_addr,
                flow.protocol.0,
                info.ident,
                v6,
            ),
            start: usize::from(info.offset) * 8,
            more: info.more,
            data: &frame[data_start..end],
        },
        p,
    ))
}

/// Puts the fragments of one datagram, given in any order, back into the
/// frame that was fragmented.
pub fn reassemble(fragments: &[&[u8]]) -> Result<Vec<u8>, FragmentError> {
    let mut pieces = Vec::with_capacity(fragments.len());
    let mut first = None;
    for f in fragments {
        let (piece, p) = piece(f)?;
        if piece.start == 0 {
            first = Some((*f, p));
        }
        pieces.push(piece);
    }
    let id = pieces.first().ok_or(FragmentError::NotOneDatagram)?.id;
    if pieces.iter().any(|p| p.id != id) {
        return Err(FragmentError::NotOneDatagram);
    }
    pieces.sort_by_key(|p| p.start);
    let mut data = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        if p.start != data.len() || p.more == last {
            return Err(FragmentError::Incomplete);
        }
        data.extend_from_slice(p.data);
    }
    let (frame, p) = first.ok_or(FragmentError::Incomplete)?;
    let l3 = usize::from(p.l3_offset);
    let mut out = frame[..l3].to_vec();
    match p.l3_kind {
        L3Kind::Ipv4 => {
            let ihl = usize::from(frame[l3] & 0x0f) * 4;
            let mut h = frame[l3..l3 + ihl].to_vec();
            let total = u16::try_from(ihl + data.len()).map_err(|_| FragmentError::TooLong)?;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[6..8].copy_from_slice(&[0, 0]);
            h[10..12].copy_from_slice(&[0, 0]);
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            out.extend(h);
        }
        _ => {
            let end = l3 + usize::from(p.l3_len);
            let chain = ipv6_ext::walk(IpProtocol(frame[l3 + 6]), &frame[l3 + 40..end])
                .map_err(|e| FragmentError::Parse(ParseError::Ipv6Ext(e)))?;
            let headers = chain.headers();
            let at = headers
                .iter()
                .position(|h| h.header_type == IpProtocol::IPV6_FRAGMENT)
                .ok_or(FragmentError::NotOneDatagram)?;
            let frag_at = 40 + usize::from(headers[at].offset);
            let next_field = match at.checked_sub(1).and_then(|i| headers.get(i)) {
                Some(h) => 40 + usize::from(h.offset),
                None => 6,
            };
            let mut h = frame[l3..l3 + frag_at].to_vec();
            h[next_field] = frame[l3 + frag_at];
            let payload_len =
                u16::try_from(h.len() - 40 + data.len()).map_err(|_| FragmentError::TooLong)?;
            h[4..6].copy_from_slice(&payload_len.to_be_bytes());
            out.extend(h);
        }
    }
    out.extend(data);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::PseudoHeader;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn udp(ph: PseudoHeader, payload: &[u8]) -> Vec<u8> {
        let mut u = vec![0x9c, 0x40, 0x1f, 0x40, 0, 0, 0, 0];
        let len = (8 + payload.len()) as u16;
        u[4..6].copy_from_slice(&len.to_be_bytes());
        u.extend_from_slice(payload);
        let c = ph.checksum(IpProtocol::UDP, &u);
        u[6..8].copy_from_slice(&c.to_be_bytes());
        u
    }

    fn v4_frame(payload: &[u8]) -> Vec<u8> {
        let (src, dst) = (Ipv4Addr::new(10, 0, 1, 11), Ipv4Addr::new(10, 0, 100, 1));
        let u = udp(PseudoHeader::V4 { src, dst }, payload);
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        // IHL 8: a copied option (0x9E, as the token-feature TLV) and a
        // non-copied one (class 2), which later fragments leave out.
        // Identification 0xbeef and no DF, as the reassembled frame has.
        let mut h = vec![0x48, 0, 0, 0, 0xbe, 0xef, 0, 0, 64, 17, 0, 0];
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h.extend_from_slice(&[0x9e, 0x06, 1, 2, 3, 4]); // copied
        h.extend_from_slice(&[0x44, 0x04, 5, 0]); // class 2, not copied
        h.extend_from_slice(&[0, 0]);
        let total = (h.len() + u.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(h);
        f.extend(u);
        f
    }

    fn v6_frame(payload: &[u8]) -> Vec<u8> {
        let src: Ipv6Addr = "fd00:0:0:1::11".parse().unwrap();
        let dst: Ipv6Addr = "fd00:0:0:100::1".parse().unwrap();
        let u = udp(PseudoHeader::V6 { src, dst }, payload);
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        let mut h = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        let plen = (8 + u.len()) as u16;
        h[4..6].copy_from_slice(&plen.to_be_bytes());
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        f.extend(h);
        f.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // Hop-by-Hop, PadN
        f.extend(u);
        f
    }

    #[test]
    fn ipv4_round_trip_keeps_only_copied_options_in_later_fragments() {
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let frame = v4_frame(&payload);
        let frags = fragment(&frame, 300, 0xbeef).unwrap();
        assert_eq!(frags.len(), 4);
        for (i, f) in frags.iter().enumerate() {
            let p = parse(f).unwrap();
            let info = p.fragment.unwrap();
            assert_eq!(info.ident, 0xbeef);
            assert_eq!(info.more, i < 3);
            let ihl = usize::from(f[14] & 0x0f) * 4;
            assert_eq!(ihl, if i == 0 { 32 } else { 28 }, "fragment {i}");
            assert_eq!(f[34], 0x9e, "the copied option is in fragment {i}");
        }
        let mut shuffled: Vec<&[u8]> = frags.iter().map(Vec::as_slice).collect();
        shuffled.reverse();
        assert_eq!(reassemble(&shuffled).unwrap(), frame);
        shuffled.pop();
        assert_eq!(reassemble(&shuffled), Err(FragmentError::Incomplete));
    }

    #[test]
    fn ipv6_round_trip_repeats_the_hop_by_hop_header() {
        let payload = vec![0x5a; 3000];
        let frame = v6_frame(&payload);
        let frags = fragment(&frame, 1232, 0x1234_5678).unwrap();
        assert_eq!(frags.len(), 3);
        for f in &frags {
            let p = parse(f).unwrap();
            assert!(p.ipv6_hbh_options.is_some());
            assert_eq!(p.fragment.unwrap().ident, 0x1234_5678);
            assert_eq!(p.ip_protocol, Some(IpProtocol::UDP));
        }
        let refs: Vec<&[u8]> = frags.iter().map(Vec::as_slice).collect();
        assert_eq!(reassemble(&refs).unwrap(), frame);
        let other = fragment(&frame, 1232, 7).unwrap();
        assert_eq!(
            reassemble(&[refs[0], &other[1], refs[2]]),
            Err(FragmentError::NotOneDatagram)
        );
    }

    #[test]
    fn refusals() {
        let frame = v4_frame(b"x");
        assert_eq!(fragment(&frame, 7, 1), Err(FragmentError::DataTooSmall(7)));
        let one = fragment(&frame, 8, 1).unwrap();
        assert_eq!(
            fragment(&one[0], 8, 1),
            Err(FragmentError::AlreadyFragmented)
        );
        assert_eq!(reassemble(&[]), Err(FragmentError::NotOneDatagram));
    }
}
