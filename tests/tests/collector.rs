//! The compute-state collector against fixture servers that expose vLLM,
//! SGLang and TensorRT-LLM metrics by their exact names: the real
//! appliance's node state follows each server within two scrape
//! intervals, an endpoint that dies fails its node within three,
//! CAPABILITY carries `max_model_len` from `/v1/models`, and the prefix
//! caches' counters reach the appliance's per-node sums (NODE_STATE's
//! PREFIX_CACHE).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::{Message, Query, QueryWhat};
use intellinode_tests::*;

/// The scrape interval under test.
const INTERVAL: Duration = Duration::from_millis(50);
/// Pause between two state queries.
const POLL_GAP: Duration = Duration::from_millis(2);

/// An HTTP server answering `GET /metrics` with whatever `page` holds and
/// `GET /v1/models` with one model of `max_model_len` 8192, until
/// [`Fixture::kill`] closes its socket.
struct Fixture {
    addr: SocketAddr,
    page: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    fn start(page: String) -> Fixture {
        Fixture::start_at("127.0.0.1:0".parse().unwrap(), page)
    }

    fn start_at(addr: SocketAddr, page: String) -> Fixture {
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let page = Arc::new(Mutex::new(page));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&page), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let mut reader = BufReader::new(stream);
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let body = if request.starts_with("GET /v1/models ") {
                    r#"{"object":"list","data":[{"id":"llama-3.1-8b","object":"model","max_model_len":8192}]}"#.to_string()
                } else {
                    p.lock().unwrap().clone()
                };
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            // The listener is dropped here: connections are refused.
        });
        Fixture {
            addr,
            page,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, page: String) {
        *self.page.lock().unwrap() = page;
    }

    fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    fn kill(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// vLLM's page (as `prometheus_client` writes it) with `waiting` queued,
/// KV-cache use `kv`, `fast + slow` first tokens that took `ttft_sum`
/// seconds in all, in the 2.5 s bucket and below, and `hits` of `queries`
/// prompt tokens found in the prefix cache since start.
fn vllm(
    waiting: u32,
    kv: f64,
    fast: u32,
    slow: u32,
    ttft_sum: f64,
    (queries, hits): (u32, u32),
) -> String {
    let l = "engine=\"0\",model_name=\"llama-3.1-8b\"";
    let n = fast + slow;
    format!(
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
         # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{{l}}} 4.0\n\
         # HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
         # TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{{l}}} {waiting}.0\n\
         # HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n\
         # TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{{l}}} {kv:?}\n\
         # HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n\
         # TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{{{l}}} {queries}.0\n\
         # HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.\n\
         # TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{{{l}}} {hits}.0\n\
         # HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.\n\
         # TYPE vllm:time_to_first_token_seconds histogram\n\
         vllm:time_to_first_token_seconds_bucket{{{l},le=\"0.1\"}} {fast}.0\n\
         vllm:time_to_first_token_seconds_bucket{{{l},le=\"2.5\"}} {n}.0\n\
         vllm:time_to_first_token_seconds_bucket{{{l},le=\"+Inf\"}} {n}.0\n\
         vllm:time_to_first_token_seconds_count{{{l}}} {n}.0\n\
         vllm:time_to_first_token_seconds_sum{{{l}}} {ttft_sum:?}\n\
         # HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n\
         # TYPE vllm:cache_config_info gauge\n\
         vllm:cache_config_info{{block_size=\"16\",cache_dtype=\"auto\",enable_prefix_caching=\"True\",engine=\"0\"}} 1.0\n"
    )
}

/// SGLang's page with `queue` waiting, `token_usage`, a prefix-cache hit
/// rate of 0.5 and `prompt_tokens` counted since start.
fn sglang(queue: u32, token_usage: f64, prompt_tokens: u32) -> String {
    let l = "model_name=\"qwen\"";
    format!(
        "# HELP sglang:num_queue_reqs The number of requests in the waiting queue\n\
         # TYPE sglang:num_queue_reqs gauge\nsglang:num_queue_reqs{{{l}}} {queue}.0\n\
         # HELP sglang:num_running_reqs The number of running requests\n\
         # TYPE sglang:num_running_reqs gauge\nsglang:num_running_reqs{{{l}}} 2.0\n\
         # HELP sglang:token_usage The token usage\n\
         # TYPE sglang:token_usage gauge\nsglang:token_usage{{{l}}} {token_usage:?}\n\
         # HELP sglang:cache_hit_rate The prefix cache hit rate\n\
         # TYPE sglang:cache_hit_rate gauge\nsglang:cache_hit_rate{{{l}}} 0.5\n\
         # HELP sglang:prompt_tokens_total Number of prefill tokens processed.\n\
         # TYPE sglang:prompt_tokens_total counter\nsglang:prompt_tokens_total{{{l}}} {prompt_tokens}.0\n\
         # HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.\n\
         # TYPE sglang:time_to_first_token_seconds histogram\n\
         sglang:time_to_first_token_seconds_bucket{{{l},le=\"0.5\"}} 4.0\n\
         sglang:time_to_first_token_seconds_bucket{{{l},le=\"+Inf\"}} 4.0\n\
         sglang:time_to_first_token_seconds_sum{{{l}}} 0.8\n\
         sglang:time_to_first_token_seconds_count{{{l}}} 4.0\n"
    )
}

/// Triton's TensorRT-LLM backend: the quantity in a label, the KV cache
/// in blocks, and Triton's own per-model families beside it.
fn triton_trtllm(waiting: u32, active: u32, used_blocks: u32) -> String {
    let l = "model=\"tensorrt_llm\",version=\"1\"";
    format!(
        "# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.\n\
         # TYPE nv_inference_pending_request_count gauge\n\
         nv_inference_pending_request_count{{model=\"ensemble\",version=\"1\"}} 0\n\
         nv_inference_pending_request_count{{{l}}} 0\n\
         # HELP nv_trt_llm_request_metrics TRT LLM request metrics\n\
         # TYPE nv_trt_llm_request_metrics gauge\n\
         nv_trt_llm_request_metrics{{{l},request_type=\"waiting\"}} {waiting}\n\
         nv_trt_llm_request_metrics{{{l},request_type=\"context\"}} 1\n\
         nv_trt_llm_request_metrics{{{l},request_type=\"scheduled\"}} {active}\n\
         nv_trt_llm_request_metrics{{{l},request_type=\"max\"}} 64\n\
         nv_trt_llm_request_metrics{{{l},request_type=\"active\"}} {active}\n\
         # HELP nv_trt_llm_kv_cache_block_metrics TRT LLM KV cache block metrics\n\
         # TYPE nv_trt_llm_kv_cache_block_metrics gauge\n\
         nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type=\"tokens_per\",{l}}} 64\n\
         nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type=\"used\",{l}}} {used_blocks}\n\
         nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type=\"free\",{l}}} {}\n\
         nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type=\"max\",{l}}} 1000\n",
        1000 - used_blocks
    )
}

fn trtllm(waiting: u32, kv: f64) -> String {
    format!(
        "# HELP trtllm_num_requests_waiting Number of requests waiting\n\
         # TYPE trtllm_num_requests_waiting gauge\ntrtllm_num_requests_waiting {waiting}\n\
         # HELP trtllm_num_requests_running Number of requests running\n\
         # TYPE trtllm_num_requests_running gauge\ntrtllm_num_requests_running 3\n\
         # HELP trtllm_kv_cache_utilization KV cache utilization\n\
         # TYPE trtllm_kv_cache_utilization gauge\ntrtllm_kv_cache_utilization {kv:?}\n"
    )
}

/// Asks the appliance for its control state, in-process (a `ctl` process
/// per poll would be slower than the interval under test).
struct StateQuery {
    sock: UdpSocket,
    sender: control::Sender,
}

impl StateQuery {
    fn new(port: u16, key: control::Key, key_id: u32) -> StateQuery {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        StateQuery {
            sock,
            sender: control::Sender::new(key_id, key, control::realtime_ns() / 1000),
        }
    }

    fn state(&mut self) -> serde_json::Value {
        let seq = self.sender.next_seq().unwrap();
        let q = Message::Query(Query {
            what: QueryWhat::State,
        });
        let d = self.sender.seal(&q, control::realtime_ns()).unwrap();
        self.sock.send(&d).unwrap();
        let mut buf = vec![0u8; 70_000];
        loop {
            let n = self.sock.recv(&mut buf).expect("the appliance answers");
            if let Ok(body) = self
                .sender
                .open_reply(&buf[..n], seq, control::realtime_ns())
            {
                return serde_json::from_str(&body).unwrap();
            }
        }
    }

    fn node(&mut self, id: u16) -> Option<serde_json::Value> {
        self.state()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
    }

    /// Polls every [`POLL_GAP`] until `want` holds for node `id`; returns
    /// the time from `since` to the end of the first poll that saw it,
    /// and how late that poll may have seen it: its own duration plus the
    /// gap before it.
    fn until(
        &mut self,
        id: u16,
        since: Instant,
        limit: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> (Duration, Duration) {
        loop {
            let t = Instant::now();
            let node = self.node(id);
            if node.as_ref().is_some_and(&want) {
                return (since.elapsed(), t.elapsed() + POLL_GAP);
            }
            std::thread::sleep(POLL_GAP);
            assert!(
                since.elapsed() < limit,
                "node {id} never got there within {limit:?}: {node:?}"
            );
        }
    }
}

fn close(a: &serde_json::Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-6)
}

fn start_collector(cfg: &std::path::Path, stats: &std::path::Path) -> Child {
    let mut child = Command::new(bin_under_test("collector"))
        .args(["--config"])
        .arg(cfg)
        .args(["--duration-s", "20", "--stats-json"])
        .arg(stats)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn collector");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("collector: scraping 4 instances"),
        "{line}"
    );
    child
}

#[test]
fn node_state_follows_the_servers_and_a_dead_endpoint_fails_fast() {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let (collector_key, _) = write_key(dir.path(), "collector.key");
    let (orch_key_path, orch_key) = write_key(dir.path(), "orch.key");
    let peers = format!(
        "[[control.peers]]\nid = 7\nname = \"collector\"\nkey_file = \"{}\"\nroles = [\"state\", \"capability\"]\n\
         [[control.peers]]\nid = 1\nname = \"orchestrator\"\nkey_file = \"{}\"\nroles = [\"query\"]\n",
        collector_key.display(),
        orch_key_path.display()
    );
    let (cport, mport) = (free_port(), free_port());
    // State never ages out during the test: what fails a node must be the
    // collector's report, not the age limit.
    let cfg = control_config(dir.path(), cport, mport, 600_000, &peers);
    let json = dir.path().join("stats.json");
    let mut cmd = Command::new(bin_under_test("intellinode"));
    cmd.args(["run", "--config"])
        .arg(&cfg)
        // The bound; it is stopped once the collector's checks are done.
        .args(["--duration", "6", "--stats-interval", "0", "--stats-json"])
        .arg(&json)
        .arg("--");
    // No packets: the workers sleep, and the collector, the fixtures and
    // the control thread have the CPUs (this test times them).
    cmd.args(eal_args(
        "collector",
        &["net_null0,no-rx=1".into(), "net_null1,no-rx=1".into()],
    ));
    let appliance = spawn_until_running(cmd);

    let vllm_server = Fixture::start(vllm(1, 0.1, 0, 10, 20.0, (1000, 600)));
    let sglang_server = Fixture::start(sglang(1, 0.1, 1000));
    let mut trt_server = Fixture::start(trtllm(1, 0.1));
    let triton_server = Fixture::start(triton_trtllm(1, 2, 100));
    let collector_cfg = dir.path().join("collector.toml");
    std::fs::write(
        &collector_cfg,
        format!(
            "interval_ms = {}\ntimeout_ms = 200\ncapability_interval_ms = 500\nkey_file = \"{}\"\nkey_id = 7\nappliances = [\"127.0.0.1:{cport}\"]\n\
             [[instances]]\nnode = 1\nmetrics_url = \"{}\"\nconcurrency = 8\n\
             [instances.capability]\nclass = \"edge\"\naccelerator = \"L4\"\ntasks = [\"immediate_control\", \"chat\"]\nprefill_tps = 5000.0\ndecode_tps = 50.0\n\
             [[instances]]\nnode = 2\nmetrics_url = \"{}\"\n\
             [[instances]]\nnode = 3\nmetrics_url = \"{}\"\n\
             [[instances]]\nnode = 4\nmetrics_url = \"{}\"\nconcurrency = 8\n",
            INTERVAL.as_millis(),
            collector_key.display(),
            vllm_server.url(),
            sglang_server.url(),
            trt_server.url(),
            triton_server.url()
        ),
    )
    .unwrap();
    let collector_stats = dir.path().join("collector.json");
    let collector = start_collector(&collector_cfg, &collector_stats);
    let mut q = StateQuery::new(cport, orch_key, 1);

    // The first reports arrive: node 1's TTFT is the mean of everything
    // so far (10 first tokens in 20 s: 2000 ms).
    q.until(1, Instant::now(), Duration::from_secs(5), |n| {
        close(&n["queue_len"], 1.0) && close(&n["est_ttft_us"], 2_000_000.0)
    });
    q.until(2, Instant::now(), Duration::from_secs(5), |n| {
        close(&n["queue_len"], 1.0)
    });
    q.until(3, Instant::now(), Duration::from_secs(5), |n| {
        close(&n["queue_len"], 1.0)
    });
    q.until(4, Instant::now(), Duration::from_secs(5), |n| {
        close(&n["queue_len"], 1.0) && close(&n["mem_util"], 0.1) && close(&n["gpu_util"], 0.25)
    });

    // Every server changes; each node follows within two intervals (plus
    // the poll that sees it). Node 1's TTFT becomes that of the two new
    // first tokens alone (0.1 s in all: 50 ms), not the all-time mean.
    let changed = Instant::now();
    // The prefix caches too: vLLM hit 3000 of 5000 more prompt tokens,
    // SGLang counted 2000 more at a hit rate of 0.5.
    vllm_server.set(vllm(7, 0.5, 2, 10, 20.1, (6000, 3600)));
    sglang_server.set(sglang(3, 0.25, 3000));
    trt_server.set(trtllm(2, 0.75));
    triton_server.set(triton_trtllm(5, 6, 900));
    let (t1, p1) = q.until(1, changed, Duration::from_secs(2), |n| {
        close(&n["queue_len"], 7.0)
            && close(&n["mem_util"], 0.5)
            && close(&n["gpu_util"], 0.5)
            && (n["est_ttft_us"].as_f64().unwrap() - 50_000.0).abs() < 1.0
    });
    let (t2, p2) = q.until(2, changed, Duration::from_secs(2), |n| {
        close(&n["queue_len"], 3.0) && close(&n["mem_util"], 0.25)
    });
    let (t3, p3) = q.until(3, changed, Duration::from_secs(2), |n| {
        close(&n["queue_len"], 2.0) && close(&n["mem_util"], 0.75)
    });
    let (t6, p6) = q.until(4, changed, Duration::from_secs(2), |n| {
        close(&n["queue_len"], 5.0) && close(&n["mem_util"], 0.9) && close(&n["gpu_util"], 0.75)
    });
    // The prefix counters' increments since the previous scrape reach the
    // appliance's per-node sums (the first scrape, with nothing to compare,
    // sends none; the unchanged ones send zeros): exactly the moves above,
    // within two intervals like the rest.
    let sums = |n: &serde_json::Value| {
        (
            n["prefix_cache"]["hit_tokens"].as_f64().unwrap_or(-1.0),
            n["prefix_cache"]["queried_tokens"].as_f64().unwrap_or(-1.0),
        )
    };
    let (t4, p4) = q.until(1, changed, Duration::from_secs(2), |n| {
        sums(n) == (3000.0, 5000.0)
    });
    let (t5, p5) = q.until(2, changed, Duration::from_secs(2), |n| {
        sums(n) == (1000.0, 2000.0)
    });
    let n1 = q.node(1).unwrap();
    assert!(n1["prefix_cache"]["reports"].as_u64().unwrap() >= 1, "{n1}");
    // TensorRT-LLM has no prefix-cache account: no reports.
    let n3 = q.node(3).unwrap();
    assert_eq!(n3["prefix_cache"]["reports"], 0, "{n3}");
    for (node, t, poll) in [
        (1, t1, p1),
        (2, t2, p2),
        (3, t3, p3),
        (1, t4, p4),
        (2, t5, p5),
        (4, t6, p6),
    ] {
        eprintln!("node {node} followed its server after {t:?} (poll {poll:?})");
        assert!(
            t <= 2 * INTERVAL + poll,
            "node {node} followed its server after {t:?} (interval {INTERVAL:?}, poll {poll:?})"
        );
    }

    // CAPABILITY: the configured class and tasks, the model name and
    // context length from /v1/models.
    let state = q.state();
    let cap = state["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["node"] == 1)
        .unwrap_or_else(|| panic!("no capability for node 1: {state}"))
        .clone();
    assert_eq!(cap["model"], "llama-3.1-8b", "{cap}");
    assert_eq!(cap["model_class"], "small_edge", "{cap}");
    let max_context = cap["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "max_context_tokens")
        .unwrap()["value"]
        .clone();
    assert_eq!(max_context, 8192.0, "{cap}");

    // The TensorRT-LLM server dies: its node is down within three
    // intervals; the others are untouched.
    let died = Instant::now();
    trt_server.kill();
    let (t, poll) = q.until(3, died, Duration::from_secs(2), |n| {
        close(&n["queue_len"], 1_000_000.0) && close(&n["gpu_util"], 1.0)
    });
    eprintln!("node 3 failed after {t:?} (poll {poll:?})");
    assert!(
        t <= 3 * INTERVAL + poll,
        "node 3 failed after {t:?} (interval {INTERVAL:?}, poll {poll:?})"
    );
    assert!(close(&q.node(1).unwrap()["queue_len"], 7.0));
    assert!(close(&q.node(2).unwrap()["queue_len"], 3.0));
    assert_eq!(q.node(3).unwrap()["freshness"], "fresh");

    // It comes back on the same address: so does its state.
    let back = Instant::now();
    let _trt_again = Fixture::start_at(trt_server.addr, trtllm(4, 0.2));
    let (t, poll) = q.until(3, back, Duration::from_secs(2), |n| {
        close(&n["queue_len"], 4.0)
    });
    assert!(t <= 2 * INTERVAL + poll, "node 3 came back after {t:?}");

    let mut collector = collector;
    let _ = Command::new("kill")
        .args(["-TERM", &collector.id().to_string()])
        .status();
    let status = collector.wait().unwrap();
    let mut err = String::new();
    collector
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "collector: {err}");
    assert!(err.contains("collector: node 3 down:"), "{err}");
    let stats = read_json(&collector_stats);
    let inst = stats["instances"].as_array().unwrap();
    assert_eq!(inst[0]["server"], "vllm", "{stats}");
    assert_eq!(inst[1]["server"], "sglang", "{stats}");
    assert_eq!(inst[2]["server"], "trtllm", "{stats}");
    assert_eq!(inst[3]["server"], "triton_trtllm", "{stats}");
    assert_eq!(inst[3]["went_down"], 0, "{stats}");
    assert_eq!(inst[2]["went_down"], 1, "{stats}");
    assert!(err.contains("collector: node 3 up again"), "{err}");
    assert!(
        inst[2]["scrape_failures"]["connect"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(inst[0]["last"]["prefix_hit_ratio"], 0.6, "{stats}");
    assert!(inst[0]["capabilities"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["push_failures"], 0, "{stats}");

    // Every scrape pushed a NODE_STATE (the down ones too), and the
    // appliance accepted every one.
    let pushed: u64 = inst
        .iter()
        .map(|i| i["node_states"].as_u64().unwrap())
        .sum();
    let scrapes: u64 = inst
        .iter()
        .map(|i| {
            i["scrapes_ok"].as_u64().unwrap()
                + i["scrape_failures"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_u64().unwrap())
                    .sum::<u64>()
        })
        .sum();
    assert_eq!(pushed, scrapes, "{stats}");
    let stats = interrupt_run(appliance, &json);
    assert_eq!(
        stats["control"]["accepted"]["node_state"].as_u64(),
        Some(pushed),
        "{}",
        stats["control"]
    );
    assert_eq!(
        stats["control"]["accepted"]["capability"]
            .as_u64()
            .map(|c| c >= 1),
        Some(true)
    );
}
