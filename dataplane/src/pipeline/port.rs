//! Egress ports of a scheduling pipeline on any number of workers, for any
//! queueing discipline ([`Discipline`]).
//!
//! ```text
//! unshaped port:  each worker: idle? ──yes──► its TX queue
//!                                   └─no──► its own scheduler ──► its TX queue
//! shaped port:    owner worker (port % workers): the port's one scheduler,
//!                 shaper ──► its TX queue
//!                 other workers ──► bounded ring ──► that scheduler
//! ```
//!
//! An unshaped port takes packets as fast as the workers make them, so
//! each worker sends on its own TX queue and queues only what its TX ring
//! refuses. A shaped port (`rate_mbps`) is a link slower than the workers,
//! where queues build and scheduling decides who waits: it has exactly one
//! scheduler, on its owner worker, fed by every other worker through a
//! bounded lock-free ring (the design of DPDK's `qos_sched` example), so
//! priority and weighted shares hold across all workers. A full ring is a
//! counted drop, like a full band. The owner publishes its scheduler's
//! depth, so every worker sees the port's queue (for ECN marking).

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crossbeam_queue::ArrayQueue;

use super::egress::{count_drop, send_pending, Shaper};
use crate::dpdk::{rdtsc, Mbuf, MbufBurst, MAX_BURST};
use crate::stats::{DropReason, LcoreCounters};

/// A port's queueing discipline (one per worker and unshaped port, one per
/// shaped port). Implementations count into the worker's own counters.
pub trait Discipline {
    /// How a packet queues (band, class, flow, weight...).
    type Meta: Copy + Send;
    /// The worker's pipeline counters.
    type Counters;

    /// Queues `m` (`len` bytes, at TSC `tsc`) on `port`, or hands it back
    /// with the reason it was refused.
    fn enqueue(
        &mut self,
        port: usize,
        m: Mbuf,
        meta: Self::Meta,
        len: u32,
        tsc: u64,
        c: &Self::Counters,
    ) -> Result<(), (Mbuf, DropReason)>;

    /// Counts a packet that skipped the scheduler of an idle port.
    fn bypassed(&self, port: usize, meta: &Self::Meta, len: u32, c: &Self::Counters);

    /// Counts a packet the ring to a shaped port's owner refused: it never
    /// reached a scheduler, so no [`Discipline::enqueue`] counted it.
    fn feed_refused(port: usize, meta: &Self::Meta, c: &Self::Counters);

    /// The next packet to send on `port`, counted as sent (its wait
    /// measured against `now_tsc`).
    fn dequeue(
        &mut self,
        port: usize,
        now_tsc: u64,
        ns_per_cycle: f64,
        c: &Self::Counters,
    ) -> Option<(Mbuf, u32)>;

    /// Takes any packet, uncounted (shutdown).
    fn discard(&mut self) -> Option<Mbuf>;

    /// Packets queued.
    fn len(&self) -> usize;

    /// Nothing queued.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A packet's sojourn in a discipline, in whole microseconds (saturated),
/// for the disciplines' wait samples.
pub fn waited_us(now_tsc: u64, queued_tsc: u64, ns_per_cycle: f64) -> u32 {
    let us = now_tsc.wrapping_sub(queued_tsc) as f64 * ns_per_cycle / 1000.0;
    us.min(f64::from(u32::MAX)) as u32
}

/// A shaped port's single scheduler: which worker runs it, and the ring
/// every other worker queues to it through.
pub struct SharedPort<M> {
    pub owner: usize,
    ring: ArrayQueue<Fed<M>>,
    /// Packets in the owner's scheduler, as last published.
    depth: AtomicU32,
}

/// A packet on its way to a shaped port's scheduler.
struct Fed<M> {
    m: Mbuf,
    meta: M,
    len: u32,
    tsc: u64,
}

impl<M> SharedPort<M> {
    /// Port `port`'s scheduler on worker `port % workers`, fed by a ring of
    /// `capacity` packets.
    pub fn new(port: usize, workers: usize, capacity: usize) -> SharedPort<M> {
        SharedPort {
            owner: port % workers.max(1),
            ring: ArrayQueue::new(capacity.max(MAX_BURST)),
            depth: AtomicU32::new(0),
        }
    }

