//! The appliance side: accept request datagrams, seal replies.
//!
//! [`Receiver::accept`] runs the checks in the order the wire spec fixes and
//! returns the first failure:
//!
//! 1. size: `truncated`, `oversized`
//! 2. header: `bad_magic`, `bad_version`, `malformed_header`
//! 3. `unknown_peer` (key id)
//! 4. `auth_failed` (AEAD open)
//! 5. `replayed` (window check, read-only)
//! 6. `malformed_body` (decode and validate)
//! 7. `stale` (origin time against the caller's realtime clock)
//! 8. `unauthorised` (role, node and path restrictions)
//!
//! Only when all pass does the peer's replay window move. Nothing else in the
//! receiver changes on `accept`, so a rejected datagram leaves it exactly as
//! it was.

use core::fmt;
use std::collections::BTreeMap;

use rand::{CryptoRng, RngCore};

use crate::aead;
use crate::body_error::BodyError;
use crate::header::{
    Direction, Header, DEFAULT_MAX_DATAGRAM, FLAG_REPLY, HEADER_LEN, MAX_REPLY_DATAGRAM,
    MAX_UDP_PAYLOAD, MIN_DATAGRAM_LEN, TAG_LEN,
};
use crate::message::{Kind, Message};
use crate::peer::PeerConfig;
use crate::reject::{AuthzError, Reject, StaleProblem};
use crate::replay::ReplayWindow;
use crate::reply::{Reply, MAX_REPLY_BODY};
use crate::seal_error::SealError;
use crate::sender::initial_seq;

/// Default oldest origin time accepted (30 s), by the appliance for
/// requests and by clients for replies.
pub const DEFAULT_MAX_MESSAGE_AGE_NS: u64 = 30_000_000_000;
/// Default furthest an origin time may be ahead of the receiver's clock (5 s).
pub const DEFAULT_MAX_FUTURE_NS: u64 = 5_000_000_000;

/// Receiver limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Largest request datagram accepted (default 4096).
    pub max_datagram: usize,
    /// Oldest origin time accepted, relative to the receiver's realtime
    /// clock (default 30 s).
    pub max_message_age_ns: u64,
    /// Furthest an origin time may be ahead of the receiver's clock
    /// (default 5 s): tolerates clock skew, refuses pre-dated messages.
    pub max_future_ns: u64,
}

impl Default for ReceiverConfig {
    fn default() -> ReceiverConfig {
        ReceiverConfig {
            max_datagram: DEFAULT_MAX_DATAGRAM,
            max_message_age_ns: DEFAULT_MAX_MESSAGE_AGE_NS,
            max_future_ns: DEFAULT_MAX_FUTURE_NS,
        }
    }
}

