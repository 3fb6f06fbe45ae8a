//! Delayed binding through the engine, with frames: the cookie handshake,
//! buffering, the decision, the instance's handshake, the replay, and the
//! translation of both directions, with injected time.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use classifier::checksum::{checksum, PseudoHeader};
use classifier::tcp::{TcpFlags, TcpOption, TcpOptionRepr, TcpOptions, TcpPacket};
use classifier::{IpProtocol, TaskType, TokenFeatures};
use control::state::ControlState;
use control::thresholds::Thresholds;
use control::view::DataplaneView;
use steer::fragment::FragmentLimits;
use steer::infer::InferLimits;
use steer::splice::{SpliceLimits, ADVERTISED_WSCALE, CONTINUE};
use steer::stats::{SpliceEvent, SteerCounters};
use steer::{Engine, EngineConfig, Refusal, Verdict};

mod common;
use common::*;

const CLIENT: [u8; 4] = [10, 0, 1, 2];
const VIP: [u8; 4] = [10, 0, 100, 1];
const EDGE_IP: [u8; 4] = [10, 0, 2, 2];
const CENTRE_IP: [u8; 4] = [10, 0, 3, 2];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 2];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 9, 9];
const SPORT: u16 = 40000;
const ISN: u32 = 0xfff0_0000;
const INST_ISN: u32 = 77_000;

struct Seg<'a> {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    opts: &'a [TcpOptionRepr],
    payload: &'a [u8],
}

fn frame(s: &Seg) -> Vec<u8> {
    let opts_len = TcpOptionRepr::padded_len(s.opts);
    let tcp_len = 20 + opts_len + s.payload.len();
    let mut f = vec![0u8; 14 + 20 + tcp_len];
    f[0..6].copy_from_slice(&GW_MAC);
    f[6..12].copy_from_slice(&CLIENT_MAC);
    f[12..14].copy_from_slice(&[8, 0]);
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
    ip[12..16].copy_from_slice(&s.src);
    ip[16..20].copy_from_slice(&s.dst);
    let c = checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = &mut f[34..];
    {
        let mut t = TcpPacket::new_unchecked(&mut *tcp);
        t.set_src_port(s.sport);
        t.set_dst_port(s.dport);
        t.set_seq(s.seq);
        t.set_ack(s.ack);
        t.set_offset_flags(((20 + opts_len) / 4) as u8, s.flags);
        t.set_window(s.window);
    }
    TcpOptionRepr::emit_all(s.opts, &mut tcp[20..20 + opts_len]).unwrap();
    tcp[20 + opts_len..].copy_from_slice(s.payload);
    let sum = PseudoHeader::V4 {
        src: s.src.into(),
        dst: s.dst.into(),
    }
    .checksum(IpProtocol::TCP, tcp);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    f
}

/// A frame the appliance sent or forwarded, checked and read.
#[derive(Debug)]
struct Out {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    opts: Vec<TcpOption<'static>>,
    payload: Vec<u8>,
}

fn read(f: &[u8]) -> Out {
    let ip = &f[14..34];
    assert_eq!(checksum(ip), 0, "IPv4 header checksum");
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let src: [u8; 4] = ip[12..16].try_into().unwrap();
    let dst: [u8; 4] = ip[16..20].try_into().unwrap();
    let tcp = &f[34..14 + total];
    let sum = PseudoHeader::V4 {
        src: src.into(),
        dst: dst.into(),
    }
    .checksum(IpProtocol::TCP, tcp);
    assert_eq!(sum, 0, "TCP checksum");
    let t = TcpPacket::new_checked(tcp).unwrap();
    let opts: Vec<TcpOption<'static>> = TcpOptions::new(t.options())
        .map(|(_, o)| match o {
            TcpOption::Sack(b) => TcpOption::Sack(Box::leak(b.to_vec().into_boxed_slice())),
            TcpOption::Other { kind, .. } => TcpOption::Other { kind, value: &[] },
            TcpOption::Mss(m) => TcpOption::Mss(m),
            TcpOption::WindowScale(s) => TcpOption::WindowScale(s),
            TcpOption::SackPermitted => TcpOption::SackPermitted,
            TcpOption::Timestamps { tsval, tsecr } => TcpOption::Timestamps { tsval, tsecr },
        })
        .collect();
    Out {
        src,
        dst,
        sport: t.src_port(),
        dport: t.dst_port(),
        seq: t.seq(),
        ack: t.ack(),
        flags: t.flags(),
        window: t.window(),
        opts,
        payload: t.payload().to_vec(),
    }
}

struct Rig {
    engine: Engine,
    counters: Arc<SteerCounters>,
    view: DataplaneView,
    now: u64,
}

