//! # flowtab — the one table behind the workers' per-flow state
//!
//! Both fast-path pipelines keep state per flow: `steer` remembers which
//! instance each agent connection was sent to, `tensor` runs a state
//! machine per RoCEv2 queue pair. They need the same things from a table —
//! a lookup per packet at a bounded cost, no allocation after start-up,
//! ageing that never stalls a poll — so there is one table, [`Table`], and
//! each pipeline only says how its key is hashed ([`TableKey`]).
//!
//! ## Seeded, because the keys are the sender's choice
//!
//! Every key a worker looks up was chosen by whoever sent the packet:
//! addresses, ports, QP numbers. Under a fixed hash function a sender who
//! knows it can pick thousands of keys with the same home slot, and then
//! every lookup of theirs, and of everyone whose key lands nearby, walks the
//! whole run: hash flooding. So keys are mixed under a seed drawn at random
//! once per process, and which keys collide depends on a secret the sender
//! does not have. [`hash_words`] is a multiply–xorshift mix costing a few
//! nanoseconds, which SipHash does not at these packet rates. It is not a
//! MAC; it only has to make collisions expensive to aim. Users that must be
//! reproducible (the simulator, tests) pass a fixed seed.
//!
//! ## Layout
//!
//! An array of `capacity` entries (key, hash, last-seen time, value, in
//! that order, each aligned to a cache line) and an
//! index of twice as many slots or more, a power of two, each slot holding
//! an entry number and that entry's hash. A probe reads only the index,
//! eight bytes a slot, and reads an entry only when the hashes match, to
//! confirm the key. Because the index is at most half full, a probe always
//! meets an empty slot and ends, and linear probing stays cheap: on average
//! 1.5 slots for a hit and 2.5 for a miss (Knuth), where a 7/8-full table
//! would read 4.5 and 32.5. Entries never move. Removal uses backward-shift
//! deletion in the index (Knuth 6.4, Algorithm R), so there are no
//! tombstones, and probe runs stay as short after a million flows came and
//! went as on the first day. Freed entries go on a stack.
//!
//! ## Time lives in the table
//!
//! The table keeps each entry's last-seen time rather than asking the value
//! for it. Ageing is the table's job; marking a packet seen is one call
//! ([`Table::touch_hashed`]); and values that do not care about time, such
//! as a QP's state, do not carry a field only the sweep reads. Lookups that
//! are not traffic (a timer, a control message) use `get_mut` and leave the
//! time alone.
//!
//! ## Ownership across workers
//!
//! Which worker owns a flow is not a table question: it must be what the
//! NIC's receive-side scaling computes, so that packets arrive where their
//! state is. [`rss`] is that computation.
//!
//! ## Cost
//!
//! Everything is allocated in [`Table::new`]. After that no method
//! allocates or panics: every array access is checked, and a probe is
//! bounded by the index length, so a broken invariant ends a lookup instead
//! of spinning. Ageing is incremental: [`Table::expire`] visits at most
//! `budget` entries from a rotating cursor, so a worker can call it every
//! poll for a bounded cost; since entries never move, a full sweep takes
//! `capacity / budget` calls, rounded up.
//!
//! A sweep that visits a fixed number of entries per call passes over the
//! table as often as it is called, whatever the timeout: 64 entries every
//! 100 µs sweeps a 65,536-flow table ten times a second to find flows idle
//! for 30 s, and every visit to an entry nobody touched lately is a cache
//! miss, taken from the packets' share of the memory system.
//! [`Table::expire_paced`] paces the sweep by time instead: it visits
//! the table [`SWEEPS_PER_IDLE`] times per idle timeout, however often it
//! is called, so an idle entry goes between one and 1 + 1/[`SWEEPS_PER_IDLE`]
//! timeouts after it was last seen.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use core::fmt;

pub mod rss;

/// Most entries a table holds (2^24): entry numbers fit the index's 32-bit
/// slots with room for the empty marker, and the index stays below 2^25
/// slots.
pub const MAX_CAPACITY: usize = 1 << 24;

/// Passes over the whole table [`Table::expire_paced`] makes per idle
/// timeout: an entry is forgotten at most an eighth of a timeout late.
pub const SWEEPS_PER_IDLE: u64 = 8;

/// Bytes of a cache line: the unit [`Table::prefetch_entry`] names, and
/// what entries are aligned to.
pub const CACHE_LINE: usize = 64;

/// Most 64-bit words [`hash_words`] mixes: each word position has its own
/// multiplier, rotation and key.
pub const MAX_WORDS: usize = 8;

