//! The Geneve overlay between two appliances: options, authenticated
//! metadata and outer headers, end to end.

use std::net::Ipv4Addr;

use classifier::checksum;
use classifier::{FlowKey, IpProtocol};
use proptest::prelude::*;
use tensor::encap::{
    encap_len, entropy_port, read_encap, write_encap, EncapError, OverlayEndpoint, MBUF_HEADROOM,
    OUTER_FIXED_LEN,
};
use tensor::geneve::{
    self, GeneveError, GeneveOption, GeneveOptions, GenevePacket, GeneveRepr, ETHERTYPE_TEB,
};
use tensor::metadata::{
    flow_key_bytes, option_type, ComputeCapabilityTlv, Fragment, KeyError, MetadataError,
    MetadataKey, MetadataKeys, MetadataRepr, OffloadDecision, OffloadDecisionTlv, OffloadOp,
    PathPredictionTlv, TensorTlv, TrainingPhase, TrainingPhaseTlv, FLOW_KEY_LEN, MAX_OPTIONS_LEN,
    OPTION_CLASS, WORST_CASE_OPTIONS_LEN,
};
use tensor::{SemanticSource, TensorType};

const RFC4493_KEY: [u8; 16] = [
    0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
];

fn key() -> MetadataKey {
    MetadataKey::from_bytes(7, RFC4493_KEY)
}

fn keys() -> MetadataKeys {
    let mut k = MetadataKeys::new();
    k.insert(MetadataKey::from_bytes(3, [0x55; 16])).unwrap();
    k.insert(key()).unwrap();
    k
}

fn flow() -> FlowKey {
    FlowKey::v4(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        IpProtocol::UDP,
        49200,
        4791,
    )
    .with_dest_qpn(0x12_3456)
}

fn fragment() -> Fragment {
    Fragment {
        message_id: 0xdead_beef,
        slice_index: 2,
        slice_count: 4,
        last: true,
        path: 3,
        stream_seq: 0xffff_fffe,
    }
}

fn tensor_tlv() -> TensorTlv {
    TensorTlv {
        tensor_type: TensorType::Gradient,
        gradient_sync: true,
        pipeline_stage: 5,
        batch_position: 0x1234,
    }
}

fn phase() -> TrainingPhaseTlv {
    TrainingPhaseTlv {
        phase: TrainingPhase::Backward,
        iteration: 123_456,
    }
}

fn capability() -> ComputeCapabilityTlv {
    ComputeCapabilityTlv {
        node_id: 42,
        compute_weight: 8,
        gpu_utilisation: 200,
        flags: 0,
    }
}

fn path_prediction() -> PathPredictionTlv {
    PathPredictionTlv {
        path_id: 1,
        horizon_ms: 5,
        congestion_risk: 128,
        available_mbps: 87_500,
    }
}

fn offload() -> OffloadDecisionTlv {
    OffloadDecisionTlv {
        op: OffloadOp::Sum,
        decision: OffloadDecision::Offload,
        reducer_id: 9,
    }
}

/// The largest metadata the data plane sends.
fn worst_case() -> MetadataRepr {
    MetadataRepr {
        fragment: Some(fragment()),
        tensor: Some(tensor_tlv()),
        phase: Some(phase()),
        capability: Some(capability()),
        ..MetadataRepr::default()
    }
}

fn emit(meta: &MetadataRepr, flow: &FlowKey) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let n = meta.emit(&mut buf, flow, &key()).unwrap();
    assert_eq!(n, meta.emitted_len());
    buf[..n].to_vec()
}

/// Appends a MAC option computed the way a sender would, over `area`
/// (which must hold only IntelliNode options).
fn seal(area: &[u8], flow: &FlowKey, key: &MetadataKey) -> Vec<u8> {
    let mut msg = flow_key_bytes(flow).to_vec();
    msg.extend_from_slice(area);
    let tag = key.cmac(&msg);
    let mut data = vec![key.id(), 0, 0, 0];
    data.extend_from_slice(&tag);
    let mut out = area.to_vec();
    out.extend(option(OPTION_CLASS, option_type::MAC, &data));
    out
}

fn option(class: u16, option_type: u8, data: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 128];
    let n = geneve::emit_option(&mut buf, class, option_type, data).unwrap();
    buf[..n].to_vec()
}

// ---------------------------------------------------------------- CMAC

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn aes_cmac_rfc4493_vectors() {
    let k = MetadataKey::from_hex(1, "2b7e151628aed2a6abf7158809cf4f3c").unwrap();
    // Example 1: empty message.
    assert_eq!(
        k.cmac(&[]).to_vec(),
        hex("bb1d6929 e9593728 7fa37d12 9b756746")
    );
    // Example 2: one block.
    assert_eq!(
        k.cmac(&hex("6bc1bee2 2e409f96 e93d7e11 7393172a")).to_vec(),
        hex("070a16b4 6b4d4144 f79bdd9d d04a287c")
    );
    // Example 3: 40 bytes, a partial last block.
    let m3 = hex(
        "6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51 30c81c46 a35ce411",
    );
    assert_eq!(
        k.cmac(&m3).to_vec(),
        hex("dfa66747 de9ae630 30ca3261 1497c827")
    );
}

