//! POLICY: paths, forwarding entries, class weights and thresholds.
//!
//! Records (any order, any number, at least one record in total):
//!
//! | record | value |
//! |---|---|
//! | PATH_DEF | `path_id:u16 egress_port:u16 next_hop_mac[6] name[0..=32]` |
//! | FWD_ENTRY | `version:u8 prefix_len:u8 address[16] path_id:u16 × 1..=4` |
//! | CLASS_WEIGHT | `class:u8 weight:u16` (weight ≥ 1) |
//! | THRESHOLD | `id:u16 value:f64` |
//! | REPLACE | empty, at most once |
//!
//! Without REPLACE, entries are upserted by key (path id, prefix, class,
//! threshold id); with it, the policy replaces the previous one whole.
//! Two entries with the same key in one message are an error, because
//! which one should win would depend on record order.

use core::fmt;

use crate::body_error::BodyError;
use crate::fields::{fixed, not_allowed, text};
use crate::ids::PathId;
use crate::message::Kind;
use crate::prefix::{IpPrefix, PREFIX_WIRE_LEN};
use crate::record::{rt, Record, RecordWriter};
use crate::thresholds::{Threshold, ThresholdId};

/// Longest path name, in bytes.
pub const MAX_PATH_NAME_LEN: usize = 32;
/// Most candidate paths per forwarding entry.
pub const MAX_CANDIDATES: usize = 4;

/// Where a path leaves the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDef {
    /// The path's id, the key PATH_STATE uses.
    pub id: PathId,
    /// DPDK port id the path leaves on.
    pub egress_port: u16,
    /// Destination MAC to write for this path.
    pub next_hop_mac: [u8; 6],
    /// Human name, 0 to 32 bytes of UTF-8.
    pub name: String,
}

/// A destination prefix and the paths that may carry it, in preference
/// order for ties and fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwdEntry {
    /// The destination prefix.
    pub prefix: IpPrefix,
    /// 1 to 4 candidate paths, distinct.
    pub paths: Vec<PathId>,
}

/// Relative share of a traffic class (for weighted scheduling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassWeight {
    /// The class.
    pub class: u8,
    /// Its weight, at least 1.
    pub weight: u16,
}

/// A policy update.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// Replace the whole previous policy instead of upserting.
    pub replace: bool,
    /// Path definitions.
    pub path_defs: Vec<PathDef>,
    /// Forwarding entries.
    pub fwd_entries: Vec<FwdEntry>,
    /// Class weights.
    pub class_weights: Vec<ClassWeight>,
    /// Thresholds.
    pub thresholds: Vec<Threshold>,
}

impl Policy {
    /// True if the policy carries no record at all.
    pub fn is_empty(&self) -> bool {
        !self.replace
            && self.path_defs.is_empty()
            && self.fwd_entries.is_empty()
            && self.class_weights.is_empty()
            && self.thresholds.is_empty()
    }

