//! Property tests: no input panics, and no rejected input changes state.
//!
//! Random bytes rarely get past the header checks, so the strategies also
//! build datagrams with a valid header prefix (to reach the AEAD), mutate and
//! truncate genuine datagrams (to hit every check), and seal random
//! plaintexts under a valid key (to reach the body decoder through the
//! whole receiver).

mod common;

use common::*;
use control::record::rt;
use control::*;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// A datagram the receiver accepts: one of the sample messages, sealed by
/// a peer allowed to send it.
fn genuine(index: usize, seq: u64) -> Vec<u8> {
    let all = every_request();
    let (peer, m) = &all[index % all.len()];
    sender(*peer, seq).seal(m, NOW).expect("seals")
}

/// Feeds `d`; if rejected, asserts nothing changed.
fn feed_checked(h: &mut Harness, d: &[u8]) -> Result<Applied, Reject> {
    let before = h.snapshot();
    let r = h.feed(d);
    if r.is_err() {
        assert_eq!(h.snapshot(), before, "rejected datagram changed state");
    }
    r
}

/// Metric records of the given types, mostly valid: the canonical unit,
/// level L0 and a value in range, with occasional wrong fields.
fn metric_bytes(types: &'static [u16]) -> impl Strategy<Value = (u16, Vec<u8>)> {
    let canonical = |t: u16| match t {
        1 | 2 | 19 => 1u8,
        3 => 3,
        4 | 16 | 17 => 4,
        18 | 23 => 6,
        20 | 21 => 8,
        22 => 7,
        _ => 0,
    };
    (
        prop_oneof![9 => proptest::sample::select(types), 1 => 0u16..40],
        prop_oneof![9 => Just(0u8), 1 => 0u8..4],
        prop_oneof![8 => Just(None), 2 => (0u8..10).prop_map(Some)],
        0u8..4,
        0u8..8,
        prop_oneof![9 => Just(0u16), 1 => any::<u16>()],
        prop_oneof![8 => 0.0f64..1.0, 1 => any::<f64>(), 1 => Just(f64::NAN)],
    )
        .prop_map(move |(t, l, u, s, st, r, v)| {
            let mut b = t.to_be_bytes().to_vec();
            b.extend_from_slice(&[l, u.unwrap_or(canonical(t)), s, st]);
            b.extend_from_slice(&r.to_be_bytes());
            b.extend_from_slice(&v.to_bits().to_be_bytes());
            (rt::METRIC, b)
        })
}

fn id_record(rtype: u16) -> impl Strategy<Value = (u16, Vec<u8>)> {
    prop_oneof![9 => (0u16..10).prop_map(|v| v.to_be_bytes().to_vec()), 1 => proptest::collection::vec(any::<u8>(), 0..4)]
        .prop_map(move |v| (rtype, v))
}

fn text_record(rtype: u16, max: usize) -> impl Strategy<Value = (u16, Vec<u8>)> {
    prop_oneof![
        8 => proptest::string::string_regex(&format!("[a-zA-Z0-9 ._-]{{1,{max}}}"))
            .expect("regex")
            .prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..max + 8),
    ]
    .prop_map(move |v| (rtype, v))
}

fn policy_record() -> impl Strategy<Value = (u16, Vec<u8>)> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 6]>(),
            "[a-z0-9-]{0,34}"
        )
            .prop_map(|(id, port, mac, name)| {
                let mut v = (id % 6).to_be_bytes().to_vec();
                v.extend_from_slice(&port.to_be_bytes());
                v.extend_from_slice(&mac);
                v.extend_from_slice(name.as_bytes());
                (rt::PATH_DEF, v)
            }),
        (
            prop_oneof![Just(4u8), Just(6), any::<u8>()],
            0u8..130,
            any::<[u8; 2]>(),
            proptest::collection::vec(0u16..6, 0..6)
        )
            .prop_map(|(ver, len, net, ids)| {
                // Network bytes only where the prefix covers them, so host
                // bits are mostly zero and the entry mostly valid.
                let len = len % if ver == 6 { 129 } else { 33 };
                let mut v = vec![ver, len];
                let mut addr = [0u8; 16];
                if len >= 16 {
                    addr[..2].copy_from_slice(&net);
                }
                v.extend_from_slice(&addr);
                for id in ids {
                    v.extend_from_slice(&id.to_be_bytes());
                }
                (rt::FWD_ENTRY, v)
            }),
        (any::<u8>(), 0u16..5).prop_map(|(c, w)| (
            rt::CLASS_WEIGHT,
            [vec![c], w.to_be_bytes().to_vec()].concat()
        )),
        (0u16..7, prop_oneof![0.0f64..2.0, any::<f64>()]).prop_map(|(i, v)| {
            let mut b = i.to_be_bytes().to_vec();
            b.extend_from_slice(&v.to_bits().to_be_bytes());
            (rt::THRESHOLD, b)
        }),
        Just((rt::REPLACE, vec![])),
    ]
}

