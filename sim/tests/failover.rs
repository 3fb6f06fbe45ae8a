//! The failure timeline of `make eval`, simulated: the edge node killed and
//! restarted, the centre's path black-holed and restored, with the goals
//! asserted (the fast check of what the emulation measures).

use sim::failover::{run_failover, FailoverReport};
use sim::EvalCluster;

fn run(seed: u64) -> FailoverReport {
    run_failover(&EvalCluster::default(), seed).unwrap()
}

#[test]
fn new_flows_move_away_and_come_back_within_their_bounds() {
    for seed in 1..=4 {
        let r = run(seed);
        assert!(r.all_met(), "seed {seed}: {:#?}", r.goals);
        let [kill, cut] = r.responses.as_slice() else {
            panic!("seed {seed}: {:?}", r.responses)
        };
        let (age, interval) = (r.bounds.max_state_age_ms, r.bounds.report_interval_ms);
        assert_eq!((age, interval), (1000.0, 20.0));

        // The killed node's state is frozen, so it draws new flows until
        // the flows steered since its last report fill it (or it goes
        // stale); each of them meets a dead process.
        assert_eq!(kill.steady_class, "short");
        assert!(kill.steady_share > 0.95, "seed {seed}: {kill:?}");
        assert!(kill.steered_after_failure > 0, "seed {seed}: {kill:?}");
        assert!(
            kill.away_ms > 0.0 && kill.away_ms <= age,
            "seed {seed}: {kill:?}"
        );
        assert_eq!(kill.lost_after_failure, kill.steered_after_failure);
        assert!(kill.lost_in_flight > 0, "seed {seed}: {kill:?}");
        // The restarted node reports at once: every short flow after it
        // goes back to the edge.
        assert!(kill.back_ms <= 2.0 * interval, "seed {seed}: {kill:?}");
        assert!(kill.first_back_ms.is_some(), "seed {seed}: {kill:?}");

        // The cut path is reported losing everything within one report
        // interval, and restored within the next.
        assert_eq!(cut.steady_class, "long");
        assert!(cut.away_ms <= interval, "seed {seed}: {cut:?}");
        assert!(cut.back_ms <= 2.0 * interval, "seed {seed}: {cut:?}");
        assert!(cut.first_back_ms.is_some(), "seed {seed}: {cut:?}");

        assert_eq!(r.lost_elsewhere, 0, "seed {seed}");
        let lost: u64 = r
            .responses
            .iter()
            .map(|x| x.lost_in_flight + x.lost_after_failure)
            .sum();
        assert_eq!(
            lost, r.failed,
            "seed {seed}: every loss is on a failed element"
        );

        // While the edge is down, nothing is answered by it and the centre
        // takes the work.
        let s = &r.series;
        let bin = |ms: f64| (ms / s.bin_ms) as usize;
        let edge = &s.answered_rps[0].1;
        let centre_decisions = &s.decisions_rps[1].1;
        let down = bin(kill.failure.at_ms + age + 100.0)..bin(kill.failure.recovered_ms);
        assert!(
            down.clone().all(|b| edge[b] == 0.0),
            "seed {seed}: {edge:?}"
        );
        assert!(down.clone().all(|b| centre_decisions[b] > 0.0));
    }
}

#[test]
fn the_failover_run_is_deterministic() {
    let a = serde_json::to_string(&run(9)).unwrap();
    assert_eq!(a, serde_json::to_string(&run(9)).unwrap());
    assert_ne!(a, serde_json::to_string(&run(10)).unwrap());
}
