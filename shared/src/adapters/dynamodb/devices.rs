//! Users' devices in the config table: `TENANT#<t>` / `DEVICE#<user>#<sha256 of the token>`, one item per
//! device. The token itself is an attribute, never part of a key: keys are shown in consoles and logs.

use super::config_store::{DynamoConfigStore, tenant_pk};
use super::{Item, ItemExt, corrupt, key, n, s};
use crate::adapters::backend_error;
use crate::domain::device::{DeviceRegistration, DeviceToken, Platform};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{BackendError, DeviceStore, PageRequest, Saved, WriteError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::ReturnValue;
use std::collections::HashMap;

fn user_prefix(user_id: &str) -> String {
    format!("DEVICE#{user_id}#")
}

fn device_key(tenant: &TenantId, user_id: &str, token: &DeviceToken) -> Item {
    key(
        tenant_pk(tenant),
        format!("{}{}", user_prefix(user_id), token.key()),
    )
}

fn device_from(item: &Item) -> Result<DeviceRegistration, BackendError> {
    let platform = item.str("platform")?;
    let platform =
        Platform::parse(platform).ok_or_else(|| corrupt("read", format!("platform {platform}")))?;
    let token = DeviceToken::parse(platform, item.str("token")?).map_err(|why| corrupt("read", why))?;
    Ok(DeviceRegistration {
        user_id: item.str("user_id")?.to_owned(),
        token,
        endpoint_arn: item.str("endpoint_arn")?.to_owned(),
        created_at: Timestamp::from_millis(item.int("created_at")?),
        updated_at: Timestamp::from_millis(item.int("updated_at")?),
    })
}

/// A user has a handful of devices: one query page almost always holds them all.
const PAGE: PageRequest = PageRequest {
    limit: 100,
    after: None,
};

impl DeviceStore for DynamoConfigStore {
    async fn put_device(
        &self,
        tenant: &TenantId,
        registration: &DeviceRegistration,
    ) -> Result<Saved, WriteError> {
        let token = &registration.token;
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(device_key(tenant, &registration.user_id, token)))
            .update_expression(
                "SET user_id = :user_id, platform = :platform, #token = :token, endpoint_arn = :endpoint_arn, \
                 created_at = if_not_exists(created_at, :created_at), updated_at = :updated_at, \
                 revision = if_not_exists(revision, :zero) + :one",
            )
            // The key is the token's hash alone: the stored platform is what tells an FCM token from an
            // APNs one of the same text.
            .condition_expression("attribute_not_exists(pk) OR platform = :platform")
            .expression_attribute_names("#token", "token")
            .set_expression_attribute_values(Some(HashMap::from([
                (":user_id".to_owned(), s(&registration.user_id)),
                (":platform".to_owned(), s(token.platform().as_str())),
                (":token".to_owned(), s(token.expose())),
                (":endpoint_arn".to_owned(), s(&registration.endpoint_arn)),
                (":created_at".to_owned(), n(registration.created_at.millis())),
                (":updated_at".to_owned(), n(registration.updated_at.millis())),
                (":zero".to_owned(), n(0)),
                (":one".to_owned(), n(1)),
            ])))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match written {
            Ok(output) => {
                let revision = output
                    .attributes
                    .as_ref()
                    .and_then(|item| item.opt_int("revision"));
                Ok(if revision == Some(1) {
                    Saved::Created
                } else {
                    Saved::Replaced
                })
            }
            Err(SdkError::ServiceError(failed)) if failed.err().is_conditional_check_failed_exception() => {
                Err(WriteError::Conflict(format!(
                    "the device token is registered for another platform than {}",
                    token.platform()
                )))
            }
            Err(error) => Err(backend_error("DynamoDB", "UpdateItem(device)", &error).into()),
        }
    }

    async fn devices_of(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<DeviceRegistration>, BackendError> {
        let prefix = user_prefix(user_id);
        let mut devices = Vec::new();
        let mut page = PAGE;
        loop {
            let (items, next) = self
                .query_prefix("Query(devices)", tenant, &prefix, &page)
                .await?;
            for item in &items {
                devices.push(device_from(item)?);
            }
            match next {
                Some(after) => page.after = Some(after),
                None => return Ok(devices),
            }
        }
    }

    async fn delete_device(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token: &DeviceToken,
    ) -> Result<bool, BackendError> {
        self.delete("DeleteItem(device)", device_key(tenant, user_id, token))
            .await
    }

    async fn forget_endpoint(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token: &DeviceToken,
        endpoint_arn: &str,
    ) -> Result<bool, BackendError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(device_key(tenant, user_id, token)))
            .condition_expression("endpoint_arn = :endpoint_arn")
            .expression_attribute_values(":endpoint_arn", s(endpoint_arn))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(failed)) if failed.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(error) => Err(backend_error("DynamoDB", "DeleteItem(device endpoint)", &error)),
        }
    }
}
