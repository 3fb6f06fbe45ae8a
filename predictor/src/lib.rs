//! Online prediction models (being written).
