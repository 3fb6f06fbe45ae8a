//! Every message kind survives encode/decode and seal/accept unchanged, and
//! the bytes on the wire are the ones `docs/wire-format.md` §3 describes.

mod common;

use common::*;
use control::header::{FLAG_REPLY, HEADER_LEN, TAG_LEN};
use control::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[test]
fn plaintext_round_trip_every_kind() {
    let mut all: Vec<Message> = every_request().into_iter().map(|(_, m)| m).collect();
    all.push(
        Reply {
            in_reply_to: 42,
            body: "{\"ok\":true}\n".into(),
        }
        .into(),
    );
    for q in [QueryWhat::Stats, QueryWhat::State, QueryWhat::Feedback] {
        all.push(query(q));
    }
    for m in all {
        let bytes = m.encode(NOW).expect("valid message");
        assert_eq!(bytes[0], m.kind().to_wire());
        assert_eq!(bytes[1], 0);
        assert_eq!(&bytes[2..10], &NOW.to_be_bytes());
        let d = Message::decode(&bytes).expect("decodes");
        assert_eq!(d.origin_time_ns, NOW);
        assert_eq!(d.message, m);
    }
}

#[test]
fn sealed_round_trip_every_kind() {
    let mut rx = receiver();
    for (i, (peer, m)) in every_request().into_iter().enumerate() {
        let mut tx = sender(peer, 1000 + i as u64);
        let d = tx.seal(&m, NOW).expect("seals");
        let a = rx.accept(&d, NOW).expect("accepted");
        assert_eq!(a.peer_id, peer);
        assert_eq!(a.seq, 1000 + i as u64);
        assert_eq!(a.origin_time_ns, NOW);
        assert_eq!(a.message, m);
    }
}

#[test]
fn wire_layout_matches_the_spec() {
    let mut tx = sender(ORCH, 0x0102_0304_0506_0708);
    let m = path_state(1, 10.0);
    let d = tx.seal(&m, NOW).expect("seals");
    assert_eq!(&d[0..4], b"INCP");
    assert_eq!(d[4], 1, "version");
    assert_eq!(d[5], 0, "flags on a request");
    assert_eq!(&d[6..8], &[0, 0], "reserved");
    assert_eq!(&d[8..12], &ORCH.to_be_bytes(), "key id");
    assert_eq!(&d[12..20], &0x0102_0304_0506_0708u64.to_be_bytes(), "seq");
    let plaintext = m.encode(NOW).expect("valid");
    assert_eq!(d.len(), HEADER_LEN + plaintext.len() + TAG_LEN);
    // An independent AEAD implementation of the spec opens it.
    assert_eq!(open_raw(key_bytes(ORCH), &d), Some(plaintext));
}

#[test]
fn independent_sealer_is_accepted() {
    let mut rx = receiver();
    let d = seal_as(PROBER, 9, &good_plaintext(NOW));
    let a = rx.accept(&d, NOW).expect("accepted");
    assert_eq!(a.seq, 9);
    assert!(matches!(a.message, Message::PathState(_)));
}

#[test]
fn unknown_high_records_are_skipped() {
    let mut p = good_plaintext(NOW);
    p.extend_from_slice(&[0x80, 0x42, 0, 3, 1, 2, 3]);
    let mut rx = receiver();
    assert!(rx.accept(&seal_as(PROBER, 1, &p), NOW).is_ok());
}

#[test]
fn nonces_are_random_and_seq_increments() {
    let mut tx = sender(ORCH, 7);
    let m = query(QueryWhat::Stats);
    let a = tx.seal(&m, NOW).expect("seals");
    let b = tx.seal(&m, NOW).expect("seals");
    assert_ne!(a[20..44], b[20..44], "fresh nonce per datagram");
    assert_eq!(&b[12..20], &8u64.to_be_bytes());
    assert_eq!(tx.next_seq(), Some(9));
    // Same seed, same nonces: tests can be deterministic.
    let mut again = sender(ORCH, 7);
    assert_eq!(again.seal(&m, NOW).expect("seals"), a);
}

