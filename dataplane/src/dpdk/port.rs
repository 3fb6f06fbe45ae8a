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
    /// Receive offloads the device supports (RTE_ETH_RX_OFFLOAD_* bits).
    pub rx_offloads: u64,
    /// Entries of the device's RSS redirection table (0: none).
    pub reta_size: u16,
    /// Bytes of the device's RSS key (0: none).
    pub hash_key_size: u8,
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
    /// How the device spreads packets over the RX queues.
    pub rss: Rss,
}

/// The RSS a port is configured with when it has several RX queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rss {
    /// The device's own key over IP, TCP and UDP fields: flows spread,
    /// nothing more is promised.
    Flows,
    /// Exactly `fields` hashed under `key`, with a redirection table whose
    /// entry `j` names queue `(j mod 128) mod queues`: the placement
    /// `flowtab::rss` computes, so a packet arrives at the queue of the
    /// worker that owns its flow.
    Owner {
        key: [u8; flowtab::rss::RSS_KEY_LEN],
        fields: RssFields,
    },
}

/// What [`Rss::Owner`] hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssFields {
    /// The source address alone (`steer`'s agent-facing port).
    SourceAddress,
    /// The destination address alone (`steer`'s instance-facing ports).
    DestinationAddress,
    /// The TCP/UDP 4-tuple (`tensor`'s host port: a QP's 5-tuple is fixed).
    Ports,
}

/// What a started port's RSS does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssOutcome {
    /// One RX queue, or a device that cannot hash: no RSS.
    None,
    /// Flows spread by the device's own hash.
    Flows,
    /// Packets arrive at their owner's queue, as [`Rss::Owner`] asked.
    Owner,
    /// [`Rss::Owner`] was asked for but the device cannot do it
    /// exactly (the reason); it spreads flows by its own hash, and
    /// packets away from their owner are handed over.
    Approximate(&'static str),
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
    rss: RssOutcome,
    /// The device verifies received IPv4 header checksums and says so in
    /// each mbuf ([`super::Mbuf::rx_ip_checksum_good`]).
    ip_checksum_offload: bool,
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
            rx_offloads: info.rx_offload_capa,
            reta_size: info.reta_size,
            hash_key_size: info.hash_key_size,
            socket,
            mac: mac.addr_bytes,
        })
    }
}

impl Port {
    /// Configures `info.id` with `setup` (RSS over IP/UDP/TCP when there is
    /// more than one RX queue and the device can hash; IPv4 header checksum
    /// verification when the device can do it), sets up every queue with
    /// buffers from `pool`, enables promiscuous mode and starts it.
    pub fn start(info: PortInfo, setup: PortSetup, pool: &Mempool) -> Result<Port> {
        let id = info.id;
        let subject = id.to_string();
        let mut conf: sys::rte_eth_conf = Default::default();
        // SAFETY (all shim_rss_*): pure functions returning constants.
        let flows =
            unsafe { sys::shim_rss_hf_ip() | sys::shim_rss_hf_udp() | sys::shim_rss_hf_tcp() };
        let mut rss = RssOutcome::None;
        // Outlives rte_eth_dev_configure, which copies it.
        let mut key = [0u8; flowtab::rss::RSS_KEY_LEN];
        if setup.rx_queues > 1 && flows & info.rss_offloads != 0 {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = flows & info.rss_offloads;
            rss = RssOutcome::Flows;
            if let Rss::Owner { key: k, fields } = setup.rss {
                let wanted = match fields {
                    RssFields::SourceAddress => unsafe {
                        sys::shim_rss_hf_l3() | sys::shim_rss_hf_l3_src_only()
                    },
                    RssFields::DestinationAddress => unsafe {
                        sys::shim_rss_hf_l3() | sys::shim_rss_hf_l3_dst_only()
                    },
                    RssFields::Ports => unsafe { sys::shim_rss_hf_udp() | sys::shim_rss_hf_tcp() },
                };
                rss = if wanted & info.rss_offloads != wanted {
                    RssOutcome::Approximate("the device cannot hash exactly those fields")
                } else if usize::from(info.hash_key_size) != key.len() {
                    RssOutcome::Approximate("the device's RSS key is not 40 bytes")
                } else if info.reta_size == 0
                    || u32::from(info.reta_size) % flowtab::rss::RETA_ENTRIES != 0
                {
                    RssOutcome::Approximate(
                        "the device's redirection table is not a multiple of 128 entries",
                    )
                } else {
                    key = k;
                    conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                    conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
                    conf.rx_adv_conf.rss_conf.rss_hf = wanted;
                    RssOutcome::Owner
                };
            }
        }
        // The workers' walks then skip the checksum a NIC verified.
        // SAFETY: pure function returning a constant.
        let ipv4_cksum = unsafe { sys::shim_rx_offload_ipv4_cksum() };
        let ip_checksum_offload = info.rx_offloads & ipv4_cksum != 0;
        if ip_checksum_offload {
            conf.rxmode.offloads |= ipv4_cksum;
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
            rss: RssOutcome::None,
            ip_checksum_offload,
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
        if rss == RssOutcome::Owner {
            if let Err(e) = port.program_reta(setup.rx_queues) {
                rss = RssOutcome::Approximate(e);
            }
        }
        port.rss = rss;
        Ok(port)
    }

    /// Entry `j` of the device's redirection table names queue
    /// `(j mod 128) mod queues`, so the queue of a hash is
    /// `flowtab::rss::owner` of it.
    fn program_reta(&self, queues: u16) -> std::result::Result<(), &'static str> {
        // RTE_ETH_RETA_GROUP_SIZE entries a group; the largest tables
        // (ice) have 2048.
        const GROUP: usize = 64;
        const MAX_GROUPS: usize = 2048 / GROUP;
        let size = usize::from(self.info.reta_size);
        let mut groups: [sys::rte_eth_rss_reta_entry64; MAX_GROUPS] = Default::default();
        let Some(groups) = groups.get_mut(..size / GROUP) else {
            return Err("the device's redirection table has more than 2048 entries");
        };
        for (g, group) in groups.iter_mut().enumerate() {
            group.mask = u64::MAX;
            for (i, entry) in group.reta.iter_mut().enumerate() {
                let j = (g * GROUP + i) as u32;
                *entry = flowtab::rss::owner(j, usize::from(queues)) as u16;
            }
        }
        // SAFETY: valid, started port; `groups` holds reta_size entries.
        let rc = unsafe {
            sys::rte_eth_dev_rss_reta_update(
                self.info.id.0,
                groups.as_mut_ptr(),
                self.info.reta_size,
            )
        };
        if rc != 0 {
            return Err("the device refused the redirection table");
        }
        Ok(())
    }

    /// What the port's RSS does.
    pub fn rss(&self) -> RssOutcome {
        self.rss
    }

    /// Whether the device verifies received IPv4 header checksums.
    pub fn ip_checksum_offload(&self) -> bool {
        self.ip_checksum_offload
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
