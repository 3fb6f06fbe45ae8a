//! Every rejection reason, produced by a crafted datagram. Each one must
//! leave the receiver's windows and the control state exactly as they were,
//! which is checked by `Harness::expect_reject`; where it matters, the
//! genuine datagram with the same seq is accepted afterwards, proving the
//! window did not move.

mod common;

use common::*;
use control::record::rt;
use control::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Raw records of a crafted plaintext.
type Records = Vec<(u16, Vec<u8>)>;

fn genuine(seq: u64) -> Vec<u8> {
    seal_as(PROBER, seq, &good_plaintext(NOW))
}

#[test]
fn truncated() {
    let mut h = Harness::new();
    let d = genuine(1);
    h.expect_reject(&[], RejectCode::Truncated);
    h.expect_reject(&d[..63], RejectCode::Truncated);
    h.expect_reject(b"INCP", RejectCode::Truncated);
}

#[test]
fn oversized() {
    let mut h = Harness::new();
    let mut d = genuine(1);
    d.resize(DEFAULT_MAX_DATAGRAM + 1, 0);
    let e = h.expect_reject(&d, RejectCode::Oversized);
    assert_eq!(
        e,
        Reject::Oversized {
            len: 4097,
            max: 4096
        }
    );
    // A smaller configured maximum applies to genuine datagrams too.
    let cfg = ReceiverConfig {
        max_datagram: 80,
        ..ReceiverConfig::default()
    };
    h.rx = Receiver::new(peers(), cfg).expect("valid");
    h.expect_reject(&genuine(1), RejectCode::Oversized);
}

#[test]
fn bad_magic_and_bad_version() {
    let mut h = Harness::new();
    let mut d = genuine(1);
    d[3] = b'Q';
    assert_eq!(
        h.expect_reject(&d, RejectCode::BadMagic),
        Reject::BadMagic(*b"INCQ")
    );
    let mut d = genuine(1);
    d[4] = 2;
    assert_eq!(
        h.expect_reject(&d, RejectCode::BadVersion),
        Reject::BadVersion(2)
    );
    assert!(h.feed(&genuine(1)).is_ok());
}

#[test]
fn malformed_header() {
    let mut h = Harness::new();
    let mut d = genuine(1);
    d[5] = 0x04;
    h.expect_reject(&d, RejectCode::MalformedHeader);
    let mut d = genuine(1);
    d[6] = 0x80;
    h.expect_reject(&d, RejectCode::MalformedHeader);
    // A reply reflected back at the appliance: sealed with the peer's key,
    // so only the flag tells it apart.
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let reply =
        h.rx.seal_reply(PROBER, 1, "{}", NOW, &mut rng)
            .expect("seals");
    h.expect_reject(&reply, RejectCode::MalformedHeader);
    assert!(h.feed(&genuine(1)).is_ok());
}

#[test]
fn unknown_peer() {
    let mut h = Harness::new();
    let d = seal_raw(key_bytes(99), 0, 99, 1, [0; 24], &good_plaintext(NOW));
    assert_eq!(
        h.expect_reject(&d, RejectCode::UnknownPeer),
        Reject::UnknownPeer(99)
    );
}

#[test]
fn auth_failed_then_genuine_same_seq_is_accepted() {
    let mut h = Harness::new();
    let d = genuine(100);
    // Every single-byte change anywhere after the magic/version/flags
    // checks is caught by the AEAD: key id aside (another peer, or unknown),
    // seq, nonce, ciphertext and tag are all covered.
    for i in 12..d.len() {
        let mut t = d.clone();
        t[i] ^= 0x01;
        h.expect_reject(&t, RejectCode::AuthFailed);
    }
    // Right key id, wrong key.
    let forged = seal_raw(
        key_bytes(ORCH),
        0,
        PROBER,
        100,
        [9; 24],
        &good_plaintext(NOW),
    );
    h.expect_reject(&forged, RejectCode::AuthFailed);
    // An attacker renumbering a captured datagram to dodge the window.
    let mut renumbered = d.clone();
    renumbered[12..20].copy_from_slice(&101u64.to_be_bytes());
    h.expect_reject(&renumbered, RejectCode::AuthFailed);
    // Key id of another configured peer: its key does not open it.
    let mut other = d.clone();
    other[8..12].copy_from_slice(&ORCH.to_be_bytes());
    h.expect_reject(&other, RejectCode::AuthFailed);
    // None of this moved the window: the genuine seq 100 is still new.
    assert!(h.feed(&d).is_ok());
    assert_eq!(h.rx.window(PROBER).and_then(|w| w.highest()), Some(100));
}

