//! Packet pipelines: what a worker lcore does with each burst, and the one
//! loop that drives them.
//!
//! Like DPDK's l3fwd, each worker gets one [`WorkerConf`] naming exactly the
//! RX queues it polls and where their packets go, and each pipeline
//! (`forward`, `steer`, `tensor`) is a small [`Pipeline`] implementation:
//! what to do with a burst, what to send, what to age. Everything every
//! pipeline needs around that is done once, in [`run`]: busy-cycle
//! accounting, idle sleep, loading the control plane's view, the
//! housekeeping tick, receiving packets other workers handed over, and the
//! shutdown drain.
//!
//! With several workers a packet can arrive on a queue whose worker does
//! not own its flow (a vdev, or a NIC whose RSS does not hash both
//! directions of a flow alike). The pipeline hands it to the owner over a
//! bounded lock-free ring ([`Handoff`]), as VPP's worker handoff does; the
//! owner processes it as if it had received it. Handoffs and full rings are
//! counted, and rx = tx + drops still holds: a packet is counted received
//! once, by the worker that took it from the NIC. A worker takes a burst
//! from its RX queues only while every other worker's ring has room for
//! it ([`Handoff::room_for`]), so an owner that falls behind slows the
//! others' reception (the NIC's RX rings absorb it) rather than costing
//! drops at the ring.

pub mod egress;
pub mod forward;
pub mod port;
pub mod steer;
pub mod tensor;
pub mod tensor_counters;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::control_plane::{realtime_ns, MonoClock, PublishedView, SharedView};
use crate::dpdk::{rdtsc, LcoreId, Mbuf, MbufBurst, PortId, MAX_BURST, MAX_PORTS};
use crate::stats::{bump, DropReason, LcoreCounters};

/// One RX queue a worker polls and the TX queue its packets leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRoute {
    pub rx_port: PortId,
    pub tx_port: PortId,
    /// The worker's queue index, used on both ports: queue `q` of every port
    /// belongs to worker `q`, so no two workers share a queue.
    pub queue: u16,
    /// The RX port's NIC verifies IPv4 header checksums: its verdict is in
    /// each mbuf ([`crate::dpdk::Mbuf::rx_ip_checksum_good`]); without the
    /// offload there is nothing to read.
    pub nic_checks_ipv4: bool,
}

/// Everything a worker lcore needs, built before launch.
pub struct WorkerConf {
    pub lcore: LcoreId,
    pub routes: Vec<QueueRoute>,
    pub burst_size: usize,
    /// Sleep after an idle pass; zero means poll without pause.
    pub idle_sleep: Duration,
    pub counters: Arc<LcoreCounters>,
    pub stop: Arc<AtomicBool>,
    /// The control plane's view, when one runs.
    pub control: Option<SharedView>,
    /// Shared with the control thread, so state ages compare like with like.
    pub clock: MonoClock,
    /// `started_ports[p]`: this worker has a TX queue on port `p`.
    pub started_ports: Vec<bool>,
    /// Probe handling, when `[probe]` is configured.
    pub probe: Option<crate::probe::ProbeWorker>,
    /// The rings between workers, for pipelines that keep per-flow state.
    pub handoff: Handoff,
}

impl WorkerConf {
    /// This worker's queue index (the same on every port).
    pub fn queue(&self) -> u16 {
        self.routes.first().map_or(0, |r| r.queue)
    }
}

/// Packets handed between workers: one inbound ring per worker, which
/// every other worker may push to and only its owner pops.
#[derive(Clone)]
pub struct Handoff {
    /// This worker's index.
    pub me: usize,
    pub rings: Arc<[ArrayQueue<Mbuf>]>,
}

/// Packets a handoff ring holds: a few bursts per worker, so a
/// momentarily slow owner does not cost drops, small enough to stay in
/// cache.
pub const HANDOFF_RING: usize = 1024;

impl Handoff {
    /// Rings for `workers` workers; `me` is set per worker with [`Handoff::of`].
    pub fn new(workers: usize) -> Handoff {
        Handoff {
            me: 0,
            rings: (0..workers.max(1))
                .map(|_| ArrayQueue::new(HANDOFF_RING))
                .collect(),
        }
    }

    /// The same rings, as seen by worker `me`.
    pub fn of(&self, me: usize) -> Handoff {
        Handoff {
            me,
            rings: Arc::clone(&self.rings),
        }
    }

    pub fn workers(&self) -> usize {
        self.rings.len()
    }

    /// Whether every other worker's ring has room for `n` more packets.
    /// A worker that might hand over a whole burst takes one from its RX
    /// queue only then: when an owner falls behind, packets wait in the
    /// NIC's RX ring (which drops them, counted by the NIC, only once it
    /// is full too) instead of being taken and dropped at a full ring.
    #[inline]
    pub fn room_for(&self, n: usize) -> bool {
        self.rings.len() < 2
            || self
                .rings
                .iter()
                .enumerate()
                .all(|(i, r)| i == self.me || r.capacity() - r.len() >= n)
    }

