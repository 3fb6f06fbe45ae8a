//! The steering engine: everything token-aware steering decides, as
//! quinn-proto is to quinn. It owns the flow table, the fragment table,
//! the per-instance latency models, the flows steered since each node's
//! last report and the baselines' round-robin turns. It is fed parsed
//! packets (their bytes, for the NAT it applies in place), the control
//! plane's view and the time, and returns a [`Verdict`]: which port and
//! band the packet leaves by, that it is held (a fragment ahead of its
//! first), or why it is refused. The data plane's worker applies verdicts
//! to mbufs; the simulator drives the same engine's flow-level half
//! ([`Engine::decide`], [`Engine::learn`]) without packets.
//!
//! ```text
//! request  ──► flow table hit? ──yes──► that flow's instance and path
//!                   │no
//!                   ▼
//!   features: TLV │ HTTP inference │ unknown ──► decide ──► remember ──► DNAT
//!
//! response ──► SNAT back to the VIP ──► its flow: time the answer, learn
//!
//! fragment ──► first? ──yes──► decided as above ──► kept for the datagram,
//!                 │no                               held ones released
//!                 ▼
//!          datagram decided? ──yes──► the same port, band and rewrite
//!                 │no
//!                 ▼
//!          held (bounded) until the first comes, or dropped on timeout
//! ```
//!
//! One engine per worker lcore, so nothing in it is shared or locked. A
//! worker owns the flows of the clients whose address the NIC's RSS hash
//! delivers to its queue ([`Engine::owner`] of [`Engine::worker_hash`],
//! [`flowtab::rss`]): the client address is in
//! every packet of both directions and in every fragment, so a request,
//! its NATed response and all their fragments meet the same engine.
//! Everything is allocated in [`Engine::new`]; per packet nothing
//! allocates and nothing panics.

use std::net::IpAddr;
use std::sync::Arc;

use classifier::tcp::{TcpFlags, TcpPacket};
use classifier::token_feature::decode as decode_feature_id;
use classifier::{
    FlowKey, FlowPacket, IpProtocol, ParsedPacket, Span, TaskType, TlvLookup, TlvMalformed,
    TokenFeatures, Urgency,
};
use control::{DataplaneView, PrefixCacheTotals};
use flowtab::rss::Toeplitz;
use predictor::InstanceModel;

use crate::decision::{Choice, Decider, NoChoice, Policy, Predicted, Rejections};
use crate::feedback::{Measured, Phase};
use crate::flow_table::{ClientKey, FlowEntry, FlowTable, InsertError};
use crate::fragment::{
    self, Follow, FragmentKey, FragmentLimits, Fragments, Nat, Treatment, Unheld,
};
use crate::infer::{infer_http, InferLimits, Inference};
use crate::prefix::{PrefixLimits, PrefixRecord};
use crate::rewrite::{rewrite_destination_at, rewrite_source_at, Layout};
use crate::service::{ServiceTable, MAX_INSTANCES, MAX_SERVICES};
use crate::splice::{FromClient, FromInstance, Segment, SpliceLimits, Splicer, Target, Transmit};
use crate::stats::{FeatureSource, FlowEvent, FragmentEvent, SpliceEvent, SteerCounters};
use crate::{SinceReport, TrafficClass};

/// Most flows, prefixes and fragments the ageing sweeps visit per
/// [`Engine::expire`] call. The flow sweep visits fewer: as many as keep
/// its pace ([`flowtab::Table::expire_paced`]).
pub const EXPIRE_BUDGET: usize = 64;

/// The egress band of what no flow or class applies to (non-service
/// traffic, responses without a flow, overflow).
pub const OTHER_BAND: u8 = TrafficClass::Other as u8;

/// How an engine behaves; the same for every worker.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How new flows choose an instance and path.
    pub policy: Policy,
    /// Service ports on which a request without a TLV has its features
    /// inferred from its HTTP payload.
    pub infer_http_ports: Vec<u16>,
    /// How much of a payload the inference reads.
    pub infer_limits: InferLimits,
    /// Flows the affinity table holds.
    pub flow_table_size: usize,
    /// A flow idle this long is forgotten (and its answer measured).
    pub flow_idle_ns: u64,
    /// Keys the flow, fragment and prefix tables' hashes, so that senders
    /// cannot aim collisions.
    pub seed: u64,
    /// The RSS key the ports hash with ([`flowtab::rss`]): a flow's owner
    /// is the worker whose queue the NIC delivers its client address to.
    /// Every engine of one appliance uses the same key, so all agree.
    pub rss_key: [u8; flowtab::rss::RSS_KEY_LEN],
    /// The fragment table's bounds (see [`crate::fragment`]).
    pub fragments: FragmentLimits,
    /// The prefix record's bounds (see [`crate::prefix`]).
    pub prefixes: PrefixLimits,
    /// Delayed binding for TLV-less TCP requests on the inference ports
    /// (see [`crate::splice`]); `None` decides them at their SYN.
    pub splice: Option<SpliceLimits>,
}

/// A packet's client-side flow key, its hash, and the service (request) or
/// instance (response) it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Keyed {
    /// The client side of the flow, the same from both directions.
    pub key: ClientKey,
    /// The key's hash: where the flow table keeps it.
    pub hash: u32,
    /// Service index for a request, instance index for a response.
    pub owner: u8,
}

/// A piece of a fragmented datagram that steering may have to handle: to
/// a VIP (from the agents) or from an instance's address.
#[derive(Debug, Clone, Copy)]
pub struct FragmentKeyed {
    /// The hash of the datagram's identity ([`FragmentKey`]; not kept
    /// here, so that what a burst keys stays small): where the fragment
    /// table keeps it.
    pub hash: u32,
    /// The client's address (the source of a request, the destination of
    /// a response): which worker owns the datagram, the same as its flow.
    pub client: [u8; 16],
    /// The first fragment (offset 0), which decides.
    pub first: bool,
    /// The first fragment's flow, when it is one of a service (request) or
    /// of an instance (response); a first fragment without one decides
    /// [`Treatment::Pass`].
    pub flow: Option<Keyed>,
}

/// What steering handles: a whole packet of a flow, or a fragment.
#[derive(Debug, Clone, Copy)]
pub enum Steerable {
    /// An unfragmented packet of a service's flow.
    Flow(Keyed),
    /// A piece of a fragmented datagram.
    Fragment(FragmentKeyed),
}