#[test]
fn replayed_duplicate_out_of_order_and_too_old() {
    let mut h = Harness::new();
    let d = genuine(5000);
    assert!(h.feed(&d).is_ok());
    assert_eq!(
        h.expect_reject(&d, RejectCode::Replayed),
        Reject::Replayed(ReplayError::Duplicate { seq: 5000 })
    );
    // Inside the window, out of order: accepted once.
    let late = genuine(4990);
    assert!(h.feed(&late).is_ok());
    h.expect_reject(&late, RejectCode::Replayed);
    // Oldest number still inside the window.
    assert!(h.feed(&genuine(5000 - 1023)).is_ok());
    // Below the window.
    assert_eq!(
        h.expect_reject(&genuine(5000 - 1024), RejectCode::Replayed),
        Reject::Replayed(ReplayError::TooOld {
            seq: 3976,
            highest: 5000
        })
    );
    // Windows are per peer: the same seq from another peer is new.
    let other = seal_as(ORCH, 5000, &good_plaintext(NOW));
    assert!(h.feed(&other).is_ok());
}

#[test]
fn malformed_body_does_not_move_the_window() {
    let metric = |t: MetricType, u: Unit, v: f64| Metric::new(t, u, v).encode().to_vec();
    let lat = metric(MetricType::PathLatency, Unit::Microseconds, 5.0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("short preamble", vec![1, 0, 0, 0, 0]),
        ("unknown kind", plaintext(9, NOW, &[])),
        ("kind 0", plaintext(0, NOW, &[])),
        ("reserved byte", {
            let mut p = good_plaintext(NOW);
            p[1] = 1;
            p
        }),
        ("record overrun", {
            let mut p = good_plaintext(NOW);
            p.extend_from_slice(&[0, 1, 0, 16, 1, 2]);
            p
        }),
        ("dangling record header", {
            let mut p = good_plaintext(NOW);
            p.extend_from_slice(&[0, 1]);
            p
        }),
        ("unknown low record", {
            let mut p = good_plaintext(NOW);
            p.extend_from_slice(&[0x7f, 0, 0, 0]);
            p
        }),
        (
            "missing PATH_ID",
            plaintext(1, NOW, &[(rt::METRIC, lat.clone())]),
        ),
        ("no metric", plaintext(1, NOW, &[(rt::PATH_ID, vec![0, 1])])),
        (
            "PATH_ID twice",
            plaintext(
                1,
                NOW,
                &[
                    (rt::PATH_ID, vec![0, 1]),
                    (rt::PATH_ID, vec![0, 2]),
                    (rt::METRIC, lat.clone()),
                ],
            ),
        ),
        (
            "PATH_ID of 3 bytes",
            plaintext(
                1,
                NOW,
                &[(rt::PATH_ID, vec![0, 1, 2]), (rt::METRIC, lat.clone())],
            ),
        ),
        (
            "NaN latency",
            plaintext(
                1,
                NOW,
                &[
                    (rt::PATH_ID, vec![0, 1]),
                    (
                        rt::METRIC,
                        metric(MetricType::PathLatency, Unit::Microseconds, f64::NAN),
                    ),
                ],
            ),
        ),
        (
            "loss above 1",
            plaintext(
                1,
                NOW,
                &[
                    (rt::PATH_ID, vec![0, 1]),
                    (rt::METRIC, metric(MetricType::PathLoss, Unit::Ratio, 1.5)),
                ],
            ),
        ),
        (
            "negative bandwidth",
            plaintext(
                1,
                NOW,
                &[
                    (rt::PATH_ID, vec![0, 1]),
                    (
                        rt::METRIC,
                        metric(MetricType::PathAvailableBw, Unit::BitsPerSecond, -1.0),
                    ),
                ],
            ),
        ),
        (
            "latency in bps",
            plaintext(
                1,
                NOW,
                &[
                    (rt::PATH_ID, vec![0, 1]),
                    (
                        rt::METRIC,
                        metric(MetricType::PathLatency, Unit::BitsPerSecond, 1.0),
                    ),
                ],
            ),
        ),
        (
            "gpu metric in PATH_STATE",
            plaintext(
                1,
                NOW,
                &[
                    (rt::PATH_ID, vec![0, 1]),
                    (
                        rt::METRIC,
                        metric(MetricType::GpuUtilisation, Unit::Ratio, 0.5),
                    ),
                ],
            ),
        ),
        (
            "latency twice",
            plaintext(
                1,
                NOW,
                &[
                    (rt::PATH_ID, vec![0, 1]),
                    (rt::METRIC, lat.clone()),
                    (rt::METRIC, lat.clone()),
                ],
            ),
        ),
        (
            "NODE_ID in PATH_STATE",
            plaintext(
                1,
                NOW,
                &[
                    (rt::PATH_ID, vec![0, 1]),
                    (rt::NODE_ID, vec![0, 1]),
                    (rt::METRIC, lat.clone()),
                ],
            ),
        ),
        ("too many records", {
            let mut recs = vec![(rt::PATH_ID, vec![0, 1]), (rt::METRIC, lat.clone())];
            recs.extend((0..255).map(|_| (0x9000u16, vec![])));
            plaintext(1, NOW, &recs)
        }),
        (
            "REPLY to the appliance",
            plaintext(
                6,
                NOW,
                &[(rt::IN_REPLY_TO, vec![0; 8]), (rt::BODY, b"{}".to_vec())],
            ),
        ),
    ];
    let mut h = Harness::new();
    for (i, (what, p)) in cases.iter().enumerate() {
        let seq = 100 + i as u64;
        let e = h.expect_reject(&seal_as(PROBER, seq, p), RejectCode::MalformedBody);
        assert!(!e.to_string().is_empty(), "{what}");
        // The same seq with a good body is still new.
        assert!(h.feed(&genuine(seq)).is_ok(), "{what}: window moved");
    }
}

