//! Workload properties, through the public library API.

use std::collections::{BTreeSet, HashSet};

use classifier::{parse, BthOpcode, IpProtocol, L3Kind};
use pktgen::verify::check_frame;
use pktgen::workload::cdf::WEB_SEARCH;
use pktgen::workload::edge_cases::{edge_cases, Check, Expect};
use pktgen::workload::{generate, mix, seeded_rng, WorkloadConfig, WorkloadKind};

const VALID: [WorkloadKind; 3] = [WorkloadKind::Agent, WorkloadKind::Roce, WorkloadKind::Mix];

fn cfg(seed: u64, packets: usize) -> WorkloadConfig {
    WorkloadConfig {
        seed,
        packets,
        max_flow_bytes: 300_000,
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    for kind in VALID {
        let a = generate(kind, &cfg(42, 1500)).unwrap();
        let b = generate(kind, &cfg(42, 1500)).unwrap();
        let c = generate(kind, &cfg(43, 1500)).unwrap();
        assert_eq!(a, b, "{kind} is not reproducible");
        assert_ne!(a, c, "{kind} ignores its seed");
        assert_eq!(a.len(), 1500);
    }
    let e1 = generate(WorkloadKind::EdgeCases, &cfg(1, 10)).unwrap();
    let e2 = generate(WorkloadKind::EdgeCases, &cfg(99, 10)).unwrap();
    assert_eq!(e1, e2, "edge-cases is a fixed set");
}

#[test]
fn valid_workloads_parse_and_verify_everywhere() {
    for kind in VALID {
        let pkts = generate(kind, &cfg(7, 4000)).unwrap();
        let mut last_ts = 0;
        for (i, p) in pkts.iter().enumerate() {
            let c = check_frame(&p.data);
            assert!(c.is_clean(), "{kind} packet {i}: {c:?}");
            let pp = c.parsed.unwrap();
            assert!(matches!(pp.l3_kind, L3Kind::Ipv4));
            // Everything the workloads emit is checkable: no fragments.
            assert!(
                c.l4_checksum.is_some() || c.icrc.is_some(),
                "{kind} packet {i}"
            );
            if pp.bth.is_some() {
                assert_eq!(c.icrc, Some(true));
            }
            assert!(
                p.data.len() <= 1518,
                "{kind} packet {i} is {} bytes",
                p.data.len()
            );
            assert!(p.ts_ns >= last_ts, "{kind} packet {i} goes back in time");
            last_ts = p.ts_ns;
        }
    }
}

#[test]
fn agent_payloads_are_openai_chat_requests() {
    let pkts = generate(WorkloadKind::Agent, &cfg(3, 3000)).unwrap();
    let mut starts = 0;
    let mut udp_single = 0;
    for p in &pkts {
        let pp = parse(&p.data).unwrap();
        let payload = pp.payload(&p.data);
        if let Some(body) = payload.strip_prefix(b"POST /v1/chat/completions HTTP/1.1\r\n") {
            starts += 1;
            let text = String::from_utf8_lossy(body);
            assert!(text.contains("Host: 10.0.100.1:8000"));
            // A request that fits one packet must carry complete JSON.
            if pp.ip_protocol == Some(IpProtocol::UDP) && text.ends_with('}') {
                udp_single += 1;
                let json = text.split_once("\r\n\r\n").unwrap().1;
                let v: serde_json::Value = serde_json::from_str(json).unwrap();
                assert_eq!(v["stream"], true);
                assert_eq!(v["messages"][0]["role"], "user");
                assert!(v["max_tokens"].as_u64().unwrap() > 0);
            }
        }
    }
    assert!(starts > 100, "{starts}");
    assert!(udp_single > 20, "{udp_single}");
}

#[test]
fn roce_iterations_show_bursts_and_gaps() {
    let pkts = generate(WorkloadKind::Roce, &cfg(11, 20_000)).unwrap();
    // Compute gaps of at least 200 µs separate the all-reduce bursts.
    let gaps = pkts
        .windows(2)
        .filter(|w| w[1].ts_ns - w[0].ts_ns >= 150_000)
        .count();
    assert!(gaps >= 1, "no compute gap in 20k packets");
    let ops: HashSet<BthOpcode> = pkts
        .iter()
        .map(|p| parse(&p.data).unwrap().bth.unwrap().opcode)
        .collect();
    assert!(ops.contains(&BthOpcode::RC_WRITE_FIRST) && ops.contains(&BthOpcode::RC_SEND_ONLY));
}

#[test]
fn mix_respects_max_flow_bytes_and_carries_both_kinds() {
    let c = WorkloadConfig {
        seed: 5,
        packets: 6000,
        max_flow_bytes: 50_000,
    };
    let pkts = generate(WorkloadKind::Mix, &c).unwrap();
    let mut roce = 0;
    let mut tcp = 0;
    for p in &pkts {
        let pp = parse(&p.data).unwrap();
        if let Some(b) = pp.bth {
            roce += 1;
            if let Some(len) = b.dma_len {
                assert!(u64::from(len) <= 50_000);
            }
        } else if pp.ip_protocol == Some(IpProtocol::TCP) {
            tcp += 1;
        }
    }
    assert!(roce > 1000 && tcp > 1000, "roce {roce} tcp {tcp}");
}

#[test]
fn mix_flow_sizes_follow_the_web_search_cdf() {
    let mut rng = seeded_rng(2024, 99);
    let mut sizes: Vec<u64> = (0..40_000)
        .map(|_| mix::flow_size(&mut rng, u64::MAX))
        .collect();
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2] as f64;
    assert!((median / 73_077.0 - 1.0).abs() < 0.08, "median {median}");
    let frac =
        |limit: u64| sizes.iter().filter(|&&s| s <= limit).count() as f64 / sizes.len() as f64;
    for (bytes, p) in [
        (10_000, 0.15),
        (80_000, 0.53),
        (1_000_000, 0.7),
        (10_000_000, 0.97),
    ] {
        assert!(
            (frac(bytes) - p).abs() < 0.015,
            "P(size <= {bytes}) = {} vs {p}",
            frac(bytes)
        );
    }
    assert!(sizes.iter().all(|&s| (1..=30_000_000).contains(&s)));
    assert_eq!(WEB_SEARCH.quantile(0.5), 73_077);
    // The cap applies.
    assert!((0..1000).all(|_| mix::flow_size(&mut rng, 5000) <= 5000));
}

