//! ICRC known-answer tests.
//!
//! Three independent sources of truth:
//!
//! 1. a RoCEv2 CNP captured from Mellanox ConnectX-4 Lx hardware (published
//!    with Scapy's RoCE regression tests), ICRC bytes `82 fd 00 2a`;
//! 2. the UC SEND Only packet of the same test suite, whose ICRC field Scapy
//!    reports as `0x78f353f3` (its wire bytes, read big-endian) and whose
//!    IPv4/UDP checksums it reports as `0xb4d5`/`0xaca2`;
//! 3. a reference written here from the definition alone: a bit-at-a-time
//!    CRC-32 over the reflected polynomial `0xEDB88320`, with the masking
//!    done by rebuilding the covered byte string field by field, so that it
//!    shares no code (and no masking strategy) with `classifier::icrc`.

mod common;

use classifier::checksum::PseudoHeader;
use classifier::icrc::{compute_icrc, stored_icrc, verify_icrc, write_icrc};
use classifier::ipv4::Ipv4Packet;
use classifier::udp::UdpPacket;
use classifier::{parse, BthOpcode};
use proptest::prelude::*;
use std::net::Ipv4Addr;

/// CRC-32 (IEEE 802.3), one bit at a time, straight from the polynomial.
fn crc32_bitwise(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb != 0 {
                crc ^= 0xedb8_8320;
            }
        }
    }
    !crc
}

/// The covered byte string, assembled from the spec's field list rather than
/// by patching a copy: mask pseudo-LRH, then each header rebuilt with its
/// variant fields replaced by ones.
fn reference_icrc(l3: &[u8]) -> u32 {
    let mut covered = vec![0xffu8; 8];
    let (ip_hdr_len, udp_start, udp_len) = if l3[0] >> 4 == 4 {
        let ihl = usize::from(l3[0] & 0x0f) * 4;
        // version/IHL, TOS=ff, total length, id, flags/frag, TTL=ff, proto,
        // checksum=ffff, addresses, options.
        covered.push(l3[0]);
        covered.push(0xff);
        covered.extend_from_slice(&l3[2..8]);
        covered.push(0xff);
        covered.push(l3[9]);
        covered.extend_from_slice(&[0xff, 0xff]);
        covered.extend_from_slice(&l3[12..ihl]);
        (
            ihl,
            ihl,
            usize::from(u16::from_be_bytes([l3[ihl + 4], l3[ihl + 5]])),
        )
    } else {
        // version + TC + flow label become 6fff_ffff; payload length and
        // next header kept; hop limit ff; addresses kept.
        covered.extend_from_slice(&(0x6fff_ffffu32).to_be_bytes());
        covered.extend_from_slice(&l3[4..7]);
        covered.push(0xff);
        covered.extend_from_slice(&l3[8..40]);
        (40, 40, usize::from(u16::from_be_bytes([l3[44], l3[45]])))
    };
    let _ = ip_hdr_len;
    covered.extend_from_slice(&l3[udp_start..udp_start + 6]);
    covered.extend_from_slice(&[0xff, 0xff]);
    let bth = udp_start + 8;
    covered.extend_from_slice(&l3[bth..bth + 4]);
    covered.push(0xff);
    covered.extend_from_slice(&l3[bth + 5..udp_start + udp_len - 4]);
    crc32_bitwise(&covered)
}

const CONNECTX4_CNP_FRAME: &str =
    "e41d2dab2bc27cfe90643b32080045c2003c718c4000401191610a0011010a001201\
000012b700280000\
8100ffff4000011800000000\
00000000000000000000000000000000\
82fd002a";

/// Scapy's UC SEND Only example: 192.168.0.7 -> itself, TOS 1, id 1144, DF,
/// UDP 49152 -> 4791, BTH opcode 0x24, M=1, pad 2, P_Key ffff, QP 211,
/// PSN 13571856, 20 bytes of payload.
const SCAPY_UC_L3: &str = "45010040047840004011b4d5c0a80007c0a80007\
c00012b7002caca2\
2460ffff000000d300cf1710\
4630818be28935d90e9a95505401be885e500000\
78f353f3";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn bitwise_crc_is_the_standard_crc32() {
    // The check value every CRC-32 catalogue lists for "123456789".
    assert_eq!(crc32_bitwise(b"123456789"), 0xcbf4_3926);
}

