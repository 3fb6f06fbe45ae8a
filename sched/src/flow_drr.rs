//! [`FlowDrr`]: weighted deficit round robin over per-flow FIFOs.
//!
//! # Storage, and why nothing allocates after `new`
//!
//! * **Packets** live in one pool of `max_packets` nodes. Each flow's FIFO
//!   is a singly linked list through the pool (`head`, `tail`, `next`
//!   indices); free nodes form another list. Enqueue takes a node from the
//!   free list, dequeue gives it back. Memory does not depend on how
//!   packets are spread over flows.
//! * **Flows** live in `max_flows` slots with a free-slot stack. A
//!   `HashMap<K, slot>` finds a flow's slot. It is built with room for
//!   `2 × max_flows` keys while never holding more than `max_flows`: the
//!   std (hashbrown) table only grows when an insert finds no room *and*
//!   the live keys exceed half its capacity; below that it reclaims
//!   deleted entries in place. So churn of flows coming and going does not
//!   allocate; the `no_alloc` test exercises exactly that.
//! * **The active list** is a `VecDeque` of slot indices with room for
//!   every slot, and each slot is in it at most once.
//!
//! # Flow lifetime
//!
//! A flow comes into being with its first packet (weight 1) or with
//! [`FlowDrr::set_weight`]. A flow whose weight was never set is forgotten
//! as soon as its queue empties, so short-lived flows free their slots by
//! themselves. A flow with a weight set is *pinned*: it keeps its weight
//! while idle until [`FlowDrr::drain_flow`] removes it. Pin the flows whose
//! weight comes from the control plane (a target's COMPUTE_CAPABILITY) and
//! remove them when they end.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::config::ConfigError;
use crate::drr::{self, DrrQueues};
use crate::flow_drr_config::FlowDrrConfig;
use crate::reject::{RejectReason, Rejected};
use crate::stats::FlowDrrStats;

/// End of a linked list.
const NIL: usize = usize::MAX;

/// One packet slot of the shared pool.
#[derive(Debug)]
struct Node<T> {
    item: Option<T>,
    len: u32,
    next: usize,
}

/// One known flow.
#[derive(Debug)]
struct Flow<K> {
    key: K,
    weight: u32,
    quantum: u64,
    deficit: u64,
    head: usize,
    tail: usize,
    len: usize,
    bytes: u64,
    pinned: bool,
}

/// Weighted DRR over per-flow FIFOs (see the module docs for storage and
/// flow lifetime).
///
/// Flow `f` gets `base_quantum × weight(f)` bytes per round, so with all
/// flows backlogged each receives bandwidth in proportion to its weight,
/// and within a flow packets leave in arrival order.
///
/// ```
/// use sched::{FlowDrr, FlowDrrConfig};
///
/// let cfg = FlowDrrConfig { base_quantum: 1500, max_flows: 64, max_packets: 1024, max_packets_per_flow: 256 };
/// let mut f: FlowDrr<u32, &str> = FlowDrr::new(&cfg).unwrap();
/// f.set_weight(7, 3).unwrap(); // e.g. from the target's compute capability
/// f.enqueue(7, "a", 1500).unwrap();
/// f.enqueue(9, "b", 1500).unwrap();
/// assert_eq!(f.dequeue(), Some((7, "a", 1500)));
/// let flushed: Vec<_> = f.drain_flow(9).collect();
/// assert_eq!(flushed, vec![("b", 1500)]);
/// ```
#[derive(Debug)]
pub struct FlowDrr<K, T> {
    base_quantum: u64,
    max_packets_per_flow: usize,
    nodes: Vec<Node<T>>,
    free_node: usize,
    flows: Vec<Option<Flow<K>>>,
    free_flows: Vec<usize>,
    index: HashMap<K, usize>,
    active: VecDeque<usize>,
    queued: usize,
    stats: FlowDrrStats,
}