impl Steerable {
    /// The client's address, which says which worker owns it
    /// ([`Engine::worker_hash`]).
    #[inline]
    pub fn client(&self) -> &[u8; 16] {
        match self {
            Steerable::Flow(k) => &k.key.addr,
            Steerable::Fragment(f) => &f.client,
        }
    }
}

/// Why a packet was refused. The frame may be dropped; state is unchanged
/// except for what the counters say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No live, capable instance can serve the request.
    NoInstance,
    /// The NAT rewrite was refused (see [`crate::rewrite::RewriteError`]).
    RewriteFailed,
    /// A later fragment whose datagram has no entry, and the fragment
    /// table has no room for one.
    FragmentTableFull,
    /// A later fragment that came before its first, when its datagram or
    /// the worker already holds as many as allowed.
    FragmentHoldFull,
    /// A client segment of a connection being spliced that the appliance
    /// did not take (out of order, or before the instance answered): the
    /// client retransmits it.
    SpliceRefused,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not steering's business (no flow, no service): leave by the ingress
    /// port's default route unchanged, in the `other` band.
    Pass,
    /// Steered (and rewritten in place): leave by `port`, or by the
    /// default route when `None` (responses, towards the agents), in
    /// egress band `band` (a [`TrafficClass`] index).
    Send {
        /// Egress port, or `None` for the ingress port's default.
        port: Option<u16>,
        /// Egress band.
        band: u8,
    },
    /// A fragment that came before its datagram's first: the caller keeps
    /// the packet in this slot (one of [`Engine::hold_slots`]) until
    /// [`Engine::next_unheld`] hands it back.
    Hold {
        /// The slot.
        slot: u32,
    },
    /// Refused.
    Drop(Refusal),
    /// Taken by the appliance itself (a SYN answered with a cookie, a
    /// request segment buffered, the instance's SYN-ACK of a spliced
    /// connection): not forwarded. What the appliance sends instead comes
    /// from [`Engine::poll_transmit`].
    Consumed,
}

/// What a request's flow-table lookup found.
#[derive(Clone, Copy)]
enum Lookup {
    /// The flow, of this service: its instance, path and band.
    Hit((u8, u8, u8)),
    /// The client's key, held by a flow of another service.
    Conflict,
    /// A SYN on a closed connection's key: a new flow, in its entry.
    Reopened,
    /// No flow.
    Miss,
}

/// Features assumed for a request nobody described.
const UNKNOWN_FEATURES: TokenFeatures = TokenFeatures {
    prompt_tokens: 0,
    output_tokens: 0,
    task: TaskType::Chat,
    urgency: Urgency::Normal,
    explicit_urgency: false,
    prefix: None,
};

/// A cycle counter and its period, for timing decisions (the data plane
/// passes the TSC); without one, decisions are not timed.
pub type CostClock = (fn() -> u64, f64);

/// One worker's steering state.
pub struct Engine {
    table: Arc<ServiceTable>,
    config: EngineConfig,
    flows: FlowTable,
    fragments: Fragments,
    models: Vec<InstanceModel>,
    since_report: SinceReport,
    /// Where shared prefixes were recently sent.
    prefixes: PrefixRecord,
    /// Each instance's node's prefix-cache totals as last applied to
    /// `prefixes` (see [`Engine::decide`]).
    prefix_reports: [PrefixCacheTotals; MAX_INSTANCES],
    /// Decisions made per service: the baselines' round-robin turn.
    turns: [u32; MAX_SERVICES],
    counters: Arc<SteerCounters>,
    cost_clock: Option<CostClock>,
    splicer: Option<Splicer>,
    /// The NIC's hash of a client address ([`Engine::worker_hash`]).
    rss: Toeplitz,
}

impl Engine {
    /// An engine over `table`, learning from `models` (one per instance, as
    /// [`crate::feedback::instance_models`] builds them) and counting into
    /// `counters`, which only this engine writes.
    pub fn new(
        table: Arc<ServiceTable>,
        config: EngineConfig,
        models: Vec<InstanceModel>,
        counters: Arc<SteerCounters>,
    ) -> Engine {
        let splicer = config
            .splice
            .map(|limits| Splicer::new(limits, config.seed, Arc::clone(&counters)));
        Engine {
            splicer,
            rss: Toeplitz::new(&config.rss_key),
            flows: FlowTable::new(config.flow_table_size, config.seed),
            fragments: Fragments::new(config.fragments, config.seed),
            prefixes: PrefixRecord::new(config.prefixes, table.instances().len(), config.seed),
            prefix_reports: [PrefixCacheTotals::default(); MAX_INSTANCES],
            table,
            config,
            models,
            since_report: SinceReport::default(),
            turns: [0; MAX_SERVICES],
            counters,
            cost_clock: None,
        }
    }

    /// Times every decision with `clock` into the counters' `decision_ns`.
    pub fn with_cost_clock(mut self, clock: CostClock) -> Engine {
        self.cost_clock = Some(clock);
        self
    }

    /// The counters this engine writes.
    pub fn counters(&self) -> &SteerCounters {
        &self.counters
    }

    /// Each instance's latency model, as learnt so far.
    pub fn models(&self) -> &[InstanceModel] {
        &self.models
    }

    /// Where shared prefixes were recently sent.
    pub fn prefixes(&self) -> &PrefixRecord {
        &self.prefixes
    }

    /// An instance's scraped prefix-cache counters moved by `hit_tokens`
    /// over `queried_tokens` (`vllm:prefix_cache_hits`, `_queries`): see
    /// [`PrefixRecord::correct`].
    pub fn correct_prefix_cache(&mut self, instance: u8, hit_tokens: f64, queried_tokens: f64) {
        self.prefixes.correct(instance, hit_tokens, queried_tokens);
    }

    /// Flows held.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Which of `workers` owns what has this worker hash
    /// ([`Engine::worker_hash`]): the worker whose queue the redirection
    /// table names for it ([`flowtab::rss::owner`]).
    #[inline]
    pub fn owner(hash: u32, workers: usize) -> usize {
        flowtab::rss::owner(hash, workers)
    }

    /// The hash that says which worker owns `s`: the Toeplitz hash of its
    /// client address under the RSS key, as a NIC configured as
    /// `docs/architecture.md` says computes it for both directions. Only
    /// needed with more than one worker.
    #[inline]
    pub fn worker_hash(&self, s: &Steerable) -> u32 {
        self.rss.hash_address(s.client())
    }