fn rig_with(limits: SpliceLimits) -> Rig {
    let table = table();
    let models = models(&table);
    let counters = Arc::new(SteerCounters::new(table.instances().len(), 4));
    let engine = Engine::new(
        Arc::new(table),
        EngineConfig {
            policy: steer::Policy::TokenAware,
            infer_http_ports: vec![8000],
            infer_limits: InferLimits::default(),
            flow_table_size: 64,
            flow_idle_ns: 60_000 * MS,
            seed: 42,
            rss_key: [0x5a; 40],
            fragments: FragmentLimits::default(),
            prefixes: steer::PrefixLimits::default(),
            splice: Some(limits),
        },
        models,
        Arc::clone(&counters),
    );
    Rig {
        engine,
        counters,
        view: ControlState::new(Thresholds::default()).view(1, 0),
        now: 1_000 * MS,
    }
}

fn rig() -> Rig {
    rig_with(SpliceLimits {
        connections: 4,
        buffer_bytes: 1024 * 1024,
        ..SpliceLimits::default()
    })
}

impl Rig {
    /// Feeds one frame; returns the verdict and the frame as it leaves.
    fn feed(&mut self, mut f: Vec<u8>, from_agents: bool) -> (Verdict, Vec<u8>) {
        let p = classifier::parse(&f).unwrap();
        let k = self.engine.key_of(&p, from_agents).expect("steerable");
        let v = self
            .engine
            .handle(&mut f, &p, k, from_agents, &self.view, self.now);
        (v, f)
    }

    fn sent(&mut self) -> Vec<(Option<u16>, Out)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(t) = self.engine.poll_transmit(&mut buf) {
            out.push((t.port, read(&buf[..t.len])));
        }
        out
    }

    fn client(&mut self, seq: u32, ack: u32, flags: TcpFlags, payload: &[u8]) -> Verdict {
        self.client_opts(seq, ack, flags, &[], payload).0
    }

    fn client_opts(
        &mut self,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        opts: &[TcpOptionRepr],
        payload: &[u8],
    ) -> (Verdict, Vec<u8>) {
        self.feed(
            frame(&Seg {
                src: CLIENT,
                dst: VIP,
                sport: SPORT,
                dport: 8000,
                seq,
                ack,
                flags,
                window: 502,
                opts,
                payload,
            }),
            true,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn instance(
        &mut self,
        from: [u8; 4],
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        window: u16,
        opts: &[TcpOptionRepr],
        payload: &[u8],
    ) -> (Verdict, Vec<u8>) {
        self.feed(
            frame(&Seg {
                src: from,
                dst: CLIENT,
                sport: 8000,
                dport: SPORT,
                seq,
                ack,
                flags,
                window,
                opts,
                payload,
            }),
            false,
        )
    }

    fn count(&self, e: SpliceEvent) -> u64 {
        self.counters.splice[e as usize].load(Relaxed)
    }

    /// SYN (Linux options, with timestamps) and the cookie SYN-ACK; the
    /// client's ACK. Returns the cookie.
    fn handshake(&mut self) -> u32 {
        let (v, _) = self.client_opts(
            ISN,
            0,
            TcpFlags::SYN,
            &[
                TcpOptionRepr::Mss(1460),
                TcpOptionRepr::SackPermitted,
                TcpOptionRepr::Timestamps { tsval: 9, tsecr: 0 },
                TcpOptionRepr::Nop,
                TcpOptionRepr::WindowScale(7),
            ],
            &[],
        );
        assert_eq!(v, Verdict::Consumed);
        let out = self.sent();
        assert_eq!(out.len(), 1);
        let (port, synack) = &out[0];
        assert_eq!(*port, None, "back towards the agents");
        assert_eq!(synack.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!((synack.src, synack.dst), (VIP, CLIENT));
        assert_eq!((synack.sport, synack.dport), (8000, SPORT));
        assert_eq!(synack.ack, ISN.wrapping_add(1));
        assert_eq!(
            synack.opts,
            vec![
                TcpOption::Mss(1460),
                TcpOption::WindowScale(ADVERTISED_WSCALE),
                TcpOption::SackPermitted
            ],
            "no timestamps offered"
        );
        let cookie = synack.seq;
        assert_eq!(self.engine.spliced_connections(), 0, "a SYN costs no state");
        let v = self.client(
            ISN.wrapping_add(1),
            cookie.wrapping_add(1),
            TcpFlags::ACK,
            &[],
        );
        assert_eq!(v, Verdict::Consumed);
        assert_eq!(self.engine.spliced_connections(), 1);
        cookie
    }
}

fn request(last_user: &str, extra: &str) -> (String, String) {
    request_with_system("You are terse.", last_user, extra)
}

fn request_with_system(system: &str, last_user: &str, extra: &str) -> (String, String) {
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"system","content":"{system}"}},{{"role":"user","content":"{last_user}"}}],"stream":true}}"#
    );
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: vip\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    (head, body)
}

const LONG: &str = "Write a Python function that implements a trie with insert, delete and prefix search, explain the complexity of each operation and add unit tests";

