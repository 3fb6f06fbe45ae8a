//! The agent workload's opt-in options: `--tlv` and `--responses`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use classifier::tcp::{TcpFlags, TcpPacket};
use classifier::token_feature::TaskType;
use classifier::token_feature_tlv::{find_token_feature, TlvLookup};
use classifier::{parse, FlowKey, IpProtocol, L3Kind};
use pktgen::pcap::{self, TsResolution};
use pktgen::verify::check_frame;
use pktgen::workload::agent::{
    generate_with, request_features, ttft_ns, AgentOptions, TlvMode, SERVER_PORT, VIP_V6,
};
use pktgen::workload::text::CONTROL_COMMANDS;
use pktgen::workload::{generate, WorkloadConfig, WorkloadKind};
use pktgen::Packet;

fn cfg(seed: u64, packets: usize) -> WorkloadConfig {
    WorkloadConfig {
        seed,
        packets,
        ..WorkloadConfig::default()
    }
}

/// FNV-1a over a file's bytes.
fn fnv1a(path: &Path) -> u64 {
    std::fs::read(path)
        .unwrap()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// The pcaps `pktgen write` produced before the options existed (hashes of
/// files written by the generator as it was), so the default stays
/// byte-identical for everyone whose tests replay these workloads.
#[test]
fn default_output_is_byte_identical_to_before_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            WorkloadKind::Agent,
            1,
            3000,
            1_000_000,
            0x3748_385e_af22_91ec_u64,
        ),
        (
            WorkloadKind::Agent,
            7,
            3000,
            1_000_000,
            0x52b7_d789_5057_803a,
        ),
        (WorkloadKind::Agent, 5, 2000, 5_000, 0x5b11_8248_343f_8c5f),
        (WorkloadKind::Mix, 3, 2000, 1_000_000, 0x5087_1aaa_0244_a626),
    ];
    for (kind, seed, packets, max_flow_bytes, want) in cases {
        let c = WorkloadConfig {
            seed,
            packets,
            max_flow_bytes,
        };
        let pkts = generate(kind, &c).unwrap();
        let path = dir.path().join(format!("{kind}-{seed}.pcap"));
        pcap::write_file(&path, TsResolution::Micro, &pkts).unwrap();
        assert_eq!(fnv1a(&path), want, "{kind} seed {seed} changed");
        if kind == WorkloadKind::Agent {
            assert_eq!(
                generate_with(&c, &AgentOptions::default()).unwrap(),
                pkts,
                "default options differ from generate()"
            );
        }
    }
}

/// A request: its 5-tuple and which use of the 5-tuple it is (agents pick
/// source ports at random, so a capture can reuse one).
type Req = (FlowKey, usize);

/// Whether `p` opens a new request on its 5-tuple: a TCP SYN, or a UDP
/// datagram starting an HTTP request.
fn opens_request(pp: &classifier::ParsedPacket, frame: &[u8]) -> bool {
    if pp.ip_protocol == Some(IpProtocol::TCP) {
        let f = TcpPacket::new_checked(pp.l4(frame)).unwrap().flags();
        f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK)
    } else {
        pp.payload(frame).starts_with(b"POST ")
    }
}

/// Numbers the uses of each request 5-tuple.
#[derive(Default)]
struct Uses(HashMap<FlowKey, usize>);

impl Uses {
    /// The request a client → server packet belongs to.
    fn of(&mut self, pp: &classifier::ParsedPacket, frame: &[u8]) -> Req {
        let key = pp.flow.unwrap();
        let n = self.0.entry(key).or_insert(0);
        if opens_request(pp, frame) {
            *n += 1;
        }
        (key, *n)
    }
}

/// Client → server payload of every request, in time order, with the first
/// packet's time.
fn requests(pkts: &[Packet]) -> HashMap<Req, (u64, Vec<u8>)> {
    let mut flows: HashMap<Req, (u64, Vec<u8>)> = HashMap::new();
    let mut uses = Uses::default();
    for p in pkts {
        let pp = parse(&p.data).unwrap();
        if pp.flow.unwrap().dst_port == SERVER_PORT {
            let e = flows
                .entry(uses.of(&pp, &p.data))
                .or_insert((p.ts_ns, Vec::new()));
            e.1.extend_from_slice(pp.payload(&p.data));
        }
    }
    flows
}