#[test]
fn key_from_hex_and_redacted_debug() {
    let a = MetadataKey::from_hex(9, " 2B7E151628AED2A6ABF7158809CF4F3C\n").unwrap();
    assert_eq!(a.id(), 9);
    assert_eq!(
        a.cmac(b"x"),
        MetadataKey::from_bytes(9, RFC4493_KEY).cmac(b"x")
    );
    assert_eq!(
        MetadataKey::from_hex(1, "2b7e").unwrap_err(),
        KeyError::BadHexLength(4)
    );
    assert_eq!(
        MetadataKey::from_hex(1, "2b7e151628aed2a6abf7158809cf4f3g").unwrap_err(),
        KeyError::BadHexDigit(31)
    );
    let dbg = format!("{a:?}");
    assert!(dbg.contains("redacted"), "{dbg}");
    assert!(!dbg.to_lowercase().contains("2b"), "{dbg}");
    assert!(!dbg.contains("43"), "{dbg}"); // 0x2b as decimal
}

#[test]
fn key_table_holds_four_and_rotates() {
    let mut t = MetadataKeys::new();
    for id in 0..4 {
        t.insert(MetadataKey::from_bytes(id, [id; 16])).unwrap();
    }
    assert_eq!(
        t.insert(MetadataKey::from_bytes(9, [0; 16])),
        Err(KeyError::TableFull)
    );
    // Replacing an existing id is not growth.
    t.insert(MetadataKey::from_bytes(2, [0xaa; 16])).unwrap();
    assert_eq!(
        t.get(2).unwrap().cmac(b"m"),
        MetadataKey::from_bytes(2, [0xaa; 16]).cmac(b"m")
    );
    assert!(t.remove(0));
    assert!(!t.remove(0));
    assert!(t.get(0).is_none());
    t.insert(MetadataKey::from_bytes(9, [0; 16])).unwrap();
    assert_eq!(t.get(9).unwrap().id(), 9);
}

// ---------------------------------------------------------------- Geneve

#[test]
fn geneve_header_round_trip() {
    let repr = GeneveRepr {
        oam: false,
        critical: true,
        protocol_type: ETHERTYPE_TEB,
        vni: 0xabcdef,
        options_len: 8,
    };
    let mut buf = [0u8; 20];
    assert_eq!(repr.emit(&mut buf).unwrap(), 8);
    buf[8..16].copy_from_slice(&option(0x0102, 0x83, &[1, 2, 3, 4]));
    buf[16..].copy_from_slice(b"data");
    let p = GenevePacket::new_checked(&buf[..]).unwrap();
    assert_eq!(GeneveRepr::parse(&p), repr);
    assert_eq!(p.version(), 0);
    assert_eq!(p.header_len(), 16);
    assert_eq!(p.payload(), b"data");
    let opts: Vec<_> = p.option_iter().collect();
    assert_eq!(
        opts,
        vec![Ok(GeneveOption {
            class: 0x0102,
            option_type: 0x83,
            data: &[1, 2, 3, 4],
        })]
    );
    assert!(opts[0].unwrap().is_critical());
}

#[test]
fn geneve_rejects_bad_headers() {
    assert_eq!(
        GenevePacket::new_checked(&[0u8; 7][..]).unwrap_err(),
        GeneveError::Truncated { available: 7 }
    );
    let mut b = [0u8; 8];
    b[0] = 0x40;
    assert_eq!(
        GenevePacket::new_checked(&b[..]).unwrap_err(),
        GeneveError::BadVersion(1)
    );
    b[0] = 0x01; // one word of options announced, none present
    assert_eq!(
        GenevePacket::new_checked(&b[..]).unwrap_err(),
        GeneveError::OptionsTruncated {
            options_len: 4,
            available: 0
        }
    );
    let bad = GeneveRepr {
        vni: 1 << 24,
        ..GeneveRepr::default()
    };
    assert_eq!(
        bad.emit(&mut [0; 8]).unwrap_err(),
        GeneveError::VniOutOfRange(1 << 24)
    );
    assert_eq!(
        geneve::emit_option(&mut [0; 16], 1, 1, &[1, 2, 3]).unwrap_err(),
        GeneveError::NotAligned(3)
    );
}

#[test]
fn geneve_option_iterator_stops_on_truncation() {
    let mut area = option(1, 1, &[0; 4]);
    // Announces two words of data, carries one.
    area.extend_from_slice(&[0, 2, 5, 2, 9, 9, 9, 9]);
    let mut it = GeneveOptions::new(&area);
    assert!(matches!(it.next(), Some(Ok(o)) if o.class == 1));
    assert_eq!(
        it.next(),
        Some(Err(GeneveError::OptionTruncated {
            offset: 8,
            needed: 12,
            available: 8
        }))
    );
    assert_eq!(it.next(), None);
    // A partial option header.
    let mut it = GeneveOptions::new(&[0xff, 0x49]);
    assert!(matches!(it.next(), Some(Err(_))));
    assert_eq!(it.next(), None);
}

// ---------------------------------------------------------------- metadata

