//! Tenants' API keys in the config table (decision 24). Each key is two items written in one transaction:
//! the lookup every request reads, `KEY#<sha256>` / `KEY` (tenant, key id, scope), and its entry in the
//! tenant's list, `TENANT#<t>` / `APIKEY#<id>` (name, scope, created, revoked, and the hash it revokes), so
//! listing is one query of the tenant's partition and never a scan.

use super::config_store::{DynamoConfigStore, tenant_pk};
use super::{Cancelled, Item, ItemExt, built, corrupt, key, n, put, s, transact};
use crate::domain::api_key::{ApiKeyRecord, KeyGrant, KeyScope, NewApiKey, new_key_id, taken_message};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{ApiKeyStore, BackendError, Page, PageRequest, Revocation, WriteError};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

const ENTRY_PREFIX: &str = "APIKEY#";

fn lookup_key(hash: &str) -> Item {
    key(format!("KEY#{hash}"), "KEY")
}

fn entry_key(tenant: &TenantId, id: &str) -> Item {
    key(tenant_pk(tenant), format!("{ENTRY_PREFIX}{id}"))
}

fn scope_of(item: &Item) -> Result<KeyScope, BackendError> {
    // Keys stored before scopes existed have none, and could do everything.
    item.opt_str("scope").map_or(Ok(KeyScope::Full), |scope| {
        KeyScope::parse(scope).ok_or_else(|| corrupt("read", format!("API key scope {scope}")))
    })
}

fn record_from(tenant: &TenantId, item: &Item) -> Result<ApiKeyRecord, BackendError> {
    Ok(ApiKeyRecord {
        id: item.str("key_id")?.to_owned(),
        tenant: tenant.clone(),
        name: item.opt_str("name").map(str::to_owned),
        scope: scope_of(item)?,
        created_at: Timestamp::from_millis(item.int("created_at")?),
        revoked_at: item.opt_int("revoked_at").map(Timestamp::from_millis),
    })
}

/// A key's entry in its tenant's list.
fn entry_item(record: &ApiKeyRecord, hash: &str) -> Item {
    let mut entry = entry_key(&record.tenant, &record.id);
    entry.insert("key_id".into(), s(&record.id));
    entry.insert("key_hash".into(), s(hash));
    entry.insert("scope".into(), s(record.scope.as_str()));
    entry.insert("created_at".into(), n(record.created_at.millis()));
    if let Some(name) = &record.name {
        entry.insert("name".into(), s(name));
    }
    entry
}

/// Sets `revoked_at` on one item of a key, if `condition` holds.
fn revoke_item(
    table: &str,
    item_key: Item,
    condition: &str,
    now: Timestamp,
    values: &[(&str, &str)],
) -> Result<TransactWriteItem, BackendError> {
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(item_key))
        .update_expression("SET #revoked_at = :now")
        .condition_expression(condition)
        .expression_attribute_names("#revoked_at", "revoked_at")
        .expression_attribute_values(":now", n(now.millis()));
    for (name, value) in values {
        let attribute = name.trim_start_matches(':');
        update = update
            .expression_attribute_names(format!("#{attribute}"), attribute)
            .expression_attribute_values(*name, s(*value));
    }
    Ok(TransactWriteItem::builder()
        .update(built(update.build())?)
        .build())
}

