//! What the operator sees: live per-port rates while running (in the spirit
//! of testpmd's `show port stats`), a final summary, and the JSON file.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::{io_reason, Config};
use crate::dpdk::{LcoreId, NicStats, Port, PortId, PortInfo};
use crate::stats::{LcoreReport, NicReport, PortReport, Snapshot, StatsReport, TotalsReport};

/// Live statistics printer.
pub struct Live {
    ports: Vec<(PortId, String)>,
    header: String,
    tsc_hz: u64,
}

impl Live {
    pub fn new(config: &Config, ports: &[Port], workers: &[LcoreId], tsc_hz: u64) -> Live {
        let worker_list: Vec<String> = workers.iter().map(|l| l.to_string()).collect();
        let pairs: Vec<String> = config
            .pairs
            .iter()
            .map(|p| format!("port{} <-> port{}", p.ports[0], p.ports[1]))
            .collect();
        Live {
            ports: ports
                .iter()
                .map(|p| (p.id(), p.info().name.clone()))
                .collect(),
            header: format!(
                "intellinode: pipeline {}, {}, {} worker(s) [{}], burst {}",
                config.pipeline,
                pairs.join(", "),
                workers.len(),
                worker_list.join(" "),
                config.burst_size
            ),
            tsc_hz,
        }
    }

    pub fn print_header(&self, duration: Option<Duration>, until_idle: Option<Duration>) {
        let until = match (duration, until_idle) {
            (Some(d), None) => format!("for {:.1} s", d.as_secs_f64()),
            (Some(d), Some(i)) => format!(
                "for {:.1} s or until idle for {:.1} s",
                d.as_secs_f64(),
                i.as_secs_f64()
            ),
            (None, Some(i)) => {
                format!("until idle for {:.1} s or SIGINT/SIGTERM", i.as_secs_f64())
            }
            (None, None) => "until SIGINT/SIGTERM".to_owned(),
        };
        println!("{} — running {until}", self.header);
        for (id, name) in &self.ports {
            println!("  {id}: {name}");
        }
    }

    pub fn note(&self, msg: &str) {
        println!("intellinode: {msg}");
    }

    /// One block of per-port rates between two snapshots.
    pub fn print_rates(&mut self, elapsed: Duration, prev: &Snapshot, now: &Snapshot) {
        let secs = if self.tsc_hz > 0 && now.tsc > prev.tsc {
            (now.tsc - prev.tsc) as f64 / self.tsc_hz as f64
        } else {
            1.0
        };
        println!(
            "[{:7.1}s] {:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>14}",
            elapsed.as_secs_f64(),
            "port",
            "rx Mpps",
            "rx Gbit/s",
            "tx Mpps",
            "tx Gbit/s",
            "drop pps",
            "rx total"
        );
        for (id, name) in &self.ports {
            let i = usize::from(id.0);
            let (Some(a), Some(b)) = (prev.ports.get(i), now.ports.get(i)) else {
                continue;
            };
            let rate = |x: u64, y: u64| (y.saturating_sub(x)) as f64 / secs;
            println!(
                "           {:<14} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.0} {:>14}",
                format!("{id} {name}"),
                rate(a.rx_packets, b.rx_packets) / 1e6,
                rate(a.rx_bytes, b.rx_bytes) * 8.0 / 1e9,
                rate(a.tx_packets, b.tx_packets) / 1e6,
                rate(a.tx_bytes, b.tx_bytes) * 8.0 / 1e9,
                rate(a.drops_total(), b.drops_total()),
                b.rx_packets
            );
        }
        let _ = std::io::stdout().flush();
    }

