//! The figures of `herald bench functions`: each binary's samples reduced to medians, set against the
//! hello-world binary's of the same run, and checked against issue 10's targets.

// Durations in ms and sizes of a few MB: exact enough as f64.
#![allow(clippy::cast_precision_loss)]

use super::super::report::quantile;
use std::fmt;
use std::time::Duration;

/// Issue 10's targets: a miss is reported, not an error.
pub const INIT_RATIO_TARGET: f64 = 1.5;
pub const PEAK_RSS_TARGET_BYTES: u64 = 20_000_000;
pub const SIZE_TARGET_BYTES: u64 = 8_000_000;

/// One start of a binary: exec to its first `/invocation/next`, the first invocation (the event handed
/// over to its answer), and its peak resident memory once it has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub init: Duration,
    pub first_invoke: Duration,
    pub peak_rss_bytes: u64,
}

/// One binary's medians over its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub name: String,
    pub runs: usize,
    pub init: Duration,
    pub first_invoke: Duration,
    pub peak_rss_bytes: u64,
    pub size_bytes: u64,
    /// What the first invocation answered, shortened (a function may answer an error and still be measured).
    pub answer: String,
}

impl Summary {
    pub fn new(name: &str, samples: &[Sample], size_bytes: u64, answer: String) -> Self {
        let init: Vec<Duration> = samples.iter().map(|sample| sample.init).collect();
        let invoke: Vec<Duration> = samples.iter().map(|sample| sample.first_invoke).collect();
        let mut rss: Vec<u64> = samples.iter().map(|sample| sample.peak_rss_bytes).collect();
        rss.sort_unstable();
        Self {
            name: name.to_owned(),
            runs: samples.len(),
            init: quantile(&init, 500),
            first_invoke: quantile(&invoke, 500),
            peak_rss_bytes: median_of_sorted(&rss),
            size_bytes,
            answer,
        }
    }
}

/// The lower median (nearest rank, as [`quantile`] takes it); zero for none.
fn median_of_sorted(sorted: &[u64]) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[sorted.len().div_ceil(2) - 1]
}

/// `value ÷ baseline`, or None when the baseline is zero.
pub fn ratio(value: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0).then(|| value / baseline)
}

/// The peak resident set (`VmHWM`) in a `/proc/<pid>/status`, in bytes (the kernel writes it in KiB).
pub fn peak_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let mut fields = line["VmHWM:".len()..].split_whitespace();
    let kib: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => kib.checked_mul(1024),
        _ => None,
    }
}

/// The table: every binary against the baseline (the row named `baseline`), then what misses a target.
#[derive(Debug)]
pub struct Table<'a> {
    pub rows: &'a [Summary],
    pub baseline: &'a str,
}

impl Table<'_> {
    fn baseline(&self) -> Option<&Summary> {
        self.rows.iter().find(|row| row.name == self.baseline)
    }

    /// Each function's misses of the targets, one line each (none: every target met).
    pub fn misses(&self) -> Vec<String> {
        let baseline = self.baseline();
        let mut misses = Vec::new();
        for row in self.rows.iter().filter(|row| row.name != self.baseline) {
            let init_ratio = baseline.and_then(|base| ratio(row.init.as_secs_f64(), base.init.as_secs_f64()));
            if let Some(init_ratio) = init_ratio.filter(|r| *r > INIT_RATIO_TARGET) {
                misses.push(format!(
                    "{}: init {init_ratio:.2}× hello-world (target ≤ {INIT_RATIO_TARGET}×)",
                    row.name
                ));
            }
            if row.peak_rss_bytes > PEAK_RSS_TARGET_BYTES {
                misses.push(format!(
                    "{}: peak RSS {} (target ≤ {})",
                    row.name,
                    megabytes(row.peak_rss_bytes),
                    megabytes(PEAK_RSS_TARGET_BYTES)
                ));
            }
            if row.size_bytes > SIZE_TARGET_BYTES {
                misses.push(format!(
                    "{}: binary {} (target ≤ {})",
                    row.name,
                    megabytes(row.size_bytes),
                    megabytes(SIZE_TARGET_BYTES)
                ));
            }
        }
        misses
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn times(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |value| format!("{value:.2}×"))
}

