//! `emulator wire`: a user-space path emulator between two Linux interfaces,
//! for kernels without `tc netem`.
//!
//! Each interface gets an AF_PACKET raw socket bound to it (ETH_P_ALL,
//! promiscuous membership, outgoing frames ignored so the wire never
//! forwards its own transmissions). Every frame received on one side goes
//! through that direction's [`DelayLine`] and, unless lost, leaves by the
//! other side at its release time. One thread per direction: it sends
//! what is due, then waits in `ppoll` for a frame or the next release.
//!
//! A wire can be cut: while [`Cut`] is set (by `SIGUSR1` in `emulator wire`;
//! `SIGUSR2` restores it), every frame is dropped, both those arriving and
//! those already on the line, and counted as `cut`. That is a black-holed
//! path: nothing gets through, nothing is refused.
//!
//! With a [`PathReport`] the wire also stands in for the network
//! controller's view of its path: every interval it sends a sealed
//! PATH_STATE (one-way latency and jitter as configured, loss as
//! configured or 1 while cut) to the appliance's control address, as a
//! prober that measured the path would (ideally) report it.
//!
//! The interfaces must have their offloads off (`ethtool -K IF tso off gso
//! off gro off tx off`): with them on, the kernel hands AF_PACKET frames
//! larger than the MTU and checksums left for the NIC to fill, which the
//! wire would forward as they are and the far side would drop. Such
//! frames are counted as `send_errors`.

#![allow(unsafe_code)]

use std::io;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::net::if_::if_nametoindex;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::socket::{
    self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrLike,
};
use nix::sys::time::TimeSpec;
use serde::Serialize;

use super::delay_line::{Admission, DelayLine, LineConfig};
use super::sock::{failed, set_option_bytes};
use llm_requests::seeded_rng;

/// Largest frame read; anything longer is a GSO super-frame (offloads on).
const MAX_FRAME: usize = 65_536;
/// Longest the thread sleeps without looking at the stop flag.
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// Frames read per wake-up before due frames get their turn again.
const READ_BATCH: usize = 64;

/// What `emulator wire` does.
#[derive(Debug, Clone)]
pub struct WireConfig {
    /// First interface.
    pub a: String,
    /// Second interface.
    pub b: String,
    /// Both directions' delay, jitter, loss and queue bound.
    pub line: LineConfig,
    /// Seed of the loss and jitter draws.
    pub seed: u64,
    /// Stop after this long (default: until SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    /// Where to write the stats at exit.
    pub stats_json: Option<PathBuf>,
    /// PATH_STATE reports of this wire's path, if any.
    pub report: Option<PathReport>,
}

/// Where and how a wire reports its path (`--report-to`).
#[derive(Debug, Clone)]
pub struct PathReport {
    /// The appliance's control address.
    pub to: std::net::SocketAddr,
    /// This peer's key file.
    pub key_file: PathBuf,
    /// This peer's key id.
    pub key_id: u32,
    /// The path id to report as.
    pub path: u16,
    /// Report period.
    pub interval: Duration,
}

/// Whether the wire is cut (black-holed); shared with whoever cuts it.
pub type Cut = Arc<AtomicBool>;

/// One direction's counters. At exit, `frames_in` is the sum of
/// `forwarded`, `lost`, `queue_full`, `send_errors`, `cut` and
/// `unsent_at_exit`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DirectionStats {
    /// Frames received on the ingress side.
    pub frames_in: u64,
    /// Frames sent out of the egress side.
    pub forwarded: u64,
    /// Emulated loss.
    pub lost: u64,
    /// Dropped because `--queue-frames` frames were already held.
    pub queue_full: u64,
    /// The egress socket refused the frame (oversized: offloads on).
    pub send_errors: u64,
    /// Still held when the wire stopped.
    pub unsent_at_exit: u64,
    /// Dropped while the wire was cut (on arrival or still on the line).
    pub cut: u64,
    /// Bytes forwarded.
    pub bytes_forwarded: u64,
}

/// The configuration as written to `--stats-json`.
#[derive(Debug, Clone, Serialize)]
pub struct WireConfigReport {
    /// First interface.
    pub a: String,
    /// Second interface.
    pub b: String,
    /// One-way delay, ms.
    pub delay_ms: f64,
    /// Jitter (±), ms.
    pub jitter_ms: f64,
    /// Loss probability.
    pub loss: f64,
    /// Queue bound per direction, frames.
    pub queue_frames: usize,
    /// Seed.
    pub seed: u64,
}

