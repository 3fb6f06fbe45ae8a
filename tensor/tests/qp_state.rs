//! The QP state machine on generated RoCEv2 packet sequences: what each
//! kind of traffic becomes, and when it leaves that state.

use classifier::BthOpcode;
use proptest::prelude::*;
use tensor::{QpFlow, QpState, QpThresholds, ThresholdError, Transition};

const US: u64 = 1_000;
const MTU: u32 = 4096 + 58; // payload plus Ethernet/IP/UDP/BTH/ICRC

fn th() -> QpThresholds {
    QpThresholds::default()
}

/// Sends one RDMA WRITE of `bytes` at `gbps`, starting at `t`; returns the
/// time after it and every transition on the way.
fn write_message(
    q: &mut QpFlow,
    t: u64,
    bytes: u64,
    gbps: f64,
    transitions: &mut Vec<Transition>,
) -> u64 {
    let packets = bytes.div_ceil(4096).max(1);
    let gap = (f64::from(MTU) * 8.0 / gbps) as u64;
    let mut now = t;
    for i in 0..packets {
        let op = match (i, packets) {
            (_, 1) => BthOpcode::RC_WRITE_ONLY,
            (0, _) => BthOpcode::RC_WRITE_FIRST,
            (i, n) if i == n - 1 => BthOpcode::RC_WRITE_LAST,
            _ => BthOpcode::RC_WRITE_MIDDLE,
        };
        let dma = (i == 0).then_some(bytes as u32);
        transitions.extend(q.on_packet(now, MTU, op, dma, &th()));
        now += gap;
    }
    now
}

#[test]
fn small_messages_stay_small() {
    let mut q = QpFlow::default();
    assert_eq!(q.state(), QpState::Unallocated);
    let mut seen = Vec::new();
    let mut t = 0;
    for i in 0..200u64 {
        let op = if i % 2 == 0 {
            BthOpcode::RC_SEND_ONLY
        } else {
            BthOpcode::RC_ACK
        };
        seen.extend(q.on_packet(t, 128, op, None, &th()));
        t += 50 * US;
    }
    assert_eq!(
        seen,
        vec![Transition {
            from: QpState::Unallocated,
            to: QpState::SmallFlow
        }]
    );
    assert_eq!(q.packets(), 200);
}

#[test]
fn a_large_write_is_large_from_its_first_packet_then_drains_then_is_forgotten() {
    let mut q = QpFlow::default();
    let mut seen = Vec::new();
    // The RETH announces 4 MiB: LARGE at once, even at a modest rate.
    let end = write_message(&mut q, 0, 4 << 20, 2.0, &mut seen);
    assert_eq!(
        seen,
        vec![
            Transition {
                from: QpState::Unallocated,
                to: QpState::LargeFlow
            },
            Transition {
                from: QpState::LargeFlow,
                to: QpState::Draining
            },
        ]
    );
    // Idle past the timeout: UNALLOCATED, and a tick before it changes nothing.
    assert_eq!(q.on_tick(end + th().idle_timeout_ns / 2, &th()), None);
    assert_eq!(
        q.on_tick(end + th().idle_timeout_ns, &th()),
        Some(Transition {
            from: QpState::Draining,
            to: QpState::Unallocated
        })
    );
    assert_eq!(q.total_bytes(), 0, "state released");
}

#[test]
fn a_send_becomes_large_when_its_bytes_cross_the_threshold() {
    let mut q = QpFlow::default();
    let mut t = 0;
    let mut first_large_at = None;
    let packets = (2 << 20) / 4096;
    for i in 0..packets {
        let op = match i {
            0 => BthOpcode::RC_SEND_FIRST,
            i if i == packets - 1 => BthOpcode::RC_SEND_LAST,
            _ => BthOpcode::RC_SEND_MIDDLE,
        };
        // 1 Gbit/s: never large by rate.
        if let Some(tr) = q.on_packet(t, 4096, op, None, &th()) {
            if tr.to == QpState::LargeFlow {
                first_large_at = Some(i);
            }
        }
        t += 33 * US;
    }
    assert_eq!(
        first_large_at,
        Some((1 << 20) / 4096 - 1),
        "at the 1 MiB mark"
    );
    assert_eq!(q.state(), QpState::Draining, "the Last packet drains it");
    // The next message is a small one: back to SMALL_FLOW.
    assert_eq!(
        q.on_packet(t, 256, BthOpcode::RC_SEND_ONLY, None, &th()),
        Some(Transition {
            from: QpState::Draining,
            to: QpState::SmallFlow
        })
    );
}

#[test]
fn a_fast_qp_of_medium_messages_is_large_until_it_slows_down() {
    let mut q = QpFlow::default();
    let mut seen = Vec::new();
    let mut t = 0;
    // 64 KiB messages back to back at 25 Gbit/s: each is small, the QP is not.
    for _ in 0..40 {
        t = write_message(&mut q, t, 64 << 10, 25.0, &mut seen);
    }
    assert_eq!(q.state(), QpState::LargeFlow, "{seen:?}");
    assert!(q.rate_bps() > 10e9);
    // Message boundaries did not make it flap.
    assert_eq!(
        seen.iter().filter(|t| t.to == QpState::Draining).count(),
        0,
        "{seen:?}"
    );
    // Then one message every 2 ms: the rate decays and it drains.
    for _ in 0..5 {
        t += 2_000 * US;
        t = write_message(&mut q, t, 64 << 10, 25.0, &mut seen);
    }
    assert_ne!(q.state(), QpState::LargeFlow, "{seen:?}");
    assert!(seen
        .iter()
        .any(|t| t.from == QpState::LargeFlow && t.to == QpState::Draining));
}

#[test]
fn thresholds_are_validated() {
    assert_eq!(th().validate(), Ok(()));
    let bad = |f: fn(&mut QpThresholds)| {
        let mut t = th();
        f(&mut t);
        t.validate()
    };
    assert_eq!(
        bad(|t| t.large_message_bytes = 0),
        Err(ThresholdError::ZeroMessageBytes)
    );
    assert!(matches!(
        bad(|t| t.large_rate_bps = f64::NAN),
        Err(ThresholdError::BadRate(_))
    ));
    assert!(matches!(
        bad(|t| t.exit_ratio = 1.5),
        Err(ThresholdError::BadExitRatio(_))
    ));
    assert_eq!(
        bad(|t| t.idle_timeout_ns = 0),
        Err(ThresholdError::ZeroTime)
    );
}

proptest! {
    /// Any packet sequence: no panic, a finite non-negative rate, a
    /// transition reported exactly when the state changes, and an idle
    /// tick always ends in UNALLOCATED.
    #[test]
    fn any_sequence_is_handled(
        packets in proptest::collection::vec((0u64..5_000_000, 0u32..10_000, any::<u8>(), proptest::option::of(any::<u32>())), 1..300)
    ) {
        let mut q = QpFlow::default();
        let mut t = 0u64;
        for (gap, len, op, dma) in packets {
            t = t.saturating_add(gap);
            let before = q.state();
            let tr = q.on_packet(t, len, BthOpcode(op), dma, &th());
            prop_assert!(q.rate_bps().is_finite() && q.rate_bps() >= 0.0);
            prop_assert_ne!(q.state(), QpState::Unallocated);
            match tr {
                Some(tr) => prop_assert_eq!((tr.from, tr.to), (before, q.state())),
                None => prop_assert_eq!(before, q.state()),
            }
        }
        q.on_tick(t.saturating_add(th().idle_timeout_ns), &th());
        prop_assert_eq!(q.state(), QpState::Unallocated);
    }
}
