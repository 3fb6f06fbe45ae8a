//! What the EAL tests of this crate share: one EAL per test process, on
//! the virtual devices a test names, and the one-queue setup they start.

use dataplane::dpdk::{PortSetup, Rss};

/// EAL arguments for a test process on one lcore, without hugepages or PCI,
/// under its own file prefix, with `vdevs` as its ports (in that order).
pub fn eal_args(name: &str, vdevs: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        name,
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "-l",
        "0",
        "--no-telemetry",
        "--log-level=warning",
        "--file-prefix",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    args.push(format!("t-{name}-{}", std::process::id()));
    for v in vdevs {
        args.push("--vdev".to_owned());
        args.push((*v).to_owned());
    }
    args
}

/// One RX and one TX queue of 512 descriptors.
pub const ONE_QUEUE: PortSetup = PortSetup {
    rx_queues: 1,
    tx_queues: 1,
    rx_descriptors: 512,
    tx_descriptors: 512,
    rss: Rss::Flows,
};
