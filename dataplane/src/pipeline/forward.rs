//! The `forward` pipeline: a bump-in-the-wire between port pairs.
//!
//! Without a control plane, or while the orchestrator has installed no
//! forwarding entry, every frame that arrives on one port of a pair leaves
//! the other port byte-for-byte unchanged, malformed ones included: a wire
//! does not judge. That path touches only mbuf metadata, never packet data.
//!
//! Once forwarding entries exist, each burst is steered: IP packets whose
//! destination matches an entry get the chosen path's next-hop MAC and leave
//! by its egress port; everything else still goes to the pair's peer
//! unchanged. The choice is made per packet from the control-plane view the
//! worker loaded for this burst, so an update applies from the next burst.

use control::view::ChoiceReason;

use crossbeam_queue::ArrayQueue;

use super::{Arrival, Pipeline, QueueRoute, Tick, WorkerConf};
use crate::control_plane::PublishedView;
use crate::dpdk::{Mbuf, MbufBurst, MAX_BURST, MAX_PORTS};
use crate::probe::{ProbeKind, ProbeWorker};
use crate::stats::{bump, Decision, DropReason, LcoreCounters};

/// The forwarding pipeline of one worker: stateless but for its staging
/// bursts (one per port, allocated once, here).
pub struct Forward<'a> {
    conf: &'a WorkerConf,
    stages: Vec<MbufBurst>,
}

impl<'a> Forward<'a> {
    pub fn new(conf: &'a WorkerConf) -> Forward<'a> {
        Forward {
            conf,
            stages: (0..conf.counters.ports.len())
                .map(|_| MbufBurst::new())
                .collect(),
        }
    }
}

impl Pipeline for Forward<'_> {
    fn process(&mut self, route: &QueueRoute, burst: &mut MbufBurst, tick: &Tick<'_>, _: Arrival) {
        let conf = self.conf;
        match tick.view {
            Some(v) if v.has_forwarding => {
                steer_burst(conf, route, burst, &mut self.stages, Some(v), tick.now_ns)
            }
            view if conf.probe.is_some() => {
                steer_burst(conf, route, burst, &mut self.stages, view, tick.now_ns)
            }
            _ => forward_burst(&conf.counters, route, burst),
        }
    }

    fn transmit(&mut self, _ignore_shaping: bool) -> bool {
        let Some(probe) = self.conf.probe.as_ref() else {
            return false;
        };
        match probe.outbound.as_ref().filter(|out| !out.is_empty()) {
            Some(out) => send_probes(probe, out, &mut self.stages, self.conf.queue()),
            None => false,
        }
    }
}

/// The plain wire: the whole burst to the pair's peer.
#[inline]
fn forward_burst(counters: &LcoreCounters, route: &QueueRoute, burst: &mut MbufBurst) {
    let received = burst.len() as u64;
    let rx_bytes: u64 = burst
        .as_slice()
        .iter()
        .map(|m| u64::from(m.pkt_len()))
        .sum();
    let (sent, sent_bytes, dropped) = transmit(burst, route.tx_port.0, route.queue, rx_bytes);
    // Route ports were validated against the port count before launch;
    // `get` keeps this panic-free regardless.
    if let Some(rx) = counters.ports.get(usize::from(route.rx_port.0)) {
        bump(&rx.rx_packets, received);
        bump(&rx.rx_bytes, rx_bytes);
        if dropped > 0 {
            bump(&rx.drops[DropReason::TxQueueFull as usize], dropped);
        }
    }
    if let Some(tx) = counters.ports.get(usize::from(route.tx_port.0)) {
        bump(&tx.tx_packets, sent);
        bump(&tx.tx_bytes, sent_bytes);
    }
}

/// Sends a whole burst of `bytes` bytes; returns (sent, sent bytes,
/// dropped). What the TX queue refused is freed here and reported as
/// dropped; only then are lengths read again, for the refused packets.
#[inline]
fn transmit(burst: &mut MbufBurst, port: u16, queue: u16, bytes: u64) -> (u64, u64, u64) {
    let sent = burst.tx_burst(crate::dpdk::PortId(port), queue) as u64;
    if burst.is_empty() {
        return (sent, bytes, 0);
    }
    let unsent_bytes: u64 = burst
        .as_slice()
        .iter()
        .map(|m| u64::from(m.pkt_len()))
        .sum();
    let dropped = burst.free_all() as u64;
    (sent, bytes.saturating_sub(unsent_bytes), dropped)
}

