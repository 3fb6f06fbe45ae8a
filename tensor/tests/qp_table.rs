//! The QP table against a `HashMap` model.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use classifier::{FlowKey, IpProtocol};
use flowtab::TableKey;
use proptest::prelude::*;
use tensor::qp_table::{InsertError, QpTable};

fn key(n: u32) -> FlowKey {
    let mut k = FlowKey::v4(
        Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8),
        Ipv4Addr::new(10, 1, 0, 1),
        IpProtocol::UDP,
        49152 + (n % 7) as u16,
        4791,
    );
    k.dest_qpn = Some(n.wrapping_mul(2654435761) & 0x00ff_ffff);
    k
}

#[test]
fn insert_get_remove() {
    let mut t: QpTable<u64> = QpTable::new(64, 0x1234);
    assert!(t.is_empty());
    let k = key(1);
    let h = t.hash(&k);
    let (v, inserted) = t.entry_hashed(&k, h, 100).unwrap();
    assert!(inserted);
    *v = 7;
    let (v, inserted) = t.entry_hashed(&k, h, 200).unwrap();
    assert!(!inserted);
    assert_eq!(*v, 7);
    assert_eq!(t.last_seen_ns(&k), Some(200));
    assert_eq!(t.get(&k), Some(&7));
    *t.get_mut_hashed(&k, h).unwrap() = 8;
    assert_eq!(t.last_seen_ns(&k), Some(200));
    assert!(t.touch_hashed(&k, h, 300).is_some());
    assert_eq!(t.last_seen_ns(&k), Some(300));
    let mut lines = 0;
    t.prefetch_slot(h, |_| lines += 1);
    t.prefetch_entry(h, 2, |_| lines += 1);
    assert!(lines >= 2, "the slot and the entry of a present QP");
    assert_eq!(t.len(), 1);
    assert_eq!(t.remove(&k), Some(8));
    assert_eq!(t.remove(&k), None);
    assert!(t.get(&k).is_none());
    assert!(t.is_empty());
}

#[test]
fn qpn_distinguishes_keys() {
    let mut t: QpTable<u32> = QpTable::new(16, 9);
    let a = key(3);
    let mut b = a;
    b.dest_qpn = None;
    let mut c = a;
    c.dest_qpn = Some(0);
    for (i, k) in [a, b, c].iter().enumerate() {
        let h = t.hash(k);
        *t.entry_hashed(k, h, 0).unwrap().0 = i as u32;
    }
    assert_eq!(t.len(), 3);
    assert_eq!(t.get(&a), Some(&0));
    assert_eq!(t.get(&b), Some(&1));
    assert_eq!(t.get(&c), Some(&2));
}

#[test]
fn seed_changes_hash() {
    let k = key(42);
    let same = (0..64u64).filter(|s| k.hash(*s) == k.hash(s + 1)).count();
    assert!(same < 2);
}

#[test]
fn full_table_refuses() {
    let mut t: QpTable<u8> = QpTable::new(100, 1);
    assert_eq!(t.capacity(), 100);
    for n in 0..100 {
        let k = key(n);
        let h = t.hash(&k);
        assert!(t.entry_hashed(&k, h, 0).unwrap().1);
    }
    let k = key(1000);
    let h = t.hash(&k);
    assert_eq!(t.entry_hashed(&k, h, 0).err(), Some(InsertError::Full));
    // Existing keys are still found and updated when full.
    let k0 = key(5);
    let h0 = t.hash(&k0);
    assert!(!t.entry_hashed(&k0, h0, 1).unwrap().1);
    assert!(t.remove(&key(7)).is_some());
    assert!(t.entry_hashed(&k, h, 0).unwrap().1);
    assert_eq!(t.iter().count(), 100);
}

#[test]
fn tiny_capacity_is_usable() {
    let mut t: QpTable<u8> = QpTable::new(0, 0);
    assert_eq!(t.capacity(), 1);
    let k0 = key(0);
    let h0 = t.hash(&k0);
    *t.entry_hashed(&k0, h0, 0).unwrap().0 = 5;
    let k = key(99);
    let h = t.hash(&k);
    assert!(t.entry_hashed(&k, h, 0).is_err());
    assert!(t.get(&k).is_none());
    assert_eq!(t.get(&k0), Some(&5));
}

