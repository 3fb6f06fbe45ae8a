//! Turning `ctl` flags into control messages, and replies into text.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use control::thresholds::{Threshold, ThresholdId};
use control::{
    ClassWeight, FwdEntry, IpPrefix, Message, MetricType, NodeId, NodeState, PathDef, PathId,
    PathState, Policy, Query, Source, Unit,
};

use crate::ctl::{CtlCommand, ModelClass, QueryWhat, Source as CliSource};

fn source(s: CliSource) -> Source {
    match s {
        CliSource::Nominal => Source::Nominal,
        CliSource::Estimated => Source::Estimated,
        CliSource::Measured => Source::Measured,
    }
}

use control::compose::metric;

/// A path-state update with just a latency (used by `ctl stream`).
pub fn path_state_update(path: u16, latency_us: f64) -> Message {
    Message::PathState(PathState::new(
        PathId(path),
        vec![metric(
            MetricType::PathLatency,
            Unit::Microseconds,
            Source::Measured,
            latency_us,
        )],
    ))
}

/// A node-state update with just a queue length (used by `ctl stream`).
pub fn node_state_update(node: u16, queue: f64) -> Message {
    Message::NodeState(NodeState::new(
        NodeId(node),
        vec![metric(
            MetricType::QueueLength,
            Unit::Count,
            Source::Measured,
            queue,
        )],
    ))
}

pub fn query(what: QueryWhat) -> Message {
    Message::Query(Query {
        what: match what {
            QueryWhat::Stats => control::QueryWhat::Stats,
            QueryWhat::State => control::QueryWhat::State,
            QueryWhat::Feedback => control::QueryWhat::Feedback,
        },
    })
}

/// The message a state, capability or policy command sends.
pub fn build(command: &CtlCommand) -> Result<Message> {
    Ok(match command {
        CtlCommand::PathState(a) => control::PathStateFields {
            path: a.path,
            latency_us: a.latency_us,
            jitter_us: a.jitter_us,
            bandwidth_bps: a.bandwidth_bps,
            loss: a.loss,
            source: source(a.source),
        }
        .message()?,
        CtlCommand::NodeState(a) => control::NodeStateFields {
            node: a.node,
            gpu_util: a.gpu_util,
            mem_util: a.mem_util,
            queue: a.queue,
            ttft_ms: a.ttft_ms,
            source: source(a.source),
        }
        .message()?,
        CtlCommand::Capability(a) => control::CapabilityFields {
            node: a.node,
            model: a.model.clone(),
            class: match a.class {
                ModelClass::Edge => control::ModelClass::SmallEdge,
                ModelClass::Centre => control::ModelClass::LargeCentre,
            },
            accelerator: a.accelerator.clone(),
            tasks: control::task_types::TaskTypes::from_str(&a.tasks.join(","))
                .map_err(|e| anyhow!("--tasks: {e}"))?,
            max_context: a.max_context,
            prefill_tps: a.prefill_tps,
            decode_tps: a.decode_tps,
            concurrency: a.concurrency,
        }
        .message(),
        CtlCommand::Policy(a) => {
            let mut p = Policy {
                replace: a.replace,
                ..Policy::default()
            };
            for s in &a.paths {
                p.path_defs.push(parse_path(s)?);
            }
            for s in &a.routes {
                p.fwd_entries.push(parse_route(s)?);
            }
            for s in &a.class_weights {
                let (class, weight) = split_pair(s, "--class-weight", "CLASS=WEIGHT")?;
                p.class_weights.push(ClassWeight {
                    class: class
                        .parse()
                        .map_err(|_| anyhow!("--class-weight {s}: class is a number 0-255"))?,
                    weight: weight
                        .parse()
                        .map_err(|_| anyhow!("--class-weight {s}: weight is a number 1-65535"))?,
                });
            }
            for s in &a.thresholds {
                let (name, value) = split_pair(s, "--threshold", "NAME=VALUE")?;
                let id =
                    ThresholdId::from_str(name).map_err(|e| anyhow!("--threshold {s}: {e}"))?;
                let value: f64 = value
                    .parse()
                    .map_err(|_| anyhow!("--threshold {s}: value is not a number"))?;
                id.validate(value)
                    .map_err(|e| anyhow!("--threshold {s}: {e}"))?;
                p.thresholds.push(Threshold { id, value });
            }
            if p.is_empty() {
                bail!("policy needs at least one of --path, --route, --class-weight, --threshold, --replace");
            }
            Message::Policy(p)
        }
        CtlCommand::Query { what } => query(*what),
        CtlCommand::Stream(_) | CtlCommand::Keygen { .. } | CtlCommand::Apply { .. } => {
            bail!("internal: not a single message")
        }
    })
}

fn split_pair<'a>(s: &'a str, flag: &str, form: &str) -> Result<(&'a str, &'a str)> {
    s.split_once('=')
        .ok_or_else(|| anyhow!("{flag} {s}: expected {form}"))
}

