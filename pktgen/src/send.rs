//! `pktgen send`: DPDK mode. Replays a workload at full rate (or a set rate)
//! on one port, receives on another, and measures what came back.
//!
//! Every transmitted frame gets a 16-byte latency stamp appended *after* the
//! frame's own bytes (see [`Stamp`]): beyond the IP datagram's total length,
//! where IP, UDP, TCP and RoCEv2 (ICRC) checks do not look, so stamped frames
//! stay valid for any pipeline in the path. The receiver reads the stamp from
//! the tail, and the difference of TSC readings, sender and receiver on the
//! same host, is the latency through the device under test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use dataplane::dpdk::{
    self, Eal, MbufBurst, Mempool, Port, PortId, PortInfo, PortSetup, MAX_BURST, MBUF_DATA_ROOM,
};
use hdrhistogram::Histogram;
use serde::Serialize;

/// The latency stamp: `magic:u32 | seq:u32 | tsc:u64`, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Transmit order, wrapping.
    pub seq: u32,
    /// The sender's TSC when the burst was sent.
    pub tsc: u64,
}

impl Stamp {
    /// "INLT": IntelliNode latency trailer.
    pub const MAGIC: u32 = 0x494e_4c54;
    /// Bytes on the wire.
    pub const LEN: usize = 16;

    /// The wire form.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..4].copy_from_slice(&Self::MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..16].copy_from_slice(&self.tsc.to_be_bytes());
        b
    }

    /// Reads a stamp from the last 16 bytes of `frame`, if there is one.
    pub fn from_tail(frame: &[u8]) -> Option<Stamp> {
        let at = frame.len().checked_sub(Self::LEN)?;
        let tail: &[u8; Self::LEN] = frame.get(at..)?.try_into().ok()?;
        let [m0, m1, m2, m3, s0, s1, s2, s3, t @ ..] = *tail;
        if u32::from_be_bytes([m0, m1, m2, m3]) != Self::MAGIC {
            return None;
        }
        Some(Stamp {
            seq: u32::from_be_bytes([s0, s1, s2, s3]),
            tsc: u64::from_be_bytes(t),
        })
    }
}

/// How `run` drives the ports.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Port to transmit on.
    pub tx_port: u16,
    /// Port to receive on (may equal `tx_port`).
    pub rx_port: u16,
    /// How long to transmit.
    pub duration: Duration,
    /// Stop after this many packets, if set.
    pub count: Option<u64>,
    /// Packets per second to aim for; `None` is as fast as the port takes them.
    pub rate_pps: Option<f64>,
    /// Packets per transmit burst.
    pub burst: usize,
    /// How long to keep receiving after the last transmit.
    pub drain: Duration,
}

/// What `pktgen send` measured. Field names are part of the JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct SendReport {
    /// Frames the TX queue accepted.
    pub tx_packets: u64,
    /// Their bytes, stamps included.
    pub tx_bytes: u64,
    /// Frames the TX queue refused (generator back-pressure, not loss).
    pub tx_refused: u64,
    /// Stamped frames received.
    pub rx_packets: u64,
    /// Bytes of every received frame.
    pub rx_bytes: u64,
    /// Received frames without our stamp (other traffic on the port).
    pub rx_unstamped: u64,
    /// `tx_packets - rx_packets`.
    pub lost: u64,
    /// `lost / tx_packets`.
    pub loss_ratio: f64,
    /// Stamped frames that arrived with a lower sequence than one before them.
    pub reordered: u64,
    /// Seconds from the first to the last transmit.
    pub tx_secs: f64,
    /// Transmit rate, millions of packets per second.
    pub tx_mpps: f64,
    /// Transmit rate, Gbit/s of frame bytes (no preamble or FCS).
    pub tx_gbps: f64,
    /// Receive rate over the same time.
    pub rx_mpps: f64,
    /// Receive rate, Gbit/s.
    pub rx_gbps: f64,
    /// Stamp-to-receive latency, microseconds.
    pub latency_us: LatencyReport,
}

/// Latency distribution in microseconds (HdrHistogram, 3 significant digits).
#[derive(Debug, Clone, Default, Serialize)]
#[allow(missing_docs)]
pub struct LatencyReport {
    pub samples: u64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Default)]
