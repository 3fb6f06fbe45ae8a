//! The steering cluster of `examples/steer.toml` in network namespaces
//! (scripts/steer-topology.sh): an agent namespace, the appliance on
//! `net_af_packet` ports, an edge node and a centre node 15 ms away, both
//! `pktgen serve`. Shared by the kernel tests that send real TCP through
//! the appliance (`steer_kernel`, `agent_library`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::*;

/// The VIP and port the agents call.
pub const VIP: &str = "10.0.100.1:8000";

/// The namespaces, removed on drop.
pub struct Topology(pub String);

impl Topology {
    pub fn up(name: &str) -> Topology {
        let script = workspace_root().join("scripts/steer-topology.sh");
        let out = Command::new("bash")
            .arg(&script)
            .args(["up", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "topology: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Topology(name.to_owned())
    }

    pub fn command(&self, side: &str, program: &Path) -> Command {
        let ns = if side.is_empty() {
            self.0.clone()
        } else {
            format!("{}-{side}", self.0)
        };
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns]).arg(program);
        c
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let script = workspace_root().join("scripts/steer-topology.sh");
        let _ = Command::new("bash")
            .arg(script)
            .args(["down", &self.0])
            .status();
    }
}

pub fn serve(t: &Topology, side: &str, args: &[&str], stats: &Path) -> Child {
    let mut child = t
        .command(side, &bin_under_test("pktgen"))
        .arg("serve")
        .args(args)
        .args(["--duration-s", "60", "--stats-json"])
        .arg(stats)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("listening on"))),
        "pktgen serve ({side}) did not start"
    );
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Which node served each request, as the nodes' `--stats-json` recorded
/// it: by the agent's source address ("10.0.1.11:port") and, for UDP, the
/// request id the agent chose (INUD's, which is the agent's `id`). A UDP
/// socket's ephemeral port is random, so two of one run's sockets can get
/// the same one; the id tells their requests apart.
pub struct Served(HashMap<(String, Option<u64>), String>);

impl Served {
    pub fn from_stats(stats: &[(&str, serde_json::Value)]) -> Served {
        let mut m = HashMap::new();
        for (node, s) in stats {
            for r in s["requests"].as_array().unwrap() {
                let peer = r["peer"].as_str().unwrap().to_owned();
                m.insert((peer, r["client_id"].as_u64()), node.to_string());
            }
        }
        Served(m)
    }

    /// The node that served `req`, a request of the agent's report.
    pub fn node_of(&self, req: &serde_json::Value) -> Option<&str> {
        let local = req["local"].as_str()?.to_owned();
        let id = match req["transport"].as_str() {
            Some("udp") => req["id"].as_u64(),
            _ => None,
        };
        self.0.get(&(local, id)).map(String::as_str)
    }
}

/// The cluster of `examples/steer.toml` in the namespaces: the appliance,
/// an edge node and a centre node 15 ms away, both answering TCP and the
/// INUD datagram protocol on port 8000, and a control listener for `ctl`.
pub struct Cluster {
    pub edge: Child,
    pub centre: Child,
    pub appliance: Running,
    pub edge_json: PathBuf,
    pub centre_json: PathBuf,
    pub stats_json: PathBuf,
    pub control_port: u16,
    pub key_path: PathBuf,
}

