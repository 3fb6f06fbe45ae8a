//! Recursive least squares (RLS) with exponential forgetting.
//!
//! Why RLS: the quantities we predict (for example an inference server's
//! time-to-first-token) are, to a good approximation, linear in a handful of
//! features (a constant, the prompt size, the queue length), but the
//! coefficients are unknown per server and drift as load, batching and
//! software change. RLS fits `y ≈ θ·x` online, one sample at a time, in
//! O(N²) arithmetic and fixed memory, with no history kept. The forgetting
//! factor λ weighs a sample that is `k` updates old by `λ^k`, so the fit
//! follows drift (λ = 1 is ordinary least squares over all history; the
//! effective memory is about `1 / (1 − λ)` samples).
//!
//! The update, with `P` the (scaled) covariance of θ:
//!
//! ```text
//! e  = y − θ·x                 prediction error before the update
//! k  = P x / (λ + xᵀ P x)      gain
//! θ ← θ + k e
//! P ← (P − k xᵀ P) / λ         kept exactly symmetric
//! ```
//!
//! `P` starts at `p0·I`: a small `p0` trusts the initial θ (the prior) for
//! longer, a large one lets the first few samples override it.
//!
//! Guards, because this runs per request in the data plane:
//! - Non-finite inputs are refused, and so is any update that would produce
//!   a non-finite number: the model is then left exactly as it was and
//!   `update` returns `false`. The model never holds NaN or infinity.
//! - Covariance wind-up: with λ < 1, directions of `x` that are never
//!   excited (say the queue length is always 0) see `P` grow by `1/λ` per
//!   update without bound, and the first sample that does excite them then
//!   moves θ violently. When the trace of `P` exceeds a bound (by default
//!   [`DEFAULT_TRACE_FACTOR`]` · N · p0`), or rounding makes a diagonal entry
//!   non-positive, `P` is reset to `p0·I`. θ is kept: a reset only means
//!   "be as open to new data as at the start", it does not forget the fit.
//!   Resets are counted.
//! - A coefficient seldom excited rests on its prior
//!   ([`Rls::with_relaxation`]). Forgetting cannot age out what a few
//!   samples taught a coefficient whose feature is 0 in every later sample:
//!   those samples say nothing about it, so it keeps whatever value the few
//!   left it, however unlike the rest of the data. The steering models'
//!   queue term is one: a node that seldom reports a queue has it fitted
//!   from a handful of requests that waited for a batch slot, and between
//!   two identical nodes it was seen to settle at 133 ms on one and 27 ms on
//!   the other, so that any queue on the first sent every short request to
//!   the second. With a relaxation `r`, once a coefficient's feature has
//!   been 0 in [`RELAX_AFTER_UNEXCITED`] samples in a row, each further such
//!   sample decouples it from the others in `P` (or the samples would keep
//!   moving it through its covariance with the coefficients they teach)
//!   and moves it `r` of the way back to its initial value: stabilised
//!   forgetting towards a prior. A feature that is 0 only now and then
//!   (an empty queue among busy ones) never relaxes its coefficient, and
//!   the first sample that excites it again is fitted as before.

use crate::ParamError;

/// Accepted samples in a row holding a feature as 0 after which its
/// coefficient relaxes towards its initial value ([`Rls::with_relaxation`]):
/// long enough that a feature which is 0 only now and then (an empty queue
/// among busy ones) never triggers it.
pub const RELAX_AFTER_UNEXCITED: u32 = 16;

/// Default covariance trace bound, as a multiple of the initial trace `N·p0`.
pub const DEFAULT_TRACE_FACTOR: f64 = 1.0e3;

/// Recursive least squares estimator of `y ≈ θ·x` for `N` features.
///
/// Fixed size, `Copy`; `predict` and `update` neither allocate nor panic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rls<const N: usize> {
    theta: [f64; N],
    p: [[f64; N]; N],
    lambda: f64,
    p0: f64,
    max_trace: f64,
    /// Where each coefficient relaxes towards (the initial θ), by how much
    /// per sample once relaxing (0: never), and how many accepted samples
    /// in a row have held each one's feature as 0.
    anchor: [f64; N],
    relaxation: f64,
    unexcited: [u32; N],
    samples: u64,
    rejected: u64,
    resets: u64,
}