/// [`DrrQueues`] over the flow slots and the packet pool.
struct FlowsView<'a, K, T> {
    flows: &'a mut [Option<Flow<K>>],
    nodes: &'a [Node<T>],
}

impl<K, T> FlowsView<'_, K, T> {
    fn flow(&self, q: usize) -> Option<&Flow<K>> {
        self.flows.get(q)?.as_ref()
    }
}

impl<K, T> DrrQueues for FlowsView<'_, K, T> {
    fn head_len(&self, q: usize) -> Option<u32> {
        let flow = self.flow(q)?;
        if flow.len == 0 {
            return None;
        }
        self.nodes.get(flow.head).map(|n| n.len)
    }
    fn quantum(&self, q: usize) -> u64 {
        self.flow(q).map_or(1, |f| f.quantum)
    }
    fn deficit(&self, q: usize) -> u64 {
        self.flow(q).map_or(0, |f| f.deficit)
    }
    fn set_deficit(&mut self, q: usize, deficit: u64) {
        if let Some(Some(f)) = self.flows.get_mut(q) {
            f.deficit = deficit;
        }
    }
}

impl<K: Copy + Eq + Hash, T> FlowDrr<K, T> {
    /// Builds the scheduler, allocating the packet pool, the flow slots,
    /// the flow index and the active list.
    pub fn new(config: &FlowDrrConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let nodes = (0..config.max_packets)
            .map(|i| Node {
                item: None,
                len: 0,
                next: if i + 1 < config.max_packets {
                    i + 1
                } else {
                    NIL
                },
            })
            .collect();
        let flows = (0..config.max_flows).map(|_| None).collect();
        // Popped from the end: slot 0 is handed out first.
        let free_flows = (0..config.max_flows).rev().collect();
        Ok(FlowDrr {
            base_quantum: u64::from(config.base_quantum),
            max_packets_per_flow: config.max_packets_per_flow,
            nodes,
            free_node: 0,
            flows,
            free_flows,
            index: HashMap::with_capacity(config.max_flows.saturating_mul(2)),
            active: VecDeque::with_capacity(config.max_flows),
            queued: 0,
            stats: FlowDrrStats::default(),
        })
    }

    /// Finds `flow`'s slot, creating the flow (weight 1, unpinned) if it is
    /// new and a slot is free.
    fn slot_for(&mut self, flow: K) -> Option<usize> {
        if let Some(&slot) = self.index.get(&flow) {
            return Some(slot);
        }
        let slot = self.free_flows.pop()?;
        let entry = self.flows.get_mut(slot)?;
        *entry = Some(Flow {
            key: flow,
            weight: 1,
            quantum: self.base_quantum,
            deficit: 0,
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
            pinned: false,
        });
        self.index.insert(flow, slot);
        Some(slot)
    }

    /// Forgets the flow in `slot` (its queue must already be empty and it
    /// must not be in the active list).
    fn free_slot(&mut self, slot: usize) {
        if let Some(entry) = self.flows.get_mut(slot) {
            if let Some(flow) = entry.take() {
                self.index.remove(&flow.key);
                self.free_flows.push(slot);
            }
        }
    }

