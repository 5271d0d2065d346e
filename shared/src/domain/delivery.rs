//! Delivery outcomes: what a send can end in, and what Herald does about each.

use super::{NotificationId, TenantId, Timestamp};
use serde_json::{Value, json};
use std::fmt;
use std::time::Duration;

/// One send as the delivery loop hands it to a channel: the address and the rendered message, and whose
/// notification it is, for a sender that signs each message (`webhook-id`) or reads what the tenant (or the
/// user, a device) registered.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub tenant: &'a TenantId,
    pub notification_id: &'a NotificationId,
    /// The recipient's user id, when the event named one: a push's device is the user's.
    pub user_id: Option<&'a str>,
    pub to: &'a str,
    pub message: &'a RenderedMessage,
}

/// The rendered parts of one notification, ready for its channel's sender.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderedMessage {
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Slack Block Kit blocks, every string field rendered.
    pub blocks: Option<Value>,
    /// A push's title.
    pub title: Option<String>,
    /// A push's data, every value a rendered string.
    pub data: Option<Value>,
}

/// What a provider said when it accepted a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReceipt {
    pub provider_message_id: Option<String>,
}

/// The five kinds of send failure, and so the five ways Herald reacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// This recipient cannot be reached this way (bad address, Slack 404/410, SES MessageRejected): the
    /// notification fails and the message is acknowledged; retrying cannot help.
    Recipient,
    /// Herald's own setup is wrong (access denied, sending paused, unverified sender): retried with
    /// backoff and finally dead-lettered, so a redrive works once a person has fixed it.
    Configuration,
    /// The provider is broken right now (5xx, no connection): retried on the schedule, using up a step,
    /// and counted against the provider's circuit.
    Transient,
    /// The provider asks for fewer calls (SES `TooManyRequests`, SNS `Throttling`, HTTP 429): retried
    /// after its `Retry-After` (or the current step of the schedule) without using up a step; it is up.
    Throttled,
    /// The provider may have accepted the message without saying so: the request went out and its answer
    /// never came (a timeout after sending, a connection lost while reading the answer). Retried, but only
    /// after [`AMBIGUOUS_RETRY_DELAY`], and the attempt is recorded `ambiguous`: a retry may send it twice,
    /// and the record says so.
    Ambiguous,
}

/// How long after an ambiguous attempt the next one waits at least: long enough for a provider that
/// was only slow to have answered everyone, and for a person reading the attempts to see why.
pub const AMBIGUOUS_RETRY_DELAY: Duration = Duration::from_secs(5 * 60);

/// How early a `retrying` notification may be claimed before its next attempt is due. Its own message
/// comes back at about that time (SQS's visibility is not exact); another copy of it (SQS delivers at
/// least once; a redrive, a second fan-out) arriving sooner waits, so it cannot cut an ambiguous
/// attempt's wait short and send twice at once.
pub const EARLY_CLAIM_TOLERANCE: Duration = Duration::from_secs(30);

impl FailureKind {
    pub const fn retryable(self) -> bool {
        !matches!(self, FailureKind::Recipient)
    }
}

/// The code of a send Herald held back for its send rate.
const HELD_BACK: &str = "send_rate";

/// A classified send failure: `code` is the provider's error code (or HTTP status), `detail` its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct SendError {
    pub kind: FailureKind,
    pub code: String,
    pub detail: String,
    /// The provider's `Retry-After`, when it gave one.
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn new(kind: FailureKind, code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// Not sent, held back by Herald's own send rate until `wait` has passed: throttled, without the
    /// provider having been asked.
    pub fn held_back(detail: impl Into<String>, wait: Duration) -> Self {
        Self::new(FailureKind::Throttled, HELD_BACK, detail).retry_after(Some(wait))
    }

    /// Whether the provider was asked at all: a send held back by Herald tells nothing about it.
    pub fn reached_provider(&self) -> bool {
        self.code != HELD_BACK
    }

    #[must_use]
    pub fn retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    Retrying,
    /// No answer from the provider after the request went out: it may have been sent. Retried later.
    Ambiguous,
    Failed,
    DeadLettered,
    /// Too late to send: past its event type's maximum age.
    Expired,
    /// Not sent: the address went on the tenant's suppression list after the event was accepted.
    Suppressed,
}

/// Why a channel will not send to an address at all, decided before any provider call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationRefusal {
    /// Outside what the channel may send to (an SMS country not allowed): the notification fails.
    NotAllowed(String),
    /// On the tenant's suppression list: the notification is `suppressed`, as ingest would have made it.
    Suppressed(String),
}

impl AttemptOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retrying => "retrying",
            Self::Ambiguous => "ambiguous",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
            Self::Expired => "expired",
            Self::Suppressed => "suppressed",
        }
    }
}

impl std::str::FromStr for AttemptOutcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            Self::Sent,
            Self::Retrying,
            Self::Ambiguous,
            Self::Failed,
            Self::DeadLettered,
            Self::Expired,
            Self::Suppressed,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == text)
        .ok_or_else(|| format!("attempt outcome {text}"))
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The record of one attempt, kept as its own item beside the notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first claim of the notification, then 2, 3, …
    pub number: u32,
    pub at: Timestamp,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub provider_message_id: Option<String>,
}

impl Attempt {
    pub fn to_json(&self) -> Value {
        json!({
            "number": self.number,
            "at": self.at.to_rfc3339(),
            "outcome": self.outcome.as_str(),
            "error": self.error,
            "duration_ms": self.duration_ms,
            "provider_message_id": self.provider_message_id,
        })
    }
}

/// The first retry waits about this long; each later one twice as long, up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// How long to keep a message invisible before its next try: exponential in the number of receives so
/// far, with jitter (`unit` in `[0, 1)`, drawn by the caller) so a burst of failures does not come back
/// as a burst; never shorter than the provider's `Retry-After`.
pub fn backoff(receive_count: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(16);
    let ceiling = BASE_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    let jittered = ceiling.mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0);
    retry_after.map_or(jittered, |after| jittered.max(after.min(MAX_BACKOFF)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attempt_outcome_reads_back_as_written() {
        for outcome in [
            AttemptOutcome::Sent,
            AttemptOutcome::Retrying,
            AttemptOutcome::Ambiguous,
            AttemptOutcome::Failed,
            AttemptOutcome::DeadLettered,
        ] {
            assert_eq!(outcome.as_str().parse::<AttemptOutcome>(), Ok(outcome));
        }
        assert!("maybe".parse::<AttemptOutcome>().is_err());
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        assert_eq!(backoff(1, 0.0, None), Duration::from_secs(1));
        assert_eq!(backoff(1, 1.0, None), Duration::from_secs(2));
        assert_eq!(backoff(3, 1.0, None), Duration::from_secs(8));
        assert_eq!(backoff(30, 1.0, None), MAX_BACKOFF);
        assert!(backoff(4, 0.5, None) > backoff(3, 0.5, None));
    }

    #[test]
    fn backoff_honours_retry_after() {
        assert_eq!(
            backoff(1, 0.0, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(backoff(1, 0.0, Some(Duration::from_secs(86_400))), MAX_BACKOFF);
    }

    #[test]
    fn only_recipient_failures_are_final() {
        assert!(!FailureKind::Recipient.retryable());
        assert!(FailureKind::Configuration.retryable() && FailureKind::Transient.retryable());
    }
}