#[test]
fn malformed_policy_bodies() {
    let prefix = |v: u8, len: u8, addr: &[u8]| {
        let mut b = vec![v, len];
        let mut a = [0u8; 16];
        a[..addr.len()].copy_from_slice(addr);
        b.extend_from_slice(&a);
        b
    };
    let with_paths = |mut p: Vec<u8>, ids: &[u16]| {
        for id in ids {
            p.extend_from_slice(&id.to_be_bytes());
        }
        p
    };
    let threshold = |id: u16, v: f64| {
        let mut b = id.to_be_bytes().to_vec();
        b.extend_from_slice(&v.to_bits().to_be_bytes());
        b
    };
    let cases: Vec<(&str, Records)> = vec![
        ("empty policy", vec![]),
        (
            "REPLACE twice",
            vec![(rt::REPLACE, vec![]), (rt::REPLACE, vec![])],
        ),
        ("REPLACE with a value", vec![(rt::REPLACE, vec![1])]),
        (
            "host bits",
            vec![(rt::FWD_ENTRY, with_paths(prefix(4, 8, &[10, 1]), &[1]))],
        ),
        (
            "v4 /33",
            vec![(rt::FWD_ENTRY, with_paths(prefix(4, 33, &[10]), &[1]))],
        ),
        (
            "version 5",
            vec![(rt::FWD_ENTRY, with_paths(prefix(5, 8, &[10]), &[1]))],
        ),
        ("no candidates", vec![(rt::FWD_ENTRY, prefix(4, 8, &[10]))]),
        (
            "5 candidates",
            vec![(
                rt::FWD_ENTRY,
                with_paths(prefix(4, 8, &[10]), &[1, 2, 3, 4, 5]),
            )],
        ),
        (
            "duplicate candidate",
            vec![(rt::FWD_ENTRY, with_paths(prefix(4, 8, &[10]), &[1, 1]))],
        ),
        (
            "same prefix twice",
            vec![
                (rt::FWD_ENTRY, with_paths(prefix(4, 8, &[10]), &[1])),
                (rt::FWD_ENTRY, with_paths(prefix(4, 8, &[10]), &[2])),
            ],
        ),
        ("weight 0", vec![(rt::CLASS_WEIGHT, vec![1, 0, 0])]),
        (
            "unknown threshold",
            vec![(rt::THRESHOLD, threshold(77, 1.0))],
        ),
        ("loss threshold 2", vec![(rt::THRESHOLD, threshold(2, 2.0))]),
        ("age threshold 0", vec![(rt::THRESHOLD, threshold(1, 0.0))]),
        (
            "NaN jitter weight",
            vec![(rt::THRESHOLD, threshold(3, f64::NAN))],
        ),
        ("PATH_DEF too short", vec![(rt::PATH_DEF, vec![0; 9])]),
        (
            "PATH_DEF name too long",
            vec![(rt::PATH_DEF, vec![b'a'; 10 + 33])],
        ),
        (
            "PATH_DEF name not UTF-8",
            vec![(rt::PATH_DEF, [vec![0; 10], vec![0xff]].concat())],
        ),
        (
            "PATH_DEF name with newline",
            vec![(rt::PATH_DEF, [vec![0; 10], b"a\nb".to_vec()].concat())],
        ),
    ];
    let mut h = Harness::new();
    for (i, (what, recs)) in cases.iter().enumerate() {
        let seq = 10 + i as u64;
        let p = plaintext(4, NOW, recs);
        let e = h.expect_reject(&seal_as(ORCH, seq, &p), RejectCode::MalformedBody);
        assert!(matches!(e, Reject::MalformedBody(_)), "{what}: {e}");
    }
}

