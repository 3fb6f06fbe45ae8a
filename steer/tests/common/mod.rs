//! Builders shared by the steer integration tests: the edge/centre
//! service of `examples/steer.toml` and its latency models.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use classifier::{TaskType, TokenFeatures};
use control::capability::ModelClass;
use control::ids::{NodeId, PathId};
use control::task_types::TaskTypes;
use predictor::InstanceModel;
use steer::service::{InstanceCapability, InstanceSpec, PathSpec, ServiceSpec};
use steer::ServiceTable;

pub const EDGE: u8 = 0;
pub const CENTRE: u8 = 1;
pub const MS: u64 = 1_000_000;

/// The IPv4 service (VIP 10.0.100.1, edge 10.0.2.2, centre 10.0.3.2).
pub fn table() -> ServiceTable {
    table_with(false)
}

/// The same service over IPv6 (VIP fd00:0:0:100::1, edge fd00:0:0:2::2,
/// centre fd00:0:0:3::2), as a second service "chat6" with instances
/// "edge6" and "centre6".
pub fn dual_stack_table() -> ServiceTable {
    table_with(true)
}

fn table_with(with_v6: bool) -> ServiceTable {
    let path = |id: u16, name: &str, port: u16, lat: f64, jit: f64| PathSpec {
        id: PathId(id),
        name: name.into(),
        egress_port: port,
        next_hop_mac: [2, 0, 0, 0, 0, id as u8],
        prior_latency_us: lat,
        prior_jitter_us: jit,
    };
    let all = TaskTypes::from_bits(TaskTypes::DEFINED).unwrap();
    let inst = |name: &str, node: u16, ip: IpAddr, paths: Vec<u16>, cap| InstanceSpec {
        name: name.into(),
        node: NodeId(node),
        ip,
        mac: None,
        paths: paths.into_iter().map(PathId).collect(),
        capability: cap,
    };
    let edge_cap = InstanceCapability {
        model_class: ModelClass::SmallEdge,
        task_types: all,
        max_context_tokens: 8192,
        prefill_tokens_per_s: 2_000.0,
        decode_tokens_per_s: 40.0,
        concurrency: 2,
        base_ttft_us: 3_000.0,
        max_queue: 8,
    };
    let centre_cap = InstanceCapability {
        model_class: ModelClass::LargeCentre,
        task_types: all,
        max_context_tokens: 131_072,
        prefill_tokens_per_s: 20_000.0,
        decode_tokens_per_s: 100.0,
        concurrency: 32,
        base_ttft_us: 8_000.0,
        max_queue: 256,
    };
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let v6 = |net: u16, host: u16| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, net, 0, 0, 0, host));
    let mut instances = vec![
        inst("edge", 1, v4(10, 0, 2, 2), vec![1], edge_cap),
        inst("centre", 2, v4(10, 0, 3, 2), vec![2], centre_cap),
    ];
    let mut services = vec![ServiceSpec {
        name: "chat".into(),
        vip: v4(10, 0, 100, 1),
        ports: vec![8000],
        instances: vec!["edge".into(), "centre".into()],
        overflow_instance: None,
    }];
    if with_v6 {
        instances.push(inst("edge6", 1, v6(2, 2), vec![1], edge_cap));
        instances.push(inst("centre6", 2, v6(3, 2), vec![2], centre_cap));
        services.push(ServiceSpec {
            name: "chat6".into(),
            vip: v6(0x100, 1),
            ports: vec![8000],
            instances: vec!["edge6".into(), "centre6".into()],
            overflow_instance: None,
        });
    }
    ServiceTable::build(
        vec![
            path(1, "low-delay", 1, 500.0, 50.0),
            path(2, "internet", 2, 15_000.0, 3_000.0),
        ],
        instances,
        services,
    )
    .unwrap()
}

pub fn models(t: &ServiceTable) -> Vec<InstanceModel> {
    steer::feedback::instance_models(t, 20_000.0).unwrap()
}

pub fn features(prompt: u32, output: u32, task: TaskType) -> TokenFeatures {
    TokenFeatures {
        prompt_tokens: prompt,
        output_tokens: output,
        task,
        urgency: task.default_urgency(),
        explicit_urgency: false,
        prefix: None,
    }
}

pub fn short() -> TokenFeatures {
    features(12, 16, TaskType::ImmediateControl)
}

pub fn long() -> TokenFeatures {
    features(3_000, 800, TaskType::ComplexReasoning)
}
