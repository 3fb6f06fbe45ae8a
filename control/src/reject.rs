//! Why a datagram was refused.
//!
//! Every refusal is one [`Reject`] variant carrying what was wrong, and maps
//! to one [`RejectCode`] whose snake_case name is stable: the data plane uses
//! it as a Prometheus label and `ctl` prints it, so renaming one is a
//! breaking change.

use core::fmt;

use crate::body_error::BodyError;
use crate::message::Kind;
use crate::replay::ReplayError;

/// The stable, detail-free name of a rejection, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    /// Shorter than header + tag + 4 bytes.
    Truncated,
    /// Longer than the configured maximum.
    Oversized,
    /// Not `INCP`.
    BadMagic,
    /// Not version 1.
    BadVersion,
    /// Unknown flag, reserved bits, or the wrong direction flag.
    MalformedHeader,
    /// No peer has this key id.
    UnknownPeer,
    /// The AEAD tag did not verify (wrong key, tampered bytes).
    AuthFailed,
    /// Sequence number already seen or older than the window.
    Replayed,
    /// Plaintext that does not decode or validate.
    MalformedBody,
    /// The peer may not send this kind, or not for this node or path.
    Unauthorised,
    /// Origin time too old or too far in the future.
    Stale,
    /// Client side: a reply that answers a different query.
    UnexpectedReply,
}

impl RejectCode {
    /// Every code, in wire-check order, for pre-registering counters.
    pub const ALL: [RejectCode; 12] = [
        RejectCode::Truncated,
        RejectCode::Oversized,
        RejectCode::BadMagic,
        RejectCode::BadVersion,
        RejectCode::MalformedHeader,
        RejectCode::UnknownPeer,
        RejectCode::AuthFailed,
        RejectCode::Replayed,
        RejectCode::MalformedBody,
        RejectCode::Unauthorised,
        RejectCode::Stale,
        RejectCode::UnexpectedReply,
    ];

    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectCode::Truncated => "truncated",
            RejectCode::Oversized => "oversized",
            RejectCode::BadMagic => "bad_magic",
            RejectCode::BadVersion => "bad_version",
            RejectCode::MalformedHeader => "malformed_header",
            RejectCode::UnknownPeer => "unknown_peer",
            RejectCode::AuthFailed => "auth_failed",
            RejectCode::Replayed => "replayed",
            RejectCode::MalformedBody => "malformed_body",
            RejectCode::Unauthorised => "unauthorised",
            RejectCode::Stale => "stale",
            RejectCode::UnexpectedReply => "unexpected_reply",
        }
    }

    /// Position in [`RejectCode::ALL`], for a dense counter array.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a header whose magic and version are right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Flag bits other than REPLY are set (the value holds only those).
    UnknownFlags(u8),
    /// The reserved 16 bits are not zero.
    ReservedNotZero(u16),
    /// The appliance received a datagram marked as a reply.
    ReplyFlagOnRequest,
    /// A client received a datagram not marked as a reply.
    ReplyFlagMissing,
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderProblem::UnknownFlags(b) => write!(f, "undefined flag bits {b:#04x} set"),
            HeaderProblem::ReservedNotZero(r) => write!(f, "reserved field is {r:#06x}, not 0"),
            HeaderProblem::ReplyFlagOnRequest => f.write_str("REPLY flag set on a request"),
            HeaderProblem::ReplyFlagMissing => f.write_str("REPLY flag missing on a reply"),
        }
    }
}

/// Why an authenticated, well-formed message may not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzError {
    /// The peer lacks the role this kind needs.
    RoleMissing {
        /// The sending peer.
        peer: u32,
        /// The message kind.
        kind: Kind,
    },
    /// The peer is restricted to other node ids.
    NodeNotAllowed {
        /// The sending peer.
        peer: u32,
        /// The node the message announces for.
        node: u16,
    },
    /// The peer is restricted to other path ids.
    PathNotAllowed {
        /// The sending peer.
        peer: u32,
        /// The first path the message names that the peer may not set.
        path: u16,
    },
    /// A path-restricted peer sent a POLICY with REPLACE, which would
    /// remove paths outside its list.
    ReplaceNotAllowed {
        /// The sending peer.
        peer: u32,
    },
}

impl fmt::Display for AuthzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AuthzError::RoleMissing { peer, kind } => write!(
                f,
                "peer {peer} lacks the '{}' role needed for {}",
                kind.required_role(),
                kind.name()
            ),
            AuthzError::NodeNotAllowed { peer, node } => {
                write!(f, "peer {peer} may not announce for node {node}")
            }
            AuthzError::PathNotAllowed { peer, path } => {
                write!(f, "peer {peer} may not set path {path}")
            }
            AuthzError::ReplaceNotAllowed { peer } => write!(
                f,
                "peer {peer} is restricted to named paths and may not replace the whole policy"
            ),
        }
    }
}

