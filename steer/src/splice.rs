//! Delayed binding (TCP splicing) for TLV-less requests: the appliance
//! answers the client's handshake itself, reads the request, lets the
//! engine decide on its content, opens the connection to the chosen
//! instance, replays the request and from then on translates the two TCP
//! connections into one. Sans-IO, like the rest of the crate: it is fed
//! parsed segments and the time, patches frames in place, and queues the
//! segments it must send, which the caller writes into buffers it gives
//! ([`Splicer::poll_transmit`]).
//!
//! ```text
//! client                 appliance                       instance
//!   SYN ───────────────►  cookie SYN-ACK (no state)
//!   ◄──────────────────   seq = cookie
//!   ACK (cookie ok) ───►  connection state, buffer
//!   request ───────────►  buffered, ACKed, read (100 Continue answered)
//!                         complete: decide ────────────► SYN (client ISN,
//!                                                          client options)
//!                                            ◄────────── SYN-ACK
//!                         delta = our ISN − instance ISN
//!                         replay the request ──────────► (retransmitted
//!                                            ◄────────── until ACKed)
//!   ◄═══════ spliced: instance→client seq + delta, client→instance ack
//!            and SACK − delta, window rescaled, NAT as any flow ════►
//! ```
//!
//! # TCP options
//!
//! * **MSS**: the appliance's SYN-ACK offers [`ADVERTISED_MSS`]; the
//!   client's MSS (rounded down by the cookie, [`crate::cookie`]) is what
//!   the appliance's SYN to the instance offers, and bounds the segments
//!   the appliance sends the client. The replay is segmented to the
//!   instance's MSS.
//! * **Window scale**: offered back ([`ADVERTISED_WSCALE`]) only when the
//!   client offered it; the client's own shift is passed to the instance,
//!   so client→instance windows need no change; instance→client windows
//!   are rescaled from the instance's shift to the advertised one (capped
//!   at 65535 after scaling).
//! * **SACK permitted**: passed from the client's SYN to the instance's
//!   and offered back when the client offered it; SACK blocks from the
//!   client (which acknowledge instance data) are translated − delta;
//!   those from the instance (client data) need none.
//! * **Timestamps** are neither offered nor passed on, so the connection
//!   runs without them; nothing else is offered either (no TFO, ECN,
//!   MD5 or MPTCP: the appliance's SYN-ACK carries none).
//!
//! # Bounds
//!
//! A SYN costs nothing. A connection costs a slot of
//! [`SpliceLimits::connections`] and its request's bytes, in
//! [`CHUNK_BYTES`] chunks of a pool of [`SpliceLimits::buffer_bytes`], at
//! most [`SpliceLimits::request_max_bytes`] per connection. A request that
//! outgrows either bound is decided on what was read (counted), and the
//! rest flows through the spliced connection. A connection whose request
//! is not complete within [`SpliceLimits::request_timeout_ns`] of its
//! handshake is reset (counted). No slot: the handshake ACK is answered
//! with a RST (counted). Out-of-order client data is dropped (counted);
//! the client retransmits it.

use std::sync::Arc;

use classifier::checksum::{self, PseudoHeader};
use classifier::tcp::{TcpFlags, TcpOption, TcpOptionRepr, TcpOptions, TcpPacket};
use classifier::{IpProtocol, ParsedPacket, TokenFeatures};
use flowtab::Table;

use crate::cookie::{CookieJar, Endpoints, SynOptions};
use crate::flow_table::ClientKey;
use crate::http::{ReadEvent, RequestReader};
use crate::stats::{SpliceEvent, SteerCounters};

/// The request buffer's allocation unit.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// The MSS the appliance's SYN-ACK offers.
pub const ADVERTISED_MSS: u16 = 1460;
/// The window-scale shift the appliance's SYN-ACK offers (to clients that
/// offered one).
pub const ADVERTISED_WSCALE: u8 = 7;
/// What the appliance answers `Expect: 100-continue` with.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// Segments waiting to be written ([`Splicer::poll_transmit`]).
pub const TX_QUEUE: usize = 1024;
/// Conns the ageing sweep visits per call.
const SWEEP_BUDGET: usize = 256;

/// How much splicing may hold, and its timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpliceLimits {
    /// Connections between handshake and close.
    pub connections: usize,
    /// Bytes of one request buffered before it is decided anyway.
    pub request_max_bytes: usize,
    /// All request buffers together (rounded up to whole chunks).
    pub buffer_bytes: usize,
    /// From handshake to complete request.
    pub request_timeout_ns: u64,
    /// First retransmission timeout towards the instance (doubles per try).
    pub retransmit_ns: u64,
    /// Tries of the SYN and of the replay before both sides are reset.
    pub retransmit_tries: u8,
    /// A spliced connection idle this long is forgotten.
    pub idle_ns: u64,
}

impl Default for SpliceLimits {
    fn default() -> Self {
        SpliceLimits {
            connections: 1024,
            request_max_bytes: 272 * 1024,
            buffer_bytes: 16 * 1024 * 1024,
            request_timeout_ns: 5_000_000_000,
            retransmit_ns: 200_000_000,
            retransmit_tries: 5,
            idle_ns: 30_000_000_000,
        }
    }
}

/// Where the chosen instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Next-hop MAC.
    pub mac: [u8; 6],
    /// Instance IPv4 address.
    pub ip: [u8; 4],
    /// Egress port.
    pub port: u16,
    /// Egress band of the connection's request.
    pub band: u8,
}

/// A frame [`Splicer::poll_transmit`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Bytes written.
    pub len: usize,
    /// The egress port, or `None` for back towards the agents (the port
    /// the client's packets arrive by).
    pub port: Option<u16>,
    /// Egress band.
    pub band: u8,
}

/// The TCP/IPv4 fields of a received segment.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    payload_len: u32,
    l4: usize,
}

