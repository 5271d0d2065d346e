//! The emitters the shared code calls: each builds its labels from [`super::catalogue`] only, so what is
//! emitted is what the catalogue, the docs and the template's alarms say.
//!
//! Emitting is cheap and never fails: with no recorder installed (unit tests, the CLI) it does nothing.

use super::catalogue::{
    BREAKER_STATE_CHANGES, BreakerState, COLD_STARTS, END_TO_END_LATENCY, EVENTS, EVENTS_REFUSED,
    EventOutcome, FAILURE_REASON, FANOUTS_RECOVERED, Function, Metric, NOTIFICATION_FAILURES, NOTIFICATIONS,
    NotificationOutcome, OTHER_REASON, PROVIDER_LATENCY,
};
use crate::domain::{Channel, ProblemCode};
use metrics::Label;
use std::time::{Duration, Instant};

/// One event accepted or replayed.
pub fn event(outcome: EventOutcome) {
    count(&EVENTS, [outcome.as_str()]);
}

/// One event refused with `code`.
pub fn event_refused(code: ProblemCode) {
    count(&EVENTS, [EventOutcome::Refused.as_str()]);
    count(&EVENTS_REFUSED, [code.as_str()]);
}

/// What became of one notification; `reason` is its reason code when it was not sent.
pub fn notification(channel: Channel, outcome: NotificationOutcome, reason: Option<&str>) {
    count(&NOTIFICATIONS, [channel.as_str(), outcome.as_str()]);
    if matches!(
        outcome,
        NotificationOutcome::Sent | NotificationOutcome::Delivered
    ) {
        return;
    }
    let reason = reason
        .filter(|reason| FAILURE_REASON.values.contains(reason))
        .unwrap_or(OTHER_REASON);
    count(
        &NOTIFICATION_FAILURES,
        [channel.as_str(), outcome.as_str(), reason],
    );
}

/// Runs `call`, the request to `channel`'s provider, and records how long it took, answered or not.
pub async fn provider_call<T>(channel: Channel, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = call.await;
    observe(&PROVIDER_LATENCY, [channel.as_str()], started.elapsed());
    answer
}

/// From an event's arrival to its notification's acceptance by the provider.
pub fn end_to_end_latency(channel: Channel, took: Duration) {
    observe(&END_TO_END_LATENCY, [channel.as_str()], took);
}

/// One fan-out finished by the sweeper.
pub fn fanout_recovered() {
    count(&FANOUTS_RECOVERED, []);
}

/// A circuit of `channel` moved to `state`.
pub fn breaker_state_change(channel: Channel, state: BreakerState) {
    count(&BREAKER_STATE_CHANGES, [channel.as_str(), state.as_str()]);
}

/// This process is a new execution environment of `function`.
pub fn cold_start(function: Function) {
    count(&COLD_STARTS, [function.as_str()]);
}

fn labels<const N: usize>(metric: &Metric<N>, values: [&str; N]) -> Vec<Label> {
    metric
        .dimensions
        .iter()
        .zip(values)
        .map(|(dimension, value)| Label::new(dimension.name, value.to_owned()))
        .collect()
}

fn count<const N: usize>(metric: &Metric<N>, values: [&str; N]) {
    metrics::counter!(metric.name, labels(metric, values)).increment(1);
}

fn observe<const N: usize>(metric: &Metric<N>, values: [&str; N], took: Duration) {
    metrics::histogram!(metric.name, labels(metric, values)).record(took.as_secs_f64() * 1000.0);
}

#[cfg(test)]
pub(crate) mod testing {
    //! Asserting what the shared code emitted, through a recorder that keeps it.

    use super::super::catalogue;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use metrics_util::{CompositeKey, MetricKind};

    /// Keeps every metric emitted on this thread while it lives (a `#[tokio::test]` runs on one thread).
    pub struct Recorded {
        snapshotter: Snapshotter,
        /// A snapshot drains the recorder: what earlier ones took, added up.
        taken: std::sync::Mutex<Vec<Emitted>>,
        _guard: metrics::LocalRecorderGuard<'static>,
    }

