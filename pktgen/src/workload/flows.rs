//! Flow emitters shared by the workloads: a TCP request (handshake, data,
//! FIN), a UDP request, and an RDMA RC connection (WRITE messages, SEND
//! Only, ACKs). Each returns timestamped packets; the workloads decide when
//! flows start and merge them into one timeline.

use std::net::{Ipv4Addr, Ipv6Addr};

use classifier::aeth::AethRepr;
use classifier::bth::BthRepr;
use classifier::ethernet::MacAddr;
use classifier::reth::RethRepr;
use classifier::tcp::{TcpFlags, TcpOptionRepr, TcpRepr};
use classifier::token_feature_tlv::{
    emit_ipv4_option_area, TokenFeatureTlvRepr, HBH_HEADER_LEN, TLV_LEN,
};
use classifier::BthOpcode;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

use super::wire_time_ns;
use crate::build::{
    build, mac_for, BuildError, ExtSpec, FrameSpec, Ipv4Header, Ipv6Header, L3Spec, L4Spec,
};
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

/// How an agent flow is carried. The default is what every workload sent
/// before the token-aware steering options existed: plain IPv4 between the
/// hosts' addresses, no options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Carrier {
    /// IPv6 addresses `(client, server)` to use instead of the hosts' IPv4
    /// ones (the MACs stay the hosts').
    pub ipv6: Option<(Ipv6Addr, Ipv6Addr)>,
    /// The token feature TLV every client → server packet carries: the IPv4
    /// option 0x9E, or over IPv6 a 16-byte Hop-by-Hop header with option
    /// 0x1E. Server → client packets never carry it.
    pub tlv: Option<TokenFeatureTlvRepr>,
}

impl Carrier {
    /// Bytes of IP header (options and extension headers included) on a
    /// client → server packet.
    fn client_ip_len(&self) -> usize {
        match (self.ipv6.is_some(), self.tlv.is_some()) {
            (false, false) => 20,
            (false, true) => 20 + TLV_LEN,
            (true, false) => 40,
            (true, true) => 40 + HBH_HEADER_LEN,
        }
    }

    /// The MSS a SYN advertises: 1500 − base IP header − 20.
    fn advertised_mss(&self) -> u16 {
        if self.ipv6.is_some() {
            1440
        } else {
            1460
        }
    }

    /// TCP payload per client segment on a 1500-byte MTU, after the IP
    /// header, its options, the TCP header and the 12-byte timestamps
    /// option ([`TCP_MSS`] for the default carrier).
    pub fn tcp_segment(&self) -> usize {
        1500 - self.client_ip_len() - 20 - 12
    }

    /// UDP payload per client datagram on a 1500-byte MTU
    /// ([`UDP_MAX_PAYLOAD`] for the default carrier).
    pub fn udp_payload(&self) -> usize {
        1500 - self.client_ip_len() - 8
    }
}

/// The server's streamed answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// From the request's last data packet to the first response packet
    /// (time to first token).
    pub first_after_ns: u64,
    /// Between consecutive response packets (decode pacing).
    pub interval_ns: u64,
    /// The payload of each response packet, in order. A payload longer
    /// than one segment or datagram is split, its pieces sent back to back.
    pub payloads: Vec<Vec<u8>>,
}

/// One direction of a flow: who sends, who receives, and how.
#[derive(Debug, Clone, Copy)]
struct Path {
    src: Host,
    dst: Host,
    ipv6: Option<(Ipv6Addr, Ipv6Addr)>,
    tlv: Option<TokenFeatureTlvRepr>,
    flow_label: u32,
}

impl Path {
    fn forward(client: Host, server: Host, carrier: &Carrier, flow_label: u32) -> Path {
        Path {
            src: client,
            dst: server,
            ipv6: carrier.ipv6,
            tlv: carrier.tlv,
            flow_label: flow_label & 0xf_ffff,
        }
    }

