//! The feedback queue's consumer: SES's deliveries, bounces and complaints are recorded on the notification
//! they are about (`delivered`, `bounced`, `complained`), and permanent bounces and complaints put their
//! addresses on the tenant's suppression list. One SQS batch at a time; a message that is not feedback Herald can act on is logged and
//! acknowledged (it would be the same on every retry, so it must not poison the batch), and one whose write
//! failed is returned to the queue alone, to be retried and, after the queue's receive count, dead-lettered.

use crate::domain::Channel;
use crate::domain::Timestamp;
use crate::domain::notification::{NotificationStatus, reason};
use crate::domain::provider_feedback::{FeedbackKind, ProviderFeedback, parse_ses_event};
use crate::domain::suppression::Suppression;
use crate::ports::{BackendError, FeedbackLedger, SuppressionList};
use crate::telemetry::catalogue::NotificationOutcome;
use crate::telemetry::record;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;

/// Everything the feedback function holds between invocations.
#[derive(Debug)]
pub struct FeedbackHandler<L, N> {
    suppressions: L,
    notifications: N,
}

impl<L: SuppressionList, N: FeedbackLedger> FeedbackHandler<L, N> {
    pub fn new(suppressions: L, notifications: N) -> Self {
        Self {
            suppressions,
            notifications,
        }
    }

    /// The Lambda handler: the messages to retry, every other one acknowledged.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let outcomes = futures::future::join_all(
            event
                .payload
                .records
                .iter()
                .map(|message| async move { (message, self.apply(message).await) }),
        )
        .await;
        let mut response = SqsBatchResponse::default();
        for (message, outcome) in outcomes {
            if let Err(error) = outcome {
                tracing::warn!(
                    message_id = message.message_id.as_deref().unwrap_or("unknown"),
                    %error,
                    "feedback not recorded; returned to the queue"
                );
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        Ok(response)
    }

    async fn apply(&self, message: &SqsMessage) -> Result<(), BackendError> {
        let body = message.body.as_deref().unwrap_or_default();
        let feedback = match parse_ses_event(body) {
            Ok(Some(feedback)) => feedback,
            Ok(None) => return Ok(()),
            Err(refused) => {
                tracing::error!(
                    message_id = message.message_id.as_deref().unwrap_or("unknown"),
                    error = %refused,
                    "not feedback Herald can act on; dropped"
                );
                return Ok(());
            }
        };
        self.record(&feedback).await?;
        self.suppress(&feedback).await
    }

    /// The notification's new status. A redelivered message, or one arriving after worse news, changes
    /// nothing and counts nothing.
    async fn record(&self, feedback: &ProviderFeedback) -> Result<(), BackendError> {
        let (status, outcome, reason) = match feedback.kind {
            FeedbackKind::Delivery => (
                NotificationStatus::Delivered,
                NotificationOutcome::Delivered,
                None,
            ),
            FeedbackKind::Bounce { permanent: true } => (
                NotificationStatus::Bounced,
                NotificationOutcome::Bounced,
                Some(reason::PERMANENT_BOUNCE),
            ),
            FeedbackKind::Bounce { permanent: false } => (
                NotificationStatus::Bounced,
                NotificationOutcome::Bounced,
                Some(reason::TRANSIENT_BOUNCE),
            ),
            FeedbackKind::Complaint => (
                NotificationStatus::Complained,
                NotificationOutcome::Complained,
                Some(reason::COMPLAINT),
            ),
        };
        let recorded = self
            .notifications
            .record_feedback(
                &feedback.tenant,
                &feedback.notification_id,
                status,
                reason,
                &feedback.detail,
                Timestamp::now(),
            )
            .await?;
        if recorded {
            // SES is the only provider that reports back, and it sends email only.
            record::notification(Channel::Email, outcome, reason);
            tracing::info!(
                tenant = %feedback.tenant,
                notification_id = %feedback.notification_id,
                status = status.as_str(),
                detail = %feedback.detail,
                "provider feedback recorded"
            );
        }
        Ok(())
    }

    /// Every address a permanent bounce or a complaint names goes on its tenant's list (the first cause is
    /// kept, so a redelivered message changes nothing).
    async fn suppress(&self, feedback: &ProviderFeedback) -> Result<(), BackendError> {
        for entry in Suppression::from_feedback(feedback) {
            let added = self.suppressions.suppress(&feedback.tenant, &entry).await?;
            if added {
                tracing::info!(
                    tenant = %feedback.tenant,
                    notification_id = %feedback.notification_id,
                    reason = entry.reason.as_str(),
                    "address suppressed"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
