//! The port of each tenant's suppression list (addresses not to be sent to again).

use super::{BackendError, Page, PageRequest};
use crate::domain::TenantId;
use crate::domain::suppression::Suppression;
use std::future::Future;

/// Each tenant's suppressed email addresses, keyed as `suppression_key` writes them.
pub trait SuppressionList: Send + Sync {
    /// Adds the entry unless the address is on the list already (the first cause is kept). `true` when
    /// this call added it.
    fn suppress(
        &self,
        tenant: &TenantId,
        entry: &Suppression,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    fn suppression(
        &self,
        tenant: &TenantId,
        address: &str,
    ) -> impl Future<Output = Result<Option<Suppression>, BackendError>> + Send;

    fn suppressions(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Suppression>, BackendError>> + Send;

    /// `true` when the address was on the list.
    fn unsuppress(
        &self,
        tenant: &TenantId,
        address: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}
