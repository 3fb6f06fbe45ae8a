//! The one error type of this crate: a constructor was given a parameter
//! outside its valid range.
//!
//! Why only constructors fail: the models are fed from the data plane, per
//! request, where there is nobody to hand an error to. So every check that
//! can be done once is done when a model is built, and the per-request calls
//! (`update`, `observe`, `predict`) never fail: they drop bad input, count it,
//! and report `false`.

use core::fmt;

/// A model parameter is out of range (or not finite).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// The forgetting factor λ must satisfy 0 < λ ≤ 1.
    Lambda,
    /// The initial covariance scale p0 must be finite and > 0.
    P0,
    /// The covariance trace bound must be finite and ≥ N·p0.
    MaxTrace,
    /// An initial coefficient or value is not finite.
    Initial,
    /// The EWMA smoothing factor α must satisfy 0 < α ≤ 1.
    Alpha,
    /// The relaxation towards the prior must satisfy 0 ≤ r < 1.
    Relaxation,
    /// A field of an [`InstancePrior`](crate::InstancePrior) is out of range;
    /// the name of the field is given.
    Prior(&'static str),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Lambda => f.write_str("forgetting factor lambda must be in (0, 1]"),
            ParamError::P0 => f.write_str("initial covariance p0 must be finite and > 0"),
            ParamError::MaxTrace => {
                f.write_str("covariance trace bound must be finite and >= N * p0")
            }
            ParamError::Initial => f.write_str("initial values must be finite"),
            ParamError::Alpha => f.write_str("EWMA alpha must be in (0, 1]"),
            ParamError::Relaxation => f.write_str("relaxation must be in [0, 1)"),
            ParamError::Prior(field) => write!(f, "prior field `{field}` is out of range"),
        }
    }
}

impl std::error::Error for ParamError {}
