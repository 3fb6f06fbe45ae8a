//! Restoring the original order of sliced traffic at the egress appliance.
//!
//! When a tensor is sliced over several paths (§3.3), its packets reach the
//! egress appliance out of order: a slice on a short path overtakes one on a
//! long path. RoCEv2 receivers treat a packet sequence gap as loss (a NAK
//! and go-back-N retransmission), so the egress appliance puts the packets
//! back in order before it decapsulates and delivers them.
//!
//! # Streams and sequence numbers
//!
//! The ingress appliance numbers the packets of each overlay *stream* with
//! a 32-bit sequence number that wraps, from 0. The first packet seen of a
//! stream sets the number expected next, unless it is less than `window`:
//! then the stream is taken to start at 0, since its first packets may
//! still be on a longer path (or another RX queue) and are waited for like
//! any gap. So streams may start anywhere, and a stream's start is never
//! refused as late because a later packet overtook it. Numbers are
//! compared with serial-number arithmetic (RFC 1982): `seq` is ahead of
//! `expected` by `d = seq − expected (mod 2^32)` when `d < 2^31`, behind
//! otherwise. A packet `d` ahead is:
//!
//! * `d = 0`, in order: delivered at once, with any held successors;
//! * `0 < d < window`: held in the stream's ring until the gap before it
//!   fills (a second copy is refused as [`RefuseReason::Duplicate`]);
//! * `d ≥ window`: the oldest gaps are declared lost (their numbers count in
//!   [`ReorderStats::lost`], held packets before the new window are
//!   delivered in order) until it fits in the window;
//! * behind: refused as [`RefuseReason::Late`]. That includes a copy of a
//!   packet already delivered, so nothing is ever delivered twice.
//!
//! A refused packet is handed back in [`Refused`] so the caller counts and
//! drops it: nothing disappears silently.
//!
//! # Timeouts
//!
//! A gap that never fills would hold its stream forever, so
//! [`ReorderBuffer::expire`] (called every ~100 µs, visiting a bounded
//! number of streams per call) declares a stream's head gaps lost once a
//! held packet behind them has waited `timeout_ns`: it delivers in order
//! everything up to and including the last packet that has waited that
//! long. The age kept per stream is a lower bound of its oldest held
//! packet's arrival, refreshed exactly only when `expire` looks, so the
//! per-packet path stays O(1) apart from delivering runs.
//!
//! # Stream slots
//!
//! Streams live in a fixed table of `streams` slots. A stream id hashes to a
//! home slot and may sit in any of the [`PROBE`] slots from there. A slot is
//! free if never used, or if its stream holds nothing and has been idle for
//! the idle time ([`ReorderBuffer::set_idle_ns`], 16 timeouts by default:
//! long enough that a straggler of the old stream is not taken for the start
//! of a new one). When every slot a stream could use is busy, its packet is
//! refused as [`RefuseReason::NoStream`].
//!
//! All memory (the stream slots and one ring of `window` held packets per
//! slot) is allocated in [`ReorderBuffer::new`]; pushing, expiring and
//! flushing never allocate and never panic.

/// Slots a stream id may occupy, from its home slot on.
pub const PROBE: usize = 8;

/// Streams [`ReorderBuffer::expire`] looks at per call, at most.
pub const EXPIRE_STREAMS_PER_CALL: usize = 256;

/// Why a packet was handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// Behind the stream's expected number: already delivered, or declared
    /// lost.
    Late,
    /// A copy of a packet already held.
    Duplicate,
    /// No stream slot was free for a new stream.
    NoStream,
}

/// A packet handed back to the caller, to count and drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused<T> {
    /// The packet.
    pub item: T,
    /// Why.
    pub reason: RefuseReason,
}

/// Counters, cumulative except `held_now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReorderStats {
    /// Delivered on arrival.
    pub in_order: u64,
    /// Delivered after being held.
    pub reordered: u64,
    /// Refused as late.
    pub late: u64,
    /// Refused as duplicates.
    pub duplicate: u64,
    /// Sequence numbers skipped (declared lost, by window overflow, timeout
    /// or flush).
    pub lost: u64,
    /// Refused for want of a stream slot.
    pub no_stream: u64,
    /// Packets held right now.
    pub held_now: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    id: u32,
    active: bool,
    expected: u32,
    held: u32,
    last_ns: u64,
    /// Lower bound of the arrival time of the held packets.
    oldest_ns: u64,
}

#[derive(Debug, Clone)]
struct Held<T> {
    seq: u32,
    arrival_ns: u64,
    item: T,
}

/// Per-stream reordering with a bounded window and a loss timeout.
#[derive(Debug, Clone)]
pub struct ReorderBuffer<T> {
    streams: Vec<Stream>,
    /// `streams.len() × window` held packets, one ring per stream.
    ring: Vec<Option<Held<T>>>,
    window: usize,
    win_mask: u32,
    timeout_ns: u64,
    idle_ns: u64,
    cursor: usize,
    stats: ReorderStats,
}

