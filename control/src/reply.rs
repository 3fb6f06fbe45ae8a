//! REPLY: the appliance's answer to a QUERY. Records: IN_REPLY_TO (the
//! query's seq) and BODY (UTF-8 JSON) exactly once each.
//!
//! The body is not parsed here: the crate only guarantees it is UTF-8 of
//! bounded size; the client parses the JSON.

use crate::body_error::BodyError;
use crate::body_error::TextProblem;
use crate::fields::{fixed, not_allowed, once, required};
use crate::header::{HEADER_LEN, MAX_REPLY_DATAGRAM, TAG_LEN};
use crate::message::{Kind, PREAMBLE_LEN};
use crate::record::{rt, Record, RecordWriter, RECORD_HEADER_LEN};

/// Longest reply body that fits a [`MAX_REPLY_DATAGRAM`] datagram.
pub const MAX_REPLY_BODY: usize = MAX_REPLY_DATAGRAM
    - HEADER_LEN
    - TAG_LEN
    - PREAMBLE_LEN
    - (RECORD_HEADER_LEN + 8)
    - RECORD_HEADER_LEN;

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Seq of the query answered.
    pub in_reply_to: u64,
    /// JSON text.
    pub body: String,
}

impl Reply {
    pub(crate) fn decode(recs: &[Record<'_>]) -> Result<Reply, BodyError> {
        let (mut in_reply_to, mut body) = (None, None);
        for r in recs {
            match r.rtype {
                rt::IN_REPLY_TO => once(&mut in_reply_to, r.rtype, u64::from_be_bytes(fixed(r)?))?,
                rt::BODY => once(&mut body, r.rtype, body_text(r.value)?)?,
                _ => return Err(not_allowed(Kind::Reply, r)),
            }
        }
        Ok(Reply {
            in_reply_to: required(in_reply_to, Kind::Reply, rt::IN_REPLY_TO)?,
            body: required(body, Kind::Reply, rt::BODY)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut RecordWriter) -> Result<(), BodyError> {
        w.put(rt::IN_REPLY_TO, &self.in_reply_to.to_be_bytes())?;
        w.put(rt::BODY, self.body.as_bytes())
    }
}

/// UTF-8 of bounded length. Unlike names, newlines are fine here: pretty
/// printed JSON has them.
fn body_text(raw: &[u8]) -> Result<String, BodyError> {
    let bad = |problem| BodyError::BadText {
        rtype: rt::BODY,
        field: "",
        problem,
    };
    if raw.len() > MAX_REPLY_BODY {
        return Err(bad(TextProblem::TooLong {
            len: raw.len(),
            max: MAX_REPLY_BODY,
        }));
    }
    core::str::from_utf8(raw)
        .map(str::to_string)
        .map_err(|_| bad(TextProblem::NotUtf8))
}