/// A Markdown table, so a run can be pasted into docs/benchmarks.md as it is.
impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let baseline = self.baseline();
        writeln!(
            f,
            "| binary | runs | init (exec → first poll) | × hello | first invoke | × hello | peak RSS | × hello | size (stripped) | × hello |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|---|")?;
        for row in self.rows {
            let against =
                |value: fn(&Summary) -> f64| baseline.and_then(|base| ratio(value(row), value(base)));
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.name,
                row.runs,
                ms(row.init),
                times(against(|s| s.init.as_secs_f64())),
                ms(row.first_invoke),
                times(against(|s| s.first_invoke.as_secs_f64())),
                megabytes(row.peak_rss_bytes),
                times(against(|s| s.peak_rss_bytes as f64)),
                megabytes(row.size_bytes),
                times(against(|s| s.size_bytes as f64)),
            )?;
        }
        writeln!(f)?;
        writeln!(f, "first answers:")?;
        for row in self.rows {
            writeln!(f, "  {}: {}", row.name, row.answer)?;
        }
        writeln!(f)?;
        let misses = self.misses();
        if misses.is_empty() {
            write!(
                f,
                "targets (init ≤ {INIT_RATIO_TARGET}× hello-world, peak RSS ≤ {}, binary ≤ {}): all met",
                megabytes(PEAK_RSS_TARGET_BYTES),
                megabytes(SIZE_TARGET_BYTES)
            )
        } else {
            write!(f, "targets missed:")?;
            for miss in misses {
                write!(f, "\n  {miss}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(init_ms: u64, invoke_ms: u64, rss_mb: u64) -> Sample {
        Sample {
            init: Duration::from_millis(init_ms),
            first_invoke: Duration::from_millis(invoke_ms),
            peak_rss_bytes: rss_mb * 1_000_000,
        }
    }

    fn summary(name: &str, init_ms: u64, rss_mb: u64, size_mb: u64) -> Summary {
        Summary::new(
            name,
            &[sample(init_ms, 2, rss_mb)],
            size_mb * 1_000_000,
            "200".into(),
        )
    }

    #[test]
    fn medians_are_taken_per_figure() {
        let samples = [sample(30, 1, 9), sample(10, 3, 7), sample(20, 2, 8)];
        let summary = Summary::new("api", &samples, 5, "200".into());
        assert_eq!(summary.runs, 3);
        assert_eq!(summary.init, Duration::from_millis(20));
        assert_eq!(summary.first_invoke, Duration::from_millis(2));
        assert_eq!(summary.peak_rss_bytes, 8_000_000);
        assert_eq!(median_of_sorted(&[1, 2, 3, 4]), 2);
        assert_eq!(median_of_sorted(&[]), 0);
    }

    #[test]
    fn ratios_are_against_the_baseline_row() {
        let rows = [summary("hello", 10, 4, 1), summary("api", 15, 8, 6)];
        let table = Table {
            rows: &rows,
            baseline: "hello",
        }
        .to_string();
        assert!(
            table
                .contains("| api | 1 | 15.0 ms | 1.50× | 2.0 ms | 1.00× | 8.0 MB | 2.00× | 6.0 MB | 6.00× |"),
            "{table}"
        );
        assert!(table.contains("| hello | 1 | 10.0 ms | 1.00× |"), "{table}");
        assert!(table.ends_with("all met"), "{table}");
        assert_eq!(ratio(1.0, 0.0), None);
    }

    #[test]
    fn misses_are_named_per_target() {
        let rows = [summary("hello", 10, 4, 1), summary("email", 16, 21, 9)];
        let table = Table {
            rows: &rows,
            baseline: "hello",
        };
        assert_eq!(
            table.misses(),
            [
                "email: init 1.60× hello-world (target ≤ 1.5×)",
                "email: peak RSS 21.0 MB (target ≤ 20.0 MB)",
                "email: binary 9.0 MB (target ≤ 8.0 MB)",
            ]
        );
    }

    #[test]
    fn peak_rss_is_read_from_proc_status() {
        let status = "Name:\tapi\nVmPeak:\t  123456 kB\nVmHWM:\t    9876 kB\nVmRSS:\t    9000 kB\n";
        assert_eq!(peak_rss_bytes(status), Some(9876 * 1024));
        assert_eq!(peak_rss_bytes("Name:\tapi\n"), None);
        assert_eq!(peak_rss_bytes("VmHWM:\t12 MB\n"), None);
    }
}
