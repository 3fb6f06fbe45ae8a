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
//! Layout: a fixed array of entries plus an open-addressing index
//! (linear probing, twice as many slots as entries, power of two) of entry
//! numbers. Removal uses backward-shift deletion, so there are no
//! tombstones and probe sequences stay short however many flows come and
//! go. Free entries are a stack. Everything is allocated in
//! [`FlowTable::new`]; lookups, inserts, removals and the ageing sweep
//! never allocate and never panic.
//!
//! Ageing is incremental: [`FlowTable::expire`] visits a bounded number of
//! entries per call from a rotating cursor, so a worker can call it once
//! per poll and pay a bounded cost, and a full sweep completes every
//! `capacity / budget` polls.

use classifier::TokenFeatures;

use crate::class::TrafficClass;
use crate::decision::Predicted;
use crate::feedback::RequestTiming;

/// The client side of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
    /// A multiply-xorshift mix of the key read as three words: a handful
    /// of cycles per packet, and the high bits it keeps are well mixed, so
    /// the power-of-two index spreads neighbouring ports and addresses.
    #[inline]
    pub fn hash32(&self) -> u32 {
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = self.addr;
        let a = u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
        let b = u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
        let c = u64::from(self.port)
            | u64::from(self.service_port) << 16
            | u64::from(self.protocol) << 32;
        let mut h = a.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ b.rotate_left(29).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ c.wrapping_mul(0x1656_67b1_9e37_79f9);
        h ^= h >> 31;
        h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
        (h >> 32) as u32
    }
}

/// What the table remembers about a flow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowEntry {
    /// The key.
    pub key: ClientKey,
    /// Service index.
    pub service: u8,
    /// Chosen instance index.
    pub instance: u8,
    /// Chosen path index.
    pub path: u8,
    /// Scheduling class (both directions).
    pub class: TrafficClass,
    /// The request's features.
    pub features: TokenFeatures,
    /// What was predicted when the flow was decided.
    pub predicted: Predicted,
    /// When the flow was decided.
    pub created_ns: u64,
    /// Last packet in either direction.
    pub last_seen_ns: u64,
    /// Passive latency measurement.
    pub timing: RequestTiming,
    /// A FIN or RST was seen: a later SYN from the same client port is a
    /// new connection, to be decided afresh, not this flow.
    pub closed: bool,
    hash: u32,
}

impl FlowEntry {
    /// A new entry for `key`, decided at `now_ns`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: ClientKey,
        service: u8,
        instance: u8,
        path: u8,
        class: TrafficClass,
        features: TokenFeatures,
        predicted: Predicted,
        now_ns: u64,
    ) -> FlowEntry {
        FlowEntry {
            key,
            service,
            instance,
            path,
            class,
            features,
            predicted,
            created_ns: now_ns,
            last_seen_ns: now_ns,
            timing: RequestTiming::default(),
            closed: false,
            hash: key.hash32(),
        }
    }
}

const EMPTY: u32 = u32::MAX;

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Every entry is in use.
    Full,
    /// The key is already present.
    Exists,
}

/// Fixed-capacity flow table.
#[derive(Debug, Clone)]
pub struct FlowTable {
    entries: Vec<FlowEntry>,
    used: Vec<bool>,
    index: Vec<u32>,
    mask: usize,
    free: Vec<u32>,
    len: usize,
    cursor: usize,
}

impl FlowTable {
    /// A table of `capacity` flows (at least 1, at most 2^24).
    pub fn new(capacity: usize) -> FlowTable {
        let capacity = capacity.clamp(1, 1 << 24);
        let slots = (capacity * 2).next_power_of_two();
        let blank = FlowEntry::new(
            ClientKey::default(),
            0,
            0,
            0,
            TrafficClass::Other,
            TokenFeatures {
                prompt_tokens: 0,
                output_tokens: 0,
                task: classifier::TaskType::Chat,
                urgency: classifier::Urgency::Normal,
                explicit_urgency: false,
            },
            Predicted::default(),
            0,
        );
        FlowTable {
            entries: vec![blank; capacity],
            used: vec![false; capacity],
            index: vec![EMPTY; slots],
            mask: slots - 1,
            // Popped from the end: entry 0 is handed out first.
            free: (0..capacity as u32).rev().collect(),
            len: 0,
            cursor: 0,
        }
    }

