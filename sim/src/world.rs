//! The simulated world: agents' requests arriving at appliances, the real
//! steering decision, paths with delay, jitter and loss, and inference
//! nodes with batch slots and a FIFO queue. A scenario ([`crate::eval`],
//! [`crate::scale`]) describes a [`Topology`] and a [`RunConfig`]; [`run`]
//! plays it out and returns an [`Outcome`].
//!
//! One request's life, as events (the client sits next to its appliance,
//! as `pktgen agent` does in the emulation):
//!
//! ```text
//! Arrival ─ decision ─ SYN ──path──► SynAtNode ─ SYN-ACK ──path──► SynAckAtClient
//!   ─ request ──path──► ReqAtNode ─ FIFO wait for a slot ─ prefill ─► FirstToken
//!   ─ first packet ──path──► (TTFT) ─ decode ─► SlotFree ─ last packet ──path──► Complete
//! ```
//!
//! A path on a shaped [`Uplink`] first queues the request's SYN and
//! segments in the appliance's egress scheduler (a real
//! [`sched::Scheduler`] with the bands of [`steer::egress::band_config`])
//! and sends them at the uplink's rate (`UplinkDone`), so on a busy port an
//! interactive request's packets leave before queued bulk ones, as on the
//! appliance.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use classifier::{SharedPrefix, TaskType, TokenFeatures};
use control::capability::ModelClass;
use control::ids::{NodeId, PathId};
use control::message::Message;
use control::metric::{Metric, MetricType, Unit};
use control::node_state::NodeState;
use control::path_state::PathState;
use control::state::ControlState;
use control::task_types::TaskTypes;
use control::thresholds::Thresholds;
use control::view::DataplaneView;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sched::Scheduler;
use steer::decision::Predicted;
use steer::service::{InstanceCapability, InstanceSpec, PathSpec, ServiceSpec};
use steer::{Policy, ServiceTable, TrafficClass};

use crate::config::{AgentMix, NodeParams, PathParams, Workload};
use crate::engine::EventQueue;
use crate::prefix_cache::{PrefixCache, PromptParts};
use crate::stats::{ClassStats, FailReason};
use llm_requests::agents::Sessions;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
/// Linux's initial retransmission timeout, which a lost SYN or SYN-ACK
/// costs (RFC 6298 §2.1), doubling on every further loss.
const SYN_RTO_NS: u64 = SEC;
/// Linux's minimum retransmission timeout for data segments.
const MIN_RTO_NS: u64 = 200 * MS;
/// TCP payload per segment on a 1500-byte MTU.
const MSS_BYTES: u64 = 1448;
/// HTTP request line, headers and JSON around the prompt.
const REQUEST_OVERHEAD_BYTES: u64 = 400;
/// Bytes per prompt token in the request body (English text).
const BYTES_PER_TOKEN: u64 = 4;
/// Headers of a request segment on the wire: Ethernet 14, IPv4 20 with
/// the 12-byte token-feature option, TCP 32 (with timestamps).
const DATA_FRAME_HEADER_BYTES: u64 = 78;
/// A SYN on the wire: the same headers with TCP's 40-byte SYN options.
const SYN_FRAME_BYTES: u32 = 86;
/// Most frames of one request on a shaped uplink (a 92 KB request; the
/// workloads' longest is under 9 KB).
const MAX_REQUEST_FRAMES: usize = 64;
/// Packets each egress band holds: the dataplane's `band_limit_packets`
/// default.
const UPLINK_BAND_LIMIT_PACKETS: u32 = 512;
/// Output tokens per response packet (`pktgen serve` sends one SSE
/// `data:` chunk per 4 tokens).
const TOKENS_PER_RESPONSE_PACKET: u32 = 4;
/// Prompt tokens of the typical short request `pktgen serve`'s TTFT
/// estimate is for.
const TYPICAL_SHORT_PROMPT_TOKENS: f64 = 16.0;
/// Output tokens `pktgen serve` assumes for the slot hold time before any
/// request has finished.
const ASSUMED_OUTPUT_TOKENS: f64 = 128.0;
/// The dataplane's default prior for the added TTFT per queued request
/// (`queue_wait_us_per_request`).
pub const QUEUE_WAIT_US_PER_REQUEST: f64 = 20_000.0;

/// Edge or centre, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Small and near.
    Edge,
    /// Large and far.
    Centre,
}

impl Kind {
    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Edge => "edge",
            Kind::Centre => "centre",
        }
    }
}

/// One site: an appliance and the instances its one service spreads over.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSpec {
    /// (node index, path index) per instance, at most
    /// [`steer::service::MAX_INSTANCES_PER_SERVICE`].
    pub instances: Vec<(usize, usize)>,
    /// Poisson arrival rate at this site, requests/s.
    pub rate_rps: f64,
}

/// A shaped egress port of an appliance. The paths that leave through it
/// share its rate, queued by the appliance's egress scheduler. A path on
/// no uplink leaves through a port that is never the bottleneck, as in the
/// emulation.
#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    /// Line rate, Mbit/s.
    pub rate_mbps: f64,
    /// Indices of the paths that leave through it.
    pub paths: Vec<usize>,
}

/// Nodes, paths and sites.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// Node parameters; node `i` is `NodeId(i + 1)`.
    pub nodes: Vec<NodeParams>,
    /// Node kinds, as `nodes`.
    pub kinds: Vec<Kind>,
    /// Path parameters.
    pub paths: Vec<PathParams>,
    /// Sites.
    pub sites: Vec<SiteSpec>,
    /// Shaped egress ports (agent to node direction).
    pub uplinks: Vec<Uplink>,
}

/// How a run is played.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// How every appliance decides.
    pub policy: Policy,
    /// Whether egress ports serve the interactive band strictly first
    /// (`[steer] strict_priority`); `false` makes each port one FIFO.
    pub strict_priority: bool,
    /// Seed of every random stream.
    pub seed: u64,
    /// Requests over all sites.
    pub requests: u64,
    /// Request mix.
    pub workload: Workload,
    /// NODE_STATE period, ns.
    pub report_interval_ns: u64,
    /// First arrival after the nodes' first reports, ns.
    pub warmup_ns: u64,
    /// The user's timeout, ns.
    pub timeout_ns: u64,
    /// PATH_STATE probing period, ns (`None`: no path probing, the
    /// appliance knows only the configured priors).
    pub probe_interval_ns: Option<u64>,
    /// The control plane's thresholds.
    pub thresholds: Thresholds,
    /// Node failures: at this time, these nodes (indices) fail (for
    /// good, unless a recovery names them later).
    pub node_failures: Vec<(u64, Vec<usize>)>,
    /// Path failures: at this time, these paths lose everything.
    pub path_failures: Vec<(u64, Vec<usize>)>,
    /// Node recoveries: at this time, these failed nodes restart, empty,
    /// and report at once (as a restarted `pktgen serve` does).
    pub node_recoveries: Vec<(u64, Vec<usize>)>,
    /// Path recoveries: at this time, these paths carry traffic again.
    pub path_recoveries: Vec<(u64, Vec<usize>)>,
    /// Keep (arrival, TTFT) of every short request for windowed results.
    pub record_timeline: bool,
    /// Keep a [`RequestRecord`] of every request.
    pub record_requests: bool,
}

