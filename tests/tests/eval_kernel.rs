//! `make eval`, smaller: the same script, topology and cluster (agents
//! with shared-prefix personas, the real appliance, a low-delay line and a
//! jittery lossy path emulated in user space, two `pktgen serve` nodes
//! whose state the `collector` scrapes), but only FIFO with round robin,
//! llm_d and IntelliNode, at 80% of capacity on the asymmetric cluster,
//! for 5 s of arrivals each.
//!
//! It asserts what the evaluation exists to show, from the agents' own
//! measurements, the nodes' and the appliance's counters: short requests
//! get their first token much sooner under IntelliNode than under FIFO,
//! because IntelliNode keeps them on the near node and away from the long
//! work that round robin spreads everywhere; llm_d decides every flow by
//! its own scorers; the agents' shared prefixes hit the nodes' prefix
//! caches, and the prefix-aware policies keep them there better than
//! round robin does.

use std::process::Command;

use intellinode_tests::*;
use serde_json::Value;

/// Timeout the script gives the agent, ms (failures are censored at it).
const TIMEOUT_MS: f64 = 20_000.0;

/// Short requests' TTFT from arrival, sorted; failures at the timeout.
fn short_ttfts(report: &Value) -> Vec<f64> {
    let mut v: Vec<f64> = report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["class"] == "short")
        .map(|r| {
            if r["error"].is_null() {
                r["arrival_ttft_ms"].as_f64().unwrap()
            } else {
                TIMEOUT_MS
            }
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn p99(sorted: &[f64]) -> f64 {
    let rank = (0.99 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// New interactive flows the appliance sent to `instance`.
fn interactive_to(stats: &Value, instance: &str) -> u64 {
    stats["steer"]["chosen"][instance]["interactive"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn short_requests_beat_fifo_on_the_emulated_cluster() {
    let _dpdk = dpdk_lock();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/eval.sh"))
        .env("EVAL_OUT", dir.path())
        .env("EVAL_POLICIES", "fifo llm_d intellinode")
        .env("EVAL_LOADS", "80")
        .env("EVAL_SYMMETRIC", "0")
        // 5 s of arrivals at 80%: 314 requests, 124 of them short (the
        // load is seeded), so the p99 is the second slowest short request.
        // Two runs measured: FIFO's short p99 about 1,750 ms,
        // IntelliNode's about 30 ms (the assertion asks for 3x), hit rates
        // 0.46 (FIFO) and 0.72 (llm_d, IntelliNode).
        .env("EVAL_SECONDS", "5")
        .env("EVAL_REPORT", "0")
        .env("EVAL_FAILOVER", "0")
        .env("INTELLINODE_BIN", bin_under_test("intellinode"))
        .env("PKTGEN_BIN", bin_under_test("pktgen"))
        .env("COLLECTOR_BIN", bin_under_test("collector"))
        .env("INTELLISIM_BIN", bin_under_test("intellisim"))
        .env("INTELLIEVAL_BIN", bin_under_test("intellieval"))
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "scripts/eval.sh failed:\n{log}");

    let runs = dir.path().join("runs");
    let fifo = read_json(&runs.join("fifo-80.json"));
    let smart = read_json(&runs.join("intellinode-80.json"));
    let (fifo_short, smart_short) = (short_ttfts(&fifo), short_ttfts(&smart));
    // The same seeded load for both: the same requests.
    assert_eq!(fifo_short.len(), smart_short.len(), "{log}");
    assert!(smart_short.len() >= 100, "too few short requests: {log}");

    let (f, s) = (p99(&fifo_short), p99(&smart_short));
    assert!(
        s * 3.0 < f,
        "short p99 TTFT: intellinode {s:.1} ms is not 3x better than fifo {f:.1} ms\n{log}"
    );
    // Not only the tail: the median short request is no worse either.
    let median = |v: &[f64]| v[v.len() / 2];
    assert!(
        median(&smart_short) <= median(&fifo_short) * 1.1,
        "median short TTFT: intellinode {} ms, fifo {} ms",
        median(&smart_short),
        median(&fifo_short)
    );
    // IntelliNode answered every short request.
    assert!(
        smart_short.iter().all(|t| *t < TIMEOUT_MS),
        "intellinode lost short requests"
    );

    // Why: IntelliNode kept interactive work on the near edge; round robin
    // split it evenly.
    let smart_stats = read_json(&runs.join("intellinode-80-appliance.json"));
    let fifo_stats = read_json(&runs.join("fifo-80-appliance.json"));
    let (se, sc) = (
        interactive_to(&smart_stats, "edge"),
        interactive_to(&smart_stats, "centre"),
    );
    assert!(
        se >= 9 * sc,
        "intellinode: {se} interactive to the edge, {sc} to the centre"
    );
    let (fe, fc) = (
        interactive_to(&fifo_stats, "edge"),
        interactive_to(&fifo_stats, "centre"),
    );
    assert!(
        fe.abs_diff(fc) * 5 <= fe + fc,
        "fifo should split interactive work about evenly: {fe} edge, {fc} centre"
    );
    assert_eq!(
        fifo_stats["steer"]["reasons"]["round_robin"].as_u64(),
        Some(fifo_stats["steer"]["flows"]["new"].as_u64().unwrap()),
        "every fifo decision is round robin"
    );
    let llm_d_stats = read_json(&runs.join("llm_d-80-appliance.json"));
    assert_eq!(
        llm_d_stats["steer"]["reasons"]["llm_d"].as_u64(),
        Some(llm_d_stats["steer"]["flows"]["new"].as_u64().unwrap()),
        "every llm_d decision is llm_d's"
    );
    for stats in [&smart_stats, &fifo_stats, &llm_d_stats] {
        assert_eq!(stats["totals"]["balanced"], true, "rx = tx + drops");
    }

    // The shared-prefix agents: calls were sent, the nodes' prefix caches
    // (as vllm:prefix_cache_hits / _queries count) found their prefixes,
    // and the prefix-aware policies found more than round robin, which
    // sends every persona to both nodes.
    let agent_calls = smart["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["prompt"] == "agent")
        .count();
    assert!(agent_calls >= 20, "{agent_calls} agent calls\n{log}");
    let hit_rate = |policy: &str| {
        let (mut hits, mut queried) = (0, 0);
        for node in ["edge", "centre"] {
            let s = read_json(&dir.path().join(format!("logs/{policy}-80-{node}.json")));
            hits += s["prefix_cache_hits"].as_u64().unwrap();
            queried += s["prefix_cache_queries"].as_u64().unwrap();
        }
        assert!(queried > 0, "{policy}: no prompt tokens looked up");
        hits as f64 / queried as f64
    };
    let (hf, hl, hi) = (hit_rate("fifo"), hit_rate("llm_d"), hit_rate("intellinode"));
    assert!(hf > 0.0, "fifo's nodes found no prefix cached");
    assert!(
        hl > hf && hi > hf,
        "prefix hit rates: fifo {hf:.2}, llm_d {hl:.2}, intellinode {hi:.2}"
    );
    // The nodes' state came from the collector, scraping both of them.
    let collector = read_json(&dir.path().join("logs/intellinode-80-collector.json"));
    for i in collector["instances"].as_array().unwrap() {
        assert!(i["scrapes_ok"].as_u64().unwrap() > 10, "{i}");
        assert!(i["node_states"].as_u64().unwrap() > 10, "{i}");
    }
}