#[test]
fn connectx4_hardware_cnp() {
    let frame = hex(CONNECTX4_CNP_FRAME);
    let p = parse(&frame).unwrap();
    assert_eq!(p.bth.unwrap().opcode, BthOpcode::CNP);
    let l3 = p.l3(&frame);
    assert_eq!(&l3[l3.len() - 4..], &[0x82, 0xfd, 0x00, 0x2a]);
    assert_eq!(compute_icrc(l3).unwrap(), 0x2a00_fd82);
    assert_eq!(reference_icrc(l3), 0x2a00_fd82);
    assert!(verify_icrc(l3).unwrap());
}

#[test]
fn scapy_uc_send_only() {
    let l3 = hex(SCAPY_UC_L3);
    // Scapy's FCSField shows the wire bytes as a big-endian integer.
    assert_eq!(
        u32::from_be_bytes([l3[60], l3[61], l3[62], l3[63]]),
        0x78f3_53f3
    );
    assert_eq!(compute_icrc(&l3).unwrap(), 0xf353_f378);
    assert_eq!(reference_icrc(&l3), 0xf353_f378);
    assert_eq!(stored_icrc(&l3).unwrap(), 0xf353_f378);
    // The same test pins the IPv4 and UDP checksums; check ours agree.
    let ip = Ipv4Packet::new_checked(&l3[..]).unwrap();
    assert_eq!(ip.compute_checksum(), 0xb4d5);
    let udp = UdpPacket::new_checked(&l3[20..]).unwrap();
    let ph = PseudoHeader::V4 {
        src: Ipv4Addr::new(192, 168, 0, 7),
        dst: Ipv4Addr::new(192, 168, 0, 7),
    };
    assert_eq!(udp.compute_checksum(&ph), 0xaca2);
    assert!(udp.verify_checksum(&ph));
    let p = parse(&common::ether(classifier::EtherType::IPV4, &l3)).unwrap();
    let b = p.bth.unwrap();
    assert_eq!(
        (b.opcode, b.dest_qp, b.psn, b.pad_count),
        (BthOpcode::UC_SEND_ONLY, 211, 13_571_856, 2)
    );
    // 20 bytes after the BTH, of which the last 2 are padding.
    assert_eq!(b.data.len, 18);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn matches_independent_reference(
        v6 in any::<bool>(),
        op in prop::sample::select(vec![BthOpcode::RC_WRITE_FIRST, BthOpcode::RC_WRITE_MIDDLE, BthOpcode::RC_SEND_ONLY, BthOpcode::RC_ACK, BthOpcode::CNP]),
        qp in 0u32..0x100_0000, psn in 0u32..0x100_0000,
        data in prop::collection::vec(any::<u8>(), 0..1100),
        tos in any::<u8>(), ttl in any::<u8>(), fecn_becn in any::<u8>(),
    ) {
        let mut f = if v6 { common::roce_v6(op, qp, psn, &data) } else { common::roce_v4(op, qp, psn, &data) };
        let l3_at = 14;
        let want = compute_icrc(&f[l3_at..]).unwrap();
        prop_assert_eq!(reference_icrc(&f[l3_at..]), want);
        prop_assert!(verify_icrc(&f[l3_at..]).unwrap());
        // Scribble over every masked field: the ICRC must not move.
        if v6 {
            f[l3_at] = 0x60 | (tos >> 4);
            f[l3_at + 1] = tos;
            f[l3_at + 7] = ttl;
        } else {
            f[l3_at + 1] = tos;
            f[l3_at + 8] = ttl;
            f[l3_at + 10] = tos;
            f[l3_at + 11] = ttl;
        }
        let udp_at = l3_at + if v6 { 40 } else { 20 };
        f[udp_at + 6] = ttl;
        f[udp_at + 7] = tos;
        f[udp_at + 8 + 4] = fecn_becn;
        prop_assert_eq!(compute_icrc(&f[l3_at..]).unwrap(), want);
        prop_assert_eq!(reference_icrc(&f[l3_at..]), want);
    }

    #[test]
    fn any_covered_byte_change_is_detected(
        data in prop::collection::vec(any::<u8>(), 1..300),
        pick in any::<prop::sample::Index>(), delta in 1u8..=255,
    ) {
        let mut f = common::roce_v4(BthOpcode::RC_SEND_ONLY, 7, 1, &data);
        let l3 = &mut f[14..];
        write_icrc(l3).unwrap();
        // Covered and unmasked: payload bytes after the BTH, before the ICRC.
        let start = 20 + 8 + 12;
        let end = l3.len() - 4;
        let at = start + pick.index(end - start);
        l3[at] ^= delta;
        prop_assert!(!verify_icrc(l3).unwrap());
    }
}
