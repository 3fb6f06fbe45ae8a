//! The discrete-event core: a priority queue of timestamped events.
//!
//! Time is integer nanoseconds, so no two runs can disagree on rounding.
//! Events at the same instant leave in the order they were scheduled (a
//! global sequence number breaks ties), which makes a run a pure function
//! of its inputs and seeds: the heap's internal layout never decides
//! anything.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One scheduled event.
#[derive(Debug, Clone, Copy)]
struct Entry<E> {
    at_ns: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.at_ns == other.at_ns && self.seq == other.seq
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so the max-heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ns, other.seq).cmp(&(self.at_ns, self.seq))
    }
}

/// Events waiting to happen, earliest first, ties in scheduling order.
#[derive(Debug, Clone)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now_ns: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
            now_ns: 0,
        }
    }

    /// Schedules `event` at `at_ns`. An event in the past is moved to now:
    /// time never runs backwards.
    pub fn push(&mut self, at_ns: u64, event: E) {
        let at_ns = at_ns.max(self.now_ns);
        self.heap.push(Entry {
            at_ns,
            seq: self.seq,
            event,
        });
        self.seq = self.seq.wrapping_add(1);
    }

    /// The next event and its time; the clock moves to it.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let e = self.heap.pop()?;
        self.now_ns = e.at_ns;
        Some((e.at_ns, e.event))
    }

    /// The time of the last event popped.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Events scheduled so far.
    pub fn scheduled(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_ties_in_scheduling_order() {
        let mut q = EventQueue::new();
        q.push(30, 'c');
        q.push(10, 'a');
        q.push(20, 'b');
        q.push(10, 'x');
        q.push(20, 'y');
        let order: Vec<(u64, char)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![(10, 'a'), (10, 'x'), (20, 'b'), (20, 'y'), (30, 'c')]
        );
    }

    #[test]
    fn the_past_is_now() {
        let mut q = EventQueue::new();
        q.push(100, 1);
        assert_eq!(q.pop(), Some((100, 1)));
        q.push(50, 2);
        assert_eq!(q.pop(), Some((100, 2)));
        assert!(q.is_empty());
    }
}
