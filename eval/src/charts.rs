//! Charts with plotters, each drawn once per backend: SVG for the docs and
//! PNG for anything that shows pictures.
//!
//! * `ttft-cdf-80`: the distribution of TTFT per class at 80% load, one
//!   line per policy, on a log time axis (the tails differ by orders of
//!   magnitude);
//! * `short-p99-vs-load`: short-request p99 TTFT per policy against load,
//!   with the 1.2 × unloaded bound the goal sets;
//! * `failover-emulation`, `failover-simulation`: the failure timeline
//!   over time, answered and failed requests and new flows per second.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::summary::{PerPolicyLoad, Summary, ASYMMETRIC, GOAL_LOAD, LOADS, POLICIES};

/// Where fonts are looked for when `--font` is not given (Debian's
/// fonts-dejavu-core, which `make deps` installs).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the TTF at `path` as plotters' "sans-serif" (once per
/// process: plotters keeps a `'static` reference).
pub fn register_font(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read font {} (install fonts-dejavu-core or pass --font)",
            path.display()
        )
    })?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a TrueType font", path.display()))
}

fn colour(policy: &str) -> RGBColor {
    match policy {
        "fifo" => RGBColor(214, 39, 40),
        "least_queue" => RGBColor(255, 127, 14),
        "llm_d" => RGBColor(44, 160, 44),
        _ => RGBColor(31, 119, 180),
    }
}

fn label(policy: &str) -> &str {
    match policy {
        "fifo" => "FIFO + round robin",
        "least_queue" => "least queue (KV + queue)",
        "llm_d" => "llm-d (queue 2, KV 2, prefix 3)",
        _ => "IntelliNode token-aware",
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The CDF points of sorted values: (value, fraction at or below it).
fn cdf(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, v)| (v.max(0.1), (i + 1) as f64 / n))
        .collect()
}

fn draw_cdf<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Summary) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    for (area, class) in panels.iter().zip(["short", "long"]) {
        let series: Vec<(&str, Vec<(f64, f64)>)> = POLICIES
            .iter()
            .filter_map(|p| {
                let run = s.runs.iter().find(|r| {
                    r.entry.cluster == ASYMMETRIC
                        && r.entry.policy == *p
                        && r.entry.load == GOAL_LOAD
                })?;
                let st = if class == "short" {
                    &run.stats.short
                } else {
                    &run.stats.long
                };
                Some((*p, cdf(&st.ttft_sorted)))
            })
            .collect();
        let max = series
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.0))
            .fold(1.0f64, f64::max)
            * 1.5;
        let min = series
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.0))
            .fold(f64::INFINITY, f64::min)
            .clamp(0.1, max / 10.0)
            / 1.5;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{class} requests: TTFT at {GOAL_LOAD}% load"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((min..max).log_scale(), 0.0f64..1.0f64)?;
        chart
            .configure_mesh()
            .x_desc("time to first token from arrival (ms, log)")
            .y_desc("fraction of requests")
            .draw()?;
        for (policy, points) in series {
            let c = colour(policy);
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(label(policy))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
    }
    root.present()
}

fn draw_p99<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &Summary) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let values: Vec<f64> = s
        .short_p99_ttft_ms
        .values()
        .flat_map(|m| m.values().copied())
        .chain(s.short_p99_ttft_unloaded_ms)
        .filter(|v| *v > 0.0)
        .collect();
    let max = values.iter().copied().fold(1.0, f64::max) * 2.0;
    let min = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(max / 10.0)
        / 2.0;
    let mut chart = ChartBuilder::on(root)
        .caption("short requests: p99 TTFT against load", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(40.0f64..100.0f64, (min.max(0.1)..max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("offered load (% of cluster capacity)")
        .y_desc("p99 TTFT (ms, log)")
        .draw()?;
    for policy in POLICIES {
        let Some(per) = s.short_p99_ttft_ms.get(policy) else {
            continue;
        };
        let points: Vec<(f64, f64)> = LOADS
            .iter()
            .filter_map(|l| Some((l.parse::<f64>().ok()?, *per.get(*l)?)))
            .collect();
        let c = colour(policy);
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))?
            .label(label(policy))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 5, c.filled())))?;
    }
    if let Some(unloaded) = s.short_p99_ttft_unloaded_ms {
        let bound = 1.2 * unloaded;
        chart
            .draw_series(LineSeries::new(
                [(40.0, bound), (100.0, bound)],
                BLACK.mix(0.6).stroke_width(1),
            ))?
            .label("goal: 1.2 × unloaded p99")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    root.present()
}

/// Short and long p99 TTFT against load on the asymmetric cluster, all
/// four policies; `source` says whose numbers (emulated, simulated).
fn draw_short_long<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    source: &str,
    short: &PerPolicyLoad,
    long: &PerPolicyLoad,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    for (area, what, per_policy) in [(&left, "short", short), (&right, "long", long)] {
        let values: Vec<f64> = per_policy
            .values()
            .flat_map(|m| m.values().copied())
            .filter(|v| *v > 0.0)
            .collect();
        let max = values.iter().copied().fold(1.0, f64::max) * 2.0;
        let min = values
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(max / 10.0)
            / 2.0;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{what} requests ({source}): p99 TTFT"),
                ("sans-serif", 18),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(40.0f64..100.0f64, (min.max(0.1)..max).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("offered load (% of cluster capacity)")
            .y_desc("p99 TTFT (ms, log)")
            .draw()?;
        for policy in POLICIES {
            let Some(per) = per_policy.get(policy) else {
                continue;
            };
            let points: Vec<(f64, f64)> = LOADS
                .iter()
                .filter_map(|l| Some((l.parse::<f64>().ok()?, *per.get(*l)?)))
                .collect();
            let c = colour(policy);
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))?
                .label(label(policy))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 5, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
    }
    root.present()
}

