//! The data plane's read-only snapshot of the control state.
//!
//! Built on the control thread by [`crate::ControlState::view`] and
//! published (arc-swap) to the workers, which read it per packet. Building
//! allocates; nothing that reads it does, and nothing that reads it panics.
//!
//! ## Longest-prefix match
//!
//! Forwarding entries are kept per family in a `Vec` sorted by prefix
//! length, longest first, with network and mask precomputed as integers; a
//! lookup scans until the first match. That is O(n) in the number of
//! entries of the family (at most [`crate::state::MAX_FWD_ENTRIES`]), one
//! AND and one compare each, all in one contiguous array: for the few
//! hundred entries a steering policy has, this beats a trie's pointer
//! chasing and keeps the snapshot trivially immutable.

use core::ops::BitAnd;
use std::net::IpAddr;

use crate::capability::{Capability, ModelClass};
use crate::ids::{NodeId, PathId};
use crate::metric::MetricType;
use crate::node_metrics::NodeMetrics;
use crate::path_metrics::PathMetrics;
use crate::policy::{PathDef, MAX_CANDIDATES};
use crate::prefix::IpPrefix;
use crate::task_types::TaskTypes;
use crate::thresholds::Thresholds;
use crate::timed::{Freshness, Timed};

/// One defined path with its latest measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewPath {
    /// The definition (egress port, next hop).
    pub def: PathDef,
    /// Latest measurements, if any PATH_STATE arrived.
    pub state: Option<Timed<PathMetrics>>,
}

impl ViewPath {
    /// The measurements if at most `max_age_ns` old.
    pub fn freshness(&self, now_ns: u64, max_age_ns: u64) -> Freshness<'_, PathMetrics> {
        self.state
            .as_ref()
            .map_or(Freshness::Unknown, |s| s.freshness(now_ns, max_age_ns))
    }
}

/// A forwarding entry resolved against the path table.
#[derive(Debug, Clone, PartialEq)]
struct Route<A> {
    network: A,
    mask: A,
    prefix: IpPrefix,
    /// Indices into `DataplaneView::paths`, in the policy's order; paths
    /// without a definition are left out.
    candidates: [u16; MAX_CANDIDATES],
    count: u8,
}

impl<A: Copy + BitAnd<Output = A> + PartialEq> Route<A> {
    fn matches(&self, addr: A) -> bool {
        addr & self.mask == self.network
    }

    fn candidates(&self) -> &[u16] {
        self.candidates
            .get(..usize::from(self.count))
            .unwrap_or(&[])
    }
}

/// Why [`DataplaneView::choose_path`] chose a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceReason {
    /// The lowest-cost candidate among those with fresh state and acceptable
    /// loss.
    Best,
    /// No candidate had fresh state with a latency and acceptable loss: the
    /// first candidate, so traffic keeps flowing (graceful degradation).
    Fallback,
}

/// The outcome of a path decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathChoice<'a> {
    /// The chosen path.
    pub path: &'a PathDef,
    /// Why.
    pub reason: ChoiceReason,
    /// `latency_us + jitter_weight * jitter_us` of the chosen path, for
    /// `Best`.
    pub cost: Option<f64>,
    /// The forwarding entry that matched.
    pub prefix: IpPrefix,
}

/// Immutable snapshot for the workers. `Send + Sync`; reading allocates
/// nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct DataplaneView {
    version: u64,
    built_ns: u64,
    thresholds: Thresholds,
    /// Sorted by path id.
    paths: Vec<ViewPath>,
    /// Longest prefix first.
    routes_v4: Vec<Route<u32>>,
    /// Longest prefix first.
    routes_v6: Vec<Route<u128>>,
    /// 0 = no weight set for the class.
    class_weights: [u16; 256],
    /// Latest PATH_STATE per path id, defined by policy or not (token
    /// steering defines its paths in the appliance's config), sorted.
    path_reports: Vec<(PathId, Timed<PathMetrics>)>,
    /// Latest NODE_STATE per node, sorted by node id.
    nodes: Vec<(NodeId, Timed<NodeMetrics>)>,
    /// Latest CAPABILITY per node, sorted by node id, reduced to the numbers
    /// a decision reads (the model and accelerator names stay in the
    /// control state, so the snapshot holds no strings).
    capabilities: Vec<(NodeId, Timed<CapabilitySummary>)>,
}

