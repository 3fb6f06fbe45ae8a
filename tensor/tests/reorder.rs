//! Reordering sliced traffic: order restored, losses declared, nothing
//! delivered twice.

use proptest::prelude::*;
use tensor::reorder::{RefuseReason, ReorderBuffer};

const US: u64 = 1_000;

fn push(
    rb: &mut ReorderBuffer<u32>,
    stream: u32,
    seq: u32,
    now: u64,
    out: &mut Vec<u32>,
) -> Result<(), RefuseReason> {
    rb.push(stream, seq, seq, now, &mut |x| out.push(x))
        .map_err(|r| {
            assert_eq!(r.item, seq);
            r.reason
        })
}

#[test]
fn in_order_passes_straight_through() {
    let mut rb = ReorderBuffer::new(4, 16, 100 * US);
    let mut out = Vec::new();
    for s in 500..600 {
        push(&mut rb, 1, s, 0, &mut out).unwrap();
    }
    assert_eq!(out, (500..600).collect::<Vec<_>>());
    let st = rb.stats();
    assert_eq!(st.in_order, 100);
    assert_eq!(st.reordered, 0);
    assert_eq!(st.held_now, 0);
}

#[test]
fn swapped_pair_is_restored() {
    let mut rb = ReorderBuffer::new(4, 16, 100 * US);
    let mut out = Vec::new();
    push(&mut rb, 1, 100, 0, &mut out).unwrap();
    push(&mut rb, 1, 102, 0, &mut out).unwrap();
    push(&mut rb, 1, 101, 0, &mut out).unwrap();
    assert_eq!(out, vec![100, 101, 102]);
    let st = rb.stats();
    assert_eq!((st.in_order, st.reordered, st.held_now), (2, 1, 0));
}

#[test]
fn missing_packet_is_declared_lost_after_timeout() {
    let mut rb = ReorderBuffer::new(4, 16, 100 * US);
    let mut out = Vec::new();
    push(&mut rb, 7, 0, 0, &mut out).unwrap();
    for s in 2..6 {
        push(&mut rb, 7, s, 10 * US, &mut out).unwrap();
    }
    assert_eq!(out, vec![0]);
    rb.expire(50 * US, &mut |x| out.push(x));
    assert_eq!(out, vec![0], "not yet timed out");
    rb.expire(110 * US, &mut |x| out.push(x));
    assert_eq!(out, vec![0, 2, 3, 4, 5]);
    let st = rb.stats();
    assert_eq!(st.lost, 1);
    assert_eq!(st.held_now, 0);
    // The lost one turning up after all is late, not delivered.
    assert_eq!(
        push(&mut rb, 7, 1, 120 * US, &mut out),
        Err(RefuseReason::Late)
    );
    push(&mut rb, 7, 6, 120 * US, &mut out).unwrap();
    assert_eq!(out.last(), Some(&6));
}

#[test]
fn timeout_releases_only_up_to_the_last_old_packet() {
    let mut rb = ReorderBuffer::new(1, 32, 100 * US);
    let mut out = Vec::new();
    push(&mut rb, 1, 0, 0, &mut out).unwrap();
    push(&mut rb, 1, 2, 0, &mut out).unwrap(); // gap at 1
    push(&mut rb, 1, 4, 90 * US, &mut out).unwrap(); // gap at 3, young
    rb.expire(100 * US, &mut |x| out.push(x));
    assert_eq!(out, vec![0, 2]);
    assert_eq!(rb.stats().lost, 1);
    assert_eq!(rb.stats().held_now, 1);
    // 3 may still arrive in time.
    push(&mut rb, 1, 3, 150 * US, &mut out).unwrap();
    assert_eq!(out, vec![0, 2, 3, 4]);
    assert_eq!(rb.stats().lost, 1);
}

#[test]
fn duplicates_and_late_are_refused() {
    let mut rb = ReorderBuffer::new(4, 16, 100 * US);
    let mut out = Vec::new();
    push(&mut rb, 1, 100, 0, &mut out).unwrap();
    push(&mut rb, 1, 103, 0, &mut out).unwrap();
    assert_eq!(
        push(&mut rb, 1, 103, 0, &mut out),
        Err(RefuseReason::Duplicate)
    );
    assert_eq!(push(&mut rb, 1, 100, 0, &mut out), Err(RefuseReason::Late));
    assert_eq!(push(&mut rb, 1, 50, 0, &mut out), Err(RefuseReason::Late));
    let st = rb.stats();
    assert_eq!((st.duplicate, st.late), (1, 2));
    assert_eq!(out, vec![100]);
}

