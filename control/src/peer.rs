//! A configured peer: who it is, its key, and what it may announce or set.

use crate::ids::{NodeId, PathId};
use crate::key::Key;
use crate::roles::Roles;

/// One peer of the control channel. Its `id` is the `key_id` on the wire.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Key id carried in every datagram this peer seals.
    pub id: u32,
    /// Human name, for logs and `ctl` output.
    pub name: String,
    /// The shared key.
    pub key: Key,
    /// Message kinds the peer may send.
    pub roles: Roles,
    /// When set, NODE_STATE and CAPABILITY are accepted only for these
    /// node ids: a compute node's agent speaks for itself, not for others.
    pub nodes: Option<Vec<u16>>,
    /// When set, PATH_STATE and POLICY are accepted only if every path id
    /// they name is in this list, and POLICY may not REPLACE (that would
    /// remove the paths of others): a site's orchestrator steers its own
    /// paths, not the whole appliance.
    pub paths: Option<Vec<u16>>,
}

impl PeerConfig {
    /// A peer without a node or path restriction.
    pub fn new(id: u32, name: impl Into<String>, key: Key, roles: Roles) -> PeerConfig {
        PeerConfig {
            id,
            name: name.into(),
            key,
            roles,
            nodes: None,
            paths: None,
        }
    }

    /// Restricts NODE_STATE/CAPABILITY to the given node ids.
    pub fn with_nodes(mut self, nodes: impl Into<Vec<u16>>) -> PeerConfig {
        self.nodes = Some(nodes.into());
        self
    }

    /// Restricts PATH_STATE/POLICY to the given path ids.
    pub fn with_paths(mut self, paths: impl Into<Vec<u16>>) -> PeerConfig {
        self.paths = Some(paths.into());
        self
    }

    /// May this peer set state or policy for `path`?
    pub fn may_set_path(&self, path: PathId) -> bool {
        match &self.paths {
            None => true,
            Some(allowed) => allowed.contains(&path.0),
        }
    }

    /// May this peer announce state or capability for `node`?
    pub fn may_announce_for(&self, node: NodeId) -> bool {
        match &self.nodes {
            None => true,
            Some(allowed) => allowed.contains(&node.0),
        }
    }
}
