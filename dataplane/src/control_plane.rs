//! The control thread: receives orchestration datagrams, has the `control`
//! crate authenticate, decrypt and validate them, applies accepted state and
//! policy, answers queries, and publishes a new immutable data-plane view.
//!
//! Workers read the view through an `ArcSwap`: one atomic load per burst, no
//! lock, no allocation; a store here is visible from the workers' next
//! burst. The control thread is an ordinary OS thread (not a worker lcore),
//! so its syscalls and allocations never touch the fast path.
//!
//! Datagrams that arrive together are applied together and published once,
//! so a burst of updates costs one view build, not one per message.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use arc_swap::ArcSwap;
use control::thresholds::Thresholds;
use control::{
    ControlState, Key, Message, PeerConfig, Receiver, ReceiverConfig, RejectCode, Roles,
};
use rand::rngs::OsRng;

use crate::config::ControlConfig;
use crate::stats::bump;

/// A monotonic clock shared by the control thread and the workers, so the
/// ages the workers compute compare like with like.
#[derive(Debug, Clone, Copy)]
pub struct MonoClock {
    epoch: Instant,
}

impl MonoClock {
    pub fn new() -> Self {
        MonoClock {
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the clock was created (a vDSO read, no syscall).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        MonoClock::new()
    }
}

/// Wall-clock nanoseconds, the domain of a message's origin time.
pub use control::realtime_ns;

/// What the workers see.
pub struct PublishedView {
    pub view: control::DataplaneView,
    /// Increases with every publish; workers note when they first use one.
    pub version: u64,
    /// Origin time of the newest message folded into this view (0: none).
    pub origin_realtime_ns: u64,
    /// Whether any forwarding entry exists: without one, workers skip the
    /// per-packet decision entirely.
    pub has_forwarding: bool,
}

impl PublishedView {
    fn new(view: control::DataplaneView, version: u64, origin_realtime_ns: u64) -> Self {
        let (v4, v6) = view.route_counts();
        PublishedView {
            view,
            version,
            origin_realtime_ns,
            has_forwarding: v4 + v6 > 0,
        }
    }
}

pub type SharedView = Arc<ArcSwap<PublishedView>>;

/// Message kinds, for the accepted counters, indexed by wire kind - 1.
pub const KINDS: [&str; 6] = [
    "path_state",
    "node_state",
    "capability",
    "policy",
    "query",
    "reply",
];

/// Counters of the control thread (its only writer), read by metrics and
/// the stats report.
pub struct ControlCounters {
    pub accepted: [AtomicU64; KINDS.len()],
    pub rejected: [AtomicU64; RejectCode::ALL.len()],
    pub replies_sent: AtomicU64,
    pub views_published: AtomicU64,
    /// PATH_DEFs and FWD_ENTRYs of accepted POLICY messages that found
    /// their table full (`control::state::MAX_PATH_DEFS`,
    /// `MAX_FWD_ENTRIES`) and were not stored.
    pub policy_entries_dropped: AtomicU64,
}

impl Default for ControlCounters {
    fn default() -> Self {
        ControlCounters {
            accepted: Default::default(),
            rejected: Default::default(),
            replies_sent: AtomicU64::new(0),
            views_published: AtomicU64::new(0),
            policy_entries_dropped: AtomicU64::new(0),
        }
    }
}

/// Applies state and publishes views; shared by the control thread and the
/// probe thread. Building and storing happen under the state lock, so
/// versions reach the workers in order.
#[derive(Clone)]
pub struct Publisher {
    pub state: Arc<Mutex<ControlState>>,
    pub view: SharedView,
    version: Arc<AtomicU64>,
    counters: Arc<ControlCounters>,
    clock: MonoClock,
}

impl Publisher {
    /// Publishes the current state as a new view.
    pub fn publish_locked(&self, state: &ControlState, origin_realtime_ns: u64) {
        let version = self.version.fetch_add(1, Relaxed) + 1;
        let view = state.view(version, self.clock.now_ns());
        self.view.store(Arc::new(PublishedView::new(
            view,
            version,
            origin_realtime_ns,
        )));
        self.counters.views_published.fetch_add(1, Relaxed);
    }

