//! The UDP inference protocol of `emulator serve --udp` and `emulator agent
//! --transport udp` (docs/wire-format.md §8), encoded and decoded without
//! I/O.
//!
//! Every datagram starts with the same 16-byte header: magic `INUD`,
//! version 1, kind, flags (u16), request id (u64), all big-endian. A
//! request carries the OpenAI JSON body; the answer is a stream of token
//! datagrams (sequence number, token count, the tokens' text), the last
//! one flagged [`FLAG_LAST`]; a request the server refuses gets one error
//! datagram.

use std::fmt;

/// The first four bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"INUD";
/// The only version.
pub const VERSION: u8 = 1;
/// Largest datagram either side sends or accepts: a request fits one
/// 1500-byte IP packet with room for IP options and tunnels.
pub const MAX_DATAGRAM: usize = 1400;
/// Bytes of the common header.
pub const HEADER_LEN: usize = 16;
/// Bytes before the text of a token datagram.
pub const TOKENS_HEADER_LEN: usize = HEADER_LEN + 8;
/// Token datagram flag: the answer's last datagram.
pub const FLAG_LAST: u16 = 0x0001;

const KIND_REQUEST: u8 = 1;
const KIND_TOKENS: u8 = 2;
const KIND_ERROR: u8 = 3;

/// One decoded datagram; the byte fields borrow from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// Agent → server.
    Request {
        /// Chosen by the agent, unique per agent socket.
        id: u64,
        /// Reserved: sent as 0, ignored.
        flags: u16,
        /// OpenAI chat-completions JSON.
        body: &'a [u8],
    },
    /// Server → agent: some output tokens.
    Tokens {
        /// The request answered.
        id: u64,
        /// From 0, one per datagram of the answer.
        seq: u32,
        /// Tokens in this datagram.
        count: u16,
        /// The answer's last datagram.
        last: bool,
        /// The tokens' text, UTF-8.
        text: &'a [u8],
    },
    /// Server → agent: the request was refused.
    Error {
        /// The request refused.
        id: u64,
        /// Why, UTF-8.
        message: &'a [u8],
    },
}