/// What became of one request, for timelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRecord {
    /// Arrival, which is also when it was decided, ns.
    pub arrival_ns: u64,
    /// Short (interactive).
    pub short: bool,
    /// The node (index) it was steered to; `None` when no instance could
    /// take it.
    pub node: Option<u32>,
    /// When it completed or failed, ns.
    pub done_ns: u64,
    /// Why it failed, if it did.
    pub failed: Option<FailReason>,
}

/// What the appliances did about one failure event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureResponse {
    /// When the failure happened, ns.
    pub at_ns: u64,
    /// Decisions that chose a failed element after it failed.
    pub chosen_after: u64,
    /// The last such decision, ns after the failure.
    pub last_chosen_after_ns: Option<u64>,
    /// Requests in service or queued on the failed nodes when they failed.
    pub in_service_lost: u64,
}

/// One instance's latency model at the end of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReport {
    /// Node index.
    pub node: usize,
    /// Observations learned from.
    pub samples: u64,
    /// Mean absolute error of the decision-time compute-TTFT prediction, µs.
    pub ttft_mae_us: f64,
    /// Its mean signed error (predicted − observed), µs.
    pub ttft_bias_us: f64,
    /// Mean absolute error of the completion prediction, µs.
    pub completion_mae_us: f64,
    /// Learned `[base µs, µs per 1000 prompt tokens, µs per queued request]`.
    pub coefficients: [f64; 3],
}

/// What one shaped uplink did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UplinkReport {
    /// Bytes put on the wire.
    pub sent_bytes: u64,
    /// Time spent sending, ns.
    pub busy_ns: u64,
    /// Packets refused by a full band (TCP resends them after its
    /// timeout).
    pub dropped_packets: u64,
    /// Most packets queued at once.
    pub max_queued_packets: usize,
    /// Queueing delay of interactive packets: total ns, packets, max ns.
    pub interactive_wait: (u64, u64, u64),
    /// Queueing delay of every other packet: total ns, packets, max ns.
    pub bulk_wait: (u64, u64, u64),
}

/// Everything a run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Short (interactive) requests.
    pub short: ClassStats,
    /// Long (bulk) requests.
    pub long: ClassStats,
    /// Requests steered to each node: `[short, long]`.
    pub chosen: Vec<[u64; 2]>,
    /// Decisions made.
    pub decisions: u64,
    /// Events handled.
    pub events: u64,
    /// NODE_STATE and PATH_STATE messages applied.
    pub state_messages: u64,
    /// Per node-failure event.
    pub node_failures: Vec<FailureResponse>,
    /// Per path-failure event.
    pub path_failures: Vec<FailureResponse>,
    /// (arrival ns, TTFT µs, failed, site) of every short request, if
    /// recorded.
    pub short_timeline: Vec<(u64, u32, bool, u32)>,
    /// The first site's models.
    pub models: Vec<ModelReport>,
    /// Per shaped uplink, as [`Topology::uplinks`].
    pub uplinks: Vec<UplinkReport>,
    /// Every request, in the order they finished, if recorded.
    pub requests: Vec<RequestRecord>,
    /// Prompt tokens the nodes found in their prefix caches, over every
    /// node (`vllm:prefix_cache_hits`).
    pub prefix_hit_tokens: u64,
    /// Prompt tokens the nodes looked up (`vllm:prefix_cache_queries`).
    pub prefix_queried_tokens: u64,
    /// Simulated time at the end, ns.
    pub end_ns: u64,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Arrival(u32),
    Syn(u32, u32),
    SynAtNode(u32, u32),
    SynAckAtClient(u32, u32),
    ReqAtNode(u32, u32),
    FirstToken(u32, u32),
    SlotFree(u32, u32),
    Complete(u32, u32),
    Report(u32),
    Probe(u32),
    FailNodes(u32),
    FailPaths(u32),
    RecoverNodes(u32),
    RecoverPaths(u32),
    UplinkDone(u32),
}

#[derive(Debug, Clone, Copy)]
struct Req {
    /// Bumped when the slot is freed, so stale events are ignored.
    gen: u32,
    live: bool,
    /// Failed while its node still holds it (the node finds out at
    /// SlotFree).
    failed: bool,
    short: bool,
    /// The class's egress band ([`TrafficClass::band`]).
    band: u8,
    site: u32,
    inst: u8,
    node: u32,
    path: u32,
    syn_tries: u8,
    features: TokenFeatures,
    /// An agent call's cacheable parts, and its session's history after it.
    parts: Option<PromptParts>,
    history_after: u32,
    predicted: Predicted,
    t0: u64,
    /// When the appliance saw the request's last payload packet.
    t_seen: u64,
    /// When the request took a batch slot.
    t_start: u64,
    /// When the node produced the first token.
    t_ft: u64,
    /// When the first token reached the client.
    t_first: u64,
}

impl Default for Req {
    fn default() -> Self {
        Req {
            gen: 0,
            live: false,
            failed: false,
            short: false,
            band: 0,
            site: 0,
            inst: 0,
            node: 0,
            path: 0,
            syn_tries: 0,
            features: TokenFeatures {
                prompt_tokens: 0,
                output_tokens: 0,
                task: TaskType::Chat,
                urgency: TaskType::Chat.default_urgency(),
                explicit_urgency: false,
                prefix: None,
            },
            parts: None,
            history_after: 0,
            predicted: Predicted::default(),
            t0: 0,
            t_seen: 0,
            t_start: 0,
            t_ft: 0,
            t_first: 0,
        }
    }
}

struct NodeRt {
    p: NodeParams,
    failed: bool,
    /// Its report timer runs (a failed node's stops at its next tick).
    reporting: bool,
    active: Vec<u32>,
    queue: VecDeque<u32>,
    kv_held: u64,
    /// Its prefix cache, and its counters when the collector last read
    /// them (hits, queries).
    cache: PrefixCache,
    scraped: (u64, u64),
    hold_total_ns: u64,
    holds: u64,
    /// Sites whose appliance receives this node's NODE_STATE.
    watchers: Vec<u32>,
}

impl NodeRt {
    /// `pktgen serve`'s estimate of a new short request's TTFT, ms:
    /// prefill of a typical short prompt plus the expected wait for a slot.
    fn est_ttft_ms(&self) -> f64 {
        let conc = f64::from(self.p.concurrency.max(1));
        let prefill_ms = self.p.prefill_s(TYPICAL_SHORT_PROMPT_TOKENS) * 1000.0;
        let mean_hold_ms = if self.holds > 0 {
            self.hold_total_ns as f64 / self.holds as f64 / 1e6
        } else {
            prefill_ms + ASSUMED_OUTPUT_TOKENS / self.p.decode_tps * 1000.0
        };
        let ahead =
            (self.queue.len() + self.active.len() + 1).saturating_sub(self.p.concurrency as usize);
        prefill_ms + ahead as f64 * mean_hold_ms / conc
    }

    fn report(&self, node: usize) -> Message {
        let conc = f64::from(self.p.concurrency.max(1));
        let kv = (self.kv_held as f64 / self.p.kv_tokens.max(1) as f64).min(1.0);
        NodeState::new(
            NodeId(node_id(node)),
            vec![
                Metric::new(
                    MetricType::GpuUtilisation,
                    Unit::Ratio,
                    (self.active.len() as f64 / conc).min(1.0),
                ),
                Metric::new(MetricType::GpuMemoryUtilisation, Unit::Ratio, kv),
                Metric::new(
                    MetricType::QueueLength,
                    Unit::Count,
                    self.queue.len() as f64,
                ),
                Metric::new(MetricType::EstTtft, Unit::Milliseconds, self.est_ttft_ms()),
            ],
        )
        .into()
    }
}