/// Why an origin time is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleProblem {
    /// Older than the maximum message age.
    TooOld {
        /// How old, in ns.
        age_ns: u64,
        /// The configured maximum, in ns.
        max_ns: u64,
    },
    /// Further ahead of the receiver's clock than allowed.
    FromFuture {
        /// How far ahead, in ns.
        ahead_ns: u64,
        /// The allowed skew, in ns.
        max_ns: u64,
    },
}

impl StaleProblem {
    /// Check 10 of `wire-format.md` §3.2, the same in both directions: an
    /// origin time more than `max_age_ns` behind `now_ns`, or more than
    /// `max_future_ns` ahead of it, is refused.
    pub const fn check(
        origin_ns: u64,
        now_ns: u64,
        max_age_ns: u64,
        max_future_ns: u64,
    ) -> Result<(), StaleProblem> {
        let age_ns = now_ns.saturating_sub(origin_ns);
        if age_ns > max_age_ns {
            return Err(StaleProblem::TooOld {
                age_ns,
                max_ns: max_age_ns,
            });
        }
        let ahead_ns = origin_ns.saturating_sub(now_ns);
        if ahead_ns > max_future_ns {
            return Err(StaleProblem::FromFuture {
                ahead_ns,
                max_ns: max_future_ns,
            });
        }
        Ok(())
    }
}

impl fmt::Display for StaleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StaleProblem::TooOld { age_ns, max_ns } => write!(
                f,
                "origin time is {} ms old, more than {} ms",
                age_ns / 1_000_000,
                max_ns / 1_000_000
            ),
            StaleProblem::FromFuture { ahead_ns, max_ns } => write!(
                f,
                "origin time is {} ms in the future, more than {} ms",
                ahead_ns / 1_000_000,
                max_ns / 1_000_000
            ),
        }
    }
}

/// A refused datagram, with what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum Reject {
    /// Shorter than the minimum datagram.
    Truncated {
        /// Bytes received.
        len: usize,
        /// Minimum length.
        min: usize,
    },
    /// Longer than the configured maximum.
    Oversized {
        /// Bytes received.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The first four bytes.
    BadMagic([u8; 4]),
    /// The version byte.
    BadVersion(u8),
    /// Flags, reserved bits or direction.
    MalformedHeader(HeaderProblem),
    /// The key id no peer has.
    UnknownPeer(u32),
    /// The AEAD tag did not verify.
    AuthFailed,
    /// The replay window refused the sequence number.
    Replayed(ReplayError),
    /// The plaintext is malformed or invalid.
    MalformedBody(BodyError),
    /// The peer may not send this.
    Unauthorised(AuthzError),
    /// The origin time is outside the freshness window.
    Stale(StaleProblem),
    /// Client side: the reply answers another query.
    UnexpectedReply {
        /// The query seq the client waits for.
        expected: u64,
        /// The IN_REPLY_TO the reply carries.
        got: u64,
    },
}

impl Reject {
    /// The counter name of this rejection.
    pub const fn code(&self) -> RejectCode {
        match self {
            Reject::Truncated { .. } => RejectCode::Truncated,
            Reject::Oversized { .. } => RejectCode::Oversized,
            Reject::BadMagic(_) => RejectCode::BadMagic,
            Reject::BadVersion(_) => RejectCode::BadVersion,
            Reject::MalformedHeader(_) => RejectCode::MalformedHeader,
            Reject::UnknownPeer(_) => RejectCode::UnknownPeer,
            Reject::AuthFailed => RejectCode::AuthFailed,
            Reject::Replayed(_) => RejectCode::Replayed,
            Reject::MalformedBody(_) => RejectCode::MalformedBody,
            Reject::Unauthorised(_) => RejectCode::Unauthorised,
            Reject::Stale(_) => RejectCode::Stale,
            Reject::UnexpectedReply { .. } => RejectCode::UnexpectedReply,
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            Reject::Truncated { len, min } => {
                write!(f, "{code}: {len} bytes, fewer than the minimum {min}")
            }
            Reject::Oversized { len, max } => {
                write!(f, "{code}: {len} bytes, more than the maximum {max}")
            }
            Reject::BadMagic(m) => write!(f, "{code}: {m:02x?} is not \"INCP\""),
            Reject::BadVersion(v) => write!(f, "{code}: version {v}, expected 1"),
            Reject::MalformedHeader(p) => write!(f, "{code}: {p}"),
            Reject::UnknownPeer(id) => write!(f, "{code}: no peer has key id {id}"),
            Reject::AuthFailed => write!(
                f,
                "{code}: authentication tag does not verify (wrong key or altered bytes)"
            ),
            Reject::Replayed(e) => write!(f, "{code}: {e}"),
            Reject::MalformedBody(e) => write!(f, "{code}: {e}"),
            Reject::Unauthorised(e) => write!(f, "{code}: {e}"),
            Reject::Stale(p) => write!(f, "{code}: {p}"),
            Reject::UnexpectedReply { expected, got } => write!(
                f,
                "{code}: reply to query {got}, waiting for the reply to {expected}"
            ),
        }
    }
}

impl std::error::Error for Reject {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_indexed_in_order() {
        for (i, c) in RejectCode::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        let mut names: Vec<_> = RejectCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RejectCode::ALL.len());
    }
}
