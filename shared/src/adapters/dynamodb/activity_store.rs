//! Idempotency records, events and notifications in the activity table.

use super::{Cancelled, Item, ItemExt, built, corrupt, key, n, put, put_opt, s, transact};
use crate::adapters::backend_error;
use crate::domain::event::{Acceptance, IdempotencyRecord, Recipient, StoredEvent};
use crate::domain::notification::{Notification, NotificationStatus, PinnedTemplate};
use crate::domain::{EventId, NotificationId, TenantId, Timestamp};
use crate::ports::{ActivityStore, BackendError, Recorded};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;
use std::time::Duration;

/// DynamoDB's limit of keys in one BatchGetItem.
const BATCH_GET_LIMIT: usize = 100;
/// The one key of the `fanout_pending` index. Each event adds and removes one small entry, so one
/// partition carries about 500 events per second; past that, the key would be sharded (`PENDING#0..n`).
const FANOUT_PENDING: &str = "PENDING";
/// Transactions that collide with a concurrent one on the same item are retried this often.
pub(super) const TRANSACTION_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct DynamoActivityStore {
    pub(super) client: Client,
    pub(super) table: String,
}

fn idempotency_key(tenant: &TenantId, key_text: &str) -> Item {
    key(format!("T#{tenant}#IDEM#{key_text}"), "IDEM")
}

fn event_key(tenant: &TenantId, id: &EventId) -> Item {
    key(format!("T#{tenant}#EVT#{id}"), "EVENT")
}

pub(super) fn notification_key(tenant: &TenantId, id: &NotificationId) -> Item {
    key(format!("T#{tenant}#NTF#{id}"), "NTF")
}

pub(super) fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn idempotency_item(tenant: &TenantId, record: &IdempotencyRecord) -> Item {
    let mut item = idempotency_key(tenant, &record.key);
    item.insert("key".into(), s(&record.key));
    item.insert("fingerprint".into(), s(&record.fingerprint));
    item.insert("event_id".into(), s(record.event_id.as_str()));
    item.insert("response".into(), s(record.response.to_string()));
    item.insert("expires_at".into(), n(record.expires_at.epoch_seconds()));
    item
}

fn idempotency_from(item: &Item) -> Result<IdempotencyRecord, BackendError> {
    let event_id = item.str("event_id")?;
    Ok(IdempotencyRecord {
        key: item.str("key")?.to_owned(),
        fingerprint: item.str("fingerprint")?.to_owned(),
        event_id: EventId::parse(event_id).ok_or_else(|| corrupt("read", format!("event id {event_id}")))?,
        response: item.json("response")?.unwrap_or_default(),
        expires_at: Timestamp::from_millis(item.int("expires_at")? * 1000),
    })
}

fn event_item(event: &StoredEvent, lease_until: Timestamp) -> Item {
    let mut item = event_key(&event.tenant, &event.id);
    item.insert("tenant".into(), s(event.tenant.as_str()));
    item.insert("event_id".into(), s(event.id.as_str()));
    item.insert("event".into(), s(&event.event));
    item.insert("received_at".into(), n(event.received_at.millis()));
    item.insert("payload".into(), s(event.payload.to_string()));
    item.insert(
        "recipient".into(),
        s(serde_json::to_string(&event.recipient).unwrap_or_default()),
    );
    let ids = event.notification_ids.iter().map(|id| s(id.as_str())).collect();
    item.insert("notification_ids".into(), AttributeValue::L(ids));
    put_opt(&mut item, "idempotency_key", event.idempotency_key.as_deref());
    if event.fanout_pending {
        // Sparse index key: only events whose fan-out is unfinished are in the `fanout_pending` index, all
        // in one partition so the sweeper finds them, of every tenant, with one query.
        item.insert("fanout_pending".into(), s(FANOUT_PENDING));
        item.insert("fanout_lease_until".into(), n(lease_until.millis()));
    }
    item.insert("expires_at".into(), n(event.expires_at.epoch_seconds()));
    item
}

fn event_from(item: &Item) -> Result<StoredEvent, BackendError> {
    let id = item.str("event_id")?;
    let notification_ids = item
        .get("notification_ids")
        .and_then(|value| value.as_l().ok())
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_s().ok().and_then(|id| NotificationId::parse(id)))
                .collect()
        })
        .unwrap_or_default();
    let recipient: Recipient = serde_json::from_value(item.json("recipient")?.unwrap_or_default())
        .map_err(|error| corrupt("read", format!("recipient: {error}")))?;
    Ok(StoredEvent {
        tenant: TenantId::new(item.str("tenant")?),
        id: EventId::parse(id).ok_or_else(|| corrupt("read", format!("event id {id}")))?,
        event: item.str("event")?.to_owned(),
        received_at: Timestamp::from_millis(item.int("received_at")?),
        payload: item.json("payload")?.unwrap_or_default(),
        recipient,
        notification_ids,
        idempotency_key: item.opt_str("idempotency_key").map(str::to_owned),
        fanout_pending: item.contains_key("fanout_pending"),
        expires_at: Timestamp::from_millis(item.int("expires_at")? * 1000),
    })
}

