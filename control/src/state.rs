//! Everything the control plane knows: path and node measurements,
//! capabilities, and the policy. Lives on the control thread; the data plane
//! sees it through [`DataplaneView`] snapshots.

use std::collections::BTreeMap;

use crate::applied::{Applied, PolicyChange};
use crate::capability::Capability;
use crate::ids::{NodeId, PathId};
use crate::message::Message;
use crate::node_metrics::NodeMetrics;
use crate::path_metrics::PathMetrics;
use crate::policy::{PathDef, Policy};
use crate::prefix::IpPrefix;
use crate::thresholds::Thresholds;
use crate::timed::{freshness_of, Freshness, Timed};
use crate::view::DataplaneView;

/// Most path definitions kept; bounds view size and memory.
pub const MAX_PATH_DEFS: usize = 1024;
/// Most forwarding entries kept; lookups scan them linearly.
pub const MAX_FWD_ENTRIES: usize = 1024;

/// The control plane's state.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlState {
    /// Thresholds before any POLICY, and after a REPLACE.
    base_thresholds: Thresholds,
    thresholds: Thresholds,
    paths: BTreeMap<PathId, Timed<PathMetrics>>,
    nodes: BTreeMap<NodeId, Timed<NodeMetrics>>,
    capabilities: BTreeMap<NodeId, Timed<Capability>>,
    path_defs: BTreeMap<PathId, PathDef>,
    fwd: BTreeMap<IpPrefix, Vec<PathId>>,
    class_weights: BTreeMap<u8, u16>,
}

impl Default for ControlState {
    fn default() -> ControlState {
        ControlState::new(Thresholds::default())
    }
}

impl ControlState {
    /// Empty state; `thresholds` are the configured defaults that a POLICY
    /// may override and a replacing POLICY restores.
    pub fn new(thresholds: Thresholds) -> ControlState {
        ControlState {
            base_thresholds: thresholds,
            thresholds,
            paths: BTreeMap::new(),
            nodes: BTreeMap::new(),
            capabilities: BTreeMap::new(),
            path_defs: BTreeMap::new(),
            fwd: BTreeMap::new(),
            class_weights: BTreeMap::new(),
        }
    }

    /// Stores an accepted message. Infallible: the receiver validated and
    /// authorised it. `now_ns` is the monotonic clock that ages entries.
    pub fn apply(&mut self, from_peer: u32, message: &Message, now_ns: u64) -> Applied {
        match message {
            Message::PathState(s) => {
                let t = Timed::new(PathMetrics::from_metrics(&s.metrics), now_ns, from_peer);
                self.paths.insert(s.path, t);
                Applied::Path(s.path)
            }
            Message::NodeState(s) => {
                let mut metrics = NodeMetrics::from_metrics(&s.metrics);
                let totals = self
                    .nodes
                    .get(&s.node)
                    .map(|t| t.value.prefix_cache)
                    .unwrap_or_default();
                metrics.prefix_cache = match &s.prefix_cache {
                    Some(c) => totals.with_report(c),
                    None => totals,
                };
                let t = Timed::new(metrics, now_ns, from_peer);
                self.nodes.insert(s.node, t);
                Applied::Node(s.node)
            }
            Message::Capability(c) => {
                let t = Timed::new(c.clone(), now_ns, from_peer);
                let previous = self.capabilities.insert(c.node, t);
                Applied::Capability {
                    node: c.node,
                    // A re-announcement by the same peer is routine; a
                    // different announcer is worth a log line.
                    previous_announcer: previous.map(|p| p.from_peer).filter(|&p| p != from_peer),
                }
            }
            Message::Policy(p) => Applied::Policy(self.apply_policy(p)),
            Message::Query(_) | Message::Reply(_) => Applied::Nothing,
        }
    }

