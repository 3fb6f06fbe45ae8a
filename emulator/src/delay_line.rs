//! The timing and loss decisions of `emulator wire`, without any I/O: one
//! [`DelayLine`] per direction decides, for each frame as it arrives,
//! whether it is lost and when it leaves, and holds it until then.
//!
//! A frame leaves at the later of the previous release in its direction
//! and its arrival plus delay plus jitter (uniform in ±`jitter`): a line
//! whose jitter comes from queueing never reorders, and reordering would
//! make TCP react in ways an experiment about delay and loss does not
//! intend.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How one direction of the emulated path behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineConfig {
    /// One-way delay.
    pub delay: Duration,
    /// Uniform jitter around `delay` (±).
    pub jitter: Duration,
    /// Probability that a frame is lost, 0 to 1.
    pub loss: f64,
    /// Frames held at most; more are dropped as `queue_full`.
    pub capacity: usize,
}

impl LineConfig {
    /// Checks the numbers; the error names the option at fault.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.loss.is_finite() && (0.0..=1.0).contains(&self.loss)) {
            return Err(format!("--loss {} must be between 0 and 1", self.loss));
        }
        if self.capacity == 0 {
            return Err("--queue-frames must be at least 1".into());
        }
        Ok(())
    }
}

/// What happened to an arriving frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Held; it leaves at this time.
    Queued(Duration),
    /// Emulated loss.
    Lost,
    /// The line already holds `capacity` frames.
    QueueFull,
}

/// One direction of an emulated path. Times are offsets from any fixed
/// origin the caller chooses (the wire uses its start).
#[derive(Debug)]
pub struct DelayLine<T> {
    cfg: LineConfig,
    rng: ChaCha8Rng,
    last_release: Duration,
    held: VecDeque<(Duration, T)>,
}

impl<T> DelayLine<T> {
    /// An empty line drawing its loss and jitter from `rng`.
    pub fn new(cfg: LineConfig, rng: ChaCha8Rng) -> Self {
        DelayLine {
            cfg,
            rng,
            last_release: Duration::ZERO,
            held: VecDeque::new(),
        }
    }

    /// Decides the fate of `frame`, arriving at `now`, and holds it when it
    /// is not dropped.
    pub fn admit(&mut self, now: Duration, frame: T) -> Admission {
        if self.held.len() >= self.cfg.capacity {
            return Admission::QueueFull;
        }
        if self.cfg.loss > 0.0 && self.rng.gen_bool(self.cfg.loss) {
            return Admission::Lost;
        }
        let mut delay = self.cfg.delay;
        if !self.cfg.jitter.is_zero() {
            let j = self.cfg.jitter.as_secs_f64();
            let shifted = self.cfg.delay.as_secs_f64() + self.rng.gen_range(-j..=j);
            delay = Duration::from_secs_f64(shifted.max(0.0));
        }
        let release = (now + delay).max(self.last_release);
        self.last_release = release;
        self.held.push_back((release, frame));
        Admission::Queued(release)
    }

    /// When the oldest held frame is due, if any is held.
    pub fn next_release(&self) -> Option<Duration> {
        self.held.front().map(|(t, _)| *t)
    }

    /// The oldest held frame, if it is due at `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<T> {
        if self.next_release()? <= now {
            self.held.pop_front().map(|(_, f)| f)
        } else {
            None
        }
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_requests::seeded_rng;

    fn line(delay_ms: u64, jitter_ms: u64, loss: f64, capacity: usize) -> DelayLine<u32> {
        DelayLine::new(
            LineConfig {
                delay: Duration::from_millis(delay_ms),
                jitter: Duration::from_millis(jitter_ms),
                loss,
                capacity,
            },
            seeded_rng(9, 1),
        )
    }

    fn releases(l: &mut DelayLine<u32>, n: u32, gap: Duration) -> Vec<Admission> {
        (0..n).map(|i| l.admit(gap * i, i)).collect()
    }

    #[test]
    fn jitter_never_reorders_and_stays_within_bounds() {
        let mut l = line(20, 5, 0.0, 100_000);
        let gap = Duration::from_micros(300);
        let out = releases(&mut l, 5000, gap);
        let mut prev = Duration::ZERO;
        let mut late = 0;
        for (i, a) in out.iter().enumerate() {
            let Admission::Queued(t) = *a else {
                panic!("frame {i}: {a:?} with no loss")
            };
            let arrival = gap * i as u32;
            assert!(t >= prev, "frame {i} released before frame {}", i - 1);
            assert!(t >= arrival + Duration::from_millis(15), "frame {i} early");
            // Only holding order may push a frame past delay + jitter.
            if t > arrival + Duration::from_millis(25) {
                late += 1;
                assert_eq!(
                    t, prev,
                    "frame {i} late without waiting for its predecessor"
                );
            }
            prev = t;
        }
        assert!(late < 5000, "every frame was held back");
        let mut popped = Vec::new();
        while let Some(f) = l.pop_due(Duration::from_secs(10)) {
            popped.push(f);
        }
        assert_eq!(popped, (0..5000).collect::<Vec<u32>>());
    }