#[test]
fn query_reply_round_trip() {
    let mut rx = receiver();
    let mut tx = sender(VIEWER, initial_seq(NOW));
    let q_seq = tx.next_seq().expect("seq left");
    let d = tx.seal(&query(QueryWhat::State), NOW).expect("seals");
    let a = rx.accept(&d, NOW).expect("accepted");
    assert_eq!(a.seq, q_seq);
    let body = ControlState::default().to_json(MONO).to_string();
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let reply = rx
        .seal_reply(a.peer_id, a.seq, &body, NOW, &mut rng)
        .expect("seals");
    assert_eq!(reply[5], FLAG_REPLY);
    assert_eq!(&reply[8..12], &VIEWER.to_be_bytes());
    assert_eq!(tx.open_reply(&reply, q_seq, NOW), Ok(body.clone()));
    // The appliance's reply seq starts at realtime µs and rises.
    let seq1 = u64::from_be_bytes(reply[12..20].try_into().expect("8 bytes"));
    assert_eq!(seq1, initial_seq(NOW));
    let reply2 = rx
        .seal_reply(a.peer_id, a.seq, "{}", NOW, &mut rng)
        .expect("seals");
    let seq2 = u64::from_be_bytes(reply2[12..20].try_into().expect("8 bytes"));
    assert_eq!(seq2, seq1 + 1);
}

#[test]
fn long_replies_up_to_the_reply_limit() {
    let mut rx = receiver();
    let tx = sender(VIEWER, 1);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let body = format!("\"{}\"", "x".repeat(control::reply::MAX_REPLY_BODY - 2));
    let d = rx
        .seal_reply(VIEWER, 5, &body, NOW, &mut rng)
        .expect("fits exactly");
    assert_eq!(d.len(), MAX_REPLY_DATAGRAM);
    assert_eq!(tx.open_reply(&d, 5, NOW).map(|b| b.len()), Ok(body.len()));
    let too_long = format!("{body} ");
    assert!(matches!(
        rx.seal_reply(VIEWER, 5, &too_long, NOW, &mut rng),
        Err(SealError::TooLarge { .. })
    ));
    assert!(matches!(
        rx.seal_reply(99, 5, "{}", NOW, &mut rng),
        Err(SealError::UnknownPeer(99))
    ));
}

#[test]
fn sender_refuses_invalid_messages_without_using_a_seq() {
    let mut tx = sender(ORCH, 5);
    let bad = PathState::new(
        PathId(1),
        vec![Metric::new(
            MetricType::PathLatency,
            Unit::Microseconds,
            f64::NAN,
        )],
    );
    assert!(matches!(
        tx.seal(&bad.into(), NOW),
        Err(SealError::Body(BodyError::Metric(
            MetricError::NotFinite { .. }
        )))
    ));
    let reply: Message = Reply {
        in_reply_to: 1,
        body: "{}".into(),
    }
    .into();
    assert!(matches!(
        tx.seal(&reply, NOW),
        Err(SealError::Body(BodyError::UnexpectedKind(Kind::Reply)))
    ));
    // 256 FWD entries fit the record limit but not 4096 bytes.
    let big = Policy {
        fwd_entries: (0..200u32)
            .map(|i| fwd(&format!("10.{}.{}.0/24", i / 256, i % 256), &[1]))
            .collect(),
        ..Policy::default()
    };
    assert!(matches!(
        tx.seal(&big.into(), NOW),
        Err(SealError::TooLarge { .. })
    ));
    assert_eq!(tx.next_seq(), Some(5));
}

#[test]
fn sender_stops_at_the_last_seq() {
    let mut tx = sender(ORCH, u64::MAX);
    assert!(tx.seal(&query(QueryWhat::Stats), NOW).is_ok());
    assert_eq!(tx.next_seq(), None);
    assert_eq!(
        tx.seal(&query(QueryWhat::Stats), NOW),
        Err(SealError::SeqExhausted)
    );
}

/// The example in docs/wire-format.md §3.4, byte for byte.
#[test]
fn documented_example_bytes() {
    let m: Message = PathState::new(
        PathId(1),
        vec![Metric::new(
            MetricType::PathLatency,
            Unit::Microseconds,
            120.0,
        )],
    )
    .into();
    let expected: [u8; 36] = [
        0x01, 0x00, 0x17, 0x97, 0x9c, 0xfe, 0x36, 0x2a, 0x00, 0x00, // preamble
        0x00, 0x02, 0x00, 0x02, 0x00, 0x01, // PATH_ID 1
        0x00, 0x01, 0x00, 0x10, // METRIC, 16 bytes
        0x00, 0x01, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, // latency, L0, us, measured, current
        0x40, 0x5e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 120.0
    ];
    assert_eq!(m.encode(NOW).expect("valid"), expected);
    let d = sender(PROBER, 1).seal(&m, NOW).expect("seals");
    assert_eq!(d.len(), 96);
}
