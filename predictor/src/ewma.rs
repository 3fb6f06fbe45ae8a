//! Exponentially weighted moving averages.
//!
//! Why: many online estimates (decode time per token, packet rates, link
//! jitter) need "the recent typical value" with O(1) state and no window
//! buffer. An EWMA with smoothing factor α keeps
//! `m ← m + α (x − m)`: a sample `k` updates old weighs `α (1 − α)^k`, so
//! the memory is about `1 / α` samples.
//!
//! [`Ewma`] tracks the mean. [`EwmaVar`] also tracks the exponentially
//! weighted variance (West's incremental form), for margins such as
//! "mean + 2σ" on jittery quantities.
//!
//! Non-finite samples are ignored and counted, never stored.

use crate::ParamError;

fn check_alpha(alpha: f64) -> Result<(), ParamError> {
    if alpha > 0.0 && alpha <= 1.0 {
        Ok(())
    } else {
        Err(ParamError::Alpha)
    }
}

/// Exponentially weighted moving average of a stream of `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ewma {
    alpha: f64,
    value: Option<f64>,
    samples: u64,
    rejected: u64,
}

impl Ewma {
    /// An empty average; the first sample becomes its value.
    /// Errors unless 0 < α ≤ 1.
    pub fn new(alpha: f64) -> Result<Self, ParamError> {
        check_alpha(alpha)?;
        Ok(Self {
            alpha,
            value: None,
            samples: 0,
            rejected: 0,
        })
    }

    /// An average seeded with `initial` (a prior), which the samples then
    /// move away from at rate α. Errors unless 0 < α ≤ 1 and `initial` is
    /// finite.
    pub fn with_initial(alpha: f64, initial: f64) -> Result<Self, ParamError> {
        if !initial.is_finite() {
            return Err(ParamError::Initial);
        }
        let mut e = Self::new(alpha)?;
        e.value = Some(initial);
        Ok(e)
    }

    /// Folds in `x`; `false` (and counted) if `x` or the result is not finite.
    pub fn update(&mut self, x: f64) -> bool {
        if !x.is_finite() {
            self.rejected = self.rejected.saturating_add(1);
            return false;
        }
        let next = match self.value {
            None => x,
            Some(m) => m + self.alpha * (x - m),
        };
        if !next.is_finite() {
            self.rejected = self.rejected.saturating_add(1);
            return false;
        }
        self.value = Some(next);
        self.samples = self.samples.saturating_add(1);
        true
    }

    /// The current average, `None` before the first sample (unless seeded).
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// The smoothing factor α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Samples folded in.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples ignored because they (or the result) were not finite.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

/// Exponentially weighted mean and variance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EwmaVar {
    alpha: f64,
    mean: Option<f64>,
    var: f64,
    samples: u64,
    rejected: u64,
}

impl EwmaVar {
    /// Empty; the first sample sets the mean with variance 0.
    /// Errors unless 0 < α ≤ 1.
    pub fn new(alpha: f64) -> Result<Self, ParamError> {
        check_alpha(alpha)?;
        Ok(Self {
            alpha,
            mean: None,
            var: 0.0,
            samples: 0,
            rejected: 0,
        })
    }

    /// Folds in `x`: `d = x − m; m ← m + α d; v ← (1 − α)(v + α d²)`.
    /// `false` (and counted) if `x` or the result is not finite.
    pub fn update(&mut self, x: f64) -> bool {
        if !x.is_finite() {
            self.rejected = self.rejected.saturating_add(1);
            return false;
        }
        let (mean, var) = match self.mean {
            None => (x, 0.0),
            Some(m) => {
                let d = x - m;
                let inc = self.alpha * d;
                (m + inc, (1.0 - self.alpha) * (self.var + d * inc))
            }
        };
        if !(mean.is_finite() && var.is_finite()) {
            self.rejected = self.rejected.saturating_add(1);
            return false;
        }
        self.mean = Some(mean);
        self.var = var.max(0.0);
        self.samples = self.samples.saturating_add(1);
        true
    }

    /// The weighted mean, `None` before the first sample.
    pub fn mean(&self) -> Option<f64> {
        self.mean
    }

    /// The weighted variance, `None` before the first sample.
    pub fn variance(&self) -> Option<f64> {
        self.mean.map(|_| self.var)
    }

    /// The weighted standard deviation, `None` before the first sample.
    pub fn std_dev(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    /// Samples folded in.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples ignored because they (or the result) were not finite.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}
