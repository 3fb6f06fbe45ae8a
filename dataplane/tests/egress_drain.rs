//! A worker's egress ports ([`Ports`]) over real DPDK ports: one poll of
//! `transmit` sends everything a scheduler holds while the TX ring takes
//! whole bursts, and stops, keeping the rest, once the ring refuses. A
//! worker can queue several bursts for one port in one poll (its own
//! receive and what other workers hand it); a drain of one burst per poll
//! let such a scheduler overflow while the TX ring had room. One test
//! function, because EAL initialises once per process.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;

mod common;

use dataplane::dpdk::{Eal, Mbuf, MbufBurst, Mempool, Port, PortId, PortInfo, MAX_BURST};
use dataplane::pipeline::port::{Discipline, Ports, SharedPort};
use dataplane::stats::{DropReason, LcoreCounters};

/// An unbounded FIFO: whatever a transmit leaves behind is the drain's, not
/// a full band's.
#[derive(Default)]
struct Fifo(VecDeque<(Mbuf, u32)>);

impl Discipline for Fifo {
    type Meta = ();
    type Counters = ();

    fn enqueue(
        &mut self,
        _port: usize,
        m: Mbuf,
        _meta: (),
        len: u32,
        _tsc: u64,
        _c: &(),
    ) -> Result<(), (Mbuf, DropReason)> {
        self.0.push_back((m, len));
        Ok(())
    }

    fn bypassed(&self, _port: usize, _meta: &(), _len: u32, _c: &()) {}

    fn feed_refused(_port: usize, _meta: &(), _c: &()) {}

    fn dequeue(&mut self, _port: usize, _now: u64, _ns: f64, _c: &()) -> Option<(Mbuf, u32)> {
        self.0.pop_front()
    }

    fn discard(&mut self) -> Option<Mbuf> {
        self.0.pop_front().map(|(m, _)| m)
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Queues `n` 60-byte frames for `port` in one go, as one poll would.
fn queue(ports: &mut Ports<'_, Fifo>, pool: &Mempool, port: usize, n: usize) {
    let mut left = n;
    while left > 0 {
        let take = left.min(MAX_BURST);
        let mut burst = MbufBurst::new();
        burst.alloc_from(pool, take).expect("alloc burst");
        for m in burst.as_mut_slice() {
            m.append(&[0u8; 60]).expect("append");
        }
        for m in burst.drain() {
            ports.enqueue(port, m, (), &()).expect("queued");
        }
        left -= take;
    }
}

fn tx_packets(lcore: &LcoreCounters, port: usize) -> u64 {
    lcore.ports[port].tx_packets.load(Relaxed)
}

#[test]
fn one_transmit_sends_all_the_tx_ring_takes_and_keeps_the_rest() {
    let args = common::eal_args("drain-test", &["net_null0", "net_ring0"]);
    let eal = Eal::init(&args).expect("EAL init");
    assert_eq!(eal.port_count(), 2);
    let pool = Mempool::new("drain", 8191, 0, 0).expect("pool");
    let _ports: Vec<Port> = (0..2)
        .map(|p| {
            Port::start(
                PortInfo::query(PortId(p)).expect("info"),
                common::ONE_QUEUE,
                &pool,
            )
        })
        .collect::<Result<_, _>>()
        .expect("start ports");
    let lcore = LcoreCounters::new(0, 2);
    let unshared: [Option<SharedPort<()>>; 2] = [None, None];
    let mut ports = Ports::new(
        &[true, true],
        &unshared,
        0,
        eal.tsc_hz(),
        |_| Some(Fifo::default()),
        |_| None,
    );

    // net_null takes every packet: four bursts queued in one poll all
    // leave in one transmit.
    let start = pool.available();
    queue(&mut ports, &pool, 0, 4 * MAX_BURST);
    assert_eq!(ports.backlog(), 4 * MAX_BURST);
    assert!(ports.transmit(0, false, &lcore, &()));
    assert_eq!(ports.backlog(), 0, "what the TX ring takes leaves at once");
    assert_eq!(tx_packets(&lcore, 0), 4 * MAX_BURST as u64);
    assert_eq!(pool.available(), start, "net_null freed every packet");

    // net_ring's ring fills (nothing reads it): the transmit stops there,
    // every packet is either sent or still held, and the next transmit
    // sends nothing more.
    let queued = 4096;
    queue(&mut ports, &pool, 1, queued);
    assert!(ports.transmit(0, false, &lcore, &()));
    let sent = tx_packets(&lcore, 1);
    assert!(sent > 0 && sent < queued as u64, "ring took {sent}");
    assert_eq!(ports.backlog() as u64 + sent, queued as u64);
    assert!(!ports.transmit(0, false, &lcore, &()));
    assert_eq!(tx_packets(&lcore, 1), sent);

    // Shutdown: what is held is freed and counted, once.
    ports.finish(&lcore, &());
    assert_eq!(ports.backlog(), 0);
}
