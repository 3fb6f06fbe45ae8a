//! SYN cookies: the appliance answers a client's SYN without keeping any
//! state, and recognises the client's ACK by the sequence number it
//! acknowledges (RFC 4987 §3.6).
//!
//! The 32-bit initial sequence number of the appliance's SYN-ACK is
//!
//! ```text
//!  31    27 26  24 23   20  19  18                              0
//! ┌────────┬──────┬───────┬────┬─────────────────────────────────┐
//! │ time   │ MSS  │ wscale│SACK│ MAC (19 bits)                   │
//! │ 5 bits │ idx  │ 0..14,│ ok │                                 │
//! │        │      │ 15=no │    │                                 │
//! └────────┴──────┴───────┴────┴─────────────────────────────────┘
//! ```
//!
//! * `time`: a counter of [`COOKIE_PERIOD_NS`] periods, modulo 32; a
//!   cookie is valid in its own period and the next (64 to 128 s), so an
//!   ACK more than two periods late is refused;
//! * the client's SYN options the connection needs later: its MSS,
//!   rounded down to one of [`MSS_TABLE`], its window-scale shift (15 for
//!   none) and whether it permits SACK;
//! * a MAC over the client's and the VIP's addresses and ports, the
//!   client's ISN, the counter and the option bits, keyed by a secret
//!   derived from the engine's random per-process seed
//!   ([`flowtab::hash_words`], a keyed mix, not a cryptographic MAC: it
//!   makes a blind guess succeed once in 2^19, which is what the cookie's
//!   19 bits can give).
//!
//! Timestamps are not encoded: the appliance never offers them, so a
//! spliced connection runs without them (see [`crate::splice`]).

/// Length of one cookie time period.
pub const COOKIE_PERIOD_NS: u64 = 64_000_000_000;

/// The MSS values a cookie can carry; a client's MSS is rounded down to
/// the largest not above it (a smaller one is sent as the first).
pub const MSS_TABLE: [u16; 8] = [216, 536, 1200, 1360, 1400, 1440, 1460, 8960];

/// The TCP options of a client's SYN that a spliced connection keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynOptions {
    /// Maximum segment size (already one of [`MSS_TABLE`] after a cookie
    /// round trip).
    pub mss: u16,
    /// Window-scale shift, when offered (at most 14).
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack: bool,
}

impl Default for SynOptions {
    /// What a SYN without options means (RFC 9293: MSS 536).
    fn default() -> Self {
        SynOptions {
            mss: 536,
            wscale: None,
            sack: false,
        }
    }
}

/// Both ends of a connection, as the client addressed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Client IPv4 address.
    pub client: [u8; 4],
    /// Client port.
    pub client_port: u16,
    /// The VIP.
    pub vip: [u8; 4],
    /// The service port.
    pub vip_port: u16,
}

/// Mints and checks cookies under one secret.
#[derive(Debug, Clone, Copy)]
pub struct CookieJar {
    secret: u64,
}

const MAC_BITS: u32 = 19;
const MAC_MASK: u32 = (1 << MAC_BITS) - 1;

impl CookieJar {
    /// A jar keyed from `seed` (the engine's per-process random seed).
    pub fn new(seed: u64) -> CookieJar {
        // A different key from the tables' hashes, so knowing one says
        // nothing about the other.
        CookieJar {
            secret: seed.rotate_left(29) ^ 0x5f3c_6a1d_9e27_b4c1,
        }
    }

    fn counter(now_ns: u64) -> u32 {
        ((now_ns / COOKIE_PERIOD_NS) & 31) as u32
    }

    fn mac(&self, ends: &Endpoints, client_isn: u32, high: u32) -> u32 {
        let [a, b, c, d] = ends.client;
        let [e, f, g, h] = ends.vip;
        let addrs = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
        let ports = u64::from(ends.client_port) << 48
            | u64::from(ends.vip_port) << 32
            | u64::from(client_isn);
        flowtab::hash_words(self.secret, [addrs, ports, u64::from(high)]) & MAC_MASK
    }