#[derive(Clone, Copy)]
enum Dir {
    Fwd,
    Rev,
}

struct PathRt {
    p: PathParams,
    failed: bool,
    one_way_ns: u64,
    jitter_ns: f64,
    /// Last release per direction: the line never reorders.
    last: [u64; 2],
    rng: ChaCha8Rng,
}

impl PathRt {
    fn loss(&self) -> f64 {
        if self.failed {
            1.0
        } else {
            self.p.loss
        }
    }

    fn lost(&mut self) -> bool {
        let p = self.loss();
        p >= 1.0 || (p > 0.0 && self.rng.gen::<f64>() < p)
    }

    fn delay_ns(&mut self) -> u64 {
        if self.jitter_ns <= 0.0 {
            return self.one_way_ns;
        }
        let u: f64 = self.rng.gen();
        (self.one_way_ns as f64 + (2.0 * u - 1.0) * self.jitter_ns).max(0.0) as u64
    }

    /// Release time of a packet sent now: `pktgen wire`'s rule, max(last
    /// release in this direction, now + delay + jitter).
    fn deliver(&mut self, dir: Dir, now: u64) -> u64 {
        let d = self.delay_ns();
        let slot = match dir {
            Dir::Fwd => &mut self.last[0],
            Dir::Rev => &mut self.last[1],
        };
        let t = (now + d).max(*slot);
        *slot = t;
        t
    }

    /// Retransmission timeout of a data segment: max(200 ms, RTT).
    fn data_rto_ns(&self) -> u64 {
        MIN_RTO_NS.max(2 * self.one_way_ns)
    }

    /// The delay TCP's retransmissions add to one segment: for every loss
    /// of it, one RTO, doubling. `None` when the path loses everything.
    fn segment_penalty(&mut self) -> Option<u64> {
        if self.loss() >= 1.0 {
            return None;
        }
        let mut rto = self.data_rto_ns();
        let mut pen = 0u64;
        while self.lost() {
            pen = pen.saturating_add(rto);
            rto = rto.saturating_mul(2);
        }
        Some(pen)
    }
}

/// Which packet of a request is on an uplink.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SegmentKind {
    Syn,
    Data,
    /// The request's last segment: the request is on its way once it is
    /// sent.
    LastData,
}

#[derive(Clone, Copy)]
struct Segment {
    r: u32,
    gen: u32,
    kind: SegmentKind,
    interactive: bool,
    enqueued_ns: u64,
}

struct UplinkRt {
    sched: Scheduler<Segment>,
    strict_priority: bool,
    ns_per_byte: f64,
    on_wire: Option<Segment>,
    report: UplinkReport,
}

impl UplinkRt {
    /// Whether `packets` more fit in `band`: a request's segments are
    /// queued all or none, so a request is never half sent.
    fn has_room(&self, band: usize, packets: usize) -> bool {
        let limit = if self.strict_priority {
            UPLINK_BAND_LIMIT_PACKETS
        } else {
            UPLINK_BAND_LIMIT_PACKETS.saturating_mul(TrafficClass::COUNT as u32)
        };
        self.sched.band_len(band).saturating_add(packets) <= limit as usize
    }
}

fn add_wait(acc: &mut (u64, u64, u64), ns: u64) {
    acc.0 = acc.0.saturating_add(ns);
    acc.1 += 1;
    acc.2 = acc.2.max(ns);
}

struct Site {
    state: ControlState,
    view: DataplaneView,
    dirty: bool,
    version: u64,
    /// The appliance's steering engine, as a data-plane worker runs it:
    /// its decisions, latency models, round-robin turns and flows steered
    /// since each node's last report.
    engine: steer::Engine,
    /// Node and path index per instance.
    inst: Vec<(u32, u32)>,
    rng: ChaCha8Rng,
    rate_rps: f64,
    /// The agents' open sessions at this site.
    sessions: Sessions,
}

/// The frames a request puts on the wire toward its node, in order: its
/// payload (the HTTP request around `prompt_tokens`) cut into MSS-sized
/// segments, each with its headers. At most `out.len()` frames; returns
/// how many.
fn request_frames(prompt_tokens: u32, out: &mut [u32]) -> usize {
    let bytes = REQUEST_OVERHEAD_BYTES + BYTES_PER_TOKEN * u64::from(prompt_tokens);
    let packets = bytes.div_ceil(MSS_BYTES).clamp(1, out.len() as u64) as usize;
    let mut left = bytes;
    for f in out.iter_mut().take(packets) {
        let payload = left.min(MSS_BYTES);
        left -= payload;
        *f = u32::try_from(payload + DATA_FRAME_HEADER_BYTES).unwrap_or(u32::MAX);
    }
    packets
}

/// Bytes a request with this prompt puts on the wire toward its node when
/// nothing is lost: its SYN and its request frames.
pub fn request_wire_bytes(prompt_tokens: u32) -> u64 {
    let mut frames = [0u32; MAX_REQUEST_FRAMES];
    let n = request_frames(prompt_tokens, &mut frames);
    u64::from(SYN_FRAME_BYTES) + frames[..n].iter().map(|&f| u64::from(f)).sum::<u64>()
}

fn node_id(i: usize) -> u16 {
    u16::try_from(i + 1).unwrap_or(u16::MAX)
}

fn ns_of_ms(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1e6).round() as u64
    } else {
        0
    }
}

fn ns_of_s(s: f64) -> u64 {
    ns_of_ms(s * 1000.0)
}

/// The RNG of one stream: the same seed, a different ChaCha stream.
pub fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

const SITE_STREAM: u64 = 1 << 32;
const PATH_STREAM: u64 = 2 << 32;
const PERSONA_STREAM: u64 = 3 << 32;

/// The appliance's configuration for a site: one path per instance (its
/// priors are the path's true delay and jitter) and one service over all
/// instances.
fn site_table(topo: &Topology, site: &SiteSpec) -> Result<ServiceTable, String> {
    let all = TaskTypes::from_bits(TaskTypes::DEFINED).ok_or("no task types")?;
    let mut paths = Vec::new();
    let mut instances = Vec::new();
    for (k, &(n, p)) in site.instances.iter().enumerate() {
        let node = topo.nodes.get(n).ok_or("instance names an unknown node")?;
        let kind = topo.kinds.get(n).copied().unwrap_or(Kind::Centre);
        let path = topo.paths.get(p).ok_or("instance names an unknown path")?;
        let id = PathId(u16::try_from(k + 1).map_err(|_| "too many paths")?);
        paths.push(PathSpec {
            id,
            name: format!("p{p}"),
            egress_port: 1,
            next_hop_mac: [2, 0, 0, 0, 0, 1],
            prior_latency_us: path.one_way_ms * 1000.0,
            prior_jitter_us: path.jitter_ms * 1000.0,
        });
        let nid = node_id(n);
        let [hi, lo] = nid.to_be_bytes();
        instances.push(InstanceSpec {
            name: format!("n{n}"),
            node: NodeId(nid),
            ip: IpAddr::V4(Ipv4Addr::new(10, 1, hi, lo)),
            mac: None,
            paths: vec![id],
            capability: InstanceCapability {
                model_class: match kind {
                    Kind::Edge => ModelClass::SmallEdge,
                    Kind::Centre => ModelClass::LargeCentre,
                },
                task_types: all,
                max_context_tokens: 131_072,
                prefill_tokens_per_s: node.prefill_tps,
                decode_tokens_per_s: node.decode_tps,
                concurrency: node.concurrency,
                base_ttft_us: node.base_ttft_ms * 1000.0,
                // The dataplane's default: four times the batch slots.
                max_queue: node.concurrency.saturating_mul(4),
            },
        });
    }
    let names = instances.iter().map(|i| i.name.clone()).collect();
    ServiceTable::build(
        paths,
        instances,
        vec![ServiceSpec {
            name: "llm".into(),
            vip: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
            ports: vec![8000],
            instances: names,
            overflow_instance: None,
        }],
    )
    .map_err(|e| e.to_string())
}

