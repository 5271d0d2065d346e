//! The port of the webhook endpoints tenants register.

use super::{BackendError, Page, PageRequest, Saved};
use crate::domain::webhook::{DisabledBy, EndpointSpec, SigningSecret, WebhookEndpoint};
use crate::domain::{TenantId, Timestamp};
use std::future::Future;

/// The webhook endpoints tenants register (`/v1/webhooks/{id}`), and what deliveries learn about them.
pub trait WebhookEndpointStore: Send + Sync {
    /// Creates the endpoint with `secret`, or replaces the spec of an existing one, which keeps its own
    /// secrets. Saving it enabled clears what disabled it (a 410, failures) and its run of failures.
    fn put_endpoint(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: &EndpointSpec,
        secret: &SigningSecret,
        now: Timestamp,
    ) -> impl Future<Output = Result<(Saved, WebhookEndpoint), BackendError>> + Send;

    fn endpoint(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<WebhookEndpoint>, BackendError>> + Send;

    fn endpoints(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<WebhookEndpoint>, BackendError>> + Send;

    fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Makes `secret` the one that signs; the current one keeps signing beside it until `overlap_until`.
    /// `None` when there is no such endpoint.
    fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &str,
        secret: &SigningSecret,
        overlap_until: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<WebhookEndpoint>, BackendError>> + Send;

    /// Records that deliveries have failed since `since`, unless an earlier failure of the same run is
    /// recorded already (only a success ends a run).
    fn mark_failing(
        &self,
        tenant: &TenantId,
        id: &str,
        since: Timestamp,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// A delivery succeeded: the run of failures is over.
    fn mark_healthy(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    fn disable(
        &self,
        tenant: &TenantId,
        id: &str,
        by: DisabledBy,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}
