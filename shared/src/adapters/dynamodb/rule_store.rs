//! Tenants' rules in the config table, counted per event type with a conditional counter (decision 3).

use super::config_store::{DynamoConfigStore, WRITE_ATTEMPTS, rule_count_key, tenant_pk};
use super::{
    Cancelled, Item, ItemExt, RULES_BY_EVENT_INDEX, built, corrupt, key, n, page_token, put, put_opt, s,
    start_key, transact,
};
use crate::adapters::backend_error;
use crate::domain::rule::{MAX_RULES_PER_EVENT_TYPE, Rule, RuleSpec};
use crate::domain::{FieldError, TenantId, Timestamp};
use crate::ports::{BackendError, Page, PageRequest, RuleStore, Saved, WriteError};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};

fn rule_from(item: &Item) -> Result<Rule, BackendError> {
    let channel = item.str("channel")?;
    Ok(Rule {
        id: item.str("id")?.to_owned(),
        spec: RuleSpec {
            event: item.str("event")?.to_owned(),
            channel: channel
                .parse()
                .map_err(|_| corrupt("read", format!("rule channel {channel}")))?,
            template: item.str("template")?.to_owned(),
            condition: item.json("condition")?,
            enabled: item.flag("enabled"),
        },
        created_at: Timestamp::from_millis(item.int("created_at")?),
        updated_at: Timestamp::from_millis(item.int("updated_at")?),
    })
}

fn rule_item(tenant: &TenantId, id: &str, spec: &RuleSpec, created_at: Timestamp, now: Timestamp) -> Item {
    let mut item = key(tenant_pk(tenant), format!("RULE#{id}"));
    item.insert(
        "gsi1pk".into(),
        s(format!("TENANT#{tenant}#EVENT#{}", spec.event)),
    );
    item.insert("gsi1sk".into(), s(format!("RULE#{id}")));
    item.insert("id".into(), s(id));
    item.insert("event".into(), s(&spec.event));
    item.insert("channel".into(), s(spec.channel.as_str()));
    item.insert("template".into(), s(&spec.template));
    put_opt(
        &mut item,
        "condition",
        spec.condition.as_ref().map(ToString::to_string),
    );
    item.insert("enabled".into(), AttributeValue::Bool(spec.enabled));
    item.insert("created_at".into(), n(created_at.millis()));
    item.insert("updated_at".into(), n(now.millis()));
    item
}

impl DynamoConfigStore {
    /// Moves an event type's rule count by `delta`; an increase is refused past the limit.
    fn count_rules(
        &self,
        tenant: &TenantId,
        event: &str,
        delta: i64,
    ) -> Result<TransactWriteItem, BackendError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(rule_count_key(tenant, event)))
            .update_expression("ADD #rules :delta")
            .expression_attribute_names("#rules", "rules")
            .expression_attribute_values(":delta", n(delta));
        if delta > 0 {
            update = update
                .condition_expression("attribute_not_exists(#rules) OR #rules < :max")
                .expression_attribute_values(":max", n(MAX_RULES_PER_EVENT_TYPE as u64));
        }
        Ok(TransactWriteItem::builder()
            .update(built(update.build())?)
            .build())
    }
}