/// Splices one request sent as headers then body; returns (cookie, the
/// instance's address, the bytes replayed).
fn splice(r: &mut Rig, last_user: &str, extra: &str) -> (u32, [u8; 4], Vec<u8>) {
    splice_with_system(r, "You are terse.", last_user, extra)
}

/// [`splice`] with another system prompt.
fn splice_with_system(
    r: &mut Rig,
    system: &str,
    last_user: &str,
    extra: &str,
) -> (u32, [u8; 4], Vec<u8>) {
    let cookie = r.handshake();
    let (head, body) = request_with_system(system, last_user, extra);
    let mut seq = ISN.wrapping_add(1);
    let v = r.client(
        seq,
        cookie.wrapping_add(1),
        TcpFlags::ACK | TcpFlags::PSH,
        head.as_bytes(),
    );
    assert_eq!(v, Verdict::Consumed);
    seq = seq.wrapping_add(head.len() as u32);
    let out = r.sent();
    let mut our = cookie.wrapping_add(1);
    let expect = extra.contains("100-continue");
    if expect {
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].1.payload, CONTINUE);
        assert_eq!(out[0].1.seq, our);
        our = our.wrapping_add(CONTINUE.len() as u32);
    } else {
        assert_eq!(out.len(), 1, "{out:?}");
    }
    let ack = &out.last().unwrap().1;
    assert_eq!(ack.flags, TcpFlags::ACK);
    assert_eq!(ack.ack, seq, "the headers are ACKed at once");
    assert!(ack.payload.is_empty());
    let v = r.client(seq, our, TcpFlags::ACK | TcpFlags::PSH, body.as_bytes());
    assert_eq!(v, Verdict::Consumed);
    let out = r.sent();
    // The ACK of the body, then the SYN to the chosen instance.
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].1.ack, seq.wrapping_add(body.len() as u32));
    let (port, syn) = &out[1];
    assert!(port.is_some());
    assert_eq!(syn.flags, TcpFlags::SYN);
    assert_eq!(syn.seq, ISN, "the client's ISN");
    assert_eq!((syn.src, syn.sport, syn.dport), (CLIENT, SPORT, 8000));
    assert_eq!(
        syn.opts,
        vec![
            TcpOption::Mss(1460),
            TcpOption::WindowScale(7),
            TcpOption::SackPermitted
        ],
        "the client's options, no timestamps"
    );
    let inst = syn.dst;
    // The instance answers with its own ISN, MSS and window scale.
    let (v, _) = r.instance(
        inst,
        INST_ISN,
        ISN.wrapping_add(1),
        TcpFlags::SYN | TcpFlags::ACK,
        64240,
        &[
            TcpOptionRepr::Mss(1400),
            TcpOptionRepr::Nop,
            TcpOptionRepr::WindowScale(9),
            TcpOptionRepr::SackPermitted,
        ],
        &[],
    );
    assert_eq!(v, Verdict::Consumed);
    let replay = r.sent();
    let mut replayed = Vec::new();
    for (i, (port, s)) in replay.iter().enumerate() {
        assert!(port.is_some());
        assert_eq!(s.dst, inst);
        assert_eq!(s.ack, INST_ISN + 1);
        assert_eq!(
            s.seq,
            ISN.wrapping_add(1).wrapping_add(replayed.len() as u32),
            "segment {i}"
        );
        assert!(s.payload.len() <= 1400, "the instance's MSS");
        replayed.extend_from_slice(&s.payload);
    }
    assert_eq!(replayed, format!("{head}{body}").into_bytes());
    // The instance ACKs the whole request: the appliance keeps that ACK.
    let (v, _) = r.instance(
        inst,
        INST_ISN + 1,
        ISN.wrapping_add(1).wrapping_add(replayed.len() as u32),
        TcpFlags::ACK,
        500,
        &[],
        &[],
    );
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(r.count(SpliceEvent::Spliced), 1);
    (cookie, inst, replayed)
}

