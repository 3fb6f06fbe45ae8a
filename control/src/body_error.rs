//! What is wrong with a plaintext (the `malformed_body` detail).

use core::fmt;

use crate::message::Kind;
use crate::metric::{MetricError, MetricType};
use crate::prefix::PrefixError;
use crate::record::rt;

/// What is wrong with a text field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextProblem {
    /// Not valid UTF-8.
    NotUtf8,
    /// Longer than allowed (bytes).
    TooLong {
        /// Bytes present.
        len: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// Empty where a value is required.
    Empty,
    /// Holds a control character, which would break one-line logs.
    ControlCharacter,
}

impl fmt::Display for TextProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TextProblem::NotUtf8 => f.write_str("is not valid UTF-8"),
            TextProblem::TooLong { len, max } => write!(f, "is {len} bytes, more than {max}"),
            TextProblem::Empty => f.write_str("is empty"),
            TextProblem::ControlCharacter => f.write_str("contains a control character"),
        }
    }
}

/// Everything that can be wrong with a decrypted plaintext, or with a
/// message about to be encoded (encoding runs the same validation).
#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// Shorter than the 10-byte preamble.
    TooShort {
        /// Bytes present.
        len: usize,
    },
    /// Unknown message kind.
    UnknownKind(u8),
    /// The preamble's reserved byte is not zero.
    ReservedNotZero(u8),
    /// Fewer than 4 bytes left for a record header.
    RecordHeaderTruncated {
        /// Offset of the record within the records area.
        offset: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A record's length runs past the end.
    RecordOverrun {
        /// Offset of the record within the records area.
        offset: usize,
        /// Its type.
        rtype: u16,
        /// Its length field.
        len: usize,
        /// Bytes left after its header.
        remaining: usize,
    },
    /// A record type below 0x8000 this version does not know.
    UnknownRecordType(u16),
    /// More than the allowed number of records.
    TooManyRecords {
        /// The limit.
        max: usize,
    },
    /// Encode: a value does not fit the 16-bit length.
    RecordTooLong {
        /// The record type.
        rtype: u16,
        /// Its length.
        len: usize,
    },
    /// A known record that does not belong in this kind of message.
    RecordNotAllowed {
        /// The message kind.
        kind: Kind,
        /// The record type.
        rtype: u16,
    },
    /// A record whose value has the wrong size.
    BadRecordLength {
        /// The record type.
        rtype: u16,
        /// Its length.
        len: usize,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A required record is absent.
    Missing {
        /// The message kind.
        kind: Kind,
        /// The record type.
        rtype: u16,
    },
    /// A record that may appear once appears again.
    Duplicate {
        /// The record type.
        rtype: u16,
    },
    /// A metric that does not decode or validate.
    Metric(MetricError),
    /// A metric type that does not belong in this kind of message.
    MetricNotAllowed {
        /// The message kind.
        kind: Kind,
        /// The metric type.
        metric_type: MetricType,
    },
    /// The same metric type twice in one message.
    DuplicateMetric(MetricType),
    /// A state message without any metric.
    NoMetrics {
        /// The message kind.
        kind: Kind,
    },
    /// A bad text field.
    BadText {
        /// The record type.
        rtype: u16,
        /// The field inside the record, when the text is only part of it.
        field: &'static str,
        /// What is wrong.
        problem: TextProblem,
    },
    /// Unknown model class.
    UnknownModelClass(u8),
    /// Task-type bits that are undefined, or none at all.
    BadTaskTypes(u32),
    /// Unknown QUERY_WHAT.
    UnknownQueryWhat(u8),
    /// A bad IP prefix in a FWD_ENTRY.
    BadPrefix(PrefixError),
    /// A FWD_ENTRY lists the same path twice.
    DuplicateCandidate {
        /// The path id.
        path: u16,
    },
    /// A CLASS_WEIGHT of 0.
    ZeroWeight {
        /// The class.
        class: u8,
    },
    /// A threshold id this version does not know.
    UnknownThreshold(u16),
    /// A threshold value outside its range.
    BadThreshold {
        /// The threshold id.
        id: u16,
        /// The value.
        value: f64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// Two policy entries with the same key in one message.
    DuplicateKey {
        /// The record type.
        rtype: u16,
        /// The key, printed.
        key: String,
    },
    /// A POLICY without any record.
    EmptyPolicy,
    /// PREFIX_CACHE increments that are not finite, negative, above 2^53,
    /// or more hits than queried tokens.
    BadPrefixCache {
        /// Hit tokens sent.
        hit_tokens: f64,
        /// Queried tokens sent.
        queried_tokens: f64,
    },
    /// A message kind that does not travel in this direction (REPLY to the
    /// appliance, anything but REPLY to a client).
    UnexpectedKind(Kind),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooShort { len } => {
                write!(f, "plaintext of {len} bytes, shorter than the 10-byte preamble")
            }
            BodyError::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            BodyError::ReservedNotZero(b) => write!(f, "reserved byte is {b:#04x}, not 0"),
            BodyError::RecordHeaderTruncated { offset, remaining } => write!(
                f,
                "record at offset {offset}: only {remaining} bytes left for its 4-byte header"
            ),
            BodyError::RecordOverrun {
                offset,
                rtype,
                len,
                remaining,
            } => write!(
                f,
                "record {} ({rtype:#06x}) at offset {offset}: length {len} runs past the {remaining} bytes left",
                rt::name(*rtype)
            ),
            BodyError::UnknownRecordType(t) => {
                write!(f, "unknown record type {t:#06x} (below 0x8000, so not skippable)")
            }
            BodyError::TooManyRecords { max } => write!(f, "more than {max} records"),
            BodyError::RecordTooLong { rtype, len } => write!(
                f,
                "record {} of {len} bytes does not fit a 16-bit length",
                rt::name(*rtype)
            ),
            BodyError::RecordNotAllowed { kind, rtype } => write!(
                f,
                "record {} does not belong in {}",
                rt::name(*rtype),
                kind.name()
            ),
            BodyError::BadRecordLength {
                rtype,
                len,
                expected,
            } => write!(
                f,
                "record {} has {len} bytes, expected {expected}",
                rt::name(*rtype)
            ),
            BodyError::Missing { kind, rtype } => write!(
                f,
                "{} without the {} record",
                kind.name(),
                rt::name(*rtype)
            ),
            BodyError::Duplicate { rtype } => {
                write!(f, "record {} appears more than once", rt::name(*rtype))
            }
            BodyError::Metric(e) => write!(f, "{e}"),
            BodyError::MetricNotAllowed { kind, metric_type } => {
                write!(f, "metric {metric_type} does not belong in {}", kind.name())
            }
            BodyError::DuplicateMetric(t) => write!(f, "metric {t} appears more than once"),
            BodyError::NoMetrics { kind } => write!(f, "{} without any METRIC", kind.name()),
            BodyError::BadText {
                rtype,
                field,
                problem,
            } => {
                let sep = if field.is_empty() { "" } else { " " };
                write!(f, "{}{sep}{field} {problem}", rt::name(*rtype))
            }
            BodyError::UnknownModelClass(c) => write!(f, "unknown model class {c}"),
            BodyError::BadTaskTypes(b) => {
                write!(f, "task types {b:#010x}: undefined bits set, or none set")
            }
            BodyError::UnknownQueryWhat(w) => write!(f, "unknown query {w}"),
            BodyError::BadPrefix(e) => write!(f, "FWD_ENTRY prefix: {e}"),
            BodyError::DuplicateCandidate { path } => {
                write!(f, "FWD_ENTRY lists path {path} twice")
            }
            BodyError::ZeroWeight { class } => write!(f, "class {class} has weight 0, minimum is 1"),
            BodyError::UnknownThreshold(id) => write!(f, "unknown threshold id {id}"),
            BodyError::BadThreshold { id, value, allowed } => {
                write!(f, "threshold {id} = {value}, allowed {allowed}")
            }
            BodyError::DuplicateKey { rtype, key } => write!(
                f,
                "two {} records for {key} in one message",
                rt::name(*rtype)
            ),
            BodyError::EmptyPolicy => f.write_str("POLICY without any record"),
            BodyError::BadPrefixCache {
                hit_tokens,
                queried_tokens,
            } => write!(
                f,
                "PREFIX_CACHE of {hit_tokens} hit over {queried_tokens} queried tokens: each must be finite, 0 to 2^53, hits at most queried"
            ),
            BodyError::UnexpectedKind(k) => {
                write!(f, "{} does not travel in this direction", k.name())
            }
        }
    }
}

impl std::error::Error for BodyError {}

impl From<MetricError> for BodyError {
    fn from(e: MetricError) -> BodyError {
        BodyError::Metric(e)
    }
}

impl From<PrefixError> for BodyError {
    fn from(e: PrefixError) -> BodyError {
        BodyError::BadPrefix(e)
    }
}
