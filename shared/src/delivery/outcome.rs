//! What the loop does once an attempt has an outcome: record it (fenced, retried a few times), then carry
//! out what comes next for the message: acknowledged, re-sent delayed for a retry, or put in the DLQ.

use super::plan::Next;
use super::{Delivery, SETTLE_ATTEMPTS, Verdict, jitter};
use crate::domain::Timestamp;
use crate::domain::delivery::{Attempt, AttemptOutcome, FailureKind, SendError};
use crate::domain::notification::{Notification, NotificationStatus};
use crate::ports::{
    ActivityStore, ChannelQueue, CircuitStore, DeliveryLedger, Sender, Settlement, TemplateStore,
};
use crate::telemetry::catalogue::NotificationOutcome;
use crate::telemetry::record;
use aws_lambda_events::event::sqs::SqsMessage;
use std::time::{Duration, Instant};

/// Whether an attempt's outcome was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    Yes,
    /// Its claim had passed to a later delivery: the outcome was not this delivery's to write.
    Lost,
    /// The store kept failing: the notification stays `sending` until its lease runs out.
    Failed,
}

impl<S, L, T, Q> Delivery<S, L, T, Q>
where
    S: Sender,
    L: DeliveryLedger + ActivityStore + CircuitStore,
    T: TemplateStore,
    Q: ChannelQueue,
{
    /// Records the attempt and carries out `next`: a retry goes back on the queue as a new message
    /// delayed by its wait, a used-up schedule to the DLQ; the received message is then done with.
    pub(super) async fn conclude(
        &self,
        message: &SqsMessage,
        notification: &Notification,
        attempt: u32,
        started: Instant,
        error: Option<&SendError>,
        next: Next,
    ) -> Verdict {
        match next {
            Next::Final(settlement) => {
                self.record(notification, attempt, started, error, &settlement)
                    .await;
                Verdict::Done
            }
            Next::Retry { settlement, wait } => {
                if self
                    .record(notification, attempt, started, error, &settlement)
                    .await
                    == Recorded::Lost
                {
                    // A later delivery holds it now; what becomes of it is that delivery's to decide.
                    return Verdict::Done;
                }
                self.retry_later(message, wait).await
            }
            Next::DeadLetter(settlement) => {
                let body = message.body.as_deref().unwrap_or_default();
                match self.queue.dead_letter(body).await {
                    Ok(()) => {
                        self.record(notification, attempt, started, error, &settlement)
                            .await;
                        Verdict::Done
                    }
                    Err(dlq_error) => {
                        // Not in the DLQ, so not dead-lettered: it stays on the schedule's last step and
                        // its next failure tries the DLQ again.
                        tracing::error!(error = %dlq_error, "could not put the message in the DLQ; retrying later");
                        let wait = self
                            .settings
                            .schedule
                            .wait_without_step(notification.failures, jitter());
                        let settlement = Settlement {
                            status: NotificationStatus::Retrying,
                            reason: settlement.reason,
                            detail: Some(format!(
                                "{} (the DLQ could not be reached: {dlq_error})",
                                settlement.detail.unwrap_or_default()
                            )),
                            provider_message_id: None,
                            next_attempt_at: Some(Timestamp::now().plus(wait)),
                            failures: notification.failures,
                        };
                        self.record(notification, attempt, started, error, &settlement)
                            .await;
                        self.retry_later(message, wait).await
                    }
                }
            }
        }
    }

    /// A new message, delayed by `wait`, carries the notification to its next attempt and this one is
    /// acknowledged; if SQS will not take it, this message itself waits, using up one of its receives.
    pub(super) async fn retry_later(&self, message: &SqsMessage, wait: Duration) -> Verdict {
        let body = message.body.as_deref().unwrap_or_default();
        match self.queue.send_later(body, wait).await {
            Ok(()) => Verdict::Done,
            Err(error) => {
                tracing::warn!(%error, "could not queue the retry as a new message; this one waits instead");
                self.delay(message, wait).await;
                Verdict::Retry
            }
        }
    }

    /// Records the attempt and the notification's new state, retrying the write a few times.
    async fn record(
        &self,
        notification: &Notification,
        attempt: u32,
        started: Instant,
        error: Option<&SendError>,
        settlement: &Settlement,
    ) -> Recorded {
        let ambiguous = error.is_some_and(|error| error.kind == FailureKind::Ambiguous);
        let outcome = match settlement.status {
            NotificationStatus::Sent => AttemptOutcome::Sent,
            NotificationStatus::Retrying if ambiguous => AttemptOutcome::Ambiguous,
            NotificationStatus::Retrying => AttemptOutcome::Retrying,
            NotificationStatus::DeadLettered => AttemptOutcome::DeadLettered,
            NotificationStatus::Expired => AttemptOutcome::Expired,
            NotificationStatus::Suppressed => AttemptOutcome::Suppressed,
            _ => AttemptOutcome::Failed,
        };
        let record = Attempt {
            number: attempt,
            at: Timestamp::now(),
            outcome,
            error: error
                .map(ToString::to_string)
                .or_else(|| settlement.detail.clone())
                .filter(|_| outcome != AttemptOutcome::Sent),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            provider_message_id: settlement.provider_message_id.clone(),
        };
        let expires_at = Timestamp::now().plus(self.settings.retention);
        let mut recorded = Recorded::Failed;
        for round in 1..=SETTLE_ATTEMPTS {
            match self
                .ledger
                .settle(
                    &notification.tenant,
                    &notification.id,
                    &record,
                    settlement,
                    expires_at,
                )
                .await
            {
                Ok(true) => {
                    recorded = Recorded::Yes;
                    break;
                }
                Ok(false) => {
                    tracing::warn!(
                        attempt,
                        "the claim was lost to a later delivery; its outcome stands"
                    );
                    recorded = Recorded::Lost;
                    break;
                }
                Err(error) if error.retryable && round < SETTLE_ATTEMPTS => {
                    tracing::warn!(%error, round, "could not record the outcome; trying again");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(round))).await;
                }
                Err(error) => tracing::error!(%error, outcome = %outcome, "could not record the outcome"),
            }
        }
        // Logs Insights reads this line (template.yaml's saved queries): failures by reason, slowest deliveries.
        tracing::info!(
            outcome = %outcome,
            reason = settlement.reason.as_deref().unwrap_or(""),
            attempt,
            duration_ms = record.duration_ms,
            since_accepted_ms = millis_since(notification.created_at),
            recorded = ?recorded,
            "delivery attempt"
        );
        // A lost claim's outcome is the later delivery's to count, unless this one sent it: that happened.
        if recorded != Recorded::Lost || outcome == AttemptOutcome::Sent {
            count_outcome(notification, outcome, settlement.reason.as_deref());
        }
        recorded
    }

    pub(super) async fn delay(&self, message: &SqsMessage, delay: Duration) {
        let Some(receipt) = message.receipt_handle.as_deref() else {
            return;
        };
        if let Err(error) = self.queue.delay(receipt, delay).await {
            tracing::warn!(%error, "could not delay the retry; it comes back after the queue's visibility timeout");
        }
    }
}

fn count_outcome(notification: &Notification, outcome: AttemptOutcome, reason: Option<&str>) {
    let counted = match outcome {
        AttemptOutcome::Sent => NotificationOutcome::Sent,
        AttemptOutcome::Retrying | AttemptOutcome::Ambiguous => NotificationOutcome::Retried,
        AttemptOutcome::Failed => NotificationOutcome::Failed,
        AttemptOutcome::DeadLettered => NotificationOutcome::DeadLettered,
        AttemptOutcome::Expired => NotificationOutcome::Expired,
        AttemptOutcome::Suppressed => NotificationOutcome::Suppressed,
    };
    record::notification(notification.channel, counted, reason);
    if outcome == AttemptOutcome::Sent {
        let since_accepted = Duration::from_millis(millis_since(notification.created_at));
        record::end_to_end_latency(notification.channel, since_accepted);
    }
}

/// How long ago `then` was (its event's arrival, for a notification's `created_at`), in milliseconds.
fn millis_since(then: Timestamp) -> u64 {
    u64::try_from(Timestamp::now().millis().saturating_sub(then.millis())).unwrap_or(0)
}