impl<T> ReorderBuffer<T> {
    /// A buffer for up to `streams` concurrent streams (at least 1), each
    /// holding up to `window` packets (rounded up to a power of two within
    /// 1..=2^16, so the ring index survives the 2^32 wrap), declaring gaps
    /// lost after `timeout_ns`.
    pub fn new(streams: usize, window: usize, timeout_ns: u64) -> ReorderBuffer<T> {
        let streams = streams.max(1);
        let window = window.clamp(1, 1 << 16).next_power_of_two();
        ReorderBuffer {
            streams: vec![Stream::default(); streams],
            ring: (0..streams.saturating_mul(window)).map(|_| None).collect(),
            window,
            win_mask: (window - 1) as u32,
            timeout_ns,
            idle_ns: timeout_ns.saturating_mul(16),
            cursor: 0,
            stats: ReorderStats::default(),
        }
    }

    /// Sets how long a stream holding nothing must be idle before its slot
    /// may go to another stream.
    pub fn set_idle_ns(&mut self, idle_ns: u64) {
        self.idle_ns = idle_ns;
    }

    /// The window, after rounding.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Counters.
    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// One packet of stream `stream_id` with sequence number `seq`, seen at
    /// `now_ns`. Whatever becomes deliverable is passed to `out` in order;
    /// a refused packet is handed back.
    pub fn push(
        &mut self,
        stream_id: u32,
        seq: u32,
        item: T,
        now_ns: u64,
        out: &mut impl FnMut(T),
    ) -> Result<(), Refused<T>> {
        let Some(si) = self.stream_slot(stream_id, seq, now_ns) else {
            self.stats.no_stream += 1;
            return Err(Refused {
                item,
                reason: RefuseReason::NoStream,
            });
        };
        let expected = match self.streams.get_mut(si) {
            Some(s) => {
                s.last_ns = now_ns;
                s.expected
            }
            None => {
                self.stats.no_stream += 1;
                return Err(Refused {
                    item,
                    reason: RefuseReason::NoStream,
                });
            }
        };
        let d = seq.wrapping_sub(expected);
        if d >= 1 << 31 {
            self.stats.late += 1;
            return Err(Refused {
                item,
                reason: RefuseReason::Late,
            });
        }
        if d as usize >= self.window {
            // Make room: the window must end at `seq`.
            let target = seq.wrapping_sub(self.win_mask);
            self.advance_to(si, target, out);
        }
        let expected = self.streams.get(si).map_or(seq, |s| s.expected);
        if seq == expected {
            out(item);
            self.stats.in_order += 1;
            if let Some(s) = self.streams.get_mut(si) {
                s.expected = seq.wrapping_add(1);
            }
            self.drain(si, out);
            return Ok(());
        }
        let base = si * self.window;
        let idx = base + (seq & self.win_mask) as usize;
        match self.ring.get_mut(idx) {
            Some(slot @ None) => {
                *slot = Some(Held {
                    seq,
                    arrival_ns: now_ns,
                    item,
                });
            }
            _ => {
                self.stats.duplicate += 1;
                return Err(Refused {
                    item,
                    reason: RefuseReason::Duplicate,
                });
            }
        }
        if let Some(s) = self.streams.get_mut(si) {
            if s.held == 0 || now_ns < s.oldest_ns {
                s.oldest_ns = now_ns;
            }
            s.held += 1;
        }
        self.stats.held_now += 1;
        Ok(())
    }

    /// Declares lost the gaps of streams whose held packets have waited
    /// `timeout_ns`, delivering what that releases. Looks at most at
    /// [`EXPIRE_STREAMS_PER_CALL`] streams, from a rotating cursor.
    pub fn expire(&mut self, now_ns: u64, out: &mut impl FnMut(T)) {
        let n = self.streams.len();
        for _ in 0..n.min(EXPIRE_STREAMS_PER_CALL) {
            let si = self.cursor % n;
            self.cursor = (si + 1) % n;
            let Some(s) = self.streams.get(si) else {
                continue;
            };
            if !s.active || s.held == 0 || now_ns.saturating_sub(s.oldest_ns) < self.timeout_ns {
                continue;
            }
            self.expire_stream(si, now_ns, out);
        }
    }

    /// Delivers everything held, in order per stream, declaring the gaps
    /// between lost (shutdown, or a path set torn down).
    pub fn flush(&mut self, out: &mut impl FnMut(T)) {
        for si in 0..self.streams.len() {
            let Some(s) = self.streams.get(si).copied() else {
                continue;
            };
            if !s.active || s.held == 0 {
                continue;
            }
            // One past the last held packet ends the window's used part.
            let base = si * self.window;
            let mut end = None;
            for i in 0..self.window as u32 {
                let seq = s.expected.wrapping_add(i);
                let idx = base + (seq & self.win_mask) as usize;
                if matches!(self.ring.get(idx), Some(Some(h)) if h.seq == seq) {
                    end = Some(seq.wrapping_add(1));
                }
            }
            if let Some(end) = end {
                self.advance_to(si, end, out);
            }
        }
    }