#[test]
fn malformed_capability_bodies() {
    let base = || -> Records {
        vec![
            (rt::NODE_ID, vec![0, 7]),
            (rt::MODEL, b"m".to_vec()),
            (rt::MODEL_CLASS, vec![0]),
            (rt::ACCELERATOR, b"A100".to_vec()),
            (rt::TASK_TYPES, vec![0, 0, 0, 1]),
        ]
    };
    let mut h = Harness::new();
    assert!(h
        .feed(&seal_as(AGENT, 1, &plaintext(3, NOW, &base())))
        .is_ok());
    let replace = |i: usize, v: Vec<u8>| {
        let mut r = base();
        r[i].1 = v;
        r
    };
    let cases: Vec<(&str, Records)> = vec![
        ("model too long", replace(1, vec![b'm'; 65])),
        ("model empty", replace(1, vec![])),
        ("class 9", replace(2, vec![9])),
        ("accelerator too long", replace(3, vec![b'a'; 33])),
        ("no task types", replace(4, vec![0, 0, 0, 0])),
        ("undefined task bit", replace(4, vec![0, 0, 1, 0])),
        (
            "missing accelerator",
            base()
                .into_iter()
                .filter(|r| r.0 != rt::ACCELERATOR)
                .collect(),
        ),
    ];
    for (i, (what, recs)) in cases.iter().enumerate() {
        let e = h.expect_reject(
            &seal_as(AGENT, 10 + i as u64, &plaintext(3, NOW, recs)),
            RejectCode::MalformedBody,
        );
        assert!(matches!(e, Reject::MalformedBody(_)), "{what}");
    }
}