/// `ID,PORT,MAC[,NAME]`.
fn parse_path(s: &str) -> Result<PathDef> {
    let parts: Vec<&str> = s.split(',').collect();
    if !(3..=4).contains(&parts.len()) {
        bail!("--path {s}: expected ID,EGRESS_PORT,NEXT_HOP_MAC[,NAME]");
    }
    let id: u16 = parts[0]
        .parse()
        .map_err(|_| anyhow!("--path {s}: id is a number 0-65535"))?;
    let egress_port: u16 = parts[1]
        .parse()
        .map_err(|_| anyhow!("--path {s}: egress port is a number"))?;
    let next_hop_mac = parse_mac(parts[2]).ok_or_else(|| {
        anyhow!(
            "--path {s}: `{}` is not a MAC like 02:00:00:00:00:01",
            parts[2]
        )
    })?;
    Ok(PathDef {
        id: PathId(id),
        egress_port,
        next_hop_mac,
        name: parts.get(3).unwrap_or(&"").to_string(),
    })
}

/// `PREFIX=PATH[,PATH...]`; a bare address is a host prefix.
fn parse_route(s: &str) -> Result<FwdEntry> {
    let (prefix, paths) = split_pair(s, "--route", "PREFIX=PATH[,PATH...]")?;
    let prefix = if prefix.contains('/') {
        IpPrefix::from_str(prefix).map_err(|e| anyhow!("--route {s}: {e}"))?
    } else {
        let addr: IpAddr = prefix
            .parse()
            .map_err(|_| anyhow!("--route {s}: `{prefix}` is not an address or prefix"))?;
        IpPrefix::new(addr, if addr.is_ipv4() { 32 } else { 128 })
            .map_err(|e| anyhow!("--route {s}: {e}"))?
    };
    let paths = paths
        .split(',')
        .map(|p| {
            p.parse::<u16>()
                .map(PathId)
                .map_err(|_| anyhow!("--route {s}: `{p}` is not a path id"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FwdEntry { prefix, paths })
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    classifier::MacAddr::from_str(s).ok().map(|m| m.0)
}

/// A query reply for people.
pub fn render_reply(what: QueryWhat, v: &serde_json::Value) -> String {
    let mut out = String::new();
    match what {
        QueryWhat::Stats => {
            if let Some(ports) = v["ports"].as_array() {
                let _ = writeln!(
                    out,
                    "{:<22} {:>14} {:>14} {:>10}",
                    "port", "rx packets", "tx packets", "drops"
                );
                for p in ports {
                    let _ = writeln!(
                        out,
                        "{:<22} {:>14} {:>14} {:>10}",
                        format!("port{} {}", p["port"], p["name"].as_str().unwrap_or("")),
                        p["rx_packets"].as_u64().unwrap_or(0),
                        p["tx_packets"].as_u64().unwrap_or(0),
                        p["drops_total"].as_u64().unwrap_or(0)
                    );
                }
            }
            for section in ["decisions", "control"] {
                if let Some(obj) = v[section].as_object() {
                    let _ = writeln!(out, "{section}:");
                    for (k, val) in obj {
                        let _ = writeln!(out, "  {k:<28} {val}");
                    }
                }
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(v).unwrap_or_default()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(
            &f,
            "[[path_state]]\npath = 1\nlatency_us = 250.0\n[[node_state]]\nnode = 2\nqueue = 3.0\nsource = \"estimated\"\n\
             [[policy]]\npaths = [\"1,1,02:00:00:00:00:0a\"]\nroutes = [\"10.0.0.0/8=1\"]\n",
        )
        .unwrap();
        let m = crate::ctl::MessageFile::messages(&f).unwrap();
        let kinds: Vec<&str> = m.iter().map(|m| m.kind().name()).collect();
        assert_eq!(kinds, vec!["PATH_STATE", "NODE_STATE", "POLICY"]);

        std::fs::write(&f, "[[path_state]]\npath = 1\nlatency = 3.0\n").unwrap();
        let e = crate::ctl::MessageFile::messages(&f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `latency`"), "{e}");
        std::fs::write(&f, "[[path_state]]\npath = 1\n").unwrap();
        let e = crate::ctl::MessageFile::messages(&f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one of"), "{e}");
        std::fs::write(&f, "").unwrap();
        assert!(crate::ctl::MessageFile::messages(&f)
            .unwrap_err()
            .to_string()
            .contains("no [[path_state]]"));
    }

    #[test]
    fn parses_paths_routes_and_macs() {
        let p = parse_path("2,1,02:00:00:00:00:0b,centre").unwrap();
        assert_eq!(
            (p.id, p.egress_port, p.next_hop_mac, p.name.as_str()),
            (PathId(2), 1, [2, 0, 0, 0, 0, 0x0b], "centre")
        );
        assert!(parse_path("2,1").is_err());
        assert!(parse_path("2,1,zz:00:00:00:00:00").is_err());
        let r = parse_route("10.0.0.0/8=1,2").unwrap();
        assert_eq!(r.paths, vec![PathId(1), PathId(2)]);
        let host = parse_route("10.1.2.3=3").unwrap();
        assert_eq!(
            host.prefix,
            IpPrefix::new("10.1.2.3".parse().unwrap(), 32).unwrap()
        );
        assert!(parse_route("10.0.0.0/8").is_err());
        assert_eq!(
            parse_mac("aa:bb:cc:dd:ee:ff"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        assert_eq!(parse_mac("aa:bb:cc:dd:ee"), None);
        assert_eq!(parse_mac("aa:bb:cc:dd:ee:ff:00"), None);
    }
}
