//! # collector — compute state from inference servers' own metrics
//!
//! The "Cloud Mgmt" box of the IntelliNode draft: it scrapes every
//! inference server's Prometheus endpoint ([`reading`]: vLLM, SGLang,
//! TensorRT-LLM and TGI by their own metric names), derives the node's
//! queue length, GPU and KV-cache use and estimated TTFT ([`derive`]),
//! reads `/v1/models` for the context length, and pushes sealed
//! NODE_STATE and CAPABILITY messages to one or more appliances
//! ([`push`], the same sender `emulator serve --report-to` uses). A server
//! that stops answering is reported down at the next scrape, not left to
//! age out. [`config`] is its TOML file, [`collect`] its loop.
//!
//! It needs no DPDK: it runs beside the servers or on the appliance host,
//! wherever it can reach both the servers' metrics and the appliances'
//! control port.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod collect;
pub mod config;
pub mod derive;
pub mod push;
pub mod reading;