#[test]
fn unauthorised_roles() {
    let mut h = Harness::new();
    // A state-only prober may not announce capabilities (draft §4).
    let d = sender(PROBER, 1).seal(&capability(7), NOW).expect("seals");
    assert_eq!(
        h.expect_reject(&d, RejectCode::Unauthorised),
        Reject::Unauthorised(AuthzError::RoleMissing {
            peer: PROBER,
            kind: Kind::Capability
        })
    );
    // A viewer may only query.
    let d = sender(VIEWER, 1)
        .seal(&path_state(1, 5.0), NOW)
        .expect("seals");
    h.expect_reject(&d, RejectCode::Unauthorised);
    // The agent may not change policy.
    let d = sender(AGENT, 1).seal(&policy(), NOW).expect("seals");
    h.expect_reject(&d, RejectCode::Unauthorised);
    // Nor query.
    let d = sender(AGENT, 2)
        .seal(&query(QueryWhat::Stats), NOW)
        .expect("seals");
    h.expect_reject(&d, RejectCode::Unauthorised);
    // The window did not move for any of them.
    assert!(h
        .feed(&sender(AGENT, 1).seal(&node_state(7), NOW).expect("seals"))
        .is_ok());
}

#[test]
fn node_restricted_peer() {
    let mut h = Harness::new();
    let mut tx = sender(AGENT, 10);
    assert!(h
        .feed(&tx.seal(&capability(7), NOW).expect("seals"))
        .is_ok());
    assert!(h
        .feed(&tx.seal(&node_state(7), NOW).expect("seals"))
        .is_ok());
    let d = tx.seal(&capability(8), NOW).expect("seals");
    assert_eq!(
        h.expect_reject(&d, RejectCode::Unauthorised),
        Reject::Unauthorised(AuthzError::NodeNotAllowed {
            peer: AGENT,
            node: 8
        })
    );
    let d = tx.seal(&node_state(8), NOW).expect("seals");
    h.expect_reject(&d, RejectCode::Unauthorised);
    // Path state is not node-bound: the restriction does not apply.
    assert!(h
        .feed(&tx.seal(&path_state(3, 1.0), NOW).expect("seals"))
        .is_ok());
    // An unrestricted peer may announce any node.
    assert!(h
        .feed(&sender(ORCH, 1).seal(&capability(8), NOW).expect("seals"))
        .is_ok());
}

#[test]
fn path_restricted_peer() {
    const SITE: u32 = 9;
    let mut h = Harness::new();
    let mut all = peers();
    all.push(
        PeerConfig::new(SITE, "site-a", key(SITE), Roles::STATE | Roles::POLICY)
            .with_paths(vec![1, 2]),
    );
    h.rx = Receiver::new(all, ReceiverConfig::default()).expect("valid");
    let mut tx = sender(SITE, 10);

    // Its own paths: state and policy are accepted and land.
    assert!(h
        .feed(&tx.seal(&path_state(1, 5.0), NOW).expect("seals"))
        .is_ok());
    assert!(h.state.path_entries().any(|(id, _)| id == PathId(1)));
    let own = Policy {
        path_defs: vec![path_def(2, 1)],
        fwd_entries: vec![fwd("10.0.0.0/8", &[1, 2])],
        ..Policy::default()
    };
    assert!(h.feed(&tx.seal(&own.into(), NOW).expect("seals")).is_ok());

    // Another path: refused, counted as unauthorised, nothing changes.
    let d = tx.seal(&path_state(3, 5.0), NOW).expect("seals");
    assert_eq!(
        h.expect_reject(&d, RejectCode::Unauthorised),
        Reject::Unauthorised(AuthzError::PathNotAllowed {
            peer: SITE,
            path: 3
        })
    );
    assert!(!h.state.path_entries().any(|(id, _)| id == PathId(3)));
    // A policy naming it anywhere: as a PATH_DEF or as a candidate.
    for policy in [
        Policy {
            path_defs: vec![path_def(1, 0), path_def(3, 1)],
            ..Policy::default()
        },
        Policy {
            fwd_entries: vec![fwd("10.1.0.0/16", &[2, 3])],
            ..Policy::default()
        },
    ] {
        let d = tx.seal(&policy.into(), NOW).expect("seals");
        assert_eq!(
            h.expect_reject(&d, RejectCode::Unauthorised),
            Reject::Unauthorised(AuthzError::PathNotAllowed {
                peer: SITE,
                path: 3
            })
        );
    }
    // REPLACE would remove the paths of others, even naming only its own.
    let replace = Policy {
        replace: true,
        path_defs: vec![path_def(1, 0)],
        ..Policy::default()
    };
    let d = tx.seal(&replace.into(), NOW).expect("seals");
    assert_eq!(
        h.expect_reject(&d, RejectCode::Unauthorised),
        Reject::Unauthorised(AuthzError::ReplaceNotAllowed { peer: SITE })
    );
    // Unrestricted peers may still set any path.
    assert!(h
        .feed(
            &sender(PROBER, 1)
                .seal(&path_state(3, 5.0), NOW)
                .expect("seals")
        )
        .is_ok());
}