#[test]
fn every_option_round_trips_alone() {
    let f = flow();
    let cases = [
        MetadataRepr::default(),
        MetadataRepr {
            fragment: Some(fragment()),
            ..Default::default()
        },
        MetadataRepr {
            tensor: Some(tensor_tlv()),
            ..Default::default()
        },
        MetadataRepr {
            phase: Some(phase()),
            ..Default::default()
        },
        MetadataRepr {
            capability: Some(capability()),
            ..Default::default()
        },
        MetadataRepr {
            path_prediction: Some(path_prediction()),
            ..Default::default()
        },
        MetadataRepr {
            offload: Some(offload()),
            ..Default::default()
        },
    ];
    for meta in cases {
        let area = emit(&meta, &f);
        assert_eq!(area.len() % 4, 0);
        assert_eq!(
            MetadataRepr::parse_verified(&area, &f, &keys()),
            Ok(meta),
            "{meta:?}"
        );
    }
}

#[test]
fn worst_case_combinations_round_trip_and_fit_the_headroom() {
    let f = flow();
    let base = MetadataRepr {
        capability: None,
        ..worst_case()
    };
    let variants = [
        MetadataRepr {
            capability: Some(capability()),
            ..base
        },
        MetadataRepr {
            path_prediction: Some(path_prediction()),
            ..base
        },
        MetadataRepr {
            offload: Some(offload()),
            ..base
        },
    ];
    for meta in variants {
        let area = emit(&meta, &f);
        assert!(area.len() <= MAX_OPTIONS_LEN);
        assert!(encap_len(&meta) <= MBUF_HEADROOM, "{}", encap_len(&meta));
        assert_eq!(MetadataRepr::parse_verified(&area, &f, &keys()), Ok(meta));
    }
    assert_eq!(
        encap_len(&worst_case()),
        OUTER_FIXED_LEN + WORST_CASE_OPTIONS_LEN
    );
    assert_eq!(encap_len(&worst_case()), 126);
    const { assert!(OUTER_FIXED_LEN + WORST_CASE_OPTIONS_LEN <= 128) };

    let all = MetadataRepr {
        path_prediction: Some(path_prediction()),
        offload: Some(offload()),
        ..worst_case()
    };
    let mut buf = [0u8; 256];
    assert_eq!(
        all.emit(&mut buf, &f, &key()),
        Err(MetadataError::TooLong {
            len: all.emitted_len(),
            max: MAX_OPTIONS_LEN
        })
    );
}

#[test]
fn wire_bytes_are_as_documented() {
    let meta = MetadataRepr {
        fragment: Some(fragment()),
        tensor: Some(tensor_tlv()),
        ..Default::default()
    };
    let area = emit(&meta, &flow());
    assert_eq!(
        &area[..16],
        &[
            0xff, 0x49, 0x81, 3, // class, FRAGMENT, 3 words
            0xde, 0xad, 0xbe, 0xef, 2, 4, 1, 3, 0xff, 0xff, 0xff, 0xfe
        ]
    );
    assert_eq!(
        &area[16..28],
        &[0xff, 0x49, 0x02, 2, 1, 1, 5, 0, 0x12, 0x34, 0, 0]
    );
    assert_eq!(&area[28..32], &[0xff, 0x49, 0xff, 5]);
    assert_eq!(&area[32..36], &[7, 0, 0, 0]);
    let mut msg = flow_key_bytes(&flow()).to_vec();
    msg.extend_from_slice(&area[..28]);
    assert_eq!(&area[36..52], &key().cmac(&msg));
}

#[test]
fn flow_key_encoding_is_as_documented() {
    let b = flow_key_bytes(&flow());
    assert_eq!(b.len(), FLOW_KEY_LEN);
    assert_eq!(&b[..4], &[4, 17, 1, 0]);
    assert_eq!(
        &b[4..20],
        &Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets()
    );
    assert_eq!(
        &b[20..36],
        &Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped().octets()
    );
    assert_eq!(&b[36..40], &[0xc0, 0x30, 0x12, 0xb7]);
    assert_eq!(&b[40..44], &[0, 0x12, 0x34, 0x56]);
    let mut no_qp = flow();
    no_qp.dest_qpn = None;
    assert_eq!(&flow_key_bytes(&no_qp)[..4], &[4, 17, 0, 0]);
}

#[test]
fn tensor_tlv_gives_authenticated_semantics() {
    let s = tensor_tlv().semantic();
    assert_eq!(s.tensor_type, TensorType::Gradient);
    assert!(s.gradient_sync);
    assert_eq!(s.source, SemanticSource::Tlv);
}

/// Offsets of the option length bytes within `area`.
fn length_byte_offsets(area: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut it = GeneveOptions::new(area);
    loop {
        let at = it.offset();
        if it.next().is_none() {
            break;
        }
        v.push(at + 3);
    }
    v
}