    pub(crate) fn decode(recs: &[Record<'_>]) -> Result<Policy, BodyError> {
        let mut p = Policy::default();
        for r in recs {
            match r.rtype {
                rt::REPLACE => {
                    fixed::<0>(r)?;
                    if p.replace {
                        return Err(BodyError::Duplicate { rtype: r.rtype });
                    }
                    p.replace = true;
                }
                rt::PATH_DEF => {
                    let d = decode_path_def(r)?;
                    if p.path_defs.iter().any(|x| x.id == d.id) {
                        return Err(dup(r.rtype, d.id));
                    }
                    p.path_defs.push(d);
                }
                rt::FWD_ENTRY => {
                    let e = decode_fwd_entry(r)?;
                    if p.fwd_entries.iter().any(|x| x.prefix == e.prefix) {
                        return Err(dup(r.rtype, e.prefix));
                    }
                    p.fwd_entries.push(e);
                }
                rt::CLASS_WEIGHT => {
                    let [class, w0, w1] = fixed(r)?;
                    let weight = u16::from_be_bytes([w0, w1]);
                    if weight == 0 {
                        return Err(BodyError::ZeroWeight { class });
                    }
                    if p.class_weights.iter().any(|x| x.class == class) {
                        return Err(dup(r.rtype, format_args!("class {class}")));
                    }
                    p.class_weights.push(ClassWeight { class, weight });
                }
                rt::THRESHOLD => {
                    let [i0, i1, v @ ..] = fixed::<10>(r)?;
                    let id = ThresholdId::from_wire(u16::from_be_bytes([i0, i1]))?;
                    let value = f64::from_bits(u64::from_be_bytes(v));
                    id.validate(value)?;
                    if p.thresholds.iter().any(|x| x.id == id) {
                        return Err(dup(r.rtype, id));
                    }
                    p.thresholds.push(Threshold { id, value });
                }
                _ => return Err(not_allowed(Kind::Policy, r)),
            }
        }
        if p.is_empty() {
            return Err(BodyError::EmptyPolicy);
        }
        Ok(p)
    }

    pub(crate) fn encode(&self, w: &mut RecordWriter) -> Result<(), BodyError> {
        if self.replace {
            w.put(rt::REPLACE, &[])?;
        }
        for d in &self.path_defs {
            let mut v = Vec::with_capacity(10 + d.name.len());
            v.extend_from_slice(&d.id.0.to_be_bytes());
            v.extend_from_slice(&d.egress_port.to_be_bytes());
            v.extend_from_slice(&d.next_hop_mac);
            v.extend_from_slice(d.name.as_bytes());
            w.put(rt::PATH_DEF, &v)?;
        }
        for e in &self.fwd_entries {
            let mut v = Vec::with_capacity(PREFIX_WIRE_LEN + 2 * e.paths.len());
            v.extend_from_slice(&e.prefix.encode());
            for p in &e.paths {
                v.extend_from_slice(&p.0.to_be_bytes());
            }
            w.put(rt::FWD_ENTRY, &v)?;
        }
        for c in &self.class_weights {
            let [w0, w1] = c.weight.to_be_bytes();
            w.put(rt::CLASS_WEIGHT, &[c.class, w0, w1])?;
        }
        for t in &self.thresholds {
            let mut v = [0u8; 10];
            v[0..2].copy_from_slice(&t.id.to_wire().to_be_bytes());
            v[2..10].copy_from_slice(&t.value.to_bits().to_be_bytes());
            w.put(rt::THRESHOLD, &v)?;
        }
        Ok(())
    }
}

fn dup(rtype: u16, key: impl fmt::Display) -> BodyError {
    BodyError::DuplicateKey {
        rtype,
        key: key.to_string(),
    }
}

fn decode_path_def(r: &Record<'_>) -> Result<PathDef, BodyError> {
    let bad_len = || BodyError::BadRecordLength {
        rtype: r.rtype,
        len: r.value.len(),
        expected: "10 to 42 bytes",
    };
    let (fixed_part, name) = r.value.split_at_checked(10).ok_or_else(bad_len)?;
    let [p0, p1, e0, e1, mac @ ..]: [u8; 10] = fixed_part.try_into().map_err(|_| bad_len())?;
    Ok(PathDef {
        id: PathId(u16::from_be_bytes([p0, p1])),
        egress_port: u16::from_be_bytes([e0, e1]),
        next_hop_mac: mac,
        name: text(r.rtype, "name", name, MAX_PATH_NAME_LEN, true)?,
    })
}

fn decode_fwd_entry(r: &Record<'_>) -> Result<FwdEntry, BodyError> {
    let bad_len = || BodyError::BadRecordLength {
        rtype: r.rtype,
        len: r.value.len(),
        expected: "18 bytes plus 1 to 4 path ids of 2 bytes",
    };
    let (prefix, ids) = r
        .value
        .split_at_checked(PREFIX_WIRE_LEN)
        .ok_or_else(bad_len)?;
    if ids.is_empty() || ids.len() % 2 != 0 || ids.len() / 2 > MAX_CANDIDATES {
        return Err(bad_len());
    }
    let prefix = IpPrefix::decode(prefix)?;
    let mut paths = Vec::with_capacity(ids.len() / 2);
    for pair in ids.chunks_exact(2) {
        let [a, b] = pair else { return Err(bad_len()) };
        let id = PathId(u16::from_be_bytes([*a, *b]));
        if paths.contains(&id) {
            return Err(BodyError::DuplicateCandidate { path: id.0 });
        }
        paths.push(id);
    }
    Ok(FwdEntry { prefix, paths })
}