    pub fn print_summary(&self, r: &StatsReport) {
        println!(
            "\n=== intellinode {}: {:.2} s of forwarding ===",
            r.pipeline, r.duration_secs
        );
        println!(
            "  {:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
            "port", "rx packets", "rx bytes", "tx packets", "tx bytes", "drops"
        );
        for p in &r.ports {
            println!(
                "  {:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
                format!("port{} {}", p.port, p.name),
                p.rx_packets,
                p.rx_bytes,
                p.tx_packets,
                p.tx_bytes,
                p.drops_total
            );
        }
        let t = &r.totals;
        println!(
            "  total: rx {} = tx {} + drops {}  [{}]",
            t.rx_packets,
            t.tx_packets,
            t.drops_total,
            if t.balanced { "balanced" } else { "UNBALANCED" }
        );
        for p in &r.ports {
            for (reason, n) in p.drops.iter().filter(|(_, &n)| n > 0) {
                println!("  drops on port{}: {reason} {n}", p.port);
            }
            if p.nic.rx_missed + p.nic.rx_nombuf > 0 {
                println!(
                    "  port{}: the driver dropped {} packet(s) before the appliance saw them (missed {}, no mbuf {})",
                    p.port,
                    p.nic.rx_missed + p.nic.rx_nombuf,
                    p.nic.rx_missed,
                    p.nic.rx_nombuf
                );
            }
        }
        // The average hides idle time (a finite pcap drains in a fraction of
        // the run); busy cycles per packet say what a worker sustains.
        let busy_mpps = if t.cycles_per_packet > 0.0 {
            r.tsc_hz as f64 / t.cycles_per_packet / 1e6
        } else {
            0.0
        };
        println!(
            "  throughput: {:.3} Mpps average over the run; {:.1} busy cycles per packet ({:.2} Mpps per worker while busy)",
            t.mpps, t.cycles_per_packet, busy_mpps
        );
        let steered: u64 = r.decisions.values().sum();
        if steered > 0 {
            let parts: Vec<String> = r
                .decisions
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            println!("  decisions: {}", parts.join(", "));
        }
        if let Some(c) = r.control.as_object() {
            println!(
                "  control: {} accepted, {} rejected, {} views published; update-to-visible p50 {} us, p99 {} us",
                c["accepted"].as_object().map_or(0, |a| a.values().filter_map(|v| v.as_u64()).sum::<u64>()),
                c["rejected_total"],
                c["views_published"],
                c["visible_latency_us"]["p50"],
                c["visible_latency_us"]["p99"]
            );
        }
        for l in &r.lcores {
            println!(
                "  lcore{}: {} packets, {:.1} cycles/packet",
                l.lcore, l.rx_packets, l.cycles_per_packet
            );
        }
    }
}

/// Assembles the exit report from the final counters.
pub fn build(
    config: &Config,
    infos: &[PortInfo],
    used: &[u16],
    snap: &Snapshot,
    nic: &[(PortId, NicStats)],
    duration_secs: f64,
    tsc_hz: u64,
) -> StatsReport {
    let ports: Vec<PortReport> = used
        .iter()
        .filter_map(|&p| {
            let info = infos.get(usize::from(p))?;
            let c = snap.ports.get(usize::from(p)).cloned().unwrap_or_default();
            let n = nic
                .iter()
                .find(|(id, _)| id.0 == p)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            let drops = c.drops_by_name();
            Some(PortReport {
                port: p,
                name: info.name.clone(),
                driver: info.driver.clone(),
                rx_packets: c.rx_packets,
                rx_bytes: c.rx_bytes,
                tx_packets: c.tx_packets,
                tx_bytes: c.tx_bytes,
                generated_packets: c.generated_packets,
                drops_total: c.drops_total(),
                drops,
                nic: NicReport {
                    rx_packets: n.rx_packets,
                    tx_packets: n.tx_packets,
                    rx_missed: n.rx_missed,
                    rx_nombuf: n.rx_nombuf,
                    rx_errors: n.rx_errors,
                    tx_errors: n.tx_errors,
                },
            })
        })
        .collect();
    let (rx, tx, drops) = (snap.rx_total(), snap.tx_total(), snap.drops_total());
    let generated = snap.generated_total();
    StatsReport {
        pipeline: config.pipeline.to_string(),
        burst_size: config.burst_size,
        duration_secs,
        tsc_hz,
        ports,
        lcores: snap
            .lcores
            .iter()
            .map(|l| LcoreReport {
                lcore: l.lcore,
                rx_packets: l.rx_packets,
                handoffs: l.handoffs,
                busy_cycles: l.busy_cycles,
                cycles_per_packet: l.cycles_per_packet(),
            })
            .collect(),
        decisions: Default::default(),
        control: serde_json::Value::Null,
        steer: serde_json::Value::Null,
        tensor: serde_json::Value::Null,
        mempool: serde_json::Value::Null,
        totals: TotalsReport {
            rx_packets: rx,
            tx_packets: tx,
            generated_packets: generated,
            drops_total: drops,
            mpps: if duration_secs > 0.0 {
                tx as f64 / duration_secs / 1e6
            } else {
                0.0
            },
            cycles_per_packet: snap.busy_cycles_per_packet(),
            balanced: rx + generated == tx + drops,
        },
    }
}

pub fn write_json(report: &StatsReport, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(report).context("cannot encode the stats report")?;
    std::fs::write(path, text + "\n").map_err(|e| {
        anyhow::anyhow!(
            "cannot write stats to {}: {}",
            path.display(),
            io_reason(&e)
        )
    })
}
