//! Measures the predictor core on generated training traces.
//!
//! Runs [`tensor::predict::evaluate`] on the default trace and on two more
//! seeds, for every horizon, prints a table to stderr and one JSON object
//! to stdout (the default trace's numbers, for the performance doc):
//!
//! ```text
//! cargo run --release -p tensor --example predictor_accuracy
//! ```

use tensor::predict::{evaluate, Accuracy, PredictorConfig};
use tensor::trace::{generate, TraceConfig};
use tensor::HORIZONS_MS;

fn main() {
    let cfg = PredictorConfig::default();
    let seeds = [1u64, 2, 3];
    let mut default_results: Vec<Accuracy> = Vec::new();
    eprintln!(
        "{:>4} {:>3} {:>8} {:>12} {:>12} {:>7} {:>6} {:>6} {:>6} {:>6}",
        "seed", "h", "samples", "mae_model", "mae_last", "ratio", "P", "R", "P_last", "R_last"
    );
    for seed in seeds {
        let trace = TraceConfig {
            seed,
            ..TraceConfig::default()
        };
        let records = generate(&trace);
        for h in HORIZONS_MS {
            let a = evaluate(&records, &cfg, h);
            let ratio = if a.mae_last_value_bps > 0.0 {
                a.mae_model_bps / a.mae_last_value_bps
            } else {
                f64::NAN
            };
            eprintln!(
                "{:>4} {:>3} {:>8} {:>9.3} Gb {:>9.3} Gb {:>7.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3}",
                seed,
                h,
                a.samples,
                a.mae_model_bps / 1e9,
                a.mae_last_value_bps / 1e9,
                ratio,
                a.congestion_precision,
                a.congestion_recall,
                a.congestion_precision_last_value,
                a.congestion_recall_last_value
            );
            if seed == seeds[0] {
                default_results.push(a);
            }
        }
    }
    let at = |h: u64| {
        default_results
            .get(usize::try_from(h).unwrap_or(1).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    let (one, five) = (at(1), at(5));
    println!(
        "{{\"predictor_mae_1ms\": {:.1}, \"predictor_mae_1ms_last_value\": {:.1}, \
         \"predictor_mae_5ms\": {:.1}, \"predictor_mae_5ms_last_value\": {:.1}, \
         \"predictor_congestion_precision_1ms\": {:.4}, \"predictor_congestion_recall_1ms\": {:.4}, \
         \"predictor_congestion_precision_1ms_last_value\": {:.4}, \
         \"predictor_congestion_recall_1ms_last_value\": {:.4}}}",
        one.mae_model_bps,
        one.mae_last_value_bps,
        five.mae_model_bps,
        five.mae_last_value_bps,
        one.congestion_precision,
        one.congestion_recall,
        one.congestion_precision_last_value,
        one.congestion_recall_last_value
    );
}
