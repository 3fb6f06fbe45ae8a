//! Flow emitters shared by the workloads: a TCP request (handshake, data,
//! FIN), a UDP request, and an RDMA RC connection (WRITE messages, SEND
//! Only, ACKs). Each returns timestamped packets; the workloads decide when
//! flows start and merge them into one timeline.

use std::net::Ipv4Addr;

use classifier::aeth::AethRepr;
use classifier::bth::BthRepr;
use classifier::ethernet::MacAddr;
use classifier::reth::RethRepr;
use classifier::tcp::{TcpFlags, TcpOptionRepr, TcpRepr};
use classifier::BthOpcode;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

use super::wire_time_ns;
use crate::build::{build, mac_for, BuildError, FrameSpec, Ipv4Header, L3Spec, L4Spec};
use crate::Packet;

/// A host: its address and the MAC its frames carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// MAC address.
    pub mac: MacAddr,
    /// IPv4 address.
    pub ip: Ipv4Addr,
}

impl Host {
    /// A host whose MAC is derived from its address (see [`mac_for`]).
    pub fn new(ip: Ipv4Addr) -> Host {
        Host {
            mac: mac_for(ip),
            ip,
        }
    }
}

/// Largest TCP payload per segment: 1500 − 20 (IPv4) − 20 (TCP) − 12
/// (timestamps option), the MSS Linux uses on a 1500-byte MTU.
pub const TCP_MSS: usize = 1448;
/// Largest UDP payload in one unfragmented 1500-byte-MTU datagram.
pub const UDP_MAX_PAYLOAD: usize = 1472;
/// RoCEv2 path MTU (the InfiniBand MTU setting commonly used over 1500-byte Ethernet).
pub const ROCE_PMTU: usize = 1024;
/// DSCP 26 (AF31, the class RoCE deployments commonly use) with ECN ECT(0),
/// as RoCEv2 NICs mark every data packet so switches can signal congestion.
pub const ROCE_TOS: u8 = (26 << 2) | 0b10;

/// Shortest frame on the wire without FCS. Senders' NICs pad anything
/// shorter, so this is what the appliance receives; the padding lies past
/// the IP length and is ignored by every checksum.
pub const MIN_FRAME: usize = 60;

fn ipv4_frame(
    src: Host,
    dst: Host,
    header: Ipv4Header<'_>,
    l4: L4Spec<'_>,
) -> Result<Vec<u8>, BuildError> {
    let mut frame = build(&FrameSpec {
        src_mac: src.mac,
        dst_mac: dst.mac,
        vlans: &[],
        l3: L3Spec::Ipv4 { header, l4 },
    })?;
    if frame.len() < MIN_FRAME {
        frame.resize(MIN_FRAME, 0);
    }
    Ok(frame)
}

