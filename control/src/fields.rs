//! Small decoding helpers shared by the message kinds. Each returns a
//! [`BodyError`] naming the record instead of panicking on a bad length.

use crate::body_error::{BodyError, TextProblem};
use crate::message::Kind;
use crate::metric::{Metric, MetricType};
use crate::record::{rt, Record};

/// The value as exactly `N` bytes.
pub(crate) fn fixed<const N: usize>(r: &Record<'_>) -> Result<[u8; N], BodyError> {
    <[u8; N]>::try_from(r.value).map_err(|_| BodyError::BadRecordLength {
        rtype: r.rtype,
        len: r.value.len(),
        expected: match N {
            0 => "0 bytes",
            1 => "1 byte",
            2 => "2 bytes",
            4 => "4 bytes",
            8 => "8 bytes",
            16 => "16 bytes",
            _ => "a fixed size",
        },
    })
}

/// Stores `value` in an empty slot, or reports the record as duplicated.
pub(crate) fn once<T>(slot: &mut Option<T>, rtype: u16, value: T) -> Result<(), BodyError> {
    if slot.is_some() {
        return Err(BodyError::Duplicate { rtype });
    }
    *slot = Some(value);
    Ok(())
}

/// The slot's value, or "missing".
pub(crate) fn required<T>(slot: Option<T>, kind: Kind, rtype: u16) -> Result<T, BodyError> {
    slot.ok_or(BodyError::Missing { kind, rtype })
}

/// Validates a UTF-8 text field of at most `max` bytes without control
/// characters (names end up in one-line logs and JSON).
pub(crate) fn text(
    rtype: u16,
    field: &'static str,
    raw: &[u8],
    max: usize,
    allow_empty: bool,
) -> Result<String, BodyError> {
    let bad = |problem| BodyError::BadText {
        rtype,
        field,
        problem,
    };
    if raw.len() > max {
        return Err(bad(TextProblem::TooLong {
            len: raw.len(),
            max,
        }));
    }
    if raw.is_empty() && !allow_empty {
        return Err(bad(TextProblem::Empty));
    }
    let s = core::str::from_utf8(raw).map_err(|_| bad(TextProblem::NotUtf8))?;
    if s.chars().any(char::is_control) {
        return Err(bad(TextProblem::ControlCharacter));
    }
    Ok(s.to_string())
}

/// Decodes a METRIC record and checks that it belongs in `kind` and has not
/// been seen in this message (two latencies would leave the value ambiguous).
pub(crate) fn metric(
    kind: Kind,
    r: &Record<'_>,
    allowed: fn(MetricType) -> bool,
    seen: &[Metric],
) -> Result<Metric, BodyError> {
    let m = Metric::decode(r.value)?;
    if !allowed(m.metric_type) {
        return Err(BodyError::MetricNotAllowed {
            kind,
            metric_type: m.metric_type,
        });
    }
    if seen.iter().any(|s| s.metric_type == m.metric_type) {
        return Err(BodyError::DuplicateMetric(m.metric_type));
    }
    Ok(m)
}

/// The error for a known record in the wrong kind of message.
pub(crate) fn not_allowed(kind: Kind, r: &Record<'_>) -> BodyError {
    BodyError::RecordNotAllowed {
        kind,
        rtype: r.rtype,
    }
}

/// Encodes metrics as METRIC records.
pub(crate) fn put_metrics(
    w: &mut crate::record::RecordWriter,
    metrics: &[Metric],
) -> Result<(), BodyError> {
    metrics
        .iter()
        .try_for_each(|m| w.put(rt::METRIC, &m.encode()))
}