    /// Applies messages the appliance produced itself (peer id 0, e.g.
    /// probe measurements) and publishes once. Returns false if the state
    /// was unavailable.
    pub fn apply_local(&self, messages: &[Message], now_ns: u64) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        for m in messages {
            state.apply(LOCAL_PEER, m, now_ns);
        }
        self.publish_locked(&state, realtime_ns());
        true
    }
}

/// The peer id under which the appliance's own measurements are recorded.
pub const LOCAL_PEER: u32 = 0;

/// Answers a stats query; supplied by the runtime, which owns the counters.
pub type StatsFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The running control plane.
pub struct ControlPlane {
    pub view: SharedView,
    pub counters: Arc<ControlCounters>,
    pub state: Arc<Mutex<ControlState>>,
    pub publisher: Publisher,
    pub local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Loads every peer's key (from its file, never the command line) and role
/// set. Each problem is one line naming the peer and the file.
pub fn load_peers(config: &ControlConfig) -> Result<Vec<PeerConfig>> {
    config
        .peers
        .iter()
        .map(|p| {
            let key = Key::from_file(&p.key_file)
                .map_err(|e| anyhow!("control peer {} ({}): {e}", p.id, p.name))?;
            let mut roles = Roles::default();
            for r in &p.roles {
                roles = roles
                    | Roles::from_name(r)
                        .ok_or_else(|| anyhow!("control peer {}: unknown role `{r}`", p.id))?;
            }
            let mut peer = PeerConfig::new(p.id, p.name.clone(), key, roles);
            if let Some(nodes) = &p.nodes {
                peer = peer.with_nodes(nodes.clone());
            }
            if let Some(paths) = &p.paths {
                peer = peer.with_paths(paths.clone());
            }
            Ok(peer)
        })
        .collect()
}

impl ControlPlane {
    /// Binds the control socket and starts the thread.
    /// `peers` come from [`load_peers`], called before EAL starts so key
    /// problems cost nothing.
    pub fn start(
        config: &ControlConfig,
        peers: Vec<PeerConfig>,
        clock: MonoClock,
        stats: StatsFn,
    ) -> Result<ControlPlane> {
        let socket = UdpSocket::bind(config.listen)
            .with_context(|| format!("control: cannot listen on udp {}", config.listen))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .context("control socket")?;
        let local_addr = socket.local_addr().context("control socket")?;
        let receiver = Receiver::new(
            peers,
            ReceiverConfig {
                max_datagram: config.max_datagram,
                max_message_age_ns: config.max_message_age_s.saturating_mul(1_000_000_000),
                ..ReceiverConfig::default()
            },
        )
        .map_err(|e| anyhow!("[control]: {e}"))?;
        let thresholds = Thresholds {
            max_state_age_ns: config.max_state_age_ms.saturating_mul(1_000_000),
            ..Thresholds::default()
        };
        let state = ControlState::new(thresholds);
        let first = PublishedView::new(state.view(0, clock.now_ns()), 0, 0);
        let view: SharedView = Arc::new(ArcSwap::from_pointee(first));
        let state = Arc::new(Mutex::new(state));
        let counters = Arc::new(ControlCounters::default());
        let stop = Arc::new(AtomicBool::new(false));

        let publisher = Publisher {
            state: Arc::clone(&state),
            view: Arc::clone(&view),
            version: Arc::new(AtomicU64::new(0)),
            counters: Arc::clone(&counters),
            clock,
        };
        let mut worker = ControlThread {
            socket,
            receiver,
            state: Arc::clone(&state),
            publisher: publisher.clone(),
            counters: Arc::clone(&counters),
            clock,
            stats,
            told_policy_full: false,
        };
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || worker.run(&stop_flag))
            .context("cannot start the control thread")?;
        Ok(ControlPlane {
            view,
            counters,
            state,
            publisher,
            local_addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct ControlThread {
    socket: UdpSocket,
    receiver: Receiver,
    state: Arc<Mutex<ControlState>>,
    publisher: Publisher,
    counters: Arc<ControlCounters>,
    clock: MonoClock,
    stats: StatsFn,
    /// Whether the operator was told that a full policy table refused
    /// entries (once per run; the counter counts them all).
    told_policy_full: bool,
}

/// Datagrams handled per batch before publishing, so a flood cannot delay
/// a publish indefinitely.
const MAX_BATCH: usize = 256;

impl ControlThread {
    fn run(&mut self, stop: &AtomicBool) {
        let mut buf = vec![0u8; 65536];
        while !stop.load(Relaxed) {
            // Block (with a timeout, to notice `stop`) for the first
            // datagram, then take whatever else is already queued.
            let Ok((n, from)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            let mut newest_origin = self.handle(&buf[..n], from);
            if self.socket.set_nonblocking(true).is_ok() {
                for _ in 1..MAX_BATCH {
                    match self.socket.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            newest_origin = newest_origin.max(self.handle(&buf[..n], from))
                        }
                        Err(_) => break,
                    }
                }
                let _ = self.socket.set_nonblocking(false);
            }
            if let Some(origin) = newest_origin {
                self.publish(origin);
            }
        }
    }

    /// Handles one datagram; returns the origin time if state changed.
    fn handle(&mut self, datagram: &[u8], from: SocketAddr) -> Option<u64> {
        let accepted = match self.receiver.accept(datagram, realtime_ns()) {
            Ok(a) => a,
            Err(reject) => {
                if let Some(c) = self.counters.rejected.get(reject.code().index()) {
                    bump(c, 1);
                }
                return None;
            }
        };
        let kind = usize::from(accepted.message.kind().to_wire()).saturating_sub(1);
        if let Some(c) = self.counters.accepted.get(kind) {
            bump(c, 1);
        }
        match &accepted.message {
            Message::Query(q) => {
                let mut body = self.answer(q).to_string();
                if body.len() > control::reply::MAX_REPLY_BODY {
                    // Too big for one reply (a state with a thousand
                    // policy entries): the querier is told so, not left
                    // waiting for a reply that never comes.
                    body = serde_json::json!({
                        "error": format!(
                            "the answer is {} bytes, more than the {} one reply carries",
                            body.len(),
                            control::reply::MAX_REPLY_BODY
                        )
                    })
                    .to_string();
                }
                let reply = self.receiver.seal_reply(
                    accepted.peer_id,
                    accepted.seq,
                    &body,
                    realtime_ns(),
                    &mut OsRng,
                );
                if let Ok(reply) = reply {
                    if self.socket.send_to(&reply, from).is_ok() {
                        bump(&self.counters.replies_sent, 1);
                    }
                }
                None
            }
            message => {
                let applied = match self.state.lock() {
                    Ok(mut state) => state.apply(accepted.peer_id, message, self.clock.now_ns()),
                    Err(_) => return None,
                };
                if let control::Applied::Policy(change) = applied {
                    self.count_dropped_entries(accepted.peer_id, change.dropped_over_limit);
                }
                Some(accepted.origin_time_ns)
            }
        }
    }

    /// Counts the policy entries a full table refused, and says so once:
    /// the message was accepted, so nothing else would tell the operator
    /// that part of it was not stored.
    fn count_dropped_entries(&mut self, peer: u32, dropped: usize) {
        if dropped == 0 {
            return;
        }
        bump(&self.counters.policy_entries_dropped, dropped as u64);
        if !self.told_policy_full {
            self.told_policy_full = true;
            eprintln!(
                "intellinode: control: peer {peer}'s POLICY had {dropped} new path definition(s) or forwarding entr(ies) beyond the {} / {} the appliance keeps; they were not stored (counted as control.policy_entries_dropped; a REPLACE frees room)",
                control::state::MAX_PATH_DEFS,
                control::state::MAX_FWD_ENTRIES
            );
        }
    }

    fn answer(&self, q: &control::Query) -> serde_json::Value {
        match q.what {
            control::QueryWhat::Stats => (self.stats)(),
            control::QueryWhat::State => match self.state.lock() {
                Ok(state) => state.to_json(self.clock.now_ns()),
                Err(_) => serde_json::json!({"error": "state unavailable"}),
            },
            control::QueryWhat::Feedback => serde_json::json!({
                "error": "feedback (observed TTFT and completion per instance) arrives with token-aware steering"
            }),
        }
    }

    fn publish(&mut self, origin_realtime_ns: u64) {
        if let Ok(state) = self.state.lock() {
            self.publisher.publish_locked(&state, origin_realtime_ns);
        }
    }
}
