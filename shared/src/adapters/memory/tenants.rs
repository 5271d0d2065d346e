//! Tenants' settings in memory, as the config table keeps them: one record per tenant, each setting
//! written on its own.

use super::{Failpoints, after_write, before_read, before_write, lock};
use crate::domain::address::CountryAllowList;
use crate::domain::tenant::{TenantLimit, TenantSettings};
use crate::domain::{TenantId, Timestamp};
use crate::ports::{BackendError, TenantSettingsStore};
use std::collections::HashMap;
use std::sync::Mutex;

/// Failpoints by operation name (`"tenant_settings"`, `"set_sms_allowed_countries"`, `"set_limit"`); reads count how
/// often the store was asked, so a cache above it can be seen working.
#[derive(Debug, Default)]
pub struct MemoryTenantSettingsStore {
    settings: Mutex<HashMap<TenantId, TenantSettings>>,
    reads: Mutex<usize>,
    pub failpoints: Failpoints,
}

impl MemoryTenantSettingsStore {
    /// How many times the settings were read.
    pub fn reads(&self) -> usize {
        *lock(&self.reads)
    }
}

impl TenantSettingsStore for MemoryTenantSettingsStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<Option<TenantSettings>, BackendError> {
        *lock(&self.reads) += 1;
        before_read(&self.failpoints, "tenant_settings").await?;
        Ok(lock(&self.settings).get(tenant).cloned())
    }

    async fn set_sms_allowed_countries(
        &self,
        tenant: &TenantId,
        countries: Option<&CountryAllowList>,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let fault = before_write(&self.failpoints, "set_sms_allowed_countries").await?;
        let mut settings = lock(&self.settings);
        let record = settings.entry(tenant.clone()).or_default();
        record.sms_allowed_countries = countries.cloned();
        record.updated_at = Some(now);
        after_write("set_sms_allowed_countries", fault)
    }

    async fn set_limit(
        &self,
        tenant: &TenantId,
        limit: TenantLimit,
        value: Option<u32>,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let fault = before_write(&self.failpoints, "set_limit").await?;
        let mut settings = lock(&self.settings);
        let record = settings.entry(tenant.clone()).or_default();
        match limit {
            TenantLimit::RatePerMinute => record.rate_limit_per_minute = value,
            TenantLimit::IngestBudgetPerMinute => record.ingest_budget_per_minute = value,
        }
        record.updated_at = Some(now);
        after_write("set_limit", fault)
    }
}