#[test]
fn any_flipped_bit_of_the_covered_options_or_tag_is_bad_mac() {
    let f = flow();
    let area = emit(&worst_case(), &f);
    let mac_at = area.len() - 24;
    let lengths = length_byte_offsets(&area);
    for i in (0..mac_at).chain(mac_at + 8..area.len()) {
        for bit in 0..8 {
            let mut t = area.clone();
            t[i] ^= 1 << bit;
            let r = MetadataRepr::parse_verified(&t, &f, &keys());
            if lengths.contains(&i) && bit < 5 {
                // The option boundaries moved: still refused, but possibly
                // as a structural error before the MAC is reached.
                assert!(r.is_err(), "byte {i} bit {bit}");
            } else {
                assert_eq!(r, Err(MetadataError::BadMac), "byte {i} bit {bit}");
            }
        }
    }
}

#[test]
fn changing_the_flow_key_is_bad_mac() {
    let f = flow();
    let area = emit(&worst_case(), &f);
    let mut others = vec![
        f.with_dest_qpn(0x12_3457),
        FlowKey {
            dest_qpn: None,
            ..f
        },
        FlowKey {
            src_port: f.src_port + 1,
            ..f
        },
        FlowKey {
            protocol: IpProtocol::TCP,
            ..f
        },
        f.reversed(),
    ];
    let mut dst = f;
    dst.dst_addr[15] ^= 1;
    others.push(dst);
    for other in others {
        assert_eq!(
            MetadataRepr::parse_verified(&area, &other, &keys()),
            Err(MetadataError::BadMac),
            "{other:?}"
        );
    }
}

#[test]
fn unknown_key_and_wrong_key() {
    let f = flow();
    let area = emit(&worst_case(), &f);
    let mut only_other = MetadataKeys::new();
    only_other
        .insert(MetadataKey::from_bytes(3, [0x55; 16]))
        .unwrap();
    assert_eq!(
        MetadataRepr::parse_verified(&area, &f, &only_other),
        Err(MetadataError::UnknownKey(7))
    );
    assert!(MetadataError::UnknownKey(7).is_auth_failure());
    // Same id, different key material.
    let mut impostor = MetadataKeys::new();
    impostor
        .insert(MetadataKey::from_bytes(7, [0x11; 16]))
        .unwrap();
    assert_eq!(
        MetadataRepr::parse_verified(&area, &f, &impostor),
        Err(MetadataError::BadMac)
    );
}

#[test]
fn missing_mac() {
    let f = flow();
    let area = emit(&worst_case(), &f);
    let without = &area[..area.len() - 24];
    assert_eq!(
        MetadataRepr::parse_verified(without, &f, &keys()),
        Err(MetadataError::MissingMac)
    );
    assert_eq!(
        MetadataRepr::parse_verified(&[], &f, &keys()),
        Err(MetadataError::MissingMac)
    );
    // Only foreign options: still no IntelliNode metadata.
    let foreign = option(0x0100, 0x01, &[0; 8]);
    assert_eq!(
        MetadataRepr::parse_verified(&foreign, &f, &keys()),
        Err(MetadataError::MissingMac)
    );
}

#[test]
fn foreign_options_are_skipped_anywhere() {
    let f = flow();
    let meta = worst_case();
    let area = emit(&meta, &f);
    let foreign = option(0x0101, 0x85, &[0xaa; 8]);
    // Before, between (after the first option) and after the MAC.
    let mut mixed = foreign.clone();
    mixed.extend_from_slice(&area[..16]);
    mixed.extend_from_slice(&option(0xff48, 0x02, &[0xbb; 4]));
    mixed.extend_from_slice(&area[16..]);
    mixed.extend_from_slice(&foreign);
    assert_eq!(MetadataRepr::parse_verified(&mixed, &f, &keys()), Ok(meta));
}

#[test]
fn mac_must_be_last_and_unique() {
    let f = flow();
    let area = emit(&worst_case(), &f);
    let mut after = area.clone();
    after.extend(option(OPTION_CLASS, option_type::TENSOR_TYPE, &[0; 8]));
    assert_eq!(
        MetadataRepr::parse_verified(&after, &f, &keys()),
        Err(MetadataError::MacNotLast)
    );
    let mut two = area.clone();
    two.extend_from_slice(&area[area.len() - 24..]);
    assert_eq!(
        MetadataRepr::parse_verified(&two, &f, &keys()),
        Err(MetadataError::MacNotLast)
    );
}

