//! API keys in memory: the tenant of each key hash, as the config table keeps them.

use super::{Failpoints, after_write, before_read, before_write, lock};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{ApiKeyStore, BackendError};
use std::collections::HashMap;
use std::sync::Mutex;

/// Failpoints by operation name (`"tenant_for_key"`, `"put_api_key"`).
#[derive(Debug, Default)]
pub struct MemoryApiKeyStore {
    tenants: Mutex<HashMap<String, TenantId>>,
    pub failpoints: Failpoints,
}

impl ApiKeyStore for MemoryApiKeyStore {
    async fn tenant_for_key(&self, key_hash: &str) -> Result<Option<TenantId>, BackendError> {
        before_read(&self.failpoints, "tenant_for_key").await?;
        Ok(lock(&self.tenants).get(key_hash).cloned())
    }

    /// An unconditional put, as the DynamoDB adapter's: storing a hash again moves it to `tenant`.
    async fn put_api_key(
        &self,
        tenant: &TenantId,
        key_hash: &str,
        _now: Timestamp,
    ) -> Result<(), BackendError> {
        let fault = before_write(&self.failpoints, "put_api_key").await?;
        lock(&self.tenants).insert(key_hash.to_owned(), tenant.clone());
        after_write("put_api_key", fault)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::adapters::memory::Fault;

    #[tokio::test]
    async fn a_key_belongs_to_the_tenant_it_was_last_put_for() {
        let store = MemoryApiKeyStore::default();
        let now = Timestamp::now();
        assert_eq!(store.tenant_for_key("h1").await.unwrap(), None);
        store
            .put_api_key(&TenantId::new("acme"), "h1", now)
            .await
            .unwrap();
        store
            .put_api_key(&TenantId::new("globex"), "h1", now)
            .await
            .unwrap();
        assert_eq!(
            store.tenant_for_key("h1").await.unwrap(),
            Some(TenantId::new("globex"))
        );
    }

    #[tokio::test]
    async fn a_put_that_times_out_after_committing_is_stored_and_a_failed_read_changes_nothing() {
        let store = MemoryApiKeyStore::default();
        store.failpoints.set("put_api_key", Fault::TimeOutAfterCommit, 1);
        let timed_out = store
            .put_api_key(&TenantId::new("acme"), "h1", Timestamp::now())
            .await;
        assert!(timed_out.is_err_and(|error| error.retryable));
        store.failpoints.set("tenant_for_key", Fault::FailPermanently, 1);
        let refused = store.tenant_for_key("h1").await;
        assert!(refused.is_err_and(|error| !error.retryable));
        assert_eq!(
            store.tenant_for_key("h1").await.unwrap(),
            Some(TenantId::new("acme"))
        );
    }
}
