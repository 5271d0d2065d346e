//! Tenants' settings in the config table: one item per tenant, `TENANT#<t>` / `SETTINGS`, one attribute per
//! setting. Each setting is its own `UpdateItem`, so two operators setting different things at once both
//! keep theirs.

use super::config_store::{DynamoConfigStore, tenant_pk};
use super::{Item, ItemExt, corrupt, key, n, s};
use crate::adapters::backend_error;
use crate::domain::address::CountryAllowList;
use crate::domain::tenant::{TenantLimit, TenantSettings};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{BackendError, TenantSettingsStore};
use aws_sdk_dynamodb::types::AttributeValue;

fn settings_key(tenant: &TenantId) -> Item {
    key(tenant_pk(tenant), "SETTINGS")
}

fn settings_from(item: &Item) -> Result<TenantSettings, BackendError> {
    let sms_allowed_countries = item
        .opt_str("sms_allowed_countries")
        .map(|list| {
            CountryAllowList::parse(list).map_err(|why| {
                corrupt(
                    "GetItem(tenant settings)",
                    format!("sms_allowed_countries: {why}"),
                )
            })
        })
        .transpose()?;
    let limit = |limit: TenantLimit| {
        item.opt_int(limit.attribute())
            .map(|value| {
                u32::try_from(value).map_err(|_| corrupt("GetItem(tenant settings)", limit.attribute()))
            })
            .transpose()
    };
    Ok(TenantSettings {
        sms_allowed_countries,
        rate_limit_per_minute: limit(TenantLimit::RatePerMinute)?,
        ingest_budget_per_minute: limit(TenantLimit::IngestBudgetPerMinute)?,
        updated_at: item.opt_int("updated_at").map(Timestamp::from_millis),
    })
}

impl DynamoConfigStore {
    /// Sets one attribute of the tenant's settings (or removes it, for `None`), leaving the others.
    async fn set_setting(
        &self,
        tenant: &TenantId,
        attribute: &str,
        value: Option<AttributeValue>,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(settings_key(tenant)))
            .expression_attribute_values(":now", n(now.millis()));
        let update = match value {
            Some(value) => update
                .update_expression(format!("SET {attribute} = :value, updated_at = :now"))
                .expression_attribute_values(":value", value),
            None => update.update_expression(format!("SET updated_at = :now REMOVE {attribute}")),
        };
        update
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "UpdateItem(tenant settings)", &error))?;
        Ok(())
    }
}

impl TenantSettingsStore for DynamoConfigStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<Option<TenantSettings>, BackendError> {
        let item = self.get("GetItem(tenant settings)", settings_key(tenant)).await?;
        item.as_ref().map(settings_from).transpose()
    }

    async fn set_sms_allowed_countries(
        &self,
        tenant: &TenantId,
        countries: Option<&CountryAllowList>,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let value = countries.map(|countries| s(countries.to_string()));
        self.set_setting(tenant, "sms_allowed_countries", value, now)
            .await
    }

    async fn set_limit(
        &self,
        tenant: &TenantId,
        limit: TenantLimit,
        value: Option<u32>,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        self.set_setting(tenant, limit.attribute(), value.map(n), now)
            .await
    }
}
