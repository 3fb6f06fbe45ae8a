//! One egress port's queueing discipline (draft §3.3): strict bands
//! `SMALL (slow) > SMALL (fast) > DRAINING`, then weighted DRR per QP,
//! weighted by the target node's compute power.
//!
//! ```text
//! enqueue(class, flow) ──► band_of(class) ──► no-overtake guard ──► band
//!     band 0..2: FIFO each, strict priority      band 3: WDRR per flow
//! ```
//!
//! **No overtaking.** A QP's packets must leave in order: RoCE treats a gap
//! as loss. A QP changes class while its packets wait (a LARGE flow's tail
//! turns DRAINING), so a packet could land in a band served before the one
//! its predecessors wait in. The guard sends it to the lowest-priority band
//! in which its flow still has packets instead, so it queues behind them.
//! The queue itself knows where a flow's packets are (the WDRR stage
//! exactly; the strict bands by a small table of per-band counts indexed
//! by the flow hash's low bits, where a collision can only make a packet
//! wait longer, never overtake), so the rule holds whichever worker
//! queued the flow's earlier packets.
//!
//! Sans-IO: items are anything (`T`, an mbuf in the data plane); all memory
//! is allocated in [`PortQueue::new`]; nothing panics.

use sched::{FlowDrr, FlowDrrConfig, SchedConfig, Scheduler};

use crate::stats::SchedClass;

/// Band index of the WDRR stage, after the strict bands.
pub const WDRR_BAND: u8 = SchedClass::STRICT as u8;

/// Slots of the strict bands' per-flow count table.
const GUARD_SLOTS: usize = 4096;

/// Where a packet queues and how it is weighed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueMeta {
    /// Its class.
    pub class: SchedClass,
    /// Its QP (the QP key's hash; 0 for best effort).
    pub flow: u32,
    /// The flow's WDRR weight.
    pub weight: u32,
}

impl QueueMeta {
    /// What has no QP state (not RoCEv2, a full QP table): WDRR at weight 1.
    pub const BEST_EFFORT: QueueMeta = QueueMeta {
        class: SchedClass::BestEffort,
        flow: 0,
        weight: 1,
    };
}

/// The strict band of a class, or [`WDRR_BAND`].
pub fn band_of(class: SchedClass) -> u8 {
    match class {
        SchedClass::SmallSlow => 0,
        SchedClass::SmallFast => 1,
        SchedClass::Draining => 2,
        SchedClass::Large | SchedClass::BestEffort => WDRR_BAND,
    }
}

/// A queued packet: the item, when it was queued, its class and flow.
type Entry<T> = (T, u64, SchedClass, u32);

/// Why a packet was refused.
#[derive(Debug)]
pub struct Full<T> {
    /// The packet, to count and free.
    pub item: T,
    /// The class it would have been queued in.
    pub class: SchedClass,
}

/// A packet that left the queue.
#[derive(Debug)]
pub struct Dequeued<T> {
    /// The packet.
    pub item: T,
    /// When it was queued (the caller's clock).
    pub queued_at: u64,
    /// Its class.
    pub class: SchedClass,
    /// Its length.
    pub len: u32,
}

/// One port's strict bands and WDRR stage.
pub struct PortQueue<T> {
    strict: Scheduler<Entry<T>>,
    wdrr: FlowDrr<u32, Entry<T>>,
    /// Per guard slot and strict band: packets queued there.
    held: Box<[[u32; SchedClass::STRICT]]>,
}

impl<T> PortQueue<T> {
    /// A queue holding up to `band_limit` packets per strict band and in
    /// the WDRR stage, for up to `max_flows` QPs at once.
    pub fn new(band_limit: u32, max_flows: usize) -> Result<PortQueue<T>, sched::ConfigError> {
        let strict = SchedConfig::uniform(SchedClass::STRICT, Vec::new(), band_limit);
        let limit = (band_limit as usize).clamp(1, sched::MAX_PACKETS);
        let drr = FlowDrrConfig {
            base_quantum: 1514,
            max_flows: max_flows.clamp(1, sched::MAX_FLOWS),
            max_packets: limit,
            max_packets_per_flow: limit,
        };
        Ok(PortQueue {
            strict: Scheduler::new(&strict)?,
            wdrr: FlowDrr::new(&drr)?,
            held: vec![[0; SchedClass::STRICT]; GUARD_SLOTS].into_boxed_slice(),
        })
    }

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.strict.len() + self.wdrr.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.strict.is_empty() && self.wdrr.is_empty()
    }

    /// The band a packet of `meta` joins, and the class it is counted in
    /// there: its class's band, or a later one where its flow still waits.
    pub fn placement(&self, meta: &QueueMeta) -> (u8, SchedClass) {
        let wanted = band_of(meta.class);
        let mut band = wanted;
        if wanted < WDRR_BAND {
            if self.wdrr.flow_len(meta.flow) > 0 {
                band = WDRR_BAND;
            } else if let Some(counts) = self.held.get(guard_slot(meta.flow)) {
                for b in (usize::from(wanted) + 1)..SchedClass::STRICT {
                    if counts.get(b).is_some_and(|&n| n > 0) {
                        band = b as u8;
                    }
                }
            }
        }
        // Moved into WDRR, a QP's packet is bulk traffic there.
        let class = if band == WDRR_BAND && band != wanted {
            SchedClass::Large
        } else {
            meta.class
        };
        (band, class)
    }

    /// Queues `item` (of `len` bytes, queued at `now`); returns the class
    /// it was queued in, or hands it back when its band is full.
    pub fn enqueue(
        &mut self,
        item: T,
        meta: QueueMeta,
        len: u32,
        now: u64,
    ) -> Result<SchedClass, Full<T>> {
        let (band, class) = self.placement(&meta);
        if band == WDRR_BAND {
            self.wdrr
                .enqueue(meta.flow, (item, now, class, meta.flow), len)
                .map_err(|r| Full {
                    item: r.item.0,
                    class,
                })?;
            if self.wdrr.weight(meta.flow) != Some(meta.weight) {
                let _ = self.wdrr.set_weight(meta.flow, meta.weight);
            }
        } else {
            let b = usize::from(band);
            self.strict
                .enqueue(b, (item, now, class, meta.flow), len)
                .map_err(|r| Full {
                    item: r.item.0,
                    class,
                })?;
            if let Some(n) = self
                .held
                .get_mut(guard_slot(meta.flow))
                .and_then(|c| c.get_mut(b))
            {
                *n += 1;
            }
        }
        Ok(class)
    }

    /// The next packet to send: strict bands first, then WDRR.
    pub fn dequeue(&mut self) -> Option<Dequeued<T>> {
        if let Some((band, (item, queued_at, class, flow), len)) = self.strict.dequeue() {
            if let Some(n) = self
                .held
                .get_mut(guard_slot(flow))
                .and_then(|c| c.get_mut(band))
            {
                *n = n.saturating_sub(1);
            }
            return Some(Dequeued {
                item,
                queued_at,
                class,
                len,
            });
        }
        self.wdrr
            .dequeue()
            .map(|(_, (item, queued_at, class, _), len)| Dequeued {
                item,
                queued_at,
                class,
                len,
            })
    }
}

