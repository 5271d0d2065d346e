//! When a failed delivery is tried again, as data: one schedule of waits, read once from configuration.
//!
//! A step is used up by a failure the provider is to blame for (a 5xx, no connection, no answer), never
//! by throttling or by waiting out an open circuit: a provider that asks Herald to slow down has not
//! failed. Once every step is used, the notification is dead-lettered. Whatever is left of the
//! schedule, a notification older than its event type's maximum age ends `expired` instead of arriving
//! late.

use std::fmt;
use std::time::Duration;

/// The longest single wait: SQS cannot keep a received message invisible for longer than 12 hours.
pub const MAX_STEP: Duration = Duration::from_secs(12 * 3600);
/// How far a wait is spread either way, so a burst of failures does not come back as a burst.
const JITTER: f64 = 0.2;

/// The waits after the first, second, … failure of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    steps: Vec<Duration>,
}

impl Default for RetrySchedule {
    /// 10 s, 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h: almost eight hours of provider trouble before a
    /// notification is dead-lettered, with the first retries soon enough for a blip.
    fn default() -> Self {
        let seconds = [10, 60, 300, 900, 1800, 3600, 7200, 14_400];
        Self {
            steps: seconds.map(Duration::from_secs).to_vec(),
        }
    }
}

impl RetrySchedule {
    /// Reads a comma-separated list of waits, each a whole number with a unit: `500ms`, `10s`, `5m`, `2h`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let steps = text
            .split(',')
            .map(str::trim)
            .map(parse_step)
            .collect::<Result<Vec<_>, _>>()?;
        if steps.is_empty() {
            return Err("needs at least one wait".into());
        }
        Ok(Self { steps })
    }

    /// How many failures are retried.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The wait after failure number `failures` (1 for the first), spread by `unit` in `[0, 1)`; `None`
    /// once the schedule is used up.
    pub fn wait_after(&self, failures: u32, unit: f64) -> Option<Duration> {
        let index = usize::try_from(failures.checked_sub(1)?).ok()?;
        let step = *self.steps.get(index)?;
        Some(spread(step, unit))
    }

    /// The wait for a retry that uses no step (throttling without a `Retry-After`): the step the
    /// notification is on, so a throttled provider is not called again sooner than a failed one would be.
    pub fn wait_without_step(&self, failures: u32, unit: f64) -> Duration {
        let index = usize::try_from(failures)
            .unwrap_or(usize::MAX)
            .min(self.steps.len().saturating_sub(1));
        self.steps
            .get(index)
            .map_or(Duration::ZERO, |step| spread(*step, unit))
    }

    /// Every wait back to back: how long a notification can be retried for at most.
    pub fn total(&self) -> Duration {
        self.steps.iter().sum()
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps: Vec<String> = self.steps.iter().map(|step| format_step(*step)).collect();
        f.write_str(&steps.join(","))
    }
}

fn spread(step: Duration, unit: f64) -> Duration {
    step.mul_f64(1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0))
        .min(MAX_STEP)
}

fn parse_step(text: &str) -> Result<Duration, String> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a wait like 10s, 5m or 1h"))?;
    let step = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(format!("{text:?} needs a unit: ms, s, m or h")),
    };
    if step.is_zero() {
        return Err(format!("{text:?} is no wait at all"));
    }
    if step > MAX_STEP {
        return Err(format!(
            "{text:?} is longer than 12h, the longest SQS keeps a message hidden"
        ));
    }
    Ok(step)
}

fn format_step(step: Duration) -> String {
    let millis = step.as_millis();
    match millis {
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_outlasts_an_hour_long_outage() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.to_string(), "10s,1m,5m,15m,30m,1h,2h,4h");
        assert!(schedule.total() > Duration::from_secs(7 * 3600 + 45 * 60));
        assert_eq!(schedule.wait_after(1, 0.5), Some(Duration::from_secs(10)));
        assert_eq!(schedule.wait_after(8, 0.5), Some(Duration::from_secs(4 * 3600)));
        assert_eq!(schedule.wait_after(9, 0.5), None, "used up");
        assert_eq!(schedule.wait_after(0, 0.5), None, "no failure, no wait");
    }

    #[test]
    fn waits_are_spread_a_fifth_either_way() {
        let schedule = RetrySchedule::parse("100s").unwrap();
        assert_eq!(schedule.wait_after(1, 0.0), Some(Duration::from_secs(80)));
        assert_eq!(schedule.wait_after(1, 1.0), Some(Duration::from_secs(120)));
    }

    #[test]
    fn a_wait_that_uses_no_step_is_the_current_one() {
        let schedule = RetrySchedule::parse("1s,1m").unwrap();
        assert_eq!(schedule.wait_without_step(0, 0.5), Duration::from_secs(1));
        assert_eq!(schedule.wait_without_step(1, 0.5), Duration::from_secs(60));
        assert_eq!(
            schedule.wait_without_step(7, 0.5),
            Duration::from_secs(60),
            "the last, not none"
        );
    }

    #[test]
    fn what_sqs_cannot_do_is_refused() {
        for bad in ["", "10", "10x", "0s", "13h", "1s,,2s", "-1s", "1.5s"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            RetrySchedule::parse(" 250ms , 12h ").unwrap().to_string(),
            "250ms,12h"
        );
    }

    proptest! {
        #[test]
        fn a_schedule_reads_back_as_written(steps in prop::collection::vec(1u64..=43_200_000, 1..12)) {
            let text = steps.iter().map(|ms| format!("{ms}ms")).collect::<Vec<_>>().join(",");
            let schedule = RetrySchedule::parse(&text).unwrap();
            prop_assert_eq!(RetrySchedule::parse(&schedule.to_string()).unwrap(), schedule.clone());
            prop_assert_eq!(schedule.len(), steps.len());
        }

        #[test]
        fn no_wait_is_ever_past_the_sqs_limit(step in 1u64..=43_200_000, failures in 0u32..20, unit in 0.0f64..1.0) {
            let schedule = RetrySchedule::parse(&format!("{step}ms")).unwrap();
            prop_assert!(schedule.wait_without_step(failures, unit) <= MAX_STEP);
            if let Some(wait) = schedule.wait_after(failures, unit) {
                let least = Duration::from_millis(step).mul_f64(0.8).saturating_sub(Duration::from_millis(1));
                prop_assert!(wait <= MAX_STEP && wait >= least);
            }
        }
    }
}
