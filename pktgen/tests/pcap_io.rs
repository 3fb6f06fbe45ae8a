//! pcap write → read round trips, and the reader on corrupt input.

use pktgen::pcap::{read_file, write_file, PcapReader, PcapWriter, Record, TsResolution};
use pktgen::workload::{generate, WorkloadConfig, WorkloadKind};
use pktgen::Packet;
use proptest::prelude::*;

#[test]
fn workload_round_trips_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = WorkloadConfig {
        seed: 9,
        packets: 2000,
        ..WorkloadConfig::default()
    };
    for (kind, res) in [
        (WorkloadKind::Mix, TsResolution::Nano),
        (WorkloadKind::EdgeCases, TsResolution::Micro),
    ] {
        let pkts = generate(kind, &cfg).unwrap();
        let path = dir.path().join(format!("{kind}.pcap"));
        write_file(&path, res, &pkts).unwrap();
        let back = read_file(&path).unwrap();
        assert_eq!(back.len(), pkts.len());
        for (p, r) in pkts.iter().zip(&back) {
            assert_eq!(r.data, p.data);
            assert_eq!(r.orig_len as usize, p.data.len());
            let want_ts = match res {
                TsResolution::Nano => p.ts_ns,
                TsResolution::Micro => p.ts_ns / 1000 * 1000,
            };
            assert_eq!(r.ts_ns, want_ts);
        }
    }
}

fn file_bytes(packets: &[Packet], res: TsResolution) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), "mem", res).unwrap();
    for p in packets {
        w.write_packet(p.ts_ns, &p.data).unwrap();
    }
    w.finish().unwrap()
}

/// Reads everything, returning how many records came back before the end
/// or the first error. Never panics, whatever the bytes: that is the test.
fn drain(bytes: &[u8]) -> usize {
    match PcapReader::new(bytes, "fuzz") {
        Ok(r) => {
            let mut n = 0;
            for rec in r {
                match rec {
                    Ok(Record { data, orig_len, .. }) => {
                        assert!(data.len() <= orig_len as usize);
                        n += 1;
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        assert!(
                            msg.starts_with("pcap fuzz: ") && !msg.contains('\n'),
                            "{msg}"
                        );
                        break;
                    }
                }
            }
            n
        }
        Err(e) => {
            assert!(!e.to_string().contains('\n'));
            0
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn reader_survives_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        drain(&bytes);
    }

    #[test]
    fn reader_survives_corrupted_files(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        nano in any::<bool>(),
    ) {
        let pkts = generate(WorkloadKind::EdgeCases, &WorkloadConfig::default()).unwrap();
        let res = if nano { TsResolution::Nano } else { TsResolution::Micro };
        let mut bytes = file_bytes(&pkts[..8], res);
        // Keep the magic intact half of the time so the record parser is reached.
        for (at, v) in flips {
            let i = at.index(bytes.len());
            if i >= 4 || v % 2 == 0 {
                bytes[i] = v;
            }
        }
        let n = cut.index(bytes.len() + 1);
        let got = drain(&bytes[..n]);
        prop_assert!(got <= 8);
    }

    #[test]
    fn round_trip_arbitrary_records(
        recs in prop::collection::vec((0u64..4_000_000_000_000_000_000, prop::collection::vec(any::<u8>(), 0..200)), 0..20),
        nano in any::<bool>(),
    ) {
        let res = if nano { TsResolution::Nano } else { TsResolution::Micro };
        let pkts: Vec<Packet> = recs.into_iter().map(|(t, d)| Packet::new(t, d)).collect();
        let bytes = file_bytes(&pkts, res);
        let back: Vec<Record> = PcapReader::new(&bytes[..], "m").unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(back.len(), pkts.len());
        for (p, r) in pkts.iter().zip(&back) {
            prop_assert_eq!(&r.data, &p.data);
            let unit = if nano { 1 } else { 1000 };
            prop_assert_eq!(r.ts_ns, p.ts_ns / unit * unit);
        }
    }
}

#[test]
fn every_truncation_of_a_real_file_is_handled() {
    let pkts = generate(WorkloadKind::EdgeCases, &WorkloadConfig::default()).unwrap();
    let bytes = file_bytes(&pkts[..5], TsResolution::Micro);
    let mut complete = 0;
    for n in 0..=bytes.len() {
        complete = complete.max(drain(&bytes[..n]));
    }
    assert_eq!(complete, 5);
    assert_eq!(drain(&bytes), 5);
}