#[test]
fn a_short_command_is_read_whole_and_goes_to_the_edge_and_the_connections_are_translated() {
    let mut r = rig();
    let (cookie, inst, replayed) = splice(&mut r, "turn on the light", "");
    assert_eq!(inst, EDGE_IP);
    let delta = cookie.wrapping_sub(INST_ISN);
    // The answer: seq + delta, window 500 << 9 >> 7, from the VIP.
    let (v, f) = r.instance(
        inst,
        INST_ISN + 1,
        ISN.wrapping_add(1 + replayed.len() as u32),
        TcpFlags::ACK | TcpFlags::PSH,
        500,
        &[],
        b"HTTP/1.1 200 OK\r\n\r\n",
    );
    assert!(matches!(v, Verdict::Send { port: None, .. }), "{v:?}");
    let o = read(&f);
    assert_eq!((o.src, o.dst), (VIP, CLIENT));
    assert_eq!(o.seq, INST_ISN.wrapping_add(1).wrapping_add(delta));
    assert_eq!(o.seq, cookie.wrapping_add(1));
    assert_eq!(o.window, 2000);
    // The client's ACK and SACK block: − delta, to the edge.
    let sack_l = cookie.wrapping_add(30);
    let sack_r = cookie.wrapping_add(40);
    let (v, f) = r.client_opts(
        ISN.wrapping_add(1 + replayed.len() as u32),
        cookie.wrapping_add(20),
        TcpFlags::ACK,
        &[],
        &[],
    );
    assert!(matches!(v, Verdict::Send { port: Some(_), .. }));
    let o = read(&f);
    assert_eq!(o.dst, EDGE_IP);
    assert_eq!(o.ack, INST_ISN + 20);
    // With a SACK block (odd and even offsets both patched right).
    for lead in [0usize, 1] {
        let mut opts = vec![1u8; lead];
        opts.extend_from_slice(&[5, 10]);
        opts.extend_from_slice(&sack_l.to_be_bytes());
        opts.extend_from_slice(&sack_r.to_be_bytes());
        while opts.len() % 4 != 0 {
            opts.push(0);
        }
        let mut f = frame(&Seg {
            src: CLIENT,
            dst: VIP,
            sport: SPORT,
            dport: 8000,
            seq: ISN.wrapping_add(1 + replayed.len() as u32),
            ack: cookie.wrapping_add(20),
            flags: TcpFlags::ACK,
            window: 502,
            opts: &[],
            payload: &[],
        });
        // Splice the raw option bytes in and fix lengths and checksums.
        f.splice(54..54, opts.iter().copied());
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[46] = (((20 + opts.len()) / 4) as u8) << 4;
        f[50..52].copy_from_slice(&[0, 0]);
        let sum = PseudoHeader::V4 {
            src: CLIENT.into(),
            dst: VIP.into(),
        }
        .checksum(IpProtocol::TCP, &f[34..]);
        f[50..52].copy_from_slice(&sum.to_be_bytes());
        let (v, f) = r.feed(f, true);
        assert!(matches!(v, Verdict::Send { .. }));
        let o = read(&f);
        let edges: Vec<u8> = [sack_l.wrapping_sub(delta), sack_r.wrapping_sub(delta)]
            .iter()
            .flat_map(|e| e.to_be_bytes())
            .collect();
        assert_eq!(
            o.opts,
            vec![TcpOption::Sack(Box::leak(edges.into_boxed_slice()))],
            "lead {lead}"
        );
    }
    // Counted in its class: interactive.
    let control = TokenFeatures {
        prompt_tokens: 40,
        output_tokens: 20,
        task: TaskType::ImmediateControl,
        urgency: TaskType::ImmediateControl.default_urgency(),
        explicit_urgency: false,
        prefix: None,
    };
    let class = steer::TrafficClass::of(&control, Thresholds::default().short_task_tokens);
    assert!(class.is_interactive());
    let chosen = r.counters.chosen[usize::from(EDGE) * steer::TrafficClass::COUNT + class as usize]
        .load(Relaxed);
    assert_eq!(chosen, 1);
    assert_eq!(r.count(SpliceEvent::Accepted), 1);
    assert_eq!(r.count(SpliceEvent::Decided), 1);
}

#[test]
fn a_long_code_prompt_goes_to_the_centre() {
    let mut r = rig();
    let (_, inst, _) = splice(&mut r, LONG, "");
    assert_eq!(inst, CENTRE_IP);
}

#[test]
fn a_request_s_long_system_prompt_read_whole_is_its_shared_prefix() {
    // The official SDK sends no TLV: the prefix comes from the body
    // (steer::body_prefix) and is recorded for the chosen instance, as a
    // layout-2 TLV's would be.
    let mut r = rig();
    let system =
        "You are the operations assistant of a smart home; answer in one sentence. ".repeat(8);
    let (_, inst, _) = splice_with_system(&mut r, &system, LONG, "");
    assert_eq!(inst, CENTRE_IP);
    assert_eq!(
        r.engine.prefixes().len(),
        1,
        "one (instance, prefix) recorded"
    );
    // A system prompt under one KV block names no prefix.
    let mut r = rig();
    splice(&mut r, LONG, "");
    assert!(r.engine.prefixes().is_empty());
}

#[test]
fn expect_100_continue_is_answered_and_counted_in_the_sequence_space() {
    let mut r = rig();
    let (cookie, inst, replayed) = splice(&mut r, "turn on the light", "Expect: 100-continue\r\n");
    assert_eq!(inst, EDGE_IP);
    assert_eq!(r.count(SpliceEvent::ContinueSent), 1);
    let (_, f) = r.instance(
        inst,
        INST_ISN + 1,
        ISN.wrapping_add(1 + replayed.len() as u32),
        TcpFlags::ACK,
        500,
        &[],
        b"HTTP/1.1 200 OK\r\n\r\n",
    );
    // The instance's first byte follows the appliance's 100 Continue.
    assert_eq!(read(&f).seq, cookie.wrapping_add(1 + CONTINUE.len() as u32));
}