    /// What steering handles of a parsed packet: for a request
    /// (`from_agents`) a packet to a service, for a response one from an
    /// instance, and the fragments of datagrams to a VIP or from an
    /// instance's address; `None` for the rest (anything but TCP and UDP
    /// included). Every one of them is owned by the worker its client
    /// address hashes to (the source of a request, the destination of a
    /// response), since that address is in every fragment.
    #[inline]
    pub fn key_of(&self, p: &ParsedPacket, from_agents: bool) -> Option<Steerable> {
        let flow = p.flow?;
        if flow.protocol != IpProtocol::TCP && flow.protocol != IpProtocol::UDP {
            return None;
        }
        let first = p.fragment.map_or(true, |f| f.is_first());
        let keyed = if first {
            self.flow_key(&flow, from_agents)
        } else {
            None
        };
        if !p.is_fragment() {
            return keyed.map(Steerable::Flow);
        }
        let ours = keyed.is_some()
            || if from_agents {
                self.table.is_vip(flow.dst_ip())
            } else {
                self.table.is_instance_address(flow.src_ip())
            };
        let key = FragmentKey::of(p).filter(|_| ours)?;
        Some(Steerable::Fragment(FragmentKeyed {
            hash: self.fragments.hash(&key),
            client: if from_agents {
                flow.src_addr
            } else {
                flow.dst_addr
            },
            first,
            flow: keyed,
        }))
    }

    /// The client-side key of a packet with ports, if it is to a service
    /// (`from_agents`) or from an instance. Always inlined: returned
    /// through memory, its key's bytes (stored in pieces) stalled the
    /// 16-byte load that read them back, on every packet.
    #[inline(always)]
    fn flow_key(&self, flow: &FlowKey, from_agents: bool) -> Option<Keyed> {
        let (key, owner) = if from_agents {
            let service =
                self.table
                    .service_for_key(flow.version, &flow.dst_addr, flow.dst_port)?;
            let key = ClientKey {
                addr: flow.src_addr,
                port: flow.src_port,
                service_port: flow.dst_port,
                protocol: flow.protocol.0,
            };
            (key, service)
        } else {
            let instance =
                self.table
                    .instance_for_key(flow.version, &flow.src_addr, flow.src_port)?;
            let key = ClientKey {
                addr: flow.dst_addr,
                port: flow.dst_port,
                service_port: flow.src_port,
                protocol: flow.protocol.0,
            };
            (key, instance)
        };
        Some(Keyed {
            key,
            hash: self.flows.hash(&key),
            owner,
        })
    }

    /// Stage one of a burst's table lookups: the index slot handling `s`
    /// reads first. Call it for every packet of a burst, then
    /// [`Engine::prefetch_state`] for each packet some packets before it
    /// is handled, so that the burst's cache misses overlap
    /// ([`flowtab::Table::prefetch_slot`]).
    /// `prefetch` is the caller's prefetch instruction.
    #[inline(always)]
    pub fn prefetch_slot(&self, s: &Steerable, prefetch: impl FnOnce(*const u8)) {
        match s {
            Steerable::Flow(k) => self.flows.prefetch_slot(k.hash, prefetch),
            Steerable::Fragment(f) => self.fragments.prefetch_slot(f.hash, prefetch),
        }
    }

    /// Stage two: the lines of the flow's (or datagram's) entry, once its
    /// slot is in the cache ([`flowtab::Table::prefetch_entry`]): for a
    /// request one line, which holds all a known flow's request touches
    /// ([`crate::flow_table::FlowEntry`]'s order); for a response two,
    /// the second holding the answer's timing.
    #[inline(always)]
    pub fn prefetch_state(
        &self,
        s: &Steerable,
        from_agents: bool,
        prefetch: impl FnMut(*const u8),
    ) {
        match s {
            Steerable::Flow(k) => {
                let lines = if from_agents { 1 } else { 2 };
                self.flows.prefetch_entry(k.hash, lines, prefetch)
            }
            Steerable::Fragment(f) => self.fragments.prefetch_entry(f.hash, prefetch),
        }
    }