impl Cluster {
    pub fn start(t: &Topology, dir: &Path, file_prefix: &str, workers: Workers) -> Cluster {
        let (key_path, _) = write_key(dir, "orch.key");
        let control_port = free_port();
        let mut config =
            std::fs::read_to_string(workspace_root().join("examples/steer.toml")).unwrap();
        config += &format!(
            "[control]\nlisten = \"127.0.0.1:{control_port}\"\nmax_state_age_ms = 1000\n\
             [[control.peers]]\nid = 1\nname = \"orchestrator\"\nkey_file = \"{}\"\nroles = [\"state\", \"query\"]\n",
            key_path.display()
        );
        let cfg = dir.join("steer.toml");
        std::fs::write(&cfg, config).unwrap();

        let (edge_json, centre_json) = (dir.join("edge.json"), dir.join("centre.json"));
        let edge = serve(
            t,
            "edge",
            &[
                "--listen",
                "10.0.2.2:8000",
                "--udp",
                "10.0.2.2:8000",
                "--name",
                "edge",
                "--prefill-tps",
                "2000",
                "--decode-tps",
                "200",
                "--base-ttft-ms",
                "3",
                "--concurrency",
                "16",
            ],
            &edge_json,
        );
        let centre = serve(
            t,
            "centre",
            &[
                "--listen",
                "10.0.3.2:8000",
                "--udp",
                "10.0.3.2:8000",
                "--name",
                "centre",
                "--prefill-tps",
                "20000",
                "--decode-tps",
                "2000",
                "--base-ttft-ms",
                "8",
                "--concurrency",
                "32",
                "--delay-ms",
                "15",
                "--jitter-ms",
                "3",
            ],
            &centre_json,
        );

        let stats_json = dir.join("stats.json");
        let mut cmd = t.command("", &bin_under_test("intellinode"));
        cmd.args(["run", "--config"])
            .arg(&cfg)
            .args(["--duration", "60", "--stats-interval", "0", "--stats-json"])
            .arg(&stats_json)
            .arg("--");
        // With two workers every port has two queue pairs, fed by the
        // kernel's fanout, which hashes a request and its NATed response
        // independently: many flows meet the worker that does not own them.
        let qpairs = format!(",qpairs={}", workers.count());
        cmd.args(workers.eal_args(
            file_prefix,
            &[
                format!("net_af_packet0,iface=dag{qpairs}"),
                format!("net_af_packet1,iface=ded{qpairs}"),
                format!("net_af_packet2,iface=dce{qpairs}"),
            ],
        ));
        let appliance = spawn_until_running(cmd);
        Cluster {
            edge,
            centre,
            appliance,
            edge_json,
            centre_json,
            stats_json,
            control_port,
            key_path,
        }
    }

    /// Stops everything; returns the appliance's final stats and which
    /// node served each request.
    pub fn stop(self) -> (serde_json::Value, Served) {
        let _ = Command::new("kill")
            .args(["-INT", &self.appliance.id().to_string()])
            .status();
        let report = finish_run(self.appliance, &self.stats_json);
        for mut node in [self.edge, self.centre] {
            let _ = Command::new("kill")
                .args(["-INT", &node.id().to_string()])
                .status();
            let _ = node.wait();
        }
        let served = Served::from_stats(&[
            ("edge", read_json(&self.edge_json)),
            ("centre", read_json(&self.centre_json)),
        ]);
        (report, served)
    }
}

/// The Python clients of `tests/python` (`sdk_agent.py`, `splice_client.py`)
/// in one interpreter in a namespace (`tests/python/session.py`): each call
/// is what running the script with those arguments would print, on
/// connections of its own, without a new interpreter importing the SDK
/// for every request.
pub struct PySession {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl PySession {
    /// Starts the session in the namespace `side` of `t` ("agent", ...).
    pub fn start(t: &Topology, side: &str) -> PySession {
        let mut child = t
            .command(side, &venv_python())
            .arg(workspace_root().join("tests/python/session.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tests/python/session.py");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        PySession {
            child,
            stdin,
            stdout,
        }
    }

    /// `script` with `args`: its JSON result; fails the test with the
    /// script's traceback if it raised.
    pub fn call(&mut self, script: &str, args: &[&str]) -> serde_json::Value {
        let request = serde_json::json!({ "script": script, "args": args });
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{request}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("tests/python/session.py is gone: {e}"));
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let reply: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{script} {args:?}: session.py answered {line:?}: {e}"));
        match reply.get("ok") {
            Some(v) => v.clone(),
            None => panic!(
                "{script} {:?}: {}",
                &args[..args.len().min(3)],
                reply["error"].as_str().unwrap_or_default()
            ),
        }
    }
}

impl Drop for PySession {
    fn drop(&mut self) {
        // The end of its input ends it.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
