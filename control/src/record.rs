//! The record (TLV) layer of the plaintext: `type:u16 | len:u16 | value`.
//!
//! Records run to the end of the plaintext. Types from 0x8000 up that this
//! version does not know are skipped, so a newer sender can add optional
//! information; an unknown type below 0x8000 is an error, because the
//! sender meant it to be understood.

use crate::body_error::BodyError;

/// Record type numbers (see `docs/wire-format.md` §3.4).
pub mod rt {
    /// A 16-byte metric.
    pub const METRIC: u16 = 0x0001;
    /// u16 path id.
    pub const PATH_ID: u16 = 0x0002;
    /// u16 node id.
    pub const NODE_ID: u16 = 0x0003;
    /// UTF-8 model name, at most 64 bytes.
    pub const MODEL: u16 = 0x0010;
    /// u8 model class.
    pub const MODEL_CLASS: u16 = 0x0011;
    /// UTF-8 accelerator name, at most 32 bytes.
    pub const ACCELERATOR: u16 = 0x0012;
    /// u32 task-type bitmask.
    pub const TASK_TYPES: u16 = 0x0013;
    /// Path definition.
    pub const PATH_DEF: u16 = 0x0020;
    /// Forwarding entry.
    pub const FWD_ENTRY: u16 = 0x0021;
    /// Class weight.
    pub const CLASS_WEIGHT: u16 = 0x0022;
    /// Threshold.
    pub const THRESHOLD: u16 = 0x0023;
    /// Empty: this policy replaces the previous one.
    pub const REPLACE: u16 = 0x0024;
    /// u8 what a query asks for.
    pub const QUERY_WHAT: u16 = 0x0030;
    /// u64 seq of the query being answered.
    pub const IN_REPLY_TO: u16 = 0x0040;
    /// UTF-8 JSON reply body.
    pub const BODY: u16 = 0x0041;
    /// NODE_STATE's prefix-cache increments (hit, queried tokens). Above
    /// 0x8000 so that receivers predating it skip it.
    pub const PREFIX_CACHE: u16 = 0x8001;

    /// From here up, unknown types are skipped instead of refused.
    pub const FIRST_SKIPPABLE: u16 = 0x8000;

    /// Every type this version understands.
    pub const KNOWN: [u16; 16] = [
        METRIC,
        PATH_ID,
        NODE_ID,
        MODEL,
        MODEL_CLASS,
        ACCELERATOR,
        TASK_TYPES,
        PATH_DEF,
        FWD_ENTRY,
        CLASS_WEIGHT,
        THRESHOLD,
        REPLACE,
        QUERY_WHAT,
        IN_REPLY_TO,
        BODY,
        PREFIX_CACHE,
    ];

    /// The record type's name, for error messages.
    pub fn name(t: u16) -> &'static str {
        match t {
            METRIC => "METRIC",
            PATH_ID => "PATH_ID",
            NODE_ID => "NODE_ID",
            MODEL => "MODEL",
            MODEL_CLASS => "MODEL_CLASS",
            ACCELERATOR => "ACCELERATOR",
            TASK_TYPES => "TASK_TYPES",
            PATH_DEF => "PATH_DEF",
            FWD_ENTRY => "FWD_ENTRY",
            CLASS_WEIGHT => "CLASS_WEIGHT",
            THRESHOLD => "THRESHOLD",
            REPLACE => "REPLACE",
            QUERY_WHAT => "QUERY_WHAT",
            IN_REPLY_TO => "IN_REPLY_TO",
            BODY => "BODY",
            PREFIX_CACHE => "PREFIX_CACHE",
            _ => "unknown",
        }
    }
}

/// Most records one message may carry, skipped ones included; it bounds
/// the work and memory a single datagram can cause.
pub const MAX_RECORDS: usize = 256;
/// Bytes of type + length before each value.
pub const RECORD_HEADER_LEN: usize = 4;

/// One record whose type this version knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record type.
    pub rtype: u16,
    /// The value bytes.
    pub value: &'a [u8],
}

/// Splits `buf` into records, dropping skippable unknown ones.
pub fn parse_records(buf: &[u8]) -> Result<Vec<Record<'_>>, BodyError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut count = 0usize;
    while at < buf.len() {
        count += 1;
        if count > MAX_RECORDS {
            return Err(BodyError::TooManyRecords { max: MAX_RECORDS });
        }
        let head = buf
            .get(at..at + RECORD_HEADER_LEN)
            .ok_or(BodyError::RecordHeaderTruncated {
                offset: at,
                remaining: buf.len() - at,
            })?;
        let rtype = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let start = at + RECORD_HEADER_LEN;
        let value = buf
            .get(start..start + len)
            .ok_or(BodyError::RecordOverrun {
                offset: at,
                rtype,
                len,
                remaining: buf.len() - start,
            })?;
        at = start + len;
        if rt::KNOWN.contains(&rtype) {
            out.push(Record { rtype, value });
        } else if rtype < rt::FIRST_SKIPPABLE {
            return Err(BodyError::UnknownRecordType(rtype));
        }
    }
    Ok(out)
}

/// Appends records to a plaintext, refusing what cannot be encoded.
#[derive(Debug)]
pub struct RecordWriter {
    buf: Vec<u8>,
    count: usize,
}

impl RecordWriter {
    /// Writes after `prefix` (the plaintext preamble).
    pub fn new(prefix: Vec<u8>) -> RecordWriter {
        RecordWriter {
            buf: prefix,
            count: 0,
        }
    }

    /// Appends one record.
    pub fn put(&mut self, rtype: u16, value: &[u8]) -> Result<(), BodyError> {
        let len = u16::try_from(value.len()).map_err(|_| BodyError::RecordTooLong {
            rtype,
            len: value.len(),
        })?;
        self.count += 1;
        if self.count > MAX_RECORDS {
            return Err(BodyError::TooManyRecords { max: MAX_RECORDS });
        }
        self.buf.extend_from_slice(&rtype.to_be_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(value);
        Ok(())
    }

    /// The finished plaintext.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_high_unknown_refuses_low_unknown() {
        let buf = [0x8f, 0xff, 0, 2, 9, 9, 0, 2, 0, 2, 0, 7];
        let recs = parse_records(&buf).expect("valid");
        assert_eq!(
            recs,
            vec![Record {
                rtype: rt::PATH_ID,
                value: &[0, 7]
            }]
        );
        assert_eq!(
            parse_records(&[0x7f, 0xff, 0, 0]),
            Err(BodyError::UnknownRecordType(0x7fff))
        );
    }

    #[test]
    fn overrun_and_short_header_are_errors() {
        assert!(matches!(
            parse_records(&[0, 2, 0, 5, 1]),
            Err(BodyError::RecordOverrun { len: 5, .. })
        ));
        assert!(matches!(
            parse_records(&[0, 2, 0]),
            Err(BodyError::RecordHeaderTruncated { remaining: 3, .. })
        ));
        assert_eq!(parse_records(&[]), Ok(vec![]));
    }

    #[test]
    fn record_count_is_bounded_even_for_skipped_records() {
        let buf: Vec<u8> = (0..=MAX_RECORDS).flat_map(|_| [0x90, 0, 0, 0]).collect();
        assert_eq!(
            parse_records(&buf),
            Err(BodyError::TooManyRecords { max: MAX_RECORDS })
        );
        let mut w = RecordWriter::new(Vec::new());
        for _ in 0..MAX_RECORDS {
            w.put(rt::REPLACE, &[]).expect("fits");
        }
        assert!(w.put(rt::REPLACE, &[]).is_err());
    }
}