/// A client → server TCP request: SYN, the handshake's final ACK one RTT
/// later, the payload in MSS-sized segments at `gbps`, and FIN. Sequence and
/// acknowledgment numbers, IP identification and TCP timestamps advance as a
/// Linux sender's would; the server → client direction is not generated.
#[allow(clippy::too_many_arguments)]
pub fn tcp_request(
    rng: &mut ChaCha8Rng,
    client: Host,
    server: Host,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    start_ns: u64,
    rtt_ns: u64,
    gbps: u64,
) -> Result<Vec<Packet>, BuildError> {
    let isn: u32 = rng.gen();
    let server_isn: u32 = rng.gen();
    let mut ident: u16 = rng.gen();
    let ts_origin: u32 = rng.gen_range(1_000_000..1_000_000_000);
    let peer_ts: u32 = rng.gen_range(1_000_000..1_000_000_000);
    let tsval = |t: u64| ts_origin.wrapping_add(((t - start_ns) / 1_000_000) as u32);

    let mut out = Vec::with_capacity(3 + payload.len() / TCP_MSS);
    let mut emit =
        |t: u64, seq: u32, ack: u32, flags: TcpFlags, opts: &[TcpOptionRepr], data: &[u8]| {
            let mut opt_bytes = [0u8; 40];
            let n = TcpOptionRepr::emit_all(opts, &mut opt_bytes)?;
            let header = TcpRepr {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                // 64240 unscaled in the SYN; 502 << 7 = 64256 bytes afterwards.
                window: if flags.contains(TcpFlags::SYN) {
                    64240
                } else {
                    502
                },
                urgent: 0,
                options: &opt_bytes[..n],
            };
            let ip = Ipv4Header {
                ident,
                ..Ipv4Header::new(client.ip, server.ip)
            };
            ident = ident.wrapping_add(1);
            let frame = ipv4_frame(
                client,
                server,
                ip,
                L4Spec::Tcp {
                    header,
                    payload: data,
                },
            )?;
            let len = frame.len();
            out.push(Packet::new(t, frame));
            Ok::<usize, BuildError>(len)
        };

    let mut t = start_ns;
    emit(
        t,
        isn,
        0,
        TcpFlags::SYN,
        &[
            TcpOptionRepr::Mss(1460),
            TcpOptionRepr::SackPermitted,
            TcpOptionRepr::Timestamps {
                tsval: tsval(t),
                tsecr: 0,
            },
            TcpOptionRepr::Nop,
            TcpOptionRepr::WindowScale(7),
        ],
        &[],
    )?;
    t += rtt_ns;
    let ts_opts = |t: u64| {
        [
            TcpOptionRepr::Nop,
            TcpOptionRepr::Nop,
            TcpOptionRepr::Timestamps {
                tsval: tsval(t),
                tsecr: peer_ts,
            },
        ]
    };
    let ack = server_isn.wrapping_add(1);
    let mut seq = isn.wrapping_add(1);
    let len = emit(t, seq, ack, TcpFlags::ACK, &ts_opts(t), &[])?;
    t += wire_time_ns(len, gbps);
    let segments = payload.chunks(TCP_MSS).count();
    for (i, chunk) in payload.chunks(TCP_MSS).enumerate() {
        let flags = if i + 1 == segments {
            TcpFlags::ACK | TcpFlags::PSH
        } else {
            TcpFlags::ACK
        };
        let len = emit(t, seq, ack, flags, &ts_opts(t), chunk)?;
        seq = seq.wrapping_add(chunk.len() as u32);
        t += wire_time_ns(len, gbps);
    }
    // The client half-closes right after its request, as HTTP/1.1 clients
    // with `Connection: close` do.
    t += rng.gen_range(1_000..20_000);
    emit(t, seq, ack, TcpFlags::FIN | TcpFlags::ACK, &ts_opts(t), &[])?;
    Ok(out)
}

/// A UDP request: one datagram if the payload fits in 1472 bytes, else
/// consecutive datagrams of at most 1472 bytes (application-level chunking,
/// no IP fragmentation), all with correct checksums.
#[allow(clippy::too_many_arguments)]
pub fn udp_request(
    rng: &mut ChaCha8Rng,
    client: Host,
    server: Host,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    start_ns: u64,
    gbps: u64,
) -> Result<Vec<Packet>, BuildError> {
    let mut ident: u16 = rng.gen();
    let mut t = start_ns;
    let mut out = Vec::new();
    for chunk in payload.chunks(UDP_MAX_PAYLOAD) {
        let ip = Ipv4Header {
            ident,
            ..Ipv4Header::new(client.ip, server.ip)
        };
        ident = ident.wrapping_add(1);
        let frame = ipv4_frame(
            client,
            server,
            ip,
            L4Spec::Udp {
                src_port,
                dst_port,
                payload: chunk,
                checksum: true,
            },
        )?;
        let len = frame.len();
        out.push(Packet::new(t, frame));
        t += wire_time_ns(len, gbps);
    }
    Ok(out)
}

/// One RC queue-pair connection: a requester QP on one host and its
/// responder QP on another. Data flows requester → responder; ACKs flow back.
#[derive(Debug, Clone)]
pub struct RcConnection {
    /// Host of the requester QP (sends WRITEs and SENDs).
    pub requester: Host,
    /// Host of the responder QP (sends ACKs).
    pub responder: Host,
    /// Requester QP number (the destination QP of ACKs).
    pub requester_qpn: u32,
    /// Responder QP number (the destination QP of data).
    pub responder_qpn: u32,
    requester_sport: u16,
    responder_sport: u16,
    next_psn: u32,
    msn: u32,
    requester_ident: u16,
    responder_ident: u16,
    rkey: u32,
    remote_va: u64,
}

/// The UDP source port a RoCE NIC would derive from a QP number: the
/// ephemeral range's upper half with the QPN folded in for ECMP entropy.
fn sport_for(qpn: u32) -> u16 {
    0xc000 | ((qpn ^ (qpn >> 14)) & 0x3fff) as u16
}

