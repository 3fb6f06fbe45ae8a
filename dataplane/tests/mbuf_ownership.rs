//! Owned mbufs over a real DPDK port: what the driver accepts is forgotten
//! (never freed twice), what it refuses stays owned and is freed exactly
//! once. The mempool's free count is the witness: it must return to where it
//! started. One test function, because EAL initialises once per process.

mod common;

use dataplane::dpdk::{Eal, Mbuf, MbufBurst, Mempool, Port, PortId, PortInfo, MAX_BURST};

#[test]
fn sent_mbufs_are_forgotten_and_refused_ones_freed_once() {
    let args = common::eal_args("mbuf-test", &["net_ring0"]);
    let eal = Eal::init(&args).expect("EAL init");
    assert!(
        Eal::init(&args).is_err(),
        "a second EAL init must be refused, not crash"
    );
    assert_eq!(eal.port_count(), 1);

    // No per-lcore cache, so `available` is exact.
    let pool = Mempool::new("ownership", 4095, 0, 0).expect("pool");
    let mut port = Port::start(
        PortInfo::query(PortId(0)).expect("info"),
        common::ONE_QUEUE,
        &pool,
    )
    .expect("start net_ring0");
    let start = pool.available();

    // net_ring's TX and RX share one ring: what we send, we can read back.
    // Keep sending until the ring refuses part of a burst.
    let mut sent_total = 0usize;
    let mut refused_total = 0usize;
    let mut seq: u32 = 0;
    while refused_total == 0 {
        let mut burst = MbufBurst::new();
        burst.alloc_from(&pool, MAX_BURST).expect("alloc burst");
        for m in burst.as_mut_slice() {
            let mut frame = [0u8; 60];
            frame[..4].copy_from_slice(&seq.to_be_bytes());
            seq += 1;
            m.append(&frame).expect("append");
        }
        let sent = burst.tx_burst(PortId(0), 0);
        sent_total += sent;
        assert_eq!(
            burst.len(),
            MAX_BURST - sent,
            "unsent mbufs stay owned by the burst"
        );
        refused_total += burst.free_all();
        assert!(burst.is_empty());
        assert!(sent_total < 100_000, "the ring never filled");
    }
    assert_eq!(
        pool.available(),
        start - sent_total as u32,
        "refused mbufs went back to the pool exactly once"
    );

    // Read everything back, in order, and let the bursts' Drop free it.
    let mut received = 0usize;
    loop {
        let mut burst = MbufBurst::new();
        let n = burst.rx_burst(PortId(0), 0, MAX_BURST);
        if n == 0 {
            break;
        }
        for m in burst.as_slice() {
            assert_eq!(m.data().len(), 60);
            assert_eq!(
                u32::from_be_bytes(m.data()[..4].try_into().unwrap()),
                received as u32,
                "ring order"
            );
            received += 1;
        }
    }
    assert_eq!(received, sent_total);
    assert_eq!(
        pool.available(),
        start,
        "every received mbuf was freed on drop"
    );

    // A single owned mbuf frees itself; data written is data read.
    {
        let mut m = Mbuf::from_bytes(&pool, b"\x01\x02\x03").expect("from_bytes");
        assert_eq!(m.data(), b"\x01\x02\x03");
        m.data_mut()[0] = 9;
        assert_eq!(m.pkt_len(), 3);
        assert_eq!(m.data()[0], 9);
        assert_eq!(pool.available(), start - 1);
    }
    assert_eq!(pool.available(), start);

    // Frames larger than the data room are refused, not truncated.
    let big = vec![0u8; dataplane::dpdk::MBUF_DATA_ROOM + 1];
    assert!(Mbuf::from_bytes(&pool, &big).is_err());
    assert_eq!(pool.available(), start, "a failed append frees its mbuf");

    // A drain moves the mbufs out in order; what the caller does not take
    // is freed when the drain is dropped, and the burst is left empty.
    {
        let mut burst = MbufBurst::new();
        burst.alloc_from(&pool, MAX_BURST).expect("alloc burst");
        for (i, m) in burst.as_mut_slice().iter_mut().enumerate() {
            m.append(&[i as u8; 60]).expect("append");
        }
        assert_eq!(pool.available(), start - MAX_BURST as u32);
        let mut drain = burst.drain();
        for i in 0..10u8 {
            let m = drain.next().expect("a drained mbuf");
            assert_eq!(m.data()[0], i, "drain order");
        }
        assert_eq!(
            pool.available(),
            start - MAX_BURST as u32 + 10,
            "each taken mbuf is the caller's, freed when it drops"
        );
        drop(drain);
        assert_eq!(
            pool.available(),
            start,
            "an unfinished drain frees the rest"
        );
        assert!(burst.is_empty());
    }
    assert_eq!(
        pool.available(),
        start,
        "nothing freed twice on the burst's drop"
    );

    port.stop().expect("stop");
    drop(port);
    drop(pool);
    drop(eal);
}
