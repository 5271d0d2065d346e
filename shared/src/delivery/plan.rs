//! What happens to a notification after an attempt that did not send it: pure decisions over the retry
//! schedule, the notification's age and the kind of failure, so each rule is tested on its own.

use crate::domain::Timestamp;
use crate::domain::delivery::{AMBIGUOUS_RETRY_DELAY, FailureKind, SendError};
use crate::domain::notification::{Notification, NotificationStatus, reason};
use crate::domain::retry::{MAX_STEP, RetrySchedule};
use crate::ports::Settlement;
use std::time::Duration;

/// What to do next, and what to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// It ends here: `failed`, `expired`.
    Final(Settlement),
    /// Try again after `wait`: a new message, delayed, carries it there.
    Retry { settlement: Settlement, wait: Duration },
    /// The schedule is used up: its message goes to the DLQ, where a person can redrive it.
    DeadLetter(Settlement),
}

/// The latest a notification may still be sent: its own `deliver_by`, or `default_max_age` after it was
/// accepted.
pub fn deadline(notification: &Notification, default_max_age: Duration) -> Timestamp {
    notification
        .deliver_by
        .unwrap_or_else(|| notification.created_at.plus(default_max_age))
}

/// `expired`: too late to be worth sending.
pub fn expired(detail: &str) -> Settlement {
    final_settlement(NotificationStatus::Expired, reason::MAX_AGE_EXCEEDED, detail)
}

pub fn final_settlement(status: NotificationStatus, code: &str, detail: &str) -> Settlement {
    Settlement {
        status,
        reason: Some(code.to_owned()),
        detail: Some(detail.to_owned()),
        provider_message_id: None,
        next_attempt_at: None,
        failures: 0,
    }
}

/// The decisions' inputs that do not change from one attempt to the next.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub schedule: &'a RetrySchedule,
    pub deadline: Timestamp,
    pub now: Timestamp,
    /// In `[0, 1)`, for the schedule's jitter.
    pub unit: f64,
    /// Whether the send was the probe of an open circuit: its failure is the provider's state, already
    /// known, and uses up no step of the notification's schedule.
    pub probing: bool,
}

impl Policy<'_> {
    /// After a send that failed with `error`, on the notification's `failures`-th failure so far.
    pub fn after_send_failure(&self, error: &SendError, failures: u32) -> Next {
        match error.kind {
            FailureKind::Recipient => Next::Final(final_settlement(
                NotificationStatus::Failed,
                reason::of_refusal(&error.code),
                &error.to_string(),
            )),
            FailureKind::Throttled => {
                let wait = error
                    .retry_after
                    .unwrap_or_else(|| self.schedule.wait_without_step(failures, self.unit));
                self.retry(reason::THROTTLED, &error.to_string(), wait, failures)
            }
            FailureKind::Ambiguous => {
                let failures = failures.saturating_add(1);
                let Some(wait) = self.schedule.wait_after(failures, self.unit) else {
                    return dead_letter(&error.to_string(), failures);
                };
                let wait = wait.max(AMBIGUOUS_RETRY_DELAY);
                let detail = format!(
                    "{error} (the request went out and no answer came: the provider may have sent it; the next \
                     attempt waits {} s, and may send it twice)",
                    wait.as_secs()
                );
                self.retry(reason::PROVIDER_TIMEOUT, &detail, wait, failures)
            }
            FailureKind::Transient if self.probing => {
                let wait = self.schedule.wait_without_step(failures, self.unit);
                let detail = format!("{error} (a probe of the provider's open circuit; no retry used up)");
                self.retry(reason::PROVIDER_ERROR, &detail, wait, failures)
            }
            FailureKind::Configuration | FailureKind::Transient => {
                let code = if error.kind == FailureKind::Configuration {
                    reason::CONFIGURATION_ERROR
                } else {
                    reason::PROVIDER_ERROR
                };
                let failures = failures.saturating_add(1);
                match self.schedule.wait_after(failures, self.unit) {
                    Some(wait) => {
                        let wait = error.retry_after.map_or(wait, |after| wait.max(after));
                        self.retry(code, &error.to_string(), wait, failures)
                    }
                    None => dead_letter(&error.to_string(), failures),
                }
            }
        }
    }

    /// After Herald itself could not get what the notification renders from: tried again later, using up
    /// no step (the provider was never called).
    pub fn after_own_failure(&self, detail: &str, failures: u32) -> Next {
        let wait = self.schedule.wait_without_step(failures, self.unit);
        self.retry(reason::PROVIDER_ERROR, detail, wait, failures)
    }

    /// `retrying` after `wait`, unless that is past the deadline: then `expired` now, since waiting cannot
    /// make it arrive in time.
    fn retry(&self, code: &str, detail: &str, wait: Duration, failures: u32) -> Next {
        let wait = wait.min(MAX_STEP);
        let next = self.now.plus(wait);
        if next > self.deadline {
            return Next::Final(expired(&format!(
                "{detail} (its next attempt would come after {}, the latest it may be sent)",
                self.deadline.to_rfc3339()
            )));
        }
        Next::Retry {
            settlement: Settlement {
                status: NotificationStatus::Retrying,
                reason: Some(code.to_owned()),
                detail: Some(detail.to_owned()),
                provider_message_id: None,
                next_attempt_at: Some(next),
                failures,
            },
            wait,
        }
    }
}

