//! The Wireshark dissector `contrib/wireshark/intellinode.lua`, run by
//! `tshark` over packets the project's own code builds: the agent workload
//! of `pktgen write --tlv ipv4|ipv6`, the §5.6 worked example, Geneve
//! overlay headers from `tensor::encap::write_encap`, control datagrams
//! sealed by `control::Sender` / `Receiver`, and probes from
//! `control::probe`. Every decoded field is compared with what was encoded,
//! and malformed variants must raise the dissector's expert items (named
//! after the receivers' counters) without a Lua error.
//!
//! `tshark` is a system package: `make test` installs it through
//! `scripts/deps.sh`. Without it these tests fail and say so.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use classifier::checksum::PseudoHeader;
use classifier::ethernet::EthernetRepr;
use classifier::ipv4::{Ipv4Packet, Ipv4Repr};
use classifier::ipv6::Ipv6Repr;
use classifier::token_feature::{encode, quantize_tokens, TokenFeatureId};
use classifier::token_feature_tlv::{emit_hbh_header, emit_ipv4_option_area};
use classifier::udp::{UdpPacket, UdpRepr};
use classifier::{find_token_feature, parse, EtherType, IpProtocol, MacAddr};
use classifier::{TlvLookup, TokenFeatureTlvRepr};
use control::probe::{Probe, DEFAULT_PROBE_PORT};
use control::{
    Key, Message, Metric, MetricType, PathId, PathState, PeerConfig, Query, QueryWhat, Receiver,
    ReceiverConfig, Roles, Sender, Unit,
};
use intellinode_tests::*;
use pktgen::send::Stamp;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tensor::encap::{encap_len, write_encap, OverlayEndpoint};
use tensor::metadata::{
    flow_key_bytes, ComputeCapabilityTlv, Fragment, MetadataKey, MetadataKeys, MetadataRepr,
    OffloadDecision, OffloadDecisionTlv, OffloadOp, PathPredictionTlv, TensorTlv, TrainingPhase,
    TrainingPhaseTlv, OPTION_CLASS,
};
use tensor::TensorType;

const AGENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn dissector() -> PathBuf {
    workspace_root().join("contrib/wireshark/intellinode.lua")
}

/// `tshark` on PATH, or a failure that says how to get it.
fn tshark() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tshark"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "tshark is not installed: `make test` installs it (scripts/deps.sh), \
             or run `apt-get install tshark`"
        )
    })
}

/// One decoded frame: field name -> tshark's text (repeated occurrences
/// joined by ','), empty when absent.
type Row = HashMap<String, String>;

/// Runs the dissector over `pcap` and returns `fields` of every frame, in
/// order. Also runs it with `-V` and fails on any Lua error, which tshark
/// reports inside the tree rather than on stderr.
fn dissect(pcap: &Path, fields: &[&str]) -> Vec<Row> {
    let lua = format!("lua_script:{}", dissector().display());
    let mut cmd = Command::new(tshark());
    cmd.args(["-n", "-r"]).arg(pcap).args([
        "-X",
        &lua,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("spawn tshark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark failed:\n{stderr}");
    assert!(
        !stderr.contains("Lua"),
        "the dissector failed to load:\n{stderr}"
    );
    let text = String::from_utf8(out.stdout).expect("tshark prints UTF-8");
    let rows: Vec<Row> = text
        .lines()
        .map(|line| {
            let values: Vec<&str> = line.split('\t').collect();
            assert_eq!(values.len(), fields.len(), "tshark line {line:?}");
            fields
                .iter()
                .zip(values)
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect()
        })
        .collect();

    let verbose = Command::new(tshark())
        .args(["-n", "-V", "-r"])
        .arg(pcap)
        .args(["-X", &lua])
        .stdin(Stdio::null())
        .output()
        .expect("spawn tshark");
    let tree = String::from_utf8_lossy(&verbose.stdout);
    assert!(
        !tree.contains("Lua Error"),
        "Lua error while dissecting:\n{tree}"
    );
    rows
}

/// The `-V` tree of every frame, in order (the summaries the dissector
/// writes with `set_text` are only there).
fn trees(pcap: &Path) -> Vec<String> {
    let lua = format!("lua_script:{}", dissector().display());
    let out = Command::new(tshark())
        .args(["-n", "-V", "-r"])
        .arg(pcap)
        .args(["-X", &lua])
        .stdin(Stdio::null())
        .output()
        .expect("spawn tshark");
    assert!(out.status.success(), "tshark -V failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut frames: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("Frame ") {
            frames.push(String::new());
        }
        if let Some(f) = frames.last_mut() {
            f.push_str(line);
            f.push('\n');
        }
    }
    frames
}

/// `row[field]`, failing with the whole row when absent.
fn get<'a>(row: &'a Row, field: &str) -> &'a str {
    let v = row.get(field).map(String::as_str).unwrap_or_default();
    assert!(!v.is_empty(), "{field} not decoded; frame: {row:?}");
    v
}

fn num(row: &Row, field: &str) -> u64 {
    let v = get(row, field);
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    }
    .unwrap_or_else(|_| panic!("{field} = {v:?} is not a number"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ethernet II / IPv4 (with `options`) / UDP, checksums filled.
fn udp4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let ip_len = 20 + options.len();
    let udp = 14 + ip_len;
    let mut f = vec![0u8; udp + 8 + payload.len()];
    EthernetRepr {
        src_addr: MacAddr(AGENT_MAC),
        dst_addr: MacAddr(GW_MAC),
        ethertype: EtherType::IPV4,
    }
    .emit(&mut f[..14])
    .unwrap();
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::UDP,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        ttl: 64,
        options,
        payload_len: 8 + payload.len(),
    }
    .emit(&mut f[14..udp])
    .unwrap();
    Ipv4Packet::new_unchecked(&mut f[14..udp]).fill_checksum();
    UdpRepr {
        src_port: ports.0,
        dst_port: ports.1,
        payload_len: payload.len(),
    }
    .emit(&mut f[udp..])
    .unwrap();
    f[udp + 8..].copy_from_slice(payload);
    UdpPacket::new_unchecked(&mut f[udp..]).fill_checksum(&PseudoHeader::V4 { src, dst });
    f
}

