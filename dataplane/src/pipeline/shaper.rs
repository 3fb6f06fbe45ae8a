//! A line-rate shaper for egress ports: what makes a virtual device (which
//! takes packets as fast as the CPU gives them) behave like a link of a
//! given speed, so that queues, and therefore scheduling, exist at all.

use crate::dpdk::rdtsc;

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