/// How many packets ahead to prefetch while deciding: far enough for the
/// line to arrive, near enough to still be in L1 when used.
const PREFETCH_AHEAD: usize = 3;

/// Decides every packet of the burst, stages it on its egress port, then
/// flushes each staged port once.
fn steer_burst(
    conf: &WorkerConf,
    route: &QueueRoute,
    burst: &mut MbufBurst,
    stages: &mut [MbufBurst],
    v: Option<&PublishedView>,
    now_ns: u64,
) {
    let counters = &*conf.counters;
    let received = burst.len() as u64;
    let mut decisions = [0u64; Decision::COUNT];
    let mut consumed = [0u64; DropReason::COUNT];
    let default_port = usize::from(route.tx_port.0);
    let ctx = DecideCtx {
        view: v,
        now_ns,
        started: &conf.started_ports,
        default_port,
        rx_port: usize::from(route.rx_port.0),
        probe: conf.probe.as_ref(),
    };

    let mut egress = [default_port; MAX_BURST];
    let mut lengths = [0u64; MAX_BURST];
    let packets = burst.as_mut_slice();
    for m in packets.iter().take(PREFETCH_AHEAD) {
        m.prefetch_data();
    }
    for i in 0..packets.len() {
        if let Some(ahead) = packets.get(i + PREFETCH_AHEAD) {
            ahead.prefetch_data();
        }
        if let (Some(m), Some(out), Some(len)) =
            (packets.get_mut(i), egress.get_mut(i), lengths.get_mut(i))
        {
            *len = u64::from(m.pkt_len());
            *out = match decide(m, &ctx) {
                Outcome::Send(decision, port) => {
                    decisions[decision as usize] += 1;
                    port
                }
                Outcome::Consumed(reason) => {
                    consumed[reason as usize] += 1;
                    CONSUMED
                }
            };
        }
    }

    let rx_bytes: u64 = lengths.iter().sum();

    // Stages hold at most one RX burst (<= MAX_BURST), so a push cannot
    // fail; if it ever did, the packet is freed and counted, not leaked.
    let mut dropped = 0u64;
    let mut stage_bytes = [0u64; MAX_PORTS];
    let mut i = 0usize;
    burst.drain_into(|m| {
        let port = egress.get(i).copied().unwrap_or(default_port);
        let len = lengths.get(i).copied().unwrap_or(0);
        i += 1;
        if port == CONSUMED {
            // Its content was copied out; the buffer goes back to the pool.
            drop(m);
            return;
        }
        match stages.get_mut(port).map(|stage| stage.push(m)) {
            Some(Ok(())) => {
                if let Some(b) = stage_bytes.get_mut(port) {
                    *b += len;
                }
            }
            Some(Err(m)) => {
                drop(m);
                dropped += 1;
            }
            None => dropped += 1,
        }
    });

    for (port, stage) in stages.iter_mut().enumerate() {
        if stage.is_empty() {
            continue;
        }
        let bytes = stage_bytes.get(port).copied().unwrap_or(0);
        let (sent, sent_bytes, refused) = transmit(stage, port as u16, route.queue, bytes);
        dropped += refused;
        if let Some(tx) = counters.ports.get(port) {
            bump(&tx.tx_packets, sent);
            bump(&tx.tx_bytes, sent_bytes);
        }
    }
    if let Some(rx) = counters.ports.get(usize::from(route.rx_port.0)) {
        bump(&rx.rx_packets, received);
        bump(&rx.rx_bytes, rx_bytes);
        if dropped > 0 {
            bump(&rx.drops[DropReason::TxQueueFull as usize], dropped);
        }
        for (c, n) in rx.drops.iter().zip(consumed) {
            if n > 0 {
                bump(c, n);
            }
        }
    }
    for (c, n) in counters.decisions.iter().zip(decisions) {
        if n > 0 {
            bump(c, n);
        }
    }
}

