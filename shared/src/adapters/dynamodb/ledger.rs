//! The delivery side of the activity table: claiming a notification, settling an attempt.

use super::activity_store::{duration_millis, notification_from, notification_key};
use super::{Cancelled, Item, ItemExt, built, corrupt, n, s, transact};
use crate::adapters::backend_error;
use crate::domain::delivery::{Attempt, AttemptOutcome, EARLY_CLAIM_TOLERANCE};
use crate::domain::notification::NotificationStatus;
use crate::domain::{NotificationId, TenantId, Timestamp};
use crate::ports::{BackendError, Claim, DeliveryLedger, Settlement};
use aws_sdk_dynamodb::types::{
    Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::time::Duration;

use super::DynamoActivityStore;

/// Statuses a delivery may claim from (besides `sending` with an expired lease).
const CLAIMABLE: [NotificationStatus; 3] = [
    NotificationStatus::Queued,
    NotificationStatus::Retrying,
    NotificationStatus::DeadLettered,
];

fn attempt_sk(number: u32) -> String {
    format!("ATTEMPT#{number:05}")
}

fn attempt_item(tenant: &TenantId, id: &NotificationId, attempt: &Attempt, expires_at: Timestamp) -> Item {
    let mut item = notification_key(tenant, id);
    item.insert("sk".into(), s(attempt_sk(attempt.number)));
    item.insert("number".into(), n(attempt.number));
    item.insert("at".into(), n(attempt.at.millis()));
    item.insert("outcome".into(), s(attempt.outcome.as_str()));
    if let Some(error) = &attempt.error {
        item.insert("error".into(), s(error));
    }
    if let Some(id) = &attempt.provider_message_id {
        item.insert("provider_message_id".into(), s(id));
    }
    item.insert("duration_ms".into(), n(attempt.duration_ms));
    item.insert("expires_at".into(), n(expires_at.epoch_seconds()));
    item
}

fn attempt_from(item: &Item) -> Result<Attempt, BackendError> {
    let outcome: AttemptOutcome = item
        .str("outcome")?
        .parse()
        .map_err(|message: String| corrupt("read", message))?;
    Ok(Attempt {
        number: u32::try_from(item.int("number")?).map_err(|_| corrupt("read", "attempt number"))?,
        at: Timestamp::from_millis(item.int("at")?),
        outcome,
        error: item.opt_str("error").map(str::to_owned),
        duration_ms: u64::try_from(item.int("duration_ms")?).unwrap_or(0),
        provider_message_id: item.opt_str("provider_message_id").map(str::to_owned),
    })
}

impl DeliveryLedger for DynamoActivityStore {
    async fn claim(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Claim, BackendError> {
        let until = now.millis().saturating_add(duration_millis(lease));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(notification_key(tenant, id)))
            .update_expression(
                "SET #status = :sending, #lease_until = :until, #updated_at = :now, \
                 #attempts = if_not_exists(#attempts, :zero) + :one, \
                 unsettled = :unsettled, due_at = if_not_exists(due_at, :now)",
            )
            .condition_expression(
                "attribute_exists(pk) AND (#status IN (:queued, :dead_lettered) \
                 OR (#status = :retrying AND (attribute_not_exists(#next_attempt_at) OR #next_attempt_at <= :due)) \
                 OR (#status = :sending AND #lease_until < :now))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#lease_until", "lease_until")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#attempts", "attempts")
            .expression_attribute_names("#next_attempt_at", "next_attempt_at")
            .expression_attribute_values(":sending", s(NotificationStatus::Sending.as_str()))
            .expression_attribute_values(":due", n(now.millis().saturating_add(duration_millis(EARLY_CLAIM_TOLERANCE))))
            .expression_attribute_values(":queued", s(CLAIMABLE[0].as_str()))
            .expression_attribute_values(":retrying", s(CLAIMABLE[1].as_str()))
            .expression_attribute_values(":dead_lettered", s(CLAIMABLE[2].as_str()))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now.millis()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            // Unchanged for a notification in the index; a redrive of a dead-lettered one puts it back.
            .expression_attribute_values(":unsettled", s(super::unsettled::shard(id)))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output.attributes.unwrap_or_default();
                let attempt = u32::try_from(item.int("attempts")?).map_err(|_| corrupt("read", "attempts"))?;
                Ok(Claim::Claimed { notification: Box::new(notification_from(&item)?), attempt })
            }
            Err(error) => match error.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let Some(old) = failed.item() else { return Ok(Claim::Missing) };
                    let status: NotificationStatus =
                        old.str("status")?.parse().map_err(|message: String| corrupt("read", message))?;
                    // Held by another delivery until its lease ends, or a retry not due yet (another copy
                    // of its message came early): either way, come back then.
                    let busy_until = match status {
                        NotificationStatus::Sending => Some(old.opt_int("lease_until").unwrap_or(0)),
                        NotificationStatus::Retrying => old.opt_int("next_attempt_at"),
                        _ => None,
                    };
                    if let Some(until) = busy_until {
                        let remaining = until.saturating_sub(now.millis()).max(0);
                        Ok(Claim::Busy { lease_remaining: Duration::from_millis(u64::try_from(remaining).unwrap_or(0)) })
                    } else {
                        Ok(Claim::Settled(status))
                    }
                }
                _ => Err(backend_error("DynamoDB", "UpdateItem(claim notification)", &error)),
            },
        }
    }

    async fn settle(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
        attempt: &Attempt,
        settlement: &Settlement,
        expires_at: Timestamp,
    ) -> Result<bool, BackendError> {
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(attempt_item(tenant, id, attempt, expires_at)))
            .condition_expression("attribute_not_exists(pk)");
        let mut sets = vec!["#status = :status", "#updated_at = :now"];
        let mut removes = vec!["#lease_until"];
        let mut clauses_removed = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(notification_key(tenant, id)))
            .condition_expression("#status = :sending AND #attempts = :attempt")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#lease_until", "lease_until")
            .expression_attribute_names("#attempts", "attempts")
            .expression_attribute_values(":status", s(settlement.status.as_str()))
            .expression_attribute_values(":sending", s(NotificationStatus::Sending.as_str()))
            .expression_attribute_values(":attempt", n(attempt.number))
            .expression_attribute_values(":now", n(attempt.at.millis()));
        let optional = [
            ("reason", settlement.reason.as_ref().map(s)),
            ("detail", settlement.detail.as_ref().map(s)),
            (
                "provider_message_id",
                settlement.provider_message_id.as_ref().map(s),
            ),
            (
                "next_attempt_at",
                settlement.next_attempt_at.map(|at| n(at.millis())),
            ),
            (
                "sent_at",
                (settlement.status == NotificationStatus::Sent).then(|| n(attempt.at.millis())),
            ),
            (
                "failures",
                (settlement.failures > 0).then(|| n(settlement.failures)),
            ),
        ];
        let mut clauses = Vec::new();
        for (attribute, value) in optional {
            let placeholder = format!("#{attribute}");
            match value {
                Some(value) => {
                    clauses.push(format!("{placeholder} = :{attribute}"));
                    update = update
                        .expression_attribute_names(&placeholder, attribute)
                        .expression_attribute_values(format!(":{attribute}"), value);
                }
                // What the new state does not have is removed (a sent notification has no reason), but
                // a provider id or send time, once recorded, stays.
                None if !matches!(attribute, "provider_message_id" | "sent_at") => {
                    update = update.expression_attribute_names(&placeholder, attribute);
                    clauses_removed.push(placeholder);
                }
                None => {}
            }
        }
        if settlement.status.is_unsettled() {
            // A retry: the reconciler looks again a stall window after it is due.
            if settlement.next_attempt_at.is_some() {
                clauses.push("due_at = :next_attempt_at".to_owned());
            }
        } else {
            clauses_removed.push("unsettled".to_owned());
            clauses_removed.push("due_at".to_owned());
        }
        removes.extend(clauses_removed.iter().map(String::as_str));
        sets.extend(clauses.iter().map(String::as_str));
        let expression = format!("SET {} REMOVE {}", sets.join(", "), removes.join(", "));
        let writes = vec![
            TransactWriteItem::builder().put(built(record.build())?).build(),
            TransactWriteItem::builder()
                .update(built(update.update_expression(expression).build())?)
                .build(),
        ];
        match transact(&self.client, "TransactWriteItems(settle notification)", writes).await {
            Ok(()) => Ok(true),
            Err(Cancelled::Backend(error)) => Err(error),
            // Only the holder of attempt N writes ATTEMPT#N, and only in this transaction: if it exists, this
            // settle already committed once and the SDK's retry (after a lost answer) met it.
            Err(cancelled) if cancelled.failed_at(0) => Ok(true),
            Err(cancelled) if cancelled.failed_at(1) => Ok(false),
            Err(cancelled) => Err(BackendError {
                service: "DynamoDB",
                operation: "TransactWriteItems(settle notification)",
                message: format!("transaction cancelled: {cancelled:?}"),
                retryable: true,
            }),
        }
    }

    async fn notification_with_attempts(
        &self,
        tenant: &TenantId,
        id: &NotificationId,
    ) -> Result<Option<(crate::domain::notification::Notification, Vec<Attempt>)>, BackendError> {
        let pk = notification_key(tenant, id).remove("pk").unwrap_or_else(|| s(""));
        let mut notification = None;
        let mut attempts = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", pk.clone())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| backend_error("DynamoDB", "Query(notification)", &error))?;
            for item in output.items.unwrap_or_default() {
                match item.str("sk")? {
                    "NTF" => notification = Some(notification_from(&item)?),
                    sk if sk.starts_with("ATTEMPT#") => attempts.push(attempt_from(&item)?),
                    _ => {}
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        attempts.sort_by_key(|attempt| attempt.number);
        Ok(notification.map(|notification| (notification, attempts)))
    }
}
