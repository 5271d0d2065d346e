//! Tenants' webhook endpoints in the config table: `TENANT#<t>` / `WEBHOOK#<id>`, one item each, every
//! change one conditional `UpdateItem`, so a delivery marking the endpoint failing and a tenant's PUT at the
//! same moment both keep what they wrote.

use super::config_store::{DynamoConfigStore, tenant_pk};
use super::{Item, ItemExt, corrupt, key, n, s};
use crate::adapters::backend_error;
use crate::domain::webhook::{DisabledBy, EndpointSpec, RetiringSecret, SigningSecret, WebhookEndpoint};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{BackendError, Page, PageRequest, Saved, WebhookEndpointStore};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

const SK_PREFIX: &str = "WEBHOOK#";

fn endpoint_key(tenant: &TenantId, id: &str) -> Item {
    key(tenant_pk(tenant), format!("{SK_PREFIX}{id}"))
}

fn endpoint_from(item: &Item) -> Result<WebhookEndpoint, BackendError> {
    let secret = |name: &str| {
        item.opt_str(name)
            .map(|text| SigningSecret::parse(text).map_err(|why| corrupt("read", format!("{name}: {why}"))))
            .transpose()
    };
    let event_types = match item.get("event_types") {
        Some(AttributeValue::L(names)) => names
            .iter()
            .map(|name| name.as_s().cloned().map_err(|_| corrupt("read", "event_types")))
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let previous_secret = match (secret("previous_secret")?, item.opt_int("previous_secret_until")) {
        (Some(secret), Some(until)) => Some(RetiringSecret {
            secret,
            until: Timestamp::from_millis(until),
        }),
        _ => None,
    };
    let disabled_by = item
        .opt_str("disabled_by")
        .map(|by| DisabledBy::parse(by).ok_or_else(|| corrupt("read", format!("disabled_by {by}"))))
        .transpose()?;
    let sk = item.str("sk")?;
    Ok(WebhookEndpoint {
        id: sk.strip_prefix(SK_PREFIX).unwrap_or(sk).to_owned(),
        spec: EndpointSpec {
            url: item.str("url")?.to_owned(),
            description: item.opt_str("description").map(str::to_owned),
            event_types,
            enabled: item.flag("enabled"),
        },
        secret: secret("secret")?.ok_or_else(|| corrupt("read", "secret missing"))?,
        previous_secret,
        disabled_by,
        failing_since: item.opt_int("failing_since").map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(item.int("created_at")?),
        updated_at: Timestamp::from_millis(item.int("updated_at")?),
    })
}

/// An `UpdateItem` that applies only to an endpoint that exists: `Ok(None)` when it does not.
async fn update_existing(
    update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    operation: &'static str,
) -> Result<Option<Item>, BackendError> {
    match update
        .condition_expression("attribute_exists(pk)")
        .return_values(ReturnValue::AllNew)
        .send()
        .await
    {
        Ok(output) => Ok(output.attributes),
        Err(SdkError::ServiceError(failed)) if failed.err().is_conditional_check_failed_exception() => {
            Ok(None)
        }
        Err(error) => Err(backend_error("DynamoDB", operation, &error)),
    }
}

impl DynamoConfigStore {
    fn endpoint_update(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(endpoint_key(tenant, id)))
    }
}

