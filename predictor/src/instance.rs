//! The latency model of one inference instance, as used by token-aware
//! steering.
//!
//! Why: to send a request to the instance that will answer it first, the
//! steering decision needs, per instance, a prediction of its
//! time-to-first-token (TTFT) and completion time for *this* request: its
//! prompt size, its expected output size, and the instance's queue at the
//! moment of decision. The appliance sees every request and response pass
//! by, so it can measure both times passively and keep each instance's
//! model honest without asking anything of the instance.
//!
//! The model, with the network round trip taken out by the caller (it is a
//! property of the path, not of the instance):
//!
//! ```text
//! compute_ttft_us = θ0 + θ1 · prompt_tokens/1000 + θ2 · queue_len      (Rls<3>)
//! completion_us   = compute_ttft_us + output_tokens · decode_us_per_token (Ewma)
//! ```
//!
//! It starts from an analytical [`InstancePrior`] (from the instance's
//! declared or benchmarked capacity): `θ = [base_ttft_us,
//! 1e9 / prefill_tokens_per_s, per_queued_request_us]` and
//! `decode_us_per_token = 1e6 / decode_tokens_per_s`. So before the first
//! observation the prediction *is* the analytical model, and every
//! observation moves it towards what the instance really does.
//!
//! Observations are scored before they are learned from: each
//! [`Observation`] carries the prediction that was made at decision time,
//! and the two [`ErrorTracker`]s record that, so the exported error is the
//! error steering actually acted on.
//!
//! An observation is applied entirely or not at all: one with a negative
//! or non-finite measured field (or a completion before its first token) is
//! dropped and counted in [`InstanceModel::rejected`].

use crate::{ErrorSummary, ErrorTracker, Ewma, ParamError, Rls};

/// The analytical model of an instance that learning starts from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstancePrior {
    /// TTFT of an empty prompt on an idle instance, µs (≥ 0).
    pub base_ttft_us: f64,
    /// Prefill throughput, prompt tokens per second (> 0).
    pub prefill_tokens_per_s: f64,
    /// Added TTFT per request already queued, µs (≥ 0).
    pub per_queued_request_us: f64,
    /// Decode throughput of one request, output tokens per second (> 0).
    pub decode_tokens_per_s: f64,
}

/// Learning parameters of an [`InstanceModel`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelConfig {
    /// RLS forgetting factor λ, 0 < λ ≤ 1; memory ≈ 1/(1 − λ) requests.
    pub lambda: f64,
    /// RLS initial covariance scale (> 0): how little the prior is trusted.
    pub p0: f64,
    /// EWMA smoothing factor of the decode time per token, 0 < α ≤ 1.
    pub ewma_alpha: f64,
    /// How far each observation moves a TTFT coefficient whose feature it
    /// holds as 0 back towards the prior, 0 ≤ r < 1
    /// ([`crate::Rls::with_relaxation`]): the queue term for a request
    /// that found no queue (and the prompt term for one whose prompt was
    /// all cached). A node that seldom reports a queue so keeps about the
    /// prior's `per_queued_request_us` rather than what its few queued
    /// requests suggested.
    pub prior_relaxation: f64,
}

impl Default for ModelConfig {
    /// λ = 0.99 (≈ 100 requests of memory), p0 = 10, α = 0.05, prior
    /// relaxation 0.02 (about 50 queue-less requests to relax the queue
    /// term).
    fn default() -> Self {
        Self {
            lambda: 0.99,
            p0: 10.0,
            ewma_alpha: 0.05,
            prior_relaxation: 0.02,
        }
    }
}

/// A prediction for one request on one instance. Both values are finite
/// and ≥ 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// Time to first token without the network round trip, µs.
    pub compute_ttft_us: f64,
    /// Time to the last token without the network round trip, µs.
    pub completion_us: f64,
}

/// What was measured for one finished (or first-token-answered) request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// The request's prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens: the number actually produced when known, else the
    /// number expected. Used to turn a completion time into a per-token
    /// decode time.
    pub output_tokens: u32,
    /// The queue length the instance reported at decision time (≥ 0).
    pub queue_len: f64,
    /// The TTFT predicted at decision time, µs.
    pub predicted_compute_ttft_us: f64,
    /// The measured TTFT minus the network round trip, µs (≥ 0).
    pub observed_compute_ttft_us: f64,
    /// The completion time predicted at decision time, µs, if any.
    pub predicted_completion_us: Option<f64>,
    /// The measured completion time minus the network round trip, µs,
    /// if the request has completed (≥ the observed TTFT).
    pub observed_completion_us: Option<f64>,
}

/// The online latency model of one inference instance. Fixed size, `Copy`;
/// `predict` and `observe` neither allocate nor panic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceModel {
    prior: InstancePrior,
    ttft: Rls<3>,
    decode_us_per_token: Ewma,
    ttft_error: ErrorTracker,
    completion_error: ErrorTracker,
    samples: u64,
    rejected: u64,
}

/// Non-negative and finite: NaN → 0, +∞ → `f64::MAX`.
fn clamp_out(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, f64::MAX)
    }
}

/// A usable queue length: negative or NaN → 0, +∞ → `f64::MAX`.
fn clamp_queue(q: f64) -> f64 {
    clamp_out(q)
}

fn features(prompt_tokens: u32, queue_len: f64) -> [f64; 3] {
    [1.0, f64::from(prompt_tokens) / 1000.0, queue_len]
}

