//! Tenants' event types in the config table: one item each, replaced by a single update that keeps its
//! creation time.

use super::config_store::{DynamoConfigStore, tenant_pk};
use super::{Item, ItemExt, key, n, s};
use crate::adapters::backend_error;
use crate::domain::event_type::{EventType, EventTypeSpec};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{BackendError, EventTypeStore, Page, PageRequest, Saved};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

fn event_type_from(item: &Item) -> Result<EventType, BackendError> {
    Ok(EventType {
        name: item.str("name")?.to_owned(),
        spec: EventTypeSpec {
            description: item.opt_str("description").map(str::to_owned),
            schema: item.json("schema")?,
            category: item.opt_str("category").map(str::to_owned),
            critical: item.flag("critical"),
            max_age_seconds: item
                .opt_int("max_age_seconds")
                .and_then(|seconds| u64::try_from(seconds).ok()),
            rate_limit_per_minute: item
                .opt_int("rate_limit_per_minute")
                .and_then(|limit| u32::try_from(limit).ok()),
        },
        created_at: Timestamp::from_millis(item.int("created_at")?),
        updated_at: Timestamp::from_millis(item.int("updated_at")?),
    })
}

impl EventTypeStore for DynamoConfigStore {
    async fn put_event_type(
        &self,
        tenant: &TenantId,
        name: &str,
        spec: &EventTypeSpec,
        now: Timestamp,
    ) -> Result<Saved, BackendError> {
        // One update (not a put) keeps created_at, and its old values say atomically whether it created.
        // Every attribute goes through a placeholder: `name` and `schema` are DynamoDB reserved words.
        let optional = [
            ("description", spec.description.clone()),
            ("category", spec.category.clone()),
            ("schema", spec.schema.as_ref().map(ToString::to_string)),
        ];
        let mut sets = vec![
            "#name = :name".to_owned(),
            "#critical = :critical".to_owned(),
            "#updated_at = :now".to_owned(),
            "#created_at = if_not_exists(#created_at, :now)".to_owned(),
        ];
        let mut removes = Vec::new();
        let numbers = [
            ("max_age_seconds", spec.max_age_seconds),
            ("rate_limit_per_minute", spec.rate_limit_per_minute.map(u64::from)),
        ];
        let mut values = HashMap::new();
        for (attribute, value) in numbers {
            match value {
                Some(value) => {
                    sets.push(format!("{attribute} = :{attribute}"));
                    values.insert(format!(":{attribute}"), n(value));
                }
                None => removes.push(attribute.to_owned()),
            }
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant_pk(tenant), format!("ETYPE#{name}"))))
            .set_expression_attribute_values(Some(values))
            .expression_attribute_values(":name", s(name))
            .expression_attribute_values(":critical", AttributeValue::Bool(spec.critical))
            .expression_attribute_values(":now", n(now.millis()))
            .return_values(ReturnValue::AllOld);
        for attribute in ["name", "critical", "updated_at", "created_at"] {
            request = request.expression_attribute_names(format!("#{attribute}"), attribute);
        }
        for (attribute, value) in optional {
            request = request.expression_attribute_names(format!("#{attribute}"), attribute);
            match value {
                Some(value) => {
                    sets.push(format!("#{attribute} = :{attribute}"));
                    request = request.expression_attribute_values(format!(":{attribute}"), s(value));
                }
                None => removes.push(format!("#{attribute}")),
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression = format!("{expression} REMOVE {}", removes.join(", "));
        }
        let output = request
            .update_expression(expression)
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "UpdateItem(event type)", &error))?;
        let existed = output
            .attributes
            .is_some_and(|old| old.contains_key("created_at"));
        Ok(if existed { Saved::Replaced } else { Saved::Created })
    }

    async fn event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>, BackendError> {
        let item = self
            .get(
                "GetItem(event type)",
                key(tenant_pk(tenant), format!("ETYPE#{name}")),
            )
            .await?;
        item.as_ref().map(event_type_from).transpose()
    }

    async fn list_event_types(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<EventType>, BackendError> {
        let (items, next) = self
            .query_prefix("Query(event types)", tenant, "ETYPE#", page)
            .await?;
        Ok(Page {
            items: items.iter().map(event_type_from).collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn delete_event_type(&self, tenant: &TenantId, name: &str) -> Result<bool, BackendError> {
        self.delete(
            "DeleteItem(event type)",
            key(tenant_pk(tenant), format!("ETYPE#{name}")),
        )
        .await
    }
}