impl Segment {
    /// The segment of an untagged, unfragmented IPv4 TCP frame; `None`
    /// for anything else (which splicing leaves to the flow path).
    pub fn read(frame: &[u8], p: &ParsedPacket) -> Option<Segment> {
        let flow = p.flow?;
        if p.ip_protocol != Some(IpProtocol::TCP) || p.l3_offset != 14 || p.is_fragment() {
            return None;
        }
        let v4 = |a: &[u8; 16]| -> Option<[u8; 4]> {
            match a {
                [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d] => Some([*a, *b, *c, *d]),
                _ => None,
            }
        };
        let tcp = TcpPacket::new_checked(p.l4(frame)).ok()?;
        let mac = |r: std::ops::Range<usize>| -> Option<[u8; 6]> { frame.get(r)?.try_into().ok() };
        Some(Segment {
            dst_mac: mac(0..6)?,
            src_mac: mac(6..12)?,
            src_ip: v4(&flow.src_addr)?,
            dst_ip: v4(&flow.dst_addr)?,
            src_port: flow.src_port,
            dst_port: flow.dst_port,
            seq: tcp.seq(),
            ack: tcp.ack(),
            flags: tcp.flags(),
            window: tcp.window(),
            payload_len: u32::try_from(tcp.payload().len()).ok()?,
            l4: usize::from(p.l4_offset?),
        })
    }

    fn has(&self, f: TcpFlags) -> bool {
        self.flags.contains(f)
    }

    /// A RST.
    pub fn is_rst(&self) -> bool {
        self.has(TcpFlags::RST)
    }

    /// A SYN (not a SYN-ACK).
    pub fn is_syn(&self) -> bool {
        self.has(TcpFlags::SYN) && !self.has(TcpFlags::ACK)
    }

    fn options<'a>(&self, frame: &'a [u8]) -> TcpOptions<'a> {
        let opts = frame
            .get(self.l4..)
            .and_then(|l4| TcpPacket::new_checked(l4).ok())
            .map_or(&[][..], |t| {
                let len = t.header_len();
                let l4 = t.into_inner();
                l4.get(20..len).unwrap_or(&[])
            });
        TcpOptions::new(opts)
    }

    fn syn_options(&self, frame: &[u8]) -> SynOptions {
        let mut o = SynOptions::default();
        for (_, opt) in self.options(frame) {
            match opt {
                TcpOption::Mss(m) => o.mss = m,
                TcpOption::WindowScale(s) => o.wscale = Some(s.min(14)),
                TcpOption::SackPermitted => o.sack = true,
                _ => {}
            }
        }
        o
    }

    fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.l4..)
            .and_then(|l4| TcpPacket::new_checked(l4).ok())
            .map_or(&[][..], |t| {
                let start = t.header_len();
                let l4 = t.into_inner();
                l4.get(start..start + self.payload_len as usize)
                    .unwrap_or(&[])
            })
    }
}

/// Sequence-space comparisons (RFC 1982).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The request buffers' chunks.
struct ChunkPool {
    data: Vec<u8>,
    next: Vec<u32>,
    free_head: u32,
    free: usize,
}

const NIL: u32 = u32::MAX;

impl ChunkPool {
    fn new(bytes: usize) -> ChunkPool {
        let chunks = bytes.div_ceil(CHUNK_BYTES).max(1);
        ChunkPool {
            data: vec![0; chunks * CHUNK_BYTES],
            next: (1..=chunks as u32)
                .map(|n| if n as usize == chunks { NIL } else { n })
                .collect(),
            free_head: 0,
            free: chunks,
        }
    }

    fn alloc(&mut self) -> Option<u32> {
        let c = self.free_head;
        let next = *self.next.get(c as usize)?;
        self.free_head = next;
        if let Some(n) = self.next.get_mut(c as usize) {
            *n = NIL;
        }
        self.free -= 1;
        Some(c)
    }

    fn release(&mut self, mut c: u32) {
        while let Some(&next) = self.next.get(c as usize) {
            if let Some(n) = self.next.get_mut(c as usize) {
                *n = self.free_head;
            }
            self.free_head = c;
            self.free += 1;
            c = next;
        }
    }

    fn chunk(&self, c: u32) -> &[u8] {
        let at = c as usize * CHUNK_BYTES;
        self.data.get(at..at + CHUNK_BYTES).unwrap_or(&[])
    }

    fn chunk_mut(&mut self, c: u32) -> &mut [u8] {
        let at = c as usize * CHUNK_BYTES;
        self.data.get_mut(at..at + CHUNK_BYTES).unwrap_or(&mut [])
    }
}

/// One connection's buffered bytes: a list of chunks.
#[derive(Debug, Clone, Copy)]
struct Buffer {
    head: u32,
    tail: u32,
    len: u32,
}

impl Buffer {
    const EMPTY: Buffer = Buffer {
        head: NIL,
        tail: NIL,
        len: 0,
    };

    /// Appends what fits of `bytes`; returns how much.
    fn append(&mut self, pool: &mut ChunkPool, mut bytes: &[u8]) -> usize {
        let mut taken = 0;
        while !bytes.is_empty() {
            let used = self.len as usize % CHUNK_BYTES;
            if used == 0 {
                let Some(c) = pool.alloc() else { break };
                if self.tail == NIL {
                    self.head = c;
                } else if let Some(n) = pool.next.get_mut(self.tail as usize) {
                    *n = c;
                }
                self.tail = c;
            }
            let room = CHUNK_BYTES - used;
            let n = room.min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            if let Some(dst) = pool.chunk_mut(self.tail).get_mut(used..used + n) {
                dst.copy_from_slice(now);
            }
            self.len += n as u32;
            taken += n;
            bytes = rest;
        }
        taken
    }

    /// Copies `out.len()` bytes from `offset`.
    fn read(&self, pool: &ChunkPool, offset: u32, out: &mut [u8]) -> bool {
        if offset as usize + out.len() > self.len as usize {
            return false;
        }
        let mut c = self.head;
        for _ in 0..offset as usize / CHUNK_BYTES {
            c = pool.next.get(c as usize).copied().unwrap_or(NIL);
        }
        let mut at = offset as usize % CHUNK_BYTES;
        let mut done = 0;
        while done < out.len() {
            let src = pool.chunk(c);
            let n = (CHUNK_BYTES - at).min(out.len() - done);
            match (out.get_mut(done..done + n), src.get(at..at + n)) {
                (Some(d), Some(s)) => d.copy_from_slice(s),
                _ => return false,
            }
            done += n;
            at = 0;
            c = pool.next.get(c as usize).copied().unwrap_or(NIL);
        }
        true
    }

