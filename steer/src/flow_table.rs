//! The per-flow affinity table: every later packet of a flow follows its
//! first packet's decision, in both directions.
//!
//! A flow is keyed by its *client side*: the agent's address and port, the
//! protocol and the service port. A request carries that tuple as
//! (source, destination port); its response, after the instance answered,
//! carries it as (destination, source port). One key therefore finds the
//! flow from either direction without a second index, whichever instance
//! was chosen. (A client reusing one source port towards two VIPs on the
//! same service port at once would collide; TCP stacks do not do that
//! within one service, and a collision is detected by comparing the VIP.)
//!
//! The table itself is [`flowtab::Table`], the one the tensor pipeline
//! keeps its QPs in too: fixed capacity, no allocation or panic after
//! start-up, incremental ageing. Every field of a [`ClientKey`] is the
//! agent's to choose, so its hash is keyed by the table's seed, drawn at
//! random per process: an agent cannot pick ports that all land in one
//! probe run and make every lookup walk it. Callers that hash a key ahead
//! of the lookup (to warm a burst's slots) ask the table, [`FlowTable::hash`].
//!
//! The time a flow was last seen lives in the table, not in [`FlowEntry`]:
//! a packet of the flow marks it with [`FlowTable::touch_hashed`], and
//! [`FlowTable::expire`] hands each forgotten flow to its caller, which
//! closes the flow's measurement and learns from it.

use classifier::TokenFeatures;

use crate::class::TrafficClass;
use crate::decision::Predicted;
use crate::feedback::RequestTiming;

/// The client side of a flow.
#[derive(Debug, Clone, Copy, Eq, Default)]
pub struct ClientKey {
    /// Agent address (IPv4 in mapped form).
    pub addr: [u8; 16],
    /// Agent port.
    pub port: u16,
    /// Service port.
    pub service_port: u16,
    /// IP protocol number.
    pub protocol: u8,
}

impl ClientKey {
    /// The ports and protocol, packed in one word.
    #[inline(always)]
    fn rest(&self) -> u64 {
        u64::from(self.port) | u64::from(self.service_port) << 16 | u64::from(self.protocol) << 32
    }
}

impl PartialEq for ClientKey {
    /// Two words against two: the address as one 128-bit value and the
    /// rest packed in one, where the derived comparison took every field
    /// in turn, on every flow-table probe.
    #[inline]
    fn eq(&self, other: &ClientKey) -> bool {
        u128::from_ne_bytes(self.addr) == u128::from_ne_bytes(other.addr)
            && self.rest() == other.rest()
    }
}

impl core::hash::Hash for ClientKey {
    /// The words `eq` compares, so equal keys hash equally.
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.addr));
        state.write_u64(self.rest());
    }
}

impl flowtab::TableKey for ClientKey {
    /// The key read as three words; the IPv4-mapped prefix and the port
    /// numbers' empty high bits are left to the mix's rotations.
    #[inline]
    fn hash(&self, seed: u64) -> u32 {
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = self.addr;
        let a = u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
        let b = u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
        flowtab::hash_words(seed, [a, b, self.rest()])
    }
}

/// What the table remembers about a flow. In declaration order
/// (`repr(C)`), so that everything a request packet of a known flow
/// touches (the choice, the close flag, the timing's phase and request
/// time) sits right after the table's key and time, in the entry's first
/// cache line; a response's timing is in the second; the features and the
/// prediction, read when the flow is decided or learnt from, come last.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct FlowEntry {
    /// Service index.
    pub service: u8,
    /// Chosen instance index.
    pub instance: u8,
    /// Chosen path index.
    pub path: u8,
    /// Scheduling class (both directions).
    pub class: TrafficClass,
    /// A FIN or RST was seen: a later SYN from the same client port is a
    /// new connection, to be decided afresh, not this flow.
    pub closed: bool,
    /// Decided by delayed binding ([`crate::splice`]): its later requests
    /// are read by the splicer, not by the one-segment inference.
    pub spliced: bool,
    /// The request asked for a streamed answer (or is not known to have
    /// asked otherwise: every TLV flow). A whole answer's first byte is
    /// its last, so its TTFT is not its first byte's time.
    pub streaming: bool,
    /// Passive latency measurement.
    pub timing: RequestTiming,
    /// The request's features.
    pub features: TokenFeatures,
    /// When the flow was decided.
    pub created_ns: u64,
    /// What was predicted when the flow was decided.
    pub predicted: Predicted,
}

