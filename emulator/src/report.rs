//! `emulator serve --report-to`: push NODE_STATE control messages (GPU and
//! KV-cache utilisation, queue length, estimated TTFT; see
//! [`Node::load`]) to the appliance, built by the control crate's
//! [`control::NodeStateFields`] as `intellinode ctl node-state` builds
//! them, and sent by the collector's [`collector::push::Pusher`]. With the
//! collector scraping `/metrics` instead, this push is off.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use control::{NodeStateFields, Source};

use super::serve::{Node, NodeLoad};

/// Where and how to report.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// The appliance's control address.
    pub to: SocketAddr,
    /// This peer's key file.
    pub key_file: PathBuf,
    /// This peer's key id.
    pub key_id: u32,
    /// The node id to report as.
    pub node: u16,
    /// Report period.
    pub interval: Duration,
}

/// The NODE_STATE fields for `load`: KV-cache utilisation travels as
/// the memory utilisation, since the KV cache is what fills GPU memory.
pub fn node_state_fields(node: u16, load: &NodeLoad) -> NodeStateFields {
    NodeStateFields {
        node,
        gpu_util: Some(load.gpu_util),
        mem_util: Some(load.kv_util),
        queue: Some(load.queue_len as f64),
        ttft_ms: Some(load.est_ttft_ms),
        source: Source::Measured,
    }
}

/// Starts the reporting thread; it stops when `stop` is set.
pub(crate) fn spawn(
    cfg: ReportConfig,
    node: Arc<Node>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let mut pusher = collector::push::Pusher::new(&cfg.key_file, cfg.key_id, &[cfg.to])?;
    std::thread::Builder::new()
        .name("serve-report".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(msg) = node_state_fields(cfg.node, &node.load()).message() {
                    pusher.push(&msg);
                }
                std::thread::sleep(cfg.interval);
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_fills_every_node_state_field() {
        let load = NodeLoad {
            queue_len: 3,
            active: 2,
            served: 9,
            gpu_util: 0.5,
            kv_util: 0.25,
            est_ttft_ms: 42.0,
        };
        let args = node_state_fields(4, &load);
        assert_eq!(args.node, 4);
        assert_eq!(args.gpu_util, Some(0.5));
        assert_eq!(args.mem_util, Some(0.25));
        assert_eq!(args.queue, Some(3.0));
        assert_eq!(args.ttft_ms, Some(42.0));
        assert!(args.message().is_ok());
    }
}
