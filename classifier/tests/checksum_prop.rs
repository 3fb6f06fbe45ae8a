//! RFC 1624 incremental updates agree with full recomputation, and the
//! one's complement sum behaves as the RFC 1071 algebra says it must.

use std::net::Ipv4Addr;

use classifier::checksum::{self, PseudoHeader};
use classifier::ip::IpProtocol;
use classifier::ipv4::{Ipv4Packet, Ipv4Repr};
use classifier::tcp::{TcpFlags, TcpPacket, TcpRepr};
use proptest::prelude::*;

/// Reference: 16-bit words, 32-bit accumulator, end-around carry — the
/// textbook RFC 1071 loop, deliberately unlike the crate's 32-bit-word sum.
fn reference_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        sum += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
        sum = (sum & 0xffff) + (sum >> 16);
        i += 2;
    }
    if i < data.len() {
        sum += u32::from(data[i]) << 8;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn header(tos: u8, ttl: u8, ident: u16, src: u32, dst: u32, proto: u8, len: usize) -> Vec<u8> {
    let r = Ipv4Repr {
        src_addr: Ipv4Addr::from(src),
        dst_addr: Ipv4Addr::from(dst),
        protocol: IpProtocol(proto),
        dscp_ecn: tos,
        ident,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        ttl,
        options: &[],
        payload_len: len,
    };
    let mut b = vec![0u8; 20 + len];
    r.emit(&mut b).unwrap();
    b
}

/// Reference fold: the end-around carry repeated until 16 bits remain.
fn reference_fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[test]
fn fold_matches_the_loop_at_the_edges() {
    for acc in [
        0,
        1,
        0xffff,
        0x1_0000,
        0x1_0001,
        0x1_fffe,
        0x2_fffd,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_ffff_fffe,
        u64::MAX - 1,
        u64::MAX,
    ] {
        assert_eq!(checksum::fold(acc), reference_fold(acc), "{acc:#x}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn fold_matches_reference(acc in any::<u64>(), small in 0u64..0x30000) {
        prop_assert_eq!(checksum::fold(acc), reference_fold(acc));
        prop_assert_eq!(checksum::fold(small), reference_fold(small));
    }

    #[test]
    fn sum_matches_reference(data in prop::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(checksum::checksum(&data), reference_checksum(&data));
    }

    #[test]
    fn sum_is_split_invariant(data in prop::collection::vec(any::<u8>(), 0..300), split in any::<prop::sample::Index>()) {
        // Any even split point gives the same total.
        let at = split.index(data.len() + 1) & !1;
        let whole = checksum::partial_sum(0, &data);
        let parts = checksum::combine(checksum::partial_sum(0, &data[..at]), checksum::partial_sum(0, &data[at..]));
        prop_assert_eq!(
            checksum::fold(u64::from(whole)) % 0xffff,
            checksum::fold(u64::from(parts)) % 0xffff
        );
    }

    /// Any one 16-bit word of a valid IPv4 header (other than the checksum
    /// itself) changed and patched with `update16` gives the same checksum a
    /// full recomputation gives.
    #[test]
    fn update16_equals_full_recompute(
        tos in any::<u8>(), ttl in any::<u8>(), ident in any::<u16>(), src in any::<u32>(), dst in any::<u32>(),
        proto in any::<u8>(), word in 0usize..10, new in any::<u16>(),
    ) {
        prop_assume!(word != 5); // the checksum field
        let mut h = header(tos, ttl, ident, src, dst, proto, 0);
        let old_csum = u16::from_be_bytes([h[10], h[11]]);
        let old = u16::from_be_bytes([h[2 * word], h[2 * word + 1]]);
        h[2 * word..2 * word + 2].copy_from_slice(&new.to_be_bytes());
        let incremental = checksum::update16(old_csum, old, new);
        h[10] = 0;
        h[11] = 0;
        prop_assert_eq!(incremental, checksum::checksum(&h));
    }

    /// The data-plane rewrites (TTL, ECN, addresses) through the view keep
    /// the header bit-identical to one emitted fresh with the new values.
    #[test]
    fn view_rewrites_equal_fresh_emit(
        tos in any::<u8>(), ttl in any::<u8>(), ident in any::<u16>(), src in any::<u32>(), dst in any::<u32>(),
        new_ttl in any::<u8>(), new_ecn in 0u8..4, new_src in any::<u32>(), new_dst in any::<u32>(),
    ) {
        let mut h = header(tos, ttl, ident, src, dst, 17, 0);
        {
            let mut p = Ipv4Packet::new_checked(&mut h[..]).unwrap();
            p.set_ttl_incremental(new_ttl);
            p.set_ecn_incremental(classifier::Ecn::from_tos(new_ecn));
            p.set_src_addr_incremental(Ipv4Addr::from(new_src));
            p.set_dst_addr_incremental(Ipv4Addr::from(new_dst));
            prop_assert!(p.verify_checksum());
        }
        let fresh = header((tos & !3) | new_ecn, new_ttl, ident, new_src, new_dst, 17, 0);
        prop_assert_eq!(h, fresh);
    }

    /// Rewriting an address also changes the TCP pseudo-header; patching the
    /// TCP checksum with `update_bytes` equals recomputing it.
    #[test]
    fn tcp_checksum_follows_address_rewrite(
        src in any::<u32>(), dst in any::<u32>(), new_src in any::<u32>(),
        payload in prop::collection::vec(any::<u8>(), 0..200), seq in any::<u32>(),
    ) {
        let r = TcpRepr { src_port: 40000, dst_port: 8000, seq, ack: 1, flags: TcpFlags::ACK, window: 100, urgent: 0, options: &[] };
        let mut seg = vec![0u8; 20 + payload.len()];
        r.emit(&mut seg).unwrap();
        seg[20..].copy_from_slice(&payload);
        let before = PseudoHeader::V4 { src: Ipv4Addr::from(src), dst: Ipv4Addr::from(dst) };
        TcpPacket::new_checked(&mut seg[..]).unwrap().fill_checksum(&before);
        let old_csum = TcpPacket::new_checked(&seg[..]).unwrap().checksum();
        let patched = checksum::update_bytes(old_csum, &src.to_be_bytes(), &new_src.to_be_bytes()).unwrap();
        let after = PseudoHeader::V4 { src: Ipv4Addr::from(new_src), dst: Ipv4Addr::from(dst) };
        let full = TcpPacket::new_checked(&seg[..]).unwrap().compute_checksum(&after);
        prop_assert_eq!(patched, full);
    }
}
