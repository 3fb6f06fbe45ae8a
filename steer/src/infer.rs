//! HTTP request inference (being written).
