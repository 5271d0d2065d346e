//! API keys in memory, as the config table keeps them: a lookup by hash and an entry in the tenant's list
//! per key, written together (one transaction in DynamoDB, one lock here).

use super::{Failpoints, after_write, before_read, before_write, lock};
use crate::domain::api_key::{ApiKeyRecord, KeyGrant, NewApiKey, taken_message};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{ApiKeyStore, BackendError, CursorKeyStore, Page, PageRequest, Revocation, WriteError};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The lookup item of a key: whose it is, under which id.
#[derive(Debug, Clone)]
struct Lookup {
    tenant: TenantId,
    id: String,
    revoked: bool,
    scope: crate::domain::api_key::KeyScope,
}

#[derive(Debug, Default)]
struct Keys {
    by_hash: HashMap<String, Lookup>,
    /// The tenants' lists, each entry with the hash it revokes.
    /// By tenant name and key id, so a tenant's are together and in id order, as in its partition.
    entries: BTreeMap<(String, String), (ApiKeyRecord, String)>,
}

/// Failpoints by operation name (`"key_grant"`, `"create_api_key"`, `"list_api_keys"`,
/// `"revoke_api_key"`).
#[derive(Debug, Default)]
pub struct MemoryApiKeyStore {
    keys: Mutex<Keys>,
    /// The cursor secret, made on first use as the config table's is.
    cursor_key: std::sync::OnceLock<Vec<u8>>,
    pub failpoints: Failpoints,
}

impl MemoryApiKeyStore {
    /// How many lookup items and list entries are stored: equal unless a key was half written.
    pub fn items(&self) -> (usize, usize) {
        let keys = lock(&self.keys);
        (keys.by_hash.len(), keys.entries.len())
    }
}

impl CursorKeyStore for MemoryApiKeyStore {
    async fn cursor_key(&self) -> Result<Vec<u8>, BackendError> {
        before_read(&self.failpoints, "cursor_key").await?;
        Ok(self
            .cursor_key
            .get_or_init(|| {
                let mut secret = vec![0_u8; 32];
                // Should randomness fail, zeros: a store in a test needs no real secret.
                getrandom::fill(&mut secret).unwrap_or_default();
                secret
            })
            .clone())
    }
}

impl ApiKeyStore for MemoryApiKeyStore {
    async fn key_grant(&self, key_hash: &str) -> Result<Option<KeyGrant>, BackendError> {
        before_read(&self.failpoints, "key_grant").await?;
        Ok(lock(&self.keys)
            .by_hash
            .get(key_hash)
            .filter(|lookup| !lookup.revoked)
            .map(|lookup| KeyGrant {
                tenant: lookup.tenant.clone(),
                key_id: lookup.id.clone(),
                scope: lookup.scope,
            }))
    }

    async fn create_api_key(&self, key: &NewApiKey) -> Result<(), WriteError> {
        let fault = before_write(&self.failpoints, "create_api_key").await?;
        let record = &key.record;
        let mut keys = lock(&self.keys);
        if let Some(taken) = keys.by_hash.get(&key.hash) {
            // The same key written again is a retry of a write whose answer was lost.
            if taken.tenant == record.tenant && taken.id == record.id {
                return Ok(());
            }
            return Err(WriteError::Conflict(taken_message(
                taken.tenant == record.tenant,
                &taken.id,
            )));
        }
        let entry = (record.tenant.as_str().to_owned(), record.id.clone());
        if keys.entries.contains_key(&entry) {
            return Err(WriteError::Conflict(format!(
                "key id {} is taken; try again",
                record.id
            )));
        }
        keys.by_hash.insert(
            key.hash.clone(),
            Lookup {
                tenant: record.tenant.clone(),
                id: record.id.clone(),
                revoked: false,
                scope: record.scope,
            },
        );
        keys.entries.insert(entry, (record.clone(), key.hash.clone()));
        Ok(after_write("create_api_key", fault)?)
    }

    async fn list_api_keys(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>, BackendError> {
        before_read(&self.failpoints, "list_api_keys").await?;
        let keys = lock(&self.keys);
        let mut records = keys
            .entries
            .iter()
            .filter(|((owner, id), _)| {
                owner == tenant.as_str() && page.after.as_ref().is_none_or(|after| id > after)
            })
            .map(|(_, (record, _))| record.clone());
        let items: Vec<_> = records.by_ref().take(usize::from(page.limit)).collect();
        let next = records.next().and(items.last().map(|last| last.id.clone()));
        Ok(Page { items, next })
    }

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &str,
        now: Timestamp,
    ) -> Result<Revocation, BackendError> {
        let fault = before_write(&self.failpoints, "revoke_api_key").await?;
        let mut keys = lock(&self.keys);
        let Some((record, hash)) = keys
            .entries
            .get(&(tenant.as_str().to_owned(), id.to_owned()))
            .cloned()
        else {
            return Ok(Revocation::NotFound);
        };
        if record.revoked_at.is_some() {
            return Ok(Revocation::AlreadyRevoked(record));
        }
        let revoked = ApiKeyRecord {
            revoked_at: Some(now),
            ..record
        };
        keys.entries.insert(
            (tenant.as_str().to_owned(), id.to_owned()),
            (revoked.clone(), hash.clone()),
        );
        if let Some(lookup) = keys.by_hash.get_mut(&hash) {
            lookup.revoked = true;
        }
        after_write("revoke_api_key", fault)?;
        Ok(Revocation::Revoked(revoked))
    }
}

#[cfg(test)]
#[path = "api_keys_tests.rs"]
mod tests;