/// Plaintexts built per kind from plausible records, with occasional noise
/// (a random record, a wrong kind, a nonzero reserved byte), so the
/// decoder's deeper paths (metric checks, policy entries, duplicates,
/// missing records) are reached as well as its early exits.
fn structured_plaintext() -> impl Strategy<Value = Vec<u8>> {
    let path = (
        id_record(rt::PATH_ID),
        proptest::collection::vec(metric_bytes(&[1, 2, 3, 4]), 0..5),
    )
        .prop_map(|(id, ms)| (1u8, [vec![id], ms].concat()));
    let node = (
        id_record(rt::NODE_ID),
        proptest::collection::vec(metric_bytes(&[16, 17, 18, 19, 20, 21]), 0..7),
    )
        .prop_map(|(id, ms)| (2u8, [vec![id], ms].concat()));
    let cap = (
        id_record(rt::NODE_ID),
        text_record(rt::MODEL, 64),
        (0u8..3).prop_map(|c| (rt::MODEL_CLASS, vec![c])),
        text_record(rt::ACCELERATOR, 32),
        prop_oneof![1u32..32, any::<u32>()]
            .prop_map(|t| (rt::TASK_TYPES, t.to_be_bytes().to_vec())),
        proptest::collection::vec(metric_bytes(&[20, 21, 22, 23]), 0..5),
    )
        .prop_map(|(a, b, c, d, e, ms)| (3u8, [vec![a, b, c, d, e], ms].concat()));
    let policy = proptest::collection::vec(policy_record(), 0..8).prop_map(|r| (4u8, r));
    let query = (0u8..5).prop_map(|w| (5u8, vec![(rt::QUERY_WHAT, vec![w])]));
    let reply = (any::<u64>(), "\\PC{0,40}").prop_map(|(s, b)| {
        (
            6u8,
            vec![
                (rt::IN_REPLY_TO, s.to_be_bytes().to_vec()),
                (rt::BODY, b.into_bytes()),
            ],
        )
    });
    let noise = prop_oneof![
        12 => Just(None),
        1 => (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..8)).prop_map(Some),
    ];
    (
        prop_oneof![path, node, cap, policy, query, reply],
        noise,
        prop_oneof![12 => Just(None), 1 => any::<u8>().prop_map(Some)],
        prop_oneof![12 => Just(0u8), 1 => any::<u8>()],
    )
        .prop_map(|((kind, mut recs), noise, other_kind, reserved)| {
            recs.extend(noise);
            let mut p = plaintext(other_kind.unwrap_or(kind), NOW, &recs);
            p[1] = reserved;
            p
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic(d in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut h = Harness::new();
        prop_assert!(feed_checked(&mut h, &d).is_err());
        let tx = sender(VIEWER, 1);
        prop_assert!(tx.open_reply(&d, 1, NOW).is_err());
    }

    #[test]
    fn random_bodies_behind_a_valid_header_are_refused(
        key_id in prop_oneof![Just(ORCH), Just(PROBER), any::<u32>()],
        seq in any::<u64>(),
        rest in proptest::collection::vec(any::<u8>(), 20..300),
    ) {
        let mut d = b"INCP\x01\x00\x00\x00".to_vec();
        d.extend_from_slice(&key_id.to_be_bytes());
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&rest);
        let mut h = Harness::new();
        let e = feed_checked(&mut h, &d).expect_err("random bytes cannot authenticate");
        prop_assert!(matches!(e.code(), RejectCode::UnknownPeer | RejectCode::AuthFailed | RejectCode::Truncated), "{}", e);
    }

    #[test]
    fn flipped_bytes_are_refused_and_change_nothing(
        which in 0usize..5,
        seq in 1u64..1_000_000,
        at in any::<proptest::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let d = genuine(which, seq);
        let mut t = d.clone();
        let i = at.index(t.len());
        t[i] ^= mask;
        let mut h = Harness::new();
        prop_assert!(feed_checked(&mut h, &t).is_err());
        // The genuine datagram with the same seq is still accepted.
        prop_assert!(h.feed(&d).is_ok());
    }

    #[test]
    fn truncated_or_extended_datagrams_are_refused(
        which in 0usize..5,
        seq in 1u64..1_000_000,
        cut in any::<proptest::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..20),
    ) {
        let d = genuine(which, seq);
        let mut h = Harness::new();
        let short = &d[..cut.index(d.len())];
        prop_assert!(feed_checked(&mut h, short).is_err());
        let long = [d.as_slice(), &extra].concat();
        prop_assert!(feed_checked(&mut h, &long).is_err());
        prop_assert!(h.feed(&d).is_ok());
    }

    #[test]
    fn sealed_random_plaintexts_never_panic(
        p in prop_oneof![structured_plaintext(), proptest::collection::vec(any::<u8>(), 4..300)],
        seq in any::<u64>(),
    ) {
        let mut h = Harness::new();
        let d = seal_as(ORCH, seq, &p);
        match feed_checked(&mut h, &d) {
            Ok(_) => prop_assert_eq!(h.rx.window(ORCH).and_then(|w| w.highest()), Some(seq)),
            Err(e) => prop_assert!(matches!(
                e.code(),
                RejectCode::MalformedBody | RejectCode::Stale | RejectCode::Oversized
            ), "{}", e),
        }
    }

    #[test]
    fn decode_is_total_and_reencodes_to_the_same_message(
        p in prop_oneof![structured_plaintext(), proptest::collection::vec(any::<u8>(), 0..300)],
    ) {
        if let Ok(d) = Message::decode(&p) {
            let again = d.message.encode(d.origin_time_ns).expect("a decoded message re-encodes");
            prop_assert_eq!(Message::decode(&again).expect("decodes"), d);
        }
    }

    #[test]
    fn mutated_valid_plaintexts_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<proptest::sample::Index>(),
    ) {
        let all = every_request();
        let mut p = all[which].1.encode(NOW).expect("valid");
        for (at, b) in edits {
            let i = at.index(p.len());
            p[i] = b;
        }
        let _ = Message::decode(&p);
        let _ = Message::decode(&p[..cut.index(p.len())]);
    }

    #[test]
    fn replies_of_any_body_round_trip(body in "\\PC{0,200}", in_reply_to in any::<u64>()) {
        let mut rx = receiver();
        let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(in_reply_to);
        let d = rx.seal_reply(VIEWER, in_reply_to, &body, NOW, &mut rng).expect("seals");
        prop_assert_eq!(sender(VIEWER, 1).open_reply(&d, in_reply_to, NOW), Ok(body));
    }

    #[test]
    fn text_parsers_never_panic(s in "\\PC{0,80}") {
        let _ = Key::from_hex(&s);
        let _ = s.parse::<IpPrefix>();
        let _ = s.parse::<Roles>();
        let _ = s.parse::<TaskTypes>();
        let _ = s.parse::<MetricType>();
    }

    #[test]
    fn choose_path_never_panics(
        v4 in any::<u32>(),
        v6 in any::<u128>(),
        now in any::<u64>(),
        updated in any::<u64>(),
    ) {
        let mut s = ControlState::default();
        s.apply(ORCH, &policy(), 0);
        s.apply(ORCH, &Policy { fwd_entries: vec![fwd("0.0.0.0/0", &[2, 1, 9])], ..Policy::default() }.into(), 0);
        s.apply(PROBER, &path_state(1, 5.0), updated);
        let v = s.view(1, updated);
        let _ = v.choose_path_v4(v4, now);
        let _ = v.choose_path_v6(v6, now);
        let c = v.choose_path_v4(v4, now).expect("default route matches");
        prop_assert!(c.path.id == PathId(1) || c.path.id == PathId(2));
    }
}
