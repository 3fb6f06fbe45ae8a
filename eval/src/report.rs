//! `report.md`: what ran, the goals, every run's numbers, the charts and
//! how the simulator compares, for a reader who was not there.

use std::fmt::Write;

use serde_json::Value;

use crate::summary::{
    PerPolicyLoad, Run, Summary, SymmetricKeys, ASYMMETRIC, LOADS, POLICIES, SYMMETRIC,
};

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn run_row(out: &mut String, r: &Run) {
    let (s, l) = (&r.stats.short, &r.stats.long);
    let _ = writeln!(
        out,
        "| {} | {} | {} | {:.1} | {} / {} | {} / {} | {:.0} | {} | {} / {} | {} / {} | {:.0} | {} | {} |",
        r.entry.cluster,
        r.entry.policy,
        r.entry.load,
        r.entry.rate_rps,
        ms(s.ttft_ms.p50),
        ms(s.ttft_ms.p99),
        ms(s.completion_ms.p50),
        ms(s.completion_ms.p99),
        s.throughput_tokens_per_s,
        s.failed,
        ms(l.ttft_ms.p50),
        ms(l.ttft_ms.p99),
        ms(l.completion_ms.p50),
        ms(l.completion_ms.p99),
        l.throughput_tokens_per_s,
        l.failed,
        r.prefix
            .map_or_else(|| "–".to_owned(), |p| format!("{:.2}", p.rate())),
    );
}