    fn release(&mut self, pool: &mut ChunkPool) {
        if self.head != NIL {
            pool.release(self.head);
        }
        *self = Buffer::EMPTY;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Free,
    /// Handshake done, request being read.
    Reading,
    /// Decided; SYN sent to the instance.
    Connecting,
    /// The instance answered; the request is being replayed.
    Replaying,
    /// Replay acknowledged: pure translation.
    Spliced,
}

/// One connection's state.
#[derive(Clone, Copy)]
struct Conn {
    phase: Phase,
    generation: u32,
    key: ClientKey,
    service: u8,
    client_mac: [u8; 6],
    vip_mac: [u8; 6],
    ends: Endpoints,
    opts: SynOptions,
    client_isn: u32,
    created_ns: u64,
    last_ns: u64,
    /// Next client byte expected (client sequence space).
    rcv_nxt: u32,
    /// Our next byte towards the client (our sequence space).
    our_nxt: u32,
    /// Highest acknowledgement from the client (our space).
    client_acked: u32,
    continue_sent: bool,
    buf: Buffer,
    reader: RequestReader,
    target: Target,
    inst_isn: u32,
    inst_mss: u16,
    inst_wscale: u8,
    /// The instance's receive window, bytes.
    inst_window: u32,
    delta: u32,
    replay_acked: u32,
    replay_next: u32,
    tries: u8,
    deadline_ns: u64,
    fin_client: bool,
    fin_instance: bool,
    /// Next client byte the keep-alive reader expects.
    parse_nxt: u32,
}

impl Conn {
    fn free() -> Conn {
        Conn {
            phase: Phase::Free,
            generation: 0,
            key: ClientKey::default(),
            service: 0,
            client_mac: [0; 6],
            vip_mac: [0; 6],
            ends: Endpoints {
                client: [0; 4],
                client_port: 0,
                vip: [0; 4],
                vip_port: 0,
            },
            opts: SynOptions::default(),
            client_isn: 0,
            created_ns: 0,
            last_ns: 0,
            rcv_nxt: 0,
            our_nxt: 0,
            client_acked: 0,
            continue_sent: false,
            buf: Buffer::EMPTY,
            reader: RequestReader::new(),
            target: Target {
                mac: [0; 6],
                ip: [0; 4],
                port: 0,
                band: 0,
            },
            inst_isn: 0,
            inst_mss: 536,
            inst_wscale: 0,
            inst_window: 0,
            delta: 0,
            replay_acked: 0,
            replay_next: 0,
            tries: 0,
            deadline_ns: 0,
            fin_client: false,
            fin_instance: false,
            parse_nxt: 0,
        }
    }

    /// The shift the appliance advertised to the client.
    fn our_wscale(&self) -> u8 {
        if self.opts.wscale.is_some() {
            ADVERTISED_WSCALE
        } else {
            0
        }
    }

    /// The client's first request byte.
    fn request_start(&self) -> u32 {
        self.client_isn.wrapping_add(1)
    }
}

/// What a segment's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    None,
    Continue,
    Buffered {
        slot: u32,
        generation: u32,
        offset: u32,
        len: u16,
    },
}

/// A segment to write.
#[derive(Debug, Clone, Copy)]
struct Emit {
    to_client: bool,
    port: u16,
    band: u8,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    syn: Option<SynOptions>,
    payload: Payload,
}

/// What became of a client's segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FromClient {
    /// Taken by the appliance (handshake, buffered data, ACKs before the
    /// instance is connected).
    Consumed,
    /// Not taken (out of order, past the bounds, before the instance is
    /// connected): dropped, the client retransmits.
    Refused,
    /// The request is read (or a bound hit): decide with these features,
    /// then [`Splicer::connect`] or [`Splicer::abort`]. The segment was
    /// consumed.
    Decide {
        /// The connection.
        slot: u32,
        /// What was inferred; `None` for a request that is not inferable.
        features: Option<TokenFeatures>,
    },
    /// Translated for the instance: forward it as its flow's packet. When
    /// a keep-alive request ended in it, `completed` has its features
    /// (`Some(None)`: not inferable).
    Forward {
        /// A request that ended.
        completed: Option<Option<TokenFeatures>>,
    },
}

/// What became of an instance's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromInstance {
    /// Taken by the appliance (the SYN-ACK, ACKs of the replay).
    Consumed,
    /// Translated for the client: forward it as its flow's response.
    Forward,
}

/// One worker's spliced connections.
pub struct Splicer {
    limits: SpliceLimits,
    jar: CookieJar,
    index: Table<ClientKey, u32>,
    conns: Vec<Conn>,
    free: Vec<u32>,
    pool: ChunkPool,
    tx: Vec<Emit>,
    tx_head: usize,
    tx_len: usize,
    sweep: usize,
    counters: Arc<SteerCounters>,
}

impl Splicer {
    /// Everything allocated here, once.
    pub fn new(limits: SpliceLimits, seed: u64, counters: Arc<SteerCounters>) -> Splicer {
        let n = limits.connections.max(1);
        let blank = Emit {
            to_client: true,
            port: 0,
            band: 0,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            src_ip: [0; 4],
            dst_ip: [0; 4],
            src_port: 0,
            dst_port: 0,
            seq: 0,
            ack: 0,
            flags: TcpFlags::default(),
            window: 0,
            syn: None,
            payload: Payload::None,
        };
        Splicer {
            limits,
            jar: CookieJar::new(seed),
            index: Table::new(n, seed ^ 0x9e37_79b9_7f4a_7c15),
            conns: vec![Conn::free(); n],
            free: (0..n as u32).rev().collect(),
            pool: ChunkPool::new(limits.buffer_bytes),
            tx: vec![blank; TX_QUEUE],
            tx_head: 0,
            tx_len: 0,
            sweep: 0,
            counters,
        }
    }

    /// Connections held.
    pub fn connections(&self) -> usize {
        self.conns.len() - self.free.len()
    }

    /// Buffer bytes in use.
    pub fn buffered_bytes(&self) -> usize {
        (self.pool.next.len() - self.pool.free) * CHUNK_BYTES
    }

    fn count(&self, e: SpliceEvent) {
        self.counters.splice(e);
    }

    fn publish_gauges(&self) {
        self.counters
            .splice_gauges(self.connections() as u64, self.buffered_bytes() as u64);
    }

    /// The connection of `key`, if spliced.
    pub fn lookup(&self, key: &ClientKey) -> Option<u32> {
        if self.free.len() == self.conns.len() {
            return None;
        }
        self.index.get(key).copied()
    }

    fn push(&mut self, e: Emit) {
        if self.tx_len == self.tx.len() {
            self.count(SpliceEvent::TxQueueFull);
            return;
        }
        let at = (self.tx_head + self.tx_len) % self.tx.len();
        if let Some(slot) = self.tx.get_mut(at) {
            *slot = e;
            self.tx_len += 1;
        }
    }