    fn apply_policy(&mut self, p: &Policy) -> PolicyChange {
        let mut change = PolicyChange {
            replaced: p.replace,
            ..PolicyChange::default()
        };
        if p.replace {
            self.path_defs.clear();
            self.fwd.clear();
            self.class_weights.clear();
            self.thresholds = self.base_thresholds;
        }
        for d in &p.path_defs {
            if self.path_defs.len() >= MAX_PATH_DEFS && !self.path_defs.contains_key(&d.id) {
                change.dropped_over_limit += 1;
                continue;
            }
            self.path_defs.insert(d.id, d.clone());
            change.path_defs += 1;
        }
        for e in &p.fwd_entries {
            if self.fwd.len() >= MAX_FWD_ENTRIES && !self.fwd.contains_key(&e.prefix) {
                change.dropped_over_limit += 1;
                continue;
            }
            self.fwd.insert(e.prefix, e.paths.clone());
            change.fwd_entries += 1;
        }
        for c in &p.class_weights {
            self.class_weights.insert(c.class, c.weight);
            change.class_weights += 1;
        }
        for t in &p.thresholds {
            self.thresholds.set(*t);
            change.thresholds += 1;
        }
        change
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// A path's measurements, if fresh.
    pub fn path(&self, id: PathId, now_ns: u64) -> Freshness<'_, PathMetrics> {
        freshness_of(
            self.paths.get(&id),
            now_ns,
            self.thresholds.max_state_age_ns,
        )
    }

    /// A node's load, if fresh.
    pub fn node(&self, id: NodeId, now_ns: u64) -> Freshness<'_, NodeMetrics> {
        freshness_of(
            self.nodes.get(&id),
            now_ns,
            self.thresholds.max_state_age_ns,
        )
    }

    /// A node's capability, if fresh (capabilities age on their own, longer
    /// threshold, [`Thresholds::max_capability_age_ns`]).
    pub fn capability(&self, id: NodeId, now_ns: u64) -> Freshness<'_, Capability> {
        freshness_of(
            self.capabilities.get(&id),
            now_ns,
            self.thresholds.max_capability_age_ns,
        )
    }

    /// Every path entry with its timestamp, fresh or not (for display).
    pub fn path_entries(&self) -> impl Iterator<Item = (PathId, &Timed<PathMetrics>)> {
        self.paths.iter().map(|(k, v)| (*k, v))
    }

    /// Every node entry with its timestamp.
    pub fn node_entries(&self) -> impl Iterator<Item = (NodeId, &Timed<NodeMetrics>)> {
        self.nodes.iter().map(|(k, v)| (*k, v))
    }

    /// Every capability with its timestamp and announcer.
    pub fn capability_entries(&self) -> impl Iterator<Item = (NodeId, &Timed<Capability>)> {
        self.capabilities.iter().map(|(k, v)| (*k, v))
    }

    /// Path definitions, by id.
    pub fn path_defs(&self) -> impl Iterator<Item = &PathDef> {
        self.path_defs.values()
    }

    /// Forwarding entries, by prefix.
    pub fn fwd_entries(&self) -> impl Iterator<Item = (&IpPrefix, &[PathId])> {
        self.fwd.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// Class weights, by class.
    pub fn class_weights(&self) -> impl Iterator<Item = (u8, u16)> + '_ {
        self.class_weights.iter().map(|(k, v)| (*k, *v))
    }

    /// Forwarding references to paths that have no PATH_DEF; the view skips
    /// them, so operators should see them.
    pub fn dangling_paths(&self) -> Vec<(IpPrefix, PathId)> {
        self.fwd
            .iter()
            .flat_map(|(p, ids)| ids.iter().map(move |id| (*p, *id)))
            .filter(|(_, id)| !self.path_defs.contains_key(id))
            .collect()
    }

    /// Builds the immutable snapshot the data plane reads. Allocates; run it
    /// on the control thread and publish the result.
    pub fn view(&self, version: u64, now_ns: u64) -> DataplaneView {
        DataplaneView::build(
            version,
            now_ns,
            self.thresholds,
            self.path_defs.values().map(|d| (d, self.paths.get(&d.id))),
            self.fwd.iter().map(|(p, ids)| (*p, ids.as_slice())),
            self.class_weights.iter().map(|(c, w)| (*c, *w)),
        )
        .with_nodes(
            self.paths.iter().map(|(id, t)| (*id, t)),
            self.nodes.iter().map(|(id, t)| (*id, t)),
            self.capabilities.iter().map(|(id, t)| (*id, t)),
        )
    }
}
