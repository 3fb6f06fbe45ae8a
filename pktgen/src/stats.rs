//! Per-class packet counts, shared by `pktgen write`'s summary and
//! `pktgen inspect`. Classification is `classifier::parse`, the same code
//! the data plane runs, so the counts say what the appliance will see.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use classifier::{FlowKey, IpProtocol, L3Kind};

use crate::verify::check_frame;

/// Counters over a sequence of frames.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    verify: bool,
    /// Frames seen.
    pub packets: u64,
    /// Bytes seen.
    pub bytes: u64,
    /// Shortest frame.
    pub min_len: usize,
    /// Longest frame.
    pub max_len: usize,
    /// First timestamp.
    pub first_ts: Option<u64>,
    /// Last timestamp.
    pub last_ts: u64,
    flows: HashSet<FlowKey>,
    /// untagged / 802.1q / qinq.
    pub link: BTreeMap<String, u64>,
    /// ipv4 / ipv6 / arp / other EtherTypes.
    pub network: BTreeMap<String, u64>,
    /// udp / tcp / icmp / … / none.
    pub transport: BTreeMap<String, u64>,
    /// ipv4-options, ipv6-hop-by-hop, fragments, ECN CE, padded frames.
    pub features: BTreeMap<String, u64>,
    /// RoCEv2 opcodes.
    pub roce: BTreeMap<String, u64>,
    /// Parse errors by code.
    pub malformed: BTreeMap<String, u64>,
    /// Checksum failures (only when verifying).
    pub bad_checksums: BTreeMap<String, u64>,
}

fn bump(map: &mut BTreeMap<String, u64>, key: impl Into<String>) {
    *map.entry(key.into()).or_default() += 1;
}