#[test]
fn authenticated_but_malformed_options_are_refused() {
    let f = flow();
    let k = key();
    let check = |area: Vec<u8>, want: MetadataError| {
        assert_eq!(
            MetadataRepr::parse_verified(&seal(&area, &f, &k), &f, &keys()),
            Err(want)
        );
    };
    check(
        option(
            OPTION_CLASS,
            option_type::TENSOR_TYPE,
            &[9, 0, 0, 0, 0, 0, 0, 0],
        ),
        MetadataError::BadValue {
            option_type: option_type::TENSOR_TYPE,
            field: "tensor_type",
            value: 9,
        },
    );
    check(
        option(OPTION_CLASS, option_type::TENSOR_TYPE, &[1, 0, 0, 0]),
        MetadataError::BadLength {
            option_type: option_type::TENSOR_TYPE,
            len: 4,
        },
    );
    check(
        option(
            OPTION_CLASS,
            option_type::TRAINING_PHASE,
            &[6, 0, 0, 0, 0, 0, 0, 0],
        ),
        MetadataError::BadValue {
            option_type: option_type::TRAINING_PHASE,
            field: "phase",
            value: 6,
        },
    );
    check(
        option(
            OPTION_CLASS,
            option_type::FRAGMENT,
            &[0, 0, 0, 1, 4, 4, 0, 0, 0, 0, 0, 0],
        ),
        MetadataError::BadValue {
            option_type: option_type::FRAGMENT,
            field: "slice_index",
            value: 4,
        },
    );
    check(
        option(OPTION_CLASS, option_type::COMPUTE_CAPABILITY, &[0; 8]),
        MetadataError::BadValue {
            option_type: option_type::COMPUTE_CAPABILITY,
            field: "compute_weight",
            value: 0,
        },
    );
    check(
        option(OPTION_CLASS, option_type::OFFLOAD_DECISION, &[1, 2, 0, 0]),
        MetadataError::BadValue {
            option_type: option_type::OFFLOAD_DECISION,
            field: "decision",
            value: 2,
        },
    );
    // §7.3: a plan has 1 to 8 lanes; a FRAGMENT claiming 9 (or 255) is
    // malformed, and 8 is the largest accepted.
    for count in [9u8, 255] {
        check(
            option(
                OPTION_CLASS,
                option_type::FRAGMENT,
                &[0, 0, 0, 1, 0, count, 0, 1, 0, 0, 0, 7],
            ),
            MetadataError::BadValue {
                option_type: option_type::FRAGMENT,
                field: "slice_count",
                value: u32::from(count),
            },
        );
    }
    let eight = option(
        OPTION_CLASS,
        option_type::FRAGMENT,
        &[0, 0, 0, 1, 7, 8, 0, 1, 0, 0, 0, 7],
    );
    let got = MetadataRepr::parse_verified(&seal(&eight, &f, &k), &f, &keys());
    assert_eq!(got.map(|m| m.fragment.map(|f| f.slice_count)), Ok(Some(8)));
    let mut dup = option(
        OPTION_CLASS,
        option_type::TRAINING_PHASE,
        &[1, 0, 0, 0, 0, 0, 0, 1],
    );
    dup.extend(dup.clone());
    check(dup, MetadataError::Duplicate(option_type::TRAINING_PHASE));
    check(
        option(OPTION_CLASS, 0x90, &[0; 4]),
        MetadataError::UnknownCritical(0x90),
    );
    // A MAC option of the wrong size is refused before any key lookup.
    let short_mac = option(OPTION_CLASS, option_type::MAC, &[7, 0, 0, 0]);
    assert_eq!(
        MetadataRepr::parse_verified(&short_mac, &f, &keys()),
        Err(MetadataError::BadLength {
            option_type: option_type::MAC,
            len: 4
        })
    );
}

#[test]
fn unknown_non_critical_options_are_covered_and_ignored() {
    let f = flow();
    let mut area = option(OPTION_CLASS, 0x10, &[1, 2, 3, 4]);
    area.extend(option(
        OPTION_CLASS,
        option_type::TRAINING_PHASE,
        &[5, 0, 0, 0, 0, 0, 0, 9],
    ));
    let sealed = seal(&area, &f, &key());
    let want = MetadataRepr {
        phase: Some(TrainingPhaseTlv {
            phase: TrainingPhase::InferenceDecode,
            iteration: 9,
        }),
        ..Default::default()
    };
    assert_eq!(MetadataRepr::parse_verified(&sealed, &f, &keys()), Ok(want));
    let mut t = sealed.clone();
    t[5] ^= 1; // inside the unknown option: covered all the same
    assert_eq!(
        MetadataRepr::parse_verified(&t, &f, &keys()),
        Err(MetadataError::BadMac)
    );
}

#[test]
fn emit_refuses_what_a_receiver_would_reject() {
    let f = flow();
    let mut buf = [0u8; 128];
    let bad_frag = MetadataRepr {
        fragment: Some(Fragment {
            slice_count: 0,
            slice_index: 0,
            ..fragment()
        }),
        ..Default::default()
    };
    assert!(matches!(
        bad_frag.emit(&mut buf, &f, &key()),
        Err(MetadataError::BadValue { .. })
    ));
    let meta = worst_case();
    assert_eq!(
        meta.emit(&mut buf[..10], &f, &key()),
        Err(MetadataError::BufferTooSmall {
            needed: meta.emitted_len(),
            available: 10
        })
    );
}

/// The per-code counters' keys: every error a receiver can meet has its
/// own code, `code()` and the list agree, and emit-only errors have none.
#[test]
fn receive_codes_name_every_receivable_error_once() {
    let received = [
        MetadataError::Truncated { offset: 0 },
        MetadataError::MacNotLast,
        MetadataError::BadLength {
            option_type: 2,
            len: 4,
        },
        MetadataError::MissingMac,
        MetadataError::UnknownKey(9),
        MetadataError::BadMac,
        MetadataError::BadValue {
            option_type: 2,
            field: "tensor_type",
            value: 9,
        },
        MetadataError::Duplicate(3),
        MetadataError::UnknownCritical(0x90),
    ];
    let mut indices: Vec<usize> = received
        .iter()
        .map(|e| {
            let i = e.receive_index().unwrap();
            assert_eq!(MetadataError::RECEIVE_CODES[i], e.code(), "{e:?}");
            i
        })
        .collect();
    indices.sort_unstable();
    assert_eq!(
        indices,
        (0..MetadataError::RECEIVE_CODES.len()).collect::<Vec<_>>()
    );
    for e in [
        MetadataError::TooLong { len: 96, max: 76 },
        MetadataError::BufferTooSmall {
            needed: 24,
            available: 0,
        },
    ] {
        assert_eq!(e.receive_index(), None, "{e:?}");
    }
}

