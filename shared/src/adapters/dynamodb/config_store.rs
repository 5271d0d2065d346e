//! The config table: the store itself and its shared reads, and templates (API keys, event types and rules
//! are in `api_keys.rs`, `event_type_store.rs` and `rule_store.rs`).

use super::{Cancelled, Item, ItemExt, built, corrupt, key, n, page_token, put, s, start_key, transact};
use crate::adapters::backend_error;
use crate::domain::template::{TemplateContent, TemplateHead, TemplateVersion};
use crate::domain::{Channel, TenantId, Timestamp};
use crate::ports::{BackendError, Page, PageRequest, TemplateStore, WriteError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use std::collections::{BTreeMap, HashMap};

/// How often a write that lost a race re-reads and tries again before answering 409.
pub(super) const WRITE_ATTEMPTS: usize = 4;

#[derive(Debug, Clone)]
pub struct DynamoConfigStore {
    pub(super) client: Client,
    pub(super) table: String,
}

pub(super) fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn template_version_sk(name: &str, locale: &str, version: u32) -> String {
    format!("TPLV#{name}#{locale}#{version:010}")
}

pub(super) fn rule_count_key(tenant: &TenantId, event: &str) -> Item {
    key(tenant_pk(tenant), format!("RULECOUNT#{event}"))
}

impl DynamoConfigStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub(super) async fn get(&self, operation: &'static str, key: Item) -> Result<Option<Item>, BackendError> {
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

    /// One page of the tenant's items whose sort key starts with `prefix`.
    pub(super) async fn query_prefix(
        &self,
        operation: &'static str,
        tenant: &TenantId,
        prefix: &str,
        page: &PageRequest,
    ) -> Result<(Vec<Item>, Option<String>), BackendError> {
        let pk = tenant_pk(tenant);
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":prefix", s(prefix))
            .limit(i32::from(page.limit))
            .set_exclusive_start_key(start_key(&[("pk", &pk)], prefix, page.after.as_deref()))
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", operation, &error))?;
        Ok((
            output.items.unwrap_or_default(),
            page_token(output.last_evaluated_key.as_ref()),
        ))
    }

    pub(super) async fn delete(&self, operation: &'static str, key: Item) -> Result<bool, BackendError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", operation, &error))?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }
}

// ----------------------------------------------------------------------------------------- templates

fn template_head_from(item: &Item) -> Result<TemplateHead, BackendError> {
    let channel = item.str("channel")?;
    let live = item
        .get("live")
        .and_then(|value| value.as_m().ok())
        .ok_or_else(|| corrupt("read", "template head without live versions"))?;
    let live_versions = live
        .iter()
        .map(|(locale, version)| {
            let version = version.as_n().ok().and_then(|v| v.parse().ok());
            version
                .map(|v| (locale.clone(), v))
                .ok_or_else(|| corrupt("read", format!("live version of {locale}")))
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    Ok(TemplateHead {
        name: item.str("name")?.to_owned(),
        channel: channel
            .parse()
            .map_err(|_| corrupt("read", format!("channel {channel}")))?,
        default_locale: item.str("default_locale")?.to_owned(),
        live_versions,
        created_at: Timestamp::from_millis(item.int("created_at")?),
        updated_at: Timestamp::from_millis(item.int("updated_at")?),
    })
}

fn template_version_from(item: &Item) -> Result<TemplateVersion, BackendError> {
    let channel: Channel = item
        .str("channel")?
        .parse()
        .map_err(|_| corrupt("read", "template channel"))?;
    let parts = item.json("content")?.unwrap_or_default();
    let text = |name: &str| parts.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(TemplateVersion {
        name: item.str("name")?.to_owned(),
        version: u32::try_from(item.int("version")?).map_err(|_| corrupt("read", "template version"))?,
        content: TemplateContent {
            channel,
            locale: item.str("locale")?.to_owned(),
            subject: text("subject"),
            text: text("text"),
            html: text("html"),
            blocks: parts.get("blocks").filter(|b| !b.is_null()).cloned(),
            title: text("title"),
            data: parts.get("data").filter(|d| !d.is_null()).cloned(),
        },
        created_at: Timestamp::from_millis(item.int("created_at")?),
    })
}

impl TemplateStore for DynamoConfigStore {
    async fn put_template(
        &self,
        tenant: &TenantId,
        name: &str,
        content: &TemplateContent,
        now: Timestamp,
    ) -> Result<TemplateVersion, WriteError> {
        let pk = tenant_pk(tenant);
        let locale = &content.locale;
        for _ in 0..WRITE_ATTEMPTS {
            let head = self.template_head(tenant, name).await?;
            if let Some(head) = &head {
                if head.channel != content.channel {
                    return Err(WriteError::Conflict(format!(
                        "template {name} is a {} template; a name belongs to one channel",
                        head.channel
                    )));
                }
            }
            let current = head
                .as_ref()
                .and_then(|head| head.live_versions.get(locale).copied());
            let version = current.map_or(1, |v| v + 1);
            // The head's live version moves from `current` to `version` only if nobody moved it first.
            let head_write = if head.is_none() {
                let mut item = key(&pk, format!("TPL#{name}"));
                item.insert("name".into(), s(name));
                item.insert("channel".into(), s(content.channel.as_str()));
                item.insert("default_locale".into(), s(locale));
                item.insert(
                    "live".into(),
                    AttributeValue::M(HashMap::from([(locale.clone(), n(version))])),
                );
                item.insert("created_at".into(), n(now.millis()));
                item.insert("updated_at".into(), n(now.millis()));
                put(&self.table, item, Some("attribute_not_exists(pk)"), &[])?
            } else {
                let condition = if current.is_some() {
                    "#live.#locale = :current"
                } else {
                    "attribute_exists(pk) AND attribute_not_exists(#live.#locale)"
                };
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(&pk, format!("TPL#{name}"))))
                    .update_expression("SET #live.#locale = :version, #updated_at = :now")
                    .condition_expression(condition)
                    .expression_attribute_names("#locale", locale)
                    .expression_attribute_names("#live", "live")
                    .expression_attribute_names("#updated_at", "updated_at")
                    .expression_attribute_values(":version", n(version))
                    .expression_attribute_values(":now", n(now.millis()));
                if let Some(current) = current {
                    update = update.expression_attribute_values(":current", n(current));
                }
                TransactWriteItem::builder()
                    .update(built(update.build())?)
                    .build()
            };
            let mut item = key(&pk, template_version_sk(name, locale, version));
            item.insert("name".into(), s(name));
            item.insert("channel".into(), s(content.channel.as_str()));
            item.insert("locale".into(), s(locale));
            item.insert("version".into(), n(version));
            item.insert("content".into(), s(content.parts_json().to_string()));
            item.insert("created_at".into(), n(now.millis()));
            let version_write = put(&self.table, item, Some("attribute_not_exists(pk)"), &[])?;
            match transact(
                &self.client,
                "TransactWriteItems(template)",
                vec![head_write, version_write],
            )
            .await
            {
                Ok(()) => {
                    return Ok(TemplateVersion {
                        name: name.to_owned(),
                        version,
                        content: content.clone(),
                        created_at: now,
                    });
                }
                Err(Cancelled::Backend(error)) => return Err(error.into()),
                Err(Cancelled::Reasons(..)) => {} // another version landed first: read again
            }
        }
        Err(WriteError::Conflict(format!(
            "template {name} is being changed by another request; retry"
        )))
    }

    async fn template_head(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<TemplateHead>, BackendError> {
        let item = self
            .get("GetItem(template)", key(tenant_pk(tenant), format!("TPL#{name}")))
            .await?;
        item.as_ref().map(template_head_from).transpose()
    }

    async fn template_version(
        &self,
        tenant: &TenantId,
        name: &str,
        locale: &str,
        version: u32,
    ) -> Result<Option<TemplateVersion>, BackendError> {
        let sk = template_version_sk(name, locale, version);
        let item = self
            .get("GetItem(template version)", key(tenant_pk(tenant), sk))
            .await?;
        item.as_ref().map(template_version_from).transpose()
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<TemplateHead>, BackendError> {
        let (items, next) = self
            .query_prefix("Query(templates)", tenant, "TPL#", page)
            .await?;
        Ok(Page {
            items: items.iter().map(template_head_from).collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn delete_template(&self, tenant: &TenantId, name: &str) -> Result<bool, BackendError> {
        // The head goes first: once it is gone the name is free, and no new version can be pinned.
        let existed = self
            .delete(
                "DeleteItem(template)",
                key(tenant_pk(tenant), format!("TPL#{name}")),
            )
            .await?;
        let versions = format!("TPLV#{name}#");
        let mut page = PageRequest {
            limit: 100,
            after: None,
        };
        loop {
            let (items, next) = self
                .query_prefix("Query(template versions)", tenant, &versions, &page)
                .await?;
            for item in items {
                let sk = item.str("sk")?.to_owned();
                self.delete("DeleteItem(template version)", key(tenant_pk(tenant), sk))
                    .await?;
            }
            match next {
                Some(next) => page.after = Some(next),
                None => return Ok(existed),
            }
        }
    }
}