    /// Hands `m` to worker `to`, counting it; a full ring (or no such
    /// worker) frees it and counts the drop on the port it entered by.
    #[inline]
    pub fn send(&self, to: usize, m: Mbuf, lcore: &LcoreCounters) {
        let refused = match self.rings.get(to) {
            Some(ring) => match ring.push(m) {
                Ok(()) => {
                    bump(&lcore.handoffs, 1);
                    return;
                }
                Err(m) => m,
            },
            None => m,
        };
        egress::count_drop(lcore, refused, DropReason::HandoffFull);
    }
}

/// What a pipeline sees of the current poll.
pub struct Tick<'a> {
    pub now_ns: u64,
    /// The control plane's state, loaded once per poll.
    pub view: Option<&'a PublishedView>,
}

/// Where a burst came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// From the route's RX queue: not yet counted.
    Wire,
    /// From another worker, which counted it received.
    Handoff,
}

/// A worker's packet processing. Implementations own their per-worker
/// state (tables, schedulers, engines) and allocate only when built.
pub trait Pipeline {
    /// Handles a burst that arrived on `route` (or was handed over for
    /// it): forwards, queues, hands off or drops every packet, leaving the
    /// burst empty.
    fn process(
        &mut self,
        route: &QueueRoute,
        burst: &mut MbufBurst,
        tick: &Tick<'_>,
        arrival: Arrival,
    );

    /// Sends what the pipeline holds for its ports, within their shapers
    /// unless `ignore_shaping` (the shutdown drain). Returns whether
    /// anything was sent.
    fn transmit(&mut self, _ignore_shaping: bool) -> bool {
        false
    }

    /// Bounded periodic work (ageing, timeouts), every [`HOUSEKEEPING_EVERY_NS`].
    fn housekeeping(&mut self, _now_ns: u64) {}

    /// Packets held for later sending.
    fn backlog(&self) -> usize {
        0
    }

    /// At shutdown, before the drain: releases what the pipeline was
    /// holding back (a reorder buffer's gaps will not be filled any more).
    fn stopping(&mut self) {}

    /// At shutdown, after the drain: frees and counts whatever is left.
    fn finish(&mut self) {}
}

/// Time between housekeeping rounds: fine enough for any idle timeout or
/// reorder deadline, coarse enough to cost nothing per packet.
pub const HOUSEKEEPING_EVERY_NS: u64 = 100_000;
/// How long the shutdown drain keeps sending what is queued.
const DRAIN_FOR: Duration = Duration::from_millis(500);

