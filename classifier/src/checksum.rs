//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! IPv4 headers, UDP and TCP all protect themselves with the 16-bit one's
//! complement of the one's complement sum of their 16-bit words. UDP and TCP
//! additionally cover a *pseudo-header* made of the IP addresses, the protocol
//! number and the transport length, so that a packet delivered to the wrong
//! host or protocol fails its check.
//!
//! Two properties of one's complement arithmetic are used below:
//!
//! * Because 2^16 ≡ 1 (mod 2^16 − 1), summing 32-bit big-endian words and
//!   folding the carries at the end gives the same result as summing 16-bit
//!   words, with half the additions. [`partial_sum`] does that.
//! * Because the sum is associative and commutative, changing one 16-bit word
//!   from `m` to `m'` can be reflected without touching the rest of the
//!   packet: `HC' = ~(~HC + ~m + m')` (RFC 1624, equation 3). The data plane
//!   uses [`update16`] and [`update_bytes`] when it rewrites TTL, ECN or
//!   addresses, so it never re-reads the payload. Equation 3 (rather than
//!   RFC 1141's `HC + m − m'`) is used because, as long as some covered word
//!   is non-zero (always true for a real header), it yields bit-for-bit what
//!   a full recomputation yields, never the `0xFFFF` (“−0”) variant.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ip::IpProtocol;

/// Adds `data`, read as big-endian 16-bit words, to the running sum
/// `initial` and returns the sum folded to 16 bits (as a `u32` so callers
/// can keep adding).
///
/// An odd trailing byte is treated as the high half of a word padded with
/// zero, as RFC 1071 specifies. Consequently, when a region is summed in
/// several calls, every call but the last must cover an even number of bytes.
#[inline]
pub fn partial_sum(initial: u32, data: &[u8]) -> u32 {
    // Eight bytes a load, summed with end-around carry as one 64-bit word
    // (2^64 − 1 is a multiple of 2^16 − 1, so the class [`fold`] reads is
    // the 16-bit words' sum's): an add and a carry per eight bytes, on the
    // IPv4 header every steered packet has verified. The words are read in
    // the machine's byte order and the folded sum swapped once at the end
    // (RFC 1071 §2(B): the sum of byte-swapped words is the byte-swapped
    // sum), so a little-endian CPU swaps nothing per word. The carry chain
    // also keeps LLVM from vectorising the loop, which on the baseline
    // x86-64 target costs more than it saves.
    let mut acc = u64::from(u16::from_be(fold32(initial)));
    let mut quads = data.chunks_exact(8);
    for q in quads.by_ref() {
        acc = add_carry(
            acc,
            u64::from_ne_bytes([q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]]),
        );
    }
    let mut rest = quads.remainder();
    if let [a, b, c, d, tail @ ..] = rest {
        acc = add_carry(acc, u64::from(u32::from_ne_bytes([*a, *b, *c, *d])));
        rest = tail;
    }
    // An odd last byte is the high half of a big-endian word: [a, 0].
    let last = match *rest {
        [a, b, c] => u64::from(u16::from_ne_bytes([a, b])) + u64::from(u16::from_ne_bytes([c, 0])),
        [a, b] => u64::from(u16::from_ne_bytes([a, b])),
        [a] => u64::from(u16::from_ne_bytes([a, 0])),
        _ => 0,
    };
    u32::from(u16::from_be(fold(add_carry(acc, last))))
}

/// `acc + w` with the carry out of bit 63 added back in (one's complement
/// addition; cannot overflow again: after a carry the sum is below
/// 2^64 − 1). A non-zero sum stays non-zero.
#[inline(always)]
fn add_carry(acc: u64, w: u64) -> u64 {
    let (sum, carry) = acc.overflowing_add(w);
    sum + u64::from(carry)
}

/// Folds the carries of a wide one's complement accumulator into 16 bits.
///
/// Each step keeps the value's class modulo 2^16 − 1 (2^32 ≡ 2^16 ≡ 1),
/// shrinks anything wider than 16 bits and leaves a 16-bit value as it
/// is; a non-zero value never becomes 0. So the result is the one value
/// of 1..=0xffff in the input's class (0 for 0), whatever the order of
/// the folds: four fixed steps, without a loop's branches, bring any
/// `u64` there.
#[inline]
pub fn fold(acc: u64) -> u16 {
    let a = (acc & 0xffff_ffff) + (acc >> 32); // < 2^33
    let a = (a & 0xffff) + (a >> 16); // < 0x30000
    fold32(a as u32)
}