    /// A segment from the appliance (as the VIP) to the client.
    fn to_client(c: &Conn, seq: u32, flags: TcpFlags, window: u16, payload: Payload) -> Emit {
        Emit {
            to_client: true,
            port: 0,
            band: c.target.band,
            src_mac: c.vip_mac,
            dst_mac: c.client_mac,
            src_ip: c.ends.vip,
            dst_ip: c.ends.client,
            src_port: c.ends.vip_port,
            dst_port: c.ends.client_port,
            seq,
            ack: c.rcv_nxt,
            flags,
            window,
            syn: None,
            payload,
        }
    }

    /// A segment from the appliance (as the client) to the instance.
    fn to_instance(c: &Conn, seq: u32, flags: TcpFlags, payload: Payload) -> Emit {
        Emit {
            to_client: false,
            port: c.target.port,
            band: c.target.band,
            src_mac: c.client_mac,
            dst_mac: c.target.mac,
            src_ip: c.ends.client,
            dst_ip: c.target.ip,
            src_port: c.ends.client_port,
            dst_port: c.ends.vip_port,
            seq,
            ack: c.inst_isn.wrapping_add(1),
            flags,
            // The client's last window is unknown here; its own segments
            // carry it from the first forwarded one on.
            window: u16::MAX >> c.opts.wscale.unwrap_or(0).min(8),
            syn: None,
            payload,
        }
    }

    /// The window the appliance advertises while buffering.
    fn read_window(&self, c: &Conn) -> u16 {
        let room = (self
            .limits
            .request_max_bytes
            .saturating_sub(c.buf.len as usize))
        .min(self.pool.free * CHUNK_BYTES);
        u16::try_from(room >> c.our_wscale()).unwrap_or(u16::MAX)
    }

    fn ack_client(&mut self, slot: u32) {
        let Some(c) = self.conns.get(slot as usize).copied() else {
            return;
        };
        let window = self.read_window(&c);
        self.push(Self::to_client(
            &c,
            c.our_nxt,
            TcpFlags::ACK,
            window,
            Payload::None,
        ));
    }

    /// A client's SYN without a TLV: answered with a cookie, nothing kept.
    pub fn answer_syn(&mut self, frame: &[u8], seg: &Segment, now_ns: u64) {
        let opts = seg.syn_options(frame);
        let ends = Endpoints {
            client: seg.src_ip,
            client_port: seg.src_port,
            vip: seg.dst_ip,
            vip_port: seg.dst_port,
        };
        let isn = self.jar.mint(&ends, seg.seq, opts, now_ns);
        self.count(SpliceEvent::SynAnswered);
        self.push(Emit {
            to_client: true,
            port: 0,
            band: crate::engine::OTHER_BAND,
            src_mac: seg.dst_mac,
            dst_mac: seg.src_mac,
            src_ip: seg.dst_ip,
            dst_ip: seg.src_ip,
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq: isn,
            ack: seg.seq.wrapping_add(1),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: u16::MAX,
            syn: Some(SynOptions {
                mss: ADVERTISED_MSS,
                wscale: opts.wscale.map(|_| ADVERTISED_WSCALE),
                sack: opts.sack,
            }),
            payload: Payload::None,
        });
    }

    /// A stateless RST answering `seg` (RFC 9293 §3.10.7.1).
    pub fn reset(&mut self, seg: &Segment) {
        if seg.has(TcpFlags::RST) {
            return;
        }
        let (seq, ack, flags) = if seg.has(TcpFlags::ACK) {
            (seg.ack, 0, TcpFlags::RST)
        } else {
            (
                0,
                seg.seq.wrapping_add(seg.payload_len),
                TcpFlags::RST | TcpFlags::ACK,
            )
        };
        self.push(Emit {
            to_client: true,
            port: 0,
            band: crate::engine::OTHER_BAND,
            src_mac: seg.dst_mac,
            dst_mac: seg.src_mac,
            src_ip: seg.dst_ip,
            dst_ip: seg.src_ip,
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq,
            ack,
            flags,
            window: 0,
            syn: None,
            payload: Payload::None,
        });
    }