/// A key the table can hold: compared for equality, copied in and out, and
/// hashed under the table's seed.
pub trait TableKey: Copy + Eq {
    /// The key's hash under `seed`. Implementations feed every field that
    /// takes part in equality to [`hash_words`], so that equal keys hash
    /// equally and which keys collide depends on the seed.
    fn hash(&self, seed: u64) -> u32;
}

/// Odd multipliers, one per word position (the golden ratio, MurmurHash3's
/// and xxHash's finalisers, SplitMix64's and wyhash's).
const MULTIPLIERS: [u64; MAX_WORDS] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0xd6e8_feb8_6659_fd93,
    0xff51_afd7_ed55_8ccd,
    0x94d0_49bb_1331_11eb,
    0xa076_1d64_78bd_642f,
    0xe703_7ed1_a0b4_28db,
];
/// Rotations before the multiply, so that low-entropy high bits (the zeros
/// of an IPv4-mapped address, of a 16-bit port) reach the bits that the
/// multiply spreads.
const ROTATIONS: [u32; MAX_WORDS] = [0, 23, 11, 41, 7, 53, 29, 37];
/// Fractional digits of pi, xored with the seed: equal words in different
/// positions are mixed under different keys, and seed 0 is not special.
const SALTS: [u64; MAX_WORDS] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
];

/// Keyed multiply–xorshift hash of up to [`MAX_WORDS`] words (more is a
/// compile-time error).
///
/// Each word is xored with a key derived from `seed` and its position, then
/// rotated and multiplied; the products are independent, so a CPU computes
/// them in parallel, and their xor is finished with an xorshift–multiply
/// avalanche. The high half of the result is kept because it is the
/// well-mixed one, and tables index by its low bits.
#[inline]
pub fn hash_words<const N: usize>(seed: u64, words: [u64; N]) -> u32 {
    const { assert!(N <= MAX_WORDS, "hash_words mixes at most MAX_WORDS words") };
    let lanes = MULTIPLIERS.into_iter().zip(ROTATIONS).zip(SALTS);
    let mut h = 0u64;
    for (i, (w, ((m, r), salt))) in words.into_iter().zip(lanes).enumerate() {
        let key = seed.rotate_left(i as u32 * 17) ^ salt;
        h ^= (w ^ key).rotate_left(r).wrapping_mul(m);
    }
    h ^= h >> 31;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 29;
    (h >> 32) as u32
}

/// Which of `workers` owns the key with this hash: the high bits, so the
/// choice is independent of the table slot (the low bits). Every worker
/// of an appliance keys its table with the same seed, so all agree.
#[inline]
pub fn owner(hash: u32, workers: usize) -> usize {
    ((u64::from(hash) * workers as u64) >> 32) as usize
}

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Every entry is in use.
    Full,
    /// The key is already present.
    Exists,
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InsertError::Full => "the table is full",
            InsertError::Exists => "the key is already in the table",
        })
    }
}

impl std::error::Error for InsertError {}

/// Entry number of an empty index slot.
const EMPTY: u32 = u32::MAX;

/// One index slot: which entry, and its hash, so that probing and
/// backward shifts read the index alone.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u32,
    entry: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        hash: 0,
        entry: EMPTY,
    };
}

/// A stored entry: cache-line aligned, key and time first (`repr(C)`), so
/// that a lookup's key compare, the time it marks and a value's leading
/// fields share one line (a value that orders its hot fields first, as
/// steer's flow entry does, keeps a hit to that line).
///
/// `live` is where `Option<Entry>` keeps whether the slot is in use. The
/// compiler puts an `Option`'s discriminant in the largest niche it finds,
/// and `live` is a 32-bit word with one valid value: 2^32 − 1 spare
/// values, more than a value's `bool`, enum or `Option<u32>` tag offers
/// (steer's token features have one of those, in the entry's second
/// line, which every lookup read first before `live` existed). It sits in
/// the key's padding, in the first line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Entry<K, V> {
    key: K,
    live: Live,
    hash: u32,
    last_seen_ns: u64,
    value: V,
}

/// The one value of [`Entry::live`].
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
enum Live {
    Yes = 1,
}

/// Where a probe for a key ended.
enum Probe {
    /// At index slot `slot`, holding entry `entry`.
    Found { slot: usize, entry: usize },
    /// At an empty index slot: where the key would go.
    Vacant(usize),
}

