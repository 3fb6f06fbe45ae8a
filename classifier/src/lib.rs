//! # classifier — zero-copy packet views and the IntelliNode fast-path parser
//!
//! IntelliNode is a bump-in-the-wire appliance: every frame that enters one
//! port leaves the other, and on the way the data plane classifies it (which
//! flow, which RoCEv2 queue pair, how large a message) and may rewrite a few
//! mutable fields (ECN, TTL, FECN/BECN). This crate is everything that needs
//! to understand packet bytes, with no DPDK and no I/O, so it can be unit-
//! and property-tested on any machine.
//!
//! ## How the crate is organised
//!
//! Each protocol header lives in its own module and follows the same shape,
//! borrowed from smoltcp's `wire` module:
//!
//! * a **view** `Xxx<T: AsRef<[u8]>>` over a byte buffer. Its `new_checked`
//!   validates every length (and version) field *once*; after that, every
//!   accessor is a plain load that cannot panic. Setters exist when
//!   `T: AsMut<[u8]>`. Nothing is copied.
//! * a **repr** `XxxRepr`, the owned, decoded form. `XxxRepr::parse(&view)`
//!   decodes, `repr.emit(&mut buf)` encodes into a `&mut [u8]` and returns
//!   the number of bytes written, and `repr.buffer_len()` says how many that
//!   will be. Reprs emit *headers*; the caller places payloads.
//! * an **error enum** per layer whose variants name exactly what was wrong
//!   (for instance [`ipv4::Ipv4Error::HeaderTruncated`] carries the length
//!   the IHL announced and the bytes available), with a stable `code()` such
//!   as `"ipv4.bad_checksum"` for counters.
//!
//! | layer | modules |
//! |---|---|
//! | link | [`ethernet`], [`vlan`], [`arp`] |
//! | network | [`ip`], [`ipv4`], [`ipv4_option`], [`ipv6`], [`ipv6_ext`], [`ipv6_frag`], [`ipv6_option`] |
//! | transport | [`udp`], [`tcp`] |
//! | RoCEv2 | [`bth`], [`bth_opcode`], [`reth`], [`aeth`], [`icrc`] |
//! | token steering | [`token_feature`], [`token_feature_tlv`] |
//! | helpers | [`checksum`], [`flow`], [`span`], [`fragment`] (fragmenting and reassembling, for generators and tests) |
//! | fast path | [`mod@parse`] |
//!
//! ## Reading order for newcomers
//!
//! Start with [`parse()`]: it is the one function the data plane calls per
//! packet, and its body reads as a tour of the layers. Then [`flow`] for
//! what a flow is, [`bth`] and [`icrc`] for the RoCEv2 specifics, and
//! [`checksum`] for how mutable fields are rewritten without re-reading the
//! payload.
//!
//! ## Guarantees
//!
//! * No function in this crate panics on any input bytes. Property tests in
//!   `tests/` feed random and mutated packets to every view, iterator and to
//!   [`parse()`].
//! * [`parse()`] does not allocate and does constant work per header (the
//!   only loops are bounded: two VLAN tags, eight IPv6 extension headers,
//!   sixty bytes of IPv4 header checksum).
//! * `emit` followed by `parse` returns the same repr (property-tested).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aeth;
pub mod arp;
pub mod bth;
pub mod bth_opcode;
pub mod checksum;
pub mod ethernet;
mod field;
pub mod flow;
pub mod flow_walk;
pub mod fragment;
pub mod icrc;
pub mod ip;
pub mod ipv4;
pub mod ipv4_option;
pub mod ipv6;
pub mod ipv6_ext;
pub mod ipv6_frag;
pub mod ipv6_option;
pub mod parse;
pub mod reth;
pub mod roce;
pub mod span;
pub mod task_keywords;
pub mod tcp;
pub mod token_feature;
pub mod token_feature_tlv;
pub mod udp;
pub mod vlan;

pub use bth::ROCEV2_UDP_PORT;
pub use bth_opcode::BthOpcode;
pub use ethernet::{EtherType, MacAddr};
pub use flow::FlowKey;
pub use flow_walk::FlowPacket;
pub use ip::{Ecn, FragmentInfo, IpProtocol, IpVersion};
pub use parse::{parse, BthSummary, L3Kind, ParseError, ParsedPacket, MAX_FRAME_LEN};
pub use roce::RocePacket;
pub use span::Span;
pub use tcp::{TcpOption, TcpOptions};
pub use token_feature::{
    FeatureError, SharedPrefix, TaskType, TokenFeatureId, TokenFeatures, Urgency,
};
pub use token_feature_tlv::{
    find_token_feature, TlvLookup, TlvMalformed, TokenFeatureTlv, TokenFeatureTlvRepr,
};
