//! The table's contract as its users see it: a full table, the ageing
//! sweep's budget and cursor, and what the seed changes.

use std::collections::HashSet;

use flowtab::{hash_words, InsertError, Table, TableKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u64);

impl TableKey for Key {
    fn hash(&self, seed: u64) -> u32 {
        hash_words(seed, [self.0, !self.0])
    }
}

#[test]
fn a_full_table_refuses_new_keys_and_keeps_serving_the_others() {
    let mut t: Table<Key, u64> = Table::new(100, 42);
    for n in 0..100 {
        *t.insert(Key(n), n, 0).unwrap() += 1;
    }
    assert_eq!(t.len(), 100);
    assert_eq!(t.insert(Key(1000), 0, 0), Err(InsertError::Full));
    assert_eq!(t.insert(Key(5), 0, 0), Err(InsertError::Exists));
    let k = Key(1000);
    assert_eq!(t.entry_hashed(&k, t.hash(&k), 0), Err(InsertError::Full));
    assert!(t.get(&k).is_none());
    // Existing keys are found, updated and touched when full.
    let k5 = Key(5);
    assert_eq!(t.entry_hashed(&k5, t.hash(&k5), 9), Ok((&mut 6, false)));
    assert_eq!(t.last_seen_ns(&k5), Some(9));
    for n in 0..100 {
        assert_eq!(t.get(&Key(n)), Some(&(n + 1)));
    }
    // One removal makes room for exactly one.
    assert_eq!(t.remove(&Key(7)), Some(8));
    assert_eq!(t.remove(&Key(7)), None);
    assert_eq!(t.insert(Key(1000), 3, 0).map(|v| *v), Ok(3));
    assert_eq!(t.insert(Key(1001), 3, 0), Err(InsertError::Full));
    assert_eq!(t.iter().count(), 100);
}

#[test]
fn get_mut_leaves_the_time_and_touch_sets_it() {
    let mut t: Table<Key, u32> = Table::new(8, 1);
    let k = Key(3);
    let h = t.hash(&k);
    t.insert(k, 1, 100).unwrap();
    *t.get_mut_hashed(&k, h).unwrap() = 2;
    *t.get_mut(&k).unwrap() += 1;
    assert_eq!(t.last_seen_ns(&k), Some(100));
    assert_eq!(t.touch_hashed(&k, h, 300).copied(), Some(3));
    assert_eq!(t.last_seen_ns(&k), Some(300));
    assert!(t.touch_hashed(&Key(4), t.hash(&Key(4)), 300).is_none());
}

#[test]
fn prefetch_names_the_home_slot_and_the_lines_of_a_present_entry_only() {
    use flowtab::CACHE_LINE;
    let mut t: Table<Key, [u64; 12]> = Table::new(64, 3);
    let k = Key(11);
    let h = t.hash(&k);
    let mut slots = Vec::new();
    t.prefetch_slot(h, |p| slots.push(p as usize));
    // The same slot for the same hash, another one's for another hash
    // (with this seed, key 12 has another home).
    let mut again = Vec::new();
    t.prefetch_slot(h, |p| again.push(p as usize));
    t.prefetch_slot(t.hash(&Key(12)), |p| again.push(p as usize));
    assert_eq!(slots.len(), 1);
    assert_eq!(again.first(), slots.first());
    assert_ne!(again.get(1), slots.first());
    let mut lines = Vec::new();
    t.prefetch_entry(h, 2, |p| lines.push(p as usize));
    assert!(lines.is_empty(), "an absent key has no entry to fetch");
    t.insert(k, [7; 12], 0).unwrap();
    t.prefetch_entry(h, 2, |p| lines.push(p as usize));
    // Twelve words after the key, hash and time: two lines asked, two
    // named, aligned and consecutive, the first holding the value's start.
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l % CACHE_LINE == 0));
    assert!(lines.windows(2).all(|w| w[1] == w[0] + CACHE_LINE));
    let value = t.get(&k).unwrap() as *const [u64; 12] as usize;
    assert!(
        (lines[0]..lines[0] + CACHE_LINE).contains(&value),
        "{value:#x} not in {lines:x?}"
    );
    // Asked for one line: the first.
    let mut one_line = Vec::new();
    t.prefetch_entry(h, 1, |p| one_line.push(p as usize));
    assert_eq!(one_line, lines[..1]);
    // Asked for more than the entry has: its lines only.
    let mut all = Vec::new();
    t.prefetch_entry(h, 10, |p| all.push(p as usize));
    assert_eq!(
        all, lines,
        "key, hash, time and 96 bytes: 120 bytes, two lines"
    );
    // A small entry is one line, whatever is asked.
    let mut small: Table<Key, bool> = Table::new(8, 3);
    small.insert(Key(1), true, 0).unwrap();
    let mut one = Vec::new();
    small.prefetch_entry(small.hash(&Key(1)), 2, |p| one.push(p as usize));
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0],
        small.get(&Key(1)).unwrap() as *const bool as usize & !(CACHE_LINE - 1)
    );
    // A hash that only shares the home slot names nothing.
    let mut none = Vec::new();
    t.prefetch_entry(h ^ (1 << 31), 2, |p| none.push(p));
    assert!(none.is_empty());
}

