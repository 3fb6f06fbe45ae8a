//! Raw DPDK bindings for IntelliNode.
//!
//! Everything here is `unsafe` and unopinionated: the generated bindgen
//! declarations for the subset of DPDK the appliance uses, plus the `shim_*`
//! functions that give DPDK's `static inline` data-path calls (rx/tx burst,
//! mbuf alloc/free, prefetch, TSC, `rte_errno`) a linkable symbol.
//!
//! Safe wrappers live in the `dataplane` crate; nothing else should depend on
//! this crate directly.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

// Layout tests are off (they would double the build time); this one check
// catches the failure that matters: Rust and C disagreeing about the mbuf.
const _: () = assert!(core::mem::size_of::<rte_mbuf>() == 128);
const _: () = assert!(core::mem::align_of::<rte_mbuf>() == 64);