struct Shared {
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_refused: AtomicU64,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_unstamped: AtomicU64,
    reordered: AtomicU64,
    tx_first_tsc: AtomicU64,
    tx_last_tsc: AtomicU64,
    done: AtomicBool,
}

/// Runs the generator. `frames` is the workload, replayed in a loop.
pub fn run(frames: Vec<Vec<u8>>, opts: &SendOptions, eal_args: &[String]) -> Result<SendReport> {
    let max_frame = MBUF_DATA_ROOM - Stamp::LEN;
    let frames: Vec<Vec<u8>> = frames
        .into_iter()
        .filter(|f| !f.is_empty() && f.len() <= max_frame)
        .collect();
    if frames.is_empty() {
        bail!("the workload has no frame that fits an mbuf with its {}-byte stamp (max {max_frame} bytes)", Stamp::LEN);
    }
    if opts.burst == 0 || opts.burst > MAX_BURST {
        bail!("--burst {} is out of range (1 to {MAX_BURST})", opts.burst);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }

    let mut argv = vec!["pktgen".to_owned()];
    if !eal_args.iter().any(|a| a.starts_with("--log-level")) {
        argv.push("--log-level=warning".into());
    }
    if !eal_args
        .iter()
        .any(|a| a == "--telemetry" || a == "--no-telemetry")
    {
        argv.push("--no-telemetry".into());
    }
    argv.extend(eal_args.iter().cloned());
    let eal = Eal::init(&argv).map_err(|e| anyhow!("EAL initialisation failed: {e}"))?;
    let worker = *eal
        .worker_lcores()
        .first()
        .ok_or_else(|| anyhow!("no worker lcore: give EAL two lcores, e.g. `-l 0,1`"))?;
    let nb_ports = eal.port_count();
    for p in [opts.tx_port, opts.rx_port] {
        if p >= nb_ports {
            bail!("port{p} does not exist: EAL created {nb_ports} port(s)");
        }
    }
    let pool = Arc::new(Mempool::new("pktgen_pkts", 16383, 256, 0)?);
    let setup = PortSetup {
        rx_queues: 1,
        tx_queues: 1,
        rx_descriptors: 1024,
        tx_descriptors: 1024,
        rss: dataplane::dpdk::Rss::Flows,
    };
    let mut ports = vec![
        Port::start(PortInfo::query(PortId(opts.tx_port))?, setup, &pool)
            .map_err(|e| anyhow!("port{} cannot start: {e}", opts.tx_port))?,
    ];
    if opts.rx_port != opts.tx_port {
        ports.push(
            Port::start(PortInfo::query(PortId(opts.rx_port))?, setup, &pool)
                .map_err(|e| anyhow!("port{} cannot start: {e}", opts.rx_port))?,
        );
    }

    let hz = eal.tsc_hz().max(1);
    let shared = Arc::new(Shared::default());
    let hist_out: Arc<Mutex<Option<Histogram<u64>>>> = Arc::new(Mutex::new(None));
    {
        let (shared, hist_out, stop, pool, opts) = (
            Arc::clone(&shared),
            Arc::clone(&hist_out),
            Arc::clone(&stop),
            Arc::clone(&pool),
            opts.clone(),
        );
        dpdk::launch(worker, move || {
            let hist = generator_loop(&frames, &opts, &pool, &shared, &stop, hz);
            if let Ok(mut slot) = hist_out.lock() {
                *slot = Some(hist);
            }
            shared.done.store(true, Relaxed);
            0
        })?;
    }
    let started = Instant::now();
    while !shared.done.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
        if started.elapsed() > opts.duration + opts.drain + Duration::from_secs(30) {
            stop.store(true, Relaxed);
        }
    }
    eal.wait_all_workers();
    drop(ports);

    let hist = hist_out
        .lock()
        .ok()
        .and_then(|mut h| h.take())
        .unwrap_or_else(new_histogram);
    Ok(summarise(&shared, &hist, hz))
}

fn new_histogram() -> Histogram<u64> {
    // Fixed bounds (1 ns to 60 s, 3 significant digits) so recording never
    // allocates; longer latencies saturate at the top bucket.
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant bounds are valid"))
}

