//! The fixed-capacity table of queue pairs a worker keeps.
//!
//! A RoCEv2 QP is identified by its flow key *plus* its destination QPN:
//! one pair of RDMA hosts multiplexes many QPs over a few UDP ports, and the
//! state machine of [`crate::qp_state`] is per QP. [`classifier::FlowKey`]
//! already carries `dest_qpn`, so it is the key here as it stands.
//!
//! # Layout
//!
//! One array of slots, a power of two long, each either empty or holding a
//! key, its hash, the time it was last seen and a value `V`. Lookups probe
//! linearly from the key's home slot (`hash & mask`) until they meet the key
//! or an empty slot. Removal uses *backward-shift deletion*: the entries
//! after the removed one that are displaced from their home slot are moved
//! back to close the hole, so there are no tombstones and probe sequences
//! stay as short after a million QPs came and went as on day one.
//!
//! Linear probing degrades sharply as the table fills, so inserts are
//! refused ([`TableFull`]) once the table is 7/8 full: a lookup then always
//! meets an empty slot, and the caller counts the QP it could not track
//! rather than every worker slowing down.
//!
//! # Hashing
//!
//! [`qp_hash`] is a multiply–xorshift mix of the key's words under a
//! per-table seed. It costs a few nanoseconds, which SipHash does not, and
//! the seed (random per table, chosen at start-up) means a remote sender
//! cannot pick QPNs and ports that all land in one probe run without
//! knowing it. It is not a cryptographic MAC; it only has to make
//! collisions expensive to aim.
//!
//! # Cost and ageing
//!
//! Everything is allocated in [`QpTable::new`]. Lookups, inserts, removals
//! and the ageing sweep never allocate and never panic. Ageing is
//! incremental: [`QpTable::expire`] visits at most `budget` slots per call
//! from a rotating cursor, so a worker can call it every poll and pay a
//! bounded cost; a whole sweep takes about `capacity / budget` calls.

use core::fmt;

use classifier::FlowKey;

/// Fewest slots a table has: below this the 7/8 load limit rounds to
/// "every slot but none", and tiny tables are not worth the special cases.
pub const MIN_SLOTS: usize = 8;
/// Most slots a table has (2^30), so slot numbers and counts fit anywhere.
pub const MAX_SLOTS: usize = 1 << 30;

/// An insert was refused because the table is at its load limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableFull;

impl fmt::Display for TableFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QP table is at its load limit")
    }
}

impl std::error::Error for TableFull {}

/// Keyed hash of a QP key: a multiply–xorshift mix of the key read as six
/// 64-bit words, folded with `seed`.
///
/// Each word is xored with a seed-derived value before it is multiplied, so
/// which keys collide depends on the seed. The final avalanche keeps the
/// high half, which is the well-mixed one.
#[inline]
pub fn qp_hash(seed: u64, key: &FlowKey) -> u32 {
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15] = key.src_addr;
    let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15] = key.dst_addr;
    let s0 = u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
    let s1 = u64::from_le_bytes([a8, a9, a10, a11, a12, a13, a14, a15]);
    let d0 = u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
    let d1 = u64::from_le_bytes([b8, b9, b10, b11, b12, b13, b14, b15]);
    // The QPN is 24 bits; bit 24 tells "QP 0" from "no QP".
    let qpn = match key.dest_qpn {
        Some(q) => u64::from(q & 0x00ff_ffff) | 1 << 24,
        None => 0,
    };
    let version = match key.version {
        classifier::IpVersion::V4 => 0u64,
        classifier::IpVersion::V6 => 1,
    };
    let misc = u64::from(key.src_port) | u64::from(key.dst_port) << 16 | qpn << 32 | version << 57;

    let k0 = seed ^ 0x243f_6a88_85a3_08d3;
    let k1 = seed.rotate_left(17) ^ 0x1319_8a2e_0370_7344;
    let k2 = seed.rotate_left(31) ^ 0xa409_3822_299f_31d0;
    let mut h = (s0 ^ k0).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (s1 ^ k1)
            .rotate_left(23)
            .wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ (d0 ^ k2)
            .rotate_left(11)
            .wrapping_mul(0x1656_67b1_9e37_79f9)
        ^ (d1 ^ k0)
            .rotate_left(41)
            .wrapping_mul(0xd6e8_feb8_6659_fd93)
        ^ (misc ^ k1)
            .rotate_left(7)
            .wrapping_mul(0xff51_afd7_ed55_8ccd)
        ^ (u64::from(key.protocol.0) ^ k2).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 29;
    (h >> 32) as u32
}

