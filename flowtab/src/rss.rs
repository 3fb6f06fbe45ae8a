//! Receive-side scaling as a NIC computes it, so that a worker can tell
//! which queue, and so which worker, a packet belongs to.
//!
//! A pipeline with per-flow state owns each flow on one worker. When the
//! NIC hashes the fields that define ownership with the Toeplitz function
//! and spreads the hashes over the queues with its redirection table
//! (RETA), every packet arrives at its owner and nothing is handed over;
//! that only works if the owner is computed by the *same* function, with
//! the same key and the same table. [`Toeplitz`] is that function (the
//! one Microsoft's RSS specification defines and DPDK's `rte_softrss`
//! computes), and [`owner`] reads the redirection table the appliance
//! programs: entry `j` of [`RETA_ENTRIES`] names queue `j mod workers`.
//! Devices that cannot hash (the vdevs) deliver whatever they deliver, and
//! the same function still decides the owner, so the result does not
//! depend on the device: only the number of handoffs does.
//!
//! The key is the appliance's to choose and is programmed into the NIC;
//! it does not need to be secret for correctness (the flow tables are
//! seeded on their own, [`crate::hash_words`]), but a random key keeps a
//! sender from aiming all its flows at one worker.

/// Bytes of an RSS key: the Toeplitz key length every common NIC takes.
pub const RSS_KEY_LEN: usize = 40;

/// Entries of the redirection table the owner is read from. Devices' RETA
/// sizes are multiples of it (128, 512, 2048), so a device table whose
/// entry `j` names queue `(j mod 128) mod workers` places every hash
/// exactly where [`owner`] says.
pub const RETA_ENTRIES: u32 = 128;

/// The longest input hashed: an IPv6 4-tuple (two addresses, two ports).
pub const MAX_INPUT: usize = 36;

/// The Toeplitz hash under one key, as lookup tables: one 256-entry table
/// per input byte position, so an IPv4 address costs four loads and XORs
/// instead of 32 conditional shifts (36 KiB in all, of which an IPv4
/// input reads the first 4 or 12 KiB).
#[derive(Clone)]
pub struct Toeplitz {
    by_byte: Box<[[u32; 256]; MAX_INPUT]>,
}

impl core::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Toeplitz { .. }")
    }
}

impl Toeplitz {
    /// The tables for `key`.
    pub fn new(key: &[u8; RSS_KEY_LEN]) -> Self {
        // Input bit n (most significant first) contributes the 32 key bits
        // starting at key bit n.
        let window = |n: usize| -> u32 {
            let byte = n / 8;
            let shift = n % 8;
            let wide = key
                .iter()
                .skip(byte)
                .take(5)
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            ((wide << shift) >> 8) as u32
        };
        let mut by_byte = Box::new([[0u32; 256]; MAX_INPUT]);
        for (position, table) in by_byte.iter_mut().enumerate() {
            for (value, out) in table.iter_mut().enumerate() {
                *out = (0..8)
                    .filter(|bit| value & (0x80 >> bit) != 0)
                    .fold(0, |h, bit| h ^ window(position * 8 + bit));
            }
        }
        Toeplitz { by_byte }
    }

    /// The hash of `input` (bytes in network order, as on the wire); bytes
    /// past [`MAX_INPUT`] are not hashed.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        self.by_byte.iter().zip(input).fold(0, |h, (table, &b)| {
            h ^ table.get(usize::from(b)).copied().unwrap_or(0)
        })
    }

    /// The hash of an address as a NIC hashes one address field: the four
    /// bytes of an IPv4 address (given in IPv4-mapped form), or the
    /// sixteen of an IPv6 one.
    #[inline]
    pub fn hash_address(&self, addr: &[u8; 16]) -> u32 {
        self.hash(wire_address(addr))
    }

    /// The hash of a TCP or UDP packet's 4-tuple as a NIC hashes it
    /// (`RTE_ETH_RSS_NONFRAG_IPV4_UDP` and the like): source address,
    /// destination address, source port, destination port, in that
    /// order, addresses as on the wire (IPv4 given in mapped form).
    #[inline]
    pub fn hash_ports(&self, src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16) -> u32 {
        let (s, d) = (wire_address(src), wire_address(dst));
        let mut input = [0u8; MAX_INPUT];
        let mut n = 0;
        for part in [s, d, &sport.to_be_bytes(), &dport.to_be_bytes()] {
            if let Some(to) = input.get_mut(n..n + part.len()) {
                to.copy_from_slice(part);
            }
            n += part.len();
        }
        self.hash(input.get(..n).unwrap_or(&input))
    }
}

/// An address as it is on the wire: the last four bytes of an IPv4-mapped
/// address, all sixteen otherwise.
#[inline]
fn wire_address(addr: &[u8; 16]) -> &[u8] {
    match addr {
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4 @ ..] => v4,
        _ => addr,
    }
}

/// The worker that owns a packet of this RSS hash: the queue the
/// redirection table names for it, queue `q` being worker `q`.
#[inline]
pub fn owner(hash: u32, workers: usize) -> usize {
    (hash % RETA_ENTRIES) as usize % workers.max(1)
}