/// Ethernet II / IPv6 / `hbh` (a whole Hop-by-Hop header, next header UDP)
/// / UDP.
fn udp6_hbh(hbh: &[u8], payload: &[u8]) -> Vec<u8> {
    let (src, dst): (Ipv6Addr, Ipv6Addr) = (
        "fd00:0:0:1::11".parse().unwrap(),
        "fd00:0:0:100::1".parse().unwrap(),
    );
    let udp = 54 + hbh.len();
    let mut f = vec![0u8; udp + 8 + payload.len()];
    EthernetRepr {
        src_addr: MacAddr(AGENT_MAC),
        dst_addr: MacAddr(GW_MAC),
        ethertype: EtherType::IPV6,
    }
    .emit(&mut f[..14])
    .unwrap();
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::HOP_BY_HOP,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
        payload_len: hbh.len() + 8 + payload.len(),
    }
    .emit(&mut f[14..54])
    .unwrap();
    f[54..udp].copy_from_slice(hbh);
    UdpRepr {
        src_port: 40000,
        dst_port: 8000,
        payload_len: payload.len(),
    }
    .emit(&mut f[udp..])
    .unwrap();
    f[udp + 8..].copy_from_slice(payload);
    UdpPacket::new_unchecked(&mut f[udp..]).fill_checksum(&PseudoHeader::V6 { src, dst });
    f
}

const TF_FIELDS: [&str; 12] = [
    "intellinode.tf.carrier",
    "intellinode.tf.type",
    "intellinode.tf.directed",
    "intellinode.tf.unassigned",
    "intellinode.tf.id",
    "intellinode.tf.version",
    "intellinode.tf.prompt_tokens",
    "intellinode.tf.output_tokens",
    "intellinode.tf.task",
    "intellinode.tf.urgency",
    "intellinode.tf.explicit_urgency",
    "intellinode.tf.reserved",
];

/// Asserts a frame's decoded TLV is `id` with the D flag `directed`.
fn assert_tlv(row: &Row, carrier: u64, directed: bool, id: TokenFeatureId) {
    let want = [
        ("intellinode.tf.carrier", carrier),
        (
            "intellinode.tf.type",
            if carrier == 4 { 0x9e } else { 0x1e },
        ),
        ("intellinode.tf.directed", u64::from(directed)),
        ("intellinode.tf.unassigned", 0),
        ("intellinode.tf.id", id.0),
        ("intellinode.tf.version", 1),
        (
            "intellinode.tf.prompt_tokens",
            u64::from(id.prompt_tokens()),
        ),
        (
            "intellinode.tf.output_tokens",
            u64::from(id.output_tokens()),
        ),
        (
            "intellinode.tf.task",
            u64::from(id.task().expect("valid task").code()),
        ),
        ("intellinode.tf.urgency", u64::from(id.urgency().code())),
        (
            "intellinode.tf.explicit_urgency",
            u64::from(id.explicit_urgency()),
        ),
        ("intellinode.tf.reserved", 0),
    ];
    for (field, value) in want {
        assert_eq!(num(row, field), value, "{field}; frame: {row:?}");
    }
}

#[test]
fn agent_workload_tlvs_decode_as_the_appliance_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    for (carrier, version) in [("ipv4", 4), ("ipv6", 6)] {
        let pcap = dir.path().join(format!("agent-{carrier}.pcap"));
        let status = Command::new(bin_under_test("pktgen"))
            .args([
                "write",
                "--workload",
                "agent",
                "--tlv",
                carrier,
                "--seed",
                "11",
            ])
            .args(["--packets", "300", "-o"])
            .arg(&pcap)
            .stdout(Stdio::null())
            .status()
            .expect("spawn pktgen");
        assert!(status.success(), "pktgen write --tlv {carrier} failed");
        let frames = frames(&pcap);
        let rows = dissect(&pcap, &TF_FIELDS);
        assert_eq!(rows.len(), frames.len());

        let mut prompts_checked = 0;
        for (frame, row) in frames.iter().zip(&rows) {
            let parsed = parse(frame).expect("pktgen frames parse");
            let TlvLookup::Present { directed, id } = find_token_feature(frame, &parsed) else {
                panic!("every agent request packet carries a TLV: {parsed:?}");
            };
            assert_tlv(row, version, directed, id);

            // Where one packet holds a whole request, the prompt token count
            // is tokenfeat's count of its prompt, as the agent computed it.
            let payload = parsed.payload.slice(frame);
            if let Some(req) = tokenfeat::parse_openai_request(payload) {
                let expected = quantize_tokens(tokenfeat::count_tokens(&req.prompt_text));
                assert_eq!(
                    num(row, "intellinode.tf.prompt_tokens"),
                    u64::from(expected)
                );
                prompts_checked += 1;
            }
        }
        assert!(
            prompts_checked >= 5,
            "only {prompts_checked} whole requests in the {carrier} pcap"
        );
    }
}

