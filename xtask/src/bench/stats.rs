//! Summaries of samples (median, min–max, percentiles) and their formatting.

use std::time::Duration;

/// What a number measures, for formatting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Unit {
    /// Seconds, shown as ms or µs.
    Seconds,
    /// Memory: KiB/MiB.
    Bytes,
    /// File sizes: kB/MB (decimal, as the size targets are written).
    FileSize,
    /// Calls per second.
    Rate,
}

/// Median and range of several runs (or one value when `n == 1`).
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) n: usize,
    pub(crate) unit: Unit,
}

impl Summary {
    pub(crate) fn of(samples: &[f64], unit: Unit) -> Summary {
        assert!(!samples.is_empty(), "no samples");
        let sorted = sorted(samples);
        Summary {
            median: median_sorted(&sorted),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            n: sorted.len(),
            unit,
        }
    }

    pub(crate) fn one(value: f64, unit: Unit) -> Summary {
        Summary::of(&[value], unit)
    }

    /// Whether the samples fall on both sides of zero (for differences).
    pub(crate) fn spans_zero(&self) -> bool {
        self.min < 0.0 && self.max > 0.0
    }

    /// `median (min–max)`, or the bare value for one sample.
    pub(crate) fn display(&self) -> String {
        if self.n == 1 || self.min == self.max {
            return format(self.median, self.unit);
        }
        format!(
            "{} ({}–{})",
            format(self.median, self.unit),
            format(self.min, self.unit),
            format(self.max, self.unit)
        )
    }
}

pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile (`p` in 0..=100).
pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    let sorted = sorted(samples);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn format(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Seconds => {
            let ms = value * 1e3;
            if ms.abs() >= 100.0 {
                format!("{ms:.0} ms")
            } else if ms.abs() >= 1.0 {
                format!("{ms:.2} ms")
            } else {
                format!("{:.0} µs", ms * 1e3)
            }
        }
        Unit::Bytes => {
            let mib = value / (1024.0 * 1024.0);
            if mib >= 10.0 {
                format!("{mib:.1} MiB")
            } else if mib >= 1.0 {
                format!("{mib:.2} MiB")
            } else {
                format!("{:.0} KiB", value / 1024.0)
            }
        }
        Unit::FileSize => {
            let mb = value / 1e6;
            if mb >= 1.0 {
                format!("{mb:.2} MB")
            } else {
                format!("{:.0} kB", value / 1e3)
            }
        }
        Unit::Rate => format!("{value:.0}/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_percentiles() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 10.0], Unit::Bytes);
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 10.0, 4));
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 100.0);
        assert_eq!(percentile(&samples, 99.0), 198.0);
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
    }

    #[test]
    fn formatting() {
        assert_eq!(format(0.000_123, Unit::Seconds), "123 µs");
        assert_eq!(format(0.0123, Unit::Seconds), "12.30 ms");
        assert_eq!(format(1.5, Unit::Seconds), "1500 ms");
        assert_eq!(format(32.0 * 1024.0 * 1024.0, Unit::Bytes), "32.0 MiB");
        assert_eq!(format(47_512_630.0, Unit::FileSize), "47.51 MB");
        assert_eq!(format(459_320.0, Unit::FileSize), "459 kB");
        assert_eq!(
            Summary::of(&[0.001, 0.002, 0.003], Unit::Seconds).display(),
            "2.00 ms (1.00 ms–3.00 ms)"
        );
    }
}