fn uniform(rng: &mut ChaCha8Rng, r: [u32; 2]) -> u32 {
    llm_requests::agents::uniform(rng, r)
}

/// A persona's shared prefix as its agent library names it: a hash of
/// its text (here of its index) and its tokens.
fn persona_prefix(persona: u32, tokens: u32) -> SharedPrefix {
    // SplitMix64 of the index: distinct personas, distinct hashes.
    let mut z = u64::from(persona).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    SharedPrefix::of_hash(z ^ (z >> 31), tokens)
}

/// One agent call ([`Sessions::next_call`]). Returns the features (the
/// persona's prefix named, as the agent library sends it), the parts a
/// node can cache and the session's history after this turn.
fn draw_agent_call(
    rng: &mut ChaCha8Rng,
    a: &AgentMix,
    persona_tokens: &[u32],
    sessions: &mut Sessions,
) -> (TokenFeatures, PromptParts, u32) {
    let call = sessions.next_call(rng, a, persona_tokens);
    let features = TokenFeatures {
        prompt_tokens: call.prompt_tokens(),
        output_tokens: call.output_tokens,
        task: TaskType::Chat,
        urgency: TaskType::Chat.default_urgency(),
        explicit_urgency: false,
        prefix: a
            .name_prefix
            .then(|| persona_prefix(call.persona, call.prefix_tokens)),
    };
    let parts = PromptParts {
        persona: call.persona,
        prefix_tokens: call.prefix_tokens,
        session: call.session,
        history_tokens: call.history_tokens(),
    };
    (features, parts, call.history_after())
}

/// Draws one request: (short?, features).
pub fn draw_request(rng: &mut ChaCha8Rng, w: &Workload) -> (bool, TokenFeatures) {
    let short = rng.gen::<f64>() < w.short_fraction;
    let (task, prompt, output) = if short {
        (
            TaskType::ImmediateControl,
            uniform(rng, w.short_prompt_tokens),
            uniform(rng, w.short_output_tokens),
        )
    } else {
        let task = match rng.gen_range(0..3u8) {
            0 => TaskType::CodeGeneration,
            1 => TaskType::Summarisation,
            _ => TaskType::ComplexReasoning,
        };
        (
            task,
            uniform(rng, w.long_prompt_tokens),
            uniform(rng, w.long_output_tokens),
        )
    };
    (
        short,
        TokenFeatures {
            prompt_tokens: prompt,
            output_tokens: output,
            task,
            urgency: task.default_urgency(),
            explicit_urgency: false,
            prefix: None,
        },
    )
}

struct World<'a> {
    cfg: &'a RunConfig,
    q: EventQueue<Ev>,
    nodes: Vec<NodeRt>,
    paths: Vec<PathRt>,
    /// Shaped uplinks, and each path's (`None`: unshaped).
    uplinks: Vec<UplinkRt>,
    uplink_of_path: Vec<Option<u32>>,
    sites: Vec<Site>,
    reqs: Vec<Req>,
    free: Vec<u32>,
    live: u64,
    arrived: u64,
    out: Outcome,
    /// Each agent persona's system prompt and tools, tokens.
    persona_tokens: Vec<u32>,
    /// Which failure event failed each node / path, if any.
    node_failure_of: Vec<Option<u32>>,
    path_failure_of: Vec<Option<u32>>,
}

/// Plays a run. Deterministic: the same topology, configuration and seed
/// give the same outcome.
pub fn run(topo: &Topology, cfg: &RunConfig) -> Result<Outcome, String> {
    let mut w = World::new(topo, cfg)?;
    w.play();
    w.finish();
    Ok(w.out)
}

