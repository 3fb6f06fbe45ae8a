//! A compact, `Copy` byte range.

use core::ops::Range;

/// A byte range within a frame (or within a header's payload, where
/// documented), stored as two `u16`s so parse results stay small and
/// `Copy`. Frames handled by the data plane never exceed 64 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: u16,
    /// Number of bytes.
    pub len: u16,
}

impl Span {
    /// Builds a span from `usize` bounds, saturating at 64 KiB.
    pub fn new(start: usize, len: usize) -> Span {
        Span {
            start: u16::try_from(start).unwrap_or(u16::MAX),
            len: u16::try_from(len).unwrap_or(u16::MAX),
        }
    }

    /// One past the last byte.
    pub const fn end(&self) -> usize {
        self.start as usize + self.len as usize
    }

    /// True for an empty range.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// As a standard range.
    pub const fn range(&self) -> Range<usize> {
        self.start as usize..self.end()
    }

    /// The same span moved `by` bytes later.
    pub fn shifted(&self, by: usize) -> Span {
        Span::new(self.start as usize + by, self.len as usize)
    }

    /// The bytes of `buf` this span covers, or an empty slice if `buf` is
    /// too short (i.e. it is not the buffer the span was computed on).
    pub fn slice<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.range()).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        let s = Span::new(2, 3);
        assert_eq!(s.range(), 2..5);
        assert_eq!(s.slice(&[0, 1, 2, 3, 4, 5]), &[2, 3, 4]);
        assert_eq!(s.slice(&[0, 1, 2]), &[] as &[u8]);
        assert_eq!(s.shifted(10).range(), 12..15);
        assert!(Span::default().is_empty());
        assert_eq!(Span::new(70_000, 1).start, u16::MAX);
    }
}
