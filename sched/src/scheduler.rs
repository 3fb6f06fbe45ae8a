//! [`Scheduler`]: strict-priority bands, then weighted DRR bands.

use std::collections::VecDeque;

use crate::config::{ConfigError, SchedConfig};
use crate::drr::{self, DrrQueues};
use crate::reject::{RejectReason, Rejected};
use crate::stats::BandStats;

/// One band: a bounded FIFO plus its DRR state and counters.
#[derive(Debug)]
struct Band<T> {
    /// Allocated with `limit` slots in `new`; `enqueue` refuses before the
    /// length would exceed `limit`, so the `VecDeque` never reallocates.
    queue: VecDeque<(T, u32)>,
    limit: usize,
    bytes: u64,
    /// 0 for strict bands.
    quantum: u64,
    deficit: u64,
    stats: BandStats,
}

/// A per-egress-port scheduler in the manner of Linux `sch_ets`.
///
/// Bands `0..strict_bands` are strict priority: `dequeue` returns an item
/// of the lowest-numbered non-empty strict band, always. Only when all
/// strict bands are empty are the DRR bands served, by deficit round robin
/// with each band's quantum (bytes per round). See the crate docs for how
/// the IntelliNode classes map onto bands.
///
/// All memory is allocated in [`Scheduler::new`]; nothing after it
/// allocates, and no input makes it panic.
///
/// ```
/// use sched::{SchedConfig, Scheduler};
///
/// // Band 0: urgent/short; bands 1 and 2: bulk, weighted 1:3.
/// let mut s = Scheduler::new(&SchedConfig::uniform(1, vec![1500, 4500], 1024)).unwrap();
/// s.enqueue(1, "bulk", 9000).unwrap();
/// s.enqueue(0, "short", 80).unwrap();
/// assert_eq!(s.dequeue(), Some((0, "short", 80)));
/// assert_eq!(s.dequeue(), Some((1, "bulk", 9000)));
/// ```
#[derive(Debug)]
pub struct Scheduler<T> {
    bands: Vec<Band<T>>,
    strict_bands: usize,
    /// Active DRR bands (absolute band indices), capacity = number of DRR
    /// bands; a band is in it exactly when it is a non-empty DRR band.
    active: VecDeque<usize>,
    queued: usize,
    rejected_no_band: u64,
}

/// [`DrrQueues`] over the band array.
struct BandsView<'a, T>(&'a mut [Band<T>]);

impl<T> DrrQueues for BandsView<'_, T> {
    fn head_len(&self, q: usize) -> Option<u32> {
        self.0.get(q)?.queue.front().map(|&(_, len)| len)
    }
    fn quantum(&self, q: usize) -> u64 {
        self.0.get(q).map_or(1, |b| b.quantum)
    }
    fn deficit(&self, q: usize) -> u64 {
        self.0.get(q).map_or(0, |b| b.deficit)
    }
    fn set_deficit(&mut self, q: usize, deficit: u64) {
        if let Some(b) = self.0.get_mut(q) {
            b.deficit = deficit;
        }
    }
}

impl<T> Scheduler<T> {
    /// Builds a scheduler, allocating every band's ring up front.
    pub fn new(config: &SchedConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let quanta = std::iter::repeat(0)
            .take(config.strict_bands)
            .chain(config.drr_quanta.iter().map(|&q| u64::from(q)));
        let bands = config
            .band_limit_packets
            .iter()
            .zip(quanta)
            .map(|(&limit, quantum)| {
                let limit = limit as usize;
                Band {
                    queue: VecDeque::with_capacity(limit),
                    limit,
                    bytes: 0,
                    quantum,
                    deficit: 0,
                    stats: BandStats::default(),
                }
            })
            .collect();
        Ok(Scheduler {
            bands,
            strict_bands: config.strict_bands,
            active: VecDeque::with_capacity(config.drr_quanta.len()),
            queued: 0,
            rejected_no_band: 0,
        })
    }

    /// Queues `item` of `len_bytes` on `band`.
    ///
    /// A full band or an unknown band hands the item back; the scheduler
    /// never drops anything itself. `len_bytes` is what the DRR charges;
    /// it may be 0 (such items cost nothing).
    pub fn enqueue(&mut self, band: usize, item: T, len_bytes: u32) -> Result<(), Rejected<T>> {
        let Some(b) = self.bands.get_mut(band) else {
            self.rejected_no_band = self.rejected_no_band.wrapping_add(1);
            return Err(Rejected {
                item,
                reason: RejectReason::NoSuchBand { band },
            });
        };
        b.stats.offered = b.stats.offered.wrapping_add(1);
        if b.queue.len() >= b.limit {
            b.stats.dropped_full = b.stats.dropped_full.wrapping_add(1);
            return Err(Rejected {
                item,
                reason: RejectReason::BandFull { band },
            });
        }
        let was_empty = b.queue.is_empty();
        b.queue.push_back((item, len_bytes));
        b.bytes = b.bytes.saturating_add(u64::from(len_bytes));
        b.stats.enqueued = b.stats.enqueued.wrapping_add(1);
        b.stats.enqueued_bytes = b.stats.enqueued_bytes.wrapping_add(u64::from(len_bytes));
        self.queued += 1;
        if was_empty && band >= self.strict_bands {
            // First visit's quantum, as in sch_drr/sch_ets.
            b.deficit = b.quantum;
            self.active.push_back(band);
        }
        Ok(())
    }

