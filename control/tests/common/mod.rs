//! Shared fixtures: peers, a seeded sender, one message of each kind, and an
//! independent sealer written straight from the wire spec (so the tests do
//! not just check the crate against itself, and can seal plaintexts the
//! crate's own encoder would refuse).

#![allow(dead_code)]

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use control::record::rt;
use control::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Realtime clock of the tests (Nov 2023), ns.
pub const NOW: u64 = 1_700_000_000_000_000_000;
/// Monotonic clock of the tests, ns.
pub const MONO: u64 = 5_000_000_000;

pub const ORCH: u32 = 1; // every role
pub const AGENT: u32 = 2; // state + capability, only for node 7
pub const VIEWER: u32 = 3; // query only
pub const PROBER: u32 = 4; // state only

pub fn key_bytes(id: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = (id as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    k
}

pub fn key(id: u32) -> Key {
    Key::from_bytes(key_bytes(id))
}

pub fn peers() -> Vec<PeerConfig> {
    vec![
        PeerConfig::new(ORCH, "orchestrator", key(ORCH), Roles::ALL),
        PeerConfig::new(
            AGENT,
            "agent-7",
            key(AGENT),
            Roles::STATE | Roles::CAPABILITY,
        )
        .with_nodes(vec![7]),
        PeerConfig::new(VIEWER, "viewer", key(VIEWER), Roles::QUERY),
        PeerConfig::new(PROBER, "prober", key(PROBER), Roles::STATE),
    ]
}

pub fn receiver() -> Receiver {
    Receiver::new(peers(), ReceiverConfig::default()).expect("valid config")
}

pub fn sender(id: u32, first_seq: u64) -> Sender<ChaCha20Rng> {
    Sender::with_rng(
        id,
        key(id),
        first_seq,
        ChaCha20Rng::seed_from_u64(u64::from(id)),
    )
}

pub fn path_state(path: u16, latency_us: f64) -> Message {
    PathState::new(
        PathId(path),
        vec![
            Metric::new(MetricType::PathLatency, Unit::Microseconds, latency_us),
            Metric::new(MetricType::PathJitter, Unit::Milliseconds, 0.01),
            Metric::new(MetricType::PathAvailableBw, Unit::BitsPerSecond, 9.5e9)
                .with_source(Source::Estimated),
            Metric::new(MetricType::PathLoss, Unit::Percent, 0.5).with_statistic(Statistic::Mean),
        ],
    )
    .into()
}

pub fn node_state(node: u16) -> Message {
    NodeState::new(
        NodeId(node),
        vec![
            Metric::new(MetricType::GpuUtilisation, Unit::Percent, 87.5),
            Metric::new(MetricType::GpuMemoryUtilisation, Unit::Ratio, 0.5),
            Metric::new(MetricType::QueueLength, Unit::Count, 12.0),
            Metric::new(MetricType::EstTtft, Unit::Milliseconds, 35.0)
                .with_source(Source::Estimated),
            Metric::new(MetricType::TokensPerSDecode, Unit::TokensPerSecond, 1800.0),
        ],
    )
    .into()
}

pub fn capability(node: u16) -> Message {
    let mut c = Capability::new(
        NodeId(node),
        "llama-3-70b-instruct",
        ModelClass::LargeCentre,
        "A100",
        TaskTypes::CHAT | TaskTypes::COMPLEX_REASONING,
    );
    c.metrics = vec![
        Metric::new(MetricType::MaxContextTokens, Unit::Tokens, 131072.0)
            .with_source(Source::Nominal),
        Metric::new(MetricType::ConcurrencyLimit, Unit::Count, 64.0),
        Metric::new(
            MetricType::TokensPerSPrefill,
            Unit::TokensPerSecond,
            12000.0,
        ),
    ];
    c.into()
}

pub fn path_def(id: u16, port: u16) -> PathDef {
    PathDef {
        id: PathId(id),
        egress_port: port,
        next_hop_mac: [0x02, 0, 0, 0, 0, id as u8],
        name: format!("path-{id}"),
    }
}

pub fn fwd(prefix: &str, paths: &[u16]) -> FwdEntry {
    FwdEntry {
        prefix: prefix.parse().expect("valid prefix"),
        paths: paths.iter().map(|p| PathId(*p)).collect(),
    }
}

pub fn policy() -> Message {
    Policy {
        replace: true,
        path_defs: vec![path_def(1, 0), path_def(2, 1)],
        fwd_entries: vec![fwd("10.0.0.0/8", &[1, 2]), fwd("2001:db8::/32", &[2])],
        class_weights: vec![ClassWeight {
            class: 3,
            weight: 10,
        }],
        thresholds: vec![Threshold {
            id: ThresholdId::JitterWeight,
            value: 1.5,
        }],
    }
    .into()
}

pub fn query(what: QueryWhat) -> Message {
    Query { what }.into()
}

/// One message of every kind a client sends, with a peer allowed to send it.
pub fn every_request() -> Vec<(u32, Message)> {
    vec![
        (PROBER, path_state(1, 120.0)),
        (AGENT, node_state(7)),
        (AGENT, capability(7)),
        (ORCH, policy()),
        (VIEWER, query(QueryWhat::State)),
    ]
}

/// Plaintext from raw parts: `kind | 0 | origin | records`.
pub fn plaintext(kind: u8, origin_ns: u64, records: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut p = vec![kind, 0];
    p.extend_from_slice(&origin_ns.to_be_bytes());
    for (t, v) in records {
        p.extend_from_slice(&t.to_be_bytes());
        p.extend_from_slice(&(v.len() as u16).to_be_bytes());
        p.extend_from_slice(v);
    }
    p
}

/// A valid PATH_STATE plaintext for path 1.
pub fn good_plaintext(origin_ns: u64) -> Vec<u8> {
    plaintext(
        1,
        origin_ns,
        &[
            (rt::PATH_ID, vec![0, 1]),
            (
                rt::METRIC,
                Metric::new(MetricType::PathLatency, Unit::Microseconds, 50.0)
                    .encode()
                    .to_vec(),
            ),
        ],
    )
}

/// Seals per the wire spec, independently of the crate.
pub fn seal_raw(
    key: [u8; 32],
    flags: u8,
    key_id: u32,
    seq: u64,
    nonce: [u8; 24],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(b"INCP");
    d.push(1);
    d.push(flags);
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(&key_id.to_be_bytes());
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&nonce);
    let ct = XChaCha20Poly1305::new(&key.into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &d,
            },
        )
        .expect("encrypt");
    d.extend_from_slice(&ct);
    d
}