    /// Flows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Flows the table can hold.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The index slot holding `key`, if present.
    fn find_slot(&self, key: &ClientKey, hash: u32) -> Option<usize> {
        let mut slot = hash as usize & self.mask;
        // At most every slot; the index is never full (2× entries).
        for _ in 0..=self.mask {
            let e = *self.index.get(slot)?;
            if e == EMPTY {
                return None;
            }
            if let Some(entry) = self.entries.get(e as usize) {
                if entry.hash == hash && entry.key == *key {
                    return Some(slot);
                }
            }
            slot = (slot + 1) & self.mask;
        }
        None
    }

    /// The flow for `key`.
    pub fn get_mut(&mut self, key: &ClientKey) -> Option<&mut FlowEntry> {
        self.get_mut_hashed(key, key.hash32())
    }

    /// [`FlowTable::get_mut`] with the key's [`ClientKey::hash32`] already
    /// computed.
    pub fn get_mut_hashed(&mut self, key: &ClientKey, hash: u32) -> Option<&mut FlowEntry> {
        let slot = self.find_slot(key, hash)?;
        let e = *self.index.get(slot)?;
        self.entries.get_mut(e as usize)
    }

    /// Touches the index slot and the entry a lookup of `hash` will read
    /// first, and returns a value derived from them so the loads cannot be
    /// optimised away. Called for every packet of a burst before any
    /// lookup, the loads of different packets overlap (memory-level
    /// parallelism), so the lookups that follow mostly hit the cache. Safe
    /// code's stand-in for a prefetch instruction.
    #[inline]
    pub fn warm(&self, hash: u32) -> u32 {
        let slot = hash as usize & self.mask;
        match self.index.get(slot) {
            Some(&e) if e != EMPTY => self.entries.get(e as usize).map_or(0, |x| x.hash),
            _ => 0,
        }
    }

    /// The flow for `key`, read-only.
    pub fn get(&self, key: &ClientKey) -> Option<&FlowEntry> {
        let slot = self.find_slot(key, key.hash32())?;
        let e = *self.index.get(slot)?;
        self.entries.get(e as usize)
    }

    /// Inserts a new flow; returns it for further updates.
    pub fn insert(&mut self, entry: FlowEntry) -> Result<&mut FlowEntry, InsertError> {
        let hash = entry.key.hash32();
        if self.find_slot(&entry.key, hash).is_some() {
            return Err(InsertError::Exists);
        }
        let Some(e) = self.free.pop() else {
            return Err(InsertError::Full);
        };
        let mut slot = hash as usize & self.mask;
        loop {
            match self.index.get_mut(slot) {
                Some(s) if *s == EMPTY => {
                    *s = e;
                    break;
                }
                Some(_) => slot = (slot + 1) & self.mask,
                // Unreachable with a power-of-two index; give the entry back.
                None => {
                    self.free.push(e);
                    return Err(InsertError::Full);
                }
            }
        }
        if let Some(u) = self.used.get_mut(e as usize) {
            *u = true;
        }
        self.len += 1;
        let stored = self.entries.get_mut(e as usize).ok_or(InsertError::Full)?;
        *stored = FlowEntry { hash, ..entry };
        Ok(stored)
    }

    /// Removes `key`; returns the entry it held.
    pub fn remove(&mut self, key: &ClientKey) -> Option<FlowEntry> {
        let slot = self.find_slot(key, key.hash32())?;
        self.remove_slot(slot)
    }

    fn remove_slot(&mut self, slot: usize) -> Option<FlowEntry> {
        let e = *self.index.get(slot)?;
        let entry = *self.entries.get(e as usize)?;
        // Backward-shift deletion (Knuth 6.4, Algorithm R): pull later
        // members of the probe run into the hole unless that would move
        // them before their home slot.
        let mut hole = slot;
        let mut next = (slot + 1) & self.mask;
        loop {
            let n = match self.index.get(next) {
                Some(&n) if n != EMPTY => n,
                _ => break,
            };
            let home = self
                .entries
                .get(n as usize)
                .map_or(next, |x| x.hash as usize & self.mask);
            // Distance from home to `next` versus from home to the hole,
            // both modulo the table size: movable if the hole lies within.
            let dist_next = next.wrapping_sub(home) & self.mask;
            let dist_hole = hole.wrapping_sub(home) & self.mask;
            if dist_hole <= dist_next {
                if let Some(h) = self.index.get_mut(hole) {
                    *h = n;
                }
                hole = next;
            }
            next = (next + 1) & self.mask;
        }
        if let Some(h) = self.index.get_mut(hole) {
            *h = EMPTY;
        }
        if let Some(u) = self.used.get_mut(e as usize) {
            *u = false;
        }
        self.free.push(e);
        self.len -= 1;
        Some(entry)
    }