impl<'a> World<'a> {
    fn new(topo: &Topology, cfg: &'a RunConfig) -> Result<World<'a>, String> {
        if topo.nodes.len() != topo.kinds.len() {
            return Err("every node needs a kind".into());
        }
        if topo.nodes.len() >= usize::from(u16::MAX) {
            return Err("too many nodes for 16-bit node ids".into());
        }
        if cfg.report_interval_ns == 0 || cfg.probe_interval_ns == Some(0) {
            return Err("report and probe intervals must be > 0".into());
        }
        let mut nodes: Vec<NodeRt> = topo
            .nodes
            .iter()
            .map(|p| NodeRt {
                p: *p,
                failed: false,
                reporting: true,
                active: Vec::with_capacity(p.concurrency as usize),
                queue: VecDeque::new(),
                kv_held: 0,
                cache: PrefixCache::new(p.kv_tokens),
                scraped: (0, 0),
                hold_total_ns: 0,
                holds: 0,
                watchers: Vec::new(),
            })
            .collect();
        let paths = topo
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| PathRt {
                p: *p,
                failed: false,
                one_way_ns: ns_of_ms(p.one_way_ms),
                jitter_ns: p.jitter_ms.max(0.0) * 1e6,
                last: [0, 0],
                rng: stream_rng(cfg.seed, PATH_STREAM + i as u64),
            })
            .collect();
        let mut uplink_of_path = vec![None; topo.paths.len()];
        let mut uplinks = Vec::with_capacity(topo.uplinks.len());
        for (u, link) in topo.uplinks.iter().enumerate() {
            if !(link.rate_mbps.is_finite() && link.rate_mbps > 0.0) {
                return Err(format!(
                    "uplink {u}: rate_mbps = {} must be > 0",
                    link.rate_mbps
                ));
            }
            for &p in &link.paths {
                match uplink_of_path.get_mut(p) {
                    Some(slot @ None) => *slot = Some(u as u32),
                    Some(Some(_)) => return Err(format!("path {p} is on two uplinks")),
                    None => return Err(format!("uplink {u}: no path {p}")),
                }
            }
            let bands =
                steer::egress::band_config(cfg.strict_priority, |_| 1, UPLINK_BAND_LIMIT_PACKETS);
            uplinks.push(UplinkRt {
                sched: Scheduler::new(&bands).map_err(|e| format!("uplink {u}: {e}"))?,
                strict_priority: cfg.strict_priority,
                // 1 Mbit/s sends a byte in 8,000 ns.
                ns_per_byte: 8000.0 / link.rate_mbps,
                on_wire: None,
                report: UplinkReport::default(),
            });
        }
        let mut sites = Vec::with_capacity(topo.sites.len());
        for (si, s) in topo.sites.iter().enumerate() {
            let table = site_table(topo, s)?;
            let models = steer::feedback::instance_models(&table, QUEUE_WAIT_US_PER_REQUEST)?;
            let instances = table.instances().len();
            let engine = steer::Engine::new(
                std::sync::Arc::new(table),
                steer::EngineConfig {
                    policy: cfg.policy,
                    infer_http_ports: Vec::new(),
                    infer_limits: steer::infer::InferLimits::default(),
                    // Requests are decided at the flow level: no packets.
                    flow_table_size: 1,
                    flow_idle_ns: u64::MAX,
                    seed: 0,
                    rss_key: [0x5a; 40],
                    fragments: steer::fragment::FragmentLimits {
                        datagrams: 1,
                        held: 0,
                        ..Default::default()
                    },
                    prefixes: steer::PrefixLimits::default(),
                    splice: None,
                },
                models,
                std::sync::Arc::new(steer::stats::SteerCounters::new(instances, 0)),
            );
            for &(n, _) in &s.instances {
                if let Some(node) = nodes.get_mut(n) {
                    node.watchers.push(si as u32);
                }
            }
            let state = ControlState::new(cfg.thresholds);
            sites.push(Site {
                view: state.view(0, 0),
                state,
                dirty: false,
                version: 0,
                engine,
                inst: s
                    .instances
                    .iter()
                    .map(|&(n, p)| (n as u32, p as u32))
                    .collect(),
                rng: stream_rng(cfg.seed, SITE_STREAM + si as u64),
                rate_rps: s.rate_rps,
                sessions: Sessions::new((si as u64) << 40),
            });
        }
        let out = Outcome {
            chosen: vec![[0, 0]; topo.nodes.len()],
            node_failures: cfg
                .node_failures
                .iter()
                .map(|(t, _)| FailureResponse {
                    at_ns: *t,
                    ..FailureResponse::default()
                })
                .collect(),
            path_failures: cfg
                .path_failures
                .iter()
                .map(|(t, _)| FailureResponse {
                    at_ns: *t,
                    ..FailureResponse::default()
                })
                .collect(),
            ..Outcome::default()
        };
        let agents = cfg.workload.agents;
        let mut persona_rng = stream_rng(cfg.seed, PERSONA_STREAM);
        let persona_tokens = agents.persona_tokens(&mut persona_rng);
        let mut w = World {
            cfg,
            persona_tokens,
            q: EventQueue::new(),
            node_failure_of: vec![None; nodes.len()],
            path_failure_of: vec![None; topo.paths.len()],
            nodes,
            paths,
            uplinks,
            uplink_of_path,
            sites,
            reqs: Vec::new(),
            free: Vec::new(),
            live: 0,
            arrived: 0,
            out,
        };
        // Reports are staggered over one period, as independent nodes'
        // timers would be; probes likewise.
        let n = w.nodes.len().max(1) as u64;
        for i in 0..w.nodes.len() {
            let at = cfg.report_interval_ns * i as u64 / n;
            w.q.push(at, Ev::Report(i as u32));
        }
        if let Some(pi) = cfg.probe_interval_ns {
            let s = w.sites.len().max(1) as u64;
            for i in 0..w.sites.len() {
                w.q.push(pi * i as u64 / s, Ev::Probe(i as u32));
            }
        }
        for i in 0..w.sites.len() {
            let gap = w.interarrival(i);
            if let Some(gap) = gap {
                w.q.push(cfg.warmup_ns + gap, Ev::Arrival(i as u32));
            }
        }
        for (k, (t, _)) in cfg.node_failures.iter().enumerate() {
            w.q.push(*t, Ev::FailNodes(k as u32));
        }
        for (k, (t, _)) in cfg.path_failures.iter().enumerate() {
            w.q.push(*t, Ev::FailPaths(k as u32));
        }
        for (k, (t, _)) in cfg.node_recoveries.iter().enumerate() {
            w.q.push(*t, Ev::RecoverNodes(k as u32));
        }
        for (k, (t, _)) in cfg.path_recoveries.iter().enumerate() {
            w.q.push(*t, Ev::RecoverPaths(k as u32));
        }
        Ok(w)
    }

    fn interarrival(&mut self, site: usize) -> Option<u64> {
        let s = self.sites.get_mut(site)?;
        if !(s.rate_rps.is_finite() && s.rate_rps > 0.0) {
            return None;
        }
        let u: f64 = s.rng.gen();
        Some(ns_of_s(-(1.0 - u).ln() / s.rate_rps))
    }

    fn done(&self) -> bool {
        self.arrived >= self.cfg.requests && self.live == 0
    }

    fn play(&mut self) {
        while let Some((now, ev)) = self.q.pop() {
            self.out.events += 1;
            self.handle(now, ev);
            if self.done() {
                self.out.end_ns = now;
                break;
            }
        }
    }

    fn handle(&mut self, now: u64, ev: Ev) {
        match ev {
            Ev::Arrival(s) => self.arrival(now, s as usize),
            Ev::Syn(r, g) => {
                if self.alive(r, g) {
                    self.send_syn(now, r);
                }
            }
            Ev::SynAtNode(r, g) => {
                if self.alive(r, g) {
                    self.syn_at_node(now, r);
                }
            }
            Ev::SynAckAtClient(r, g) => {
                if self.alive(r, g) {
                    self.syn_ack_at_client(now, r);
                }
            }
            Ev::ReqAtNode(r, g) => {
                if self.alive(r, g) {
                    self.req_at_node(now, r);
                }
            }
            Ev::FirstToken(r, g) => {
                if self.alive(r, g) {
                    self.first_token(now, r);
                }
            }
            Ev::SlotFree(r, g) => {
                if self.alive(r, g) {
                    self.slot_free(now, r);
                }
            }
            Ev::Complete(r, g) => {
                if self.alive(r, g) {
                    self.complete(now, r);
                }
            }
            Ev::Report(n) => self.report(now, n as usize),
            Ev::Probe(s) => self.probe(now, s as usize),
            Ev::FailNodes(k) => self.fail_nodes(k),
            Ev::FailPaths(k) => self.fail_paths(k),
            Ev::RecoverNodes(k) => self.recover_nodes(now, k),
            Ev::RecoverPaths(k) => self.recover_paths(k),
            Ev::UplinkDone(u) => self.uplink_done(now, u as usize),
        }
    }

    fn alive(&self, r: u32, gen: u32) -> bool {
        self.reqs
            .get(r as usize)
            .is_some_and(|q| q.live && q.gen == gen)
    }

    fn req(&self, r: u32) -> Req {
        self.reqs.get(r as usize).copied().unwrap_or_default()
    }

    fn req_mut(&mut self, r: u32) -> Option<&mut Req> {
        self.reqs.get_mut(r as usize)
    }

    fn alloc(&mut self, req: Req) -> (u32, u32) {
        self.live += 1;
        if let Some(i) = self.free.pop() {
            if let Some(slot) = self.reqs.get_mut(i as usize) {
                let gen = slot.gen;
                *slot = Req { gen, ..req };
                return (i, gen);
            }
        }
        self.reqs.push(Req { gen: 0, ..req });
        ((self.reqs.len() - 1) as u32, 0)
    }

    fn release(&mut self, r: u32) {
        if let Some(q) = self.reqs.get_mut(r as usize) {
            if q.live {
                q.live = false;
                q.gen = q.gen.wrapping_add(1);
                self.free.push(r);
                self.live = self.live.saturating_sub(1);
            }
        }
    }

    fn class(&mut self, short: bool) -> &mut ClassStats {
        if short {
            &mut self.out.short
        } else {
            &mut self.out.long
        }
    }