/// [`fold`] for a sum that fits 32 bits: two steps. After the first the
/// value is at most 0x1fffe, and when its high half is 1 its low half is
/// at most 0xfffe, so the second leaves at most 0xffff.
#[inline(always)]
pub fn fold32(acc: u32) -> u16 {
    let a = (acc & 0xffff) + (acc >> 16); // <= 0x1fffe
    let a = (a & 0xffff) + (a >> 16); // <= 0xffff
    a as u16
}

/// What replacing the field `old` by `new` adds to a one's complement sum
/// (RFC 1624 eq. 3's `~m + m'`, summed over the field's 16-bit words and
/// not folded; below 2^21 for any field of up to 16 words). Summed once, it
/// patches every checksum that covers the field with [`apply_delta`]: a
/// NAT's address change patches the IPv4 header and the TCP or UDP
/// checksum (whose pseudo-header holds the address) with one delta. `N`
/// must be even; an odd last byte is ignored.
#[inline(always)]
pub fn replace_delta<const N: usize>(old: &[u8; N], new: &[u8; N]) -> u32 {
    // Indexed below `N`, so the loop unrolls without bounds checks.
    let mut delta = 0u32;
    let mut i = 0;
    while i + 1 < N {
        let o = u16::from_be_bytes([old[i], old[i + 1]]);
        let n = u16::from_be_bytes([new[i], new[i + 1]]);
        delta += u32::from(!o) + u32::from(n);
        i += 2;
    }
    delta
}

/// RFC 1624 eq. 3 with a [`replace_delta`]: the checksum once the field
/// changed. Equal to [`update_bytes`] on the same field, bit for bit.
#[inline(always)]
pub fn apply_delta(checksum: u16, delta: u32) -> u16 {
    !fold32(u32::from(!checksum) + delta)
}

/// Combines two partial sums (each from [`partial_sum`] or a pseudo-header).
#[inline]
pub fn combine(a: u32, b: u32) -> u32 {
    u32::from(fold(u64::from(a) + u64::from(b)))
}

/// The checksum of `data` alone: the complement of its one's complement sum.
/// Verifying a region that embeds its own checksum yields 0.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !(partial_sum(0, data) as u16)
}

/// Whether a region that embeds its own checksum verifies: `checksum(data)
/// == 0`. For a region of whole 32-bit words (an IPv4 header is IHL of
/// them) the words are summed as they lie in memory, without a carry
/// chain (a 64-bit sum of 32-bit words cannot overflow on any real
/// region), and folded once: the sum folds to 0xffff exactly when the
/// region verifies, in either byte order. The IPv4 header check every
/// steered packet has.
#[inline]
pub fn verifies(data: &[u8]) -> bool {
    if data.len() % 4 != 0 {
        return checksum(data) == 0;
    }
    let sum: u64 = data
        .chunks_exact(4)
        .map(|w| u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    fold(sum) == 0xffff
}

/// The source/destination addresses that UDP and TCP checksums cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PseudoHeader {
    /// RFC 768 / RFC 793 pseudo-header: src, dst, zero, protocol, length.
    V4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
    },
    /// RFC 8200 §8.1 pseudo-header: src, dst, 32-bit length, 3 zero bytes,
    /// next header. Addresses are the final destination's (after routing
    /// headers), which is what the packet carries once it arrives.
    V6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
    },
}

impl PseudoHeader {
    /// The pseudo-header's partial sum for an upper-layer segment of
    /// `upper_len` bytes carrying `protocol`.
    pub fn sum(&self, protocol: IpProtocol, upper_len: usize) -> u32 {
        match *self {
            PseudoHeader::V4 { src, dst } => {
                let s = partial_sum(0, &src.octets());
                let s = partial_sum(s, &dst.octets());
                // The length field is 16 bits in IPv4's pseudo-header;
                // truncation is harmless because a longer segment cannot
                // exist inside an IPv4 packet.
                combine(s, u32::from(protocol.0) + (upper_len as u32 & 0xffff))
            }
            PseudoHeader::V6 { src, dst } => {
                let s = partial_sum(0, &src.octets());
                let s = partial_sum(s, &dst.octets());
                let len = upper_len as u32;
                let s = combine(s, (len >> 16) + (len & 0xffff));
                combine(s, u32::from(protocol.0))
            }
        }
    }

