//! Webhook endpoints in memory, with the config table's semantics: each change applies to one endpoint at
//! once, a PUT keeps an existing endpoint's secrets, and changes to an endpoint that is gone do nothing.

use super::{Failpoints, after_write, before_read, before_write, lock, page_after};
use crate::domain::webhook::{DisabledBy, EndpointSpec, RetiringSecret, SigningSecret, WebhookEndpoint};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{BackendError, Page, PageRequest, Saved, WebhookEndpointStore};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Failpoints by operation name (`"endpoint"`, `"put_endpoint"`, `"mark_failing"`, …).
#[derive(Debug, Default)]
pub struct MemoryWebhookEndpoints {
    /// By tenant, then id: a listing is in id order, as the table's sort key has it.
    endpoints: Mutex<BTreeMap<(String, String), WebhookEndpoint>>,
    pub failpoints: Failpoints,
}

impl MemoryWebhookEndpoints {
    /// Applies `change` to the endpoint if it exists.
    async fn change(
        &self,
        operation: &'static str,
        tenant: &TenantId,
        id: &str,
        change: impl FnOnce(&mut WebhookEndpoint),
    ) -> Result<Option<WebhookEndpoint>, BackendError> {
        let fault = before_write(&self.failpoints, operation).await?;
        let changed = lock(&self.endpoints)
            .get_mut(&(tenant.to_string(), id.to_owned()))
            .map(|endpoint| {
                change(endpoint);
                endpoint.clone()
            });
        after_write(operation, fault)?;
        Ok(changed)
    }
}

impl WebhookEndpointStore for MemoryWebhookEndpoints {
    async fn put_endpoint(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: &EndpointSpec,
        secret: &SigningSecret,
        now: Timestamp,
    ) -> Result<(Saved, WebhookEndpoint), BackendError> {
        let fault = before_write(&self.failpoints, "put_endpoint").await?;
        let mut endpoints = lock(&self.endpoints);
        let key = (tenant.to_string(), id.to_owned());
        let saved = if endpoints.contains_key(&key) {
            Saved::Replaced
        } else {
            Saved::Created
        };
        let endpoint = endpoints.entry(key).or_insert_with(|| WebhookEndpoint {
            id: id.to_owned(),
            spec: spec.clone(),
            secret: secret.clone(),
            previous_secret: None,
            disabled_by: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        });
        endpoint.spec = spec.clone();
        endpoint.updated_at = now;
        if spec.enabled {
            endpoint.disabled_by = None;
            endpoint.failing_since = None;
        }
        let endpoint = endpoint.clone();
        drop(endpoints);
        after_write("put_endpoint", fault)?;
        Ok((saved, endpoint))
    }

    async fn endpoint(&self, tenant: &TenantId, id: &str) -> Result<Option<WebhookEndpoint>, BackendError> {
        before_read(&self.failpoints, "endpoint").await?;
        Ok(lock(&self.endpoints)
            .get(&(tenant.to_string(), id.to_owned()))
            .cloned())
    }

    async fn endpoints(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpoint>, BackendError> {
        before_read(&self.failpoints, "endpoints").await?;
        let tenant = tenant.to_string();
        let endpoints = lock(&self.endpoints);
        let mine = endpoints
            .iter()
            .filter(|((owner, _), _)| *owner == tenant)
            .map(|((_, id), endpoint)| (id.clone(), endpoint.clone()));
        Ok(page_after(mine, page))
    }

    async fn delete_endpoint(&self, tenant: &TenantId, id: &str) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "delete_endpoint").await?;
        let deleted = lock(&self.endpoints)
            .remove(&(tenant.to_string(), id.to_owned()))
            .is_some();
        after_write("delete_endpoint", fault)?;
        Ok(deleted)
    }

    async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &str,
        secret: &SigningSecret,
        overlap_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, BackendError> {
        self.change("rotate_secret", tenant, id, |endpoint| {
            let previous = std::mem::replace(&mut endpoint.secret, secret.clone());
            endpoint.previous_secret = Some(RetiringSecret {
                secret: previous,
                until: overlap_until,
            });
            endpoint.updated_at = now;
        })
        .await
    }

    async fn mark_failing(&self, tenant: &TenantId, id: &str, since: Timestamp) -> Result<(), BackendError> {
        self.change("mark_failing", tenant, id, |endpoint| {
            endpoint.failing_since.get_or_insert(since);
        })
        .await?;
        Ok(())
    }

    async fn mark_healthy(&self, tenant: &TenantId, id: &str) -> Result<(), BackendError> {
        self.change("mark_healthy", tenant, id, |endpoint| {
            endpoint.failing_since = None;
        })
        .await?;
        Ok(())
    }

    async fn disable(
        &self,
        tenant: &TenantId,
        id: &str,
        by: DisabledBy,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        self.change("disable", tenant, id, |endpoint| {
            endpoint.disabled_by = Some(by);
            endpoint.updated_at = now;
        })
        .await?;
        Ok(())
    }
}