#[test]
fn keep_alive_requests_are_each_classified_on_the_same_instance() {
    let mut r = rig();
    let (cookie, inst, replayed) = splice(&mut r, "turn on the light", "");
    let mut seq = ISN.wrapping_add(1 + replayed.len() as u32);
    let (head, body) = request(LONG, "");
    let next = format!("{head}{body}");
    let (v, f) = r.client_opts(
        seq,
        cookie.wrapping_add(1),
        TcpFlags::ACK | TcpFlags::PSH,
        &[],
        next.as_bytes(),
    );
    assert!(matches!(v, Verdict::Send { .. }), "{v:?}");
    assert_eq!(read(&f).dst, inst, "the instance cannot change");
    seq = seq.wrapping_add(next.len() as u32);
    let _ = seq;
    assert_eq!(r.count(SpliceEvent::KeepAliveRequest), 1);
    let steer::infer::Inference::Inferred(long) = steer::infer::infer_http(
        next.as_bytes(),
        &InferLimits {
            max_scan_bytes: 65536,
        },
    ) else {
        panic!("inferable");
    };
    let long_class =
        steer::TrafficClass::of(&long.features, Thresholds::default().short_task_tokens);
    assert_ne!(
        long_class,
        steer::TrafficClass::of(&short(), Thresholds::default().short_task_tokens)
    );
    let chosen = r.counters.chosen
        [usize::from(EDGE) * steer::TrafficClass::COUNT + long_class as usize]
        .load(Relaxed);
    assert_eq!(chosen, 1, "the second request counted in its own class");
}

#[test]
fn out_of_order_data_is_refused_and_duplicates_re_acked() {
    let mut r = rig();
    let cookie = r.handshake();
    let (head, _) = request("turn on the light", "");
    let v = r.client(
        ISN.wrapping_add(11),
        cookie.wrapping_add(1),
        TcpFlags::ACK,
        &head.as_bytes()[10..],
    );
    assert_eq!(v, Verdict::Drop(Refusal::SpliceRefused));
    assert_eq!(r.count(SpliceEvent::OutOfOrder), 1);
    let dup_ack = r.sent();
    assert_eq!(dup_ack[0].1.ack, ISN.wrapping_add(1));
    let v = r.client(
        ISN.wrapping_add(1),
        cookie.wrapping_add(1),
        TcpFlags::ACK,
        &head.as_bytes()[..10],
    );
    assert_eq!(v, Verdict::Consumed);
    let v = r.client(
        ISN.wrapping_add(1),
        cookie.wrapping_add(1),
        TcpFlags::ACK,
        &head.as_bytes()[..10],
    );
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(r.count(SpliceEvent::Duplicate), 1);
    let acks = r.sent();
    assert!(acks.iter().all(|(_, a)| a.ack == ISN.wrapping_add(11)));
}

#[test]
fn forged_cookies_are_reset_and_keep_no_state() {
    let mut r = rig();
    let v = r.client(ISN.wrapping_add(1), 12345, TcpFlags::ACK, b"POST");
    assert_eq!(v, Verdict::Consumed);
    assert_eq!(r.count(SpliceEvent::CookieInvalid), 1);
    let rst = r.sent();
    assert_eq!(rst.len(), 1);
    assert!(rst[0].1.flags.contains(TcpFlags::RST));
    assert_eq!(rst[0].1.seq, 12345);
    assert_eq!(r.engine.spliced_connections(), 0);
}

#[test]
fn a_syn_flood_costs_nothing_and_a_full_table_resets() {
    let mut r = rig();
    for i in 0..1000u32 {
        let mut f = frame(&Seg {
            src: [10, 0, (i >> 8) as u8, i as u8],
            dst: VIP,
            sport: 1000 + i as u16,
            dport: 8000,
            seq: i,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 100,
            opts: &[],
            payload: &[],
        });
        let p = classifier::parse(&f).unwrap();
        let k = r.engine.key_of(&p, true).unwrap();
        assert_eq!(
            r.engine.handle(&mut f, &p, k, true, &r.view, r.now),
            Verdict::Consumed
        );
        r.sent();
    }
    assert_eq!(r.engine.spliced_connections(), 0);
    assert_eq!(r.engine.flows(), 0);
    assert_eq!(r.count(SpliceEvent::SynAnswered), 1000);
    // Four slots: the fifth accepted handshake is reset.
    for port in 0..5u16 {
        let mut syn = frame(&Seg {
            src: CLIENT,
            dst: VIP,
            sport: 2000 + port,
            dport: 8000,
            seq: ISN,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 100,
            opts: &[],
            payload: &[],
        });
        let p = classifier::parse(&syn).unwrap();
        let k = r.engine.key_of(&p, true).unwrap();
        r.engine.handle(&mut syn, &p, k, true, &r.view, r.now);
        let cookie = r.sent()[0].1.seq;
        let mut ack = frame(&Seg {
            src: CLIENT,
            dst: VIP,
            sport: 2000 + port,
            dport: 8000,
            seq: ISN.wrapping_add(1),
            ack: cookie.wrapping_add(1),
            flags: TcpFlags::ACK,
            window: 100,
            opts: &[],
            payload: &[],
        });
        let p = classifier::parse(&ack).unwrap();
        let k = r.engine.key_of(&p, true).unwrap();
        assert_eq!(
            r.engine.handle(&mut ack, &p, k, true, &r.view, r.now),
            Verdict::Consumed
        );
        let out = r.sent();
        if port < 4 {
            assert!(out.is_empty());
        } else {
            assert!(out[0].1.flags.contains(TcpFlags::RST));
        }
    }
    assert_eq!(r.count(SpliceEvent::TableFull), 1);
    assert_eq!(r.engine.spliced_connections(), 4);
}

