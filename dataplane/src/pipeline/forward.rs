//! The `forward` pipeline: a transparent bump-in-the-wire.
//!
//! Every frame that arrives on one port of a pair leaves the other port
//! byte-for-byte unchanged, malformed ones included: a wire does not judge.
//! The loop touches only mbuf metadata (lengths), never packet data, so it
//! does not prefetch; pipelines that parse headers do.

use std::sync::atomic::Ordering::Relaxed;

use super::WorkerConf;
use crate::dpdk::{rdtsc, MbufBurst};
use crate::stats::{bump, DropReason};

/// Runs until `conf.stop` is set. Never allocates, locks or panics.
pub fn run(conf: &WorkerConf) {
    let counters = &*conf.counters;
    let mut burst = MbufBurst::new();
    // One TSC read per poll: the time from one poll's start to the next
    // poll's start is that poll's cost (rx + work + tx + counters), and it
    // counts as busy only if the poll moved packets.
    let mut poll_started = rdtsc();
    let mut poll_was_busy = false;
    counters.loop_start_tsc.store(poll_started, Relaxed);
    while !conf.stop.load(Relaxed) {
        let mut moved_any = false;
        for route in &conf.routes {
            let now = rdtsc();
            if poll_was_busy {
                bump(&counters.busy_cycles, now.wrapping_sub(poll_started));
            }
            poll_started = now;
            let received = burst.rx_burst(route.rx_port, route.queue, conf.burst_size);
            poll_was_busy = received > 0;
            if received == 0 {
                continue;
            }
            moved_any = true;
            let rx_bytes: u64 = burst
                .as_slice()
                .iter()
                .map(|m| u64::from(m.pkt_len()))
                .sum();
            let sent = burst.tx_burst(route.tx_port, route.queue);
            let mut dropped = 0;
            let mut unsent_bytes = 0;
            if !burst.is_empty() {
                unsent_bytes = burst
                    .as_slice()
                    .iter()
                    .map(|m| u64::from(m.pkt_len()))
                    .sum();
                dropped = burst.free_all() as u64;
            }

            // Route ports were validated against the port count before
            // launch; `get` keeps this panic-free regardless.
            if let Some(rx) = counters.ports.get(usize::from(route.rx_port.0)) {
                bump(&rx.rx_packets, received as u64);
                bump(&rx.rx_bytes, rx_bytes);
                if dropped > 0 {
                    bump(&rx.drops[DropReason::TxQueueFull as usize], dropped);
                }
            }
            if let Some(tx) = counters.ports.get(usize::from(route.tx_port.0)) {
                bump(&tx.tx_packets, sent as u64);
                bump(&tx.tx_bytes, rx_bytes - unsent_bytes);
            }
            bump(&counters.busy_packets, received as u64);
        }
        if !moved_any && !conf.idle_sleep.is_zero() {
            // Only reached when every queue was empty: a syscall per idle
            // pass, never per packet.
            std::thread::sleep(conf.idle_sleep);
        }
    }
    let end = rdtsc();
    if poll_was_busy {
        bump(&counters.busy_cycles, end.wrapping_sub(poll_started));
    }
    counters.loop_end_tsc.store(end, Relaxed);
}
