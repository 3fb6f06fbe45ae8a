//! Services, instances and the paths that reach them: the static half of
//! a steering decision.
//!
//! A *service* is what agents address: a CATS service ID, here a virtual IP
//! (VIP) and its ports. Behind it stand *instances*, each a model on a
//! compute node (an edge small model, a central large one), reachable over
//! one or more *paths* (an egress port and the next hop's MAC: a low-delay
//! dedicated line, the public internet). Live state (path latency, node
//! queue, announced capability) arrives through the control plane and is
//! looked up by path and node id at decision time; what is here is the
//! configured truth and the priors used until live numbers arrive.
//!
//! The table is built once (allocating) and then only read. Lookups by VIP
//! and by instance address are linear scans over at most [`MAX_SERVICES`]
//! and [`MAX_INSTANCES`] entries, which is faster than hashing at this size.

use core::fmt;
use std::net::IpAddr;

use classifier::{IpVersion, TaskType};
use control::capability::ModelClass;
use control::ids::{NodeId, PathId};
use control::task_types::TaskTypes;

/// Services one appliance steers.
pub const MAX_SERVICES: usize = 16;
/// Instances over all services.
pub const MAX_INSTANCES: usize = 64;
/// Instances one service spreads over (the decision's inner loop).
pub const MAX_INSTANCES_PER_SERVICE: usize = 8;
/// Paths one instance is reachable by.
pub const MAX_PATHS_PER_INSTANCE: usize = 4;
/// Ports one service listens on.
pub const MAX_SERVICE_PORTS: usize = 8;

/// A path: how to leave the appliance towards some instances.
#[derive(Debug, Clone, PartialEq)]
pub struct PathSpec {
    /// Control-plane id (PATH_STATE reports and probes name it).
    pub id: PathId,
    /// Operator's name, for reports.
    pub name: String,
    /// DPDK port the path leaves by.
    pub egress_port: u16,
    /// Next hop on the path (a router, or the instance itself when it is
    /// directly attached; an instance's own MAC overrides it).
    pub next_hop_mac: [u8; 6],
    /// One-way latency assumed until the path is measured, µs.
    pub prior_latency_us: f64,
    /// Jitter assumed until the path is measured, µs.
    pub prior_jitter_us: f64,
}

/// What an instance can do, as configured; a fresh CAPABILITY announcement
/// for its node overrides each number it carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceCapability {
    /// Small edge model or large central one.
    pub model_class: ModelClass,
    /// Task types served.
    pub task_types: TaskTypes,
    /// Longest context (prompt plus output tokens).
    pub max_context_tokens: u32,
    /// Prefill rate, tokens/s.
    pub prefill_tokens_per_s: f64,
    /// Decode rate per stream, tokens/s.
    pub decode_tokens_per_s: f64,
    /// Requests served at once.
    pub concurrency: u32,
    /// Fixed part of the time to first token (scheduling, first decode
    /// step), µs.
    pub base_ttft_us: f64,
    /// A node reporting this many queued requests takes no new flow.
    pub max_queue: u32,
}

/// One instance as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    /// Operator's name.
    pub name: String,
    /// Compute node (NODE_STATE and CAPABILITY name it).
    pub node: NodeId,
    /// Address requests are rewritten to.
    pub ip: IpAddr,
    /// The instance's own MAC when directly attached to the path.
    pub mac: Option<[u8; 6]>,
    /// Paths (ids into the path list), in preference order for ties.
    pub paths: Vec<PathId>,
    /// Configured capability and priors.
    pub capability: InstanceCapability,
}

/// One service as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// Operator's name.
    pub name: String,
    /// The VIP agents address.
    pub vip: IpAddr,
    /// TCP/UDP ports of the service; empty means every port.
    pub ports: Vec<u16>,
    /// Instance names.
    pub instances: Vec<String>,
    /// Instance a new flow goes to when the flow table is full (it is then
    /// steered statelessly, so every packet of it goes there too). Defaults
    /// to the first instance.
    pub overflow_instance: Option<String>,
}

/// A path in the built table.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// As configured.
    pub spec: PathSpec,
}

/// An instance in the built table.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// As configured.
    pub spec: InstanceSpec,
    /// Indices into [`ServiceTable::paths`].
    paths: [u8; MAX_PATHS_PER_INSTANCE],
    path_count: u8,
    /// Index of the service it belongs to.
    pub service: u8,
    /// `spec.ip`, as flow keys hold it.
    key_addr: KeyAddr,
}

impl Instance {
    /// Indices into [`ServiceTable::paths`].
    pub fn path_indices(&self) -> &[u8] {
        self.paths
            .get(..usize::from(self.path_count))
            .unwrap_or(&[])
    }