#[test]
fn a_stalled_client_is_reset_after_the_request_timeout() {
    let mut r = rig();
    let cookie = r.handshake();
    r.client(
        ISN.wrapping_add(1),
        cookie.wrapping_add(1),
        TcpFlags::ACK,
        b"P",
    );
    r.sent();
    r.now += 4_000 * MS;
    r.engine.expire(r.now);
    assert_eq!(r.engine.spliced_connections(), 1);
    r.now += 1_001 * MS;
    r.engine.expire(r.now);
    assert_eq!(r.engine.spliced_connections(), 0);
    assert_eq!(r.count(SpliceEvent::RequestTimeout), 1);
    let rst = r.sent();
    assert!(rst[0].1.flags.contains(TcpFlags::RST));
    assert_eq!(rst[0].1.dst, CLIENT);
    assert_eq!(r.counters.splice_buffer_bytes.load(Relaxed), 0);
}

#[test]
fn an_unanswered_syn_is_retried_then_both_sides_reset() {
    let mut r = rig_with(SpliceLimits {
        connections: 2,
        buffer_bytes: 65536,
        retransmit_tries: 2,
        ..SpliceLimits::default()
    });
    let cookie = r.handshake();
    let (head, body) = request("turn on the light", "");
    let whole = format!("{head}{body}");
    r.client(
        ISN.wrapping_add(1),
        cookie.wrapping_add(1),
        TcpFlags::ACK,
        whole.as_bytes(),
    );
    let out = r.sent();
    assert_eq!(out.last().unwrap().1.flags, TcpFlags::SYN);
    let mut syns = 1;
    for _ in 0..10 {
        r.now += 2_000 * MS;
        r.engine.expire(r.now);
        for (_, s) in r.sent() {
            if s.flags == TcpFlags::SYN {
                syns += 1;
            }
        }
    }
    assert_eq!(syns, 3);
    assert_eq!(r.count(SpliceEvent::RetransmitExhausted), 1);
    assert_eq!(r.engine.spliced_connections(), 0);
}

#[test]
fn a_request_over_the_bound_is_decided_on_what_was_read() {
    let mut r = rig_with(SpliceLimits {
        connections: 2,
        buffer_bytes: 65536,
        request_max_bytes: 300,
        ..SpliceLimits::default()
    });
    let cookie = r.handshake();
    let (head, body) = request(LONG, "");
    let whole = format!("{head}{body}");
    assert!(whole.len() > 300);
    r.client(
        ISN.wrapping_add(1),
        cookie.wrapping_add(1),
        TcpFlags::ACK,
        whole.as_bytes(),
    );
    let out = r.sent();
    assert_eq!(
        out[0].1.ack,
        ISN.wrapping_add(301),
        "only the bound is taken"
    );
    assert_eq!(out.last().unwrap().1.flags, TcpFlags::SYN);
    assert_eq!(r.count(SpliceEvent::RequestBound), 1);
}