#[test]
fn expire_respects_its_budget_and_its_cursor_wraps() {
    let mut t: Table<Key, u32> = Table::new(8, 5);
    // Entries are handed out in order: key n is entry n.
    for n in 0..8 {
        t.insert(Key(n), n as u32, 0).unwrap();
    }
    let mut gone = Vec::new();
    // Nothing idle yet: two calls move the cursor to entry 6.
    assert_eq!(t.expire(50, 100, 3, |k, _| gone.push(k.0)), 0);
    assert_eq!(t.expire(50, 100, 3, |k, _| gone.push(k.0)), 0);
    // Everything idle now; keys 1 and 2 are seen again first.
    for n in [1, 2] {
        t.touch_hashed(&Key(n), t.hash(&Key(n)), 950);
    }
    assert_eq!(t.expire(1_000, 100, 3, |k, _| gone.push(k.0)), 3);
    assert_eq!(gone, [6, 7, 0], "visits 6, 7, then wraps to 0");
    // A budget beyond the capacity visits each entry once.
    assert_eq!(t.expire(1_000, 100, 1_000, |k, _| gone.push(k.0)), 3);
    assert_eq!(gone, [6, 7, 0, 3, 4, 5]);
    assert_eq!(t.len(), 2);
    // Exactly `idle_ns` idle counts as idle.
    assert_eq!(t.expire(1_050, 100, 8, |k, _| gone.push(k.0)), 2);
    assert!(t.is_empty());
}

#[test]
fn a_sweep_takes_capacity_over_budget_calls() {
    let cap = 100;
    let budget = 7;
    let mut t: Table<Key, u32> = Table::new(cap, 11);
    for n in 0..cap as u64 {
        t.insert(Key(n), 0, 0).unwrap();
    }
    // Removals free entries but move none, so nothing is visited twice
    // or skipped: 14 calls remove 98, the 15th the last 2.
    for _ in 0..14 {
        assert_eq!(t.expire(10, 1, budget, |_, _| {}), budget);
    }
    assert_eq!(t.len(), 2);
    assert_eq!(t.expire(10, 1, budget, |_, _| {}), 2);
    assert!(t.is_empty());
    assert_eq!(t.expire(10, 1, budget, |_, _| {}), 0);
}

/// Home slots in a table of `cap` entries (256 index slots for 100).
fn home(t: &Table<Key, u8>, k: &Key) -> u32 {
    t.hash(k) & 255
}

#[test]
fn the_seed_decides_which_keys_collide() {
    let a: Table<Key, u8> = Table::new(100, 0x0123_4567_89ab_cdef);
    let b: Table<Key, u8> = Table::new(100, 0xfedc_ba98_7654_3210);
    // Keys sharing home slot 0 under seed a: what a sender who knew seed a
    // would send to build one long probe run.
    let aimed: Vec<Key> = (0..200_000).map(Key).filter(|k| home(&a, k) == 0).collect();
    assert!(aimed.len() > 500, "{} keys", aimed.len());
    // The same seed always agrees with itself.
    let again: Table<Key, u8> = Table::new(100, 0x0123_4567_89ab_cdef);
    assert!(aimed.iter().all(|k| home(&again, k) == 0));
    // Under seed b they scatter over the index like any keys would.
    let homes: HashSet<u32> = aimed.iter().map(|k| home(&b, k)).collect();
    assert!(homes.len() > 200, "{} distinct home slots", homes.len());
    let still = aimed.iter().filter(|k| home(&b, k) == 0).count();
    assert!(
        still * 50 < aimed.len(),
        "{still} of {} still collide",
        aimed.len()
    );
}