    /// Handles what [`Engine::key_of`] keyed: a request or response of a
    /// flow, or a fragment. The frame is rewritten in place.
    #[inline]
    pub fn handle(
        &mut self,
        frame: &mut [u8],
        p: &ParsedPacket,
        s: Steerable,
        from_agents: bool,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Verdict {
        if let Steerable::Flow(k) = s {
            if self.splicer.is_some() && is_infer_port(&self.config, k.key.service_port) {
                let spliced = if from_agents {
                    self.splice_request(frame, p, k, view, now_ns)
                } else {
                    self.splice_response(frame, p, k, now_ns)
                };
                if let Some(v) = spliced {
                    return v;
                }
            }
        }
        match s {
            Steerable::Flow(k) if from_agents => self.request(frame, p, k, view, now_ns),
            Steerable::Flow(k) => self.response(frame, p, k, now_ns),
            Steerable::Fragment(f) => self.fragment(frame, p, &f, from_agents, view, now_ns),
        }
    }

    /// [`Engine::key_of`] for a packet [`classifier::flow_walk::walk`]
    /// located (always an unfragmented TCP or UDP packet, so always a
    /// [`Steerable::Flow`] when it is steering's): to a service from the
    /// agents, or from an instance towards them.
    #[inline]
    pub fn key_of_walked(&self, w: &FlowPacket, from_agents: bool) -> Option<Keyed> {
        self.flow_key(&w.key, from_agents)
    }

    /// [`Engine::handle`] for a packet [`classifier::flow_walk::walk`]
    /// located and [`Engine::key_of_walked`] keyed, without the full
    /// parse: the same code on the walk's [`FlowPacket`], so the same
    /// verdict, rewrite and state changes. `None`, with nothing changed,
    /// for what delayed binding would take (a connection being spliced, a
    /// TLV-less SYN or a segment of no flow on an inference port, a
    /// spliced connection's port reused): the caller then parses the
    /// packet and calls `handle`.
    #[inline]
    pub fn handle_walked(
        &mut self,
        frame: &mut [u8],
        w: &FlowPacket,
        k: &Keyed,
        from_agents: bool,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Option<Verdict> {
        // `handle`'s splice step, without reading the segment: whatever it
        // would take is declined here, whatever it would pass on to the
        // flow path is handled below as the flow path does.
        let spliceable = self.splicer.is_some() && is_infer_port(&self.config, k.key.service_port);
        let mut decline_miss = false;
        if spliceable {
            if self
                .splicer
                .as_ref()
                .is_some_and(|s| s.lookup(&k.key).is_some())
            {
                return None;
            }
            if from_agents {
                // A SYN as the splicer reads one: not a SYN-ACK.
                let syn =
                    w.tcp_flags.contains(TcpFlags::SYN) && !w.tcp_flags.contains(TcpFlags::ACK);
                if syn {
                    match self.flows.get_mut_hashed(&k.key, k.hash) {
                        // A spliced connection's port reused.
                        Some(e) if e.spliced => return None,
                        Some(_) => {}
                        // A new connection without usable token
                        // features (no TLV, or a malformed one): spliced.
                        None if tlv_features(w.token_feature(frame)).is_err() => return None,
                        None => {}
                    }
                } else {
                    // A segment of no flow: the splicer's.
                    decline_miss = true;
                }
            }
        }
        let at = Layout::of_walked(w);
        if from_agents {
            let t = self.request_treatment_of(frame, w, k, view, now_ns, decline_miss)?;
            Some(self.apply_at(frame, &at, t))
        } else {
            let t = self.response_treatment(w.tcp_flags, w.payload.len, k, now_ns);
            Some(self.translate_at(frame, &at, t))
        }
    }

    /// A request segment on an inference port, when splicing is on: `None`
    /// for what the flow path handles as before (a TLV's SYN, a flow
    /// decided at its SYN, anything but untagged IPv4 TCP).
    fn splice_request(
        &mut self,
        frame: &mut [u8],
        p: &ParsedPacket,
        keyed: Keyed,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Option<Verdict> {
        let seg = Segment::read(frame, p)?;
        let splicer = self.splicer.as_mut()?;
        let mut spliced = splicer.lookup(&keyed.key);
        if let (Some(slot), true) = (spliced, seg.is_syn()) {
            // A new connection on the client port (the old one closed, or
            // the client gave it up): spliced afresh.
            splicer.forget(slot);
            spliced = None;
        }
        let out = match spliced {
            Some(slot) => splicer.from_client(slot, frame, &seg, now_ns),
            None => {
                if let Some(e) = self.flows.get_mut_hashed(&keyed.key, keyed.hash) {
                    if !(seg.is_syn() && e.spliced) {
                        return None;
                    }
                    // A spliced connection's port reused: spliced afresh.
                    self.flows.remove(&keyed.key);
                }
                if seg.is_syn() {
                    // A malformed TLV is no TLV (docs/wire-format.md §5.5),
                    // counted here, where its SYN is taken.
                    match tlv_features(classifier::find_token_feature(frame, p)) {
                        Ok(_) => return None,
                        Err(Some(why)) => self.counters.tlv_malformed(why),
                        Err(None) => {}
                    }
                    let splicer = self.splicer.as_mut()?;
                    splicer.answer_syn(frame, &seg, now_ns);
                    return Some(Verdict::Consumed);
                }
                let splicer = self.splicer.as_mut()?;
                if seg.is_rst() {
                    // Nothing to reset.
                    return Some(Verdict::Consumed);
                }
                splicer.accept(frame, &seg, keyed.key, keyed.owner, now_ns)
            }
        };
        Some(match out {
            FromClient::Consumed => Verdict::Consumed,
            FromClient::Refused => Verdict::Drop(Refusal::SpliceRefused),
            FromClient::Decide { slot, features } => {
                let streaming = self.splicer.as_ref().is_some_and(|s| s.streaming(slot));
                self.bind(slot, keyed, features, streaming, view, now_ns);
                Verdict::Consumed
            }
            FromClient::Forward { completed } => {
                let t = self.request_treatment(frame, p, keyed, view, now_ns);
                let v = self.apply(frame, p, t);
                if let Some(features) = completed {
                    let streaming = self.splicer.as_ref().is_some_and(|s| {
                        s.lookup(&keyed.key).is_some_and(|slot| s.streaming(slot))
                    });
                    self.next_request(keyed, features, streaming, view);
                }
                v
            }
        })
    }

    /// A spliced connection's request is read: decided like a new flow on
    /// its features, remembered, and the instance's connection opened.
    fn bind(
        &mut self,
        slot: u32,
        keyed: Keyed,
        features: Option<TokenFeatures>,
        streaming: bool,
        view: &DataplaneView,
        now_ns: u64,
    ) {
        let short_tokens = view.thresholds().short_task_tokens;
        let service = keyed.owner;
        self.counters.feature(if features.is_some() {
            FeatureSource::InferredHttp
        } else {
            FeatureSource::InferFailed
        });
        let (features, class) = match features {
            Some(f) => (f, TrafficClass::of(&f, short_tokens)),
            None => (UNKNOWN_FEATURES, TrafficClass::Other),
        };
        let target = self
            .decide(service, &features, class, view, now_ns)
            .ok()
            .and_then(|choice| {
                let (mac, ip, port) = self.target(choice.instance, choice.path)?;
                let IpAddr::V4(ip) = ip else { return None };
                let mut entry = FlowEntry::new(
                    service,
                    choice.instance,
                    choice.path,
                    class,
                    features,
                    choice.predicted,
                    now_ns,
                );
                entry.spliced = true;
                entry.streaming = streaming;
                entry.timing.on_request_payload(now_ns);
                match self.flows.insert(keyed.key, entry, now_ns) {
                    Ok(_) => {
                        self.counters.flow(FlowEvent::New);
                        self.counters.chosen(choice.instance, class);
                    }
                    Err(_) => {
                        // Spliced without an entry the NAT could follow:
                        // refused like a full table.
                        self.counters.flow(FlowEvent::TableFull);
                        return None;
                    }
                }
                Some(Target {
                    mac,
                    ip: ip.octets(),
                    port,
                    band: class as u8,
                })
            });
        let Some(splicer) = self.splicer.as_mut() else {
            return;
        };
        match target {
            Some(t) => splicer.connect(slot, t, now_ns),
            None => {
                self.counters.splice(SpliceEvent::NoInstance);
                splicer.abort(slot);
            }
        }
    }

    /// A later request on a spliced keep-alive connection was read: its
    /// features and class are the flow's from now on (its answer is timed
    /// and learnt with them; the previous answer was closed when this
    /// request's first byte came). The instance stays.
    fn next_request(
        &mut self,
        keyed: Keyed,
        features: Option<TokenFeatures>,
        streaming: bool,
        view: &DataplaneView,
    ) {
        let short_tokens = view.thresholds().short_task_tokens;
        self.counters.feature(if features.is_some() {
            FeatureSource::InferredHttp
        } else {
            FeatureSource::InferFailed
        });
        let (features, class) = match features {
            Some(f) => (f, TrafficClass::of(&f, short_tokens)),
            None => (UNKNOWN_FEATURES, TrafficClass::Other),
        };
        if let Some(e) = self.flows.get_mut_hashed(&keyed.key, keyed.hash) {
            e.features = features;
            e.class = class;
            e.streaming = streaming;
            let instance = e.instance;
            self.counters.chosen(instance, class);
        }
    }

    /// An instance's segment of a spliced connection: `None` when the
    /// connection is not spliced.
    fn splice_response(
        &mut self,
        frame: &mut [u8],
        p: &ParsedPacket,
        keyed: Keyed,
        now_ns: u64,
    ) -> Option<Verdict> {
        let splicer = self.splicer.as_mut()?;
        let slot = splicer.lookup(&keyed.key)?;
        let seg = Segment::read(frame, p)?;
        match splicer.from_instance(slot, frame, &seg, now_ns) {
            FromInstance::Consumed => Some(Verdict::Consumed),
            FromInstance::Forward => Some(self.response(frame, p, keyed, now_ns)),
        }
    }

    /// The next segment the appliance itself must send (see
    /// [`crate::splice`]), written as an Ethernet frame into `buf`; call
    /// until `None` after every burst and [`Engine::expire`].
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        self.splicer.as_mut()?.poll_transmit(buf)
    }

    /// Whether [`Engine::poll_transmit`] has something to write.
    pub fn transmit_pending(&self) -> bool {
        self.splicer.as_ref().is_some_and(|s| s.queued() > 0)
    }

    /// Connections being spliced.
    pub fn spliced_connections(&self) -> usize {
        self.splicer.as_ref().map_or(0, Splicer::connections)
    }

    /// A request from the agents: its flow's choice, or a new decision;
    /// the frame is rewritten towards the chosen instance.
    #[inline]
    pub fn request(
        &mut self,
        frame: &mut [u8],
        p: &ParsedPacket,
        keyed: Keyed,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Verdict {
        let t = self.request_treatment(frame, p, keyed, view, now_ns);
        self.apply(frame, p, t)
    }

    /// Applies a decision to a packet: the rewrite, and where it goes. For
    /// fragments handed back by [`Engine::next_unheld`] too.
    #[inline(always)]
    pub fn apply(&self, frame: &mut [u8], p: &ParsedPacket, t: Treatment) -> Verdict {
        self.apply_at(frame, &Layout::of_parsed(p), t)
    }

    /// [`Engine::apply`] for headers located by a [`Layout`].
    #[inline(always)]
    fn apply_at(&self, frame: &mut [u8], at: &Layout, t: Treatment) -> Verdict {
        match t {
            Treatment::Pass => Verdict::Pass,
            Treatment::Drop(r) => Verdict::Drop(r),
            Treatment::Send { port, band, nat } => {
                let rewritten = match nat {
                    Nat::Destination { mac, ip } => rewrite_destination_at(frame, at, mac, ip),
                    Nat::Source { ip } => rewrite_source_at(frame, at, None, ip),
                };
                match rewritten {
                    Ok(()) => Verdict::Send { port, band },
                    Err(_) => Verdict::Drop(Refusal::RewriteFailed),
                }
            }
        }
    }

    /// What a request's flow (or a new decision) does with it. Inlined into
    /// both callers, so the treatment lives in registers rather than being
    /// returned through memory on every packet.
    #[inline(always)]
    fn request_treatment(
        &mut self,
        frame: &[u8],
        p: &ParsedPacket,
        keyed: Keyed,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Treatment {
        self.request_treatment_of(frame, p, &keyed, view, now_ns, false)
            .unwrap_or(Treatment::Drop(Refusal::NoInstance))
    }

    /// [`Engine::request_treatment`] for a packet located by a full parse
    /// or by the flow walk. With `decline_miss`, a packet without its flow
    /// is not decided but declined (`None`), before anything changed: the
    /// fast path's hand-back to the full path (where the splicer takes it).
    /// Without it the answer is always `Some`.
    #[inline(always)]
    fn request_treatment_of<P: Located>(
        &mut self,
        frame: &[u8],
        p: &P,
        keyed: &Keyed,
        view: &DataplaneView,
        now_ns: u64,
        decline_miss: bool,
    ) -> Option<Treatment> {
        // Read through the reference: a copy on the stack, stored in
        // pieces and loaded whole, made every packet wait on its stores.
        let Keyed {
            ref key,
            hash,
            owner: service,
        } = *keyed;
        let payload_len = p.payload_span().len;
        let short_tokens = view.thresholds().short_task_tokens;
        let flags = p.flags(frame);
        let ends = flags.contains(TcpFlags::FIN) || flags.contains(TcpFlags::RST);
        let syn = flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK);
        let mut finished = None;
        let hit = match self.flows.touch_hashed(key, hash, now_ns) {
            None if decline_miss => return None,
            // A client port reused after its previous connection closed:
            // a new flow, decided on today's state, in the old one's entry.
            Some(entry) if syn && entry.closed => Lookup::Reopened,
            Some(entry) if entry.service == service => {
                entry.closed |= ends;
                if entry.class == TrafficClass::Other && payload_len > 0 && !entry.spliced {
                    // A TLV-less TCP flow was decided at its SYN; its
                    // first payload tells what it is, for the egress band
                    // and the latency model (the instance is already set:
                    // the connection is established with it).
                    if let Some(f) = infer(&self.config, &self.counters, p, frame, key.service_port)
                    {
                        entry.features = f;
                        entry.class = TrafficClass::of(&f, short_tokens);
                    }
                }
                if payload_len > 0 {
                    if let Some(measured) = entry.timing.on_request_payload(now_ns) {
                        finished = Some((*entry, measured));
                    }
                }
                Lookup::Hit((entry.instance, entry.path, entry.class as u8))
            }
            Some(_) => Lookup::Conflict,
            None => Lookup::Miss,
        };
        if let Some((e, measured)) = finished {
            self.learn_flow(&e, &measured);
        }
        let (instance, path, band) = match hit {
            Lookup::Hit(choice) => choice,
            Lookup::Conflict => {
                self.counters.flow(FlowEvent::KeyConflict);
                match self.overflow_choice(service) {
                    Some((i, p)) => (i, p, OTHER_BAND),
                    None => return Some(Treatment::Drop(Refusal::NoInstance)),
                }
            }
            Lookup::Miss | Lookup::Reopened => {
                let reopened = matches!(hit, Lookup::Reopened);
                match self.new_flow(p, frame, *keyed, reopened, view, now_ns) {
                    Some(choice) => choice,
                    None => {
                        if reopened {
                            // The closed connection's entry is not the
                            // new one's: no instance took it.
                            self.flows.remove(key);
                        }
                        return Some(Treatment::Drop(Refusal::NoInstance));
                    }
                }
            }
        };
        let Some((mac, ip, port)) = self.target(instance, path) else {
            return Some(Treatment::Drop(Refusal::NoInstance));
        };
        Some(Treatment::Send {
            port: Some(port),
            band,
            nat: Nat::Destination { mac, ip },
        })
    }

    /// A piece of a fragmented datagram. The first decides as an
    /// unfragmented packet of its flow would be decided, and the decision
    /// (after its own rewrite: a rewrite the first fragment refuses is a
    /// drop for the whole datagram) is kept for the datagram's other
    /// fragments, which are sent, passed or dropped the same way, or held
    /// until the first comes.
    fn fragment(
        &mut self,
        frame: &mut [u8],
        p: &ParsedPacket,
        f: &FragmentKeyed,
        from_agents: bool,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Verdict {
        let (Some(info), Some(key)) = (p.fragment, FragmentKey::of(p)) else {
            return Verdict::Pass;
        };
        let data_len = fragment::data_len(p);
        if !f.first {
            return match self.fragments.follow(&key, f.hash, info, data_len, now_ns) {
                Follow::Decided(t) => {
                    self.counters.fragment(FragmentEvent::Followed);
                    self.apply(frame, p, t)
                }
                Follow::Held(slot) => {
                    self.counters.fragment(FragmentEvent::Held);
                    Verdict::Hold { slot }
                }
                Follow::Refused(r) => {
                    self.counters.fragment(match r {
                        Refusal::FragmentTableFull => FragmentEvent::TableFull,
                        _ => FragmentEvent::HoldFull,
                    });
                    Verdict::Drop(r)
                }
            };
        }
        let (t, verdict) = match f.flow {
            Some(k) if from_agents => {
                let t = self.request_treatment(frame, p, k, view, now_ns);
                (t, self.apply(frame, p, t))
            }
            Some(k) => {
                let t = self.response_treatment(tcp_flags(p, frame), p.payload.len, &k, now_ns);
                (t, self.translate(frame, p, t))
            }
            None => (Treatment::Pass, Verdict::Pass),
        };
        let kept = match verdict {
            Verdict::Drop(r) => Treatment::Drop(r),
            _ => t,
        };
        if matches!(verdict, Verdict::Send { .. }) {
            self.counters.fragment(FragmentEvent::Steered);
        }
        if let Some(released) = self
            .fragments
            .decide(&key, f.hash, info, data_len, kept, now_ns)
        {
            self.counters
                .fragments_n(FragmentEvent::Released, u64::from(released));
        }
        verdict
    }

    /// Slots for held fragments: the caller keeps a packet per slot.
    pub fn hold_slots(&self) -> usize {
        self.fragments.slots()
    }

    /// The next held fragment handed back, released with its first
    /// fragment's decision (apply it with [`Engine::apply`]) or timed out
    /// (drop it). Call until `None` after every [`Engine::handle`] and
    /// [`Engine::expire`].
    pub fn next_unheld(&mut self) -> Option<Unheld> {
        self.fragments.next_unheld()
    }

    /// A new flow's features, decision and table entry; `None` when no
    /// instance can take it. `reopened`: the key's entry holds a closed
    /// connection, which the new flow's entry replaces in place.
    fn new_flow<P: Located>(
        &mut self,
        p: &P,
        frame: &[u8],
        keyed: Keyed,
        reopened: bool,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Option<(u8, u8, u8)> {
        let Keyed {
            key,
            hash,
            owner: service,
        } = keyed;
        let short_tokens = view.thresholds().short_task_tokens;
        let (features, class) =
            match features(&self.config, &self.counters, p, frame, key.service_port) {
                Some(f) => (f, TrafficClass::of(&f, short_tokens)),
                None => (UNKNOWN_FEATURES, TrafficClass::Other),
            };
        let choice = self.decide(service, &features, class, view, now_ns).ok()?;
        let mut entry = FlowEntry::new(
            service,
            choice.instance,
            choice.path,
            class,
            features,
            choice.predicted,
            now_ns,
        );
        if p.payload_span().len > 0 {
            entry.timing.on_request_payload(now_ns);
        }
        let stored = if reopened {
            self.flows
                .touch_hashed(&key, hash, now_ns)
                .map(|old| *old = entry)
                .ok_or(InsertError::Full)
        } else {
            self.flows
                .insert_hashed(key, hash, entry, now_ns)
                .map(|_| ())
        };
        match stored {
            Ok(()) => {
                self.counters.flow(FlowEvent::New);
                self.counters.chosen(choice.instance, class);
                Some((choice.instance, choice.path, class as u8))
            }
            Err(InsertError::Full | InsertError::Exists) => {
                // Stateless from here on: every packet of the flow takes
                // the same overflow instance, so the connection still
                // works; it is only neither steered nor measured.
                self.counters.flow(FlowEvent::TableFull);
                let (i, path) = self.overflow_choice(service)?;
                self.counters.chosen(i, TrafficClass::Other);
                Some((i, path, OTHER_BAND))
            }
        }
    }

    /// Decides an instance and path for a new flow of `service` with these
    /// features, under the configured policy, counting the outcome. The
    /// flow-level entry point: the packet path calls it for a new flow, the
    /// simulator for every request.
    pub fn decide(
        &mut self,
        service: u8,
        features: &TokenFeatures,
        class: TrafficClass,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Result<Choice, NoChoice> {
        let started = self.cost_clock.map(|(clock, _)| clock());
        let mut rejections = Rejections::default();
        // A node's new report may carry its prefix cache's counters
        // (NODE_STATE's PREFIX_CACHE, summed per node by the control
        // plane): what they moved by since this engine last looked
        // corrects its record. Every worker's engine reads the same
        // totals from its snapshot, so each corrects its own record by
        // the node's hit ratio, and a snapshot it never saw is still in
        // the next difference.
        let (prefixes, applied, counters) =
            (&mut self.prefixes, &mut self.prefix_reports, &self.counters);
        self.since_report
            .refresh_with(&self.table, view, service, |instance, report| {
                let Some(last) = applied.get_mut(usize::from(instance)) else {
                    return;
                };
                if let Some(d) = report.prefix_cache.since(last) {
                    prefixes.correct(instance, d.hit_tokens, d.queried_tokens);
                    counters.prefix_cache_report(usize::from(instance), prefixes.scale(instance));
                }
                *last = report.prefix_cache;
            });
        let turn = self.turns.get_mut(usize::from(service));
        let decided = Decider {
            table: &self.table,
            view,
            models: &self.models,
            now_ns,
            policy: self.config.policy,
            turn: turn.as_deref().copied().unwrap_or(0),
            unreported: self.since_report.counts(),
            prefixes: Some(&self.prefixes),
        }
        .decide(service, features, class, &mut rejections);
        if let Some(t) = turn {
            *t = t.wrapping_add(1);
        }
        if let Ok(c) = &decided {
            self.since_report.steered(c.instance);
            if let Some(p) = &features.prefix {
                self.prefixes
                    .served(c.instance, p, features.prompt_tokens, now_ns);
            }
        }
        if let (Some(start), Some((clock, ns_per_cycle))) = (started, self.cost_clock) {
            let ns = clock().wrapping_sub(start) as f64 * ns_per_cycle;
            self.counters
                .decision_ns
                .record(ns.min(f64::from(u32::MAX)) as u32);
        }
        self.counters.rejections(&rejections);
        match &decided {
            Ok(c) => self.counters.reason(c.reason),
            Err(no) => self.counters.no_choice(*no),
        }
        decided
    }

    /// The service's overflow instance and its first path.
    fn overflow_choice(&self, service: u8) -> Option<(u8, u8)> {
        let s = self.table.services().get(usize::from(service))?;
        let inst = self.table.instances().get(usize::from(s.overflow))?;
        Some((s.overflow, *inst.path_indices().first()?))
    }

    /// MAC, address and egress port for an instance over a path.
    fn target(&self, instance: u8, path: u8) -> Option<([u8; 6], IpAddr, u16)> {
        let inst = self.table.instances().get(usize::from(instance))?;
        let path = self.table.paths().get(usize::from(path))?;
        Some((inst.next_hop_mac(path), inst.spec.ip, path.spec.egress_port))
    }

    /// A packet from an instance: translated back to its service's VIP,
    /// and its flow's answer timed.
    #[inline]
    pub fn response(
        &mut self,
        frame: &mut [u8],
        p: &ParsedPacket,
        keyed: Keyed,
        now_ns: u64,
    ) -> Verdict {
        let t = self.response_treatment(tcp_flags(p, frame), p.payload.len, &keyed, now_ns);
        self.translate(frame, p, t)
    }

    /// [`Engine::apply`] for a response, counting it translated.
    #[inline(always)]
    fn translate(&self, frame: &mut [u8], p: &ParsedPacket, t: Treatment) -> Verdict {
        self.translate_at(frame, &Layout::of_parsed(p), t)
    }

    /// [`Engine::translate`] for headers located by a [`Layout`].
    #[inline(always)]
    fn translate_at(&self, frame: &mut [u8], at: &Layout, t: Treatment) -> Verdict {
        let v = self.apply_at(frame, at, t);
        if matches!(v, Verdict::Send { .. }) {
            self.counters.flow(FlowEvent::ResponseTranslated);
        }
        v
    }

    /// What a response's flow does with it: back to the VIP, in the flow's
    /// band; its answer timed. Inlined like [`Engine::request_treatment`].
    #[inline(always)]
    fn response_treatment(
        &mut self,
        flags: TcpFlags,
        payload_len: u16,
        keyed: &Keyed,
        now_ns: u64,
    ) -> Treatment {
        let Keyed {
            ref key,
            hash,
            owner: instance,
        } = *keyed;
        let table = &self.table;
        let Some(vip) = table
            .instances()
            .get(usize::from(instance))
            .and_then(|i| table.services().get(usize::from(i.service)))
            .map(|s| s.spec.vip)
        else {
            return Treatment::Pass;
        };
        let ends = flags.contains(TcpFlags::FIN) || flags.contains(TcpFlags::RST);
        let mut finished = None;
        let band = match self.flows.touch_hashed(key, hash, now_ns) {
            Some(entry) => {
                if payload_len > 0 {
                    entry.timing.on_response_payload(now_ns);
                }
                entry.closed |= ends;
                if ends {
                    if let Some(measured) = entry.timing.on_end() {
                        finished = Some((*entry, measured));
                    }
                }
                entry.class as u8
            }
            None => {
                self.counters.flow(FlowEvent::ResponseWithoutFlow);
                OTHER_BAND
            }
        };
        if let Some((e, measured)) = finished {
            self.learn_flow(&e, &measured);
        }
        Treatment::Send {
            port: None,
            band,
            nat: Nat::Source { ip: vip },
        }
    }

    fn learn_flow(&mut self, e: &FlowEntry, measured: &Measured) {
        let mut m = *measured;
        if !e.streaming {
            // A whole (non-streamed) answer's first byte is its last: its
            // TTFT is its completion less the decode time predicted at
            // the decision, not the first byte's time.
            let decode = (e.predicted.completion_us - e.predicted.ttft_us).max(0.0);
            m.ttft_us = (m.completion_us - decode).clamp(0.0, m.completion_us.max(0.0));
        }
        self.learn(e.instance, e.class, &e.features, &e.predicted, &m);
    }

    /// Feeds one measured request to its instance's model and the class
    /// statistics: the flow-level entry point of the feedback loop.
    pub fn learn(
        &mut self,
        instance: u8,
        class: TrafficClass,
        features: &TokenFeatures,
        predicted: &Predicted,
        measured: &Measured,
    ) {
        self.counters.flow(FlowEvent::Measured);
        let obs = crate::feedback::observation(features, predicted, measured);
        // A request naming a shared prefix teaches the model nothing: how
        // much of it the node found cached (the prefix, and the session's
        // earlier turns, which the appliance cannot see) is only the
        // record's estimate, and prefill rates learnt from estimates were
        // several times too fast on the node serving the agents, which
        // then drew every bulk request.
        if features.prefix.is_none() {
            if let Some(model) = self.models.get_mut(usize::from(instance)) {
                model.observe(&obs);
                self.counters.publish_model(usize::from(instance), model);
            }
        }
        self.counters
            .measured(usize::from(instance), class, predicted, measured);
    }

    /// Ages out idle flows, fragmented datagrams and stale prefixes, at most
    /// [`EXPIRE_BUDGET`] of each per call, learns from the answers the
    /// flows were still streaming, and hands back the fragments held for
    /// datagrams whose first fragment never came ([`Engine::next_unheld`]).
    pub fn expire(&mut self, now_ns: u64) {
        let mut finished: [Option<(FlowEntry, Measured)>; EXPIRE_BUDGET] = [None; EXPIRE_BUDGET];
        let mut n = 0usize;
        let mut unanswered = 0u64;
        let removed =
            self.flows
                .expire_paced(now_ns, self.config.flow_idle_ns, EXPIRE_BUDGET, |_, e| {
                    let mut timing = e.timing;
                    match timing.on_end() {
                        Some(m) => {
                            if let Some(slot) = finished.get_mut(n) {
                                *slot = Some((*e, m));
                                n += 1;
                            }
                        }
                        None if timing.phase == Phase::Requesting => unanswered += 1,
                        None => {}
                    }
                });
        self.counters.flows_n(FlowEvent::Expired, removed as u64);
        self.counters.flows_n(FlowEvent::Unanswered, unanswered);
        for (e, m) in finished.iter().take(n).flatten() {
            self.learn_flow(e, m);
        }
        self.prefixes.expire(now_ns, EXPIRE_BUDGET);
        // The splicer's sweep reads (copies) every slot it visits, free or
        // not: with no connection held there is nothing to time out, and
        // skipping it spares the worker a pass over 256 of its slots every
        // tick (a tenth to a fifth of the worker's samples on the bench's
        // TLV traffic, which never splices: docs/performance.md).
        if let Some(s) = self.splicer.as_mut().filter(|s| s.connections() > 0) {
            s.expire(now_ns);
        }
        let gone = self.fragments.expire(now_ns, EXPIRE_BUDGET);
        self.counters
            .fragments_n(FragmentEvent::TimedOut, gone.held);
    }
}

/// The features a token-feature TLV lookup gives: `Err(None)` for no TLV,
/// `Err(Some(why))` for one that is malformed or whose ID does not decode,
/// which is treated as no TLV once counted (docs/wire-format.md §5.5).
fn tlv_features(lookup: TlvLookup) -> Result<TokenFeatures, Option<TlvMalformed>> {
    match lookup {
        TlvLookup::Present { id, .. } => {
            decode_feature_id(id).map_err(|e| Some(TlvMalformed::of_feature_error(e)))
        }
        TlvLookup::Malformed(why) => Err(Some(why)),
        TlvLookup::Absent => Err(None),
    }
}

/// A new flow's features: a valid TLV, else inference where configured.
fn features<P: Located>(
    config: &EngineConfig,
    counters: &SteerCounters,
    p: &P,
    frame: &[u8],
    service_port: u16,
) -> Option<TokenFeatures> {
    match tlv_features(p.token_feature(frame)) {
        Ok(f) => {
            counters.feature(FeatureSource::Tlv);
            return Some(f);
        }
        Err(Some(why)) => counters.tlv_malformed(why),
        Err(None) => {}
    }
    if p.payload_span().len == 0 {
        // A TCP SYN: nothing to infer from yet.
        counters.feature(FeatureSource::Unknown);
        return None;
    }
    let inferred = infer(config, counters, p, frame, service_port);
    if inferred.is_none() {
        counters.feature(FeatureSource::Unknown);
    }
    inferred
}

/// Whether `port` is one of the ports whose requests are inferred from
/// HTTP (and spliced): a loop the compiler inlines, for a list of a port
/// or two, where `contains` is a call per packet.
#[inline(always)]
#[allow(clippy::manual_contains)] // measured: `contains` is not inlined here
fn is_infer_port(config: &EngineConfig, port: u16) -> bool {
    config.infer_http_ports.iter().any(|&p| p == port)
}

/// Bounded inference from a payload, on configured ports.
fn infer<P: Located>(
    config: &EngineConfig,
    counters: &SteerCounters,
    p: &P,
    frame: &[u8],
    service_port: u16,
) -> Option<TokenFeatures> {
    if !is_infer_port(config, service_port) {
        return None;
    }
    match infer_http(p.payload_span().slice(frame), &config.infer_limits) {
        Inference::Inferred(r) => {
            counters.feature(FeatureSource::InferredHttp);
            Some(r.features)
        }
        _ => {
            counters.feature(FeatureSource::InferFailed);
            None
        }
    }
}

/// What the request path reads of a located packet: [`classifier::parse`]'s
/// [`ParsedPacket`], or the fast path's [`FlowPacket`]
/// ([`classifier::flow_walk`]), which agree on all of it for the frames
/// both locate.
trait Located {
    /// The TCP/UDP payload (for the full parse, see [`ParsedPacket::payload`]).
    fn payload_span(&self) -> Span;
    /// The TCP flags (none for anything else).
    fn flags(&self, frame: &[u8]) -> TcpFlags;
    /// The token-feature TLV, if any.
    fn token_feature(&self, frame: &[u8]) -> TlvLookup;
}

impl Located for ParsedPacket {
    #[inline(always)]
    fn payload_span(&self) -> Span {
        self.payload
    }
    #[inline(always)]
    fn flags(&self, frame: &[u8]) -> TcpFlags {
        tcp_flags(self, frame)
    }
    #[inline(always)]
    fn token_feature(&self, frame: &[u8]) -> TlvLookup {
        classifier::find_token_feature(frame, self)
    }
}

impl Located for FlowPacket {
    #[inline(always)]
    fn payload_span(&self) -> Span {
        self.payload
    }
    #[inline(always)]
    fn flags(&self, _frame: &[u8]) -> TcpFlags {
        self.tcp_flags
    }
    #[inline(always)]
    fn token_feature(&self, frame: &[u8]) -> TlvLookup {
        FlowPacket::token_feature(self, frame)
    }
}

/// A TCP segment's flags (none for anything else).
fn tcp_flags(p: &ParsedPacket, frame: &[u8]) -> TcpFlags {
    if p.ip_protocol != Some(IpProtocol::TCP) {
        return TcpFlags::default();
    }
    TcpPacket::new_checked(p.l4(frame)).map_or(TcpFlags::default(), |t| t.flags())
}
