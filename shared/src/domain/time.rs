//! Timestamps as milliseconds since the Unix epoch, written as RFC 3339 in JSON.

use aws_smithy_types::date_time::{DateTime, Format};
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Self(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch: the unit DynamoDB's TTL expects.
    pub const fn epoch_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    #[must_use]
    pub const fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    #[must_use]
    pub fn plus(self, duration: std::time::Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// An RFC 3339 date-time (`2026-12-01T09:30:00Z`, `…T09:30:00.250+01:00`), to the millisecond.
    pub fn parse_rfc3339(raw: &str) -> Option<Self> {
        let at = DateTime::from_str(raw, Format::DateTimeWithOffset).ok()?;
        at.to_millis().ok().map(Self)
    }

    /// RFC 3339 in UTC, e.g. `2026-11-22T04:05:55.123Z`.
    /// Always three digits of fraction, so the strings sort as the times do (smithy's own formatting drops
    /// trailing zeros: `.97Z` would sort after `.971Z`).
    pub fn to_rfc3339(self) -> String {
        let seconds = DateTime::from_secs(self.0.div_euclid(1000))
            .fmt(Format::DateTime)
            .unwrap_or_else(|_| self.0.to_string());
        let whole = seconds.strip_suffix('Z').unwrap_or(&seconds);
        format!("{whole}.{:03}Z", self.0.rem_euclid(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_offsets_and_refuses_other_dates() {
        let at = Timestamp::parse_rfc3339("2026-11-18T11:06:40.123Z");
        assert_eq!(at, Some(Timestamp::from_millis(1_795_000_000_123)));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-18T12:06:40.123+01:00"), at);
        assert_eq!(Timestamp::parse_rfc3339("2026-11-18"), None);
        assert_eq!(Timestamp::parse_rfc3339("1795000000"), None);
    }

    #[test]
    fn formats_every_time_with_three_digits_of_fraction_so_strings_sort_as_times() {
        assert_eq!(
            Timestamp::from_millis(1_795_000_000_970).to_rfc3339(),
            "2026-11-18T11:06:40.970Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_795_000_000_000).to_rfc3339(),
            "2026-11-18T11:06:40.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(-1).to_rfc3339(),
            "1969-12-31T23:59:59.999Z"
        );
        let times = [1_795_000_000_970, 1_795_000_000_971, 1_795_000_001_000];
        let formatted: Vec<String> = times
            .map(|millis| Timestamp::from_millis(millis).to_rfc3339())
            .to_vec();
        assert!(
            formatted.windows(2).all(|pair| pair[0] < pair[1]),
            "{formatted:?}"
        );
    }

    #[test]
    fn formats_as_rfc3339_utc_with_millis() {
        assert_eq!(
            Timestamp::from_millis(1_795_000_000_123).to_rfc3339(),
            "2026-11-18T11:06:40.123Z"
        );
        assert_eq!(Timestamp::from_millis(1_500).plus_seconds(2).millis(), 3_500);
        assert_eq!(Timestamp::from_millis(1_999).epoch_seconds(), 1);
        assert_eq!(
            Timestamp::from_millis(1)
                .plus(std::time::Duration::from_millis(2))
                .millis(),
            3
        );
        assert_eq!(
            Timestamp::from_millis(1).plus(std::time::Duration::MAX).millis(),
            i64::MAX
        );
    }
}