fn generator_loop(
    frames: &[Vec<u8>],
    opts: &SendOptions,
    pool: &Mempool,
    s: &Shared,
    stop: &AtomicBool,
    hz: u64,
) -> Histogram<u64> {
    let mut hist = new_histogram();
    let ns_per_tick = 1e9 / hz as f64;
    let tx_port = PortId(opts.tx_port);
    let rx_port = PortId(opts.rx_port);
    let start = dpdk::rdtsc();
    let deadline = start + (opts.duration.as_secs_f64() * hz as f64) as u64;
    let limit = opts.count.unwrap_or(u64::MAX);
    let ticks_per_pkt = opts.rate_pps.filter(|r| *r > 0.0).map(|r| hz as f64 / r);
    let mut next_due = start as f64;
    let mut seq: u64 = 0;
    let mut idx = 0usize;
    let mut last_rx_seq: Option<u32> = None;
    let mut drain_until: Option<u64> = None;
    let mut tx = MbufBurst::new();
    let mut rx = MbufBurst::new();
    let (mut tx_packets, mut tx_bytes, mut tx_refused) = (0u64, 0u64, 0u64);
    let (mut rx_packets, mut rx_bytes, mut rx_unstamped, mut reordered) = (0u64, 0u64, 0u64, 0u64);

    while !stop.load(Relaxed) {
        let now = dpdk::rdtsc();
        let sending = now < deadline && seq < limit;
        if sending {
            let due = match ticks_per_pkt {
                None => opts.burst,
                Some(t) => {
                    (((now as f64 - next_due) / t).floor().max(0.0) as usize).min(opts.burst)
                }
            };
            let due = due.min((limit - seq).min(MAX_BURST as u64) as usize);
            if due > 0 && tx.alloc_from(pool, due).is_ok() {
                let mut bytes = 0u64;
                for m in tx.as_mut_slice() {
                    let frame = &frames[idx];
                    idx = if idx + 1 == frames.len() { 0 } else { idx + 1 };
                    let stamp = Stamp {
                        seq: seq as u32,
                        tsc: now,
                    }
                    .to_bytes();
                    seq += 1;
                    // Frames were filtered to fit; an append failure leaves an
                    // empty mbuf that is still sent and simply not stamped.
                    let _ = m.append(frame).and_then(|_| m.append(&stamp));
                    bytes += u64::from(m.pkt_len());
                }
                let total = tx.len() as u64;
                let sent = tx.tx_burst(tx_port, 0) as u64;
                let unsent_bytes: u64 = tx.as_slice().iter().map(|m| u64::from(m.pkt_len())).sum();
                tx_refused += tx.free_all() as u64;
                if sent > 0 && tx_packets == 0 {
                    s.tx_first_tsc.store(now, Relaxed);
                }
                tx_packets += sent;
                tx_bytes += bytes - unsent_bytes;
                if let Some(t) = ticks_per_pkt {
                    next_due += t * total as f64;
                }
                s.tx_last_tsc.store(now, Relaxed);
            }
        } else if drain_until.is_none() {
            drain_until = Some(now + (opts.drain.as_secs_f64() * hz as f64) as u64);
        }

        let got = rx.rx_burst(rx_port, 0, MAX_BURST);
        if got == 0 {
            // A paced generator with nothing due and nothing arriving gives
            // its core back until the next packet is due (at most 50 µs), so
            // kernel-backed ports (af_packet) get CPU time for their softirq
            // work on small machines. Full-rate mode never sleeps.
            if let Some(t) = ticks_per_pkt {
                let wait_ticks = (next_due + t - now as f64).max(0.0);
                let wait = Duration::from_secs_f64((wait_ticks / hz as f64).min(50e-6));
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
            }
        }
        if got > 0 {
            let at = dpdk::rdtsc();
            for m in rx.as_slice() {
                rx_bytes += u64::from(m.pkt_len());
                match Stamp::from_tail(m.data()) {
                    Some(st) => {
                        rx_packets += 1;
                        hist.saturating_record(
                            ((at.wrapping_sub(st.tsc)) as f64 * ns_per_tick).max(1.0) as u64,
                        );
                        if last_rx_seq.is_some_and(|l| st.seq < l) {
                            reordered += 1;
                        }
                        last_rx_seq = Some(st.seq);
                    }
                    None => rx_unstamped += 1,
                }
            }
            rx.free_all();
        }
        if drain_until.is_some_and(|d| now >= d) {
            break;
        }
    }
    for (c, v) in [
        (&s.tx_packets, tx_packets),
        (&s.tx_bytes, tx_bytes),
        (&s.tx_refused, tx_refused),
        (&s.rx_packets, rx_packets),
        (&s.rx_bytes, rx_bytes),
        (&s.rx_unstamped, rx_unstamped),
        (&s.reordered, reordered),
    ] {
        c.store(v, Relaxed);
    }
    hist
}

