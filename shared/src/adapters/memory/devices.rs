//! Users' devices in memory, with the config table's semantics: one entry per user and token, a token kept to
//! its platform, `created_at` kept on a replace, a user's devices in the order of their tokens' keys.

use super::{Failpoints, after_write, before_read, before_write, lock};
use crate::domain::TenantId;
use crate::domain::device::{DeviceRegistration, DeviceToken};
use crate::ports::{BackendError, DeviceStore, Saved, WriteError};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// (tenant, user, token key).
type DeviceKey = (String, String, String);

fn device_key(tenant: &TenantId, user_id: &str, token: &DeviceToken) -> DeviceKey {
    (tenant.to_string(), user_id.to_owned(), token.key())
}

/// Failpoints by operation name (`"put_device"`, `"devices_of"`, `"delete_device"`, `"forget_endpoint"`).
#[derive(Debug, Default)]
pub struct MemoryDeviceStore {
    devices: Mutex<BTreeMap<DeviceKey, DeviceRegistration>>,
    pub failpoints: Failpoints,
}

impl DeviceStore for MemoryDeviceStore {
    async fn put_device(
        &self,
        tenant: &TenantId,
        registration: &DeviceRegistration,
    ) -> Result<Saved, WriteError> {
        let fault = before_write(&self.failpoints, "put_device").await?;
        let key = device_key(tenant, &registration.user_id, &registration.token);
        let saved = {
            let mut devices = lock(&self.devices);
            match devices.get(&key) {
                Some(old) if old.platform() != registration.platform() => {
                    return Err(WriteError::Conflict(format!(
                        "the device token is registered for another platform than {}",
                        registration.platform()
                    )));
                }
                Some(old) => {
                    let created_at = old.created_at;
                    devices.insert(
                        key,
                        DeviceRegistration {
                            created_at,
                            ..registration.clone()
                        },
                    );
                    Saved::Replaced
                }
                None => {
                    devices.insert(key, registration.clone());
                    Saved::Created
                }
            }
        };
        after_write("put_device", fault)?;
        Ok(saved)
    }

    async fn devices_of(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<DeviceRegistration>, BackendError> {
        before_read(&self.failpoints, "devices_of").await?;
        let tenant = tenant.to_string();
        Ok(lock(&self.devices)
            .iter()
            .filter(|((owner, user, _), _)| *owner == tenant && user == user_id)
            .map(|(_, device)| device.clone())
            .collect())
    }

    async fn delete_device(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token: &DeviceToken,
    ) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "delete_device").await?;
        let removed = lock(&self.devices)
            .remove(&device_key(tenant, user_id, token))
            .is_some();
        after_write("delete_device", fault)?;
        Ok(removed)
    }

    async fn forget_endpoint(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token: &DeviceToken,
        endpoint_arn: &str,
    ) -> Result<bool, BackendError> {
        let fault = before_write(&self.failpoints, "forget_endpoint").await?;
        let removed = {
            let mut devices = lock(&self.devices);
            let key = device_key(tenant, user_id, token);
            let current = devices
                .get(&key)
                .is_some_and(|device| device.endpoint_arn == endpoint_arn);
            current && devices.remove(&key).is_some()
        };
        after_write("forget_endpoint", fault)?;
        Ok(removed)
    }
}