fn check_tlv(mode: TlvMode, responses: bool) {
    let opts = AgentOptions {
        tlv: mode,
        responses,
        hosts: None,
    };
    let pkts = generate_with(&cfg(11, 4000), &opts).unwrap();
    assert_eq!(pkts.len(), 4000);
    let (mut v4, mut v6) = (0, 0);
    let mut ids = HashMap::new();
    let mut uses = Uses::default();
    let mut last_ts = 0;
    for (i, p) in pkts.iter().enumerate() {
        let c = check_frame(&p.data);
        assert!(c.is_clean(), "{mode} packet {i}: {c:?}");
        assert_eq!(c.l4_checksum, Some(true), "{mode} packet {i}");
        assert!(p.data.len() <= 1514, "{mode} packet {i}: {}", p.data.len());
        assert!(p.ts_ns >= last_ts, "{mode} packet {i} goes back in time");
        last_ts = p.ts_ns;
        let pp = c.parsed.unwrap();
        let key = pp.flow.unwrap();
        let lookup = find_token_feature(&p.data, &pp);
        if key.src_port == SERVER_PORT {
            assert_eq!(lookup, TlvLookup::Absent, "{mode} response {i}");
            continue;
        }
        match pp.l3_kind {
            L3Kind::Ipv4 => v4 += 1,
            L3Kind::Ipv6 => {
                assert_eq!(key.dst_ip(), std::net::IpAddr::V6(VIP_V6));
                v6 += 1;
            }
            k => panic!("{mode} packet {i}: {k:?}"),
        }
        let TlvLookup::Present { directed, id } = lookup else {
            panic!("{mode} packet {i}: {lookup:?}");
        };
        assert!(!directed);
        // Every packet of a request carries the same ID.
        let r = uses.of(&pp, &p.data);
        assert_eq!(*ids.entry(r).or_insert(id), id, "{mode} packet {i}");
    }
    match mode {
        TlvMode::Ipv4 => assert_eq!(v6, 0),
        TlvMode::Ipv6 => assert_eq!(v4, 0),
        _ => assert!(v4 > 500 && v6 > 500, "v4 {v4} v6 {v6}"),
    }

    // The ID is tokenfeat's reading of the request each flow carries.
    let (mut control, mut immediate, mut long, mut big) = (0, 0, 0, 0);
    let mut tasks = HashMap::new();
    for (key, (_, http)) in requests(&pkts) {
        let Some(req) = tokenfeat::parse_openai_request(&http) else {
            continue; // cut off by the end of the capture
        };
        let id = ids[&key];
        let task = id.task().unwrap();
        let prompt = req.last_user_text.as_str();
        if CONTROL_COMMANDS.contains(&prompt) {
            assert_eq!(id, tokenfeat::encode(&request_features(&http, None)));
            control += 1;
            assert!(id.prompt_tokens() < 24, "{}", req.last_user_text);
            if task == TaskType::ImmediateControl {
                assert!(id.output_tokens() <= 16);
            }
            let verb = req.last_user_text.split(' ').next().unwrap();
            if [
                "turn", "play", "pause", "set", "lock", "open", "skip", "start", "dim",
            ]
            .contains(&verb)
            {
                assert_eq!(task, TaskType::ImmediateControl, "{}", req.last_user_text);
            }
            immediate += usize::from(task == TaskType::ImmediateControl);
        } else {
            long += 1;
            let want = match prompt.split(' ').next().unwrap() {
                "Write" | "Implement" | "Refactor" => TaskType::CodeGeneration,
                "Think" | "Reason" | "Work" => TaskType::ComplexReasoning,
                _ => TaskType::Summarisation,
            };
            assert_eq!(task, want, "{}", &prompt[..40]);
            assert_eq!(id, tokenfeat::encode(&request_features(&http, Some(want))));
            assert!(id.prompt_tokens() >= 200, "{}", id.prompt_tokens());
            if id.prompt_tokens() > 1000 && task == TaskType::ComplexReasoning {
                big += 1;
                assert_eq!(id.output_tokens(), 1024.min(req.max_tokens.unwrap()));
            }
            *tasks.entry(task).or_insert(0usize) += 1;
        }
    }
    assert!(control > 50 && long > 30, "control {control} long {long}");
    assert!(immediate * 10 >= control * 6, "{immediate} of {control}");
    assert!(big > 0 && tasks.len() == 3, "{tasks:?}");
}