/// Where each class's new flows went, from the appliance's counters:
/// `edge 120 interactive, 3 bulk; centre …`.
fn placement(r: &Run) -> String {
    r.chosen
        .iter()
        .map(|(inst, classes)| {
            let interactive = classes.get("interactive").copied().unwrap_or(0);
            let total = classes.get("total").copied().unwrap_or(0);
            format!(
                "{inst}: {interactive} interactive, {} bulk or other",
                total.saturating_sub(interactive)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The simulator at scale (`intellisim scale`): per policy, latency,
/// failures and how quickly the decision left failed nodes and paths.
fn scale_section(out: &mut String, scale: &Value) {
    let l = &scale["layout"];
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "\n## At scale (simulated)\n\n`intellisim scale`: {} nodes ({} edge, {} centre) behind {} appliances, \
         every centre node shared by {} of them; {} requests at {:.0}% of capacity ({:.0} requests/s). \
         At {:.1} s, {} edge nodes fail (their reports stop; the appliance sees them stale after {} ms); \
         at {:.1} s, one site's WAN paths fail (probes report the loss every {} ms).\n",
        l["nodes"], l["edge_nodes"], l["centre_nodes"], l["sites"], l["sites_per_centre"],
        l["requests"], num(&l["load"]) * 100.0, num(&l["rate_rps"]),
        num(&l["edge_failure_at_s"]), l["edge_nodes_failed"], l["max_state_age_ms"],
        num(&l["wan_failure_at_s"]), l["probe_interval_ms"],
    );
    let _ = writeln!(
        out,
        "| policy | short TTFT p50 / p99 ms | long completion p50 / p99 ms | failed | failed nodes chosen after failure (last, ms) | failed WAN chosen after failure (last, ms) | p99 TTFT at the failed-WAN site, settled | wall s |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for policy in POLICIES {
        let p = &scale["policies"][policy];
        if p.is_null() {
            continue;
        }
        let _ = writeln!(
            out,
            "| {policy} | {} / {} | {} / {} | {} | {} ({}) | {} ({}) | {} | {:.1} |",
            ms(num(&p["short"]["ttft_ms"]["p50"])),
            ms(num(&p["short"]["ttft_ms"]["p99"])),
            ms(num(&p["long"]["completion_ms"]["p50"])),
            ms(num(&p["long"]["completion_ms"]["p99"])),
            p["failed_requests"],
            p["edge_failure"]["chosen_after_failure"],
            ms(num(&p["edge_failure"]["last_chosen_after_ms"])),
            p["wan_failure"]["chosen_after_failure"],
            ms(num(&p["wan_failure"]["last_chosen_after_ms"])),
            ms(num(
                &p["wan_failure"]["affected_sites"]["settled"]["p99_ttft_ms"]
            )),
            num(&p["wall_s"]),
        );
    }
    let _ = writeln!(
        out,
        "\nThe three policies together took {:.1} s of wall time.",
        num(&scale["wall_s_total"])
    );
}

/// Variants of `intellisim uplink`, in report order.
const UPLINK_VARIANTS: [&str; 4] = [
    "fifo",
    "least_queue",
    "intellinode_fifo_port",
    "intellinode",
];

/// The eval cluster behind one busy egress port (`intellisim uplink`):
/// what the egress scheduler adds to the decision.
fn uplink_section(out: &mut String, u: &Value) {
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "\n## A busy egress port (simulated)\n\n`intellisim uplink`: the same cluster at {:.0}% load \
         ({:.1} requests/s), but both paths leave the appliance through one egress port shaped to \
         {:.2} Mbit/s, which the requests alone ({:.0} bytes each on average, SYN and headers \
         included) keep {:.0}% busy. The port queues them in the appliance's own scheduler \
         (`sched::Scheduler` with `steer::egress::band_config`); `intellinode_fifo_port` is \
         IntelliNode's decision with `strict_priority = false`. With unshaped ports IntelliNode's \
         short p99 TTFT is {} ms here.\n",
        num(&u["load"]) * 100.0,
        num(&u["rate_rps"]),
        num(&u["uplink_mbps"]),
        num(&u["mean_request_wire_bytes"]),
        num(&u["offered_mbps"]) / num(&u["uplink_mbps"]) * 100.0,
        ms(num(&u["intellinode_unshaped_short_p99_ttft_ms"])),
    );
    let _ = writeln!(
        out,
        "| variant | short TTFT p50 / p99 ms | interactive packets' egress wait mean / max ms | other packets' wait mean / max ms | long completion p50 / p99 ms | long tokens/s |\n\
         |---|---|---|---|---|---|"
    );
    for name in UPLINK_VARIANTS {
        let r = &u["runs"][name];
        if r.is_null() {
            continue;
        }
        let up = &r["uplink"];
        let _ = writeln!(
            out,
            "| {name} | {} / {} | {:.1} / {:.1} | {:.1} / {:.1} | {} / {} | {:.0} |",
            ms(num(&r["short"]["ttft_ms"]["p50"])),
            ms(num(&r["short"]["ttft_ms"]["p99"])),
            num(&up["interactive_wait_mean_ms"]),
            num(&up["interactive_wait_max_ms"]),
            num(&up["bulk_wait_mean_ms"]),
            num(&up["bulk_wait_max_ms"]),
            ms(num(&r["long"]["completion_ms"]["p50"])),
            ms(num(&r["long"]["completion_ms"]["p99"])),
            num(&r["long"]["throughput_tokens_per_s"]),
        );
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), ms)
}

/// The failure and recovery run, emulated and simulated: the timeline,
/// how quickly new flows moved away and came back, what was lost, the
/// goals and the charts.
fn failover_section(out: &mut String, s: &Summary) {
    let Some(first) = s.failover.first() else {
        return;
    };
    let b = first.bounds;
    let _ = writeln!(
        out,
        "\n## Failure and recovery\n\n\
         IntelliNode alone, in one run: the edge node's process is killed (SIGKILL) and a new one \
         started, then the centre's path is black-holed (`pktgen wire` drops every frame, SIGUSR1) \
         and restored (SIGUSR2). Nodes report NODE_STATE and both paths' wires report PATH_STATE \
         (loss 1 while cut) every {} ms; a node that stops reporting is stale after {} ms \
         (`max_state_age`). The simulator (`intellisim failover`) plays the same timeline on the \
         same cluster through the same steering engine.\n\n\
         *Away*: the last new flow steered to the failed element after it failed (0: none). \
         *Back*: the last new flow of the class the element served before (its steady class) \
         still steered elsewhere after the recovery, before the first one steered to it again \
         (0: none); *first back* is the first new \
         flow to it, which also waits for an arrival. Times in ms from the failure or recovery. \
         Losses: *in flight* were on the failed element when it failed; *after the failure* were \
         steered to it before the appliance moved away; *elsewhere* is every other failed \
         request. Goals: away within `max_state_age` ({} ms), back within two report intervals \
         ({} ms), and no request lost except those in flight on the failed element, which counts \
         both kinds of loss on it: a crashed node cannot be known dead before it has been quiet \
         long enough, and nothing saves a request sent to a dead process in that window unless \
         the client retries. For the stricter reading (only what the element held when it \
         failed), add the *after the failure* column.\n",
        b.report_interval_ms,
        b.max_state_age_ms,
        b.max_state_age_ms,
        2.0 * b.report_interval_ms,
    );
    let _ = writeln!(
        out,
        "| run | failure | at / recovered, s | steady class (share) | new flows to it after the failure | away | steady flows elsewhere after recovery | back | first back | lost in flight | lost after the failure |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for f in &s.failover {
        for r in &f.responses {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} / {:.2} | {} ({:.0}%) | {} | {} | {} | {} | {} | {} | {} |",
                f.source,
                r.failure.what,
                r.failure.at_ms / 1000.0,
                r.failure.recovered_ms / 1000.0,
                r.steady_class,
                r.steady_share * 100.0,
                r.steered_after_failure,
                ms(r.away_ms),
                r.steered_elsewhere_after_recovery,
                ms(r.back_ms),
                opt_ms(r.first_back_ms),
                r.lost_in_flight,
                r.lost_after_failure,
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| run | requests | answered | failed | lost elsewhere |\n|---|---|---|---|---|"
    );
    for f in &s.failover {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            f.source, f.requests, f.answered, f.failed, f.lost_elsewhere
        );
    }
    let _ = writeln!(
        out,
        "\n| run | goal | measured | bound | |\n|---|---|---|---|---|"
    );
    for f in &s.failover {
        for g in &f.goals {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                f.source,
                g.goal,
                ms(g.value),
                g.bound,
                if g.met { "met" } else { "**not met**" }
            );
        }
    }
    let _ = writeln!(
        out,
        "\nThe evaluation records these goals; it does not fail on them (`make test` asserts the \
         simulated timeline's).\n"
    );
    for f in &s.failover {
        let _ = writeln!(
            out,
            "![{} failure timeline: answered, failed and steered per second]({}.svg)\n",
            f.source,
            crate::charts::failover_chart_name(&f.source)
        );
    }
}

