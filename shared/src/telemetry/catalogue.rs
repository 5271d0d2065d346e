//! Every metric Herald emits: its name, unit and the exact set of dimensions it is emitted with.
//!
//! CloudWatch identifies a metric by its namespace, its name and the whole set of its dimensions, so an
//! alarm or a dashboard widget must name exactly these dimensions: one more or one fewer is another metric,
//! which never gets a data point. `template.yaml`'s alarms and dashboard are checked against this module
//! (`tests/tests/template.rs`), and the emitters in [`super::record`] build their labels from it only.
//!
//! Dimensions are few and their values closed sets: a channel, an outcome, a reason code, a circuit state,
//! a function. Never a tenant, a recipient, an id or a Slack host (decision 21).

use crate::domain::notification::reason;
use crate::domain::{Channel, ProblemCode};

/// A metric's unit, as CloudWatch spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }

    pub(super) const fn to_metrics(self) -> metrics::Unit {
        match self {
            Self::Count => metrics::Unit::Count,
            Self::Milliseconds => metrics::Unit::Milliseconds,
        }
    }
}

/// A dimension and every value it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimension {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

/// A metric with the `N` dimensions it is always emitted with, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric<const N: usize> {
    pub name: &'static str,
    pub unit: Unit,
    pub dimensions: [Dimension; N],
    /// What one data point means, for the docs and the recorder's description.
    pub meaning: &'static str,
}

/// A metric of any number of dimensions, for listing them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: &'static str,
    pub unit: Unit,
    pub dimensions: &'static [Dimension],
    pub meaning: &'static str,
}

impl MetricSpec {
    pub fn dimension(&self, name: &str) -> Option<&Dimension> {
        self.dimensions.iter().find(|dimension| dimension.name == name)
    }
}

/// What became of one submitted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Recorded for the first time (202).
    Accepted,
    /// Its idempotency key was seen with the same request (200, nothing recorded twice).
    Replayed,
    /// Answered with a problem (4xx or 5xx); the `Reason` of `EventsRefused` says which.
    Refused,
}

impl EventOutcome {
    pub const ALL: [Self; 3] = [Self::Accepted, Self::Replayed, Self::Refused];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Replayed => "replayed",
            Self::Refused => "refused",
        }
    }
}

/// What one delivery attempt (or the reconciler, or ingest) made of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationOutcome {
    /// The provider accepted it.
    Sent,
    /// It ended `failed`: it never will be sent (at ingest or after an attempt).
    Failed,
    /// An attempt did not send it, and it waits for the next (`retrying`).
    Retried,
    /// Its schedule was used up, or the reconciler found it stalled: its message is in the DLQ.
    DeadLettered,
    /// Too late to be worth sending.
    Expired,
    /// At ingest: the recipient has no address on its channel.
    Skipped,
    /// At ingest: the user opted out of the channel for this event.
    Suppressed,
    /// At ingest: over the recipient's limit on the channel.
    RateLimited,
    /// After it was sent, the provider said the recipient's server accepted it.
    Delivered,
    /// After it was sent, the provider said the recipient's server refused it.
    Bounced,
    /// After it was sent, the provider said the recipient marked it as spam.
    Complained,
}

impl NotificationOutcome {
    pub const ALL: [Self; 11] = [
        Self::Sent,
        Self::Failed,
        Self::Retried,
        Self::DeadLettered,
        Self::Expired,
        Self::Skipped,
        Self::Suppressed,
        Self::RateLimited,
        Self::Delivered,
        Self::Bounced,
        Self::Complained,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
            Self::Expired => "expired",
            Self::Skipped => "skipped",
            Self::Suppressed => "suppressed",
            Self::RateLimited => "rate_limited",
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
        }
    }
}

/// The state a provider's circuit moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Opened after the threshold of failures in a row, or opened again by a failed probe.
    Open,
    /// A delivery took the probe of a circuit whose cool-down was over.
    HalfOpen,
    /// A success closed an open circuit.
    Closed,
}

impl BreakerState {
    pub const ALL: [Self; 3] = [Self::Open, Self::HalfOpen, Self::Closed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::Closed => "closed",
        }
    }
}

/// Which function a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Ingest,
    Api,
    Email,
    Sms,
    Slack,
    Sweeper,
    Feedback,
    Webhook,
    Push,
}

impl Function {
    pub const ALL: [Self; 9] = [
        Self::Ingest,
        Self::Api,
        Self::Email,
        Self::Sms,
        Self::Slack,
        Self::Sweeper,
        Self::Feedback,
        Self::Webhook,
        Self::Push,
    ];

    /// The function's binary, as `template.yaml` names it (`BuildProperties.Binary`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Api => "api",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Slack => "slack",
            Self::Sweeper => "sweeper",
            Self::Feedback => "feedback",
            Self::Webhook => "webhook",
            Self::Push => "push",
        }
    }
}