/// Why bytes are not a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its fixed part.
    Truncated,
    /// Longer than [`MAX_DATAGRAM`]: a request's id, whose sender is owed
    /// an error datagram; `None` for an answer (tokens or error), which
    /// nobody is answered for.
    TooLong(Option<u64>),
    /// Not `INUD`.
    BadMagic,
    /// A version other than 1.
    BadVersion(u8),
    /// An unknown kind byte.
    UnknownKind(u8),
    /// A request without a body.
    EmptyBody,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated datagram"),
            DecodeError::TooLong(_) => {
                write!(f, "datagram longer than {MAX_DATAGRAM} bytes")
            }
            DecodeError::BadMagic => f.write_str("not an INUD datagram (bad magic)"),
            DecodeError::BadVersion(v) => write!(f, "INUD version {v} is not 1"),
            DecodeError::UnknownKind(k) => write!(f, "unknown INUD kind {k}"),
            DecodeError::EmptyBody => f.write_str("request without a body"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn header(kind: u8, flags: u16, id: u64, capacity: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(capacity);
    d.extend_from_slice(&MAGIC);
    d.push(VERSION);
    d.push(kind);
    d.extend_from_slice(&flags.to_be_bytes());
    d.extend_from_slice(&id.to_be_bytes());
    d
}

/// A request datagram, or why `body` cannot be one.
pub fn encode_request(id: u64, body: &[u8]) -> Result<Vec<u8>, String> {
    if body.is_empty() {
        return Err("empty request body".into());
    }
    let len = HEADER_LEN + body.len();
    if len > MAX_DATAGRAM {
        return Err(format!(
            "request of {len} bytes does not fit one {MAX_DATAGRAM}-byte datagram (UDP carries short prompts only)"
        ));
    }
    let mut d = header(KIND_REQUEST, 0, id, len);
    d.extend_from_slice(body);
    Ok(d)
}

/// A token datagram; `text` is cut (at a character boundary) to fit.
pub fn encode_tokens(id: u64, seq: u32, count: u16, last: bool, text: &str) -> Vec<u8> {
    let room = MAX_DATAGRAM - TOKENS_HEADER_LEN;
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let flags = if last { FLAG_LAST } else { 0 };
    let mut d = header(KIND_TOKENS, flags, id, TOKENS_HEADER_LEN + end);
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&count.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(&text.as_bytes()[..end]);
    d
}

/// An error datagram; `message` is cut (at a character boundary) to fit.
pub fn encode_error(id: u64, message: &str) -> Vec<u8> {
    let mut end = message.len().min(MAX_DATAGRAM - HEADER_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut d = header(KIND_ERROR, 0, id, HEADER_LEN + end);
    d.extend_from_slice(&message.as_bytes()[..end]);
    d
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Decodes one datagram. Never panics, whatever the bytes.
pub fn decode(d: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    if d.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    if d[..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if d[4] != VERSION {
        return Err(DecodeError::BadVersion(d[4]));
    }
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(&d[8..16]);
    let id = u64::from_be_bytes(id_bytes);
    let flags = be_u16(&d[6..8]);
    let kind = d[5];
    if d.len() > MAX_DATAGRAM {
        return Err(match kind {
            KIND_REQUEST => DecodeError::TooLong(Some(id)),
            KIND_TOKENS | KIND_ERROR => DecodeError::TooLong(None),
            k => DecodeError::UnknownKind(k),
        });
    }
    match kind {
        KIND_REQUEST => {
            let body = &d[HEADER_LEN..];
            if body.is_empty() {
                return Err(DecodeError::EmptyBody);
            }
            Ok(Datagram::Request { id, flags, body })
        }
        KIND_TOKENS => {
            if d.len() < TOKENS_HEADER_LEN {
                return Err(DecodeError::Truncated);
            }
            Ok(Datagram::Tokens {
                id,
                seq: u32::from_be_bytes([d[16], d[17], d[18], d[19]]),
                count: be_u16(&d[20..22]),
                last: flags & FLAG_LAST != 0,
                text: &d[TOKENS_HEADER_LEN..],
            })
        }
        KIND_ERROR => Ok(Datagram::Error {
            id,
            message: &d[HEADER_LEN..],
        }),
        k => Err(DecodeError::UnknownKind(k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_byte_for_byte() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let d = encode_request(0x0102_0304_0506_0708, body).unwrap();
        assert_eq!(&d[..8], b"INUD\x01\x01\x00\x00");
        assert_eq!(&d[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&d[16..], body);
        assert_eq!(
            decode(&d),
            Ok(Datagram::Request {
                id: 0x0102_0304_0506_0708,
                flags: 0,
                body
            })
        );
    }

    #[test]
    fn tokens_round_trip_with_the_last_flag() {
        let d = encode_tokens(9, 3, 4, true, " a b c d");
        assert_eq!(d.len(), TOKENS_HEADER_LEN + 8);
        assert_eq!(&d[4..8], &[1, 2, 0, 1]);
        assert_eq!(&d[16..24], &[0, 0, 0, 3, 0, 4, 0, 0]);
        assert_eq!(
            decode(&d),
            Ok(Datagram::Tokens {
                id: 9,
                seq: 3,
                count: 4,
                last: true,
                text: b" a b c d"
            })
        );
        let not_last = encode_tokens(9, 0, 1, false, "");
        assert!(matches!(
            decode(&not_last),
            Ok(Datagram::Tokens { last: false, .. })
        ));
    }

    #[test]
    fn errors_round_trip_and_long_text_is_cut_to_fit() {
        let d = encode_error(5, "bad request");
        assert_eq!(
            decode(&d),
            Ok(Datagram::Error {
                id: 5,
                message: b"bad request"
            })
        );
        let long = "é".repeat(1000);
        let d = encode_error(5, &long);
        assert!(d.len() <= MAX_DATAGRAM);
        let Ok(Datagram::Error { message, .. }) = decode(&d) else {
            panic!("not an error datagram")
        };
        assert!(std::str::from_utf8(message).is_ok());
        assert!(encode_tokens(1, 0, 4, false, &long).len() <= MAX_DATAGRAM);
    }

    #[test]
    fn oversized_requests_are_refused_on_both_sides() {
        let body = vec![b'x'; MAX_DATAGRAM - HEADER_LEN];
        assert!(encode_request(1, &body).is_ok());
        let err = encode_request(1, &[b'x'; MAX_DATAGRAM - HEADER_LEN + 1]).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        let mut d = encode_request(77, &body).unwrap();
        d.push(b'x');
        assert_eq!(decode(&d), Err(DecodeError::TooLong(Some(77))));
        // Only a request is owed an answer: an oversized answer or an
        // unknown kind is just malformed.
        let mut answer = d.clone();
        answer[5] = KIND_TOKENS;
        assert_eq!(decode(&answer), Err(DecodeError::TooLong(None)));
        answer[5] = 9;
        assert_eq!(decode(&answer), Err(DecodeError::UnknownKind(9)));
        assert!(encode_request(1, b"").is_err());
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error_not_a_panic() {
        let good = encode_tokens(1, 2, 3, false, "xyz");
        for n in 0..TOKENS_HEADER_LEN {
            assert_eq!(decode(&good[..n]), Err(DecodeError::Truncated), "{n} bytes");
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(DecodeError::BadMagic));
        let mut bad = good.clone();
        bad[4] = 2;
        assert_eq!(decode(&bad), Err(DecodeError::BadVersion(2)));
        let mut bad = good.clone();
        bad[5] = 9;
        assert_eq!(decode(&bad), Err(DecodeError::UnknownKind(9)));
        let empty = &encode_request(1, b"{}").unwrap()[..HEADER_LEN];
        assert_eq!(decode(empty), Err(DecodeError::EmptyBody));
        // Every prefix and a pseudo-random spray decode without panicking.
        let mut x = 0x9e37_79b9_u32;
        for len in 0..3000 {
            let bytes: Vec<u8> = (0..len % 1500)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed);
        }
    }
}