/// The shared-prefix table: per policy, short and long p99 TTFT at every
/// load and the prefix hit rate at 80% on the asymmetric cluster, and the
/// symmetric cluster's three at 80%.
fn prefix_table(
    out: &mut String,
    short: &PerPolicyLoad,
    long: &PerPolicyLoad,
    hit: &PerPolicyLoad,
    sym: Option<&SymmetricKeys>,
) {
    let _ = writeln!(
        out,
        "| policy | short p99 50% | 80% | 95% | long p99 50% | 80% | 95% | hit rate 80% | symmetric short p99 | long p99 | hit rate |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    let at = |m: &PerPolicyLoad, policy: &str, load: &str| {
        m.get(policy).and_then(|l| l.get(load)).copied()
    };
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), ms);
    let rate = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}"));
    for policy in POLICIES {
        let s_at = |pick: fn(&SymmetricKeys) -> &PerPolicyLoad| {
            sym.and_then(|k| at(pick(k), policy, "80"))
        };
        let _ = writeln!(
            out,
            "| {policy} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(at(short, policy, "50")),
            cell(at(short, policy, "80")),
            cell(at(short, policy, "95")),
            cell(at(long, policy, "50")),
            cell(at(long, policy, "80")),
            cell(at(long, policy, "95")),
            rate(at(hit, policy, "80")),
            cell(s_at(|k| &k.short_p99_ttft_ms)),
            cell(s_at(|k| &k.long_p99_ttft_ms)),
            rate(s_at(|k| &k.prefix_hit_rate)),
        );
    }
}

