//! The emulated failure and recovery run: the agent's records and the
//! times `scripts/eval.sh` killed, restarted, cut and restored things, read
//! into [`sim::failover::Record`]s and measured by the simulator's
//! [`sim::failover::analyse`], so emulation and simulation share one
//! definition of away, back and lost.
//!
//! Where each request went: an answered one names its node (`X-Node`, set
//! by `pktgen serve --name`). A failed one was not always answered far
//! enough to say, so it is put where its error points, if a failure of that
//! kind was under way when it started:
//!
//! * refused, reset or closed connections come from a node whose process
//!   died: the killed node, if the request started before the restart;
//! * timeouts come from a path that carries nothing: the black-holed path's
//!   instance, if the request started before the restore and less than the
//!   agent's timeout before the cut.
//!
//! Any other failure has no instance, so it counts as lost elsewhere.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use sim::failover::{analyse, bounds, failures, FailoverReport, Failure, Record};
use sim::EvalCluster;

/// What `scripts/eval.sh` writes to `runs/failover-timeline.json`: when it
/// acted (ms since the Unix epoch, taken just before each action) and the
/// run's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Timeline {
    /// The agent's report, relative to the evaluation directory.
    pub agent: String,
    /// `kill -KILL` of the edge node.
    pub kill_edge_unix_ms: f64,
    /// Start of the new edge node (its own record of it); the analysis
    /// takes the first connection it answered if that was earlier.
    pub restart_edge_unix_ms: f64,
    /// `SIGUSR1` to the centre path's wire.
    pub cut_internet_unix_ms: f64,
    /// `SIGUSR2` to it.
    pub restore_internet_unix_ms: f64,
    /// NODE_STATE and PATH_STATE period, ms.
    pub report_interval_ms: f64,
    /// The agent's per-request timeout, ms.
    pub timeout_ms: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct AgentRequest {
    class: String,
    start_ms: f64,
    scheduled_ms: f64,
    #[serde(default)]
    arrival_completion_ms: Option<f64>,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct AgentReport {
    start_unix_ms: f64,
    requests: Vec<AgentRequest>,
}

/// What kind of failure an agent's error points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    /// The node's process is gone.
    NodeDied,
    /// Nothing came back.
    Silence,
    /// Anything else.
    Other,
}

fn error_kind(error: &str) -> ErrorKind {
    let e = error.to_ascii_lowercase();
    if e.contains("timed out") {
        ErrorKind::Silence
    } else if ["refused", "reset", "closed", "broken pipe", "no data"]
        .iter()
        .any(|k| e.contains(k))
    {
        ErrorKind::NodeDied
    } else {
        ErrorKind::Other
    }
}

/// The instance a request went to, by its `X-Node` or, failing that, its
/// error (see the module's comment). `node_kill` and `path_cut` are the
/// timeline's two failures.
fn instance(
    r: &AgentRequest,
    instances: &[&str],
    node_kill: &Failure,
    path_cut: &Failure,
    timeout_ms: f64,
) -> Option<usize> {
    if let Some(n) = &r.node {
        return instances.iter().position(|i| i == n);
    }
    let (failure, started_in_time) = match error_kind(r.error.as_deref()?) {
        ErrorKind::NodeDied => (node_kill, r.start_ms < node_kill.recovered_ms),
        ErrorKind::Silence => (
            path_cut,
            r.start_ms < path_cut.recovered_ms && r.start_ms > path_cut.at_ms - timeout_ms,
        ),
        ErrorKind::Other => return None,
    };
    if started_in_time {
        instances.iter().position(|i| *i == failure.instance)
    } else {
        None
    }
}

