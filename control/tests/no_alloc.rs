//! Reading a `DataplaneView` must not allocate: workers call it per packet.
//! A counting global allocator (per thread, so the test harness's other
//! threads do not interfere) proves it.

mod common;

use std::net::IpAddr;

use common::*;
use control::*;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

use counting_alloc::allocations_during;

#[test]
fn reading_the_view_does_not_allocate() {
    let mut s = ControlState::default();
    s.apply(ORCH, &policy(), 0);
    s.apply(
        ORCH,
        &Policy {
            fwd_entries: (0..200u32)
                .map(|i| fwd(&format!("172.16.{i}.0/24"), &[1, 2]))
                .chain([fwd("0.0.0.0/0", &[2, 1]), fwd("::/0", &[1])])
                .collect(),
            ..Policy::default()
        }
        .into(),
        0,
    );
    s.apply(PROBER, &path_state(1, 50.0), MONO);
    s.apply(PROBER, &path_state(2, 40.0), MONO);
    let view = s.view(1, MONO);
    let dsts: Vec<IpAddr> = [
        "10.1.2.3",
        "172.16.199.1",
        "8.8.8.8",
        "2001:db8::1",
        "fe80::1",
    ]
    .iter()
    .map(|a| a.parse().expect("ip"))
    .collect();
    let mut found = 0usize;
    let n = allocations_during(|| {
        for &dst in &dsts {
            for now in [MONO, MONO + 5_000_000_000] {
                if let Some(c) = view.choose_path(dst, now) {
                    found += usize::from(c.path.egress_port) + 1;
                }
            }
        }
        found += usize::from(view.path_state(PathId(1), MONO).is_fresh());
        found += usize::from(view.class_weight(3).unwrap_or(0));
        found += view
            .path(PathId(2))
            .map_or(0, |p| usize::from(p.def.egress_port));
    });
    assert_eq!(n, 0, "reading the view allocated {n} times");
    assert!(found > 0);
    // The counter itself works.
    assert!(allocations_during(|| drop(s.view(2, MONO))) > 0);
}