    /// Records a failure once; the slot stays if a node still holds it.
    fn record_failure(&mut self, r: u32, reason: FailReason) {
        let q = self.req(r);
        if q.failed {
            return;
        }
        if let Some(m) = self.req_mut(r) {
            m.failed = true;
        }
        let timeout = self.cfg.timeout_ns;
        self.class(q.short).fail(reason, timeout);
        if self.cfg.record_requests {
            let now = self.q.now_ns();
            self.out.requests.push(RequestRecord {
                arrival_ns: q.t0,
                short: q.short,
                node: (reason != FailReason::NoChoice).then_some(q.node),
                done_ns: now,
                failed: Some(reason),
            });
        }
        if q.short && self.cfg.record_timeline {
            self.out.short_timeline.push((
                q.t0,
                u32::try_from(timeout / 1000).unwrap_or(u32::MAX),
                true,
                q.site,
            ));
        }
    }

    fn fail(&mut self, r: u32, reason: FailReason) {
        self.record_failure(r, reason);
        self.release(r);
    }

    fn arrival(&mut self, now: u64, s: usize) {
        if self.arrived >= self.cfg.requests {
            return;
        }
        self.arrived += 1;
        if self.arrived < self.cfg.requests {
            if let Some(gap) = self.interarrival(s) {
                self.q.push(now + gap, Ev::Arrival(s as u32));
            }
        }
        let workload = self.cfg.workload;
        let Some(site) = self.sites.get_mut(s) else {
            return;
        };
        let agent =
            workload.agent_fraction > 0.0 && site.rng.gen::<f64>() < workload.agent_fraction;
        let (short, features, parts, history_after) = if agent {
            let (f, parts, after) = draw_agent_call(
                &mut site.rng,
                &workload.agents,
                &self.persona_tokens,
                &mut site.sessions,
            );
            (false, f, Some(parts), after)
        } else {
            let (short, f) = draw_request(&mut site.rng, &workload);
            (short, f, None, 0)
        };
        if site.dirty {
            // Rebuilt only when a message arrived since the last decision:
            // the control thread publishes a new view per change.
            site.version += 1;
            site.view = site.state.view(site.version, now);
            site.dirty = false;
        }
        let class = TrafficClass::of(&features, site.view.thresholds().short_task_tokens);
        let decision = site.engine.decide(0, &features, class, &site.view, now);
        self.out.decisions += 1;
        let base = Req {
            live: true,
            short,
            site: s as u32,
            features,
            parts,
            history_after,
            t0: now,
            ..Req::default()
        };
        self.class(short).arrive(now);
        let choice = match decision {
            Ok(c) => c,
            Err(_) => {
                let (r, _) = self.alloc(base);
                self.fail(r, FailReason::NoChoice);
                return;
            }
        };
        let Some(&(node, path)) = self
            .sites
            .get(s)
            .and_then(|site| site.inst.get(usize::from(choice.instance)))
        else {
            let (r, _) = self.alloc(base);
            self.fail(r, FailReason::NoChoice);
            return;
        };
        if let Some(c) = self.out.chosen.get_mut(node as usize) {
            c[usize::from(!short)] += 1;
        }
        self.note_failed_choice(now, node as usize, path as usize);
        let (r, _) = self.alloc(Req {
            band: class.band() as u8,
            inst: choice.instance,
            node,
            path,
            predicted: choice.predicted,
            ..base
        });
        self.send_syn(now, r);
    }

    /// Counts a decision for an element that has failed.
    fn note_failed_choice(&mut self, now: u64, node: usize, path: usize) {
        let hits = [
            (
                self.node_failure_of.get(node).copied().flatten(),
                &mut self.out.node_failures,
            ),
            (
                self.path_failure_of.get(path).copied().flatten(),
                &mut self.out.path_failures,
            ),
        ];
        for (k, list) in hits {
            if let Some(f) = k.and_then(|k| list.get_mut(k as usize)) {
                f.chosen_after += 1;
                f.last_chosen_after_ns = Some(now.saturating_sub(f.at_ns));
            }
        }
    }

    /// The client sends (or resends) its SYN: through the path's uplink
    /// if it is shaped, straight onto the path otherwise.
    fn send_syn(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        if let Some(u) = self.uplink_of(q.path) {
            if !self.uplink_enqueue(now, u, r, &[SYN_FRAME_BYTES], SegmentKind::Syn) {
                self.syn_lost(now, r);
            }
            return;
        }
        self.syn_onto_path(now, r);
    }

    fn syn_onto_path(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        let Some(path) = self.paths.get_mut(q.path as usize) else {
            self.fail(r, FailReason::Unreachable);
            return;
        };
        if path.lost() {
            self.syn_lost(now, r);
            return;
        }
        let t = path.deliver(Dir::Fwd, now);
        self.q.push(t, Ev::SynAtNode(r, q.gen));
    }

    /// A lost (or refused) SYN: the client resends it after its RTO,
    /// doubling, until the user's timeout.
    fn syn_lost(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        let timeout_at = q.t0 + self.cfg.timeout_ns;
        let rto = SYN_RTO_NS << q.syn_tries.min(16);
        if now + rto >= timeout_at {
            self.fail(r, FailReason::Unreachable);
            return;
        }
        if let Some(m) = self.req_mut(r) {
            m.syn_tries += 1;
        }
        self.q.push(now + rto, Ev::Syn(r, q.gen));
    }

    fn syn_at_node(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        if self.nodes.get(q.node as usize).map_or(true, |n| n.failed) {
            // A dead machine answers nothing: the client retries its SYN
            // until it gives up.
            self.fail(r, FailReason::NodeFailed);
            return;
        }
        let timeout_at = q.t0 + self.cfg.timeout_ns;
        let Some(path) = self.paths.get_mut(q.path as usize) else {
            return;
        };
        // A lost SYN-ACK is resent by the server after 1 s, doubling.
        let mut send = now;
        let mut rto = SYN_RTO_NS;
        while path.lost() {
            send += rto;
            rto *= 2;
            if send >= timeout_at {
                self.fail(r, FailReason::Unreachable);
                return;
            }
        }
        let t = if send == now {
            path.deliver(Dir::Rev, now)
        } else {
            // A retransmission far in the future must not hold back the
            // line's other packets, so it is not ordered.
            send + path.delay_ns()
        };
        self.q.push(t, Ev::SynAckAtClient(r, q.gen));
    }

    /// The client sends its request: through the path's uplink if it is
    /// shaped, straight onto the path otherwise.
    fn syn_ack_at_client(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        if let Some(m) = self.req_mut(r) {
            // The appliance sees the request as it arrives, before its
            // egress queue: the passive TTFT clock starts there.
            m.t_seen = now;
        }
        let Some(u) = self.uplink_of(q.path) else {
            self.request_onto_path(now, r);
            return;
        };
        if now >= q.t0 + self.cfg.timeout_ns {
            self.fail(r, FailReason::Timeout);
            return;
        }
        let mut frames = [0u32; MAX_REQUEST_FRAMES];
        let packets = request_frames(q.features.prompt_tokens, &mut frames);
        let rto = self
            .paths
            .get(q.path as usize)
            .map_or(MIN_RTO_NS, PathRt::data_rto_ns);
        if !self.uplink_enqueue(now, u, r, &frames[..packets], SegmentKind::Data) {
            // Refused by a full band: TCP resends after its timeout.
            self.q.push(now + rto, Ev::SynAckAtClient(r, q.gen));
        }
    }