impl WebhookEndpointStore for DynamoConfigStore {
    async fn put_endpoint(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: &EndpointSpec,
        secret: &SigningSecret,
        now: Timestamp,
    ) -> Result<(Saved, WebhookEndpoint), BackendError> {
        let mut sets = vec![
            "#url = :url",
            "#event_types = :event_types",
            "#enabled = :enabled",
            "#secret = if_not_exists(#secret, :secret)",
            "#created_at = if_not_exists(#created_at, :now)",
            "#updated_at = :now",
            // 1 on the PUT that created the item: how the answer tells 201 from 200, exactly.
            "#revision = if_not_exists(#revision, :zero) + :one",
        ];
        let mut removes = Vec::new();
        let mut values = HashMap::from([
            (":url".to_owned(), s(&spec.url)),
            (
                ":event_types".to_owned(),
                AttributeValue::L(spec.event_types.iter().map(s).collect()),
            ),
            (":enabled".to_owned(), AttributeValue::Bool(spec.enabled)),
            (":secret".to_owned(), s(secret.expose())),
            (":now".to_owned(), n(now.millis())),
            (":zero".to_owned(), n(0)),
            (":one".to_owned(), n(1)),
        ]);
        match &spec.description {
            Some(description) => {
                sets.push("#description = :description");
                values.insert(":description".into(), s(description));
            }
            None => removes.push("#description"),
        }
        if spec.enabled {
            removes.extend(["#disabled_by", "#failing_since"]);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression = format!("{expression} REMOVE {}", removes.join(", "));
        }
        let names = [
            "url",
            "event_types",
            "enabled",
            "secret",
            "created_at",
            "updated_at",
            "revision",
            "description",
            "disabled_by",
            "failing_since",
        ];
        // DynamoDB refuses a name the expression does not use.
        let names = names
            .iter()
            .filter(|name| expression.contains(&format!("#{name}")))
            .map(|name| (format!("#{name}"), (*name).to_owned()))
            .collect();
        let output = self
            .endpoint_update(tenant, id)
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "UpdateItem(webhook endpoint)", &error))?;
        let item = output.attributes.unwrap_or_default();
        let saved = if item.opt_int("revision") == Some(1) {
            Saved::Created
        } else {
            Saved::Replaced
        };
        Ok((saved, endpoint_from(&item)?))
    }

    async fn endpoint(&self, tenant: &TenantId, id: &str) -> Result<Option<WebhookEndpoint>, BackendError> {
        let item = self
            .get("GetItem(webhook endpoint)", endpoint_key(tenant, id))
            .await?;
        item.as_ref().map(endpoint_from).transpose()
    }

    async fn endpoints(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpoint>, BackendError> {
        let (items, next) = self
            .query_prefix("Query(webhook endpoints)", tenant, SK_PREFIX, page)
            .await?;
        Ok(Page {
            items: items.iter().map(endpoint_from).collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn delete_endpoint(&self, tenant: &TenantId, id: &str) -> Result<bool, BackendError> {
        self.delete("DeleteItem(webhook endpoint)", endpoint_key(tenant, id))
            .await
    }

    async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &str,
        secret: &SigningSecret,
        overlap_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, BackendError> {
        // DynamoDB evaluates every operand against the item before the update, so the old secret moves
        // while the new one takes its place.
        let update = self
            .endpoint_update(tenant, id)
            .update_expression(
                "SET previous_secret = secret, previous_secret_until = :until, secret = :secret, updated_at = :now",
            )
            .expression_attribute_values(":until", n(overlap_until.millis()))
            .expression_attribute_values(":secret", s(secret.expose()))
            .expression_attribute_values(":now", n(now.millis()));
        let item = update_existing(update, "UpdateItem(rotate webhook secret)").await?;
        item.as_ref().map(endpoint_from).transpose()
    }

    async fn mark_failing(&self, tenant: &TenantId, id: &str, since: Timestamp) -> Result<(), BackendError> {
        let update = self
            .endpoint_update(tenant, id)
            .update_expression("SET failing_since = if_not_exists(failing_since, :since)")
            .expression_attribute_values(":since", n(since.millis()));
        update_existing(update, "UpdateItem(webhook endpoint failing)").await?;
        Ok(())
    }

    async fn mark_healthy(&self, tenant: &TenantId, id: &str) -> Result<(), BackendError> {
        let update = self
            .endpoint_update(tenant, id)
            .update_expression("REMOVE failing_since");
        update_existing(update, "UpdateItem(webhook endpoint healthy)").await?;
        Ok(())
    }

    async fn disable(
        &self,
        tenant: &TenantId,
        id: &str,
        by: DisabledBy,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let update = self
            .endpoint_update(tenant, id)
            .update_expression("SET disabled_by = :by, updated_at = :now")
            .expression_attribute_values(":by", s(by.as_str()))
            .expression_attribute_values(":now", n(now.millis()));
        update_existing(update, "UpdateItem(disable webhook endpoint)").await?;
        Ok(())
    }
}
