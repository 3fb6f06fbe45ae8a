//! CAPABILITY: what a compute node can serve.
//!
//! Records: NODE_ID, MODEL, MODEL_CLASS, ACCELERATOR and TASK_TYPES exactly
//! once each, METRIC zero or more times (max_context_tokens,
//! tokens_per_s_prefill, tokens_per_s_decode, concurrency_limit). Only peers
//! with the `capability` role may send it (IntelliNode draft §4).

use core::fmt;
use core::str::FromStr;

use crate::body_error::BodyError;
use crate::fields::{fixed, metric, not_allowed, once, put_metrics, required, text};
use crate::ids::NodeId;
use crate::message::Kind;
use crate::metric::{Metric, MetricType, UnknownName};
use crate::record::{rt, Record, RecordWriter};
use crate::task_types::TaskTypes;

/// Longest MODEL, in bytes.
pub const MAX_MODEL_LEN: usize = 64;
/// Longest ACCELERATOR, in bytes.
pub const MAX_ACCELERATOR_LEN: usize = 32;

/// Checks a MODEL as a receiver does (1 to [`MAX_MODEL_LEN`] bytes of
/// UTF-8, no control character), for senders that take it from a user.
pub fn check_model(model: &str) -> Result<(), BodyError> {
    text(rt::MODEL, "", model.as_bytes(), MAX_MODEL_LEN, false).map(drop)
}

/// Checks an ACCELERATOR as a receiver does (1 to [`MAX_ACCELERATOR_LEN`]
/// bytes of UTF-8, no control character).
pub fn check_accelerator(accelerator: &str) -> Result<(), BodyError> {
    text(
        rt::ACCELERATOR,
        "",
        accelerator.as_bytes(),
        MAX_ACCELERATOR_LEN,
        false,
    )
    .map(drop)
}

/// Size class of a model, which decides where short tasks should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelClass {
    /// A small model, usually at the edge: fast first token.
    SmallEdge = 0,
    /// A large model, usually in a central data centre: more capable.
    LargeCentre = 1,
}

impl ModelClass {
    /// The wire value.
    pub const fn to_wire(self) -> u8 {
        self as u8
    }

    /// Decodes a wire value; other values are reserved.
    pub fn from_wire(v: u8) -> Result<ModelClass, BodyError> {
        match v {
            0 => Ok(ModelClass::SmallEdge),
            1 => Ok(ModelClass::LargeCentre),
            other => Err(BodyError::UnknownModelClass(other)),
        }
    }

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            ModelClass::SmallEdge => "small_edge",
            ModelClass::LargeCentre => "large_centre",
        }
    }
}

impl fmt::Display for ModelClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelClass {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<ModelClass, UnknownName> {
        match s {
            "small_edge" => Ok(ModelClass::SmallEdge),
            "large_centre" => Ok(ModelClass::LargeCentre),
            _ => Err(UnknownName {
                what: "model class",
                name: s.to_string(),
            }),
        }
    }
}

/// What a compute node serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Capability {
    /// The node.
    pub node: NodeId,
    /// Model name, UTF-8, 1 to 64 bytes.
    pub model: String,
    /// Size class.
    pub model_class: ModelClass,
    /// Accelerator, UTF-8, 1 to 32 bytes (e.g. "A100").
    pub accelerator: String,
    /// Task types served (at least one).
    pub task_types: TaskTypes,
    /// Capacity metrics.
    pub metrics: Vec<Metric>,
}

impl Capability {
    /// A capability without metrics; push onto `metrics` to add them.
    pub fn new(
        node: NodeId,
        model: impl Into<String>,
        model_class: ModelClass,
        accelerator: impl Into<String>,
        task_types: TaskTypes,
    ) -> Capability {
        Capability {
            node,
            model: model.into(),
            model_class,
            accelerator: accelerator.into(),
            task_types,
            metrics: Vec::new(),
        }
    }

    /// Metric types a CAPABILITY may carry.
    pub fn allows(t: MetricType) -> bool {
        matches!(
            t,
            MetricType::MaxContextTokens
                | MetricType::TokensPerSPrefill
                | MetricType::TokensPerSDecode
                | MetricType::ConcurrencyLimit
        )
    }

    pub(crate) fn decode(recs: &[Record<'_>]) -> Result<Capability, BodyError> {
        let kind = Kind::Capability;
        let (mut node, mut model, mut class, mut accel, mut tasks) = (None, None, None, None, None);
        let mut metrics = Vec::new();
        for r in recs {
            match r.rtype {
                rt::NODE_ID => once(&mut node, r.rtype, NodeId(u16::from_be_bytes(fixed(r)?)))?,
                rt::MODEL => once(
                    &mut model,
                    r.rtype,
                    text(r.rtype, "", r.value, MAX_MODEL_LEN, false)?,
                )?,
                rt::MODEL_CLASS => {
                    let [c] = fixed(r)?;
                    once(&mut class, r.rtype, ModelClass::from_wire(c)?)?
                }
                rt::ACCELERATOR => once(
                    &mut accel,
                    r.rtype,
                    text(r.rtype, "", r.value, MAX_ACCELERATOR_LEN, false)?,
                )?,
                rt::TASK_TYPES => {
                    let bits = u32::from_be_bytes(fixed(r)?);
                    let t = TaskTypes::from_bits(bits).ok_or(BodyError::BadTaskTypes(bits))?;
                    once(&mut tasks, r.rtype, t)?
                }
                rt::METRIC => {
                    let m = metric(kind, r, Capability::allows, &metrics)?;
                    metrics.push(m);
                }
                _ => return Err(not_allowed(kind, r)),
            }
        }
        Ok(Capability {
            node: required(node, kind, rt::NODE_ID)?,
            model: required(model, kind, rt::MODEL)?,
            model_class: required(class, kind, rt::MODEL_CLASS)?,
            accelerator: required(accel, kind, rt::ACCELERATOR)?,
            task_types: required(tasks, kind, rt::TASK_TYPES)?,
            metrics,
        })
    }

    pub(crate) fn encode(&self, w: &mut RecordWriter) -> Result<(), BodyError> {
        w.put(rt::NODE_ID, &self.node.0.to_be_bytes())?;
        w.put(rt::MODEL, self.model.as_bytes())?;
        w.put(rt::MODEL_CLASS, &[self.model_class.to_wire()])?;
        w.put(rt::ACCELERATOR, self.accelerator.as_bytes())?;
        w.put(rt::TASK_TYPES, &self.task_types.bits().to_be_bytes())?;
        put_metrics(w, &self.metrics)
    }
}