    #[test]
    fn jitter_spreads_release_times_across_the_whole_window() {
        let mut l = line(20, 5, 0.0, 1000);
        let gap = Duration::from_secs(1);
        let lags: Vec<f64> = releases(&mut l, 400, gap)
            .into_iter()
            .enumerate()
            .map(|(i, a)| match a {
                Admission::Queued(t) => (t - gap * i as u32).as_secs_f64() * 1000.0,
                other => panic!("{other:?}"),
            })
            .collect();
        let min = lags.iter().copied().fold(f64::MAX, f64::min);
        let max = lags.iter().copied().fold(f64::MIN, f64::max);
        assert!((15.0..16.0).contains(&min), "min lag {min}");
        assert!((24.0..=25.0).contains(&max), "max lag {max}");
    }

    #[test]
    fn loss_rate_matches_the_probability() {
        let mut l = line(0, 0, 0.3, usize::MAX);
        let lost = releases(&mut l, 20_000, Duration::ZERO)
            .iter()
            .filter(|a| **a == Admission::Lost)
            .count();
        let rate = lost as f64 / 20_000.0;
        assert!((0.28..0.32).contains(&rate), "loss rate {rate}");
    }

    #[test]
    fn zero_delay_and_zero_loss_pass_frames_through_at_once() {
        let mut l = line(0, 0, 0.0, 4);
        let now = Duration::from_millis(7);
        assert_eq!(l.admit(now, 1), Admission::Queued(now));
        assert_eq!(l.pop_due(now), Some(1));
        assert!(l.is_empty());
        assert_eq!(l.next_release(), None);
    }

    #[test]
    fn frames_wait_until_due() {
        let mut l = line(10, 0, 0.0, 4);
        assert_eq!(
            l.admit(Duration::ZERO, 5),
            Admission::Queued(Duration::from_millis(10))
        );
        assert_eq!(l.pop_due(Duration::from_millis(9)), None);
        assert_eq!(l.len(), 1);
        assert_eq!(l.pop_due(Duration::from_millis(10)), Some(5));
    }

    #[test]
    fn a_full_queue_drops_without_touching_held_frames() {
        let mut l = line(10, 0, 0.0, 2);
        assert!(matches!(l.admit(Duration::ZERO, 1), Admission::Queued(_)));
        assert!(matches!(l.admit(Duration::ZERO, 2), Admission::Queued(_)));
        assert_eq!(l.admit(Duration::ZERO, 3), Admission::QueueFull);
        assert_eq!(l.len(), 2);
        let due = Duration::from_millis(10);
        assert_eq!((l.pop_due(due), l.pop_due(due)), (Some(1), Some(2)));
        assert!(matches!(l.admit(due, 4), Admission::Queued(_)));
    }

    #[test]
    fn the_same_seed_gives_the_same_decisions() {
        let a = releases(&mut line(20, 3, 0.2, 50), 300, Duration::from_micros(100));
        let b = releases(&mut line(20, 3, 0.2, 50), 300, Duration::from_micros(100));
        assert_eq!(a, b);
        let mut other = DelayLine::new(
            LineConfig {
                delay: Duration::from_millis(20),
                jitter: Duration::from_millis(3),
                loss: 0.2,
                capacity: 50,
            },
            seeded_rng(10, 1),
        );
        let c = releases(&mut other, 300, Duration::from_micros(100));
        assert_ne!(a, c, "a different seed decided identically");
    }

    #[test]
    fn bad_numbers_are_named() {
        let cfg = |loss, capacity| LineConfig {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss,
            capacity,
        };
        assert!(cfg(1.5, 1).validate().unwrap_err().contains("--loss"));
        assert!(cfg(f64::NAN, 1).validate().unwrap_err().contains("--loss"));
        assert!(cfg(0.5, 0)
            .validate()
            .unwrap_err()
            .contains("--queue-frames"));
        assert!(cfg(1.0, 1).validate().is_ok());
    }
}