/// A fixed-capacity, seeded, open-addressing table from `K` to `V`; see the
/// [crate documentation](crate) for why it is built this way.
#[derive(Clone)]
pub struct Table<K, V> {
    index: Vec<Slot>,
    mask: usize,
    entries: Vec<Option<Entry<K, V>>>,
    /// Free entry numbers; allocated at full capacity, so pushing back a
    /// freed entry never reallocates.
    free: Vec<u32>,
    len: usize,
    /// Next entry the ageing sweep visits.
    cursor: usize,
    /// Visits [`Table::expire_paced`] owes, times the idle timeout (whole
    /// visits are made, the fraction carries over).
    sweep_owed: u128,
    /// When [`Table::expire_paced`] last ran.
    swept_at_ns: u64,
    seed: u64,
}

impl<K, V> fmt::Debug for Table<K, V> {
    // Not the entries (a dump of a million flows helps nobody) and not the
    // seed, which is what keeps collisions from being aimed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len)
            .field("capacity", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl<K: TableKey, V: Copy> Table<K, V> {
    /// A table of `capacity` entries, clamped to 1..=[`MAX_CAPACITY`].
    /// `seed` keys the hash: draw it at random once per process, unless the
    /// user must be reproducible.
    pub fn new(capacity: usize, seed: u64) -> Table<K, V> {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let slots = (capacity * 2).next_power_of_two();
        let mut free = Vec::with_capacity(capacity);
        // Popped from the end: entry 0 is handed out first.
        free.extend((0..capacity as u32).rev());
        Table {
            index: vec![Slot::EMPTY; slots],
            mask: slots - 1,
            entries: vec![None; capacity],
            free,
            len: 0,
            cursor: 0,
            sweep_owed: 0,
            swept_at_ns: 0,
            seed,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries the table can hold; inserts beyond this are refused.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The key's hash under this table's seed: computed once per packet and
    /// passed to the prefetch stages and the `_hashed` methods.
    #[inline]
    pub fn hash(&self, key: &K) -> u32 {
        TableKey::hash(key, self.seed)
    }

    /// Stage one of a burst's lookups: hands `prefetch` the address of the
    /// index slot a lookup of `hash` reads first. Called for every key of
    /// a burst, then [`Table::prefetch_entry`] for each key once its slot
    /// has had time to arrive, then the lookups, as DPDK's
    /// `rte_hash_lookup_bulk` does: the cache misses of a burst overlap
    /// instead of being paid one after another. The table
    /// only computes addresses (it holds no `unsafe`); the caller owns the
    /// prefetch instruction, which never faults.
    #[inline(always)]
    pub fn prefetch_slot(&self, hash: u32, prefetch: impl FnOnce(*const u8)) {
        let slot = self.index.as_ptr().wrapping_add(hash as usize & self.mask);
        prefetch(slot.cast());
    }

    /// Stage two (see [`Table::prefetch_slot`]), once the slot is in the
    /// cache: hands `prefetch` the first `lines` cache lines of the entry
    /// the home slot of `hash` points at (fewer if the entry is smaller),
    /// if that slot holds this hash: the key, the time and the value's
    /// leading fields. The caller knows what its lookup will read (one
    /// line for a value that orders what it touches first); every further
    /// line is memory bandwidth and a fill buffer the packets need. A key
    /// displaced from its home slot is not prefetched; at the index's load
    /// limit that is rare.
    #[inline(always)]
    pub fn prefetch_entry(&self, hash: u32, lines: usize, mut prefetch: impl FnMut(*const u8)) {
        let Some(s) = self.index.get(hash as usize & self.mask) else {
            return;
        };
        if s.entry == EMPTY || s.hash != hash {
            return;
        }
        // Slots are line-aligned, and `Option` keeps its tag inside the
        // entry (`Entry::live`): the first line is the entry's.
        const {
            assert!(
                core::mem::size_of::<Option<Entry<K, V>>>() == core::mem::size_of::<Entry<K, V>>()
            )
        };
        let slot = self
            .entries
            .as_ptr()
            .wrapping_add(s.entry as usize)
            .cast::<u8>();
        let size = core::mem::size_of::<Entry<K, V>>();
        for line in 0..size.div_ceil(CACHE_LINE).min(lines) {
            prefetch(slot.wrapping_add(line * CACHE_LINE));
        }
    }

    /// Probes from the home slot of `hash` until the key or an empty slot;
    /// `None` only if the index had no empty slot, which the load limit
    /// rules out.
    #[inline]
    fn probe(&self, key: &K, hash: u32) -> Option<Probe> {
        let mut i = hash as usize & self.mask;
        for _ in 0..self.index.len() {
            let s = *self.index.get(i)?;
            if s.entry == EMPTY {
                return Some(Probe::Vacant(i));
            }
            if s.hash == hash {
                if let Some(Some(e)) = self.entries.get(s.entry as usize) {
                    if e.key == *key {
                        let entry = s.entry as usize;
                        return Some(Probe::Found { slot: i, entry });
                    }
                }
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Entry number holding `key`, if present.
    #[inline]
    fn find(&self, key: &K, hash: u32) -> Option<usize> {
        match self.probe(key, hash)? {
            Probe::Found { entry, .. } => Some(entry),
            Probe::Vacant(_) => None,
        }
    }

    #[inline]
    fn entry_mut(&mut self, entry: usize) -> Option<&mut Entry<K, V>> {
        self.entries.get_mut(entry)?.as_mut()
    }

    /// The value for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.get_hashed(key, self.hash(key))
    }

    /// [`Table::get`] with the key's [`Table::hash`] already computed.
    #[inline]
    pub fn get_hashed(&self, key: &K, hash: u32) -> Option<&V> {
        let e = self.find(key, hash)?;
        self.entries.get(e)?.as_ref().map(|e| &e.value)
    }

    /// The value for `key`, to update; when it was last seen is unchanged.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.get_mut_hashed(key, self.hash(key))
    }

    /// [`Table::get_mut`] with the key's [`Table::hash`] already computed.
    #[inline]
    pub fn get_mut_hashed(&mut self, key: &K, hash: u32) -> Option<&mut V> {
        let e = self.find(key, hash)?;
        self.entry_mut(e).map(|e| &mut e.value)
    }

    /// The value for `key`, marking it seen at `now_ns`: a packet of a flow
    /// that must not create one.
    #[inline]
    pub fn touch_hashed(&mut self, key: &K, hash: u32, now_ns: u64) -> Option<&mut V> {
        let e = self.find(key, hash)?;
        let e = self.entry_mut(e)?;
        e.last_seen_ns = now_ns;
        Some(&mut e.value)
    }

    /// When `key` was last seen (inserted or touched), if present.
    pub fn last_seen_ns(&self, key: &K) -> Option<u64> {
        let e = self.find(key, self.hash(key))?;
        self.entries.get(e)?.as_ref().map(|e| e.last_seen_ns)
    }

    /// Inserts `key` with `value`, seen at `now_ns`, and returns the stored
    /// value for further updates. An existing key is refused
    /// ([`InsertError::Exists`]) even when the table is full.
    pub fn insert(&mut self, key: K, value: V, now_ns: u64) -> Result<&mut V, InsertError> {
        self.insert_hashed(key, self.hash(&key), value, now_ns)
    }

    /// [`Table::insert`] with the key's [`Table::hash`] already computed.
    #[inline]
    pub fn insert_hashed(
        &mut self,
        key: K,
        hash: u32,
        value: V,
        now_ns: u64,
    ) -> Result<&mut V, InsertError> {
        match self.probe(&key, hash) {
            Some(Probe::Found { .. }) => Err(InsertError::Exists),
            Some(Probe::Vacant(slot)) => self.fill(slot, key, hash, value, now_ns),
            None => Err(InsertError::Full),
        }
    }

    /// The value for `key`, whose [`Table::hash`] is `hash`, inserting
    /// `V::default()` if it is absent, marked seen at `now_ns`; the flag
    /// says whether it was inserted. One probe, where a lookup followed by
    /// an insert would take two. Fails only with [`InsertError::Full`].
    #[inline]
    pub fn entry_hashed(
        &mut self,
        key: &K,
        hash: u32,
        now_ns: u64,
    ) -> Result<(&mut V, bool), InsertError>
    where
        V: Default,
    {
        match self.probe(key, hash) {
            Some(Probe::Found { entry, .. }) => {
                let e = self.entry_mut(entry).ok_or(InsertError::Full)?;
                e.last_seen_ns = now_ns;
                Ok((&mut e.value, false))
            }
            Some(Probe::Vacant(slot)) => self
                .fill(slot, *key, hash, V::default(), now_ns)
                .map(|v| (v, true)),
            None => Err(InsertError::Full),
        }
    }

    /// Stores a new entry and points the empty index slot `slot` at it.
    fn fill(
        &mut self,
        slot: usize,
        key: K,
        hash: u32,
        value: V,
        now_ns: u64,
    ) -> Result<&mut V, InsertError> {
        let e = *self.free.last().ok_or(InsertError::Full)?;
        let (Some(s), Some(stored)) = (self.index.get_mut(slot), self.entries.get_mut(e as usize))
        else {
            return Err(InsertError::Full);
        };
        self.free.pop();
        *s = Slot { hash, entry: e };
        self.len += 1;
        let stored = stored.insert(Entry {
            key,
            live: Live::Yes,
            hash,
            last_seen_ns: now_ns,
            value,
        });
        Ok(&mut stored.value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        match self.probe(key, self.hash(key))? {
            Probe::Found { slot, entry } => self.remove_at(slot, entry).map(|e| e.value),
            Probe::Vacant(_) => None,
        }
    }

    /// Frees entry `entry`, whose index slot is `slot`, and shifts the
    /// displaced slots after it back, so that every remaining entry is still
    /// reachable from its home slot without crossing an empty one.
    fn remove_at(&mut self, slot: usize, entry: usize) -> Option<Entry<K, V>> {
        let removed = self.entries.get_mut(entry)?.take()?;
        // `entry` was in use, so the stack has room and this cannot
        // reallocate.
        self.free.push(entry as u32);
        self.len = self.len.saturating_sub(1);
        let mut hole = slot;
        let mut j = (slot + 1) & self.mask;
        for _ in 0..self.index.len() {
            let s = match self.index.get(j) {
                Some(&s) if s.entry != EMPTY => s,
                _ => break,
            };
            let home = s.hash as usize & self.mask;
            // The slot at `j` may move into the hole only if its home is not
            // cyclically within (hole, j]: otherwise it would land before
            // its home, where no probe looks.
            let from_home = j.wrapping_sub(home) & self.mask;
            let from_hole = j.wrapping_sub(hole) & self.mask;
            if from_home >= from_hole {
                if let Some(h) = self.index.get_mut(hole) {
                    *h = s;
                }
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        if let Some(h) = self.index.get_mut(hole) {
            *h = Slot::EMPTY;
        }
        Some(removed)
    }

    /// Index slot pointing at entry `entry`, whose hash is `hash`.
    fn slot_of(&self, hash: u32, entry: usize) -> Option<usize> {
        let mut i = hash as usize & self.mask;
        for _ in 0..self.index.len() {
            let s = self.index.get(i)?;
            if s.entry == EMPTY {
                return None;
            }
            if s.entry as usize == entry {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Visits at most `budget` entries from the rotating cursor and removes
    /// each one last seen `idle_ns` or more before `now_ns`, passing it to
    /// `on_expire` after it is gone (the steering worker learns from the
    /// flows it forgets). Returns how many were removed.
    pub fn expire(
        &mut self,
        now_ns: u64,
        idle_ns: u64,
        budget: usize,
        mut on_expire: impl FnMut(&K, &V),
    ) -> usize {
        let cap = self.entries.len();
        let mut removed = 0;
        for _ in 0..budget.min(cap) {
            if self.len == 0 {
                break;
            }
            let i = self.cursor;
            // A compare, not `%`: a division per visited entry would cost
            // more than the visit.
            self.cursor = if i + 1 >= cap { 0 } else { i + 1 };
            let hash = match self.entries.get(i) {
                Some(Some(e)) if now_ns.saturating_sub(e.last_seen_ns) >= idle_ns => e.hash,
                _ => continue,
            };
            let Some(slot) = self.slot_of(hash, i) else {
                continue;
            };
            if let Some(gone) = self.remove_at(slot, i) {
                on_expire(&gone.key, &gone.value);
                removed += 1;
            }
        }
        removed
    }

    /// [`Table::expire`] paced by time: visits as many entries as the time
    /// since the last call earns at [`SWEEPS_PER_IDLE`] passes over the
    /// table per `idle_ns`, at most `max_visits`. Time that earns more than
    /// `max_visits` is not owed to later calls, so a late call never stalls
    /// a poll catching up. A timeout so short that `max_visits` a call cannot
    /// keep the pace makes the sweep as slow as [`Table::expire`] with that
    /// budget.
    pub fn expire_paced(
        &mut self,
        now_ns: u64,
        idle_ns: u64,
        max_visits: usize,
        on_expire: impl FnMut(&K, &V),
    ) -> usize {
        let idle = u128::from(idle_ns.max(1));
        let elapsed = u128::from(now_ns.saturating_sub(self.swept_at_ns));
        self.swept_at_ns = self.swept_at_ns.max(now_ns);
        let earned = elapsed * self.entries.len() as u128 * u128::from(SWEEPS_PER_IDLE);
        self.sweep_owed = (self.sweep_owed + earned).min(idle * max_visits as u128);
        let visits = self.sweep_owed / idle;
        self.sweep_owed -= visits * idle;
        self.expire(now_ns, idle_ns, visits as usize, on_expire)
    }

    /// Every entry with when it was last seen, in entry order: for dumps and
    /// diagnostics, not the fast path.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V, u64)> + '_ {
        self.entries
            .iter()
            .filter_map(|e| e.as_ref().map(|e| (&e.key, &e.value, e.last_seen_ns)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use proptest::prelude::*;

    use super::*;

    /// A key hashed as a well-behaved user would.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct Key(u64);

    impl TableKey for Key {
        fn hash(&self, seed: u64) -> u32 {
            hash_words(seed, [self.0])
        }
    }

    /// A key whose hash ignores the seed and lands in the last four slots of
    /// any index: long probe runs that wrap round the end, as a flood would
    /// make without the seed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct Clustered(u64);

    impl TableKey for Clustered {
        fn hash(&self, _seed: u64) -> u32 {
            u32::MAX - (self.0 % 4) as u32
        }
    }

    impl<K: TableKey + fmt::Debug, V: Copy> Table<K, V> {
        /// The invariants every method relies on.
        fn check(&self) {
            let occupied: Vec<usize> = (0..self.index.len())
                .filter(|&i| self.index[i].entry != EMPTY)
                .collect();
            assert_eq!(occupied.len(), self.len, "index slots in use");
            assert!(self.len * 2 <= self.index.len(), "index over half full");
            assert_eq!(self.free.len() + self.len, self.capacity(), "free stack");
            assert_eq!(self.free.capacity(), self.capacity(), "free stack grew");
            let mut seen = HashSet::new();
            for &j in &occupied {
                let s = self.index[j];
                assert!(seen.insert(s.entry), "entry {} indexed twice", s.entry);
                let e = self.entries[s.entry as usize]
                    .as_ref()
                    .expect("indexed entry in use");
                assert_eq!(e.hash, s.hash);
                assert_eq!(TableKey::hash(&e.key, self.seed), s.hash, "{:?}", e.key);
                // Reachable: no empty slot between its home and it.
                let mut i = s.hash as usize & self.mask;
                while i != j {
                    assert_ne!(self.index[i].entry, EMPTY, "{:?} cut off from home", e.key);
                    i = (i + 1) & self.mask;
                }
            }
            assert_eq!(
                self.entries.iter().filter(|e| e.is_some()).count(),
                self.len
            );
        }
    }

    #[test]
    fn capacity_is_exact_and_the_index_at_most_half_full() {
        for (asked, held, slots) in [
            (0, 1, 2),
            (1, 1, 2),
            (3, 3, 8),
            (100, 100, 256),
            (128, 128, 256),
        ] {
            let t: Table<Key, u8> = Table::new(asked, 1);
            assert_eq!(t.capacity(), held, "asked {asked}");
            assert_eq!(t.index.len(), slots, "asked {asked}");
        }
        let t: Table<Key, u8> = Table::new(usize::MAX, 1);
        assert_eq!(t.capacity(), MAX_CAPACITY);
    }

    #[test]
    fn every_word_and_every_position_matter() {
        let base = hash_words(7, [1, 2, 3]);
        assert_ne!(hash_words(7, [1, 2, 4]), base);
        assert_ne!(hash_words(7, [2, 1, 3]), base);
        assert_ne!(hash_words(7, [1, 2, 3, 0]), hash_words(7, [1, 2, 3, 1]));
        assert_ne!(hash_words(8, [1, 2, 3]), base);
        assert_eq!(hash_words(7, [1, 2, 3]), base);
    }

    #[test]
    fn debug_shows_neither_entries_nor_seed() {
        let mut t: Table<Key, u8> = Table::new(4, 0xdead_beef);
        t.insert(Key(1), 1, 0).unwrap();
        assert_eq!(format!("{t:?}"), "Table { len: 1, capacity: 4, .. }");
    }

    /// A full table of `cap` entries last seen at 0, swept by
    /// `expire_paced` every `tick` ns until `until` or empty: when each
    /// call ran and how many it removed.
    fn paced_sweep(cap: usize, idle: u64, tick: u64, max: usize, until: u64) -> Vec<(u64, usize)> {
        let mut t: Table<Key, u32> = Table::new(cap, 5);
        for k in 0..cap as u64 {
            t.insert(Key(k), 0, 0).unwrap();
        }
        let mut removed = Vec::new();
        let mut now = 0;
        while now <= until && !t.is_empty() {
            removed.push((now, t.expire_paced(now, idle, max, |_, _| {})));
            now += tick;
        }
        t.check();
        removed
    }

    #[test]
    fn the_paced_sweep_passes_eight_times_per_timeout_however_often_called() {
        // 1,024 entries, 1 ms timeout, a call every µs: 1024 × 8 / 1000 =
        // 8.192 visits a call, so the table is swept in 125 calls.
        let (cap, idle, tick) = (1024, 1_000_000, 1_000);
        let calls = paced_sweep(cap, idle, tick, 64, 3 * idle);
        assert!(calls.iter().filter(|c| c.0 < idle).all(|c| c.1 == 0));
        assert!(calls.iter().all(|c| c.1 <= 9), "never more than the pace");
        let gone: usize = calls.iter().map(|c| c.1).sum();
        assert_eq!(gone, cap, "everything idle went");
        let last = calls.last().map_or(0, |c| c.0);
        assert!(
            (idle..=idle + idle / SWEEPS_PER_IDLE + tick).contains(&last),
            "the last went at {last} ns, within an eighth of a timeout of it"
        );
        // Called a tenth as often, it visits ten times as much a call and
        // ends at the same time (give or take one call).
        let sparse = paced_sweep(cap, idle, 10 * tick, 640, 3 * idle);
        let sparse_last = sparse.last().map_or(0, |c| c.0);
        assert!(
            sparse_last.abs_diff(last) <= 10 * tick,
            "{sparse_last} vs {last}"
        );
    }

    #[test]
    fn a_late_paced_sweep_does_not_catch_up_beyond_its_cap() {
        let (cap, idle) = (1024, 1_000);
        let mut t: Table<Key, u32> = Table::new(cap, 5);
        for k in 0..cap as u64 {
            t.insert(Key(k), 0, 0).unwrap();
        }
        // A whole timeout's visits earned, many times over: one call makes 16.
        assert_eq!(t.expire_paced(100 * idle, idle, 16, |_, _| {}), 16);
        // And nothing more is owed.
        assert_eq!(t.expire_paced(100 * idle, idle, 16, |_, _| {}), 0);
        // Time going backwards earns nothing.
        assert_eq!(t.expire_paced(idle, idle, 16, |_, _| {}), 0);
    }

    fn churn<K: TableKey + fmt::Debug + std::hash::Hash>(key: impl Fn(u64) -> K, seed: u64) {
        let cap = 48;
        let mut t: Table<K, u32> = Table::new(cap, seed);
        let mut model: HashMap<K, u32> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9 ^ seed;
        for step in 0..60_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key(x % 100);
            if x & 0x300 != 0 {
                match t.insert(k, step, 0) {
                    Ok(v) => {
                        assert_eq!(*v, step);
                        assert!(
                            model.insert(k, step).is_none(),
                            "step {step}: inserted twice"
                        );
                        assert!(model.len() <= cap);
                    }
                    Err(InsertError::Exists) => assert!(model.contains_key(&k), "step {step}"),
                    Err(InsertError::Full) => {
                        assert!(!model.contains_key(&k), "step {step}");
                        assert_eq!(model.len(), cap, "step {step}");
                    }
                }
            } else {
                assert_eq!(t.remove(&k), model.remove(&k), "step {step}");
            }
            if step % 64 == 0 {
                t.check();
            }
        }
        t.check();
        for (k, v) in &model {
            assert_eq!(t.get(k), Some(v));
        }
    }

    #[test]
    fn backward_shift_keeps_every_entry_reachable_under_churn() {
        churn(Key, 3);
        churn(Key, 0xfeed);
    }

    #[test]
    fn backward_shift_survives_runs_that_wrap_round_the_end() {
        // Everything hashes to the last four slots of the 128-slot index:
        // 48 entries form one run that wraps to the start.
        churn(Clustered, 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Entry(u64, u64),
        Touch(u64, u64),
        Get(u64),
        Set(u64, u32),
        Remove(u64),
        Expire(u64, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..40, 0u64..4).prop_map(|(k, dt)| Op::Insert(k, dt)),
            2 => (0u64..40, 0u64..4).prop_map(|(k, dt)| Op::Entry(k, dt)),
            2 => (0u64..40, 0u64..4).prop_map(|(k, dt)| Op::Touch(k, dt)),
            2 => (0u64..40).prop_map(Op::Get),
            1 => (0u64..40, any::<u32>()).prop_map(|(k, v)| Op::Set(k, v)),
            3 => (0u64..40).prop_map(Op::Remove),
            1 => (0u64..30, 0usize..24).prop_map(|(idle, b)| Op::Expire(idle, b)),
        ]
    }

    /// Runs `ops` on a table of 16 entries and on a `HashMap` of
    /// key → (value, last seen), checking they agree after every step.
    fn against_model<K: TableKey + fmt::Debug + std::hash::Hash>(
        key: impl Fn(u64) -> K,
        seed: u64,
        ops: Vec<Op>,
    ) -> Result<(), TestCaseError> {
        let cap = 16;
        let mut t: Table<K, u32> = Table::new(cap, seed);
        let mut model: HashMap<K, (u32, u64)> = HashMap::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Insert(n, dt) => {
                    now += dt;
                    let k = key(n);
                    let want = if model.contains_key(&k) {
                        Err(InsertError::Exists)
                    } else if model.len() == cap {
                        Err(InsertError::Full)
                    } else {
                        model.insert(k, (n as u32, now));
                        Ok(n as u32)
                    };
                    prop_assert_eq!(t.insert(k, n as u32, now).map(|v| *v), want);
                }
                Op::Entry(n, dt) => {
                    now += dt;
                    let k = key(n);
                    let h = t.hash(&k);
                    let full = model.len() == cap;
                    let want = match model.get_mut(&k) {
                        Some(e) => {
                            e.1 = now;
                            Ok((e.0, false))
                        }
                        None if full => Err(InsertError::Full),
                        None => {
                            model.insert(k, (0, now));
                            Ok((0, true))
                        }
                    };
                    prop_assert_eq!(t.entry_hashed(&k, h, now).map(|(v, i)| (*v, i)), want);
                }
                Op::Touch(n, dt) => {
                    now += dt;
                    let k = key(n);
                    let h = t.hash(&k);
                    let want = model.get_mut(&k).map(|e| {
                        e.1 = now;
                        e.0
                    });
                    prop_assert_eq!(t.touch_hashed(&k, h, now).map(|v| *v), want);
                }
                Op::Get(n) => {
                    let k = key(n);
                    let h = t.hash(&k);
                    let want = model.get(&k).map(|e| e.0);
                    prop_assert_eq!(t.get(&k).copied(), want);
                    prop_assert_eq!(t.get_hashed(&k, h).copied(), want);
                    prop_assert_eq!(t.last_seen_ns(&k), model.get(&k).map(|e| e.1));
                }
                Op::Set(n, v) => {
                    let k = key(n);
                    let found = t.get_mut(&k).map(|x| *x = v).is_some();
                    prop_assert_eq!(found, model.contains_key(&k));
                    if let Some(e) = model.get_mut(&k) {
                        e.0 = v;
                    }
                }
                Op::Remove(n) => {
                    let k = key(n);
                    prop_assert_eq!(t.remove(&k), model.remove(&k).map(|e| e.0));
                }
                Op::Expire(idle, budget) => {
                    let mut gone = Vec::new();
                    let r = t.expire(now, idle, budget, |k, v| gone.push((*k, *v)));
                    prop_assert_eq!(r, gone.len());
                    prop_assert!(r <= budget);
                    for (k, v) in gone {
                        let e = model.remove(&k);
                        prop_assert_eq!(e.map(|e| e.0), Some(v));
                        prop_assert!(now - e.map_or(0, |e| e.1) >= idle);
                    }
                }
            }
            prop_assert_eq!(t.len(), model.len());
            t.check();
        }
        // Nothing else is there.
        prop_assert_eq!(t.iter().count(), model.len());
        for (k, v, seen) in t.iter() {
            prop_assert_eq!(model.get(k), Some(&(*v, seen)));
        }
        // One full sweep, one entry a call, removes exactly the idle ones.
        let idle = 5;
        let expected = model.values().filter(|e| now - e.1 >= idle).count();
        let removed: usize = (0..cap).map(|_| t.expire(now, idle, 1, |_, _| {})).sum();
        prop_assert_eq!(removed, expected);
        prop_assert!(t.iter().all(|(_, _, seen)| now - seen < idle));
        Ok(())
    }

    proptest! {
        #[test]
        fn matches_a_hashmap(seed: u64, ops in prop::collection::vec(op(), 1..300)) {
            against_model(Key, seed, ops)?;
        }

        #[test]
        fn matches_a_hashmap_when_every_key_collides(ops in prop::collection::vec(op(), 1..300)) {
            against_model(Clustered, 0, ops)?;
        }
    }
}