/// `1234567` → `1.2 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn list(map: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<_> = map.iter().collect();
    // Largest first, then by name, so the dominant classes lead.
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Stats {
    /// Empty counters; `verify` also checks UDP/TCP checksums and ICRCs.
    pub fn new(verify: bool) -> Self {
        Stats {
            verify,
            min_len: usize::MAX,
            ..Stats::default()
        }
    }

    /// Distinct unidirectional flows (5-tuple, plus QP for RoCEv2).
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Seconds between the first and last frame.
    pub fn duration_s(&self) -> f64 {
        self.first_ts
            .map_or(0.0, |f| (self.last_ts.saturating_sub(f)) as f64 / 1e9)
    }

    /// Classifies and counts one frame.
    pub fn add(&mut self, ts_ns: u64, frame: &[u8]) {
        self.packets += 1;
        self.bytes += frame.len() as u64;
        self.min_len = self.min_len.min(frame.len());
        self.max_len = self.max_len.max(frame.len());
        self.first_ts.get_or_insert(ts_ns);
        self.last_ts = self.last_ts.max(ts_ns);

        let check = check_frame(frame);
        let p = match check.parsed {
            Ok(p) => p,
            Err(e) => {
                bump(&mut self.malformed, e.code());
                return;
            }
        };
        bump(
            &mut self.link,
            match p.vlans.len() {
                0 => "untagged",
                1 => "802.1q",
                _ => "qinq",
            },
        );
        let network = match p.l3_kind {
            L3Kind::Ipv4 => "ipv4".to_string(),
            L3Kind::Ipv6 => "ipv6".to_string(),
            L3Kind::Arp => "arp".to_string(),
            L3Kind::Other if p.ethertype.is_length() => "802.3-llc".to_string(),
            L3Kind::Other => format!("ethertype {}", p.ethertype),
        };
        bump(&mut self.network, network);
        if let Some(proto) = p.ip_protocol {
            let name = if p.l4_offset.is_none() && proto != IpProtocol::IPV6_NO_NEXT_HEADER {
                format!("{proto} (no header: later fragment)")
            } else {
                proto.to_string()
            };
            bump(&mut self.transport, name);
        }
        if p.ipv4_options.is_some() {
            bump(&mut self.features, "ipv4-options");
        }
        if p.ipv6_hbh_options.is_some() {
            bump(&mut self.features, "ipv6-hop-by-hop");
        }
        if let Some(f) = p.fragment {
            let kind = if f.is_atomic() {
                "ipv6-atomic-fragment"
            } else if f.is_first() {
                "first-fragment"
            } else {
                "later-fragment"
            };
            bump(&mut self.features, kind);
        }
        if matches!(p.l3_kind, L3Kind::Ipv4 | L3Kind::Ipv6) && p.tos & 3 == 3 {
            bump(&mut self.features, "ecn-ce");
        }
        if usize::from(p.l3_offset) + usize::from(p.l3_len) < frame.len() {
            bump(&mut self.features, "padded");
        }
        if let Some(b) = p.bth {
            bump(&mut self.roce, b.opcode.to_string());
            if b.becn || b.fecn {
                bump(&mut self.features, "roce-fecn/becn");
            }
        }
        if let Some(k) = p.flow {
            self.flows.insert(k);
        }
        if self.verify {
            if check.l4_checksum == Some(false) {
                let proto = p
                    .ip_protocol
                    .map_or_else(|| "l4".to_string(), |p| p.to_string());
                bump(&mut self.bad_checksums, format!("{proto} checksum"));
            }
            if check.icrc == Some(false) {
                bump(&mut self.bad_checksums, "roce icrc");
            }
        }
    }

    /// The one-paragraph summary `pktgen write` prints.
    pub fn summary(&self, what: &str) -> String {
        let mut s = format!(
            "Wrote {} packets ({}, {}-{} B per frame) spanning {:.3} s to {what}: {} flows",
            self.packets,
            human_bytes(self.bytes),
            if self.packets == 0 { 0 } else { self.min_len },
            self.max_len,
            self.duration_s(),
            self.flows(),
        );
        for (label, map) in [
            ("link", &self.link),
            ("network", &self.network),
            ("transport", &self.transport),
            ("features", &self.features),
            ("RoCEv2", &self.roce),
            ("malformed", &self.malformed),
        ] {
            if !map.is_empty() {
                let _ = write!(s, "; {label}: {}", list(map));
            }
        }
        s.push('.');
        s
    }

    /// The table `pktgen inspect` prints.
    pub fn table(&self, name: &str) -> String {
        let mut s = format!(
            "{name}: {} packets, {}, {:.3} s, {} flows, frames {}-{} B\n",
            self.packets,
            human_bytes(self.bytes),
            self.duration_s(),
            self.flows(),
            if self.packets == 0 { 0 } else { self.min_len },
            self.max_len,
        );
        for (label, map) in [
            ("link", &self.link),
            ("network", &self.network),
            ("transport", &self.transport),
            ("features", &self.features),
            ("roce", &self.roce),
            ("malformed", &self.malformed),
        ] {
            if !map.is_empty() {
                let _ = writeln!(s, "  {label:<10} {}", list(map));
            }
        }
        if self.verify {
            if self.bad_checksums.is_empty() {
                let _ = writeln!(
                    s,
                    "  {:<10} all UDP/TCP checksums and RoCEv2 ICRCs verify",
                    "checksums"
                );
            } else {
                let _ = writeln!(s, "  {:<10} {} bad", "checksums", list(&self.bad_checksums));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::edge_cases::edge_cases;

    #[test]
    fn counts_edge_cases_by_class() {
        let mut st = Stats::new(true);
        let cases = edge_cases().unwrap();
        for c in &cases {
            st.add(c.packet.ts_ns, &c.packet.data);
        }
        assert_eq!(st.packets, cases.len() as u64);
        // One 802.1ad S-TAG + C-TAG and one double 0x8100 stack.
        assert_eq!(st.link["qinq"], 2);
        assert_eq!(st.network["arp"], 2);
        assert_eq!(st.network["802.3-llc"], 1);
        assert_eq!(st.network["ethertype 0xdead"], 1);
        assert_eq!(st.malformed["ethernet.truncated"], 2);
        assert_eq!(st.malformed["ipv4.bad_checksum"], 1);
        assert_eq!(st.bad_checksums["udp checksum"], 2);
        assert_eq!(st.bad_checksums["tcp checksum"], 1);
        assert_eq!(st.bad_checksums["roce icrc"], 1);
        assert_eq!(st.roce["CNP"], 1);
        assert_eq!(st.transport["udp (no header: later fragment)"], 2);
        let t = st.table("edge.pcap");
        assert!(
            t.starts_with(&format!("edge.pcap: {} packets", cases.len())),
            "{t}"
        );
        assert!(t.contains("  malformed  "));
        let s = st.summary("edge.pcap");
        assert!(!s.contains('\n'));
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