/// What a steering decision needs from a node's CAPABILITY announcement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapabilitySummary {
    /// Small edge model or large central one.
    pub model_class: ModelClass,
    /// Task types the model serves.
    pub task_types: TaskTypes,
    /// Longest context (prompt plus output tokens) the model accepts.
    pub max_context_tokens: Option<f64>,
    /// Prefill rate, tokens/s.
    pub tokens_per_s_prefill: Option<f64>,
    /// Decode rate per stream, tokens/s.
    pub tokens_per_s_decode: Option<f64>,
    /// Requests served concurrently (batch slots).
    pub concurrency_limit: Option<f64>,
}

impl CapabilitySummary {
    /// The decision-relevant part of an announcement.
    pub fn of(c: &Capability) -> CapabilitySummary {
        let metric = |t: MetricType| {
            c.metrics
                .iter()
                .find(|m| m.metric_type == t)
                .map(|m| m.normalised())
        };
        CapabilitySummary {
            model_class: c.model_class,
            task_types: c.task_types,
            max_context_tokens: metric(MetricType::MaxContextTokens),
            tokens_per_s_prefill: metric(MetricType::TokensPerSPrefill),
            tokens_per_s_decode: metric(MetricType::TokensPerSDecode),
            concurrency_limit: metric(MetricType::ConcurrencyLimit),
        }
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<DataplaneView>();
};

impl Default for DataplaneView {
    /// An empty view (no routes): what workers read before the first build.
    fn default() -> DataplaneView {
        DataplaneView {
            version: 0,
            built_ns: 0,
            thresholds: Thresholds::default(),
            paths: Vec::new(),
            routes_v4: Vec::new(),
            routes_v6: Vec::new(),
            class_weights: [0; 256],
            path_reports: Vec::new(),
            nodes: Vec::new(),
            capabilities: Vec::new(),
        }
    }
}

impl DataplaneView {
    pub(crate) fn build<'a>(
        version: u64,
        built_ns: u64,
        thresholds: Thresholds,
        paths: impl Iterator<Item = (&'a PathDef, Option<&'a Timed<PathMetrics>>)>,
        fwd: impl Iterator<Item = (IpPrefix, &'a [PathId])>,
        weights: impl Iterator<Item = (u8, u16)>,
    ) -> DataplaneView {
        let mut view = DataplaneView {
            version,
            built_ns,
            thresholds,
            ..DataplaneView::default()
        };
        view.paths = paths
            .map(|(def, state)| ViewPath {
                def: def.clone(),
                state: state.cloned(),
            })
            .collect();
        view.paths.sort_by_key(|p| p.def.id);
        for (prefix, ids) in fwd {
            let mut candidates = [0u16; MAX_CANDIDATES];
            let mut count = 0u8;
            for id in ids.iter().take(MAX_CANDIDATES) {
                let Some(index) = view.index_of(*id) else {
                    continue;
                };
                if let Some(slot) = candidates.get_mut(usize::from(count)) {
                    *slot = index;
                    count += 1;
                }
            }
            match prefix.addr() {
                IpAddr::V4(a) => view.routes_v4.push(Route {
                    network: u32::from(a),
                    mask: prefix.mask_v4(),
                    prefix,
                    candidates,
                    count,
                }),
                IpAddr::V6(a) => view.routes_v6.push(Route {
                    network: u128::from(a),
                    mask: prefix.mask_v6(),
                    prefix,
                    candidates,
                    count,
                }),
            }
        }
        // Stable sort: equal lengths keep prefix order, so lookups are
        // deterministic.
        view.routes_v4
            .sort_by_key(|r| core::cmp::Reverse(r.prefix.len()));
        view.routes_v6
            .sort_by_key(|r| core::cmp::Reverse(r.prefix.len()));
        for (class, weight) in weights {
            if let Some(slot) = view.class_weights.get_mut(usize::from(class)) {
                *slot = weight;
            }
        }
        view
    }