/// Reads `dir/runs/failover-timeline.json` and the agent's report it
/// names, and measures them; `None` when the evaluation made no failover
/// run.
pub fn load_emulated(dir: &Path, cluster: &EvalCluster) -> anyhow::Result<Option<FailoverReport>> {
    let path = dir.join("runs/failover-timeline.json");
    if !path.exists() {
        return Ok(None);
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let timeline: Timeline = serde_json::from_str(&read(&path)?)
        .with_context(|| format!("{} is not a failover timeline", path.display()))?;
    let agent_path = dir.join(&timeline.agent);
    let agent: AgentReport = serde_json::from_str(&read(&agent_path)?)
        .with_context(|| format!("{} is not an agent report", agent_path.display()))?;
    Ok(Some(measure(&timeline, &agent, cluster)))
}

fn measure(t: &Timeline, agent: &AgentReport, cluster: &EvalCluster) -> FailoverReport {
    let at = |unix_ms: f64| unix_ms - agent.start_unix_ms;
    let mut fs = failures(cluster);
    if let [kill, cut] = fs.as_mut_slice() {
        kill.at_ms = at(t.kill_edge_unix_ms);
        kill.recovered_ms = at(t.restart_edge_unix_ms);
        cut.at_ms = at(t.cut_internet_unix_ms);
        cut.recovered_ms = at(t.restore_internet_unix_ms);
    }
    let names = sim::eval::NODE_NAMES;
    if let Some(kill) = fs.first_mut() {
        // The new node's socket accepts connections as soon as it is
        // bound, a little before the process records its start: it was
        // back no later than the first connection it then answered.
        let first_answered = agent
            .requests
            .iter()
            .filter(|r| r.error.is_none() && r.node.as_deref() == Some(kill.instance.as_str()))
            .map(|r| r.start_ms)
            .filter(|&t| t > kill.at_ms)
            .reduce(f64::min);
        if let Some(t) = first_answered {
            kill.recovered_ms = kill.recovered_ms.min(t);
        }
    }
    let records: Vec<Record> = match fs.as_slice() {
        [kill, cut] => agent
            .requests
            .iter()
            .map(|r| Record {
                start_ms: r.start_ms,
                short: r.class == "short",
                instance: instance(r, &names, kill, cut, t.timeout_ms),
                ok: r.error.is_none(),
                done_ms: r.arrival_completion_ms.map(|c| r.scheduled_ms + c),
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut b = bounds(cluster);
    b.report_interval_ms = t.report_interval_ms;
    analyse(
        "emulation",
        &names,
        &fs,
        &records,
        b,
        cluster.failover.bin_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(
        start_ms: f64,
        class: &str,
        node: Option<&str>,
        error: Option<&str>,
    ) -> serde_json::Value {
        json!({"class": class, "start_ms": start_ms, "scheduled_ms": start_ms,
               "arrival_completion_ms": if error.is_none() { Some(30.0) } else { None },
               "node": node, "error": error})
    }

    #[test]
    fn failed_requests_are_put_where_their_error_points() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("runs")).unwrap();
        let start = 1_000_000.0;
        let agent = json!({"start_unix_ms": start, "requests": [
            req(100.0, "short", Some("edge"), None),
            req(200.0, "long", Some("centre"), None),
            // In service on the edge when it is killed at 1000 ms.
            req(990.0, "short", None, Some("connection closed before a response")),
            // Refused by the dead edge 80 ms later.
            req(1080.0, "short", None, Some("connect: Connection refused (os error 111)")),
            req(1100.0, "short", Some("centre"), None),
            // Back on the edge 10 ms after the restart at 2000 ms.
            req(2010.0, "short", Some("edge"), None),
            // Into the cut path at 3000 ms, given up on.
            req(3005.0, "long", None, Some("timed out after 20.0 s")),
            req(3030.0, "long", Some("edge"), None),
            req(4020.0, "long", Some("centre"), None),
            // Refused long after the restart: not the kill's doing.
            req(4500.0, "short", None, Some("connect: Connection refused")),
        ]});
        std::fs::write(dir.path().join("runs/failover.json"), agent.to_string()).unwrap();
        std::fs::write(
            dir.path().join("runs/failover-timeline.json"),
            json!({"agent": "runs/failover.json",
                   "kill_edge_unix_ms": start + 1000.0, "restart_edge_unix_ms": start + 2000.0,
                   "cut_internet_unix_ms": start + 3000.0, "restore_internet_unix_ms": start + 4000.0,
                   "report_interval_ms": 20.0, "timeout_ms": 20000.0})
            .to_string(),
        )
        .unwrap();
        let r = load_emulated(dir.path(), &EvalCluster::default())
            .unwrap()
            .unwrap();
        let [kill, cut] = r.responses.as_slice() else {
            panic!("{:?}", r.responses)
        };
        assert_eq!(
            (kill.failure.at_ms, kill.failure.recovered_ms),
            (1000.0, 2000.0)
        );
        assert_eq!(kill.steady_class, "short");
        assert_eq!((kill.lost_in_flight, kill.lost_after_failure), (1, 1));
        assert_eq!(
            (kill.away_ms, kill.back_ms, kill.first_back_ms),
            (80.0, 0.0, Some(10.0))
        );
        assert_eq!(cut.steady_class, "long");
        assert_eq!((cut.away_ms, cut.lost_after_failure), (5.0, 1));
        assert_eq!((cut.back_ms, cut.first_back_ms), (0.0, Some(20.0)));
        assert_eq!((r.requests, r.failed, r.lost_elsewhere), (10, 4, 1));
        assert_eq!(r.goals.last().map(|g| g.value), Some(1.0));
        assert!(
            load_emulated(tempfile::tempdir().unwrap().path(), &EvalCluster::default())
                .unwrap()
                .is_none()
        );
    }
}
