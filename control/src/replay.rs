//! Per-peer anti-replay window (RFC 6479 style: highest seq + bitmap).
//!
//! The window remembers the highest sequence number accepted and which of
//! the 1024 numbers at and below it were accepted. A number above the
//! highest is new; one inside the window is new unless its bit is set; one
//! below the window cannot be judged any more and is refused as too old.
//!
//! Checking and committing are separate on purpose: the receiver checks
//! right after authentication but commits only once the message has also
//! decoded, validated and been authorised, so nothing short of a fully
//! acceptable message moves the window.

use core::fmt;

/// Sequence numbers the window can still tell apart, counting the highest.
pub const WINDOW_BITS: u64 = 1024;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// Why the window refuses a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// This exact number was accepted before.
    Duplicate {
        /// The refused number.
        seq: u64,
    },
    /// The number is below the window, so it cannot be proven new.
    TooOld {
        /// The refused number.
        seq: u64,
        /// The highest number accepted so far.
        highest: u64,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReplayError::Duplicate { seq } => write!(f, "seq {seq} was already accepted"),
            ReplayError::TooOld { seq, highest } => write!(
                f,
                "seq {seq} is too old: more than {WINDOW_BITS} below the highest accepted {highest}"
            ),
        }
    }
}

/// Highest accepted seq plus a 1024-bit history below it.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// `None` until the first commit: then every number is new.
    highest: Option<u64>,
    /// Bit `i` (word `i / 64`, bit `i % 64`) set = `highest - i` accepted.
    /// Indexing from the top makes an advance a plain left shift.
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seen: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest)
            .field("seen_in_window", &seen)
            .finish()
    }
}

impl ReplayWindow {
    /// An empty window: the first number seen is accepted, whatever it is.
    pub const fn new() -> Self {
        ReplayWindow {
            highest: None,
            bits: [0; WORDS],
        }
    }

    /// The highest sequence number committed so far.
    pub const fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Would `seq` be new? Does not change the window.
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if seq > highest {
            return Ok(());
        }
        let back = highest - seq;
        if back >= WINDOW_BITS {
            return Err(ReplayError::TooOld { seq, highest });
        }
        if self.bit(back) {
            Err(ReplayError::Duplicate { seq })
        } else {
            Ok(())
        }
    }

    /// Records `seq` as accepted. Call only after [`ReplayWindow::check`]
    /// passed for it; committing an old or duplicate number is a no-op.
    pub fn commit(&mut self, seq: u64) {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.bits = [0; WORDS];
            self.bits[0] = 1;
            return;
        };
        if seq > highest {
            self.shift_up(seq - highest);
            self.highest = Some(seq);
            self.set_bit(0);
        } else {
            let back = highest - seq;
            if back < WINDOW_BITS {
                self.set_bit(back);
            }
        }
    }

    fn bit(&self, back: u64) -> bool {
        let (w, b) = split(back);
        self.bits.get(w).is_some_and(|word| word & (1u64 << b) != 0)
    }

    fn set_bit(&mut self, back: u64) {
        let (w, b) = split(back);
        if let Some(word) = self.bits.get_mut(w) {
            *word |= 1u64 << b;
        }
    }

    /// Moves every remembered number `by` places further from the top,
    /// dropping those that fall out of the window.
    fn shift_up(&mut self, by: u64) {
        if by >= WINDOW_BITS {
            self.bits = [0; WORDS];
            return;
        }
        let (word_shift, bit_shift) = split(by);
        let old = self.bits;
        for (j, slot) in self.bits.iter_mut().enumerate() {
            let lo = j.checked_sub(word_shift).and_then(|k| old.get(k)).copied();
            let carry = j
                .checked_sub(word_shift + 1)
                .and_then(|k| old.get(k))
                .copied();
            *slot = match (lo, bit_shift) {
                (None, _) => 0,
                (Some(v), 0) => v,
                (Some(v), s) => (v << s) | carry.map_or(0, |c| c >> (64 - s)),
            };
        }
    }
}

/// Word index and bit index of a distance below the top (< WINDOW_BITS).
fn split(back: u64) -> (usize, u32) {
    // back < 1024, so both conversions are lossless.
    ((back / 64) as usize, (back % 64) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn first_number_is_accepted_then_duplicate_refused() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(5), Ok(()));
        w.commit(5);
        assert_eq!(w.check(5), Err(ReplayError::Duplicate { seq: 5 }));
        assert_eq!(w.check(6), Ok(()));
        assert_eq!(w.check(4), Ok(()));
        assert_eq!(w.highest(), Some(5));
    }

    #[test]
    fn out_of_order_inside_window_accepted_once() {
        let mut w = ReplayWindow::new();
        w.commit(2000);
        let low = 2000 - (WINDOW_BITS - 1);
        assert_eq!(w.check(low), Ok(()));
        w.commit(low);
        assert_eq!(w.check(low), Err(ReplayError::Duplicate { seq: low }));
        assert_eq!(
            w.check(low - 1),
            Err(ReplayError::TooOld {
                seq: low - 1,
                highest: 2000
            })
        );
    }

    #[test]
    fn big_jump_forgets_everything_below() {
        let mut w = ReplayWindow::new();
        w.commit(10);
        w.commit(10 + 5000);
        assert!(matches!(w.check(10), Err(ReplayError::TooOld { .. })));
        assert_eq!(w.check(5009), Ok(()));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let mut w = ReplayWindow::new();
        w.commit(0);
        w.commit(u64::MAX);
        assert_eq!(
            w.check(u64::MAX),
            Err(ReplayError::Duplicate { seq: u64::MAX })
        );
        assert!(matches!(w.check(0), Err(ReplayError::TooOld { .. })));
        w.commit(u64::MAX - 1023);
        assert!(w.check(u64::MAX - 1023).is_err());
    }

    proptest! {
        /// The window agrees with an exact set-based model for any sequence
        /// of offers, as long as the model also forgets below the window.
        #[test]
        fn matches_set_model(start in 0u64..u64::MAX / 2, steps in proptest::collection::vec(-1500i64..1500, 1..300)) {
            let mut w = ReplayWindow::new();
            let mut seen = BTreeSet::new();
            let mut highest: Option<u64> = None;
            let mut cur = start;
            for step in steps {
                cur = cur.saturating_add_signed(step);
                let expected = match highest {
                    None => Ok(()),
                    Some(h) if cur > h => Ok(()),
                    Some(h) if h - cur >= WINDOW_BITS => Err(ReplayError::TooOld { seq: cur, highest: h }),
                    Some(_) if seen.contains(&cur) => Err(ReplayError::Duplicate { seq: cur }),
                    Some(_) => Ok(()),
                };
                prop_assert_eq!(w.check(cur), expected);
                if expected.is_ok() {
                    w.commit(cur);
                    seen.insert(cur);
                    highest = Some(highest.map_or(cur, |h| h.max(cur)));
                }
            }
        }
    }
}
