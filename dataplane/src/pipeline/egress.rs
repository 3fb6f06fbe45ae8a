//! What the scheduling pipelines (`steer`, `tensor`) share at their egress
//! ports: a line-rate shaper, which makes a virtual device (taking packets
//! as fast as the CPU gives them) behave like a link of a given speed so
//! that queues, and therefore scheduling, exist at all; sending a port's
//! pending burst with its counters; and counting a packet dropped away
//! from the burst it arrived in.

use crate::dpdk::{rdtsc, Mbuf, MbufBurst, PortId};
use crate::stats::{bump, DropReason, LcoreCounters};

/// A token bucket in bytes, refilled from the TSC.
pub struct Shaper {
    pub tokens: f64,
    burst: f64,
    bytes_per_cycle: f64,
    last_tsc: u64,
}

impl Shaper {
    pub fn new(rate_mbps: f64, tsc_hz: u64) -> Shaper {
        let bytes_per_s = rate_mbps * 1e6 / 8.0;
        // One millisecond of line rate, at least a few full frames.
        let burst = (bytes_per_s / 1000.0).max(4.0 * 1518.0);
        Shaper {
            tokens: burst,
            burst,
            bytes_per_cycle: bytes_per_s / tsc_hz.max(1) as f64,
            last_tsc: rdtsc(),
        }
    }

    pub fn refill(&mut self, now: u64) {
        let elapsed = now.wrapping_sub(self.last_tsc) as f64;
        self.last_tsc = now;
        self.tokens = (self.tokens + elapsed * self.bytes_per_cycle).min(self.burst);
    }
}

/// Transmits what `pending` holds on `port`, TX queue `queue`, and counts
/// the packets and bytes the ring took; what it refused stays pending, in
/// order, for the next call. Returns whether anything was sent.
pub fn send_pending(
    pending: &mut MbufBurst,
    port: usize,
    queue: u16,
    lcore: &LcoreCounters,
) -> bool {
    if pending.is_empty() {
        return false;
    }
    let bytes =
        |b: &MbufBurst| -> u64 { b.as_slice().iter().map(|m| u64::from(m.pkt_len())).sum() };
    let before = bytes(pending);
    let sent = pending.tx_burst(PortId(port as u16), queue) as u64;
    if sent == 0 {
        return false;
    }
    if let Some(tx) = lcore.ports.get(port) {
        bump(&tx.tx_packets, sent);
        bump(&tx.tx_bytes, before - bytes(pending));
    }
    true
}

/// Frees a packet dropped away from its burst (left queued at shutdown, or
/// refused by a band it was moved to) and counts it on the port it entered
/// by, so rx = tx + drops still holds.
pub fn count_drop(lcore: &LcoreCounters, m: Mbuf, reason: DropReason) {
    if let Some(rx) = lcore.ports.get(usize::from(m.rx_port().0)) {
        bump(&rx.drops[reason as usize], 1);
    }
    drop(m);
}
