//! Active path measurement, the I/O half (the pure half is
//! `control::probe`).
//!
//! The probe thread (an OS thread, like the control thread) builds a signed
//! probe for each target path every interval and hands it to worker 0
//! through a lock-free queue; worker 0 transmits it on the path's egress
//! port from its own TX queue, so no queue ever has two users. Workers
//! recognise probe packets with a fixed-offset check (untagged IPv4, no
//! options, UDP to the probe port): replies go back to the probe thread
//! through a per-worker queue, and requests are turned around in place when
//! this appliance is a reflector. Every interval the probe thread turns
//! what came back into measured path state (latency = smoothed RTT / 2,
//! jitter, loss) and publishes it like an orchestrator's update.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use classifier::checksum::PseudoHeader;
use classifier::ethernet::{EtherType, EthernetRepr, MacAddr};
use classifier::ip::IpProtocol;
use classifier::ipv4::{Ipv4Packet, Ipv4Repr};
use classifier::udp::{UdpPacket, UdpRepr};
use control::probe::{looks_like_probe, PathProber, Probe, PROBE_LEN};
use control::{Key, Message, Metric, MetricType, PathId, PathState, Unit};
use crossbeam_queue::ArrayQueue;

use crate::config::ProbeConfig;
use crate::control_plane::{MonoClock, Publisher};
use crate::dpdk::{Mbuf, Mempool};
use crate::stats::bump;

/// Offsets of an untagged, option-less IPv4/UDP probe frame.
const IP_OFFSET: usize = 14;
const UDP_OFFSET: usize = 34;
const PAYLOAD_OFFSET: usize = 42;
/// Smallest frame that can carry a probe.
pub const PROBE_FRAME_LEN: usize = PAYLOAD_OFFSET + PROBE_LEN;

/// A reply as a worker hands it over: the payload and when it arrived.
#[derive(Clone, Copy)]
pub struct ProbeReply {
    pub payload: [u8; PROBE_LEN],
    pub rx_ns: u64,
}

impl ProbeReply {
    /// Copies the payload out of a frame [`classify`] called a reply (a
    /// shorter frame leaves zeros, which then fail verification).
    #[inline]
    pub fn from_frame(frame: &[u8], rx_ns: u64) -> ProbeReply {
        let mut payload = [0u8; PROBE_LEN];
        if let Some(src) = frame.get(PAYLOAD_OFFSET..PROBE_FRAME_LEN) {
            payload.copy_from_slice(src);
        }
        ProbeReply { payload, rx_ns }
    }
}

/// What a worker needs to take part in probing.
#[derive(Clone)]
pub struct ProbeWorker {
    pub udp_port: u16,
    pub reflect: bool,
    /// Replies, to the probe thread.
    pub replies: Arc<ArrayQueue<ProbeReply>>,
    /// Probes to transmit (egress port, frame); only worker 0 has one.
    pub outbound: Option<Arc<ArrayQueue<(u16, Mbuf)>>>,
    /// Shared with the probe thread; a worker writes only `tx_refused`.
    pub counters: Arc<ProbeCounters>,
}

/// How a worker treats a packet, by the fixed-offset check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    NotAProbe,
    Request,
    Reply,
}

/// Classifies a frame as a probe for `udp_port`, without parsing it fully.
#[inline]
pub fn classify(frame: &[u8], udp_port: u16) -> ProbeKind {
    if frame.len() < PROBE_FRAME_LEN
        || frame[12..14] != [0x08, 0x00]
        || frame[IP_OFFSET] != 0x45
        || frame[IP_OFFSET + 9] != 17
        || frame[UDP_OFFSET + 2..UDP_OFFSET + 4] != udp_port.to_be_bytes()
        || !looks_like_probe(&frame[PAYLOAD_OFFSET..])
    {
        return ProbeKind::NotAProbe;
    }
    match frame[PAYLOAD_OFFSET + 5] {
        1 => ProbeKind::Request,
        2 => ProbeKind::Reply,
        _ => ProbeKind::NotAProbe,
    }
}

