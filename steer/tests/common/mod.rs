//! Builders shared by the steer integration tests: the edge/centre
//! service of `examples/steer.toml` and its latency models.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

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

pub fn table() -> ServiceTable {
    let path = |id: u16, name: &str, port: u16, lat: f64, jit: f64| PathSpec {
        id: PathId(id),
        name: name.into(),
        egress_port: port,
        next_hop_mac: [2, 0, 0, 0, 0, id as u8],
        prior_latency_us: lat,
        prior_jitter_us: jit,
    };
    let all = TaskTypes::from_bits(TaskTypes::DEFINED).unwrap();
    let inst = |name: &str, node: u16, ip: [u8; 4], paths: Vec<u16>, cap| InstanceSpec {
        name: name.into(),
        node: NodeId(node),
        ip: IpAddr::V4(Ipv4Addr::from(ip)),
        mac: None,
        paths: paths.into_iter().map(PathId).collect(),
        capability: cap,
    };
    ServiceTable::build(
        vec![
            path(1, "low-delay", 1, 500.0, 50.0),
            path(2, "internet", 2, 15_000.0, 3_000.0),
        ],
        vec![
            inst(
                "edge",
                1,
                [10, 0, 2, 2],
                vec![1],
                InstanceCapability {
                    model_class: ModelClass::SmallEdge,
                    task_types: all,
                    max_context_tokens: 8192,
                    prefill_tokens_per_s: 2_000.0,
                    decode_tokens_per_s: 40.0,
                    concurrency: 2,
                    base_ttft_us: 3_000.0,
                    max_queue: 8,
                },
            ),
            inst(
                "centre",
                2,
                [10, 0, 3, 2],
                vec![2],
                InstanceCapability {
                    model_class: ModelClass::LargeCentre,
                    task_types: all,
                    max_context_tokens: 131_072,
                    prefill_tokens_per_s: 20_000.0,
                    decode_tokens_per_s: 100.0,
                    concurrency: 32,
                    base_ttft_us: 8_000.0,
                    max_queue: 256,
                },
            ),
        ],
        vec![ServiceSpec {
            name: "chat".into(),
            vip: IpAddr::V4(Ipv4Addr::new(10, 0, 100, 1)),
            ports: vec![8000],
            instances: vec!["edge".into(), "centre".into()],
            overflow_instance: None,
        }],
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
    }
}

pub fn short() -> TokenFeatures {
    features(12, 16, TaskType::ImmediateControl)
}

pub fn long() -> TokenFeatures {
    features(3_000, 800, TaskType::ComplexReasoning)
}