impl DynamoConfigStore {
    async fn key_entry(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<(ApiKeyRecord, String)>, BackendError> {
        let item = self.get("GetItem(api key entry)", entry_key(tenant, id)).await?;
        item.map(|item| Ok((record_from(tenant, &item)?, item.str("key_hash")?.to_owned())))
            .transpose()
    }
}

impl DynamoConfigStore {
    /// Gives each key stored before decision 24 (a lookup with no key id) an id and an entry in its tenant's
    /// list, so it can be listed and revoked like the others; the keys given one. It scans the whole table:
    /// an operator runs it once after upgrading (`herald keys adopt`), no request ever does. Running it
    /// again, or twice at once, adopts each key once (the lookup's update is conditional on having no id).
    pub async fn adopt_unlisted_keys(&self) -> Result<Vec<ApiKeyRecord>, BackendError> {
        let mut adopted = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :key) AND attribute_not_exists(key_id)")
                .expression_attribute_values(":key", s("KEY#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| {
                    crate::adapters::backend_error("DynamoDB", "Scan(unlisted api keys)", &error)
                })?;
            for item in page.items() {
                if let Some(record) = self.adopt(item).await? {
                    adopted.push(record);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(adopted);
            }
        }
    }

    async fn adopt(&self, lookup: &Item) -> Result<Option<ApiKeyRecord>, BackendError> {
        let hash = lookup
            .str("pk")?
            .strip_prefix("KEY#")
            .ok_or_else(|| corrupt("Scan(unlisted api keys)", "an API key lookup without KEY#"))?;
        let tenant = TenantId::new(lookup.str("tenant")?);
        let record = ApiKeyRecord {
            id: new_key_id(),
            tenant: tenant.clone(),
            name: None,
            scope: scope_of(lookup)?,
            created_at: Timestamp::from_millis(lookup.opt_int("created_at").unwrap_or(0)),
            revoked_at: lookup.opt_int("revoked_at").map(Timestamp::from_millis),
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(lookup_key(hash)))
            .update_expression("SET #key_id = :key_id, #scope = :scope")
            .condition_expression("#tenant = :tenant AND attribute_not_exists(#key_id)")
            .expression_attribute_names("#key_id", "key_id")
            .expression_attribute_names("#scope", "scope")
            .expression_attribute_names("#tenant", "tenant")
            .expression_attribute_values(":key_id", s(&record.id))
            .expression_attribute_values(":scope", s(record.scope.as_str()))
            .expression_attribute_values(":tenant", s(tenant.as_str()));
        let mut entry = entry_item(&record, hash);
        if let Some(revoked_at) = record.revoked_at {
            entry.insert("revoked_at".into(), n(revoked_at.millis()));
        }
        let items = vec![
            TransactWriteItem::builder()
                .update(built(update.build())?)
                .build(),
            put(&self.table, entry, Some("attribute_not_exists(pk)"), &[])?,
        ];
        match transact(&self.client, "TransactWriteItems(adopt api key)", items).await {
            Ok(()) => Ok(Some(record)),
            Err(Cancelled::Backend(error)) => Err(error),
            // Adopted meanwhile by another run.
            Err(Cancelled::Reasons(..)) => Ok(None),
        }
    }
}

impl ApiKeyStore for DynamoConfigStore {
    async fn key_grant(&self, key_hash: &str) -> Result<Option<KeyGrant>, BackendError> {
        let Some(item) = self.get("GetItem(api key)", lookup_key(key_hash)).await? else {
            return Ok(None);
        };
        if item.opt_int("revoked_at").is_some() {
            return Ok(None);
        }
        // A key stored before keys had ids (`herald keys adopt`) is counted by its hash instead.
        let key_id = item.opt_str("key_id").map_or_else(
            || format!("hash-{}", key_hash.get(..16).unwrap_or(key_hash)),
            str::to_owned,
        );
        Ok(Some(KeyGrant {
            tenant: TenantId::new(item.str("tenant")?),
            key_id,
            scope: scope_of(&item)?,
        }))
    }