/// `m[i][j]`, or 0 out of range (never happens for `i, j < N`).
fn at<const N: usize>(m: &[[f64; N]; N], i: usize, j: usize) -> f64 {
    m.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0.0)
}

fn dot<const N: usize>(a: &[f64; N], b: &[f64; N]) -> f64 {
    a.iter().zip(b.iter()).map(|(u, v)| u * v).sum()
}

fn scaled_identity<const N: usize>(p0: f64) -> [[f64; N]; N] {
    let mut p = [[0.0; N]; N];
    for (i, row) in p.iter_mut().enumerate() {
        if let Some(d) = row.get_mut(i) {
            *d = p0;
        }
    }
    p
}

impl<const N: usize> Rls<N> {
    /// A new estimator starting at `theta0` with covariance `p0·I`.
    ///
    /// Errors if λ is not in (0, 1], `p0` is not finite and positive, or
    /// `theta0` holds a non-finite value. The trace bound is
    /// [`DEFAULT_TRACE_FACTOR`]` · N · p0` (see [`Rls::with_max_trace`]).
    pub fn new(lambda: f64, theta0: [f64; N], p0: f64) -> Result<Self, ParamError> {
        if !(lambda > 0.0 && lambda <= 1.0) {
            return Err(ParamError::Lambda);
        }
        if !(p0.is_finite() && p0 > 0.0) {
            return Err(ParamError::P0);
        }
        if !theta0.iter().all(|t| t.is_finite()) {
            return Err(ParamError::Initial);
        }
        let max_trace = DEFAULT_TRACE_FACTOR * p0 * N as f64;
        if !max_trace.is_finite() {
            return Err(ParamError::P0);
        }
        Ok(Self {
            theta: theta0,
            p: scaled_identity(p0),
            lambda,
            p0,
            max_trace,
            anchor: theta0,
            relaxation: 0.0,
            unexcited: [0; N],
            samples: 0,
            rejected: 0,
            resets: 0,
        })
    }

    /// Replaces the covariance trace bound; it must be finite and at least
    /// the initial trace `N·p0` (or every update would reset).
    pub fn with_max_trace(mut self, max_trace: f64) -> Result<Self, ParamError> {
        if !(max_trace.is_finite() && max_trace >= self.p0 * N as f64) {
            return Err(ParamError::MaxTrace);
        }
        self.max_trace = max_trace;
        Ok(self)
    }

    /// Relaxes a coefficient by `relaxation` (in `[0, 1)`) of the way back
    /// to its initial value in every accepted sample once its feature has
    /// been 0 for [`RELAX_AFTER_UNEXCITED`] samples in a row (see the module
    /// documentation). 0, the default, never does.
    pub fn with_relaxation(mut self, relaxation: f64) -> Result<Self, ParamError> {
        if !(0.0..1.0).contains(&relaxation) {
            return Err(ParamError::Relaxation);
        }
        self.relaxation = relaxation;
        Ok(self)
    }

    /// `θ·x`. Non-finite only if `x` is (or is so large that it overflows);
    /// callers that need a finite number clamp.
    pub fn predict(&self, x: &[f64; N]) -> f64 {
        dot(&self.theta, x)
    }

    /// Folds in one sample `(x, y)`. Returns `false`, leaving the model
    /// unchanged (except the rejection counter), if any input is not finite
    /// or the update would produce a non-finite number.
    pub fn update(&mut self, x: &[f64; N], y: f64) -> bool {
        match self.next_state(x, y) {
            Some((theta, p, reset)) => {
                self.theta = theta;
                self.p = p;
                self.samples = self.samples.saturating_add(1);
                if reset {
                    self.resets = self.resets.saturating_add(1);
                }
                self.relax(x);
                true
            }
            None => {
                self.rejected = self.rejected.saturating_add(1);
                false
            }
        }
    }