#[test]
fn tlv_ipv4_on_every_request_packet_with_the_prompt_s_id() {
    check_tlv(TlvMode::Ipv4, false);
}

#[test]
fn tlv_ipv6_on_every_request_packet_with_the_prompt_s_id() {
    check_tlv(TlvMode::Ipv6, false);
}

#[test]
fn tlv_mixed_with_responses() {
    check_tlv(TlvMode::Mixed, true);
}

#[test]
fn tlv_keeps_the_default_requests() {
    let c = cfg(4, 3000);
    let plain = requests(&generate(WorkloadKind::Agent, &c).unwrap());
    let tagged = requests(
        &generate_with(
            &c,
            &AgentOptions {
                tlv: TlvMode::Ipv4,
                responses: false,
                hosts: None,
            },
        )
        .unwrap(),
    );
    // Same flows (IPv4 keeps the addresses), same bytes where both are whole.
    let mut same = 0;
    for (key, (ts, http)) in &tagged {
        if let Some((ts0, http0)) = plain.get(key) {
            assert_eq!(ts, ts0);
            if tokenfeat::parse_openai_request(http).is_some()
                && tokenfeat::parse_openai_request(http0).is_some()
            {
                assert_eq!(http, http0);
                same += 1;
            }
        }
    }
    assert!(same > 300, "{same}");
}

#[test]
fn responses_reverse_a_request_flow_and_follow_it() {
    check_responses(TlvMode::None);
}

#[test]
fn responses_over_ipv6_reverse_the_ipv6_flow() {
    check_responses(TlvMode::Ipv6);
}