    /// The full UDP/TCP checksum of `segment` (header with its checksum field
    /// zeroed or already filled in, plus payload).
    ///
    /// When verifying a segment whose checksum field is filled in, a correct
    /// packet yields 0.
    pub fn checksum(&self, protocol: IpProtocol, segment: &[u8]) -> u16 {
        let s = self.sum(protocol, segment.len());
        !(partial_sum(s, segment) as u16)
    }
}

/// RFC 1624 equation 3: the new checksum after one 16-bit word of the
/// covered data changes from `old` to `new`.
#[inline]
pub fn update16(checksum: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!checksum) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// Applies [`update16`] for every 16-bit word of a field that changed from
/// `old` to `new` (e.g. an IPv4 or IPv6 address being rewritten). Both
/// slices must have the same, even length and start at an even offset of
/// the covered data; otherwise `None` is returned instead of a wrong answer.
pub fn update_bytes(checksum: u16, old: &[u8], new: &[u8]) -> Option<u16> {
    if old.len() != new.len() || old.len() % 2 != 0 {
        return None;
    }
    // Summing the complements of all old words and all new words first and
    // applying one final fold is equivalent to chaining update16 per word.
    let acc = u64::from(!checksum)
        + u64::from(!(partial_sum(0, old) as u16))
        + u64::from(partial_sum(0, new));
    Some(!fold(acc))
}