    /// The request's segments go onto the path; each loss of one costs a
    /// retransmission timeout.
    fn request_onto_path(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        let bytes = REQUEST_OVERHEAD_BYTES + BYTES_PER_TOKEN * u64::from(q.features.prompt_tokens);
        let packets = bytes.div_ceil(MSS_BYTES).max(1);
        let Some(path) = self.paths.get_mut(q.path as usize) else {
            return;
        };
        let mut penalty = 0u64;
        for _ in 0..packets {
            match path.segment_penalty() {
                Some(p) => penalty = penalty.saturating_add(p),
                None => {
                    self.fail(r, FailReason::Unreachable);
                    return;
                }
            }
        }
        let t = path.deliver(Dir::Fwd, now) + penalty;
        if let Some(m) = self.req_mut(r) {
            // The last request segment's retransmission passes the
            // appliance later by the penalty.
            m.t_seen = q.t_seen + penalty;
        }
        self.q.push(t, Ev::ReqAtNode(r, q.gen));
    }

    fn uplink_of(&self, path: u32) -> Option<usize> {
        self.uplink_of_path
            .get(path as usize)
            .copied()
            .flatten()
            .map(|u| u as usize)
    }

    /// Queues a request's packets (one frame length each) on an uplink in
    /// its class's band, all or none; the last data frame is marked.
    /// `false`: the band had no room, and the packets are counted dropped.
    fn uplink_enqueue(
        &mut self,
        now: u64,
        u: usize,
        r: u32,
        frames: &[u32],
        kind: SegmentKind,
    ) -> bool {
        let q = self.req(r);
        let Some(link) = self.uplinks.get_mut(u) else {
            return false;
        };
        let band = steer::egress::scheduler_band(link.strict_priority, usize::from(q.band));
        if !link.has_room(band, frames.len()) {
            link.report.dropped_packets += frames.len() as u64;
            return false;
        }
        for (i, &len) in frames.iter().enumerate() {
            let kind = if kind == SegmentKind::Data && i + 1 == frames.len() {
                SegmentKind::LastData
            } else {
                kind
            };
            let seg = Segment {
                r,
                gen: q.gen,
                kind,
                interactive: usize::from(q.band) == TrafficClass::Interactive.band(),
                enqueued_ns: now,
            };
            if link.sched.enqueue(band, seg, len).is_err() {
                // has_room said yes; a refusal here is a bug, counted
                // rather than hidden.
                link.report.dropped_packets += 1;
            }
        }
        link.report.max_queued_packets = link.report.max_queued_packets.max(link.sched.len());
        self.uplink_kick(now, u);
        true
    }

    /// Starts sending the next packet if the uplink is idle.
    fn uplink_kick(&mut self, now: u64, u: usize) {
        let Some(link) = self.uplinks.get_mut(u) else {
            return;
        };
        if link.on_wire.is_some() {
            return;
        }
        let Some((_, seg, len)) = link.sched.dequeue() else {
            return;
        };
        let wait = now.saturating_sub(seg.enqueued_ns);
        if seg.interactive {
            add_wait(&mut link.report.interactive_wait, wait);
        } else {
            add_wait(&mut link.report.bulk_wait, wait);
        }
        let tx = (f64::from(len) * link.ns_per_byte).ceil().max(1.0) as u64;
        link.report.sent_bytes += u64::from(len);
        link.report.busy_ns += tx;
        link.on_wire = Some(seg);
        self.q.push(now + tx, Ev::UplinkDone(u as u32));
    }

    /// A packet has left the uplink: it goes onto its path.
    fn uplink_done(&mut self, now: u64, u: usize) {
        let seg = self.uplinks.get_mut(u).and_then(|l| l.on_wire.take());
        if let Some(seg) = seg {
            if self.alive(seg.r, seg.gen) {
                match seg.kind {
                    SegmentKind::Syn => self.syn_onto_path(now, seg.r),
                    SegmentKind::LastData => self.request_onto_path(now, seg.r),
                    SegmentKind::Data => {}
                }
            }
        }
        self.uplink_kick(now, u);
    }

    fn req_at_node(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        let Some(node) = self.nodes.get_mut(q.node as usize) else {
            return;
        };
        if node.failed {
            self.fail(r, FailReason::NodeFailed);
            return;
        }
        if node.queue.is_empty() && node.active.len() < node.p.concurrency as usize {
            self.start(now, q.node as usize, r);
        } else {
            node.queue.push_back(r);
        }
    }

    /// A request takes a batch slot: prefill, then decode.
    fn start(&mut self, now: u64, n: usize, r: u32) {
        let q = self.req(r);
        let Some(node) = self.nodes.get_mut(n) else {
            return;
        };
        node.active.push(r);
        node.kv_held += u64::from(q.features.prompt_tokens) + u64::from(q.features.output_tokens);
        // Cached prefix tokens are not prefilled again.
        let cached = node
            .cache
            .serve(q.features.prompt_tokens, q.parts, q.history_after);
        let prefilled = q.features.prompt_tokens.saturating_sub(cached);
        let prefill = ns_of_s(node.p.prefill_s(f64::from(prefilled)));
        let decode = ns_of_s(f64::from(q.features.output_tokens) / node.p.decode_tps);
        let t_ft = now + prefill;
        if let Some(m) = self.req_mut(r) {
            m.t_start = now;
            m.t_ft = t_ft;
        }
        self.q.push(t_ft, Ev::FirstToken(r, q.gen));
        self.q.push(t_ft + decode, Ev::SlotFree(r, q.gen));
    }

    fn first_token(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        let Some(path) = self.paths.get_mut(q.path as usize) else {
            return;
        };
        match path.segment_penalty() {
            Some(p) => {
                let t = path.deliver(Dir::Rev, now) + p;
                if let Some(m) = self.req_mut(r) {
                    m.t_first = t;
                }
            }
            // The node keeps the slot until it has sent everything.
            None => self.record_failure(r, FailReason::Unreachable),
        }
    }

    fn slot_free(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        let n = q.node as usize;
        let next = match self.nodes.get_mut(n) {
            Some(node) => {
                if let Some(i) = node.active.iter().position(|&x| x == r) {
                    node.active.swap_remove(i);
                }
                node.kv_held = node.kv_held.saturating_sub(
                    u64::from(q.features.prompt_tokens) + u64::from(q.features.output_tokens),
                );
                node.hold_total_ns += now.saturating_sub(q.t_start);
                node.holds += 1;
                node.queue.pop_front()
            }
            None => None,
        };
        if let Some(next) = next {
            self.start(now, n, next);
        }
        if q.failed {
            self.release(r);
            return;
        }
        let Some(path) = self.paths.get_mut(q.path as usize) else {
            return;
        };
        // The last packet leaves now; a lost packet earlier in the stream
        // holds back everything after it (head-of-line blocking) until its
        // retransmission, one RTO after it was sent.
        let mut last = path.deliver(Dir::Rev, now).max(q.t_first);
        let packets = q
            .features
            .output_tokens
            .div_ceil(TOKENS_PER_RESPONSE_PACKET);
        let decode = now.saturating_sub(q.t_ft);
        for k in 1..packets {
            match path.segment_penalty() {
                None => {
                    self.fail(r, FailReason::Unreachable);
                    return;
                }
                Some(0) => {}
                Some(p) => {
                    let sent = q.t_ft + decode * u64::from(k) / u64::from(packets.max(1));
                    last = last.max(sent + path.one_way_ns + p);
                }
            }
        }
        self.q.push(last, Ev::Complete(r, q.gen));
    }