/// Egress marker for a packet the appliance consumed.
const CONSUMED: usize = usize::MAX;

/// What `decide` needs besides the packet.
struct DecideCtx<'a> {
    view: Option<&'a PublishedView>,
    now_ns: u64,
    started: &'a [bool],
    default_port: usize,
    rx_port: usize,
    probe: Option<&'a ProbeWorker>,
}

enum Outcome {
    /// Leaves by this port.
    Send(Decision, usize),
    /// Kept by the appliance, counted under this reason.
    Consumed(DropReason),
}

/// One packet's fate: probes first (they are ours), then the policy.
#[inline]
fn decide(m: &mut Mbuf, ctx: &DecideCtx<'_>) -> Outcome {
    if let Some(probe) = ctx.probe {
        match crate::probe::classify(m.data(), probe.udp_port) {
            ProbeKind::Reply => {
                let reply = crate::probe::ProbeReply::from_frame(m.data(), ctx.now_ns);
                return Outcome::Consumed(match probe.replies.push(reply) {
                    Ok(()) => DropReason::ProbeReplyConsumed,
                    Err(_) => DropReason::ProbeQueueFull,
                });
            }
            ProbeKind::Request
                if probe.reflect && crate::probe::reflect_in_place(m.data_mut(), ctx.now_ns) =>
            {
                return Outcome::Send(Decision::ProbeReflected, ctx.rx_port);
            }
            _ => {}
        }
    }
    let Some(v) = ctx.view.filter(|v| v.has_forwarding) else {
        return Outcome::Send(Decision::NoEntry, ctx.default_port);
    };
    let dst = match classifier::parse(m.data()) {
        Ok(p) => match p.flow {
            Some(flow) => flow.dst_ip(),
            None => return Outcome::Send(Decision::Unparsed, ctx.default_port),
        },
        Err(_) => return Outcome::Send(Decision::Unparsed, ctx.default_port),
    };
    let Some(choice) = v.view.choose_path(dst, ctx.now_ns) else {
        return Outcome::Send(Decision::NoEntry, ctx.default_port);
    };
    let egress = usize::from(choice.path.egress_port);
    if !ctx.started.get(egress).copied().unwrap_or(false) {
        return Outcome::Send(Decision::BadEgress, ctx.default_port);
    }
    if let Some(dst_mac) = m.data_mut().get_mut(0..6) {
        dst_mac.copy_from_slice(&choice.path.next_hop_mac);
    }
    let decision = if choice.reason == ChoiceReason::Fallback {
        Decision::StaleFallback
    } else {
        Decision::Steered
    };
    Outcome::Send(decision, egress)
}

/// Transmits probes the probe thread queued (worker 0 only). They are the
/// appliance's own frames, so they count in the probe counters (`sent` by
/// the probe thread, `tx_refused` here), not in any port's forwarded tx.
/// Returns whether there were any.
fn send_probes(
    probe: &ProbeWorker,
    out: &ArrayQueue<(u16, Mbuf)>,
    stages: &mut [MbufBurst],
    queue: u16,
) -> bool {
    let mut any = false;
    let mut refused = 0u64;
    while let Some((port, m)) = out.pop() {
        any = true;
        match stages.get_mut(usize::from(port)).map(|stage| stage.push(m)) {
            Some(Ok(())) => {}
            // No such port, or a full stage: the frame is freed on drop.
            _ => refused += 1,
        }
    }
    for (port, stage) in stages.iter_mut().enumerate() {
        if !stage.is_empty() {
            stage.tx_burst(crate::dpdk::PortId(port as u16), queue);
            refused += stage.free_all() as u64;
        }
    }
    if refused > 0 {
        bump(&probe.counters.tx_refused, refused);
    }
    any
}

/// Runs the forwarding pipeline until `conf.stop` is set.
pub fn run(conf: &WorkerConf) {
    let mut pipeline = Forward::new(conf);
    super::run(conf, &mut pipeline);
}