#[test]
fn worked_example_and_malformed_tlvs() {
    // docs/wire-format.md §5.6: "turn on the light", D = 1.
    let features = tokenfeat::extract("turn on the light", &tokenfeat::Hints::default());
    let light = TokenFeatureTlvRepr {
        directed: true,
        feature_id: encode(&features),
    };
    assert_eq!(light.feature_id.0, 0x1004_0100_c000_0000);
    let mut area = [0u8; 40];
    let n = emit_ipv4_option_area(&light, &[], &mut area).unwrap();
    let v4_area = area[..n].to_vec();
    assert_eq!(hex(&v4_area), "9e0c80001004 0100c0000000".replace(' ', ""));
    let mut hbh = [0u8; 16];
    emit_hbh_header(&light, IpProtocol::UDP.0, &mut hbh).unwrap();
    assert_eq!(
        hex(&hbh),
        "1101 0100 1e0a 8000 1004 0100 c000 0000".replace(' ', "")
    );

    let (a, b) = (Ipv4Addr::new(10, 0, 1, 11), Ipv4Addr::new(10, 0, 100, 1));
    let body = b"{}";
    let with_v4 = |opts: &[u8]| udp4(a, b, (40000, 8000), opts, body);
    let with_id = |id: u64| {
        let mut o = v4_area.clone();
        o[4..12].copy_from_slice(&id.to_be_bytes());
        with_v4(&o)
    };
    // The "Length = 8" reading §5.1 rejects: Pad1, Pad1, the option with
    // 8 data bytes, PadN.
    let hbh_bad_len = [
        0x11, 0x01, 0x00, 0x00, 0x1e, 0x08, 0x80, 0x00, 0x10, 0x04, 0x01, 0x00, 0xc0, 0x00, 0x01,
        0x00,
    ];
    let frames = vec![
        with_v4(&v4_area),
        udp6_hbh(&hbh, body),
        with_id(0x3004_0100_c000_0000), // layout version 3
        with_id(0x1004_0105_c000_0000), // task 5
        with_id(0x1004_0100_c000_0001), // reserved bit 0
        with_v4(&[v4_area.clone(), v4_area.clone()].concat()), // two TLVs
        udp6_hbh(&hbh_bad_len, body),
        // Layout version 2 (§5.2a): prompt 3000 with a 2048-token shared
        // prefix, hash 0x1_6789; then a hash without prefix tokens.
        with_id(0x2477_1001_8801_6789),
        with_id(0x2004_0100_c000_0001),
    ];
    // From here on, frames the receiver's scan (§5.5) judges; each row of
    // `judged` is the frame and the dissector's expected experts.
    let tlv_at = |before: &[u8], after: &[u8]| [before, &v4_area[..], after].concat();
    let hbh_with = |opts: &[u8]| {
        let mut h = vec![0x11, 0x01];
        h.extend_from_slice(opts);
        assert_eq!(h.len(), 16);
        udp6_hbh(&h, body)
    };
    let light_opt = &hbh[4..];
    let judged: Vec<(Vec<u8>, Vec<&str>)> = vec![
        // 9: urgency immediate (3) with X set: X is bit 29 alone.
        (with_id(0x1004_0100_e000_0000), vec![]),
        // 10-13: our type, not framable: length past the area, type byte
        // last, length 1, length 0.
        (
            with_v4(&[0x9e, 0x28, 0x80, 0, 0x10, 4, 1, 0, 0xc0, 0, 0, 0]),
            vec!["intellinode.tf.truncated"],
        ),
        (with_v4(&[1, 1, 1, 0x9e]), vec!["intellinode.tf.truncated"]),
        (with_v4(&[0x9e, 1, 0, 0]), vec!["intellinode.tf.truncated"]),
        (with_v4(&[0x1e, 0, 0, 0]), vec!["intellinode.tf.truncated"]),
        // 14: another type that cannot be framed, before ours.
        (
            with_v4(&tlv_at(&[0x44, 0x30, 0, 0], &[])),
            vec!["intellinode.tf.option_framing"],
        ),
        // 15: a good TLV, then a second of our type that cannot be framed.
        (
            with_v4(&tlv_at(&[], &[0x9e, 1, 0, 0])),
            vec!["intellinode.tf.duplicate", "intellinode.tf.truncated"],
        ),
        // 16: a good TLV behind a Router Alert of the wrong length, which
        // is framed (§5.5) but makes Wireshark's option parser give up.
        (with_v4(&tlv_at(&[0x94, 0x02, 1, 1], &[])), vec![]),
        // 17: behind End of Option List: not read.
        (with_v4(&tlv_at(&[0, 1, 1, 1], &[])), vec![]),
        // 18: framed with length 10 in IPv4: bad_length, reported once.
        (
            with_v4(&[
                0x9e, 0x0a, 0x80, 0, 0x10, 4, 1, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0,
            ]),
            vec!["intellinode.tf.bad_length"],
        ),
        // 19: IPv6, Opt Data Len 20 in a 16-byte header: truncated, not
        // bad_length.
        (
            hbh_with(&[1, 0, 0x1e, 0x14, 0x80, 0, 0x10, 4, 1, 0, 0xc0, 0, 0, 0]),
            vec!["intellinode.tf.truncated"],
        ),
        // 20: IPv6, another type running past the header before ours.
        (
            hbh_with(&[
                0x3e, 0x20, 0x1e, 0x0a, 0x80, 0, 0x10, 4, 1, 0, 0xc0, 0, 0, 0,
            ]),
            vec!["intellinode.tf.option_framing"],
        ),
        // 21: IPv6, the same after ours: the result stays what ours gave.
        (hbh_with(&[light_opt, &[0x3e, 0x05]].concat()), vec![]),
    ];
    let frames: Vec<Vec<u8>> = frames
        .into_iter()
        .chain(judged.iter().map(|(f, _)| f.clone()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("tlv.pcap");
    write_frames(&pcap, &frames);
    let errors = [
        "intellinode.tf.unknown_version",
        "intellinode.tf.reserved_task",
        "intellinode.tf.reserved_bits",
        "intellinode.tf.duplicate",
        "intellinode.tf.bad_length",
        "intellinode.tf.bad_prefix",
        "intellinode.tf.truncated",
        "intellinode.tf.option_framing",
    ];
    let prefix_fields = [
        "intellinode.tf.prefix_tokens",
        "intellinode.tf.prefix_hash",
        "_ws.expert.message",
    ];
    let fields: Vec<&str> = TF_FIELDS
        .iter()
        .chain(&errors)
        .chain(&prefix_fields)
        .copied()
        .collect();
    let rows = dissect(&pcap, &fields);
    assert_eq!(rows.len(), frames.len());

    for (row, carrier) in rows[..2].iter().zip([4, 6]) {
        assert_tlv(row, carrier, true, light.feature_id);
        assert_eq!(
            get(row, "intellinode.tf.prompt_tokens"),
            "4",
            "cl100k_base count of the prompt"
        );
        assert_eq!(get(row, "intellinode.tf.output_tokens"), "16");
        assert_eq!(get(row, "intellinode.tf.task"), "0", "immediate control");
        assert_eq!(get(row, "intellinode.tf.urgency"), "3", "immediate");
    }
    let raised = |row: &Row| -> Vec<&str> {
        errors
            .iter()
            .copied()
            .filter(|e| !row[*e].is_empty())
            .collect()
    };
    for row in &rows[..2] {
        assert!(raised(row).is_empty(), "{row:?}");
    }
    assert_eq!(raised(&rows[2]), ["intellinode.tf.unknown_version"]);
    assert_eq!(get(&rows[2], "intellinode.tf.version"), "3");
    assert_eq!(
        rows[2]["intellinode.tf.prompt_tokens"], "",
        "an unknown layout is not decoded"
    );
    assert_eq!(raised(&rows[3]), ["intellinode.tf.reserved_task"]);
    assert_eq!(get(&rows[3], "intellinode.tf.task"), "5");
    assert_eq!(raised(&rows[4]), ["intellinode.tf.reserved_bits"]);
    assert_eq!(num(&rows[4], "intellinode.tf.reserved"), 1);
    assert_eq!(raised(&rows[5]), ["intellinode.tf.duplicate"]);
    assert_eq!(get(&rows[5], "intellinode.tf.prompt_tokens"), "4,4");
    assert_eq!(raised(&rows[6]), ["intellinode.tf.bad_length"]);
    assert_eq!(get(&rows[6], "intellinode.tf.carrier"), "6");
    assert!(raised(&rows[7]).is_empty(), "{:?}", rows[7]);
    assert_eq!(get(&rows[7], "intellinode.tf.version"), "2");
    assert_eq!(get(&rows[7], "intellinode.tf.prompt_tokens"), "3000");
    assert_eq!(get(&rows[7], "intellinode.tf.prefix_tokens"), "2048");
    assert_eq!(num(&rows[7], "intellinode.tf.prefix_hash"), 0x1_6789);
    assert_eq!(raised(&rows[8]), ["intellinode.tf.bad_prefix"]);

    // The expert texts are the receiver's codes (TlvMalformed::code).
    for (i, code) in [
        (2, "token_tlv.unknown_version"),
        (3, "token_tlv.reserved_task"),
        (4, "token_tlv.reserved_bits"),
    ] {
        let msg = get(&rows[i], "_ws.expert.message");
        assert!(msg.starts_with(code), "{code}: {msg}");
    }
    assert!(rows
        .iter()
        .all(|r| !r["_ws.expert.message"].contains("token_feature.")));

    let trees = trees(&pcap);
    assert_eq!(trees.len(), frames.len());
    for (i, (frame, want)) in judged.iter().enumerate() {
        let row = &rows[9 + i];
        assert_eq!(raised(row), *want, "frame {}: {row:?}", 10 + i);
        // Each code the dissector raises is the one the receiver counts
        // (a malformed second TLV is also shown with its own fault).
        let parsed = parse(frame).expect("test frames parse");
        match find_token_feature(frame, &parsed) {
            TlvLookup::Malformed(m) => {
                let field = m.code().replace("token_tlv.", "intellinode.tf.");
                assert!(
                    want.contains(&field.as_str()),
                    "frame {}: receiver says {}",
                    10 + i,
                    m.code()
                );
            }
            _ => assert!(want.is_empty(), "frame {}: receiver accepts it", 10 + i),
        }
        for code in want {
            let text = code.replace("intellinode.tf.", "token_tlv.");
            assert!(get(row, "_ws.expert.message").contains(&text), "{row:?}");
        }
    }
    let r = &rows[9];
    assert_eq!(get(r, "intellinode.tf.urgency"), "3");
    assert_eq!(get(r, "intellinode.tf.explicit_urgency"), "1");
    assert!(
        trees[9].contains("urgency immediate (explicit)"),
        "{}",
        trees[9]
    );
    for r in &rows[10..14] {
        assert_eq!(
            r["intellinode.tf.id"], "",
            "a truncated TLV is not decoded: {r:?}"
        );
        assert_eq!(get(r, "intellinode.tf.carrier"), "4");
    }
    assert_eq!(
        rows[14]["intellinode.tf.type"], "",
        "the TLV behind is not reached"
    );
    assert_eq!(get(&rows[15], "intellinode.tf.prompt_tokens"), "4");
    assert_eq!(get(&rows[15], "intellinode.tf.type"), "0x9e,0x9e");
    assert_tlv(&rows[16], 4, true, light.feature_id);
    assert_eq!(
        rows[17]["intellinode.tf.type"], "",
        "nothing after End of Option List"
    );
    assert_eq!(
        get(&rows[18], "intellinode.tf.bad_length"),
        "1",
        "reported once"
    );
    assert_eq!(get(&rows[18], "intellinode.tf.type"), "0x9e");
    assert_eq!(get(&rows[19], "intellinode.tf.carrier"), "6");
    assert_eq!(rows[20]["intellinode.tf.type"], "");
    assert_tlv(&rows[21], 6, true, light.feature_id);
}

/// Adds Geneve options in front of and behind an overlay frame's own
/// options, fixing Opt Len, the UDP and IPv4 lengths and the IPv4 checksum
/// (the overlay's UDP checksum is 0).
fn splice_options(frame: &[u8], before: &[u8], after: &[u8]) -> Vec<u8> {
    let opt_len = usize::from(frame[42] & 0x3f) * 4;
    replace_options(frame, &[before, &frame[50..50 + opt_len], after].concat())
}

/// An overlay frame with its Geneve options area replaced by `options`,
/// lengths and the IPv4 checksum fixed as in [`splice_options`].
fn replace_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
    let opt_len = usize::from(frame[42] & 0x3f) * 4;
    let mut f = frame[..50].to_vec();
    f.extend_from_slice(options);
    f.extend_from_slice(&frame[50 + opt_len..]);
    f[42] = (f[42] & 0xc0) | (options.len() / 4) as u8;
    let ip_total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&ip_total.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_total - 20).to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
    f
}