    /// Frees and counts what is left in the ring, once every worker has
    /// stopped.
    pub fn discard(&self, lcore: &LcoreCounters) {
        while let Some(f) = self.ring.pop() {
            count_drop(lcore, f.m, DropReason::ShutdownBacklog);
        }
    }
}

enum Egress<D> {
    /// This worker's own scheduler for the port: the port's only one when
    /// it is shaped, else what this worker's TX queue refused.
    Local(Box<Local<D>>),
    /// A shaped port whose scheduler runs on another worker.
    Remote,
}

struct Local<D> {
    disc: D,
    /// Dequeued but refused by the TX ring: sent first next time, in order.
    pending: MbufBurst,
    shaper: Option<Shaper>,
    /// Whether other workers feed this scheduler (a shaped port's owner).
    fed: bool,
}

/// One worker's view of every egress port.
pub struct Ports<'a, D: Discipline> {
    egress: Vec<Option<Egress<D>>>,
    shared: &'a [Option<SharedPort<D::Meta>>],
    ns_per_cycle: f64,
}

impl<'a, D: Discipline> Ports<'a, D> {
    /// Worker `me`'s ports: those in `started` get a local discipline from
    /// `make` (and a shaper from `shaper`), but shaped ports it does not
    /// own, which it reaches through `shared`.
    pub fn new(
        started: &[bool],
        shared: &'a [Option<SharedPort<D::Meta>>],
        me: usize,
        tsc_hz: u64,
        mut make: impl FnMut(usize) -> Option<D>,
        shaper: impl Fn(usize) -> Option<Shaper>,
    ) -> Ports<'a, D> {
        let egress = started
            .iter()
            .enumerate()
            .map(|(p, &on)| {
                if !on {
                    return None;
                }
                let s = shared.get(p).and_then(Option::as_ref);
                if s.is_some_and(|s| s.owner != me) {
                    return Some(Egress::Remote);
                }
                Some(Egress::Local(Box::new(Local {
                    disc: make(p)?,
                    pending: MbufBurst::new(),
                    shaper: shaper(p),
                    fed: s.is_some(),
                })))
            })
            .collect();
        Ports {
            egress,
            shared,
            ns_per_cycle: 1e9 / tsc_hz.max(1) as f64,
        }
    }

    fn feed(&self, port: usize) -> Option<&'a SharedPort<D::Meta>> {
        self.shared.get(port).and_then(Option::as_ref)
    }

    /// Queues `m` for `port`: straight into the TX burst when the port is
    /// idle and unshaped (as a Linux qdisc bypasses an empty queue: nothing
    /// waits, so nothing can be overtaken), else into the port's scheduler,
    /// here or on its owner. A refused packet is freed; the reason is
    /// returned for the caller to count. The idle port's push, what nearly
    /// every packet of an unshaped port does, is inlined into the caller's
    /// loop; the rest is [`Ports::enqueue_scheduled`].
    #[inline(always)]
    pub fn enqueue(
        &mut self,
        port: usize,
        m: Mbuf,
        meta: D::Meta,
        c: &D::Counters,
    ) -> Result<(), DropReason> {
        let m = match self.egress.get_mut(port) {
            Some(Some(Egress::Local(e))) if e.shaper.is_none() && e.disc.is_empty() => {
                let len = m.pkt_len();
                match e.pending.push(m) {
                    Ok(()) => {
                        e.disc.bypassed(port, &meta, len, c);
                        return Ok(());
                    }
                    Err(m) => m,
                }
            }
            _ => m,
        };
        self.enqueue_scheduled(port, m, meta, c)
    }

    /// [`Ports::enqueue`] into the port's scheduler, here or on its owner.
    #[inline(never)]
    fn enqueue_scheduled(
        &mut self,
        port: usize,
        m: Mbuf,
        meta: D::Meta,
        c: &D::Counters,
    ) -> Result<(), DropReason> {
        let len = m.pkt_len();
        let feed = self.feed(port);
        match self.egress.get_mut(port).and_then(|e| e.as_mut()) {
            Some(Egress::Local(e)) => {
                e.disc
                    .enqueue(port, m, meta, len, rdtsc(), c)
                    .map_err(|(m, reason)| {
                        drop(m);
                        reason
                    })
            }
            Some(Egress::Remote) => {
                let Some(feed) = feed else {
                    drop(m);
                    return Err(DropReason::TxQueueFull);
                };
                let fed = Fed {
                    m,
                    meta,
                    len,
                    tsc: rdtsc(),
                };
                feed.ring.push(fed).map_err(|f| {
                    D::feed_refused(port, &f.meta, c);
                    drop(f.m);
                    DropReason::SchedQueueFull
                })
            }
            None => {
                drop(m);
                Err(DropReason::TxQueueFull)
            }
        }
    }

    /// Packets waiting for `port`, as far as this worker can tell.
    pub fn depth(&self, port: usize) -> u32 {
        match self.egress.get(port).and_then(|e| e.as_ref()) {
            Some(Egress::Local(e)) => e.disc.len() as u32,
            Some(Egress::Remote) => self.feed(port).map_or(0, |f| {
                f.depth.load(Relaxed).saturating_add(f.ring.len() as u32)
            }),
            None => 0,
        }
    }

    /// Moves what other workers queued for the shaped ports this worker
    /// schedules into their schedulers.
    fn take_feeds(&mut self, lcore: &LcoreCounters, c: &D::Counters) {
        let shared = self.shared;
        for (port, e) in self.egress.iter_mut().enumerate() {
            let Some(Egress::Local(e)) = e else { continue };
            if !e.fed {
                continue;
            }
            let Some(feed) = shared.get(port).and_then(Option::as_ref) else {
                continue;
            };
            while let Some(f) = feed.ring.pop() {
                if let Err((m, reason)) = e.disc.enqueue(port, f.m, f.meta, f.len, f.tsc, c) {
                    count_drop(lcore, m, reason);
                }
            }
        }
    }

    /// Sends what each port may send now: its refused packets first, then
    /// its scheduler's order, within its shaper's budget (unless
    /// `ignore_shaping`, the shutdown drain), a burst at a time for as long
    /// as the TX ring takes whole bursts. Returns whether anything was
    /// sent.
    ///
    /// One burst per poll would not do: a worker can queue more than a
    /// burst for a port in one poll (its own receive and what other
    /// workers hand it, or feed its shaped port), and a scheduler drained
    /// slower than it fills overflows while the TX ring has room.
    pub fn transmit(
        &mut self,
        queue: u16,
        ignore_shaping: bool,
        lcore: &LcoreCounters,
        c: &D::Counters,
    ) -> bool {
        self.take_feeds(lcore, c);
        let mut any = false;
        let now = rdtsc();
        let ns_per_cycle = self.ns_per_cycle;
        let shared = self.shared;
        for (port, slot) in self.egress.iter_mut().enumerate() {
            let Some(Egress::Local(e)) = slot.as_mut() else {
                continue;
            };
            if e.pending.is_empty() && e.disc.is_empty() {
                continue;
            }
            if let Some(s) = e.shaper.as_mut() {
                s.refill(now);
            }
            // Ends: each pass sends a burst or leaves one pending (the TX
            // ring is full, or the shaper's budget spent), and the
            // scheduler holds finitely many.
            loop {
                while e.pending.len() < MAX_BURST {
                    let budget_left =
                        ignore_shaping || e.shaper.as_ref().map_or(true, |s| s.tokens > 0.0);
                    if !budget_left {
                        break;
                    }
                    let Some((m, len)) = e.disc.dequeue(port, now, ns_per_cycle, c) else {
                        break;
                    };
                    if let Some(s) = e.shaper.as_mut() {
                        s.tokens -= f64::from(len);
                    }
                    if let Err(m) = e.pending.push(m) {
                        drop(m); // cannot happen: bounded by MAX_BURST above
                    }
                }
                let sent = send_pending(&mut e.pending, port, queue, lcore);
                any |= sent;
                if !sent || !e.pending.is_empty() || e.disc.is_empty() {
                    break;
                }
            }
            if e.fed {
                if let Some(f) = shared.get(port).and_then(Option::as_ref) {
                    f.depth.store(e.disc.len() as u32, Relaxed);
                }
            }
        }
        any
    }

    /// This worker's own disciplines (to retune them).
    pub fn disciplines_mut(&mut self) -> impl Iterator<Item = &mut D> {
        self.egress.iter_mut().flatten().filter_map(|e| match e {
            Egress::Local(e) => Some(&mut e.disc),
            Egress::Remote => None,
        })
    }

    /// Packets this worker holds for its ports, including what other
    /// workers queued to the schedulers it runs.
    pub fn backlog(&self) -> usize {
        self.egress
            .iter()
            .enumerate()
            .map(|(port, e)| match e {
                Some(Egress::Local(e)) => {
                    let fed = if e.fed {
                        self.feed(port).map_or(0, |f| f.ring.len())
                    } else {
                        0
                    };
                    e.disc.len() + e.pending.len() + fed
                }
                _ => 0,
            })
            .sum()
    }

    /// At shutdown, after the drain: frees and counts what is left, as a
    /// drop on the port each packet entered by.
    pub fn finish(&mut self, lcore: &LcoreCounters, c: &D::Counters) {
        self.take_feeds(lcore, c);
        for e in self.egress.iter_mut().flatten() {
            if let Egress::Local(e) = e {
                while let Some(m) = e.disc.discard() {
                    count_drop(lcore, m, DropReason::ShutdownBacklog);
                }
                e.pending
                    .drain_into(|m| count_drop(lcore, m, DropReason::ShutdownBacklog));
            }
        }
    }
}
