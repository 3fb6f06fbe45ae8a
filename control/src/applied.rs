//! What applying a message changed.

use crate::ids::{NodeId, PathId};

/// The effect of [`crate::ControlState::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A path's measurements were replaced.
    Path(PathId),
    /// A node's load was replaced.
    Node(NodeId),
    /// A node's capability was stored.
    Capability {
        /// The node.
        node: NodeId,
        /// Set when a *different* peer had announced this node before.
        previous_announcer: Option<u32>,
    },
    /// The policy changed.
    Policy(PolicyChange),
    /// Nothing to store (QUERY; the caller answers it).
    Nothing,
}

/// Counts of what a POLICY did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyChange {
    /// The previous policy was dropped first.
    pub replaced: bool,
    /// Path definitions inserted or updated.
    pub path_defs: usize,
    /// Forwarding entries inserted or updated.
    pub fwd_entries: usize,
    /// Class weights inserted or updated.
    pub class_weights: usize,
    /// Thresholds set.
    pub thresholds: usize,
    /// New entries ignored because a table was full (count it, log it).
    pub dropped_over_limit: usize,
}

impl Applied {
    /// Does the data-plane view need rebuilding? Everything the workers
    /// decide on is in it: path state, node state and capabilities (token
    /// steering weighs them per new flow), and policy.
    pub const fn affects_view(&self) -> bool {
        matches!(
            self,
            Applied::Path(_) | Applied::Node(_) | Applied::Capability { .. } | Applied::Policy(_)
        )
    }
}
