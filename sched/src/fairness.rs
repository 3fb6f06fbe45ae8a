//! Jain's fairness index.

/// Jain's fairness index of `xs`: `(Σx)² / (n · Σx²)`.
///
/// It is 1.0 when all values are equal and `1/n` when one value takes
/// everything. To judge a weighted scheduler, pass each flow's service
/// divided by its weight (`bytes_i / weight_i`): a perfect WDRR then scores
/// 1.0.
///
/// Conventions for degenerate input, so callers never see NaN from the
/// common cases: an empty slice or all zeros gives 1.0 (nobody was treated
/// worse than anybody else). Non-finite inputs give a non-finite result.
pub fn jain_index(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 1.0;
    }
    let sum: f64 = xs.iter().sum();
    let sum_sq: f64 = xs.iter().map(|x| x * x).sum();
    if sum_sq == 0.0 {
        return 1.0;
    }
    (sum * sum) / (xs.len() as f64 * sum_sq)
}

#[cfg(test)]
mod tests {
    use super::jain_index;

    #[test]
    fn known_values() {
        assert_eq!(jain_index(&[]), 1.0);
        assert_eq!(jain_index(&[0.0, 0.0]), 1.0);
        assert!((jain_index(&[5.0, 5.0, 5.0]) - 1.0).abs() < 1e-12);
        assert!((jain_index(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        // (1+2)^2 / (2 * (1+4)) = 0.9
        assert!((jain_index(&[1.0, 2.0]) - 0.9).abs() < 1e-12);
    }
}