/// Convenience for the 8-bit fields the data plane rewrites (TTL, TOS):
/// `high` says whether the byte is the high half of its 16-bit word.
#[inline]
pub fn update8(checksum: u16, old: u8, new: u8, high: bool) -> u16 {
    if high {
        update16(checksum, u16::from(old) << 8, u16::from(new) << 8)
    } else {
        update16(checksum, u16::from(old), u16::from(new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example from RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to
    // 0xddf2 (after folding), so the checksum is 0x220d.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(partial_sum(0, &data), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
        // Every split into even-length prefixes gives the same total.
        for split in [0, 2, 4, 6, 8] {
            let s = partial_sum(partial_sum(0, &data[..split]), &data[split..]);
            assert_eq!(s, 0xddf2);
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(partial_sum(0, &[0xab]), 0xab00);
        assert_eq!(
            partial_sum(0, &[0x12, 0x34, 0xab]),
            0x12 * 256 + 0x34 + 0xab00
        );
    }

    // A real IPv4 header (from a capture of `ping 10.0.0.2`), checksum 0xb861.
    const IPV4_HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn ipv4_header_verifies_and_recomputes() {
        assert_eq!(checksum(&IPV4_HDR), 0);
        let mut h = IPV4_HDR;
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn incremental_ttl_decrement() {
        let mut h = IPV4_HDR;
        let old_word = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new_word = u16::from_be_bytes([h[8], h[9]]);
        let updated = update16(0xb861, old_word, new_word);
        h[10..12].copy_from_slice(&updated.to_be_bytes());
        assert_eq!(checksum(&h), 0);
        assert_eq!(update8(0xb861, 0x40, 0x3f, true), updated);
    }

    /// A seeded xorshift64 stream, for the randomised comparisons below.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// The delta form patches like `update_bytes` and like a full
    /// recomputation, for IPv4 and IPv6 addresses, over a seeded mix.
    #[test]
    fn a_replace_delta_patches_like_update_bytes_and_a_recomputation() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        fn check<const N: usize>(header: &mut [u8; 40], old: [u8; N], new: [u8; N]) {
            header[8..8 + N].copy_from_slice(&old);
            header[6..8].copy_from_slice(&[0, 0]);
            let c = checksum(header);
            header[6..8].copy_from_slice(&c.to_be_bytes());
            let patched = apply_delta(c, replace_delta(&old, &new));
            assert_eq!(Some(patched), update_bytes(c, &old, &new));
            header[8..8 + N].copy_from_slice(&new);
            header[6..8].copy_from_slice(&[0, 0]);
            assert_eq!(patched, checksum(header), "{old:02x?} -> {new:02x?}");
        }
        for round in 0..2000 {
            let mut header = [0u8; 40];
            for b in header.iter_mut() {
                *b = next() as u8;
            }
            // All-ones and all-zero words too, where -0 and +0 differ.
            let fill = |r: u64| match r % 4 {
                0 => 0x00,
                1 => 0xff,
                _ => r as u8,
            };
            let (a, b) = (next(), next());
            let v4_old: [u8; 4] = core::array::from_fn(|i| fill(a >> (8 * i)));
            let v4_new: [u8; 4] = core::array::from_fn(|i| fill(b >> (8 * i)) | 1);
            check(&mut header, v4_old, v4_new);
            let v6_old: [u8; 16] = core::array::from_fn(|i| fill(next() >> (i % 8)));
            let v6_new: [u8; 16] = core::array::from_fn(|i| fill(next() >> (i % 8)) | 1);
            check(&mut header, v6_old, v6_new);
            assert_eq!(fold32(u32::MAX), 0xffff, "round {round}");
            assert_eq!(fold32(0x1_0000), 1);
            assert_eq!(fold32(0), 0);
        }
    }

    /// `verifies` agrees with `checksum(..) == 0` on whole-word regions,
    /// verifying or not, and on the rest.
    #[test]
    fn verifies_agrees_with_the_checksum() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        for len in [0usize, 2, 4, 20, 24, 28, 60, 61, 64] {
            for round in 0..500 {
                let mut h: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if round % 3 == 0 {
                    h.iter_mut().for_each(|b| *b = 0xff * (round % 2) as u8);
                }
                assert_eq!(verifies(&h), checksum(&h) == 0, "{h:02x?}");
                if len >= 12 {
                    h[10..12].copy_from_slice(&[0, 0]);
                    let c = checksum(&h);
                    h[10..12].copy_from_slice(&c.to_be_bytes());
                    assert!(verifies(&h), "{h:02x?}");
                    h[(next() as usize) % len] ^= 1 << (next() % 8);
                    assert_eq!(verifies(&h), checksum(&h) == 0, "{h:02x?}");
                }
            }
        }
        assert!(verifies(&IPV4_HDR));
    }

    #[test]
    fn update_bytes_rejects_odd_or_mismatched() {
        assert_eq!(update_bytes(0, &[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(update_bytes(0, &[1, 2], &[1, 2, 3, 4]), None);
        assert_eq!(update_bytes(0x1234, &[], &[]), Some(0x1234));
    }

    // UDP over IPv4, 192.168.0.1:1024 -> 192.168.0.199:53 with payload "hi",
    // computed by hand: pseudo 0xc0a8+0x0001+0xc0a8+0x00c7+0x0011+0x000a,
    // header 0x0400+0x0035+0x000a, data 0x6869.
    #[test]
    fn udp_pseudo_header_v4() {
        let seg = [0x04, 0x00, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];
        let ph = PseudoHeader::V4 {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
        };
        let words: u32 =
            0xc0a8 + 0x0001 + 0xc0a8 + 0x00c7 + 0x0011 + 0x000a + 0x0400 + 0x0035 + 0x000a + 0x6869;
        let expect = !(fold(u64::from(words)));
        assert_eq!(ph.checksum(IpProtocol::UDP, &seg), expect);
        let mut filled = seg;
        filled[6..8].copy_from_slice(&expect.to_be_bytes());
        assert_eq!(ph.checksum(IpProtocol::UDP, &filled), 0);
    }

    #[test]
    fn pseudo_header_v6_counts_length_and_next_header() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let ph = PseudoHeader::V6 { src, dst };
        // 0x2001+0x0db8+0x0001 twice, +0x0001 (dst low word is 2 => +1), len 8, nh 17
        let expect = 2 * (0x2001 + 0x0db8) + 0x0001 + 0x0002 + 8 + 17;
        assert_eq!(ph.sum(IpProtocol::UDP, 8), expect);
    }
}
