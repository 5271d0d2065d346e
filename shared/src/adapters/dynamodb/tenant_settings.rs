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
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(settings_key(tenant)))
            .expression_attribute_values(":now", n(now.millis()));
        let update = match countries {
            Some(countries) => update
                .update_expression("SET sms_allowed_countries = :countries, updated_at = :now")
                .expression_attribute_values(":countries", s(countries.to_string())),
            None => update.update_expression("SET updated_at = :now REMOVE sms_allowed_countries"),
        };
        update
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "UpdateItem(tenant settings)", &error))?;
        Ok(())
    }

    async fn set_limit(
        &self,
        tenant: &TenantId,
        limit: TenantLimit,
        value: Option<u32>,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let attribute = limit.attribute();
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(settings_key(tenant)))
            .expression_attribute_values(":now", n(now.millis()));
        let update = match value {
            Some(value) => update
                .update_expression(format!("SET {attribute} = :value, updated_at = :now"))
                .expression_attribute_values(":value", n(value)),
            None => update.update_expression(format!("SET updated_at = :now REMOVE {attribute}")),
        };
        update
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "UpdateItem(tenant settings)", &error))?;
        Ok(())
    }
}
