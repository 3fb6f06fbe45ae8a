//! # pktgen — IntelliNode's traffic generator (pure-Rust half)
//!
//! Builds reproducible packet workloads and moves them through pcap files:
//!
//! * [`workload`] — the traffic models (`agent`, `roce`, `mix`, `edge-cases`),
//!   each a pure function of a seed returning `Vec<`[`Packet`]`>`;
//! * [`build`] — assembles frames from `classifier`'s `Repr::emit` APIs,
//!   deriving every length, checksum and ICRC;
//! * [`pcap`] — a classic-pcap writer and a reader that survives corrupt files;
//! * [`verify`] and [`stats`] — the checks and per-class counts behind
//!   `pktgen inspect`;
//! * `pktgen serve|agent|wire` run the `emulator` crate's subcommands (the
//!   inference-node emulator, the agent load generator, the path emulator);
//! * [`cli`] — the `pktgen` command line.
//!
//! Integration tests and the end-to-end harness use the library directly:
//!
//! ```
//! use pktgen::workload::{generate, WorkloadConfig, WorkloadKind};
//!
//! let cfg = WorkloadConfig { seed: 7, packets: 100, ..WorkloadConfig::default() };
//! let packets = generate(WorkloadKind::Roce, &cfg).unwrap();
//! assert_eq!(packets.len(), 100);
//! assert!(classifier::parse(&packets[0].data).unwrap().bth.is_some());
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod build;
pub mod cli;
mod packet;
pub mod pcap;
pub mod send;
pub mod stats;
pub mod verify;
pub mod workload;

pub use packet::Packet;
