//! `intellinode run`: bring up EAL, ports and workers, report while running,
//! and shut down cleanly.
//!
//! Threads: the main lcore (this thread) owns setup, the live statistics and
//! shutdown; one worker lcore per queue runs the pipeline. Shutdown is
//! cooperative: SIGINT/SIGTERM sets a flag, and on it, at the end of
//! `--duration` or once `--until-idle` finds nothing left to do, the main
//! lcore tells the workers to stop, waits for them, reads the final
//! counters, then stops the ports (which flushes pcap output) before EAL is
//! cleaned up.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use std::sync::OnceLock;

use crate::config::{Config, Pipeline};
use crate::control_plane::{self, ControlPlane, MonoClock, StatsFn};
use crate::dpdk::{
    self, Eal, Mempool, Port, PortId, PortInfo, PortSetup, Rss, RssFields, RssOutcome,
};
use crate::metrics::MetricsServer;
use crate::pipeline::steer::SteerShared;
use crate::pipeline::tensor::TensorShared;
use crate::pipeline::{forward, steer, tensor, Handoff, QueueRoute, WorkerConf};
use crate::predictor_core::PredictorThread;
use crate::preflight;
use crate::probe::{self, ProbeCounters, ProbeReply, ProbeSetup, ProbeThread, ProbeWorker};
use crate::report::{self, Live};
use crate::stats::{DropReason, LcoreCounters, Snapshot, StatsReport};
use crate::telemetry::{ControlHandles, Telemetry, TensorHandles};
use crossbeam_queue::ArrayQueue;

/// What `intellinode run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    pub duration: Option<Duration>,
    /// Stop once the workers have been idle this long with nothing held
    /// (`--until-idle`, see [`IdleWatch`]).
    pub until_idle: Option<Duration>,
    pub stats_interval: Duration,
    pub stats_json: Option<PathBuf>,
    pub eal_args: Vec<String>,
}

