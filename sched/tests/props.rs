//! Property tests: arbitrary operation sequences never panic, keep every
//! item exactly once (queued, dequeued, drained or handed back), keep FIFO
//! order within a band or flow, and keep strict priority.

use std::collections::{HashMap, HashSet, VecDeque};

use proptest::prelude::*;
use sched::{FlowDrr, FlowDrrConfig, RejectReason, SchedConfig, Scheduler};

#[derive(Debug, Clone)]
enum Op {
    Enqueue { target: usize, len: u32 },
    Dequeue,
    Burst { max: usize },
    SetQuantum { target: usize, q: u32 },
    Drain { target: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..7, prop_oneof![Just(0u32), 1u32..10_000, Just(u32::MAX)])
            .prop_map(|(target, len)| Op::Enqueue { target, len }),
        3 => Just(Op::Dequeue),
        1 => (0usize..40).prop_map(|max| Op::Burst { max }),
        1 => (0usize..7, 0u32..5000).prop_map(|(target, q)| Op::SetQuantum { target, q }),
        1 => (0usize..7).prop_map(|target| Op::Drain { target }),
    ]
}

/// Records that `id` left the scheduler; it must not have left before.
fn settle(done: &mut HashSet<u64>, id: u64) {
    assert!(done.insert(id), "item {id} came out twice");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scheduler_conserves_items_and_order(
        quanta in proptest::collection::vec(1u32..3000, 1..4),
        limit in 1u32..8,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let strict = 2;
        let mut s = Scheduler::new(&SchedConfig::uniform(strict, quanta.clone(), limit)).unwrap();
        let bands = strict + quanta.len();
        let mut model: Vec<VecDeque<u64>> = vec![VecDeque::new(); bands];
        let mut done = HashSet::new();
        let mut next_id = 0u64;

        let check_out = |model: &mut Vec<VecDeque<u64>>, band: usize, id: u64| {
            let lowest_strict = (0..strict).find(|&b| !model[b].is_empty());
            match lowest_strict {
                Some(b) => assert_eq!(band, b, "strict priority violated"),
                None => assert!(band >= strict),
            }
            assert_eq!(model[band].pop_front(), Some(id), "FIFO within band");
        };

        for op in ops {
            match op {
                Op::Enqueue { target, len } => {
                    let id = next_id;
                    next_id += 1;
                    match s.enqueue(target, id, len) {
                        Ok(()) => model[target].push_back(id),
                        Err(r) => {
                            prop_assert_eq!(r.item, id);
                            if target >= bands {
                                prop_assert_eq!(r.reason, RejectReason::NoSuchBand { band: target });
                            } else {
                                prop_assert_eq!(r.reason, RejectReason::BandFull { band: target });
                                prop_assert_eq!(model[target].len(), limit as usize);
                            }
                            settle(&mut done, id);
                        }
                    }
                }
                Op::Dequeue => match s.dequeue() {
                    Some((band, id, _)) => {
                        check_out(&mut model, band, id);
                        settle(&mut done, id);
                    }
                    None => prop_assert!(model.iter().all(VecDeque::is_empty)),
                },
                Op::Burst { max } => {
                    let mut out = Vec::new();
                    let n = s.dequeue_burst(&mut out, max);
                    prop_assert_eq!(n, out.len());
                    prop_assert!(n <= max);
                    for (band, id, _) in out {
                        check_out(&mut model, band, id);
                        settle(&mut done, id);
                    }
                }
                Op::SetQuantum { target, q } => {
                    let ok = s.set_quantum(target, q).is_ok();
                    prop_assert_eq!(ok, target >= strict && target < bands && q > 0);
                }
                Op::Drain { target } => {
                    let got: Vec<u64> = s.drain_band(target).map(|(id, _)| id).collect();
                    let want: Vec<u64> = model.get_mut(target).map(|q| q.drain(..).collect()).unwrap_or_default();
                    prop_assert_eq!(&got, &want);
                    for id in got {
                        settle(&mut done, id);
                    }
                }
            }
            prop_assert_eq!(s.len(), model.iter().map(VecDeque::len).sum::<usize>());
            for (b, q) in model.iter().enumerate() {
                prop_assert_eq!(s.band_len(b), q.len());
            }
        }
        while let Some((band, id, _)) = s.dequeue() {
            check_out(&mut model, band, id);
            settle(&mut done, id);
        }
        prop_assert!(s.is_empty());
        prop_assert_eq!(done.len() as u64, next_id);
        for b in 0..bands {
            let st = s.band_stats(b).unwrap();
            prop_assert_eq!(st.offered, st.enqueued + st.dropped_full);
            prop_assert_eq!(st.enqueued, st.dequeued);
        }
    }

    #[test]
    fn flow_drr_conserves_items_and_order(
        max_flows in 1usize..5,
        max_packets in 1usize..16,
        per_flow_frac in 1usize..=4,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let per_flow = (max_packets * per_flow_frac).div_ceil(4);
        let mut f = FlowDrr::new(&FlowDrrConfig {
            base_quantum: 700,
            max_flows,
            max_packets,
            max_packets_per_flow: per_flow,
        }).unwrap();
        // Model: per-flow FIFO of ids, and which flows are pinned.
        let mut model: HashMap<usize, VecDeque<u64>> = HashMap::new();
        let mut pinned: HashSet<usize> = HashSet::new();
        let mut done = HashSet::new();
        let mut next_id = 0u64;
        let known = |model: &HashMap<usize, VecDeque<u64>>, pinned: &HashSet<usize>, k: usize| {
            pinned.contains(&k) || model.get(&k).is_some_and(|q| !q.is_empty())
        };
        let known_count = |model: &HashMap<usize, VecDeque<u64>>, pinned: &HashSet<usize>| {
            (0..7).filter(|&k| known(model, pinned, k)).count()
        };

        let check_out = |model: &mut HashMap<usize, VecDeque<u64>>, done: &mut HashSet<u64>, k: usize, id: u64| {
            let q = model.get_mut(&k).expect("dequeued from unknown flow");
            assert_eq!(q.pop_front(), Some(id), "FIFO within flow");
            settle(done, id);
        };

        for op in ops {
            match op {
                Op::Enqueue { target, len } => {
                    let id = next_id;
                    next_id += 1;
                    let total: usize = model.values().map(VecDeque::len).sum();
                    let expect = if total >= max_packets {
                        Some(RejectReason::BufferFull)
                    } else if !known(&model, &pinned, target) && known_count(&model, &pinned) >= max_flows {
                        Some(RejectReason::TooManyFlows)
                    } else if model.get(&target).map_or(0, VecDeque::len) >= per_flow {
                        Some(RejectReason::FlowFull)
                    } else {
                        None
                    };
                    match f.enqueue(target, id, len) {
                        Ok(()) => {
                            prop_assert_eq!(expect, None);
                            model.entry(target).or_default().push_back(id);
                        }
                        Err(r) => {
                            prop_assert_eq!(r.item, id);
                            prop_assert_eq!(Some(r.reason), expect);
                            // Handed back: settled here, never seen again.
                            settle(&mut done, id);
                        }
                    }
                }
                Op::Dequeue | Op::Burst { .. } => {
                    let max = match op { Op::Burst { max } => max, _ => 1 };
                    let mut out = Vec::new();
                    let n = f.dequeue_burst(&mut out, max);
                    prop_assert_eq!(n, out.len());
                    let total: usize = model.values().map(VecDeque::len).sum();
                    prop_assert_eq!(n, max.min(total));
                    for (k, id, _) in out {
                        check_out(&mut model, &mut done, k, id);
                    }
                }
                Op::SetQuantum { target, q } => {
                    let expect_ok = q > 0 && (known(&model, &pinned, target) || known_count(&model, &pinned) < max_flows);
                    let ok = f.set_weight(target, q).is_ok();
                    prop_assert_eq!(ok, expect_ok);
                    if ok {
                        pinned.insert(target);
                        prop_assert_eq!(f.weight(target), Some(q));
                    }
                }
                Op::Drain { target } => {
                    let got: Vec<u64> = f.drain_flow(target).map(|(id, _)| id).collect();
                    let want: Vec<u64> = model.remove(&target).map(|q| q.into_iter().collect()).unwrap_or_default();
                    prop_assert_eq!(&got, &want);
                    pinned.remove(&target);
                    for id in got {
                        settle(&mut done, id);
                    }
                }
            }
            prop_assert_eq!(f.len(), model.values().map(VecDeque::len).sum::<usize>());
            prop_assert_eq!(f.flows(), known_count(&model, &pinned));
        }
        while let Some((k, id, _)) = f.dequeue() {
            check_out(&mut model, &mut done, k, id);
        }
        let st = f.stats();
        prop_assert_eq!(st.offered, next_id);
        prop_assert_eq!(st.offered, st.enqueued + st.rejected());
        prop_assert_eq!(st.enqueued, st.dequeued + st.drained);
        prop_assert_eq!(done.len() as u64, next_id);
    }
}