    /// Adds node state and capabilities (builder step of
    /// [`crate::ControlState::view`]).
    pub(crate) fn with_nodes<'a>(
        mut self,
        path_reports: impl Iterator<Item = (PathId, &'a Timed<PathMetrics>)>,
        nodes: impl Iterator<Item = (NodeId, &'a Timed<NodeMetrics>)>,
        capabilities: impl Iterator<Item = (NodeId, &'a Timed<Capability>)>,
    ) -> DataplaneView {
        self.path_reports = path_reports.map(|(id, t)| (id, t.clone())).collect();
        self.path_reports.sort_by_key(|(id, _)| *id);
        self.nodes = nodes.map(|(id, t)| (id, t.clone())).collect();
        self.nodes.sort_by_key(|(id, _)| *id);
        self.capabilities = capabilities
            .map(|(id, t)| {
                (
                    id,
                    Timed::new(CapabilitySummary::of(&t.value), t.updated_ns, t.from_peer),
                )
            })
            .collect();
        self.capabilities.sort_by_key(|(id, _)| *id);
        self
    }

    /// A path's latest PATH_STATE by id, whether or not a POLICY defined
    /// the path: `Fresh`, `Stale` (measured once, then silent: failed) or
    /// `Unknown`.
    pub fn path_report(&self, id: PathId, now_ns: u64) -> Freshness<'_, PathMetrics> {
        self.path_reports
            .binary_search_by_key(&id, |(p, _)| *p)
            .ok()
            .and_then(|i| self.path_reports.get(i))
            .map_or(Freshness::Unknown, |(_, t)| {
                t.freshness(now_ns, self.thresholds.max_state_age_ns)
            })
    }

    /// A node's load report: `Fresh` if at most `max_state_age` old,
    /// `Stale` if older (the node went quiet: treat it as failed), `Unknown`
    /// if it never reported.
    pub fn node_state(&self, id: NodeId, now_ns: u64) -> Freshness<'_, NodeMetrics> {
        self.nodes
            .binary_search_by_key(&id, |(n, _)| *n)
            .ok()
            .and_then(|i| self.nodes.get(i))
            .map_or(Freshness::Unknown, |(_, t)| {
                t.freshness(now_ns, self.thresholds.max_state_age_ns)
            })
    }

    /// A node's announced capability, aged by `max_capability_age`.
    pub fn capability(&self, id: NodeId, now_ns: u64) -> Freshness<'_, CapabilitySummary> {
        self.capabilities
            .binary_search_by_key(&id, |(n, _)| *n)
            .ok()
            .and_then(|i| self.capabilities.get(i))
            .map_or(Freshness::Unknown, |(_, t)| {
                t.freshness(now_ns, self.thresholds.max_capability_age_ns)
            })
    }

    /// A node's latest load report, fresh or not: what steering reads when
    /// a new report came (its time, [`Timed::updated_ns`], and its
    /// prefix-cache totals), whatever its age.
    pub fn node_report(&self, id: NodeId) -> Option<&Timed<NodeMetrics>> {
        self.nodes
            .binary_search_by_key(&id, |(n, _)| *n)
            .ok()
            .and_then(|i| self.nodes.get(i))
            .map(|(_, t)| t)
    }

    /// When a node's latest load report was stored (the control thread's
    /// monotonic ns), fresh or not; `None` if it never reported. Steering
    /// uses it to tell which of its own decisions the report cannot yet
    /// reflect.
    pub fn node_reported_ns(&self, id: NodeId) -> Option<u64> {
        self.nodes
            .binary_search_by_key(&id, |(n, _)| *n)
            .ok()
            .and_then(|i| self.nodes.get(i))
            .map(|(_, t)| t.updated_ns)
    }

    /// Number of nodes with a load report, and with a capability.
    pub fn node_counts(&self) -> (usize, usize) {
        (self.nodes.len(), self.capabilities.len())
    }

    fn index_of(&self, id: PathId) -> Option<u16> {
        let i = self.paths.binary_search_by_key(&id, |p| p.def.id).ok()?;
        u16::try_from(i).ok()
    }