    /// The MAC a request to this instance over `path` is sent to.
    pub fn next_hop_mac(&self, path: &Path) -> [u8; 6] {
        self.spec.mac.unwrap_or(path.spec.next_hop_mac)
    }

    /// Whether the configured capability covers a task and a context.
    pub fn serves(&self, task: TaskType, context_tokens: u32) -> bool {
        let c = &self.spec.capability;
        c.task_types.contains(task_bit(task)) && context_tokens <= c.max_context_tokens
    }
}

/// The capability bit of a task type.
pub const fn task_bit(task: TaskType) -> TaskTypes {
    match task {
        TaskType::ImmediateControl => TaskTypes::IMMEDIATE_CONTROL,
        TaskType::Chat => TaskTypes::CHAT,
        TaskType::CodeGeneration => TaskTypes::CODE_GENERATION,
        TaskType::Summarisation => TaskTypes::SUMMARISATION,
        TaskType::ComplexReasoning => TaskTypes::COMPLEX_REASONING,
    }
}

/// A configured address as a [`classifier::FlowKey`] holds addresses (16
/// bytes, IPv4 in mapped form), worked out once when the table is built,
/// so the per-packet lookups compare bytes instead of building an
/// [`IpAddr`] per packet and candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyAddr {
    raw: [u8; 16],
    v4: bool,
    /// An IPv6 address in IPv4-mapped form.
    mapped: bool,
}

impl KeyAddr {
    fn of(ip: &IpAddr) -> KeyAddr {
        match ip {
            IpAddr::V4(a) => KeyAddr {
                raw: a.to_ipv6_mapped().octets(),
                v4: true,
                mapped: false,
            },
            IpAddr::V6(a) => KeyAddr {
                raw: a.octets(),
                v4: false,
                mapped: a.to_ipv4_mapped().is_some(),
            },
        }
    }

    /// Whether a `FlowKey` address (`version`, `raw`) is this address:
    /// exactly `FlowKey`'s own `src_ip()`/`dst_ip()` == the address, which
    /// reads an IPv4 key's mapped bytes as IPv4 and everything else as
    /// IPv6.
    #[inline(always)]
    fn matches(&self, version: IpVersion, raw: &[u8; 16]) -> bool {
        *raw == self.raw
            && if self.v4 {
                version == IpVersion::V4
            } else {
                !(version == IpVersion::V4 && self.mapped)
            }
    }
}

/// A service in the built table.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// As configured.
    pub spec: ServiceSpec,
    ports: [u16; MAX_SERVICE_PORTS],
    port_count: u8,
    instances: [u8; MAX_INSTANCES_PER_SERVICE],
    instance_count: u8,
    /// Index of the overflow instance.
    pub overflow: u8,
    /// `spec.vip`, as flow keys hold it.
    key_addr: KeyAddr,
}

impl Service {
    /// Indices into [`ServiceTable::instances`].
    pub fn instance_indices(&self) -> &[u8] {
        self.instances
            .get(..usize::from(self.instance_count))
            .unwrap_or(&[])
    }

    /// Does the service listen on `port`?
    #[allow(clippy::manual_contains)] // measured: `contains` is a call per packet
    pub fn has_port(&self, port: u16) -> bool {
        let ports = self
            .ports
            .get(..usize::from(self.port_count))
            .unwrap_or(&[]);
        // A loop the compiler inlines, where `contains` is a call.
        ports.is_empty() || ports.iter().any(|&p| p == port)
    }
}

/// A configuration the table refuses, as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError(pub String);

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServiceError {}

/// Services, instances and paths, validated and indexed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceTable {
    paths: Vec<Path>,
    instances: Vec<Instance>,
    services: Vec<Service>,
}

fn err<T>(msg: String) -> Result<T, ServiceError> {
    Err(ServiceError(msg))
}

