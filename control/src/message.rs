//! The decrypted plaintext: a 10-byte preamble, then records.
//!
//! ```text
//!  0   1   2                               10
//! +---+---+-------------------------------+---------------------------+
//! |knd|rsv|     origin_time_ns (u64)      | records ... to the end    |
//! +---+---+-------------------------------+---------------------------+
//! ```

use core::fmt;

use crate::body_error::BodyError;
use crate::capability::Capability;
use crate::ids::{NodeId, PathId};
use crate::node_state::NodeState;
use crate::path_state::PathState;
use crate::policy::Policy;
use crate::query::Query;
use crate::record::{parse_records, RecordWriter};
use crate::reply::Reply;
use crate::roles::Roles;

/// Bytes before the first record.
pub const PREAMBLE_LEN: usize = 10;

/// Message kind, the plaintext's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 1: measurements of a path.
    PathState = 1,
    /// 2: load of a compute node.
    NodeState = 2,
    /// 3: what a compute node serves.
    Capability = 3,
    /// 4: paths, forwarding, weights, thresholds.
    Policy = 4,
    /// 5: a question to the appliance.
    Query = 5,
    /// 6: the appliance's answer.
    Reply = 6,
}

impl Kind {
    /// The wire value.
    pub const fn to_wire(self) -> u8 {
        self as u8
    }

    /// Decodes a wire value.
    pub fn from_wire(v: u8) -> Result<Kind, BodyError> {
        match v {
            1 => Ok(Kind::PathState),
            2 => Ok(Kind::NodeState),
            3 => Ok(Kind::Capability),
            4 => Ok(Kind::Policy),
            5 => Ok(Kind::Query),
            6 => Ok(Kind::Reply),
            other => Err(BodyError::UnknownKind(other)),
        }
    }

    /// Stable upper-case name, as in the wire spec.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::PathState => "PATH_STATE",
            Kind::NodeState => "NODE_STATE",
            Kind::Capability => "CAPABILITY",
            Kind::Policy => "POLICY",
            Kind::Query => "QUERY",
            Kind::Reply => "REPLY",
        }
    }

    /// The role a peer needs to send this kind. REPLY needs a role nobody
    /// can hold: only the appliance sends replies.
    pub const fn required_role(self) -> Roles {
        match self {
            Kind::PathState | Kind::NodeState => Roles::STATE,
            Kind::Capability => Roles::CAPABILITY,
            Kind::Policy => Roles::POLICY,
            Kind::Query => Roles::QUERY,
            Kind::Reply => Roles::NONE,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded, validated message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// PATH_STATE.
    PathState(PathState),
    /// NODE_STATE.
    NodeState(NodeState),
    /// CAPABILITY.
    Capability(Capability),
    /// POLICY.
    Policy(Policy),
    /// QUERY.
    Query(Query),
    /// REPLY.
    Reply(Reply),
}

/// A plaintext's message and origin time.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The sender's CLOCK_REALTIME when it sealed the message, in ns.
    pub origin_time_ns: u64,
    /// The message.
    pub message: Message,
}

impl Message {
    /// The kind.
    pub const fn kind(&self) -> Kind {
        match self {
            Message::PathState(_) => Kind::PathState,
            Message::NodeState(_) => Kind::NodeState,
            Message::Capability(_) => Kind::Capability,
            Message::Policy(_) => Kind::Policy,
            Message::Query(_) => Kind::Query,
            Message::Reply(_) => Kind::Reply,
        }
    }

    /// The node a NODE_STATE or CAPABILITY speaks for.
    pub const fn node(&self) -> Option<NodeId> {
        match self {
            Message::NodeState(n) => Some(n.node),
            Message::Capability(c) => Some(c.node),
            _ => None,
        }
    }

    /// Every path id the message names: a PATH_STATE's path, and a
    /// POLICY's PATH_DEF ids and FWD_ENTRY candidates (repeats included).
    pub fn paths(&self) -> impl Iterator<Item = PathId> + '_ {
        let (state, policy) = match self {
            Message::PathState(s) => (Some(s.path), None),
            Message::Policy(p) => (None, Some(p)),
            _ => (None, None),
        };
        let policy_paths = policy.into_iter().flat_map(|p| {
            p.path_defs
                .iter()
                .map(|d| d.id)
                .chain(p.fwd_entries.iter().flat_map(|e| e.paths.iter().copied()))
        });
        state.into_iter().chain(policy_paths)
    }

    /// Decodes and validates a plaintext. Never panics; every problem is a
    /// [`BodyError`].
    pub fn decode(plaintext: &[u8]) -> Result<Decoded, BodyError> {
        let (preamble, records) =
            plaintext
                .split_at_checked(PREAMBLE_LEN)
                .ok_or(BodyError::TooShort {
                    len: plaintext.len(),
                })?;
        let [kind, reserved, t @ ..]: [u8; PREAMBLE_LEN] =
            preamble.try_into().map_err(|_| BodyError::TooShort {
                len: plaintext.len(),
            })?;
        let kind = Kind::from_wire(kind)?;
        if reserved != 0 {
            return Err(BodyError::ReservedNotZero(reserved));
        }
        let recs = parse_records(records)?;
        let message = match kind {
            Kind::PathState => Message::PathState(PathState::decode(&recs)?),
            Kind::NodeState => Message::NodeState(NodeState::decode(&recs)?),
            Kind::Capability => Message::Capability(Capability::decode(&recs)?),
            Kind::Policy => Message::Policy(Policy::decode(&recs)?),
            Kind::Query => Message::Query(Query::decode(&recs)?),
            Kind::Reply => Message::Reply(Reply::decode(&recs)?),
        };
        Ok(Decoded {
            origin_time_ns: u64::from_be_bytes(t),
            message,
        })
    }

    /// Encodes the plaintext. The result is decoded again before it is
    /// returned, so a sender can never emit what a receiver would refuse
    /// as `malformed_body`.
    pub fn encode(&self, origin_time_ns: u64) -> Result<Vec<u8>, BodyError> {
        let mut pre = Vec::with_capacity(256);
        pre.push(self.kind().to_wire());
        pre.push(0);
        pre.extend_from_slice(&origin_time_ns.to_be_bytes());
        let mut w = RecordWriter::new(pre);
        match self {
            Message::PathState(m) => m.encode(&mut w)?,
            Message::NodeState(m) => m.encode(&mut w)?,
            Message::Capability(m) => m.encode(&mut w)?,
            Message::Policy(m) => m.encode(&mut w)?,
            Message::Query(m) => m.encode(&mut w)?,
            Message::Reply(m) => m.encode(&mut w)?,
        }
        let out = w.finish();
        Message::decode(&out)?;
        Ok(out)
    }
}

impl From<PathState> for Message {
    fn from(m: PathState) -> Message {
        Message::PathState(m)
    }
}

impl From<NodeState> for Message {
    fn from(m: NodeState) -> Message {
        Message::NodeState(m)
    }
}

impl From<Capability> for Message {
    fn from(m: Capability) -> Message {
        Message::Capability(m)
    }
}

impl From<Policy> for Message {
    fn from(m: Policy) -> Message {
        Message::Policy(m)
    }
}

impl From<Query> for Message {
    fn from(m: Query) -> Message {
        Message::Query(m)
    }
}

impl From<Reply> for Message {
    fn from(m: Reply) -> Message {
        Message::Reply(m)
    }
}