fn notification_item(notification: &Notification, expires_at: Timestamp) -> Item {
    let tenant = &notification.tenant;
    let mut item = notification_key(tenant, &notification.id);
    item.insert("tenant".into(), s(tenant.as_str()));
    item.insert("notification_id".into(), s(notification.id.as_str()));
    item.insert("event_id".into(), s(notification.event_id.as_str()));
    item.insert("event".into(), s(&notification.event));
    item.insert("rule_id".into(), s(&notification.rule_id));
    item.insert("channel".into(), s(notification.channel.as_str()));
    item.insert("status".into(), s(notification.status.as_str()));
    put_opt(&mut item, "reason", notification.reason.as_deref());
    put_opt(&mut item, "detail", notification.detail.as_deref());
    put_opt(&mut item, "to", notification.to.as_deref());
    item.insert("template".into(), s(&notification.template));
    if let Some(pinned) = &notification.pinned {
        item.insert("template_locale".into(), s(&pinned.locale));
        item.insert("template_version".into(), n(pinned.version));
    }
    put_opt(&mut item, "user_id", notification.user_id.as_deref());
    put_opt(
        &mut item,
        "correlation_id",
        notification.correlation_id.as_deref(),
    );
    item.insert("created_at".into(), n(notification.created_at.millis()));
    item.insert("updated_at".into(), n(notification.updated_at.millis()));
    if let Some(deliver_by) = notification.deliver_by {
        item.insert("deliver_by".into(), n(deliver_by.millis()));
    }
    super::notification_log::index_keys(&mut item, notification);
    if notification.status.is_unsettled() {
        super::unsettled::index_new(&mut item, &notification.id, notification.created_at);
    }
    item.insert("expires_at".into(), n(expires_at.epoch_seconds()));
    item
}

pub(super) fn notification_from(item: &Item) -> Result<Notification, BackendError> {
    let id = item.str("notification_id")?;
    let event_id = item.str("event_id")?;
    let channel = item.str("channel")?;
    let status = item.str("status")?;
    let pinned = match (item.opt_str("template_locale"), item.opt_int("template_version")) {
        (Some(locale), Some(version)) => Some(PinnedTemplate {
            name: item.str("template")?.to_owned(),
            locale: locale.to_owned(),
            version: u32::try_from(version).map_err(|_| corrupt("read", "template version"))?,
        }),
        _ => None,
    };
    Ok(Notification {
        id: NotificationId::parse(id).ok_or_else(|| corrupt("read", format!("notification id {id}")))?,
        tenant: TenantId::new(item.str("tenant")?),
        event_id: EventId::parse(event_id).ok_or_else(|| corrupt("read", format!("event id {event_id}")))?,
        event: item.str("event")?.to_owned(),
        rule_id: item.str("rule_id")?.to_owned(),
        channel: channel
            .parse()
            .map_err(|_| corrupt("read", format!("channel {channel}")))?,
        status: status
            .parse::<NotificationStatus>()
            .map_err(|message| corrupt("read", message))?,
        reason: item.opt_str("reason").map(str::to_owned),
        detail: item.opt_str("detail").map(str::to_owned),
        to: item.opt_str("to").map(str::to_owned),
        template: item.str("template")?.to_owned(),
        pinned,
        user_id: item.opt_str("user_id").map(str::to_owned),
        created_at: Timestamp::from_millis(item.int("created_at")?),
        updated_at: Timestamp::from_millis(item.int("updated_at")?),
        sent_at: item.opt_int("sent_at").map(Timestamp::from_millis),
        provider_message_id: item.opt_str("provider_message_id").map(str::to_owned),
        next_attempt_at: item.opt_int("next_attempt_at").map(Timestamp::from_millis),
        failures: item.opt_int("failures").map_or(Ok(0), |failures| {
            u32::try_from(failures).map_err(|_| corrupt("read", "failures"))
        })?,
        deliver_by: item.opt_int("deliver_by").map(Timestamp::from_millis),
        correlation_id: item.opt_str("correlation_id").map(str::to_owned),
    })
}