    /// A client's ACK with no connection: a valid cookie opens one (and
    /// the segment is then handled as the connection's), else a RST.
    /// Returns what became of the segment.
    pub fn accept(
        &mut self,
        frame: &mut [u8],
        seg: &Segment,
        key: ClientKey,
        service: u8,
        now_ns: u64,
    ) -> FromClient {
        let ends = Endpoints {
            client: seg.src_ip,
            client_port: seg.src_port,
            vip: seg.dst_ip,
            vip_port: seg.dst_port,
        };
        let client_isn = seg.seq.wrapping_sub(1);
        let our_isn = seg.ack.wrapping_sub(1);
        let Some(opts) = self.jar.check(&ends, client_isn, our_isn, now_ns) else {
            self.count(SpliceEvent::CookieInvalid);
            self.reset(seg);
            return FromClient::Consumed;
        };
        let Some(slot) = self.free.pop() else {
            self.count(SpliceEvent::TableFull);
            self.reset(seg);
            return FromClient::Consumed;
        };
        if self.index.insert(key, slot, now_ns).is_err() {
            self.free.push(slot);
            self.count(SpliceEvent::TableFull);
            self.reset(seg);
            return FromClient::Consumed;
        }
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return FromClient::Consumed;
        };
        let generation = c.generation.wrapping_add(1);
        *c = Conn::free();
        *c = Conn {
            phase: Phase::Reading,
            generation,
            key,
            service,
            client_mac: seg.src_mac,
            vip_mac: seg.dst_mac,
            ends,
            opts,
            client_isn,
            created_ns: now_ns,
            last_ns: now_ns,
            rcv_nxt: seg.seq,
            our_nxt: seg.ack,
            client_acked: seg.ack,
            parse_nxt: seg.seq,
            ..*c
        };
        self.count(SpliceEvent::Accepted);
        self.publish_gauges();
        self.from_client(slot, frame, seg, now_ns)
    }

    /// Whether the request just decided or completed on `slot` asked for
    /// a streamed answer.
    pub fn streaming(&self, slot: u32) -> bool {
        self.conns
            .get(slot as usize)
            .is_some_and(|c| c.reader.streaming())
    }

    /// The service a connection belongs to.
    pub fn service(&self, slot: u32) -> Option<u8> {
        self.conns.get(slot as usize).map(|c| c.service)
    }

    /// A client segment of connection `slot`. In the forwarded case the
    /// frame's TCP header is translated in place.
    pub fn from_client(
        &mut self,
        slot: u32,
        frame: &mut [u8],
        seg: &Segment,
        now_ns: u64,
    ) -> FromClient {
        let Some(mut c) = self.conns.get(slot as usize).copied() else {
            return FromClient::Refused;
        };
        c.last_ns = now_ns;
        if seg.has(TcpFlags::ACK) && seq_lt(c.client_acked, seg.ack) {
            c.client_acked = seg.ack;
        }
        if seg.has(TcpFlags::SYN) {
            // A new connection on the port (the client gave this one up).
            self.release(slot);
            self.count(SpliceEvent::ClientAborted);
            return FromClient::Refused;
        }
        let out = match c.phase {
            Phase::Free => FromClient::Refused,
            Phase::Reading => {
                if seg.has(TcpFlags::RST) || seg.has(TcpFlags::FIN) {
                    // Gone before its request was read: nothing to keep.
                    if !seg.has(TcpFlags::RST) {
                        self.reset(seg);
                    }
                    self.release(slot);
                    self.count(SpliceEvent::ClientAborted);
                    return FromClient::Consumed;
                }
                self.store(slot, c);
                return self.buffer(slot, frame, seg);
            }
            Phase::Connecting => {
                if seg.has(TcpFlags::RST) {
                    self.abort(slot);
                    self.count(SpliceEvent::ClientAborted);
                    return FromClient::Consumed;
                }
                if seg.payload_len > 0 || seg.has(TcpFlags::FIN) {
                    // Until the instance answers, nothing more is taken.
                    self.count(SpliceEvent::EarlyData);
                    FromClient::Refused
                } else {
                    FromClient::Consumed
                }
            }
            Phase::Replaying | Phase::Spliced => {
                let completed = self.keep_reading(&mut c, frame, seg);
                c.fin_client |= seg.has(TcpFlags::FIN);
                self.translate_from_client(&c, frame, seg);
                if seg.has(TcpFlags::RST) {
                    self.count(SpliceEvent::Closed);
                    self.store(slot, c);
                    self.release(slot);
                    return FromClient::Forward { completed };
                }
                FromClient::Forward { completed }
            }
        };
        if let Some(slot_c) = self.conns.get_mut(slot as usize) {
            if slot_c.phase != Phase::Free {
                *slot_c = c;
            }
        }
        out
    }

    /// Reading: buffers in-order data, ACKs it, reads it.
    fn buffer(&mut self, slot: u32, frame: &[u8], seg: &Segment) -> FromClient {
        let Some(mut c) = self.conns.get(slot as usize).copied() else {
            return FromClient::Refused;
        };
        if seg.payload_len == 0 {
            return FromClient::Consumed;
        }
        let end = seg.seq.wrapping_add(seg.payload_len);
        if !seq_lt(c.rcv_nxt, end) {
            // All of it buffered already: the ACK was lost.
            self.count(SpliceEvent::Duplicate);
            self.ack_client(slot);
            return FromClient::Consumed;
        }
        if seq_lt(c.rcv_nxt, seg.seq) {
            self.count(SpliceEvent::OutOfOrder);
            self.ack_client(slot);
            return FromClient::Refused;
        }
        let skip = c.rcv_nxt.wrapping_sub(seg.seq) as usize;
        let payload = seg.payload(frame);
        let new = payload.get(skip..).unwrap_or(&[]);
        let room = self
            .limits
            .request_max_bytes
            .saturating_sub(c.buf.len as usize);
        let want = new.get(..room.min(new.len())).unwrap_or(&[]);
        let taken = c.buf.append(&mut self.pool, want);
        let taken_bytes = new.get(..taken).unwrap_or(&[]);
        c.rcv_nxt = c.rcv_nxt.wrapping_add(taken as u32);
        self.count(SpliceEvent::Buffered);
        // Read what was taken.
        let mut rest = taken_bytes;
        let mut decided = None;
        let mut expect = false;
        while !rest.is_empty() && decided.is_none() {
            let fed = c.reader.feed(rest);
            rest = rest.get(fed.consumed..).unwrap_or(&[]);
            match fed.event {
                Some(ReadEvent::HeadersDone { expect_continue }) => expect |= expect_continue,
                Some(ReadEvent::RequestDone { features }) => decided = Some(features),
                Some(ReadEvent::NotHttp) => decided = Some(None),
                None => {}
            }
        }
        c.parse_nxt = c.rcv_nxt.wrapping_sub(rest.len() as u32);
        let bound = taken < new.len();
        if decided.is_none() && bound {
            decided = Some(c.reader.features_so_far());
            self.count(if c.buf.len as usize >= self.limits.request_max_bytes {
                SpliceEvent::RequestBound
            } else {
                SpliceEvent::PoolBound
            });
        }
        if expect && !c.continue_sent && decided.is_none() {
            c.continue_sent = true;
            let window = self.read_window(&c);
            self.push(Self::to_client(
                &c,
                c.our_nxt,
                TcpFlags::ACK | TcpFlags::PSH,
                window,
                Payload::Continue,
            ));
            c.our_nxt = c.our_nxt.wrapping_add(CONTINUE.len() as u32);
            c.deadline_ns = c.last_ns.saturating_add(self.limits.retransmit_ns);
            self.count(SpliceEvent::ContinueSent);
        } else if expect && !c.continue_sent {
            // The body came with the headers: no 100 Continue is due.
            c.continue_sent = true;
        }
        self.store(slot, c);
        self.ack_client(slot);
        match decided {
            Some(features) => {
                // Keep-alive reading resumes after what this request
                // left unread in the buffer; pipelined bytes of the next
                // one are replayed but not classified.
                FromClient::Decide { slot, features }
            }
            None => FromClient::Consumed,
        }
    }

    /// The request of `slot` is decided: open the connection to `target`.
    pub fn connect(&mut self, slot: u32, target: Target, now_ns: u64) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        c.target = target;
        c.phase = Phase::Connecting;
        c.tries = 0;
        c.deadline_ns = now_ns.saturating_add(self.limits.retransmit_ns);
        let c = *c;
        self.count(SpliceEvent::Decided);
        self.send_syn(&c);
    }

    fn send_syn(&mut self, c: &Conn) {
        let mut e = Self::to_instance(c, c.client_isn, TcpFlags::SYN, Payload::None);
        e.ack = 0;
        e.window = u16::MAX;
        e.syn = Some(c.opts);
        self.push(e);
    }

    /// No decision could be made (no instance, no flow entry): the client
    /// is reset and the connection forgotten.
    pub fn abort(&mut self, slot: u32) {
        let Some(c) = self.conns.get(slot as usize).copied() else {
            return;
        };
        self.push(Self::to_client(
            &c,
            c.our_nxt,
            TcpFlags::RST | TcpFlags::ACK,
            0,
            Payload::None,
        ));
        if matches!(
            c.phase,
            Phase::Replaying | Phase::Spliced | Phase::Connecting
        ) {
            let mut e = Self::to_instance(
                &c,
                c.client_isn.wrapping_add(1).wrapping_add(c.replay_acked),
                TcpFlags::RST,
                Payload::None,
            );
            e.window = 0;
            if c.phase != Phase::Connecting {
                self.push(e);
            }
        }
        self.release(slot);
    }

    /// Forgets connection `slot` because its client port opened a new
    /// one: counted closed when both sides had finished, else aborted.
    pub fn forget(&mut self, slot: u32) {
        let Some(c) = self.conns.get(slot as usize) else {
            return;
        };
        self.count(if c.fin_client && c.fin_instance {
            SpliceEvent::Closed
        } else {
            SpliceEvent::ClientAborted
        });
        self.release(slot);
    }

    fn store(&mut self, slot: u32, c: Conn) {
        if let Some(m) = self.conns.get_mut(slot as usize) {
            *m = c;
        }
    }

    fn release(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if c.phase == Phase::Free {
            return;
        }
        let key = c.key;
        let mut buf = c.buf;
        c.phase = Phase::Free;
        c.buf = Buffer::EMPTY;
        buf.release(&mut self.pool);
        self.index.remove(&key);
        self.free.push(slot);
        self.publish_gauges();
    }

    /// Sends the replay from `replay_next` within the instance's window.
    fn pump(&mut self, slot: u32) {
        let Some(mut c) = self.conns.get(slot as usize).copied() else {
            return;
        };
        let mss = u32::from(c.inst_mss.min(c.opts.mss).max(64));
        let limit = c
            .replay_acked
            .saturating_add(c.inst_window.max(mss))
            .min(c.buf.len);
        while c.replay_next < limit && self.tx_len < self.tx.len() {
            let len = (limit - c.replay_next).min(mss);
            let seq = c.request_start().wrapping_add(c.replay_next);
            let mut e = Self::to_instance(
                &c,
                seq,
                TcpFlags::ACK | TcpFlags::PSH,
                Payload::Buffered {
                    slot,
                    generation: c.generation,
                    offset: c.replay_next,
                    len: len as u16,
                },
            );
            e.window = u16::MAX >> c.opts.wscale.unwrap_or(0).min(8);
            self.push(e);
            c.replay_next += len;
        }
        if c.buf.len == 0 {
            // Nothing to replay (cannot happen for a decided request, but
            // the handshake must still complete).
            let e = Self::to_instance(&c, c.request_start(), TcpFlags::ACK, Payload::None);
            self.push(e);
        }
        self.store(slot, c);
    }

    /// An instance segment of connection `slot`. In the forwarded case
    /// the frame's TCP header is translated in place.
    pub fn from_instance(
        &mut self,
        slot: u32,
        frame: &mut [u8],
        seg: &Segment,
        now_ns: u64,
    ) -> FromInstance {
        let Some(mut c) = self.conns.get(slot as usize).copied() else {
            return FromInstance::Forward;
        };
        c.last_ns = now_ns;
        match c.phase {
            Phase::Free | Phase::Reading => FromInstance::Consumed,
            Phase::Connecting => {
                if seg.has(TcpFlags::RST) {
                    self.count(SpliceEvent::InstanceRefused);
                    self.abort(slot);
                    return FromInstance::Consumed;
                }
                if !(seg.has(TcpFlags::SYN) && seg.has(TcpFlags::ACK))
                    || seg.ack != c.request_start()
                {
                    return FromInstance::Consumed;
                }
                let o = seg.syn_options(frame);
                c.inst_isn = seg.seq;
                c.inst_mss = o.mss;
                // Scaling is on only when both SYNs offered it.
                c.inst_wscale = match (c.opts.wscale, o.wscale) {
                    (Some(_), Some(s)) => s,
                    _ => 0,
                };
                // A SYN-ACK's window is never scaled.
                c.inst_window = u32::from(seg.window);
                c.delta = c.our_nxt.wrapping_sub(c.inst_isn.wrapping_add(1));
                c.phase = Phase::Replaying;
                c.tries = 0;
                c.deadline_ns = now_ns.saturating_add(self.limits.retransmit_ns);
                c.replay_next = 0;
                c.replay_acked = 0;
                self.store(slot, c);
                self.count(SpliceEvent::Connected);
                self.pump(slot);
                FromInstance::Consumed
            }
            Phase::Replaying => {
                if seg.has(TcpFlags::SYN) {
                    // Our ACK was lost: the instance repeats its SYN-ACK.
                    c.replay_next = c.replay_acked;
                    self.store(slot, c);
                    self.pump(slot);
                    return FromInstance::Consumed;
                }
                let replay_end = c.request_start().wrapping_add(c.buf.len);
                if seg.has(TcpFlags::ACK) {
                    let acked = seg.ack.wrapping_sub(c.request_start());
                    if acked <= c.buf.len && acked > c.replay_acked {
                        c.replay_acked = acked;
                        c.tries = 0;
                        c.deadline_ns = now_ns.saturating_add(self.limits.retransmit_ns);
                    } else if seq_lt(replay_end, seg.ack) {
                        // Past the replay: client data forwarded since.
                        c.replay_acked = c.buf.len;
                    }
                    c.inst_window = u32::from(seg.window) << c.inst_wscale;
                }
                let done = c.replay_acked >= c.buf.len;
                if done {
                    c.phase = Phase::Spliced;
                    c.buf.release(&mut self.pool);
                    self.count(SpliceEvent::Spliced);
                }
                self.store(slot, c);
                if !done {
                    self.pump(slot);
                } else {
                    self.publish_gauges();
                }
                let only_replay_ack = seg.payload_len == 0
                    && !seg.has(TcpFlags::FIN)
                    && !seg.has(TcpFlags::RST)
                    && !seq_lt(replay_end, seg.ack);
                if only_replay_ack {
                    // The appliance ACKed these bytes to the client
                    // already; repeats would read as duplicate ACKs.
                    return FromInstance::Consumed;
                }
                let Some(c) = self.conns.get(slot as usize).copied() else {
                    return FromInstance::Forward;
                };
                self.forward_to_client(slot, c, frame, seg)
            }
            Phase::Spliced => self.forward_to_client(slot, c, frame, seg),
        }
    }

    fn forward_to_client(
        &mut self,
        slot: u32,
        mut c: Conn,
        frame: &mut [u8],
        seg: &Segment,
    ) -> FromInstance {
        c.fin_instance |= seg.has(TcpFlags::FIN);
        self.translate_from_instance(&c, frame, seg);
        self.store(slot, c);
        if seg.has(TcpFlags::RST) {
            self.count(SpliceEvent::Closed);
            self.release(slot);
        }
        FromInstance::Forward
    }

    /// Keep-alive: reads client bytes in order after the first request.
    fn keep_reading(
        &mut self,
        c: &mut Conn,
        frame: &[u8],
        seg: &Segment,
    ) -> Option<Option<TokenFeatures>> {
        if seg.payload_len == 0 || c.reader.failed() {
            return None;
        }
        let end = seg.seq.wrapping_add(seg.payload_len);
        if !seq_lt(c.parse_nxt, end) {
            // Already read (a retransmission).
            return None;
        }
        if seq_lt(c.parse_nxt, seg.seq) {
            // After a gap: these bytes go on to the instance, which will
            // not ask for them again, so the reader would lose its place.
            // It stops; the connection's later requests keep the last
            // request's class.
            c.reader.abandon();
            self.count(SpliceEvent::ReadingLost);
            return None;
        }
        let skip = c.parse_nxt.wrapping_sub(seg.seq) as usize;
        let mut rest = seg.payload(frame).get(skip..).unwrap_or(&[]);
        c.parse_nxt = end;
        let mut completed = None;
        while !rest.is_empty() {
            let fed = c.reader.feed(rest);
            rest = rest.get(fed.consumed..).unwrap_or(&[]);
            if let Some(ReadEvent::RequestDone { features }) = fed.event {
                self.count(SpliceEvent::KeepAliveRequest);
                completed = Some(features);
            }
        }
        completed
    }

    /// Client→instance: ACK and SACK edges − delta.
    fn translate_from_client(&self, c: &Conn, frame: &mut [u8], seg: &Segment) {
        let Some(l4) = frame.get_mut(seg.l4..) else {
            return;
        };
        let Ok(mut t) = TcpPacket::new_checked(l4) else {
            return;
        };
        let mut sum = t.checksum();
        if seg.has(TcpFlags::ACK) {
            let new = seg.ack.wrapping_sub(c.delta);
            sum = update32(sum, seg.ack, new);
            t.set_ack(new);
        }
        let header_len = t.header_len();
        let l4 = t.into_inner();
        if let Some(opts) = l4.get_mut(20..header_len) {
            let mut edges = [(0usize, 0u32); 8];
            let mut n = 0;
            for (at, opt) in TcpOptions::new(opts) {
                if let TcpOption::Sack(blocks) = opt {
                    for (i, e) in blocks.chunks_exact(4).enumerate() {
                        if let (Some(slot), Ok(b)) = (edges.get_mut(n), <[u8; 4]>::try_from(e)) {
                            *slot = (at + 2 + 4 * i, u32::from_be_bytes(b));
                            n += 1;
                        }
                    }
                }
            }
            for &(at, old) in edges.iter().take(n) {
                let new = old.wrapping_sub(c.delta);
                // Options start at an even offset, edges at even offsets
                // within them only when `at` is even: patch by bytes.
                if let Some(b) = opts.get_mut(at..at + 4) {
                    b.copy_from_slice(&new.to_be_bytes());
                }
                sum = update_unaligned(sum, 20 + at, old, new);
            }
        }
        if let Some(Ok(mut t)) = frame.get_mut(seg.l4..).map(TcpPacket::new_checked) {
            t.set_checksum(sum);
        }
    }

    /// Instance→client: SEQ + delta, window rescaled.
    fn translate_from_instance(&self, c: &Conn, frame: &mut [u8], seg: &Segment) {
        let Some(l4) = frame.get_mut(seg.l4..) else {
            return;
        };
        let Ok(mut t) = TcpPacket::new_checked(l4) else {
            return;
        };
        let mut sum = t.checksum();
        let seq = seg.seq.wrapping_add(c.delta);
        sum = update32(sum, seg.seq, seq);
        t.set_seq(seq);
        let window = rescale(seg.window, c.inst_wscale, c.our_wscale());
        sum = checksum::update16(sum, seg.window, window);
        t.set_window(window);
        t.set_checksum(sum);
    }

    /// Ageing and timers: reading deadlines, SYN and replay
    /// retransmission, idle spliced connections, the 100 Continue's
    /// retransmission.
    pub fn expire(&mut self, now_ns: u64) {
        let n = self.conns.len();
        for _ in 0..SWEEP_BUDGET.min(n) {
            let slot = self.sweep as u32;
            self.sweep = (self.sweep + 1) % n;
            let Some(c) = self.conns.get(slot as usize).copied() else {
                continue;
            };
            match c.phase {
                Phase::Free => {}
                Phase::Reading => {
                    if now_ns.saturating_sub(c.created_ns) > self.limits.request_timeout_ns {
                        self.count(SpliceEvent::RequestTimeout);
                        self.abort(slot);
                    } else if c.continue_sent
                        && seq_lt(c.client_acked, c.our_nxt)
                        && now_ns > c.deadline_ns
                    {
                        let seq = c.our_nxt.wrapping_sub(CONTINUE.len() as u32);
                        self.push(Self::to_client(
                            &c,
                            seq,
                            TcpFlags::ACK | TcpFlags::PSH,
                            self.read_window(&c),
                            Payload::Continue,
                        ));
                        if let Some(c) = self.conns.get_mut(slot as usize) {
                            c.deadline_ns = now_ns.saturating_add(self.limits.retransmit_ns);
                        }
                    }
                }
                Phase::Connecting | Phase::Replaying if now_ns > c.deadline_ns => {
                    if c.tries >= self.limits.retransmit_tries {
                        self.count(SpliceEvent::RetransmitExhausted);
                        self.abort(slot);
                        continue;
                    }
                    self.count(SpliceEvent::Retransmit);
                    let tries = c.tries + 1;
                    let backoff = self.limits.retransmit_ns.saturating_mul(1 << tries.min(6));
                    if let Some(m) = self.conns.get_mut(slot as usize) {
                        m.tries = tries;
                        m.deadline_ns = now_ns.saturating_add(backoff);
                        m.replay_next = m.replay_acked;
                    }
                    if c.phase == Phase::Connecting {
                        self.send_syn(&c);
                    } else {
                        self.pump(slot);
                    }
                }
                Phase::Connecting | Phase::Replaying => {}
                Phase::Spliced => {
                    let closed = c.fin_client && c.fin_instance;
                    let idle = now_ns.saturating_sub(c.last_ns);
                    if idle > self.limits.idle_ns || (closed && idle > 1_000_000_000) {
                        self.count(if closed {
                            SpliceEvent::Closed
                        } else {
                            SpliceEvent::Expired
                        });
                        self.release(slot);
                    }
                }
            }
        }
    }

    /// Writes the next queued segment into `buf` (an Ethernet frame),
    /// or returns `None` when nothing is queued. A segment that does not
    /// fit in `buf`, or whose connection is gone, is skipped.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        while self.tx_len > 0 {
            let e = *self.tx.get(self.tx_head)?;
            self.tx_head = (self.tx_head + 1) % self.tx.len();
            self.tx_len -= 1;
            if let Some(len) = self.write(&e, buf) {
                self.count(SpliceEvent::Sent);
                return Some(Transmit {
                    len,
                    port: (!e.to_client).then_some(e.port),
                    band: e.band,
                });
            }
        }
        None
    }

    /// Segments queued.
    pub fn queued(&self) -> usize {
        self.tx_len
    }

    fn write(&self, e: &Emit, buf: &mut [u8]) -> Option<usize> {
        let mut opts = [TcpOptionRepr::Nop; 6];
        let mut n_opts = 0;
        if let Some(s) = e.syn {
            let mut add = |o| {
                if let Some(slot) = opts.get_mut(n_opts) {
                    *slot = o;
                    n_opts += 1;
                }
            };
            add(TcpOptionRepr::Mss(s.mss));
            if let Some(ws) = s.wscale {
                add(TcpOptionRepr::Nop);
                add(TcpOptionRepr::WindowScale(ws));
            }
            if s.sack {
                add(TcpOptionRepr::Nop);
                add(TcpOptionRepr::Nop);
                add(TcpOptionRepr::SackPermitted);
            }
        }
        let opts = opts.get(..n_opts)?;
        let opts_len = TcpOptionRepr::padded_len(opts);
        let payload_len = match e.payload {
            Payload::None => 0,
            Payload::Continue => CONTINUE.len(),
            Payload::Buffered { len, .. } => usize::from(len),
        };
        let tcp_len = 20 + opts_len + payload_len;
        let total = 14 + 20 + tcp_len;
        let frame = buf.get_mut(..total)?;
        // Payload first (it may be refused: a connection gone since).
        let payload = frame.get_mut(14 + 20 + 20 + opts_len..)?;
        match e.payload {
            Payload::None => {}
            Payload::Continue => payload.copy_from_slice(CONTINUE),
            Payload::Buffered {
                slot,
                generation,
                offset,
                ..
            } => {
                let c = self.conns.get(slot as usize)?;
                if c.generation != generation || c.phase == Phase::Free {
                    return None;
                }
                if !c.buf.read(&self.pool, offset, payload) {
                    return None;
                }
            }
        }
        let (eth, rest) = frame.split_at_mut(14);
        eth.get_mut(0..6)?.copy_from_slice(&e.dst_mac);
        eth.get_mut(6..12)?.copy_from_slice(&e.src_mac);
        eth.get_mut(12..14)?.copy_from_slice(&[0x08, 0x00]);
        let (ip, tcp) = rest.split_at_mut(20);
        let total_ip = u16::try_from(20 + tcp_len).ok()?;
        ip.copy_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        ip.get_mut(2..4)?.copy_from_slice(&total_ip.to_be_bytes());
        ip.get_mut(12..16)?.copy_from_slice(&e.src_ip);
        ip.get_mut(16..20)?.copy_from_slice(&e.dst_ip);
        let ip_sum = checksum::checksum(ip);
        ip.get_mut(10..12)?.copy_from_slice(&ip_sum.to_be_bytes());
        {
            let mut t = TcpPacket::new_unchecked(&mut *tcp);
            t.set_src_port(e.src_port);
            t.set_dst_port(e.dst_port);
            t.set_seq(e.seq);
            t.set_ack(e.ack);
            t.set_offset_flags(((20 + opts_len) / 4) as u8, e.flags);
            t.set_window(e.window);
            t.set_checksum(0);
            t.set_urgent(0);
        }
        TcpOptionRepr::emit_all(opts, tcp.get_mut(20..20 + opts_len)?).ok()?;
        let pseudo = PseudoHeader::V4 {
            src: e.src_ip.into(),
            dst: e.dst_ip.into(),
        };
        let sum = pseudo.checksum(IpProtocol::TCP, tcp);
        tcp.get_mut(16..18)?.copy_from_slice(&sum.to_be_bytes());
        Some(total)
    }
}