    /// The slot of `stream_id`, claiming a free one (starting the stream at
    /// `seq`) if it has none.
    fn stream_slot(&mut self, stream_id: u32, seq: u32, now_ns: u64) -> Option<usize> {
        let n = self.streams.len();
        let home = (u64::from(stream_id).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % n;
        let mut free = None;
        for p in 0..PROBE.min(n) {
            let i = (home + p) % n;
            let s = self.streams.get(i)?;
            if s.active && s.id == stream_id {
                return Some(i);
            }
            let reusable =
                !s.active || (s.held == 0 && now_ns.saturating_sub(s.last_ns) >= self.idle_ns);
            if reusable && free.is_none() {
                free = Some(i);
            }
        }
        let i = free?;
        let start = if (seq as usize) < self.window { 0 } else { seq };
        let s = self.streams.get_mut(i)?;
        *s = Stream {
            id: stream_id,
            active: true,
            expected: start,
            held: 0,
            last_ns: now_ns,
            oldest_ns: now_ns,
        };
        Some(i)
    }

    /// Moves stream `si`'s expected number forward to `target` (at most
    /// 2^31 ahead), delivering held packets on the way and counting the
    /// numbers without one as lost, then delivers the run that follows.
    fn advance_to(&mut self, si: usize, target: u32, out: &mut impl FnMut(T)) {
        let Some(s) = self.streams.get(si).copied() else {
            return;
        };
        let dist = target.wrapping_sub(s.expected);
        // Everything held is within one window of `expected`, so only that
        // many numbers need looking at; the rest are lost wholesale.
        let steps = dist.min(self.window as u32);
        let base = si * self.window;
        let mut delivered = 0u32;
        let mut lost = u64::from(dist - steps);
        for i in 0..steps {
            let seq = s.expected.wrapping_add(i);
            match self.take_held(base, seq) {
                Some(h) => {
                    out(h.item);
                    delivered += 1;
                }
                None => lost += 1,
            }
        }
        self.stats.lost += lost;
        self.stats.reordered += u64::from(delivered);
        self.stats.held_now = self.stats.held_now.saturating_sub(u64::from(delivered));
        if let Some(s) = self.streams.get_mut(si) {
            s.expected = target;
            s.held = s.held.saturating_sub(delivered);
        }
        self.drain(si, out);
    }

    /// Delivers stream `si`'s held packets from its expected number on, as
    /// long as they are consecutive.
    fn drain(&mut self, si: usize, out: &mut impl FnMut(T)) {
        let Some(mut s) = self.streams.get(si).copied() else {
            return;
        };
        let base = si * self.window;
        while s.held > 0 {
            match self.take_held(base, s.expected) {
                Some(h) => {
                    out(h.item);
                    s.held -= 1;
                    s.expected = s.expected.wrapping_add(1);
                    self.stats.reordered += 1;
                    self.stats.held_now = self.stats.held_now.saturating_sub(1);
                }
                None => break,
            }
        }
        if let Some(slot) = self.streams.get_mut(si) {
            *slot = s;
        }
    }

    /// Takes the packet numbered `seq` from the ring at `base`, if held.
    fn take_held(&mut self, base: usize, seq: u32) -> Option<Held<T>> {
        let slot = self.ring.get_mut(base + (seq & self.win_mask) as usize)?;
        if slot.as_ref().is_some_and(|h| h.seq == seq) {
            slot.take()
        } else {
            None
        }
    }

    /// Stream `si` may have timed out: find the last held packet that has
    /// waited `timeout_ns` and release everything up to it.
    fn expire_stream(&mut self, si: usize, now_ns: u64, out: &mut impl FnMut(T)) {
        let Some(s) = self.streams.get(si).copied() else {
            return;
        };
        let base = si * self.window;
        let mut last_old = None;
        // Oldest arrival among the packets after the last timed-out one:
        // what stays held after the release.
        let mut min_after = u64::MAX;
        let mut seen = 0;
        for i in 0..self.window as u32 {
            if seen >= s.held {
                break;
            }
            let seq = s.expected.wrapping_add(i);
            if let Some(Some(h)) = self.ring.get(base + (seq & self.win_mask) as usize) {
                if h.seq != seq {
                    continue;
                }
                seen += 1;
                if now_ns.saturating_sub(h.arrival_ns) >= self.timeout_ns {
                    last_old = Some(seq);
                    min_after = u64::MAX;
                } else {
                    min_after = min_after.min(h.arrival_ns);
                }
            }
        }
        if let Some(seq) = last_old {
            // Lands on `seq` itself, which `drain` then delivers.
            self.advance_to(si, seq, out);
        }
        if let Some(s) = self.streams.get_mut(si) {
            if s.held > 0 {
                s.oldest_ns = min_after;
            }
        }
    }
}
