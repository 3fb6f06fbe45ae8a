//! Values that age: every piece of state remembers when it arrived, and is
//! read through [`Freshness`] so stale numbers cannot pass for fresh ones.

/// A value with the monotonic time it was stored and the peer that sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed<T> {
    /// The value.
    pub value: T,
    /// Monotonic ns (the caller's clock) when it was stored.
    pub updated_ns: u64,
    /// Key id of the peer that sent it.
    pub from_peer: u32,
}

impl<T> Timed<T> {
    /// A value stored at `updated_ns` on behalf of `from_peer`.
    pub const fn new(value: T, updated_ns: u64, from_peer: u32) -> Timed<T> {
        Timed {
            value,
            updated_ns,
            from_peer,
        }
    }

    /// Nanoseconds since the value was stored (0 if the clock went back).
    pub fn age(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.updated_ns)
    }

    /// The value if it is at most `max_age_ns` old.
    pub fn freshness(&self, now_ns: u64, max_age_ns: u64) -> Freshness<'_, T> {
        let age_ns = self.age(now_ns);
        if age_ns <= max_age_ns {
            Freshness::Fresh(&self.value)
        } else {
            Freshness::Stale { age_ns }
        }
    }
}

/// How usable a piece of state is right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Freshness<'a, T> {
    /// Recent enough to act on.
    Fresh(&'a T),
    /// Known but too old to act on.
    Stale {
        /// Its age in ns.
        age_ns: u64,
    },
    /// Never received (or removed).
    Unknown,
}

impl<'a, T> Freshness<'a, T> {
    /// The value, only if fresh.
    pub fn fresh(self) -> Option<&'a T> {
        match self {
            Freshness::Fresh(v) => Some(v),
            _ => None,
        }
    }

    /// True if fresh.
    pub fn is_fresh(&self) -> bool {
        matches!(self, Freshness::Fresh(_))
    }

    /// `fresh`, `stale` or `unknown`, for JSON and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Freshness::Fresh(_) => "fresh",
            Freshness::Stale { .. } => "stale",
            Freshness::Unknown => "unknown",
        }
    }
}

/// Freshness of an optional entry.
pub(crate) fn freshness_of<T>(
    entry: Option<&Timed<T>>,
    now_ns: u64,
    max_age_ns: u64,
) -> Freshness<'_, T> {
    entry.map_or(Freshness::Unknown, |e| e.freshness(now_ns, max_age_ns))
}