/// Seals a request from peer `id` with seq `seq`.
pub fn seal_as(id: u32, seq: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(&seq.to_be_bytes());
    nonce[8..12].copy_from_slice(&id.to_be_bytes());
    seal_raw(key_bytes(id), 0, id, seq, nonce, plaintext)
}

/// Opens per the wire spec, independently of the crate.
pub fn open_raw(key: [u8; 32], d: &[u8]) -> Option<Vec<u8>> {
    let nonce: [u8; 24] = d.get(20..44)?.try_into().ok()?;
    XChaCha20Poly1305::new(&key.into())
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: d.get(44..)?,
                aad: d.get(..44)?,
            },
        )
        .ok()
}

/// The appliance's loop body, minus the socket: accept, then apply.
pub struct Harness {
    pub rx: Receiver,
    pub state: ControlState,
}

/// Everything a rejected datagram must leave untouched.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    windows: Vec<(u32, ReplayWindow)>,
    state: ControlState,
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            rx: receiver(),
            state: ControlState::default(),
        }
    }

    pub fn feed(&mut self, d: &[u8]) -> Result<Applied, Reject> {
        self.feed_at(d, NOW)
    }

    pub fn feed_at(&mut self, d: &[u8], now_realtime_ns: u64) -> Result<Applied, Reject> {
        let a = self.rx.accept(d, now_realtime_ns)?;
        Ok(self.state.apply(a.peer_id, &a.message, MONO))
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            windows: self
                .rx
                .peers()
                .map(|p| (p.id, self.rx.window(p.id).cloned().unwrap_or_default()))
                .collect(),
            state: self.state.clone(),
        }
    }

    /// Feeds `d`, expects `code`, and checks nothing changed.
    pub fn expect_reject(&mut self, d: &[u8], code: RejectCode) -> Reject {
        self.expect_reject_at(d, NOW, code)
    }

    pub fn expect_reject_at(&mut self, d: &[u8], now: u64, code: RejectCode) -> Reject {
        let before = self.snapshot();
        let err = match self.feed_at(d, now) {
            Ok(a) => panic!("expected {code}, accepted: {a:?}"),
            Err(e) => e,
        };
        assert_eq!(err.code(), code, "wrong rejection: {err}");
        assert_eq!(self.snapshot(), before, "{code} changed state");
        err
    }
}