impl ServiceTable {
    /// Validates and indexes a configuration: ids and names unique, every
    /// reference resolves, limits respected, priors positive, and an
    /// instance's address family matches its service's VIP.
    pub fn build(
        paths: Vec<PathSpec>,
        instances: Vec<InstanceSpec>,
        services: Vec<ServiceSpec>,
    ) -> Result<ServiceTable, ServiceError> {
        if services.is_empty() {
            // Nothing would be steered: a config that says so is a mistake.
            return err("no service: at least one [[steer.services]] is needed".to_string());
        }
        if services.len() > MAX_SERVICES {
            return err(format!(
                "{} services; at most {MAX_SERVICES}",
                services.len()
            ));
        }
        if instances.len() > MAX_INSTANCES {
            return err(format!(
                "{} instances; at most {MAX_INSTANCES}",
                instances.len()
            ));
        }
        if paths.len() > usize::from(u8::MAX) {
            return err(format!("{} paths; at most 255", paths.len()));
        }
        let mut table = ServiceTable::default();
        for p in paths {
            if table.paths.iter().any(|q| q.spec.id == p.id) {
                return err(format!("path id {} is defined twice", p.id.0));
            }
            for (what, v) in [
                ("latency_us", p.prior_latency_us),
                ("jitter_us", p.prior_jitter_us),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return err(format!(
                        "path {}: {what} = {v} must be a number >= 0",
                        p.name
                    ));
                }
            }
            table.paths.push(Path { spec: p });
        }
        for spec in instances {
            if table.instances.iter().any(|i| i.spec.name == spec.name) {
                return err(format!("instance {} is defined twice", spec.name));
            }
            if spec.paths.is_empty() || spec.paths.len() > MAX_PATHS_PER_INSTANCE {
                return err(format!(
                    "instance {} has {} paths; it needs 1 to {MAX_PATHS_PER_INSTANCE}",
                    spec.name,
                    spec.paths.len()
                ));
            }
            let c = &spec.capability;
            for (what, v) in [
                ("prefill_tokens_per_s", c.prefill_tokens_per_s),
                ("decode_tokens_per_s", c.decode_tokens_per_s),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    return err(format!("instance {}: {what} = {v} must be > 0", spec.name));
                }
            }
            if !(c.base_ttft_us.is_finite() && c.base_ttft_us >= 0.0) {
                return err(format!("instance {}: base_ttft_us must be >= 0", spec.name));
            }
            if c.concurrency == 0 || c.max_queue == 0 {
                return err(format!(
                    "instance {}: concurrency and max_queue must be at least 1",
                    spec.name
                ));
            }
            let mut idx = [0u8; MAX_PATHS_PER_INSTANCE];
            for (slot, id) in idx.iter_mut().zip(&spec.paths) {
                let Some(i) = table.paths.iter().position(|p| p.spec.id == *id) else {
                    return err(format!(
                        "instance {} names undefined path {}",
                        spec.name, id.0
                    ));
                };
                *slot = i as u8;
            }
            table.instances.push(Instance {
                key_addr: KeyAddr::of(&spec.ip),
                path_count: spec.paths.len() as u8,
                paths: idx,
                service: u8::MAX,
                spec,
            });
        }
        for (si, spec) in services.into_iter().enumerate() {
            if table.services.iter().any(|s| s.spec.name == spec.name) {
                return err(format!("service {} is defined twice", spec.name));
            }
            if spec.ports.len() > MAX_SERVICE_PORTS {
                return err(format!(
                    "service {} lists {} ports; at most {MAX_SERVICE_PORTS}",
                    spec.name,
                    spec.ports.len()
                ));
            }
            if table.services.iter().any(|s| {
                s.spec.vip == spec.vip
                    && (s.spec.ports.is_empty()
                        || spec.ports.is_empty()
                        || s.spec.ports.iter().any(|p| spec.ports.contains(p)))
            }) {
                return err(format!(
                    "service {}: VIP {} and its ports overlap another service",
                    spec.name, spec.vip
                ));
            }
            if spec.instances.is_empty() || spec.instances.len() > MAX_INSTANCES_PER_SERVICE {
                return err(format!(
                    "service {} has {} instances; it needs 1 to {MAX_INSTANCES_PER_SERVICE}",
                    spec.name,
                    spec.instances.len()
                ));
            }
            let mut idx = [0u8; MAX_INSTANCES_PER_SERVICE];
            for (slot, name) in idx.iter_mut().zip(&spec.instances) {
                let Some(i) = table.instances.iter().position(|x| &x.spec.name == name) else {
                    return err(format!(
                        "service {} names undefined instance {name}",
                        spec.name
                    ));
                };
                let inst = &mut table.instances[i];
                if inst.service != u8::MAX {
                    return err(format!("instance {name} belongs to two services"));
                }
                if inst.spec.ip.is_ipv4() != spec.vip.is_ipv4() {
                    return err(format!(
                        "service {}: instance {name} ({}) and VIP {} are of different IP versions",
                        spec.name, inst.spec.ip, spec.vip
                    ));
                }
                inst.service = si as u8;
                *slot = i as u8;
            }
            let overflow = match &spec.overflow_instance {
                None => idx[0],
                Some(name) => {
                    let Some(pos) = spec.instances.iter().position(|n| n == name) else {
                        return err(format!(
                            "service {}: overflow_instance {name} is not one of its instances",
                            spec.name
                        ));
                    };
                    idx[pos]
                }
            };
            let mut ports = [0u16; MAX_SERVICE_PORTS];
            for (slot, p) in ports.iter_mut().zip(&spec.ports) {
                *slot = *p;
            }
            table.services.push(Service {
                key_addr: KeyAddr::of(&spec.vip),
                port_count: spec.ports.len() as u8,
                ports,
                instance_count: spec.instances.len() as u8,
                instances: idx,
                overflow,
                spec,
            });
        }
        if let Some(orphan) = table.instances.iter().find(|i| i.service == u8::MAX) {
            return err(format!(
                "instance {} belongs to no service",
                orphan.spec.name
            ));
        }
        Ok(table)
    }

    /// Paths, in configuration order.
    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    /// Instances, in configuration order.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// Services, in configuration order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service a request to `dst:port` addresses.
    pub fn service_for(&self, dst: IpAddr, port: u16) -> Option<u8> {
        self.services
            .iter()
            .position(|s| s.spec.vip == dst && s.has_port(port))
            .map(|i| i as u8)
    }

    /// The instance whose address is `src` and whose service listens on
    /// `port`: a response to translate back to the VIP.
    pub fn instance_for(&self, src: IpAddr, port: u16) -> Option<u8> {
        self.instances
            .iter()
            .position(|i| {
                i.spec.ip == src
                    && self
                        .services
                        .get(usize::from(i.service))
                        .is_some_and(|s| s.has_port(port))
            })
            .map(|i| i as u8)
    }

    /// [`ServiceTable::service_for`] for a destination as a
    /// [`classifier::FlowKey`] holds it (its version and 16 address bytes,
    /// IPv4 in mapped form), compared without building an [`IpAddr`].
    #[inline]
    pub fn service_for_key(&self, version: IpVersion, dst: &[u8; 16], port: u16) -> Option<u8> {
        self.services
            .iter()
            .position(|s| s.key_addr.matches(version, dst) && s.has_port(port))
            .map(|i| i as u8)
    }

    /// [`ServiceTable::instance_for`] for a source as a
    /// [`classifier::FlowKey`] holds it (see
    /// [`ServiceTable::service_for_key`]).
    #[inline]
    pub fn instance_for_key(&self, version: IpVersion, src: &[u8; 16], port: u16) -> Option<u8> {
        self.instances
            .iter()
            .position(|i| {
                i.key_addr.matches(version, src)
                    && self
                        .services
                        .get(usize::from(i.service))
                        .is_some_and(|s| s.has_port(port))
            })
            .map(|i| i as u8)
    }

    /// Whether `ip` is some service's VIP, whatever the port: a later
    /// fragment, which has no ports, may be part of a request.
    pub fn is_vip(&self, ip: IpAddr) -> bool {
        self.services.iter().any(|s| s.spec.vip == ip)
    }

    /// Whether `ip` is some instance's address, whatever the port: a later
    /// fragment may be part of a response.
    pub fn is_instance_address(&self, ip: IpAddr) -> bool {
        self.instances.iter().any(|i| i.spec.ip == ip)
    }

    /// Egress ports any path uses.
    pub fn egress_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.paths.iter().map(|p| p.spec.egress_port)
    }
}