fn non_negative(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

impl InstanceModel {
    /// A model equal to `prior` until it observes something.
    pub fn new(prior: InstancePrior, config: ModelConfig) -> Result<Self, ParamError> {
        if !non_negative(prior.base_ttft_us) {
            return Err(ParamError::Prior("base_ttft_us"));
        }
        if !(prior.prefill_tokens_per_s.is_finite() && prior.prefill_tokens_per_s > 0.0) {
            return Err(ParamError::Prior("prefill_tokens_per_s"));
        }
        if !non_negative(prior.per_queued_request_us) {
            return Err(ParamError::Prior("per_queued_request_us"));
        }
        if !(prior.decode_tokens_per_s.is_finite() && prior.decode_tokens_per_s > 0.0) {
            return Err(ParamError::Prior("decode_tokens_per_s"));
        }
        let us_per_1k_tokens = 1.0e9 / prior.prefill_tokens_per_s;
        let decode_us = 1.0e6 / prior.decode_tokens_per_s;
        if !us_per_1k_tokens.is_finite() {
            return Err(ParamError::Prior("prefill_tokens_per_s"));
        }
        if !decode_us.is_finite() {
            return Err(ParamError::Prior("decode_tokens_per_s"));
        }
        let theta0 = [
            prior.base_ttft_us,
            us_per_1k_tokens,
            prior.per_queued_request_us,
        ];
        Ok(Self {
            prior,
            ttft: Rls::new(config.lambda, theta0, config.p0)?
                .with_relaxation(config.prior_relaxation)?,
            decode_us_per_token: Ewma::with_initial(config.ewma_alpha, decode_us)?,
            ttft_error: ErrorTracker::new(),
            completion_error: ErrorTracker::new(),
            samples: 0,
            rejected: 0,
        })
    }

    /// Predicts TTFT and completion for a request. A negative or NaN
    /// `queue_len` counts as 0. Results are clamped to `[0, f64::MAX]`.
    pub fn predict(&self, prompt_tokens: u32, output_tokens: u32, queue_len: f64) -> Prediction {
        let x = features(prompt_tokens, clamp_queue(queue_len));
        let compute_ttft_us = clamp_out(self.ttft.predict(&x));
        let decode = clamp_out(self.decode_us_per_token());
        let completion_us = clamp_out(compute_ttft_us + f64::from(output_tokens) * decode);
        Prediction {
            compute_ttft_us,
            completion_us,
        }
    }

    /// Scores the decision-time prediction in `obs`, then learns from it.
    /// Returns `false`, changing nothing but [`rejected`](Self::rejected),
    /// if any measured or predicted value is non-finite or negative, or the
    /// completion precedes the first token.
    pub fn observe(&mut self, obs: &Observation) -> bool {
        if !self.valid(obs) {
            self.rejected = self.rejected.saturating_add(1);
            return false;
        }
        let mut ttft = self.ttft;
        let x = features(obs.prompt_tokens, obs.queue_len);
        if !ttft.update(&x, obs.observed_compute_ttft_us) {
            self.rejected = self.rejected.saturating_add(1);
            return false;
        }
        let mut decode = self.decode_us_per_token;
        if let Some(done) = obs.observed_completion_us {
            if obs.output_tokens > 0 {
                let per_token =
                    (done - obs.observed_compute_ttft_us) / f64::from(obs.output_tokens);
                if !decode.update(per_token) {
                    self.rejected = self.rejected.saturating_add(1);
                    return false;
                }
            }
        }
        // Everything that can fail has; commit.
        self.ttft = ttft;
        self.decode_us_per_token = decode;
        self.ttft_error
            .record(obs.predicted_compute_ttft_us, obs.observed_compute_ttft_us);
        if let (Some(p), Some(o)) = (obs.predicted_completion_us, obs.observed_completion_us) {
            self.completion_error.record(p, o);
        }
        self.samples = self.samples.saturating_add(1);
        true
    }

    fn valid(&self, obs: &Observation) -> bool {
        let ttft = obs.observed_compute_ttft_us;
        non_negative(obs.queue_len)
            && non_negative(ttft)
            && non_negative(obs.predicted_compute_ttft_us)
            && obs.predicted_completion_us.map_or(true, non_negative)
            && obs
                .observed_completion_us
                .map_or(true, |c| non_negative(c) && c >= ttft)
    }

    /// Error of the decision-time TTFT predictions.
    pub fn ttft_error(&self) -> ErrorSummary {
        self.ttft_error.summary()
    }

    /// Error of the decision-time completion predictions.
    pub fn completion_error(&self) -> ErrorSummary {
        self.completion_error.summary()
    }

    /// The learned TTFT coefficients: `[base µs, µs per 1000 prompt tokens,
    /// µs per queued request]`.
    pub fn ttft_coefficients(&self) -> [f64; 3] {
        self.ttft.theta()
    }

    /// The learned decode time per output token, µs.
    pub fn decode_us_per_token(&self) -> f64 {
        self.decode_us_per_token
            .value()
            .unwrap_or(1.0e6 / self.prior.decode_tokens_per_s)
    }

    /// The prior the model started from.
    pub fn prior(&self) -> InstancePrior {
        self.prior
    }

    /// The TTFT estimator (for its counters: resets, trace).
    pub fn ttft_model(&self) -> &Rls<3> {
        &self.ttft
    }

    /// Observations learned from.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Observations dropped (non-finite, negative or inconsistent).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}
