//! `roce`: distributed-training traffic over RoCEv2.
//!
//! Between 4 and 8 GPU hosts (10.10.0.1 …) run data-parallel training.
//! Each iteration is a compute gap (no traffic) followed by a gradient
//! all-reduce done as a *ring*: host *i* only ever sends to host *i + 1*,
//! over two RC queue pairs (NICs spread a peer's traffic over several QPs so
//! that ECMP can spread it over paths; each QP has its own UDP source port).
//! A ring all-reduce of a bucket takes 2(N − 1) steps — N − 1 of
//! reduce-scatter, N − 1 of all-gather — and in every step every host
//! writes one chunk to its successor, all hosts at once. Each chunk is an
//! RDMA WRITE (First with RETH, Middles, Last with AckReq, PMTU 1024),
//! answered by an ACK. Iterations begin with a small SEND Only per host (a
//! readiness message on a separate control QP), also acknowledged.
//!
//! Data packets carry DSCP 26 with ECN ECT(0), like RoCEv2 NICs running
//! DCQCN, a UDP checksum of 0 and a correct ICRC. PSNs advance per QP.

use std::net::Ipv4Addr;

use rand::Rng;

use super::flows::{Host, RcConnection};
use super::{finish, seeded_rng, WorkloadConfig, EPOCH_NS};
use crate::build::BuildError;
use crate::Packet;

/// Data QPs per ring edge.
pub const QPS_PER_PEER: usize = 2;
/// Host NIC speed.
const NIC_GBPS: u64 = 100;

/// The GPU hosts of an `n`-host job.
pub fn gpu_hosts(n: u8) -> Vec<Host> {
    (1..=n)
        .map(|i| Host::new(Ipv4Addr::new(10, 10, 0, i)))
        .collect()
}

/// Generates `cfg.packets` packets of training traffic.
pub fn generate(cfg: &WorkloadConfig) -> Result<Vec<Packet>, BuildError> {
    let mut rng = seeded_rng(cfg.seed, 2);
    let n: u8 = rng.gen_range(4..=8);
    let hosts = gpu_hosts(n);
    let next = |i: usize| (i + 1) % hosts.len();
    let mut data: Vec<Vec<RcConnection>> = (0..hosts.len())
        .map(|i| {
            (0..QPS_PER_PEER)
                .map(|_| RcConnection::new(&mut rng, hosts[i], hosts[next(i)]))
                .collect()
        })
        .collect();
    let mut control: Vec<RcConnection> = (0..hosts.len())
        .map(|i| RcConnection::new(&mut rng, hosts[i], hosts[next(i)]))
        .collect();

    let max_message = usize::try_from(cfg.max_flow_bytes)
        .unwrap_or(usize::MAX)
        .max(1);
    let mut out = Vec::with_capacity(cfg.packets + 1024);
    let mut t = EPOCH_NS;
    let mut iteration: u32 = 0;
    while out.len() < cfg.packets {
        // Forward and backward pass: the network is quiet.
        t += rng.gen_range(200_000..1_500_000);

        // Readiness message on the control QP: iteration number and a
        // few bytes of metadata; 58 bytes so the BTH needs 2 pad bytes.
        for (i, conn) in control.iter_mut().enumerate() {
            let mut msg = [0u8; 58];
            msg[..4].copy_from_slice(&iteration.to_be_bytes());
            msg[4] = i as u8;
            let at = t + i as u64 * rng.gen_range(200..2_000);
            out.push(conn.send_only(&msg, at)?);
            out.push(conn.ack(at + rng.gen_range(1_500..4_000))?);
        }
        t += 20_000;

        // Gradient bucket: every step moves `chunk` bytes per host.
        let chunk: usize = rng.gen_range(32 * 1024..=256 * 1024);
        let per_qp = (chunk / QPS_PER_PEER).min(max_message);
        let steps = 2 * (hosts.len() - 1);
        for _ in 0..steps {
            let mut step_end = t;
            for qps in data.iter_mut() {
                for conn in qps.iter_mut() {
                    // The NIC round-robins its QPs, so each gets a share
                    // of line rate and their packets interleave.
                    let start = t + rng.gen_range(0..1_000);
                    let (pkts, end) =
                        conn.write(&mut rng, per_qp, start, NIC_GBPS / QPS_PER_PEER as u64)?;
                    out.extend(pkts);
                    let ack_at = end + rng.gen_range(1_500..4_000);
                    out.push(conn.ack(ack_at)?);
                    step_end = step_end.max(ack_at);
                }
            }
            // Reduction of the received chunk before the next step.
            t = step_end + rng.gen_range(2_000..8_000);
        }
        iteration += 1;
    }
    Ok(finish(out, cfg.packets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use classifier::{parse, BthOpcode, Ecn};
    use std::collections::HashMap;

    #[test]
    fn ring_allreduce_shape() {
        let cfg = WorkloadConfig {
            packets: 3000,
            ..WorkloadConfig::default()
        };
        let pkts = generate(&cfg).unwrap();
        assert_eq!(pkts.len(), 3000);
        let mut per_qp_psn: HashMap<u32, u32> = HashMap::new();
        let mut opcodes: HashMap<BthOpcode, usize> = HashMap::new();
        let mut pairs = Vec::new();
        for p in &pkts {
            let pp = parse(&p.data).unwrap();
            let b = pp.bth.expect("every packet is RoCEv2");
            *opcodes.entry(b.opcode).or_default() += 1;
            assert_eq!(Ecn::from_tos(pp.tos), Ecn::Ect0);
            let key = pp.flow.unwrap();
            assert_eq!(key.dst_port, 4791);
            pairs.push((key.src_addr[15], key.dst_addr[15]));
            if b.opcode != BthOpcode::RC_ACK {
                if let Some(prev) = per_qp_psn.insert(b.dest_qp, b.psn) {
                    assert_eq!(
                        b.psn,
                        (prev + 1) & 0xff_ffff,
                        "PSN gap on QP {:#x}",
                        b.dest_qp
                    );
                }
            }
            assert!(p.data.len() <= 1518);
        }
        // Ring: data goes to the successor, ACKs back to the predecessor.
        let n = pairs.iter().map(|&(s, _)| s).max().unwrap();
        assert!((4..=8).contains(&n));
        for (s, d) in pairs {
            assert!(
                d == s % n + 1 || s == d % n + 1,
                "{s} -> {d} in a ring of {n}"
            );
        }
        for op in [
            BthOpcode::RC_WRITE_FIRST,
            BthOpcode::RC_WRITE_MIDDLE,
            BthOpcode::RC_WRITE_LAST,
            BthOpcode::RC_SEND_ONLY,
            BthOpcode::RC_ACK,
        ] {
            assert!(opcodes.get(&op).copied().unwrap_or(0) > 0, "no {op}");
        }
        // Several QPs with distinct UDP source ports.
        let sports: std::collections::HashSet<u16> = pkts
            .iter()
            .map(|p| parse(&p.data).unwrap().flow.unwrap().src_port)
            .collect();
        assert!(sports.len() >= 4 * QPS_PER_PEER, "{}", sports.len());
    }
}