#[test]
fn stale_and_future_origin_times() {
    let mut h = Harness::new();
    let s = 1_000_000_000u64;
    let cases = [
        (NOW - 31 * s, true),
        (NOW + 6 * s, true),
        (NOW - 29 * s, false),
        (NOW + 4 * s, false),
    ];
    for (i, (origin, stale)) in cases.into_iter().enumerate() {
        let seq = 1 + i as u64;
        let d = sender(PROBER, seq)
            .seal(&path_state(1, 5.0), origin)
            .expect("seals");
        if stale {
            let e = h.expect_reject(&d, RejectCode::Stale);
            assert!(matches!(e, Reject::Stale(_)), "{e}");
            // Same seq, fresh time: accepted, so the window did not move.
            let d = sender(PROBER, seq)
                .seal(&path_state(1, 5.0), NOW)
                .expect("seals");
            assert!(h.feed(&d).is_ok());
        } else {
            assert!(h.feed(&d).is_ok(), "origin {origin} should be fresh");
        }
    }
    // The freshness limit is configurable.
    let cfg = ReceiverConfig {
        max_message_age_ns: s,
        ..ReceiverConfig::default()
    };
    h.rx = Receiver::new(peers(), cfg).expect("valid");
    let d = sender(PROBER, 1)
        .seal(&path_state(1, 5.0), NOW - 2 * s)
        .expect("seals");
    h.expect_reject(&d, RejectCode::Stale);
}

#[test]
fn rejection_order_follows_the_spec() {
    let mut h = Harness::new();
    // Replayed *and* malformed: the replay check comes first.
    assert!(h.feed(&genuine(50)).is_ok());
    let bad = seal_as(PROBER, 50, &plaintext(9, NOW, &[]));
    h.expect_reject(&bad, RejectCode::Replayed);
    // Malformed *and* stale: malformed first (the time is inside the body).
    let bad = seal_as(PROBER, 51, &plaintext(9, 0, &[]));
    h.expect_reject(&bad, RejectCode::MalformedBody);
    // Stale *and* unauthorised: stale first.
    let d = sender(VIEWER, 1)
        .seal(&path_state(1, 1.0), 0)
        .expect("seals");
    h.expect_reject(&d, RejectCode::Stale);
}

#[test]
fn client_side_rejections() {
    let mut rx = receiver();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let tx = sender(VIEWER, 1);
    let reply = rx
        .seal_reply(VIEWER, 10, "{}", NOW, &mut rng)
        .expect("seals");
    assert_eq!(
        tx.open_reply(&reply, 11, NOW),
        Err(Reject::UnexpectedReply {
            expected: 11,
            got: 10
        })
    );
    // A reply for another peer.
    let other = rx.seal_reply(ORCH, 10, "{}", NOW, &mut rng).expect("seals");
    assert_eq!(
        tx.open_reply(&other, 10, NOW),
        Err(Reject::UnknownPeer(ORCH))
    );
    // A request is not a reply.
    let req = sender(VIEWER, 1)
        .seal(&query(QueryWhat::Stats), NOW)
        .expect("seals");
    assert_eq!(
        tx.open_reply(&req, 1, NOW).map_err(|e| e.code()),
        Err(RejectCode::MalformedHeader)
    );
    // Tampered reply.
    let mut t = reply.clone();
    let last = t.len() - 1;
    t[last] ^= 0x80;
    assert_eq!(tx.open_reply(&t, 10, NOW), Err(Reject::AuthFailed));
    // A REPLY-flagged datagram whose body is not a REPLY.
    let p = plaintext(5, NOW, &[(rt::QUERY_WHAT, vec![1])]);
    let d = seal_raw(key_bytes(VIEWER), 0x01, VIEWER, 1, [1; 24], &p);
    assert_eq!(
        tx.open_reply(&d, 1, NOW),
        Err(Reject::MalformedBody(BodyError::UnexpectedKind(
            Kind::Query
        )))
    );
}