/// `window << from >> to`, at most 65535.
fn rescale(window: u16, from: u8, to: u8) -> u16 {
    let bytes = u64::from(window) << from.min(14);
    u16::try_from(bytes >> to.min(14)).unwrap_or(u16::MAX)
}

/// RFC 1624 for a 32-bit field at an even offset.
fn update32(sum: u16, old: u32, new: u32) -> u16 {
    let s = checksum::update16(sum, (old >> 16) as u16, (new >> 16) as u16);
    checksum::update16(s, old as u16, new as u16)
}

/// RFC 1624 for a 32-bit field at any offset of the TCP header: an odd
/// offset shifts its bytes across 16-bit words.
fn update_unaligned(sum: u16, at: usize, old: u32, new: u32) -> u16 {
    if at % 2 == 0 {
        return update32(sum, old, new);
    }
    // Bytes b0..b3 at an odd offset sit in words (x,b0) (b1,b2) (b3,y):
    // the changed part is b0 low, b1b2 whole, b3 high.
    let [o0, o1, o2, o3] = old.to_be_bytes();
    let [n0, n1, n2, n3] = new.to_be_bytes();
    let s = checksum::update16(sum, u16::from(o0), u16::from(n0));
    let s = checksum::update16(
        s,
        u16::from_be_bytes([o1, o2]),
        u16::from_be_bytes([n1, n2]),
    );
    checksum::update16(s, u16::from(o3) << 8, u16::from(n3) << 8)
}
