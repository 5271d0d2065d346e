//! The port of users' registered devices (mobile push).

use super::{BackendError, Saved, WriteError};
use crate::domain::TenantId;
use crate::domain::device::{DeviceRegistration, DeviceToken};
use std::future::Future;

/// Each user's devices, one per token, with the SNS platform endpoint that reaches it.
pub trait DeviceStore: Send + Sync {
    /// Registers the device, or replaces the endpoint of one the user has registered already (which keeps
    /// its `created_at`). A token registered for the other platform is a conflict: a token is one platform's.
    fn put_device(
        &self,
        tenant: &TenantId,
        registration: &DeviceRegistration,
    ) -> impl Future<Output = Result<Saved, WriteError>> + Send;

    /// The user's devices, in the order of their tokens' keys.
    fn devices_of(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<DeviceRegistration>, BackendError>> + Send;

    /// `true` when the user had the device.
    fn delete_device(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token: &DeviceToken,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Removes the device only while it still has `endpoint_arn`: a send that found the endpoint disabled
    /// must not remove a registration the app has renewed since (with a new endpoint). `true` when removed.
    fn forget_endpoint(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token: &DeviceToken,
        endpoint_arn: &str,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}