fn check_responses(tlv: TlvMode) {
    let opts = AgentOptions {
        tlv,
        responses: true,
        hosts: None,
    };
    let pkts = generate_with(&cfg(5, 6000), &opts).unwrap();
    assert_eq!(pkts.len(), 6000);
    assert!(pkts.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    // Per request 5-tuple, its latest use: which one, first packet, last
    // packet, last data packet.
    let mut req: HashMap<FlowKey, (usize, u64, u64, u64)> = HashMap::new();
    let mut uses = Uses::default();
    let mut first_data: HashMap<Req, u64> = HashMap::new();
    let (mut tcp, mut udp, mut syn_acks, mut fins) = (0, 0, 0, 0);
    let mut ttft_checked = 0;
    let bodies = requests(&pkts);
    for (i, p) in pkts.iter().enumerate() {
        let c = check_frame(&p.data);
        assert!(c.is_clean(), "packet {i}: {c:?}");
        assert_eq!(c.l4_checksum, Some(true), "packet {i}");
        let pp = c.parsed.unwrap();
        let key = pp.flow.unwrap();
        let has_data = !pp.payload(&p.data).is_empty();
        if key.dst_port == SERVER_PORT {
            let (_, n) = uses.of(&pp, &p.data);
            let e = req.entry(key).or_insert((n, p.ts_ns, p.ts_ns, p.ts_ns));
            if e.0 != n {
                *e = (n, p.ts_ns, p.ts_ns, p.ts_ns);
            }
            e.2 = p.ts_ns;
            if has_data {
                e.3 = p.ts_ns;
            }
            continue;
        }
        assert_eq!(key.src_port, SERVER_PORT, "packet {i}");
        let r = key.reversed();
        let &(n, first, last, last_data) = req
            .get(&r)
            .unwrap_or_else(|| panic!("response {i} matches no earlier request"));
        assert!(p.ts_ns > first, "response {i}");
        let flags = (pp.ip_protocol == Some(IpProtocol::TCP))
            .then(|| TcpPacket::new_checked(pp.l4(&p.data)).unwrap().flags());
        match flags {
            Some(f) if f.contains(TcpFlags::SYN) => {
                assert!(f.contains(TcpFlags::ACK));
                syn_acks += 1;
            }
            _ => assert!(p.ts_ns > last, "response {i} before its request ended"),
        }
        if flags.is_some_and(|f| f.contains(TcpFlags::FIN)) {
            fins += 1;
        }
        if has_data {
            if flags.is_some() {
                tcp += 1;
            } else {
                udp += 1;
            }
            if let std::collections::hash_map::Entry::Vacant(v) = first_data.entry((key, n)) {
                v.insert(p.ts_ns);
                let head = String::from_utf8_lossy(pp.payload(&p.data)).into_owned();
                // Time to first token grows with the prompt (TCP adds half an
                // RTT, at most 150 µs).
                if let Some((_, http)) = bodies.get(&(r, n)) {
                    if tokenfeat::parse_openai_request(http).is_some() {
                        let req = tokenfeat::parse_openai_request(http).unwrap();
                        let want = ttft_ns(tokenfeat::count_tokens(&req.prompt_text));
                        let got = p.ts_ns - last_data;
                        assert!(
                            got >= want && got <= want + 150_000,
                            "{got} vs {want} use {n} {:?} {}",
                            pp.ip_protocol,
                            p.ts_ns - first
                        );
                        ttft_checked += 1;
                    }
                }
                if flags.is_some() {
                    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
                }
                assert!(head.contains("data: {"), "{head}");
            }
        }
    }
    assert!(tcp > 50 && udp > 20, "tcp {tcp} udp {udp}");
    assert!(
        syn_acks > 100 && fins > 5,
        "syn-acks {syn_acks} fins {fins}"
    );
    assert!(ttft_checked > 50, "{ttft_checked}");
}

#[test]
fn cli_write_takes_the_options_and_rejects_them_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.pcap");
    let o = Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(["write", "-w", "agent", "-n", "500", "--tlv", "ipv6"])
        .arg("--responses")
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("token feature TLV ipv6, with server responses"),
        "{text}"
    );
    let pkts: Vec<_> = pcap::read_file(&out).unwrap();
    assert_eq!(pkts.len(), 500);
    assert!(pkts
        .iter()
        .all(|r| parse(&r.data).unwrap().l3_kind == L3Kind::Ipv6));

    let o = Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(["write", "-w", "roce", "--tlv", "ipv4", "-o"])
        .arg(dir.path().join("r.pcap"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with(
            "pktgen: error: --tlv, --responses and --agent-hosts apply to the agent workload only"
        ),
        "{err}"
    );

    let o = Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(["write", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("--tlv <CARRIER>") && help.contains("--responses"),
        "{help}"
    );
    assert!(help.contains("mixed"), "{help}");
}

/// `--agent-hosts`: the same requests, spread over many more source
/// addresses.
#[test]
fn agent_hosts_spread_the_same_requests_over_more_sources() {
    let c = cfg(4, 3000);
    let six = generate(WorkloadKind::Agent, &c).unwrap();
    let many = generate_with(
        &c,
        &AgentOptions {
            hosts: Some(200),
            ..AgentOptions::default()
        },
    )
    .unwrap();
    let bodies = |pkts: &[Packet]| {
        let mut v: Vec<(u64, Vec<u8>)> = requests(pkts).into_values().collect();
        v.sort();
        v
    };
    assert_eq!(bodies(&six), bodies(&many));
    let sources = |pkts: &[Packet]| {
        pkts.iter()
            .filter_map(|p| p.data.get(26..30).map(|a| [a[0], a[1], a[2], a[3]]))
            .collect::<std::collections::HashSet<_>>()
    };
    assert_eq!(sources(&six).len(), 6);
    assert!(sources(&many).len() > 100, "{}", sources(&many).len());
}