impl RuleStore for DynamoConfigStore {
    async fn put_rule(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: &RuleSpec,
        now: Timestamp,
    ) -> Result<Saved, WriteError> {
        for _ in 0..WRITE_ATTEMPTS {
            let old = self.rule(tenant, id).await?;
            let created_at = old.as_ref().map_or(now, |old| old.created_at);
            let item = rule_item(tenant, id, spec, created_at, now);
            let (writes, count_index) = match &old {
                None => (
                    vec![
                        put(&self.table, item, Some("attribute_not_exists(pk)"), &[])?,
                        self.count_rules(tenant, &spec.event, 1)?,
                    ],
                    Some(1),
                ),
                Some(old) => {
                    let same_event = old.spec.event == spec.event;
                    let mut writes = vec![put(
                        &self.table,
                        item,
                        Some("#event = :old_event"),
                        &[(":old_event", s(&old.spec.event))],
                    )?];
                    if !same_event {
                        writes.push(self.count_rules(tenant, &old.spec.event, -1)?);
                        writes.push(self.count_rules(tenant, &spec.event, 1)?);
                    }
                    (writes, (!same_event).then_some(2))
                }
            };
            match transact(&self.client, "TransactWriteItems(rule)", writes).await {
                Ok(()) => {
                    return Ok(if old.is_some() {
                        Saved::Replaced
                    } else {
                        Saved::Created
                    });
                }
                Err(Cancelled::Backend(error)) => return Err(error.into()),
                Err(cancelled) if count_index.is_some_and(|index| cancelled.failed_at(index)) => {
                    return Err(WriteError::Invalid(FieldError::new(
                        "/event",
                        format!(
                            "event type {} already has {MAX_RULES_PER_EVENT_TYPE} rules",
                            spec.event
                        ),
                    )));
                }
                Err(_) => {} // the rule changed under us: read it again
            }
        }
        Err(WriteError::Conflict(format!(
            "rule {id} is being changed by another request; retry"
        )))
    }

    async fn rule(&self, tenant: &TenantId, id: &str) -> Result<Option<Rule>, BackendError> {
        let item = self
            .get("GetItem(rule)", key(tenant_pk(tenant), format!("RULE#{id}")))
            .await?;
        item.as_ref().map(rule_from).transpose()
    }

    async fn list_rules(
        &self,
        tenant: &TenantId,
        event: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Rule>, BackendError> {
        let (items, next) = match event {
            None => self.query_prefix("Query(rules)", tenant, "RULE#", page).await?,
            Some(event) => {
                let pk = tenant_pk(tenant);
                let gsi1pk = format!("TENANT#{tenant}#EVENT#{event}");
                let output = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(RULES_BY_EVENT_INDEX)
                    .key_condition_expression("gsi1pk = :gsi1pk")
                    .expression_attribute_values(":gsi1pk", s(&gsi1pk))
                    .limit(i32::from(page.limit))
                    .set_exclusive_start_key(start_key(
                        &[("pk", &pk), ("gsi1pk", &gsi1pk)],
                        "RULE#",
                        page.after.as_deref(),
                    ))
                    .send()
                    .await
                    .map_err(|error| backend_error("DynamoDB", "Query(rules by event)", &error))?;
                (
                    output.items.unwrap_or_default(),
                    page_token(output.last_evaluated_key.as_ref()),
                )
            }
        };
        Ok(Page {
            items: items.iter().map(rule_from).collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn rules_for_event(&self, tenant: &TenantId, event: &str) -> Result<Vec<Rule>, BackendError> {
        let mut rules = Vec::new();
        let mut page = PageRequest {
            limit: 100,
            after: None,
        };
        loop {
            let listed = self.list_rules(tenant, Some(event), &page).await?;
            rules.extend(listed.items);
            match listed.next {
                Some(next) => page.after = Some(next),
                None => return Ok(rules),
            }
        }
    }

    async fn delete_rule(&self, tenant: &TenantId, id: &str) -> Result<bool, WriteError> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some(old) = self.rule(tenant, id).await? else {
                return Ok(false);
            };
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(tenant_pk(tenant), format!("RULE#{id}"))))
                .condition_expression("#event = :event")
                .expression_attribute_names("#event", "event")
                .expression_attribute_values(":event", s(&old.spec.event))
                .build();
            let delete = built(delete)?;
            let writes = vec![
                TransactWriteItem::builder().delete(delete).build(),
                self.count_rules(tenant, &old.spec.event, -1)?,
            ];
            match transact(&self.client, "TransactWriteItems(delete rule)", writes).await {
                Ok(()) => return Ok(true),
                Err(Cancelled::Backend(error)) => return Err(error.into()),
                Err(Cancelled::Reasons(..)) => {}
            }
        }
        Err(WriteError::Conflict(format!(
            "rule {id} is being changed by another request; retry"
        )))
    }
}