#[test]
fn edge_cases_cover_every_listed_kind_and_parse_rejects_exactly_the_malformed() {
    let cases = edge_cases().unwrap();
    for c in &cases {
        c.verify().unwrap();
        // Rejected by parse exactly when the expectation says so.
        assert_eq!(
            parse(&c.packet.data).is_err(),
            matches!(c.expect, Expect::Reject(_)),
            "{}",
            c.name
        );
    }
    let rejects: BTreeSet<&str> = cases
        .iter()
        .filter_map(|c| match c.expect {
            Expect::Reject(code) => Some(code),
            _ => None,
        })
        .collect();
    for required in [
        "ethernet.truncated",
        "vlan.truncated",
        "vlan.too_many_tags",
        "ipv4.truncated",
        "ipv4.ihl_too_small",
        "ipv4.header_truncated",
        "ipv4.bad_version",
        "ipv4.total_length_beyond_frame",
        "ipv4.bad_checksum",
        "ipv6.truncated",
        "ipv6.bad_version",
        "ipv6.payload_length_beyond_frame",
        "ipv6_ext.truncated",
        "udp.truncated",
        "udp.length_beyond_packet",
        "tcp.truncated",
        "tcp.bad_data_offset",
        "bth.truncated",
        "bth.too_short_for_opcode",
    ] {
        assert!(rejects.contains(required), "no case for {required}");
    }
    let bad: HashSet<Check> = cases
        .iter()
        .filter_map(|c| match c.expect {
            Expect::BadChecksum(k) => Some(k),
            _ => None,
        })
        .collect();
    assert_eq!(bad.len(), 3, "udp, tcp and icrc corruptions");

    // The valid group: each structural feature appears.
    let parsed: Vec<_> = cases
        .iter()
        .filter_map(|c| parse(&c.packet.data).ok())
        .collect();
    assert!(parsed.iter().any(|p| p.vlans.len() == 1));
    assert!(parsed
        .iter()
        .any(|p| p.vlans.len() == 2 && p.vlans.tags()[0].tpid == classifier::EtherType::QINQ));
    assert!(parsed
        .iter()
        .any(|p| p.ipv4_options.is_some_and(|s| s.len == 40)));
    assert!(parsed.iter().any(|p| p.l3_kind == L3Kind::Arp));
    assert!(parsed
        .iter()
        .any(|p| p.fragment.is_some_and(|f| f.is_non_first()) && p.l3_kind == L3Kind::Ipv6));
    assert!(parsed
        .iter()
        .any(|p| p.fragment.is_some_and(|f| f.is_non_first()) && p.l3_kind == L3Kind::Ipv4));
    assert!(parsed
        .iter()
        .any(|p| p.bth.is_some() && p.l3_kind == L3Kind::Ipv6));
    assert!(parsed
        .iter()
        .any(|p| p.bth.is_some() && p.l3_kind == L3Kind::Ipv4));
    let hbh = cases
        .iter()
        .find(|c| c.name == "ipv6-hbh-rh-frag-dst-chain-udp")
        .map(|c| &c.packet.data)
        .unwrap();
    let p = parse(hbh).unwrap();
    let area = p.ipv6_hbh_options.unwrap().slice(hbh);
    let opt = classifier::ipv6_option::Ipv6OptionIter::new(area)
        .next()
        .unwrap()
        .unwrap();
    assert!(opt.option_type.is_experimental());
    assert_eq!(opt.data, b"INTLNODE");
    // Tiny frames: a 1-byte runt and a 60-byte padded datagram.
    assert!(cases.iter().any(|c| c.packet.data.len() == 1));
    assert!(cases
        .iter()
        .any(|c| c.packet.data.len() == 60 && c.expect == Expect::Valid));
}