#[test]
fn client_applies_the_age_limit_to_replies() {
    const S: u64 = 1_000_000_000;
    let mut rx = receiver();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let tx = sender(VIEWER, 1);
    let sealed_at = |t: u64, rx: &mut Receiver, rng: &mut ChaCha20Rng| {
        rx.seal_reply(VIEWER, 10, "{}", t, rng).expect("seals")
    };
    // At the limits, both ways: accepted.
    let d = sealed_at(NOW - 30 * S, &mut rx, &mut rng);
    assert_eq!(tx.open_reply(&d, 10, NOW), Ok("{}".to_string()));
    let d = sealed_at(NOW + 5 * S, &mut rx, &mut rng);
    assert_eq!(tx.open_reply(&d, 10, NOW), Ok("{}".to_string()));
    // Past them: stale, like a request would be.
    let old = sealed_at(NOW - 31 * S, &mut rx, &mut rng);
    let e = tx.open_reply(&old, 10, NOW).expect_err("too old");
    assert_eq!(
        e,
        Reject::Stale(StaleProblem::TooOld {
            age_ns: 31 * S,
            max_ns: 30 * S
        })
    );
    assert_eq!(
        e.to_string(),
        "stale: origin time is 31000 ms old, more than 30000 ms"
    );
    let ahead = sealed_at(NOW + 6 * S, &mut rx, &mut rng);
    assert_eq!(
        tx.open_reply(&ahead, 10, NOW).map_err(|e| e.code()),
        Err(RejectCode::Stale)
    );
    // An old reply to another query is just not ours.
    assert_eq!(
        tx.open_reply(&old, 11, NOW).map_err(|e| e.code()),
        Err(RejectCode::UnexpectedReply)
    );
    // The limits are the client's to set.
    let lenient = sender(VIEWER, 1).with_reply_freshness(60 * S, 5 * S);
    assert_eq!(lenient.open_reply(&old, 10, NOW), Ok("{}".to_string()));
}

#[test]
fn reject_display_is_one_line_with_the_code() {
    let mut h = Harness::new();
    let e = h.expect_reject(&[0; 70], RejectCode::BadMagic);
    let s = e.to_string();
    assert!(s.starts_with("bad_magic: "), "{s}");
    assert!(!s.contains('\n'));
}

#[test]
fn receiver_config_is_checked_and_reload_keeps_windows() {
    assert_eq!(
        Receiver::new(
            vec![
                PeerConfig::new(1, "a", key(1), Roles::ALL),
                PeerConfig::new(1, "b", key(2), Roles::ALL)
            ],
            ReceiverConfig::default()
        )
        .err(),
        Some(ConfigError::DuplicatePeer(1))
    );
    let tiny = ReceiverConfig {
        max_datagram: 10,
        ..ReceiverConfig::default()
    };
    assert!(matches!(
        Receiver::new(peers(), tiny),
        Err(ConfigError::MaxDatagram { .. })
    ));
    let mut h = Harness::new();
    let d = genuine(7);
    assert!(h.feed(&d).is_ok());
    h.rx.replace_peers(peers()).expect("valid");
    h.expect_reject(&d, RejectCode::Replayed);
    // A removed peer is unknown afterwards.
    h.rx.replace_peers(peers().into_iter().filter(|p| p.id != PROBER).collect())
        .expect("valid");
    h.expect_reject(&genuine(8), RejectCode::UnknownPeer);
}