#[test]
fn window_overflow_declares_oldest_gaps_lost() {
    let mut rb = ReorderBuffer::new(2, 8, 1_000 * US);
    assert_eq!(rb.window(), 8);
    let mut out = Vec::new();
    push(&mut rb, 3, 0, 0, &mut out).unwrap();
    push(&mut rb, 3, 2, 0, &mut out).unwrap();
    push(&mut rb, 3, 5, 0, &mut out).unwrap();
    // 1 is missing; 10 needs the window to start at 3: 1 is declared
    // lost and 2 delivered; 5 and 10 stay held.
    push(&mut rb, 3, 10, 0, &mut out).unwrap();
    assert_eq!(out, vec![0, 2]);
    assert_eq!(rb.stats().lost, 1);
    assert_eq!(rb.stats().held_now, 2);
    // Far ahead: everything held comes out, and every number from 3 to
    // the new window's start without a packet is counted lost.
    push(&mut rb, 3, 1_000_000, 0, &mut out).unwrap();
    assert_eq!(out, vec![0, 2, 5, 10]);
    let new_start = 1_000_000 - 7;
    assert_eq!(rb.stats().lost, 1 + u64::from(new_start - 3) - 2);
    for s in new_start..1_000_000 {
        push(&mut rb, 3, s, 0, &mut out).unwrap();
    }
    assert_eq!(out.len(), 4 + 7 + 1);
    assert_eq!(out.last(), Some(&1_000_000));
    assert_eq!(rb.stats().held_now, 0);
}

#[test]
fn sequence_wraps_at_2_pow_32() {
    let mut rb = ReorderBuffer::new(1, 16, 100 * US);
    let mut out = Vec::new();
    let start = u32::MAX - 4;
    let order = [0u32, 2, 1, 5, 3, 4, 6, 9, 7, 8];
    for i in order {
        push(&mut rb, 9, start.wrapping_add(i), 0, &mut out).unwrap();
    }
    let want: Vec<u32> = (0..10).map(|i| start.wrapping_add(i)).collect();
    assert_eq!(out, want);
    assert_eq!(
        push(&mut rb, 9, u32::MAX, 0, &mut out),
        Err(RefuseReason::Late)
    );
}

#[test]
fn streams_are_independent_and_slots_run_out() {
    let mut rb = ReorderBuffer::new(2, 8, 100 * US);
    let mut out = Vec::new();
    push(&mut rb, 1, 0, 0, &mut out).unwrap();
    push(&mut rb, 1, 2, 0, &mut out).unwrap();
    push(&mut rb, 2, 50, 0, &mut out).unwrap();
    assert_eq!(
        push(&mut rb, 3, 0, 0, &mut out),
        Err(RefuseReason::NoStream)
    );
    assert_eq!(rb.stats().no_stream, 1);
    // Stream 2 holds nothing; once idle long enough its slot is recycled.
    rb.set_idle_ns(500 * US);
    assert_eq!(
        push(&mut rb, 3, 0, 400 * US, &mut out),
        Err(RefuseReason::NoStream)
    );
    push(&mut rb, 3, 70, 600 * US, &mut out).unwrap();
    assert_eq!(out, vec![0, 50, 70]);
    // Stream 1 still holds 2 and was never recycled.
    push(&mut rb, 1, 1, 600 * US, &mut out).unwrap();
    assert_eq!(out, vec![0, 50, 70, 1, 2]);
}

#[test]
fn a_stream_whose_start_was_overtaken_waits_for_it() {
    // The sender numbers a stream from 0; with two paths (or two RX
    // queues) its packet 3 may arrive first. The stream still starts at 0:
    // 3 waits, and 0, 1, 2 are not refused as late.
    let mut rb = ReorderBuffer::new(4, 16, 100 * US);
    let mut out = Vec::new();
    push(&mut rb, 1, 3, 0, &mut out).unwrap();
    assert!(out.is_empty());
    for s in [1, 0, 2] {
        push(&mut rb, 1, s, 0, &mut out).unwrap();
    }
    assert_eq!(out, vec![0, 1, 2, 3]);
    assert_eq!(rb.stats().late, 0);
    // A start that never comes is given up on after the timeout, counted.
    push(&mut rb, 2, 5, 0, &mut out).unwrap();
    rb.expire(110 * US, &mut |x| out.push(x));
    assert_eq!(out, vec![0, 1, 2, 3, 5]);
    assert_eq!(rb.stats().lost, 5);
    // Beyond one window from 0, the first number seen is the start.
    push(&mut rb, 3, 16, 0, &mut out).unwrap();
    assert_eq!(out.last(), Some(&16));
}