#[test]
fn colliding_keys_wrap_and_survive_removals() {
    // Five keys with the same home slot, the last one, so their probe run
    // wraps round to the start of the table.
    let mut t: QpTable<u32> = QpTable::new(8, 3);
    // The index has the smallest power of two of slots that is at least
    // twice the capacity.
    let mask = (2 * t.capacity()).next_power_of_two() as u32 - 1;
    let same: Vec<u32> = (0..100_000u32)
        .filter(|&n| t.hash(&key(n)) & mask == mask)
        .take(5)
        .collect();
    assert_eq!(same.len(), 5);
    // And one key at home in slot 1, displaced by the wrapped run.
    let other = (0..100_000u32)
        .find(|&n| t.hash(&key(n)) & mask == 1)
        .unwrap();
    for &n in same.iter().chain([other].iter()) {
        let k = key(n);
        let h = t.hash(&k);
        *t.entry_hashed(&k, h, 0).unwrap().0 = n;
    }
    for (i, &gone) in [same[0], same[3], other, same[1]].iter().enumerate() {
        assert_eq!(t.remove(&key(gone)), Some(gone));
        assert_eq!(t.len(), 5 - i);
        for &n in same.iter().chain([other].iter()) {
            let expect = ![same[0], same[3], other, same[1]][..=i].contains(&n);
            assert_eq!(
                t.get(&key(n)).is_some(),
                expect,
                "key {n} after removing {gone}"
            );
        }
    }
}

#[test]
fn expire_sweeps_everything_within_bounded_calls() {
    let cap = 1024;
    let budget = 64;
    let mut t: QpTable<u32> = QpTable::new(cap, 77);
    for n in 0..t.capacity() as u32 {
        let k = key(n);
        let h = t.hash(&k);
        *t.entry_hashed(&k, h, u64::from(n)).unwrap().0 = n;
    }
    let total = t.len();
    let mut seen = 0;
    let mut calls = 0;
    while !t.is_empty() {
        calls += 1;
        let r = t.expire(1_000_000, 1000, budget, |k, v| {
            assert_eq!(*k, key(*v));
            seen += 1;
        });
        assert!(r <= budget);
        assert!(calls <= cap.div_ceil(budget), "sweep took {calls} calls");
    }
    assert_eq!(seen, total);
}

#[test]
fn expire_keeps_recent_entries() {
    let mut t: QpTable<u32> = QpTable::new(64, 5);
    for n in 0..40u32 {
        let k = key(n);
        let h = t.hash(&k);
        let now = if n % 2 == 0 { 0 } else { 10_000 };
        t.entry_hashed(&k, h, now).unwrap();
    }
    let mut removed = 0;
    for _ in 0..4 {
        removed += t.expire(10_500, 1_000, 64, |_, _| {});
    }
    assert_eq!(removed, 20);
    assert_eq!(t.len(), 20);
    for n in 0..40u32 {
        assert_eq!(t.get(&key(n)).is_some(), n % 2 == 1, "key {n}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32, u64),
    Get(u32),
    Remove(u32),
    Expire(u64, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..80, 1u64..5).prop_map(|(k, dt)| Op::Insert(k, dt)),
        2 => (0u32..80).prop_map(Op::Get),
        2 => (0u32..80).prop_map(Op::Remove),
        1 => (1u64..20, 1usize..40).prop_map(|(idle, b)| Op::Expire(idle, b)),
    ]
}

proptest! {
    #[test]
    fn matches_hashmap_model(seed: u64, ops in prop::collection::vec(op(), 1..400)) {
        // 56 entries at most, 80 distinct keys: full tables, long probe
        // runs and wrap-around are all exercised.
        let mut t: QpTable<u32> = QpTable::new(56, seed);
        let mut model: HashMap<FlowKey, (u32, u64)> = HashMap::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Insert(n, dt) => {
                    now += dt;
                    let k = key(n);
                    let h = t.hash(&k);
                    match t.entry_hashed(&k, h, now) {
                        Ok((v, inserted)) => {
                            prop_assert_eq!(inserted, !model.contains_key(&k));
                            *v = v.wrapping_add(n + 1);
                            let e = model.entry(k).or_insert((0, now));
                            e.0 = e.0.wrapping_add(n + 1);
                            e.1 = now;
                        }
                        Err(e) => {
                            prop_assert_eq!(e, InsertError::Full);
                            prop_assert!(!model.contains_key(&k));
                            prop_assert_eq!(model.len(), t.capacity());
                        }
                    }
                }
                Op::Get(n) => {
                    let k = key(n);
                    prop_assert_eq!(t.get(&k).copied(), model.get(&k).map(|e| e.0));
                    prop_assert_eq!(t.last_seen_ns(&k), model.get(&k).map(|e| e.1));
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
        }
        // Every survivor is still reachable, and nothing else is there.
        for (k, (v, _)) in &model {
            prop_assert_eq!(t.get(k), Some(v));
        }
        prop_assert_eq!(t.iter().count(), model.len());
        // A full sweep removes exactly the idle ones.
        let idle = 10;
        let expected: usize = model.values().filter(|e| now - e.1 >= idle).count();
        let mut removed = 0;
        for _ in 0..(2 * 64) {
            removed += t.expire(now, idle, 1, |_, _| {});
        }
        prop_assert_eq!(removed, expected);
    }
}
