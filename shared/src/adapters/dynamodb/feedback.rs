//! Providers' feedback on the activity table: one conditional `UpdateItem` on the notification.

use super::activity_store::notification_key;
use super::{DynamoActivityStore, n, s};
use crate::adapters::backend_error;
use crate::domain::notification::NotificationStatus;
use crate::domain::{NotificationId, TenantId, Timestamp};
use crate::ports::{BackendError, FeedbackLedger};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

impl FeedbackLedger for DynamoActivityStore {
    async fn record_feedback(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        status: NotificationStatus,
        reason: Option<&str>,
        detail: &str,
        now: Timestamp,
    ) -> Result<bool, BackendError> {
        let Some(from) = status.after_feedback_from() else {
            return Ok(false);
        };
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(notification_key(tenant, id)))
            // The reason the provider's word gives, or none (a delivery); whatever came before is replaced.
            .update_expression(match reason {
                Some(_) => "SET #status = :status, #reason = :reason, #detail = :detail, #updated_at = :now",
                None => "SET #status = :status, #detail = :detail, #updated_at = :now REMOVE #reason",
            })
            .condition_expression(format!(
                "attribute_exists(pk) AND #status IN ({})",
                placeholders.join(", ")
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#detail", "detail")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#reason", "reason")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":detail", s(detail))
            .expression_attribute_values(":now", n(now.millis()));
        if let Some(reason) = reason {
            update = update.expression_attribute_values(":reason", s(reason));
        }
        for (placeholder, from) in placeholders.iter().zip(from) {
            update = update.expression_attribute_values(placeholder, s(from.as_str()));
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(backend_error("DynamoDB", "UpdateItem(record feedback)", &error)),
        }
    }
}