    /// Stabilised forgetting, after an accepted sample `x` (see the module
    /// documentation): a coefficient whose feature the last
    /// [`RELAX_AFTER_UNEXCITED`] samples all held as 0 is decoupled from
    /// the others in P, so that the samples saying nothing about it stop
    /// moving it through its covariance with the coefficients they do
    /// teach, and moves `relaxation` of the way back to its initial value.
    /// Finite in, finite out: `relaxation` is in `[0, 1)`.
    fn relax(&mut self, x: &[f64; N]) {
        if self.relaxation == 0.0 {
            return;
        }
        for i in 0..N {
            let (Some(idle), Some(&xi)) = (self.unexcited.get_mut(i), x.get(i)) else {
                continue;
            };
            *idle = if xi == 0.0 { idle.saturating_add(1) } else { 0 };
            if *idle < RELAX_AFTER_UNEXCITED {
                continue;
            }
            for (j, row) in self.p.iter_mut().enumerate() {
                if j == i {
                    for (k, cell) in row.iter_mut().enumerate() {
                        if k != i {
                            *cell = 0.0;
                        }
                    }
                } else if let Some(cell) = row.get_mut(i) {
                    *cell = 0.0;
                }
            }
            if let (Some(t), Some(&anchor)) = (self.theta.get_mut(i), self.anchor.get(i)) {
                *t += self.relaxation * (anchor - *t);
            }
        }
    }

    /// The updated θ and P, whether P was reset, or `None` to refuse.
    #[allow(clippy::type_complexity)]
    fn next_state(&self, x: &[f64; N], y: f64) -> Option<([f64; N], [[f64; N]; N], bool)> {
        if !y.is_finite() || !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        let mut px = [0.0; N];
        for (out, row) in px.iter_mut().zip(self.p.iter()) {
            *out = dot(row, x);
        }
        let denom = self.lambda + dot(x, &px);
        if !(denom.is_finite() && denom > 0.0) {
            return None;
        }
        let err = y - self.predict(x);
        if !err.is_finite() {
            return None;
        }
        let mut theta = self.theta;
        for (t, g) in theta.iter_mut().zip(px.iter()) {
            *t += g / denom * err;
        }
        // P ← (P − P x xᵀ P / denom) / λ, computed from the symmetric part of
        // P so that rounding never makes it asymmetric.
        let mut p = [[0.0; N]; N];
        for (i, (row, pxi)) in p.iter_mut().zip(px.iter()).enumerate() {
            for (j, (cell, pxj)) in row.iter_mut().zip(px.iter()).enumerate() {
                let sym = 0.5 * (at(&self.p, i, j) + at(&self.p, j, i));
                *cell = (sym - pxi * pxj / denom) / self.lambda;
            }
        }
        if !theta.iter().all(|t| t.is_finite()) || !p.iter().flatten().all(|v| v.is_finite()) {
            return None;
        }
        let mut trace = 0.0;
        let mut diag_ok = true;
        for i in 0..N {
            let d = at(&p, i, i);
            diag_ok &= d > 0.0;
            trace += d;
        }
        // `trace` is finite here: every entry of `p` was checked above.
        let reset = !diag_ok || trace > self.max_trace;
        if reset {
            p = scaled_identity(self.p0);
        }
        Some((theta, p, reset))
    }

    /// The current coefficients θ.
    pub fn theta(&self) -> [f64; N] {
        self.theta
    }

    /// The current (scaled) covariance P.
    pub fn covariance(&self) -> [[f64; N]; N] {
        self.p
    }

    /// The trace of P.
    pub fn trace(&self) -> f64 {
        (0..N).map(|i| at(&self.p, i, i)).sum()
    }

    /// The forgetting factor λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Samples folded in.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples refused (non-finite input or result).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Times P was reset to `p0·I` by the wind-up guard.
    pub fn resets(&self) -> u64 {
        self.resets
    }
}