    /// Takes the next item: `(band, item, len_bytes)`.
    pub fn dequeue(&mut self) -> Option<(usize, T, u32)> {
        if self.queued == 0 {
            return None;
        }
        let strict = self.strict_bands.min(self.bands.len());
        let band = match self.bands[..strict]
            .iter()
            .position(|b| !b.queue.is_empty())
        {
            Some(band) => band,
            None => drr::select(&mut self.active, &mut BandsView(&mut self.bands))?,
        };
        let b = self.bands.get_mut(band)?;
        let (item, len) = b.queue.pop_front()?;
        b.bytes = b.bytes.saturating_sub(u64::from(len));
        b.stats.dequeued = b.stats.dequeued.wrapping_add(1);
        b.stats.dequeued_bytes = b.stats.dequeued_bytes.wrapping_add(u64::from(len));
        self.queued -= 1;
        if band >= self.strict_bands && b.queue.is_empty() {
            // S&V: an emptied queue loses its deficit and leaves the
            // active list (it is at the front: `select` put it there).
            b.deficit = 0;
            self.active.pop_front();
        }
        Some((band, item, len))
    }

    /// Dequeues up to `max` items into `out`, returning how many.
    ///
    /// Meant for bursts of 32 into a buffer the caller reuses; pass a
    /// collection with room for `max` items to keep the call allocation
    /// free.
    pub fn dequeue_burst<E>(&mut self, out: &mut E, max: usize) -> usize
    where
        E: Extend<(usize, T, u32)>,
    {
        let mut n = 0;
        out.extend(std::iter::from_fn(|| {
            if n >= max {
                return None;
            }
            let next = self.dequeue()?;
            n += 1;
            Some(next)
        }));
        n
    }

    /// Changes a DRR band's quantum (bytes per round, ≥ 1).
    ///
    /// Takes effect the next time the band earns a quantum; credit already
    /// in its deficit is kept, so the change shows from the next round on.
    pub fn set_quantum(&mut self, band: usize, quantum: u32) -> Result<(), ConfigError> {
        if band < self.strict_bands {
            return Err(ConfigError::NotDrrBand { band });
        }
        let b = self
            .bands
            .get_mut(band)
            .ok_or(ConfigError::NoSuchBand { band })?;
        if quantum == 0 {
            return Err(ConfigError::ZeroQuantum { band });
        }
        b.quantum = u64::from(quantum);
        Ok(())
    }

    /// A DRR band's quantum; `None` for strict or unknown bands.
    pub fn quantum(&self, band: usize) -> Option<u32> {
        if band < self.strict_bands {
            return None;
        }
        self.bands
            .get(band)
            .map(|b| u32::try_from(b.quantum).unwrap_or(u32::MAX))
    }

    /// Removes every item of `band` in FIFO order, e.g. to flush a band
    /// whose traffic is DRAINING. Items not consumed from the iterator are
    /// dropped when it is dropped. Counted as dequeued.
    pub fn drain_band(&mut self, band: usize) -> impl Iterator<Item = (T, u32)> + '_ {
        let strict = self.strict_bands;
        let mut removed = 0usize;
        if let Some(b) = self.bands.get_mut(band) {
            removed = b.queue.len();
            b.stats.dequeued = b.stats.dequeued.wrapping_add(removed as u64);
            b.stats.dequeued_bytes = b.stats.dequeued_bytes.wrapping_add(b.bytes);
            b.bytes = 0;
            b.deficit = 0;
        }
        self.queued = self.queued.saturating_sub(removed);
        if band >= strict && removed > 0 {
            if let Some(pos) = self.active.iter().position(|&a| a == band) {
                self.active.remove(pos);
            }
        }
        self.bands
            .get_mut(band)
            .into_iter()
            .flat_map(|b| b.queue.drain(..))
    }

    /// Items queued over all bands.
    pub fn len(&self) -> usize {
        self.queued
    }

    /// `true` when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Number of bands.
    pub fn bands(&self) -> usize {
        self.bands.len()
    }

    /// Number of strict-priority bands (they are bands `0..strict_bands()`).
    pub fn strict_bands(&self) -> usize {
        self.strict_bands
    }

    /// Items queued on `band` (0 for an unknown band).
    pub fn band_len(&self, band: usize) -> usize {
        self.bands.get(band).map_or(0, |b| b.queue.len())
    }

    /// Bytes queued on `band` (0 for an unknown band).
    pub fn band_bytes(&self, band: usize) -> u64 {
        self.bands.get(band).map_or(0, |b| b.bytes)
    }

    /// Counters of `band`.
    pub fn band_stats(&self, band: usize) -> Option<BandStats> {
        self.bands.get(band).map(|b| b.stats)
    }

    /// Items handed back because their band did not exist.
    pub fn rejected_no_band(&self) -> u64 {
        self.rejected_no_band
    }
}
