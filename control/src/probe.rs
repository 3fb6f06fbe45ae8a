//! Active path measurement: the probe format and what a prober learns.
//!
//! An appliance sends small UDP probes down each path it measures to a peer
//! appliance in reflector mode, which turns them around. Round-trip time,
//! its variation and the share of probes that never come back become the
//! path's measured latency, jitter and loss (docs/wire-format.md §4).
//!
//! Only the prober holds the probe key: its HMAC-SHA256 tag (truncated to
//! 16 bytes) covers every field the reflector must echo unchanged, so a
//! forged or altered reply fails verification, and a replayed one is not
//! outstanding any more. Either way it can never move path state, and so
//! can never steer traffic.

use std::collections::VecDeque;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::PathId;
use crate::key::Key;

/// UDP port probes are sent to and from, by default.
pub const DEFAULT_PROBE_PORT: u16 = 7471;
/// Bytes of the probe payload (after the UDP header).
pub const PROBE_LEN: usize = 48;
const MAGIC: [u8; 4] = *b"INPR";
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;

/// Probe or answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeType {
    /// Prober to reflector.
    Request = 1,
    /// Reflector back to prober.
    Reply = 2,
}

/// A decoded probe payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Request or reply.
    pub kind: ProbeType,
    /// The path being measured.
    pub path: PathId,
    /// Per-prober sequence number.
    pub seq: u64,
    /// The prober's monotonic clock at transmit (ns).
    pub tx_ns: u64,
    /// The reflector's clock at turnaround (ns; 0 in requests). Not
    /// authenticated, informational only.
    pub reflect_ns: u64,
    /// The prober's tag over magic, version, path, seq and tx time.
    pub tag: [u8; TAG_LEN],
}

/// Why a payload is not a usable probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// Fewer than 48 bytes.
    Truncated,
    /// Not `INPR` version 1.
    NotAProbe,
    /// Type byte is neither 1 nor 2.
    BadType(u8),
    /// The tag does not verify under the probe key.
    BadTag,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Truncated => write!(f, "probe payload shorter than {PROBE_LEN} bytes"),
            ProbeError::NotAProbe => f.write_str("not an INPR v1 probe"),
            ProbeError::BadType(t) => {
                write!(f, "probe type {t} is neither request (1) nor reply (2)")
            }
            ProbeError::BadTag => f.write_str("probe tag does not verify"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Whether `payload` starts like a probe (magic and version): the cheap
/// check a worker makes before handing it over.
#[inline]
pub fn looks_like_probe(payload: &[u8]) -> bool {
    payload.len() >= PROBE_LEN && payload[..4] == MAGIC && payload[4] == VERSION
}

fn tag(key: &Key, bytes: &[u8; PROBE_LEN]) -> [u8; TAG_LEN] {
    // Covered: magic, version (0..5) and path, seq, tx time (6..24); the
    // type byte (5) and the reflector's timestamp are what a reflector
    // writes, so they are not.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(&bytes[0..5]);
    mac.update(&bytes[6..24]);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full[..TAG_LEN]);
    out
}

