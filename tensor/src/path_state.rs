//! Overlay paths as the control plane last reported them.
//!
//! A tensor appliance's overlay paths, their latency and capacity, are
//! configuration; PATH_STATE messages (`docs/wire-format.md` §3) measure
//! them. A message is planned over the paths as measured, by the rule
//! steer's path choice applies (`steer::decision`), so that one report
//! means the same to both pipelines:
//!
//! * a fresh report whose loss exceeds the POLICY's `max_path_loss_ratio`
//!   takes the path out of new plans;
//! * a report older than `max_state_age` does too: the path was measured,
//!   then went silent, and silence is how a failed path looks;
//! * a fresh report's latency replaces the configured latency, and its
//!   available bandwidth caps what the plan may use (the configured
//!   capacity, or the predictor's forecast when that is fresh);
//! * a path never reported keeps its configuration.
//!
//! When no path is usable, a message is planned over all of them as
//! configured: RDMA traffic sent on a path its telemetry has given up on
//! may still arrive, traffic dropped at the appliance never does.

use control::{DataplaneView, Freshness, PathId, PathMetrics};

use crate::engine::OverlayPath;

/// One overlay path as plans see it now (the default: no path, unusable).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PathLive {
    /// Takes new messages.
    pub usable: bool,
    /// One-way latency, ns: reported, or configured.
    pub latency_ns: u64,
    /// Bandwidth a plan may use at most, bit/s: the reported available
    /// bandwidth, or infinite when none was reported.
    pub available_bps: f64,
}

impl PathLive {
    /// A path as configured, before any report.
    pub fn configured(p: &OverlayPath) -> PathLive {
        PathLive {
            usable: true,
            latency_ns: p.latency_ns,
            available_bps: f64::INFINITY,
        }
    }

    /// The path `p` under `report` (its PATH_STATE's freshness), with
    /// loss above `max_loss_ratio` counting as down.
    pub fn of(
        p: &OverlayPath,
        report: Freshness<'_, PathMetrics>,
        max_loss_ratio: f64,
    ) -> PathLive {
        let configured = PathLive::configured(p);
        match report {
            Freshness::Unknown => configured,
            Freshness::Stale { .. } => PathLive {
                usable: false,
                ..configured
            },
            Freshness::Fresh(m) => PathLive {
                usable: !m.too_lossy(max_loss_ratio),
                // Microseconds to ns; a report is validated finite and
                // non-negative, and the cast saturates.
                latency_ns: m
                    .latency_us
                    .map_or(p.latency_ns, |us| (us * 1_000.0) as u64),
                available_bps: m
                    .avail_bw_bps
                    .filter(|b| *b >= 0.0)
                    .unwrap_or(f64::INFINITY),
            },
        }
    }

    /// Every path in `paths` as `view` reports it at `now_ns`, into `out`
    /// (one slot per path, in order; paths beyond `out` are not planned).
    pub fn observe(paths: &[OverlayPath], view: &DataplaneView, now_ns: u64, out: &mut [PathLive]) {
        let max_loss = view.thresholds().max_path_loss_ratio;
        for (slot, p) in out.iter_mut().zip(paths) {
            *slot = PathLive::of(
                p,
                view.path_report(PathId(u16::from(p.id)), now_ns),
                max_loss,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::metric::{Metric, MetricType, Unit};
    use control::{ControlState, Message, PathState, Thresholds};
    use std::net::Ipv4Addr;

    fn overlay(id: u8) -> OverlayPath {
        OverlayPath {
            id,
            port: 1,
            next_hop_mac: [2, 0, 0, 0, 0, id],
            remote_ip: Ipv4Addr::new(192, 0, 2, 2),
            capacity_bps: 10e9,
            latency_ns: 20_000,
        }
    }

    fn report(id: u16, metrics: Vec<Metric>) -> Message {
        PathState::new(PathId(id), metrics).into()
    }

    const SECOND: u64 = 1_000_000_000;

    fn observed(messages: &[(Message, u64)], now_ns: u64) -> Vec<PathLive> {
        let mut state = ControlState::new(Thresholds::default());
        for (m, at) in messages {
            state.apply(1, m, *at);
        }
        let view = state.view(1, now_ns);
        let paths = [overlay(1), overlay(2)];
        let mut out = [PathLive::configured(&paths[0]); 2];
        PathLive::observe(&paths, &view, now_ns, &mut out);
        out.to_vec()
    }

    #[test]
    fn an_unreported_path_keeps_its_configuration() {
        let live = observed(&[], 5 * SECOND);
        assert_eq!(live[0], PathLive::configured(&overlay(1)));
        assert_eq!(live[1], PathLive::configured(&overlay(2)));
    }

    #[test]
    fn a_fresh_report_sets_latency_and_bandwidth() {
        let m = report(
            2,
            vec![
                Metric::new(MetricType::PathLatency, Unit::Microseconds, 350.0),
                Metric::new(MetricType::PathAvailableBw, Unit::BitsPerSecond, 4e9),
                Metric::new(MetricType::PathLoss, Unit::Percent, 1.0),
            ],
        );
        let live = observed(&[(m, SECOND)], SECOND + 1);
        assert_eq!(live[0], PathLive::configured(&overlay(1)));
        assert_eq!(
            live[1],
            PathLive {
                usable: true,
                latency_ns: 350_000,
                available_bps: 4e9
            }
        );
    }

    #[test]
    fn loss_above_the_policy_limit_takes_a_path_down() {
        // Default max_path_loss_ratio is 0.05.
        let lossy = report(
            1,
            vec![Metric::new(MetricType::PathLoss, Unit::Percent, 6.0)],
        );
        let live = observed(&[(lossy, SECOND)], SECOND);
        assert!(!live[0].usable);
        assert!(live[1].usable);
        let at_limit = report(
            1,
            vec![Metric::new(MetricType::PathLoss, Unit::Ratio, 0.05)],
        );
        assert!(observed(&[(at_limit, SECOND)], SECOND)[0].usable);
    }

    #[test]
    fn a_report_gone_stale_takes_a_path_down() {
        let m = report(
            1,
            vec![Metric::new(
                MetricType::PathLatency,
                Unit::Microseconds,
                100.0,
            )],
        );
        // max_state_age is 1 s by default.
        assert!(observed(&[(m.clone(), SECOND)], 2 * SECOND)[0].usable);
        let stale = observed(&[(m, SECOND)], 2 * SECOND + 1);
        assert!(!stale[0].usable);
        assert!(stale[1].usable);
    }
}
