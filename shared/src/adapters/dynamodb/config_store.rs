//! Tenants' API keys, event types, templates and rules in the config table.

use super::{
    Cancelled, Item, ItemExt, RULES_BY_EVENT_INDEX, built, corrupt, key, n, page_token, put, put_opt, s,
    start_key, transact,
};
use crate::adapters::backend_error;
use crate::domain::event_type::{EventType, EventTypeSpec};
use crate::domain::rule::{MAX_RULES_PER_EVENT_TYPE, Rule, RuleSpec};
use crate::domain::template::{TemplateContent, TemplateHead, TemplateVersion};
use crate::domain::{Channel, FieldError, TenantId, Timestamp};
use crate::ports::{
    ApiKeyStore, BackendError, EventTypeStore, Page, PageRequest, RuleStore, Saved, TemplateStore, WriteError,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, ReturnValue, TransactWriteItem, Update};
use std::collections::{BTreeMap, HashMap};

/// How often a write that lost a race re-reads and tries again before answering 409.
pub(super) const WRITE_ATTEMPTS: usize = 4;

#[derive(Debug, Clone)]
pub struct DynamoConfigStore {
    client: Client,
    table: String,
}

fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn template_version_sk(name: &str, locale: &str, version: u32) -> String {
    format!("TPLV#{name}#{locale}#{version:010}")
}

fn rule_count_key(tenant: &TenantId, event: &str) -> Item {
    key(tenant_pk(tenant), format!("RULECOUNT#{event}"))
}

impl DynamoConfigStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, operation: &'static str, key: Item) -> Result<Option<Item>, BackendError> {
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
    async fn query_prefix(
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

    async fn delete(&self, operation: &'static str, key: Item) -> Result<bool, BackendError> {
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

// ---------------------------------------------------------------------------------------------- keys

impl ApiKeyStore for DynamoConfigStore {
    async fn tenant_for_key(&self, key_hash: &str) -> Result<Option<TenantId>, BackendError> {
        let item = self
            .get("GetItem(api key)", key(format!("KEY#{key_hash}"), "KEY"))
            .await?;
        item.map(|item| item.str("tenant").map(TenantId::new)).transpose()
    }

    async fn put_api_key(
        &self,
        tenant: &TenantId,
        key_hash: &str,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let mut item = key(format!("KEY#{key_hash}"), "KEY");
        item.insert("tenant".into(), s(tenant.as_str()));
        item.insert("created_at".into(), n(now.millis()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "PutItem(api key)", &error))?;
        Ok(())
    }
}

// --------------------------------------------------------------------------------------- event types

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
        match spec.max_age_seconds {
            Some(_) => sets.push("max_age_seconds = :max_age".to_owned()),
            None => removes.push("max_age_seconds".to_owned()),
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant_pk(tenant), format!("ETYPE#{name}"))))
            .set_expression_attribute_values(
                spec.max_age_seconds
                    .map(|seconds| HashMap::from([(":max_age".to_owned(), n(seconds))])),
            )
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

// --------------------------------------------------------------------------------------------- rules

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