/// A SYN from the client carrying `id` in a 12-byte IPv4 token-feature
/// option.
fn syn_with_tlv(id: classifier::token_feature::TokenFeatureId) -> Vec<u8> {
    let mut f = frame(&Seg {
        src: CLIENT,
        dst: VIP,
        sport: SPORT,
        dport: 8000,
        seq: ISN,
        ack: 0,
        flags: TcpFlags::SYN,
        window: 100,
        opts: &[],
        payload: &[],
    });
    let repr = classifier::token_feature_tlv::TokenFeatureTlvRepr {
        directed: false,
        feature_id: id,
    };
    let mut opt = [0u8; 12];
    classifier::token_feature_tlv::emit_ipv4_option(&repr, &mut opt).unwrap();
    f.splice(34..34, opt);
    f[14] = 0x48;
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&f[14..46]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn a_syn_with_a_tlv_is_decided_at_the_syn() {
    let mut r = rig();
    let f = syn_with_tlv(classifier::token_feature::encode(&short()));
    let (v, _) = r.feed(f, true);
    assert!(matches!(v, Verdict::Send { .. }), "{v:?}");
    assert_eq!(r.count(SpliceEvent::SynAnswered), 0);
    let _ = Ipv4Addr::LOCALHOST;
}

/// A malformed TLV is treated exactly as no TLV (wire-format §5.5): its
/// SYN is answered by the appliance, as a TLV-less one is, and the TLV is
/// counted under its code.
#[test]
fn a_syn_with_a_malformed_tlv_is_spliced_and_counted() {
    let mut r = rig();
    // Layout version 15: no such layout.
    let id = classifier::token_feature::TokenFeatureId(0xF000_0000_0000_0000);
    let (v, _) = r.feed(syn_with_tlv(id), true);
    assert!(matches!(v, Verdict::Consumed), "{v:?}");
    assert_eq!(r.count(SpliceEvent::SynAnswered), 1);
    let sent = r.sent();
    assert_eq!(sent.len(), 1, "one SYN-ACK");
    assert_eq!(
        sent[0].1.flags,
        TcpFlags::SYN | TcpFlags::ACK,
        "the VIP answers the SYN"
    );
    let version = classifier::TlvMalformed::UnknownVersion(15).index();
    assert_eq!(r.counters.tlv_malformed[version].load(Relaxed), 1);
}

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// A whole spliced connection, after a first one warmed everything up:
/// handshake, request, decision, the instance's handshake, replay, answer
/// and reset, with every segment the appliance builds written out. Nothing
/// on that path allocates.
#[test]
fn the_splice_path_does_not_allocate() {
    let mut r = rig();
    let (head, body) = request("turn on the light", "");
    let whole = format!("{head}{body}");
    let seg = |src, dst, sport, dport, seq, ack, flags, payload: &[u8]| {
        frame(&Seg {
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            flags,
            window: 500,
            opts: &[TcpOptionRepr::Mss(1460)],
            payload,
        })
    };
    let start = ISN.wrapping_add(1);
    let end = start.wrapping_add(whole.len() as u32);
    let syn = seg(CLIENT, VIP, SPORT, 8000, ISN, 0, TcpFlags::SYN, &[]);
    let ack = seg(
        CLIENT,
        VIP,
        SPORT,
        8000,
        start,
        0,
        TcpFlags::ACK | TcpFlags::PSH,
        whole.as_bytes(),
    );
    let synack = seg(
        EDGE_IP,
        CLIENT,
        8000,
        SPORT,
        INST_ISN,
        start,
        TcpFlags::SYN | TcpFlags::ACK,
        &[],
    );
    let acked = seg(
        EDGE_IP,
        CLIENT,
        8000,
        SPORT,
        INST_ISN + 1,
        end,
        TcpFlags::ACK,
        &[],
    );
    let answer = seg(
        EDGE_IP,
        CLIENT,
        8000,
        SPORT,
        INST_ISN + 1,
        end,
        TcpFlags::ACK,
        b"HTTP/1.1 200 OK\r\n\r\n",
    );
    let rst = seg(CLIENT, VIP, SPORT, 8000, end, 0, TcpFlags::RST, &[]);
    let one =
        |r: &mut Rig, f: &[u8], from_agents: bool, cookie: Option<u32>| -> (Verdict, usize, u32) {
            let mut s = [0u8; 2048];
            let frame = &mut s[..f.len()];
            frame.copy_from_slice(f);
            if let Some(c) = cookie {
                // The client acknowledges the cookie (the engine does not
                // check TCP checksums).
                frame[42..46].copy_from_slice(&c.wrapping_add(1).to_be_bytes());
            }
            let p = classifier::parse(frame).unwrap();
            let k = r.engine.key_of(&p, from_agents).unwrap();
            let v = r.engine.handle(frame, &p, k, from_agents, &r.view, r.now);
            let mut out = [0u8; 2048];
            let (mut n, mut first_seq) = (0, 0);
            while let Some(t) = r.engine.poll_transmit(&mut out) {
                if n == 0 {
                    first_seq = u32::from_be_bytes([out[38], out[39], out[40], out[41]]);
                }
                n += 1;
                let _ = t;
            }
            (v, n, first_seq)
        };
    let connection = |r: &mut Rig| {
        let (v, n, cookie) = one(r, &syn, true, None);
        assert_eq!((v, n), (Verdict::Consumed, 1));
        let (v, n, _) = one(r, &ack, true, Some(cookie));
        assert_eq!((v, n), (Verdict::Consumed, 2), "ACK and SYN");
        let (v, n, _) = one(r, &synack, false, None);
        assert_eq!((v, n), (Verdict::Consumed, 1), "the replay");
        assert_eq!(one(r, &acked, false, None).0, Verdict::Consumed);
        assert!(matches!(
            one(r, &answer, false, None).0,
            Verdict::Send { .. }
        ));
        assert!(matches!(one(r, &rst, true, None).0, Verdict::Send { .. }));
        r.now += 10 * MS;
        r.engine.expire(r.now);
        assert_eq!(r.engine.spliced_connections(), 0);
    };
    connection(&mut r);
    let n = counting_alloc::allocations_during(|| {
        for _ in 0..20 {
            connection(&mut r);
        }
    });
    assert_eq!(n, 0, "the splice path allocated {n} times");
    assert_eq!(r.count(SpliceEvent::Spliced), 21);
}

/// A request larger than the instance's window is replayed window by
/// window as the instance acknowledges it, and from the last acknowledged
/// byte again when an acknowledgement does not come in time.
#[test]
fn a_large_replay_follows_the_instance_window_and_is_retransmitted() {
    let mut r = rig();
    let cookie = r.handshake();
    let filler = "x".repeat(100_000);
    let (head, body) = request(&format!("turn on the light {filler}"), "");
    let whole = format!("{head}{body}").into_bytes();
    let mut seq = ISN.wrapping_add(1);
    for piece in whole.chunks(1400) {
        assert_eq!(
            r.client(seq, cookie.wrapping_add(1), TcpFlags::ACK, piece),
            Verdict::Consumed
        );
        seq = seq.wrapping_add(piece.len() as u32);
    }
    let syn = r
        .sent()
        .into_iter()
        .find(|(_, s)| s.flags == TcpFlags::SYN)
        .expect("a SYN");
    let inst = syn.1.dst;
    let (v, _) = r.instance(
        inst,
        INST_ISN,
        ISN.wrapping_add(1),
        TcpFlags::SYN | TcpFlags::ACK,
        20_000,
        &[TcpOptionRepr::Mss(1000)],
        &[],
    );
    assert_eq!(v, Verdict::Consumed);
    let first: usize = r.sent().iter().map(|(_, s)| s.payload.len()).sum();
    assert_eq!(first, 20_000, "one window (the SYN-ACK's, unscaled)");
    // Nothing acknowledged: after the timeout, from the start again.
    r.now += 300 * MS;
    r.engine.expire(r.now);
    let again = r.sent();
    assert_eq!(again[0].1.seq, ISN.wrapping_add(1));
    assert_eq!(r.count(SpliceEvent::Retransmit), 1);
    // Acknowledged window by window to the end.
    let mut acked = 0usize;
    while acked < whole.len() {
        acked = (acked + 20_000).min(whole.len());
        let (v, _) = r.instance(
            inst,
            INST_ISN + 1,
            ISN.wrapping_add(1 + acked as u32),
            TcpFlags::ACK,
            20_000,
            &[],
            &[],
        );
        assert_eq!(v, Verdict::Consumed);
        let out = r.sent();
        if acked < whole.len() {
            let next = out.first().expect("the next window");
            assert_eq!(next.1.seq, ISN.wrapping_add(1 + acked as u32));
        }
    }
    assert_eq!(r.count(SpliceEvent::Spliced), 1);
    assert_eq!(
        r.counters.splice_buffer_bytes.load(Relaxed),
        0,
        "the buffer is freed once acknowledged"
    );
}

#[test]
fn a_client_that_closes_before_its_request_is_read_is_reset_and_forgotten() {
    let mut r = rig();
    let cookie = r.handshake();
    let v = r.client(
        ISN.wrapping_add(1),
        cookie.wrapping_add(1),
        TcpFlags::ACK | TcpFlags::FIN,
        &[],
    );
    assert_eq!(v, Verdict::Consumed);
    assert!(r.sent()[0].1.flags.contains(TcpFlags::RST));
    assert_eq!(r.engine.spliced_connections(), 0);
    assert_eq!(r.count(SpliceEvent::ClientAborted), 1);
}

#[test]
fn a_new_syn_on_a_closed_spliced_port_is_spliced_afresh_at_once() {
    let mut r = rig();
    let (cookie, inst, replayed) = splice(&mut r, "turn on the light", "");
    let end = ISN.wrapping_add(1 + replayed.len() as u32);
    let fin = TcpFlags::FIN | TcpFlags::ACK;
    let (v, _) = r.instance(inst, INST_ISN + 1, end, fin, 500, &[], &[]);
    assert!(matches!(v, Verdict::Send { .. }));
    let v = r.client(end, cookie.wrapping_add(2), fin, &[]);
    assert!(matches!(v, Verdict::Send { .. }));
    r.sent();
    // At once, not after the linger: a SYN from the same port.
    let (v, _) = r.client_opts(ISN.wrapping_add(99_999), 0, TcpFlags::SYN, &[], &[]);
    assert_eq!(v, Verdict::Consumed);
    let out = r.sent();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(out[0].1.ack, ISN.wrapping_add(100_000));
    assert_eq!(r.count(SpliceEvent::Closed), 1);
    assert_eq!(r.engine.spliced_connections(), 0);
}
