//! The predictor core (draft §3.2): an OS thread pinned to one CPU with
//! `core_affinity`, fed by the workers' feature FIFOs, running
//! `tensor::predict::PredictorCore` and publishing each new snapshot of
//! predictions through an `ArcSwap` that workers read once per burst.
//!
//! The thread is the FIFOs' only consumer and the snapshot's only writer,
//! so neither needs a lock. A worker never waits for it: a full FIFO drops
//! the record on the worker side (counted), and a slow predictor only makes
//! the snapshot older.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Result};
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use tensor::predict::{PredictorConfig, PredictorCore};
use tensor::prediction::{MAX_PREDICTED_NODES, MAX_PREDICTED_PATHS, MAX_PREDICTED_PORTS};
use tensor::{FeatureRecord, Predictions};

use crate::control_plane::MonoClock;
use crate::pipeline::tensor_counters::PredictorCounters;
use crate::tensor_config::{TensorConfig, TensorPath};

/// Records taken from a FIFO before the clock is looked at again.
const DRAIN_BATCH: usize = 4096;
/// The shortest sleep when every FIFO was empty (the longest is a bin, or
/// `SHARED_CPU_SLEEP`).
const IDLE_SLEEP: Duration = Duration::from_micros(20);
/// The shortest sleep on a CPU that also runs a worker lcore. Each wake-up
/// there preempts the worker: waking for every bin (100 µs) took 12% of
/// the CPU from the two-worker bench's second worker, waking once a
/// millisecond, the shortest horizon predicted, takes 6%. The bins it
/// closes late are published together, well within the 20 ms for which a
/// worker uses a snapshot (`tensor::engine::PREDICTION_MAX_AGE_NS`).
const SHARED_CPU_SLEEP: Duration = Duration::from_millis(1);

pub struct PredictorThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// The predictor's configuration from `[tensor]`: port capacities from the
/// shaped rates (or the paths' capacities), paths, and node capacities.
pub fn predictor_config(cfg: &TensorConfig, paths: &[TensorPath]) -> Result<PredictorConfig> {
    let mut p = PredictorConfig::default();
    for (i, cap) in p
        .port_capacity_bps
        .iter_mut()
        .enumerate()
        .take(MAX_PREDICTED_PORTS)
    {
        let port = i as u16;
        if let Some(r) = cfg.rate_mbps(port) {
            *cap = r * 1e6;
        } else if let Some(path) = paths.iter().find(|q| q.port == port) {
            *cap = path.capacity_bps;
        }
    }
    for (i, path) in paths.iter().enumerate().take(MAX_PREDICTED_PATHS) {
        if let Some(slot) = p.path_port.get_mut(i) {
            *slot = u8::try_from(path.port).ok();
        }
        if let Some(slot) = p.path_capacity_bps.get_mut(i) {
            *slot = path.capacity_bps;
        }
    }
    for (i, n) in cfg.nodes.iter().enumerate().take(MAX_PREDICTED_NODES) {
        if let Some(slot) = p.node_capacity_bps.get_mut(i) {
            *slot = n.capacity_mbps * 1e6;
        }
    }
    p.queue_mark_packets = f64::from(cfg.ecn_mark_packets.max(1));
    // Fail here, before EAL, with the predictor's own words.
    PredictorCore::new(p).map_err(|e| anyhow!("tensor: predictor: {e}"))?;
    Ok(p)
}

