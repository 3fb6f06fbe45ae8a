//! Lightweight online latency and load models, sans-IO.
//!
//! Why this crate exists: IntelliNode steers each LLM request to the
//! inference instance that should answer it first, and later will schedule
//! tensor flows by their rates. Both need small models that learn online
//! from what the appliance sees pass by, per instance or per flow, in the
//! data plane's hot path. So everything here is pure arithmetic on
//! fixed-size state: no I/O, no clocks (the caller passes times in), no
//! threads, no allocation and no panic in any `update`/`observe`/`predict`.
//!
//! The building blocks are general:
//! - [`Rls`]: recursive least squares with forgetting, `y ≈ θ·x`.
//! - [`Ewma`], [`EwmaVar`]: exponentially weighted mean (and variance).
//! - [`ErrorTracker`] / [`ErrorSummary`]: how good a predictor has been.
//!
//! and [`InstanceModel`] composes them into the per-instance latency model
//! used by token-aware steering:
//!
//! ```text
//! compute_ttft_us = θ0 + θ1 · prompt_tokens/1000 + θ2 · queue_len   RLS, λ-forgetting
//!                   θ starts at [base_ttft_us, 1e9/prefill_tokens_per_s, per_queued_request_us]
//! completion_us   = compute_ttft_us + output_tokens · decode_us_per_token
//!                   decode_us_per_token: EWMA, starts at 1e6/decode_tokens_per_s
//! ```
//!
//! Guarantees:
//! - Constructors validate every parameter and return [`ParamError`].
//! - Non-finite input (and any update that would overflow) is ignored and
//!   counted; the models never hold NaN or infinity.
//! - Predictions of [`InstanceModel`] are finite and ≥ 0.
//! - All types are fixed-size and `Copy`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod ewma;
mod instance;
mod param_error;
pub mod period;
mod rls;

pub use error::{ErrorSummary, ErrorTracker};
pub use ewma::{Ewma, EwmaVar};
pub use instance::{InstanceModel, InstancePrior, ModelConfig, Observation, Prediction};
pub use param_error::ParamError;
pub use period::{HistoryError, PeriodDetector};
pub use rls::{Rls, DEFAULT_TRACE_FACTOR, RELAX_AFTER_UNEXCITED};