    /// Visits up to `budget` entries from the rotating cursor and removes
    /// those idle for more than `idle_ns` at `now_ns`, handing each to
    /// `on_expire` first. Returns how many were removed.
    pub fn expire(
        &mut self,
        now_ns: u64,
        idle_ns: u64,
        budget: usize,
        mut on_expire: impl FnMut(&FlowEntry),
    ) -> usize {
        let mut removed = 0;
        let cap = self.entries.len();
        for _ in 0..budget.min(cap) {
            let i = self.cursor;
            // A compare, not `%`: a division per visited entry would cost
            // more than the visit.
            self.cursor = if i + 1 >= cap { 0 } else { i + 1 };
            if !self.used.get(i).copied().unwrap_or(false) {
                continue;
            }
            let Some(entry) = self.entries.get(i).copied() else {
                continue;
            };
            if now_ns.saturating_sub(entry.last_seen_ns) <= idle_ns {
                continue;
            }
            on_expire(&entry);
            if let Some(slot) = self.find_slot(&entry.key, entry.hash) {
                if self.remove_slot(slot).is_some() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ClientKey {
        ClientKey {
            addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, 11],
            port,
            service_port: 8000,
            protocol: 6,
        }
    }

    fn entry(port: u16, instance: u8, now: u64) -> FlowEntry {
        let f = TokenFeatures {
            prompt_tokens: 10,
            output_tokens: 10,
            task: classifier::TaskType::Chat,
            urgency: classifier::Urgency::Normal,
            explicit_urgency: false,
        };
        FlowEntry::new(
            key(port),
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
    fn insert_find_remove_and_full() {
        let mut t = FlowTable::new(100);
        for p in 0..100 {
            t.insert(entry(p, (p % 3) as u8, 0)).unwrap();
        }
        assert_eq!(t.insert(entry(1000, 0, 0)), Err(InsertError::Full));
        assert_eq!(t.insert(entry(5, 0, 0)).unwrap_err(), InsertError::Exists);
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
        t.insert(entry(1000, 2, 0)).unwrap();
        assert_eq!(t.get(&key(1000)).unwrap().instance, 2);
    }

    #[test]
    fn churn_against_a_model() {
        use std::collections::HashMap;
        let mut t = FlowTable::new(64);
        let mut model: HashMap<u16, u8> = HashMap::new();
        let mut x: u32 = 12345;
        for step in 0..50_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let p = (x % 200) as u16;
            if x & 0x100 == 0 {
                let r = t.insert(entry(p, (step % 7) as u8, 0));
                match (r, model.contains_key(&p), model.len() >= 64) {
                    (Ok(_), false, false) => {
                        model.insert(p, (step % 7) as u8);
                    }
                    (Err(InsertError::Exists), true, _) => {}
                    (Err(InsertError::Full), false, true) => {}
                    (r, present, full) => {
                        panic!("step {step}: {r:?} present={present} full={full}")
                    }
                }
            } else {
                assert_eq!(t.remove(&key(p)).map(|e| e.instance), model.remove(&p));
            }
            assert_eq!(t.len(), model.len());
        }
        for (p, i) in &model {
            assert_eq!(t.get(&key(*p)).map(|e| e.instance), Some(*i));
        }
    }

    #[test]
    fn expire_is_incremental_and_reports() {
        let mut t = FlowTable::new(8);
        for p in 0..8 {
            t.insert(entry(p, 0, if p < 4 { 0 } else { 1_000 }))
                .unwrap();
        }
        let mut seen = Vec::new();
        // Budget 3: the first pass visits entries 0..3 only.
        assert_eq!(t.expire(1_500, 1_000, 3, |e| seen.push(e.key.port)), 3);
        assert_eq!(seen, vec![0, 1, 2]);
        assert_eq!(t.expire(1_500, 1_000, 8, |e| seen.push(e.key.port)), 1);
        assert_eq!(t.len(), 4);
        assert!(t.get(&key(5)).is_some());
    }
}
