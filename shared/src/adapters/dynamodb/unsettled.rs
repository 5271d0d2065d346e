//! The `unsettled` index of the activity table: notifications still owed a delivery, by when one was due.
//!
//! A notification enters it when it is accepted `queued`, its `due_at` moves when a delivery schedules a
//! retry, it leaves it when it is settled (`sent`, `failed`, `dead_lettered`) and enters it again when a
//! redrive claims it. A claim of a notification already in it rewrites the same key, which DynamoDB does
//! not count as an index write. The partition is sharded so no one index partition takes every write.

use super::activity_store::{DynamoActivityStore, notification_key};
use super::{Item, ItemExt, corrupt, is_condition_failed, n, s};
use crate::adapters::backend_error;
use crate::domain::notification::{Notification, NotificationStatus, reason};
use crate::domain::{NotificationId, TenantId, Timestamp};
use crate::ports::{BackendError, UnsettledNotifications};

pub(super) const INDEX: &str = "unsettled";
/// The index partitions. Each notification writes its partition two or three times in its life, so one
/// partition (1,000 writes a second) would carry about 400 notifications a second; four carry 1,600.
const SHARDS: u8 = 4;

/// The partition of the index a notification is in: stable, and spread by its random id.
pub(super) fn shard(id: &NotificationId) -> String {
    format!("U#{}", super::spread(id) % SHARDS)
}

/// The index keys of a notification accepted `queued`.
pub(super) fn index_new(item: &mut Item, id: &NotificationId, due_at: Timestamp) {
    item.insert("unsettled".into(), s(shard(id)));
    item.insert("due_at".into(), n(due_at.millis()));
}

/// The tenant and notification id in a notification's key, `T#{tenant}#NTF#{id}`.
pub(super) fn notification_from_key(pk: &str) -> Option<(TenantId, NotificationId)> {
    let (tenant, id) = pk.strip_prefix("T#")?.rsplit_once("#NTF#")?;
    Some((TenantId::new(tenant), NotificationId::parse(id)?))
}

impl UnsettledNotifications for DynamoActivityStore {
    async fn overdue(
        &self,
        due_before: Timestamp,
        limit: u16,
    ) -> Result<Vec<(TenantId, NotificationId)>, BackendError> {
        let mut found = Vec::new();
        for shard in 0..SHARDS {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(INDEX)
                .key_condition_expression("unsettled = :shard AND due_at < :before")
                .expression_attribute_values(":shard", s(format!("U#{shard}")))
                .expression_attribute_values(":before", n(due_before.millis()))
                .limit(i32::from(limit))
                .send()
                .await
                .map_err(|error| backend_error("DynamoDB", "Query(overdue notifications)", &error))?;
            for item in output.items.unwrap_or_default() {
                let due_at = item.int("due_at")?;
                let pk = item.str("pk")?;
                let key = notification_from_key(pk)
                    .ok_or_else(|| corrupt("read", format!("notification key {pk}")))?;
                found.push((due_at, key));
            }
        }
        found.sort_by_key(|(due_at, _)| *due_at);
        Ok(found
            .into_iter()
            .take(usize::from(limit))
            .map(|(_, key)| key)
            .collect())
    }

    async fn dead_letter_stalled(
        &self,
        seen: &Notification,
        now: Timestamp,
        detail: &str,
    ) -> Result<bool, BackendError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(notification_key(&seen.tenant, &seen.id)))
            .update_expression(
                "SET #status = :dead_lettered, #reason = :reason, #detail = :detail, #updated_at = :now \
                 REMOVE unsettled, due_at, lease_until, next_attempt_at",
            )
            .condition_expression("#status = :seen_status AND #updated_at = :seen_updated_at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#reason", "reason")
            .expression_attribute_names("#detail", "detail")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":dead_lettered", s(NotificationStatus::DeadLettered.as_str()))
            .expression_attribute_values(":reason", s(reason::STALLED))
            .expression_attribute_values(":detail", s(detail))
            .expression_attribute_values(":now", n(now.millis()))
            .expression_attribute_values(":seen_status", s(seen.status.as_str()))
            .expression_attribute_values(":seen_updated_at", n(seen.updated_at.millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failed(&error) => Ok(false),
            Err(error) => Err(backend_error(
                "DynamoDB",
                "UpdateItem(dead-letter stalled)",
                &error,
            )),
        }
    }

    async fn forget_settled(&self, tenant: &TenantId, id: &NotificationId) -> Result<(), BackendError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(notification_key(tenant, id)))
            .update_expression("REMOVE unsettled, due_at")
            .condition_expression("attribute_exists(pk) AND NOT (#status IN (:queued, :sending, :retrying))")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(NotificationStatus::Queued.as_str()))
            .expression_attribute_values(":sending", s(NotificationStatus::Sending.as_str()))
            .expression_attribute_values(":retrying", s(NotificationStatus::Retrying.as_str()))
            .send()
            .await;
        match result {
            // Unsettled again (a redrive claimed it) or gone: either way not ours to remove.
            Err(error) if !is_condition_failed(&error) => {
                Err(backend_error("DynamoDB", "UpdateItem(forget settled)", &error))
            }
            _ => Ok(()),
        }
    }
}
