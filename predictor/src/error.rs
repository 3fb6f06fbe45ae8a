//! Prediction-error bookkeeping.
//!
//! Why: a model that steers traffic must be able to show how good it is.
//! [`ErrorTracker`] accumulates, per model, the error of each prediction
//! *as it was made* against what was later observed, and [`ErrorSummary`]
//! is the plain, `Copy` snapshot exported to statistics.
//!
//! The error is `predicted − observed`: a positive bias means the model is
//! pessimistic (predicts slower than reality), a negative one optimistic.
//! Sums are kept in `f64`; pairs with a non-finite member, or whose error
//! or squared error would overflow the sums, are ignored and counted.

/// Running error statistics of a predictor.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorTracker {
    count: u64,
    sum_abs: f64,
    sum_signed: f64,
    sum_sq: f64,
    last: Option<f64>,
    rejected: u64,
}

/// A snapshot of an [`ErrorTracker`]. With `count == 0` every mean is 0 and
/// `last_error` is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorSummary {
    /// Pairs recorded.
    pub count: u64,
    /// Mean absolute error.
    pub mae: f64,
    /// Mean signed error (`predicted − observed`): the bias.
    pub bias: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// The most recent error, signed.
    pub last_error: Option<f64>,
    /// Pairs ignored (non-finite).
    pub rejected: u64,
}

impl ErrorTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one prediction against its outcome. Returns `false`, and
    /// counts the pair as rejected, if it cannot be recorded finitely.
    pub fn record(&mut self, predicted: f64, observed: f64) -> bool {
        let e = predicted - observed;
        let sum_abs = self.sum_abs + e.abs();
        let sum_signed = self.sum_signed + e;
        let sum_sq = self.sum_sq + e * e;
        if !(predicted.is_finite()
            && observed.is_finite()
            && sum_abs.is_finite()
            && sum_signed.is_finite()
            && sum_sq.is_finite())
        {
            self.rejected = self.rejected.saturating_add(1);
            return false;
        }
        self.count = self.count.saturating_add(1);
        self.sum_abs = sum_abs;
        self.sum_signed = sum_signed;
        self.sum_sq = sum_sq;
        self.last = Some(e);
        true
    }

    /// Pairs recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Pairs ignored.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    fn mean_of(&self, sum: f64) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            sum / self.count as f64
        }
    }

    /// Mean absolute error (0 when empty).
    pub fn mae(&self) -> f64 {
        self.mean_of(self.sum_abs)
    }

    /// Mean signed error, `predicted − observed` (0 when empty).
    pub fn bias(&self) -> f64 {
        self.mean_of(self.sum_signed)
    }

    /// Root mean squared error (0 when empty).
    pub fn rmse(&self) -> f64 {
        self.mean_of(self.sum_sq).sqrt()
    }

    /// The most recent signed error.
    pub fn last_error(&self) -> Option<f64> {
        self.last
    }

    /// Forgets everything recorded (e.g. at the start of a reporting period).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// A plain snapshot for export.
    pub fn summary(&self) -> ErrorSummary {
        ErrorSummary {
            count: self.count,
            mae: self.mae(),
            bias: self.bias(),
            rmse: self.rmse(),
            last_error: self.last,
            rejected: self.rejected,
        }
    }
}