    fn complete(&mut self, now: u64, r: u32) {
        let q = self.req(r);
        let completion = now.saturating_sub(q.t0);
        if completion > self.cfg.timeout_ns {
            self.fail(r, FailReason::Timeout);
            return;
        }
        let ttft = q.t_first.saturating_sub(q.t0);
        self.class(q.short)
            .complete(ttft, completion, q.features.output_tokens, now);
        if self.cfg.record_requests {
            self.out.requests.push(RequestRecord {
                arrival_ns: q.t0,
                short: q.short,
                node: Some(q.node),
                done_ns: now,
                failed: None,
            });
        }
        if q.short && self.cfg.record_timeline {
            self.out.short_timeline.push((
                q.t0,
                u32::try_from(ttft / 1000).unwrap_or(u32::MAX),
                false,
                q.site,
            ));
        }
        // The appliance times the answer passively, from the request's
        // last payload packet, and trains the instance's model.
        let measured_ttft_us = q.t_first.saturating_sub(q.t_seen) as f64 / 1000.0;
        let measured_completion_us = now.saturating_sub(q.t_seen) as f64 / 1000.0;
        let measured = steer::Measured {
            ttft_us: measured_ttft_us,
            completion_us: measured_completion_us,
            response_packets: q
                .features
                .output_tokens
                .div_ceil(TOKENS_PER_RESPONSE_PACKET),
        };
        let class = TrafficClass::ALL
            .get(usize::from(q.band))
            .copied()
            .unwrap_or(TrafficClass::Other);
        if let Some(site) = self.sites.get_mut(q.site as usize) {
            site.engine
                .learn(q.inst, class, &q.features, &q.predicted, &measured);
        }
        self.release(r);
    }

    fn report(&mut self, now: u64, n: usize) {
        let Some(node) = self.nodes.get_mut(n) else {
            return;
        };
        if node.failed {
            // A failed node stops reporting: its state goes stale.
            node.reporting = false;
            return;
        }
        let msg = node.report(n);
        // The collector's scrape of `vllm:prefix_cache_hits` and
        // `_queries`, at the same period: their increments correct each
        // appliance's prefix record.
        let (hits, queries) = (node.cache.hit_tokens, node.cache.queried_tokens);
        let (d_hits, d_queries) = (hits - node.scraped.0, queries - node.scraped.1);
        node.scraped = (hits, queries);
        for &s in &node.watchers {
            if let Some(site) = self.sites.get_mut(s as usize) {
                site.state.apply(0, &msg, now);
                site.dirty = true;
                self.out.state_messages += 1;
                if d_queries > 0 && std::env::var_os("NOCORR").is_none() {
                    for (k, &(inst_node, _)) in site.inst.iter().enumerate() {
                        if inst_node as usize == n {
                            site.engine.correct_prefix_cache(
                                k as u8,
                                d_hits as f64,
                                d_queries as f64,
                            );
                        }
                    }
                }
            }
        }
        self.q
            .push(now + self.cfg.report_interval_ns, Ev::Report(n as u32));
    }

    /// The appliance's path probes, idealised: every period it learns each
    /// path's true one-way delay, jitter and loss (1 once failed).
    fn probe(&mut self, now: u64, s: usize) {
        let Some(interval) = self.cfg.probe_interval_ns else {
            return;
        };
        let Some(site) = self.sites.get_mut(s) else {
            return;
        };
        for (k, &(_, p)) in site.inst.iter().enumerate() {
            let Some(path) = self.paths.get(p as usize) else {
                continue;
            };
            let msg: Message = PathState::new(
                PathId(u16::try_from(k + 1).unwrap_or(u16::MAX)),
                vec![
                    Metric::new(
                        MetricType::PathLatency,
                        Unit::Microseconds,
                        path.p.one_way_ms * 1000.0,
                    ),
                    Metric::new(
                        MetricType::PathJitter,
                        Unit::Microseconds,
                        path.p.jitter_ms * 1000.0,
                    ),
                    Metric::new(MetricType::PathLoss, Unit::Ratio, path.loss()),
                ],
            )
            .into();
            site.state.apply(0, &msg, now);
            self.out.state_messages += 1;
        }
        site.dirty = true;
        self.q.push(now + interval, Ev::Probe(s as u32));
    }

    fn fail_nodes(&mut self, k: u32) {
        let Some((_, list)) = self.cfg.node_failures.get(k as usize) else {
            return;
        };
        let mut lost = 0u64;
        for &n in list {
            let Some(node) = self.nodes.get_mut(n) else {
                continue;
            };
            if node.failed {
                continue;
            }
            node.failed = true;
            node.kv_held = 0;
            let victims: Vec<u32> = node.active.drain(..).chain(node.queue.drain(..)).collect();
            if let Some(f) = self.node_failure_of.get_mut(n) {
                *f = Some(k);
            }
            for r in victims {
                lost += 1;
                self.fail(r, FailReason::NodeFailed);
            }
        }
        if let Some(f) = self.out.node_failures.get_mut(k as usize) {
            f.in_service_lost += lost;
        }
    }

    fn fail_paths(&mut self, k: u32) {
        let Some((_, list)) = self.cfg.path_failures.get(k as usize) else {
            return;
        };
        for &p in list {
            if let Some(path) = self.paths.get_mut(p) {
                path.failed = true;
            }
            if let Some(f) = self.path_failure_of.get_mut(p) {
                *f = Some(k);
            }
        }
    }

    /// Restarts failed nodes: empty, serving, and reporting from now on.
    /// Decisions for them count as failed choices no more.
    fn recover_nodes(&mut self, now: u64, k: u32) {
        let Some((_, list)) = self.cfg.node_recoveries.get(k as usize) else {
            return;
        };
        for &n in list {
            let Some(node) = self.nodes.get_mut(n) else {
                continue;
            };
            if !node.failed {
                continue;
            }
            node.failed = false;
            // A restarted server's prefix cache starts empty.
            node.cache.clear();
            if let Some(f) = self.node_failure_of.get_mut(n) {
                *f = None;
            }
            // The restarted node reports as it comes up, unless the failed
            // one's timer has not even ticked since (then it carries on).
            if !node.reporting {
                node.reporting = true;
                self.q.push(now, Ev::Report(n as u32));
            }
        }
    }

    fn recover_paths(&mut self, k: u32) {
        let Some((_, list)) = self.cfg.path_recoveries.get(k as usize) else {
            return;
        };
        for &p in list {
            if let Some(path) = self.paths.get_mut(p) {
                path.failed = false;
            }
            if let Some(f) = self.path_failure_of.get_mut(p) {
                *f = None;
            }
        }
    }

    fn finish(&mut self) {
        if self.out.end_ns == 0 {
            self.out.end_ns = self.q.now_ns();
        }
        if let Some(site) = self.sites.first() {
            self.out.models = site
                .engine
                .models()
                .iter()
                .zip(&site.inst)
                .map(|(m, &(n, _))| ModelReport {
                    node: n as usize,
                    samples: m.samples(),
                    ttft_mae_us: m.ttft_error().mae,
                    ttft_bias_us: m.ttft_error().bias,
                    completion_mae_us: m.completion_error().mae,
                    coefficients: m.ttft_coefficients(),
                })
                .collect();
        }
        self.out.uplinks = self.uplinks.iter().map(|l| l.report).collect();
        self.out.prefix_hit_tokens = self.nodes.iter().map(|n| n.cache.hit_tokens).sum();
        self.out.prefix_queried_tokens = self.nodes.iter().map(|n| n.cache.queried_tokens).sum();
    }
}