    /// Queues `item` of `len_bytes` on `flow`.
    ///
    /// Hands the item back if the packet pool is full, the flow is at its
    /// per-flow limit, or the flow is new and the flow table is full.
    pub fn enqueue(&mut self, flow: K, item: T, len_bytes: u32) -> Result<(), Rejected<T>> {
        self.stats.offered = self.stats.offered.wrapping_add(1);
        if self.free_node == NIL {
            self.stats.rejected_buffer_full = self.stats.rejected_buffer_full.wrapping_add(1);
            return Err(Rejected {
                item,
                reason: RejectReason::BufferFull,
            });
        }
        let Some(slot) = self.slot_for(flow) else {
            self.stats.rejected_too_many_flows = self.stats.rejected_too_many_flows.wrapping_add(1);
            return Err(Rejected {
                item,
                reason: RejectReason::TooManyFlows,
            });
        };
        let Some(Some(f)) = self.flows.get_mut(slot) else {
            // Unreachable: `slot_for` returned an occupied slot.
            self.stats.rejected_too_many_flows = self.stats.rejected_too_many_flows.wrapping_add(1);
            return Err(Rejected {
                item,
                reason: RejectReason::TooManyFlows,
            });
        };
        if f.len >= self.max_packets_per_flow {
            self.stats.rejected_flow_full = self.stats.rejected_flow_full.wrapping_add(1);
            return Err(Rejected {
                item,
                reason: RejectReason::FlowFull,
            });
        }
        let node_idx = self.free_node;
        let Some(node) = self.nodes.get_mut(node_idx) else {
            self.stats.rejected_buffer_full = self.stats.rejected_buffer_full.wrapping_add(1);
            return Err(Rejected {
                item,
                reason: RejectReason::BufferFull,
            });
        };
        self.free_node = node.next;
        node.item = Some(item);
        node.len = len_bytes;
        node.next = NIL;
        let old_tail = f.tail;
        f.tail = node_idx;
        f.len += 1;
        f.bytes = f.bytes.saturating_add(u64::from(len_bytes));
        let was_empty = f.len == 1;
        if was_empty {
            f.head = node_idx;
            f.deficit = f.quantum;
            self.active.push_back(slot);
        } else if let Some(prev) = self.nodes.get_mut(old_tail) {
            prev.next = node_idx;
        }
        self.queued += 1;
        self.stats.enqueued = self.stats.enqueued.wrapping_add(1);
        self.stats.enqueued_bytes = self.stats.enqueued_bytes.wrapping_add(u64::from(len_bytes));
        Ok(())
    }

    /// Unlinks the head packet of the flow in `slot` and returns its node
    /// to the free list.
    fn pop_head(&mut self, slot: usize) -> Option<(K, T, u32)> {
        let f = self.flows.get_mut(slot)?.as_mut()?;
        let node_idx = f.head;
        let node = self.nodes.get_mut(node_idx)?;
        let item = node.item.take()?;
        let len = node.len;
        f.head = node.next;
        f.len = f.len.saturating_sub(1);
        f.bytes = f.bytes.saturating_sub(u64::from(len));
        if f.len == 0 {
            f.head = NIL;
            f.tail = NIL;
        }
        node.next = self.free_node;
        self.free_node = node_idx;
        self.queued = self.queued.saturating_sub(1);
        Some((f.key, item, len))
    }

    /// Takes the next packet by weighted DRR: `(flow, item, len_bytes)`.
    pub fn dequeue(&mut self) -> Option<(K, T, u32)> {
        if self.queued == 0 {
            return None;
        }
        let mut view = FlowsView {
            flows: &mut self.flows,
            nodes: &self.nodes,
        };
        let slot = drr::select(&mut self.active, &mut view)?;
        let out = self.pop_head(slot)?;
        self.stats.dequeued = self.stats.dequeued.wrapping_add(1);
        self.stats.dequeued_bytes = self.stats.dequeued_bytes.wrapping_add(u64::from(out.2));
        if let Some(Some(f)) = self.flows.get_mut(slot) {
            if f.len == 0 {
                // S&V: an emptied queue loses its deficit and leaves the
                // active list; it is at the front because `select` put it
                // there.
                f.deficit = 0;
                self.active.pop_front();
                if !f.pinned {
                    self.free_slot(slot);
                }
            }
        }
        Some(out)
    }

    /// Dequeues up to `max` packets into `out`, returning how many. Give
    /// `out` room for `max` items to keep the call allocation free.
    pub fn dequeue_burst<E>(&mut self, out: &mut E, max: usize) -> usize
    where
        E: Extend<(K, T, u32)>,
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