impl Probe {
    /// A signed request.
    pub fn request(key: &Key, path: PathId, seq: u64, tx_ns: u64) -> [u8; PROBE_LEN] {
        let mut b = [0u8; PROBE_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = ProbeType::Request as u8;
        b[6..8].copy_from_slice(&path.0.to_be_bytes());
        b[8..16].copy_from_slice(&seq.to_be_bytes());
        b[16..24].copy_from_slice(&tx_ns.to_be_bytes());
        let t = tag(key, &b);
        b[32..48].copy_from_slice(&t);
        b
    }

    /// Parses without verifying the tag (what a reflector does).
    pub fn parse(payload: &[u8]) -> Result<Probe, ProbeError> {
        let b: &[u8; PROBE_LEN] = payload
            .get(..PROBE_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(ProbeError::Truncated)?;
        if b[..4] != MAGIC || b[4] != VERSION {
            return Err(ProbeError::NotAProbe);
        }
        let kind = match b[5] {
            1 => ProbeType::Request,
            2 => ProbeType::Reply,
            t => return Err(ProbeError::BadType(t)),
        };
        let u64_at = |i: usize| {
            u64::from_be_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&b[32..48]);
        Ok(Probe {
            kind,
            path: PathId(u16::from_be_bytes([b[6], b[7]])),
            seq: u64_at(8),
            tx_ns: u64_at(16),
            reflect_ns: u64_at(24),
            tag,
        })
    }

    /// Parses and verifies the tag (what the prober does with a reply).
    pub fn verify(key: &Key, payload: &[u8]) -> Result<Probe, ProbeError> {
        let p = Probe::parse(payload)?;
        let b: &[u8; PROBE_LEN] = payload
            .get(..PROBE_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(ProbeError::Truncated)?;
        let expected = tag(key, b);
        // Constant-time compare: the tag is a MAC.
        let diff = expected
            .iter()
            .zip(&p.tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(ProbeError::BadTag);
        }
        Ok(p)
    }

    /// Turns a request into a reply in place: type 2 and the reflector's
    /// clock. Returns false (and changes nothing) if it is not a request.
    pub fn reflect_in_place(payload: &mut [u8], reflect_ns: u64) -> bool {
        if !looks_like_probe(payload) || payload[5] != ProbeType::Request as u8 {
            return false;
        }
        payload[5] = ProbeType::Reply as u8;
        payload[24..32].copy_from_slice(&reflect_ns.to_be_bytes());
        true
    }
}

/// What a prober has measured on one path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathMeasurement {
    /// Half the smoothed round trip, µs; `None` until a reply arrived in
    /// the loss window.
    pub latency_us: Option<f64>,
    /// RFC 3550-style smoothed variation of the round trip, µs.
    pub jitter_us: Option<f64>,
    /// Share of the probes in the window that were not answered in time.
    pub loss_ratio: f64,
    /// Probes the loss ratio is over.
    pub window: usize,
}

/// Per-path prober state: outstanding probes, smoothed RTT, jitter, loss.
#[derive(Debug, Clone)]
pub struct PathProber {
    path: PathId,
    /// (seq, sent at, answered) of the last `window` probes.
    recent: VecDeque<(u64, u64, bool)>,
    window: usize,
    srtt_ns: Option<f64>,
    jitter_ns: Option<f64>,
    last_rtt_ns: Option<f64>,
    replies_in_window: usize,
}

impl PathProber {
    /// `window` probes make up the loss ratio.
    pub fn new(path: PathId, window: usize) -> PathProber {
        PathProber {
            path,
            recent: VecDeque::with_capacity(window.max(1)),
            window: window.max(1),
            srtt_ns: None,
            jitter_ns: None,
            last_rtt_ns: None,
            replies_in_window: 0,
        }
    }

    /// The path measured.
    pub fn path(&self) -> PathId {
        self.path
    }

    /// Notes a probe sent.
    pub fn on_sent(&mut self, seq: u64, now_ns: u64) {
        if self.recent.len() == self.window {
            if let Some((_, _, answered)) = self.recent.pop_front() {
                if answered {
                    self.replies_in_window -= 1;
                }
            }
        }
        self.recent.push_back((seq, now_ns, false));
    }

    /// A verified reply for this path. Returns the RTT if the probe was
    /// outstanding; a duplicate or unknown seq changes nothing.
    pub fn on_reply(&mut self, probe: &Probe, now_ns: u64) -> Option<u64> {
        let slot = self.recent.iter_mut().find(|(seq, sent, answered)| {
            *seq == probe.seq && *sent == probe.tx_ns && !*answered
        })?;
        slot.2 = true;
        self.replies_in_window += 1;
        let rtt = now_ns.saturating_sub(probe.tx_ns) as f64;
        // RFC 6298 smoothing for the RTT, RFC 3550 §6.4.1 for the jitter:
        // J += (|D| - J) / 16 with D the change between consecutive RTTs.
        self.srtt_ns = Some(match self.srtt_ns {
            None => rtt,
            Some(s) => s + (rtt - s) / 8.0,
        });
        if let Some(last) = self.last_rtt_ns {
            let d = (rtt - last).abs();
            self.jitter_ns = Some(match self.jitter_ns {
                None => d,
                Some(j) => j + (d - j) / 16.0,
            });
        }
        self.last_rtt_ns = Some(rtt);
        Some(rtt as u64)
    }

    /// Current figures; probes younger than `timeout_ns` are not yet
    /// counted as lost.
    pub fn measurement(&self, now_ns: u64, timeout_ns: u64) -> PathMeasurement {
        let due: Vec<&(u64, u64, bool)> = self
            .recent
            .iter()
            .filter(|(_, sent, _)| now_ns.saturating_sub(*sent) >= timeout_ns)
            .collect();
        let lost = due.iter().filter(|(_, _, answered)| !answered).count();
        let loss_ratio = if due.is_empty() {
            0.0
        } else {
            lost as f64 / due.len() as f64
        };
        let answered_recently = self.replies_in_window > 0;
        PathMeasurement {
            latency_us: self
                .srtt_ns
                .filter(|_| answered_recently)
                .map(|s| s / 2.0 / 1000.0),
            jitter_us: self
                .jitter_ns
                .filter(|_| answered_recently)
                .map(|j| j / 1000.0),
            loss_ratio,
            window: due.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap()
    }

    #[test]
    fn request_reflect_verify_round_trip() {
        let mut b = Probe::request(&key(), PathId(3), 42, 1_000);
        assert!(looks_like_probe(&b));
        assert_eq!(Probe::parse(&b).unwrap().kind, ProbeType::Request);
        assert!(Probe::reflect_in_place(&mut b, 77));
        assert!(
            !Probe::reflect_in_place(&mut b, 78),
            "a reply is not reflected again"
        );
        let p = Probe::verify(&key(), &b).unwrap();
        assert_eq!(
            (p.kind, p.path, p.seq, p.tx_ns, p.reflect_ns),
            (ProbeType::Reply, PathId(3), 42, 1_000, 77)
        );
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let b = Probe::request(&key(), PathId(3), 42, 1_000);
        for i in [0usize, 4, 6, 8, 15, 16, 23, 32, 47] {
            let mut t = b;
            t[i] ^= 1;
            assert!(Probe::verify(&key(), &t).is_err(), "byte {i} is covered");
        }
        let other = Key::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(Probe::verify(&other, &b), Err(ProbeError::BadTag));
        assert_eq!(Probe::parse(&b[..47]), Err(ProbeError::Truncated));
        let mut t = b;
        t[5] = 9;
        assert_eq!(Probe::parse(&t), Err(ProbeError::BadType(9)));
    }

    #[test]
    fn rtt_jitter_and_loss() {
        let k = key();
        let mut p = PathProber::new(PathId(1), 10);
        // Ten probes 10 ms apart; RTTs 200, 300, 200, ... µs; every third lost.
        for i in 0..10u64 {
            let sent = i * 10_000_000;
            p.on_sent(i, sent);
            if i % 3 != 2 {
                let rtt = if i % 2 == 0 { 200_000 } else { 300_000 };
                let mut b = Probe::request(&k, PathId(1), i, sent);
                Probe::reflect_in_place(&mut b, 0);
                let probe = Probe::verify(&k, &b).unwrap();
                assert_eq!(p.on_reply(&probe, sent + rtt), Some(rtt));
                assert_eq!(
                    p.on_reply(&probe, sent + rtt),
                    None,
                    "a duplicate is ignored"
                );
            }
        }
        let m = p.measurement(200_000_000, 50_000_000);
        assert_eq!(m.window, 10);
        assert!((m.loss_ratio - 0.3).abs() < 1e-9, "{m:?}");
        let lat = m.latency_us.unwrap();
        assert!((100.0..=150.0).contains(&lat), "half the RTT: {lat}");
        assert!(m.jitter_us.unwrap() > 0.0);
        // A reply for a probe that was never sent moves nothing.
        let mut b = Probe::request(&k, PathId(1), 999, 5);
        Probe::reflect_in_place(&mut b, 0);
        assert_eq!(p.on_reply(&Probe::verify(&k, &b).unwrap(), 10), None);
    }

    #[test]
    fn silence_means_total_loss_and_no_latency() {
        let mut p = PathProber::new(PathId(1), 5);
        for i in 0..5 {
            p.on_sent(i, i * 1_000);
        }
        let m = p.measurement(10_000_000_000, 1_000_000);
        assert_eq!(m.loss_ratio, 1.0);
        assert_eq!(m.latency_us, None);
        assert_eq!(
            p.measurement(1_000_000, 1_000_000).window,
            1,
            "younger probes do not count as lost yet"
        );
    }
}