/// What `--stats-json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct WireStats {
    /// The configuration.
    pub config: WireConfigReport,
    /// Seconds the wire ran.
    pub duration_s: f64,
    /// Frames received on A, sent out of B.
    pub a_to_b: DirectionStats,
    /// Frames received on B, sent out of A.
    pub b_to_a: DirectionStats,
    /// PATH_STATE reports sent.
    pub reports_sent: u64,
}

/// An AF_PACKET socket bound to one interface.
#[derive(Debug)]
struct PacketSocket {
    fd: OwnedFd,
    /// Whether the kernel drops outgoing frames for us; when it cannot
    /// (before Linux 4.20) they are filtered by packet type.
    ignores_outgoing: bool,
}

/// `struct packet_mreq` as `setsockopt` reads it: promiscuous membership
/// of interface `ifindex` (no hardware address).
fn promiscuous_membership(ifindex: libc::c_int) -> [u8; std::mem::size_of::<libc::packet_mreq>()] {
    let mut mreq = [0u8; std::mem::size_of::<libc::packet_mreq>()];
    mreq[0..4].copy_from_slice(&ifindex.to_ne_bytes());
    let promisc = libc::PACKET_MR_PROMISC as u16;
    mreq[4..6].copy_from_slice(&promisc.to_ne_bytes());
    // mr_alen (bytes 6..8) and mr_address (8..16) stay zero.
    mreq
}

