//! `pktgen serve --report-to`: push NODE_STATE control messages (queue
//! length, estimated TTFT) to the appliance, built and sealed exactly as
//! `intellinode ctl node-state` does (the dataplane crate's `ctl_messages`).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use control::{Key, Sender};
use dataplane::ctl::{CtlCommand, NodeStateArgs, Source};

use super::serve::Node;

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

/// The NODE_STATE message for `queue` waiting requests and `ttft_ms`.
pub fn node_state(node: u16, queue: f64, ttft_ms: f64) -> anyhow::Result<control::Message> {
    dataplane::ctl_messages::build(&CtlCommand::NodeState(NodeStateArgs {
        node,
        gpu_util: None,
        mem_util: None,
        queue: Some(queue),
        ttft_ms: Some(ttft_ms),
        source: Source::Measured,
    }))
}

/// Starts the reporting thread; it stops when `stop` is set.
pub(crate) fn spawn(
    cfg: ReportConfig,
    node: Arc<Node>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let key = Key::from_file(&cfg.key_file).map_err(|e| {
        std::io::Error::other(format!("--key-file {}: {e}", cfg.key_file.display()))
    })?;
    let now = dataplane::control_plane::realtime_ns();
    let mut sender = Sender::new(cfg.key_id, key, now / 1000);
    let socket = UdpSocket::bind(if cfg.to.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    socket.connect(cfg.to)?;
    std::thread::Builder::new()
        .name("serve-report".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (queue, _, _) = node.snapshot();
                if let Ok(msg) = node_state(cfg.node, queue as f64, node.est_ttft_ms()) {
                    if let Ok(d) = sender.seal(&msg, dataplane::control_plane::realtime_ns()) {
                        let _ = socket.send(&d);
                    }
                }
                std::thread::sleep(cfg.interval);
            }
        })
}