/// The shared-prefix agents: four policies on both clusters, emulated,
/// then simulated.
fn prefix_section(out: &mut String, s: &Summary) {
    let _ = writeln!(out, "## Four policies, two clusters\n");
    let _ = writeln!(
        out,
        "The agents send short control commands, long prompts and shared-prefix agent calls \
         that repeat a persona's 2,000–8,000-token system prompt and tools in growing \
         multi-turn sessions (their prefix named in the token-feature TLV, layout version 2); \
         the nodes cache prompt prefixes (vLLM's 16-token blocks, LRU in `kv_tokens`). p99 \
         TTFT in ms; hit rate = prompt tokens found cached / prompt tokens looked up, both \
         nodes, every request ({}).\n",
        s.prefix_source
    );
    let _ = writeln!(out, "Emulated (this run):\n");
    prefix_table(
        out,
        &s.short_p99_ttft_ms,
        &s.long_p99_ttft_ms,
        &s.prefix_hit_rate,
        s.symmetric.as_ref(),
    );
    let _ = writeln!(
        out,
        "\n![p99 TTFT against load, emulated, four policies](p99-vs-load-emulated.svg)\n"
    );
    if let Some(p) = &s.simulated_prefix {
        let _ = writeln!(
            out,
            "Simulated (`intellisim prefix`, the same clusters and workload):\n"
        );
        prefix_table(
            out,
            &p.short_p99_ttft_ms,
            &p.long_p99_ttft_ms,
            &p.prefix_hit_rate,
            Some(&p.symmetric),
        );
        let _ = writeln!(
            out,
            "\n![p99 TTFT against load, simulated, four policies](p99-vs-load-simulated.svg)\n"
        );
        let _ = writeln!(
            out,
            "| goal (simulated) | measured | bound | |\n|---|---|---|---|"
        );
        for g in &p.goals {
            let _ = writeln!(
                out,
                "| {} | {:.2} | {} | {} |",
                g.goal,
                g.value,
                g.bound,
                if g.met { "met" } else { "**not met**" }
            );
        }
    }
    let _ = writeln!(out);
}

