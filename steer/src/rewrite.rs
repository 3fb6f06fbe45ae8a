//! NAT rewrites (being written).