impl FlowEntry {
    /// A new entry, decided at `now_ns`.
    pub fn new(
        service: u8,
        instance: u8,
        path: u8,
        class: TrafficClass,
        features: TokenFeatures,
        predicted: Predicted,
        now_ns: u64,
    ) -> FlowEntry {
        FlowEntry {
            service,
            instance,
            path,
            class,
            features,
            predicted,
            created_ns: now_ns,
            timing: RequestTiming::default(),
            closed: false,
            spliced: false,
            streaming: true,
        }
    }
}

pub use flowtab::InsertError;

/// Fixed-capacity flow table: [`flowtab::Table`] from the client side of a
/// flow to what was decided for it.
pub type FlowTable = flowtab::Table<ClientKey, FlowEntry>;

#[cfg(test)]
mod tests {
    use flowtab::TableKey;

    use super::*;

    fn key(port: u16) -> ClientKey {
        ClientKey {
            addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, 11],
            port,
            service_port: 8000,
            protocol: 6,
        }
    }

    fn entry(instance: u8, now: u64) -> FlowEntry {
        let f = TokenFeatures {
            prompt_tokens: 10,
            output_tokens: 10,
            task: classifier::TaskType::Chat,
            urgency: classifier::Urgency::Normal,
            explicit_urgency: false,
            prefix: None,
        };
        FlowEntry::new(
            0,
            instance,
            0,
            TrafficClass::Interactive,
            f,
            Predicted::default(),
            now,
        )
    }

    #[test]
    fn what_a_request_hit_touches_is_in_the_entrys_first_line() {
        use core::mem::{offset_of, size_of};
        // flowtab's entry (`repr(C)`): the key, its hash and the time, then
        // the value; the timing's phase and request time lead it.
        let before_value = (size_of::<ClientKey>() + 4).next_multiple_of(8) + 8;
        let hot_end = before_value + offset_of!(FlowEntry, timing) + 16;
        assert!(hot_end <= flowtab::CACHE_LINE, "{hot_end} bytes");
    }

    #[test]
    fn insert_find_remove_and_full() {
        let mut t = FlowTable::new(100, 7);
        for p in 0..100 {
            t.insert(key(p), entry((p % 3) as u8, 0), 0).unwrap();
        }
        assert_eq!(t.insert(key(1000), entry(0, 0), 0), Err(InsertError::Full));
        assert_eq!(
            t.insert(key(5), entry(0, 0), 0).unwrap_err(),
            InsertError::Exists
        );
        for p in 0..100 {
            assert_eq!(t.get(&key(p)).unwrap().instance, (p % 3) as u8);
        }
        for p in (0..100).step_by(2) {
            assert!(t.remove(&key(p)).is_some());
        }
        assert_eq!(t.len(), 50);
        for p in 0..100 {
            assert_eq!(t.get(&key(p)).is_some(), p % 2 == 1, "port {p}");
        }
        t.insert(key(1000), entry(2, 0), 0).unwrap();
        assert_eq!(t.get(&key(1000)).unwrap().instance, 2);
    }

    #[test]
    fn every_field_and_the_seed_change_the_hash() {
        let k = key(40_000);
        let h = k.hash(1);
        let mut other = k;
        other.addr[0] = 1;
        assert_ne!(other.hash(1), h, "address, first half");
        other = k;
        other.addr[15] = 12;
        assert_ne!(other.hash(1), h, "address, second half");
        assert_ne!(ClientKey { port: 40_001, ..k }.hash(1), h);
        assert_ne!(
            ClientKey {
                service_port: 8001,
                ..k
            }
            .hash(1),
            h
        );
        assert_ne!(ClientKey { protocol: 17, ..k }.hash(1), h);
        assert_ne!(k.hash(2), h);
        // The table hashes with its own seed.
        assert_eq!(FlowTable::new(4, 1).hash(&k), h);
        assert_eq!(FlowTable::new(4, 2).hash(&k), k.hash(2));
    }

    #[test]
    fn touching_a_flow_keeps_it_from_ageing_out() {
        let mut t = FlowTable::new(8, 3);
        for p in 0..8 {
            t.insert(key(p), entry(0, 0), 0).unwrap();
        }
        for p in 4..8 {
            let h = t.hash(&key(p));
            t.touch_hashed(&key(p), h, 1_000).unwrap().closed = true;
        }
        let mut seen = Vec::new();
        // Budget 3: the first pass visits entries 0..3 only.
        assert_eq!(t.expire(1_500, 1_000, 3, |k, _| seen.push(k.port)), 3);
        assert_eq!(seen, vec![0, 1, 2]);
        assert_eq!(t.expire(1_500, 1_000, 8, |k, _| seen.push(k.port)), 1);
        assert_eq!(t.len(), 4);
        assert!(t.get(&key(5)).is_some_and(|e| e.closed));
    }
}
