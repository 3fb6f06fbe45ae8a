//! The deficit-round-robin selection step shared by [`Scheduler`]'s DRR
//! bands and [`FlowDrr`]'s flows.
//!
//! Shreedhar and Varghese's DRR, as Linux `sch_drr`/`sch_ets` implement it:
//!
//! * a queue joins the tail of the *active list* when it goes from empty to
//!   non-empty, with its deficit set to one quantum (its first visit);
//! * the queue at the head sends its head packet if the deficit covers it,
//!   and the deficit shrinks by the packet length; the queue stays at the
//!   head, so it keeps sending on later calls while the deficit lasts;
//! * otherwise it moves to the tail and earns one more quantum, which is
//!   the "quantum added once per visit" rule;
//! * when it empties, the caller resets its deficit to 0 and removes it
//!   from the active list (a queue does not hoard credit while idle).
//!
//! **Skipping empty rounds.** With a small quantum and a large packet a
//! queue may need many visits before it can send (quantum 1 byte against a
//! 9000-byte frame is 9000 rounds). After one full pass in which nobody
//! sent, [`select`] computes the smallest number `k` of further passes
//! after which somebody can send and adds `k` quanta to every active queue
//! at once. That is exactly what `k` more passes would have done, so the
//! order of service is unchanged, and one call costs at most about two
//! passes over the active list whatever the sizes.
//!
//! [`Scheduler`]: crate::Scheduler
//! [`FlowDrr`]: crate::FlowDrr

use std::collections::VecDeque;

/// The view of a set of queues that [`select`] needs. Queue ids are the
/// values stored in the active list.
pub(crate) trait DrrQueues {
    /// Length of queue `q`'s head packet, `None` if it is empty or unknown.
    fn head_len(&self, q: usize) -> Option<u32>;
    /// Current quantum of queue `q` in bytes (≥ 1).
    fn quantum(&self, q: usize) -> u64;
    /// Current deficit of queue `q` in bytes.
    fn deficit(&self, q: usize) -> u64;
    /// Sets queue `q`'s deficit.
    fn set_deficit(&mut self, q: usize, deficit: u64);
}

/// Picks the queue to send from, or `None` if the active list is empty.
///
/// On return the chosen queue is at the front of `active` and its deficit
/// has already been charged for its head packet; the caller pops that
/// packet and, if the queue is now empty, resets the deficit and pops the
/// front of `active`.
///
/// Never allocates: `active` is only rotated and popped.
pub(crate) fn select<Q: DrrQueues>(active: &mut VecDeque<usize>, qs: &mut Q) -> Option<usize> {
    // Visits without a send since the last send or skip.
    let mut idle_visits = 0usize;
    loop {
        let q = *active.front()?;
        let Some(len) = qs.head_len(q) else {
            // An empty queue in the active list would break the invariant;
            // drop it rather than spin.
            active.pop_front();
            qs.set_deficit(q, 0);
            continue;
        };
        let len = u64::from(len);
        let deficit = qs.deficit(q);
        if len <= deficit {
            qs.set_deficit(q, deficit - len);
            return Some(q);
        }
        qs.set_deficit(q, deficit.saturating_add(qs.quantum(q).max(1)));
        active.rotate_left(1);
        idle_visits += 1;
        if idle_visits >= active.len() {
            skip_idle_rounds(active, qs);
            idle_visits = 0;
        }
    }
}

/// Adds `k` quanta to every active queue, where `k` is the number of full
/// passes that would pass before some queue's deficit covers its head
/// packet (see the module docs).
fn skip_idle_rounds<Q: DrrQueues>(active: &VecDeque<usize>, qs: &mut Q) {
    let passes_needed = |qs: &Q, q: usize| -> u64 {
        let Some(len) = qs.head_len(q) else { return 0 };
        let missing = u64::from(len).saturating_sub(qs.deficit(q));
        missing.div_ceil(qs.quantum(q).max(1))
    };
    let Some(k) = active.iter().map(|&q| passes_needed(qs, q)).min() else {
        return;
    };
    if k == 0 {
        return;
    }
    for &q in active {
        let add = qs.quantum(q).max(1).saturating_mul(k);
        let d = qs.deficit(q).saturating_add(add);
        qs.set_deficit(q, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queues of packet lengths, for checking `select` against a literal
    /// one-visit-at-a-time DRR.
    struct Qs {
        pkts: Vec<VecDeque<u32>>,
        quantum: Vec<u64>,
        deficit: Vec<u64>,
    }

    impl DrrQueues for Qs {
        fn head_len(&self, q: usize) -> Option<u32> {
            self.pkts.get(q)?.front().copied()
        }
        fn quantum(&self, q: usize) -> u64 {
            self.quantum[q]
        }
        fn deficit(&self, q: usize) -> u64 {
            self.deficit[q]
        }
        fn set_deficit(&mut self, q: usize, d: u64) {
            self.deficit[q] = d;
        }
    }

    /// Textbook DRR, one visit per loop iteration, no skipping.
    fn naive(mut pkts: Vec<VecDeque<u32>>, quantum: Vec<u64>) -> Vec<usize> {
        let mut deficit = vec![0u64; pkts.len()];
        let mut active: VecDeque<usize> =
            (0..pkts.len()).filter(|&q| !pkts[q].is_empty()).collect();
        for &q in &active {
            deficit[q] = quantum[q];
        }
        let mut out = Vec::new();
        while let Some(&q) = active.front() {
            let len = u64::from(pkts[q][0]);
            if len <= deficit[q] {
                deficit[q] -= len;
                pkts[q].pop_front();
                out.push(q);
                if pkts[q].is_empty() {
                    deficit[q] = 0;
                    active.pop_front();
                }
            } else {
                deficit[q] += quantum[q];
                active.rotate_left(1);
            }
        }
        out
    }

    #[test]
    fn skipping_rounds_keeps_the_textbook_order() {
        let pkts: Vec<VecDeque<u32>> = vec![
            [9000, 64, 1500, 9000].into(),
            [64, 64, 9000].into(),
            [1500, 9000, 64].into(),
        ];
        let quantum = vec![1, 3, 7];
        let expected = naive(pkts.clone(), quantum.clone());
        let mut qs = Qs {
            deficit: quantum.clone(),
            pkts,
            quantum,
        };
        let mut active: VecDeque<usize> = (0..3).collect();
        let mut got = Vec::new();
        while let Some(q) = select(&mut active, &mut qs) {
            qs.pkts[q].pop_front();
            got.push(q);
            if qs.pkts[q].is_empty() {
                qs.deficit[q] = 0;
                active.pop_front();
            }
        }
        assert_eq!(got, expected);
    }
}