    impl std::fmt::Debug for Recorded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Recorded")
        }
    }

    /// Starts recording on this thread.
    pub fn record() -> Recorded {
        // Leaked: a test's recorder lives as long as the test's thread may emit into it.
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        Recorded {
            snapshotter: recorder.snapshotter(),
            taken: std::sync::Mutex::default(),
            _guard: metrics::set_default_local_recorder(recorder),
        }
    }

    /// One metric as emitted: its name, its labels in order, and its total (a counter's count, or how
    /// many values a histogram got).
    #[derive(Debug, Clone, PartialEq)]
    pub struct Emitted {
        pub name: String,
        pub labels: Vec<(String, String)>,
        pub total: u64,
    }

    impl Recorded {
        /// Everything emitted so far, each checked against the catalogue: its name, its exact
        /// dimensions in order, every value one its dimension takes, and its kind matching its unit.
        pub fn emitted(&self) -> Vec<Emitted> {
            let mut taken = self
                .taken
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
                let emitted = checked(&key, &value);
                match taken
                    .iter_mut()
                    .find(|known| known.name == emitted.name && known.labels == emitted.labels)
                {
                    Some(known) => known.total += emitted.total,
                    None => taken.push(emitted),
                }
            }
            taken.clone()
        }

        /// The total of the metric `name` with exactly these labels (0 when never emitted).
        pub fn total(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
            self.emitted()
                .into_iter()
                .filter(|emitted| {
                    emitted.name == name
                        && emitted.labels.len() == labels.len()
                        && emitted
                            .labels
                            .iter()
                            .zip(labels)
                            .all(|((k, v), (ek, ev))| k == ek && v == ev)
                })
                .map(|emitted| emitted.total)
                .sum()
        }
    }

    fn checked(key: &CompositeKey, value: &DebugValue) -> Emitted {
        let name = key.key().name().to_owned();
        let spec = catalogue::find(&name).unwrap_or_else(|| panic!("{name} is not in the catalogue"));
        let labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect();
        let dimensions: Vec<&str> = spec.dimensions.iter().map(|d| d.name).collect();
        let label_names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(label_names, dimensions, "{name}: its dimensions");
        for ((label, value), dimension) in labels.iter().zip(spec.dimensions) {
            assert!(
                dimension.values.contains(&value.as_str()),
                "{name}: {label}={value} is none of {:?}",
                dimension.values
            );
        }
        let total = match (key.kind(), value, spec.unit) {
            (MetricKind::Counter, DebugValue::Counter(count), catalogue::Unit::Count) => *count,
            (MetricKind::Histogram, DebugValue::Histogram(values), catalogue::Unit::Milliseconds) => {
                values.len() as u64
            }
            other => panic!("{name}: {other:?} does not match its unit"),
        };
        Emitted { name, labels, total }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::record;
    use super::*;

    #[test]
    fn a_notification_not_sent_is_counted_with_its_reason_and_an_unknown_reason_is_other() {
        let recorded = record();
        notification(Channel::Sms, NotificationOutcome::Sent, None);
        notification(Channel::Sms, NotificationOutcome::Retried, Some("provider_error"));
        notification(
            Channel::Sms,
            NotificationOutcome::Failed,
            Some("a_code_nobody_listed"),
        );
        let sms = |outcome| [("Channel", "sms"), ("Outcome", outcome)];
        assert_eq!(recorded.total("Notifications", &sms("sent")), 1);
        assert_eq!(recorded.total("Notifications", &sms("retried")), 1);
        let failure = |outcome, reason| [("Channel", "sms"), ("Outcome", outcome), ("Reason", reason)];
        assert_eq!(
            recorded.total("NotificationFailures", &failure("retried", "provider_error")),
            1
        );
        assert_eq!(
            recorded.total("NotificationFailures", &failure("failed", "other")),
            1
        );
        assert_eq!(
            recorded
                .emitted()
                .iter()
                .filter(|e| e.name == "NotificationFailures")
                .count(),
            2,
            "a sent notification has no failure"
        );
    }

    #[test]
    fn a_refused_event_counts_as_refused_and_by_its_code() {
        let recorded = record();
        event(EventOutcome::Accepted);
        event_refused(ProblemCode::ValidationFailed);
        assert_eq!(recorded.total("Events", &[("Outcome", "accepted")]), 1);
        assert_eq!(recorded.total("Events", &[("Outcome", "refused")]), 1);
        assert_eq!(
            recorded.total("EventsRefused", &[("Reason", "validation_failed")]),
            1
        );
    }

    #[test]
    fn every_emitter_emits_what_the_catalogue_says() {
        let recorded = record();
        futures::executor::block_on(provider_call(Channel::Email, async {}));
        end_to_end_latency(Channel::Email, Duration::from_secs(2));
        fanout_recovered();
        breaker_state_change(Channel::Slack, BreakerState::HalfOpen);
        cold_start(Function::Sweeper);
        // `emitted` checks each against the catalogue.
        let names: Vec<String> = recorded.emitted().into_iter().map(|e| e.name).collect();
        assert_eq!(names.len(), 5, "{names:?}");
    }
}
