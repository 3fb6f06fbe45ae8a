//! After `Table::new`, nothing a worker calls per packet or per poll may
//! allocate. A counting global allocator (per thread, so the harness's other
//! threads do not interfere) proves it.

use counting_alloc::allocations_during;
use flowtab::{hash_words, Table, TableKey};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u64);

impl TableKey for Key {
    fn hash(&self, seed: u64) -> u32 {
        hash_words(seed, [self.0])
    }
}

#[test]
fn lookups_inserts_removals_and_ageing_do_not_allocate() {
    let mut t: Table<Key, [u64; 4]> = Table::new(1024, 99);
    let n = allocations_during(|| {
        let mut warm = 0;
        for i in 0..50_000u64 {
            let k = Key(i % 3000);
            let h = t.hash(&k);
            t.prefetch_slot(h, |p| warm ^= p as usize as u32);
            t.prefetch_entry(h, 2, |p| warm ^= p as usize as u32);
            // Past the capacity, inserts are refused: Full costs nothing
            // either.
            let _ = t.insert(k, [i; 4], i);
            let _ = t.entry_hashed(&Key(i % 2000 + 5000), t.hash(&Key(i % 2000 + 5000)), i);
            if let Some(v) = t.touch_hashed(&k, h, i) {
                v[0] += 1;
            }
            let _ = t.get_hashed(&k, h);
            let _ = t.get_mut(&k);
            if i % 3 == 0 {
                let _ = t.remove(&Key(i % 1000));
            }
            t.expire(i, 500, 64, |_, v| warm ^= v[1] as u32);
        }
        std::hint::black_box(warm);
    });
    assert_eq!(n, 0, "the table allocated {n} times");
    assert!(!t.is_empty());
    // The counter itself works.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0);
}