    async fn create_api_key(&self, new: &NewApiKey) -> Result<(), WriteError> {
        let record = &new.record;
        let mut lookup = lookup_key(&new.hash);
        lookup.insert("tenant".into(), s(record.tenant.as_str()));
        lookup.insert("key_id".into(), s(&record.id));
        lookup.insert("scope".into(), s(record.scope.as_str()));
        lookup.insert("created_at".into(), n(record.created_at.millis()));
        let entry = entry_item(record, &new.hash);
        // A stored hash is never overwritten: that would move the key to another tenant, or revive it.
        let items = vec![
            put(&self.table, lookup, Some("attribute_not_exists(pk)"), &[])?,
            put(&self.table, entry, Some("attribute_not_exists(pk)"), &[])?,
        ];
        let cancelled = match transact(&self.client, "TransactWriteItems(api key)", items).await {
            Ok(()) => return Ok(()),
            Err(Cancelled::Backend(error)) => return Err(error.into()),
            Err(cancelled) => cancelled,
        };
        if cancelled.failed_at(0) {
            let taken = self
                .get("GetItem(api key)", lookup_key(&new.hash))
                .await?
                .ok_or_else(|| corrupt("TransactWriteItems(api key)", "the key's lookup vanished"))?;
            let (tenant, id) = (taken.str("tenant")?, taken.str("key_id").unwrap_or("(none)"));
            // Our own write, whose answer was lost and whose retry met it.
            if tenant == record.tenant.as_str() && id == record.id {
                return Ok(());
            }
            return Err(WriteError::Conflict(taken_message(
                tenant == record.tenant.as_str(),
                id,
            )));
        }
        if cancelled.failed_at(1) {
            return Err(WriteError::Conflict(format!(
                "key id {} is taken; try again",
                record.id
            )));
        }
        Err(WriteError::Conflict(
            "another write to this key got there first; try again".to_owned(),
        ))
    }

    async fn list_api_keys(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>, BackendError> {
        let (items, next) = self
            .query_prefix("Query(api keys)", tenant, ENTRY_PREFIX, page)
            .await?;
        Ok(Page {
            items: items
                .iter()
                .map(|item| record_from(tenant, item))
                .collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &str,
        now: Timestamp,
    ) -> Result<Revocation, BackendError> {
        // The entry is under the tenant's own partition: another tenant's id is simply not there.
        let Some((record, hash)) = self.key_entry(tenant, id).await? else {
            return Ok(Revocation::NotFound);
        };
        if record.revoked_at.is_some() {
            return Ok(Revocation::AlreadyRevoked(record));
        }
        let items = vec![
            revoke_item(
                &self.table,
                entry_key(tenant, id),
                "attribute_exists(pk) AND attribute_not_exists(#revoked_at)",
                now,
                &[],
            )?,
            // The lookup is revoked only where it is this tenant's key of this id.
            revoke_item(
                &self.table,
                lookup_key(&hash),
                "#tenant = :tenant AND #key_id = :key_id",
                now,
                &[(":tenant", tenant.as_str()), (":key_id", id)],
            )?,
        ];
        let revoked = ApiKeyRecord {
            revoked_at: Some(now),
            ..record
        };
        match transact(&self.client, "TransactWriteItems(revoke api key)", items).await {
            Ok(()) => Ok(Revocation::Revoked(revoked)),
            Err(Cancelled::Backend(error)) => Err(error),
            Err(cancelled) if cancelled.failed_at(0) => {
                // Revoked meanwhile: by another revoke, or by this one, whose answer was lost.
                let (stored, _) = self.key_entry(tenant, id).await?.ok_or_else(|| {
                    corrupt("TransactWriteItems(revoke api key)", "the key's entry vanished")
                })?;
                Ok(if stored.revoked_at == Some(now) {
                    Revocation::Revoked(stored)
                } else {
                    Revocation::AlreadyRevoked(stored)
                })
            }
            Err(cancelled) if cancelled.failed_at(1) => Err(corrupt(
                "TransactWriteItems(revoke api key)",
                format!("the lookup of key {id} is not tenant {tenant}'s"),
            )),
            Err(_) => Err(BackendError {
                service: "DynamoDB",
                operation: "TransactWriteItems(revoke api key)",
                message: "another write to this key got there first".to_owned(),
                retryable: true,
            }),
        }
    }
}