impl PredictorThread {
    /// Starts the thread, pinned to `cpu`, or by default to the last CPU
    /// of the calling thread's set that runs no worker lcore
    /// (`worker_cpus`), else the last of that set. Called on the main
    /// lcore after EAL's init, that set is the main lcore's: in practice
    /// its CPU, as before this rule; it differs only when the main lcore's
    /// set also holds a worker's CPU.
    pub fn start(
        config: PredictorConfig,
        cpu: Option<usize>,
        worker_cpus: &[usize],
        fifos: Vec<Arc<ArrayQueue<FeatureRecord>>>,
        snapshot: Arc<ArcSwap<Predictions>>,
        counters: Arc<PredictorCounters>,
        clock: MonoClock,
    ) -> Result<PredictorThread> {
        let mut core = PredictorCore::new(config).map_err(|e| anyhow!("tensor: predictor: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = Arc::clone(&stop);
        let target = cpu.or_else(|| {
            default_cpu(
                &core_affinity::get_core_ids()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| c.id)
                    .collect::<Vec<_>>(),
                worker_cpus,
            )
        });
        let on_worker_cpu = target.is_some_and(|c| worker_cpus.contains(&c));
        let handle = std::thread::Builder::new()
            .name("predictor".into())
            .spawn(move || {
                if let Some(id) = target {
                    // Pinning can fail in a restricted cpuset; the predictor
                    // then still runs, only not isolated.
                    let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                // Workers hand over a window's records when it has ended
                // (at their next burst, or housekeeping pass when idle), so
                // the clock closes a bin only this long after its end: by
                // then every worker has handed over its records for it.
                let grace_ns = 2 * core.config().bin_ns;
                let p = &*counters;
                let publish = |pred: Predictions, core: &PredictorCore| {
                    snapshot.store(Arc::new(pred));
                    p.snapshots.fetch_add(1, Relaxed);
                    p.period_ns.store(pred.bursts.period_ns, Relaxed);
                    p.next_burst_ns.store(pred.bursts.next_burst_ns, Relaxed);
                    let a = core.accuracy();
                    let [m1, .., m5] = a.model;
                    let [l1, .., l5] = a.last_value;
                    p.mae_1ms_bps.store(m1.mae as u64, Relaxed);
                    p.mae_1ms_last_value_bps.store(l1.mae as u64, Relaxed);
                    p.mae_5ms_bps.store(m5.mae as u64, Relaxed);
                    p.mae_5ms_last_value_bps.store(l5.mae as u64, Relaxed);
                };
                while !stop_thread.load(Relaxed) {
                    let mut took = 0u64;
                    for fifo in &fifos {
                        for _ in 0..DRAIN_BATCH {
                            let Some(r) = fifo.pop() else { break };
                            // Close the bins this record is past, so it
                            // lands in its own bin, then count it.
                            if core.next_close_ns().is_some_and(|c| r.t_ns >= c) {
                                if let Some(pred) = core.tick(r.t_ns) {
                                    publish(pred, &core);
                                }
                            }
                            core.observe(&r);
                            took += 1;
                        }
                    }
                    if took > 0 {
                        p.records.fetch_add(took, Relaxed);
                    }
                    if let Some(pred) = core.tick(clock.now_ns().saturating_sub(grace_ns)) {
                        publish(pred, &core);
                    }
                    if took == 0 {
                        // Nothing to read: wake when the clock closes the
                        // open bin (records come a window at a time), at
                        // most a bin from now; on a worker's CPU no sooner
                        // than SHARED_CPU_SLEEP.
                        let now = clock.now_ns();
                        let due = core
                            .next_close_ns()
                            .map_or(0, |c| c.saturating_add(grace_ns).saturating_sub(now));
                        std::thread::sleep(idle_sleep(due, core.config().bin_ns, on_worker_cpu));
                    }
                }
            })
            .map_err(|e| anyhow!("cannot start the predictor thread: {e}"))?;
        Ok(PredictorThread {
            stop,
            handle: Some(handle),
        })
    }
}

/// How long the thread sleeps with every FIFO empty and the next bin due
/// in `due_ns`: until then, but at least `IDLE_SLEEP` and at most a bin;
/// on a worker's CPU at least `SHARED_CPU_SLEEP`.
fn idle_sleep(due_ns: u64, bin_ns: u64, on_worker_cpu: bool) -> Duration {
    let nap = Duration::from_nanos(due_ns.clamp(IDLE_SLEEP.as_nanos() as u64, bin_ns.max(1)));
    if on_worker_cpu {
        nap.max(SHARED_CPU_SLEEP)
    } else {
        nap
    }
}

/// The predictor's CPU when none is configured: the last of `allowed` that
/// runs no worker, else the last of `allowed`.
pub fn default_cpu(allowed: &[usize], worker_cpus: &[usize]) -> Option<usize> {
    allowed
        .iter()
        .rev()
        .find(|c| !worker_cpus.contains(c))
        .or_else(|| allowed.last())
        .copied()
}

impl Drop for PredictorThread {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{default_cpu, idle_sleep};

    #[test]
    fn the_predictor_avoids_worker_cpus() {
        // -l 0,1: the worker on CPU 1, the main lcore on CPU 0.
        assert_eq!(default_cpu(&[0, 1], &[1]), Some(0));
        // --lcores 0@0,1@1,2@0: workers on both CPUs, so the last one.
        assert_eq!(default_cpu(&[0, 1], &[1, 0]), Some(1));
        assert_eq!(default_cpu(&[0, 1, 2, 3], &[1, 2]), Some(3));
        assert_eq!(default_cpu(&[], &[1]), None);
    }

    #[test]
    fn on_a_workers_cpu_the_predictor_wakes_at_most_once_a_millisecond() {
        let bin = 100_000;
        let us = Duration::from_micros;
        // On its own CPU: when the next bin is due, within [20 µs, a bin].
        assert_eq!(idle_sleep(60_000, bin, false), us(60));
        assert_eq!(idle_sleep(0, bin, false), us(20));
        assert_eq!(idle_sleep(5_000_000, bin, false), us(100));
        // On a worker's CPU: never sooner than a millisecond.
        assert_eq!(idle_sleep(60_000, bin, true), us(1000));
        assert_eq!(idle_sleep(0, bin, true), us(1000));
    }
}