    /// The server → client direction: addresses swapped, no TLV.
    fn reverse(&self) -> Path {
        Path {
            src: self.dst,
            dst: self.src,
            ipv6: self.ipv6.map(|(a, b)| (b, a)),
            tlv: None,
            flow_label: self.flow_label,
        }
    }

    /// Bytes of IP header on this path.
    fn ip_len(&self) -> usize {
        Carrier {
            ipv6: self.ipv6,
            tlv: self.tlv,
        }
        .client_ip_len()
    }

    fn frame(&self, ident: u16, l4: L4Spec<'_>) -> Result<Vec<u8>, BuildError> {
        match self.ipv6 {
            None => {
                let mut area = [0u8; 40];
                let n = match &self.tlv {
                    Some(t) => emit_ipv4_option_area(t, &[], &mut area)?,
                    None => 0,
                };
                let ip = Ipv4Header {
                    ident,
                    options: &area[..n],
                    ..Ipv4Header::new(self.src.ip, self.dst.ip)
                };
                ipv4_frame(self.src, self.dst, ip, l4)
            }
            Some((src, dst)) => {
                let ext: Vec<ExtSpec<'_>> =
                    self.tlv.map(ExtSpec::TokenFeatureHbh).into_iter().collect();
                build(&FrameSpec {
                    src_mac: self.src.mac,
                    dst_mac: self.dst.mac,
                    vlans: &[],
                    l3: L3Spec::Ipv6 {
                        header: Ipv6Header {
                            src,
                            dst,
                            traffic_class: 0,
                            flow_label: self.flow_label,
                            hop_limit: 64,
                        },
                        ext: &ext,
                        l4,
                    },
                })
            }
        }
    }
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
    tcp_exchange(
        rng,
        client,
        server,
        src_port,
        dst_port,
        payload,
        start_ns,
        rtt_ns,
        gbps,
        &Carrier::default(),
        None,
    )
}

/// [`tcp_request`] over `carrier`, optionally with the server's side.
///
/// The client packets are those of [`tcp_request`] (drawing the same values
/// from `rng` in the same order, so the default carrier without a response
/// is byte-identical to it), segmented at [`Carrier::tcp_segment`]. With a
/// `response`, the server (capture point midway, so half an RTT from the
/// client) sends a SYN-ACK half an RTT after the SYN, one ACK for the whole
/// request and the FIN half an RTT after the client's FIN, then
/// `response.payloads` as PSH segments, the first `first_after_ns` after the
/// request's last data segment arrived and the rest every `interval_ns`,
/// and finally its own FIN. Addresses and ports are the request's, swapped;
/// the server's ISN and timestamps are the ones the client's ACKs echo.
/// Packets are returned client side first, then server side (not sorted).
#[allow(clippy::too_many_arguments)]
pub fn tcp_exchange(
    rng: &mut ChaCha8Rng,
    client: Host,
    server: Host,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    start_ns: u64,
    rtt_ns: u64,
    gbps: u64,
    carrier: &Carrier,
    response: Option<&Response>,
) -> Result<Vec<Packet>, BuildError> {
    let isn: u32 = rng.gen();
    let server_isn: u32 = rng.gen();
    let mut ident: u16 = rng.gen();
    let ts_origin: u32 = rng.gen_range(1_000_000..1_000_000_000);
    let peer_ts: u32 = rng.gen_range(1_000_000..1_000_000_000);
    let tsval = |t: u64| ts_origin.wrapping_add(((t - start_ns) / 1_000_000) as u32);
    let mss = carrier.tcp_segment();
    let fwd = Path::forward(client, server, carrier, isn ^ u32::from(src_port));

    let mut out = Vec::with_capacity(3 + payload.len() / mss);
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
            let frame = fwd.frame(
                ident,
                L4Spec::Tcp {
                    header,
                    payload: data,
                },
            )?;
            ident = ident.wrapping_add(1);
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
            TcpOptionRepr::Mss(carrier.advertised_mss()),
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
    let segments = payload.chunks(mss).count();
    let mut last_data = t;
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let flags = if i + 1 == segments {
            TcpFlags::ACK | TcpFlags::PSH
        } else {
            TcpFlags::ACK
        };
        last_data = t;
        let len = emit(t, seq, ack, flags, &ts_opts(t), chunk)?;
        seq = seq.wrapping_add(chunk.len() as u32);
        t += wire_time_ns(len, gbps);
    }
    // The client half-closes right after its request, as HTTP/1.1 clients
    // with `Connection: close` do.
    t += rng.gen_range(1_000..20_000);
    let fin_t = t;
    emit(t, seq, ack, TcpFlags::FIN | TcpFlags::ACK, &ts_opts(t), &[])?;
    if let Some(resp) = response {
        let back = ServerSide {
            path: fwd.reverse(),
            src_port: dst_port,
            dst_port: src_port,
            isn: server_isn,
            ts_origin: peer_ts,
            ts_start: start_ns + rtt_ns / 2,
            client_ts: tsval,
            ident: (server_isn >> 16) as u16,
        };
        out.extend(back.packets(
            resp,
            isn,
            seq.wrapping_add(1),
            start_ns,
            last_data,
            fin_t,
            rtt_ns,
            carrier.advertised_mss(),
        )?);
    }
    Ok(out)
}