impl RcConnection {
    /// Opens a connection with random QP numbers, starting PSN and memory key.
    pub fn new(rng: &mut ChaCha8Rng, requester: Host, responder: Host) -> Self {
        let requester_qpn = rng.gen_range(0x100..0x00ff_ffff);
        let responder_qpn = rng.gen_range(0x100..0x00ff_ffff);
        RcConnection {
            requester,
            responder,
            requester_qpn,
            responder_qpn,
            requester_sport: sport_for(requester_qpn),
            responder_sport: sport_for(responder_qpn),
            next_psn: rng.gen_range(0..0x0100_0000),
            msn: 0,
            requester_ident: rng.gen(),
            responder_ident: rng.gen(),
            rkey: rng.gen(),
            remote_va: rng.gen_range(0x7f00_0000_0000..0x7fff_0000_0000) & !0xfff,
        }
    }

    fn bth(&self, opcode: BthOpcode, dest_qp: u32, psn: u32, ack_req: bool) -> BthRepr {
        BthRepr {
            opcode,
            solicited: false,
            mig_req: true,
            pad_count: 0,
            tver: 0,
            pkey: 0xffff,
            fecn: false,
            becn: false,
            dest_qp,
            ack_req,
            psn,
        }
    }

    fn data_frame(
        &mut self,
        bth: BthRepr,
        reth: Option<RethRepr>,
        data: &[u8],
    ) -> Result<Vec<u8>, BuildError> {
        let ip = Ipv4Header {
            tos: ROCE_TOS,
            ident: self.requester_ident,
            ..Ipv4Header::new(self.requester.ip, self.responder.ip)
        };
        self.requester_ident = self.requester_ident.wrapping_add(1);
        ipv4_frame(
            self.requester,
            self.responder,
            ip,
            L4Spec::Roce {
                src_port: self.requester_sport,
                bth,
                reth,
                aeth: None,
                data,
            },
        )
    }

    fn take_psn(&mut self) -> u32 {
        let psn = self.next_psn;
        self.next_psn = (self.next_psn + 1) & 0x00ff_ffff;
        psn
    }