/// Runs `pipeline` on this worker until `conf.stop` is set, then drains it.
/// Never allocates, locks or panics per packet.
pub fn run(conf: &WorkerConf, pipeline: &mut impl Pipeline) {
    let counters = &*conf.counters;
    let mut burst = MbufBurst::new();
    let mut inbox: [MbufBurst; MAX_PORTS] = std::array::from_fn(|_| MbufBurst::new());
    // arc_swap's Cache re-reads the shared pointer with a plain load and
    // only takes the full-barrier path when it changed, so an unchanged
    // view costs the poll almost nothing.
    let mut view_cache = conf
        .control
        .as_ref()
        .map(|c| arc_swap::Cache::new(Arc::clone(c)));
    let mut last_version = 0u64;
    let mut last_housekeeping_ns = 0u64;
    // One TSC read per poll: the time from one poll's start to the next
    // poll's start is that poll's cost (rx + work + tx + counters), and it
    // counts as busy only if the poll moved packets.
    let mut poll_started = rdtsc();
    let mut poll_was_busy = false;
    counters.loop_start_tsc.store(poll_started, Relaxed);
    while !conf.stop.load(Relaxed) {
        let now = rdtsc();
        if poll_was_busy {
            bump(&counters.busy_cycles, now.wrapping_sub(poll_started));
        }
        poll_started = now;
        let view = view_cache.as_mut().map(|c| &**c.load());
        if let Some(v) = view.filter(|v| v.version != last_version) {
            last_version = v.version;
            note_new_version(counters, v);
        }
        let tick = Tick {
            now_ns: conf.clock.now_ns(),
            view,
        };
        let mut moved = 0usize;
        let routes = if conf.handoff.room_for(conf.burst_size) {
            &conf.routes[..]
        } else {
            &[]
        };
        let polled_every_queue = routes.len() == conf.routes.len();
        for route in routes {
            let received = burst.rx_burst(route.rx_port, route.queue, conf.burst_size);
            if received > 0 {
                moved += received;
                pipeline.process(route, &mut burst, &tick, Arrival::Wire);
            }
        }
        bump(&counters.busy_packets, moved as u64);
        let handed = receive_handoffs(conf, pipeline, &mut inbox, &tick);
        let sent = pipeline.transmit(false);
        if tick.now_ns.wrapping_sub(last_housekeeping_ns) >= HOUSEKEEPING_EVERY_NS {
            last_housekeeping_ns = tick.now_ns;
            pipeline.housekeeping(tick.now_ns);
        }
        poll_was_busy = moved > 0 || handed > 0 || sent;
        if !poll_was_busy && pipeline.backlog() == 0 {
            // Only reached when every queue was empty: a counter and a
            // syscall per idle pass, never per packet.
            if polled_every_queue {
                bump(&counters.idle_polls, 1);
            }
            if !conf.idle_sleep.is_zero() {
                std::thread::sleep(conf.idle_sleep);
            }
        }
    }
    // Drain: keep sending (unshaped) while the ports take packets, then
    // count what is left. Other workers may still hand over packets for a
    // moment; they are processed and sent or counted like the rest.
    pipeline.stopping();
    let deadline = Instant::now() + DRAIN_FOR;
    let now_ns = conf.clock.now_ns();
    let tick = Tick { now_ns, view: None };
    loop {
        let handed = receive_handoffs(conf, pipeline, &mut inbox, &tick);
        let sent = pipeline.transmit(true);
        if (pipeline.backlog() == 0 && handed == 0) || Instant::now() >= deadline {
            break;
        }
        if !sent && handed == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    pipeline.finish();
    while let Some(m) = conf
        .handoff
        .rings
        .get(conf.handoff.me)
        .and_then(|r| r.pop())
    {
        egress::count_drop(counters, m, DropReason::ShutdownBacklog);
    }
    let end = rdtsc();
    if poll_was_busy {
        bump(&counters.busy_cycles, end.wrapping_sub(poll_started));
    }
    counters.loop_end_tsc.store(end, Relaxed);
}

/// Processes up to one burst of what other workers handed to this one,
/// sorted into a burst per port it entered by (ring order is kept within
/// each, so every flow's order holds). Returns how many.
fn receive_handoffs(
    conf: &WorkerConf,
    pipeline: &mut impl Pipeline,
    by_port: &mut [MbufBurst; MAX_PORTS],
    tick: &Tick<'_>,
) -> usize {
    let Some(ring) = conf.handoff.rings.get(conf.handoff.me) else {
        return 0;
    };
    // Nothing handed over: one load of an empty ring per poll.
    let Some(first) = ring.pop() else {
        return 0;
    };
    // Take a burst first, pulling in each mbuf's header (last written by
    // the worker that handed it over, so in that worker's cache) before
    // any is read, so that the burst's misses overlap.
    let mut popped: [Option<Mbuf>; MAX_BURST] = [const { None }; MAX_BURST];
    let mut taken = 0usize;
    let mut next = Some(first);
    for slot in popped.iter_mut() {
        let Some(m) = next.take().or_else(|| ring.pop()) else {
            break;
        };
        m.prefetch_header();
        *slot = Some(m);
        taken += 1;
    }
    for m in popped.iter_mut().take(taken).filter_map(Option::take) {
        let port = usize::from(m.rx_port().0);
        match by_port.get_mut(port).map(|b| b.push(m)) {
            Some(Ok(())) => {}
            // Cannot happen (at most MAX_BURST are taken); freed, counted.
            Some(Err(m)) => egress::count_drop(&conf.counters, m, DropReason::HandoffFull),
            None => {}
        }
    }
    if taken == 0 {
        return 0;
    }
    for (port, burst) in by_port.iter_mut().enumerate() {
        if burst.is_empty() {
            continue;
        }
        match conf
            .routes
            .iter()
            .find(|r| usize::from(r.rx_port.0) == port)
        {
            Some(route) => pipeline.process(route, burst, tick, Arrival::Handoff),
            None => {
                burst.drain_into(|m| egress::count_drop(&conf.counters, m, DropReason::HandoffFull))
            }
        }
    }
    taken
}

/// Records when this worker first used a new control-state version.
fn note_new_version(counters: &LcoreCounters, v: &PublishedView) {
    counters.seen_version.store(v.version, Relaxed);
    if v.origin_realtime_ns == 0 {
        return;
    }
    // A clock read once per state version, not per packet.
    let now = realtime_ns();
    if now > v.origin_realtime_ns {
        let micros = (now - v.origin_realtime_ns) / 1000;
        counters
            .visible_us
            .record(micros.min(u64::from(u32::MAX)) as u32);
        counters.visible_hist.record(micros);
    }
}