fn summarise(s: &Shared, hist: &Histogram<u64>, hz: u64) -> SendReport {
    let tx = s.tx_packets.load(Relaxed);
    let rx = s.rx_packets.load(Relaxed);
    let tx_secs = (s
        .tx_last_tsc
        .load(Relaxed)
        .saturating_sub(s.tx_first_tsc.load(Relaxed))) as f64
        / hz as f64;
    let per_sec = |v: f64| if tx_secs > 0.0 { v / tx_secs } else { 0.0 };
    let us = |ns: u64| ns as f64 / 1000.0;
    let latency_us = if hist.is_empty() {
        LatencyReport::default()
    } else {
        LatencyReport {
            samples: hist.len(),
            min: us(hist.min()),
            p50: us(hist.value_at_quantile(0.50)),
            p90: us(hist.value_at_quantile(0.90)),
            p99: us(hist.value_at_quantile(0.99)),
            p999: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
            mean: hist.mean() / 1000.0,
        }
    };
    let lost = tx.saturating_sub(rx);
    SendReport {
        tx_packets: tx,
        tx_bytes: s.tx_bytes.load(Relaxed),
        tx_refused: s.tx_refused.load(Relaxed),
        rx_packets: rx,
        rx_bytes: s.rx_bytes.load(Relaxed),
        rx_unstamped: s.rx_unstamped.load(Relaxed),
        lost,
        loss_ratio: if tx > 0 { lost as f64 / tx as f64 } else { 0.0 },
        reordered: s.reordered.load(Relaxed),
        tx_secs,
        tx_mpps: per_sec(tx as f64) / 1e6,
        tx_gbps: per_sec(s.tx_bytes.load(Relaxed) as f64 * 8.0) / 1e9,
        rx_mpps: per_sec(rx as f64) / 1e6,
        rx_gbps: per_sec(s.rx_bytes.load(Relaxed) as f64 * 8.0) / 1e9,
        latency_us,
    }
}

impl SendReport {
    /// A few readable lines for the terminal.
    pub fn render(&self) -> String {
        let l = &self.latency_us;
        format!(
            "sent     {:>12} packets  {:>8.3} Mpps  {:>8.3} Gbit/s  over {:.2} s ({} refused by the TX queue)\n\
             received {:>12} packets  {:>8.3} Mpps  {:>8.3} Gbit/s  ({} unstamped ignored)\n\
             lost     {:>12} packets  ({:.4}%), {} reordered\n\
             latency  p50 {:.1} us  p90 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  max {:.1} us  ({} samples)",
            self.tx_packets,
            self.tx_mpps,
            self.tx_gbps,
            self.tx_secs,
            self.tx_refused,
            self.rx_packets,
            self.rx_mpps,
            self.rx_gbps,
            self.rx_unstamped,
            self.lost,
            self.loss_ratio * 100.0,
            self.reordered,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            l.samples
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_from_the_tail() {
        let mut frame = vec![0xabu8; 60];
        frame.extend_from_slice(
            &Stamp {
                seq: 7,
                tsc: 0x0102_0304_0506_0708,
            }
            .to_bytes(),
        );
        assert_eq!(
            Stamp::from_tail(&frame),
            Some(Stamp {
                seq: 7,
                tsc: 0x0102_0304_0506_0708
            })
        );
    }

    #[test]
    fn unstamped_and_short_frames_have_no_stamp() {
        assert_eq!(Stamp::from_tail(&[0u8; 60]), None);
        assert_eq!(Stamp::from_tail(&[0x49, 0x4e, 0x4c]), None);
        assert_eq!(Stamp::from_tail(&[]), None);
    }
}
