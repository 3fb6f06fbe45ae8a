//! Why a datagram could not be built.

use core::fmt;

use crate::body_error::BodyError;

/// A message that cannot be sealed.
#[derive(Debug, Clone, PartialEq)]
pub enum SealError {
    /// The message does not validate (the receiver would refuse it).
    Body(BodyError),
    /// The sealed datagram would exceed the maximum.
    TooLarge {
        /// Bytes it would have.
        len: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// `seal_reply` for a peer id that is not configured.
    UnknownPeer(u32),
    /// The sender used seq u64::MAX; a new key id (or restart with a
    /// realtime-based seq, which is far below it) is needed.
    SeqExhausted,
    /// The AEAD refused (only for absurd lengths; kept for completeness).
    Crypto,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Body(e) => write!(f, "invalid message: {e}"),
            SealError::TooLarge { len, max } => {
                write!(f, "sealed datagram would be {len} bytes, more than {max}")
            }
            SealError::UnknownPeer(id) => write!(f, "no peer with key id {id}"),
            SealError::SeqExhausted => f.write_str("sequence numbers exhausted"),
            SealError::Crypto => f.write_str("encryption failed"),
        }
    }
}

impl std::error::Error for SealError {}

impl From<BodyError> for SealError {
    fn from(e: BodyError) -> SealError {
        SealError::Body(e)
    }
}