/// The server end of a TCP exchange.
struct ServerSide<F: Fn(u64) -> u32> {
    path: Path,
    src_port: u16,
    dst_port: u16,
    isn: u32,
    ts_origin: u32,
    ts_start: u64,
    client_ts: F,
    ident: u16,
}

impl<F: Fn(u64) -> u32> ServerSide<F> {
    /// SYN-ACK, ACK of request and FIN, the response segments, FIN.
    #[allow(clippy::too_many_arguments)]
    fn packets(
        mut self,
        resp: &Response,
        client_isn: u32,
        client_end: u32,
        syn_t: u64,
        last_data_t: u64,
        fin_t: u64,
        rtt_ns: u64,
        mss_opt: u16,
    ) -> Result<Vec<Packet>, BuildError> {
        let half = rtt_ns / 2;
        let mss = 1500 - self.path.ip_len() - 20 - 12;
        let mut out = Vec::with_capacity(resp.payloads.len() + 3);
        // The client's tsval as last seen by the server (half an RTT late).
        let echo = |s: &Self, t: u64| (s.client_ts)(t.saturating_sub(half).max(syn_t));
        let tsval = |s: &Self, t: u64| {
            s.ts_origin
                .wrapping_add((t.saturating_sub(s.ts_start) / 1_000_000) as u32)
        };

        let t = syn_t + half;
        let syn_ack_opts = [
            TcpOptionRepr::Mss(mss_opt),
            TcpOptionRepr::SackPermitted,
            TcpOptionRepr::Timestamps {
                tsval: tsval(&self, t),
                tsecr: echo(&self, t),
            },
            TcpOptionRepr::Nop,
            TcpOptionRepr::WindowScale(7),
        ];
        let f = self.segment(
            self.isn,
            client_isn.wrapping_add(1),
            TcpFlags::SYN | TcpFlags::ACK,
            &syn_ack_opts,
            &[],
        )?;
        out.push(Packet::new(t, f));

        let ts_opts = |s: &Self, t: u64| {
            [
                TcpOptionRepr::Nop,
                TcpOptionRepr::Nop,
                TcpOptionRepr::Timestamps {
                    tsval: tsval(s, t),
                    tsecr: echo(s, t),
                },
            ]
        };
        let mut seq = self.isn.wrapping_add(1);
        // One (delayed) ACK covering the whole request and the client's FIN.
        let t = fin_t + half;
        let f = self.segment(seq, client_end, TcpFlags::ACK, &ts_opts(&self, t), &[])?;
        out.push(Packet::new(t, f));

        // Inference starts when the last request byte reaches the server.
        let mut t = (last_data_t + half + resp.first_after_ns).max(t + 1);
        for payload in &resp.payloads {
            for piece in payload.chunks(mss) {
                let f = self.segment(
                    seq,
                    client_end,
                    TcpFlags::ACK | TcpFlags::PSH,
                    &ts_opts(&self, t),
                    piece,
                )?;
                seq = seq.wrapping_add(piece.len() as u32);
                out.push(Packet::new(t, f));
                t += 1_000;
            }
            t += resp.interval_ns.saturating_sub(1_000);
        }
        // The server closes right after the last chunk.
        let t = out.last().map_or(t, |p| p.ts_ns) + 20_000;
        let f = self.segment(
            seq,
            client_end,
            TcpFlags::FIN | TcpFlags::ACK,
            &ts_opts(&self, t),
            &[],
        )?;
        out.push(Packet::new(t, f));
        Ok(out)
    }