fn dead_letter(detail: &str, failures: u32) -> Next {
    let detail = format!(
        "{detail} (gave up after {failures} failed attempts, the whole retry schedule; the message is in the DLQ)"
    );
    // Back to no failures: a redrive, once a person has fixed the cause, gets the whole schedule again.
    Next::DeadLetter(final_settlement(
        NotificationStatus::DeadLettered,
        reason::RETRIES_EXHAUSTED,
        &detail,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::{Channel, TenantId};
    use crate::test_fixtures::acceptance;

    const NOW: i64 = 1_800_000_000_000;

    fn policy(schedule: &RetrySchedule, deadline_in: Duration) -> Policy<'_> {
        let now = Timestamp::from_millis(NOW);
        Policy {
            schedule,
            deadline: now.plus(deadline_in),
            now,
            unit: 0.5,
            probing: false,
        }
    }

    fn error(kind: FailureKind) -> SendError {
        SendError::new(kind, "Code", "words")
    }

    fn retry_of(next: Next) -> (Settlement, Duration) {
        match next {
            Next::Retry { settlement, wait } => (settlement, wait),
            other => panic!("not a retry: {other:?}"),
        }
    }

    #[test]
    fn a_transient_failure_uses_up_the_next_step() {
        let schedule = RetrySchedule::parse("10s,1m").unwrap();
        let policy = policy(&schedule, Duration::from_secs(3600));
        let (settlement, wait) = retry_of(policy.after_send_failure(&error(FailureKind::Transient), 0));
        assert_eq!((settlement.failures, wait), (1, Duration::from_secs(10)));
        assert_eq!(settlement.status, NotificationStatus::Retrying);
        assert_eq!(settlement.reason.as_deref(), Some(reason::PROVIDER_ERROR));
        assert_eq!(
            settlement.next_attempt_at,
            Some(Timestamp::from_millis(NOW + 10_000))
        );
        let (settlement, wait) = retry_of(policy.after_send_failure(&error(FailureKind::Configuration), 1));
        assert_eq!((settlement.failures, wait), (2, Duration::from_secs(60)));
        let Next::DeadLetter(settlement) = policy.after_send_failure(&error(FailureKind::Transient), 2)
        else {
            panic!("the schedule is used up");
        };
        assert_eq!(settlement.status, NotificationStatus::DeadLettered);
        assert_eq!(settlement.failures, 0, "a redrive starts the schedule over");
    }

    #[test]
    fn throttling_waits_for_retry_after_and_uses_up_no_step() {
        let schedule = RetrySchedule::parse("10s").unwrap();
        let policy = policy(&schedule, Duration::from_secs(3600));
        let throttled = error(FailureKind::Throttled).retry_after(Some(Duration::from_secs(42)));
        for _ in 0..3 {
            let (settlement, wait) = retry_of(policy.after_send_failure(&throttled, 1));
            assert_eq!((settlement.failures, wait), (1, Duration::from_secs(42)));
            assert_eq!(settlement.reason.as_deref(), Some(reason::THROTTLED));
        }
        let (_, wait) = retry_of(policy.after_send_failure(&error(FailureKind::Throttled), 0));
        assert_eq!(wait, Duration::from_secs(10), "no Retry-After: the current step");
    }

    #[test]
    fn an_ambiguous_attempt_waits_at_least_five_minutes() {
        let schedule = RetrySchedule::parse("1s,1s").unwrap();
        let policy = policy(&schedule, Duration::from_secs(3600));
        let (settlement, wait) = retry_of(policy.after_send_failure(&error(FailureKind::Ambiguous), 0));
        assert_eq!((settlement.failures, wait), (1, AMBIGUOUS_RETRY_DELAY));
        assert!(settlement.detail.unwrap().contains("may send it twice"));
    }

    #[test]
    fn a_retry_that_would_come_too_late_expires_now() {
        let schedule = RetrySchedule::parse("10m").unwrap();
        let policy = policy(&schedule, Duration::from_secs(300));
        let Next::Final(settlement) = policy.after_send_failure(&error(FailureKind::Transient), 0) else {
            panic!("expired");
        };
        assert_eq!(settlement.status, NotificationStatus::Expired);
        assert_eq!(settlement.reason.as_deref(), Some(reason::MAX_AGE_EXCEEDED));
        // Throttling, too, cannot hold a notification past its deadline.
        let throttled = error(FailureKind::Throttled).retry_after(Some(Duration::from_secs(600)));
        assert!(matches!(policy.after_send_failure(&throttled, 0), Next::Final(_)));
    }

    #[test]
    fn a_failed_probe_uses_up_no_step() {
        let schedule = RetrySchedule::parse("10s").unwrap();
        let policy = Policy {
            probing: true,
            ..policy(&schedule, Duration::from_secs(3600))
        };
        let (settlement, _) = retry_of(policy.after_send_failure(&error(FailureKind::Transient), 1));
        assert_eq!(
            settlement.failures, 1,
            "the schedule had one step, and it is still there"
        );
    }

    #[test]
    fn a_recipient_failure_is_final() {
        let schedule = RetrySchedule::default();
        let next = policy(&schedule, Duration::from_secs(3600))
            .after_send_failure(&error(FailureKind::Recipient), 0);
        let Next::Final(settlement) = next else {
            panic!("final")
        };
        assert_eq!(settlement.status, NotificationStatus::Failed);
        assert_eq!(settlement.reason.as_deref(), Some(reason::REJECTED_BY_PROVIDER));

        let gone = SendError::new(FailureKind::Recipient, reason::DEVICE_GONE, "EndpointDisabled");
        let Next::Final(settlement) =
            policy(&schedule, Duration::from_secs(3600)).after_send_failure(&gone, 0)
        else {
            panic!("final")
        };
        assert_eq!(
            settlement.reason.as_deref(),
            Some(reason::DEVICE_GONE),
            "a reason of its own"
        );
    }

    #[test]
    fn the_deadline_is_the_event_types_or_the_default() {
        let mut notification = acceptance("acme", None, &[Channel::Email])
            .notifications
            .remove(0);
        assert_eq!(notification.tenant, TenantId::new("acme"));
        let day = Duration::from_secs(86_400);
        assert_eq!(
            deadline(&notification, day),
            notification.created_at.plus_seconds(86_400)
        );
        notification.deliver_by = Some(notification.created_at.plus_seconds(60));
        assert_eq!(
            deadline(&notification, day),
            notification.created_at.plus_seconds(60)
        );
    }
}
