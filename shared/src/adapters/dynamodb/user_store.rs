//! Users in the config table: one item per user, `TENANT#<t>` / `USER#<id>`, with the profile and the
//! preferences as two JSON attributes. Each PUT is an `UpdateItem` of its own attribute, so a profile
//! and a preferences change made at the same moment both stay; whether it created the part is read from
//! the same request's old values, never from an earlier read.

use super::config_store::{DynamoConfigStore, tenant_pk};
use super::{Item, ItemExt, corrupt, key, n, s};
use crate::adapters::backend_error;
use crate::domain::user::{Preferences, User, UserProfile};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{BackendError, Saved, UserStore};
use aws_sdk_dynamodb::types::ReturnValue;
use serde::de::DeserializeOwned;

fn user_key(tenant: &TenantId, user_id: &str) -> Item {
    key(tenant_pk(tenant), format!("USER#{user_id}"))
}

fn part<T: DeserializeOwned>(item: &Item, attribute: &str) -> Result<Option<T>, BackendError> {
    item.opt_str(attribute)
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|error| corrupt("GetItem(user)", format!("{attribute}: {error}")))
        })
        .transpose()
}

impl DynamoConfigStore {
    /// Sets one part of the user (`profile` or `preferences`) to `json`; `Created` when it had none.
    async fn put_user_part(
        &self,
        tenant: &TenantId,
        user_id: &str,
        attribute: &'static str,
        json: String,
        now: Timestamp,
    ) -> Result<Saved, BackendError> {
        let operation = if attribute == "profile" {
            "UpdateItem(user profile)"
        } else {
            "UpdateItem(user preferences)"
        };
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(user_key(tenant, user_id)))
            .update_expression("SET #part = :part, updated_at = :now")
            .expression_attribute_names("#part", attribute)
            .expression_attribute_values(":part", s(json))
            .expression_attribute_values(":now", n(now.millis()))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", operation, &error))?;
        let had_it = output.attributes.is_some_and(|old| old.contains_key(attribute));
        Ok(if had_it { Saved::Replaced } else { Saved::Created })
    }
}

impl UserStore for DynamoConfigStore {
    async fn user(&self, tenant: &TenantId, user_id: &str) -> Result<Option<User>, BackendError> {
        let Some(item) = self.get("GetItem(user)", user_key(tenant, user_id)).await? else {
            return Ok(None);
        };
        Ok(Some(User {
            profile: part(&item, "profile")?,
            preferences: part(&item, "preferences")?,
        }))
    }

    async fn put_profile(
        &self,
        tenant: &TenantId,
        user_id: &str,
        profile: &UserProfile,
        now: Timestamp,
    ) -> Result<Saved, BackendError> {
        let json = serde_json::to_string(profile)
            .map_err(|error| corrupt("UpdateItem(user profile)", error.to_string()))?;
        self.put_user_part(tenant, user_id, "profile", json, now).await
    }

    async fn put_preferences(
        &self,
        tenant: &TenantId,
        user_id: &str,
        preferences: &Preferences,
        now: Timestamp,
    ) -> Result<Saved, BackendError> {
        let json = serde_json::to_string(preferences)
            .map_err(|error| corrupt("UpdateItem(user preferences)", error.to_string()))?;
        self.put_user_part(tenant, user_id, "preferences", json, now)
            .await
    }

    async fn delete_user(&self, tenant: &TenantId, user_id: &str) -> Result<bool, BackendError> {
        self.delete("DeleteItem(user)", user_key(tenant, user_id)).await
    }
}
