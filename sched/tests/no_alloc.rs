//! After construction, the fast-path operations never allocate.
//!
//! A counting global allocator counts allocations made *by this thread*
//! (thread-local, so the test harness's own threads do not interfere).
//! Each scheduler is built, warmed through a full fill/empty cycle, then
//! driven hard with the counter armed; the count must stay at zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sched::{FlowDrr, FlowDrrConfig, SchedConfig, Scheduler};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the allocator can run while thread-locals are torn down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call unchanged to `System`; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// Tiny deterministic generator, so the armed section has no RNG state
/// that might allocate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn scheduler_fast_path_does_not_allocate() {
    let mut s: Scheduler<u64> =
        Scheduler::new(&SchedConfig::uniform(2, vec![1500, 3000, 9000], 64)).unwrap();
    let mut burst = Vec::with_capacity(32);
    let mut rng = Lcg(1);
    let n = allocations_during(|| {
        for i in 0..200_000u64 {
            let r = rng.next();
            // Over-fill on purpose: rejections must not allocate either.
            let band = (r % 6) as usize;
            let _ = s.enqueue(band, i, (r % 9000) as u32 + 64);
            match r % 7 {
                0 => {
                    burst.clear();
                    s.dequeue_burst(&mut burst, 32);
                }
                1 => {
                    let _ = s.set_quantum(2 + (r % 3) as usize, (r % 5000) as u32 + 1);
                }
                2 if r % 1000 == 2 => {
                    s.drain_band((r % 5) as usize).for_each(drop);
                }
                _ => {
                    let _ = s.dequeue();
                }
            }
        }
        while s.dequeue().is_some() {}
    });
    assert_eq!(n, 0, "Scheduler allocated {n} times after construction");
}

#[test]
fn flow_drr_fast_path_does_not_allocate() {
    let max_flows = 256;
    let mut f: FlowDrr<u64, u64> = FlowDrr::new(&FlowDrrConfig {
        base_quantum: 1500,
        max_flows,
        max_packets: 2048,
        max_packets_per_flow: 64,
    })
    .unwrap();
    let mut burst = Vec::with_capacity(32);
    let mut rng = Lcg(2);
    let n = allocations_during(|| {
        // Keys from a space much larger than the table: flows keep coming
        // and going, which is what would make a hash table grow.
        for i in 0..300_000u64 {
            let r = rng.next();
            let flow = r % 4096;
            let _ = f.enqueue(flow, i, (r % 9000) as u32 + 64);
            match r % 11 {
                0 => {
                    burst.clear();
                    f.dequeue_burst(&mut burst, 32);
                }
                1 => {
                    let _ = f.set_weight(flow, (r % 8) as u32 + 1);
                }
                2 => {
                    f.drain_flow(r % 4096).for_each(drop);
                }
                3 => {
                    // Partially consumed drain: the rest is dropped.
                    let _ = f.drain_flow(flow).next();
                }
                _ => {
                    let _ = f.dequeue();
                }
            }
        }
        while f.dequeue().is_some() {}
    });
    assert_eq!(n, 0, "FlowDrr allocated {n} times after construction");
    assert!(f.flows() <= max_flows);
}

#[test]
fn counter_sees_allocations() {
    // Guards the two tests above against a counter that counts nothing.
    let n = allocations_during(|| drop(std::hint::black_box(Box::new(7u64))));
    assert!(n >= 1);
}