    /// Sets `flow`'s weight (≥ 1) and pins it (see the module docs),
    /// creating it if it is new.
    ///
    /// The new quantum `base_quantum × weight` is used from the flow's next
    /// visit on; credit already in its deficit is kept.
    pub fn set_weight(&mut self, flow: K, weight: u32) -> Result<(), ConfigError> {
        if weight == 0 {
            return Err(ConfigError::ZeroWeight);
        }
        let slot = self.slot_for(flow).ok_or(ConfigError::TooManyFlows)?;
        let base = self.base_quantum;
        if let Some(Some(f)) = self.flows.get_mut(slot) {
            f.weight = weight;
            f.quantum = base.saturating_mul(u64::from(weight));
            f.pinned = true;
        }
        Ok(())
    }

    /// `flow`'s weight, if the flow is known.
    pub fn weight(&self, flow: K) -> Option<u32> {
        self.flow(flow).map(|f| f.weight)
    }

    fn flow(&self, flow: K) -> Option<&Flow<K>> {
        let &slot = self.index.get(&flow)?;
        self.flows.get(slot)?.as_ref()
    }

    /// Removes `flow` entirely (queue, weight, pin) and yields its packets
    /// in FIFO order as `(item, len_bytes)`: the flush of a DRAINING flow.
    ///
    /// The flow leaves the active list at once, so the DRR never visits it
    /// again; packets the caller does not take from the iterator are
    /// dropped when the iterator is dropped (never leaked). An unknown flow
    /// yields nothing. Finding the flow in the active list is `O(active
    /// flows)`; draining is rare, so the fast path does not pay for a
    /// position index.
    pub fn drain_flow(&mut self, flow: K) -> DrainFlow<'_, K, T> {
        let mut next = NIL;
        let mut remaining = 0;
        if let Some(slot) = self.index.remove(&flow) {
            if let Some(entry) = self.flows.get_mut(slot) {
                if let Some(f) = entry.take() {
                    next = f.head;
                    remaining = f.len;
                    if f.len > 0 {
                        if let Some(pos) = self.active.iter().position(|&s| s == slot) {
                            self.active.remove(pos);
                        }
                    }
                    self.free_flows.push(slot);
                }
            }
        }
        DrainFlow {
            sched: self,
            next,
            remaining,
        }
    }

    /// Packets queued over all flows.
    pub fn len(&self) -> usize {
        self.queued
    }

    /// `true` when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Packets queued on `flow` (0 if unknown).
    pub fn flow_len(&self, flow: K) -> usize {
        self.flow(flow).map_or(0, |f| f.len)
    }

    /// Bytes queued on `flow` (0 if unknown).
    pub fn flow_bytes(&self, flow: K) -> u64 {
        self.flow(flow).map_or(0, |f| f.bytes)
    }

    /// Flows currently known (queued or pinned).
    pub fn flows(&self) -> usize {
        self.index.len()
    }

    /// Flows with packets queued.
    pub fn active_flows(&self) -> usize {
        self.active.len()
    }

    /// Counters over all flows.
    pub fn stats(&self) -> FlowDrrStats {
        self.stats
    }
}

/// Iterator returned by [`FlowDrr::drain_flow`]: the drained flow's packets
/// in FIFO order. Dropping it drops the packets not yet taken.
#[derive(Debug)]
pub struct DrainFlow<'a, K, T> {
    sched: &'a mut FlowDrr<K, T>,
    next: usize,
    remaining: usize,
}

impl<K, T> Iterator for DrainFlow<'_, K, T> {
    type Item = (T, u32);

    fn next(&mut self) -> Option<(T, u32)> {
        if self.remaining == 0 {
            return None;
        }
        let s = &mut *self.sched;
        let node_idx = self.next;
        let node = s.nodes.get_mut(node_idx)?;
        let item = node.item.take()?;
        let len = node.len;
        self.next = node.next;
        self.remaining -= 1;
        node.next = s.free_node;
        s.free_node = node_idx;
        s.queued = s.queued.saturating_sub(1);
        s.stats.drained = s.stats.drained.wrapping_add(1);
        Some((item, len))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl<K, T> Drop for DrainFlow<'_, K, T> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}