#[test]
fn truncated_options_area() {
    let f = flow();
    let area = emit(&worst_case(), &f);
    for cut in [1, 2, 3, 5, 17] {
        let r = MetadataRepr::parse_verified(&area[..area.len() - cut], &f, &keys());
        assert!(
            matches!(r, Err(MetadataError::Truncated { .. })),
            "{cut}: {r:?}"
        );
    }
}

// ---------------------------------------------------------------- outer

fn endpoint() -> OverlayEndpoint {
    OverlayEndpoint {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_ip: Ipv4Addr::new(192, 168, 100, 1),
        dst_ip: Ipv4Addr::new(192, 168, 100, 2),
        vni: 0x49_4e44,
    }
}

/// A RoCEv2 RDMA WRITE Only frame, 10.0.0.1:49200 → 10.0.0.2:4791, QP
/// 0x123456, with its (unchecked) ICRC.
fn inner_frame() -> Vec<u8> {
    let payload = [0x5au8; 64];
    let udp_len = 8 + 12 + payload.len() + 4;
    let ip_len = 20 + udp_len;
    let mut f = vec![0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa, 0x08, 0x00];
    let mut ip = vec![0x45, 0x02];
    ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&49200u16.to_be_bytes());
    f.extend_from_slice(&4791u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    // BTH: opcode 0x0A (RC WRITE Only), P_Key ffff, dest QP, PSN.
    f.extend_from_slice(&[0x0a, 0, 0xff, 0xff, 0, 0x12, 0x34, 0x56, 0, 0, 0, 1]);
    f.extend_from_slice(&payload);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f
}

fn encapsulate(meta: &MetadataRepr, inner: &[u8], flow: &FlowKey) -> Vec<u8> {
    let mut hdr = [0u8; MBUF_HEADROOM];
    let n = write_encap(
        &mut hdr,
        &endpoint(),
        0xbeef,
        inner.len(),
        meta,
        flow,
        &key(),
    )
    .unwrap();
    assert_eq!(n, encap_len(meta));
    let mut frame = hdr[..n].to_vec();
    frame.extend_from_slice(inner);
    frame
}

