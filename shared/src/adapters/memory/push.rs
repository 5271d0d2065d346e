//! Push platform endpoints in memory: one per token, as SNS keeps one per token in an application, with the
//! tokens the platform refuses and the platforms the deployment has no application for.

use super::{Failpoints, before_read, lock};
use crate::domain::device::{DeviceToken, Platform};
use crate::ports::{EndpointError, PushEndpoints};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Failpoints by operation name (`"ensure_endpoint"`).
#[derive(Debug, Default)]
pub struct MemoryPushEndpoints {
    /// Endpoint ARN by token key, and the user data it was last given.
    endpoints: Mutex<BTreeMap<String, (String, String)>>,
    refused_tokens: Mutex<BTreeSet<String>>,
    unconfigured: Mutex<BTreeSet<Platform>>,
    pub failpoints: Failpoints,
}

impl MemoryPushEndpoints {
    /// The platform refuses `token` from now on, as SNS refuses a token APNs or FCM does not know.
    pub fn refuse(&self, token: &DeviceToken) {
        lock(&self.refused_tokens).insert(token.key());
    }

    /// The deployment has no application for `platform`.
    pub fn unconfigure(&self, platform: Platform) {
        lock(&self.unconfigured).insert(platform);
    }

    /// The endpoint of `token` and its user data, if it has one.
    pub fn endpoint_of(&self, token: &DeviceToken) -> Option<(String, String)> {
        lock(&self.endpoints).get(&token.key()).cloned()
    }
}

impl PushEndpoints for MemoryPushEndpoints {
    async fn ensure_endpoint(&self, token: &DeviceToken, user_data: &str) -> Result<String, EndpointError> {
        before_read(&self.failpoints, "ensure_endpoint").await?;
        if lock(&self.unconfigured).contains(&token.platform()) {
            return Err(EndpointError::NotConfigured(token.platform()));
        }
        if lock(&self.refused_tokens).contains(&token.key()) {
            return Err(EndpointError::Refused("Invalid parameter: Token".into()));
        }
        let key = token.key();
        let prefix = match token.platform() {
            Platform::Apns => "APNS",
            Platform::Fcm => "GCM",
        };
        let mut endpoints = lock(&self.endpoints);
        let arn = endpoints.get(&key).map_or_else(
            || {
                format!(
                    "arn:aws:sns:us-east-1:123456789012:endpoint/{prefix}/herald/{}",
                    &key[..32]
                )
            },
            |(arn, _)| arn.clone(),
        );
        endpoints.insert(key, (arn.clone(), user_data.to_owned()));
        Ok(arn)
    }
}
