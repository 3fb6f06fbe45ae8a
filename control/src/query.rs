//! QUERY: a client asks the appliance for information; the answer is a
//! REPLY sealed under the client's key. Records: QUERY_WHAT exactly once.

use core::fmt;
use core::str::FromStr;

use crate::body_error::BodyError;
use crate::fields::{fixed, not_allowed, once, required};
use crate::message::Kind;
use crate::metric::UnknownName;
use crate::record::{rt, Record, RecordWriter};

/// What a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryWhat {
    /// 1: data-plane counters and rates.
    Stats = 1,
    /// 2: control state (paths, nodes, capabilities, policy) with ages.
    State = 2,
    /// 3: feedback on decisions (path choices, fallbacks).
    Feedback = 3,
}

impl QueryWhat {
    /// The wire value.
    pub const fn to_wire(self) -> u8 {
        self as u8
    }

    /// Decodes a wire value.
    pub fn from_wire(v: u8) -> Result<QueryWhat, BodyError> {
        match v {
            1 => Ok(QueryWhat::Stats),
            2 => Ok(QueryWhat::State),
            3 => Ok(QueryWhat::Feedback),
            other => Err(BodyError::UnknownQueryWhat(other)),
        }
    }

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            QueryWhat::Stats => "stats",
            QueryWhat::State => "state",
            QueryWhat::Feedback => "feedback",
        }
    }
}

impl fmt::Display for QueryWhat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QueryWhat {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<QueryWhat, UnknownName> {
        [QueryWhat::Stats, QueryWhat::State, QueryWhat::Feedback]
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or_else(|| UnknownName {
                what: "query",
                name: s.to_string(),
            })
    }
}

/// A query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// What is asked for.
    pub what: QueryWhat,
}

impl Query {
    pub(crate) fn decode(recs: &[Record<'_>]) -> Result<Query, BodyError> {
        let mut what = None;
        for r in recs {
            match r.rtype {
                rt::QUERY_WHAT => {
                    let [w] = fixed(r)?;
                    once(&mut what, r.rtype, QueryWhat::from_wire(w)?)?
                }
                _ => return Err(not_allowed(Kind::Query, r)),
            }
        }
        Ok(Query {
            what: required(what, Kind::Query, rt::QUERY_WHAT)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut RecordWriter) -> Result<(), BodyError> {
        w.put(rt::QUERY_WHAT, &[self.what.to_wire()])
    }
}
