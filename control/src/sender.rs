//! The client side (orchestrator, compute-node agent, `intellinode ctl`):
//! seal requests, open the appliance's replies.
//!
//! ## Choosing the first seq
//!
//! The receiver remembers, per key id, the highest seq it accepted, and
//! refuses anything at or below it once it falls out of the 1024-wide
//! window. A client that restarts and counts from 0 again would therefore be
//! refused until it passed its old high-water mark. Start from
//! [`initial_seq`]`(now_realtime_ns)`, the realtime clock in microseconds:
//! it is above anything the previous run could have used as long as that
//! run sent fewer than one datagram per microsecond on average, and the
//! clock has not been stepped back.

use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore};

use crate::aead;
use crate::body_error::BodyError;
use crate::header::{
    Direction, Header, DEFAULT_MAX_DATAGRAM, HEADER_LEN, MAX_REPLY_DATAGRAM, TAG_LEN,
};
use crate::key::Key;
use crate::message::{Kind, Message};
use crate::receiver::{DEFAULT_MAX_FUTURE_NS, DEFAULT_MAX_MESSAGE_AGE_NS};
use crate::reject::{Reject, StaleProblem};
use crate::seal_error::SealError;

/// The recommended first seq: the realtime clock in microseconds.
pub const fn initial_seq(now_realtime_ns: u64) -> u64 {
    now_realtime_ns / 1000
}

/// Seals requests under one key id. `R` supplies nonces; it is the OS RNG
/// unless a test injects a seeded one with [`Sender::with_rng`].
#[derive(Debug)]
pub struct Sender<R = OsRng> {
    key_id: u32,
    key: Key,
    /// `None` once u64::MAX has been used.
    next_seq: Option<u64>,
    max_datagram: usize,
    /// Freshness limits for replies, as the appliance's for requests.
    max_reply_age_ns: u64,
    max_reply_future_ns: u64,
    rng: R,
}

impl Sender<OsRng> {
    /// A sender whose first datagram carries `first_seq` (see the module
    /// docs: use [`initial_seq`]).
    pub fn new(key_id: u32, key: Key, first_seq: u64) -> Sender<OsRng> {
        Sender::with_rng(key_id, key, first_seq, OsRng)
    }
}

impl<R: RngCore + CryptoRng> Sender<R> {
    /// A sender drawing nonces from `rng`.
    pub fn with_rng(key_id: u32, key: Key, first_seq: u64, rng: R) -> Sender<R> {
        Sender {
            key_id,
            key,
            next_seq: Some(first_seq),
            max_datagram: DEFAULT_MAX_DATAGRAM,
            max_reply_age_ns: DEFAULT_MAX_MESSAGE_AGE_NS,
            max_reply_future_ns: DEFAULT_MAX_FUTURE_NS,
            rng,
        }
    }

    /// Refuses to seal datagrams larger than `max` (match the appliance's
    /// configured maximum; default 4096).
    pub fn with_max_datagram(mut self, max: usize) -> Sender<R> {
        self.max_datagram = max;
        self
    }

    /// Refuses replies whose origin time is more than `max_age_ns` old or
    /// `max_future_ns` ahead (defaults 30 s and 5 s, the appliance's limits
    /// for requests).
    pub fn with_reply_freshness(mut self, max_age_ns: u64, max_future_ns: u64) -> Sender<R> {
        self.max_reply_age_ns = max_age_ns;
        self.max_reply_future_ns = max_future_ns;
        self
    }

    /// The key id this sender seals under.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The seq the next [`Sender::seal`] will use; for a QUERY, remember it
    /// and pass it to [`Sender::open_reply`].
    pub fn next_seq(&self) -> Option<u64> {
        self.next_seq
    }

    /// Seals one request. The seq advances only when a datagram is returned.
    pub fn seal(&mut self, message: &Message, now_realtime_ns: u64) -> Result<Vec<u8>, SealError> {
        let seq = self.next_seq.ok_or(SealError::SeqExhausted)?;
        if message.kind() == Kind::Reply {
            return Err(SealError::Body(BodyError::UnexpectedKind(Kind::Reply)));
        }
        let plaintext = message.encode(now_realtime_ns)?;
        let len = HEADER_LEN + plaintext.len() + TAG_LEN;
        if len > self.max_datagram {
            return Err(SealError::TooLarge {
                len,
                max: self.max_datagram,
            });
        }
        let header = Header {
            flags: 0,
            key_id: self.key_id,
            seq,
            nonce: aead::random_nonce(&mut self.rng),
        };
        let datagram = aead::seal(&self.key, &header, &plaintext)?;
        self.next_seq = seq.checked_add(1);
        Ok(datagram)
    }

    /// Verifies a reply and returns its JSON body if it answers the query
    /// sealed with seq `expected_in_reply_to`. A reply to an older query
    /// (late or replayed) is `unexpected_reply`; one whose origin time is
    /// outside the freshness limits against `now_realtime_ns` (the caller's
    /// CLOCK_REALTIME) is `stale`, as a request would be at the appliance.
    pub fn open_reply(
        &self,
        datagram: &[u8],
        expected_in_reply_to: u64,
        now_realtime_ns: u64,
    ) -> Result<String, Reject> {
        let header = Header::parse(datagram, Direction::Reply, MAX_REPLY_DATAGRAM)?;
        if header.key_id != self.key_id {
            return Err(Reject::UnknownPeer(header.key_id));
        }
        let plaintext = aead::open(&self.key, &header, datagram)?;
        let decoded = Message::decode(&plaintext).map_err(Reject::MalformedBody)?;
        let body = match decoded.message {
            Message::Reply(r) if r.in_reply_to == expected_in_reply_to => r.body,
            Message::Reply(r) => {
                return Err(Reject::UnexpectedReply {
                    expected: expected_in_reply_to,
                    got: r.in_reply_to,
                })
            }
            other => {
                return Err(Reject::MalformedBody(BodyError::UnexpectedKind(
                    other.kind(),
                )))
            }
        };
        // After the IN_REPLY_TO match, so `stale` always means "the answer
        // to this query, but too old or too new": a clock problem worth
        // stopping for, not an old reply to some other query.
        StaleProblem::check(
            decoded.origin_time_ns,
            now_realtime_ns,
            self.max_reply_age_ns,
            self.max_reply_future_ns,
        )
        .map_err(Reject::Stale)?;
        Ok(body)
    }
}