impl DynamoActivityStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The items of `keys` that exist, read consistently in as few BatchGetItems as DynamoDB allows (keys
    /// it leaves unprocessed, under throttling, are asked again a few times).
    async fn batch_get(&self, operation: &'static str, keys: Vec<Item>) -> Result<Vec<Item>, BackendError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            let mut pending = Some(built(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build(),
            )?);
            let mut rounds = 0u64;
            while let Some(request) = pending.take() {
                rounds += 1;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|error| backend_error("DynamoDB", operation, &error))?;
                found.extend(
                    output
                        .responses
                        .unwrap_or_default()
                        .remove(&self.table)
                        .unwrap_or_default(),
                );
                pending = output
                    .unprocessed_keys
                    .and_then(|mut unprocessed| unprocessed.remove(&self.table));
                if pending.is_some() {
                    if rounds >= 5 {
                        return Err(BackendError {
                            service: "DynamoDB",
                            operation,
                            message: "keys still unprocessed after 5 rounds".into(),
                            retryable: true,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(25 * rounds)).await;
                }
            }
        }
        Ok(found)
    }

    async fn consistent_get(&self, operation: &'static str, key: Item) -> Result<Option<Item>, BackendError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", operation, &error))?;
        Ok(output.item)
    }

    fn acceptance_writes(
        &self,
        acceptance: &Acceptance,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<aws_sdk_dynamodb::types::TransactWriteItem>, BackendError> {
        let event = &acceptance.event;
        let lease_until = Timestamp::from_millis(now.millis().saturating_add(duration_millis(lease)));
        let mut writes = Vec::with_capacity(acceptance.notifications.len() + 2);
        if let Some(record) = &acceptance.idempotency {
            // An expired record still on the table (TTL deletion lags) counts as absent.
            let put = aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.table)
                .set_item(Some(idempotency_item(&event.tenant, record)))
                .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
                .expression_attribute_values(":now", n(now.epoch_seconds()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
            writes.push(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(built(put.build())?)
                    .build(),
            );
        }
        writes.push(put(
            &self.table,
            event_item(event, lease_until),
            Some("attribute_not_exists(pk)"),
            &[],
        )?);
        for notification in &acceptance.notifications {
            let item = notification_item(notification, event.expires_at);
            writes.push(put(&self.table, item, Some("attribute_not_exists(pk)"), &[])?);
        }
        // Last, so a counter's index in the cancellation reasons is its place after the others.
        for counter in &acceptance.rate_counters {
            let update = aws_sdk_dynamodb::types::Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(counter.key.clone(), "RATE")))
                .update_expression(super::COUNTER_UPDATE)
                .condition_expression(super::COUNTER_CONDITION)
                .set_expression_attribute_values(Some(super::counter_values(counter)));
            writes.push(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .update(built(update.build())?)
                    .build(),
            );
        }
        Ok(writes)
    }
}