/// Renders the report; `plan` is the cluster as the simulator planned it,
/// `scale` the simulator's run at scale, `uplink` its busy-port scenario.
pub fn render(
    s: &Summary,
    plan: Option<&Value>,
    scale: Option<&Value>,
    uplink: Option<&Value>,
    wall_s: Option<f64>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# IntelliNode evaluation\n");
    let _ = writeln!(
        out,
        "Agents in one network namespace call a chat service through the real appliance \
         (`intellinode`, `net_af_packet`). On the asymmetric cluster it reaches an edge node over \
         a low-delay line and a centre node over a high-delay, jittery, lossy path; on the \
         symmetric cluster two identical nodes over identical clean paths. The paths are \
         emulated in user space (`pktgen wire`); the nodes are `pktgen serve` inference \
         emulators with vLLM's metrics and a prefix cache, and their state reaches the appliance \
         through the `collector`, which scrapes their `/metrics` and `/v1/models`. Each policy \
         (FIFO + round robin, least queue, llm_d, IntelliNode) runs the same seeded open-loop \
         Poisson load (short commands, long prompts, shared-prefix agent calls) at 50%, 80% and \
         95% of the asymmetric cluster's capacity ({:.1} requests/s), and at 80% of the \
         symmetric cluster's ({}). Latencies are from each request's scheduled arrival; failed \
         requests count as the agent's timeout.\n",
        s.capacity_rps,
        s.symmetric_capacity_rps
            .map_or_else(|| "not run".to_owned(), |c| format!("{c:.1} requests/s"))
    );
    if let Some(w) = wall_s {
        let _ = writeln!(out, "The whole evaluation took {w:.0} s.\n");
    }
    let _ = writeln!(out, "## Goals at 80% load (emulated)\n");
    let _ = writeln!(out, "| goal | measured | bound | |\n|---|---|---|---|");
    for g in &s.goals {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {} |",
            g.goal,
            g.value,
            g.bound,
            if g.met { "met" } else { "**not met**" }
        );
    }
    for g in &s.goals_not_checked {
        let _ = writeln!(out, "| {g} | | | not checked |");
    }
    if let Some(unloaded) = s.short_p99_ttft_unloaded_ms {
        let _ = writeln!(
            out,
            "\nShort-request p99 TTFT unloaded: {} ms.",
            ms(unloaded)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "![short p99 TTFT against load](short-p99-vs-load.svg)\n"
    );
    let _ = writeln!(out, "![TTFT distributions at 80% load](ttft-cdf-80.svg)\n");
    prefix_section(&mut out, s);
    let _ = writeln!(out, "## Every run\n");
    let _ = writeln!(
        out,
        "TTFT and completion in ms (p50 / p99); throughput in output tokens/s.\n\n\
         | cluster | policy | load % | rate/s | short TTFT | short completion | short tokens/s | short failed | long TTFT | long completion | long tokens/s | long failed | prefix hit rate |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let order = std::iter::once((ASYMMETRIC, "intellinode", "unloaded"))
        .chain(
            POLICIES
                .iter()
                .flat_map(|p| LOADS.iter().map(move |l| (ASYMMETRIC, *p, *l))),
        )
        .chain(POLICIES.iter().map(|p| (SYMMETRIC, *p, "80")));
    for (cluster, policy, load) in order {
        if let Some(r) = s.runs.iter().find(|r| {
            r.entry.cluster == cluster && r.entry.policy == policy && r.entry.load == load
        }) {
            run_row(&mut out, r);
        }
    }
    let _ = writeln!(out, "\n## Where new flows went\n");
    for r in &s.runs {
        if !r.chosen.is_empty() {
            let _ = writeln!(
                out,
                "- {} {} at {}: {}",
                r.entry.cluster,
                r.entry.policy,
                r.entry.load,
                placement(r)
            );
        }
    }
    if !s.agreement.is_empty() {
        let _ = writeln!(out, "\n## Simulation against emulation\n");
        let _ = writeln!(
            out,
            "The discrete-event simulator (`intellisim prefix`) runs the same decision code \
             (`steer::Decider`, `predictor::InstanceModel`) on the same clusters and workload \
             (`intellisim plan`), with the nodes' prefix caches modelled. Ratios above 1 mean \
             IntelliNode is better; two ratios agree in direction when both are on the same side \
             of 1 or both within 5% of it; the last column is how far the simulation is off the \
             emulation, as a factor.\n\n| comparison | emulation | simulation | same direction | emulation ÷ simulation |\n|---|---|---|---|---|"
        );
        for a in &s.agreement {
            let _ = writeln!(
                out,
                "| {} | {:.2} | {:.2} | {} | {:.2} |",
                a.what,
                a.emulation,
                a.simulation,
                if a.same_direction { "yes" } else { "**no**" },
                a.emulation / a.simulation
            );
        }
        let agree = s.agreement.iter().filter(|a| a.same_direction).count();
        let worst = s
            .agreement
            .iter()
            .map(|a| {
                let f = a.emulation / a.simulation;
                if f < 1.0 {
                    1.0 / f
                } else {
                    f
                }
            })
            .fold(1.0f64, f64::max);
        let _ = writeln!(
            out,
            "\n{agree} of {} comparisons agree in direction; the two differ by at most a factor of {worst:.1}.",
            s.agreement.len()
        );
    }
    failover_section(&mut out, s);
    if let Some(scale) = scale {
        scale_section(&mut out, scale);
    }
    if let Some(uplink) = uplink {
        uplink_section(&mut out, uplink);
    }
    if let Some(plan) = plan {
        let _ = writeln!(
            out,
            "\n## The cluster\n\n```json\n{}\n```",
            serde_json::to_string_pretty(plan).unwrap_or_default()
        );
    }
    out
}