/// A configuration the receiver cannot work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Two peers share a key id.
    DuplicatePeer(u32),
    /// `max_datagram` outside what UDP and the header allow.
    MaxDatagram {
        /// The value given.
        value: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// `max_message_age_ns` of zero would refuse everything.
    ZeroMessageAge,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::DuplicatePeer(id) => write!(f, "two peers have key id {id}"),
            ConfigError::MaxDatagram { value, min, max } => {
                write!(f, "max datagram {value} outside {min}..={max}")
            }
            ConfigError::ZeroMessageAge => f.write_str("max message age must be above 0"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A datagram that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The sending peer (its key id).
    pub peer_id: u32,
    /// The datagram's seq (the `in_reply_to` for a QUERY's reply).
    pub seq: u64,
    /// The sender's realtime clock at sealing, in ns (for update-to-visible
    /// latency).
    pub origin_time_ns: u64,
    /// The message, validated and authorised.
    pub message: Message,
}

#[derive(Debug, Clone)]
struct PeerSlot {
    config: PeerConfig,
    window: ReplayWindow,
    /// Next seq for replies to this peer; never reused.
    next_reply_seq: u64,
}

impl PeerSlot {
    fn new(config: PeerConfig) -> PeerSlot {
        PeerSlot {
            config,
            window: ReplayWindow::new(),
            next_reply_seq: 0,
        }
    }
}

/// The appliance's end of the control channel.
#[derive(Debug, Clone)]
pub struct Receiver {
    peers: BTreeMap<u32, PeerSlot>,
    config: ReceiverConfig,
}

impl Receiver {
    /// A receiver for these peers.
    pub fn new(peers: Vec<PeerConfig>, config: ReceiverConfig) -> Result<Receiver, ConfigError> {
        if !(MIN_DATAGRAM_LEN..=MAX_UDP_PAYLOAD).contains(&config.max_datagram) {
            return Err(ConfigError::MaxDatagram {
                value: config.max_datagram,
                min: MIN_DATAGRAM_LEN,
                max: MAX_UDP_PAYLOAD,
            });
        }
        if config.max_message_age_ns == 0 {
            return Err(ConfigError::ZeroMessageAge);
        }
        Ok(Receiver {
            peers: slots(peers, &BTreeMap::new())?,
            config,
        })
    }

    /// Swaps the peer set (configuration reload). Peers that stay keep their
    /// replay window and reply seq, so a reload cannot reopen a replay.
    pub fn replace_peers(&mut self, peers: Vec<PeerConfig>) -> Result<(), ConfigError> {
        self.peers = slots(peers, &self.peers)?;
        Ok(())
    }

    /// The limits in force.
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// A configured peer.
    pub fn peer(&self, id: u32) -> Option<&PeerConfig> {
        self.peers.get(&id).map(|s| &s.config)
    }

    /// All configured peers, by id.
    pub fn peers(&self) -> impl Iterator<Item = &PeerConfig> {
        self.peers.values().map(|s| &s.config)
    }

    /// A peer's replay window (for status output and tests).
    pub fn window(&self, id: u32) -> Option<&ReplayWindow> {
        self.peers.get(&id).map(|s| &s.window)
    }

    /// Checks one request datagram. `now_realtime_ns` is the caller's
    /// CLOCK_REALTIME, used only for the freshness check.
    pub fn accept(&mut self, datagram: &[u8], now_realtime_ns: u64) -> Result<Accepted, Reject> {
        let header = Header::parse(datagram, Direction::Request, self.config.max_datagram)?;
        let slot = self
            .peers
            .get(&header.key_id)
            .ok_or(Reject::UnknownPeer(header.key_id))?;
        let plaintext = aead::open(&slot.config.key, &header, datagram)?;
        slot.window.check(header.seq).map_err(Reject::Replayed)?;
        let decoded = Message::decode(&plaintext).map_err(Reject::MalformedBody)?;
        let kind = decoded.message.kind();
        if kind == Kind::Reply {
            return Err(Reject::MalformedBody(BodyError::UnexpectedKind(kind)));
        }
        self.check_fresh(decoded.origin_time_ns, now_realtime_ns)?;
        authorise(&slot.config, &decoded.message)?;
        // Everything passed: only now may the window move.
        if let Some(slot) = self.peers.get_mut(&header.key_id) {
            slot.window.commit(header.seq);
        }
        Ok(Accepted {
            peer_id: header.key_id,
            seq: header.seq,
            origin_time_ns: decoded.origin_time_ns,
            message: decoded.message,
        })
    }

    fn check_fresh(&self, origin_ns: u64, now_ns: u64) -> Result<(), Reject> {
        StaleProblem::check(
            origin_ns,
            now_ns,
            self.config.max_message_age_ns,
            self.config.max_future_ns,
        )
        .map_err(Reject::Stale)
    }

    /// Seals the reply to a query from `peer_id` under that peer's key, with
    /// the REPLY flag and the appliance's own per-peer seq (which starts at
    /// the realtime clock in µs, like a sender's, so it keeps rising across
    /// appliance restarts).
    pub fn seal_reply<R: RngCore + CryptoRng>(
        &mut self,
        peer_id: u32,
        in_reply_to: u64,
        json_body: &str,
        now_realtime_ns: u64,
        rng: &mut R,
    ) -> Result<Vec<u8>, SealError> {
        let slot = self
            .peers
            .get_mut(&peer_id)
            .ok_or(SealError::UnknownPeer(peer_id))?;
        if json_body.len() > MAX_REPLY_BODY {
            return Err(SealError::TooLarge {
                len: json_body.len() + (MAX_REPLY_DATAGRAM - MAX_REPLY_BODY),
                max: MAX_REPLY_DATAGRAM,
            });
        }
        let seq = slot.next_reply_seq.max(initial_seq(now_realtime_ns));
        let next = seq.checked_add(1).ok_or(SealError::SeqExhausted)?;
        let message = Message::Reply(Reply {
            in_reply_to,
            body: json_body.to_string(),
        });
        let plaintext = message.encode(now_realtime_ns)?;
        let len = HEADER_LEN + plaintext.len() + TAG_LEN;
        if len > MAX_REPLY_DATAGRAM {
            return Err(SealError::TooLarge {
                len,
                max: MAX_REPLY_DATAGRAM,
            });
        }
        let header = Header {
            flags: FLAG_REPLY,
            key_id: peer_id,
            seq,
            nonce: aead::random_nonce(rng),
        };
        let datagram = aead::seal(&slot.config.key, &header, &plaintext)?;
        slot.next_reply_seq = next;
        Ok(datagram)
    }
}

/// May this peer send this message?
fn authorise(peer: &PeerConfig, message: &Message) -> Result<(), Reject> {
    let kind = message.kind();
    if !peer.roles.contains(kind.required_role()) || kind == Kind::Reply {
        return Err(Reject::Unauthorised(AuthzError::RoleMissing {
            peer: peer.id,
            kind,
        }));
    }
    if let Some(node) = message.node() {
        if !peer.may_announce_for(node) {
            return Err(Reject::Unauthorised(AuthzError::NodeNotAllowed {
                peer: peer.id,
                node: node.0,
            }));
        }
    }
    if peer.paths.is_some() {
        if let Message::Policy(p) = message {
            if p.replace {
                return Err(Reject::Unauthorised(AuthzError::ReplaceNotAllowed {
                    peer: peer.id,
                }));
            }
        }
    }
    if let Some(path) = message.paths().find(|p| !peer.may_set_path(*p)) {
        return Err(Reject::Unauthorised(AuthzError::PathNotAllowed {
            peer: peer.id,
            path: path.0,
        }));
    }
    Ok(())
}

fn slots(
    peers: Vec<PeerConfig>,
    old: &BTreeMap<u32, PeerSlot>,
) -> Result<BTreeMap<u32, PeerSlot>, ConfigError> {
    let mut out = BTreeMap::new();
    for p in peers {
        let id = p.id;
        let slot = match old.get(&id) {
            Some(prev) => PeerSlot {
                config: p,
                window: prev.window.clone(),
                next_reply_seq: prev.next_reply_seq,
            },
            None => PeerSlot::new(p),
        };
        if out.insert(id, slot).is_some() {
            return Err(ConfigError::DuplicatePeer(id));
        }
    }
    Ok(out)
}