    /// Snapshot version (set by the builder; increases per publish).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Monotonic ns when the snapshot was built.
    pub fn built_ns(&self) -> u64 {
        self.built_ns
    }

    /// Thresholds in force.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Defined paths, sorted by id.
    pub fn paths(&self) -> &[ViewPath] {
        &self.paths
    }

    /// One path by id (binary search).
    pub fn path(&self, id: PathId) -> Option<&ViewPath> {
        self.index_of(id)
            .and_then(|i| self.paths.get(usize::from(i)))
    }

    /// A path's measurements if fresh under the view's thresholds.
    pub fn path_state(&self, id: PathId, now_ns: u64) -> Freshness<'_, PathMetrics> {
        self.path(id).map_or(Freshness::Unknown, |p| {
            p.freshness(now_ns, self.thresholds.max_state_age_ns)
        })
    }

    /// Weight of a traffic class, if the policy set one.
    pub fn class_weight(&self, class: u8) -> Option<u16> {
        self.class_weights
            .get(usize::from(class))
            .copied()
            .filter(|w| *w != 0)
    }

    /// Number of forwarding entries (IPv4, IPv6).
    pub fn route_counts(&self) -> (usize, usize) {
        (self.routes_v4.len(), self.routes_v6.len())
    }

    /// The path for a destination: longest-prefix match, then among its
    /// candidates with fresh state, a latency and loss at most
    /// `max_path_loss_ratio`, the lowest `latency_us + jitter_weight *
    /// jitter_us` (ties: first listed). If none qualifies, the first
    /// candidate as [`ChoiceReason::Fallback`]. `None` when no entry
    /// matches, or the matching entry names no defined path. IPv4-mapped
    /// IPv6 addresses are matched as IPv6.
    pub fn choose_path(&self, dst: IpAddr, now_ns: u64) -> Option<PathChoice<'_>> {
        match dst {
            IpAddr::V4(a) => self.choose_path_v4(u32::from(a), now_ns),
            IpAddr::V6(a) => self.choose_path_v6(u128::from(a), now_ns),
        }
    }

    /// [`DataplaneView::choose_path`] for an IPv4 address as a host-order
    /// integer (what `u32::from_be_bytes` of the header field gives).
    pub fn choose_path_v4(&self, dst: u32, now_ns: u64) -> Option<PathChoice<'_>> {
        let route = self.routes_v4.iter().find(|r| r.matches(dst))?;
        self.choose_among(route.prefix, route.candidates(), now_ns)
    }

    /// [`DataplaneView::choose_path`] for an IPv6 address as an integer.
    pub fn choose_path_v6(&self, dst: u128, now_ns: u64) -> Option<PathChoice<'_>> {
        let route = self.routes_v6.iter().find(|r| r.matches(dst))?;
        self.choose_among(route.prefix, route.candidates(), now_ns)
    }

    fn choose_among(
        &self,
        prefix: IpPrefix,
        candidates: &[u16],
        now_ns: u64,
    ) -> Option<PathChoice<'_>> {
        let t = &self.thresholds;
        let mut best: Option<(&ViewPath, f64)> = None;
        for p in candidates
            .iter()
            .filter_map(|&i| self.paths.get(usize::from(i)))
        {
            let Some(metrics) = p.freshness(now_ns, t.max_state_age_ns).fresh() else {
                continue;
            };
            let Some(cost) = metrics.cost(t.max_path_loss_ratio, t.jitter_weight) else {
                continue;
            };
            // Strictly lower only: on a tie the earlier candidate stays.
            let better = match best {
                None => true,
                Some((_, c)) => cost < c,
            };
            if better {
                best = Some((p, cost));
            }
        }
        match best {
            Some((p, cost)) => Some(PathChoice {
                path: &p.def,
                reason: ChoiceReason::Best,
                cost: Some(cost),
                prefix,
            }),
            None => {
                let first = candidates
                    .first()
                    .and_then(|&i| self.paths.get(usize::from(i)))?;
                Some(PathChoice {
                    path: &first.def,
                    reason: ChoiceReason::Fallback,
                    cost: None,
                    prefix,
                })
            }
        }
    }
}