/// Refuses a `tensor.predictor_cpu` the process may not run on. Read
/// before EAL starts: EAL then narrows the main thread to its own lcore.
fn check_predictor_cpu(config: &std::path::Path, cpu: Option<usize>) -> Result<()> {
    let Some(cpu) = cpu else { return Ok(()) };
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    if allowed.is_empty() || allowed.contains(&cpu) {
        return Ok(());
    }
    bail!(
        "config {}: tensor.predictor_cpu = {cpu} is not a CPU this process may run on (it may run on {})",
        config.display(),
        allowed
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Per-lcore mbuf cache: big enough to amortise the shared ring, small enough
/// not to strand buffers on idle lcores.
const MEMPOOL_CACHE: u32 = 256;
/// Most mbufs the tensor pipeline's queues and reorder buffer are given.
const TENSOR_MAX_QUEUED_MBUFS: usize = 1 << 15;

pub fn run(opts: &RunOptions) -> Result<StatsReport> {
    // Everything that can be checked without DPDK is checked first, so a typo
    // costs no EAL start-up and gets a precise message.
    let config = Config::load(&opts.config)?;
    preflight::check_vdevs(&opts.eal_args).map_err(|e| anyhow!(e))?;
    let control_peers = match &config.control {
        Some(c) => Some(control_plane::load_peers(c)?),
        None => None,
    };
    let probe_key = match &config.probe {
        Some(p) => probe::load_key(p)?,
        None => None,
    };
    if let Pipeline::Tensor(tc) = &config.pipeline {
        check_predictor_cpu(&opts.config, tc.predictor_cpu)?;
    }

    let stop_requested = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop_requested))
            .context("cannot install signal handler")?;
    }

    let eal = Eal::init(&eal_argv(&opts.eal_args)).map_err(|e| {
        anyhow!("EAL initialisation failed: {e} (check the EAL arguments after `--`)")
    })?;

    let workers = eal.worker_lcores();
    if workers.is_empty() {
        bail!("no worker lcore: give EAL at least two lcores (e.g. `-l 0,1`); the first one runs statistics and control");
    }
    let nb_ports = eal.port_count();
    let infos = (0..nb_ports)
        .map(|p| PortInfo::query(PortId(p)))
        .collect::<dpdk::Result<Vec<_>>>()?;
    let used = config.ports_used();
    if let Some(&missing) = used.iter().find(|&&p| p >= nb_ports) {
        let found: Vec<String> = infos
            .iter()
            .map(|i| format!("{} {}", i.id, i.name))
            .collect();
        bail!(
            "config pairs port{missing}, but EAL created {nb_ports} port(s){}{}",
            if found.is_empty() { "" } else { ": " },
            found.join(", ")
        );
    }

    let queues = u16::try_from(workers.len()).context("too many worker lcores")?;
    for &p in &used {
        let info = &infos[usize::from(p)];
        if info.max_rx_queues < queues || info.max_tx_queues < queues {
            bail!(
                "{} ({}) cannot start: it has {} RX / {} TX queue(s), but {} worker lcore(s) need one each; use fewer lcores or a device with more queues",
                info.id, info.name, info.max_rx_queues, info.max_tx_queues, queues
            );
        }
    }

    // A flow (steer) or QP (tensor) is owned by the worker whose queue
    // RSS puts it on: the ports are asked to hash exactly the owning
    // fields, under a key every engine shares (configured, or drawn once
    // per process).
    let configured_key = match &config.pipeline {
        Pipeline::Forward => None,
        Pipeline::Steer(sc) => sc.rss_key().map_err(|e| anyhow!(e))?,
        Pipeline::Tensor(tc) => tc.rss_key().map_err(|e| anyhow!(e))?,
    };
    let rss_key = configured_key.unwrap_or_else(|| {
        let mut key = [0u8; flowtab::rss::RSS_KEY_LEN];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key[..]);
        key
    });
    let setup = PortSetup {
        rx_queues: queues,
        tx_queues: queues,
        rx_descriptors: config.ports.rx_descriptors,
        tx_descriptors: config.ports.tx_descriptors,
        rss: Rss::Flows,
    };
    let scheduled = match &config.pipeline {
        Pipeline::Forward => 0,
        // Steering's egress schedulers hold packets while a port is busy,
        // and each worker holds fragments that came before their first.
        Pipeline::Steer(s) => {
            used.len() * steer_counters_bands() * s.band_limit_packets as usize
                + workers.len() * ::steer::fragment::FragmentLimits::default().held
        }
        Pipeline::Tensor(t) => {
            // Three strict bands and the WDRR stage per port, and the reorder
            // buffer, up to what -m 512 can hold: beyond that an RX ring
            // simply finds no buffer (counted by the NIC as missed), which is
            // what a full buffer does in a switch too.
            (used.len() * 4 * t.band_limit_packets as usize
                + if t.paths.is_empty() {
                    0
                } else {
                    t.reorder_streams * t.reorder_window
                })
            .min(TENSOR_MAX_QUEUED_MBUFS)
        }
    };
    let mbufs = if config.ports.mbufs > 0 {
        config.ports.mbufs
    } else {
        pool_size(used.len(), &setup, workers.len(), config.burst_size)
            .saturating_add(u32::try_from(scheduled).unwrap_or(u32::MAX))
            .min(u32::MAX - 1)
            .saturating_add(1)
            .next_power_of_two()
            .saturating_sub(1)
    };
    let socket = infos
        .get(usize::from(used[0]))
        .map_or(0, |i| i.socket.max(0));
    let pool = Arc::new(
        Mempool::new(
            "intellinode_pkts",
            mbufs,
            MEMPOOL_CACHE.min(mbufs / 2),
            socket,
        )
        .map_err(|e| anyhow!("cannot create the packet pool of {mbufs} mbufs: {e}"))?,
    );

    let mut ports = Vec::with_capacity(used.len());
    for &p in &used {
        let info = infos[usize::from(p)].clone();
        let label = format!("{} ({})", info.id, info.name);
        let owner = |fields| Rss::Owner {
            key: rss_key,
            fields,
        };
        let rss = match &config.pipeline {
            Pipeline::Steer(sc) if p == sc.agent_port => owner(RssFields::SourceAddress),
            Pipeline::Steer(_) => owner(RssFields::DestinationAddress),
            Pipeline::Tensor(tc) if p == tc.host_port => owner(RssFields::Ports),
            _ => Rss::Flows,
        };
        let port = Port::start(info, PortSetup { rss, ..setup }, &pool)
            .map_err(|e| anyhow!("{label} cannot start: {e}"))?;
        if let RssOutcome::Approximate(why) = port.rss() {
            eprintln!(
                "intellinode: {label}: RSS cannot deliver each flow to its owner ({why}); packets of other workers' flows are handed over"
            );
        }
        if port.ip_checksum_offload() {
            eprintln!("intellinode: {label}: the NIC verifies IPv4 header checksums");
        }
        ports.push(port);
    }

    let worker_stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<LcoreCounters>> = workers
        .iter()
        .map(|l| Arc::new(LcoreCounters::new(l.0, usize::from(nb_ports))))
        .collect();
    let clock = MonoClock::new();
    let mut telemetry = Telemetry {
        ports: ports
            .iter()
            .map(|p| (p.id().0, p.info().name.clone()))
            .collect(),
        nb_ports: usize::from(nb_ports),
        lcores: counters.clone(),
        control: None,
        probe: None,
        steer: None,
        tensor: None,
        pool: Some(Arc::downgrade(&pool)),
    };
    // The control thread answers stats queries with telemetry that includes
    // its own counters, which exist only once it has started.
    let telemetry_cell: Arc<OnceLock<Telemetry>> = Arc::new(OnceLock::new());
    let control = match (&config.control, control_peers) {
        (Some(c), Some(peers)) => {
            let cell = Arc::clone(&telemetry_cell);
            let stats: StatsFn = Arc::new(move || {
                cell.get()
                    .map_or(serde_json::Value::Null, |t| t.stats_json())
            });
            let plane = ControlPlane::start(c, peers, clock, stats)?;
            telemetry.control = Some(ControlHandles {
                counters: Arc::clone(&plane.counters),
                state: Arc::clone(&plane.state),
                clock,
            });
            Some(plane)
        }
        _ => None,
    };
    let mut started_ports = vec![false; usize::from(nb_ports)];
    for &p in &used {
        started_ports[usize::from(p)] = true;
    }
    // Probing: a reply queue per worker, one outbound queue to worker 0,
    // and the probe thread when there is something to measure.
    let mut probe_workers: Vec<Option<ProbeWorker>> = vec![None; workers.len()];
    let mut probe_thread = None;
    if let Some(pc) = &config.probe {
        let replies: Vec<Arc<ArrayQueue<ProbeReply>>> = workers
            .iter()
            .map(|_| Arc::new(ArrayQueue::new(1024)))
            .collect();
        let outbound = Arc::new(ArrayQueue::new(256));
        let probe_counters = Arc::new(ProbeCounters::default());
        for (i, slot) in probe_workers.iter_mut().enumerate() {
            *slot = Some(ProbeWorker {
                udp_port: pc.udp_port,
                reflect: pc.reflect,
                replies: Arc::clone(&replies[i]),
                outbound: (i == 0).then(|| Arc::clone(&outbound)),
                counters: Arc::clone(&probe_counters),
            });
        }
        if let (Some(key), Some(plane)) = (probe_key, control.as_ref()) {
            if !pc.targets.is_empty() {
                probe_thread = Some(ProbeThread::start(ProbeSetup {
                    config: pc.clone(),
                    counters: probe_counters,
                    key,
                    port_macs: infos.iter().map(|i| i.mac).collect(),
                    pool: Arc::clone(&pool),
                    clock,
                    publisher: plane.publisher.clone(),
                    outbound,
                    replies,
                    started_ports: started_ports.clone(),
                })?);
            }
        }
    }
    telemetry.probe = probe_thread.as_ref().map(|t| Arc::clone(&t.counters));
    // Keys the hash of the flow and QP tables, whose keys remote senders
    // choose: drawn once per process, so collisions cannot be aimed.
    let table_seed: u64 = rand::random();
    let mut predictor_thread = None;
    let shared = match &config.pipeline {
        Pipeline::Forward => WorkerShared::Forward,
        Pipeline::Steer(sc) => {
            let shared = SteerShared::new(
                sc,
                workers.len(),
                usize::from(nb_ports),
                dpdk::tsc_hz(),
                table_seed,
                rss_key,
            )
            .map_err(|e| anyhow!(e))?
            .with_pool(Arc::clone(&pool));
            telemetry.steer = Some((shared.counters.clone(), shared.instance_names()));
            WorkerShared::Steer(Arc::new(shared))
        }
        Pipeline::Tensor(tc) => {
            let (shared, predictor_cfg) = tensor::build_shared(
                tc,
                usize::from(nb_ports),
                workers.len(),
                table_seed,
                rss_key,
            )?;
            telemetry.tensor = Some(TensorHandles {
                counters: shared.counters.clone(),
                predictor: Arc::clone(&shared.predictor),
                paths: shared.paths.iter().map(|p| p.id).collect(),
            });
            let worker_cpus: Vec<usize> =
                workers.iter().filter_map(|&l| eal.lcore_cpu(l)).collect();
            predictor_thread = Some(PredictorThread::start(
                predictor_cfg,
                tc.predictor_cpu,
                &worker_cpus,
                shared.fifos.clone(),
                Arc::clone(&shared.predictions),
                Arc::clone(&shared.predictor),
                clock,
            )?);
            WorkerShared::Tensor(Arc::new(shared))
        }
    };
    // Both readers of the telemetry start only now that it is complete.
    let _ = telemetry_cell.set(telemetry.clone());
    let metrics = match &config.metrics {
        Some(m) => {
            let t = telemetry.clone();
            Some(
                MetricsServer::spawn(m.listen, Arc::new(move || t.render()))
                    .map_err(|e| anyhow!("metrics: cannot listen on http://{}: {e}", m.listen))?,
            )
        }
        None => None,
    };
    let handoff = Handoff::new(workers.len());
    // Taken with every port started and no worker running yet: the mbufs
    // the drivers hold (RX rings, a replayed pcap), against which the
    // count at the end shows what the pipeline kept.
    let mbufs_in_use_at_start = pool.in_use();
    for (q, (&lcore, c)) in workers.iter().zip(&counters).enumerate() {
        let mut routes = routes_for_queue(&config, q as u16);
        for r in &mut routes {
            r.nic_checks_ipv4 = ports
                .iter()
                .any(|p| p.id() == r.rx_port && p.ip_checksum_offload());
        }
        let conf = WorkerConf {
            lcore,
            routes,
            burst_size: usize::from(config.burst_size),
            idle_sleep: Duration::from_micros(u64::from(config.idle_sleep_us)),
            counters: Arc::clone(c),
            stop: Arc::clone(&worker_stop),
            control: control.as_ref().map(|p| Arc::clone(&p.view)),
            clock,
            started_ports: started_ports.clone(),
            probe: probe_workers[q].clone(),
            handoff: handoff.of(q),
        };
        let shared = shared.clone();
        let launched = dpdk::launch(lcore, move || {
            match &shared {
                WorkerShared::Forward => forward::run(&conf),
                WorkerShared::Steer(shared) => steer::run(&conf, shared),
                WorkerShared::Tensor(shared) => tensor::run(&conf, shared),
            }
            0
        });
        if let Err(e) = launched {
            worker_stop.store(true, Ordering::Relaxed);
            eal.wait_all_workers();
            bail!("cannot start the worker on {lcore}: {e}");
        }
    }

    let tsc_hz = eal.tsc_hz();
    let mut live = Live::new(&config, &ports, &workers, tsc_hz);
    live.print_header(opts.duration, opts.until_idle);
    let started = Instant::now();
    let mut next_report = started + opts.stats_interval;
    let mut last = Snapshot::take(dpdk::rdtsc(), usize::from(nb_ports), &counters);
    let mut idle = IdleWatch::new(opts.until_idle);
    loop {
        if stop_requested.load(Ordering::Relaxed) {
            live.note("signal received, stopping");
            break;
        }
        let now = Instant::now();
        if opts.duration.is_some_and(|d| now >= started + d) {
            break;
        }
        if idle.idle(now, usize::from(nb_ports), &counters) {
            live.note(&format!(
                "idle for {:.1} s with nothing held, stopping",
                opts.until_idle.unwrap_or_default().as_secs_f64()
            ));
            break;
        }
        if !opts.stats_interval.is_zero() && now >= next_report {
            let snap = Snapshot::take(dpdk::rdtsc(), usize::from(nb_ports), &counters);
            live.print_rates(started.elapsed(), &last, &snap);
            last = snap;
            next_report += opts.stats_interval;
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    worker_stop.store(true, Ordering::Relaxed);
    eal.wait_all_workers();
    // A worker may hand a packet to one that has already finished its
    // drain; with every worker stopped, what is left in the rings between
    // them is freed and counted, so rx = tx + drops holds.
    if let Some(c) = counters.first() {
        for ring in handoff.rings.iter() {
            while let Some(m) = ring.pop() {
                crate::pipeline::egress::count_drop(c, m, DropReason::ShutdownBacklog);
            }
        }
        match &shared {
            WorkerShared::Steer(shared) => shared.discard_feeds(c),
            WorkerShared::Tensor(shared) => shared.discard_feeds(c),
            WorkerShared::Forward => {}
        }
    }
    let final_snap = Snapshot::take(dpdk::rdtsc(), usize::from(nb_ports), &counters);
    let mbufs_in_use_at_end = pool.in_use();
    let duration_secs =
        forwarding_secs(&counters, tsc_hz).unwrap_or_else(|| started.elapsed().as_secs_f64());
    let nic: Vec<_> = ports.iter().map(|p| (p.id(), p.nic_stats())).collect();
    let mut report = report::build(
        &config,
        &infos,
        &used,
        &final_snap,
        &nic,
        duration_secs,
        tsc_hz,
    );
    report.decisions = telemetry.decisions();
    report.control = telemetry.control_json();
    report.steer = telemetry.steer_json();
    report.tensor = telemetry.tensor_json();
    report.mempool = serde_json::json!({
        "name": pool.name(),
        "size": pool.size(),
        "in_use_at_start": mbufs_in_use_at_start,
        "in_use_at_end": mbufs_in_use_at_end,
    });
    drop(predictor_thread);
    // The probe thread, control thread and metrics endpoint stop before
    // the ports (and the pool the probe thread allocates from).
    drop(probe_thread);
    drop(metrics);
    drop(control);

    // Stopping the ports closes pcap dumpers, so output files are complete
    // before anyone reads them; then the pool, then EAL (declared first).
    for port in &mut ports {
        port.stop()
            .map_err(|e| anyhow!("{} did not stop cleanly: {e}", port.id()))?;
    }
    drop(ports);
    // The steering workers' share holds the pool too (they build packets
    // in it): it goes first, so the pool is freed here, before EAL.
    drop(shared);
    drop(pool);
    live.print_summary(&report);
    if let Some(path) = &opts.stats_json {
        report::write_json(&report, path)?;
    }
    drop(eal);
    Ok(report)
}

/// `--until-idle`: whether the run is over because nothing is happening
/// any more, as when a replayed capture has gone through. Idle means, for
/// the whole window: every worker's loop is running; no packet counter
/// moved; rx + generated = tx + drops, so no packet is held anywhere (an
/// egress queue, a reorder buffer, a held fragment, a handoff ring); and
/// every worker made at least two idle passes (every RX queue polled and
/// empty, nothing sent, nothing held) since the window began. The last
/// condition is what makes the wall-clock window safe on a busy machine:
/// a worker that was not scheduled has not looked, so the window only
/// closes once each worker has polled its queues after it opened.
/// Timers that move no packet (a QP or flow idle timeout) are not waited
/// for.
struct IdleWatch {
    window: Option<Duration>,
    /// rx, tx, drops and generated packets at the previous look.
    last: Option<[u64; 4]>,
    /// When the counters stopped moving, and each worker's idle passes
    /// then.
    quiet_since: Option<(Instant, Vec<u64>)>,
}

impl IdleWatch {
    fn new(window: Option<Duration>) -> IdleWatch {
        IdleWatch {
            window,
            last: None,
            quiet_since: None,
        }
    }

    /// Called every few milliseconds by the main lcore.
    fn idle(&mut self, now: Instant, nb_ports: usize, counters: &[Arc<LcoreCounters>]) -> bool {
        let Some(window) = self.window else {
            return false;
        };
        let running = counters
            .iter()
            .all(|c| c.loop_start_tsc.load(Ordering::Relaxed) != 0);
        // Idle passes first: a pass counted after this read began after it.
        let passes: Vec<u64> = counters
            .iter()
            .map(|c| c.idle_polls.load(Ordering::Relaxed))
            .collect();
        let snap = Snapshot::take(0, nb_ports, counters);
        let now_counts = [
            snap.rx_total(),
            snap.tx_total(),
            snap.drops_total(),
            snap.generated_total(),
        ];
        let [rx, tx, drops, generated] = now_counts;
        let still = running && self.last == Some(now_counts) && rx + generated == tx + drops;
        self.last = Some(now_counts);
        if !still {
            self.quiet_since = None;
            return false;
        }
        match &self.quiet_since {
            None => {
                self.quiet_since = Some((now, passes));
                false
            }
            Some((since, at)) => {
                now.duration_since(*since) >= window
                    && passes.iter().zip(at).all(|(p, a)| p.wrapping_sub(*a) >= 2)
            }
        }
    }
}

/// What every worker of the configured pipeline shares: one value per
/// pipeline, so a worker runs the pipeline the config chose and no other.
#[derive(Clone)]
enum WorkerShared {
    Forward,
    Steer(Arc<SteerShared>),
    Tensor(Arc<TensorShared>),
}

/// EAL's argv: a program name, quiet logging unless the user chose a level,
/// then the user's arguments.
fn eal_argv(user: &[String]) -> Vec<String> {
    let mut argv = vec!["intellinode".to_owned()];
    if !user.iter().any(|a| a.starts_with("--log-level")) {
        // EAL's INFO lines (lcore detection, IOVA mode...) drown the live
        // statistics; warnings and errors still show.
        argv.push("--log-level=warning".to_owned());
    }
    if !user
        .iter()
        .any(|a| a == "--telemetry" || a == "--no-telemetry")
    {
        // The telemetry socket is opt-in: it litters /var/run/dpdk and prints
        // a notice on every start.
        argv.push("--no-telemetry".to_owned());
    }
    argv.extend(user.iter().cloned());
    argv
}

/// Worker `queue` polls RX queue `queue` of every paired port and sends on
/// TX queue `queue` of the peer. Steering adds its egress ports, whose
/// default destination (for what is not a response) is the agent port.
fn routes_for_queue(config: &Config, queue: u16) -> Vec<QueueRoute> {
    // Where a port outside every pair sends what the pipeline does not
    // take for itself.
    let unpaired_to = match &config.pipeline {
        Pipeline::Forward => {
            return config
                .pairs
                .iter()
                .flat_map(|pair| {
                    let [a, b] = pair.ports;
                    [(a, b), (b, a)]
                })
                .map(|(rx, tx)| QueueRoute {
                    rx_port: PortId(rx),
                    tx_port: PortId(tx),
                    queue,
                    nic_checks_ipv4: false,
                })
                .collect();
        }
        Pipeline::Steer(steer) => steer.agent_port,
        Pipeline::Tensor(t) => t.host_port,
    };
    config
        .ports_used()
        .into_iter()
        .map(|rx| QueueRoute {
            rx_port: PortId(rx),
            tx_port: PortId(config.peer_of(rx).unwrap_or(unpaired_to)),
            queue,
            nic_checks_ipv4: false,
        })
        .collect()
}

/// Enough mbufs to fill every RX ring and TX ring, plus every lcore cache and
/// one burst in flight per worker, rounded up to 2^n - 1 (the mempool's most
/// memory-efficient size).
fn pool_size(ports: usize, setup: &PortSetup, workers: usize, burst: u16) -> u32 {
    let rings = ports
        * usize::from(setup.rx_queues)
        * (usize::from(setup.rx_descriptors) + usize::from(setup.tx_descriptors));
    let caches = (workers + 1) * MEMPOOL_CACHE as usize;
    let needed = (rings + caches + workers * usize::from(burst) * 2).max(4096);
    (needed + 1)
        .next_power_of_two()
        .saturating_sub(1)
        .min(u32::MAX as usize) as u32
}

/// Egress bands per port in the steering scheduler.
fn steer_counters_bands() -> usize {
    ::steer::TrafficClass::COUNT
}

/// Seconds between the first worker starting its loop and the last ending it.
fn forwarding_secs(counters: &[Arc<LcoreCounters>], tsc_hz: u64) -> Option<f64> {
    let start = counters
        .iter()
        .map(|c| c.loop_start_tsc.load(Ordering::Relaxed))
        .filter(|&t| t != 0)
        .min()?;
    let end = counters
        .iter()
        .map(|c| c.loop_end_tsc.load(Ordering::Relaxed))
        .max()?;
    (end > start && tsc_hz > 0).then(|| (end - start) as f64 / tsc_hz as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_power_of_two_minus_one_and_covers_rings() {
        let setup = PortSetup {
            rx_queues: 2,
            tx_queues: 2,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            rss: Rss::Flows,
        };
        let n = pool_size(2, &setup, 2, 32);
        assert!((n + 1).is_power_of_two());
        assert!(n as usize >= 2 * 2 * 2048 + 3 * 256);
    }

    #[test]
    fn each_queue_routes_both_directions_of_every_pair() {
        let c = Config::parse(
            "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n[[pairs]]\nports = [3, 2]\n",
        )
        .unwrap();
        let r = routes_for_queue(&c, 1);
        let pairs: Vec<(u16, u16, u16)> = r
            .iter()
            .map(|q| (q.rx_port.0, q.tx_port.0, q.queue))
            .collect();
        assert_eq!(pairs, vec![(0, 1, 1), (1, 0, 1), (3, 2, 1), (2, 3, 1)]);
    }

    #[test]
    fn eal_argv_defaults_log_level_only_when_unset() {
        assert!(eal_argv(&["-l".into(), "0,1".into()]).contains(&"--log-level=warning".to_owned()));
        let own = eal_argv(&["--log-level=debug".into(), "--telemetry".into()]);
        assert_eq!(
            own,
            vec![
                "intellinode".to_owned(),
                "--log-level=debug".to_owned(),
                "--telemetry".to_owned()
            ]
        );
    }
}