/// The `Reason` of a notification that was not sent when its code is none of [`reason::ALL`]: a new code
/// that was not added there still cannot make the dimension's values grow without bound.
pub const OTHER_REASON: &str = "other";

/// The names of every value of a closed set (`T::ALL`, each `T::as_str`), computed at compile time.
macro_rules! names_of {
    ($all:expr) => {{
        let all = $all;
        let mut names = [""; $all.len()];
        let mut index = 0;
        while index < all.len() {
            names[index] = all[index].as_str();
            index += 1;
        }
        names
    }};
}

const FAILURE_REASONS: [&str; reason::ALL.len() + 1] = {
    let mut values = [OTHER_REASON; reason::ALL.len() + 1];
    let mut index = 0;
    while index < reason::ALL.len() {
        values[index] = reason::ALL[index];
        index += 1;
    }
    values
};
const PROBLEM_CODES: [&str; ProblemCode::ALL.len()] = names_of!(ProblemCode::ALL);
const CHANNELS: [&str; Channel::ALL.len()] = names_of!(Channel::ALL);
const EVENT_OUTCOMES: [&str; EventOutcome::ALL.len()] = names_of!(EventOutcome::ALL);
const NOTIFICATION_OUTCOMES: [&str; NotificationOutcome::ALL.len()] = names_of!(NotificationOutcome::ALL);
const BREAKER_STATES: [&str; BreakerState::ALL.len()] = names_of!(BreakerState::ALL);
const FUNCTIONS: [&str; Function::ALL.len()] = names_of!(Function::ALL);

pub const CHANNEL: Dimension = Dimension {
    name: "Channel",
    values: &CHANNELS,
};
pub const EVENT_OUTCOME: Dimension = Dimension {
    name: "Outcome",
    values: &EVENT_OUTCOMES,
};
pub const REFUSAL_REASON: Dimension = Dimension {
    name: "Reason",
    values: &PROBLEM_CODES,
};
pub const NOTIFICATION_OUTCOME: Dimension = Dimension {
    name: "Outcome",
    values: &NOTIFICATION_OUTCOMES,
};
pub const FAILURE_REASON: Dimension = Dimension {
    name: "Reason",
    values: &FAILURE_REASONS,
};
pub const BREAKER_STATE: Dimension = Dimension {
    name: "State",
    values: &BREAKER_STATES,
};
pub const FUNCTION: Dimension = Dimension {
    name: "Function",
    values: &FUNCTIONS,
};

pub const EVENTS: Metric<1> = Metric {
    name: "Events",
    unit: Unit::Count,
    dimensions: [EVENT_OUTCOME],
    meaning: "Events submitted to POST /v1/events or in a batch, by what became of each; a request refused \
              before its events could be read counts one",
};
pub const EVENTS_REFUSED: Metric<1> = Metric {
    name: "EventsRefused",
    unit: Unit::Count,
    dimensions: [REFUSAL_REASON],
    meaning: "Events refused, by the problem code of the answer (the same events as Events{Outcome=refused})",
};
pub const NOTIFICATIONS: Metric<2> = Metric {
    name: "Notifications",
    unit: Unit::Count,
    dimensions: [CHANNEL, NOTIFICATION_OUTCOME],
    meaning: "What each delivery attempt (and ingest, and the reconciler) made of a notification: sent, \
              failed, retried, dead_lettered, expired, or skipped at ingest",
};
pub const NOTIFICATION_FAILURES: Metric<3> = Metric {
    name: "NotificationFailures",
    unit: Unit::Count,
    dimensions: [CHANNEL, NOTIFICATION_OUTCOME, FAILURE_REASON],
    meaning: "The Notifications that were not sent, by their reason code",
};
pub const PROVIDER_LATENCY: Metric<1> = Metric {
    name: "ProviderLatency",
    unit: Unit::Milliseconds,
    dimensions: [CHANNEL],
    meaning: "How long one call to the provider (SES, SNS, a Slack webhook) took, answered or not; waits \
              for a send permit excluded",
};
pub const END_TO_END_LATENCY: Metric<1> = Metric {
    name: "EndToEndLatency",
    unit: Unit::Milliseconds,
    dimensions: [CHANNEL],
    meaning: "From the event's arrival at ingest to the provider accepting its notification, retries \
              included",
};
pub const FANOUTS_RECOVERED: Metric<0> = Metric {
    name: "FanoutsRecovered",
    unit: Unit::Count,
    dimensions: [],
    meaning: "Events whose fan-out the sweeper finished: their accepting request did not (SQS failed, the \
              process died)",
};
pub const BREAKER_STATE_CHANGES: Metric<2> = Metric {
    name: "BreakerStateChanges",
    unit: Unit::Count,
    dimensions: [CHANNEL, BREAKER_STATE],
    meaning: "A provider's circuit moved to State (a failed probe counts as open again)",
};
pub const COLD_STARTS: Metric<1> = Metric {
    name: "ColdStarts",
    unit: Unit::Count,
    dimensions: [FUNCTION],
    meaning: "A new execution environment of the function started",
};