#[test]
fn geneve_metadata_options_are_named_and_decoded() {
    let inner = udp4(
        Ipv4Addr::new(10, 10, 0, 1),
        Ipv4Addr::new(10, 10, 0, 2),
        (49200, 5000),
        &[],
        &[0xab; 64],
    );
    let flow = parse(&inner).unwrap().flow.unwrap();
    let key = MetadataKey::from_bytes(7, [0x2b; 16]);
    let ep = OverlayEndpoint {
        src_mac: [0x02, 0, 0, 0, 0xa, 1],
        dst_mac: [0x02, 0, 0, 0, 0xb, 1],
        src_ip: Ipv4Addr::new(192, 0, 2, 1),
        dst_ip: Ipv4Addr::new(192, 0, 2, 2),
        vni: 0x00ab_cdef,
    };
    let overlay = |meta: &MetadataRepr| {
        let mut f = vec![0u8; encap_len(meta)];
        write_encap(&mut f, &ep, 0x1234, inner.len(), meta, &flow, &key).unwrap();
        f.extend_from_slice(&inner);
        f
    };
    // The largest set the data plane sends (§7.1's budget) ...
    let worst = MetadataRepr {
        fragment: Some(Fragment {
            message_id: 0xdead_beef,
            slice_index: 2,
            slice_count: 4,
            last: true,
            path: 3,
            stream_seq: 0xffff_fffe,
        }),
        tensor: Some(TensorTlv {
            tensor_type: TensorType::Activation,
            gradient_sync: true,
            pipeline_stage: 5,
            batch_position: 0x1234,
        }),
        phase: Some(TrainingPhaseTlv {
            phase: TrainingPhase::Backward,
            iteration: 123_456,
        }),
        capability: Some(ComputeCapabilityTlv {
            node_id: 42,
            compute_weight: 8,
            gpu_utilisation: 200,
            flags: 0,
        }),
        ..MetadataRepr::default()
    };
    // ... and the options it leaves for a later packet.
    let rest = MetadataRepr {
        path_prediction: Some(PathPredictionTlv {
            path_id: 1,
            horizon_ms: 5,
            congestion_risk: 128,
            available_mbps: 87_500,
        }),
        offload: Some(OffloadDecisionTlv {
            op: OffloadOp::Max,
            decision: OffloadDecision::Offload,
            reducer_id: 9,
        }),
        ..MetadataRepr::default()
    };
    let a = overlay(&worst);
    let b = overlay(&rest);
    assert_eq!(a.len() - inner.len(), 126, "§7.1: the worst-case header");
    let tag_of = |f: &[u8]| {
        let end = 50 + usize::from(f[42] & 0x3f) * 4;
        hex(&f[end - 16..end])
    };
    // Another Geneve user's option in front (not ours, skipped), and an
    // IntelliNode option after the MAC (which the receiver refuses).
    let foreign = [0x01, 0x03, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef];
    let mut late = vec![(OPTION_CLASS >> 8) as u8, OPTION_CLASS as u8, 0x02, 0x02];
    late.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    let c = splice_options(&b, &foreign, &late);
    // A second TENSOR_TYPE, after the MAC too.
    let d = splice_options(&a, &[], &late);

    // Options written by hand, §7.3, each set with a MAC option that
    // verifies (§7.4), so the receiver gets as far as the fields.
    let class = OPTION_CLASS.to_be_bytes();
    let option = |ty: u8, data: &[u8]| {
        assert_eq!(data.len() % 4, 0);
        [&class[..], &[ty, (data.len() / 4) as u8], data].concat()
    };
    let sealed = |options: &[u8]| {
        let tag = key.cmac(&[&flow_key_bytes(&flow)[..], options].concat());
        let mac = option(0xff, &[&[key.id(), 0, 0, 0][..], &tag].concat());
        [options, &mac].concat()
    };
    let fragment = |index: u8, count: u8, flags: u8| {
        option(
            0x81,
            &[
                &[0, 0, 0, 9, index, count, flags, 1][..],
                &7u32.to_be_bytes(),
            ]
            .concat(),
        )
    };
    let tensor = option(0x02, &[1, 0, 0, 0, 0, 0, 0, 0]);
    // Another Geneve user's option whose length runs past the area.
    let foreign_cut = [0x01, 0x03, 0x00, 0x03, 0xde, 0xad, 0xbe, 0xef];
    let judged: Vec<(Vec<u8>, Vec<&str>)> = vec![
        // 5-7: FRAGMENT's slice_count above 8 (with a good index, then
        // with an index not below it either), and 0.
        (sealed(&fragment(2, 9, 0x00)), vec!["bad_value"]),
        (sealed(&fragment(9, 9, 0x03)), vec!["bad_value"]),
        (sealed(&fragment(0, 0, 0x00)), vec!["bad_value"]),
        // 8-9: no IntelliNode option at all: no options, a foreign one.
        (vec![], vec!["missing_mac"]),
        (foreign.to_vec(), vec!["missing_mac"]),
        // 10-11: an option of another class running past the area, alone
        // and after a sealed set.
        (foreign_cut.to_vec(), vec!["truncated"]),
        (
            [sealed(&tensor), foreign_cut.to_vec()].concat(),
            vec!["truncated"],
        ),
    ];
    let mut keys = MetadataKeys::new();
    keys.insert(key.clone()).unwrap();
    for (options, want) in &judged {
        let code = MetadataRepr::parse_verified(options, &flow, &keys)
            .expect_err("every judged frame is refused")
            .code();
        assert_eq!(format!("meta.{}", want[0]), code, "the receiver's code");
    }
    let frames: Vec<Vec<u8>> = [a.clone(), b.clone(), c, d]
        .into_iter()
        .chain(judged.iter().map(|(o, _)| replace_options(&a, o)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("geneve.pcap");
    write_frames(&pcap, &frames);

    let fields = [
        "geneve.vni",
        "intellinode.geneve.option.class",
        "intellinode.geneve.option.type",
        "intellinode.geneve.option.critical",
        "intellinode.geneve.option.length",
        "intellinode.geneve.fragment.message_id",
        "intellinode.geneve.fragment.slice_index",
        "intellinode.geneve.fragment.slice_count",
        "intellinode.geneve.fragment.last",
        "intellinode.geneve.fragment.path",
        "intellinode.geneve.fragment.stream_seq",
        "intellinode.geneve.tensor.type",
        "intellinode.geneve.tensor.gradient_sync",
        "intellinode.geneve.tensor.pipeline_stage",
        "intellinode.geneve.tensor.batch_position",
        "intellinode.geneve.phase.phase",
        "intellinode.geneve.phase.iteration",
        "intellinode.geneve.capability.node_id",
        "intellinode.geneve.capability.compute_weight",
        "intellinode.geneve.capability.gpu_utilisation",
        "intellinode.geneve.prediction.path_id",
        "intellinode.geneve.prediction.horizon_ms",
        "intellinode.geneve.prediction.congestion_risk",
        "intellinode.geneve.prediction.available_mbps",
        "intellinode.geneve.offload.op",
        "intellinode.geneve.offload.decision",
        "intellinode.geneve.offload.reducer_id",
        "intellinode.geneve.mac.key_id",
        "intellinode.geneve.mac.tag",
        "intellinode.geneve.mac_not_last",
        "intellinode.geneve.duplicate",
        "intellinode.geneve.missing_mac",
        "intellinode.geneve.bad_length",
        "intellinode.geneve.truncated",
        "intellinode.geneve.bad_value",
        "udp.dstport",
    ];
    let rows = dissect(&pcap, &fields);
    assert_eq!(rows.len(), frames.len());
    let (ra, rb, rc, rd) = (&rows[0], &rows[1], &rows[2], &rows[3]);

    for row in [ra, rb] {
        assert_eq!(num(row, "geneve.vni"), 0xab_cdef);
        for e in [
            "mac_not_last",
            "duplicate",
            "missing_mac",
            "bad_length",
            "truncated",
            "bad_value",
        ] {
            assert_eq!(row[&format!("intellinode.geneve.{e}")], "", "{e}: {row:?}");
        }
        assert_eq!(get(row, "intellinode.geneve.mac.key_id"), "7");
    }
    assert_eq!(
        get(ra, "intellinode.geneve.option.type"),
        "0x81,0x02,0x03,0x04,0xff"
    );
    assert_eq!(get(ra, "intellinode.geneve.option.critical"), "1,0,0,0,1");
    assert_eq!(get(ra, "intellinode.geneve.option.length"), "3,2,2,2,5");
    assert_eq!(
        num(ra, "intellinode.geneve.fragment.message_id"),
        0xdead_beef
    );
    assert_eq!(num(ra, "intellinode.geneve.fragment.slice_index"), 2);
    assert_eq!(num(ra, "intellinode.geneve.fragment.slice_count"), 4);
    assert_eq!(num(ra, "intellinode.geneve.fragment.last"), 1);
    assert_eq!(num(ra, "intellinode.geneve.fragment.path"), 3);
    assert_eq!(
        num(ra, "intellinode.geneve.fragment.stream_seq"),
        0xffff_fffe
    );
    assert_eq!(
        num(ra, "intellinode.geneve.tensor.type"),
        TensorType::Activation as u64
    );
    assert_eq!(num(ra, "intellinode.geneve.tensor.gradient_sync"), 1);
    assert_eq!(num(ra, "intellinode.geneve.tensor.pipeline_stage"), 5);
    assert_eq!(num(ra, "intellinode.geneve.tensor.batch_position"), 0x1234);
    assert_eq!(
        num(ra, "intellinode.geneve.phase.phase"),
        TrainingPhase::Backward as u64
    );
    assert_eq!(num(ra, "intellinode.geneve.phase.iteration"), 123_456);
    assert_eq!(num(ra, "intellinode.geneve.capability.node_id"), 42);
    assert_eq!(num(ra, "intellinode.geneve.capability.compute_weight"), 8);
    assert_eq!(
        num(ra, "intellinode.geneve.capability.gpu_utilisation"),
        200
    );
    assert_eq!(get(ra, "intellinode.geneve.mac.tag"), tag_of(&a));

    assert_eq!(get(rb, "intellinode.geneve.option.type"), "0x05,0x06,0xff");
    assert_eq!(rb["intellinode.geneve.fragment.message_id"], "");
    assert_eq!(num(rb, "intellinode.geneve.prediction.path_id"), 1);
    assert_eq!(num(rb, "intellinode.geneve.prediction.horizon_ms"), 5);
    assert_eq!(
        num(rb, "intellinode.geneve.prediction.congestion_risk"),
        128
    );
    assert_eq!(
        num(rb, "intellinode.geneve.prediction.available_mbps"),
        87_500
    );
    assert_eq!(
        num(rb, "intellinode.geneve.offload.op"),
        OffloadOp::Max as u64
    );
    assert_eq!(num(rb, "intellinode.geneve.offload.decision"), 1);
    assert_eq!(num(rb, "intellinode.geneve.offload.reducer_id"), 9);
    assert_eq!(get(rb, "intellinode.geneve.mac.tag"), tag_of(&b));

    // The foreign option is not listed as ours; the late one is, flagged.
    assert_eq!(
        get(rc, "intellinode.geneve.option.class"),
        "0xff49,0xff49,0xff49,0xff49"
    );
    assert_eq!(
        get(rc, "intellinode.geneve.option.type"),
        "0x05,0x06,0xff,0x02"
    );
    assert_eq!(get(rc, "intellinode.geneve.mac_not_last"), "1");
    assert_eq!(get(rc, "intellinode.geneve.offload.reducer_id"), "9");
    assert_eq!(get(rc, "intellinode.geneve.tensor.type"), "1");
    assert_eq!(rc["intellinode.geneve.duplicate"], "");

    assert_eq!(
        get(rd, "intellinode.geneve.option.type"),
        "0x81,0x02,0x03,0x04,0xff,0x02"
    );
    assert_eq!(get(rd, "intellinode.geneve.duplicate"), "1");
    assert_eq!(get(rd, "intellinode.geneve.mac_not_last"), "1");

    let errors = [
        "mac_not_last",
        "duplicate",
        "missing_mac",
        "bad_length",
        "truncated",
        "bad_value",
    ];
    let trees = trees(&pcap);
    for (i, (_, want)) in judged.iter().enumerate() {
        let row = &rows[4 + i];
        let raised: Vec<&str> = errors
            .iter()
            .copied()
            .filter(|e| !row[&format!("intellinode.geneve.{e}")].is_empty())
            .collect();
        assert_eq!(raised, *want, "frame {}: {row:?}", 5 + i);
        assert_eq!(num(row, "geneve.vni"), 0xab_cdef);
    }
    assert_eq!(get(&rows[4], "intellinode.geneve.bad_value"), "1");
    assert_eq!(num(&rows[4], "intellinode.geneve.fragment.slice_count"), 9);
    assert_eq!(
        get(&rows[5], "intellinode.geneve.bad_value"),
        "1,1",
        "slice_count and slice_index"
    );
    // LAST is bit 0 alone: flags 0x03 is the last packet.
    assert_eq!(num(&rows[5], "intellinode.geneve.fragment.last"), 1);
    assert!(trees[5].contains("stream seq 7, last"), "{}", trees[5]);
    assert!(!trees[4].contains("stream seq 7, last"));
    assert_eq!(get(&rows[6], "intellinode.geneve.bad_value"), "1");
    assert_eq!(rows[7]["intellinode.geneve.option.type"], "");
    assert_eq!(rows[8]["intellinode.geneve.option.type"], "");
    assert_eq!(
        get(&rows[10], "intellinode.geneve.option.type"),
        "0x02,0xff"
    );
}

#[test]
fn control_datagrams_show_their_cleartext_header() {
    const NOW: u64 = 1_700_000_000_000_000_000;
    const PEER: u32 = 0x0102_0304;
    let key = Key::from_bytes([0x5a; 32]);
    let mut tx = Sender::with_rng(
        PEER,
        key.clone(),
        1_700_000_000_000_000,
        ChaCha20Rng::seed_from_u64(1),
    );
    // §3.4's example: PATH_STATE for path 1 at 120 µs is 36 bytes of
    // plaintext, 96 on the wire.
    let path_state: Message = PathState::new(
        PathId(1),
        vec![Metric::new(
            MetricType::PathLatency,
            Unit::Microseconds,
            120.0,
        )],
    )
    .into();
    let state = tx.seal(&path_state, NOW).unwrap();
    assert_eq!(state.len(), 96);
    let query = tx
        .seal(
            &Query {
                what: QueryWhat::State,
            }
            .into(),
            NOW,
        )
        .unwrap();
    let mut rx = Receiver::new(
        vec![PeerConfig::new(PEER, "orchestrator", key, Roles::ALL)],
        ReceiverConfig::default(),
    )
    .unwrap();
    rx.accept(&state, NOW)
        .expect("the appliance accepts the state");
    let accepted = rx
        .accept(&query, NOW)
        .expect("the appliance accepts the query");
    let reply = rx
        .seal_reply(
            accepted.peer_id,
            accepted.seq,
            "{\"paths\":[]}",
            NOW,
            &mut ChaCha20Rng::seed_from_u64(2),
        )
        .unwrap();
    let mut bad_flags = state.clone();
    bad_flags[5] = 0x80;
    // REPLY (bit 0) with an undefined flag: a reply, and malformed.
    let mut reply_and_more = reply.clone();
    reply_and_more[5] = 0x03;
    let port = control::DEFAULT_PORT;
    let (client, appliance) = (Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 1));
    let to = |d: &[u8]| udp4(client, appliance, (40000, port), &[], d);
    let frames = vec![
        to(&state),
        to(&query),
        udp4(appliance, client, (port, 40000), &[], &reply),
        to(&bad_flags),
        to(&state[..50]),
        to(b"not the control protocol at all, only the same port"),
        udp4(appliance, client, (port, 40000), &[], &reply_and_more),
    ];
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("incp.pcap");
    write_frames(&pcap, &frames);
    let fields = [
        "intellinode.incp.magic",
        "intellinode.incp.version",
        "intellinode.incp.flags.reply",
        "intellinode.incp.key_id",
        "intellinode.incp.seq",
        "intellinode.incp.nonce",
        "intellinode.incp.ciphertext_len",
        "intellinode.incp.tag",
        "intellinode.incp.malformed_header",
        "intellinode.incp.truncated",
        "_ws.col.Protocol",
        "_ws.col.Info",
    ];
    let rows = dissect(&pcap, &fields);
    assert_eq!(rows.len(), frames.len());
    let seq = |d: &[u8]| u64::from_be_bytes(d[12..20].try_into().unwrap());
    for (row, d, reply_flag) in [
        (&rows[0], &state, 0),
        (&rows[1], &query, 0),
        (&rows[2], &reply, 1),
    ] {
        assert_eq!(get(row, "_ws.col.Protocol"), "INCP");
        let direction = if reply_flag == 1 {
            "INCP reply"
        } else {
            "INCP request"
        };
        assert!(get(row, "_ws.col.Info").starts_with(direction), "{row:?}");
        assert_eq!(get(row, "intellinode.incp.magic"), "INCP");
        assert_eq!(num(row, "intellinode.incp.version"), 1);
        assert_eq!(num(row, "intellinode.incp.flags.reply"), reply_flag);
        assert_eq!(
            num(row, "intellinode.incp.key_id"),
            u64::from(PEER),
            "the querying peer, both ways"
        );
        assert_eq!(num(row, "intellinode.incp.seq"), seq(d));
        assert_eq!(get(row, "intellinode.incp.nonce"), hex(&d[20..44]));
        assert_eq!(
            num(row, "intellinode.incp.ciphertext_len"),
            (d.len() - 60) as u64
        );
        assert_eq!(get(row, "intellinode.incp.tag"), hex(&d[d.len() - 16..]));
        assert_eq!(row["intellinode.incp.malformed_header"], "");
        assert_eq!(row["intellinode.incp.truncated"], "");
    }
    assert_eq!(num(&rows[0], "intellinode.incp.ciphertext_len"), 36);
    assert_eq!(
        num(&rows[1], "intellinode.incp.seq"),
        num(&rows[0], "intellinode.incp.seq") + 1
    );
    assert_eq!(get(&rows[3], "intellinode.incp.malformed_header"), "1");
    assert_eq!(get(&rows[4], "intellinode.incp.truncated"), "1");
    assert_eq!(
        rows[5]["intellinode.incp.magic"], "",
        "another protocol on the port is left alone"
    );
    assert_ne!(rows[5]["_ws.col.Protocol"], "INCP");
    assert_eq!(num(&rows[6], "intellinode.incp.flags.reply"), 1);
    assert!(
        get(&rows[6], "_ws.col.Info").starts_with("INCP reply"),
        "{:?}",
        rows[6]
    );
    assert_eq!(get(&rows[6], "intellinode.incp.malformed_header"), "1");
}

/// Builds an INUD datagram (docs/wire-format.md §8.1) by hand: the
/// emulator crate that encodes them is not a dependency of these tests.
fn inud(version: u8, kind: u8, flags: u16, id: u64, rest: &[u8]) -> Vec<u8> {
    let mut d = b"INUD".to_vec();
    d.push(version);
    d.push(kind);
    d.extend_from_slice(&flags.to_be_bytes());
    d.extend_from_slice(&id.to_be_bytes());
    d.extend_from_slice(rest);
    d
}

#[test]
fn inference_datagrams_decode_on_any_port() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"turn on the light"}],"max_tokens":16}"#;
    let tokens = |seq: u32, count: u16, text: &str| {
        [
            &seq.to_be_bytes()[..],
            &count.to_be_bytes(),
            &[0, 0],
            text.as_bytes(),
        ]
        .concat()
    };
    let id = 0x0102_0304_0506_0708;
    let datagrams: Vec<(Vec<u8>, Vec<&str>)> = vec![
        // §8.2-8.4, well formed.
        (inud(1, 1, 0, id, body), vec![]),
        (inud(1, 2, 0, id, &tokens(0, 4, " a b c d")), vec![]),
        (inud(1, 2, 1, id, &tokens(1, 2, " e f")), vec![]),
        (inud(1, 3, 0, id, b"not OpenAI JSON"), vec![]),
        // §8.5 udp_malformed, as one datagram shows them.
        (b"INUD\x01\x01\x00".to_vec(), vec!["truncated"]),
        (inud(2, 1, 0, id, body), vec!["bad_version"]),
        (inud(1, 7, 0, id, b"x"), vec!["unknown_kind"]),
        (inud(1, 1, 0, id, b""), vec!["empty_request"]),
        (inud(1, 2, 0, id, &[0, 0, 0, 1]), vec!["truncated"]),
        // Over 1400 bytes: a request (udp_oversize), tokens (udp_malformed).
        (inud(1, 1, 0, id, &[b'x'; 1385]), vec!["oversize"]),
        (
            inud(1, 2, 0, id, &tokens(0, 1, &"y".repeat(1377))),
            vec!["oversize"],
        ),
        // Exactly 1400 is allowed.
        (inud(1, 1, 0, id, &[b'x'; 1384]), vec![]),
        (b"INUX not ours".to_vec(), vec![]),
    ];
    let (agent, server) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6));
    let frames: Vec<Vec<u8>> = datagrams
        .iter()
        .enumerate()
        .map(|(i, (d, _))| {
            // Ports with no dissector of their own, several of them: the
            // magic finds the protocol, not the port.
            let port = [9000, 12345, 40404][i % 3];
            udp4(agent, server, (40000, port), &[], d)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("inud.pcap");
    write_frames(&pcap, &frames);
    let errors = [
        "truncated",
        "bad_version",
        "unknown_kind",
        "empty_request",
        "oversize",
    ];
    let mut fields = vec![
        "_ws.col.Protocol",
        "_ws.expert.message",
        "intellinode.inud.magic",
        "intellinode.inud.version",
        "intellinode.inud.kind",
        "intellinode.inud.flags",
        "intellinode.inud.flags.last",
        "intellinode.inud.request_id",
        "intellinode.inud.body",
        "intellinode.inud.seq",
        "intellinode.inud.count",
        "intellinode.inud.reserved",
        "intellinode.inud.text",
        "intellinode.inud.message",
    ];
    let error_fields: Vec<String> = errors
        .iter()
        .map(|e| format!("intellinode.inud.{e}"))
        .collect();
    fields.extend(error_fields.iter().map(String::as_str));
    let rows = dissect(&pcap, &fields);
    assert_eq!(rows.len(), frames.len());
    for (i, (row, (_, want))) in rows.iter().zip(&datagrams).enumerate() {
        let raised: Vec<&str> = errors
            .iter()
            .copied()
            .filter(|e| !row[&format!("intellinode.inud.{e}")].is_empty())
            .collect();
        assert_eq!(raised, *want, "datagram {i}: {row:?}");
        if i < datagrams.len() - 1 {
            assert_eq!(get(row, "_ws.col.Protocol"), "INUD", "datagram {i}");
            assert_eq!(get(row, "intellinode.inud.magic"), "INUD");
        }
    }
    let r = &rows[0];
    assert_eq!(num(r, "intellinode.inud.version"), 1);
    assert_eq!(num(r, "intellinode.inud.kind"), 1);
    assert_eq!(num(r, "intellinode.inud.request_id"), id);
    assert_eq!(
        get(r, "intellinode.inud.body"),
        std::str::from_utf8(body).unwrap()
    );
    let r = &rows[1];
    assert_eq!(num(r, "intellinode.inud.kind"), 2);
    assert_eq!(num(r, "intellinode.inud.seq"), 0);
    assert_eq!(num(r, "intellinode.inud.count"), 4);
    assert_eq!(num(r, "intellinode.inud.reserved"), 0);
    assert_eq!(num(r, "intellinode.inud.flags.last"), 0);
    assert_eq!(get(r, "intellinode.inud.text"), " a b c d");
    let r = &rows[2];
    assert_eq!(num(r, "intellinode.inud.flags"), 1);
    assert_eq!(num(r, "intellinode.inud.flags.last"), 1);
    assert_eq!(num(r, "intellinode.inud.seq"), 1);
    assert_eq!(num(r, "intellinode.inud.count"), 2);
    let r = &rows[3];
    assert_eq!(num(r, "intellinode.inud.kind"), 3);
    assert_eq!(get(r, "intellinode.inud.message"), "not OpenAI JSON");
    assert_eq!(num(&rows[5], "intellinode.inud.version"), 2);
    assert_eq!(
        rows[5]["intellinode.inud.body"], "",
        "a bad version is not decoded"
    );
    for i in [4, 5, 6, 7, 8, 10] {
        assert!(
            get(&rows[i], "_ws.expert.message").contains("udp_malformed"),
            "{:?}",
            rows[i]
        );
    }
    assert!(get(&rows[9], "_ws.expert.message").contains("udp_oversize"));
    assert_eq!(rows[12]["intellinode.inud.magic"], "");
}

#[test]
fn latency_stamps_decode_from_the_frame_tail() {
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let plain = udp4(a, b, (1000, 2000), &[], b"payload");
    let stamp = Stamp {
        seq: 0xfffe_0001,
        tsc: 0x0123_4567_89ab_cdef,
    };
    // As pktgen send transmits it: the stamp after the IP datagram.
    let stamped = [&plain[..], &stamp.to_bytes()].concat();
    assert_eq!(Stamp::from_tail(&stamped), Some(stamp));
    // A frame that only has the magic earlier on is not stamped.
    let not_at_end = [&stamp.to_bytes()[..], &[0u8; 4]].concat();
    let elsewhere = udp4(a, b, (1000, 2000), &[], &not_at_end);
    assert_eq!(Stamp::from_tail(&elsewhere), None);
    let frames = vec![stamped, plain, elsewhere];
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("stamp.pcap");
    write_frames(&pcap, &frames);
    let rows = dissect(
        &pcap,
        &[
            "intellinode.stamp.magic",
            "intellinode.stamp.seq",
            "intellinode.stamp.tsc",
            "udp.length",
        ],
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(num(&rows[0], "intellinode.stamp.magic"), 0x494e_4c54);
    assert_eq!(num(&rows[0], "intellinode.stamp.seq"), 0xfffe_0001);
    assert_eq!(
        num(&rows[0], "intellinode.stamp.tsc"),
        0x0123_4567_89ab_cdef
    );
    assert_eq!(
        num(&rows[0], "udp.length"),
        8 + 7,
        "the datagram is unchanged"
    );
    for row in &rows[1..] {
        assert_eq!(row["intellinode.stamp.magic"], "", "{row:?}");
    }
}

#[test]
fn probes_and_their_reflections_decode() {
    let key = Key::from_bytes([0x33; 32]);
    let request = Probe::request(&key, PathId(3), 42, 1_000_000_123);
    let mut reply = request;
    assert!(Probe::reflect_in_place(&mut reply, 77_000));
    let port = DEFAULT_PROBE_PORT;
    let (prober, reflector) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    let req_frame = udp4(prober, reflector, (port, port), &[], &request);
    let rep_frame = udp4(reflector, prober, (port, port), &[], &reply);
    // A worker looks for probes at fixed offsets: behind IPv4 options this
    // one is ordinary traffic.
    let behind_options = udp4(prober, reflector, (port, port), &[1, 1, 1, 0], &request);
    let frames = vec![req_frame, rep_frame, behind_options];
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("probe.pcap");
    write_frames(&pcap, &frames);
    let fields = [
        "intellinode.probe.magic",
        "intellinode.probe.version",
        "intellinode.probe.type",
        "intellinode.probe.path_id",
        "intellinode.probe.seq",
        "intellinode.probe.tx_ns",
        "intellinode.probe.reflect_ns",
        "intellinode.probe.tag",
        "intellinode.probe.not_recognised",
        "_ws.col.Protocol",
    ];
    let rows = dissect(&pcap, &fields);
    assert_eq!(rows.len(), 3);
    for (row, kind, reflect) in [(&rows[0], 1, 0), (&rows[1], 2, 77_000), (&rows[2], 1, 0)] {
        assert_eq!(get(row, "_ws.col.Protocol"), "INPR");
        assert_eq!(get(row, "intellinode.probe.magic"), "INPR");
        assert_eq!(num(row, "intellinode.probe.version"), 1);
        assert_eq!(num(row, "intellinode.probe.type"), kind);
        assert_eq!(num(row, "intellinode.probe.path_id"), 3);
        assert_eq!(num(row, "intellinode.probe.seq"), 42);
        assert_eq!(num(row, "intellinode.probe.tx_ns"), 1_000_000_123);
        assert_eq!(num(row, "intellinode.probe.reflect_ns"), reflect);
        assert_eq!(get(row, "intellinode.probe.tag"), hex(&request[32..48]));
    }
    assert_eq!(rows[0]["intellinode.probe.not_recognised"], "");
    assert_eq!(rows[1]["intellinode.probe.not_recognised"], "");
    assert_eq!(get(&rows[2], "intellinode.probe.not_recognised"), "1");
}