/// Turns a request frame into its reply in place: MACs, addresses and ports
/// swapped, payload marked as a reply with our clock. The IPv4 header
/// checksum is unchanged by swapping addresses; the UDP checksum is set to
/// zero (allowed for IPv4) rather than recomputed over a payload we edit.
pub fn reflect_in_place(frame: &mut [u8], now_ns: u64) -> bool {
    if frame.len() < PROBE_FRAME_LEN {
        return false;
    }
    if !Probe::reflect_in_place(&mut frame[PAYLOAD_OFFSET..], now_ns) {
        return false;
    }
    let (dst, src) = frame[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    let (a, b) = frame[IP_OFFSET + 12..IP_OFFSET + 20].split_at_mut(4);
    a.swap_with_slice(b);
    let (a, b) = frame[UDP_OFFSET..UDP_OFFSET + 4].split_at_mut(2);
    a.swap_with_slice(b);
    frame[UDP_OFFSET + 6..UDP_OFFSET + 8].copy_from_slice(&[0, 0]);
    true
}

/// Builds a request frame.
pub fn build_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    port: u16,
    ident: u16,
    payload: &[u8; PROBE_LEN],
) -> Option<Vec<u8>> {
    let mut frame = vec![0u8; PROBE_FRAME_LEN];
    EthernetRepr {
        src_addr: MacAddr(src_mac),
        dst_addr: MacAddr(dst_mac),
        ethertype: EtherType::IPV4,
    }
    .emit(&mut frame[..IP_OFFSET])
    .ok()?;
    Ipv4Repr {
        src_addr: src_ip,
        dst_addr: dst_ip,
        protocol: IpProtocol::UDP,
        dscp_ecn: 0,
        ident,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        ttl: 64,
        options: &[],
        payload_len: 8 + PROBE_LEN,
    }
    .emit(&mut frame[IP_OFFSET..UDP_OFFSET])
    .ok()?;
    Ipv4Packet::new_unchecked(&mut frame[IP_OFFSET..UDP_OFFSET]).fill_checksum();
    UdpRepr {
        src_port: port,
        dst_port: port,
        payload_len: PROBE_LEN,
    }
    .emit(&mut frame[UDP_OFFSET..])
    .ok()?;
    frame[PAYLOAD_OFFSET..].copy_from_slice(payload);
    UdpPacket::new_unchecked(&mut frame[UDP_OFFSET..]).fill_checksum(&PseudoHeader::V4 {
        src: src_ip,
        dst: dst_ip,
    });
    Some(frame)
}

/// Counters of the probe thread and the probe packets workers saw.
#[derive(Default)]
pub struct ProbeCounters {
    pub sent: AtomicU64,
    pub replies: AtomicU64,
    /// Replies whose tag did not verify (forged or altered).
    pub bad_tag: AtomicU64,
    /// Verified replies that answered no outstanding probe (replays, late).
    pub unexpected: AtomicU64,
    /// Probes not sent: the path has no definition yet.
    pub no_path: AtomicU64,
    /// Probes not sent: no mbuf, or the hand-off queue was full.
    pub send_failed: AtomicU64,
    /// Probes worker 0 could not transmit (TX queue full or bad port);
    /// worker 0 is this field's only writer.
    pub tx_refused: AtomicU64,
    pub measurements_published: AtomicU64,
}

/// One measured path and where its probes go.
struct Target {
    path: PathId,
    dst_ip: Ipv4Addr,
    prober: PathProber,
}

