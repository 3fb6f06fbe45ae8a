//! Token-aware traffic steering (being written).

pub mod infer;
pub mod rewrite;