/// The failover chart's file name (without extension) for a run.
pub fn failover_chart_name(source: &str) -> String {
    format!("failover-{source}")
}

fn instance_colour(instance: &str) -> RGBColor {
    match instance {
        "edge" => RGBColor(44, 160, 44),
        _ => RGBColor(148, 103, 189),
    }
}

/// A line's name and its value per time bin.
type NamedSeries = (String, Vec<f64>);

/// Three panels over the run's time: answered requests/s per instance,
/// failed requests/s, new flows steered per second per instance; grey
/// lines at each failure and recovery.
fn draw_failover<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &sim::failover::FailoverReport,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let sr = &f.series;
    let bins = sr.failed_rps.len().max(1);
    let t_end = bins as f64 * sr.bin_ms / 1000.0;
    let t = |i: usize| (i as f64 + 0.5) * sr.bin_ms / 1000.0;
    let panels = root.split_evenly((3, 1));
    let failed = vec![("failed".to_string(), sr.failed_rps.clone())];
    let specs: [(&str, &[NamedSeries]); 3] = [
        ("answered requests/s per instance", &sr.answered_rps),
        ("failed requests/s", &failed),
        (
            "new flows steered per second, per instance",
            &sr.decisions_rps,
        ),
    ];
    for (k, (area, (title, lines))) in panels.iter().zip(specs).enumerate() {
        let top = lines
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(1.0f64, f64::max)
            * 1.15;
        let caption = if k == 0 {
            format!("{} ({}): {title}", "failure timeline", f.source)
        } else {
            title.to_string()
        };
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 17))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0f64..t_end, 0.0f64..top)?;
        chart
            .configure_mesh()
            .x_desc(if k == 2 {
                "time from the first arrival (s)"
            } else {
                ""
            })
            .draw()?;
        for r in &f.responses {
            for (x, what) in [
                (r.failure.at_ms, "fails"),
                (r.failure.recovered_ms, "recovers"),
            ] {
                let x = x / 1000.0;
                chart.draw_series(LineSeries::new(
                    [(x, 0.0), (x, top)],
                    BLACK.mix(0.45).stroke_width(1),
                ))?;
                if k == 0 {
                    chart.draw_series(std::iter::once(Text::new(
                        format!("{} {what}", r.failure.instance),
                        (x, top * 0.97),
                        ("sans-serif", 12),
                    )))?;
                }
            }
        }
        for (name, values) in lines {
            let c = if name == "failed" {
                RGBColor(214, 39, 40)
            } else {
                instance_colour(name)
            };
            let points: Vec<(f64, f64)> =
                values.iter().enumerate().map(|(i, v)| (t(i), *v)).collect();
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
    }
    root.present()
}

/// Draws every chart into `dir` as SVG and PNG; returns the files.
pub fn draw_all(dir: &Path, s: &Summary) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let path = |name: &str| dir.join(name);
    let fail = |p: &Path, e: String| anyhow!("{}: {e}", p.display());

    let (svg, png) = (path("ttft-cdf-80.svg"), path("ttft-cdf-80.png"));
    draw_cdf(&SVGBackend::new(&svg, (1100, 450)).into_drawing_area(), s)
        .map_err(|e| fail(&svg, e.to_string()))?;
    draw_cdf(
        &BitMapBackend::new(&png, (1100, 450)).into_drawing_area(),
        s,
    )
    .map_err(|e| fail(&png, e.to_string()))?;
    files.extend([svg, png]);

    let (svg, png) = (path("short-p99-vs-load.svg"), path("short-p99-vs-load.png"));
    draw_p99(&SVGBackend::new(&svg, (800, 500)).into_drawing_area(), s)
        .map_err(|e| fail(&svg, e.to_string()))?;
    draw_p99(&BitMapBackend::new(&png, (800, 500)).into_drawing_area(), s)
        .map_err(|e| fail(&png, e.to_string()))?;
    files.extend([svg, png]);

    let mut short_long = vec![("emulated", &s.short_p99_ttft_ms, &s.long_p99_ttft_ms)];
    if let Some(p) = &s.simulated_prefix {
        short_long.push(("simulated", &p.short_p99_ttft_ms, &p.long_p99_ttft_ms));
    }
    for (source, short, long) in short_long {
        let name = format!("p99-vs-load-{source}");
        let (svg, png) = (path(&format!("{name}.svg")), path(&format!("{name}.png")));
        draw_short_long(
            &SVGBackend::new(&svg, (1200, 500)).into_drawing_area(),
            source,
            short,
            long,
        )
        .map_err(|e| fail(&svg, e.to_string()))?;
        draw_short_long(
            &BitMapBackend::new(&png, (1200, 500)).into_drawing_area(),
            source,
            short,
            long,
        )
        .map_err(|e| fail(&png, e.to_string()))?;
        files.extend([svg, png]);
    }

    for f in &s.failover {
        let name = failover_chart_name(&f.source);
        let (svg, png) = (path(&format!("{name}.svg")), path(&format!("{name}.png")));
        draw_failover(&SVGBackend::new(&svg, (1000, 820)).into_drawing_area(), f)
            .map_err(|e| fail(&svg, e.to_string()))?;
        draw_failover(
            &BitMapBackend::new(&png, (1000, 820)).into_drawing_area(),
            f,
        )
        .map_err(|e| fail(&png, e.to_string()))?;
        files.extend([svg, png]);
    }
    Ok(files)
}