/// The link-layer address `bind(2)` takes to tie a packet socket to one
/// interface, for every protocol.
fn interface_address(ifindex: libc::c_int) -> io::Result<LinkAddr> {
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sll` is a valid, initialised sockaddr_ll of the length
    // passed; nix copies it (nix has no safe constructor for LinkAddr).
    unsafe { LinkAddr::from_raw((&sll as *const libc::sockaddr_ll).cast(), Some(len)) }
        .ok_or_else(|| io::Error::other("sockaddr_ll not accepted as a link address"))
}

impl PacketSocket {
    fn open(iface: &str) -> io::Result<PacketSocket> {
        if iface.as_bytes().contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {iface:?} contains a NUL byte"),
            ));
        }
        let ifindex = match if_nametoindex(iface) {
            Ok(i) if i != 0 => i,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no interface named {iface} in this network namespace"),
                ))
            }
        };
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )
        .map_err(|e| failed(e, "socket(AF_PACKET, SOCK_RAW) (needs root or CAP_NET_RAW)"))?;
        let ifindex = libc::c_int::try_from(ifindex).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range")
        })?;
        socket::bind(fd.as_raw_fd(), &interface_address(ifindex)?)
            .map_err(|e| failed(e, &format!("bind(AF_PACKET, {iface})")))?;
        set_option_bytes(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &promiscuous_membership(ifindex),
        )
        .map_err(|e| failed(e, &format!("promiscuous mode on {iface}")))?;
        let ignores_outgoing = set_option_bytes(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &1i32.to_ne_bytes(),
        )
        .is_ok();
        // Frames queued in the socket before it was bound to the interface
        // may come from any interface: drain them.
        // Bounded, so a busy interface cannot keep this loop going.
        let mut sink = [0u8; 64];
        for _ in 0..4096 {
            if socket::recv(fd.as_raw_fd(), &mut sink, MsgFlags::MSG_DONTWAIT).is_err() {
                break;
            }
        }
        Ok(PacketSocket {
            fd,
            ignores_outgoing,
        })
    }

    /// Waits until a frame can be read or `timeout` passes.
    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match ppoll(&mut pfd, Some(TimeSpec::from_duration(timeout)), None) {
            Ok(n) => Ok(n > 0
                && pfd[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLIN))),
            Err(Errno::EINTR) => Ok(false),
            Err(e) => Err(failed(e, "ppoll")),
        }
    }

    /// One frame received on the interface (not sent by this host), or
    /// `None` when nothing is waiting.
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            let received = {
                let mut iov = [IoSliceMut::new(buf)];
                socket::recvmsg::<LinkAddr>(
                    self.fd.as_raw_fd(),
                    &mut iov,
                    None,
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
                )
                .map(|m| (m.bytes, m.address))
            };
            let (n, from) = match received {
                Ok(r) => r,
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(failed(e, "recvfrom(AF_PACKET)")),
            };
            if !self.ignores_outgoing && from.is_some_and(|a| a.pkttype() == libc::PACKET_OUTGOING)
            {
                continue;
            }
            // MSG_TRUNC reports the real length; a longer frame than the
            // buffer is kept truncated and will fail to send (counted).
            return Ok(Some(n.min(buf.len())));
        }
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        socket::send(self.fd.as_raw_fd(), frame, MsgFlags::empty())
            .map(drop)
            .map_err(io::Error::from)
    }
}

/// Moves frames from `rx` to `tx` through `line` until `stop` is set;
/// drops everything while `cut` is set.
fn run_direction(
    rx: &PacketSocket,
    tx: &PacketSocket,
    mut line: DelayLine<Vec<u8>>,
    origin: Instant,
    stop: &AtomicBool,
    cut: &AtomicBool,
) -> io::Result<DirectionStats> {
    let mut stats = DirectionStats::default();
    let mut buf = vec![0u8; MAX_FRAME];
    while !stop.load(Ordering::Relaxed) {
        let now = origin.elapsed();
        while let Some(frame) = line.pop_due(now) {
            if cut.load(Ordering::Relaxed) {
                stats.cut += 1;
                continue;
            }
            match tx.send(&frame) {
                Ok(()) => {
                    stats.forwarded += 1;
                    stats.bytes_forwarded += frame.len() as u64;
                }
                Err(_) => stats.send_errors += 1,
            }
        }
        let wait = line
            .next_release()
            .map_or(IDLE_WAIT, |t| t.saturating_sub(origin.elapsed()))
            .min(IDLE_WAIT);
        if !rx.wait_readable(wait)? {
            continue;
        }
        for _ in 0..READ_BATCH {
            let Some(n) = rx.try_recv(&mut buf)? else {
                break;
            };
            stats.frames_in += 1;
            if cut.load(Ordering::Relaxed) {
                stats.cut += 1;
                continue;
            }
            match line.admit(origin.elapsed(), buf[..n].to_vec()) {
                Admission::Queued(_) => {}
                Admission::Lost => stats.lost += 1,
                Admission::QueueFull => stats.queue_full += 1,
            }
        }
    }
    stats.unsent_at_exit = line.len() as u64;
    Ok(stats)
}

/// Opens both interfaces; call before printing that the wire is ready.
pub fn open(cfg: &WireConfig) -> io::Result<OwnedSockets> {
    cfg.line
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if cfg.a == cfg.b {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--a and --b are both {}; the wire needs two interfaces",
                cfg.a
            ),
        ));
    }
    let a = PacketSocket::open(&cfg.a).map_err(|e| annotate(e, "--a", &cfg.a))?;
    let b = PacketSocket::open(&cfg.b).map_err(|e| annotate(e, "--b", &cfg.b))?;
    Ok(OwnedSockets { a, b })
}

fn annotate(e: io::Error, option: &str, iface: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{option} {iface}: {e}"))
}

/// Both interfaces' sockets, opened by [`open`].
#[derive(Debug)]
pub struct OwnedSockets {
    a: PacketSocket,
    b: PacketSocket,
}

/// The PATH_STATE a wire reports: its configured one-way delay and
/// jitter, and its loss (1 while cut).
pub fn path_state(
    path: u16,
    line: &LineConfig,
    cut: bool,
) -> Result<control::Message, control::compose::NothingToSend> {
    control::PathStateFields {
        path,
        latency_us: Some(line.delay.as_secs_f64() * 1e6),
        jitter_us: Some(line.jitter.as_secs_f64() * 1e6),
        bandwidth_bps: None,
        loss: Some(if cut { 1.0 } else { line.loss }),
        source: control::Source::Measured,
    }
    .message()
}

/// Starts the reporting thread: a PATH_STATE every interval until `stop`;
/// returns how many it sent.
fn spawn_reporter(
    report: &PathReport,
    line: LineConfig,
    cut: Cut,
    stop: Arc<AtomicBool>,
) -> io::Result<std::thread::JoinHandle<u64>> {
    // The appliance may not be up yet (or any more): a refused datagram
    // is the next report's problem, which the pusher counts.
    let mut pusher = collector::push::Pusher::new(&report.key_file, report.key_id, &[report.to])?;
    let (path, interval) = (report.path, report.interval);
    std::thread::Builder::new()
        .name("wire-report".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(msg) = path_state(path, &line, cut.load(Ordering::Relaxed)) {
                    pusher.push(&msg);
                }
                std::thread::sleep(interval);
            }
            pusher.sent
        })
}

/// Bridges until `stop` is set or `cfg.duration` passes, dropping
/// everything while `cut` is set, then returns the stats (also written to
/// `cfg.stats_json`).
pub fn run(
    cfg: &WireConfig,
    sockets: OwnedSockets,
    stop: Arc<AtomicBool>,
    cut: Cut,
) -> io::Result<WireStats> {
    let origin = Instant::now();
    let sockets = Arc::new(sockets);
    let line =
        |stream: u64| DelayLine::new(cfg.line, seeded_rng(cfg.seed, 0x7769_7265_0000 + stream));
    let spawn = |name: &str, forward_a_to_b: bool, line: DelayLine<Vec<u8>>| {
        let (sockets, stop, cut) = (Arc::clone(&sockets), Arc::clone(&stop), Arc::clone(&cut));
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let (rx, tx) = if forward_a_to_b {
                    (&sockets.a, &sockets.b)
                } else {
                    (&sockets.b, &sockets.a)
                };
                let result = run_direction(rx, tx, line, origin, &stop, &cut);
                // One direction failing ends the whole wire.
                stop.store(true, Ordering::Relaxed);
                result
            })
    };
    let ab = spawn("wire-a-to-b", true, line(0))?;
    let ba = spawn("wire-b-to-a", false, line(1))?;
    let reporter = match &cfg.report {
        Some(r) => match spawn_reporter(r, cfg.line, Arc::clone(&cut), Arc::clone(&stop)) {
            Ok(h) => Some(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                let _ = (ab.join(), ba.join());
                return Err(e);
            }
        },
        None => None,
    };
    let deadline = cfg.duration.map(|d| origin + d);
    while !stop.load(Ordering::Relaxed) && deadline.map_or(true, |d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let join = |h: std::thread::JoinHandle<io::Result<DirectionStats>>| {
        h.join()
            .map_err(|_| io::Error::other("a wire thread panicked"))?
    };
    let a_to_b = join(ab)?;
    let b_to_a = join(ba)?;
    let reports_sent = match reporter {
        Some(h) => h
            .join()
            .map_err(|_| io::Error::other("the wire's report thread panicked"))?,
        None => 0,
    };
    let stats = WireStats {
        config: WireConfigReport {
            a: cfg.a.clone(),
            b: cfg.b.clone(),
            delay_ms: cfg.line.delay.as_secs_f64() * 1000.0,
            jitter_ms: cfg.line.jitter.as_secs_f64() * 1000.0,
            loss: cfg.line.loss,
            queue_frames: cfg.line.capacity,
            seed: cfg.seed,
        },
        duration_s: origin.elapsed().as_secs_f64(),
        a_to_b,
        b_to_a,
        reports_sent,
    };
    if let Some(path) = &cfg.stats_json {
        let text = serde_json::to_string_pretty(&stats).map_err(io::Error::other)?;
        std::fs::write(path, text + "\n").map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::MetricType;

    fn metric(m: &control::Message, t: MetricType) -> Option<f64> {
        match m {
            control::Message::PathState(p) => p
                .metrics
                .iter()
                .find(|x| x.metric_type == t)
                .map(|x| x.value),
            _ => None,
        }
    }

    #[test]
    fn a_cut_wire_reports_its_path_losing_everything() {
        let line = LineConfig {
            delay: Duration::from_micros(10_500),
            jitter: Duration::from_millis(3),
            loss: 0.01,
            capacity: 100,
        };
        let up = path_state(2, &line, false).unwrap();
        let cut = path_state(2, &line, true).unwrap();
        for m in [&up, &cut] {
            match m {
                control::Message::PathState(p) => assert_eq!(p.path, control::PathId(2)),
                other => panic!("not a PATH_STATE: {other:?}"),
            }
            assert_eq!(metric(m, MetricType::PathLatency), Some(10_500.0));
            assert_eq!(metric(m, MetricType::PathJitter), Some(3000.0));
        }
        assert_eq!(metric(&up, MetricType::PathLoss), Some(0.01));
        assert_eq!(metric(&cut, MetricType::PathLoss), Some(1.0));
    }
}