#[test]
fn flush_delivers_everything_in_order() {
    let mut rb = ReorderBuffer::new(4, 16, 100 * US);
    let mut out = Vec::new();
    push(&mut rb, 1, 0, 0, &mut out).unwrap();
    push(&mut rb, 1, 5, 0, &mut out).unwrap();
    push(&mut rb, 1, 3, 0, &mut out).unwrap();
    push(&mut rb, 2, 100, 0, &mut out).unwrap();
    push(&mut rb, 2, 102, 0, &mut out).unwrap();
    rb.flush(&mut |x| out.push(x));
    assert_eq!(out[..2], [0, 100]);
    // Streams are flushed one after the other, in slot order.
    let one: Vec<u32> = out[2..].iter().copied().filter(|&x| x < 10).collect();
    let two: Vec<u32> = out[2..].iter().copied().filter(|&x| x >= 10).collect();
    assert_eq!(one, vec![3, 5]);
    assert_eq!(two, vec![102]);
    let st = rb.stats();
    assert_eq!(st.held_now, 0);
    assert_eq!(st.lost, 3 + 1);
}

proptest! {
    #[test]
    fn permutation_within_window_is_restored(
        start in 128u32..,
        n in 1usize..200,
        window_log in 0u32..7,
        keys in prop::collection::vec(any::<u32>(), 200),
    ) {
        let window = 1usize << window_log;
        // Shuffle within blocks of `window` packets: when a packet arrives,
        // every packet a window or more before it already has, so nothing
        // needs declaring lost.
        let mut order: Vec<usize> = (0..n).collect();
        for block in order.chunks_mut(window) {
            block.sort_by_key(|&i| keys[i]);
        }
        let mut rb = ReorderBuffer::new(8, window, 1_000 * US);
        let mut out = Vec::new();
        // The first packet sets the start, so send the first one first.
        let first = order.iter().position(|&i| i == 0).unwrap_or(0);
        order.swap(0, first);
        for &i in &order {
            let seq = start.wrapping_add(i as u32);
            let r = rb.push(4, seq, seq, 0, &mut |x| out.push(x));
            prop_assert!(r.is_ok(), "{:?}", r.err().map(|e| e.reason));
        }
        let want: Vec<u32> = (0..n).map(|i| start.wrapping_add(i as u32)).collect();
        prop_assert_eq!(&out, &want);
        let st = rb.stats();
        prop_assert_eq!(st.in_order + st.reordered, n as u64);
        prop_assert_eq!(st.lost, 0);
        prop_assert_eq!(st.held_now, 0);
    }

    #[test]
    fn nothing_lost_or_duplicated(
        pkts in prop::collection::vec((0u32..3, 0u32..40, 0u64..50), 1..300),
    ) {
        // Arbitrary arrivals with drops and copies: every packet is either
        // delivered exactly once or refused, and deliveries are increasing.
        let mut rb = ReorderBuffer::new(2, 8, 20 * US);
        // No recycling: each stream is then one increasing run.
        rb.set_idle_ns(u64::MAX);
        let mut delivered: Vec<(u32, u32)> = Vec::new();
        let mut refused = 0u64;
        let mut now = 0;
        for (stream, seq, dt) in &pkts {
            now += dt * US;
            let mut out = Vec::new();
            match rb.push(*stream, *seq, (*stream, *seq), now, &mut |x| out.push(x)) {
                Ok(()) => {}
                Err(r) => {
                    prop_assert_eq!(r.item, (*stream, *seq));
                    refused += 1;
                }
            }
            rb.expire(now, &mut |x| out.push(x));
            delivered.extend(out);
        }
        rb.flush(&mut |x| delivered.push(x));
        let st = rb.stats();
        prop_assert_eq!(st.held_now, 0);
        prop_assert_eq!(delivered.len() as u64 + refused, pkts.len() as u64);
        prop_assert_eq!(st.in_order + st.reordered, delivered.len() as u64);
        prop_assert_eq!(st.late + st.duplicate + st.no_stream, refused);
        for s in 0..3 {
            let seqs: Vec<u32> = delivered.iter().filter(|d| d.0 == s).map(|d| d.1).collect();
            for w in seqs.windows(2) {
                prop_assert!(w[0] < w[1], "stream {} delivered {:?}", s, seqs);
            }
        }
    }
}