fn guard_slot(flow: u32) -> usize {
    flow as usize % GUARD_SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(class: SchedClass, flow: u32) -> QueueMeta {
        QueueMeta {
            class,
            flow,
            weight: 1,
        }
    }

    fn drain(q: &mut PortQueue<u32>) -> Vec<u32> {
        std::iter::from_fn(|| q.dequeue().map(|d| d.item)).collect()
    }

    #[test]
    fn strict_bands_go_first_then_wdrr() {
        let mut q = PortQueue::new(64, 16).unwrap();
        q.enqueue(1, meta(SchedClass::Large, 7), 1000, 0).unwrap();
        q.enqueue(2, meta(SchedClass::Draining, 8), 100, 0).unwrap();
        q.enqueue(3, meta(SchedClass::SmallFast, 9), 100, 0)
            .unwrap();
        q.enqueue(4, meta(SchedClass::SmallSlow, 10), 100, 0)
            .unwrap();
        assert_eq!(drain(&mut q), vec![4, 3, 2, 1]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_draining_tail_waits_behind_its_own_large_packets() {
        let mut q = PortQueue::new(64, 16).unwrap();
        q.enqueue(1, meta(SchedClass::Large, 5), 1000, 0).unwrap();
        q.enqueue(2, meta(SchedClass::Large, 5), 1000, 0).unwrap();
        // The QP turned DRAINING while two of its packets wait in WDRR.
        let c = q.enqueue(3, meta(SchedClass::Draining, 5), 100, 0).unwrap();
        assert_eq!(c, SchedClass::Large, "joins its flow in WDRR");
        // Another QP's DRAINING packet is not held back.
        q.enqueue(4, meta(SchedClass::Draining, 6), 100, 0).unwrap();
        assert_eq!(drain(&mut q), vec![4, 1, 2, 3]);
        // Once the flow has left WDRR, its tail is strict again.
        let c = q.enqueue(5, meta(SchedClass::Draining, 5), 100, 0).unwrap();
        assert_eq!(c, SchedClass::Draining);
    }

    #[test]
    fn a_small_packet_never_overtakes_its_flow_in_a_later_strict_band() {
        let mut q = PortQueue::new(64, 16).unwrap();
        q.enqueue(1, meta(SchedClass::Draining, 5), 100, 0).unwrap();
        assert_eq!(q.placement(&meta(SchedClass::SmallSlow, 5)).0, 2);
        q.enqueue(2, meta(SchedClass::SmallSlow, 5), 100, 0)
            .unwrap();
        q.enqueue(3, meta(SchedClass::SmallSlow, 6), 100, 0)
            .unwrap();
        assert_eq!(drain(&mut q), vec![3, 1, 2]);
        // The counts went back to zero: band 0 again.
        assert_eq!(q.placement(&meta(SchedClass::SmallSlow, 5)).0, 0);
    }

    #[test]
    fn a_full_band_hands_the_packet_back() {
        let mut q = PortQueue::new(2, 16).unwrap();
        q.enqueue(1, meta(SchedClass::SmallSlow, 1), 100, 0)
            .unwrap();
        q.enqueue(2, meta(SchedClass::SmallSlow, 2), 100, 0)
            .unwrap();
        let full = q
            .enqueue(3, meta(SchedClass::SmallSlow, 3), 100, 0)
            .unwrap_err();
        assert_eq!((full.item, full.class), (3, SchedClass::SmallSlow));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn wdrr_shares_follow_weights() {
        let mut q = PortQueue::new(4096, 16).unwrap();
        for i in 0..1000u32 {
            for (flow, w) in [(1u32, 1u32), (2, 3)] {
                let m = QueueMeta {
                    class: SchedClass::Large,
                    flow,
                    weight: w,
                };
                q.enqueue(flow, m, 1000, u64::from(i)).unwrap();
            }
        }
        let first: Vec<u32> = (0..400)
            .filter_map(|_| q.dequeue().map(|d| d.item))
            .collect();
        let heavy = first.iter().filter(|&&f| f == 2).count();
        assert!(
            (290..=310).contains(&heavy),
            "weight 3 of 4: {heavy} of 400"
        );
    }
}