#[derive(Debug, Clone, Copy)]
struct Slot<V> {
    key: FlowKey,
    hash: u32,
    last_seen_ns: u64,
    value: V,
}

/// Fixed-capacity open-addressing table from QP keys to `V`.
#[derive(Debug, Clone)]
pub struct QpTable<V: Copy + Default> {
    slots: Vec<Option<Slot<V>>>,
    mask: usize,
    max_len: usize,
    len: usize,
    seed: u64,
    cursor: usize,
}

impl<V: Copy + Default> QpTable<V> {
    /// A table of `capacity` slots, rounded up to a power of two within
    /// [`MIN_SLOTS`]..=[`MAX_SLOTS`]; it holds at most 7/8 of them
    /// ([`QpTable::max_len`]). `seed` keys the hash: pick it at random per
    /// table.
    pub fn new(capacity: usize, seed: u64) -> QpTable<V> {
        let slots = capacity
            .clamp(MIN_SLOTS, MAX_SLOTS)
            .checked_next_power_of_two()
            .unwrap_or(MAX_SLOTS);
        QpTable {
            slots: vec![None; slots],
            mask: slots - 1,
            max_len: slots - slots / 8,
            len: 0,
            seed,
            cursor: 0,
        }
    }

    /// QPs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no QP is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots (a power of two).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Most QPs held at once: inserts beyond this are refused.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The key's hash under this table's seed, to be computed once per
    /// packet and passed to the `_hashed` methods.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u32 {
        qp_hash(self.seed, key)
    }

    /// Touches the home slot of `hash` and returns something derived from
    /// it, for the caller to `black_box`. Called for every packet of a
    /// burst before any lookup, the cache misses of different packets
    /// overlap instead of being paid one after another; safe code's
    /// stand-in for a prefetch instruction.
    #[inline]
    pub fn warm(&self, hash: u32) -> u32 {
        match self.slots.get(hash as usize & self.mask) {
            Some(Some(s)) => s.hash,
            _ => 0,
        }
    }

    /// Slot holding `key`, if present.
    #[inline]
    fn find(&self, key: &FlowKey, hash: u32) -> Option<usize> {
        let mut i = hash as usize & self.mask;
        // The load limit guarantees an empty slot, so this ends well before
        // the bound; the bound is there so a broken invariant cannot spin.
        for _ in 0..self.slots.len() {
            match self.slots.get(i)? {
                None => return None,
                Some(s) if s.hash == hash && s.key == *key => return Some(i),
                Some(_) => {}
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// The value for `key`, read-only.
    pub fn get(&self, key: &FlowKey) -> Option<&V> {
        let i = self.find(key, self.hash(key))?;
        self.slots.get(i)?.as_ref().map(|s| &s.value)
    }

    /// When `key` was last seen (inserted or touched), if present.
    pub fn last_seen_ns(&self, key: &FlowKey) -> Option<u64> {
        let i = self.find(key, self.hash(key))?;
        self.slots.get(i)?.as_ref().map(|s| s.last_seen_ns)
    }

    /// The value for `key`, whose [`QpTable::hash`] is `hash`, without
    /// changing when it was last seen (for updates that are not traffic,
    /// such as a timer or a control message).
    #[inline]
    pub fn get_mut_hashed(&mut self, key: &FlowKey, hash: u32) -> Option<&mut V> {
        let i = self.find(key, hash)?;
        self.slots.get_mut(i)?.as_mut().map(|s| &mut s.value)
    }

    /// The value for `key`, marking it seen at `now_ns` (a packet of an
    /// existing QP that must not create one).
    #[inline]
    pub fn touch_hashed(&mut self, key: &FlowKey, hash: u32, now_ns: u64) -> Option<&mut V> {
        let i = self.find(key, hash)?;
        let s = self.slots.get_mut(i)?.as_mut()?;
        s.last_seen_ns = now_ns;
        Some(&mut s.value)
    }

    /// The value for `key`, inserting `V::default()` if absent, marked seen
    /// at `now_ns`; the flag says whether it was inserted. Refused when the
    /// key is absent and the table is at [`QpTable::max_len`].
    #[inline]
    pub fn entry_hashed(
        &mut self,
        key: &FlowKey,
        hash: u32,
        now_ns: u64,
    ) -> Result<(&mut V, bool), TableFull> {
        let mut i = hash as usize & self.mask;
        // Whether the probe met the key, met an empty slot, or (only if the
        // load-limit invariant were broken) neither.
        let mut found = None;
        for _ in 0..self.slots.len() {
            match self.slots.get(i) {
                Some(None) | None => {
                    found = Some(false);
                    break;
                }
                Some(Some(s)) if s.hash == hash && s.key == *key => {
                    found = Some(true);
                    break;
                }
                Some(Some(_)) => {}
            }
            i = (i + 1) & self.mask;
        }
        let inserted = match found {
            Some(true) => false,
            Some(false) => true,
            None => return Err(TableFull),
        };
        if inserted {
            if self.len >= self.max_len {
                return Err(TableFull);
            }
            // `i` is the empty slot that ended the probe.
            let slot = self.slots.get_mut(i).ok_or(TableFull)?;
            *slot = Some(Slot {
                key: *key,
                hash,
                last_seen_ns: now_ns,
                value: V::default(),
            });
            self.len += 1;
        }
        match self.slots.get_mut(i) {
            Some(Some(s)) => {
                s.last_seen_ns = now_ns;
                Ok((&mut s.value, inserted))
            }
            // Unreachable: the slot was just found or filled.
            _ => Err(TableFull),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &FlowKey) -> Option<V> {
        let i = self.find(key, self.hash(key))?;
        self.remove_at(i).map(|s| s.value)
    }

    /// Empties slot `i` and shifts the displaced entries after it back, so
    /// every remaining entry is still reachable from its home slot without
    /// crossing an empty one.
    fn remove_at(&mut self, i: usize) -> Option<Slot<V>> {
        let removed = self.slots.get_mut(i)?.take()?;
        self.len = self.len.saturating_sub(1);
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        for _ in 0..self.slots.len() {
            let home = match self.slots.get(j) {
                Some(Some(s)) => s.hash as usize & self.mask,
                _ => break,
            };
            // The entry at `j` may move into the hole only if its home is
            // not cyclically within (hole, j]: otherwise moving it would put
            // it before its home, where a probe never looks.
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                let moved = self.slots.get_mut(j).and_then(Option::take);
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = moved;
                }
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        Some(removed)
    }

    /// Visits at most `budget` slots from the sweep cursor, removing every
    /// entry last seen `idle_ns` or more before `now_ns` and calling `f` on
    /// it; returns how many were removed.
    ///
    /// A removal may shift a later entry into the slot just visited, so
    /// that slot is looked at again (counting against the budget) rather
    /// than skipped: an entry is never passed over by a sweep. A sweep of
    /// the whole table therefore takes at most
    /// `(capacity + removed) / budget` calls, at most twice
    /// `capacity / budget`.
    pub fn expire(
        &mut self,
        now_ns: u64,
        idle_ns: u64,
        budget: usize,
        mut f: impl FnMut(&FlowKey, &V),
    ) -> usize {
        let mut removed = 0;
        let mut cursor = self.cursor & self.mask;
        for _ in 0..budget {
            if self.len == 0 {
                break;
            }
            let idle = match self.slots.get(cursor) {
                Some(Some(s)) => now_ns.saturating_sub(s.last_seen_ns) >= idle_ns,
                _ => false,
            };
            if idle {
                if let Some(s) = self.remove_at(cursor) {
                    f(&s.key, &s.value);
                    removed += 1;
                }
            } else {
                cursor = (cursor + 1) & self.mask;
            }
        }
        self.cursor = cursor;
        removed
    }

    /// Every live entry with when it was last seen, in slot order. For
    /// end-of-run dumps and diagnostics, not the fast path.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowKey, &V, u64)> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|s| (&s.key, &s.value, s.last_seen_ns)))
    }
}
