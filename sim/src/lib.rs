//! # sim — a deterministic discrete-event simulator of token-aware steering
//!
//! It drives the appliance's real decision code — [`steer::Decider`] over a
//! [`steer::ServiceTable`], the control plane's [`control::state::ControlState`]
//! and its [`control::view::DataplaneView`] snapshots, and the per-instance
//! online latency models [`predictor::InstanceModel`] — with simulated
//! agents, paths and inference nodes instead of DPDK and sockets, so the
//! decision can be watched at a scale (1,000 nodes, 1,000,000 requests)
//! and under failures no testbed offers, in seconds.
//!
//! ## The model
//!
//! * **Engine** ([`engine`]): a binary heap of events in integer
//!   nanoseconds, ties broken by scheduling order; one ChaCha8 stream per
//!   site (arrivals and request sizes) and per path (jitter and loss), all
//!   from one seed. Nothing reads a clock: a seed gives one result.
//! * **Requests**: open-loop Poisson arrivals per site; a share
//!   `short_fraction` are short interactive requests (immediate-control
//!   task, few prompt and output tokens), the rest long bulk ones (code,
//!   summarisation or reasoning, long prompts and outputs), sizes uniform
//!   in the configured ranges, classified by [`steer::TrafficClass::of`].
//!   The agent sits next to its appliance (as `pktgen agent` does in the
//!   emulation), so a request's TTFT and completion are measured from its
//!   arrival and include the TCP handshake, both path directions and any
//!   loss penalty. A request not complete within the timeout (20 s, the
//!   emulation's) fails; failed requests count in the latency percentiles
//!   at the timeout (censored), and separately by reason.
//! * **Inference nodes**: `pktgen serve`'s service model — `concurrency`
//!   batch slots and a FIFO wait queue; a request holds a slot for
//!   `base_ttft + prompt/prefill_tps` (then its first token) plus
//!   `output/decode_tps` (streaming). Every `report_interval` (20 ms) a
//!   node sends NODE_STATE — queue length, GPU utilisation (busy slots /
//!   concurrency), KV utilisation as memory utilisation (prompt + output
//!   tokens of the requests holding a slot / `kv_tokens`) and `pktgen
//!   serve`'s estimated TTFT — to every appliance that steers onto it, over
//!   a management network without delay or loss. A failed node stops
//!   serving (its queued and in-service requests fail) and stops
//!   reporting, so its state goes stale after the thresholds'
//!   `max_state_age` (1 s): that is how the appliance learns of it. A
//!   recovered node restarts empty and reports at once, as a restarted
//!   `pktgen serve` does; a recovered path carries traffic again. Each
//!   node has a prefix cache ([`prefix_cache`]): LRU, bounded by
//!   `kv_tokens`, holding agents' shared prefixes and session histories;
//!   the cached tokens of a prompt are not prefilled. Every report
//!   interval its hit and query counters correct the appliances' prefix
//!   records, as a collector scraping vLLM would.
//! * **Agents** (when the workload's `agent_fraction` > 0): calls of
//!   personas with a long shared system prompt and tools, named in the
//!   request's features, in multi-turn sessions whose history grows
//!   ([`config::AgentMix`]).
//! * **Paths**: one-way delay plus uniform jitter (±), released in order
//!   per direction (`pktgen wire`'s rule: max(previous release, now +
//!   delay + jitter)), and independent packet loss. TCP's reaction to loss
//!   is reduced to its timeouts: a lost SYN or SYN-ACK costs Linux's
//!   initial RTO, 1 s, doubling on repeated loss; a lost data segment
//!   costs max(200 ms, RTT) (Linux's minimum RTO), doubling likewise.
//!   Requests are `400 + 4·prompt_tokens` bytes in 1448-byte segments;
//!   responses are one packet per 4 output tokens, and a lost response
//!   packet delays the first token (if it is the first) or holds back the
//!   end of the stream until its retransmission (head-of-line blocking).
//!   ACKs, congestion windows and bandwidth are not modelled. A failed
//!   path loses everything (loss 1); when the scenario probes paths (the
//!   scale scenario, every 100 ms), the appliance learns the path's true
//!   delay, jitter and loss by PATH_STATE — an ideal probe — and the
//!   token-aware decision drops paths losing more than
//!   `max_path_loss_ratio`; without probing (the eval scenario, like the
//!   emulated appliance) it uses the configured priors.
//! * **Appliances**: one [`steer::ServiceTable`] per site (one service,
//!   one path per instance, priors = the path's true delay and jitter,
//!   `max_queue` = 4 × concurrency as the dataplane defaults), its own
//!   control state, a view rebuilt whenever a message arrived since the
//!   last decision, models built from the configured priors as the
//!   dataplane builds them, a per-service turn counter for the baselines,
//!   and the policy. Each completed request trains its instance's model
//!   with the dataplane's observation: TTFT and completion as the
//!   appliance times them passively (from the request's last payload
//!   packet), minus the predicted network round trip.
//!
//! Policies ([`eval::Variant`], as `scripts/eval.sh` configures the
//! appliance): `intellinode` = [`steer::Policy::TokenAware`] with the
//! strict interactive egress band; `least_queue` =
//! [`steer::Policy::LeastQueue`] (the Gateway API Inference Extension's
//! queue and KV-cache scorers, no network awareness) with FIFO egress;
//! `fifo` = [`steer::Policy::RoundRobin`] with FIFO egress; `llm_d` =
//! [`steer::Policy::LlmD`] (llm-d's queue, KV-cache and approximate
//! prefix scorers) with FIFO egress, in the [`prefix_eval`] scenario. Egress
//! priority only matters on a shaped uplink. Nodes always serve FIFO: they
//! are not the appliance's.
//!
//! ## What it leaves out
//!
//! Bandwidth of the paths themselves (only an appliance's shaped egress
//! port, an [`world::Uplink`], has a rate; a retransmitted segment does not
//! queue there again), the node-to-agent direction's egress queue (the
//! agents' side is a LAN), congestion control, ACK loss, the flow
//! table's capacity, agent-side think time (arrivals are open loop),
//! batching effects on a node's per-token rates (a slot's speed does not
//! depend on how many are busy), CAPABILITY announcements (the configured
//! capabilities stand), and the cost of the decision
//! itself (it takes no simulated time).
//!
//! ## Scenarios
//!
//! * [`eval`]: the emulated cluster of `make eval` ([`config::EvalCluster`],
//!   printed by `intellisim plan` for the emulation), every policy at 50,
//!   80 and 95% of capacity plus IntelliNode nearly idle, with the same
//!   summary keys as the emulation.
//! * [`scale`]: 1,000 nodes behind 200 appliances, shared centre nodes,
//!   10% of the edge failing and one site's WAN failing.
//! * [`failover`]: the eval cluster's failure timeline (the edge node
//!   killed and restarted, the centre's path black-holed and restored,
//!   PATH_STATE every report interval as `pktgen wire` sends it), and the
//!   one measurement of moving away, coming back and losses that the
//!   emulated run is measured by too.
//! * [`prefix_eval`]: shared-prefix agents against the nodes' prefix
//!   caches, four policies (with `llm_d`), the eval cluster and a
//!   symmetric one where the network cannot help.
//! * [`uplink`]: the eval cluster behind one busy shaped egress port, where
//!   the appliance's egress scheduler ([`sched`], in the bands of
//!   [`steer::egress`]) decides whether short requests wait behind long
//!   ones.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod engine;
pub mod eval;
pub mod failover;
pub mod prefix_cache;
pub mod prefix_eval;
pub mod scale;
pub mod stats;
pub mod uplink;
pub mod world;

pub use config::{
    capacity, AgentMix, Capacity, EvalCluster, NodeParams, PathParams, Pool, Workload,
};
pub use engine::EventQueue;
pub use world::{run, Outcome, RunConfig, SiteSpec, Topology, Uplink};