impl<const N: usize> Metric<N> {
    pub fn spec(&'static self) -> MetricSpec {
        MetricSpec {
            name: self.name,
            unit: self.unit,
            dimensions: &self.dimensions,
            meaning: self.meaning,
        }
    }
}

/// Every metric Herald emits.
pub fn all() -> [MetricSpec; 9] {
    [
        EVENTS.spec(),
        EVENTS_REFUSED.spec(),
        NOTIFICATIONS.spec(),
        NOTIFICATION_FAILURES.spec(),
        PROVIDER_LATENCY.spec(),
        END_TO_END_LATENCY.spec(),
        FANOUTS_RECOVERED.spec(),
        BREAKER_STATE_CHANGES.spec(),
        COLD_STARTS.spec(),
    ]
}

/// The metric named `name`.
pub fn find(name: &str) -> Option<MetricSpec> {
    all().into_iter().find(|spec| spec.name == name)
}

/// How an EMF document (one line of a function's output) departs from the catalogue, if it does: another
/// namespace, a metric the catalogue does not name, dimensions other than the metric's, another unit.
pub fn emf_mismatch(document: &serde_json::Value, namespace: &str) -> Option<String> {
    let directive = &document["_aws"]["CloudWatchMetrics"][0];
    if directive["Namespace"] != namespace {
        return Some(format!("not in namespace {namespace}: {document}"));
    }
    let sets = directive["Dimensions"].as_array()?;
    let [set] = sets.as_slice() else {
        return Some(format!("not one dimension set: {document}"));
    };
    let dimensions: Vec<&str> = set.as_array()?.iter().filter_map(|name| name.as_str()).collect();
    for metric in directive["Metrics"].as_array()? {
        let name = metric["Name"].as_str().unwrap_or_default();
        let Some(spec) = find(name) else {
            return Some(format!("{name} is not in the catalogue: {document}"));
        };
        let expected: Vec<&str> = spec.dimensions.iter().map(|dimension| dimension.name).collect();
        if dimensions != expected {
            return Some(format!(
                "{name} has dimensions {dimensions:?}, not {expected:?}: {document}"
            ));
        }
        if metric["Unit"] != spec.unit.as_str() {
            return Some(format!("{name} is not in {}: {document}", spec.unit.as_str()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_no_metric_repeats_a_dimension() {
        let names: BTreeSet<_> = all().iter().map(|spec| spec.name).collect();
        assert_eq!(names.len(), all().len());
        for spec in all() {
            let dimensions: BTreeSet<_> = spec.dimensions.iter().map(|d| d.name).collect();
            assert_eq!(dimensions.len(), spec.dimensions.len(), "{}", spec.name);
            assert!(spec.dimensions.len() <= 3, "{}: dimensions are few", spec.name);
            for dimension in spec.dimensions {
                assert!(!dimension.values.is_empty(), "{}.{}", spec.name, dimension.name);
                // Each value is a metric of its own in CloudWatch, paid for by the month: the reasons (20 and
                // `other`) are the most any dimension has.
                assert!(
                    dimension.values.len() <= 24,
                    "{}.{}: a closed, small set of values",
                    spec.name,
                    dimension.name
                );
            }
        }
    }

    #[test]
    fn every_reason_and_problem_code_is_a_value_of_its_dimension() {
        assert!(FAILURE_REASON.values.contains(&reason::STALLED));
        assert!(FAILURE_REASON.values.contains(&OTHER_REASON));
        assert!(REFUSAL_REASON.values.contains(&"validation_failed"));
        assert_eq!(REFUSAL_REASON.values.len(), ProblemCode::ALL.len());
    }

    #[test]
    fn an_emf_document_with_another_dimension_set_or_namespace_is_a_mismatch() {
        let document = |dimensions: serde_json::Value| {
            serde_json::json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{
                "Namespace": "Herald/x",
                "Dimensions": [dimensions],
                "Metrics": [{"Name": "Notifications", "Unit": "Count"}],
            }]}})
        };
        let right = document(serde_json::json!(["Channel", "Outcome"]));
        assert_eq!(emf_mismatch(&right, "Herald/x"), None);
        assert!(emf_mismatch(&right, "Herald/y").is_some());
        let tenant = document(serde_json::json!(["Channel", "Outcome", "Tenant"]));
        assert!(emf_mismatch(&tenant, "Herald/x").is_some());
    }
}