    fn segment(
        &mut self,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        opts: &[TcpOptionRepr],
        data: &[u8],
    ) -> Result<Vec<u8>, BuildError> {
        let mut opt_bytes = [0u8; 40];
        let n = TcpOptionRepr::emit_all(opts, &mut opt_bytes)?;
        let header = TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq,
            ack,
            flags,
            // 65160 unscaled in the SYN-ACK (Linux); 509 << 7 afterwards.
            window: if flags.contains(TcpFlags::SYN) {
                65160
            } else {
                509
            },
            urgent: 0,
            options: &opt_bytes[..n],
        };
        let frame = self.path.frame(
            self.ident,
            L4Spec::Tcp {
                header,
                payload: data,
            },
        )?;
        self.ident = self.ident.wrapping_add(1);
        Ok(frame)
    }
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
    udp_exchange(
        rng,
        client,
        server,
        src_port,
        dst_port,
        payload,
        start_ns,
        gbps,
        &Carrier::default(),
        None,
    )
}

/// [`udp_request`] over `carrier` (datagrams of at most
/// [`Carrier::udp_payload`] bytes), optionally followed by the server's
/// response datagrams: swapped addresses and ports, no TLV, the first
/// `first_after_ns` after the last request datagram and the rest every
/// `interval_ns`. Draws from `rng` exactly what [`udp_request`] draws.
#[allow(clippy::too_many_arguments)]
pub fn udp_exchange(
    rng: &mut ChaCha8Rng,
    client: Host,
    server: Host,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    start_ns: u64,
    gbps: u64,
    carrier: &Carrier,
    response: Option<&Response>,
) -> Result<Vec<Packet>, BuildError> {
    let mut ident: u16 = rng.gen();
    let fwd = Path::forward(
        client,
        server,
        carrier,
        u32::from(ident) << 4 ^ u32::from(src_port),
    );
    let mut server_ident = ident.rotate_left(8) ^ 0x5a5a;
    let mut t = start_ns;
    let mut last = t;
    let mut out = Vec::new();
    for chunk in payload.chunks(carrier.udp_payload()) {
        let frame = fwd.frame(
            ident,
            L4Spec::Udp {
                src_port,
                dst_port,
                payload: chunk,
                checksum: true,
            },
        )?;
        ident = ident.wrapping_add(1);
        let len = frame.len();
        last = t;
        out.push(Packet::new(t, frame));
        t += wire_time_ns(len, gbps);
    }
    if let Some(resp) = response {
        let back = fwd.reverse();
        let max = 1500 - back.ip_len() - 8;
        let mut t = last + resp.first_after_ns;
        for payload in &resp.payloads {
            for piece in payload.chunks(max) {
                let frame = back.frame(
                    server_ident,
                    L4Spec::Udp {
                        src_port: dst_port,
                        dst_port: src_port,
                        payload: piece,
                        checksum: true,
                    },
                )?;
                server_ident = server_ident.wrapping_add(1);
                out.push(Packet::new(t, frame));
                t += 1_000;
            }
            t += resp.interval_ns.saturating_sub(1_000);
        }
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