fn fix_ip_checksum(frame: &mut [u8]) {
    frame[24] = 0;
    frame[25] = 0;
    let c = checksum::checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn write_then_read_encap_round_trips() {
    let inner = inner_frame();
    let flow = classifier::parse(&inner).unwrap().flow.unwrap();
    assert_eq!(flow.dest_qpn, Some(0x12_3456));
    let meta = worst_case();
    let frame = encapsulate(&meta, &inner, &flow);
    assert!(encap_len(&meta) <= MBUF_HEADROOM);

    // The outer IPv4 header verifies and says what we asked for.
    assert_eq!(checksum::checksum(&frame[14..34]), 0);
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    assert_eq!(frame[14], 0x45);
    assert_eq!(&frame[20..22], &[0x40, 0x00], "DF, no fragment offset");
    assert_eq!(frame[22], 64);
    assert_eq!(frame[23], 17);
    assert_eq!(
        u16::from_be_bytes([frame[16], frame[17]]) as usize,
        frame.len() - 14
    );
    let sport = u16::from_be_bytes([frame[34], frame[35]]);
    assert!(sport >= 49152);
    assert_eq!(u16::from_be_bytes([frame[36], frame[37]]), 6081);
    assert_eq!(
        u16::from_be_bytes([frame[38], frame[39]]) as usize,
        frame.len() - 34
    );
    assert_eq!(&frame[40..42], &[0, 0], "UDP checksum 0");
    assert_eq!(frame[43] & 0x40, 0x40, "Geneve C bit: the MAC is critical");

    // The whole frame is also something the classifier understands.
    let outer_parsed = classifier::parse(&frame).unwrap();
    assert_eq!(outer_parsed.flow.unwrap().dst_port, 6081);

    let outer = read_encap(&frame).unwrap();
    assert_eq!(outer.header_len, encap_len(&meta));
    assert_eq!(outer.inner_len, inner.len());
    assert_eq!(outer.inner(&frame), &inner[..]);
    assert_eq!(outer.src_ip, endpoint().src_ip);
    assert_eq!(outer.dst_ip, endpoint().dst_ip);
    assert_eq!(outer.vni, endpoint().vni);
    assert!(outer.critical);
    assert_eq!(outer.options.len(), meta.emitted_len());

    // The receiver's whole path: outer, inner flow key, metadata.
    let rx_flow = classifier::parse(outer.inner(&frame))
        .unwrap()
        .flow
        .unwrap();
    assert_eq!(
        MetadataRepr::parse_verified(outer.options, &rx_flow, &keys()),
        Ok(meta)
    );

    // Ethernet padding after the IP datagram is not part of the inner frame.
    let mut padded = frame.clone();
    padded.extend_from_slice(&[0; 6]);
    assert_eq!(read_encap(&padded).unwrap().inner(&padded), &inner[..]);
}

#[test]
fn write_encap_errors() {
    let meta = MetadataRepr::default();
    let f = flow();
    let mut small = [0u8; 40];
    assert!(matches!(
        write_encap(&mut small, &endpoint(), 0, 100, &meta, &f, &key()),
        Err(EncapError::Truncated { .. })
    ));
    let mut hdr = [0u8; 128];
    let ep = OverlayEndpoint {
        vni: 1 << 24,
        ..endpoint()
    };
    assert_eq!(
        write_encap(&mut hdr, &ep, 0, 100, &meta, &f, &key()),
        Err(EncapError::VniOutOfRange(1 << 24))
    );
    assert!(matches!(
        write_encap(&mut hdr, &endpoint(), 0, 65_500, &meta, &f, &key()),
        Err(EncapError::TooLong(_))
    ));
    let all = MetadataRepr {
        path_prediction: Some(path_prediction()),
        offload: Some(offload()),
        ..worst_case()
    };
    let mut big = [0u8; 512];
    assert!(matches!(
        write_encap(&mut big, &endpoint(), 0, 100, &all, &f, &key()),
        Err(EncapError::Metadata(MetadataError::TooLong { .. }))
    ));
}

#[test]
fn read_encap_names_each_defect() {
    let inner = inner_frame();
    let flow = classifier::parse(&inner).unwrap().flow.unwrap();
    let good = encapsulate(&worst_case(), &inner, &flow);
    let code = |f: &[u8]| read_encap(f).unwrap_err().code();

    assert_eq!(code(&good[..10]), "truncated");
    let mut f = good.clone();
    f[12] = 0x86;
    f[13] = 0xdd;
    assert_eq!(code(&f), "not_ipv4");
    let mut f = good.clone();
    f[14] = 0x65;
    assert_eq!(code(&f), "bad_ip_version");
    let mut f = good.clone();
    f[14] = 0x44;
    assert_eq!(code(&f), "bad_ihl");
    let mut f = good.clone();
    f[16] = 0xff;
    fix_ip_checksum(&mut f);
    assert_eq!(code(&f), "bad_total_length");
    let mut f = good.clone();
    f[30] ^= 1;
    assert_eq!(code(&f), "bad_ip_checksum");
    let mut f = good.clone();
    f[20] = 0x20; // MF
    fix_ip_checksum(&mut f);
    assert_eq!(code(&f), "ip_fragment");
    let mut f = good.clone();
    f[23] = 6;
    fix_ip_checksum(&mut f);
    assert_eq!(code(&f), "not_udp");
    let mut f = good.clone();
    f[39] ^= 4;
    assert_eq!(code(&f), "bad_udp_length");
    let mut f = good.clone();
    f[41] = 1;
    assert_eq!(code(&f), "bad_udp_checksum");
    let mut f = good.clone();
    f[37] = 0xb7; // 4791
    f[36] = 0x12;
    assert_eq!(code(&f), "not_geneve");
    let mut f = good.clone();
    f[42] |= 0x40;
    assert_eq!(code(&f), "bad_geneve_version");
    let mut f = good.clone();
    f[42] = 0x3f; // 252 bytes of options: more than the datagram holds
    let short = {
        // Trim the inner frame so the announced options overrun.
        let n = OUTER_FIXED_LEN + 100;
        let mut s = f[..n].to_vec();
        let ip_len = (n - 14) as u16;
        s[16..18].copy_from_slice(&ip_len.to_be_bytes());
        s[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        fix_ip_checksum(&mut s);
        s
    };
    assert_eq!(code(&short), "geneve_truncated");
    let mut f = good.clone();
    f[43] |= 0x80;
    assert_eq!(code(&f), "geneve_oam");
    let mut f = good.clone();
    f[45] = 0x00; // protocol 0x6500
    assert_eq!(code(&f), "not_ethernet_payload");
    // Header only, inner frame of 4 bytes.
    let mut f = good[..encap_len(&worst_case()) + 4].to_vec();
    let ip_len = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    fix_ip_checksum(&mut f);
    assert_eq!(code(&f), "inner_truncated");

    // A correct non-zero UDP checksum is accepted.
    let mut f = good.clone();
    let ph = checksum::PseudoHeader::V4 {
        src: endpoint().src_ip,
        dst: endpoint().dst_ip,
    };
    let c = ph.checksum(IpProtocol::UDP, &f[34..]);
    f[40..42].copy_from_slice(&c.to_be_bytes());
    assert!(read_encap(&f).is_ok());
}

#[test]
fn error_codes_are_distinct() {
    let all = [
        EncapError::Truncated {
            needed: 0,
            available: 0,
        },
        EncapError::NotIpv4(0),
        EncapError::BadIpVersion(0),
        EncapError::BadIhl(0),
        EncapError::BadTotalLength(0),
        EncapError::BadIpChecksum,
        EncapError::IpFragment,
        EncapError::NotUdp(0),
        EncapError::BadUdpLength(0),
        EncapError::BadUdpChecksum,
        EncapError::NotGeneve(0),
        EncapError::GeneveTruncated,
        EncapError::BadGeneveVersion(0),
        EncapError::GeneveOam,
        EncapError::NotEthernetPayload(0),
        EncapError::InnerTruncated(0),
        EncapError::VniOutOfRange(0),
        EncapError::TooLong(0),
        EncapError::Metadata(MetadataError::BadMac),
    ];
    let mut codes: Vec<_> = all.iter().map(|e| e.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
    for e in all {
        assert!(!e.to_string().is_empty());
    }
}

// ---------------------------------------------------------------- properties

fn arb_meta() -> impl Strategy<Value = MetadataRepr> {
    let frag = (
        any::<u32>(),
        1u8..=8,
        any::<bool>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_flat_map(|(message_id, slice_count, last, path, stream_seq)| {
            (0..slice_count).prop_map(move |slice_index| Fragment {
                message_id,
                slice_index,
                slice_count,
                last,
                path,
                stream_seq,
            })
        });
    let tensor =
        (0u8..4, any::<bool>(), any::<u8>(), any::<u16>()).prop_map(|(c, g, s, b)| TensorTlv {
            tensor_type: TensorType::from_code(c).unwrap(),
            gradient_sync: g,
            pipeline_stage: s,
            batch_position: b,
        });
    let phase = (0u8..6, any::<u32>()).prop_map(|(p, i)| TrainingPhaseTlv {
        phase: TrainingPhase::from_code(p).unwrap(),
        iteration: i,
    });
    let cap = (any::<u32>(), 1u16.., any::<u8>(), any::<u8>()).prop_map(|(n, w, g, fl)| {
        ComputeCapabilityTlv {
            node_id: n,
            compute_weight: w,
            gpu_utilisation: g,
            flags: fl,
        }
    });
    let path = (any::<u8>(), any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(p, h, r, b)| {
        PathPredictionTlv {
            path_id: p,
            horizon_ms: h,
            congestion_risk: r,
            available_mbps: b,
        }
    });
    let off = (1u8..=4, 0u8..=1, any::<u16>()).prop_map(|(o, d, r)| OffloadDecisionTlv {
        op: OffloadOp::from_code(o).unwrap(),
        decision: OffloadDecision::from_code(d).unwrap(),
        reducer_id: r,
    });
    (
        proptest::option::of(frag),
        proptest::option::of(tensor),
        proptest::option::of(phase),
        0u8..4,
        cap,
        path,
        off,
    )
        .prop_map(|(fragment, tensor, phase, which, c, p, o)| MetadataRepr {
            fragment,
            tensor,
            phase,
            capability: (which == 1).then_some(c),
            path_prediction: (which == 2).then_some(p),
            offload: (which == 3).then_some(o),
        })
}

proptest! {
    #[test]
    fn parse_verified_never_panics(area in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = MetadataRepr::parse_verified(&area, &flow(), &keys());
        for o in GeneveOptions::new(&area) {
            let _ = o;
        }
        if let Ok(p) = GenevePacket::new_checked(&area[..]) {
            let _ = (GeneveRepr::parse(&p), p.payload(), p.option_iter().count());
        }
    }

    #[test]
    fn read_encap_never_panics(frame in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(outer) = read_encap(&frame) {
            let _ = outer.inner(&frame);
            let _ = MetadataRepr::parse_verified(outer.options, &flow(), &keys());
        }
    }

    #[test]
    fn mutated_overlay_frames_never_panic(
        edits in proptest::collection::vec((0usize..200, any::<u8>()), 1..6),
        cut in 0usize..200,
    ) {
        let inner = inner_frame();
        let flow = classifier::parse(&inner).unwrap().flow.unwrap();
        let mut f = encapsulate(&worst_case(), &inner, &flow);
        for (i, v) in edits {
            let n = f.len();
            f[i % n] = v;
        }
        f.truncate(f.len().saturating_sub(cut));
        if let Ok(outer) = read_encap(&f) {
            let _ = MetadataRepr::parse_verified(outer.options, &flow, &keys());
        }
    }

    #[test]
    fn any_metadata_within_budget_round_trips(meta in arb_meta(), qpn in 0u32..1 << 24) {
        let f = flow().with_dest_qpn(qpn);
        prop_assert!(meta.emitted_len() <= MAX_OPTIONS_LEN);
        let area = emit(&meta, &f);
        prop_assert_eq!(MetadataRepr::parse_verified(&area, &f, &keys()), Ok(meta));
        let inner = inner_frame();
        let frame = encapsulate(&meta, &inner, &f);
        prop_assert!(frame.len() - inner.len() <= MBUF_HEADROOM);
        let outer = read_encap(&frame).unwrap();
        prop_assert_eq!(outer.inner(&frame), &inner[..]);
        prop_assert_eq!(MetadataRepr::parse_verified(outer.options, &f, &keys()), Ok(meta));
    }

    #[test]
    fn entropy_port_is_dynamic(e in any::<u16>()) {
        prop_assert!(entropy_port(e) >= 49152);
    }
}