/// Parses an RSS key written as 80 hexadecimal digits, optionally in
/// colon-separated pairs (`6d:5a:…`, as `ethtool -x` prints one).
pub fn parse_key(text: &str) -> Result<[u8; RSS_KEY_LEN], String> {
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
    if digits.len() != 2 * RSS_KEY_LEN {
        return Err(format!(
            "an RSS key is {RSS_KEY_LEN} bytes: {} hexadecimal digits, got {}",
            2 * RSS_KEY_LEN,
            digits.len()
        ));
    }
    let nibble = |d: u8| -> Result<u8, String> {
        (d as char)
            .to_digit(16)
            .map(|v| v as u8)
            .ok_or_else(|| format!("'{}' is not a hexadecimal digit", d as char))
    };
    let mut key = [0u8; RSS_KEY_LEN];
    for (out, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        if let [hi, lo] = *pair {
            *out = nibble(hi)? << 4 | nibble(lo)?;
        }
    }
    Ok(key)
}

/// The key as 80 lowercase hexadecimal digits.
pub fn format_key(key: &[u8; RSS_KEY_LEN]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of Microsoft's "Verifying the RSS Hash Calculation".
    const MS_KEY: &str =
        "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa";

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut m = [0u8; 16];
        m[10] = 0xff;
        m[11] = 0xff;
        m[12..].copy_from_slice(&a);
        m
    }

    #[test]
    fn microsofts_ipv4_vectors() {
        let t = Toeplitz::new(&parse_key(MS_KEY).unwrap());
        // (source, destination, IPv4 hash) from the specification.
        let cases: [([u8; 4], [u8; 4], u32); 5] = [
            ([66, 9, 149, 187], [161, 142, 100, 80], 0x323e_8fc2),
            ([199, 92, 111, 2], [65, 69, 140, 83], 0xd718_262a),
            ([24, 19, 198, 95], [12, 22, 207, 184], 0xd2d0_a5de),
            ([38, 27, 205, 30], [209, 142, 163, 6], 0x8298_9176),
            ([153, 39, 163, 191], [202, 188, 127, 2], 0x5d18_09c5),
        ];
        for (src, dst, want) in cases {
            let mut input = [0u8; 8];
            input[..4].copy_from_slice(&src);
            input[4..].copy_from_slice(&dst);
            assert_eq!(t.hash(&input), want, "{src:?} -> {dst:?}");
        }
    }

    #[test]
    fn microsofts_ipv4_tcp_vectors_by_ports() {
        let t = Toeplitz::new(&parse_key(MS_KEY).unwrap());
        // (source, source port, destination, destination port, hash).
        type Case = ([u8; 4], u16, [u8; 4], u16, u32);
        let cases: [Case; 3] = [
            (
                [66, 9, 149, 187],
                2794,
                [161, 142, 100, 80],
                1766,
                0x51cc_c178,
            ),
            (
                [199, 92, 111, 2],
                14230,
                [65, 69, 140, 83],
                4739,
                0xc626_b0ea,
            ),
            (
                [24, 19, 198, 95],
                12898,
                [12, 22, 207, 184],
                38024,
                0x5c2b_394a,
            ),
        ];
        for (src, sport, dst, dport, want) in cases {
            assert_eq!(t.hash_ports(&v4(src), &v4(dst), sport, dport), want);
        }
    }

    #[test]
    fn one_address_as_dpdk_softrss_hashes_it() {
        // rte_softrss() of the single 32-bit word, checked against DPDK
        // 22.11's rte_thash.h with the same key.
        let t = Toeplitz::new(&parse_key(MS_KEY).unwrap());
        assert_eq!(t.hash_address(&v4([66, 9, 149, 187])), 0x0e48_b9de);
        assert_eq!(t.hash_address(&v4([10, 0, 1, 11])), 0xd78c_8291);
    }

    #[test]
    fn ipv6_addresses_hash_all_sixteen_bytes() {
        let t = Toeplitz::new(&parse_key(MS_KEY).unwrap());
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = 1;
        let mut b = a;
        b[15] = 2;
        assert_ne!(t.hash_address(&a), t.hash_address(&b));
        assert_eq!(t.hash_address(&a), t.hash(&a));
    }

    #[test]
    fn owners_follow_the_redirection_table() {
        assert_eq!(owner(0, 2), 0);
        assert_eq!(owner(1, 2), 1);
        assert_eq!(owner(128 + 5, 3), 5 % 3);
        assert_eq!(owner(u32::MAX, 1), 0);
        assert_eq!(owner(7, 0), 0);
    }

    #[test]
    fn keys_parse_in_both_spellings_and_refuse_the_rest() {
        let k = parse_key(MS_KEY).unwrap();
        assert_eq!(format_key(&k), MS_KEY);
        let colons: String = MS_KEY
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_key(&colons).unwrap(), k);
        assert!(parse_key("6d5a")
            .unwrap_err()
            .contains("80 hexadecimal digits"));
        let bad = format!("zz{}", &MS_KEY[2..]);
        assert!(parse_key(&bad).unwrap_err().contains("'z'"));
    }
}