impl ActivityStore for DynamoActivityStore {
    async fn record_acceptance(
        &self,
        acceptance: &Acceptance,
        fanout_lease: Duration,
    ) -> Result<Recorded, BackendError> {
        let tenant = &acceptance.event.tenant;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let writes = self.acceptance_writes(acceptance, Timestamp::now(), fanout_lease)?;
            let cancelled = match transact(&self.client, "TransactWriteItems(accept event)", writes).await {
                Ok(()) => return Ok(Recorded::New),
                Err(Cancelled::Backend(error)) => return Err(error),
                Err(cancelled) => cancelled,
            };
            if acceptance.idempotency.is_some() && cancelled.failed_at(0) {
                let old = match &cancelled {
                    Cancelled::Reasons(items, _) => items.first().cloned().flatten(),
                    Cancelled::Backend(_) => None,
                };
                let old = if let Some(item) = old {
                    Some(item)
                } else {
                    let key_text = acceptance
                        .idempotency
                        .as_ref()
                        .map_or("", |record| record.key.as_str());
                    self.consistent_get("GetItem(idempotency)", idempotency_key(tenant, key_text))
                        .await?
                };
                if let Some(old) = old {
                    let record = idempotency_from(&old)?;
                    // The event id is made fresh by each request: a record naming ours is this request's own
                    // write, committed by an earlier attempt whose answer was lost (the SDK retried it).
                    if record.event_id == acceptance.event.id {
                        return Ok(Recorded::New);
                    }
                    return Ok(Recorded::Existing(record));
                }
            }
            // Likewise the event item: it can only exist if an earlier attempt of this request committed.
            let event_index = usize::from(acceptance.idempotency.is_some());
            if cancelled.failed_at(event_index) {
                return Ok(Recorded::New);
            }
            let first_counter = event_index + 1 + acceptance.notifications.len();
            let full: Vec<NotificationId> = acceptance
                .rate_counters
                .iter()
                .enumerate()
                .filter(|(index, _)| cancelled.failed_at(first_counter + index))
                .flat_map(|(_, counter)| counter.notification_ids.iter().cloned())
                .collect();
            if !full.is_empty() {
                return Ok(Recorded::RateLimited(full));
            }
            // Only a collision with a concurrent transaction is worth another try; any other cancellation
            // (a condition on the event or a notification, a validation error) would fail the same way.
            if attempt >= TRANSACTION_ATTEMPTS || !cancelled.conflicted() {
                return Err(BackendError {
                    service: "DynamoDB",
                    operation: "TransactWriteItems(accept event)",
                    message: format!("transaction cancelled: {cancelled:?}"),
                    retryable: cancelled.conflicted(),
                });
            }
            // A concurrent transaction on the same key: back off briefly, then read its outcome.
            tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
        }
    }

    async fn event(&self, tenant: &TenantId, id: &EventId) -> Result<Option<StoredEvent>, BackendError> {
        let item = self
            .consistent_get("GetItem(event)", event_key(tenant, id))
            .await?;
        let event = item.as_ref().map(event_from).transpose()?;
        // TTL deletion lags by up to days; an expired event is gone as far as clients are concerned.
        Ok(event.filter(|event| event.expires_at > Timestamp::now()))
    }

    async fn events(&self, keys: &[(TenantId, EventId)]) -> Result<Vec<StoredEvent>, BackendError> {
        let mut unique: Vec<&(TenantId, EventId)> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        let items = self
            .batch_get(
                "BatchGetItem(events)",
                unique.iter().map(|(tenant, id)| event_key(tenant, id)).collect(),
            )
            .await?;
        let now = Timestamp::now();
        let events = items.iter().map(event_from).collect::<Result<Vec<_>, _>>()?;
        Ok(events
            .into_iter()
            .filter(|event| event.expires_at > now)
            .collect())
    }

    async fn notifications(
        &self,
        tenant: &TenantId,
        ids: &[NotificationId],
    ) -> Result<Vec<Notification>, BackendError> {
        let keys = ids.iter().map(|id| notification_key(tenant, id)).collect();
        let mut found: HashMap<String, Notification> = HashMap::with_capacity(ids.len());
        for item in self.batch_get("BatchGetItem(notifications)", keys).await? {
            let notification = notification_from(&item)?;
            found.insert(notification.id.as_str().to_owned(), notification);
        }
        Ok(ids.iter().filter_map(|id| found.remove(id.as_str())).collect())
    }

    async fn claim_fanout(
        &self,
        tenant: &TenantId,
        id: &EventId,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, BackendError> {
        let until = now.millis().saturating_add(duration_millis(lease));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(event_key(tenant, id)))
            .update_expression("SET fanout_lease_until = :until")
            .condition_expression(
                "attribute_exists(fanout_pending) AND (attribute_not_exists(fanout_lease_until) OR fanout_lease_until < :now)",
            )
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now.millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(aws_sdk_dynamodb::operation::update_item::UpdateItemError::is_conditional_check_failed_exception) => Ok(false),
            Err(error) => Err(backend_error("DynamoDB", "UpdateItem(claim fan-out)", &error)),
        }
    }

    async fn finish_fanout(&self, tenant: &TenantId, id: &EventId) -> Result<(), BackendError> {
        self.remove(
            tenant,
            id,
            "REMOVE fanout_pending, fanout_lease_until",
            "UpdateItem(finish fan-out)",
        )
        .await
    }

    async fn release_fanout(&self, tenant: &TenantId, id: &EventId) -> Result<(), BackendError> {
        self.remove(
            tenant,
            id,
            "REMOVE fanout_lease_until",
            "UpdateItem(release fan-out)",
        )
        .await
    }

    async fn pending_fanouts(
        &self,
        received_before: Timestamp,
        limit: u16,
    ) -> Result<Vec<(TenantId, EventId)>, BackendError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("fanout_pending")
            .key_condition_expression("fanout_pending = :pending AND received_at < :before")
            .expression_attribute_values(":pending", s(FANOUT_PENDING))
            .expression_attribute_values(":before", n(received_before.millis()))
            .limit(i32::from(limit))
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "Query(pending fan-outs)", &error))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let pk = item.str("pk")?;
                event_from_key(pk).ok_or_else(|| corrupt("read", format!("event key {pk}")))
            })
            .collect()
    }
}

/// The tenant and event id in an event's key, `T#{tenant}#EVT#{id}`.
fn event_from_key(pk: &str) -> Option<(TenantId, EventId)> {
    let (tenant, id) = pk.strip_prefix("T#")?.rsplit_once("#EVT#")?;
    Some((TenantId::new(tenant), EventId::parse(id)?))
}

impl DynamoActivityStore {
    async fn remove(
        &self,
        tenant: &TenantId,
        id: &EventId,
        expression: &str,
        operation: &'static str,
    ) -> Result<(), BackendError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(event_key(tenant, id)))
            .update_expression(expression)
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", operation, &error))?;
        Ok(())
    }
}
