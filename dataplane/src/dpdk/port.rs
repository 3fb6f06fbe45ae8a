//! Ethernet ports: discovery, configuration with N queues and RSS, start/stop,
//! and the NIC's own counters.

use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_char;

use dpdk_sys as sys;

use super::error::{DpdkError, Result};
use super::mempool::Mempool;

/// Most ports DPDK can have (RTE_MAX_ETHPORTS): bounds per-port arrays.
pub const MAX_PORTS: usize = sys::RTE_MAX_ETHPORTS as usize;

/// A DPDK port, numbered in the order EAL created it. Prints as `port0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

/// What the driver says about a port.
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub id: PortId,
    /// Device name as given to `--vdev` or the PCI address, e.g. `net_pcap0`.
    pub name: String,
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// RSS hash functions the device supports (RTE_ETH_RSS_* bits).
    pub rss_offloads: u64,
    pub socket: i32,
    /// The port's own MAC address (source of frames the appliance makes).
    pub mac: [u8; 6],
}

/// How to bring a port up.
#[derive(Debug, Clone, Copy)]
pub struct PortSetup {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
}

/// Counters kept by the driver itself. `rx_missed`/`rx_nombuf` are packets the
/// NIC dropped before the application ever saw them.
#[derive(Debug, Clone, Copy, Default)]
pub struct NicStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nombuf: u64,
}

/// A configured port. Stopped and closed on drop.
pub struct Port {
    info: PortInfo,
    started: bool,
}

fn c_name(buf: &[c_char]) -> String {
    // SAFETY: DPDK NUL-terminates names within the buffer it was given.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

impl PortInfo {
    /// Asks the driver about `id`.
    pub fn query(id: PortId) -> Result<PortInfo> {
        let mut info: sys::rte_eth_dev_info = Default::default();
        // SAFETY: info is a valid out-parameter.
        let rc = unsafe { sys::rte_eth_dev_info_get(id.0, &mut info) };
        if rc != 0 {
            return Err(DpdkError::new("rte_eth_dev_info_get", id.to_string(), rc));
        }
        let mut name = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: buffer of the documented size.
        let rc = unsafe { sys::rte_eth_dev_get_name_by_port(id.0, name.as_mut_ptr()) };
        if rc != 0 {
            return Err(DpdkError::new(
                "rte_eth_dev_get_name_by_port",
                id.to_string(),
                rc,
            ));
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static C string owned by the PMD.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: valid port id (info_get succeeded).
        let socket = unsafe { sys::rte_eth_dev_socket_id(id.0) };
        let mut mac: sys::rte_ether_addr = Default::default();
        // SAFETY: valid out-parameter; on failure the zero address stays.
        let _ = unsafe { sys::rte_eth_macaddr_get(id.0, &mut mac) };
        Ok(PortInfo {
            id,
            name: c_name(&name),
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            socket,
            mac: mac.addr_bytes,
        })
    }
}

impl Port {
    /// Configures `info.id` with `setup` (RSS over IP/UDP/TCP when there is
    /// more than one RX queue and the device can hash), sets up every queue
    /// with buffers from `pool`, enables promiscuous mode and starts it.
    pub fn start(info: PortInfo, setup: PortSetup, pool: &Mempool) -> Result<Port> {
        let id = info.id;
        let subject = id.to_string();
        let mut conf: sys::rte_eth_conf = Default::default();
        if setup.rx_queues > 1 {
            // SAFETY: pure functions returning constants.
            let wanted =
                unsafe { sys::shim_rss_hf_ip() | sys::shim_rss_hf_udp() | sys::shim_rss_hf_tcp() };
            let hf = wanted & info.rss_offloads;
            if hf != 0 {
                conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
            }
        }
        // SAFETY: conf is fully initialised.
        let rc =
            unsafe { sys::rte_eth_dev_configure(id.0, setup.rx_queues, setup.tx_queues, &conf) };
        if rc != 0 {
            return Err(DpdkError::new("rte_eth_dev_configure", subject, rc));
        }
        // From here on, Drop closes the port if a later step fails.
        let mut port = Port {
            info,
            started: false,
        };
        let mut rxd = setup.rx_descriptors;
        let mut txd = setup.tx_descriptors;
        // SAFETY: valid port; the function clamps to the driver's limits.
        let rc = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut rxd, &mut txd) };
        if rc != 0 {
            return Err(DpdkError::new(
                "rte_eth_dev_adjust_nb_rx_tx_desc",
                subject,
                rc,
            ));
        }
        let socket = if port.info.socket < 0 {
            0
        } else {
            port.info.socket as u32
        };
        for q in 0..setup.rx_queues {
            // SAFETY: valid port, queue index < configured count, pool alive
            // for as long as the port is started (the runtime drops ports first).
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(id.0, q, rxd, socket, std::ptr::null(), pool.as_ptr())
            };
            if rc != 0 {
                return Err(DpdkError::new(
                    "rte_eth_rx_queue_setup",
                    format!("{subject} rxq{q}"),
                    rc,
                ));
            }
        }
        for q in 0..setup.tx_queues {
            // SAFETY: as above.
            let rc = unsafe { sys::rte_eth_tx_queue_setup(id.0, q, txd, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(DpdkError::new(
                    "rte_eth_tx_queue_setup",
                    format!("{subject} txq{q}"),
                    rc,
                ));
            }
        }
        // A bump-in-the-wire must see frames for every MAC. Virtual devices
        // that have no notion of it answer ENOTSUP, which is fine.
        // SAFETY: valid port.
        let rc = unsafe { sys::rte_eth_promiscuous_enable(id.0) };
        if rc != 0 && rc != -libc::ENOTSUP {
            return Err(DpdkError::new("rte_eth_promiscuous_enable", subject, rc));
        }
        // SAFETY: valid, configured port.
        let rc = unsafe { sys::rte_eth_dev_start(id.0) };
        if rc != 0 {
            return Err(DpdkError::new("rte_eth_dev_start", subject, rc));
        }
        port.started = true;
        Ok(port)
    }

    pub fn id(&self) -> PortId {
        self.info.id
    }

    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// The driver's counters (safe to call from the main lcore while workers
    /// run; drivers keep them per queue).
    pub fn nic_stats(&self) -> NicStats {
        let mut s: sys::rte_eth_stats = Default::default();
        // SAFETY: valid out-parameter.
        let rc = unsafe { sys::rte_eth_stats_get(self.info.id.0, &mut s) };
        if rc != 0 {
            return NicStats::default();
        }
        NicStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// Stops the port; queued packets are flushed by the driver (pcap files
    /// are closed cleanly here, which is when their last records hit disk).
    pub fn stop(&mut self) -> Result<()> {
        if self.started {
            self.started = false;
            // SAFETY: valid, started port.
            let rc = unsafe { sys::rte_eth_dev_stop(self.info.id.0) };
            if rc != 0 {
                return Err(DpdkError::new(
                    "rte_eth_dev_stop",
                    self.info.id.to_string(),
                    rc,
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: valid port; after this it is gone.
        unsafe { sys::rte_eth_dev_close(self.info.id.0) };
    }
}