    /// An RDMA WRITE of `len` bytes (at least 1) starting at `start_ns`,
    /// paced at `gbps`: WRITE Only when it fits one PMTU, otherwise First
    /// (with the RETH naming the whole message) / Middle … / Last, with the
    /// acknowledge-request bit on the final packet. Payload bytes come from
    /// `rng`. Returns the packets and the time the last one left.
    pub fn write(
        &mut self,
        rng: &mut ChaCha8Rng,
        len: usize,
        start_ns: u64,
        gbps: u64,
    ) -> Result<(Vec<Packet>, u64), BuildError> {
        let len = len.max(1);
        let n = len.div_ceil(ROCE_PMTU);
        let reth = RethRepr {
            virtual_addr: self.remote_va,
            rkey: self.rkey,
            dma_len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        self.remote_va = self.remote_va.wrapping_add(len as u64);
        let mut out = Vec::with_capacity(n);
        let mut t = start_ns;
        let mut data = vec![0u8; ROCE_PMTU];
        for i in 0..n {
            let chunk = (len - i * ROCE_PMTU).min(ROCE_PMTU);
            rng.fill_bytes(&mut data[..chunk]);
            let (opcode, with_reth) = match (n, i) {
                (1, _) => (BthOpcode::RC_WRITE_ONLY, true),
                (_, 0) => (BthOpcode::RC_WRITE_FIRST, true),
                (_, i) if i + 1 == n => (BthOpcode::RC_WRITE_LAST, false),
                _ => (BthOpcode::RC_WRITE_MIDDLE, false),
            };
            let psn = self.take_psn();
            let bth = self.bth(opcode, self.responder_qpn, psn, i + 1 == n);
            let frame = self.data_frame(bth, with_reth.then_some(reth), &data[..chunk])?;
            let wire = wire_time_ns(frame.len(), gbps);
            out.push(Packet::new(t, frame));
            t += wire;
        }
        self.msn = (self.msn + 1) & 0x00ff_ffff;
        Ok((out, t))
    }

    /// A small control message as one SEND Only (acknowledge requested).
    pub fn send_only(&mut self, data: &[u8], t_ns: u64) -> Result<Packet, BuildError> {
        let psn = self.take_psn();
        let bth = self.bth(BthOpcode::RC_SEND_ONLY, self.responder_qpn, psn, true);
        let frame = self.data_frame(bth, None, data)?;
        self.msn = (self.msn + 1) & 0x00ff_ffff;
        Ok(Packet::new(t_ns, frame))
    }

    /// The responder's ACK for everything up to the last PSN sent, with
    /// syndrome 0x1F (ACK, maximum credits) and the current MSN.
    pub fn ack(&mut self, t_ns: u64) -> Result<Packet, BuildError> {
        let psn = self.next_psn.wrapping_sub(1) & 0x00ff_ffff;
        let bth = self.bth(BthOpcode::RC_ACK, self.requester_qpn, psn, false);
        let ip = Ipv4Header {
            tos: ROCE_TOS,
            ident: self.responder_ident,
            ..Ipv4Header::new(self.responder.ip, self.requester.ip)
        };
        self.responder_ident = self.responder_ident.wrapping_add(1);
        let frame = ipv4_frame(
            self.responder,
            self.requester,
            ip,
            L4Spec::Roce {
                src_port: self.responder_sport,
                bth,
                reth: None,
                aeth: Some(AethRepr {
                    syndrome: 0x1f,
                    msn: self.msn,
                }),
                data: &[],
            },
        )?;
        Ok(Packet::new(t_ns, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::seeded_rng;
    use classifier::tcp::TcpPacket;
    use classifier::{parse, BthOpcode};

    fn hosts() -> (Host, Host) {
        (
            Host::new(Ipv4Addr::new(10, 0, 1, 11)),
            Host::new(Ipv4Addr::new(10, 0, 100, 1)),
        )
    }

    #[test]
    fn tcp_sequence_numbers_cover_the_payload() {
        let mut rng = seeded_rng(7, 0);
        let (c, s) = hosts();
        let payload = vec![b'a'; 3000];
        let pkts = tcp_request(&mut rng, c, s, 40000, 8000, &payload, 0, 100_000, 10).unwrap();
        // SYN, ACK, 3 data segments (1448 + 1448 + 104), FIN.
        assert_eq!(pkts.len(), 6);
        let segs: Vec<_> = pkts
            .iter()
            .map(|p| {
                let pp = parse(&p.data).unwrap();
                let t = TcpPacket::new_checked(pp.l4(&p.data)).unwrap();
                (t.seq(), t.flags(), t.payload().len())
            })
            .collect();
        let isn = segs[0].0;
        assert_eq!(segs[0].1, TcpFlags::SYN);
        assert_eq!(segs[1].0, isn.wrapping_add(1));
        assert_eq!(segs[2].2, 1448);
        assert_eq!(segs[3].0, isn.wrapping_add(1 + 1448));
        assert_eq!(segs[4].2, 104);
        assert!(segs[4].1.contains(TcpFlags::PSH));
        assert_eq!(segs[5].0, isn.wrapping_add(1 + 3000));
        assert!(segs[5].1.contains(TcpFlags::FIN));
        assert!(pkts.windows(2).all(|w| w[0].ts_ns < w[1].ts_ns));
        assert!(pkts.iter().all(|p| p.data.len() <= 1514));
    }

    #[test]
    fn write_message_shape_and_psns() {
        let mut rng = seeded_rng(7, 1);
        let (a, b) = (
            Host::new(Ipv4Addr::new(10, 10, 0, 1)),
            Host::new(Ipv4Addr::new(10, 10, 0, 2)),
        );
        let mut conn = RcConnection::new(&mut rng, a, b);
        let (pkts, end) = conn.write(&mut rng, 3 * 1024 + 10, 1_000, 100).unwrap();
        let ops: Vec<_> = pkts
            .iter()
            .map(|p| parse(&p.data).unwrap().bth.unwrap())
            .collect();
        assert_eq!(
            ops.iter().map(|b| b.opcode).collect::<Vec<_>>(),
            vec![
                BthOpcode::RC_WRITE_FIRST,
                BthOpcode::RC_WRITE_MIDDLE,
                BthOpcode::RC_WRITE_MIDDLE,
                BthOpcode::RC_WRITE_LAST
            ]
        );
        assert_eq!(ops[0].dma_len, Some(3 * 1024 + 10));
        assert!(ops
            .windows(2)
            .all(|w| w[1].psn == (w[0].psn + 1) & 0xff_ffff));
        assert!(ops[3].ack_req && !ops[0].ack_req);
        assert_eq!(ops[3].data.len, 10);
        assert!(end > pkts[3].ts_ns);
        let ack = conn.ack(end + 2_000).unwrap();
        let ab = parse(&ack.data).unwrap();
        assert_eq!(ab.bth.unwrap().psn, ops[3].psn);
        assert_eq!(ab.bth.unwrap().dest_qp, conn.requester_qpn);
        let (one, _) = conn.write(&mut rng, 10, end, 100).unwrap();
        assert_eq!(
            parse(&one[0].data).unwrap().bth.unwrap().opcode,
            BthOpcode::RC_WRITE_ONLY
        );
        assert_eq!(ROCE_TOS, 0x6a);
    }
}