#[cfg(test)]
mod key_addr_tests {
    use super::*;
    use classifier::{FlowKey, IpProtocol};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// `KeyAddr::matches` says exactly what comparing `FlowKey::dst_ip()` does,
    /// for IPv4 and IPv6 keys and addresses, mapped ones included.
    #[test]
    fn key_addr_is_agrees_with_flow_key_ips() {
        let v4 = [Ipv4Addr::new(10, 0, 100, 1), Ipv4Addr::new(10, 0, 100, 2)];
        let v6 = [
            "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
            Ipv4Addr::new(10, 0, 100, 1).to_ipv6_mapped(),
            Ipv6Addr::UNSPECIFIED,
        ];
        let ips: Vec<IpAddr> = v4
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(v6.iter().map(|a| IpAddr::V6(*a)))
            .collect();
        let mut keys: Vec<FlowKey> = Vec::new();
        for a in v4 {
            keys.push(FlowKey::v4(a, a, IpProtocol::TCP, 1, 2));
        }
        for a in v6 {
            keys.push(FlowKey::v6(a, a, IpProtocol::TCP, 1, 2));
        }
        // A v4 key whose bytes are not in mapped form (not what the
        // parsers build, but FlowKey allows it).
        let mut odd = FlowKey::v4(v4[0], v4[0], IpProtocol::TCP, 1, 2);
        odd.dst_addr = v6[0].octets();
        keys.push(odd);
        for k in &keys {
            for ip in &ips {
                assert_eq!(
                    KeyAddr::of(ip).matches(k.version, &k.dst_addr),
                    k.dst_ip() == *ip,
                    "{k:?} vs {ip}"
                );
            }
        }
    }
}
