//! The ports of mobile push: users' registered devices, and the platform endpoints that reach them.

use super::{BackendError, Saved, WriteError};
use crate::domain::TenantId;
use crate::domain::device::{DeviceRegistration, DeviceToken, Platform};
use std::future::Future;

/// Why a device could not be given an endpoint.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EndpointError {
    /// SNS refused the token (or the user data): the registration is wrong, not SNS.
    #[error("SNS refused the device: {0}")]
    Refused(String),
    /// The deployment has no platform application for the platform.
    #[error("this deployment has no {0} platform application, so it cannot push to {0} devices")]
    NotConfigured(Platform),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The push service's endpoints (SNS platform endpoints): one per device, enabled, on its token.
pub trait PushEndpoints: Send + Sync {
    /// The address of the enabled endpoint of `token`, created or revived, with `user_data` on it (who the
    /// device is for, as a person reading the push service's console sees it).
    fn ensure_endpoint(
        &self,
        token: &DeviceToken,
        user_data: &str,
    ) -> impl Future<Output = Result<String, EndpointError>> + Send;
}

/// Push is off: every registration is refused as not configured (the default of the management API).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPushEndpoints;

impl PushEndpoints for NoPushEndpoints {
    async fn ensure_endpoint(&self, token: &DeviceToken, _user_data: &str) -> Result<String, EndpointError> {
        Err(EndpointError::NotConfigured(token.platform()))
    }
}

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
