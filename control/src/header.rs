//! The 44-byte cleartext header of every INCP datagram.
//!
//! ```text
//!  0       4   5   6       8           12                      20
//! +-------+---+---+-------+-----------+-----------------------+------------------------+-----------------+
//! | INCP  |ver|flg| rsvd  |  key_id   |          seq          |   nonce (24 bytes)     | ciphertext+tag  |
//! +-------+---+---+-------+-----------+-----------------------+------------------------+-----------------+
//! ```
//!
//! The whole header is the AEAD's associated data, so every bit of it is
//! authenticated even though it travels in the clear. It is nevertheless
//! checked *before* decrypting: a datagram that cannot possibly be ours is
//! refused for the price of a few compares, not a Poly1305 pass.

use crate::reject::{HeaderProblem, Reject};

/// `"INCP"`: IntelliNode Control Protocol.
pub const MAGIC: [u8; 4] = *b"INCP";
/// The only protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Flags bit 0: the datagram travels appliance -> client.
pub const FLAG_REPLY: u8 = 0x01;
/// Bytes of cleartext header (and of associated data).
pub const HEADER_LEN: usize = 44;
/// Bytes of XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Bytes of Poly1305 tag after the ciphertext.
pub const TAG_LEN: usize = 16;
/// Anything shorter is `truncated`: header, tag and at least 4 bytes of
/// ciphertext (no valid plaintext is shorter than its 10-byte preamble, but
/// the cut-off is fixed by the wire spec, the rest is `malformed_body`).
pub const MIN_DATAGRAM_LEN: usize = HEADER_LEN + TAG_LEN + 4;
/// Default largest datagram the appliance accepts.
pub const DEFAULT_MAX_DATAGRAM: usize = 4096;
/// Largest reply datagram; replies carry JSON and may be long.
pub const MAX_REPLY_DATAGRAM: usize = 65000;
/// Largest UDP payload over IPv4; no configured maximum may exceed it.
pub const MAX_UDP_PAYLOAD: usize = 65507;
/// Default UDP port of the control channel.
pub const DEFAULT_PORT: u16 = 7470;

/// Which way a datagram travels; it decides what the flags must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client (orchestrator, `ctl`) -> appliance: flags are 0.
    Request,
    /// Appliance -> client: flags are exactly [`FLAG_REPLY`].
    Reply,
}

/// The decoded cleartext header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Flags byte; only [`FLAG_REPLY`] is defined.
    pub flags: u8,
    /// The peer whose key seals the datagram.
    pub key_id: u32,
    /// Per (key_id, direction) sequence number.
    pub seq: u64,
    /// The random XChaCha20 nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// The 44 header bytes, which are also the AEAD associated data.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = self.flags;
        // 6..8 reserved, already zero.
        out[8..12].copy_from_slice(&self.key_id.to_be_bytes());
        out[12..20].copy_from_slice(&self.seq.to_be_bytes());
        out[20..44].copy_from_slice(&self.nonce);
        out
    }

    /// Checks a whole datagram's size and header, in the order the wire spec
    /// fixes (truncated, oversized, bad_magic, bad_version, malformed_header),
    /// and returns the header. Reads nothing past the first 44 bytes.
    pub fn parse(datagram: &[u8], direction: Direction, max_len: usize) -> Result<Header, Reject> {
        let len = datagram.len();
        if len < MIN_DATAGRAM_LEN {
            return Err(Reject::Truncated {
                len,
                min: MIN_DATAGRAM_LEN,
            });
        }
        if len > max_len {
            return Err(Reject::Oversized { len, max: max_len });
        }
        // The length check above makes every fixed-size read below succeed;
        // `take` still returns a Result so a mistake here cannot panic.
        let magic: [u8; 4] = take(datagram, 0)?;
        if magic != MAGIC {
            return Err(Reject::BadMagic(magic));
        }
        let [version, flags]: [u8; 2] = take(datagram, 4)?;
        if version != VERSION {
            return Err(Reject::BadVersion(version));
        }
        let unknown = flags & !FLAG_REPLY;
        if unknown != 0 {
            return Err(Reject::MalformedHeader(HeaderProblem::UnknownFlags(
                unknown,
            )));
        }
        let reserved = u16::from_be_bytes(take(datagram, 6)?);
        if reserved != 0 {
            return Err(Reject::MalformedHeader(HeaderProblem::ReservedNotZero(
                reserved,
            )));
        }
        match (direction, flags & FLAG_REPLY != 0) {
            // A reply reflected back at the appliance (same key, same AAD
            // layout) must never be mistaken for a request.
            (Direction::Request, true) => {
                return Err(Reject::MalformedHeader(HeaderProblem::ReplyFlagOnRequest))
            }
            (Direction::Reply, false) => {
                return Err(Reject::MalformedHeader(HeaderProblem::ReplyFlagMissing))
            }
            _ => {}
        }
        Ok(Header {
            flags,
            key_id: u32::from_be_bytes(take(datagram, 8)?),
            seq: u64::from_be_bytes(take(datagram, 12)?),
            nonce: take(datagram, 20)?,
        })
    }
}