/// The running prober.
pub struct ProbeThread {
    pub counters: Arc<ProbeCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub struct ProbeSetup {
    pub config: ProbeConfig,
    pub counters: Arc<ProbeCounters>,
    pub key: Key,
    pub port_macs: Vec<[u8; 6]>,
    pub pool: Arc<Mempool>,
    pub clock: MonoClock,
    pub publisher: Publisher,
    pub outbound: Arc<ArrayQueue<(u16, Mbuf)>>,
    pub replies: Vec<Arc<ArrayQueue<ProbeReply>>>,
    pub started_ports: Vec<bool>,
}

impl ProbeThread {
    pub fn start(setup: ProbeSetup) -> Result<ProbeThread> {
        let counters = Arc::clone(&setup.counters);
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&counters), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("probe".into())
            .spawn(move || run(setup, &c, &s))
            .context("cannot start the probe thread")?;
        Ok(ProbeThread {
            counters,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ProbeThread {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Loads the probe key (a file, never the command line).
pub fn load_key(config: &ProbeConfig) -> Result<Option<Key>> {
    match &config.key_file {
        Some(f) => Ok(Some(
            Key::from_file(f).map_err(|e| anyhow!("[probe]: {e}"))?,
        )),
        None => Ok(None),
    }
}

fn run(setup: ProbeSetup, counters: &ProbeCounters, stop: &AtomicBool) {
    let cfg = &setup.config;
    let interval_ns = cfg.interval_ms.saturating_mul(1_000_000).max(1);
    let timeout_ns = cfg.timeout_ms.saturating_mul(1_000_000);
    let mut targets: Vec<Target> = cfg
        .targets
        .iter()
        .map(|t| Target {
            path: PathId(t.path),
            dst_ip: t.dst_ip,
            prober: PathProber::new(PathId(t.path), cfg.window),
        })
        .collect();
    let src_ip = cfg.src_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut seq: u64 = 0;
    let mut next_round = setup.clock.now_ns();
    while !stop.load(Relaxed) {
        let now = setup.clock.now_ns();
        for q in &setup.replies {
            while let Some(r) = q.pop() {
                match Probe::verify(&setup.key, &r.payload) {
                    Ok(p) => match targets
                        .iter_mut()
                        .find(|t| t.path == p.path)
                        .and_then(|t| t.prober.on_reply(&p, r.rx_ns))
                    {
                        Some(_) => bump(&counters.replies, 1),
                        None => bump(&counters.unexpected, 1),
                    },
                    Err(_) => bump(&counters.bad_tag, 1),
                }
            }
        }
        if now >= next_round && !targets.is_empty() {
            next_round = now + interval_ns;
            // Publish what the previous rounds measured, then probe again.
            let measured: Vec<Message> = targets
                .iter()
                .map(|t| measurement_message(t, now, timeout_ns))
                .collect();
            if setup.publisher.apply_local(&measured, setup.clock.now_ns()) {
                bump(&counters.measurements_published, 1);
            }
            let view = setup.publisher.view.load();
            for t in &mut targets {
                let Some(path) = view.view.path(t.path) else {
                    bump(&counters.no_path, 1);
                    continue;
                };
                let egress = path.def.egress_port;
                let src_mac = setup.port_macs.get(usize::from(egress)).copied();
                let started = setup
                    .started_ports
                    .get(usize::from(egress))
                    .copied()
                    .unwrap_or(false);
                let (Some(src_mac), true) = (src_mac, started) else {
                    bump(&counters.no_path, 1);
                    continue;
                };
                seq += 1;
                let sent_at = setup.clock.now_ns();
                let payload = Probe::request(&setup.key, t.path, seq, sent_at);
                let frame = build_frame(
                    src_mac,
                    path.def.next_hop_mac,
                    src_ip,
                    t.dst_ip,
                    cfg.udp_port,
                    seq as u16,
                    &payload,
                );
                let queued = frame
                    .and_then(|f| Mbuf::from_bytes(&setup.pool, &f).ok())
                    .map(|m| setup.outbound.push((egress, m)).is_ok())
                    .unwrap_or(false);
                if queued {
                    t.prober.on_sent(seq, sent_at);
                    bump(&counters.sent, 1);
                } else {
                    bump(&counters.send_failed, 1);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn measurement_message(t: &Target, now_ns: u64, timeout_ns: u64) -> Message {
    let m = t.prober.measurement(now_ns, timeout_ns);
    let mut metrics = vec![Metric::new(MetricType::PathLoss, Unit::Ratio, m.loss_ratio)];
    if let Some(l) = m.latency_us {
        metrics.push(Metric::new(MetricType::PathLatency, Unit::Microseconds, l));
    }
    if let Some(j) = m.jitter_us {
        metrics.push(Metric::new(MetricType::PathJitter, Unit::Microseconds, j));
    }
    Message::PathState(PathState::new(t.path, metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_frames_parse_verify_and_reflect() {
        let key = Key::from_hex(&"11".repeat(32)).unwrap();
        let payload = Probe::request(&key, PathId(4), 9, 1234);
        let (a, b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        let mut frame = build_frame(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            a,
            b,
            7471,
            9,
            &payload,
        )
        .unwrap();
        let parsed = classifier::parse(&frame).expect("valid IPv4/UDP, checksums right");
        assert_eq!(parsed.flow.unwrap().dst_ip(), std::net::IpAddr::V4(b));
        assert_eq!(classify(&frame, 7471), ProbeKind::Request);
        assert_eq!(classify(&frame, 7472), ProbeKind::NotAProbe);

        assert!(reflect_in_place(&mut frame, 99));
        assert_eq!(classify(&frame, 7471), ProbeKind::Reply);
        assert_eq!(&frame[..6], &[2, 0, 0, 0, 0, 1], "back to the prober's MAC");
        let parsed = classifier::parse(&frame).expect("still valid after the turn-around");
        assert_eq!(parsed.flow.unwrap().dst_ip(), std::net::IpAddr::V4(a));
        let p = Probe::verify(&key, &frame[PAYLOAD_OFFSET..]).unwrap();
        assert_eq!(
            (p.path, p.seq, p.tx_ns, p.reflect_ns),
            (PathId(4), 9, 1234, 99)
        );
        assert!(
            !reflect_in_place(&mut frame, 100),
            "replies are not reflected"
        );

        let mut short = frame[..PROBE_FRAME_LEN - 1].to_vec();
        assert_eq!(classify(&short, 7471), ProbeKind::NotAProbe);
        assert!(!reflect_in_place(&mut short, 1));
    }
}