/// A NODE_STATE's PREFIX_CACHE record (0x8001), built from the wire spec
/// (§3.4): two big-endian binary64, hit then queried tokens.
fn prefix_cache(hit: f64, queried: f64) -> Vec<u8> {
    [hit.to_be_bytes(), queried.to_be_bytes()].concat()
}

#[test]
fn prefix_cache_increments_add_up_and_bad_ones_are_malformed() {
    let queue = Metric::new(MetricType::QueueLength, Unit::Count, 3.0)
        .encode()
        .to_vec();
    let node_state = |extra: Records| -> Vec<u8> {
        let mut recs: Records = vec![(rt::NODE_ID, vec![0, 7]), (rt::METRIC, queue.clone())];
        recs.extend(extra);
        plaintext(2, NOW, &recs)
    };
    let mut h = Harness::new();
    let totals = |h: &Harness| match h.state.node(NodeId(7), MONO) {
        Freshness::Fresh(m) => m.prefix_cache,
        other => panic!("node 7: {other:?}"),
    };
    // Two reports add up; one without the record keeps the totals (the
    // increments count events, they are not state).
    h.feed(&seal_as(
        AGENT,
        1,
        &node_state(vec![(rt::PREFIX_CACHE, prefix_cache(640.0, 1000.0))]),
    ))
    .unwrap();
    h.feed(&seal_as(
        AGENT,
        2,
        &node_state(vec![(rt::PREFIX_CACHE, prefix_cache(0.0, 24.5))]),
    ))
    .unwrap();
    h.feed(&seal_as(AGENT, 3, &node_state(vec![]))).unwrap();
    let t = totals(&h);
    assert_eq!(
        (t.hit_tokens, t.queried_tokens, t.reports),
        (640.0, 1024.5, 2)
    );
    let view = h.state.view(1, MONO);
    assert_eq!(view.node_report(NodeId(7)).unwrap().value.prefix_cache, t);
    // The same bytes as the crate's own encoder writes.
    let Message::NodeState(decoded) = Message::decode(&node_state(vec![(
        rt::PREFIX_CACHE,
        prefix_cache(1.0, 2.0),
    )]))
    .unwrap()
    .message
    else {
        panic!("not a NODE_STATE")
    };
    assert_eq!(
        decoded.prefix_cache,
        Some(PrefixCacheCounts {
            hit_tokens: 1.0,
            queried_tokens: 2.0
        })
    );

    let cases: Vec<(&str, Records)> = vec![
        (
            "hits above queried",
            vec![(rt::PREFIX_CACHE, prefix_cache(5.0, 4.0))],
        ),
        (
            "negative",
            vec![(rt::PREFIX_CACHE, prefix_cache(-1.0, 4.0))],
        ),
        ("NaN", vec![(rt::PREFIX_CACHE, prefix_cache(f64::NAN, 4.0))]),
        (
            "infinite",
            vec![(rt::PREFIX_CACHE, prefix_cache(0.0, f64::INFINITY))],
        ),
        (
            "above 2^53",
            vec![(rt::PREFIX_CACHE, prefix_cache(0.0, 1e17))],
        ),
        ("short", vec![(rt::PREFIX_CACHE, vec![0; 15])]),
        (
            "twice",
            vec![
                (rt::PREFIX_CACHE, prefix_cache(1.0, 2.0)),
                (rt::PREFIX_CACHE, prefix_cache(1.0, 2.0)),
            ],
        ),
    ];
    for (i, (what, recs)) in cases.into_iter().enumerate() {
        let e = h.expect_reject(
            &seal_as(AGENT, 10 + i as u64, &node_state(recs)),
            RejectCode::MalformedBody,
        );
        assert!(matches!(e, Reject::MalformedBody(_)), "{what}: {e}");
    }
    // Only NODE_STATE carries it: in a PATH_STATE it is a known record in
    // the wrong kind of message.
    let mut p = good_plaintext(NOW);
    p.extend_from_slice(&[0x80, 0x01, 0, 16]);
    p.extend_from_slice(&prefix_cache(1.0, 2.0));
    h.expect_reject(&seal_as(PROBER, 1, &p), RejectCode::MalformedBody);
}