/// `N` bytes at `at`, or `truncated` if they are not there.
fn take<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], Reject> {
    buf.get(at..at.saturating_add(N))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(Reject::Truncated {
            len: buf.len(),
            min: MIN_DATAGRAM_LEN,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(flags: u8) -> Vec<u8> {
        let h = Header {
            flags,
            key_id: 0x0102_0304,
            seq: 0x1122_3344_5566_7788,
            nonce: [7; NONCE_LEN],
        };
        let mut d = h.emit().to_vec();
        d.resize(MIN_DATAGRAM_LEN, 0);
        d
    }

    #[test]
    fn emit_then_parse_round_trips() {
        let d = datagram(0);
        let h = Header::parse(&d, Direction::Request, 4096).expect("valid");
        assert_eq!(h.key_id, 0x0102_0304);
        assert_eq!(h.seq, 0x1122_3344_5566_7788);
        assert_eq!(h.nonce, [7; NONCE_LEN]);
        assert_eq!(&d[0..8], b"INCP\x01\x00\x00\x00");
    }

    #[test]
    fn reply_flag_must_match_direction() {
        let req = datagram(0);
        let rep = datagram(FLAG_REPLY);
        assert_eq!(
            Header::parse(&rep, Direction::Request, 4096),
            Err(Reject::MalformedHeader(HeaderProblem::ReplyFlagOnRequest))
        );
        assert_eq!(
            Header::parse(&req, Direction::Reply, 4096),
            Err(Reject::MalformedHeader(HeaderProblem::ReplyFlagMissing))
        );
        assert!(Header::parse(&rep, Direction::Reply, 4096).is_ok());
    }

    #[test]
    fn checks_run_in_wire_order() {
        assert!(matches!(
            Header::parse(&[0; 10], Direction::Request, 4096),
            Err(Reject::Truncated { len: 10, .. })
        ));
        assert!(matches!(
            Header::parse(&[0; 100], Direction::Request, 99),
            Err(Reject::Oversized { len: 100, max: 99 })
        ));
        let mut d = datagram(0);
        d[4] = 2;
        d[0] = b'X';
        assert!(matches!(
            Header::parse(&d, Direction::Request, 4096),
            Err(Reject::BadMagic(_))
        ));
        d[0] = b'I';
        assert_eq!(
            Header::parse(&d, Direction::Request, 4096),
            Err(Reject::BadVersion(2))
        );
        d[4] = 1;
        d[5] = 0x80;
        assert_eq!(
            Header::parse(&d, Direction::Request, 4096),
            Err(Reject::MalformedHeader(HeaderProblem::UnknownFlags(0x80)))
        );
        d[5] = 0;
        d[7] = 1;
        assert_eq!(
            Header::parse(&d, Direction::Request, 4096),
            Err(Reject::MalformedHeader(HeaderProblem::ReservedNotZero(1)))
        );
    }
}