    /// The ISN to answer a SYN with.
    pub fn mint(&self, ends: &Endpoints, client_isn: u32, opts: SynOptions, now_ns: u64) -> u32 {
        let mss_index = MSS_TABLE.iter().rposition(|&m| m <= opts.mss).unwrap_or(0) as u32;
        let wscale = opts.wscale.map_or(15, |s| u32::from(s.min(14)));
        let high = Self::counter(now_ns) << 27
            | mss_index << 24
            | wscale << 20
            | u32::from(opts.sack) << 19;
        high | self.mac(ends, client_isn, high)
    }

    /// The SYN options of a valid cookie (`ack − 1` of the client's
    /// handshake ACK, whose own sequence number is `client_isn + 1`), or
    /// `None` for a forged, mistaken or expired one.
    pub fn check(
        &self,
        ends: &Endpoints,
        client_isn: u32,
        cookie: u32,
        now_ns: u64,
    ) -> Option<SynOptions> {
        let high = cookie & !MAC_MASK;
        let age = Self::counter(now_ns).wrapping_sub(high >> 27) & 31;
        if age > 1 || self.mac(ends, client_isn, high) != cookie & MAC_MASK {
            return None;
        }
        let wscale = (high >> 20) & 15;
        Some(SynOptions {
            mss: *MSS_TABLE.get(((high >> 24) & 7) as usize)?,
            wscale: (wscale != 15).then_some(wscale as u8),
            sack: high & (1 << 19) != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDS: Endpoints = Endpoints {
        client: [10, 0, 0, 1],
        client_port: 40000,
        vip: [10, 9, 0, 1],
        vip_port: 8000,
    };

    #[test]
    fn round_trips_the_options() {
        let jar = CookieJar::new(7);
        for (opts, want_mss) in [
            (
                SynOptions {
                    mss: 1460,
                    wscale: Some(7),
                    sack: true,
                },
                1460,
            ),
            (
                SynOptions {
                    mss: 1448,
                    wscale: None,
                    sack: false,
                },
                1440,
            ),
            (
                SynOptions {
                    mss: 100,
                    wscale: Some(14),
                    sack: true,
                },
                216,
            ),
            (
                SynOptions {
                    mss: 65495,
                    wscale: Some(0),
                    sack: false,
                },
                8960,
            ),
        ] {
            let c = jar.mint(&ENDS, 1234, opts, 5);
            let got = jar.check(&ENDS, 1234, c, 5).unwrap();
            assert_eq!(
                got,
                SynOptions {
                    mss: want_mss,
                    ..opts
                }
            );
        }
    }

    #[test]
    fn expires_after_two_periods() {
        let jar = CookieJar::new(7);
        let t0 = 3 * COOKIE_PERIOD_NS + 1;
        let c = jar.mint(&ENDS, 99, SynOptions::default(), t0);
        assert!(jar.check(&ENDS, 99, c, t0 + COOKIE_PERIOD_NS).is_some());
        assert!(jar.check(&ENDS, 99, c, t0 + 2 * COOKIE_PERIOD_NS).is_none());
        // Not from the future either.
        assert!(jar.check(&ENDS, 99, c, t0 - COOKIE_PERIOD_NS).is_none());
    }

    #[test]
    fn forgeries_fail() {
        let jar = CookieJar::new(7);
        let c = jar.mint(&ENDS, 99, SynOptions::default(), 0);
        // Another client, port, ISN, key or a flipped option bit.
        let other = Endpoints {
            client_port: 40001,
            ..ENDS
        };
        assert!(jar.check(&other, 99, c, 0).is_none());
        assert!(jar.check(&ENDS, 98, c, 0).is_none());
        assert!(CookieJar::new(8).check(&ENDS, 99, c, 0).is_none());
        assert!(jar.check(&ENDS, 99, c ^ (1 << 19), 0).is_none());
        // Blind guesses succeed about once in 2^19.
        let hits = (0..200_000u32)
            .filter(|g| {
                jar.check(&ENDS, 99, g.wrapping_mul(2_654_435_761), 0)
                    .is_some()
            })
            .count();
        assert!(hits < 5, "{hits}");
    }
}
